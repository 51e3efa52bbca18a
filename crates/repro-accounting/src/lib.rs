//! File accounting: every entry of a root filesystem's merged [`Tree`] is classified against
//! the pacman local database read into an [`Inventory`]:
//!
//! - [`Class::Package`]: owned by a package (listed in its `files`) and equal to its `mtree`
//!   line in type, mode, uid, gid, size, sha256 and link target;
//! - [`Class::Modified`]: owned, but some of those fields differ (each listed as a
//!   [`Difference`]); `%BACKUP%` files are marked ([`Entry::backup`]);
//! - [`Class::Unowned`]: not listed by any package;
//! - [`Class::Missing`]: listed by a package but absent from the tree (NoExtract, an
//!   excluded path, a deleted file).
//!
//! Modification times are compared as well ([`Entry::mtime`]) but never decide the class:
//! image recipes normalise them (the archlinux-docker `repro` recipe touches every file to
//! `SOURCE_DATE_EPOCH`), so they are counted apart ([`Totals::mtime_differs`]).
//!
//! The core ([`account`]) is pure: a tree and an inventory in, a sorted [`Accounting`] out.
//! [`host::tree_from_dir`] builds a tree from a directory on the host (`--rootfs DIR`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::ffi::OsStrExt;

use alpm_mtree::Mtree;
use alpm_mtree::mtree::v2::Path as MtreePath;
use repro_inventory::{Inventory, Package};
use repro_rootfs::{Kind, Node, Tree, TreePath};
use serde::Serialize;

pub mod host;

/// Top-level names in a package's `.MTREE` that describe the package, not installed files
/// (`.INSTALL` is special: see [`account`]).
const PACKAGE_METADATA: &[&[u8]] = &[b".BUILDINFO", b".CHANGELOG", b".MTREE", b".PKGINFO"];

/// What an entry is, relative to the packages that own it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    Package,
    Modified,
    Unowned,
    Missing,
}

impl Class {
    pub const ALL: [Class; 4] = [
        Class::Package,
        Class::Modified,
        Class::Unowned,
        Class::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Package => "package",
            Class::Modified => "modified",
            Class::Unowned => "unowned",
            Class::Missing => "missing",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of an mtree line that the tree's entry does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// File type: `file` (a tar hardlink counts as a file), `dir`, `symlink`, or a type
    /// mtree cannot express (`char`, `block`, `fifo`). When the type differs, no other
    /// field is compared.
    Type,
    /// Permission bits with setuid/setgid/sticky, four octal digits.
    Mode,
    Uid,
    Gid,
    /// Content size in bytes (files only).
    Size,
    /// sha256 of the content, lowercase hex (files only).
    Sha256,
    /// Symlink target, as written (symlinks only).
    Link,
    /// The package lists the path in `files` but its `mtree` has no line for it (or the
    /// package has no readable `mtree`): nothing could be compared.
    MtreeLine,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Type => "type",
            Field::Mode => "mode",
            Field::Uid => "uid",
            Field::Gid => "gid",
            Field::Size => "size",
            Field::Sha256 => "sha256",
            Field::Link => "link",
            Field::MtreeLine => "mtree_line",
        }
    }
}

/// One field where the tree differs from a package's mtree line: `tree` is the value found,
/// `mtree` the value the package recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Difference {
    /// The package whose mtree line this is.
    pub package: String,
    pub field: Field,
    pub tree: String,
    pub mtree: String,
}

impl fmt::Display for Difference {
    /// `mode 0755 != 0555`: the tree's value first, then the mtree's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field {
            Field::MtreeLine => write!(f, "no mtree line in {}", self.package),
            field => write!(f, "{} {} != {}", field.as_str(), self.tree, self.mtree),
        }
    }
}

/// The time a package's mtree line records for the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtreeTime {
    pub package: String,
    /// Seconds since the epoch (mtree keeps no fraction worth comparing: bsdtar writes `.0`).
    pub time: i64,
}

