//! Sample data and small rootfs builders shared by the tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

pub use repro_testkit::samples;

pub fn local_sample(name: &str) -> PathBuf {
    samples().join("pacman-local").join(name)
}

/// Copy a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A rootfs directory whose `var/lib/pacman/local` is a copy of the sample `name`.
pub fn rootfs_with_local(name: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_dir(&local_sample(name), &t.path().join("var/lib/pacman/local"));
    t
}

/// Every file below `dir`, relative, sorted.
pub fn files_below(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(p: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
        for e in fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                let rel = path
                    .strip_prefix(base)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
