//! A [`Tree`] from a directory on the host (`--rootfs DIR`): the same fields the layer applier
//! records, read with `lstat` (symlinks are recorded, never followed) and every regular file
//! hashed.
//!
//! - Files with several links: the first path met is the file, the others are
//!   [`Kind::Hardlink`]s naming it (as a tar would list them). The walk is depth-first with
//!   each directory's names in byte order, so the choice does not depend on the filesystem.
//! - Directories on another filesystem than the root (`/proc`, `/sys`, bind mounts when the
//!   root is `/`) are recorded but not entered; a flag says so.
//! - Sockets cannot be in a tar layer and are left out, with a flag.
//! - Extended attributes are not read (mtree does not list them).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use repro_oci::Digest;
use repro_oci::digest::{DigestAlgorithm, Hasher};
use repro_rootfs::{Flag, Kind, Node, Tree, TreePath};

/// A file or directory that could not be read.
#[derive(Debug)]
pub struct HostError {
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> HostError + '_ {
    move |source| HostError {
        path: path.to_path_buf(),
        source,
    }
}

/// glibc's `major()`/`minor()` for a 64-bit `dev_t`.
fn split_dev(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

fn hash_file(path: &Path) -> Result<(u64, Digest), HostError> {
    let mut f = fs::File::open(path).map_err(err(path))?;
    let mut h = Hasher::new(&DigestAlgorithm::Sha256);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(path)(e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, h.finish()))
}

fn flag(tree: &mut Tree, entry: &TreePath, message: &str) {
    tree.flags.push(Flag {
        layer: 0,
        entry: entry.display(),
        message: message.to_string(),
    });
}

/// Read the directory `root` into a tree (layer 0 for every entry).
pub fn tree_from_dir(root: &Path) -> Result<Tree, HostError> {
    let meta = fs::symlink_metadata(root).map_err(err(root))?;
    if !meta.is_dir() {
        return Err(HostError {
            path: root.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let root_dev = meta.dev();
    let mut tree = Tree::default();
    // (dev, ino) of multiply-linked files → the first path and its node.
    let mut links: HashMap<(u64, u64), (TreePath, u64, Digest)> = HashMap::new();
    let mut stack: Vec<(PathBuf, TreePath)> = vec![(root.to_path_buf(), TreePath::root())];
    let mut first = true;
    while let Some((host, tp)) = stack.pop() {
        let meta = fs::symlink_metadata(&host).map_err(err(&host))?;
        let ft = meta.file_type();
        let mut node = Node {
            kind: Kind::File,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            uname: None,
            gname: None,
            size: 0,
            sha256: None,
            link_target: None,
            xattrs: BTreeMap::new(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec().clamp(0, 999_999_999) as u32,
            device: None,
            layer: 0,
            content: None,
        };
        if ft.is_dir() {
            node.kind = Kind::Dir;
            if !first && meta.dev() != root_dev {
                flag(
                    &mut tree,
                    &tp,
                    "another filesystem is mounted here: its contents were not read",
                );
            } else {
                let mut names: Vec<_> = fs::read_dir(&host)
                    .map_err(err(&host))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .map_err(err(&host))?;
                // Pushed in reverse so that names are visited in byte order (which decides
                // which of several hard links is the file).
                names.sort_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
                for name in names {
                    let child = if tp.is_root() {
                        TreePath(name.as_bytes().to_vec())
                    } else {
                        let mut v = tp.0.clone();
                        v.push(b'/');
                        v.extend_from_slice(name.as_bytes());
                        TreePath(v)
                    };
                    stack.push((host.join(&name), child));
                }
            }
        } else if ft.is_symlink() {
            node.kind = Kind::Symlink;
            let target = fs::read_link(&host).map_err(err(&host))?;
            node.link_target = Some(String::from_utf8_lossy(target.as_os_str().as_bytes()).into());
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            match links.get(&key).filter(|_| meta.nlink() > 1) {
                Some((target, size, digest)) => {
                    node.kind = Kind::Hardlink;
                    node.size = *size;
                    node.sha256 = Some(digest.clone());
                    node.link_target = Some(target.display());
                }
                None => {
                    let (size, digest) = hash_file(&host)?;
                    node.size = size;
                    node.sha256 = Some(digest.clone());
                    if meta.nlink() > 1 {
                        links.insert(key, (tp.clone(), size, digest));
                    }
                }
            }
        } else if ft.is_char_device() || ft.is_block_device() {
            node.kind = if ft.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            node.device = Some(split_dev(meta.rdev()));
        } else if ft.is_fifo() {
            node.kind = Kind::Fifo;
        } else {
            flag(
                &mut tree,
                &tp,
                "a socket (no tar layer can hold one): left out",
            );
            continue;
        }
        first = false;
        tree.entries.insert(tp, node);
    }
    Ok(tree)
}
