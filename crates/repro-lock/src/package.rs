//! What a package file says about itself: its `.PKGINFO` (name, version, architecture, read
//! with the Arch project's `alpm-pkginfo`) and the exact bytes of its `.MTREE`, which pacman
//! copies into the local db as `mtree`. Streamed; stops once both are found.

use std::io::Read;
use std::str::FromStr;

use alpm_pkginfo::PackageInfo;

use crate::types::Sha256Hex;

/// Largest `.PKGINFO` and `.MTREE` read (real ones: a few KB and a few MB).
const MAX_PKGINFO: u64 = 1024 * 1024;
const MAX_MTREE: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct PackageError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFacts {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// sha256 of the `.MTREE` member as stored (gzip-compressed).
    pub mtree_sha256: Sha256Hex,
}

/// Read a package file (`.pkg.tar.zst`, `.xz`, `.gz` or plain; told apart by magic bytes).
pub fn read(file: &str, r: impl Read) -> Result<PackageFacts, PackageError> {
    let err = |message: String| PackageError {
        file: file.to_string(),
        message,
    };
    let (_, stream) = repro_compress::decoder(r).map_err(|e| err(e.to_string()))?;
    let mut pkginfo: Option<String> = None;
    let mut mtree: Option<Vec<u8>> = None;
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| err(format!("tar: {e}")))? {
        let mut entry = entry.map_err(|e| err(format!("tar: {e}")))?;
        let path = entry.path_bytes().into_owned();
        let (limit, slot) = match path.as_slice() {
            b".PKGINFO" => (MAX_PKGINFO, 0),
            b".MTREE" => (MAX_MTREE, 1),
            _ => continue,
        };
        let mut bytes = Vec::new();
        (&mut entry)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(format!("{}: {e}", String::from_utf8_lossy(&path))))?;
        if bytes.len() as u64 > limit {
            return Err(err(format!(
                "{} is larger than {limit} bytes",
                String::from_utf8_lossy(&path)
            )));
        }
        if slot == 0 {
            pkginfo =
                Some(String::from_utf8(bytes).map_err(|_| err(".PKGINFO is not UTF-8".into()))?);
        } else {
            mtree = Some(bytes);
        }
        if pkginfo.is_some() && mtree.is_some() {
            break;
        }
    }
    let pkginfo = pkginfo.ok_or_else(|| err("no .PKGINFO (not a pacman package?)".into()))?;
    let mtree = mtree.ok_or_else(|| err("no .MTREE".into()))?;
    let info = PackageInfo::from_str(&pkginfo)
        .map_err(|e| err(format!(".PKGINFO: {}", e.to_string().trim_end())))?;
    let (name, version, arch) = match &info {
        PackageInfo::V1(i) => (
            i.pkgname.to_string(),
            i.pkgver.to_string(),
            i.arch.to_string(),
        ),
        PackageInfo::V2(i) => (
            i.pkgname.to_string(),
            i.pkgver.to_string(),
            i.arch.to_string(),
        ),
    };
    let mtree_sha256 = Sha256Hex::from_digest(&repro_oci::digest::sha256_of(&mtree))
        .ok_or_else(|| err("internal: sha256 digest expected".into()))?;
    Ok(PackageFacts {
        name,
        version,
        arch,
        mtree_sha256,
    })
}
