//! `repro-image verify` on the local Arch Linux world (tests/world): lock, fetch, build and
//! the level-by-level comparison against the world's reference images, which the world's
//! independent shell recipe made with the real tools (GNU tar, zstd, podman, skopeo).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use repro_world::World;
use serde_json::Value;

fn world() -> &'static World {
    World::up()
}

fn verify(cache: &Path, image: &str, extra: &[&str]) -> Output {
    let w = world();
    let mut args = vec![
        "--tls-verify=false",
        "verify",
        image,
        "--archive",
        w.get("WORLD_ARCHIVE_URL"),
    ];
    args.extend_from_slice(extra);
    common::run(cache, &args)
}

fn level<'a>(j: &'a Value, name: &str) -> &'a Value {
    j["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .find(|l| l["level"] == name)
        .unwrap_or_else(|| panic!("no level {name} in {j:#}"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn the_repro_image_verifies_uncompressed_gzip_and_from_the_registry() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let diff_ids: Vec<&str> = w.get("WORLD_IMAGE_REPRO_DIFF_IDS").split(',').collect();
    for (image, compressed) in [
        (w.get("WORLD_OCI_REPRO_NONE"), false),
        (w.get("WORLD_OCI_REPRO_GZIP"), true),
        (w.get("WORLD_IMAGE_REPRO"), true),
    ] {
        let keep = tmp.path().join(format!("keep-{}", compressed as u8));
        let _ = std::fs::remove_dir_all(&keep);
        let o = verify(&cache, image, &["--json", "--keep", keep.to_str().unwrap()]);
        let j = common::json(&o);
        assert_eq!(o.status.code(), Some(0), "{image}: {j:#}\n{}", stderr(&o));
        assert_eq!(j["schema"], "repro-image/verify/v1");
        assert_eq!(j["holds"], true);
        // SAFETY: geteuid has no preconditions.
        let step = match unsafe { libc::geteuid() } {
            0 => serde_json::json!("root"),
            uid => {
                serde_json::json!({"user_namespace": {"uid": uid, "gid": unsafe { libc::getegid() }}})
            }
        };
        assert_eq!(j["build"]["image_step"], step);
        for (name, status) in [("tree", "match"), ("tar", "match"), ("config", "match")] {
            assert_eq!(level(&j, name)["status"], status, "{image}: {name}: {j:#}");
            assert_eq!(level(&j, name)["promised"], true);
        }
        // diff_ids: the reference image's, reproduced (the tar level lists them)
        let shown: Vec<String> = level(&j, "tar")["shown"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            shown,
            diff_ids
                .iter()
                .enumerate()
                .map(|(i, d)| format!("layer {}: {d}", i + 1))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            j["image"]["config_digest"],
            w.get("WORLD_IMAGE_REPRO_CONFIG_DIGEST")
        );
        let blob = level(&j, "blob");
        let manifest = level(&j, "manifest");
        if compressed {
            // skopeo's gzip is not replayed: each blob shown to decompress exactly to our tar
            assert_eq!(blob["status"], "equivalent", "{image}: {blob:#}");
            for s in blob["shown"].as_array().unwrap() {
                let s = s.as_str().unwrap();
                assert!(s.contains(": equivalent: "), "{s}");
                assert!(
                    s.contains("gzip, one member, no optional header fields, nothing after it"),
                    "{s}"
                );
            }
            assert_eq!(manifest["status"], "equivalent", "{image}: {manifest:#}");
            assert_eq!(
                j["image"]["manifest_digest"],
                w.get("WORLD_IMAGE_REPRO_DIGEST")
            );
        } else {
            assert_eq!(blob["status"], "match", "{image}: {blob:#}");
            assert_eq!(manifest["status"], "match", "{image}: {manifest:#}");
        }
        assert_eq!(level(&j, "evidence")["status"], "not_checked");
        assert_eq!(level(&j, "evidence")["promised"], false);
        assert_eq!(j["accounting"]["unexplained"]["files"], 0);
        assert!(
            j["accounting"]["line"]
                .as_str()
                .unwrap()
                .ends_with("0.0% unexplained"),
            "{}",
            j["accounting"]["line"]
        );

        // --keep: the reference rootfs tarball reproduced bit for bit, and the tree kept
        let build = keep.join("build");
        assert_eq!(
            sha256(&build.join("repro.tar")),
            sha256(Path::new(w.get("WORLD_ROOTFS_REPRO_TAR")))
        );
        assert_eq!(
            sha256(&build.join("repro.tar.zst")),
            sha256(Path::new(w.get("WORLD_ROOTFS_REPRO_TAR_ZST")))
        );
        assert!(keep.join("repro-image.lock").is_file());
        assert!(build.join("oci/index.json").is_file());
        assert!(
            build.join("work/build/usr/bin/update-ca-trust").is_file(),
            "the rebuilt tree is kept"
        );
        assert_eq!(
            j["kept"].as_str().map(PathBuf::from),
            Some(std::fs::canonicalize(&keep).unwrap())
        );
    }
}

#[test]
fn the_human_report_ends_with_the_accounting_headline_and_the_verdict() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let o = verify(
        &tmp.path().join("cache"),
        w.get("WORLD_OCI_REPRO_ZSTD"),
        &[],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    let n = lines.len();
    assert!(
        lines[n - 3].contains(" files / ") && lines[n - 3].contains(" bytes: "),
        "{out}"
    );
    assert!(
        lines[n - 3].contains("% from reproduced packages, "),
        "{out}"
    );
    assert!(
        lines[n - 3].ends_with("generated and reproduced, 0.0% unexplained"),
        "{out}"
    );
    assert_eq!(
        lines[n - 1],
        "HOLDS: every level the recipe promises matches (tree, tar, blob, config, manifest)"
    );
    // zstd blobs (klauspost's, not replayed) shown equivalent, frame checked
    assert!(
        out.contains("one frame, no optional header fields, nothing after it"),
        "{out}"
    );
    // progress went to stderr, not into the report
    assert!(stderr(&o).contains("repro-image: verify: building from the pins"));
    assert!(!out.contains("repro-image: verify:"));
}

#[test]
fn the_tampered_image_fails_naming_the_file_its_package_and_the_level() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let file = w.get("WORLD_IMAGE_TAMPERED_FILE"); // "/usr/bin/update-ca-trust"
    let path = file.trim_start_matches('/');

    let o = verify(&cache, w.get("WORLD_OCI_TAMPERED_GZIP"), &["--json"]);
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(1), "{j:#}\n{}", stderr(&o));
    assert_eq!(j["holds"], false);
    let tree = level(&j, "tree");
    assert_eq!(tree["status"], "differs");
    let diffs = tree["differences"].as_array().unwrap();
    let paths: std::collections::BTreeSet<&str> =
        diffs.iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [path].into(), "only the tampered file: {tree:#}");
    for d in diffs {
        assert_eq!(d["packages"], serde_json::json!(["ca-certificates-utils"]));
        assert_eq!(d["class"], "modified");
    }
    assert!(diffs.iter().any(|d| d["field"] == "sha256"));
    // the tar level names the layer and the entry; the other layer still holds
    let tar = level(&j, "tar");
    assert_eq!(tar["status"], "differs");
    assert!(
        tar["differences"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["layer"] == 0 && d["path"] == path),
        "{tar:#}"
    );
    assert_eq!(level(&j, "blob")["status"], "differs");
    assert_eq!(j["accounting"]["unexplained"]["files"], 1);

    // The human form says it in the verdict line.
    let o = verify(&cache, w.get("WORLD_OCI_TAMPERED_NONE"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(
            "DOES NOT HOLD: the tree level differs (1 entry differs in content, first "
        ) && last.contains(&format!(
            "{file} (size) [package ca-certificates-utils, modified]"
        )),
        "{out}"
    );
    // the inline diff of the small script shows the added line
    assert!(
        out.contains("-# tampered: this line is not in the package"),
        "{out}"
    );
}

