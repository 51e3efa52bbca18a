//! Content digests: parsing is done by `oci-spec`'s [`Digest`]; this module adds the
//! restrictions a content store needs (only algorithms we can verify) and hashing that
//! checks digest and size while bytes stream.

use std::io::{self, Read, Write};

pub use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::Digest as _;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {input:?}: {reason}")]
    Invalid { input: String, reason: String },
    #[error("unsupported digest algorithm {0:?} (only sha256 and sha512 can be verified)")]
    Unsupported(String),
}

/// Parse a digest and insist that it is one we can verify. Every digest that reaches a
/// cache path goes through here, so a path is only ever built from validated lowercase hex.
pub fn parse_verifiable(s: &str) -> Result<Digest, DigestError> {
    let d: Digest = s
        .parse()
        .map_err(|e: oci_spec::OciSpecError| DigestError::Invalid {
            input: s.to_string(),
            reason: e.to_string(),
        })?;
    check_verifiable(&d)?;
    Ok(d)
}

/// Accept only sha256/sha512 digests (oci-spec already validated their hex length).
pub fn check_verifiable(d: &Digest) -> Result<(), DigestError> {
    match d.algorithm() {
        DigestAlgorithm::Sha256 | DigestAlgorithm::Sha512 => Ok(()),
        other => Err(DigestError::Unsupported(other.to_string())),
    }
}

/// The sha256 digest of a byte slice.
pub fn sha256_of(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(&DigestAlgorithm::Sha256);
    h.update(bytes);
    h.finish()
}

/// Incremental hasher for a verifiable algorithm.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `alg`; algorithms that are not verifiable fall back to sha256, which can
    /// never match them (callers run [`check_verifiable`] first).
    pub fn new(alg: &DigestAlgorithm) -> Self {
        match alg {
            DigestAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
    pub fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    pub fn finish(self) -> Digest {
        let (alg, hex) = match self {
            Hasher::Sha256(h) => ("sha256", hex::encode(h.finalize())),
            Hasher::Sha512(h) => ("sha512", hex::encode(h.finalize())),
        };
        // Lowercase hex of the right length always parses.
        format!("{alg}:{hex}")
            .parse()
            .expect("hasher output is a valid digest")
    }
}

/// What a stream is expected to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub digest: Digest,
    /// `None` when the size is unknown (e.g. a manifest fetched by tag).
    pub size: Option<u64>,
}

/// A reader that hashes and counts what passes through, and turns a mismatch into an
/// `io::ErrorKind::InvalidData` error at the end of the stream (or as soon as more bytes than
/// the expected size arrive), so no consumer ever sees a successful EOF on bad content.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expect: Expect,
    count: u64,
    what: String,
}

impl<R: Read> VerifyingReader<R> {
    /// `what` names the input in error messages (e.g. "blob sha256:… from 127.0.0.1:5000/x").
    pub fn new(inner: R, expect: Expect, what: impl Into<String>) -> Self {
        let hasher = Some(Hasher::new(expect.digest.algorithm()));
        VerifyingReader {
            inner,
            hasher,
            expect,
            count: 0,
            what: what.into(),
        }
    }
    pub fn bytes_read(&self) -> u64 {
        self.count
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(0);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        // Never ask for more than one byte past the expected size: enough to detect an
        // oversized stream without reading a bomb.
        let want = match self.expect.size {
            Some(size) => {
                let left = size.saturating_sub(self.count).saturating_add(1);
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            }
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..want])?;
        self.count += n as u64;
        if let Some(size) = self.expect.size
            && self.count > size
        {
            self.hasher = None;
            return Err(invalid(format!(
                "{}: more than the expected {size} bytes",
                self.what
            )));
        }
        if n > 0 {
            hasher.update(&buf[..n]);
            return Ok(n);
        }
        let hasher = self.hasher.take().expect("checked above");
        if let Some(size) = self.expect.size
            && self.count != size
        {
            return Err(invalid(format!(
                "{}: truncated: got {} of {size} bytes",
                self.what, self.count
            )));
        }
        let got = hasher.finish();
        if got != self.expect.digest {
            return Err(invalid(format!(
                "{}: digest mismatch: expected {}, got {got}",
                self.what, self.expect.digest
            )));
        }
        Ok(0)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// A writer that forwards and hashes, for producing content whose digest is learnt at the end.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, alg: &DigestAlgorithm) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(alg),
            count: 0,
        }
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    #[test]
    fn sha256_known_value() {
        assert_eq!(sha256_of(b"abc").to_string(), ABC);
    }

    #[test]
    fn rejects_bad_digests() {
        assert!(parse_verifiable("sha256:abc").is_err());
        assert!(parse_verifiable(&ABC.to_uppercase()).is_err());
        assert!(parse_verifiable("md5:900150983cd24fb0d6963f7d28e17f72").is_err());
        assert!(parse_verifiable("sha256:../../../../etc/passwd").is_err());
        assert!(parse_verifiable(ABC).is_ok());
    }

    #[test]
    fn verifying_reader_accepts_exact_content() {
        let e = Expect {
            digest: ABC.parse().unwrap(),
            size: Some(3),
        };
        let mut r = VerifyingReader::new(&b"abc"[..], e, "t");
        assert_eq!(read_all(&mut r).unwrap(), b"abc");
    }

    #[test]
    fn verifying_reader_rejects_wrong_truncated_and_long() {
        let d: Digest = ABC.parse().unwrap();
        for (data, size, needle) in [
            (&b"abd"[..], Some(3), "digest mismatch"),
            (&b"ab"[..], Some(3), "truncated"),
            (&b"abcd"[..], Some(3), "more than"),
            (&b"abd"[..], None, "digest mismatch"),
        ] {
            let e = Expect {
                digest: d.clone(),
                size,
            };
            let err = read_all(&mut VerifyingReader::new(data, e, "blob x")).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().starts_with("blob x"), "{err}");
        }
    }
}
