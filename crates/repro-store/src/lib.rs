//! A content-addressed blob store laid out as an OCI image layout.
//!
//! Every write streams through a [`VerifyingReader`] into a temp file, is fsynced, and is
//! renamed into `blobs/<alg>/<hex>` only when digest and size match; the directory is fsynced
//! after the rename. So a reader never sees a partial or corrupt blob, also after `kill -9`.
//! Paths are built only from digests validated by [`repro_oci::digest::check_verifiable`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};
use repro_oci::digest::{
    Digest, DigestError, Expect, VerifyingReader, check_verifiable, sha256_of,
};

pub mod taglog;
pub use taglog::{TagLog, TagRecord};

const TMP_DIR: &str = ".repro-tmp";
const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_JSON: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The content did not verify; nothing was stored.
    #[error("{0}")]
    Verify(String),
    #[error("{path}: not an OCI image layout ({reason})")]
    NotLayout { path: PathBuf, reason: String },
    #[error("{path}: malformed index.json: {reason}")]
    BadIndex { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI image layout directory used as a verified blob store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open a layout, creating it (and `oci-layout`, an empty `index.json`) when missing.
    pub fn open_or_create(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs")).map_err(io_err(&root))?;
        let store = Store { root };
        let layout = store.root.join(LAYOUT_FILE);
        if !layout.exists() {
            store.write_file_atomic(&layout, LAYOUT_JSON)?;
        } else {
            store.check_layout_file()?;
        }
        if !store.root.join("index.json").exists() {
            store.write_index(&empty_index())?;
        }
        store.clean_stale_temps();
        Ok(store)
    }

    /// Open an existing layout for reading; never creates anything.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let store = Store { root: root.into() };
        store.check_layout_file()?;
        Ok(store)
    }

    fn check_layout_file(&self) -> Result<(), StoreError> {
        let path = self.root.join(LAYOUT_FILE);
        let bytes = fs::read(&path).map_err(|e| StoreError::NotLayout {
            path: self.root.clone(),
            reason: format!("cannot read oci-layout: {e}"),
        })?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::NotLayout {
                path: self.root.clone(),
                reason: format!("oci-layout: {e}"),
            })?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(ver) if ver.starts_with("1.") => Ok(()),
            other => Err(StoreError::NotLayout {
                path: self.root.clone(),
                reason: format!("unsupported imageLayoutVersion {other:?}"),
            }),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives. Errors for digests we cannot verify, so no unvalidated string
    /// ever becomes a path.
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        check_verifiable(digest)?;
        Ok(self
            .root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest()))
    }

    /// Is the blob present (and of the expected size, when given)?
    pub fn has(&self, digest: &Digest, size: Option<u64>) -> Result<bool, StoreError> {
        let path = self.blob_path(digest)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file() && size.is_none_or(|s| s == m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Open a stored blob, verifying it again as it is read (a store can rot on disk).
    pub fn open(&self, expect: &Expect) -> Result<Option<VerifyingReader<File>>, StoreError> {
        let path = self.blob_path(&expect.digest)?;
        match File::open(&path) {
            Ok(f) => Ok(Some(VerifyingReader::new(
                f,
                expect.clone(),
                format!("{}", path.display()),
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Read a whole (small) blob, verified.
    pub fn read_small(&self, expect: &Expect) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(mut r) = self.open(expect)? else {
            return Ok(None);
        };
        let mut v = Vec::new();
        r.read_to_end(&mut v)
            .map_err(|e| StoreError::Verify(e.to_string()))?;
        Ok(Some(v))
    }

    /// Stream `reader` into the store. The blob becomes visible only if it matches
    /// `expect`; on any error the temp file is removed and the store is unchanged.
    /// Returns the number of bytes written. `progress` is called with byte counts.
    pub fn put(
        &self,
        expect: &Expect,
        reader: impl Read,
        what: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, StoreError> {
        let dest = self.blob_path(&expect.digest)?;
        if self.has(&expect.digest, expect.size)? {
            return Ok(expect.size.unwrap_or(0));
        }
        let mut verifying = VerifyingReader::new(reader, expect.clone(), what);
        let (tmp, mut file) = self.temp_file()?;
        let result = (|| -> Result<u64, StoreError> {
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            loop {
                let n = match verifying.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                        return Err(StoreError::Verify(e.to_string()));
                    }
                    Err(e) => return Err(StoreError::Verify(format!("{what}: {e}"))),
                };
                file.write_all(&buf[..n]).map_err(io_err(&tmp))?;
                total += n as u64;
                progress(n as u64);
            }
            file.sync_all().map_err(io_err(&tmp))?;
            Ok(total)
        })();
        drop(file);
        match result {
            Ok(total) => {
                self.commit(&tmp, &dest)?;
                Ok(total)
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Wrap a download so that the bytes the caller reads are also written to the store:
    /// one network read feeds both. The blob is committed only when the stream ends verified;
    /// an error or an early drop discards the temp file.
    pub fn tee<R: Read>(
        &self,
        expect: &Expect,
        reader: R,
        what: &str,
    ) -> Result<TeeReader<R>, StoreError> {
        let dest = self.blob_path(&expect.digest)?;
        let (tmp, file) = self.temp_file()?;
        Ok(TeeReader {
            inner: VerifyingReader::new(reader, expect.clone(), what),
            file: Some(file),
            tmp,
            dest,
            store: self.clone(),
        })
    }

    /// Store bytes whose digest we compute (for blobs we produce ourselves).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, StoreError> {
        let digest = sha256_of(bytes);
        let expect = Expect {
            digest: digest.clone(),
            size: Some(bytes.len() as u64),
        };
        self.put(&expect, bytes, "generated blob", &mut |_| {})?;
        Ok(digest)
    }

    fn commit(&self, tmp: &Path, dest: &Path) -> Result<(), StoreError> {
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        fs::rename(tmp, dest).map_err(|e| {
            let _ = fs::remove_file(tmp);
            StoreError::Io {
                path: dest.to_path_buf(),
                source: e,
            }
        })?;
        sync_dir(dir)
    }

    /// A fresh temp file named after our pid, so stale ones from dead processes can be
    /// recognised and removed without touching a live writer's file.
    fn temp_file(&self) -> Result<(PathBuf, File), StoreError> {
        let dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let pid = std::process::id();
        for n in 0u32.. {
            let path = dir.join(format!("{pid}-{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => return Ok((path, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::Io { path, source: e }),
            }
        }
        unreachable!("u32 exhausted")
    }

    /// Remove temp files left by processes that no longer exist (killed mid-download).
    fn clean_stale_temps(&self) {
        let dir = self.root.join(TMP_DIR);
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if !process_alive(pid) {
                let _ = fs::remove_file(e.path());
            }
        }
        // Leave no empty helper directory behind in layouts others read.
        let _ = fs::remove_dir(&dir);
    }

    /// Write a small file atomically (temp, fsync, rename, fsync dir).
    pub fn write_file_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let (tmp, mut f) = self.temp_file()?;
        let r = f
            .write_all(bytes)
            .and_then(|_| f.sync_all())
            .map_err(io_err(&tmp));
        drop(f);
        if let Err(e) = r {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, dest).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::Io {
                path: dest.to_path_buf(),
                source: e,
            }
        })?;
        sync_dir(dest.parent().unwrap_or(&self.root))
    }

    /// Remove the (empty) temp directory once no more writes are coming, so layouts that
    /// other tools read hold only what the spec defines.
    pub fn finish(&self) {
        let _ = fs::remove_dir(self.root.join(TMP_DIR));
    }

    pub fn read_index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let bytes = fs::read(&path).map_err(io_err(&path))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::BadIndex {
            path,
            reason: e.to_string(),
        })
    }

    /// Replace index.json, written canonically (sorted keys, no whitespace).
    pub fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let bytes = canonical_json(index).map_err(|e| StoreError::BadIndex {
            path: self.root.join("index.json"),
            reason: e.to_string(),
        })?;
        self.write_file_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Add (or replace, by ref name) an entry of index.json.
    pub fn add_to_index(
        &self,
        mut descriptor: Descriptor,
        ref_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        if let Some(name) = ref_name {
            let mut ann = descriptor.annotations().clone().unwrap_or_default();
            ann.insert(REF_NAME.to_string(), name.to_string());
            descriptor.set_annotations(Some(ann));
            manifests.retain(|d| ref_name_of(d) != Some(name));
        } else {
            manifests.retain(|d| d.digest() != descriptor.digest() || ref_name_of(d).is_some());
        }
        manifests.push(descriptor);
        index.set_manifests(manifests);
        self.write_index(&index)
    }
}

/// See [`Store::tee`].
pub struct TeeReader<R> {
    inner: VerifyingReader<R>,
    file: Option<File>,
    tmp: PathBuf,
    dest: PathBuf,
    store: Store,
}

impl<R: Read> Read for TeeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
        let Some(file) = self.file.as_mut() else {
            return Ok(n);
        };
        if n > 0 {
            if let Err(e) = file.write_all(&buf[..n]) {
                self.discard();
                return Err(e);
            }
            return Ok(n);
        }
        // Verified end of stream: make it durable, then visible.
        let file = self.file.take().expect("checked above");
        let done = file
            .sync_all()
            .map_err(|e| StoreError::Io {
                path: self.tmp.clone(),
                source: e,
            })
            .and_then(|_| {
                drop(file);
                self.store.commit(&self.tmp, &self.dest)
            });
        if let Err(e) = done {
            let _ = fs::remove_file(&self.tmp);
            return Err(io::Error::other(e.to_string()));
        }
        Ok(0)
    }
}

