//! Read-only views of a root filesystem: an image's merged [`Tree`] (with captured file
//! contents) or a directory on the host (`--rootfs DIR`).

use std::borrow::Cow;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use repro_rootfs::{Capture, Kind, Tree, TreePath};

/// Symlinks followed when reading a file before giving up (Linux's limit).
const MAX_LINK_HOPS: usize = 40;

/// Largest file read from a host directory (the same cap as for images).
pub const MAX_FILE: u64 = Capture::DEFAULT_MAX_FILE;

/// One name in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ViewError {
    /// Path relative to the root, as the caller asked for it.
    pub path: String,
    pub reason: String,
}

/// What the inventory needs from a root filesystem. Paths are relative to the root
/// ("var/lib/pacman/local"), `/`-separated.
pub trait RootView {
    /// The root, for messages.
    fn describe(&self) -> String;
    /// The names directly below `dir`, sorted; `None` if `dir` does not exist or is not a
    /// directory. Names that are not UTF-8 are left out.
    fn read_dir(&self, dir: &str) -> Result<Option<Vec<DirEntry>>, ViewError>;
    /// A file's bytes (a final symlink is followed inside the root); `None` if it does not
    /// exist.
    fn read_file(&self, path: &str) -> Result<Option<Cow<'_, [u8]>>, ViewError>;
}

/// Resolve a symlink found at `path` with `target` to a root-relative path; `..` stops at
/// the root, as it does in a chroot.
fn resolve_link(path: &str, target: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    if !target.starts_with('/') {
        parts.extend(path.split('/').filter(|c| !c.is_empty() && *c != "."));
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// The image's merged tree; file bytes come from what the applier captured
/// ([`crate::capture`]).
pub struct TreeView<'a> {
    tree: &'a Tree,
    name: String,
}

impl<'a> TreeView<'a> {
    pub fn new(tree: &'a Tree, name: impl Into<String>) -> Self {
        TreeView {
            tree,
            name: name.into(),
        }
    }
}

impl RootView for TreeView<'_> {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn read_dir(&self, dir: &str) -> Result<Option<Vec<DirEntry>>, ViewError> {
        let p = dir.trim_matches('/');
        match self.tree.get(if p.is_empty() { "." } else { p }) {
            Some(n) if n.kind != Kind::Dir => return Ok(None),
            _ => {}
        }
        let children = self.tree.children(p);
        if children.is_empty() && self.tree.get(p).is_none() {
            return Ok(None);
        }
        Ok(Some(
            children
                .into_iter()
                .filter_map(|(name, node)| {
                    let name = std::str::from_utf8(name).ok()?.to_string();
                    let is_dir = node.is_none_or(|n| n.kind == Kind::Dir);
                    Some(DirEntry { name, is_dir })
                })
                .collect(),
        ))
    }

    fn read_file(&self, path: &str) -> Result<Option<Cow<'_, [u8]>>, ViewError> {
        let mut cur = path.trim_matches('/').to_string();
        for _ in 0..MAX_LINK_HOPS {
            let Some(node) = self.tree.get(&cur) else {
                return Ok(None);
            };
            let err = |reason: String| ViewError {
                path: path.to_string(),
                reason,
            };
            match node.kind {
                Kind::File | Kind::Hardlink => {
                    return match &node.content {
                        Some(c) => Ok(Some(Cow::Borrowed(&c[..]))),
                        None => Err(err(format!(
                            "the content of {cur} (layer {}) was not captured",
                            node.layer
                        ))),
                    };
                }
                Kind::Symlink => {
                    let target = node.link_target.clone().unwrap_or_default();
                    cur = resolve_link(&cur, &target);
                }
                other => return Err(err(format!("{cur} is a {other:?}, not a file"))),
            }
        }
        Err(ViewError {
            path: path.to_string(),
            reason: format!("more than {MAX_LINK_HOPS} symlinks"),
        })
    }
}

/// A directory on the host used as the root (`--rootfs DIR`). Only final symlinks are
/// resolved inside the root; a symlinked parent directory is followed by the host.
pub struct HostDir {
    root: PathBuf,
}

impl HostDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        HostDir { root: root.into() }
    }

    fn host_path(&self, rel: &str) -> PathBuf {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }
}

fn io_err(path: &str, e: &io::Error) -> ViewError {
    ViewError {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

impl RootView for HostDir {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn read_dir(&self, dir: &str) -> Result<Option<Vec<DirEntry>>, ViewError> {
        let p = self.host_path(dir);
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(dir, &e)),
        }
        let mut out = Vec::new();
        for e in fs::read_dir(&p).map_err(|e| io_err(dir, &e))? {
            let e = e.map_err(|e| io_err(dir, &e))?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            let is_dir = e
                .file_type()
                .map_err(|e| io_err(&format!("{dir}/{name}"), &e))?
                .is_dir();
            out.push(DirEntry { name, is_dir });
        }
        out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        Ok(Some(out))
    }

    fn read_file(&self, path: &str) -> Result<Option<Cow<'_, [u8]>>, ViewError> {
        let mut cur = path.trim_matches('/').to_string();
        for _ in 0..MAX_LINK_HOPS {
            let host = self.host_path(&cur);
            let meta = match fs::symlink_metadata(&host) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_err(path, &e)),
            };
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&host).map_err(|e| io_err(path, &e))?;
                cur = resolve_link(&cur, &target.to_string_lossy());
                continue;
            }
            if !meta.is_file() {
                return Err(ViewError {
                    path: path.to_string(),
                    reason: format!("{} is not a regular file", host.display()),
                });
            }
            return read_capped(&host, path).map(|v| Some(Cow::Owned(v)));
        }
        Err(ViewError {
            path: path.to_string(),
            reason: format!("more than {MAX_LINK_HOPS} symlinks"),
        })
    }
}

fn read_capped(host: &Path, path: &str) -> Result<Vec<u8>, ViewError> {
    let f = fs::File::open(host).map_err(|e| io_err(path, &e))?;
    let mut v = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut v)
        .map_err(|e| io_err(path, &e))?;
    if v.len() as u64 > MAX_FILE {
        return Err(ViewError {
            path: path.to_string(),
            reason: format!("larger than {MAX_FILE} bytes"),
        });
    }
    Ok(v)
}

/// Is `p` one of the files the inventory reads ([`crate::capture`])?
pub fn wanted(p: &TreePath) -> bool {
    let b = p.as_bytes();
    b.starts_with(b"var/lib/pacman/local/")
        || (b.starts_with(b"var/lib/pacman/sync/") && b.ends_with(b".db"))
        || b == b"etc/os-release"
        || b == b"usr/lib/os-release"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_root() {
        assert_eq!(
            resolve_link("etc/os-release", "../usr/lib/os-release"),
            "usr/lib/os-release"
        );
        assert_eq!(
            resolve_link("etc/os-release", "/usr/lib/os-release"),
            "usr/lib/os-release"
        );
        assert_eq!(resolve_link("a/b", "../../../../x"), "x");
        assert_eq!(resolve_link("a/b", "c"), "a/c");
    }
}
