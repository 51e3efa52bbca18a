//! The merged root filesystem of an image, built by applying its layers in order as a
//! container runtime would, but only as metadata: nothing is extracted, no layer is held in
//! memory, symlinks are recorded and never followed.
//!
//! Each entry keeps type, mode, owner, size, the sha256 of its content, link target, xattrs,
//! mtime and the layer it came from. OCI whiteouts (`.wh.NAME`, opaque `.wh..wh..opq`) remove
//! entries of lower layers. Hostile entries (`..`, NUL bytes, hardlinks to nothing, whiteouts
//! of the root) are errors naming the layer and entry; oddities a runtime accepts (absolute
//! paths, the same path twice in a layer, entries under a symlink) are flagged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;

use base64::Engine as _;
use repro_oci::Digest;
use repro_oci::digest::{DigestAlgorithm, Hasher};
use serde::Serialize;

const WHITEOUT: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Longer paths than Linux's PATH_MAX cannot be created by any runtime.
const MAX_PATH: usize = 4096;

/// A path in the tree: normalised bytes, relative, no `.`/`..` components, no trailing
/// slash; the root is `.`. Kept as bytes since tar names need not be UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreePath(pub Vec<u8>);

impl TreePath {
    pub fn root() -> Self {
        TreePath(b".".to_vec())
    }
    pub fn is_root(&self) -> bool {
        self.0 == b"."
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Lossy text, for messages and JSON.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
    pub fn parent(&self) -> Option<TreePath> {
        if self.is_root() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Some(TreePath(self.0[..i].to_vec())),
            None => Some(TreePath::root()),
        }
    }
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }
    fn join(&self, name: &[u8]) -> TreePath {
        if self.is_root() {
            TreePath(name.to_vec())
        } else {
            let mut v = self.0.clone();
            v.push(b'/');
            v.extend_from_slice(name);
            TreePath(v)
        }
    }
    /// Is `self` strictly below `dir`?
    pub fn is_under(&self, dir: &TreePath) -> bool {
        if dir.is_root() {
            return !self.is_root();
        }
        self.0.len() > dir.0.len() && self.0.starts_with(&dir.0) && self.0[dir.0.len()] == b'/'
    }
}

impl fmt::Display for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

impl Serialize for TreePath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub uname: Option<String>,
    pub gname: Option<String>,
    /// Content size (for hardlinks: the target's).
    pub size: u64,
    /// sha256 of the content, for files and hardlinks.
    pub sha256: Option<Digest>,
    /// Symlink target as written; for hardlinks, the normalised path linked to.
    pub link_target: Option<String>,
    /// Extended attributes (pax `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*`), values base64.
    pub xattrs: BTreeMap<String, String>,
    /// Seconds since the epoch (pax `mtime` fractions are kept in `mtime_nsec`).
    pub mtime: i64,
    pub mtime_nsec: u32,
    /// (major, minor) for devices.
    pub device: Option<(u32, u32)>,
    /// Index of the layer the entry came from.
    pub layer: usize,
    /// The file's bytes, when the applier was asked to capture this path (see [`Capture`]);
    /// hardlinks share their target's. Dropped with the entry by whiteouts and replacements.
    #[serde(skip)]
    pub content: Option<Arc<[u8]>>,
}

/// Something a runtime would accept but that deserves a look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flag {
    pub layer: usize,
    pub entry: String,
    pub message: String,
}

/// Which files' bytes to keep while streaming, and how many.
///
/// Meant for small metadata files (a package manager's database, `etc/os-release`): every
/// captured byte stays in memory, so both caps are enforced and exceeding either is an error
/// naming the layer and entry rather than a silent omission.
pub struct Capture {
    /// Called with each regular file's normalised path.
    pub select: Box<dyn Fn(&TreePath) -> bool + Send + Sync>,
    /// Largest single file captured.
    pub max_file: u64,
    /// Most bytes captured in total, over all layers (replaced files still count).
    pub max_total: u64,
}

