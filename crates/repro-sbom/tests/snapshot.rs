//! Exact-output snapshots on real pacman databases (../shared/samples), determinism, and
//! the official validators. `UPDATE_SNAPSHOTS=1` rewrites the snapshots.

mod common;

use std::path::Path;

use common::*;
use repro_inventory::{HostDir, Inventory};
use repro_sbom::{FileEntry, Format, Options, Subject, SubjectKind};

fn subject() -> Subject {
    Subject {
        kind: SubjectKind::Image,
        name: "docker://registry.test/archlinux:sample".into(),
        manifest_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        config_digest: Some(format!("sha256:{}", "cd".repeat(32))),
        platform: Some("linux/amd64".into()),
        created: Some("2019-06-14T10:11:12.5+02:00".into()),
        purl: Some(repro_sbom::purl::oci(
            "registry.test",
            "archlinux",
            &format!("sha256:{}", "ab".repeat(32)),
            Some("amd64"),
            Some("sample"),
        )),
    }
}

fn opts(format: Format, files: Option<Vec<FileEntry>>) -> Options {
    Options {
        format,
        created: None,
        files,
        tool_version: "0.0.0-test".into(),
    }
}

fn file(path: &str, fill: &str) -> FileEntry {
    FileEntry {
        path: path.into(),
        size: 1,
        sha256: fill.repeat(64),
        sha1: Some(fill.repeat(40)),
    }
}

fn inventory(tmp: &Path, local: &str, sync: Option<&str>) -> Inventory {
    repro_inventory::read(&HostDir::new(sample_root(tmp, local, sync))).unwrap()
}

fn check(name: &str, bytes: &[u8]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, bytes).unwrap();
    }
    let want = std::fs::read(&path).unwrap_or_default();
    assert!(
        want == bytes,
        "{name} differs from its snapshot (UPDATE_SNAPSHOTS=1 to accept):\n{}",
        String::from_utf8_lossy(bytes)
    );
}