#[test]
fn the_base_style_image_differs_only_in_times_and_the_content_matches() {
    // Built without normalisation: wall-clock mtimes and install dates, the pacman keyring
    // left in. Its created time is the wall clock, so the recipe's day is given.
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let o = verify(
        &tmp.path().join("cache"),
        w.get("WORLD_OCI_BASE_NONE"),
        &[
            "--json",
            "--source-date-epoch",
            w.get("WORLD_IMAGE_SDE"),
            "--snapshot",
            w.get("WORLD_IMAGE_SNAPSHOT"),
        ],
    );
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(1), "{j:#}\n{}", stderr(&o));
    let tree = level(&j, "tree");
    assert_eq!(tree["status"], "explained", "{tree:#}");
    let why = tree["why"].as_str().unwrap();
    assert!(why.starts_with("timestamps differ ("), "{why}");
    assert!(why.contains(" mtimes, "), "{why}");
    assert!(why.contains("%INSTALLDATE% in the local db"), "{why}");
    assert!(why.contains("otherwise the content matches"), "{why}");
    let shown = tree["shown"].as_array().unwrap();
    assert!(
        shown[0]
            .as_str()
            .unwrap()
            .starts_with("tree without times: "),
        "{tree:#}"
    );
    assert!(
        shown[1]
            .as_str()
            .unwrap()
            .ends_with("local db desc files equal once %INSTALLDATE% is left out"),
        "{tree:#}"
    );
    // Every listed difference is a time or the generated keyring, nothing else.
    for d in tree["differences"].as_array().unwrap() {
        let p = d["path"].as_str().unwrap();
        assert!(
            d["field"] == "mtime"
                || (d["field"] == "entry" && p.starts_with("etc/pacman.d/gnupg/"))
                || (p.starts_with("var/lib/pacman/local/") && p.ends_with("/desc")),
            "{d}"
        );
    }
}