impl Capture {
    pub const DEFAULT_MAX_FILE: u64 = 16 * 1024 * 1024;
    pub const DEFAULT_MAX_TOTAL: u64 = 1024 * 1024 * 1024;

    /// Capture the files `select` accepts, with the default caps.
    pub fn new(select: impl Fn(&TreePath) -> bool + Send + Sync + 'static) -> Self {
        Capture {
            select: Box::new(select),
            max_file: Self::DEFAULT_MAX_FILE,
            max_total: Self::DEFAULT_MAX_TOTAL,
        }
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("max_file", &self.max_file)
            .field("max_total", &self.max_total)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("layer {layer}: entry {entry:?}: {reason}")]
    Hostile {
        layer: usize,
        entry: String,
        reason: String,
    },
    #[error("layer {layer}: {reason}")]
    Tar { layer: usize, reason: String },
}

/// The merged tree.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tree {
    pub entries: BTreeMap<TreePath, Node>,
    pub flags: Vec<Flag>,
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        let p = normalize(path.as_bytes()).ok()?.0;
        self.entries.get(&p)
    }

    /// The captured bytes of `path` (see [`Capture`]); `None` if there is no such entry or
    /// its content was not captured.
    pub fn content(&self, path: &str) -> Option<&Arc<[u8]>> {
        self.get(path)?.content.as_ref()
    }

    /// The names directly below the directory `path`, sorted by bytes, each with its node;
    /// a name that only appears as the parent of deeper entries (a tar need not list every
    /// directory) comes with `None`. Empty if nothing is below `path`.
    pub fn children(&self, path: &str) -> Vec<(&[u8], Option<&Node>)> {
        let Ok((dir, _)) = normalize(path.as_bytes()) else {
            return Vec::new();
        };
        let below: Box<dyn Iterator<Item = (&TreePath, &Node)>> = if dir.is_root() {
            Box::new(self.entries.iter())
        } else {
            Box::new(
                self.entries
                    .range(dir.clone()..)
                    .take_while(|(p, _)| p.0.starts_with(&dir.0)),
            )
        };
        let skip = if dir.is_root() { 0 } else { dir.0.len() + 1 };
        let mut out: BTreeMap<&[u8], Option<&Node>> = BTreeMap::new();
        for (p, n) in below.filter(|(p, _)| p.is_under(&dir)) {
            let rest = &p.0[skip..];
            match rest.iter().position(|&b| b == b'/') {
                None => {
                    out.insert(rest, Some(n));
                }
                Some(i) => {
                    out.entry(&rest[..i]).or_insert(None);
                }
            }
        }
        out.into_iter().collect()
    }

    /// Remove `path` and everything below it whose layer is lower than `layer`.
    fn remove_lower(&mut self, path: &TreePath, layer: usize) {
        if self.entries.get(path).is_some_and(|n| n.layer < layer) {
            self.entries.remove(path);
        }
        self.remove_children_lower(path, layer);
    }

    fn remove_children_lower(&mut self, dir: &TreePath, layer: usize) {
        // Children of "a" sort among the keys starting with "a" ("a-b" and "a.c" too), so
        // one range covers them; the root's children are everything.
        let candidates: Box<dyn Iterator<Item = (&TreePath, &Node)>> = if dir.is_root() {
            Box::new(self.entries.iter())
        } else {
            Box::new(
                self.entries
                    .range(dir.clone()..)
                    .take_while(|(p, _)| p.0.starts_with(&dir.0)),
            )
        };
        let doomed: Vec<TreePath> = candidates
            .filter(|(p, n)| p.is_under(dir) && n.layer < layer)
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            self.entries.remove(&p);
        }
    }

    fn remove_children(&mut self, dir: &TreePath) {
        self.remove_children_lower(dir, usize::MAX);
    }

    /// Nearest ancestor that is a symlink, if any: a runtime would follow it.
    fn symlink_ancestor(&self, path: &TreePath) -> Option<TreePath> {
        let mut p = path.parent();
        while let Some(dir) = p {
            if self
                .entries
                .get(&dir)
                .is_some_and(|n| n.kind == Kind::Symlink)
            {
                return Some(dir);
            }
            p = dir.parent();
        }
        None
    }
}

