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

pub mod docker_archive;
pub mod oci;
pub mod rootfs;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Image(#[from] ImageError),
    #[error("{0}")]
    Store(#[from] repro_store::StoreError),
    #[error("{0}")]
    Registry(#[from] repro_registry::RegistryError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// The input is not what its transport says, or is hostile; names input and problem.
    #[error("{input}: {reason}")]
    Invalid { input: String, reason: String },
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
    ) -> Result<Box<dyn Read + Send + '_>, TransportError>;
}