/// 2019 db (pacman 5): legacy license names, versioned deps, a package file sha256 from
/// the sync db, unresolved deps.
#[test]
fn alpmrs_2019_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory(
        tmp.path(),
        "alpmrs-2019-pacman5",
        Some("alpmrs-2019/core.db"),
    );
    assert_eq!(inv.packages.len(), 9);
    let mut written = Vec::new();
    for (format, name) in [
        (Format::SpdxJson, "alpmrs-2019.spdx.json"),
        (Format::CycloneDxJson, "alpmrs-2019.cdx.json"),
    ] {
        let a = repro_sbom::generate(&inv, &subject(), &opts(format, None)).unwrap();
        let b = repro_sbom::generate(&inv, &subject(), &opts(format, None)).unwrap();
        assert_eq!(a, b, "two runs, same bytes");
        check(name, &a);
        let p = tmp.path().join(name);
        std::fs::write(&p, &a).unwrap();
        written.push(p);
    }
    let spdx = String::from_utf8(std::fs::read(&written[0]).unwrap()).unwrap();
    // The config's created time, normalised to UTC.
    assert!(spdx.contains(r#""created": "2019-06-14T08:11:12Z""#));
    // pacman's sha256 and file name from core.db.
    assert!(spdx.contains(r#""packageFileName": "pacman-5.1.3-1-x86_64.pkg.tar.xz""#));
    assert!(spdx.contains("pkg:alpm/arch/iptables@1:1.8.2-1?arch=x86_64&upstream=iptables"));
    assert!(spdx.contains("pkg:alpm/arch/gcc@8.2.1%2B20181127-1?arch=x86_64&upstream=gcc"));
    validate("spdx", &[&written[0]]);
    validate("cyclonedx", &[&written[1]]);
}

/// 2021 db (pacman 6): soname deps through provides, an epoch, unreadable packages, and
/// files (owned and unowned).
#[test]
fn paru_2021_snapshots_with_files() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory(tmp.path(), "paru-2021-pacman6", None);
    assert_eq!(inv.errors.len(), 2);
    let files = vec![
        file("usr/lib/libasound.so.2.0.0", "1"),
        file("usr/bin/fc-cache", "2"),
        file("etc/hostname", "3"),
        file("usr/lib/libasound.so.2", "1"),
    ];
    let mut written = Vec::new();
    for (format, name) in [
        (Format::SpdxJson, "paru-2021-files.spdx.json"),
        (Format::CycloneDxJson, "paru-2021-files.cdx.json"),
    ] {
        let mut o = opts(format, Some(files.clone()));
        o.created = Some(1_620_000_000);
        let a = repro_sbom::generate(&inv, &subject(), &o).unwrap();
        // The order files come in does not matter.
        let mut rev = files.clone();
        rev.reverse();
        let mut o2 = o.clone();
        o2.files = Some(rev);
        assert_eq!(a, repro_sbom::generate(&inv, &subject(), &o2).unwrap());
        check(name, &a);
        let p = tmp.path().join(name);
        std::fs::write(&p, &a).unwrap();
        written.push(p);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written[0]).unwrap()).unwrap();
    let rels = v["relationships"].as_array().unwrap();
    let has = |a: &str, t: &str, b: &str| {
        rels.iter().any(|r| {
            r["spdxElementId"] == a && r["relationshipType"] == t && r["relatedSpdxElement"] == b
        })
    };
    // systemd needs libacl.so, iptables, …: not installed; alsa-lib needs glibc: installed.
    assert!(has(
        "SPDXRef-Package-alpm-alsa-lib",
        "DEPENDS_ON",
        "SPDXRef-Package-alpm-glibc"
    ));
    assert!(has(
        "SPDXRef-Package-alpm-alsa-lib",
        "CONTAINS",
        "SPDXRef-File-usr-lib-libasound.so.2"
    ));
    assert!(has(
        "SPDXRef-Image",
        "CONTAINS",
        "SPDXRef-File-etc-hostname"
    ));
    assert!(has(
        "SPDXRef-Package-alpm-fontconfig",
        "CONTAINS",
        "SPDXRef-File-usr-bin-fc-cache"
    ));
    let systemd = v["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "systemd")
        .unwrap();
    assert!(
        systemd["comment"]
            .as_str()
            .unwrap()
            .contains("libacl.so=1-64")
    );
    assert_eq!(systemd["licenseDeclared"], "GPL-2.0-only AND LGPL-2.1-only");
    assert!(v["comment"].as_str().unwrap().contains("devel-1-1/desc"));
    validate("spdx", &[&written[0]]);
    validate("cyclonedx", &[&written[1]]);
}

#[test]
fn spdx_needs_a_time_for_a_directory_and_cyclonedx_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let inv = inventory(tmp.path(), "alpmrs-2019-pacman5", None);
    let s = Subject {
        kind: SubjectKind::Rootfs,
        name: "/some/dir".into(),
        manifest_digest: None,
        config_digest: None,
        platform: None,
        created: None,
        purl: None,
    };
    let e = repro_sbom::generate(&inv, &s, &opts(Format::SpdxJson, None)).unwrap_err();
    assert!(e.to_string().contains("--created"), "{e}");
    let c = repro_sbom::generate(&inv, &s, &opts(Format::CycloneDxJson, None)).unwrap();
    assert!(!String::from_utf8_lossy(&c).contains("timestamp"));
    let mut o = opts(Format::SpdxJson, None);
    o.created = Some(0);
    let a = String::from_utf8(repro_sbom::generate(&inv, &s, &o).unwrap()).unwrap();
    assert!(a.contains("https://repro-image.invalid/spdx/rootfs/"));
    assert!(a.contains(r#""created": "1970-01-01T00:00:00Z""#));
}

#[test]
fn directory_files_are_the_same_with_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    for i in 0..200 {
        let d = root.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), format!("content {i}").repeat(i)).unwrap();
    }
    std::os::unix::fs::symlink("d0/f0", root.join("link")).unwrap();
    let one = repro_sbom::files::from_dir(&root, 1).unwrap();
    let four = repro_sbom::files::from_dir(&root, 4).unwrap();
    assert_eq!(one, four);
    assert_eq!(one.len(), 200, "symlinks are not files");
    let f = one.iter().find(|f| f.path == "d0/f0").unwrap();
    // sha256 and sha1 of the empty file.
    assert_eq!(
        f.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        f.sha1.as_deref(),
        Some("da39a3ee5e6b4b0d3255bfef95601890afd80709")
    );
    let inv = Inventory::default();
    let s = Subject {
        kind: SubjectKind::Rootfs,
        name: "r".into(),
        manifest_digest: None,
        config_digest: None,
        platform: None,
        created: None,
        purl: None,
    };
    let mut o1 = opts(Format::SpdxJson, Some(one));
    o1.created = Some(1);
    let mut o4 = o1.clone();
    o4.files = Some(four);
    assert_eq!(
        repro_sbom::generate(&inv, &s, &o1).unwrap(),
        repro_sbom::generate(&inv, &s, &o4).unwrap()
    );
}