/// Normalise a tar entry name. Returns the path and whether it was absolute.
fn normalize(name: &[u8]) -> Result<(TreePath, bool), String> {
    if name.contains(&0) {
        return Err("NUL byte in name".into());
    }
    if name.len() > MAX_PATH {
        return Err(format!("name longer than {MAX_PATH} bytes"));
    }
    let absolute = name.first() == Some(&b'/');
    let mut out: Vec<&[u8]> = Vec::new();
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return Err("\"..\" component".into()),
            c => out.push(c),
        }
    }
    if out.is_empty() {
        return Ok((TreePath::root(), absolute));
    }
    Ok((TreePath(out.join(&b'/')), absolute))
}

/// Counts the bytes read from a layer's uncompressed tar and refuses to read past `max`:
/// a decompression bomb then ends with a clear error instead of running for hours.
struct Bounded<R> {
    inner: R,
    read: u64,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read >= self.max {
            // One byte more tells a layer of exactly `max` bytes from a longer one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "the layer holds more than {} uncompressed bytes (the applier's limit)",
                    self.max
                ))),
            };
        }
        let room = (self.max - self.read).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..room])?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Applies layers one after another.
pub struct Applier {
    tree: Tree,
    next_layer: usize,
    capture: Option<Capture>,
    captured_total: u64,
    max_layer_bytes: u64,
}

impl Default for Applier {
    fn default() -> Self {
        Applier {
            tree: Tree::default(),
            next_layer: 0,
            capture: None,
            captured_total: 0,
            max_layer_bytes: Self::DEFAULT_MAX_LAYER_BYTES,
        }
    }
}

impl Applier {
    /// The default limit on a layer's uncompressed tar: far above any real layer, but a
    /// bound on how long a decompression bomb can keep the applier busy.
    pub const DEFAULT_MAX_LAYER_BYTES: u64 = 64 * 1024 * 1024 * 1024;

    pub fn new() -> Self {
        Self::default()
    }

    /// An applier that keeps the bytes of the files `capture` selects.
    pub fn with_capture(capture: Capture) -> Self {
        Applier {
            capture: Some(capture),
            ..Self::default()
        }
    }

    /// Refuse layers whose uncompressed tar is longer than `max` bytes (headers, padding
    /// and content together); the error names the layer and the entry being read.
    pub fn max_layer_bytes(mut self, max: u64) -> Self {
        self.max_layer_bytes = max;
        self
    }

