//! `repro-image diff` on pairs built from the local world's reference images and rootfs
//! tarballs with the real tools (GNU tar, setfattr, skopeo): each pair differs in known ways
//! and the diff must name exactly those.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use repro_world::World;
use serde_json::{Value, json};

/// Run `repro-image --json diff ARGS` and return (exit code, JSON).
fn diff_json(cache: &Path, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--tls-verify=false", "--json", "diff"];
    all.extend_from_slice(args);
    let out = run(cache, &all);
    let code = out.status.code().expect("exit code");
    assert!(
        code == 0 || code == 1,
        "repro-image {all:?} failed ({code}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out);
    assert_eq!(j["schema"], "repro-image/diff/v1");
    assert_eq!(j["equal"], code == 0, "exit status and `equal` agree");
    (code, j)
}

fn differences(j: &Value) -> &Vec<Value> {
    j["differences"].as_array().expect("differences")
}

/// (level, layer, path, field) of every difference.
fn keys(j: &Value) -> Vec<(String, Option<u64>, Option<String>, String)> {
    differences(j)
        .iter()
        .map(|d| {
            (
                d["level"].as_str().unwrap().to_string(),
                d["layer"].as_u64(),
                d["path"].as_str().map(str::to_string),
                d["field"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The file-level differences as (path, field, a, b).
fn file_diffs(j: &Value) -> Vec<(String, String, Value, Value)> {
    differences(j)
        .iter()
        .filter(|d| d["level"] == "file")
        .map(|d| {
            (
                d["path"].as_str().unwrap().to_string(),
                d["field"].as_str().unwrap().to_string(),
                d["a"].clone(),
                d["b"].clone(),
            )
        })
        .collect()
}

fn sh(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The world's repro rootfs extracted by GNU tar (owners, modes, mtimes, xattrs kept).
fn extract_rootfs(w: &World, into: &Path) -> PathBuf {
    let root = into.join("root");
    std::fs::create_dir_all(&root).unwrap();
    sh(Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-xpf",
        ])
        .arg(w.get("WORLD_ROOTFS_REPRO_TAR"))
        .arg("-C")
        .arg(&root));
    root
}

/// Pack `root` the way the recipe does (GNU tar, pax with xattrs, sorted names); `what` is
/// `.` or the members to pack; `extra` more options (e.g. an --exclude).
fn repack(root: &Path, out: &Path, what: &[&str], extra: &[&str]) {
    sh(Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--acls",
            "--sort=name",
            "--pax-option=delete=atime,delete=ctime",
        ])
        .args(extra)
        .arg("-C")
        .arg(root)
        .arg("-cf")
        .arg(out)
        .args(what));
}

fn rootfs(p: &Path) -> String {
    format!("rootfs:{}", p.display())
}

#[test]
fn identical_images_in_two_transports_are_equal() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    // The registry holds the very manifest of the gzip layout.
    let (code, j) = diff_json(
        tmp.path(),
        &[w.get("WORLD_OCI_REPRO_GZIP"), w.get("WORLD_IMAGE_REPRO")],
    );
    assert_eq!(code, 0, "{j:#}");
    assert!(differences(&j).is_empty());
    assert_eq!(j["a"]["manifest_digest"], w.get("WORLD_IMAGE_REPRO_DIGEST"));
    assert_eq!(j["b"]["manifest_digest"], w.get("WORLD_IMAGE_REPRO_DIGEST"));
    assert_eq!(j["a"]["layers"], 2);
    // The human table says so too.
    let out = run(
        tmp.path(),
        &[
            "diff",
            w.get("WORLD_OCI_REPRO_NONE"),
            w.get("WORLD_OCI_REPRO_NONE"),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("equal: 0 difference(s)"));
}

#[test]
fn docker_archive_vs_oci_layout_differs_only_in_the_manifest_format() {
    // The same uncompressed image written as a docker-archive (Docker v2 manifest and config
    // media types, no annotations) and as the world's oci: layout: the config and every
    // layer entry are equal; only the manifest's format fields differ.
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("image.tar");
    let da = format!("docker-archive:{}:archlinux:repro", archive.display());
    ok(tmp.path(), &["copy", w.get("WORLD_OCI_REPRO_NONE"), &da]);
    let da = format!("docker-archive:{}", archive.display());
    let (code, j) = diff_json(tmp.path(), &[&da, w.get("WORLD_OCI_REPRO_NONE")]);
    assert_eq!(code, 1, "{j:#}");
    for d in differences(&j) {
        assert_eq!(d["level"], "manifest", "only the manifest differs: {d}");
    }
    let mut fields: Vec<&str> = differences(&j)
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "annotations[\"org.opencontainers.image.base.digest\"]",
            "annotations[\"org.opencontainers.image.base.name\"]",
            "config.mediaType",
            "digest",
            "layers[0].mediaType",
            "layers[1].mediaType",
            "mediaType",
        ],
        "{j:#}"
    );
    let mt = differences(&j)
        .iter()
        .find(|d| d["field"] == "mediaType")
        .unwrap();
    assert_eq!(
        mt["a"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(mt["b"], "application/vnd.oci.image.manifest.v1+json");
}

#[test]
fn other_compression_differs_only_in_blobs_and_ignore_tar_format_makes_it_equal() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (w.get("WORLD_OCI_REPRO_GZIP"), w.get("WORLD_OCI_REPRO_ZSTD"));
    let (code, j) = diff_json(tmp.path(), &[a, b]);
    assert_eq!(code, 1);
    let expected: Vec<_> = [
        "digest",
        "layers[0].digest",
        "layers[0].mediaType",
        "layers[0].size",
    ]
    .into_iter()
    .chain(["layers[1].digest", "layers[1].mediaType", "layers[1].size"])
    .map(|f| ("manifest".to_string(), None, None, f.to_string()))
    .collect();
    assert_eq!(keys(&j), expected, "{j:#}");
    let (code, j) = diff_json(tmp.path(), &["--ignore-tar-format", a, b]);
    assert_eq!(code, 0, "{j:#}");
}

#[test]
fn tampered_image_names_the_changed_file_with_an_inline_diff() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let file = w.get("WORLD_IMAGE_TAMPERED_FILE").trim_start_matches('/');
    let (code, j) = diff_json(
        tmp.path(),
        &[
            w.get("WORLD_OCI_REPRO_ZSTD"),
            w.get("WORLD_OCI_TAMPERED_ZSTD"),
        ],
    );
    assert_eq!(code, 1);
    // Deterministic: the same bytes on a second run (two reader threads, no clock).
    let args = [
        "--json",
        "diff",
        w.get("WORLD_OCI_REPRO_ZSTD"),
        w.get("WORLD_OCI_TAMPERED_ZSTD"),
    ];
    assert_eq!(run(tmp.path(), &args).stdout, run(tmp.path(), &args).stdout);
    let files: Vec<_> = file_diffs(&j)
        .into_iter()
        .map(|(p, f, _, _)| (p, f))
        .collect();
    assert_eq!(
        files,
        vec![
            (file.to_string(), "size".to_string()),
            (file.to_string(), "sha256".to_string())
        ],
        "{j:#}"
    );
    let d = differences(&j)
        .iter()
        .find(|d| d["field"] == "sha256")
        .unwrap();
    assert_eq!(d["layer"], 0);
    let diff = d["diff"]
        .as_str()
        .expect("inline diff of a small text file");
    assert!(
        diff.starts_with(&format!("--- a/{file}\n+++ b/{file}\n")),
        "{diff}"
    );
    assert!(
        diff.lines()
            .any(|l| l.starts_with('+') && l.contains("tampered")),
        "{diff}"
    );
    // The layer 0 diff_id differs; layer 1 is the same RUN layer in both.
    let cfg: BTreeSet<_> = keys(&j)
        .into_iter()
        .filter(|k| k.0 == "config")
        .map(|k| k.3)
        .collect();
    assert!(cfg.contains("rootfs.diff_ids[0]") && !cfg.contains("rootfs.diff_ids[1]"));

    // --ignore-path leaves the file out; what remains under --semantic is exactly the
    // manifest annotation naming the base image (the COPY layer's digest).
    let (code, j) = diff_json(
        tmp.path(),
        &[
            "--semantic",
            "--ignore-path",
            &format!("/{file}"),
            w.get("WORLD_OCI_REPRO_ZSTD"),
            w.get("WORLD_OCI_TAMPERED_ZSTD"),
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        keys(&j),
        vec![(
            "manifest".to_string(),
            None,
            None,
            "annotations[\"org.opencontainers.image.base.digest\"]".to_string()
        )],
        "{j:#}"
    );
    assert_eq!(j["options"]["ignore_paths"], json!([format!("/{file}")]));
}

#[test]
fn gnu_tar_rootfs_vs_podman_copy_layer_differs_in_dialect_only() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    // The podman image's COPY layer as a plain tar (the uncompressed layout's blob).
    let diff_id = w
        .get("WORLD_IMAGE_REPRO_DIFF_IDS")
        .split(',')
        .next()
        .unwrap();
    let layout = w
        .get("WORLD_OCI_REPRO_NONE")
        .strip_prefix("oci:")
        .and_then(|r| r.rsplit_once(':'))
        .unwrap()
        .0;
    let layer = Path::new(layout)
        .join("blobs/sha256")
        .join(diff_id.strip_prefix("sha256:").unwrap());
    let gnu = w.get("WORLD_ROOTFS_REPRO_TAR");
    let a = format!("rootfs:{gnu}");
    let b = rootfs(&layer);
    let (code, j) = diff_json(tmp.path(), &[&a, &b]);
    assert_eq!(code, 1);
    // GNU tar spells names `./etc/`, Go's archive/tar `etc/` and puts the file type bits
    // into the mode field; GNU tar lists the root, podman does not; one long name is a
    // pax entry in GNU tar's output. Nothing else: same owners, mtimes, content.
    let entries: usize = String::from_utf8(sh(Command::new("tar").arg("-tf").arg(&layer)).stdout)
        .unwrap()
        .lines()
        .count();
    let mut by_field = std::collections::BTreeMap::<String, usize>::new();
    for (path, field, a, b) in file_diffs(&j) {
        *by_field.entry(field.clone()).or_default() += 1;
        match field.as_str() {
            "name" => {
                let (a, b) = (a.as_str().unwrap(), b.as_str().unwrap());
                assert_eq!(a.trim_start_matches("./").trim_end_matches('/'), path);
                assert_eq!(b.trim_end_matches('/'), path);
            }
            "mode" => {
                let (a, b) = (a.as_str().unwrap(), b.as_str().unwrap());
                let (a, b) = (
                    u32::from_str_radix(a, 8).unwrap(),
                    u32::from_str_radix(b, 8).unwrap(),
                );
                assert_eq!(a, b & 0o7777, "{path}: only type bits added");
                assert!(
                    matches!(b & !0o7777, 0o040000 | 0o100000 | 0o120000),
                    "{path}: {b:o}"
                );
            }
            "entry" => assert_eq!((path.as_str(), a, b), (".", json!("dir"), Value::Null)),
            "format" => {
                assert_eq!((a, b), (json!("ustar+pax"), json!("ustar")));
                // A name GNU tar cannot split into ustar prefix and name.
                assert!(path.len() > 100, "{path}");
            }
            other => panic!("unexpected difference {other} at {path}"),
        }
    }
    assert_eq!(by_field["name"], entries);
    assert_eq!(by_field["mode"], entries);
    assert_eq!((by_field["entry"], by_field["format"]), (1, 1));

    let (code, j) = diff_json(
        tmp.path(),
        &[
            "--ignore-tar-format",
            "--ignore-file-mode-redundant-bits",
            &a,
            &b,
        ],
    );
    assert_eq!(code, 0, "{j:#}");
}

#[test]
fn mode_xattr_and_timestamp_edits_are_each_named() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let orig = PathBuf::from(w.get("WORLD_ROOTFS_REPRO_TAR"));
    let root = extract_rootfs(w, tmp.path());
    // The repack alone is exact (the recipe's tar, run again on the extracted tree).
    let same = tmp.path().join("same.tar");
    repack(&root, &same, &["."], &[]);
    let (code, j) = diff_json(tmp.path(), &[&rootfs(&orig), &rootfs(&same)]);
    assert_eq!(code, 0, "{j:#}");

    // Each edit is made, `./etc` packed, and the edit undone: small tars, one change each.
    let file = "etc/hosts";
    let path = root.join(file);
    let base = tmp.path().join("base.tar");
    repack(&root, &base, &["./etc"], &[]);
    let edited = |name: &str, make: &[&str], undo: &[&str]| -> PathBuf {
        let run = |args: &[&str]| {
            let (cmd, rest) = args.split_first().unwrap();
            sh(Command::new(cmd).args(rest).arg(&path));
        };
        run(make);
        let out = tmp.path().join(format!("{name}.tar"));
        repack(&root, &out, &["./etc"], &[]);
        run(undo);
        out
    };
    let sde = w.get("WORLD_IMAGE_SDE");
    let mode = edited("mode", &["chmod", "g+w"], &["chmod", "g-w"]);
    let xattr = edited(
        "xattr",
        &["setfattr", "-n", "user.repro", "-v", "added"],
        &["setfattr", "-x", "user.repro"],
    );
    let back = format!("--date=@{sde}");
    let mtime = edited(
        "mtime",
        &["touch", "--no-dereference", "--date=@1700000000"],
        &["touch", "--no-dereference", &back],
    );
    let (a, b) = (json!("0644"), json!("0664"));
    let (code, j) = diff_json(tmp.path(), &[&rootfs(&base), &rootfs(&mode)]);
    assert_eq!(code, 1);
    assert_eq!(file_diffs(&j), vec![(file.into(), "mode".into(), a, b)]);

    // The xattr ("added", base64) also makes GNU tar write a pax header for the entry:
    // the format says so, unless the dialect is ignored.
    let xa = (
        "xattr user.repro".to_string(),
        Value::Null,
        json!("YWRkZWQ="),
    );
    let (code, j) = diff_json(tmp.path(), &[&rootfs(&base), &rootfs(&xattr)]);
    assert_eq!(code, 1);
    let got: Vec<_> = file_diffs(&j)
        .into_iter()
        .map(|d| (d.1, d.2, d.3))
        .collect();
    assert_eq!(
        got,
        vec![
            ("format".into(), json!("ustar"), json!("ustar+pax")),
            xa.clone()
        ],
        "{j:#}"
    );
    let (_, j) = diff_json(
        tmp.path(),
        &["--ignore-tar-format", &rootfs(&base), &rootfs(&xattr)],
    );
    let got: Vec<_> = file_diffs(&j)
        .into_iter()
        .map(|d| (d.1, d.2, d.3))
        .collect();
    assert_eq!(got, vec![xa]);

    let (code, j) = diff_json(tmp.path(), &[&rootfs(&base), &rootfs(&mtime)]);
    assert_eq!(code, 1);
    assert_eq!(
        file_diffs(&j),
        vec![(file.into(), "mtime".into(), json!(sde), json!("1700000000"))]
    );
    let (code, j) = diff_json(
        tmp.path(),
        &["--ignore-timestamps", &rootfs(&base), &rootfs(&mtime)],
    );
    assert_eq!(code, 0, "{j:#}");
}

