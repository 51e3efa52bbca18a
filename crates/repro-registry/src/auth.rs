//! Credentials and `WWW-Authenticate` challenges.
//!
//! Credentials come from the files containers tools and Docker read, in skopeo's order:
//! `$REGISTRY_AUTH_FILE`, `${XDG_RUNTIME_DIR}/containers/auth.json`, `~/.docker/config.json`.
//! Credential helpers (`credHelpers`, `credsStore`) are not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use crate::RegistryError;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, not even in debug output.
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parse `user:pass` as `--creds` takes it.
    pub fn parse(s: &str) -> Result<Self, RegistryError> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.into(),
                password: p.into(),
            }),
            _ => Err(RegistryError::Config(
                "credentials must be given as USER:PASSWORD".into(),
            )),
        }
    }
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The auth files to consult, in order, from the environment.
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(p).join("containers/auth.json"));
    }
    if let Some(h) = std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        v.push(PathBuf::from(h).join(".docker/config.json"));
    }
    v
}

/// Look up credentials for `registry` (as the user named it, `docker.io` for Docker Hub) and
/// `repository`. The most specific key wins (`quay.io/org/repo` over `quay.io`), as in
/// containers-auth.json(5). A missing file is skipped; a malformed one is an error.
pub fn lookup(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credentials>, RegistryError> {
    for f in files {
        let bytes = match std::fs::read(f) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(RegistryError::Config(format!("{}: {e}", f.display())));
            }
        };
        let parsed: AuthFile = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryError::Config(format!("{}: malformed auth file: {e}", f.display()))
        })?;
        if let Some(c) = find_in(&parsed, registry, repository, f)? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

fn find_in(
    file: &AuthFile,
    registry: &str,
    repository: &str,
    path: &Path,
) -> Result<Option<Credentials>, RegistryError> {
    let mut keys = Vec::new();
    let mut repo = repository.to_string();
    loop {
        keys.push(format!("{registry}/{repo}"));
        match repo.rfind('/') {
            Some(i) => repo.truncate(i),
            None => break,
        }
    }
    keys.push(registry.to_string());
    keys.push(format!("https://{registry}"));
    keys.push(format!("http://{registry}"));
    if registry == "docker.io" {
        keys.extend(
            [
                "https://index.docker.io/v1/",
                "index.docker.io",
                "registry-1.docker.io",
            ]
            .map(String::from),
        );
    }
    for k in keys {
        // Docker writes keys with a trailing slash or path on occasion.
        let entry = file
            .auths
            .get(&k)
            .or_else(|| file.auths.get(&format!("{k}/")));
        let Some(e) = entry else { continue };
        if let (Some(u), Some(p)) = (&e.username, &e.password) {
            return Ok(Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }));
        }
        if let Some(a) = &e.auth {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .map_err(|e| {
                    RegistryError::Config(format!(
                        "{}: auth for {k:?} is not base64: {e}",
                        path.display()
                    ))
                })?;
            let s = String::from_utf8(raw).map_err(|_| {
                RegistryError::Config(format!("{}: auth for {k:?} is not UTF-8", path.display()))
            })?;
            return Credentials::parse(&s).map(Some).map_err(|_| {
                RegistryError::Config(format!(
                    "{}: auth for {k:?} is not user:password",
                    path.display()
                ))
            });
        }
    }
    Ok(None)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse one challenge (`Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let params = parse_params(rest);
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let realm = params.get("realm")?.clone();
        return Some(Challenge::Bearer {
            realm,
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        });
    }
    None
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b',' || b[i] == b' ') {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' {
            i += 1;
        }
        let key = s[ks..i].trim().to_ascii_lowercase();
        i += 1;
        if i > b.len() {
            break;
        }
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = s[vs..i].trim().to_string();
        }
        if !key.is_empty() {
            out.insert(key, val);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/archlinux:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/archlinux:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn auth_file_most_specific_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        std::fs::write(
            &f,
            format!(
                r#"{{"auths":{{"quay.io":{{"auth":"{}"}},"quay.io/org/repo":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"auth":"{}"}}}}}}"#,
                enc("general:1"),
                enc("specific:2"),
                enc("hub:3")
            ),
        )
        .unwrap();
        let files = vec![dir.path().join("missing.json"), f.clone()];
        let c = lookup(&files, "quay.io", "org/repo").unwrap().unwrap();
        assert_eq!(c.username, "specific");
        let c = lookup(&files, "quay.io", "other/x").unwrap().unwrap();
        assert_eq!(c.username, "general");
        let c = lookup(&files, "docker.io", "library/archlinux")
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("hub", "3"));
        assert!(lookup(&files, "ghcr.io", "a/b").unwrap().is_none());
        std::fs::write(&f, "{not json").unwrap();
        let err = lookup(&files, "quay.io", "org/repo")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auth.json") && err.contains("malformed"),
            "{err}"
        );
    }

    #[test]
    fn debug_hides_password() {
        let c = Credentials::parse("u:secret").unwrap();
        assert!(!format!("{c:?}").contains("secret"));
    }
}
