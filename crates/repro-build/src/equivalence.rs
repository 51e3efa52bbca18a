//! The blob level where the compressor cannot be replayed: proof that a compressed layer
//! blob holds exactly a given tar and nothing else.
//!
//! skopeo compresses with Go's `compress/gzip` or klauspost's zstd, whose bytes repro-image
//! does not reproduce. What can be shown instead ([`prove`]), streaming (neither file is
//! held in memory):
//! - gzip: one member whose header has no optional field (`FLG` = 0: no name, comment,
//!   extra field or header CRC), CRC-32 and length checked, no byte after the member;
//! - zstd: one frame (no skippable frame before it), its checksum checked when present, no
//!   byte after the frame;
//! - the decompressed stream equals the tar byte for byte (else the first differing
//!   offset), and has the same length.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The compression of a blob, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
}

/// What was shown.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Equivalence {
    pub compression: Compression,
    /// `sha256:<hex>` and size of the compressed blob.
    pub blob_digest: String,
    pub blob_size: u64,
    /// `sha256:<hex>` and size of the tar (= of the decompressed stream).
    pub tar_digest: String,
    pub tar_size: u64,
    /// gzip: the header's MTIME, XFL and OS bytes (skopeo's pgzip: Go's zero `time.Time`
    /// as a uint32, 2288912640; OS 255).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip_header: Option<GzipHeader>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GzipHeader {
    pub mtime: u32,
    pub xfl: u8,
    pub os: u8,
}

/// Why a blob is not shown to be the tar.
#[derive(Debug, thiserror::Error)]
pub enum EquivalenceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: neither gzip nor zstd (magic bytes {magic})")]
    UnknownCompression { path: PathBuf, magic: String },
    #[error("{path}: the gzip header has optional fields (FLG {flags:#04x}): not a plain member")]
    GzipFields { path: PathBuf, flags: u8 },
    #[error("{path}: cannot decompress: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("{path}: {trailing}+ bytes after the first {what}")]
    Trailing {
        path: PathBuf,
        what: &'static str,
        trailing: u64,
    },
    #[error("{blob}: decompresses to other bytes than {tar}, first at offset {offset}")]
    Differs {
        blob: PathBuf,
        tar: PathBuf,
        offset: u64,
    },
    #[error("{blob}: decompresses to {decompressed} bytes, {tar} has {tar_size}")]
    Length {
        blob: PathBuf,
        tar: PathBuf,
        decompressed: u64,
        tar_size: u64,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> EquivalenceError + '_ {
    move |source| EquivalenceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads through, hashing and counting.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            n: 0,
        }
    }
    fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hash.clone().finalize()))
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Show that `blob` decompresses to exactly the bytes of `tar` with nothing else in it.
pub fn prove(blob: &Path, tar: &Path) -> Result<Equivalence, EquivalenceError> {
    let mut head = [0u8; 10];
    let got = {
        let mut f = File::open(blob).map_err(io_at(blob))?;
        let mut n = 0;
        while n < head.len() {
            match f.read(&mut head[n..]).map_err(io_at(blob))? {
                0 => break,
                k => n += k,
            }
        }
        n
    };
    let head = &head[..got];
    let file = File::open(blob).map_err(io_at(blob))?;
    let mut hashed = Hashing::new(file);
    let tar_file = File::open(tar).map_err(io_at(tar))?;
    let mut tar_hashed = Hashing::new(tar_file);
    let corrupt = |e: std::io::Error| EquivalenceError::Corrupt {
        path: blob.to_path_buf(),
        message: e.to_string(),
    };
    let (compression, gzip_header, decompressed) = if head.starts_with(&GZIP_MAGIC) {
        if head.len() < 10 || head[2] != 8 {
            return Err(EquivalenceError::Corrupt {
                path: blob.to_path_buf(),
                message: "a gzip header that is not deflate".into(),
            });
        }
        if head[3] != 0 {
            return Err(EquivalenceError::GzipFields {
                path: blob.to_path_buf(),
                flags: head[3],
            });
        }
        let header = GzipHeader {
            mtime: u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            xfl: head[8],
            os: head[9],
        };
        let mut dec = flate2::bufread::GzDecoder::new(BufReader::new(&mut hashed));
        let n = compare(&mut dec, &mut tar_hashed, blob, tar).map_err(|e| match e {
            CompareError::Read(e) => corrupt(e),
            CompareError::Tar(e) => io_at(tar)(e),
            CompareError::Other(e) => e,
        })?;
        let mut rest = dec.into_inner();
        no_trailing(&mut rest, blob, "gzip member")?;
        (Compression::Gzip, Some(header), n)
    } else if head.starts_with(&ZSTD_MAGIC) {
        let dec = zstd::stream::read::Decoder::with_buffer(BufReader::new(&mut hashed))
            .map_err(corrupt)?;
        let mut dec = dec.single_frame();
        let n = compare(&mut dec, &mut tar_hashed, blob, tar).map_err(|e| match e {
            CompareError::Read(e) => corrupt(e),
            CompareError::Tar(e) => io_at(tar)(e),
            CompareError::Other(e) => e,
        })?;
        let mut rest = dec.finish();
        no_trailing(&mut rest, blob, "zstd frame")?;
        (Compression::Zstd, None, n)
    } else {
        return Err(EquivalenceError::UnknownCompression {
            path: blob.to_path_buf(),
            magic: hex::encode(&head[..head.len().min(4)]),
        });
    };
    // the tar must end where the decompressed stream did
    let mut probe = [0u8; 1];
    if tar_hashed.read(&mut probe).map_err(io_at(tar))? != 0 {
        let tar_size = std::fs::metadata(tar).map_err(io_at(tar))?.len();
        return Err(EquivalenceError::Length {
            blob: blob.to_path_buf(),
            tar: tar.to_path_buf(),
            decompressed,
            tar_size,
        });
    }
    Ok(Equivalence {
        compression,
        blob_digest: hashed.digest(),
        blob_size: hashed.n,
        tar_digest: tar_hashed.digest(),
        tar_size: tar_hashed.n,
        gzip_header,
    })
}

