//! The writers against the test world's reference artefacts, made by the real pipeline
//! (GNU tar 1.34, zstd 1.5.4, podman 4.3): the rootfs tarball, its `.tar.zst`, and both
//! layers of the `repro` image. Needs root (the extraction keeps owners and modes).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_same_tar, gnu_tar_recipe, require_root, run, sha256, sha256_file};
use repro_tar::Exclude;
use repro_tar::gnu::{self, GnuOptions};
use repro_tar::gostorage::{self, GoOptions};
use repro_tar::pipeline::{self, Compression, Outputs};
use repro_tar::zst::{self, ZstdParams};
use repro_world::World;

fn world() -> &'static World {
    World::up()
}

fn sde() -> i64 {
    world().get("WORLD_IMAGE_SDE").parse().unwrap()
}

fn exclude_file() -> PathBuf {
    repro_world::repo_root().join("tests/world/recipe/exclude")
}

/// Extract a tarball as root the way the task's recipe user would: owners, modes, xattrs,
/// ACLs and every mtime (directories included, GNU tar sets them last).
fn extract(tar: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--numeric-owner",
            "--same-owner",
            "-xpf",
        ])
        .arg(tar)
        .arg("-C")
        .arg(dir.path()));
    dir
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The `oci:DIR:REF` layout of a world key: (blob path of each layer, diff_ids).
fn oci_layers(key: &str) -> (Vec<PathBuf>, Vec<String>) {
    let spec = world().get(key);
    let spec = spec.strip_prefix("oci:").unwrap();
    let (dir, reference) = spec.rsplit_once(':').unwrap();
    let dir = Path::new(dir);
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let index = json(&dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap();
    let manifest = json(&blob(entry["digest"].as_str().unwrap()));
    let config = json(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect();
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (layers, diff_ids)
}

#[test]
fn reference_rootfs_is_rewritten_bit_for_bit() {
    require_root("re-creating the world's rootfs");
    let original_path = PathBuf::from(world().get("WORLD_ROOTFS_REPRO_TAR"));
    let original = std::fs::read(&original_path).unwrap();
    let tree = extract(&original_path);
    let options = GnuOptions::recipe(sde(), Exclude::from_file(&exclude_file()).unwrap());
    let plan = gnu::plan(tree.path(), &options).unwrap();
    let mut ours = Vec::new();
    plan.write_to(&mut ours).unwrap();
    let gnu = gnu_tar_recipe(tree.path(), sde(), Some(&exclude_file()));
    assert_same_tar(
        &gnu,
        &ours,
        "GNU tar and repro-tar on the extracted reference rootfs",
    );
    // Extraction restored every mtime, so re-creating gives the published tarball itself.
    assert_same_tar(
        &original,
        &ours,
        "the reference repro.tar and repro-tar's re-creation",
    );
    assert!(plan.len() > 300, "{} members", plan.len());
}

#[test]
fn reference_zst_is_reproduced_from_the_tar() {
    let tar = PathBuf::from(world().get("WORLD_ROOTFS_REPRO_TAR"));
    let zst_path = PathBuf::from(world().get("WORLD_ROOTFS_REPRO_TAR_ZST"));
    let expected = std::fs::read(&zst_path).unwrap();
    let lib = zst::libzstd();
    let ours = zst::compress_file(&tar, Vec::new(), &ZstdParams::recipe()).unwrap();
    assert!(
        ours == expected,
        "zstd --long -T0 -8 of {} not reproduced with libzstd {} ({} vs {} bytes; the \
         reference was made by the host's zstd CLI)",
        tar.display(),
        lib.version,
        ours.len(),
        expected.len()
    );
    // The published checksum file names these bytes.
    let sums = std::fs::read_to_string(format!("{}.SHA256", zst_path.display())).unwrap();
    assert!(sums.starts_with(&sha256(&ours)), "{sums}");
    // Any worker count: the bytes do not depend on the machine's cores.
    let mut one = ZstdParams::recipe();
    one.workers = 1;
    assert!(
        zst::compress_file(&tar, Vec::new(), &one).unwrap() == expected,
        "1 worker differs"
    );
}

#[test]
fn pipeline_writes_the_reference_tar_and_zst_in_one_pass() {
    require_root("re-creating the world's rootfs");
    let tree = extract(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR")));
    let out = tempfile::tempdir().unwrap();
    let options = GnuOptions::recipe(sde(), Exclude::from_file(&exclude_file()).unwrap());
    let plan = gnu::plan(tree.path(), &options).unwrap();
    let outputs = Outputs {
        tar: Some(out.path().join("repro.tar")),
        compression: Some(Compression::Zstd(ZstdParams::recipe())),
        blob: Some(out.path().join("repro.tar.zst")),
    };
    let produced = pipeline::run(Some(plan.size()), &outputs, |w| plan.write_to(w)).unwrap();
    let ref_tar = sha256_file(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR")));
    let ref_zst = sha256_file(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR_ZST")));
    assert_eq!(produced.tar.sha256, ref_tar, "tar digest");
    assert_eq!(
        produced.blob.as_ref().unwrap().sha256,
        ref_zst,
        "zst digest"
    );
    assert_eq!(sha256_file(&out.path().join("repro.tar")), ref_tar);
    assert_eq!(sha256_file(&out.path().join("repro.tar.zst")), ref_zst);
    // The recipe's checksum file, line for line.
    let sums = std::fs::read_to_string(format!(
        "{}.SHA256",
        world().get("WORLD_ROOTFS_REPRO_TAR_ZST")
    ))
    .unwrap();
    assert_eq!(produced.blob.unwrap().sha256sum_line("repro.tar.zst"), sums);
}

#[test]
fn podman_copy_layer_is_reproduced() {
    require_root("re-creating the image's COPY layer");
    let (layers, diff_ids) = oci_layers("WORLD_OCI_REPRO_NONE");
    let tree = extract(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR")));
    let layer = gostorage::plan_tree(
        tree.path(),
        &GoOptions {
            timestamp: Some(sde()),
            ..Default::default()
        },
    )
    .unwrap();
    let mut ours = Vec::new();
    layer.write_to(&mut ours).unwrap();
    let expected = std::fs::read(&layers[0]).unwrap();
    assert_same_tar(&expected, &ours, "the reference image's COPY layer");
    assert_eq!(format!("sha256:{}", sha256(&ours)), diff_ids[0]);
}

/// The paths a diff layer's step changed: its entries without children in the layer (the
/// parents of changed files come with them).
fn changed_paths(layer: &Path) -> Vec<Vec<u8>> {
    let all = run(Command::new("tar").arg("-tf").arg(layer));
    let nodes: Vec<&[u8]> = all
        .split(|&b| b == b'\n')
        .filter(|n| !n.is_empty())
        .map(|n| n.strip_suffix(b"/").unwrap_or(n))
        .collect();
    nodes
        .iter()
        .filter(|n| {
            !nodes
                .iter()
                .any(|m| m.len() > n.len() && m.starts_with(n) && m[n.len()] == b'/')
        })
        .map(|n| n.to_vec())
        .collect()
}

/// Re-write an image layer from its own extraction, in the containers/storage dialect.
fn rewrite_layer(layer: &Path, diff: bool, timestamp: Option<i64>) -> Vec<u8> {
    let tree = extract(layer);
    let options = GoOptions {
        timestamp,
        ..Default::default()
    };
    let plan = if diff {
        gostorage::plan_diff(tree.path(), &changed_paths(layer), &options).unwrap()
    } else {
        gostorage::plan_tree(tree.path(), &options).unwrap()
    };
    let mut out = Vec::new();
    plan.write_to(&mut out).unwrap();
    out
}

#[test]
fn podman_run_layer_is_reproduced() {
    require_root("re-creating the image's RUN layer");
    let (layers, diff_ids) = oci_layers("WORLD_OCI_REPRO_NONE");
    let changed = changed_paths(&layers[1]);
    assert!(
        changed.contains(&b"etc/ld.so.cache".to_vec()),
        "{changed:?}"
    );
    let upper = extract(&layers[1]);
    let options = GoOptions {
        timestamp: Some(sde()),
        ..Default::default()
    };
    let layer = gostorage::plan_diff(upper.path(), &changed, &options).unwrap();
    let mut ours = Vec::new();
    layer.write_to(&mut ours).unwrap();
    let expected = std::fs::read(&layers[1]).unwrap();
    assert_same_tar(&expected, &ours, "the reference image's RUN layer");
    assert_eq!(format!("sha256:{}", sha256(&ours)), diff_ids[1]);
    // containers/storage's order: by path, parents (etc/) before their changed children.
    let names: Vec<_> = layer
        .names()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names[..3], ["dev/", "etc/", "etc/hostname"]);
}

/// The `base`-style image (built without `--timestamp`: the files' own mtimes, whole
/// seconds) and the tampered one: every layer comes out again from its own extraction.
#[test]
fn podman_layers_of_the_base_and_tampered_images_round_trip() {
    require_root("re-creating image layers");
    for (key, timestamp) in [
        ("WORLD_OCI_BASE_NONE", None),
        ("WORLD_OCI_TAMPERED_NONE", Some(sde())),
    ] {
        let (layers, diff_ids) = oci_layers(key);
        for (i, layer) in layers.iter().enumerate() {
            let ours = rewrite_layer(layer, i > 0, timestamp);
            let expected = std::fs::read(layer).unwrap();
            assert_same_tar(&expected, &ours, &format!("{key} layer {i}"));
            assert_eq!(
                format!("sha256:{}", sha256(&ours)),
                diff_ids[i],
                "{key} layer {i}"
            );
        }
    }
}

/// The RUN layer made for real: the reference rootfs, the Dockerfile's step run in a
/// chroot (`ldconfig`, `sed` on os-release, `rm` of ldconfig's aux-cache) after what
/// podman's chroot isolation leaves behind (`dev/ proc/ sys/`, empty 0755 `etc/hostname`
/// and `etc/resolv.conf`), the changes found by comparing with a snapshot taken before,
/// and the diff layer written from them: podman's layer, byte for byte.
#[test]
fn podman_run_layer_is_rebuilt_from_the_step() {
    require_root("chroot into the reference rootfs");
    let (layers, diff_ids) = oci_layers("WORLD_OCI_REPRO_NONE");
    let tree = extract(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR")));
    let root = tree.path();
    let before = gostorage::Snapshot::take(root).unwrap();
    common::sh(
        "mkdir -m 0755 dev proc sys
         install -m 0755 /dev/null etc/hostname
         install -m 0755 /dev/null etc/resolv.conf",
        root,
    );
    let version = world().get("WORLD_IMAGE_VERSION");
    run(Command::new("chroot")
        .arg(root)
        .args(["/bin/sh", "-c"])
        .arg(format!(
            "ldconfig && sed -i '/BUILD_ID/a VERSION_ID={version}' /etc/os-release && rm -f /var/cache/ldconfig/aux-cache"
        ))
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    let changes = before.changes(root).unwrap();
    let names: Vec<String> = changes
        .iter()
        .map(|c| format!("{:?} {}", c.kind, String::from_utf8_lossy(&c.path)))
        .collect();
    assert!(
        names.contains(&"Modify etc/os-release".to_string()),
        "{names:?}"
    );
    let options = GoOptions {
        timestamp: Some(sde()),
        ..Default::default()
    };
    let layer = gostorage::plan_changes(root, &changes, &options).unwrap();
    let mut ours = Vec::new();
    layer.write_to(&mut ours).unwrap();
    let expected = std::fs::read(&layers[1]).unwrap();
    assert_same_tar(&expected, &ours, "the RUN layer rebuilt from the step");
    assert_eq!(format!("sha256:{}", sha256(&ours)), diff_ids[1]);
}

/// The `dir:<hex>` of the reference image's `COPY` step: the sha256 of the stream buildah's
/// copier writes for the copied directory. The rootfs reached the COPY by an `ADD` of
/// repro.tar, i.e. extracted with its owners, modes, xattrs and times.
#[test]
fn buildah_copy_content_digest_is_reproduced() {
    require_root("the COPY content digest");
    let spec = world().get("WORLD_OCI_REPRO_NONE");
    let spec = spec.strip_prefix("oci:").unwrap();
    let (dir, _) = spec.rsplit_once(':').unwrap();
    let config_digest = world().get("WORLD_IMAGE_REPRO_CONFIG_DIGEST");
    let config = json(
        &Path::new(dir)
            .join("blobs/sha256")
            .join(config_digest.strip_prefix("sha256:").unwrap()),
    );
    let copy = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["created_by"].as_str().unwrap())
        .find(|c| c.contains(" COPY dir:"))
        .unwrap();
    let expected = copy
        .split("dir:")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let root = extract(Path::new(world().get("WORLD_ROOTFS_REPRO_TAR")));
    let plan = gostorage::plan_copier_get(root.path(), Default::default()).unwrap();
    let mut out = Vec::new();
    assert_eq!(plan.write_to(&mut out).unwrap(), plan.size());
    assert_eq!(sha256(&out), expected, "the copier stream's sha256");
    // not the layer's bytes: the copier's headers are Go's own (no type bits in the mode,
    // directories without `/`), the layer's are containers/storage's
    let layer = gostorage::plan_tree(
        root.path(),
        &GoOptions {
            timestamp: Some(sde()),
            ..Default::default()
        },
    )
    .unwrap();
    let mut layer_bytes = Vec::new();
    layer.write_to(&mut layer_bytes).unwrap();
    assert_ne!(sha256(&layer_bytes), expected);
}