/// Modification time of an owned entry against its owners' mtree lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mtime {
    /// The entry's mtime, whole seconds.
    pub tree: i64,
    /// One per owner with an mtree line, sorted by package.
    pub mtree: Vec<MtreeTime>,
    /// `tree` equals every owner's time.
    pub equal: bool,
}

/// One path of the tree, or of a package's file list when it is missing from the tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub path: TreePath,
    pub class: Class,
    /// The tree's type; for a missing entry the type its mtree line gives (`None` without
    /// one: `dir` when `files` lists it with a trailing `/`).
    pub kind: Option<Kind>,
    /// Owners by name, sorted; empty when unowned. A directory several packages list is one
    /// entry with all of them.
    pub packages: Vec<String>,
    /// Listed in some owner's `%BACKUP%`.
    pub backup: bool,
    /// Content size: the tree's for files and hardlinks, the mtree's for missing files,
    /// 0 otherwise.
    pub size: u64,
    /// Bytes this entry adds to the totals: `size` for files, 0 for hardlinks (their bytes
    /// are counted at the file they link to), directories, symlinks and devices.
    pub bytes: u64,
    /// Sorted by package, then field. Empty unless `class` is `modified`.
    pub differences: Vec<Difference>,
    /// `None` for unowned and missing entries and when no owner has an mtree line.
    pub mtime: Option<Mtime>,
}

/// Entries and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

impl Count {
    fn add(&mut self, e: &Entry) {
        self.files += 1;
        self.bytes += e.bytes;
    }
}

/// Totals over every entry (whatever a caller chooses to show).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub package: Count,
    pub modified: Count,
    pub unowned: Count,
    pub missing: Count,
    /// The entries present in the tree: package + modified + unowned.
    pub present: Count,
    /// Owned entries present in the tree whose mtime equals / differs from their mtree
    /// time (counted apart from the classes; entries without an mtree line are in neither).
    pub mtime_equal: Count,
    pub mtime_differs: Count,
}

impl Totals {
    pub fn class(&self, c: Class) -> Count {
        match c {
            Class::Package => self.package,
            Class::Modified => self.modified,
            Class::Unowned => self.unowned,
            Class::Missing => self.missing,
        }
    }
}

/// The result of [`account`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Accounting {
    /// Sorted by path bytes; one per path.
    pub entries: Vec<Entry>,
    pub totals: Totals,
    /// Inconsistencies in the database that affect the result (sorted).
    pub warnings: Vec<String>,
}

impl Accounting {
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }
}

/// The type an mtree line gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedKind {
    File,
    Dir,
    Link,
}

/// A package's mtree line, reduced to what is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub kind: ExpectedKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub time: i64,
    /// Files only.
    pub size: Option<u64>,
    /// Files only, lowercase hex.
    pub sha256: Option<String>,
    /// Symlinks only.
    pub link: Option<Vec<u8>>,
}

impl Expected {
    /// The mtree line's path (decoded, without `./`) and what it says; `Err` for a mode that
    /// is not octal.
    pub fn from_mtree(p: &MtreePath) -> Result<(Vec<u8>, Expected), String> {
        let (path, kind, uid, gid, mode, time) = match p {
            MtreePath::Directory(d) => (&d.path, ExpectedKind::Dir, d.uid, d.gid, &d.mode, d.time),
            MtreePath::File(f) => (&f.path, ExpectedKind::File, f.uid, f.gid, &f.mode, f.time),
            MtreePath::Link(l) => (&l.path, ExpectedKind::Link, l.uid, l.gid, &l.mode, l.time),
        };
        let path = path.as_os_str().as_bytes().to_vec();
        let mode = u32::from_str_radix(mode, 8)
            .map_err(|_| format!("mode {mode:?} is not octal"))?
            & 0o7777;
        let (size, sha256, link) = match p {
            MtreePath::File(f) => (Some(f.size), Some(f.sha256_digest.to_string()), None),
            MtreePath::Link(l) => (
                None,
                None,
                Some(l.link_path.as_os_str().as_bytes().to_vec()),
            ),
            MtreePath::Directory(_) => (None, None, None),
        };
        Ok((
            path,
            Expected {
                kind,
                mode,
                uid,
                gid,
                time,
                size,
                sha256,
                link,
            },
        ))
    }