enum CompareError {
    Read(std::io::Error),
    Tar(std::io::Error),
    Other(EquivalenceError),
}

/// Read `dec` to its end comparing with `tar`; the number of bytes.
fn compare(
    dec: &mut dyn Read,
    tar: &mut dyn Read,
    blob_path: &Path,
    tar_path: &Path,
) -> Result<u64, CompareError> {
    let mut a = vec![0u8; 256 * 1024];
    let mut b = vec![0u8; 256 * 1024];
    let mut offset = 0u64;
    loop {
        let n = read_full(dec, &mut a).map_err(CompareError::Read)?;
        if n == 0 {
            return Ok(offset);
        }
        let m = read_full(tar, &mut b[..n]).map_err(CompareError::Tar)?;
        if let Some(i) = (0..m).find(|&i| a[i] != b[i]) {
            return Err(CompareError::Other(EquivalenceError::Differs {
                blob: blob_path.to_path_buf(),
                tar: tar_path.to_path_buf(),
                offset: offset + i as u64,
            }));
        }
        if m < n {
            return Err(CompareError::Other(EquivalenceError::Length {
                blob: blob_path.to_path_buf(),
                tar: tar_path.to_path_buf(),
                decompressed: offset + n as u64,
                tar_size: offset + m as u64,
            }));
        }
        offset += n as u64;
    }
}

/// Fill `buf` unless the reader ends first; the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn no_trailing(
    rest: &mut dyn BufRead,
    blob: &Path,
    what: &'static str,
) -> Result<(), EquivalenceError> {
    let left = rest.fill_buf().map_err(io_at(blob))?.len() as u64;
    if left > 0 {
        return Err(EquivalenceError::Trailing {
            path: blob.to_path_buf(),
            what,
            trailing: left,
        });
    }
    Ok(())
}
