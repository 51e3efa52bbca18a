//! The repro-image lockfile: every input an image was built from, pinned (docs/lockfile.md).
//!
//! - [`Lock`] is the model; [`Lock::parse`] reads it (errors name the file, line and field)
//!   and [`Lock::to_text`] writes it with a hand-controlled, canonical serialiser: the text
//!   of a lock written by us parses and prints back to the very same bytes.
//! - [`archive`]: the Arch Linux Archive over HTTP (sync dbs, package files), with verified,
//!   resumable downloads into the content store and mirrors tried in order.
//! - [`package`]: a package file's `.MTREE` and `.PKGINFO`, to prove a pin is the installed one.
//! - [`pgp`]: detached signatures checked with Sequoia's `sqv` at the snapshot date.
//! - [`syncdb`]: the `%PGPSIG%` of each entry of a sync db.

use std::path::Path;

use repro_oci::Digest;

pub mod archive;
pub mod package;
pub mod pgp;
pub mod syncdb;
mod text;
pub mod types;

pub use types::{Sha256Hex, Signature, Snapshot};

/// The only lock format version so far.
pub const VERSION: u32 = 1;
/// The recipe this lock format describes (archlinux-docker's `repro` image).
pub const RECIPE_NAME: &str = "archlinux-docker-repro";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    pub image: ImagePin,
    pub recipe: Recipe,
    /// Sorted by name (names are unique).
    pub packages: Vec<PackagePin>,
}

/// The image the lock was made from, as its exact bytes name it. The index, manifest and
/// config bytes themselves are archived next to the lock (`<lock>.d/`, see docs/lockfile.md).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImagePin {
    /// The reference as given (transport spelling), for people; the digests are what count.
    pub reference: String,
    pub platform: String,
    /// The index the reference named, when it named one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// The platform manifest (the image digest).
    pub digest: Digest,
    pub media_type: String,
    pub config_digest: Digest,
    pub layers: Vec<LayerPin>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerPin {
    pub digest: Digest,
    pub diff_id: Digest,
    pub media_type: String,
    pub size: u64,
}

/// The recipe's parameters. Each optional one is absent when the image did not tell it and
/// no flag gave it; [`Recipe::derived`] and [`Recipe::given`] say where each present one
/// came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub name: String,
    pub source_date_epoch: i64,
    /// Base URL of the Arch Linux Archive the packages were pinned from.
    pub archive: String,
    pub archive_snapshot: Snapshot,
    /// Repositories of the snapshot, in pacman.conf order.
    pub repos: Vec<String>,
    /// Pacman architecture of the repositories (`x86_64`).
    pub arch: String,
    /// What the recipe's `pacman -S` installs (packages or groups), in order.
    pub group: Vec<String>,
    /// The recipe's source revision (archlinux-docker commit).
    pub revision: Option<String>,
    /// The image version (`org.opencontainers.image.version`, `VERSION_ID` in os-release).
    pub image_version: Option<String>,
    /// The image title word of the recipe's `org.opencontainers.image.title`
    /// ("Arch Linux <word> Image"), e.g. `Repro`.
    pub image_title: Option<String>,
    /// The tool that wrote the image's layers (e.g. `buildah 1.28.2`): its tar dialect.
    pub image_builder: Option<String>,
    /// The rootfs tarball's tar dialect (`gnu-pax`: GNU tar with the recipe's flags).
    pub tar: String,
    /// `zstd --long -T0 -8`: level 8, window log 27.
    pub zstd_level: i32,
    pub zstd_window_log: u32,
    /// Derived parameters and how, in [`Param`] order.
    pub derived: Vec<(Param, String)>,
    /// Parameters given on the command line (the flag), in [`Param`] order.
    pub given: Vec<(Param, String)>,
}

/// The recipe parameters that are derived from the image or given by a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Param {
    SourceDateEpoch,
    ArchiveSnapshot,
    Group,
    Revision,
    ImageVersion,
    ImageTitle,
    ImageBuilder,
}

