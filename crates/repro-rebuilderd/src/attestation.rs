//! rebuilderd in-toto link attestations: parsing, canonical JSON, Ed25519 verification and
//! product hash checks.
//!
//! rebuilderd (via in-toto-rs 0.4) signs the canonical JSON of the link's `signed` object:
//! object keys sorted (by code point, which is UTF-8 byte order), no whitespace, integers
//! only, strings escaped as serde_json escapes them (`"`, `\`, and control characters). For
//! the strings real links hold this is the same as OLPC canonical JSON, which leaves control
//! characters literal; `tests/world/rebuilder-backend/verify-attestation.py` is the reference.
//!
//! A key's keyid is the sha256 of the canonical JSON of
//! `{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":HEX},
//! "scheme":"ed25519"}` (securesystemslib compatible).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::{Signature as EdSignature, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

/// Errors: the input could not be read or is not what it claims to be (exit 2 territory).
/// A link that parses but does not verify is not an error; see [`KeyCheck`] and
/// [`ProductCheck`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: not an in-toto link: {reason}")]
    Link { path: PathBuf, reason: String },
    #[error("{path}: not an Ed25519 public key PEM: {reason}")]
    Pem { path: PathBuf, reason: String },
    #[error("cannot canonicalise: {0}")]
    Canonical(String),
}

/// Canonical JSON of a value (see the module docs). Floats are refused.
pub fn canonical_json(v: &Value) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write_canonical(v, &mut out)?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> Result<(), Error> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(Error::Canonical(format!("float {n} in canonical JSON")));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(e, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(&m[k], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// serde_json string escaping, written out: `"` and `\`, the short control escapes, other
/// control characters as `\u00xx`; everything else (non-ASCII included) literal.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// An Ed25519 public key with its in-toto keyid.
#[derive(Clone)]
pub struct PublicKey {
    key: VerifyingKey,
    keyid: String,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.keyid)
    }
}

/// DER prefix of an Ed25519 SubjectPublicKeyInfo without and with an explicit NULL
/// algorithm parameter (rebuilderd / in-toto-rs writes the latter).
const SPKI_PLAIN: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const SPKI_NULL: [u8; 14] = [
    0x30, 0x2c, 0x30, 0x07, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x05, 0x00, 0x03, 0x21, 0x00,
];

impl PublicKey {
    /// From the raw 32 key bytes.
    pub fn from_raw(raw: &[u8; 32]) -> Result<PublicKey, String> {
        let key = VerifyingKey::from_bytes(raw).map_err(|e| format!("invalid Ed25519 key: {e}"))?;
        Ok(PublicKey {
            keyid: keyid(raw),
            key,
        })
    }

    /// From a `PUBLIC KEY` PEM (SPKI, with or without the NULL parameter).
    pub fn from_pem(text: &str) -> Result<PublicKey, String> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let start = text
            .find(BEGIN)
            .ok_or_else(|| format!("no '{BEGIN}' line"))?
            + BEGIN.len();
        let len = text[start..]
            .find(END)
            .ok_or_else(|| format!("no '{END}' line"))?;
        let b64: String = text[start..start + len]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64: {e}"))?;
        let raw: &[u8] = if der.len() == 44 && der[..12] == SPKI_PLAIN {
            &der[12..]
        } else if der.len() == 46 && der[..14] == SPKI_NULL {
            &der[14..]
        } else {
            return Err(format!(
                "not an Ed25519 SubjectPublicKeyInfo ({} bytes of DER)",
                der.len()
            ));
        };
        let raw: [u8; 32] = raw.try_into().expect("32 bytes by construction");
        PublicKey::from_raw(&raw)
    }

    /// Read [`PublicKey::from_pem`] from a file.
    pub fn from_pem_file(path: &Path) -> Result<PublicKey, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        PublicKey::from_pem(&text).map_err(|reason| Error::Pem {
            path: path.to_owned(),
            reason,
        })
    }

    pub fn keyid(&self) -> &str {
        &self.keyid
    }

    pub fn raw(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Verify a detached signature over `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = EdSignature::from_slice(sig) else {
            return false;
        };
        self.key.verify(msg, &sig).is_ok()
    }
}

/// The securesystemslib keyid of a raw Ed25519 key.
pub fn keyid(raw: &[u8; 32]) -> String {
    let shim = serde_json::json!({
        "keyid_hash_algorithms": ["sha256", "sha512"],
        "keytype": "ed25519",
        "keyval": {"public": hex::encode(raw)},
        "scheme": "ed25519",
    });
    let bytes = canonical_json(&shim).expect("no floats");
    hex::encode(Sha256::digest(bytes))
}

/// One entry of `signatures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub keyid: String,
    /// Hex as in the file (decoded at verification; bad hex fails verification).
    pub sig: String,
}

