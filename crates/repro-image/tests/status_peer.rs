//! `repro-image status` with one rebuilder against arch-repro-status 1.4.3 (built from
//! crates.io by scripts/build-arch-repro-status) on the same local db and the same rebuilders.
//!
//! On the test world's three real rebuilderd instances the two agree line for line. Where
//! arch-repro-status is wrong, a fake rebuilder shows it: it matches a local package by name
//! and version only and takes the first record it finds, so a record for another
//! architecture or a conflicting duplicate decides its answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use repro_testkit::{Behavior, EvilServer};
use repro_world::World;

fn peer() -> PathBuf {
    let root = repro_world::repo_root();
    let out = Command::new("bash")
        .arg(root.join("scripts/build-arch-repro-status"))
        .output()
        .expect("run scripts/build-arch-repro-status");
    assert!(
        out.status.success(),
        "scripts/build-arch-repro-status failed (scripts/install-test-deps installs what it needs):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// The world's reference rootfs, local db only.
fn root(tmp: &Path) -> PathBuf {
    let root = tmp.join("root");
    extract_local_db(World::up().get("WORLD_ROOTFS_REPRO_TAR"), &root);
    root
}

/// The `[x] name version STATUS` lines of arch-repro-status (trailing spaces trimmed).
fn theirs(root: &Path, url: &str) -> Vec<String> {
    let out = Command::new(peer())
        .args(["-a", "-q", "-b"])
        .arg(root.join("var/lib/pacman"))
        .args(["-r", url])
        .env("NO_COLOR", "1")
        .env_remove("REBUILDERD")
        .output()
        .expect("run arch-repro-status");
    assert!(out.status.success(), "arch-repro-status: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| l.trim_end().to_string())
        .collect()
}

fn ours(tmp: &Path, root: &Path, url: &str) -> Vec<String> {
    let out = ok(
        &tmp.join("cache"),
        &[
            "status",
            "--rootfs",
            root.to_str().unwrap(),
            "-r",
            url,
            "--no-attestations",
        ],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| {
            // Our detail in parentheses ("has 5.2.15-1, not this one") is extra.
            l.split("  (").next().unwrap().to_string()
        })
        .collect()
}

#[test]
fn agrees_with_arch_repro_status_on_every_world_rebuilder() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let root = root(tmp.path());
    for n in 1..=3 {
        let url = w.get(&format!("WORLD_REBUILDER_{n}_URL"));
        let (a, b) = (theirs(&root, url), ours(tmp.path(), &root, url));
        assert_eq!(a, b, "rebuilder {n} ({url})");
        assert!(a.len() > 10);
    }
    // The cases the world arranges, as both say them.
    let rb2 = theirs(&root, w.get("WORLD_REBUILDER_2_URL"));
    assert!(rb2.contains(&"[-] sed 4.9-1 BAD".to_string()), "{rb2:?}");
    assert!(
        rb2.contains(&"[?] busybox 1.35.0-1 UNKWN".to_string()),
        "{rb2:?}"
    );
    let rb3 = theirs(&root, w.get("WORLD_REBUILDER_3_URL"));
    assert!(
        rb3.contains(&"[?] bash 5.2.15-2 UNKWN".to_string()),
        "{rb3:?}"
    );
}

#[test]
fn where_arch_repro_status_matching_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let root = root(tmp.path());
    // A v0-only rebuilder (arch-repro-status speaks v0; repro-image falls back to it):
    // - sed 4.9-1 built GOOD for aarch64 (listed first) and BAD for x86_64, the image's;
    // - acl 2.3.1-1 x86_64 listed twice, GOOD then BAD (conflicting duplicates).
    let rec = |name: &str, version: &str, arch: &str, status: &str, id: u32| {
        serde_json::json!({"name": name, "version": version, "status": status,
            "distro": "archlinux", "suite": "core", "architecture": arch,
            "artifact_url": format!("https://mirror.invalid/core/os/x86_64/{name}-{version}-{arch}.pkg.tar.zst"),
            "build_id": id, "built_at": null,
            "has_diffoscope": false, "has_attestation": false})
    };
    let list = serde_json::json!([
        rec("sed", "4.9-1", "aarch64", "GOOD", 1),
        rec("sed", "4.9-1", "x86_64", "BAD", 2),
        rec("acl", "2.3.1-1", "x86_64", "GOOD", 3),
        rec("acl", "2.3.1-1", "x86_64", "BAD", 4),
        rec("grep", "3.8-1", "any", "GOOD", 5),
    ]);
    let server = EvilServer::start([(
        "/api/v0/pkgs/list",
        Behavior::respond(
            200,
            &[("Content-Type", "application/json")],
            serde_json::to_vec(&list).unwrap(),
        ),
    )]);
    let url = server.url();
    let a = theirs(&root, &url);
    let b = ours(tmp.path(), &root, &url);
    // arch-repro-status: the aarch64 GOOD speaks for the x86_64 package, the first duplicate
    // wins.
    assert!(a.contains(&"[+] sed 4.9-1 GOOD".to_string()), "{a:?}");
    assert!(a.contains(&"[+] acl 2.3.1-1 GOOD".to_string()), "{a:?}");
    // repro-image: the exact record is BAD; the duplicates disagree.
    assert!(b.contains(&"[-] sed 4.9-1 BAD".to_string()), "{b:?}");
    assert!(b.contains(&"[!] acl 2.3.1-1 DISPUTED".to_string()), "{b:?}");
    // grep's only record is for `any`; the image's grep is x86_64. arch-repro-status
    // calls it GOOD by name and version; repro-image says the rebuilder has another build.
    assert!(a.contains(&"[+] grep 3.8-1 GOOD".to_string()), "{a:?}");
    assert!(b.contains(&"[?] grep 3.8-1 UNKWN".to_string()), "{b:?}");
}
