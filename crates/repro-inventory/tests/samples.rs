//! The inventory on real pacman databases (`../shared/samples/pacman-local`, `sync-db`),
//! read from a host directory, and error messages for malformed input.

mod common;

use std::fs;

use common::*;
use repro_inventory::{
    HostDir, InstallReason, package_from_desc, parse_db_version, parse_files, parse_mtree,
    parse_sync_db,
};

#[test]
fn pacman5_2019_local_db_reads_completely() {
    let root = rootfs_with_local("alpmrs-2019-pacman5");
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    assert!(inv.errors.is_empty(), "{:#?}", inv.errors);
    assert!(inv.warnings.is_empty(), "{:#?}", inv.warnings);
    assert!(inv.local_db);
    assert_eq!(inv.db_version, Some(9));
    let names: Vec<(&str, &str)> = inv
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("archlinux-keyring", "20190123-2"),
            ("ca-certificates", "20181109-1"),
            ("filesystem", "2019.05-2"),
            ("gcc", "8.2.1+20181127-1"),
            ("glibc", "2.28-5"),
            ("iptables", "1:1.8.2-1"),
            ("libtool", "2.4.6+42+gb88cebd5-2"),
            ("linux-firmware", "20190514.711d329-1"),
            ("pacman", "5.1.3-1"),
        ]
    );
    let p = inv.package("pacman").unwrap();
    assert_eq!(p.dir, "pacman-5.1.3-1");
    assert_eq!(p.base, "pacman");
    assert_eq!(p.arch, "x86_64");
    assert_eq!(
        repro_inventory::rfc3339(p.build_date),
        "2019-03-01T01:41:56Z"
    );
    assert_eq!(p.install_date, 1_553_684_925);
    assert_eq!(p.packager, "Allan McRae <allan@archlinux.org>");
    assert_eq!(p.installed_size, 4_825_088);
    assert_eq!(p.groups, ["base", "base-devel"]);
    assert_eq!(p.licenses, ["GPL"]);
    assert_eq!(p.validation, ["pgp"]);
    assert_eq!(p.reason, InstallReason::Explicit);
    assert_eq!(p.desc_format, 1);
    assert!(p.depends.contains(&"libarchive".to_string()));
    assert_eq!(p.optdepends.len(), 2);
    let files = p.files.as_ref().unwrap();
    assert_eq!(files.count, 343);
    // pacman 5.1 wrote "(null)" for these; alpm-db drops them, we keep them without md5.
    let backup: Vec<(&str, Option<&str>)> = files
        .backup
        .iter()
        .map(|b| (b.path.as_str(), b.md5.as_deref()))
        .collect();
    assert_eq!(
        backup,
        [("etc/makepkg.conf", None), ("etc/pacman.conf", None)]
    );
    let mtree = p.mtree.as_ref().unwrap();
    assert_eq!((mtree.format, mtree.entries), (1, 345));
    let raw = fs::read(local_sample("alpmrs-2019-pacman5").join("pacman-5.1.3-1/mtree")).unwrap();
    assert_eq!(mtree.sha256, repro_oci::digest::sha256_of(&raw).to_string());
    assert!(p.parsed.mtree.is_some() && p.parsed.files.is_some());
    // An empty files file is a package without files.
    assert_eq!(
        inv.package("ca-certificates")
            .unwrap()
            .files
            .as_ref()
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        inv.package("glibc").unwrap().reason,
        InstallReason::Dependency
    );
    assert!(inv.packages.iter().all(|p| !p.base_missing));
}

#[test]
fn a_desc_without_base_is_read_with_the_name_as_base() {
    let good = fs::read_to_string(local_sample("alpmrs-2019-pacman5").join("pacman-5.1.3-1/desc"))
        .unwrap();
    let p = package_from_desc(
        "pacman-5.1.3-1",
        &good.replacen("%BASE%\npacman\n\n", "", 1),
    )
    .unwrap();
    assert!(p.base_missing);
    assert_eq!(p.base, "pacman");
}

