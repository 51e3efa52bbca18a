//! One pass over a layer blob: its tar is handed to a consumer (the merged-tree applier)
//! while the decompressed bytes are hashed, and the compressed framing is checked, so that
//! the blob level can be shown *equivalent* without a second read: the blob decompresses to
//! exactly the bytes whose sha256 is the reproduced tar's, as a single gzip member or zstd
//! frame, with no optional header fields and nothing after it.
//!
//! Compression is chosen by magic bytes, never by media type or name.

use std::io::{self, BufRead, BufReader, Read};

use repro_oci::Digest;
use repro_oci::digest::{DigestAlgorithm, Hasher};
use serde::Serialize;

use crate::VerifyError;

/// gzip header flag bits (RFC 1952).
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// How a blob is framed around its tar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Framing {
    /// `none`, `gzip` or `zstd`.
    pub compression: &'static str,
    /// Optional header fields present (`FEXTRA`, `FNAME`, `FCOMMENT`, `FHCRC`; for zstd
    /// `dictionary id`, `skippable frame`): each makes the blob carry more than the tar.
    pub extra_fields: Vec<String>,
    /// Compressed bytes after the first gzip member / zstd frame (a second member, padding).
    pub trailing_bytes: u64,
    /// The gzip header's MTIME field (informational: a compressor's choice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gzip_mtime: Option<u32>,
}

impl Framing {
    /// Nothing but one stream of the tar: what equivalence requires of the framing.
    pub fn is_clean(&self) -> bool {
        self.extra_fields.is_empty() && self.trailing_bytes == 0
    }

    /// One line for people.
    pub fn describe(&self) -> String {
        match self.compression {
            "none" => "uncompressed".into(),
            c => {
                let unit = if c == "gzip" { "member" } else { "frame" };
                let mut s = format!("{c}, one {unit}");
                if self.extra_fields.is_empty() {
                    s.push_str(", no optional header fields");
                } else {
                    s.push_str(&format!(", header fields {}", self.extra_fields.join(" ")));
                }
                if self.trailing_bytes == 0 {
                    s.push_str(", nothing after it");
                } else {
                    s.push_str(&format!(", {} bytes after it", self.trailing_bytes));
                }
                s
            }
        }
    }
}

/// What one pass over a layer blob found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRead {
    /// sha256 of the whole decompressed stream (the diff_id it really has).
    pub decompressed: Digest,
    /// Length of the decompressed stream.
    pub decompressed_size: u64,
    pub framing: Framing,
}

/// Hashes and counts what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
    n: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.hasher.update(&buf[..k]);
        self.n += k as u64;
        Ok(k)
    }
}

fn layer_err(what: &str, reason: impl Into<String>) -> VerifyError {
    VerifyError::Layer {
        input: what.to_string(),
        reason: reason.into(),
    }
}

