//! `inspect` and `copy` against Debian's real docker-registry, with skopeo as the peer.

mod common;

use common::*;
use repro_testkit::{
    MultiPlatformImage, Registry, TokenProxy, skopeo, skopeo_copy_layout_to,
    skopeo_copy_to_registry, skopeo_inspect_raw,
};

#[test]
fn image_pushed_by_skopeo_is_inspected_with_skopeos_digests() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "test/img:v1");
    let cache = tmp.path().join("cache");
    let image = format!("docker://{}/test/img:v1", reg.host());

    let raw = ok(&cache, &["--tls-verify=false", "inspect", "--raw", &image]).stdout;
    assert_eq!(raw, skopeo_inspect_raw(&reg.host(), "test/img:v1", None));
    let cfg = ok(
        &cache,
        &["--tls-verify=false", "inspect", "--raw", "--config", &image],
    )
    .stdout;
    let skopeo_cfg = skopeo(&["inspect", "--raw", "--config", "--tls-verify=false", &image]).stdout;
    assert_eq!(cfg, skopeo_cfg);

    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "inspect", &image],
    ));
    assert_eq!(j["schema"], "repro-image/inspect/v1");
    assert_eq!(j["manifest"]["digest"], img.manifest.digest);
    assert_eq!(j["config"]["digest"], img.config.digest);
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), img.layers.len());
    for (l, (want, diff_id)) in layers.iter().zip(img.layers.iter().zip(&img.diff_ids)) {
        assert_eq!(l["digest"], want.digest);
        assert_eq!(l["size"], want.size);
        assert_eq!(l["diff_id"], *diff_id);
        assert_eq!(l["compression"], "gzip");
    }
    // skopeo's own view of the config agrees on the diff_ids.
    let sk: serde_json::Value = serde_json::from_slice(&skopeo_cfg).unwrap();
    assert_eq!(sk["rootfs"]["diff_ids"], serde_json::json!(img.diff_ids));

    // The tag resolution was logged.
    let log = std::fs::read_to_string(cache.join("tags.jsonl")).unwrap();
    let rec: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(rec["repository"], "test/img");
    assert_eq!(rec["tag"], "v1");
    assert_eq!(rec["digest"], img.manifest.digest);
    assert_eq!(rec["registry"], reg.host());
}

#[test]
fn second_pull_by_digest_is_served_from_the_cache() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "test/img:v1");
    let cache = tmp.path().join("cache");
    let by_digest = format!("docker://{}/test/img@{}", reg.host(), img.manifest.digest);
    let out = tmp.path().join("out1");
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "-q",
            "copy",
            &by_digest,
            &format!("oci:{}:a", out.display()),
        ],
    );
    let host = reg.host();
    drop(reg); // the registry is gone: only the cache can answer now
    let out2 = tmp.path().join("out2");
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "-q",
            "copy",
            &by_digest,
            &format!("oci:{}:a", out2.display()),
        ],
    );
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:a", out2.display())]).stdout;
    assert_eq!(raw, img.manifest_bytes);
    // And without the cache it really is gone.
    let e = err(
        &tmp.path().join("empty-cache"),
        &[
            "--tls-verify=false",
            "--retries=1",
            "inspect",
            &format!("docker://{host}/test/img@{}", img.manifest.digest),
        ],
    );
    assert!(e.contains(&host), "{e}");
}

