//! The local database: `var/lib/pacman/local/<name>-<version>/{desc,files,mtree}`.

use std::io::Read;
use std::str::FromStr;

use alpm_db::desc::DbDescFile;
use alpm_db::files::DbFiles;
use alpm_mtree::Mtree;
use alpm_types::PackageInstallReason;
use serde::{Serialize, Serializer};

use crate::{DB_PATH, EXPECTED_DB_VERSION, Inventory, InventoryError, ReadError, RootView};

/// Largest decompressed `mtree` accepted (the largest real ones are a few MB).
const MAX_MTREE_TEXT: u64 = 256 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstallReason {
    /// `%REASON%` absent or 0: installed on request.
    Explicit,
    /// `%REASON%` 1: installed as a dependency.
    Dependency,
}

impl InstallReason {
    pub fn as_str(self) -> &'static str {
        match self {
            InstallReason::Explicit => "explicit",
            InstallReason::Dependency => "dependency",
        }
    }
}

/// A `%BACKUP%` entry of `files`; `md5` is `None` where pacman wrote `(null)` (a backup
/// path the package does not contain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    pub path: String,
    pub md5: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesSummary {
    /// Entries of `%FILES%` (directories end in `/`).
    pub count: usize,
    /// Sorted by path.
    pub backup: Vec<BackupFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MtreeSummary {
    /// ALPM-MTREE format version (1 or 2) as detected by alpm-mtree.
    pub format: u8,
    /// Path entries.
    pub entries: usize,
    /// sha256 of the file as stored (gzip-compressed), to compare with a package's `.MTREE`.
    pub sha256: String,
}

/// The parsed files, for later stages (file accounting, SBOM).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub desc: DbDescFile,
    pub files: Option<DbFiles>,
    pub mtree: Option<Mtree>,
}

fn ser_date<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::rfc3339(*t))
}

/// One installed package, from its `desc` (and summaries of `files` and `mtree`).
#[derive(Debug, Clone, Serialize)]
pub struct Package {
    /// The db directory, `<name>-<version>`.
    pub dir: String,
    pub name: String,
    pub version: String,
    pub base: String,
    pub description: String,
    pub url: Option<String>,
    pub arch: String,
    /// Seconds since the epoch (RFC 3339 UTC in JSON).
    #[serde(serialize_with = "ser_date")]
    pub build_date: i64,
    #[serde(serialize_with = "ser_date")]
    pub install_date: i64,
    pub packager: String,
    pub installed_size: u64,
    pub groups: Vec<String>,
    pub reason: InstallReason,
    pub licenses: Vec<String>,
    pub validation: Vec<String>,
    pub depends: Vec<String>,
    pub optdepends: Vec<String>,
    pub provides: Vec<String>,
    pub conflicts: Vec<String>,
    pub replaces: Vec<String>,
    /// `%XDATA%` entries as `key=value` (desc v2 only).
    pub xdata: Vec<String>,
    /// `%BASE%` was absent (older packages) and is taken to be the name.
    pub base_missing: bool,
    /// alpm-db-desc format version: 1 (pacman < 6.1) or 2 (`%XDATA%`, pacman ≥ 6.1).
    pub desc_format: u8,
    /// `None` when the package has no readable `files`.
    pub files: Option<FilesSummary>,
    /// `None` when the package has no readable `mtree`.
    pub mtree: Option<MtreeSummary>,
    #[serde(skip)]
    pub parsed: Parsed,
}

