//! Attestations as evidence: for each GOOD exact match, fetch the in-toto link the
//! rebuilder signed, verify it with the rebuilder's key and check that it attests the very
//! package file the image was installed from.
//!
//! [`check_link`] is pure; [`fetch_and_check`] does the requests, several at a time per
//! rebuilder and all rebuilders at once.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

use crate::attestation::{KeyCheck, Link, PublicKey};
use crate::{Api, Client, Record};

/// Whether the attested product was compared with a known sha256 of the package file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductState {
    /// The link's sha256 for the file equals the sha256 the archive's sync db gives.
    Matched,
    /// No sha256 of the package file was known (no sync db): the product is only named.
    Unchecked,
}

/// The outcome of checking one GOOD build's attestation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AttestationCheck {
    /// Signed by the rebuilder's key, for this file.
    Verified {
        keyid: String,
        product: String,
        sha256: Option<String>,
        product_check: ProductState,
    },
    /// The rebuilder has no attestation for the build.
    Missing { reason: String },
    /// There is one, and it does not prove the build (bad signature, another file, another
    /// hash, not a link).
    Invalid { reason: String },
    /// It could not be fetched, or the rebuilder's keys could not be had.
    Unavailable { reason: String },
}

impl AttestationCheck {
    /// Signature valid and, where the file's sha256 is known, the product matches it.
    pub fn verified(&self) -> bool {
        matches!(self, AttestationCheck::Verified { .. })
    }

    /// Verified and the product compared with a known sha256.
    pub fn fully_verified(&self) -> bool {
        matches!(
            self,
            AttestationCheck::Verified {
                product_check: ProductState::Matched,
                ..
            }
        )
    }

    /// Short human form.
    pub fn describe(&self) -> String {
        match self {
            AttestationCheck::Verified {
                product_check: ProductState::Matched,
                ..
            } => "attested".into(),
            AttestationCheck::Verified { .. } => "attested (file hash unchecked)".into(),
            AttestationCheck::Missing { .. } => "no attestation".into(),
            AttestationCheck::Invalid { reason } => format!("INVALID attestation: {reason}"),
            AttestationCheck::Unavailable { reason } => {
                format!("attestation unavailable: {reason}")
            }
        }
    }
}

/// Check link bytes against the rebuilder's keys and the package file (`filename`, and its
/// sha256 when known).
pub fn check_link(
    bytes: &[u8],
    keys: &[PublicKey],
    filename: &str,
    sha256: Option<&str>,
) -> AttestationCheck {
    let invalid = |reason: String| AttestationCheck::Invalid { reason };
    let link = match Link::parse(bytes, Path::new("attestation")) {
        Ok(l) => l,
        Err(e) => return invalid(e.to_string()),
    };
    let mut signer: Option<&PublicKey> = None;
    for k in keys {
        match link.check_key(k) {
            KeyCheck::Valid { .. } => {
                signer = Some(k);
                break;
            }
            KeyCheck::Invalid => {
                return invalid(format!(
                    "the signature with keyid {} does not verify",
                    k.keyid()
                ));
            }
            KeyCheck::NotSigned => {}
        }
    }
    let Some(signer) = signer else {
        let ids: Vec<&str> = link.signatures.iter().map(|s| s.keyid.as_str()).collect();
        let want: Vec<&str> = keys.iter().map(|k| k.keyid()).collect();
        return invalid(format!(
            "not signed by the rebuilder's key {} (signatures by {})",
            want.join(", "),
            if ids.is_empty() {
                "nobody".to_string()
            } else {
                ids.join(", ")
            }
        ));
    };
    let Some(product) = link.products.get(filename) else {
        let names: Vec<&str> = link.products.keys().map(String::as_str).collect();
        return invalid(format!(
            "attests {}, not {filename}",
            if names.is_empty() {
                "no product".to_string()
            } else {
                names.join(", ")
            }
        ));
    };
    let attested = product.get("sha256").cloned();
    let product_check = match (sha256, &attested) {
        (Some(want), Some(got)) => {
            if !want.eq_ignore_ascii_case(got) {
                return invalid(format!(
                    "attests sha256 {got} for {filename}, the archive's file has {want}"
                ));
            }
            ProductState::Matched
        }
        _ => ProductState::Unchecked,
    };
    AttestationCheck::Verified {
        keyid: signer.keyid().to_string(),
        product: filename.to_string(),
        sha256: attested,
        product_check,
    }
}

/// One attestation to fetch and check.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index into the clients.
    pub rebuilder: usize,
    /// The caller's index of the package.
    pub package: usize,
    pub record: Record,
    pub filename: String,
    pub sha256: Option<String>,
}

/// Per rebuilder: its API and the keys to verify with (`Err`: why there are none).
pub struct Verifier<'a> {
    pub client: &'a Client,
    pub api: Api,
    pub keys: Result<Vec<PublicKey>, String>,
}

