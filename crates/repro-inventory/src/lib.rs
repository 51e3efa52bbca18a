//! What is installed in a root filesystem: the pacman local database
//! (`var/lib/pacman/local/`), and the sync databases an image may still carry
//! (`var/lib/pacman/sync/*.db`), read with the Arch Linux project's own parsers
//! (`alpm-db`, `alpm-mtree`, `alpm-repo-db`, `alpm-types`).
//!
//! The root is anything implementing [`RootView`]: an image's merged tree ([`TreeView`], whose
//! files were captured while its layers were applied, see [`capture`]) or a host directory
//! ([`HostDir`]).
//!
//! A package that cannot be read does not stop the inventory: the problem is recorded in
//! [`Inventory::errors`], naming the package directory, the file and the parser's message,
//! and the other packages are still read.

use std::collections::BTreeMap;

use repro_rootfs::Capture;
use serde::Serialize;

mod local;
mod sync;
mod time;
mod view;

pub use local::{
    BackupFile, FilesSummary, InstallReason, MtreeSummary, Package, Parsed, package_from_desc,
    parse_db_version, parse_files, parse_mtree,
};
pub use sync::{SyncDb, SyncPackage, parse_sync_db};
pub use time::rfc3339;
pub use view::{DirEntry, HostDir, MAX_FILE, RootView, TreeView, ViewError, wanted};

/// Where pacman keeps its databases, relative to the root (pacman's default `DBPath`).
pub const DB_PATH: &str = "var/lib/pacman";
/// The local database version pacman ≥ 4.2 (and every 5.x, 6.x, 7.x) writes.
pub const EXPECTED_DB_VERSION: u32 = 9;

/// A capture for [`repro_rootfs::Applier::with_capture`] that keeps the files the
/// inventory reads (the local db, sync `*.db` files, `os-release`), with the default caps.
pub fn capture() -> Capture {
    Capture::new(wanted)
}

/// Something that could not be read: `path` is relative to the root and names the file
/// (for a sync db member: `DB:MEMBER`); `package` is the local db directory it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadError {
    pub path: String,
    pub package: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// `etc/os-release` (or `usr/lib/os-release`), the fields that identify a distribution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    pub id: Option<String>,
    pub name: Option<String>,
    pub pretty_name: Option<String>,
    pub version_id: Option<String>,
    pub build_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    /// The root, for messages.
    pub root: String,
    /// Is there a `var/lib/pacman/local/` at all?
    pub local_db: bool,
    /// `var/lib/pacman/local/ALPM_DB_VERSION`, when present and well-formed.
    pub db_version: Option<u32>,
    /// Sorted by name (then version, then directory).
    pub packages: Vec<Package>,
    /// Sorted by file name.
    pub sync_dbs: Vec<SyncDb>,
    pub os_release: Option<OsRelease>,
    /// Files that could not be read or parsed.
    pub errors: Vec<ReadError>,
    /// Oddities that do not stop anything (missing `files`/`mtree`, unexpected db version).
    pub warnings: Vec<String>,
}

impl Inventory {
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// Errors that stop the inventory: the root itself cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    View(#[from] ViewError),
}

/// Read the pacman databases below `root`.
pub fn read(root: &dyn RootView) -> Result<Inventory, InventoryError> {
    let mut inv = Inventory {
        root: root.describe(),
        ..Inventory::default()
    };
    local::read_local(root, &mut inv)?;
    sync::read_sync(root, &mut inv)?;
    inv.os_release = read_os_release(root)?;
    inv.packages.sort_by(|a, b| {
        (a.name.as_str(), a.version.as_str(), a.dir.as_str()).cmp(&(
            b.name.as_str(),
            b.version.as_str(),
            b.dir.as_str(),
        ))
    });
    inv.sync_dbs.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(inv)
}

fn read_os_release(root: &dyn RootView) -> Result<Option<OsRelease>, InventoryError> {
    let bytes = match root.read_file("etc/os-release")? {
        Some(b) => b,
        None => match root.read_file("usr/lib/os-release")? {
            Some(b) => b,
            None => return Ok(None),
        },
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut fields: BTreeMap<&str, String> = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(v);
        fields.insert(k.trim(), v.to_string());
    }
    Ok(Some(OsRelease {
        id: fields.remove("ID"),
        name: fields.remove("NAME"),
        pretty_name: fields.remove("PRETTY_NAME"),
        version_id: fields.remove("VERSION_ID"),
        build_id: fields.remove("BUILD_ID"),
    }))
}