/// A one-manifest OCI layout of uncompressed layers (the tars as they are), ref `x`.
fn write_layout(dir: &Path, layers: &[&Path], config_extra: Value) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = repro_oci::digest::sha256_of(bytes).to_string();
        std::fs::write(blobs.join(d.strip_prefix("sha256:").unwrap()), bytes).unwrap();
        (d, bytes.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (d, n) = put(&std::fs::read(l).unwrap());
        diff_ids.push(d.clone());
        descs.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n}),
        );
    }
    let mut config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    if let (Some(c), Some(extra)) = (config.as_object_mut(), config_extra.as_object()) {
        c.extend(extra.clone());
    }
    let (cd, cn) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs});
    let (md, mn) = put(&serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": mn, "annotations": {"org.opencontainers.image.ref.name": "x"}}]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    format!("oci:{}:x", dir.display())
}

#[test]
fn another_layer_split_of_the_same_tree_is_equal_with_squash() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let root = extract_rootfs(w, tmp.path());
    let (l0, l1) = (tmp.path().join("l0.tar"), tmp.path().join("l1.tar"));
    repack(&root, &l0, &["."], &["--exclude=./usr"]);
    repack(&root, &l1, &["./usr"], &[]);
    let split = write_layout(&tmp.path().join("split"), &[&l0, &l1], json!({}));
    let one = write_layout(
        &tmp.path().join("one"),
        &[Path::new(w.get("WORLD_ROOTFS_REPRO_TAR"))],
        json!({}),
    );
    let (code, j) = diff_json(tmp.path(), &[&one, &split]);
    assert_eq!(code, 1);
    let k = keys(&j);
    assert!(
        k.contains(&("layer".into(), None, None, "count".into())),
        "{k:?}"
    );
    // Layer 0 of the single-layer image has usr/, the split's layer 0 does not.
    assert!(k.contains(&(
        "file".into(),
        Some(0),
        Some("usr/bin/bash".into()),
        "entry".into()
    )));

    let (code, j) = diff_json(tmp.path(), &["--squash", &one, &split]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["squashed"], true);

    // And with --squash real changes are still found, in the merged tree (layer null); the
    // report dir gets both versions of the changed file under a/ and b/.
    sh(Command::new("chmod")
        .arg("o-r")
        .arg(root.join("usr/bin/bash")));
    let text = "usr/lib/os-release";
    let mut t = std::fs::read_to_string(root.join(text)).unwrap();
    t.push_str("EXTRA=1\n");
    std::fs::write(root.join(text), &t).unwrap();
    // GNU tar would store the new mtime; keep the original so only content and mode differ.
    sh(Command::new("touch")
        .arg(format!("--date=@{}", w.get("WORLD_IMAGE_SDE")))
        .arg(root.join(text)));
    let l1b = tmp.path().join("l1b.tar");
    repack(&root, &l1b, &["./usr"], &[]);
    let split2 = write_layout(&tmp.path().join("split2"), &[&l0, &l1b], json!({}));
    let report = tmp.path().join("report");
    let (code, j) = diff_json(
        tmp.path(),
        &[
            "--squash",
            "--report-dir",
            report.to_str().unwrap(),
            &one,
            &split2,
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        keys(&j),
        vec![
            (
                "file".into(),
                None,
                Some("usr/bin/bash".into()),
                "mode".into()
            ),
            ("file".into(), None, Some(text.into()), "size".into()),
            ("file".into(), None, Some(text.into()), "sha256".into()),
        ],
        "{j:#}"
    );
    let d = &differences(&j)[2];
    assert_eq!(
        d["files"],
        json!({"a": format!("a/{text}"), "b": format!("b/{text}")})
    );
    assert!(
        d["diff"].as_str().unwrap().contains("\n+EXTRA=1\n"),
        "{d:#}"
    );
    assert_eq!(
        std::fs::read_to_string(report.join("b").join(text)).unwrap(),
        t
    );
}

