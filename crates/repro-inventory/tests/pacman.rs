//! Our inventory against the real pacman (Debian's `pacman-package-manager`, 6.0.2) reading
//! the same sample databases: `pacman -Q` must list the same name/version pairs, except for
//! the packages we report as unreadable (pacman does not check the packager's format).
//!
//! pacman must be installed (`apt-get install pacman-package-manager`); without it this
//! test fails.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use repro_inventory::HostDir;

fn pacman_q(root: &std::path::Path) -> BTreeSet<(String, String)> {
    // A private copy is written to (lock file), with an empty config: nothing of the host's.
    let conf = root.join("pacman.conf");
    std::fs::write(&conf, "").unwrap();
    let out = Command::new("pacman")
        .arg("-Q")
        .arg("--root")
        .arg(root)
        .arg("--dbpath")
        .arg(root.join("var/lib/pacman"))
        .arg("--config")
        .arg(&conf)
        .env("LC_ALL", "C")
        .output()
        .expect("pacman must be installed (Debian: pacman-package-manager)");
    assert!(
        out.status.success(),
        "pacman -Q failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (n, v) = l.split_once(' ').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect()
}

fn ours(root: &std::path::Path) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let inv = repro_inventory::read(&HostDir::new(root)).unwrap();
    let pkgs = inv
        .packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect();
    let failed = inv
        .errors
        .iter()
        .filter_map(|e| e.package.clone())
        .collect();
    (pkgs, failed)
}

#[test]
fn pacman_lists_what_we_list() {
    for sample in ["alpmrs-2019-pacman5", "paru-2021-pacman6"] {
        let root = rootfs_with_local(sample);
        let theirs = pacman_q(root.path());
        let (mine, failed) = ours(root.path());
        assert!(!theirs.is_empty(), "{sample}: pacman lists nothing");
        let unread: BTreeSet<String> = theirs
            .difference(&mine)
            .map(|(n, v)| format!("{n}-{v}"))
            .collect();
        assert_eq!(
            unread, failed,
            "{sample}: only the unreadable ones may be missing"
        );
        assert!(mine.is_subset(&theirs), "{sample}: {mine:?} vs {theirs:?}");
    }
}
