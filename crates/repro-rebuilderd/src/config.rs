//! `rebuilders.toml`: which rebuilders to ask and which keys to trust for them.
//!
//! ```toml
//! quorum = 2                                  # optional default for --quorum
//!
//! [[rebuilder]]
//! url = "https://reproducible.archlinux.org"
//! keys = ["""
//! -----BEGIN PUBLIC KEY-----
//! MCowBQYDK2VwAyEA…
//! -----END PUBLIC KEY-----
//! """]                                        # optional: pinned keys (PEM), or
//! key_files = ["/etc/repro-image/archlinux.pem"]
//! ```
//!
//! Pinned keys win over anything the rebuilder serves. Without a config file (or with one
//! that lists no rebuilder) the shipped defaults, [`DEFAULT_REBUILDERS`], are used, with keys
//! learned on first use (see [`crate::keys`]).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::attestation::PublicKey;

/// The public Arch Linux rebuilders (as listed by the Arch reproducible-builds pages).
pub const DEFAULT_REBUILDERS: [&str; 5] = [
    "https://reproducible.archlinux.org",
    "https://r-b.engineering.nyu.edu",
    "https://reproducible.crypto-lab.ch",
    "https://wolfpit.net/rebuild",
    "https://rebuilder.pitastrudl.me",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    quorum: Option<usize>,
    #[serde(default)]
    rebuilder: Vec<RawRebuilder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRebuilder {
    url: String,
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_files: Vec<PathBuf>,
}

/// One configured rebuilder.
#[derive(Debug, Clone)]
pub struct RebuilderConfig {
    /// Normalised: no trailing `/`.
    pub url: String,
    pub pinned: Vec<PublicKey>,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where it was read from (`None`: nothing was read).
    pub path: Option<PathBuf>,
    pub quorum: Option<usize>,
    pub rebuilders: Vec<RebuilderConfig>,
}

/// `https://host/path/` → `https://host/path`.
pub fn normalize_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

impl Config {
    /// Parse config text; `path` names the file in errors and anchors relative `key_files`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.quorum == Some(0) {
            return Err(invalid("quorum must be at least 1".into()));
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let mut rebuilders: Vec<RebuilderConfig> = Vec::new();
        for r in raw.rebuilder {
            let url = normalize_url(&r.url);
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(format!(
                    "rebuilder url {:?}: expected http(s)://…",
                    r.url
                )));
            }
            if rebuilders.iter().any(|x| x.url == url) {
                return Err(invalid(format!("rebuilder {url} is listed twice")));
            }
            let mut pinned = Vec::new();
            for (i, pem) in r.keys.iter().enumerate() {
                pinned.push(
                    PublicKey::from_pem(pem)
                        .map_err(|e| invalid(format!("rebuilder {url}: keys[{i}]: {e}")))?,
                );
            }
            for f in &r.key_files {
                let f = if f.is_absolute() {
                    f.clone()
                } else {
                    base.join(f)
                };
                pinned.push(
                    PublicKey::from_pem_file(&f)
                        .map_err(|e| invalid(format!("rebuilder {url}: key file: {e}")))?,
                );
            }
            rebuilders.push(RebuilderConfig { url, pinned });
        }
        Ok(Config {
            path: Some(path.to_owned()),
            quorum: raw.quorum,
            rebuilders,
        })
    }

    /// Read `path`; `Ok(None)` when it does not exist.
    pub fn load(path: &Path) -> Result<Option<Config>, ConfigError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
                    path: path.to_owned(),
                    message: "not UTF-8".into(),
                })?;
                Config::parse(&text, path).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ConfigError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The pinned keys for `url`, if the config names it.
    pub fn pinned(&self, url: &str) -> Option<&[PublicKey]> {
        let url = normalize_url(url);
        self.rebuilders
            .iter()
            .find(|r| r.url == url && !r.pinned.is_empty())
            .map(|r| r.pinned.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCwwBwYDK2VwBQADIQD7Z+bUcy6vE5A5wngcT6NvJiOa4ryGtKiElsBX3cS6ig==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn parses_urls_keys_and_quorum() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("k.pem"), PEM).unwrap();
        let text = format!(
            "quorum = 2\n[[rebuilder]]\nurl = \"http://a/\"\nkeys = [\"\"\"\n{PEM}\"\"\"]\n\
             [[rebuilder]]\nurl = \"https://b/rebuild\"\nkey_files = [\"k.pem\"]\n[[rebuilder]]\nurl = \"http://c\"\n"
        );
        let c = Config::parse(&text, &d.path().join("rebuilders.toml")).unwrap();
        assert_eq!(c.quorum, Some(2));
        let urls: Vec<_> = c.rebuilders.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(urls, ["http://a", "https://b/rebuild", "http://c"]);
        assert_eq!(c.pinned("http://a/").unwrap().len(), 1);
        assert_eq!(
            c.pinned("https://b/rebuild").unwrap()[0].keyid(),
            c.pinned("http://a").unwrap()[0].keyid()
        );
        assert!(c.pinned("http://c").is_none());
    }

    #[test]
    fn errors_name_the_file_and_the_problem() {
        let p = Path::new("/etc/x/rebuilders.toml");
        for (text, want) in [
            ("[[rebuilder]]\nurl = \"ftp://x\"\n", "expected http"),
            (
                "[[rebuilder]]\nurl = \"http://x\"\nkeys = [\"nope\"]\n",
                "keys[0]",
            ),
            (
                "[[rebuilder]]\nurl = \"http://x\"\n[[rebuilder]]\nurl = \"http://x/\"\n",
                "twice",
            ),
            (
                "[[rebuilder]]\nurl = \"http://x\"\nkye = 1\n",
                "unknown field",
            ),
            ("quorum = 0\n", "at least 1"),
            ("[[rebuilder]\n", "rebuilders.toml"),
            (
                "[[rebuilder]]\nurl = \"http://x\"\nkey_files = [\"missing.pem\"]\n",
                "missing.pem",
            ),
        ] {
            let e = Config::parse(text, p).unwrap_err().to_string();
            assert!(
                e.contains("/etc/x/rebuilders.toml") && e.contains(want),
                "{text:?}: {e}"
            );
        }
    }
}
