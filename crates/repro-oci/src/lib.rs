//! Pure core of repro-image: no I/O beyond what callers hand in.

pub mod digest;
pub mod image;
pub mod media;
pub mod platform;
pub mod reference;

pub use digest::{Digest, Expect, VerifyingReader};
pub use image::{Blob, ConfigDoc, ImageError, IndexDoc, ManifestDoc, TopLevel};
pub use media::{Compression, ManifestKind};
pub use platform::Platform;
pub use reference::{DockerRef, ImageRef};