impl Param {
    pub const ALL: [Param; 7] = [
        Param::SourceDateEpoch,
        Param::ArchiveSnapshot,
        Param::Group,
        Param::Revision,
        Param::ImageVersion,
        Param::ImageTitle,
        Param::ImageBuilder,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Param::SourceDateEpoch => "source_date_epoch",
            Param::ArchiveSnapshot => "archive_snapshot",
            Param::Group => "group",
            Param::Revision => "revision",
            Param::ImageVersion => "image_version",
            Param::ImageTitle => "image_title",
            Param::ImageBuilder => "image_builder",
        }
    }
    pub fn from_key(k: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.key() == k)
    }
}

/// Where a package pin was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedFrom {
    /// The snapshot's sync db (`%SHA256SUM%`, `%PGPSIG%`).
    Snapshot,
    /// The archive's `/packages/` tree (the snapshot lacked this version): hashed on
    /// download, signature from the `.sig` next to it.
    Packages,
}

impl PinnedFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            PinnedFrom::Snapshot => "snapshot",
            PinnedFrom::Packages => "packages",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackagePin {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// The snapshot repository that lists it (absent when pinned from `/packages/` only).
    pub repo: Option<String>,
    pub filename: String,
    /// Under the archive's `/packages/` tree, which keeps every version ever published.
    pub url: String,
    pub size: u64,
    pub sha256: Sha256Hex,
    /// The detached signature (absent when the archive has none).
    pub signature: Option<Signature>,
    /// sha256 of the package's gzip-compressed `.MTREE`, equal to the image's local db `mtree`.
    pub mtree_sha256: Sha256Hex,
    pub pinned_from: PinnedFrom,
}

impl PackagePin {
    /// The package's URL on `mirror`: the part of [`PackagePin::url`] below the lock's
    /// archive, appended to the mirror's base URL.
    pub fn url_on(&self, archive: &str, mirror: &str) -> String {
        let archive = archive.trim_end_matches('/');
        match self.url.strip_prefix(archive) {
            Some(rest) if rest.starts_with('/') => {
                format!("{}{rest}", mirror.trim_end_matches('/'))
            }
            _ => self.url.clone(),
        }
    }
}

/// `/packages/<first letter>/<name>/<filename>` below an archive.
pub fn packages_url(archive: &str, name: &str, filename: &str) -> String {
    let first: String = name.chars().take(1).collect();
    format!(
        "{}/packages/{first}/{name}/{filename}",
        archive.trim_end_matches('/')
    )
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Names the file, the line and column (1-based) and the field (`package[3].sha256`).
    #[error("{file}: line {line}, column {column}: {field}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        field: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Lock {
    /// Parse a lock's text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Lock, LockError> {
        text::parse(text, file)
    }

    /// The canonical text: fixed key order, one key per line, packages sorted by name.
    pub fn to_text(&self) -> String {
        text::print(self)
    }

    /// Check the invariants the text format relies on (also checked by [`Lock::parse`]).
    pub fn validate(&self) -> Result<(), String> {
        text::validate(self)
    }

    pub fn load(path: &Path) -> Result<Lock, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Lock::parse(&text, &path.display().to_string())
    }

    /// Write atomically (temp file in the same directory, fsync, rename), mode 0644.
    pub fn save(&self, path: &Path) -> Result<(), LockError> {
        let io = |source| LockError::Io {
            path: path.display().to_string(),
            source,
        };
        self.validate().map_err(|message| LockError::Invalid {
            file: path.display().to_string(),
            message,
        })?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // 0644 as any file written with the usual umask (a temp file would be 0600): the
        // lock is meant to be shared, committed and read by whoever builds from it.
        use std::os::unix::fs::PermissionsExt;
        let mut tmp = tempfile::Builder::new()
            .permissions(std::fs::Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(io)?;
        use std::io::Write;
        tmp.write_all(self.to_text().as_bytes()).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    pub fn package(&self, name: &str) -> Option<&PackagePin> {
        self.packages
            .binary_search_by(|p| p.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.packages[i])
    }
}

/// Where a lock's archived image bytes live: `<lock file>.d` (an OCI layout holding only
/// the index, manifest and config blobs).
pub fn archive_dir(lock_path: &Path) -> std::path::PathBuf {
    let mut s = lock_path.as_os_str().to_owned();
    s.push(".d");
    s.into()
}