    fn kind(&self) -> Kind {
        match self.kind {
            ExpectedKind::File => Kind::File,
            ExpectedKind::Dir => Kind::Dir,
            ExpectedKind::Link => Kind::Symlink,
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File | Kind::Hardlink => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
        Kind::Char => "char",
        Kind::Block => "block",
        Kind::Fifo => "fifo",
    }
}

fn mode_str(m: u32) -> String {
    format!("{m:04o}")
}

/// Compare a tree entry with one mtree line. The type first (a tar hardlink is a file);
/// when it matches: mode, uid, gid, then size and sha256 for files, link for symlinks.
/// Times are not compared here (see [`Mtime`]).
pub fn compare(package: &str, node: &Node, want: &Expected) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut diff = |field: Field, tree: String, mtree: String| {
        out.push(Difference {
            package: package.to_string(),
            field,
            tree,
            mtree,
        })
    };
    let tree_kind = kind_name(node.kind);
    let want_kind = kind_name(want.kind());
    if tree_kind != want_kind {
        diff(Field::Type, tree_kind.into(), want_kind.into());
        return out;
    }
    if node.mode != want.mode {
        diff(Field::Mode, mode_str(node.mode), mode_str(want.mode));
    }
    if node.uid != u64::from(want.uid) {
        diff(Field::Uid, node.uid.to_string(), want.uid.to_string());
    }
    if node.gid != u64::from(want.gid) {
        diff(Field::Gid, node.gid.to_string(), want.gid.to_string());
    }
    if let Some(size) = want.size
        && node.size != size
    {
        diff(Field::Size, node.size.to_string(), size.to_string());
    }
    if let Some(sha) = &want.sha256 {
        let have = node
            .sha256
            .as_ref()
            .map(|d| d.digest().to_string())
            .unwrap_or_default();
        if &have != sha {
            diff(Field::Sha256, have, sha.clone());
        }
    }
    if let Some(link) = &want.link {
        let have = node.link_target.as_deref().unwrap_or("").as_bytes();
        if have != link.as_slice() {
            diff(
                Field::Link,
                String::from_utf8_lossy(have).into_owned(),
                String::from_utf8_lossy(link).into_owned(),
            );
        }
    }
    out
}

/// Normalise a path from `files` or `mtree` to a tree path: `./`, empty components and a
/// trailing `/` dropped. `None` for the root and for paths with `..`.
fn tree_path(raw: &[u8]) -> Option<TreePath> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(TreePath(parts.join(&b'/')))
}

/// One package's claim on a path.
#[derive(Debug, Clone)]
struct Claim {
    package: String,
    backup: bool,
    /// `files` lists it with a trailing `/`.
    dir: bool,
    line: Option<Expected>,
}

/// Every path any package lists in `files`, with its claims (sorted by package name).
fn claims(inv: &Inventory, warnings: &mut BTreeSet<String>) -> BTreeMap<TreePath, Vec<Claim>> {
    let mut out: BTreeMap<TreePath, Vec<Claim>> = BTreeMap::new();
    for pkg in &inv.packages {
        for (path, claim) in package_claims(pkg, warnings) {
            out.entry(path).or_default().push(claim);
        }
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| a.package.cmp(&b.package));
    }
    out
}

