//! The layer tar dialect of containers/storage (`pkg/archive`, Go's `archive/tar`), as
//! podman/buildah 4.x commit a layer with `--timestamp T`, learnt from the bytes of the test
//! world's reference image (see the tests):
//!
//! - a full layer (`plan_tree`) walks the tree like `filepath.Walk` (a directory before its
//!   contents, names in byte order) and leaves the root out; a diff layer (`plan_diff`,
//!   or `plan_changes` from a [`Snapshot`] taken before the step) holds the changed paths
//!   and their parent directories, sorted by path;
//! - names have no `./`; directories end in `/`; the mode has the file type bits
//!   (`0100644`, `040755`, `0120777`); no user/group names; every mtime is T;
//! - Go picks USTAR when every field fits (a long ASCII name is split into prefix and
//!   name), PAX otherwise: a header `<dir>/PaxHeaders.0/<base>` (non-ASCII bytes dropped,
//!   cut at 100 bytes, no trailing `/`, zero mode, ids and mtime) whose records are sorted
//!   by key, then the member with its name and link target stripped to ASCII and cut;
//! - xattrs: `security.capability`, `security.ima` and `user.*` (not `user.overlay.*`), as
//!   `SCHILY.xattr.*` records;
//! - a deleted path: a whiteout `<dir>/.wh.<name>` (type `0`, mode 0, size 0) where the
//!   path sorts;
//! - hard links: the first name in archive order keeps the contents, later ones are type
//!   `1` with size 0 and the file's mode;
//! - the end: two zero blocks, no record padding.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::Error;
use crate::header::{self, max_octal, pax_record, put_octal, put_str};
use crate::walk::{self, Kind, Node, Owners};

/// `podman build --timestamp T` (`None`: the files' own mtimes, whole seconds).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoOptions {
    pub timestamp: Option<i64>,
    /// Whose view of the owners the layer records: the disk's for a build run as root,
    /// [`Owners::UserNamespace`] for a rootless one (podman's user namespace).
    pub owners: Owners,
}

#[derive(Clone, Debug)]
struct Member {
    node: Node,
    /// Go's `hdr.Name` (directories with `/`).
    name: Vec<u8>,
    hardlink: Option<Vec<u8>>,
    mtime: i64,
    /// Sorted PAX records; `None` when the USTAR format holds the member.
    pax: Option<Vec<u8>>,
    /// A whiteout: no file type bits in its mode.
    whiteout: bool,
    /// The mode has the file type bits (containers/storage's headers) or not (Go's own
    /// `tar.FileInfoHeader`, as buildah's copier uses it).
    type_bits: bool,
    /// User and group names (buildah's copier: Go's `FileInfoHeader` looks them up).
    names: Option<(Vec<u8>, Vec<u8>)>,
}

impl Member {
    fn data_len(&self) -> u64 {
        match (&self.node.kind, &self.hardlink) {
            (Kind::File { size }, None) => *size,
            _ => 0,
        }
    }

    fn archived_len(&self) -> u64 {
        let mut n = crate::BLOCK + header::padded(self.data_len());
        if let Some(p) = &self.pax {
            n += crate::BLOCK + header::padded(p.len() as u64);
        }
        n
    }
}

/// A planned layer; writing it streams the file contents.
#[derive(Clone, Debug)]
pub struct GoLayer {
    members: Vec<Member>,
    size: u64,
}

/// The full layer of the tree at `root` (a `COPY`/`ADD` of a whole rootfs into `scratch`).
pub fn plan_tree(root: &Path, options: &GoOptions) -> Result<GoLayer, Error> {
    let mut nodes = walk::walk(root, &|_| false)?;
    nodes.remove(0); // the root itself is not archived
    plan_tree_nodes(nodes, options)
}

