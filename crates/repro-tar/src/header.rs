//! Pieces of a ustar header block both dialects format the same way.

use crate::BLOCK;

pub(crate) const NAME: std::ops::Range<usize> = 0..100;
pub(crate) const MODE: std::ops::Range<usize> = 100..108;
pub(crate) const UID: std::ops::Range<usize> = 108..116;
pub(crate) const GID: std::ops::Range<usize> = 116..124;
pub(crate) const SIZE: std::ops::Range<usize> = 124..136;
pub(crate) const MTIME: std::ops::Range<usize> = 136..148;
pub(crate) const CHKSUM: std::ops::Range<usize> = 148..156;
pub(crate) const TYPEFLAG: usize = 156;
pub(crate) const LINKNAME: std::ops::Range<usize> = 157..257;
pub(crate) const MAGIC: std::ops::Range<usize> = 257..265;
pub(crate) const UNAME: std::ops::Range<usize> = 265..297;
pub(crate) const GNAME: std::ops::Range<usize> = 297..329;
pub(crate) const DEVMAJOR: std::ops::Range<usize> = 329..337;
pub(crate) const DEVMINOR: std::ops::Range<usize> = 337..345;
pub(crate) const PREFIX: std::ops::Range<usize> = 345..500;

/// The largest value an octal field of `len` bytes holds (`len - 1` digits and a NUL).
pub(crate) const fn max_octal(len: usize) -> u64 {
    (1u64 << (3 * (len as u32 - 1))) - 1
}

/// Write `v` as `len - 1` zero-padded octal digits and a NUL. The caller checks the range.
pub(crate) fn put_octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    debug_assert!(v <= max_octal(field.len()));
    let mut v = v;
    for i in (0..digits).rev() {
        field[i] = b'0' + (v & 7) as u8;
        v >>= 3;
    }
    field[digits] = 0;
}

/// Copy at most `field.len()` bytes of `s`; the rest of the field stays NUL.
pub(crate) fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

/// `ustar\0` `00`: the POSIX magic both GNU tar (posix format) and Go write.
pub(crate) fn put_magic(block: &mut [u8; 512]) {
    block[MAGIC].copy_from_slice(b"ustar\x0000");
}

/// Fill the checksum: six octal digits, NUL, space, summed with the field as spaces.
pub(crate) fn finish(block: &mut [u8; 512]) {
    block[CHKSUM].fill(b' ');
    let sum: u64 = block.iter().map(|&b| u64::from(b)).sum();
    put_octal(&mut block[CHKSUM.start..CHKSUM.start + 7], sum);
    block[CHKSUM.end - 1] = b' ';
}

/// One pax extended header record: `"<len> <key>=<value>\n"`, `len` counting itself.
pub(crate) fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + decimal_len(base as u64);
    if base + decimal_len(len as u64) != len {
        len = base + decimal_len(len as u64);
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn decimal_len(v: u64) -> usize {
    v.to_string().len()
}

/// Bytes of padding after `len` bytes of data to the next block boundary.
pub(crate) fn padding(len: u64) -> u64 {
    (BLOCK - len % BLOCK) % BLOCK
}

/// `len` rounded up to whole blocks.
pub(crate) fn padded(len: u64) -> u64 {
    len + padding(len)
}

/// The streaming end both writers share: blocks, pax records and file contents written in
/// archive order, counted, and checked against the planned size at the end.
pub(crate) struct Stream<'w, W: std::io::Write + ?Sized> {
    out: &'w mut W,
    /// What the error messages call the stream (`the tar stream`).
    what: &'static str,
    written: u64,
    buf: Vec<u8>,
}

const ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];