#[test]
fn pacman6_syft_entry_has_backup_md5s_and_an_mtree() {
    let dir = local_sample("syft-pacman-6.0.1-5");
    let root = tempfile::tempdir().unwrap();
    copy_dir(
        &dir,
        &root.path().join("var/lib/pacman/local/pacman-6.0.1-5"),
    );
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    assert!(inv.errors.is_empty(), "{:#?}", inv.errors);
    // No ALPM_DB_VERSION in this sample: a warning, not an error.
    assert_eq!(inv.db_version, None);
    assert!(inv.warnings.iter().any(|w| w.contains("ALPM_DB_VERSION")));
    let p = inv.package("pacman").unwrap();
    assert_eq!(p.version, "6.0.1-5");
    let backup = &p.files.as_ref().unwrap().backup;
    assert_eq!(backup.len(), 2);
    assert!(
        backup
            .iter()
            .all(|b| b.md5.as_ref().is_some_and(|m| m.len() == 32)),
        "{backup:?}"
    );
    assert_eq!(p.mtree.as_ref().unwrap().entries, 401);
}

#[test]
fn unknown_packager_is_a_per_package_error_and_the_rest_is_read() {
    let root = rootfs_with_local("paru-2021-pacman6");
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    let failed: Vec<(&str, &str)> = inv
        .errors
        .iter()
        .map(|e| (e.package.as_deref().unwrap(), e.path.as_str()))
        .collect();
    assert_eq!(
        failed,
        [
            ("devel-1-1", "var/lib/pacman/local/devel-1-1/desc"),
            (
                "polybar-1.0.0-1",
                "var/lib/pacman/local/polybar-1.0.0-1/desc"
            ),
        ]
    );
    for e in &inv.errors {
        assert!(e.message.contains("Unknown Packager"), "{}", e.message);
        assert!(e.message.contains("%PACKAGER%"), "{}", e.message);
        assert!(e.to_string().starts_with(&e.path));
    }
    let names: Vec<&str> = inv.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["alsa-lib", "fontconfig", "glibc", "libxcb", "systemd"]
    );
    // The trimmed glibc/systemd entries have only desc (and install): warnings.
    assert!(
        inv.warnings
            .contains(&"var/lib/pacman/local/glibc-2.33-4/files: missing".to_string()),
        "{:#?}",
        inv.warnings
    );
    assert!(inv.package("glibc").unwrap().files.is_none());
    assert_eq!(inv.package("fontconfig").unwrap().version, "2:2.13.93-4");
}

#[test]
fn pacman61_desc_v2_with_xdata() {
    let text =
        fs::read_to_string(local_sample("osv-scalibr-2024-pacman6.1").join("gawk-5.3.1-1.desc"))
            .unwrap();
    let p = package_from_desc("gawk-5.3.1-1", &text).unwrap();
    assert_eq!(p.desc_format, 2);
    assert_eq!(p.xdata, ["pkgtype=pkg"]);
    assert_eq!(p.licenses, ["GPL-3.0-or-later"]);
    assert_eq!(p.provides, ["awk"]);
    assert_eq!(p.depends, ["sh", "glibc", "mpfr"]);
    assert_eq!(p.reason, InstallReason::Dependency);
    assert_eq!(p.packager, "Tobias Powalowski <tpowa@archlinux.org>");
    assert_eq!(
        repro_inventory::rfc3339(p.install_date),
        "2024-12-01T00:04:03Z"
    );
}

/// Every sample file parses, except the two descs with "Unknown Packager".
#[test]
fn every_sample_file_parses() {
    let mut seen = 0;
    for (rel, path) in files_below(&samples().join("pacman-local")) {
        let bytes = fs::read(&path).unwrap();
        let name = rel.rsplit('/').next().unwrap();
        let result = if name.ends_with("desc") {
            package_from_desc("x", std::str::from_utf8(&bytes).unwrap()).map(|_| ())
        } else if name == "files" {
            parse_files(std::str::from_utf8(&bytes).unwrap()).map(|_| ())
        } else if name == "mtree" {
            parse_mtree(&bytes).map(|_| ())
        } else if name == "ALPM_DB_VERSION" {
            assert_eq!(parse_db_version(&bytes), Ok(9));
            Ok(())
        } else {
            continue;
        };
        seen += 1;
        let expect_err = rel.contains("devel-1-1/desc") || rel.contains("polybar-1.0.0-1/desc");
        assert_eq!(result.is_err(), expect_err, "{rel}: {result:?}");
    }
    assert!(seen >= 45, "only {seen} sample files");
}

