//! The recipe's compression step, `zstd --long -T0 -8 repro.tar`, on the system libzstd.
//!
//! The zstd CLI compressing a file is libzstd's streaming compression with: level 8,
//! `windowLog` 27 and long-distance matching (`--long`), the checksum on (the CLI's
//! default), the content size pledged (the CLI knows the file's size and writes it into
//! the frame header), and worker threads (`-T0`: one per core). The bytes do not depend on
//! the number of workers as long as there is at least one (zero, single-thread mode, makes
//! other bytes); they do depend on the libzstd version, hence [`libzstd`] (DESIGN.md).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use zstd::stream::raw::CParameter;

use crate::Error;

/// libzstd compression parameters that decide the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZstdParams {
    pub level: i32,
    /// `None`: the level's default.
    pub window_log: Option<u32>,
    pub long_distance_matching: bool,
    pub checksum: bool,
    /// Worker threads (`-T`); any count >= 1 gives the same bytes.
    pub workers: u32,
}

impl ZstdParams {
    /// `zstd --long -T0 -8`.
    pub fn recipe() -> Self {
        ZstdParams {
            level: 8,
            window_log: Some(27),
            long_distance_matching: true,
            checksum: true,
            workers: default_workers(),
        }
    }
}

/// `-T0`: one worker per available core (at least one; the count does not change bytes).
pub fn default_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// The libzstd this program is linked with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LibZstd {
    /// `ZSTD_versionNumber()`, e.g. 10504 for 1.5.4.
    pub version_number: u32,
    /// `ZSTD_versionString()`, e.g. `1.5.4`.
    pub version: String,
}

/// The linked libzstd's version: recorded next to every `.tar.zst` written, since another
/// version can compress the same tar to other bytes.
pub fn libzstd() -> LibZstd {
    LibZstd {
        version_number: zstd::zstd_safe::version_number(),
        version: zstd::zstd_safe::version_string().to_string(),
    }
}

fn zerr(what: &str, e: io::Error) -> Error {
    Error::Zstd(format!("{what}: {e}"))
}

/// A streaming zstd encoder writing into `out`. `pledged`: the exact input size, written
/// into the frame header as `zstd FILE` does (input of another size is an error).
pub fn encoder<W: Write>(
    out: W,
    params: &ZstdParams,
    pledged: Option<u64>,
) -> Result<zstd::stream::write::Encoder<'static, W>, Error> {
    let mut enc = zstd::stream::write::Encoder::new(out, params.level)
        .map_err(|e| zerr("creating the encoder", e))?;
    let set = |enc: &mut zstd::stream::write::Encoder<'static, W>, p: CParameter| {
        enc.set_parameter(p)
            .map_err(|e| zerr(&format!("setting {p:?}"), e))
    };
    set(&mut enc, CParameter::ChecksumFlag(params.checksum))?;
    set(&mut enc, CParameter::ContentSizeFlag(true))?;
    if let Some(w) = params.window_log {
        set(&mut enc, CParameter::WindowLog(w))?;
    }
    set(
        &mut enc,
        CParameter::EnableLongDistanceMatching(params.long_distance_matching),
    )?;
    // A libzstd built without threads refuses this: then the CLI's bytes cannot be made.
    set(&mut enc, CParameter::NbWorkers(params.workers))?;
    enc.set_pledged_src_size(pledged)
        .map_err(|e| zerr("pledging the source size", e))?;
    Ok(enc)
}

/// Compress the file `src` into `out` as `zstd PARAMS src` does (size pledged); returns
/// `out`.
pub fn compress_file<W: Write>(src: &Path, out: W, params: &ZstdParams) -> Result<W, Error> {
    let mut f = File::open(src).map_err(|e| Error::io(src, e))?;
    let len = f.metadata().map_err(|e| Error::io(src, e))?.len();
    let mut enc = encoder(out, params, Some(len))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, e)),
        };
        enc.write_all(&buf[..n])
            .map_err(|e| zerr("compressing", e))?;
    }
    enc.finish().map_err(|e| zerr("finishing the frame", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_version_is_reported() {
        let v = libzstd();
        assert!(v.version_number >= 10400, "{v:?}");
        let parts: Vec<u32> = v.version.split('.').map(|p| p.parse().unwrap()).collect();
        assert_eq!(
            parts[0] * 10000 + parts[1] * 100 + parts[2],
            v.version_number,
            "{v:?}"
        );
    }

    #[test]
    fn worker_count_does_not_change_bytes_but_zero_does() {
        // Compressible but not trivial, and larger than one multithreading job (with one
        // job the bytes equal single-thread mode's): LCG bytes in short repeated runs.
        let mut data = Vec::with_capacity(40 << 20);
        let mut x: u32 = 1;
        while data.len() < 40 << 20 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let run = [b'a' + (x >> 27) as u8; 8];
            data.extend_from_slice(&run[..1 + (x >> 13) as usize % 8]);
            data.extend_from_slice(&x.to_le_bytes()[..2]);
        }
        let run = |workers: u32| {
            let mut p = ZstdParams::recipe();
            p.workers = workers;
            let mut enc = encoder(Vec::new(), &p, Some(data.len() as u64)).unwrap();
            for chunk in data.chunks(100_000) {
                enc.write_all(chunk).unwrap();
            }
            enc.finish().unwrap()
        };
        let one = run(1);
        // Not assert_eq!: a failure would print megabytes.
        assert!(one == run(2), "1 and 2 workers differ");
        assert!(one == run(3), "1 and 3 workers differ");
        assert!(
            one != run(0),
            "single-thread mode gives the multithreaded bytes"
        );
        assert!(zstd::decode_all(&one[..]).unwrap() == data, "round trip");
    }

    #[test]
    fn wrong_pledged_size_is_an_error() {
        let mut enc = encoder(Vec::new(), &ZstdParams::recipe(), Some(10)).unwrap();
        let more = enc.write_all(b"0123456789abc");
        assert!(more.is_err() || enc.finish().is_err());
        let mut enc = encoder(Vec::new(), &ZstdParams::recipe(), Some(10)).unwrap();
        enc.write_all(b"01234").unwrap();
        assert!(enc.finish().is_err());
    }
}
