//! The image model: index, manifest and config, each parsed from its exact bytes, which are
//! kept alongside (the bytes are the truth; the parsed form is a view).

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use serde::Serialize;

use crate::digest::{Digest, check_verifiable, sha256_of};
use crate::media::{self, Compression, MAX_MANIFEST_BYTES, ManifestKind};
use crate::platform::Platform;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what}: {size} bytes is over the {MAX_MANIFEST_BYTES}-byte limit for manifests")]
    TooLarge { what: String, size: u64 },
    #[error("{what}: unsupported media type {media_type:?}")]
    UnknownMediaType { what: String, media_type: String },
    #[error("{what}: malformed JSON: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{what}: no manifest for platform {want} (available: {available})")]
    NoPlatform {
        what: String,
        want: Platform,
        available: String,
    },
}

/// Bytes with their digest. Construction computes the sha256, so the two cannot disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Self {
        let digest = sha256_of(&bytes);
        Blob { bytes, digest }
    }
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// An index or manifest document as fetched.
// Only a handful exist at a time; boxing would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TopLevel {
    Index(IndexDoc),
    Manifest(ManifestDoc),
}

impl TopLevel {
    /// The document's exact bytes and digest.
    pub fn raw(&self) -> &Blob {
        match self {
            TopLevel::Index(i) => &i.raw,
            TopLevel::Manifest(m) => &m.raw,
        }
    }
    pub fn kind(&self) -> ManifestKind {
        match self {
            TopLevel::Index(i) => i.kind,
            TopLevel::Manifest(m) => m.kind,
        }
    }
}

#[derive(Debug, Clone)]
pub struct IndexDoc {
    pub raw: Blob,
    pub kind: ManifestKind,
    pub index: ImageIndex,
}

#[derive(Debug, Clone)]
pub struct ManifestDoc {
    pub raw: Blob,
    pub kind: ManifestKind,
    pub manifest: ImageManifest,
}

#[derive(Debug, Clone)]
pub struct ConfigDoc {
    pub raw: Blob,
    pub config: ImageConfiguration,
}

/// Read the `mediaType` field without trusting the rest of the document.
fn embedded_media_type(bytes: &[u8], what: &str) -> Result<serde_json::Value, ImageError> {
    serde_json::from_slice::<serde_json::Value>(bytes).map_err(|source| ImageError::Json {
        what: what.to_string(),
        source,
    })
}

/// Parse an index or manifest. `content_type` is the transport's claim (a registry's
/// Content-Type, a descriptor's mediaType); the document's own `mediaType` wins when present.
pub fn parse_top_level(
    bytes: Vec<u8>,
    content_type: Option<&str>,
    what: &str,
) -> Result<TopLevel, ImageError> {
    if bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ImageError::TooLarge {
            what: what.to_string(),
            size: bytes.len() as u64,
        });
    }
    let value = embedded_media_type(&bytes, what)?;
    let obj = value.as_object().ok_or_else(|| ImageError::Invalid {
        what: what.to_string(),
        reason: "not a JSON object".into(),
    })?;
    let declared = obj
        .get("mediaType")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .or_else(|| content_type.map(str::to_string));
    let kind = match declared.as_deref() {
        Some(mt) => match ManifestKind::from_media_type(mt) {
            Some(k) => k,
            // Registries answer with generic types for documents that carry no mediaType.
            None if is_generic(mt) => infer_kind(obj, what)?,
            None => {
                return Err(ImageError::UnknownMediaType {
                    what: what.to_string(),
                    media_type: mt.to_string(),
                });
            }
        },
        None => infer_kind(obj, what)?,
    };
    if obj.get("schemaVersion").and_then(|v| v.as_u64()) != Some(2) {
        return Err(ImageError::Invalid {
            what: what.to_string(),
            reason: "schemaVersion is not 2".into(),
        });
    }
    let raw = Blob::new(bytes);
    let json_err = |source| ImageError::Json {
        what: what.to_string(),
        source,
    };
    if kind.is_index() {
        let index: ImageIndex = serde_json::from_slice(&raw.bytes).map_err(json_err)?;
        for d in index.manifests() {
            check_descriptor(d, what)?;
        }
        Ok(TopLevel::Index(IndexDoc { raw, kind, index }))
    } else {
        let manifest: ImageManifest = serde_json::from_slice(&raw.bytes).map_err(json_err)?;
        check_descriptor(manifest.config(), what)?;
        for d in manifest.layers() {
            check_descriptor(d, what)?;
        }
        Ok(TopLevel::Manifest(ManifestDoc {
            raw,
            kind,
            manifest,
        }))
    }
}

fn is_generic(mt: &str) -> bool {
    let mt = mt.split(';').next().unwrap_or("").trim();
    matches!(mt, "application/json" | "application/octet-stream" | "")
}

fn infer_kind(
    obj: &serde_json::Map<String, serde_json::Value>,
    what: &str,
) -> Result<ManifestKind, ImageError> {
    if obj.contains_key("manifests") {
        Ok(ManifestKind::OciIndex)
    } else if obj.contains_key("config") && obj.contains_key("layers") {
        Ok(ManifestKind::OciManifest)
    } else {
        Err(ImageError::Invalid {
            what: what.to_string(),
            reason: "neither an index nor a manifest (no mediaType, manifests or layers)".into(),
        })
    }
}

