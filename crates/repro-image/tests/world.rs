//! repro-image against the local Arch Linux world's reference images (tests/world).

mod common;

use common::*;
use repro_world::World;

#[test]
fn reference_image_is_read_with_the_digests_the_world_recorded() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let image = w.get("WORLD_IMAGE_REPRO");
    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "inspect", image],
    ));
    assert_eq!(j["manifest"]["digest"], w.get("WORLD_IMAGE_REPRO_DIGEST"));
    assert_eq!(
        j["config"]["digest"],
        w.get("WORLD_IMAGE_REPRO_CONFIG_DIGEST")
    );
    let ids: Vec<String> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.join(","), w.get("WORLD_IMAGE_REPRO_DIFF_IDS"));
    assert_eq!(j["config"]["cmd"], serde_json::json!(["/usr/bin/bash"]));
    assert!(
        j["config"]["env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("LANG=C.UTF-8"))
    );

    // The zstd and uncompressed layouts of the same image: other blobs, same diff_ids.
    for key in ["WORLD_OCI_REPRO_ZSTD", "WORLD_OCI_REPRO_NONE"] {
        let j = json(&ok(&cache, &["--json", "inspect", w.get(key)]));
        let ids: Vec<String> = j["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["diff_id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids.join(","), w.get("WORLD_IMAGE_REPRO_DIFF_IDS"), "{key}");
    }
}

#[test]
fn reference_rootfs_tarball_as_a_one_layer_image() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let tar = w.get("WORLD_ROOTFS_REPRO_TAR");
    let zst = w.get("WORLD_ROOTFS_REPRO_TAR_ZST");
    let want = repro_testkit::sha256_digest(&std::fs::read(tar).unwrap());
    for f in [tar, zst] {
        let j = json(&ok(
            tmp.path(),
            &["--no-cache", "--json", "inspect", &format!("rootfs:{f}")],
        ));
        assert_eq!(j["layers"][0]["diff_id"], want, "{f}");
    }
}

#[test]
fn reference_image_copies_to_oci_with_its_digest_and_back_to_the_registry() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let layout = tmp.path().join("copy");
    let out = ok(
        &cache,
        &[
            "--tls-verify=false",
            "copy",
            w.get("WORLD_IMAGE_REPRO"),
            &format!("oci:{}:repro", layout.display()),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        w.get("WORLD_IMAGE_REPRO_DIGEST")
    );
    let raw = repro_testkit::skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:repro", layout.display()),
    ])
    .stdout;
    assert_eq!(
        repro_testkit::sha256_digest(&raw),
        w.get("WORLD_IMAGE_REPRO_DIGEST")
    );
    let dst = format!("docker://{}/copies/repro:again", w.get("WORLD_REGISTRY"));
    let out = ok(
        &cache,
        &[
            "--tls-verify=false",
            "copy",
            &format!("oci:{}:repro", layout.display()),
            &dst,
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        w.get("WORLD_IMAGE_REPRO_DIGEST")
    );
}
