//! Decompression chosen by magic bytes, never by file name or media type: layers, package
//! files and sync dbs all come through [`decoder`]. gzip is read as a multi-member stream
//! (as `gzip -d` does); bzip2 is recognised and refused.

use std::io::{self, Read};

pub use repro_oci::Compression;

/// Read up to six bytes of `r`, tell its compression from them, and return a reader of the
/// decompressed stream (the sniffed bytes included). A plain stream is passed through.
pub fn decoder<'a, R: Read + 'a>(mut r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let compression = Compression::detect(&magic[..n]);
    let stream = io::Cursor::new(magic[..n].to_vec()).chain(r);
    let out: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|e| io::Error::new(e.kind(), format!("zstd: {e}")))?,
        ),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new(stream)),
        Compression::Bzip2 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bzip2-compressed: only plain, gzip, zstd and xz are supported",
            ));
        }
    };
    Ok((compression, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(c: Compression, bytes: Vec<u8>, want: &[u8]) {
        let (got_c, mut r) = decoder(&bytes[..]).unwrap();
        assert_eq!(got_c, c);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn every_format_by_magic() {
        let data = b"hello, layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        roundtrip(Compression::Gzip, gz.finish().unwrap(), &data);
        roundtrip(
            Compression::Zstd,
            zstd::encode_all(&data[..], 3).unwrap(),
            &data,
        );
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        roundtrip(Compression::Xz, xz.finish().unwrap(), &data);
        roundtrip(Compression::None, data.clone(), &data);
        // Shorter than the magic: passed through whole.
        roundtrip(Compression::None, b"ab".to_vec(), b"ab");
        let e = decoder(&b"BZh91AY&SY"[..]).err().unwrap();
        assert!(e.to_string().contains("bzip2"), "{e}");
    }
}