fn check_descriptor(d: &Descriptor, what: &str) -> Result<(), ImageError> {
    check_verifiable(d.digest()).map_err(|e| ImageError::Invalid {
        what: what.to_string(),
        reason: format!("descriptor {}: {e}", d.digest()),
    })
}

pub fn parse_config(bytes: Vec<u8>, what: &str) -> Result<ConfigDoc, ImageError> {
    let config: ImageConfiguration =
        serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: what.to_string(),
            source,
        })?;
    Ok(ConfigDoc {
        raw: Blob::new(bytes),
        config,
    })
}

/// Is this index entry an attestation (BuildKit provenance/SBOM) rather than an image?
pub fn is_attestation(d: &Descriptor) -> bool {
    let by_annotation = d
        .annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|v| v == "attestation-manifest");
    let by_platform = d.platform().as_ref().is_some_and(|p| {
        p.os().to_string() == "unknown" && p.architecture().to_string() == "unknown"
    });
    by_annotation || by_platform
}

/// `os/arch[/variant]` of an index entry, if it has one.
pub fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| Platform {
        os: p.os().to_string(),
        architecture: p.architecture().to_string(),
        variant: p.variant().clone(),
    })
}

/// Choose the manifest for `want` from an index; attestations are never chosen.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    want: &Platform,
    what: &str,
) -> Result<&'a Descriptor, ImageError> {
    let found = index.manifests().iter().find(|d| {
        !is_attestation(d)
            && ManifestKind::from_media_type(d.media_type().as_ref()).is_some_and(|k| !k.is_index())
            && d.platform().as_ref().is_some_and(|p| {
                want.matches(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
            })
    });
    found.ok_or_else(|| {
        let mut available: Vec<String> = index
            .manifests()
            .iter()
            .filter(|d| !is_attestation(d))
            .filter_map(descriptor_platform)
            .map(|p| p.to_string())
            .collect();
        available.sort();
        available.dedup();
        ImageError::NoPlatform {
            what: what.to_string(),
            want: want.clone(),
            available: if available.is_empty() {
                "none".into()
            } else {
                available.join(", ")
            },
        }
    })
}

/// One layer as the manifest and config describe it together.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    pub media_type: String,
    /// What the media type says; the stored bytes are checked separately by magic.
    pub compression: Option<Compression>,
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Option<Digest>,
}

/// Pair each manifest layer with its config diff_id; a count mismatch is an error, since
/// the config would then describe another image.
pub fn layers(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
) -> Result<Vec<LayerInfo>, ImageError> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(ImageError::Invalid {
            what: "config".into(),
            reason: format!(
                "{} diff_ids for {} manifest layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        });
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(l, id)| {
            let diff_id = crate::digest::parse_verifiable(id).map_err(|e| ImageError::Invalid {
                what: "config rootfs.diff_ids".into(),
                reason: e.to_string(),
            })?;
            let mt = l.media_type().to_string();
            Ok(LayerInfo {
                compression: Compression::from_layer_media_type(&mt),
                media_type: mt,
                digest: l.digest().clone(),
                size: l.size(),
                diff_id: Some(diff_id),
            })
        })
        .collect()
}

/// Is `mt` a media type a manifest's config can have?
pub fn is_config_media_type(mt: &str) -> bool {
    mt == media::OCI_CONFIG || mt == media::DOCKER_CONFIG
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":10,"platform":{"os":"linux","architecture":"amd64"}},
 {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":10,"platform":{"os":"unknown","architecture":"unknown"},"annotations":{"vnd.docker.reference.type":"attestation-manifest","vnd.docker.reference.digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}}]}"#;

    fn index() -> IndexDoc {
        match parse_top_level(INDEX.as_bytes().to_vec(), None, "t").unwrap() {
            TopLevel::Index(i) => i,
            _ => panic!(),
        }
    }

    #[test]
    fn selects_platform_and_skips_attestations() {
        let i = index();
        let d = select_platform(&i.index, &Platform::default(), "t").unwrap();
        assert!(d.digest().to_string().ends_with("2222"));
        let arm = select_platform(&i.index, &"linux/arm64".parse().unwrap(), "t").unwrap();
        assert!(arm.digest().to_string().ends_with("1111"));
        assert!(is_attestation(&i.index.manifests()[2]));
        assert!(!is_attestation(&i.index.manifests()[1]));
        let err = select_platform(&i.index, &"linux/s390x".parse().unwrap(), "t").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t: no manifest for platform linux/s390x (available: linux/amd64, linux/arm64/v8)"
        );
    }

    #[test]
    fn refuses_unknown_media_type_and_big_documents() {
        let v1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(matches!(
            parse_top_level(v1.to_vec(), None, "t"),
            Err(ImageError::UnknownMediaType { .. })
        ));
        let big = vec![b' '; (MAX_MANIFEST_BYTES + 1) as usize];
        assert!(matches!(
            parse_top_level(big, None, "t"),
            Err(ImageError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_top_level(b"{not json".to_vec(), None, "t"),
            Err(ImageError::Json { .. })
        ));
    }

    #[test]
    fn digest_is_of_exact_bytes() {
        let i = index();
        assert_eq!(i.raw.digest, sha256_of(INDEX.as_bytes()));
    }
}