/// The parser's message, trimmed. Some errors of the alpm crates name a translation key
/// their catalogue lacks (alpm-db 0.3.0 when it cannot tell the format version); those are
/// replaced by what happened and the input's first line.
pub(crate) fn parser_message(msg: &str, text: &str) -> String {
    if msg.contains("Unknown localization key") {
        let first = text.lines().next().unwrap_or("");
        return format!(
            "line 1: unrecognised format (the parser could not tell its version), found {first:?}"
        );
    }
    msg.trim_end().to_string()
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// Parse a `desc` into a [`Package`] (without files/mtree).
pub fn package_from_desc(dir: &str, text: &str) -> Result<Package, String> {
    let (desc, base_missing) = match DbDescFile::from_str(text) {
        // pacman writes %BASE% only when the package named one; read it as the name then.
        Err(alpm_db::Error::MissingSection(alpm_db::desc::SectionKeyword::Base)) => {
            let name = crate::sync::section_value(text, "%NAME%").unwrap_or_default();
            let patched = format!("%BASE%\n{name}\n\n{text}");
            (DbDescFile::from_str(&patched), true)
        }
        other => (other, false),
    };
    let desc = desc.map_err(|e| parser_message(&e.to_string(), text))?;
    let (v1, desc_format, xdata) = match &desc {
        DbDescFile::V1(d) => (d.clone(), 1, Vec::new()),
        DbDescFile::V2(d) => (d.clone().into(), 2, strings(d.xdata.as_ref())),
    };
    let v1: alpm_db::desc::DbDescFileV1 = v1;
    Ok(Package {
        dir: dir.to_string(),
        name: v1.name.to_string(),
        version: v1.version.to_string(),
        base: v1.base.to_string(),
        description: v1.description.to_string(),
        url: v1.url.as_ref().map(ToString::to_string),
        arch: v1.arch.to_string(),
        build_date: v1.builddate,
        install_date: v1.installdate,
        packager: v1.packager.to_string(),
        installed_size: v1.size,
        groups: strings(&v1.groups),
        reason: match v1.reason {
            PackageInstallReason::Explicit => InstallReason::Explicit,
            PackageInstallReason::Depend => InstallReason::Dependency,
        },
        licenses: strings(&v1.license),
        validation: strings(&v1.validation),
        depends: strings(&v1.depends),
        optdepends: strings(&v1.optdepends),
        provides: strings(&v1.provides),
        conflicts: strings(&v1.conflicts),
        replaces: strings(&v1.replaces),
        xdata,
        desc_format,
        base_missing,
        files: None,
        mtree: None,
        parsed: Parsed {
            desc,
            files: None,
            mtree: None,
        },
    })
}

/// Parse `files`; `(null)` backup entries, which alpm-db drops, are kept with no md5.
pub fn parse_files(text: &str) -> Result<(DbFiles, FilesSummary), String> {
    let files = DbFiles::from_str(text).map_err(|e| parser_message(&e.to_string(), text))?;
    let mut backup: Vec<BackupFile> = files
        .backups()
        .iter()
        .map(|b| BackupFile {
            path: b.path.to_string(),
            md5: Some(b.md5.to_string()),
        })
        .collect();
    let mut in_backup = false;
    for line in text.lines() {
        if line.starts_with('%') {
            in_backup = line == "%BACKUP%";
        } else if in_backup && let Some((path, "(null)")) = line.split_once('\t') {
            backup.push(BackupFile {
                path: path.to_string(),
                md5: None,
            });
        }
    }
    backup.sort_by(|a, b| a.path.cmp(&b.path));
    let summary = FilesSummary {
        count: files.as_ref().len(),
        backup,
    };
    Ok((files, summary))
}

/// Decompress (gzip, as pacman stores it) and parse an `mtree`.
pub fn parse_mtree(bytes: &[u8]) -> Result<(Mtree, MtreeSummary), String> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Err("not gzip-compressed (pacman stores the package's .MTREE as is)".into());
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_MTREE_TEXT + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("gzip: {e}"))?;
    if text.len() as u64 > MAX_MTREE_TEXT {
        return Err(format!("decompresses to more than {MAX_MTREE_TEXT} bytes"));
    }
    let text = String::from_utf8(text).map_err(|e| format!("not UTF-8: {e}"))?;
    let mtree = Mtree::from_str(&text).map_err(|e| match e {
        // alpm-mtree 0.4.0's catalogue names this message's argument differently from its
        // code, so its Display loses the parser's text; take it directly.
        alpm_mtree::Error::Parse(detail) => detail.trim_end().to_string(),
        other => parser_message(&other.to_string(), &text),
    })?;
    let (format, entries) = match &mtree {
        Mtree::V1(p) => (1, p.len()),
        Mtree::V2(p) => (2, p.len()),
    };
    let summary = MtreeSummary {
        format,
        entries,
        sha256: repro_oci::digest::sha256_of(bytes).to_string(),
    };
    Ok((mtree, summary))
}

