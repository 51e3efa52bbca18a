//! Media types and compression, recognised by the names registries use and by magic bytes.

use serde::Serialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_LAYER_FOREIGN_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Accept header for manifest requests: every manifest kind we can read, none we cannot.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused, as containerd and the distribution spec advise.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// Image configs are read into memory; larger ones are refused.
pub const MAX_CONFIG_BYTES: u64 = 64 * 1024 * 1024;

/// The kinds of top-level document a reference can resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestKind {
    OciIndex,
    DockerList,
    OciManifest,
    DockerManifest,
}

impl ManifestKind {
    pub fn from_media_type(mt: &str) -> Option<Self> {
        // Registries may add parameters such as "; charset=utf-8".
        let mt = mt.split(';').next().unwrap_or("").trim();
        match mt {
            OCI_INDEX => Some(Self::OciIndex),
            DOCKER_LIST => Some(Self::DockerList),
            OCI_MANIFEST => Some(Self::OciManifest),
            DOCKER_MANIFEST => Some(Self::DockerManifest),
            _ => None,
        }
    }
    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciIndex => OCI_INDEX,
            Self::DockerList => DOCKER_LIST,
            Self::OciManifest => OCI_MANIFEST,
            Self::DockerManifest => DOCKER_MANIFEST,
        }
    }
    pub fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerList)
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Compression {
    /// Detect from the first bytes of a stream. Anything that is not a known compressor
    /// magic is `None` (plain tar); callers that need a tar check it separately.
    pub fn detect(magic: &[u8]) -> Self {
        match magic {
            [0x1f, 0x8b, ..] => Self::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Self::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Self::Xz,
            [b'B', b'Z', b'h', ..] => Self::Bzip2,
            _ => Self::None,
        }
    }
    /// What the media type claims; `None` when the media type says nothing (non-layer types).
    pub fn from_layer_media_type(mt: &str) -> Option<Self> {
        match mt {
            OCI_LAYER | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
                Some(Self::None)
            }
            OCI_LAYER_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_LAYER_FOREIGN_GZIP
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => Some(Self::Gzip),
            OCI_LAYER_ZSTD
            | DOCKER_LAYER_ZSTD
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Self::Zstd),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Xz => "xz",
            Self::Bzip2 => "bzip2",
        }
    }
}

/// Does this look like a POSIX/GNU tar header block ("ustar" magic at offset 257)?
pub fn looks_like_tar(block: &[u8]) -> bool {
    block.len() >= 263 && &block[257..262] == b"ustar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_not_names() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"\xfd7zXZ\0\0"), Compression::Xz);
        assert_eq!(Compression::detect(b"BZh9"), Compression::Bzip2);
        assert_eq!(Compression::detect(b"./\0\0"), Compression::None);
    }

    #[test]
    fn media_type_parameters_are_ignored() {
        assert_eq!(
            ManifestKind::from_media_type("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            Some(ManifestKind::OciIndex)
        );
        assert_eq!(ManifestKind::from_media_type("text/html"), None);
    }
}