#[test]
fn after_the_archive_moved_on_an_old_image_still_verifies_from_its_lock() {
    // A repro rootfs of the *old* snapshot, made by the world's own recipe script; the
    // archive's newest snapshot has newer bash and edgecases since.
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let old: repro_lock::Snapshot = w.get("SNAPSHOT_OLD").parse().unwrap();
    assert!(w.get("SNAPSHOT_OLD") < w.get("SNAPSHOT_NEW"));
    let out = tmp.path().join("old");
    let st = Command::new("bash")
        .arg(repro_world::repo_root().join("tests/world/recipe/build-rootfs.sh"))
        .arg(w.get("WORLD_ARCHIVE_URL"))
        .arg((old.epoch() + 86_400).to_string())
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "build-rootfs.sh of the old snapshot");
    let cache = tmp.path().join("cache");
    let keep = tmp.path().join("keep");
    let image = format!("rootfs:{}", out.join("repro.tar.zst").display());
    let o = verify(
        &cache,
        &image,
        &["--json", "--keep", keep.to_str().unwrap()],
    );
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(0), "{j:#}\n{}", stderr(&o));
    assert_eq!(j["lock"]["archive_snapshot"], w.get("SNAPSHOT_OLD"));
    let lock = repro_lock::Lock::load(&keep.join("repro-image.lock")).unwrap();
    assert_eq!(lock.package("bash").unwrap().version, "5.2.15-1");
    // The bare tarball: its .tar.zst reproduced byte for byte (same libzstd).
    assert_eq!(level(&j, "blob")["status"], "match");
    assert_eq!(level(&j, "tree")["status"], "match");
    assert_eq!(level(&j, "config")["promised"], false);

    // And again from the kept lock alone (--lock), signatures checked against the
    // packager's key as of the snapshot day: the same verdict.
    let o = common::run(
        &cache,
        &[
            "verify",
            &image,
            "--lock",
            keep.join("repro-image.lock").to_str().unwrap(),
            "--keyring",
            w.get("WORLD_KEYRING"),
            "--json",
        ],
    );
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(0), "{j:#}\n{}", stderr(&o));
    assert_eq!(j["lock"]["made"], false);
}

#[test]
fn verify_needs_an_archive_or_a_lock_and_refuses_a_non_empty_keep_dir() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let e = common::err(&cache, &["verify", w.get("WORLD_OCI_REPRO_NONE")]);
    assert!(e.contains("give --archive URL"), "{e}");
    let keep = tmp.path().join("keep");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::write(keep.join("x"), b"x").unwrap();
    let e = common::err(
        &cache,
        &[
            "verify",
            w.get("WORLD_OCI_REPRO_NONE"),
            "--archive",
            w.get("WORLD_ARCHIVE_URL"),
            "--keep",
            keep.to_str().unwrap(),
        ],
    );
    assert!(e.contains("not empty"), "{e}");
}

