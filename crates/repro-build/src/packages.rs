//! The pinned package files, taken from the content store into local repositories that the
//! recipe's `pacman -Sy` installs from. Each file is hashed while it is copied and must be
//! exactly what the lock pins (sha256 and size) before anything runs; its signature comes
//! from the lock. While here, the packages' alpm hook names (masked for the install, as the
//! recipe masks its host's) and pacman keyrings (the build trusts the keys the pinned
//! packages ship, unless a keyring is given) are collected.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use repro_lock::{Lock, PackagePin};
use repro_store::Store;
use sha2::Digest as _;

use crate::error::{BuildError, io_at};

/// Largest keyring file read from a package (Arch's archlinux.gpg is ~2 MB).
const MAX_KEYRING: u64 = 64 * 1024 * 1024;
const HOOKS: &[u8] = b"usr/share/libalpm/hooks/";
const KEYRINGS: &[u8] = b"usr/share/pacman/keyrings/";

/// A keyring file found in a pinned package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageKeyring {
    /// `name version`
    pub package: String,
    /// The file name under `usr/share/pacman/keyrings/`.
    pub file: String,
    pub bytes: Vec<u8>,
}

#[derive(Clone, Debug, Default)]
pub struct Scanned {
    /// Hook file names the pinned packages ship (sorted).
    pub hooks: BTreeSet<String>,
    pub keyrings: Vec<PackageKeyring>,
}

/// The repository a pin goes into: its snapshot repository, or the lock's first one for a
/// package pinned from `/packages/` only.
pub fn repo_of<'a>(lock: &'a Lock, p: &'a PackagePin) -> Option<&'a str> {
    p.repo
        .as_deref()
        .or_else(|| lock.recipe.repos.first().map(String::as_str))
}

/// Check every pin is in the store before copying anything (a clear error naming the
/// first missing one).
pub fn check_present(lock: &Lock, store: &Store) -> Result<(), BuildError> {
    for p in &lock.packages {
        if !store.blob_path(&p.sha256.digest())?.is_file() {
            return Err(BuildError::Missing {
                name: p.name.clone(),
                version: p.version.clone(),
                sha256: p.sha256.to_string(),
                store: store.root().to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Copy `p`'s store file to `dest`, hashing it; a file that is not the pinned one is
/// refused and its copy removed.
pub fn copy_verified(store: &Store, p: &PackagePin, dest: &Path) -> Result<(), BuildError> {
    let src = store.blob_path(&p.sha256.digest())?;
    let mut input = File::open(&src).map_err(io_at(&src))?;
    let out = File::create(dest).map_err(io_at(dest))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_at(&src)(e)),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        out.write_all(&buf[..n]).map_err(io_at(dest))?;
    }
    out.flush().map_err(io_at(dest))?;
    drop(out);
    let actual = hex::encode(hasher.finalize());
    if actual != p.sha256.as_str() || size != p.size {
        let _ = fs::remove_file(dest);
        return Err(BuildError::Tampered(Box::new(crate::error::Tampered {
            name: p.name.clone(),
            version: p.version.clone(),
            path: src,
            expected: p.sha256.to_string(),
            expected_size: p.size,
            actual,
            size,
        })));
    }
    Ok(())
}

/// Lay the pins out as `repos/<repo>/os/<arch>/<filename>{,.sig}`: every file verified
/// first. Returns the files per repository (sorted by file name).
pub fn lay_out(
    lock: &Lock,
    store: &Store,
    repo_dir: &dyn Fn(&str) -> PathBuf,
) -> Result<Vec<(String, Vec<PathBuf>)>, BuildError> {
    check_present(lock, store)?;
    let mut by_repo: Vec<(String, Vec<PathBuf>)> = Vec::new();
    for p in &lock.packages {
        let repo = repo_of(lock, p).ok_or_else(|| {
            BuildError::Invalid(format!(
                "package {} {}: no repository (the lock lists none)",
                p.name, p.version
            ))
        })?;
        // the lock's parser validated the file name as one path component
        repro_lock::types::check_filename(&p.filename, &p.name).map_err(BuildError::Invalid)?;
        let dir = repo_dir(repo);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let dest = dir.join(&p.filename);
        copy_verified(store, p, &dest)?;
        if let Some(sig) = &p.signature {
            let s = dir.join(format!("{}.sig", p.filename));
            fs::write(&s, sig.bytes()).map_err(io_at(&s))?;
        }
        match by_repo.iter_mut().find(|(r, _)| r == repo) {
            Some((_, files)) => files.push(dest),
            None => by_repo.push((repo.to_string(), vec![dest])),
        }
    }
    for (_, files) in &mut by_repo {
        files.sort();
    }
    Ok(by_repo)
}

/// Hook names and keyrings of one package file (compression told by magic bytes).
pub fn scan(p: &PackagePin, path: &Path, into: &mut Scanned) -> Result<(), BuildError> {
    let err = |message: String| BuildError::Package {
        name: p.name.clone(),
        version: p.version.clone(),
        message,
    };
    let file = File::open(path).map_err(io_at(path))?;
    let (_, stream) = repro_compress::decoder(file).map_err(|e| err(e.to_string()))?;
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| err(format!("tar: {e}")))? {
        let mut entry = entry.map_err(|e| err(format!("tar: {e}")))?;
        let path = entry.path_bytes().into_owned();
        let path = path.strip_prefix(b"./").unwrap_or(&path);
        let is_file = entry.header().entry_type().is_file();
        if let Some(name) = path.strip_prefix(HOOKS) {
            if !name.is_empty() && !name.contains(&b'/') && name != b"." && name != b".." {
                let name = String::from_utf8(name.to_vec())
                    .map_err(|_| err("a hook name that is not UTF-8".into()))?;
                into.hooks.insert(name);
            }
        } else if let Some(name) = path.strip_prefix(KEYRINGS)
            && is_file
            && name.ends_with(b".gpg")
            && !name.contains(&b'/')
        {
            let file = String::from_utf8(name.to_vec())
                .map_err(|_| err("a keyring name that is not UTF-8".into()))?;
            let mut bytes = Vec::new();
            (&mut entry)
                .take(MAX_KEYRING + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| err(format!("{file}: {e}")))?;
            if bytes.len() as u64 > MAX_KEYRING {
                return Err(err(format!("{file} is larger than {MAX_KEYRING} bytes")));
            }
            into.keyrings.push(PackageKeyring {
                package: format!("{} {}", p.name, p.version),
                file,
                bytes,
            });
        }
    }
    Ok(())
}
