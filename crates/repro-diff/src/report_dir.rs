//! Writing the two versions of each differing file under a report directory, for
//! diffoscope.
//!
//! Safety: the directory must be new or empty, so nothing in it was put there by someone
//! else; every name written is an entry's normalised path (no `..`, no absolute paths, no
//! NUL), split into components and created one by one below the directory; an existing
//! component that is not a real directory (a symlink, say) is an error, and a file is opened
//! with `create_new`, which never follows a symlink. Only regular files' bytes are written.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::DiffError;

#[derive(Debug)]
pub struct ReportDir {
    root: PathBuf,
}

impl ReportDir {
    /// Create `dir` (and its parents) or accept it if it is an empty directory.
    pub fn create(dir: &Path) -> Result<Self, DiffError> {
        let err = |reason: String| DiffError::ReportDir {
            path: dir.to_path_buf(),
            reason,
        };
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {
                let mut rd = fs::read_dir(dir).map_err(|e| err(e.to_string()))?;
                if rd.next().is_some() {
                    return Err(err("exists and is not empty".into()));
                }
            }
            Ok(_) => return Err(err("exists and is not a directory".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
            }
            Err(e) => return Err(err(e.to_string())),
        }
        Ok(ReportDir {
            root: dir.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Write `content` to `<root>/<prefix>/<path>`; returns the relative name written.
    /// `prefix` is ours (`a`, `layer-0/b`); `path` is an entry's normalised path and is
    /// checked again here.
    pub fn write(
        &self,
        prefix: &str,
        path: &[u8],
        content: &mut dyn Read,
    ) -> Result<String, DiffError> {
        let shown = String::from_utf8_lossy(path).into_owned();
        let err = |reason: String| DiffError::ReportDir {
            path: self.root.clone(),
            reason: format!("{prefix}/{shown}: {reason}"),
        };
        let mut comps: Vec<&[u8]> = prefix.as_bytes().split(|&b| b == b'/').collect();
        comps.extend(path.split(|&b| b == b'/'));
        for c in &comps {
            if c.is_empty() || *c == b"." || *c == b".." || c.contains(&0) {
                return Err(err("not a safe relative name".into()));
            }
        }
        let (file, dirs) = comps.split_last().ok_or_else(|| err("empty name".into()))?;
        let mut cur = self.root.clone();
        for d in dirs {
            cur.push(std::ffi::OsStr::from_bytes(d));
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(err(format!(
                        "{} exists and is not a directory",
                        cur.display()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&cur).map_err(|e| err(e.to_string()))?
                }
                Err(e) => return Err(err(e.to_string())),
            }
        }
        cur.push(std::ffi::OsStr::from_bytes(file));
        // A path listed twice in a layer: the last one wins, as on extraction. Removing
        // unlinks a symlink itself, never its target.
        if let Ok(m) = fs::symlink_metadata(&cur) {
            if m.is_dir() {
                return Err(err("a directory is in the way".into()));
            }
            fs::remove_file(&cur).map_err(|e| err(e.to_string()))?;
        }
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&cur)
            .map_err(|e| err(e.to_string()))?;
        io::copy(content, &mut f).map_err(|e| err(e.to_string()))?;
        f.flush().map_err(|e| err(e.to_string()))?;
        Ok(format!("{prefix}/{shown}"))
    }
}