#[test]
fn copy_to_registry_and_oci_is_read_back_by_skopeo_byte_identically() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    let cache = tmp.path().join("cache");
    let src = format!("oci:{}:{}", img.layout.display(), img.ref_name);

    // oci: -> registry
    let dst = format!("docker://{}/copied/img:v2", reg.host());
    let out = ok(&cache, &["--tls-verify=false", "copy", &src, &dst]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        img.manifest.digest
    );
    assert_eq!(
        skopeo_inspect_raw(&reg.host(), "copied/img:v2", None),
        img.manifest_bytes
    );
    let cfg = skopeo(&["inspect", "--raw", "--config", "--tls-verify=false", &dst]).stdout;
    assert_eq!(cfg, img.config_bytes);
    // skopeo pulls every blob back (it verifies digests) into a layout of its own.
    let back = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dst,
        &format!("oci:{}:x", back.display()),
    ]);
    for l in &img.layers {
        let hex = l.digest.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(back.join("blobs/sha256").join(hex)).unwrap(),
            std::fs::read(img.blob_path(&l.digest)).unwrap()
        );
    }

    // registry -> oci:
    let layout = tmp.path().join("copy");
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "copy",
            &dst,
            &format!("oci:{}:v2", layout.display()),
        ],
    );
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v2", layout.display())]).stdout;
    assert_eq!(raw, img.manifest_bytes);
    let cfg = skopeo(&[
        "inspect",
        "--raw",
        "--config",
        &format!("oci:{}:v2", layout.display()),
    ])
    .stdout;
    assert_eq!(cfg, img.config_bytes);
    // skopeo can copy every blob out of our layout (it verifies each).
    skopeo(&[
        "copy",
        &format!("oci:{}:v2", layout.display()),
        &format!("oci:{}:y", tmp.path().join("again").display()),
    ]);
    assert!(!layout.join(".repro-tmp").exists());

    // A second copy into the same registry repository skips the blobs it has.
    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "copy", &src, &dst],
    ));
    assert_eq!(j["blobs_copied"], 0);
    assert_eq!(j["blobs_skipped"], 3);
    assert_eq!(j["digest_kept"], true);
}

#[test]
fn multi_platform_index_with_attestations() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let amd = repro_testkit::TestImage::build_with(
        &tmp.path().join("amd64"),
        &repro_testkit::ImageOptions::for_arch("amd64"),
        &[repro_testkit::LayerSpec::files(&[(
            "etc/arch", b"amd64\n", 0o644,
        )])],
    );
    let arm = repro_testkit::TestImage::build_with(
        &tmp.path().join("arm64"),
        &repro_testkit::ImageOptions::for_arch("arm64"),
        &[repro_testkit::LayerSpec::files(&[(
            "etc/arch", b"arm64\n", 0o644,
        )])],
    );
    let multi = MultiPlatformImage::build(&tmp.path().join("multi"), &amd, &arm, "multi");
    skopeo_copy_layout_to(&multi.layout, &reg.host(), "test/multi:latest", None);
    let cache = tmp.path().join("cache");
    let image = format!("docker://{}/test/multi:latest", reg.host());

    let raw = ok(&cache, &["--tls-verify=false", "inspect", "--raw", &image]).stdout;
    assert_eq!(raw, multi.index_bytes);

    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "inspect", &image],
    ));
    assert_eq!(j["index"]["digest"], multi.index.digest);
    let entries = j["index"]["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let att: Vec<_> = entries
        .iter()
        .filter(|e| e["kind"] == "attestation")
        .collect();
    assert_eq!(att.len(), 1);
    assert_eq!(att[0]["digest"], multi.attestation_manifest.digest);
    assert_eq!(att[0]["attests"], amd.manifest.digest);
    assert_eq!(
        j["manifest"]["digest"], amd.manifest.digest,
        "linux/amd64 is the default"
    );
    // the index entry that was followed, and only it, is marked
    let selected: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["selected"] == true)
        .map(|e| &e["digest"])
        .collect();
    assert_eq!(selected, [&serde_json::json!(amd.manifest.digest)]);
    let human =
        String::from_utf8(ok(&cache, &["--tls-verify=false", "inspect", &image]).stdout).unwrap();
    assert!(
        human.contains(&format!("attestation for {}", amd.manifest.digest)),
        "{human}"
    );

    let j = json(&ok(
        &cache,
        &[
            "--tls-verify=false",
            "--json",
            "--platform",
            "linux/arm64",
            "inspect",
            &image,
        ],
    ));
    assert_eq!(j["manifest"]["digest"], arm.manifest.digest);
    assert_eq!(j["config"]["platform"]["architecture"], "arm64");

    let e = err(
        &cache,
        &[
            "--tls-verify=false",
            "--platform",
            "linux/s390x",
            "inspect",
            &image,
        ],
    );
    assert!(e.contains("no manifest for platform linux/s390x"), "{e}");
    assert!(
        e.contains("linux/amd64") && e.contains("linux/arm64"),
        "{e}"
    );

    // copy --all keeps the index digest, attestations included; without --all only the
    // platform's manifest is copied, with its own digest.
    let all = tmp.path().join("all");
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "-q",
            "copy",
            "--all",
            &image,
            &format!("oci:{}:all", all.display()),
        ],
    );
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:all", all.display())]).stdout;
    assert_eq!(raw, multi.index_bytes);
    let copied = skopeo(&["inspect", "--raw", &format!("oci:{}:all", all.display())]).stdout;
    assert_eq!(copied, multi.index_bytes);
    let one = tmp.path().join("one");
    let out = ok(
        &cache,
        &[
            "--tls-verify=false",
            "copy",
            &image,
            &format!("oci:{}:one", one.display()),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        amd.manifest.digest
    );
    let dst = format!("docker://{}/test/multi-copy:latest", reg.host());
    ok(
        &cache,
        &["--tls-verify=false", "-q", "copy", "--all", &image, &dst],
    );
    assert_eq!(
        skopeo_inspect_raw(&reg.host(), "test/multi-copy:latest", None),
        multi.index_bytes
    );
}

