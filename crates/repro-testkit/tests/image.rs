//! TestImage layouts are deterministic, self-consistent and accepted by skopeo.

use std::fs;
use std::io::Read;
use std::path::Path;

use repro_testkit::image::{MEDIA_TYPE_IN_TOTO, blob_path};
use repro_testkit::{
    Compression, ImageOptions, LayerSpec, MultiPlatformImage, Registry, TestImage, http,
    sha256_digest, skopeo, skopeo_copy_to_registry, skopeo_inspect_raw,
};

fn layers() -> Vec<LayerSpec> {
    vec![
        LayerSpec::new()
            .dir("usr", 0o755)
            .dir("usr/bin", 0o755)
            .file("usr/bin/tool", b"#!/bin/sh\necho hi\n", 0o755)
            .symlink("bin", "usr/bin")
            .file(
                &format!("deep/{}/file", "d".repeat(120)),
                b"long path",
                0o644,
            ),
        LayerSpec::files(&[("etc/a", b"a", 0o644), ("etc/b", b"b", 0o600)])
            .compression(Compression::None)
            .hardlink("etc/c", "etc/a"),
        LayerSpec::new()
            .whiteout("etc/b")
            .compression(Compression::Zstd)
            .created_by("RUN rm /etc/b"),
    ]
}

fn decompress(bytes: &[u8], media_type: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("+gzip") {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else if media_type.ends_with("+zstd") {
        out = zstd::decode_all(bytes).unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, u64, Vec<u8>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (
                path,
                h.entry_type(),
                h.mode().unwrap(),
                h.mtime().unwrap(),
                h.uid().unwrap(),
                data,
            )
        })
        .collect()
}

#[test]
fn build_is_deterministic_and_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let a = TestImage::build(&tmp.path().join("a"), &layers());
    let b = TestImage::build(&tmp.path().join("b"), &layers());
    assert_eq!(a.manifest, b.manifest);
    assert_eq!(a.config_bytes, b.config_bytes);
    assert_eq!(a.layers, b.layers);
    assert_eq!(a.diff_ids, b.diff_ids);

    // Layout files.
    assert_eq!(
        fs::read(tmp.path().join("a/oci-layout")).unwrap(),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("a/index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"].as_str(),
        Some(a.manifest.digest.as_str())
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"].as_str(),
        Some("latest")
    );

    // Every blob is stored under its digest.
    for d in a.layers.iter().chain([&a.config, &a.manifest]) {
        let bytes = fs::read(a.blob_path(&d.digest)).unwrap();
        assert_eq!(sha256_digest(&bytes), d.digest);
        assert_eq!(bytes.len() as u64, d.size);
    }
    assert_eq!(
        fs::read(a.blob_path(&a.manifest.digest)).unwrap(),
        a.manifest_bytes
    );

    // Media types follow the compression.
    let types: Vec<&str> = a.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ]
    );

    // Config: platform, created, diff_ids = sha256 of the uncompressed tars, history.
    let config: serde_json::Value = serde_json::from_slice(&a.config_bytes).unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["created"], "2024-01-01T00:00:00Z");
    assert_eq!(config["history"].as_array().unwrap().len(), 3);
    assert_eq!(config["history"][2]["created_by"], "RUN rm /etc/b");
    for (i, layer) in a.layers.iter().enumerate() {
        let tar_bytes = decompress(
            &fs::read(a.blob_path(&layer.digest)).unwrap(),
            &layer.media_type,
        );
        assert_eq!(sha256_digest(&tar_bytes), a.diff_ids[i]);
        assert_eq!(
            config["rootfs"]["diff_ids"][i].as_str(),
            Some(a.diff_ids[i].as_str())
        );
        assert_eq!(a.layer_stats[i].tar_bytes, tar_bytes.len() as u64);
        for e in entries(&tar_bytes) {
            assert_eq!(e.3, 0, "mtime of {}", e.0);
            assert_eq!(e.4, 0, "uid of {}", e.0);
        }
    }
    let gz = fs::read(a.blob_path(&a.layers[0].digest)).unwrap();
    assert_eq!(
        &gz[..10],
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255],
        "gzip header: no mtime, no name, OS unknown"
    );

    let first = entries(&decompress(&gz, &a.layers[0].media_type));
    let names: Vec<&str> = first.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names[..4], ["usr/", "usr/bin/", "usr/bin/tool", "bin"]);
    assert!(names[4].ends_with(&format!("{}/file", "d".repeat(120))));
    assert_eq!(first[2].2, 0o755);
    assert_eq!(first[2].5, b"#!/bin/sh\necho hi\n");
    assert_eq!(first[3].1, tar::EntryType::Symlink);
    let second = entries(&decompress(
        &fs::read(a.blob_path(&a.layers[1].digest)).unwrap(),
        "",
    ));
    assert_eq!(second[1].2, 0o600);
    assert_eq!(second[2].1, tar::EntryType::Link);
    let third = fs::read(a.blob_path(&a.layers[2].digest)).unwrap();
    assert_eq!(
        entries(&decompress(&third, &a.layers[2].media_type))[0].0,
        "etc/.wh.b"
    );
}