/// A diff layer: the `changed` paths (relative to `root`, e.g. `etc/ld.so.cache`) and each
/// one's parent directories, in path order, as containers/storage's `ExportChanges`.
pub fn plan_diff(root: &Path, changed: &[Vec<u8>], options: &GoOptions) -> Result<GoLayer, Error> {
    let changes: Vec<Change> = changed
        .iter()
        .map(|p| Change {
            path: p.clone(),
            kind: ChangeKind::Modify,
        })
        .collect();
    plan_changes(root, &changes, options)
}

/// The diff layer of `changes` (from [`Snapshot::changes`]) over the tree at `root`: the
/// changed paths and their parent directories in path order, a deleted path as a
/// whiteout (`<dir>/.wh.<name>`, mode 0, type `0`) where it was. containers/storage dates
/// a whiteout with the wall clock, so deletions need `--timestamp` to be reproducible.
pub fn plan_changes(
    root: &Path,
    changes: &[Change],
    options: &GoOptions,
) -> Result<GoLayer, Error> {
    // path -> deleted?
    let mut paths: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    for c in changes {
        let p = trim_slashes(&c.path);
        if p.is_empty()
            || p.split(|&b| b == b'/')
                .any(|c| c.is_empty() || c == b"." || c == b"..")
        {
            return Err(Error::unsupported(
                root.join(OsStr::from_bytes(&c.path)),
                "a changed path must be relative, without `.`/`..` components",
            ));
        }
        for (i, &b) in p.iter().enumerate() {
            if b == b'/' {
                paths.entry(p[..i].to_vec()).or_insert(false);
            }
        }
        paths.insert(p.to_vec(), c.kind == ChangeKind::Delete);
    }
    let items = paths
        .into_iter()
        .map(|(rel, deleted)| {
            let path = root.join(OsStr::from_bytes(&rel));
            if deleted {
                Ok(Item::Whiteout { deleted: rel, path })
            } else {
                Node::stat(&path, &rel).map(Item::Node)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    plan_items(items, options)
}

/// What a step did to a path, as containers/storage's change detection reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Add,
    Modify,
    Delete,
}

/// One changed path (relative, e.g. `etc/ld.so.cache`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: Vec<u8>,
    pub kind: ChangeKind,
}

/// The stat fields containers/storage compares (`statDifferent`): type and mode bits,
/// owner, device number, link target, the `security.capability` xattr, and for
/// non-directories size and mtime (to the nanosecond). Directory mtimes and sizes are not
/// a change: a step that only touched a directory's entries leaves it out unless one of
/// its entries changed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Option<walk::Timestamp>,
    capability: Option<Vec<u8>>,
}

impl Stat {
    fn of(node: &Node) -> Result<Stat, Error> {
        let is_dir = node.kind == Kind::Dir;
        Ok(Stat {
            kind: node.kind.clone(),
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: (!is_dir).then_some(node.mtime),
            capability: walk::xattr_value(&node.path, b"security.capability")?,
        })
    }
}

/// The state of a tree before a step (`RUN`), to find what the step changed.
#[derive(Clone, Debug)]
pub struct Snapshot {
    entries: BTreeMap<Vec<u8>, Stat>,
}

impl Snapshot {
    /// Record the tree at `root` (metadata only).
    pub fn take(root: &Path) -> Result<Snapshot, Error> {
        let mut entries = BTreeMap::new();
        for node in walk::walk(root, &|_| false)?.into_iter().skip(1) {
            entries.insert(node.rel.clone(), Stat::of(&node)?);
        }
        Ok(Snapshot { entries })
    }