#[test]
fn a_label_is_one_config_field() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let tar = Path::new(w.get("WORLD_ROOTFS_REPRO_TAR"));
    let labels = |v: &str| json!({"config": {"Labels": {"org.opencontainers.image.version": v}}});
    let a = write_layout(&tmp.path().join("a"), &[tar], labels("1"));
    let b = write_layout(&tmp.path().join("b"), &[tar], labels("2"));
    let (code, j) = diff_json(tmp.path(), &[&a, &b]);
    assert_eq!(code, 1);
    let label = "config.Labels[\"org.opencontainers.image.version\"]";
    let k: Vec<_> = keys(&j).into_iter().map(|k| (k.0, k.3)).collect();
    assert_eq!(
        k,
        vec![
            ("manifest".into(), "digest".into()),
            ("manifest".into(), "config.digest".into()),
            ("config".into(), "digest".into()),
            ("config".into(), label.into()),
        ],
        "{j:#}"
    );
    let d = &differences(&j)[3];
    assert_eq!((&d["a"], &d["b"]), (&json!("1"), &json!("2")));
    // Only digests summarise it: with any ignore option the label is all that is left.
    let (code, j) = diff_json(tmp.path(), &["--ignore-history", &a, &b]);
    assert_eq!(code, 1);
    assert_eq!(keys(&j), vec![("config".into(), None, None, label.into())]);
}