#[test]
fn basic_auth_from_flag_and_auth_file() {
    let reg = Registry::start_with_basic_auth("alice", "s3cret");
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "priv/img:v1");
    let cache = tmp.path().join("cache");
    let image = format!("docker://{}/priv/img:v1", reg.host());

    let e = err(&cache, &["--tls-verify=false", "inspect", &image]);
    assert!(e.contains("not authorized"), "{e}");
    assert!(!e.contains("s3cret"));
    let e = err(
        &cache,
        &[
            "--tls-verify=false",
            "--creds",
            "alice:wrong",
            "inspect",
            &image,
        ],
    );
    assert!(e.contains("not authorized"), "{e}");

    let j = json(&ok(
        &cache,
        &[
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            "--json",
            "inspect",
            &image,
        ],
    ));
    assert_eq!(j["manifest"]["digest"], img.manifest.digest);

    // containers-auth.json, found through $REGISTRY_AUTH_FILE.
    let auth = tmp.path().join("auth.json");
    let b64 = base64_encode(b"alice:s3cret");
    std::fs::write(
        &auth,
        format!(r#"{{"auths":{{"{}":{{"auth":"{b64}"}}}}}}"#, reg.host()),
    )
    .unwrap();
    let out = bin()
        .args([
            "--cache",
            cache.to_str().unwrap(),
            "--tls-verify=false",
            "--json",
            "inspect",
            &image,
        ])
        .env("REGISTRY_AUTH_FILE", &auth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out)["manifest"]["digest"], img.manifest.digest);

    // Push with basic auth too.
    let dst = format!("docker://{}/priv/copy:v1", reg.host());
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "--creds",
            "alice:s3cret",
            "-q",
            "copy",
            &format!("oci:{}", img.layout.display()),
            &dst,
        ],
    );
    assert_eq!(
        skopeo_inspect_raw(&reg.host(), "priv/copy:v1", Some("alice:s3cret")),
        img.manifest_bytes
    );
}

#[test]
fn bearer_token_flow_with_a_scope_per_repository() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "team/app:v1");
    let proxy = TokenProxy::start(&reg);
    let cache = tmp.path().join("cache");
    let image = format!("docker://{}/team/app:v1", proxy.host());
    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "inspect", &image],
    ));
    assert_eq!(j["manifest"]["digest"], img.manifest.digest);
    let scopes = proxy.requested_scopes();
    assert!(
        scopes.contains(&"repository:team/app:pull".to_string()),
        "{scopes:?}"
    );

    // Pushing to another repository asks for a push token scoped to that repository only.
    let dst = format!("docker://{}/team/other:v1", proxy.host());
    ok(
        &cache,
        &[
            "--tls-verify=false",
            "-q",
            "copy",
            &format!("oci:{}", img.layout.display()),
            &dst,
        ],
    );
    let scopes = proxy.requested_scopes();
    assert!(
        scopes.contains(&"repository:team/other:pull,push".to_string()),
        "{scopes:?}"
    );
    assert!(
        !scopes.iter().any(|s| s.contains("team/app:pull,push")),
        "{scopes:?}"
    );
    assert_eq!(
        skopeo_inspect_raw(&reg.host(), "team/other:v1", None),
        img.manifest_bytes
    );
}