#[test]
fn two_tags_share_one_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let one = TestImage::build(tmp.path(), &[LayerSpec::new().file("x", b"1", 0o644)]);
    let two = TestImage::build_with(
        tmp.path(),
        &ImageOptions {
            ref_name: "two".into(),
            ..ImageOptions::default()
        },
        &[LayerSpec::new().file("x", b"2", 0o644)],
    );
    // Rebuilding "latest" replaces its entry instead of adding one.
    let again = TestImage::build(tmp.path(), &[LayerSpec::new().file("x", b"1", 0o644)]);
    assert_eq!(one.manifest, again.manifest);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    let digests: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests.len(), 2);
    assert!(digests.contains(&one.manifest.digest.as_str()));
    assert!(digests.contains(&two.manifest.digest.as_str()));
    // skopeo reads both by tag.
    for img in [&one, &two] {
        let out = skopeo(&["inspect", "--raw", &img.oci_ref()]);
        assert_eq!(out.stdout, img.manifest_bytes);
    }
}

#[test]
fn bulk_small_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = TestImage::bulk_with(&tmp.path().join("a"), 2_000_000, 300, Compression::None);
    let b = TestImage::bulk_with(&tmp.path().join("b"), 2_000_000, 300, Compression::None);
    assert_eq!(a.diff_ids, b.diff_ids);
    assert_eq!(a.manifest, b.manifest);
    let stats = a.layer_stats[0];
    assert!(
        stats.file_bytes >= 2_000_000 && stats.files >= 300,
        "{stats:?}"
    );
    let tar_bytes = fs::read(a.blob_path(&a.layers[0].digest)).unwrap();
    let all = entries(&tar_bytes);
    assert_eq!(all.len(), stats.entries);
    let mut seen = std::collections::HashSet::new();
    for e in &all {
        assert!(seen.insert(e.0.clone()), "duplicate entry {}", e.0);
        assert!(e.0.starts_with("usr/"), "{}", e.0);
        assert_eq!((e.3, e.4), (0, 0));
    }
}

#[test]
fn multi_platform_index_with_attestation_pushes_with_all() {
    let tmp = tempfile::tempdir().unwrap();
    let amd64 = TestImage::build(
        &tmp.path().join("amd64"),
        &[LayerSpec::new().file("arch", b"amd64", 0o644)],
    );
    let arm64 = TestImage::build_with(
        &tmp.path().join("arm64"),
        &ImageOptions::for_arch("arm64"),
        &[LayerSpec::new().file("arch", b"arm64", 0o644)],
    );
    let multi = MultiPlatformImage::build(&tmp.path().join("multi"), &amd64, &arm64, "latest");

    let index: serde_json::Value = serde_json::from_slice(&multi.index_bytes).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let m = index["manifests"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[0]["platform"]["architecture"], "amd64");
    assert_eq!(m[1]["platform"]["architecture"], "arm64");
    assert_eq!(m[1]["platform"]["variant"], "v8");
    assert_eq!(m[2]["platform"]["os"], "unknown");
    assert_eq!(
        m[2]["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        m[2]["annotations"]["vnd.docker.reference.digest"].as_str(),
        Some(amd64.manifest.digest.as_str())
    );
    let att: serde_json::Value = serde_json::from_slice(&multi.attestation_manifest_bytes).unwrap();
    assert_eq!(att["layers"][0]["mediaType"], MEDIA_TYPE_IN_TOTO);
    let stmt: serde_json::Value = serde_json::from_slice(
        &fs::read(blob_path(&multi.layout, &multi.attestation_layer.digest)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        stmt["subject"][0]["digest"]["sha256"].as_str(),
        amd64.manifest.digest.strip_prefix("sha256:")
    );

    let registry = Registry::start();
    skopeo_copy_to_registry(Path::new(&multi.layout), &registry, "multi/img:latest");
    assert_eq!(
        skopeo_inspect_raw(&registry.host(), "multi/img:latest", None),
        multi.index_bytes
    );
    for (d, bytes) in [
        (&amd64.manifest.digest, &amd64.manifest_bytes),
        (&arm64.manifest.digest, &arm64.manifest_bytes),
        (
            &multi.attestation_manifest.digest,
            &multi.attestation_manifest_bytes,
        ),
    ] {
        let r = http::request(
            &registry.host(),
            "GET",
            &format!("/v2/multi/img/manifests/{d}"),
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(&r.body, bytes);
    }
    let blob = http::get(
        &registry.host(),
        &format!("/v2/multi/img/blobs/{}", multi.attestation_layer.digest),
    )
    .unwrap();
    assert_eq!(blob.status, 200);
}