#[test]
fn malformed_desc_names_the_section_and_line() {
    let good = fs::read_to_string(local_sample("alpmrs-2019-pacman5").join("pacman-5.1.3-1/desc"))
        .unwrap();
    let no_name = good.replacen("%NAME%\npacman\n\n", "", 1);
    let e = package_from_desc("pacman-5.1.3-1", &no_name).unwrap_err();
    assert!(e.contains("%NAME%") || e.contains("Name"), "{e}");

    let bad_date = good.replacen("1551404516", "yesterday", 1);
    let e = package_from_desc("pacman-5.1.3-1", &bad_date).unwrap_err();
    assert!(e.contains("yesterday") && e.contains("%BUILDDATE%"), "{e}");
    assert!(e.contains("| "), "the parser shows the line: {e}");

    // The directory name must match %NAME%-%VERSION%.
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("var/lib/pacman/local/pacman-9.9-1");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("desc"), &good).unwrap();
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    assert_eq!(inv.packages.len(), 1, "the package is still listed");
    assert_eq!(inv.errors.len(), 1);
    assert_eq!(inv.errors[0].path, "var/lib/pacman/local/pacman-9.9-1/desc");
    assert_eq!(
        inv.errors[0].message,
        "names pacman-5.1.3-1, but the directory is pacman-9.9-1"
    );
}

#[test]
fn malformed_files_and_mtree_and_db_version() {
    let e = parse_files("%FILES%\nusr/\nusr/bin/x\n\n%BACKUP%\netc/x\tnot-an-md5\n").unwrap_err();
    assert!(e.contains("not-an-md5") || e.contains("backup"), "{e}");
    let e = parse_files("%FILEZ%\nusr/\n").unwrap_err();
    assert!(e.contains("%FILEZ%") || e.contains("%FILES%"), "{e}");

    let e = parse_mtree(b"#mtree\n/set type=file\n").unwrap_err();
    assert!(e.contains("not gzip"), "{e}");
    let e = parse_mtree(&[0x1f, 0x8b, 0x08, 0, 1, 2, 3]).unwrap_err();
    assert!(e.starts_with("gzip:"), "{e}");
    // A real mtree with one corrupted size.
    let real = fs::read(local_sample("alpmrs-2019-pacman5").join("pacman-5.1.3-1/mtree")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&real[..]), &mut text).unwrap();
    let (before, after) = text.split_once(" size=").unwrap();
    let digits = after.find(|c: char| !c.is_ascii_digit()).unwrap();
    let broken = format!("{before} size=banana{}", &after[digits..]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, broken.as_bytes()).unwrap();
    let e = parse_mtree(&gz.finish().unwrap()).unwrap_err();
    assert!(e.contains("banana"), "{e}");

    assert_eq!(parse_db_version(b"9\n"), Ok(9));
    assert_eq!(
        parse_db_version(b"nine\n").unwrap_err(),
        "line 1: expected a decimal version number, found \"nine\""
    );
    assert_eq!(
        parse_db_version(b"9\n10\n").unwrap_err(),
        "line 2: unexpected \"10\""
    );

    // Through the inventory: the error names the file; other packages are read.
    let root = rootfs_with_local("alpmrs-2019-pacman5");
    let local = root.path().join("var/lib/pacman/local");
    fs::write(local.join("ALPM_DB_VERSION"), "nine\n").unwrap();
    fs::write(
        local.join("libtool-2.4.6+42+gb88cebd5-2/mtree"),
        "plain text",
    )
    .unwrap();
    fs::write(local.join("glibc-2.28-5/files"), "%FILEZ%\n").unwrap();
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    let errs: Vec<String> = inv.errors.iter().map(|e| e.path.clone()).collect();
    assert_eq!(
        errs,
        [
            "var/lib/pacman/local/ALPM_DB_VERSION",
            "var/lib/pacman/local/glibc-2.28-5/files",
            "var/lib/pacman/local/libtool-2.4.6+42+gb88cebd5-2/mtree",
        ]
    );
    assert_eq!(inv.packages.len(), 9);
    assert!(inv.package("libtool").unwrap().mtree.is_none());
}