/// A parsed in-toto link.
#[derive(Debug, Clone)]
pub struct Link {
    /// The `signed` object as read.
    pub signed: Value,
    pub signatures: Vec<Signature>,
    /// `signed.name`, e.g. `rebuild foo-1-1-x86_64.pkg.tar.zst`.
    pub name: String,
    /// `signed.products`: file name → algorithm → hex digest.
    pub products: BTreeMap<String, BTreeMap<String, String>>,
    /// Canonical JSON of `signed`: the signed bytes.
    pub signed_bytes: Vec<u8>,
}

/// What one key says about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// `count` signatures matched the key and all verified.
    Valid { count: usize },
    /// No signature has this key's keyid (nor verifies with it).
    NotSigned,
    /// A signature carrying this key's keyid does not verify.
    Invalid,
}

/// What the artifact file says about the link's product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProductCheck {
    /// Every sha256/sha512 the product lists matches the file.
    Match {
        name: String,
        algorithms: Vec<String>,
    },
    /// No product named after the file.
    Missing { name: String, products: Vec<String> },
    /// The product has neither sha256 nor sha512.
    NoDigest { name: String },
    Mismatch {
        name: String,
        algorithm: String,
        link: String,
        file: String,
    },
}

impl ProductCheck {
    pub fn ok(&self) -> bool {
        matches!(self, ProductCheck::Match { .. })
    }
}

impl fmt::Display for ProductCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProductCheck::Match { name, algorithms } => {
                write!(f, "product {name}: {} match", algorithms.join(", "))
            }
            ProductCheck::Missing { name, products } => write!(
                f,
                "product {name} not in link (products: {})",
                if products.is_empty() {
                    "none".to_string()
                } else {
                    products.join(", ")
                }
            ),
            ProductCheck::NoDigest { name } => {
                write!(f, "product {name} has no sha256 or sha512")
            }
            ProductCheck::Mismatch {
                name,
                algorithm,
                link,
                file,
            } => write!(
                f,
                "product {name} {algorithm} mismatch: link {link}, file {file}"
            ),
        }
    }
}