#[test]
fn skopeo_import_vs_repro_image_copy_of_the_same_rootfs() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let tar = w.get("WORLD_ROOTFS_REPRO_TAR");
    let sk = tmp.path().join("skopeo");
    repro_testkit::skopeo::skopeo(&[
        "copy",
        &format!("tarball:{tar}"),
        &format!("oci:{}:x", sk.display()),
    ]);
    let ri = tmp.path().join("ri");
    ok(
        tmp.path(),
        &[
            "copy",
            &format!("rootfs:{tar}"),
            &format!("oci:{}:x", ri.display()),
        ],
    );
    let (a, b) = (
        format!("oci:{}:x", sk.display()),
        format!("oci:{}:x", ri.display()),
    );
    let (code, j) = diff_json(tmp.path(), &[&a, &b]);
    assert_eq!(code, 1);
    // skopeo's tarball: transport gzips the layer, writes no manifest mediaType, an empty
    // `config`, the import time as `created` and one history entry; repro-image keeps the tar
    // and writes only what the file determines. The layer content is the same tar.
    let k: Vec<_> = keys(&j).into_iter().map(|k| (k.0, k.3)).collect();
    let want: Vec<(String, String)> = [
        ("manifest", "digest"),
        ("manifest", "config.digest"),
        ("manifest", "config.size"),
        ("manifest", "layers[0].digest"),
        ("manifest", "layers[0].mediaType"),
        ("manifest", "layers[0].size"),
        ("manifest", "mediaType"),
        ("config", "digest"),
        ("config", "config"),
        ("config", "created"),
        ("config", "history[0].comment"),
        ("config", "history[0].created"),
        ("config", "history[0].created_by"),
    ]
    .into_iter()
    .map(|(x, y)| (x.to_string(), y.to_string()))
    .collect();
    assert_eq!(k, want, "{j:#}");
    assert_eq!(j["a"]["layers"], 1);
    // What is left once timestamps, history and the compression are ignored: the two
    // fields one writer has and the other has not.
    let (code, j) = diff_json(tmp.path(), &["--semantic", &a, &b]);
    assert_eq!(code, 1);
    let k: Vec<_> = keys(&j).into_iter().map(|k| (k.0, k.3)).collect();
    assert_eq!(
        k,
        vec![
            ("manifest".to_string(), "mediaType".to_string()),
            ("config".to_string(), "config".to_string())
        ],
        "{j:#}"
    );
}

