//! Sync databases an image may still carry: `var/lib/pacman/sync/<repo>.db`, a tar of
//! `<name>-<version>/desc` compressed with gzip, zstd or xz (told apart by magic bytes).

use std::io::Read;
use std::str::FromStr;

use alpm_repo_db::desc::{RepoDescFile, SectionKeyword};
use repro_oci::Compression;
use serde::Serialize;

use crate::{DB_PATH, Inventory, InventoryError, ReadError, RootView};

/// Largest `desc` member read from a sync db.
const MAX_DESC: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub filename: String,
    pub sha256: String,
    pub compressed_size: u64,
    pub installed_size: u64,
    pub build_date: i64,
    pub packager: String,
    /// The entry's `%PGPSIG%` (base64), when it has one; in JSON only whether it does.
    #[serde(rename = "pgpsig", serialize_with = "present")]
    pub pgp_signature: Option<String>,
}

fn present<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bool(v.is_some())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncDb {
    /// Path relative to the root.
    pub file: String,
    /// The repository name (file name without `.db`).
    pub repo: String,
    pub compression: String,
    /// sha256 of the db file.
    pub sha256: String,
    /// Sorted by name, then version.
    pub packages: Vec<SyncPackage>,
    /// Entries without `%BASE%` (repo-add before pacman 5.1 left it out when it equalled
    /// `%NAME%`); read with the name as base.
    pub missing_base: usize,
}

pub(crate) fn read_sync(root: &dyn RootView, inv: &mut Inventory) -> Result<(), InventoryError> {
    let dir = format!("{DB_PATH}/sync");
    let Some(entries) = root.read_dir(&dir)? else {
        return Ok(());
    };
    for e in entries {
        let Some(repo) = e.name.strip_suffix(".db") else {
            continue;
        };
        if e.is_dir {
            continue;
        }
        let file = format!("{dir}/{}", e.name);
        let bytes = match root.read_file(&file) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(err) => {
                inv.errors.push(ReadError {
                    path: file,
                    package: None,
                    message: err.reason,
                });
                continue;
            }
        };
        let (db, errors) = parse_sync_db(&file, repo, &bytes);
        inv.errors.extend(errors);
        inv.sync_dbs.extend(db);
    }
    Ok(())
}

/// Parse one sync db. Entries that cannot be parsed are errors naming `file:member`; the
/// others are still returned.
pub fn parse_sync_db(file: &str, repo: &str, bytes: &[u8]) -> (Option<SyncDb>, Vec<ReadError>) {
    let mut errors = Vec::new();
    let err = |path: String, message: String| ReadError {
        path,
        package: None,
        message,
    };
    // A plain stream must at least look like a tar; anything else by magic bytes.
    let compression = Compression::detect(bytes);
    let plain_tar = bytes.len() > 262 && &bytes[257..262] == b"ustar";
    if compression == Compression::None && !plain_tar {
        return (
            None,
            vec![err(
                file.into(),
                "not a gzip, zstd or xz compressed tar (None)".into(),
            )],
        );
    }
    let stream = match repro_compress::decoder(bytes) {
        Ok((_, d)) => d,
        Err(e) => return (None, vec![err(file.into(), e.to_string())]),
    };
    let mut packages = Vec::new();
    let mut based = 0;
    let mut archive = tar::Archive::new(stream);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return (None, vec![err(file.into(), format!("tar: {e}"))]),
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                errors.push(err(file.into(), format!("tar: {e}")));
                break;
            }
        };
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file() || !member.ends_with("/desc") {
            continue;
        }
        let at = format!("{file}:{member}");
        let mut text = Vec::new();
        if let Err(e) = (&mut entry).take(MAX_DESC + 1).read_to_end(&mut text) {
            errors.push(err(at, format!("tar: {e}")));
            break;
        }
        if text.len() as u64 > MAX_DESC {
            errors.push(err(at, format!("larger than {MAX_DESC} bytes")));
            continue;
        }
        let Ok(text) = String::from_utf8(text) else {
            errors.push(err(at, "not UTF-8".into()));
            continue;
        };
        match parse_repo_desc(&text) {
            Ok((d, base_added)) => {
                based += usize::from(base_added);
                packages.push(sync_package(&d));
            }
            Err(e) => errors.push(err(at, crate::local::parser_message(&e.to_string(), &text))),
        }
    }
    packages.sort_by(|a: &SyncPackage, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    let db = SyncDb {
        file: file.to_string(),
        repo: repo.to_string(),
        compression: match compression {
            Compression::None => "none".into(),
            c => c.as_str().to_string(),
        },
        sha256: repro_oci::digest::sha256_of(bytes).to_string(),
        packages,
        missing_base: based,
    };
    (Some(db), errors)
}

/// Parse a sync `desc`; an entry without `%BASE%` is read with `%BASE%` = `%NAME%`, as
/// older repo-add wrote them and as pacman reads them (the bool says so).
fn parse_repo_desc(text: &str) -> Result<(RepoDescFile, bool), alpm_repo_db::Error> {
    match RepoDescFile::from_str(text) {
        Err(alpm_repo_db::Error::MissingSection(SectionKeyword::Base)) => {
            let name = section_value(text, "%NAME%").unwrap_or_default();
            let patched = format!("%BASE%\n{name}\n\n{text}");
            RepoDescFile::from_str(&patched).map(|d| (d, true))
        }
        other => other.map(|d| (d, false)),
    }
}

/// The first line after a section header.
pub(crate) fn section_value<'a>(text: &'a str, header: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    lines.find(|l| *l == header)?;
    lines.next()
}

fn sync_package(d: &RepoDescFile) -> SyncPackage {
    match d {
        RepoDescFile::V1(d) => SyncPackage {
            name: d.name.to_string(),
            version: d.version.to_string(),
            arch: d.arch.to_string(),
            filename: d.file_name.to_string(),
            sha256: d.sha256_checksum.to_string(),
            compressed_size: d.compressed_size,
            installed_size: d.installed_size,
            build_date: d.build_date,
            packager: d.packager.to_string(),
            pgp_signature: Some(d.pgp_signature.to_string()),
        },
        RepoDescFile::V2(d) => SyncPackage {
            name: d.name.to_string(),
            version: d.version.to_string(),
            arch: d.arch.to_string(),
            filename: d.file_name.to_string(),
            sha256: d.sha256_checksum.to_string(),
            compressed_size: d.compressed_size,
            installed_size: d.installed_size,
            build_date: d.build_date,
            packager: d.packager.to_string(),
            pgp_signature: d.pgp_signature.as_ref().map(ToString::to_string),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::SyncPackage;

    /// The signature is kept for the lock, but JSON says only whether there is one.
    #[test]
    fn json_shows_whether_there_is_a_signature_not_the_signature() {
        let mut p = SyncPackage {
            name: "bash".into(),
            version: "5.2.15-2".into(),
            arch: "x86_64".into(),
            filename: "bash-5.2.15-2-x86_64.pkg.tar.zst".into(),
            sha256: "0".repeat(64),
            compressed_size: 1,
            installed_size: 2,
            build_date: 3,
            packager: "p".into(),
            pgp_signature: Some("iQEzBAABCAAdFiEE".into()),
        };
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["pgpsig"], true);
        assert!(!j.to_string().contains("iQEzBAABCAAdFiEE"), "{j}");
        p.pgp_signature = None;
        assert_eq!(serde_json::to_value(&p).unwrap()["pgpsig"], false);
    }
}