#[test]
fn sync_dbs_from_the_samples() {
    let sync = samples().join("sync-db");
    let (db, errors) = parse_sync_db(
        "core.db",
        "core",
        &fs::read(sync.join("alpmrs-2019/core.db")).unwrap(),
    );
    assert!(errors.is_empty(), "{errors:#?}");
    let db = db.unwrap();
    assert_eq!(db.compression, "gzip");
    assert_eq!(db.packages.len(), 231);
    // repo-add of 2019 left %BASE% out where it equalled %NAME%.
    assert!(db.missing_base > 0);
    let xz = db.packages.iter().find(|p| p.name == "xz").unwrap();
    assert_eq!(xz.version, "5.2.4-1");
    let pacman = db.packages.iter().find(|p| p.name == "pacman").unwrap();
    assert_eq!(pacman.version, "5.1.3-1");
    assert_eq!(pacman.filename, "pacman-5.1.3-1-x86_64.pkg.tar.xz");
    assert!(
        pacman
            .pgp_signature
            .as_deref()
            .is_some_and(|s| s.starts_with("iQ"))
    );
    assert_eq!(pacman.sha256.len(), 64);

    let paru = fs::read(sync.join("paru/core.db")).unwrap();
    let (db, errors) = parse_sync_db("core.db", "core", &paru);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(db.unwrap().packages.len(), 234);

    // The same tar zstd-compressed: told apart by magic bytes, not by name.
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&paru[..]), &mut tar).unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let (db, errors) = parse_sync_db("core.db", "core", &zst);
    assert!(errors.is_empty());
    let db = db.unwrap();
    assert_eq!((db.compression.as_str(), db.packages.len()), ("zstd", 234));
    let (db, _) = parse_sync_db("core.db", "core", &tar);
    assert_eq!(db.unwrap().compression, "none");

    // repo-add of locally built packages: "Unknown Packager" is an error naming the member.
    let (db, errors) = parse_sync_db(
        "repo.db",
        "repo",
        &fs::read(sync.join("paru/repo.db.tar.gz")).unwrap(),
    );
    assert!(!errors.is_empty());
    for e in &errors {
        assert!(
            e.path.starts_with("repo.db:") && e.path.ends_with("/desc"),
            "{e}"
        );
        // Built by makepkg without PACKAGER and not signed: each is an error of the parser.
        assert!(
            e.message.contains("Unknown Packager") || e.message.contains("%PGPSIG%"),
            "{e}"
        );
    }
    assert!(db.is_some());

    // The hand-packed archweb fixture has a leading directory; its entries are still found.
    let (db, errors) = parse_sync_db(
        "core.db",
        "core",
        &fs::read(sync.join("archweb-2017/core.db.tar.gz")).unwrap(),
    );
    assert_eq!(db.unwrap().packages.len() + errors.len(), 5, "{errors:#?}");

    let (db, errors) = parse_sync_db("x.db", "x", b"definitely not a database");
    assert!(db.is_none());
    assert!(errors[0].message.contains("not a gzip"), "{errors:?}");
}

#[test]
fn sync_dbs_and_os_release_in_a_host_root() {
    let root = rootfs_with_local("alpmrs-2019-pacman5");
    let sync = root.path().join("var/lib/pacman/sync");
    fs::create_dir_all(&sync).unwrap();
    fs::copy(
        samples().join("sync-db/alpmrs-2019/testing.db"),
        sync.join("testing.db"),
    )
    .unwrap();
    fs::write(sync.join("testing.files"), "ignored").unwrap();
    fs::create_dir_all(root.path().join("usr/lib")).unwrap();
    fs::create_dir_all(root.path().join("etc")).unwrap();
    fs::write(
        root.path().join("usr/lib/os-release"),
        "NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
    )
    .unwrap();
    // Absolute: must resolve inside the root, not on the host.
    std::os::unix::fs::symlink("/usr/lib/os-release", root.path().join("etc/os-release")).unwrap();
    let inv = repro_inventory::read(&HostDir::new(root.path())).unwrap();
    assert!(inv.errors.is_empty(), "{:#?}", inv.errors);
    assert_eq!(inv.sync_dbs.len(), 1);
    assert_eq!(inv.sync_dbs[0].repo, "testing");
    assert_eq!(inv.sync_dbs[0].packages.len(), 38);
    let os = inv.os_release.unwrap();
    assert_eq!(os.id.as_deref(), Some("arch"));
    assert_eq!(os.name.as_deref(), Some("Arch Linux"));
}
