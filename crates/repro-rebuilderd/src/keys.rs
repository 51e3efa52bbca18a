//! Trust on first use for rebuilder signing keys, as ssh's `known_hosts`.
//!
//! A key fetched from a rebuilder itself (`/api/v1/meta/public-keys`) is only as good as the
//! connection it came over. The first time a rebuilder is seen its keys are remembered; later
//! runs accept only keys already remembered for it, and a key that is not is an error naming
//! the rebuilder and the file (the user removes the entry when the change is expected). A key
//! pinned in the configuration is not looked up here at all.
//!
//! File format (canonical JSON, keys sorted, one file per user):
//! `{"rebuilders":{"URL":{"keys":[{"keyid":HEX,"public":HEX32}]}},"version":1}`

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::attestation::PublicKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "rebuilder {url}: its signing key changed: {path} remembers {}, the rebuilder now serves {}; \
         if the rebuilder really rotated its key, remove its entry from {path} (or pin the new key \
         in rebuilders.toml)",
        known.join(", "), now.join(", ")
    )]
    Changed {
        url: String,
        path: PathBuf,
        known: Vec<String>,
        now: Vec<String>,
    },
    #[error("{path}: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a rebuilder's keys came to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Given in the configuration.
    Pinned,
    /// Fetched from the rebuilder and equal to what was remembered.
    Known,
    /// Fetched from the rebuilder and seen for the first time (now remembered).
    FirstUse,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct KnownKey {
    keyid: String,
    public: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Entry {
    keys: Vec<KnownKey>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileFormat {
    rebuilders: BTreeMap<String, Entry>,
    version: u32,
}

/// The remembered keys.
#[derive(Debug)]
pub struct KnownKeys {
    path: PathBuf,
    file: FileFormat,
    dirty: bool,
}

impl KnownKeys {
    /// Read `path` (a missing file is an empty store).
    pub fn load(path: &Path) -> Result<KnownKeys, KeyError> {
        let file = match fs::read(path) {
            Ok(bytes) => {
                let f: FileFormat =
                    serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed {
                        path: path.to_owned(),
                        message: format!("not a known-keys file: {e}"),
                    })?;
                if f.version != 1 {
                    return Err(KeyError::Malformed {
                        path: path.to_owned(),
                        message: format!("unsupported version {}", f.version),
                    });
                }
                f
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileFormat {
                version: 1,
                ..FileFormat::default()
            },
            Err(source) => {
                return Err(KeyError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Ok(KnownKeys {
            path: path.to_owned(),
            file,
            dirty: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accept `keys` served by rebuilder `url` if every one is remembered for it; remember
    /// them if the rebuilder is new; otherwise [`KeyError::Changed`].
    pub fn check(&mut self, url: &str, keys: &[PublicKey]) -> Result<Trust, KeyError> {
        let now: Vec<KnownKey> = keys
            .iter()
            .map(|k| KnownKey {
                keyid: k.keyid().to_string(),
                public: hex::encode(k.raw()),
            })
            .collect();
        match self.file.rebuilders.get(url) {
            Some(entry) => {
                if now.iter().all(|k| entry.keys.contains(k)) {
                    Ok(Trust::Known)
                } else {
                    Err(KeyError::Changed {
                        url: url.to_string(),
                        path: self.path.clone(),
                        known: entry.keys.iter().map(|k| k.keyid.clone()).collect(),
                        now: now.iter().map(|k| k.keyid.clone()).collect(),
                    })
                }
            }
            None => {
                let mut keys = now;
                keys.sort_by(|a, b| a.keyid.cmp(&b.keyid));
                keys.dedup();
                self.file.rebuilders.insert(url.to_string(), Entry { keys });
                self.dirty = true;
                Ok(Trust::FirstUse)
            }
        }
    }

    /// Write the file if anything was learned (atomically; parent directories created).
    pub fn save(&self) -> Result<(), KeyError> {
        if !self.dirty {
            return Ok(());
        }
        let io = |source| KeyError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io)?;
        // serde_json writes struct fields in declaration order and BTreeMap keys sorted:
        // `rebuilders` before `version`, URLs sorted, so the text is canonical.
        let mut bytes = serde_json::to_vec_pretty(&self.file).map_err(|e| KeyError::Malformed {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PublicKey {
        let sk = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        PublicKey::from_raw(&sk.verifying_key().to_bytes()).unwrap()
    }

    #[test]
    fn first_use_then_known_then_changed() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("sub/known.json");
        let mut k = KnownKeys::load(&path).unwrap();
        assert_eq!(k.check("http://rb1", &[key(1)]).unwrap(), Trust::FirstUse);
        assert_eq!(k.check("http://rb1", &[key(1)]).unwrap(), Trust::Known);
        k.save().unwrap();
        let first = fs::read(&path).unwrap();

        let mut k = KnownKeys::load(&path).unwrap();
        assert_eq!(k.check("http://rb1", &[key(1)]).unwrap(), Trust::Known);
        let e = k.check("http://rb1", &[key(2)]).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("http://rb1") && msg.contains("changed"),
            "{msg}"
        );
        assert!(
            msg.contains(key(1).keyid()) && msg.contains(key(2).keyid()),
            "{msg}"
        );
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        // An added key is a change too: it was never trusted.
        assert!(k.check("http://rb1", &[key(1), key(2)]).is_err());
        // Nothing learned: the file is untouched.
        k.save().unwrap();
        assert_eq!(fs::read(&path).unwrap(), first);
    }

    #[test]
    fn file_is_canonical_whatever_the_order_learned() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a.json"), d.path().join("b.json"));
        let mut ka = KnownKeys::load(&a).unwrap();
        ka.check("http://x", &[key(1)]).unwrap();
        ka.check("http://y", &[key(3), key(2)]).unwrap();
        ka.save().unwrap();
        let mut kb = KnownKeys::load(&b).unwrap();
        kb.check("http://y", &[key(2), key(3)]).unwrap();
        kb.check("http://x", &[key(1)]).unwrap();
        kb.save().unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    }

    #[test]
    fn malformed_file_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.json");
        fs::write(&p, "{not json").unwrap();
        let e = KnownKeys::load(&p).unwrap_err();
        assert!(e.to_string().contains(&p.display().to_string()), "{e}");
    }
}