/// Read all of `blob`: the decompressed tar goes to `consume` (which may stop at the tar's
/// end; the rest is read and hashed here), the framing is checked, and the compressed stream
/// is read to its end so that a verifying source checks its digest.
pub fn read_layer<R: Read>(
    blob: R,
    what: &str,
    consume: impl FnOnce(&mut dyn Read) -> Result<(), VerifyError>,
) -> Result<LayerRead, VerifyError> {
    let mut buf = BufReader::with_capacity(64 * 1024, blob);
    let head = buf
        .fill_buf()
        .map_err(|e| layer_err(what, e.to_string()))?
        .to_vec();
    let compression = repro_oci::Compression::detect(&head);
    let mut framing = Framing {
        compression: "none",
        extra_fields: Vec::new(),
        trailing_bytes: 0,
        gzip_mtime: None,
    };
    let (decompressed, decompressed_size) = match compression {
        repro_oci::Compression::None => {
            let mut h = hashed(&mut buf);
            run(&mut h, what, consume)?;
            (h.hasher.finish(), h.n)
        }
        repro_oci::Compression::Gzip => {
            framing.compression = "gzip";
            if head.len() < 10 {
                return Err(layer_err(what, "gzip: header cut short"));
            }
            let flags = head[3];
            for (bit, name) in [
                (FEXTRA, "FEXTRA"),
                (FNAME, "FNAME"),
                (FCOMMENT, "FCOMMENT"),
                (FHCRC, "FHCRC"),
            ] {
                if flags & bit != 0 {
                    framing.extra_fields.push(name.into());
                }
            }
            framing.gzip_mtime = Some(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
            // bufread::GzDecoder reads one member and leaves what follows in `buf`.
            let dec = flate2::bufread::GzDecoder::new(&mut buf);
            let mut h = hashed(dec);
            run(&mut h, what, consume)?;
            (h.hasher.finish(), h.n)
        }
        repro_oci::Compression::Zstd => {
            framing.compression = "zstd";
            // Frame_Header_Descriptor: the low two bits give the dictionary id's size.
            if head.len() > 4 && head[4] & 0x03 != 0 {
                framing.extra_fields.push("dictionary id".into());
            }
            let dec = zstd::stream::read::Decoder::with_buffer(&mut buf)
                .map_err(|e| layer_err(what, format!("zstd: {e}")))?
                .single_frame();
            let mut h = hashed(dec);
            run(&mut h, what, consume)?;
            (h.hasher.finish(), h.n)
        }
        other => {
            return Err(layer_err(
                what,
                format!("{other:?}-compressed layers are not supported by verify"),
            ));
        }
    };
    // Whatever follows the first member/frame: counted, and read so the source verifies.
    framing.trailing_bytes =
        io::copy(&mut buf, &mut io::sink()).map_err(|e| layer_err(what, e.to_string()))?;
    if compression == repro_oci::Compression::Zstd && framing.trailing_bytes > 0 {
        // A skippable frame (magic 0x184D2A5?) after the data frame is extra too; it is
        // counted in trailing_bytes either way.
        framing.extra_fields.push("data after the frame".into());
    }
    Ok(LayerRead {
        decompressed,
        decompressed_size,
        framing,
    })
}

fn hashed<R: Read>(inner: R) -> Hashing<R> {
    Hashing {
        inner,
        hasher: Hasher::new(&DigestAlgorithm::Sha256),
        n: 0,
    }
}

/// Hand the stream to `consume`, then read what it left (the tar's padding, anything after
/// the end-of-archive blocks) so the hash covers the whole decompressed stream.
fn run<R: Read>(
    h: &mut Hashing<R>,
    what: &str,
    consume: impl FnOnce(&mut dyn Read) -> Result<(), VerifyError>,
) -> Result<(), VerifyError> {
    consume(h)?;
    io::copy(h, &mut io::sink()).map_err(|e| layer_err(what, format!("decompressing: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sha(b: &[u8]) -> Digest {
        repro_oci::digest::sha256_of(b)
    }

    fn gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn read_all(blob: &[u8]) -> Result<(LayerRead, Vec<u8>), VerifyError> {
        let mut seen = Vec::new();
        let r = read_layer(blob, "test blob", |r| {
            // A consumer that stops early, as a tar reader does at the end-of-archive blocks.
            let mut first = [0u8; 3];
            r.read_exact(&mut first).unwrap();
            seen.extend_from_slice(&first);
            Ok(())
        })?;
        Ok((r, seen))
    }

    #[test]
    fn plain_stream_hashes_everything_even_what_the_consumer_left() {
        let data = b"hello tar world".to_vec();
        let (r, seen) = read_all(&data).unwrap();
        assert_eq!(seen, b"hel");
        assert_eq!(r.decompressed, sha(&data));
        assert_eq!(r.decompressed_size, data.len() as u64);
        assert_eq!(r.framing.compression, "none");
        assert!(r.framing.is_clean());
    }

    #[test]
    fn clean_gzip_is_one_member_without_fields() {
        let data = vec![7u8; 100_000];
        let (r, _) = read_all(&gzip(&data, None)).unwrap();
        assert_eq!(r.decompressed, sha(&data));
        assert_eq!(r.framing.compression, "gzip");
        assert!(r.framing.is_clean(), "{:?}", r.framing);
        assert_eq!(
            r.framing.describe(),
            "gzip, one member, no optional header fields, nothing after it"
        );
    }

    #[test]
    fn gzip_with_a_file_name_or_a_second_member_is_not_clean() {
        let data = b"abcdef".to_vec();
        let (r, _) = read_all(&gzip(&data, Some("layer.tar"))).unwrap();
        assert_eq!(r.framing.extra_fields, ["FNAME"]);
        assert!(!r.framing.is_clean());
        assert_eq!(r.decompressed, sha(&data), "the content is still the same");

        let mut two = gzip(&data, None);
        let second = gzip(b"more", None);
        two.extend_from_slice(&second);
        let (r, _) = read_all(&two).unwrap();
        // Only the first member is the layer; the second is counted, not decompressed.
        assert_eq!(r.decompressed, sha(&data));
        assert_eq!(r.framing.trailing_bytes, second.len() as u64);
        assert!(!r.framing.is_clean());
    }

    #[test]
    fn zstd_single_frame_and_trailing_data() {
        let data = vec![42u8; 50_000];
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let (r, _) = read_all(&z).unwrap();
        assert_eq!(r.decompressed, sha(&data));
        assert_eq!(r.framing.compression, "zstd");
        assert!(r.framing.is_clean(), "{:?}", r.framing);

        let mut more = z.clone();
        more.extend_from_slice(&zstd::encode_all(&b"x"[..], 3).unwrap());
        let (r, _) = read_all(&more).unwrap();
        assert_eq!(r.decompressed, sha(&data));
        assert!(r.framing.trailing_bytes > 0);
        assert!(!r.framing.is_clean());
    }

    #[test]
    fn a_broken_gzip_stream_is_an_error_naming_the_input() {
        let mut g = gzip(&[1u8; 10_000], None);
        let n = g.len();
        g[n - 6] ^= 0xff; // the CRC32 trailer
        let e = read_all(&g).unwrap_err().to_string();
        assert!(e.starts_with("test blob: "), "{e}");
    }
}