/// Fetch and check every job, `per_rebuilder` requests at a time for each rebuilder, all
/// rebuilders at once. Results are in the order of `jobs`.
pub fn fetch_and_check(
    verifiers: &[Verifier<'_>],
    jobs: &[Job],
    per_rebuilder: usize,
) -> Vec<AttestationCheck> {
    let results: Vec<Mutex<Option<AttestationCheck>>> =
        jobs.iter().map(|_| Mutex::new(None)).collect();
    let queues: Vec<Mutex<VecDeque<usize>>> = (0..verifiers.len())
        .map(|r| {
            Mutex::new(
                jobs.iter()
                    .enumerate()
                    .filter(|(_, j)| j.rebuilder == r)
                    .map(|(i, _)| i)
                    .collect(),
            )
        })
        .collect();
    std::thread::scope(|s| {
        for (r, v) in verifiers.iter().enumerate() {
            let n = per_rebuilder
                .max(1)
                .min(queues[r].lock().map(|q| q.len()).unwrap_or(0));
            for _ in 0..n {
                let (queue, results) = (&queues[r], &results);
                s.spawn(move || {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                        let Some(i) = next else { break };
                        let check = one(v, &jobs[i]);
                        if let Ok(mut slot) = results[i].lock() {
                            *slot = Some(check);
                        }
                    }
                });
            }
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or(AttestationCheck::Unavailable {
                    reason: "not checked (a worker thread failed)".into(),
                })
        })
        .collect()
}

fn one(v: &Verifier<'_>, job: &Job) -> AttestationCheck {
    let keys = match &v.keys {
        Ok(k) => k,
        Err(e) => return AttestationCheck::Unavailable { reason: e.clone() },
    };
    if !job.record.has_attestation && v.api == Api::V1 {
        return AttestationCheck::Missing {
            reason: "the record has no attestation".into(),
        };
    }
    match v.client.attestation(&job.record, v.api) {
        Ok(Some(bytes)) => check_link(&bytes, keys, &job.filename, job.sha256.as_deref()),
        Ok(None) => AttestationCheck::Missing {
            reason: "the rebuilder has none for this build".into(),
        },
        Err(e) => AttestationCheck::Unavailable {
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::canonical_json;
    use ed25519_dalek::{Signer, SigningKey};

    fn signing(seed: u8) -> (SigningKey, PublicKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = PublicKey::from_raw(&sk.verifying_key().to_bytes()).unwrap();
        (sk, pk)
    }

    fn link(sk: &SigningKey, pk: &PublicKey, product: &str, sha256: &str) -> Vec<u8> {
        let signed = serde_json::json!({
            "_type": "link", "name": format!("rebuild {product}"), "materials": {},
            "products": { product: { "sha256": sha256, "sha512": "00" } },
            "byproducts": {}, "command": [], "environment": null
        });
        let sig = sk.sign(&canonical_json(&signed).unwrap());
        serde_json::to_vec(&serde_json::json!({
            "signatures": [{"keyid": pk.keyid(), "sig": hex::encode(sig.to_bytes())}],
            "signed": signed,
        }))
        .unwrap()
    }

    const F: &str = "bash-5.2.15-2-x86_64.pkg.tar.zst";
    const H: &str = "aa00000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn verified_matched_and_unchecked() {
        let (sk, pk) = signing(1);
        let l = link(&sk, &pk, F, H);
        let c = check_link(&l, std::slice::from_ref(&pk), F, Some(H));
        assert!(c.fully_verified(), "{c:?}");
        let c = check_link(&l, &[pk], F, None);
        assert!(c.verified() && !c.fully_verified(), "{c:?}");
    }

    #[test]
    fn forged_wrong_file_wrong_hash_and_garbage_are_invalid() {
        let (sk, pk) = signing(1);
        let (other_sk, other_pk) = signing(2);
        // Signed by someone else.
        let forged = link(&other_sk, &other_pk, F, H);
        let c = check_link(&forged, std::slice::from_ref(&pk), F, Some(H));
        assert!(
            matches!(&c, AttestationCheck::Invalid { reason } if reason.contains("not signed")),
            "{c:?}"
        );
        // Signed with the right key's id but by another key: the signature does not verify.
        let mut v: serde_json::Value = serde_json::from_slice(&forged).unwrap();
        v["signatures"][0]["keyid"] = pk.keyid().into();
        let c = check_link(
            &serde_json::to_vec(&v).unwrap(),
            std::slice::from_ref(&pk),
            F,
            Some(H),
        );
        assert!(
            matches!(&c, AttestationCheck::Invalid { reason } if reason.contains("does not verify")),
            "{c:?}"
        );
        // Another file.
        let other = link(&sk, &pk, "bash-5.2.15-1-x86_64.pkg.tar.zst", H);
        let c = check_link(&other, std::slice::from_ref(&pk), F, Some(H));
        assert!(
            matches!(&c, AttestationCheck::Invalid { reason } if reason.contains("not bash-5.2.15-2")),
            "{c:?}"
        );
        // Another hash.
        let c = check_link(
            &link(&sk, &pk, F, H),
            std::slice::from_ref(&pk),
            F,
            Some(&H.replace("aa", "bb")),
        );
        assert!(
            matches!(&c, AttestationCheck::Invalid { reason } if reason.contains("the archive's file has bb")),
            "{c:?}"
        );
        // Not JSON.
        let c = check_link(b"<html>", &[pk], F, None);
        assert!(matches!(c, AttestationCheck::Invalid { .. }), "{c:?}");
    }
}
