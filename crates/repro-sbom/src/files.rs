//! The files of a root, with their hashes, for `--files`.
//!
//! Only entries with content are listed: regular files and hardlinks (directories,
//! symlinks, devices and fifos have no bytes to hash). SPDX 2.3 requires a SHA-1 for every
//! file; an image's merged tree has only sha256, so [`Sha1Index`] is filled by reading the
//! layers once more ([`Sha1Index::add_tar`]) and looked up by sha256.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;

use repro_rootfs::{Kind, Tree};
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

/// One file of the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the root, `/`-separated, no leading `./` (lossy UTF-8 for other names).
    pub path: String,
    pub size: u64,
    /// Lowercase hex.
    pub sha256: String,
    /// Lowercase hex, when known.
    pub sha1: Option<String>,
}

/// sha256 (hex) → sha1 (hex) of every regular file seen.
#[derive(Debug, Clone, Default)]
pub struct Sha1Index(pub BTreeMap<String, String>);

fn hash_stream(mut r: impl Read) -> io::Result<(u64, String, String)> {
    let mut a = Sha256::new();
    let mut b = Sha1::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        a.update(&buf[..k]);
        b.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, hex::encode(a.finalize()), hex::encode(b.finalize())))
}

impl Sha1Index {
    /// Hash every regular file of an (uncompressed) layer tar.
    pub fn add_tar(&mut self, tar: impl Read) -> io::Result<()> {
        let mut a = tar::Archive::new(tar);
        for e in a.entries()? {
            let e = e?;
            let t = e.header().entry_type();
            if !(t.is_file() || t == tar::EntryType::Continuous) {
                continue;
            }
            let (_, s256, s1) = hash_stream(e)?;
            self.0.insert(s256, s1);
        }
        Ok(())
    }
}

/// The files of an image's merged tree; sha1 from `sha1` where given.
pub fn from_tree(tree: &Tree, sha1: Option<&Sha1Index>) -> Vec<FileEntry> {
    let mut out: Vec<FileEntry> = tree
        .entries
        .iter()
        .filter(|(_, n)| matches!(n.kind, Kind::File | Kind::Hardlink))
        .filter_map(|(p, n)| {
            let d = n.sha256.as_ref()?;
            let hex = d.digest().to_string();
            Some(FileEntry {
                path: p.display(),
                size: n.size,
                sha1: sha1.and_then(|i| i.0.get(&hex).cloned()),
                sha256: hex,
            })
        })
        .collect();
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

/// Every regular file below `root` (symlinks are not followed, other file systems such as
/// `/proc` are not entered), hashed with `threads` threads (at least 1); sorted by path, so
/// the result does not depend on the count.
pub fn from_dir(root: &Path, threads: usize) -> io::Result<Vec<FileEntry>> {
    use std::os::unix::fs::MetadataExt;
    let dev = fs::metadata(root)?.dev();
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let ft = e.file_type()?;
            if ft.is_dir() {
                if e.metadata()?.dev() == dev {
                    stack.push(e.path());
                }
            } else if ft.is_file() {
                paths.push(e.path());
            }
        }
    }
    paths.sort();
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<io::Result<FileEntry>>>> =
        Mutex::new((0..paths.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        i
                    };
                    let Some(p) = paths.get(i) else { break };
                    let r = fs::File::open(p)
                        .and_then(hash_stream)
                        .map(|(size, s256, s1)| {
                            let rel = p.strip_prefix(root).unwrap_or(p);
                            FileEntry {
                                path: rel.to_string_lossy().into_owned(),
                                size,
                                sha256: s256,
                                sha1: Some(s1),
                            }
                        });
                    let r =
                        r.map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())));
                    results.lock().unwrap()[i] = Some(r);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(paths.len());
    for r in results.into_inner().unwrap() {
        out.push(r.expect("every path hashed")?);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}
