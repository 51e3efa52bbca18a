//! The config and manifest writer against the bytes podman 4.3 wrote for the test world's
//! reference image (`oci-none`: uncompressed layers, so the manifest is podman's own).
//! The layers' diff_ids, sizes and the COPY content digest are taken from the reference
//! here; the build test (crates/repro-image/tests/build.rs) computes them from the rebuild.

use std::path::Path;

use repro_build::podman::{self, ImageSpec};
use repro_world::World;

#[test]
fn reference_config_and_manifest_bytes() {
    let w = World::up();
    let spec = w.get("WORLD_OCI_REPRO_NONE");
    let (dir, _) = spec.strip_prefix("oci:").unwrap().rsplit_once(':').unwrap();
    let blob = |d: &str| {
        std::fs::read(
            Path::new(dir)
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(dir).join("index.json")).unwrap()).unwrap();
    let manifest_bytes = blob(index["manifests"][0]["digest"].as_str().unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).unwrap();
    let config_bytes = blob(manifest["config"]["digest"].as_str().unwrap());
    let config: serde_json::Value = serde_json::from_slice(&config_bytes).unwrap();
    let copy = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .find_map(|c| c.split(" COPY ").nth(1))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let sde: i64 = w.get("WORLD_IMAGE_SDE").parse().unwrap();
    let (created, created_label) = podman::rfc3339(sde);
    let labels = &config["config"]["Labels"];
    let image = ImageSpec {
        created,
        architecture: "amd64".into(),
        os: "linux".into(),
        buildah_version: "1.28.2".into(),
        steps: podman::archlinux_docker_steps(
            "Repro",
            w.get("WORLD_IMAGE_VERSION"),
            labels["org.opencontainers.image.revision"]
                .as_str()
                .unwrap(),
            &created_label,
            &copy,
        ),
        layers: manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect(),
    };
    let json = podman::image_json(&image).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&json.config.bytes),
        String::from_utf8_lossy(&config_bytes)
    );
    assert_eq!(
        String::from_utf8_lossy(&json.manifest.bytes),
        String::from_utf8_lossy(&manifest_bytes)
    );
    assert_eq!(json.config.digest, w.get("WORLD_IMAGE_REPRO_CONFIG_DIGEST"));
    // the intermediate images' short IDs are the ones podman printed (`--> a46ab7b7827`)
    let log = std::fs::read_to_string(Path::new(dir).parent().unwrap().join("build.log")).unwrap();
    for id in &json.intermediate_ids {
        let short = &id["sha256:".len().."sha256:".len() + 11];
        assert!(
            log.contains(&format!("--> {short}")),
            "{id} not in the build log"
        );
    }
    assert_eq!(json.intermediate_ids.len(), 13);

    // A changed value changes the bytes (the test can fail).
    let mut other = image.clone();
    other.buildah_version = "1.28.3".into();
    assert_ne!(podman::image_json(&other).unwrap().config, json.config);
}