fn link_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Link {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

impl Link {
    /// Parse link JSON; `path` only names the input in errors.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Link, Error> {
        let v: Value = serde_json::from_slice(bytes).map_err(|source| Error::Json {
            path: path.to_owned(),
            source,
        })?;
        let signed = v
            .get("signed")
            .filter(|s| s.is_object())
            .ok_or_else(|| link_err(path, "no \"signed\" object"))?
            .clone();
        match signed.get("_type").and_then(Value::as_str) {
            Some("link") => {}
            Some(t) => return Err(link_err(path, format!("_type is {t:?}, not \"link\""))),
            None => return Err(link_err(path, "no signed._type")),
        }
        let name = signed
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut products = BTreeMap::new();
        match signed.get("products") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (file, hashes) in m {
                    let hashes = hashes.as_object().ok_or_else(|| {
                        link_err(path, format!("product {file} is not an object"))
                    })?;
                    let mut h = BTreeMap::new();
                    for (alg, d) in hashes {
                        let d = d.as_str().ok_or_else(|| {
                            link_err(path, format!("product {file} {alg} is not a string"))
                        })?;
                        h.insert(alg.clone(), d.to_ascii_lowercase());
                    }
                    products.insert(file.clone(), h);
                }
            }
            Some(_) => return Err(link_err(path, "signed.products is not an object")),
        }
        let sigs = v
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| link_err(path, "no \"signatures\" array"))?;
        let mut signatures = Vec::new();
        for s in sigs {
            let keyid = s.get("keyid").and_then(Value::as_str);
            let sig = s.get("sig").and_then(Value::as_str);
            match (keyid, sig) {
                (Some(k), Some(g)) => signatures.push(Signature {
                    keyid: k.to_ascii_lowercase(),
                    sig: g.to_string(),
                }),
                _ => return Err(link_err(path, "a signature lacks keyid or sig")),
            }
        }
        let signed_bytes = canonical_json(&signed).map_err(|e| link_err(path, e.to_string()))?;
        Ok(Link {
            signed,
            signatures,
            name,
            products,
            signed_bytes,
        })
    }

    /// Read and [`Link::parse`] a file.
    pub fn from_file(path: &Path) -> Result<Link, Error> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Link::parse(&bytes, path)
    }

    /// Check every signature that matches `key`: by keyid, or, when none carries its keyid,
    /// any signature that verifies with it (a signer computing keyids differently).
    pub fn check_key(&self, key: &PublicKey) -> KeyCheck {
        let verifies = |s: &Signature| {
            hex::decode(&s.sig)
                .map(|sig| key.verify(&self.signed_bytes, &sig))
                .unwrap_or(false)
        };
        let by_id: Vec<&Signature> = self
            .signatures
            .iter()
            .filter(|s| s.keyid == key.keyid)
            .collect();
        if by_id.is_empty() {
            let count = self.signatures.iter().filter(|s| verifies(s)).count();
            return if count > 0 {
                KeyCheck::Valid { count }
            } else {
                KeyCheck::NotSigned
            };
        }
        if by_id.iter().all(|s| verifies(s)) {
            KeyCheck::Valid { count: by_id.len() }
        } else {
            KeyCheck::Invalid
        }
    }

    /// Check the product named after `artifact`'s file name against the file (streamed).
    pub fn check_artifact(&self, artifact: &Path) -> Result<ProductCheck, Error> {
        let name = artifact
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let io = |source| Error::Io {
            path: artifact.to_owned(),
            source,
        };
        let mut file = File::open(artifact).map_err(io)?;
        let Some(want) = self.products.get(&name) else {
            return Ok(ProductCheck::Missing {
                name,
                products: self.products.keys().cloned().collect(),
            });
        };
        let (mut s256, mut s512) = (Sha256::new(), Sha512::new());
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            s256.update(&buf[..n]);
            s512.update(&buf[..n]);
        }
        let got: [(&str, String); 2] = [
            ("sha256", hex::encode(s256.finalize())),
            ("sha512", hex::encode(s512.finalize())),
        ];
        let mut algorithms = Vec::new();
        for (alg, file_hex) in got {
            if let Some(link_hex) = want.get(alg) {
                if *link_hex != file_hex {
                    return Ok(ProductCheck::Mismatch {
                        name,
                        algorithm: alg.to_string(),
                        link: link_hex.clone(),
                        file: file_hex,
                    });
                }
                algorithms.push(alg.to_string());
            }
        }
        if algorithms.is_empty() {
            return Ok(ProductCheck::NoDigest { name });
        }
        Ok(ProductCheck::Match { name, algorithms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> PathBuf {
        repro_testkit::samples().join("rebuilderd")
    }

    fn sample_link() -> PathBuf {
        samples().join("attestations/librust-as-slice-dev_0.2.1-1+b2_amd64.in-toto.link")
    }

    #[test]
    fn canonical_escapes_and_sorting() {
        let v: Value =
            serde_json::from_str(r#"{"b":[1,-2,null,true],"a":"x\"\\\n\u0001é/<","A":{}}"#)
                .unwrap();
        assert_eq!(
            String::from_utf8(canonical_json(&v).unwrap()).unwrap(),
            "{\"A\":{},\"a\":\"x\\\"\\\\\\n\\u0001é/<\",\"b\":[1,-2,null,true]}"
        );
        let f: Value = serde_json::from_str("{\"a\":1.5}").unwrap();
        assert!(canonical_json(&f).is_err());
    }

    #[test]
    fn sample_canonical_matches_python() {
        let path = sample_link();
        let link = Link::from_file(&path).unwrap();
        let py = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import json,sys; l=json.load(open(sys.argv[1],'rb')); \
                 sys.stdout.buffer.write(json.dumps(l['signed'],sort_keys=True,\
                 separators=(',',':'),ensure_ascii=False).encode())",
            )
            .arg(&path)
            .output()
            .expect("python3");
        assert!(py.status.success());
        assert_eq!(link.signed_bytes, py.stdout);
    }

    #[test]
    fn sample_verifies_with_its_key() {
        let link = Link::from_file(&sample_link()).unwrap();
        let key =
            PublicKey::from_pem_file(&samples().join("pubkeys/reproduce-debian-net-amd64.pub"))
                .unwrap();
        assert_eq!(
            key.keyid(),
            "2980aa6249ad89ce0ef0f0f5e6d0896214301b2818aad33443444cf460df6ed6"
        );
        assert_eq!(link.check_key(&key), KeyCheck::Valid { count: 1 });
        assert_eq!(
            link.name,
            "rebuild librust-as-slice-dev_0.2.1-1+b2_amd64.deb"
        );

        let mut tampered = link.clone();
        tampered.signed_bytes[20] ^= 1;
        assert_eq!(tampered.check_key(&key), KeyCheck::Invalid);

        let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        let other = PublicKey::from_raw(&other.to_bytes()).unwrap();
        assert_eq!(link.check_key(&other), KeyCheck::NotSigned);
    }

    #[test]
    fn pem_forms() {
        let raw =
            PublicKey::from_pem_file(&samples().join("pubkeys/reproduce-debian-net-amd64.pub"))
                .unwrap()
                .raw();
        let mut plain = SPKI_PLAIN.to_vec();
        plain.extend_from_slice(&raw);
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&plain)
        );
        assert_eq!(PublicKey::from_pem(&pem).unwrap().raw(), raw);
        assert!(PublicKey::from_pem("nonsense").is_err());
        assert!(
            PublicKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .is_err()
        );
    }

    #[test]
    fn artifact_checks() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"hello";
        let name = "foo-1-1-any.pkg.tar.zst";
        let link_json = serde_json::json!({
            "signed": {"_type": "link", "name": format!("rebuild {name}"),
                "products": {name: {
                    "sha256": hex::encode(Sha256::digest(data)),
                    "sha512": hex::encode(Sha512::digest(data))}}},
            "signatures": []
        });
        let link = Link::parse(link_json.to_string().as_bytes(), Path::new("l")).unwrap();
        let f = dir.path().join(name);
        std::fs::write(&f, data).unwrap();
        assert!(link.check_artifact(&f).unwrap().ok());
        std::fs::write(&f, b"hellO").unwrap();
        assert!(matches!(
            link.check_artifact(&f).unwrap(),
            ProductCheck::Mismatch { .. }
        ));
        let g = dir.path().join("other");
        std::fs::write(&g, data).unwrap();
        assert!(matches!(
            link.check_artifact(&g).unwrap(),
            ProductCheck::Missing { .. }
        ));
    }

    #[test]
    fn malformed_links() {
        for bad in [
            "{",
            "[]",
            r#"{"signed":{"_type":"layout"},"signatures":[]}"#,
            r#"{"signed":{"_type":"link"}}"#,
            r#"{"signed":{"_type":"link","products":{"a":{"sha256":1}}},"signatures":[]}"#,
        ] {
            assert!(
                Link::parse(bad.as_bytes(), Path::new("x")).is_err(),
                "{bad}"
            );
        }
    }
}
