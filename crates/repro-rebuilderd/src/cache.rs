//! A small on-disk HTTP cache for rebuilder responses, one directory per rebuilder.
//!
//! Entries are keyed by the request URL (its sha256). Each is two files: `<key>.body` and
//! `<key>.json` (URL, validators, body sha256 and size). Both are written to a temporary file
//! and renamed; the metadata is written last and names the body's sha256, so a body without
//! matching metadata (a crash between the renames, a partial copy) is a miss, never a wrong
//! answer.
//!
//! Listings are revalidated (`If-Modified-Since` / `If-None-Match` when the rebuilder gave
//! `Last-Modified` / `ETag`; rebuilderd 0.28 itself sends neither, so a listing is then fetched
//! again). Attestations, logs and diffoscope output of a finished build never change and are
//! served from the cache without a request.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Validators;

#[derive(Debug, Clone)]
pub struct HttpCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    url: String,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    sha256: String,
    size: u64,
}

/// A cached response.
#[derive(Debug, Clone)]
pub struct Cached {
    pub validators: Validators,
    pub body: Vec<u8>,
}

impl HttpCache {
    /// The cache for rebuilder `base_url` under `root` (`root/<sha256(base_url)[..16]>/`).
    pub fn for_rebuilder(root: &Path, base_url: &str) -> HttpCache {
        let h = hex::encode(Sha256::digest(base_url.as_bytes()));
        HttpCache {
            dir: root.join(&h[..16]),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn key(url: &str) -> String {
        hex::encode(Sha256::digest(url.as_bytes()))
    }

    /// The entry for `url`, when present and intact.
    pub fn get(&self, url: &str) -> Option<Cached> {
        let k = Self::key(url);
        let meta: Meta =
            serde_json::from_slice(&fs::read(self.dir.join(format!("{k}.json"))).ok()?).ok()?;
        if meta.url != url {
            return None;
        }
        let body = fs::read(self.dir.join(format!("{k}.body"))).ok()?;
        if body.len() as u64 != meta.size || hex::encode(Sha256::digest(&body)) != meta.sha256 {
            return None;
        }
        Some(Cached {
            validators: Validators {
                last_modified: meta.last_modified,
                etag: meta.etag,
            },
            body,
        })
    }

    /// Store `body` for `url`. Errors are returned for the caller to report; a failed write
    /// leaves at worst an orphaned temporary file, never a wrong entry.
    pub fn put(&self, url: &str, validators: &Validators, body: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let k = Self::key(url);
        let meta = Meta {
            url: url.to_string(),
            last_modified: validators.last_modified.clone(),
            etag: validators.etag.clone(),
            sha256: hex::encode(Sha256::digest(body)),
            size: body.len() as u64,
        };
        let meta = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
        atomic_write(&self.dir, &format!("{k}.body"), body)?;
        atomic_write(&self.dir, &format!("{k}.json"), &meta)
    }
}

fn atomic_write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_entries_are_misses() {
        let d = tempfile::tempdir().unwrap();
        let c = HttpCache::for_rebuilder(d.path(), "http://rb");
        let url = "http://rb/api/v1/packages/binary?limit=1000";
        assert!(c.get(url).is_none());
        let v = Validators {
            last_modified: Some("Tue, 24 Nov 2026 10:00:00 GMT".into()),
            etag: None,
        };
        c.put(url, &v, b"{\"total\":0,\"records\":[]}").unwrap();
        let got = c.get(url).unwrap();
        assert_eq!(got.validators, v);
        assert_eq!(got.body, b"{\"total\":0,\"records\":[]}");
        // Another URL is another entry.
        assert!(c.get("http://rb/other").is_none());
        // A body changed behind the metadata's back is a miss, not a wrong answer.
        let k = HttpCache::key(url);
        fs::write(c.dir().join(format!("{k}.body")), b"{}").unwrap();
        assert!(c.get(url).is_none());
        // Metadata that is not JSON: a miss.
        fs::write(c.dir().join(format!("{k}.json")), b"{").unwrap();
        assert!(c.get(url).is_none());
    }

    #[test]
    fn rebuilders_get_separate_directories() {
        let d = tempfile::tempdir().unwrap();
        let a = HttpCache::for_rebuilder(d.path(), "http://a");
        let b = HttpCache::for_rebuilder(d.path(), "http://b");
        assert_ne!(a.dir(), b.dir());
    }
}