pub(crate) fn read_local(root: &dyn RootView, inv: &mut Inventory) -> Result<(), InventoryError> {
    let local = format!("{DB_PATH}/local");
    let Some(entries) = root.read_dir(&local)? else {
        return Ok(());
    };
    inv.local_db = true;
    let version_path = format!("{local}/ALPM_DB_VERSION");
    match root.read_file(&version_path) {
        Ok(None) => inv.warnings.push(format!(
            "{version_path}: missing (pacman writes it when it creates the database)"
        )),
        Ok(Some(bytes)) => match parse_db_version(&bytes) {
            Ok(v) => {
                if v != EXPECTED_DB_VERSION {
                    inv.warnings.push(format!(
                        "{version_path}: version {v}, pacman ≥ 4.2 writes {EXPECTED_DB_VERSION}"
                    ));
                }
                inv.db_version = Some(v);
            }
            Err(message) => inv.errors.push(ReadError {
                path: version_path.clone(),
                package: None,
                message,
            }),
        },
        Err(e) => inv.errors.push(ReadError {
            path: version_path.clone(),
            package: None,
            message: e.reason,
        }),
    }
    for e in entries {
        if !e.is_dir {
            if e.name != "ALPM_DB_VERSION" {
                inv.warnings
                    .push(format!("{local}/{}: not a package directory", e.name));
            }
            continue;
        }
        read_package(root, &local, &e.name, inv);
    }
    Ok(())
}

/// `ALPM_DB_VERSION`: one line, a decimal number.
pub fn parse_db_version(bytes: &[u8]) -> Result<u32, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "line 1: not UTF-8".to_string())?;
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("");
    let v = first
        .trim()
        .parse::<u32>()
        .map_err(|_| format!("line 1: expected a decimal version number, found {first:?}"))?;
    if let Some((i, extra)) = lines.enumerate().find(|(_, l)| !l.trim().is_empty()) {
        return Err(format!("line {}: unexpected {extra:?}", i + 2));
    }
    Ok(v)
}

fn read_package(root: &dyn RootView, local: &str, dir: &str, inv: &mut Inventory) {
    let base = format!("{local}/{dir}");
    let (pkg, errors, missing) = read_package_files(root, &base, dir);
    inv.errors
        .extend(errors.into_iter().map(|(file, message)| ReadError {
            path: format!("{base}/{file}"),
            package: Some(dir.to_string()),
            message,
        }));
    for file in missing {
        inv.warnings.push(format!("{base}/{file}: missing"));
    }
    inv.packages.extend(pkg);
}

type FileErrors = Vec<(&'static str, String)>;

fn read_package_files(
    root: &dyn RootView,
    base: &str,
    dir: &str,
) -> (Option<Package>, FileErrors, Vec<&'static str>) {
    let mut errors: FileErrors = Vec::new();
    let mut missing = Vec::new();
    let text = match root.read_file(&format!("{base}/desc")) {
        Ok(Some(b)) => match String::from_utf8(b.into_owned()) {
            Ok(t) => t,
            Err(e) => {
                errors.push(("desc", format!("not UTF-8: {e}")));
                return (None, errors, missing);
            }
        },
        Ok(None) => {
            errors.push(("desc", "missing".into()));
            return (None, errors, missing);
        }
        Err(e) => {
            errors.push(("desc", e.reason));
            return (None, errors, missing);
        }
    };
    let mut pkg = match package_from_desc(dir, &text) {
        Ok(p) => p,
        Err(m) => {
            errors.push(("desc", m));
            return (None, errors, missing);
        }
    };
    let expected = format!("{}-{}", pkg.name, pkg.version);
    if expected != dir {
        errors.push((
            "desc",
            format!("names {expected}, but the directory is {dir}"),
        ));
    }
    match root.read_file(&format!("{base}/files")) {
        Ok(Some(b)) => match std::str::from_utf8(&b)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(parse_files)
        {
            Ok((f, s)) => {
                pkg.parsed.files = Some(f);
                pkg.files = Some(s);
            }
            Err(m) => errors.push(("files", m)),
        },
        Ok(None) => missing.push("files"),
        Err(e) => errors.push(("files", e.reason)),
    }
    match root.read_file(&format!("{base}/mtree")) {
        Ok(Some(b)) => match parse_mtree(&b) {
            Ok((m, s)) => {
                pkg.parsed.mtree = Some(m);
                pkg.mtree = Some(s);
            }
            Err(m) => errors.push(("mtree", m)),
        },
        Ok(None) => missing.push("mtree"),
        Err(e) => errors.push(("mtree", e.reason)),
    }
    (Some(pkg), errors, missing)
}