    /// What changed between the snapshot and the tree at `root` now, in path order:
    /// added and modified paths, and deleted ones below directories that are still there
    /// (a directory replaced by a file is one modification, as containers/storage has it).
    pub fn changes(&self, root: &Path) -> Result<Vec<Change>, Error> {
        let now = Snapshot::take(root)?;
        let mut out = Vec::new();
        for (path, stat) in &now.entries {
            match self.entries.get(path) {
                None => out.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Add,
                }),
                Some(old) if old != stat => out.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Modify,
                }),
                Some(_) => {}
            }
        }
        for path in self.entries.keys() {
            if now.entries.contains_key(path) {
                continue;
            }
            let parent_is_dir = match path.iter().rposition(|&b| b == b'/') {
                None => true,
                Some(i) => now
                    .entries
                    .get(&path[..i])
                    .is_some_and(|s| s.kind == Kind::Dir),
            };
            if parent_is_dir {
                out.push(Change {
                    path: path.clone(),
                    kind: ChangeKind::Delete,
                });
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn trim_slashes(p: &[u8]) -> &[u8] {
    let start = p.iter().position(|&b| b != b'/').unwrap_or(p.len());
    let end = p.iter().rposition(|&b| b != b'/').map_or(start, |i| i + 1);
    &p[start..end.max(start)]
}

/// What a layer entry comes from.
enum Item {
    Node(Node),
    /// A path the step deleted.
    Whiteout {
        deleted: Vec<u8>,
        path: std::path::PathBuf,
    },
}

fn plan_tree_nodes(nodes: Vec<Node>, options: &GoOptions) -> Result<GoLayer, Error> {
    plan_items(nodes.into_iter().map(Item::Node).collect(), options)
}

fn plan_items(items: Vec<Item>, options: &GoOptions) -> Result<GoLayer, Error> {
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut members = Vec::with_capacity(items.len());
    for item in items {
        let node = match item {
            Item::Node(mut node) => {
                options.owners.apply(&mut node);
                node
            }
            Item::Whiteout { deleted, path } => {
                members.push(whiteout(deleted, path, options)?);
                continue;
            }
        };
        if node.kind == Kind::Socket {
            return Err(Error::unsupported(
                &node.path,
                "a socket (Go's archive/tar refuses sockets)",
            ));
        }
        let mut name = node.rel.clone();
        if node.kind == Kind::Dir {
            name.push(b'/');
        }
        let mut hardlink = None;
        if node.kind != Kind::Dir && node.nlink > 1 {
            match links.get(&(node.dev, node.ino)) {
                Some(first) => hardlink = Some(first.clone()),
                None => {
                    links.insert((node.dev, node.ino), node.rel.clone());
                }
            }
        }
        let mtime = options.timestamp.unwrap_or(node.mtime.sec);
        // containers/storage reads the xattrs before it knows about hard links: a link's
        // header carries them too.
        let xattrs = storage_xattrs(&node.path)?;
        let pax = pax_records(&node, &name, hardlink.as_deref(), mtime, &xattrs)?;
        members.push(Member {
            node,
            name,
            hardlink,
            mtime,
            pax,
            whiteout: false,
            type_bits: true,
            names: None,
        });
    }
    let size = members.iter().map(Member::archived_len).sum::<u64>() + 2 * crate::BLOCK;
    Ok(GoLayer { members, size })
}

fn whiteout(
    deleted: Vec<u8>,
    path: std::path::PathBuf,
    options: &GoOptions,
) -> Result<Member, Error> {
    let Some(mtime) = options.timestamp else {
        return Err(Error::unsupported(
            path,
            "deleted by the step: its whiteout is dated with the build's wall clock unless the \
             image is built with --timestamp",
        ));
    };
    let name = match deleted.iter().rposition(|&b| b == b'/') {
        Some(i) => [&deleted[..=i], b".wh.", &deleted[i + 1..]].concat(),
        None => [b".wh.".as_slice(), &deleted].concat(),
    };
    let node = Node {
        rel: name.clone(),
        path,
        kind: Kind::File { size: 0 },
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: walk::Timestamp::new(mtime, 0),
        dev: 0,
        ino: 0,
        nlink: 1,
    };
    let pax = pax_records(&node, &name, None, mtime, &BTreeMap::new())?;
    Ok(Member {
        node,
        name,
        hardlink: None,
        mtime,
        pax,
        whiteout: true,
        type_bits: true,
        names: None,
    })
}

/// The tar stream whose sha256 is the `dir:<hex>` in the history `created_by` of a
/// buildah `COPY`/`ADD` of a directory (buildah 1.28, podman 4.3): what buildah's
/// `copier.Get` writes for the directory, passed through the content digester's Go
/// `tar.Reader` -> `tar.Writer` filter, which zeroes every time (a zero mtime is written
/// as 0). So the digest covers names, modes, owners, link targets, xattrs and contents, no
/// times. Differences from a containers/storage layer, from buildah's `copier.go`,
/// `digester.go` and Go's `archive/tar`:
///
/// - `filepath.Walk` of the directory, the directory itself left out, names relative to
///   it and *without* a trailing `/` for directories;
/// - headers from `tar.FileInfoHeader`: the mode without file type bits; owners from the
///   disk, in the `owners` view; user and group names from the host's databases (`root`); mtime 0, no
///   atime/ctime;
/// - hard links only between regular files (buildah's `hardlinkChecker`);
/// - xattrs `security.capability`, `security.ima` and `user.*` (`copier.Lgetxattrs`);
/// - sockets skipped; the end: two zero blocks.
pub fn plan_copier_get(dir: &Path, owners: Owners) -> Result<GoLayer, Error> {
    let mut nodes = walk::walk(dir, &|_| false)?;
    nodes.remove(0);
    for n in &mut nodes {
        owners.apply(n);
    }
    let mut users = HashMap::new();
    let mut groups = HashMap::new();
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut members = Vec::with_capacity(nodes.len());
    for node in nodes {
        if node.kind == Kind::Socket {
            continue;
        }
        let name = node.rel.clone();
        let mut hardlink = None;
        if matches!(node.kind, Kind::File { .. }) && node.nlink > 1 {
            match links.get(&(node.dev, node.ino)) {
                Some(first) => hardlink = Some(first.clone()),
                None => {
                    links.insert((node.dev, node.ino), node.rel.clone());
                }
            }
        }
        // the digester's filter zeroes the times; Go writes a zero ModTime as 0
        let mtime = 0;
        let xattrs = copier_xattrs(&node.path)?;
        let pax = pax_records(&node, &name, hardlink.as_deref(), mtime, &xattrs)?;
        let uname = host_name(&mut users, crate::acl::USER, node.uid, &node.path)?;
        let gname = host_name(&mut groups, crate::acl::GROUP, node.gid, &node.path)?;
        members.push(Member {
            node,
            name,
            hardlink,
            mtime,
            pax,
            whiteout: false,
            type_bits: false,
            names: Some((uname, gname)),
        });
    }
    let size = members.iter().map(Member::archived_len).sum::<u64>() + 2 * crate::BLOCK;
    Ok(GoLayer { members, size })
}

/// A user or group name from this host's databases (empty when unknown), as Go's
/// `archive/tar` looks it up for `FileInfoHeader`; cached per id.
fn host_name(
    cache: &mut HashMap<u64, Vec<u8>>,
    tag: u16,
    id: u64,
    path: &Path,
) -> Result<Vec<u8>, Error> {
    if let Some(n) = cache.get(&id) {
        return Ok(n.clone());
    }
    let name = u32::try_from(id)
        .ok()
        .and_then(|id| crate::acl::host_name(tag, id))
        .unwrap_or_default()
        .into_bytes();
    // Go would move a longer or non-ASCII name into a PAX record: not written here.
    if name.len() > 32 || !is_ascii(&name) {
        return Err(Error::unsupported(
            path,
            format!(
                "owner name {:?} does not fit a USTAR header",
                String::from_utf8_lossy(&name)
            ),
        ));
    }
    cache.insert(id, name.clone());
    Ok(name)
}

/// The xattrs buildah's copier reads (`security.capability`, `security.ima`, `user.*`).
fn copier_xattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    for name in walk::xattr_names(path)? {
        let relevant =
            name == b"security.capability" || name == b"security.ima" || name.starts_with(b"user.");
        if relevant && let Some(v) = walk::xattr_value(path, &name)? {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// The xattrs containers/storage puts into a layer, by name.
fn storage_xattrs(path: &Path) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    for name in [b"security.capability".as_slice(), b"security.ima"] {
        if let Some(v) = walk::xattr_value(path, name)? {
            out.insert(name.to_vec(), v);
        }
    }
    for name in walk::xattr_names(path)? {
        if name.starts_with(b"user.")
            && !name.starts_with(b"user.overlay.")
            && let Some(v) = walk::xattr_value(path, &name)?
        {
            out.insert(name, v);
        }
    }
    Ok(out)
}

/// Go's `splitUSTARPath`: split a long ASCII name at a `/` into prefix (≤ 155) and name
/// (≤ 100, not empty).
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !is_ascii(name) {
        return None;
    } else if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&b| b == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Go's `isASCII`: no byte at or above 0x80, no NUL.
fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|&b| b < 0x80 && b != 0)
}

/// Go's `toASCII`: drop every non-ASCII character (and NUL).
fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|&b| b < 0x80 && b != 0).collect()
}

