//! What a package file says about itself: its `.PKGINFO` (name, version, architecture, read
//! with the Arch project's `alpm-pkginfo`) and the exact bytes of its `.MTREE`, which pacman
//! copies into the local db as `mtree`. Streamed; stops once both are found.

use std::io::Read;
use std::str::FromStr;

use alpm_pkginfo::PackageInfo;
use repro_oci::Compression;

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
pub fn read(file: &str, mut r: impl Read) -> Result<PackageFacts, PackageError> {
    let err = |message: String| PackageError {
        file: file.to_string(),
        message,
    };
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match r.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e.to_string())),
        }
    }
    let stream = std::io::Cursor::new(magic[..n].to_vec()).chain(r);
    let stream: Box<dyn Read> = match Compression::detect(&magic[..n]) {
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(stream).map_err(|e| err(format!("zstd: {e}")))?,
        ),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new(stream)),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Compression::None => Box::new(stream),
        Compression::Bzip2 => {
            return Err(err("bzip2-compressed packages are not supported".into()));
        }
    };
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
