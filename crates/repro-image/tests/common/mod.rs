//! Shared helpers for the binary's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use repro_testkit::{LayerSpec, TestImage};

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_repro-image"));
    c.stdin(Stdio::null());
    // Never read the developer's credentials or cache.
    c.env_remove("REGISTRY_AUTH_FILE")
        .env_remove("REPRO_IMAGE_CREDS")
        .env_remove("REBUILDERD")
        .env("HOME", "/nonexistent")
        .env("XDG_RUNTIME_DIR", "/nonexistent")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_DATA_HOME", "/nonexistent");
    c
}

/// Run repro-image with a private cache; returns the output.
pub fn run(cache: &Path, args: &[&str]) -> Output {
    bin()
        .arg("--cache")
        .arg(cache)
        .args(args)
        .output()
        .expect("run repro-image")
}

pub fn ok(cache: &Path, args: &[&str]) -> Output {
    let out = run(cache, args);
    assert!(
        out.status.success(),
        "repro-image {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Expect exit status 2 (error) and return stderr.
pub fn err(cache: &Path, args: &[&str]) -> String {
    let out = run(cache, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "repro-image {args:?} should fail with 2; stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).expect("--json output is JSON")
}

/// A two-layer image with a few ordinary files.
pub fn small_image(dir: &Path) -> TestImage {
    TestImage::build(
        dir,
        &[
            LayerSpec::files(&[
                ("etc/os-release", b"NAME=Test\n", 0o644),
                ("usr/bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
            ]),
            LayerSpec::files(&[("etc/motd", b"hello\n", 0o644)]),
        ],
    )
}

/// Every file under a directory, relative, sorted (for "nothing changed" checks).
pub fn listing(root: &Path) -> Vec<String> {
    fn walk(p: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(p) else { return };
        for e in rd.flatten() {
            let path = e.path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() {
                walk(&path, base, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Blob files in a store (what a partial download must never add).
pub fn blobs(store: &Path) -> Vec<String> {
    listing(&store.join("blobs"))
        .into_iter()
        .filter(|p| p.starts_with("sha256/"))
        .collect()
}

/// The package `name` of a `status --json` report.
pub fn status_pkg<'a>(j: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    j["packages"]
        .as_array()
        .expect("packages array")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {j:#}"))
}

/// Extract only `./var/lib/pacman/local` of a rootfs tarball into `dest` (GNU tar).
pub fn extract_local_db(tarball: &str, dest: &Path) {
    std::fs::create_dir_all(dest).expect("create the root");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(dest)
        .arg("./var/lib/pacman/local")
        .status()
        .expect("run tar");
    assert!(st.success(), "tar -xf {tarball} ./var/lib/pacman/local");
}