impl<R> TeeReader<R> {
    fn discard(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl<R> Drop for TeeReader<R> {
    fn drop(&mut self) {
        self.discard();
    }
}

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub fn ref_name_of(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

fn empty_index() -> ImageIndex {
    serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).expect("static index parses")
}

/// Serialize with sorted object keys and no insignificant whitespace, whatever map types
/// the value uses inside (oci-spec's annotations are HashMaps).
pub fn canonical_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json's Value map is a BTreeMap (the preserve_order feature is off), so going
    // through Value sorts every object's keys.
    let value = serde_json::to_value(v)?;
    serde_json::to_vec(&value)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn process_alive(pid: i32) -> bool {
    // kill(pid, 0) probes existence without sending anything.
    // SAFETY: signal 0 performs only permission and existence checks.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The default store location: `$REPRO_IMAGE_CACHE`, else `$XDG_CACHE_HOME/repro-image`,
/// else `~/.cache/repro-image`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REPRO_IMAGE_CACHE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p).join("repro-image"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("repro-image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(bytes: &[u8]) -> Expect {
        Expect {
            digest: sha256_of(bytes),
            size: Some(bytes.len() as u64),
        }
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(p: &Path, base: &Path, out: &mut Vec<String>) {
            for e in fs::read_dir(p).unwrap().flatten() {
                let path = e.path();
                out.push(path.strip_prefix(base).unwrap().display().to_string());
                if path.is_dir() {
                    walk(&path, base, out);
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    #[test]
    fn put_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(dir.path()).unwrap();
        let data = b"hello layer";
        let e = expect(data);
        assert!(!s.has(&e.digest, e.size).unwrap());
        s.put(&e, &data[..], "t", &mut |_| {}).unwrap();
        s.finish();
        assert!(s.has(&e.digest, e.size).unwrap());
        assert_eq!(s.read_small(&e).unwrap().unwrap(), data);
        assert!(!dir.path().join(TMP_DIR).exists());
    }

    #[test]
    fn bad_content_leaves_store_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(dir.path()).unwrap();
        let before = listing(dir.path());
        let e = expect(b"the real bytes");
        for (bad, needle) in [
            (&b"the fake bytes"[..], "digest mismatch"),
            (&b"the real"[..], "truncated"),
            (&b"the real bytes and more"[..], "more than"),
        ] {
            let err = s.put(&e, bad, "blob under test", &mut |_| {}).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().contains("blob under test"), "{err}");
            assert!(!s.has(&e.digest, None).unwrap());
        }
        // Failed writes leave at most the empty temp directory, which finish() removes.
        s.finish();
        assert_eq!(listing(dir.path()), before);
    }

    #[test]
    fn tee_commits_only_verified_complete_streams() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(dir.path()).unwrap();
        let data = b"layer bytes from the network";
        let e = expect(data);
        // Dropped half-way: nothing stored.
        let mut t = s.tee(&e, &data[..], "t").unwrap();
        let mut half = [0u8; 5];
        t.read_exact(&mut half).unwrap();
        drop(t);
        assert!(!s.has(&e.digest, None).unwrap());
        // Corrupt: error, nothing stored.
        let mut bad = data.to_vec();
        bad[0] ^= 1;
        let mut t = s.tee(&e, &bad[..], "t").unwrap();
        assert!(io::copy(&mut t, &mut io::sink()).is_err());
        drop(t);
        assert!(!s.has(&e.digest, None).unwrap());
        // Complete: the reader saw every byte and the store has the blob.
        let mut t = s.tee(&e, &data[..], "t").unwrap();
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(s.read_small(&e).unwrap().unwrap(), data);
        s.finish();
        assert!(!dir.path().join(TMP_DIR).exists());
    }

    #[test]
    fn stale_temp_of_dead_process_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        Store::open_or_create(dir.path()).unwrap();
        let tmp = dir.path().join(TMP_DIR);
        fs::create_dir_all(&tmp).unwrap();
        // pid_max is at most 2^22, so this pid cannot exist.
        fs::write(tmp.join("99999999-0"), b"partial").unwrap();
        Store::open_or_create(dir.path()).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn index_is_canonical_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(dir.path()).unwrap();
        let d: Descriptor = serde_json::from_str(
            r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":3,"annotations":{"z":"1","a":"2","m":"3"}}"#,
        )
        .unwrap();
        s.add_to_index(d.clone(), Some("v1")).unwrap();
        let one = fs::read(dir.path().join("index.json")).unwrap();
        s.add_to_index(d, Some("v1")).unwrap();
        let two = fs::read(dir.path().join("index.json")).unwrap();
        assert_eq!(one, two);
        let text = String::from_utf8(one).unwrap();
        assert!(
            text.contains(r#"{"a":"2","m":"3","org.opencontainers.image.ref.name":"v1","z":"1"}"#),
            "{text}"
        );
        assert_eq!(s.read_index().unwrap().manifests().len(), 1);
    }

    #[test]
    fn unverifiable_digest_never_becomes_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_or_create(dir.path()).unwrap();
        let d: Digest = "sha1.evil:abc".parse().unwrap();
        assert!(s.blob_path(&d).is_err());
    }
}
