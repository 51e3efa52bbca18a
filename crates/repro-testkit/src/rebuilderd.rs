//! A fake rebuilderd (API v1 subset) holding as many records as a benchmark needs.
//!
//! The test world's real rebuilderd instances hold what real rebuilds produced (a few dozen
//! records); a rebuilder with 10,000 GOOD records and signed attestations would take 10,000
//! rebuilds. This server answers the same requests with the same JSON shapes:
//! `GET /api/v1/packages/binary` (filters `distribution`, `name`; paging `limit` ≤ 1000 and
//! `after` = last id, `total` = the filtered count), `GET /api/v1/meta/public-keys`
//! (`{"current":[PEM]}`), `GET /api/v1/builds/{id}/artifacts/{id}/attestation` (an in-toto
//! link signed with the server's Ed25519 key, as rebuilderd workers sign them). Connections
//! are kept alive; every request is counted.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::util::Loopback;

/// One binary package record.
#[derive(Debug, Clone)]
pub struct FakeRecord {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// "GOOD", "BAD", "FAIL" or `None` (not built yet).
    pub status: Option<&'static str>,
    /// The package file's sha256 the link attests (GOOD records only).
    pub sha256: String,
}

struct State {
    /// (id, record JSON, distribution), sorted by id.
    records: Vec<(i64, Value)>,
    links: HashMap<i64, Vec<u8>>,
    keys: Vec<u8>,
    requests: AtomicU64,
    bytes: AtomicU64,
}

pub struct FakeRebuilderd {
    url: String,
    pem: String,
    state: Arc<State>,
    /// Stops the server on drop.
    _server: Loopback,
}

/// `PUBLIC KEY` PEM of a raw Ed25519 key (SPKI without parameters).
pub fn ed25519_pem(raw: &[u8; 32]) -> String {
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(raw);
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der)
    )
}

/// The securesystemslib keyid of a raw Ed25519 key (canonical JSON of the key object).
fn keyid(raw: &[u8; 32]) -> String {
    let v = json!({"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519",
        "keyval":{"public":hex::encode(raw)},"scheme":"ed25519"});
    hex::encode(Sha256::digest(serde_json::to_vec(&v).expect("json")))
}

impl FakeRebuilderd {
    /// Serve `records` (ids 1, 2, … in order) signed with a key derived from `seed`.
    pub fn start(seed: u8, records: &[FakeRecord]) -> FakeRebuilderd {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let raw = sk.verifying_key().to_bytes();
        let kid = keyid(&raw);
        let pem = ed25519_pem(&raw);
        let mut out = Vec::with_capacity(records.len());
        let mut links = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let id = i as i64 + 1;
            let file = format!("{}-{}-{}.pkg.tar.zst", r.name, r.version, r.arch);
            let built = r.status.is_some();
            let good = r.status == Some("GOOD");
            out.push((
                id,
                json!({
                    "id": id, "name": r.name, "version": r.version, "distribution": "archlinux",
                    "release": null, "component": "core", "architecture": r.arch,
                    "url": format!("https://mirror.invalid/core/os/x86_64/{file}"),
                    "status": r.status,
                    "build_id": if built { Some(id) } else { None },
                    "artifact_id": if built { Some(id) } else { None },
                    "diffoscope_log_id": null,
                    "attestation_log_id": if good { Some(id) } else { None },
                    "last_seen": "2026-11-25T00:00:00", "seen_in_last_sync": true
                }),
            ));
            if good {
                // serde_json (without preserve_order) writes objects with sorted keys and no
                // whitespace: for these ASCII strings, the canonical JSON in-toto signs.
                let signed = json!({
                    "_type": "link", "name": format!("rebuild {file}"),
                    "materials": {}, "products": { file.clone(): { "sha256": r.sha256 } },
                    "byproducts": {}, "command": [], "environment": null
                });
                let sig = sk.sign(&serde_json::to_vec(&signed).expect("json"));
                let link = json!({
                    "signatures": [{"keyid": kid, "sig": hex::encode(sig.to_bytes())}],
                    "signed": signed
                });
                links.insert(id, serde_json::to_vec(&link).expect("json"));
            }
        }
        let keys = serde_json::to_vec(&json!({ "current": [pem] })).expect("json");
        let (server, state) = Loopback::start(
            "fake-rebuilderd",
            |_, _| State {
                records: out,
                links,
                keys,
                requests: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            },
            serve,
        );
        FakeRebuilderd {
            url: format!("http://{}", server.host()),
            pem,
            state,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn public_key_pem(&self) -> &str {
        &self.pem
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Response body bytes sent so far.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }
}

/// One connection, kept alive for as many requests as the client sends.
fn serve(conn: TcpStream, st: &State) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut w = conn.try_clone()?;
    let mut r = BufReader::new(conn);
    while let Some(head) = crate::http::read_request_head(&mut r)? {
        let (status, body) = route(st, &head.target);
        st.requests.fetch_add(1, Ordering::Relaxed);
        st.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let reason = if status == 200 { "OK" } else { "Not Found" };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        w.write_all(head.as_bytes())?;
        w.write_all(&body)?;
    }
    Ok(())
}

fn route(st: &State, target: &str) -> (u16, Vec<u8>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let q: HashMap<&str, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k, v.replace("%2B", "+").replace("%20", " ")))
        .collect();
    if path == "/api/v1/meta/public-keys" {
        return (200, st.keys.clone());
    }
    if path == "/api/v1/packages/binary" {
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .unwrap_or(1000)
            .min(1000);
        let after: i64 = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
        let keep = |v: &Value| {
            q.get("distribution")
                .is_none_or(|d| v["distribution"] == d.as_str())
                && q.get("name").is_none_or(|n| v["name"] == n.as_str())
        };
        let total = st.records.iter().filter(|(_, v)| keep(v)).count();
        let page: Vec<&Value> = st
            .records
            .iter()
            .filter(|(id, v)| *id > after && keep(v))
            .take(limit)
            .map(|(_, v)| v)
            .collect();
        let body = json!({ "total": total, "records": page });
        return (200, serde_json::to_vec(&body).expect("json"));
    }
    // /api/v1/builds/{id}/artifacts/{id}/attestation
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    if let ["api", "v1", "builds", b, "artifacts", _, "attestation"] = parts.as_slice()
        && let Ok(b) = b.parse::<i64>()
        && let Some(link) = st.links.get(&b)
    {
        return (200, link.clone());
    }
    (404, b"{\"error\":\"not found\"}".to_vec())
}
