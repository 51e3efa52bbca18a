//! Image sources and destinations in skopeo's transports, and `copy` between them.
//!
//! A source yields exact bytes: the top-level document (index or manifest), child manifests,
//! and blob streams that verify digest and size while they are read. Nothing here
//! re-serializes a manifest that came from elsewhere, so digests survive a copy wherever the
//! destination format can hold the original bytes.

use std::io::{self, Read};
use std::path::PathBuf;

use oci_spec::image::Descriptor;
use repro_oci::{Digest, ImageError, TopLevel};

pub mod copy;
pub mod docker_archive;
pub mod oci;
pub mod registry;
pub mod rootfs;
pub mod tree;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] repro_store::StoreError),
    #[error(transparent)]
    Registry(#[from] repro_registry::RegistryError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The input is not what its transport says, or is hostile; names input and problem.
    #[error("{input}: {reason}")]
    Invalid { input: String, reason: String },
    /// A layer that cannot be applied (hostile entry, broken tar, capture cap exceeded).
    #[error("{input}: {source}")]
    Rootfs {
        input: String,
        source: repro_rootfs::RootfsError,
    },
    #[error("{input}: {what} not found")]
    NotFound { input: String, what: String },
}

/// Where an image's bytes come from.
pub trait ImageSource {
    /// The image in transport spelling, for messages.
    fn describe(&self) -> String;
    /// The top-level document the reference names (an index or a manifest), exact bytes.
    fn top_level(&mut self) -> Result<TopLevel, TransportError>;
    /// A manifest an index points at, verified against the descriptor's digest and size.
    fn manifest(&mut self, desc: &Descriptor) -> Result<TopLevel, TransportError>;
    /// A blob as a stream that fails (`io::ErrorKind::InvalidData`) unless the bytes match
    /// `digest` and `size`; nothing is read into memory whole.
    fn blob(
        &mut self,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Box<dyn Read + Send>, TransportError>;
    /// Things the user should know about what was read (e.g. a moved tag).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// True when the layer blobs are plain tars whatever the manifest's media types say
    /// (docker-archive, as skopeo presents it): copying them to a registry or layout then
    /// means compressing them and writing a new manifest.
    fn layers_are_uncompressed_tars(&self) -> bool {
        false
    }
}

/// Decompress a layer stream, choosing the decoder by magic bytes (never by name or media
/// type): gzip, zstd, xz, or plain tar passed through.
pub fn decompress<'a, R: Read + 'a>(
    r: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>, TransportError> {
    repro_compress::decoder(r)
        .map(|(_, d)| d)
        .map_err(|e| TransportError::Invalid {
            input: what.to_string(),
            reason: e.to_string(),
        })
}

/// The exact bytes of a manifest's config, verified against its descriptor and refused
/// when the descriptor claims more than [`repro_oci::media::MAX_CONFIG_BYTES`].
pub fn read_config_bytes(
    src: &mut dyn ImageSource,
    manifest: &oci_spec::image::ImageManifest,
) -> Result<Vec<u8>, TransportError> {
    let d = manifest.config();
    let max = repro_oci::media::MAX_CONFIG_BYTES;
    if d.size() > max {
        return Err(TransportError::Invalid {
            input: src.describe(),
            reason: format!(
                "config {} is {} bytes, over the {max}-byte limit",
                d.digest(),
                d.size()
            ),
        });
    }
    let mut bytes = Vec::new();
    // The verifying reader fails past the descriptor's size, so this is bounded.
    src.blob(d.digest(), Some(d.size()))?
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::Invalid {
            input: src.describe(),
            reason: format!("config {}: {e}", d.digest()),
        })?;
    Ok(bytes)
}

/// [`read_config_bytes`], parsed.
pub fn read_config(
    src: &mut dyn ImageSource,
    manifest: &oci_spec::image::ImageManifest,
) -> Result<repro_oci::ConfigDoc, TransportError> {
    let bytes = read_config_bytes(src, manifest)?;
    let what = format!("config {}", manifest.config().digest());
    Ok(repro_oci::image::parse_config(bytes, &what)?)
}