#[test]
fn umoci_repack_vs_repro_image_copy_of_the_same_rootfs() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let tar = w.get("WORLD_ROOTFS_REPRO_TAR");
    // umoci writes its own layer (Go's archive/tar) from the tree GNU tar extracted.
    let layout = tmp.path().join("umoci");
    let bundle = tmp.path().join("bundle");
    let image = format!("{}:x", layout.display());
    sh(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    sh(Command::new("umoci").args(["new", "--image", &image]));
    sh(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    let root = bundle.join("rootfs");
    sh(Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-xpf",
            tar,
        ])
        .arg("-C")
        .arg(&root));
    sh(Command::new("umoci")
        .args(["repack", "--image", &image])
        .arg(&bundle));
    let ri = tmp.path().join("ri");
    ok(
        tmp.path(),
        &[
            "copy",
            &format!("rootfs:{tar}"),
            &format!("oci:{}:x", ri.display()),
        ],
    );
    let (a, b) = (format!("oci:{image}"), format!("oci:{}:x", ri.display()));
    let (code, j) = diff_json(tmp.path(), &[&a, &b]);
    assert_eq!(code, 1);
    // Entry by entry only the dialect differs: umoci names `etc/` and `.`, GNU tar `./etc/`
    // and `./`, and one long name is a pax entry in GNU tar's output only.
    let mut formats = 0;
    let mut names = 0;
    for (path, field, x, y) in file_diffs(&j) {
        match field.as_str() {
            "name" => {
                let (x, y) = (x.as_str().unwrap(), y.as_str().unwrap());
                assert_eq!(format!("./{}", x.trim_start_matches('.')), y, "{path}");
                names += 1;
            }
            "format" => {
                assert_eq!((x, y), (json!("ustar"), json!("ustar+pax")), "{path}");
                formats += 1;
            }
            other => panic!("unexpected difference {other} at {path}: {x} {y}"),
        }
    }
    let entries = String::from_utf8(sh(Command::new("tar").arg("-tf").arg(tar)).stdout)
        .unwrap()
        .lines()
        .count();
    assert_eq!((names, formats), (entries, 1));
    // Independently: GNU tar finds umoci's layer equal to the tree (mode, owner, size,
    // mtime, content, link targets) — so no other entry difference exists.
    let m: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(blob(m["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let layer = blob(manifest["layers"][0]["digest"].as_str().unwrap());
    sh(Command::new("tar")
        .args(["--numeric-owner", "-dzf"])
        .arg(&layer)
        .arg("-C")
        .arg(&root));
    // The documents: umoci gzips, stamps times and a history entry, writes an empty
    // `config` and no manifest mediaType; the layer diff_id and tar length differ with the
    // dialect.
    let docs: Vec<_> = keys(&j)
        .into_iter()
        .filter(|k| k.0 != "file")
        .map(|k| (k.0, k.3))
        .collect();
    let want: Vec<(String, String)> = [
        ("manifest", "digest"),
        ("manifest", "config.digest"),
        ("manifest", "config.size"),
        ("manifest", "layers[0].digest"),
        ("manifest", "layers[0].mediaType"),
        ("manifest", "layers[0].size"),
        ("manifest", "mediaType"),
        ("config", "digest"),
        ("config", "config"),
        ("config", "created"),
        ("config", "history[0].created"),
        ("config", "history[0].created_by"),
        ("config", "rootfs.diff_ids[0]"),
        ("layer", "tar size"),
    ]
    .into_iter()
    .map(|(x, y)| (x.to_string(), y.to_string()))
    .collect();
    assert_eq!(docs, want, "{j:#}");
    let (code, j) = diff_json(tmp.path(), &["--semantic", &a, &b]);
    assert_eq!(code, 1);
    let k: Vec<_> = keys(&j).into_iter().map(|k| (k.0, k.3)).collect();
    assert_eq!(
        k,
        vec![
            ("manifest".to_string(), "mediaType".to_string()),
            ("config".to_string(), "config".to_string())
        ],
        "{j:#}"
    );
}

#[test]
fn report_dir_gets_both_versions_and_nothing_escapes_it() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let file = w.get("WORLD_IMAGE_TAMPERED_FILE").trim_start_matches('/');
    let dir = tmp.path().join("report");
    let (code, j) = diff_json(
        tmp.path(),
        &[
            "--report-dir",
            dir.to_str().unwrap(),
            w.get("WORLD_OCI_REPRO_GZIP"),
            w.get("WORLD_OCI_TAMPERED_GZIP"),
        ],
    );
    assert_eq!(code, 1);
    let d = differences(&j)
        .iter()
        .find(|d| d["field"] == "sha256")
        .unwrap();
    let (fa, fb) = (format!("layer-0/a/{file}"), format!("layer-0/b/{file}"));
    assert_eq!(d["files"], json!({"a": fa, "b": fb}));
    // The bytes are the files GNU tar extracts from each image's layer.
    let root_a = extract_rootfs(w, &tmp.path().join("xa"));
    assert_eq!(
        std::fs::read(dir.join(&fa)).unwrap(),
        std::fs::read(root_a.join(file)).unwrap()
    );
    let b = std::fs::read_to_string(dir.join(&fb)).unwrap();
    assert!(b.contains("tampered"));
    // diffoscope (the tool the report dir is for) sees the two files differ.
    let out = Command::new("diffoscope")
        .arg(dir.join(&fa))
        .arg(dir.join(&fb))
        .output()
        .expect("diffoscope runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("tampered"));
    let mut written = listing(&dir);
    written.retain(|p| dir.join(p).is_file());
    assert_eq!(written, vec![fa.clone(), fb.clone()]);

    // A report dir that is not empty is refused before anything is read.
    let e = err(
        tmp.path(),
        &[
            "diff",
            "--report-dir",
            dir.to_str().unwrap(),
            w.get("WORLD_OCI_REPRO_GZIP"),
            w.get("WORLD_OCI_TAMPERED_GZIP"),
        ],
    );
    assert!(e.contains("not empty"), "{e}");

    // A hostile entry `../x` is an error naming the input; nothing is written outside.
    let evil = tmp.path().join("evil.tar");
    std::fs::write(&evil, hostile_tar()).unwrap();
    let good = tmp.path().join("good.tar");
    std::fs::write(&good, plain_tar("x", b"good\n")).unwrap();
    let inner = tmp.path().join("sandbox/report");
    let e = err(
        tmp.path(),
        &[
            "diff",
            "--report-dir",
            inner.to_str().unwrap(),
            &rootfs(&good),
            &rootfs(&evil),
        ],
    );
    assert!(e.contains("evil.tar") && e.contains("\"..\""), "{e}");
    assert_eq!(
        listing(&tmp.path().join("sandbox")),
        vec!["report".to_string()]
    );
    assert!(!tmp.path().join("sandbox/x").exists());
}

/// A tar of one file `name`.
fn plain_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    header(&mut h, data.len());
    let mut t = h.to_vec();
    t.extend_from_slice(data);
    t.resize(512 + data.len().div_ceil(512) * 512, 0);
    t.extend_from_slice(&[0u8; 1024]);
    t
}

/// A tar whose one entry is named `../x` (written by hand: tar writers refuse it).
fn hostile_tar() -> Vec<u8> {
    plain_tar("../x", b"evil\n")
}

/// Fill a ustar header for a regular file of `size` bytes, mode 0644, and its checksum.
fn header(h: &mut [u8; 512], size: usize) {
    let put = |h: &mut [u8; 512], at: usize, v: &str| {
        h[at..at + v.len()].copy_from_slice(v.as_bytes());
    };
    put(h, 100, "0000644\0"); // mode
    put(h, 108, "0000000\0"); // uid
    put(h, 116, "0000000\0"); // gid
    put(h, 124, &format!("{size:011o}\0"));
    put(h, 136, "00000000000\0"); // mtime
    h[156] = b'0';
    put(h, 257, "ustar\0");
    put(h, 263, "00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    put(h, 148, &format!("{sum:06o}\0 "));
}