/// The PAX records Go's `Header.allowedFormats` asks for, or `None` when USTAR holds the
/// member.
fn pax_records(
    node: &Node,
    name: &[u8],
    hardlink: Option<&[u8]>,
    mtime: i64,
    xattrs: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Result<Option<Vec<u8>>, Error> {
    let mut ustar = true;
    let mut records: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    if !is_ascii(name) || name.len() > 100 {
        records.insert(b"path".to_vec(), name.to_vec());
        if split_ustar(name).is_none() {
            ustar = false;
        }
    }
    let link: &[u8] = match (&node.kind, hardlink) {
        (_, Some(t)) => t,
        (Kind::Symlink { target }, None) => target,
        _ => b"",
    };
    if !is_ascii(link) && !link.is_empty() || link.len() > 100 {
        records.insert(b"linkpath".to_vec(), link.to_vec());
        ustar = false;
    }
    for (key, v) in [(b"uid".as_slice(), node.uid), (b"gid", node.gid)] {
        if v > max_octal(8) {
            records.insert(key.to_vec(), v.to_string().into_bytes());
            ustar = false;
        }
    }
    if let (Kind::File { size }, None) = (&node.kind, hardlink)
        && *size > max_octal(12)
    {
        records.insert(b"size".to_vec(), size.to_string().into_bytes());
        ustar = false;
    }
    if let Kind::Char { major, minor } | Kind::Block { major, minor } = node.kind
        && (major > max_octal(8) || minor > max_octal(8))
    {
        return Err(Error::unsupported(
            &node.path,
            format!("device {major},{minor} needs Go's GNU format, not written here"),
        ));
    }
    if mtime < 0 || mtime as u64 > max_octal(12) {
        records.insert(b"mtime".to_vec(), mtime.to_string().into_bytes());
        ustar = false;
    }
    for (k, v) in xattrs {
        records.insert([b"SCHILY.xattr.".as_slice(), k].concat(), v.clone());
        ustar = false;
    }
    if ustar {
        return Ok(None);
    }
    let mut out = Vec::new();
    for (k, v) in &records {
        pax_record(&mut out, k, v);
    }
    Ok(Some(out))
}

/// Go's `formatter.formatString`: copy, NUL-terminate when shorter, and never leave a
/// cut name ending in `/`.
fn go_str(field: &mut [u8], s: &[u8]) {
    put_str(field, s);
    if s.len() > field.len() && field[field.len() - 1] == b'/' {
        let n = s[..field.len()]
            .iter()
            .rposition(|&b| b != b'/')
            .map_or(0, |i| i + 1);
        field[n] = 0;
    }
}

/// Go's `formatOctal`: a value that does not fit is written as zero (its PAX record
/// holds it).
fn go_octal(field: &mut [u8], v: i64) {
    let v = if v < 0 || v as u64 > max_octal(field.len()) {
        0
    } else {
        v as u64
    };
    put_octal(field, v);
}

/// `path.Join(dir, "PaxHeaders.0", file)` of `path.Split(name)`, made ASCII and cut as
/// Go's `writeRawFile` does.
fn pax_header_name(name: &[u8]) -> Vec<u8> {
    let (dir, file) = match name.iter().rposition(|&b| b == b'/') {
        Some(i) => (&name[..=i], &name[i + 1..]),
        None => (b"".as_slice(), name),
    };
    let mut joined = Vec::new();
    for part in [dir, b"PaxHeaders.0", file] {
        if part.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.push(b'/');
        }
        joined.extend_from_slice(part);
    }
    // path.Clean: collapse repeated slashes, no trailing slash.
    let mut clean: Vec<u8> = Vec::with_capacity(joined.len());
    for &b in &joined {
        if b == b'/' && clean.last() == Some(&b'/') {
            continue;
        }
        clean.push(b);
    }
    while clean.len() > 1 && clean.last() == Some(&b'/') {
        clean.pop();
    }
    let mut out = to_ascii(&clean);
    out.truncate(100);
    while out.last() == Some(&b'/') {
        out.pop();
    }
    out
}