#[test]
fn evidence_from_rebuilders_with_a_quorum_counts_for_the_verdict() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (rb1, rb2, rb3) = (
        w.get("WORLD_REBUILDER_1_URL"),
        w.get("WORLD_REBUILDER_2_URL"),
        w.get("WORLD_REBUILDER_3_URL"),
    );
    let disputed = w.get("WORLD_REBUILDER_DISPUTED"); // sed: GOOD, BAD, GOOD
    let image = w.get("WORLD_OCI_REPRO_NONE");

    // All three: rb2 says BAD for sed, the others GOOD: disputed, the verdict fails even
    // though every other level holds.
    let o = verify(&cache, image, &["--json", "-r", rb1, "-r", rb2, "-r", rb3]);
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(1), "{j:#}\n{}", stderr(&o));
    let ev = level(&j, "evidence");
    assert_eq!(ev["status"], "differs");
    assert_eq!(ev["promised"], true);
    let shown = ev["shown"].as_array().unwrap();
    assert_eq!(shown.len(), 1, "{ev:#}");
    let line = shown[0].as_str().unwrap();
    assert!(
        line.starts_with(&format!("{disputed} ")) && line.contains(" DISPUTED ("),
        "{line}"
    );
    assert!(line.contains(&format!("{rb2} BAD")), "{line}");
    for name in ["tree", "tar", "blob", "config", "manifest"] {
        assert_eq!(level(&j, name)["status"], "match", "{name}");
    }

    // rb1 and rb3 (rb3 has the older bash and edgecases only, rb1 the image's): each
    // package GOOD on at least one: holds with quorum 1, not with quorum 2.
    let o = verify(&cache, image, &["--json", "-r", &format!("{rb1},{rb3}")]);
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(0), "{j:#}\n{}", stderr(&o));
    assert_eq!(level(&j, "evidence")["status"], "match");
    let why = level(&j, "evidence")["why"].as_str().unwrap().to_string();
    assert!(
        why.contains("attestation verified for the pinned sha256"),
        "{why}"
    );

    // rb1's key pinned to rb3's in rebuilders.toml: none of rb1's attestations verifies,
    // so with quorum 1 only rb3's GOODs count and bash 5.2.15-2 (rb3 has 5.2.15-1) fails.
    let conf_home = tmp.path().join("config");
    std::fs::create_dir_all(conf_home.join("repro-image")).unwrap();
    std::fs::write(
        conf_home.join("repro-image/rebuilders.toml"),
        format!(
            "[[rebuilder]]\nurl = \"{rb1}\"\nkey_files = [\"{}\"]\n",
            w.get("WORLD_REBUILDER_3_PUBKEY")
        ),
    )
    .unwrap();
    let o = common::bin()
        .arg("--cache")
        .arg(&cache)
        .args(["--tls-verify=false", "verify", image, "--archive"])
        .arg(w.get("WORLD_ARCHIVE_URL"))
        .args(["--json", "-r", rb1, "-r", rb3])
        .env("XDG_CONFIG_HOME", &conf_home)
        .output()
        .unwrap();
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(1), "{j:#}\n{}", stderr(&o));
    let shown: Vec<&str> = level(&j, "evidence")["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("bash 5.2.15-2 ") && s.contains("INVALID attestation")),
        "{shown:?}"
    );
    let o = verify(
        &cache,
        image,
        &["--json", "-r", rb1, "-r", rb3, "--quorum", "2"],
    );
    let j = common::json(&o);
    assert_eq!(o.status.code(), Some(1), "{j:#}");
    let shown: Vec<&str> = level(&j, "evidence")["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        shown
            .iter()
            .any(|s| s.starts_with("bash 5.2.15-2 NOT_REPRODUCED") && s.contains("has 5.2.15-1")),
        "{shown:?}"
    );

    // A quorum larger than the rebuilders given is an error, before anything is built.
    let o = verify(&cache, image, &["-r", rb1, "--quorum", "2"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--quorum 2"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("building"), "{}", stderr(&o));
}