fn package_claims(pkg: &Package, warnings: &mut BTreeSet<String>) -> Vec<(TreePath, Claim)> {
    let name = &pkg.name;
    let Some(files) = &pkg.parsed.files else {
        warnings.insert(format!(
            "{}: no readable files list, so the package owns nothing here",
            pkg.dir
        ));
        return Vec::new();
    };
    let backup: BTreeSet<TreePath> = pkg
        .files
        .iter()
        .flat_map(|f| &f.backup)
        .filter_map(|b| tree_path(b.path.as_bytes()))
        .collect();
    let mut lines: BTreeMap<TreePath, Expected> = BTreeMap::new();
    let mut install = None;
    match &pkg.parsed.mtree {
        None => {
            warnings.insert(format!(
                "{}: no readable mtree, so none of its files can be compared",
                pkg.dir
            ));
        }
        Some(Mtree::V1(paths) | Mtree::V2(paths)) => {
            for p in paths {
                match Expected::from_mtree(p) {
                    Ok((raw, want)) => {
                        let rel = raw.strip_prefix(b"./").unwrap_or(&raw);
                        if rel == b".INSTALL" {
                            install = Some(want);
                            continue;
                        }
                        if PACKAGE_METADATA.contains(&rel) {
                            continue;
                        }
                        match tree_path(&raw) {
                            Some(tp) => {
                                lines.insert(tp, want);
                            }
                            None => {
                                warnings.insert(format!(
                                    "{}/mtree: path {:?} is not below the root",
                                    pkg.dir,
                                    String::from_utf8_lossy(&raw)
                                ));
                            }
                        }
                    }
                    Err(m) => {
                        warnings.insert(format!("{}/mtree: {m}", pkg.dir));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut listed = BTreeSet::new();
    for p in files.as_ref() {
        let raw = p.as_os_str().as_bytes();
        let Some(tp) = tree_path(raw) else {
            warnings.insert(format!(
                "{}/files: path {:?} is not below the root",
                pkg.dir,
                String::from_utf8_lossy(raw)
            ));
            continue;
        };
        listed.insert(tp.clone());
        out.push((
            tp.clone(),
            Claim {
                package: name.clone(),
                backup: backup.contains(&tp),
                dir: raw.ends_with(b"/"),
                line: lines.get(&tp).cloned(),
            },
        ));
    }
    // pacman keeps the package's `.INSTALL` as the db entry's `install` file, and
    // `pacman -Qkk` checks that file against the `./.INSTALL` line: so does this.
    if let Some(want) = install {
        let path = format!("{}/local/{}/install", repro_inventory::DB_PATH, pkg.dir);
        out.push((
            TreePath(path.into_bytes()),
            Claim {
                package: name.clone(),
                backup: false,
                dir: false,
                line: Some(want),
            },
        ));
    }
    for p in lines.keys().filter(|p| !listed.contains(*p)) {
        warnings.insert(format!(
            "{}: mtree lists {p}, which files does not (not counted as owned)",
            pkg.dir
        ));
    }
    out
}

fn bytes_of(kind: Option<Kind>, size: u64) -> u64 {
    match kind {
        Some(Kind::File) => size,
        _ => 0,
    }
}

/// Classify every entry of `tree` (except the root directory, which no package lists)
/// and every owned path missing from it.
///
/// A package owns the paths its `files` lists and, when its `mtree` has a `./.INSTALL`
/// line, its install scriptlet as pacman stores it: `var/lib/pacman/local/<dir>/install`
/// (which `pacman -Qkk` checks against that line too). The other metadata lines
/// (`.PKGINFO`, `.BUILDINFO`, …) describe the package file, not the installation.
pub fn account(tree: &Tree, inv: &Inventory) -> Accounting {
    let mut warnings = BTreeSet::new();
    let mut claims = claims(inv, &mut warnings);
    let mut entries = Vec::with_capacity(tree.entries.len());
    for (path, node) in tree.entries.iter().filter(|(p, _)| !p.is_root()) {
        let size = match node.kind {
            Kind::File | Kind::Hardlink => node.size,
            _ => 0,
        };
        let mut e = Entry {
            path: path.clone(),
            class: Class::Unowned,
            kind: Some(node.kind),
            packages: Vec::new(),
            backup: false,
            size,
            bytes: bytes_of(Some(node.kind), size),
            differences: Vec::new(),
            mtime: None,
        };
        if let Some(owners) = claims.remove(path) {
            let mut times = Vec::new();
            for c in &owners {
                match &c.line {
                    Some(want) => {
                        e.differences.extend(compare(&c.package, node, want));
                        times.push(MtreeTime {
                            package: c.package.clone(),
                            time: want.time,
                        });
                    }
                    None => e.differences.push(Difference {
                        package: c.package.clone(),
                        field: Field::MtreeLine,
                        tree: String::new(),
                        mtree: String::new(),
                    }),
                }
            }
            e.packages = owners.iter().map(|c| c.package.clone()).collect();
            e.backup = owners.iter().any(|c| c.backup);
            e.class = if e.differences.is_empty() {
                Class::Package
            } else {
                Class::Modified
            };
            if !times.is_empty() {
                e.mtime = Some(Mtime {
                    tree: node.mtime,
                    equal: times.iter().all(|t| t.time == node.mtime),
                    mtree: times,
                });
            }
        }
        entries.push(e);
    }
    // What is left is owned but not in the tree.
    for (path, owners) in claims {
        let line = owners.iter().find_map(|c| c.line.as_ref());
        let kind = match line {
            Some(l) => Some(l.kind()),
            None if owners.iter().any(|c| c.dir) => Some(Kind::Dir),
            None => None,
        };
        let size = line.and_then(|l| l.size).unwrap_or(0);
        entries.push(Entry {
            path,
            class: Class::Missing,
            kind,
            packages: owners.iter().map(|c| c.package.clone()).collect(),
            backup: owners.iter().any(|c| c.backup),
            size,
            bytes: bytes_of(kind, size),
            differences: Vec::new(),
            mtime: None,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let mut totals = Totals::default();
    for e in &entries {
        match e.class {
            Class::Package => totals.package.add(e),
            Class::Modified => totals.modified.add(e),
            Class::Unowned => totals.unowned.add(e),
            Class::Missing => totals.missing.add(e),
        }
        if e.class != Class::Missing {
            totals.present.add(e);
        }
        match &e.mtime {
            Some(m) if m.equal => totals.mtime_equal.add(e),
            Some(_) => totals.mtime_differs.add(e),
            None => {}
        }
    }
    Accounting {
        entries,
        totals,
        warnings: warnings.into_iter().collect(),
    }
}

/// The human DETAILS of an entry: `backup`, its differences, then its mtime when it differs
/// (`mtime TREE != MTREE`, with the package where owners disagree), separated by `; `.
pub fn details(e: &Entry) -> String {
    let mut parts = Vec::new();
    if e.backup {
        parts.push("backup".to_string());
    }
    let several = e.packages.len() > 1;
    for d in &e.differences {
        let text = match d.field {
            Field::Sha256 => format!("sha256 {} != {}", short(&d.tree), short(&d.mtree)),
            _ => d.to_string(),
        };
        parts.push(if several && d.field != Field::MtreeLine {
            format!("{}: {text}", d.package)
        } else {
            text
        });
    }
    if let Some(m) = e.mtime.as_ref().filter(|m| !m.equal) {
        let distinct: BTreeSet<i64> = m.mtree.iter().map(|t| t.time).collect();
        if distinct.len() == 1 {
            parts.push(format!("mtime {} != {}", m.tree, m.mtree[0].time));
        } else {
            let each: Vec<String> = m
                .mtree
                .iter()
                .map(|t| format!("{} {}", t.package, t.time))
                .collect();
            parts.push(format!("mtime {} != {}", m.tree, each.join(", ")));
        }
    }
    parts.join("; ")
}

fn short(hex: &str) -> &str {
    if hex.is_empty() {
        "-"
    } else {
        &hex[..hex.len().min(12)]
    }
}

#[cfg(test)]
mod tests;