impl GoLayer {
    /// The layer's exact size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member names (Go's `hdr.Name`) in layer order.
    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.members.iter().map(|m| m.name.as_slice())
    }

    /// Stream the layer into `out`; returns the bytes written (= [`GoLayer::size`]).
    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> Result<u64, Error> {
        let mut stream = header::Stream::new(out, "the layer tar stream");
        for m in &self.members {
            if let Some(records) = &m.pax {
                stream.extended(&pax_header(&m.name, records.len() as u64), records)?;
            }
            stream.member(&member_header(m), &m.node.path, m.data_len())?;
        }
        // two zero blocks, no record padding
        stream.zeros(2 * crate::BLOCK)?;
        stream.finish(self.size)
    }
}

fn pax_header(name: &[u8], len: u64) -> [u8; 512] {
    let mut b = [0u8; 512];
    b[header::TYPEFLAG] = b'x';
    go_str(&mut b[header::NAME], &pax_header_name(name));
    go_octal(&mut b[header::MODE], 0);
    go_octal(&mut b[header::UID], 0);
    go_octal(&mut b[header::GID], 0);
    go_octal(&mut b[header::SIZE], len as i64);
    go_octal(&mut b[header::MTIME], 0);
    header::put_magic(&mut b);
    header::finish(&mut b);
    b
}

