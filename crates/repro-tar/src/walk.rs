//! The tree walk both writers share: depth first, a directory before its contents, the
//! entries of each directory in byte order of their names (GNU tar's `--sort=name`, Go's
//! `filepath.Walk`), nothing followed through symlinks.

use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// A file time: seconds since the epoch and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    pub fn new(sec: i64, nsec: u32) -> Self {
        Timestamp { sec, nsec }
    }
}

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File { size: u64 },
    Symlink { target: Vec<u8> },
    Char { major: u64, minor: u64 },
    Block { major: u64, minor: u64 },
    Fifo,
    Socket,
}

/// One entry of the walked tree, with the metadata a tar header needs.
#[derive(Clone, Debug)]
pub struct Node {
    /// The path relative to the walked root (`etc/passwd`); empty for the root itself.
    pub rel: Vec<u8>,
    /// The path on disk.
    pub path: PathBuf,
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: Timestamp,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
}

impl Node {
    fn from_metadata(rel: Vec<u8>, path: PathBuf, md: &fs::Metadata) -> Result<Node, Error> {
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File { size: md.len() }
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(|e| Error::io(&path, e))?;
            Kind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else if ft.is_char_device() {
            let (major, minor) = dev_numbers(md.rdev());
            Kind::Char { major, minor }
        } else if ft.is_block_device() {
            let (major, minor) = dev_numbers(md.rdev());
            Kind::Block { major, minor }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else {
            return Err(Error::unsupported(&path, "unknown file type"));
        };
        Ok(Node {
            rel,
            kind,
            mode: md.mode() & 0o7777,
            uid: u64::from(md.uid()),
            gid: u64::from(md.gid()),
            mtime: Timestamp::new(md.mtime(), md.mtime_nsec() as u32),
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            path,
        })
    }

    /// The node of one path (not followed if it is a symlink).
    pub fn stat(path: &Path, rel: &[u8]) -> Result<Node, Error> {
        let md = fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
        Node::from_metadata(rel.to_vec(), path.to_path_buf(), &md)
    }
}

/// Whose view of the owners a writer records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Owners {
    /// `st_uid`/`st_gid` as the disk has them (the writer runs as the tree's real owner or
    /// as root).
    #[default]
    Disk,
    /// As tar sees the tree from inside a *fresh* `fakeroot` session (the recipe's
    /// `fakeroot -- tar …`, a session other than the one pacman ran in): faked knows
    /// none of the files, and fakeroot reports an unknown file as owned by 0:0 (its
    /// default without `--unknown-is-real`). Modes, xattrs and times are the disk's: the
    /// widening fakeroot does (a 0555 directory made 0755 so that its real owner can still
    /// write into it) already happened on disk when pacman's session chmod'ed it.
    FreshFakeroot,
    /// As a process sees the tree from inside a user namespace that maps root to this
    /// unprivileged `uid`/`gid` and nothing else (`unshare --user --map-root-user`, what
    /// rootless podman's chroot isolation runs in): that uid and gid show as 0, every
    /// other id as the kernel's overflow id 65534.
    UserNamespace { uid: u32, gid: u32 },
}

/// The kernel's `overflowuid`/`overflowgid`: how an unmapped id shows in a user namespace.
pub const OVERFLOW_ID: u64 = 65534;

impl Owners {
    /// The owners of `node` in this view.
    pub fn apply(&self, node: &mut Node) {
        match *self {
            Owners::Disk => {}
            Owners::FreshFakeroot => {
                node.uid = 0;
                node.gid = 0;
            }
            Owners::UserNamespace { uid, gid } => {
                node.uid = if node.uid == u64::from(uid) {
                    0
                } else {
                    OVERFLOW_ID
                };
                node.gid = if node.gid == u64::from(gid) {
                    0
                } else {
                    OVERFLOW_ID
                };
            }
        }
    }
}