impl<'w, W: std::io::Write + ?Sized> Stream<'w, W> {
    pub(crate) fn new(out: &'w mut W, what: &'static str) -> Self {
        Stream {
            out,
            what,
            written: 0,
            buf: vec![0u8; 256 * 1024],
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), crate::Error> {
        self.out
            .write_all(bytes)
            .map_err(|e| crate::Error::write(self.what, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// A pax extended header block and its records, padded to the block.
    pub(crate) fn extended(
        &mut self,
        block: &[u8; 512],
        records: &[u8],
    ) -> Result<(), crate::Error> {
        self.put(block)?;
        self.put(records)?;
        self.put(&ZEROS[..padding(records.len() as u64) as usize])
    }

    /// A member's header block, then its `len` bytes from `path` (not followed if a
    /// symlink; a file that no longer has `len` bytes is an error), padded to the block.
    pub(crate) fn member(
        &mut self,
        block: &[u8; 512],
        path: &std::path::Path,
        len: u64,
    ) -> Result<(), crate::Error> {
        self.put(block)?;
        if len > 0 {
            self.copy_file(path, len)?;
            self.put(&ZEROS[..padding(len) as usize])?;
        }
        Ok(())
    }

    fn copy_file(&mut self, path: &std::path::Path, len: u64) -> Result<(), crate::Error> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| crate::Error::io(path, e))?;
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let got = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(crate::Error::SizeChanged {
                        path: path.to_path_buf(),
                        planned: len,
                        read: len - left,
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(crate::Error::io(path, e)),
            };
            self.out
                .write_all(&self.buf[..got])
                .map_err(|e| crate::Error::write(self.what, e))?;
            self.written += got as u64;
            left -= got as u64;
        }
        // grown since the plan: what was copied is not the file (GNU tar's "file changed
        // as we read it")
        let now = f.metadata().map_err(|e| crate::Error::io(path, e))?.len();
        if now != len {
            return Err(crate::Error::SizeChanged {
                path: path.to_path_buf(),
                planned: len,
                read: now,
            });
        }
        Ok(())
    }

    /// `n` zero bytes (the end-of-archive blocks, record padding).
    pub(crate) fn zeros(&mut self, n: u64) -> Result<(), crate::Error> {
        let mut left = n;
        while left > 0 {
            let k = left.min(BLOCK) as usize;
            self.put(&ZEROS[..k])?;
            left -= k as u64;
        }
        Ok(())
    }

    /// The bytes written, which must be the planned size.
    pub(crate) fn finish(self, planned: u64) -> Result<u64, crate::Error> {
        if self.written != planned {
            return Err(crate::Error::PlannedSize {
                planned,
                actual: self.written,
            });
        }
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {

    /// A file that shrinks or grows between planning and writing makes either writer stop
    /// with an error naming it, never a stream of another size than planned.
    #[test]
    fn a_file_that_changed_size_since_the_plan_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("grows");
        std::fs::write(&f, vec![1u8; 3000]).unwrap();
        let gnu = crate::gnu::plan(
            dir.path(),
            &crate::gnu::GnuOptions::recipe(0, Default::default()),
        )
        .unwrap();
        let go = crate::gostorage::plan_tree(dir.path(), &Default::default()).unwrap();
        for (bytes, says) in [(10usize, "found 10)"), (5000, "found 5000)")] {
            std::fs::write(&f, vec![2u8; bytes]).unwrap();
            let e = gnu.write_to(&mut Vec::new()).unwrap_err().to_string();
            assert!(
                e.contains("grows: ") && e.contains(says),
                "gnu, {bytes}: {e}"
            );
            let e = go.write_to(&mut Vec::new()).unwrap_err().to_string();
            assert!(
                e.contains("grows: ") && e.contains(says),
                "go, {bytes}: {e}"
            );
        }
    }
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        let mut v = Vec::new();
        pax_record(&mut v, b"path", b"./h\xc3\xa9llo");
        assert_eq!(v, b"17 path=./h\xc3\xa9llo\n");
        // Every value length around the 2 -> 3 digit edge: the length is the record's own.
        for n in 85..100 {
            let mut v = Vec::new();
            pax_record(&mut v, b"k", &vec![b'v'; n]);
            let sp = v.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&v[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, v.len(), "value of {n} bytes");
        }
        // 1 + 94 + 3 = 98 without the length; 98 + 2 = 100 needs 3 digits: 101.
        let mut v = Vec::new();
        pax_record(&mut v, b"k", &[b'v'; 94]);
        assert_eq!(&v[..4], b"101 ");
    }

    #[test]
    fn octal_fields() {
        let mut f = [0xffu8; 8];
        put_octal(&mut f, 0o755);
        assert_eq!(&f, b"0000755\0");
        let mut f = [0u8; 12];
        put_octal(&mut f, max_octal(12));
        assert_eq!(&f, b"77777777777\0");
        assert_eq!(max_octal(8), 2_097_151);
        assert_eq!(max_octal(12), 8_589_934_591);
    }
}