fn member_header(m: &Member) -> [u8; 512] {
    let n = &m.node;
    let mut b = [0u8; 512];
    let (flag, type_bits, major, minor) = match (&n.kind, &m.hardlink) {
        _ if m.whiteout => (b'0', 0, 0, 0),
        (_, Some(_)) => (b'1', 0o100000, 0, 0),
        (Kind::File { .. }, None) => (b'0', 0o100000, 0, 0),
        (Kind::Symlink { .. }, None) => (b'2', 0o120000, 0, 0),
        (Kind::Char { major, minor }, None) => (b'3', 0o020000, *major, *minor),
        (Kind::Block { major, minor }, None) => (b'4', 0o060000, *major, *minor),
        (Kind::Dir, None) => (b'5', 0o040000, 0, 0),
        (Kind::Fifo, None) => (b'6', 0o010000, 0, 0),
        (Kind::Socket, None) => unreachable!("sockets are refused when planning"),
    };
    let link: &[u8] = match (&n.kind, &m.hardlink) {
        (_, Some(t)) => t,
        (Kind::Symlink { target }, None) => target,
        _ => b"",
    };
    b[header::TYPEFLAG] = flag;
    match (&m.pax, split_ustar(&m.name)) {
        (None, Some((prefix, name))) => {
            go_str(&mut b[header::NAME], name);
            go_str(&mut b[header::PREFIX], prefix);
        }
        (None, None) => go_str(&mut b[header::NAME], &m.name),
        (Some(_), _) => go_str(&mut b[header::NAME], &to_ascii(&m.name)),
    }
    go_str(&mut b[header::LINKNAME], &to_ascii(link));
    let type_bits = if m.type_bits { type_bits } else { 0 };
    go_octal(&mut b[header::MODE], i64::from(n.mode & 0o7777) | type_bits);
    go_octal(&mut b[header::UID], n.uid as i64);
    go_octal(&mut b[header::GID], n.gid as i64);
    go_octal(&mut b[header::SIZE], m.data_len() as i64);
    go_octal(&mut b[header::MTIME], m.mtime);
    if let Some((uname, gname)) = &m.names {
        go_str(&mut b[header::UNAME], uname);
        go_str(&mut b[header::GNAME], gname);
    }
    go_octal(&mut b[header::DEVMAJOR], major as i64);
    go_octal(&mut b[header::DEVMINOR], minor as i64);
    header::put_magic(&mut b);
    header::finish(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of this process's files, seen from a user namespace that maps root to this
    /// process, is root's: the same layer (and copier stream) as with every owner 0, and
    /// another user's view makes them the overflow id.
    #[test]
    fn a_user_namespace_view_records_the_mapped_owner_as_root() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/os-release"), b"NAME=x\n").unwrap();
        let md = std::fs::metadata(dir.path()).unwrap();
        let (uid, gid) = (md.uid(), md.gid());
        let bytes = |owners: Owners| {
            let options = GoOptions {
                timestamp: Some(1),
                owners,
            };
            let mut layer = Vec::new();
            plan_tree(dir.path(), &options)
                .unwrap()
                .write_to(&mut layer)
                .unwrap();
            let mut copier = Vec::new();
            plan_copier_get(dir.path(), owners)
                .unwrap()
                .write_to(&mut copier)
                .unwrap();
            (layer, copier)
        };
        let mine = bytes(Owners::UserNamespace { uid, gid });
        assert_eq!(mine, bytes(Owners::FreshFakeroot));
        let (layer, _) = bytes(Owners::UserNamespace {
            uid: uid.wrapping_add(1),
            gid,
        });
        // the first header (etc/): uid field at 108..116, Go's octal
        assert_eq!(&layer[108..116], b"0177776\0");
        assert_eq!(&mine.0[108..116], b"0000000\0");
    }

    #[test]
    fn ustar_split_as_go() {
        let a100 = "a".repeat(100);
        let long_file = format!("usr/share/edgecases/{a100}/long-100.txt");
        assert_eq!(
            split_ustar(long_file.as_bytes()),
            Some((
                format!("usr/share/edgecases/{a100}").as_bytes(),
                b"long-100.txt".as_slice()
            ))
        );
        // The directory itself: its last component is 100 bytes plus `/`: no split.
        let dir = format!("usr/share/edgecases/{a100}/");
        assert_eq!(split_ustar(dir.as_bytes()), None);
        assert_eq!(split_ustar(b"short"), None);
        let non_ascii = format!("{a100}/\u{e9}");
        assert_eq!(split_ustar(non_ascii.as_bytes()), None);
    }

    #[test]
    fn pax_header_names_as_go() {
        assert_eq!(
            pax_header_name("usr/share/edgecases/dir with spaces/\u{f1}/".as_bytes()),
            b"usr/share/edgecases/dir with spaces//PaxHeaders.0"
        );
        assert_eq!(
            pax_header_name("usr/share/edgecases/\u{fc}n.txt".as_bytes()),
            b"usr/share/edgecases/PaxHeaders.0/n.txt"
        );
        assert_eq!(pax_header_name(b"top"), b"PaxHeaders.0/top");
        let long = format!("usr/share/edgecases/{}/", "a".repeat(100));
        assert_eq!(pax_header_name(long.as_bytes()), &long.as_bytes()[..100]);
    }

    #[test]
    fn go_strings_do_not_end_in_a_cut_slash() {
        let mut f = [0u8; 10];
        go_str(&mut f, b"abcdefghi/jk");
        assert_eq!(&f, b"abcdefghi\0");
        let mut f = [0u8; 10];
        go_str(&mut f, b"abc");
        assert_eq!(&f, b"abc\0\0\0\0\0\0\0");
    }
}