#[test]
fn tag_and_digest_digest_wins_and_a_moved_tag_is_reported() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let one = small_image(&tmp.path().join("one"));
    let two = repro_testkit::TestImage::build(
        &tmp.path().join("two"),
        &[repro_testkit::LayerSpec::files(&[(
            "etc/version",
            b"2\n",
            0o644,
        )])],
    );
    skopeo_copy_to_registry(&one.layout, &reg, "test/img:v1");
    skopeo_copy_to_registry(&two.layout, &reg, "test/img:latest");
    let cache = tmp.path().join("cache");
    let image = format!(
        "docker://{}/test/img:latest@{}",
        reg.host(),
        one.manifest.digest
    );
    let out = ok(&cache, &["--tls-verify=false", "--json", "inspect", &image]);
    let j = json(&out);
    assert_eq!(j["manifest"]["digest"], one.manifest.digest);
    let w = j["warnings"][0].as_str().unwrap();
    assert!(
        w.contains(&two.manifest.digest) && w.contains("latest"),
        "{w}"
    );
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[test]
fn docker_archive_round_trip_through_registry_keeps_config_and_diff_ids() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "arch/img:v1");
    let cache = tmp.path().join("cache");
    let src = format!("docker://{}/arch/img:v1", reg.host());
    let archive = tmp.path().join("img.tar");
    let out = ok(
        &cache,
        &[
            "--tls-verify=false",
            "--json",
            "copy",
            &src,
            &format!("docker-archive:{}:arch/img:v1", archive.display()),
        ],
    );
    assert_eq!(json(&out)["digest_kept"], false);
    // skopeo reads our archive: same config, same diff_ids.
    let cfg = skopeo(&[
        "inspect",
        "--raw",
        "--config",
        &format!("docker-archive:{}", archive.display()),
    ])
    .stdout;
    assert_eq!(cfg, img.config_bytes);

    // docker-archive -> registry: layers are gzip-compressed on the way, as skopeo does.
    let dst = format!("docker://{}/arch/back:v1", reg.host());
    let j = json(&ok(
        &cache,
        &[
            "--tls-verify=false",
            "--json",
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &dst,
        ],
    ));
    assert_eq!(j["digest_kept"], false);
    let pushed = skopeo_inspect_raw(&reg.host(), "arch/back:v1", None);
    let pushed_digest = repro_testkit::sha256_digest(&pushed);
    let m: serde_json::Value = serde_json::from_slice(&pushed).unwrap();
    assert_eq!(m["config"]["digest"], img.config.digest);
    for l in m["layers"].as_array().unwrap() {
        assert_eq!(
            l["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
    // skopeo pulls it (verifying every blob) and the layers decompress to the diff_ids.
    let back = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dst,
        &format!("oci:{}:b", back.display()),
    ]);
    let j = json(&ok(
        &cache,
        &["--json", "inspect", &format!("oci:{}:b", back.display())],
    ));
    let ids: Vec<_> = j["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].clone())
        .collect();
    assert_eq!(serde_json::json!(ids), serde_json::json!(img.diff_ids));
    for l in m["layers"].as_array().unwrap() {
        let hex = l["digest"].as_str().unwrap().trim_start_matches("sha256:");
        let gz = std::fs::read(back.join("blobs/sha256").join(hex)).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    }
    // The same archive always gives the same manifest (deterministic gzip).
    let again = tmp.path().join("again");
    let a = json(&ok(
        &cache,
        &[
            "--json",
            "copy",
            &format!("docker-archive:{}", archive.display()),
            &format!("oci:{}:x", again.display()),
        ],
    ));
    assert_eq!(a["digest"], pushed_digest);
}

#[test]
fn plain_http_only_when_asked() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    skopeo_copy_to_registry(&img.layout, &reg, "test/img:v1");
    let cache = tmp.path().join("cache");
    let image = format!("docker://{}/test/img:v1", reg.host());
    // Without --tls-verify=false only https is tried, and this registry speaks plain http.
    let e = err(&cache, &["--retries=1", "inspect", &image]);
    assert!(
        e.contains(&format!("https://{}/v2/test/img/manifests/v1", reg.host())),
        "{e}"
    );
    let j = json(&ok(
        &cache,
        &["--tls-verify=false", "--json", "inspect", &image],
    ));
    assert_eq!(j["manifest"]["digest"], img.manifest.digest);
}