    /// Apply one uncompressed layer tar, streamed.
    pub fn apply_layer(&mut self, tar: impl Read) -> Result<(), RootfsError> {
        let layer = self.next_layer;
        self.next_layer += 1;
        let tar_err = |reason: String| RootfsError::Tar { layer, reason };
        let mut archive = tar::Archive::new(Bounded {
            inner: tar,
            read: 0,
            max: self.max_layer_bytes,
        });
        let mut seen: BTreeSet<TreePath> = BTreeSet::new();
        let entries = archive
            .entries()
            .map_err(|e| tar_err(format!("not a tar stream: {e}")))?;
        // Errors between entries (a cut header, an unreadable rest of the last entry) name
        // the last entry read, so a truncation can be found.
        let mut last: Option<String> = None;
        for entry in entries {
            let mut entry = entry.map_err(|e| match &last {
                Some(l) => tar_err(format!("reading the entry after {l:?}: {e}")),
                None => tar_err(format!("reading entry: {e}")),
            })?;
            let raw_name = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_name).into_owned();
            last = Some(shown.clone());
            let hostile = |reason: String| RootfsError::Hostile {
                layer,
                entry: shown.clone(),
                reason,
            };
            let (path, absolute) = normalize(&raw_name).map_err(hostile)?;
            if absolute {
                self.flag(
                    layer,
                    &shown,
                    "absolute path (a runtime applies it relative to the root)",
                );
            }
            // Whiteouts remove what lower layers put there.
            let base = path.file_name().to_vec();
            if let Some(target_name) = base.strip_prefix(WHITEOUT) {
                let dir = path.parent().unwrap_or_else(TreePath::root);
                if base == OPAQUE {
                    self.tree.remove_children_lower(&dir, layer);
                    continue;
                }
                if target_name.is_empty() || target_name == b"." || target_name == b".." {
                    return Err(hostile("whiteout of the root or of a parent".into()));
                }
                let target = dir.join(target_name);
                self.tree.remove_lower(&target, layer);
                continue;
            }
            if path.is_root() && entry.header().entry_type() != tar::EntryType::Directory {
                return Err(hostile("the root replaced by a non-directory".into()));
            }
            if !seen.insert(path.clone()) {
                self.flag(
                    layer,
                    &shown,
                    "same path twice in one layer (the last one wins)",
                );
            }
            if let Some(link) = self.tree.symlink_ancestor(&path) {
                self.flag(
                    layer,
                    &shown,
                    &format!("below symlink {link}: a runtime would follow it on extraction"),
                );
            }
            let node = self.read_node(layer, &mut entry, &shown, &path)?;
            // A non-directory replaces a directory with everything below it.
            if node.kind != Kind::Dir {
                self.tree.remove_children(&path);
            }
            self.tree.entries.insert(path, node);
        }
        Ok(())
    }

    fn flag(&mut self, layer: usize, entry: &str, message: &str) {
        self.tree.flags.push(Flag {
            layer,
            entry: entry.to_string(),
            message: message.to_string(),
        });
    }

    fn read_node<R: Read>(
        &mut self,
        layer: usize,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
        path: &TreePath,
    ) -> Result<Node, RootfsError> {
        let hostile = |reason: String| RootfsError::Hostile {
            layer,
            entry: shown.to_string(),
            reason,
        };
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            other => return Err(hostile(format!("unsupported entry type {other:?}"))),
        };
        let mut xattrs = BTreeMap::new();
        let mut mtime = h.mtime().map_err(|e| hostile(format!("mtime: {e}")))? as i64;
        let mut mtime_nsec = 0;
        if let Some(pax) = entry
            .pax_extensions()
            .map_err(|e| hostile(format!("pax header: {e}")))?
        {
            for ext in pax {
                let ext = ext.map_err(|e| hostile(format!("pax record: {e}")))?;
                let key = ext
                    .key()
                    .map_err(|_| hostile("pax key is not UTF-8".into()))?;
                let b64 = base64::engine::general_purpose::STANDARD;
                if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                    xattrs.insert(name.to_string(), b64.encode(ext.value_bytes()));
                } else if let Some(name) = key.strip_prefix("LIBARCHIVE.xattr.") {
                    // libarchive writes the value base64-encoded already.
                    let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                    xattrs.insert(name.to_string(), v);
                } else if key == "mtime" {
                    let v = String::from_utf8_lossy(ext.value_bytes()).into_owned();
                    let (secs, frac) = v.split_once('.').unwrap_or((&v, ""));
                    mtime = secs
                        .parse()
                        .map_err(|_| hostile(format!("pax mtime {v:?}")))?;
                    let digits: String = frac.chars().take(9).collect();
                    mtime_nsec = if digits.is_empty() {
                        0
                    } else {
                        format!("{digits:0<9}")
                            .parse()
                            .map_err(|_| hostile(format!("pax mtime {v:?}")))?
                    };
                }
            }
        }
        let mode = h.mode().map_err(|e| hostile(format!("mode: {e}")))? & 0o7777;
        let uid = h.uid().map_err(|e| hostile(format!("uid: {e}")))?;
        let gid = h.gid().map_err(|e| hostile(format!("gid: {e}")))?;
        let uname = h
            .username()
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let gname = h
            .groupname()
            .ok()
            .flatten()
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let device = match kind {
            Kind::Char | Kind::Block => Some((
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            )),
            _ => None,
        };
        let link_raw = entry.link_name_bytes().map(|l| l.into_owned());
        let mut content = None;
        let (size, sha256, link_target) = match kind {
            Kind::File => {
                let mut kept: Option<Vec<u8>> = None;
                if let Some(c) = self.capture.as_ref().filter(|c| (c.select)(path)) {
                    let declared = entry.header().size().unwrap_or(u64::MAX);
                    if declared > c.max_file {
                        return Err(hostile(format!(
                            "{declared} bytes, more than the {} bytes a captured file may have",
                            c.max_file
                        )));
                    }
                    if self.captured_total.saturating_add(declared) > c.max_total {
                        return Err(hostile(format!(
                            "capturing its {declared} bytes would exceed the total of {} bytes \
                             for captured files",
                            c.max_total
                        )));
                    }
                    self.captured_total += declared;
                    kept = Some(Vec::with_capacity(declared as usize));
                }
                let mut hasher = Hasher::new(&DigestAlgorithm::Sha256);
                let mut buf = vec![0u8; 64 * 1024];
                let mut size = 0u64;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(hostile(format!("reading content: {e}"))),
                    };
                    hasher.update(&buf[..n]);
                    if let Some(k) = kept.as_mut() {
                        // Sparse entries may hold more than their header says.
                        let cap = self.capture.as_ref().map_or(0, |c| c.max_file);
                        if (k.len() + n) as u64 > cap {
                            return Err(hostile(format!(
                                "more than the {cap} bytes a captured file may have"
                            )));
                        }
                        k.extend_from_slice(&buf[..n]);
                    }
                    size += n as u64;
                }
                // The tar crate reads a short entry as a short file: a layer cut in the
                // middle of an entry (or a header claiming more than follows) ends here.
                if size != entry.size() {
                    return Err(hostile(format!(
                        "truncated: the header declares {} bytes, the layer ends after {size}",
                        entry.size()
                    )));
                }
                content = kept.map(Arc::from);
                (size, Some(hasher.finish()), None)
            }
            Kind::Hardlink => {
                let raw = link_raw.ok_or_else(|| hostile("hardlink without a target".into()))?;
                let (target, _) =
                    normalize(&raw).map_err(|r| hostile(format!("link target: {r}")))?;
                let t = self.tree.entries.get(&target).ok_or_else(|| {
                    hostile(format!("hardlink to {target}, which does not exist"))
                })?;
                if !matches!(t.kind, Kind::File | Kind::Hardlink) {
                    return Err(hostile(format!(
                        "hardlink to {target}, which is a {:?}, not a file",
                        t.kind
                    )));
                }
                content = t.content.clone();
                (t.size, t.sha256.clone(), Some(target.display()))
            }
            Kind::Symlink => {
                let raw = link_raw.ok_or_else(|| hostile("symlink without a target".into()))?;
                if raw.contains(&0) {
                    return Err(hostile("NUL byte in symlink target".into()));
                }
                (0, None, Some(String::from_utf8_lossy(&raw).into_owned()))
            }
            _ => (0, None, None),
        };
        Ok(Node {
            kind,
            mode,
            uid,
            gid,
            uname,
            gname,
            size,
            sha256,
            link_target,
            xattrs,
            mtime,
            mtime_nsec,
            device,
            layer,
            content,
        })
    }

    pub fn finish(self) -> Tree {
        self.tree
    }
}

#[cfg(test)]
mod tests;
