//! Byte-exact layer writers for rebuilding container images.
//!
//! - [`gnu`]: the rootfs tarball as GNU tar 1.34 writes it with the archlinux-docker recipe's
//!   flags (`--numeric-owner --xattrs --acls --mtime=@SDE --clamp-mtime --sort=name
//!   --pax-option=delete=atime,delete=ctime --exclude-from=exclude`): a POSIX (pax) archive
//!   with `PaxHeaders` entries only where needed, padded to 10240-byte records.
//! - [`gostorage`]: a layer as containers/storage (Go `archive/tar`, via podman/buildah with
//!   `--timestamp`) writes it: USTAR where possible, PAX otherwise, no root entry.
//! - [`zst`]: the recipe's `zstd --long -T0 -8 FILE` on the system libzstd.
//! - [`pipeline`]: write tar -> sha256 (diff_id) -> compressor -> sha256 (blob digest) -> files,
//!   in parallel threads over bounded channels.
//!
//! Both writers first *plan* the archive (a walk of the tree: metadata, xattrs, ACLs, the
//! exact archive size) and then *stream* it: file contents are never held in memory, and the
//! exact size lets the zstd step pledge it, as `zstd FILE` does.

mod error;
mod exclude;
mod fnmatch;
mod header;
mod walk;

pub mod acl;
pub mod gnu;
pub mod gostorage;
pub mod pipeline;
pub mod zst;

pub use error::Error;
pub use exclude::Exclude;
pub use walk::{Kind, Node, Owners, Timestamp};

/// The size of a tar block.
pub const BLOCK: u64 = 512;