/// Linux's `major()`/`minor()` of a `dev_t`.
fn dev_numbers(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// Walk `root`. `skip(rel)` is asked for every entry below the root before it is read;
/// a skipped directory is not descended into.
pub fn walk(root: &Path, skip: &dyn Fn(&[u8]) -> bool) -> Result<Vec<Node>, Error> {
    let mut out = Vec::new();
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), Vec::new())];
    while let Some((path, rel)) = stack.pop() {
        let node = Node::stat(&path, &rel)?;
        let is_dir = node.kind == Kind::Dir;
        out.push(node);
        if !is_dir {
            continue;
        }
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in fs::read_dir(&path).map_err(|e| Error::io(&path, e))? {
            let entry = entry.map_err(|e| Error::io(&path, e))?;
            names.push(entry.file_name().as_bytes().to_vec());
        }
        names.sort();
        for name in names.into_iter().rev() {
            let mut child_rel = rel.clone();
            if !child_rel.is_empty() {
                child_rel.push(b'/');
            }
            child_rel.extend_from_slice(&name);
            if skip(&child_rel) {
                continue;
            }
            stack.push((path.join(OsStr::from_bytes(&name)), child_rel));
        }
    }
    Ok(out)
}

fn cpath(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::unsupported(path, "path contains a NUL byte"))
}

/// The extended attribute names of `path` (not followed), in the order the filesystem
/// lists them (`llistxattr`), which is the order GNU tar archives them in.
pub fn xattr_names(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let c = cpath(path)?;
    loop {
        // SAFETY: c is NUL-terminated; a null buffer with size 0 asks for the size.
        let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let err = std::io::Error::last_os_error();
            if matches!(err.raw_os_error(), Some(libc::ENOTSUP)) {
                return Ok(Vec::new());
            }
            return Err(Error::io(path, err));
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: buf has buf.len() writable bytes.
        let got = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            // The list grew between the two calls: ask again.
            if err.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            return Err(Error::io(path, err));
        }
        buf.truncate(got as usize);
        return Ok(buf
            .split(|&b| b == 0)
            .filter(|n| !n.is_empty())
            .map(<[u8]>::to_vec)
            .collect());
    }
}

/// The value of the extended attribute `name` of `path` (not followed); `None` if absent.
pub fn xattr_value(path: &Path, name: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| Error::unsupported(path, "xattr name with NUL"))?;
    loop {
        // SAFETY: both strings are NUL-terminated; size 0 asks for the size.
        let size = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) };
        if size < 0 {
            let err = std::io::Error::last_os_error();
            if matches!(
                err.raw_os_error(),
                Some(libc::ENODATA) | Some(libc::ENOTSUP)
            ) {
                return Ok(None);
            }
            return Err(Error::io(path, err));
        }
        let mut buf = vec![0u8; size as usize];
        // SAFETY: buf has buf.len() writable bytes.
        let got =
            unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ERANGE) {
                continue;
            }
            if err.raw_os_error() == Some(libc::ENODATA) {
                return Ok(None);
            }
            return Err(Error::io(path, err));
        }
        buf.truncate(got as usize);
        return Ok(Some(buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_as_a_user_namespace_sees_them() {
        let node = |uid, gid| Node {
            rel: b"f".to_vec(),
            path: PathBuf::from("/f"),
            kind: Kind::Fifo,
            mode: 0o644,
            uid,
            gid,
            mtime: Timestamp::new(0, 0),
            dev: 0,
            ino: 0,
            nlink: 1,
        };
        let ns = Owners::UserNamespace {
            uid: 1000,
            gid: 100,
        };
        for ((uid, gid), want) in [
            ((1000, 100), (0, 0)),
            ((1000, 5), (0, OVERFLOW_ID)),
            ((0, 100), (OVERFLOW_ID, 0)),
            ((33, 33), (OVERFLOW_ID, OVERFLOW_ID)),
        ] {
            let mut n = node(uid, gid);
            ns.apply(&mut n);
            assert_eq!((n.uid, n.gid), want, "{uid}:{gid}");
        }
        let mut n = node(33, 44);
        Owners::FreshFakeroot.apply(&mut n);
        assert_eq!((n.uid, n.gid), (0, 0));
        let mut n = node(33, 44);
        Owners::Disk.apply(&mut n);
        assert_eq!((n.uid, n.gid), (33, 44));
    }

    #[test]
    fn linux_dev_numbers() {
        // glibc's makedev, for numbers beyond the old 8-bit fields too.
        let makedev = |major: u64, minor: u64| {
            ((major & 0xfff) << 8)
                | ((major & !0xfff) << 32)
                | (minor & 0xff)
                | ((minor & !0xff) << 12)
        };
        assert_eq!(dev_numbers(0x801), (8, 1));
        assert_eq!(dev_numbers(makedev(8, 1)), (8, 1));
        let dev = makedev(259, 70000);
        assert_eq!(dev_numbers(dev), (259, 70000));
    }
}
