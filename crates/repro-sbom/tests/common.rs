//! Shared by the tests: sample roots, and the official validators in a venv.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub use repro_testkit::samples;

/// A root whose `var/lib/pacman/local` is a sample db (and, if given, whose
/// `var/lib/pacman/sync/core.db` a sample sync db).
pub fn sample_root(tmp: &Path, local: &str, sync: Option<&str>) -> PathBuf {
    let root = tmp.join("root");
    std::fs::create_dir_all(root.join("var/lib/pacman/sync")).unwrap();
    std::os::unix::fs::symlink(
        samples().join("pacman-local").join(local),
        root.join("var/lib/pacman/local"),
    )
    .unwrap();
    if let Some(s) = sync {
        std::fs::copy(
            samples().join("sync-db").join(s),
            root.join("var/lib/pacman/sync/core.db"),
        )
        .unwrap();
    }
    root
}

static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The venv with spdx-tools and cyclonedx-python-lib (`REPRO_SBOM_VENV`, default
/// `target/sbom-venv` of the workspace), created if missing: `python3 -m venv` (Debian:
/// python3-venv) and `pip install` from PyPI. Built under a temporary name and renamed, so
/// concurrent test processes never see half a venv.
pub fn venv() -> PathBuf {
    let mut guard = VENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = &*guard {
        return v.clone();
    }
    let dir = std::env::var_os("REPRO_SBOM_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/sbom-venv"));
    let ready = |d: &Path| {
        Command::new(d.join("bin/python"))
            .args(["-c", "import spdx_tools.spdx, cyclonedx.validation.json"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ready(&dir) {
        let tmp = dir.with_file_name(format!("sbom-venv.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let run = |c: &mut Command| {
            let o = c.output().expect("run python3 (Debian: python3-venv)");
            assert!(
                o.status.success(),
                "{c:?}: {}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        run(Command::new("python3").arg("-m").arg("venv").arg(&tmp));
        run(Command::new(tmp.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "spdx-tools==0.8.5",
            "cyclonedx-python-lib[json-validation]==11.12.0",
        ]));
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            // Another process won the race.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        assert!(ready(&dir), "the venv at {} does not work", dir.display());
    }
    *guard = Some(dir.clone());
    dir
}

/// Run the official validator of `kind` ("spdx" or "cyclonedx") on `files`; panics with
/// its messages if any is invalid.
pub fn validate(kind: &str, files: &[&Path]) {
    let v = venv();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../repro-sbom/tests/validate.py");
    let out = Command::new(v.join("bin/python"))
        .arg(script)
        .arg(kind)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{kind} validation failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
