//! Image references in skopeo's transport spelling.
//!
//! `docker://[registry[:port]/]repo[:tag][@digest]`, `oci:DIR[:ref]`,
//! `docker-archive:FILE[:ref]`, `rootfs:FILE`; a reference without a transport is a Docker
//! reference (Docker Hub unless a registry is named), as `docker pull` reads it.

use std::fmt;
use std::path::PathBuf;

use crate::digest::{Digest, DigestError, parse_verifiable};

pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API actually lives.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("invalid image reference {input:?}: {source}")]
    Digest { input: String, source: DigestError },
    #[error(
        "unknown transport {transport:?} in {input:?} (known: docker://, oci:, docker-archive:, rootfs:)"
    )]
    UnknownTransport { input: String, transport: String },
}

/// A reference to an image in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DockerRef {
    /// Registry as named by the user, normalised (`docker.io` for Docker Hub).
    pub registry: String,
    /// Repository path (`library/archlinux` on Docker Hub).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl DockerRef {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &str| ReferenceError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => {
                let d = parse_verifiable(d).map_err(|source| ReferenceError::Digest {
                    input: input.to_string(),
                    source,
                })?;
                (r, Some(d))
            }
            None => (input, None),
        };
        // A tag is after the last ':' that follows the last '/', so a port is not a tag.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(bad(&format!("invalid tag {tag:?}")));
                }
                (&rest[..last_slash + i], Some(tag.to_string()))
            }
            None => (rest, None),
        };
        if name.len() > MAX_NAME_LEN {
            return Err(bad("name longer than 255 characters"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if !valid_registry(&registry) {
            return Err(bad(&format!("invalid registry {registry:?}")));
        }
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if path.is_empty() || !path.split('/').all(valid_path_component) {
            return Err(bad(&format!(
                "invalid repository {path:?} (lowercase letters, digits and . _ __ - separators)"
            )));
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(DockerRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host[:port] to talk to.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The tag to resolve when neither tag nor digest is given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }

    /// What to ask the registry for: the digest when there is one (it wins over the tag).
    pub fn manifest_reference(&self) -> String {
        match &self.digest {
            Some(d) => d.to_string(),
            None => self.tag_or_latest().to_string(),
        }
    }

    /// `registry/repository` as used in auth scopes and logs.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for DockerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (r, None),
    };
    if let Some(p) = port
        && (p.is_empty() || p.parse::<u16>().is_err())
    {
        return false;
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// An image in one of the transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Docker(DockerRef),
    /// An OCI image layout; `reference` selects an entry of index.json by its
    /// `org.opencontainers.image.ref.name` annotation.
    Oci {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// A `docker save` tarball; `reference` selects a RepoTags entry.
    DockerArchive {
        path: PathBuf,
        reference: Option<String>,
    },
    /// A bare rootfs tarball (plain, gzip, zstd or xz), modelled as a one-layer image.
    Rootfs {
        path: PathBuf,
    },
}

impl ImageRef {
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &str| ReferenceError::Invalid {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = input.strip_prefix("docker://") {
            return DockerRef::parse(rest).map(ImageRef::Docker);
        }
        if let Some((transport, rest)) = input.split_once(':') {
            // Path and reference are split at the first ':', as containers/image does.
            let split = |rest: &str| -> Result<(PathBuf, Option<String>), ReferenceError> {
                let (p, r) = match rest.split_once(':') {
                    Some((p, r)) => (p, Some(r.to_string())),
                    None => (rest, None),
                };
                if p.is_empty() {
                    return Err(bad("empty path"));
                }
                if r.as_deref() == Some("") {
                    return Err(bad("empty reference after ':'"));
                }
                Ok((PathBuf::from(p), r))
            };
            match transport {
                "oci" => {
                    let (dir, reference) = split(rest)?;
                    return Ok(ImageRef::Oci { dir, reference });
                }
                "docker-archive" => {
                    let (path, reference) = split(rest)?;
                    return Ok(ImageRef::DockerArchive { path, reference });
                }
                "rootfs" => {
                    if rest.is_empty() {
                        return Err(bad("empty path"));
                    }
                    return Ok(ImageRef::Rootfs {
                        path: PathBuf::from(rest),
                    });
                }
                "docker" => return Err(bad("the docker transport is spelled docker://")),
                "oci-archive" | "dir" | "containers-storage" | "docker-daemon" | "sif"
                | "tarball" => {
                    return Err(ReferenceError::UnknownTransport {
                        input: input.to_string(),
                        transport: transport.to_string(),
                    });
                }
                _ => {}
            }
        }
        // No transport: a Docker reference (`archlinux:latest`, `host:5000/x`).
        DockerRef::parse(input).map(ImageRef::Docker)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Docker(d) => write!(f, "docker://{d}"),
            ImageRef::Oci { dir, reference } => {
                write!(f, "oci:{}", dir.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            ImageRef::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                if let Some(r) = reference {
                    write!(f, ":{r}")?;
                }
                Ok(())
            }
            ImageRef::Rootfs { path } => write!(f, "rootfs:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2dbd72d1e5510e047db7f441bf9069e9c53391b87e04e5bee3f379cd03cec060";

    fn docker(s: &str) -> DockerRef {
        match ImageRef::parse(s).unwrap() {
            ImageRef::Docker(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_hub_names() {
        let d = docker("archlinux");
        assert_eq!(
            (d.registry.as_str(), d.repository.as_str()),
            ("docker.io", "library/archlinux")
        );
        assert_eq!(d.tag, None);
        assert_eq!(d.manifest_reference(), "latest");
        assert_eq!(d.api_host(), "registry-1.docker.io");
        let d = docker("archlinux:latest");
        assert_eq!(d.tag.as_deref(), Some("latest"));
        let d = docker(&format!("archlinux@{D}"));
        assert_eq!(d.manifest_reference(), D);
        let d = docker("archlinux/archlinux:repro");
        assert_eq!(d.repository, "archlinux/archlinux");
        assert_eq!(d.tag.as_deref(), Some("repro"));
        assert_eq!(docker("docker://archlinux"), docker("archlinux"));
        assert_eq!(
            docker("docker://index.docker.io/library/archlinux:base"),
            docker("archlinux:base")
        );
    }

    #[test]
    fn registry_with_port_is_not_a_tag() {
        let d = docker("docker://127.0.0.1:5000/arch/linux");
        assert_eq!(d.registry, "127.0.0.1:5000");
        assert_eq!(d.repository, "arch/linux");
        assert_eq!(d.tag, None);
        let d = docker("localhost/x:1.0");
        assert_eq!(d.registry, "localhost");
        assert_eq!(d.tag.as_deref(), Some("1.0"));
        let d = docker("ghcr.io/archlinux/archlinux:repro-2026.11.25");
        assert_eq!(
            d.to_string(),
            "ghcr.io/archlinux/archlinux:repro-2026.11.25"
        );
    }

    #[test]
    fn tag_and_digest_digest_wins() {
        let d = docker(&format!("quay.io/a/b:latest@{D}"));
        assert_eq!(d.tag.as_deref(), Some("latest"));
        assert_eq!(d.manifest_reference(), D);
    }

    #[test]
    fn invalid_references() {
        for bad in [
            "",
            "Archlinux",
            "docker://",
            "arch linux",
            "a//b",
            "a:b:c",
            "archlinux@sha256:1234",
            "archlinux:-bad",
            "docker:archlinux",
            "x..y/z",
            "host:99999/z",
            "oci:",
            "rootfs:",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(
            ImageRef::parse("dir:/tmp/x"),
            Err(ReferenceError::UnknownTransport { .. })
        ));
    }

    #[test]
    fn path_transports() {
        assert_eq!(
            ImageRef::parse("oci:/tmp/l:repro").unwrap(),
            ImageRef::Oci {
                dir: "/tmp/l".into(),
                reference: Some("repro".into())
            }
        );
        assert_eq!(
            ImageRef::parse("docker-archive:img.tar").unwrap(),
            ImageRef::DockerArchive {
                path: "img.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            ImageRef::parse("rootfs:/x/repro.tar.zst").unwrap(),
            ImageRef::Rootfs {
                path: "/x/repro.tar.zst".into()
            }
        );
        for s in [
            "oci:/tmp/l:repro",
            "docker-archive:a.tar:x:y",
            "rootfs:/r.tar",
        ] {
            assert_eq!(ImageRef::parse(s).unwrap().to_string(), s);
        }
    }
}
