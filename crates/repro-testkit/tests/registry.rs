//! The real registry starts, takes pushes from skopeo and serves our exact bytes.

use repro_testkit::{
    LayerSpec, Registry, TestImage, http, skopeo_copy_to_registry, skopeo_inspect_raw, try_skopeo,
};

fn small_image(dir: &std::path::Path) -> TestImage {
    TestImage::build(
        dir,
        &[
            LayerSpec::new()
                .dir("etc", 0o755)
                .file("etc/os-release", b"ID=testkit\n", 0o644),
            LayerSpec::new().file("hello.txt", b"hello\n", 0o600),
        ],
    )
}

#[test]
fn anonymous_registry_round_trips_exact_manifest_bytes() {
    let registry = Registry::start();
    assert!(registry.host().starts_with("127.0.0.1:"));
    assert_eq!(registry.url(), format!("http://{}", registry.host()));

    let ping = http::get(&registry.host(), "/v2/").expect("GET /v2/");
    assert_eq!(ping.status, 200, "{}", ping.text());
    assert_eq!(
        ping.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    let tmp = tempfile::tempdir().unwrap();
    let image = small_image(tmp.path());
    skopeo_copy_to_registry(&image.layout, &registry, "testkit/small:v1");

    let raw = skopeo_inspect_raw(&registry.host(), "testkit/small:v1", None);
    assert_eq!(
        raw, image.manifest_bytes,
        "registry must serve the manifest we wrote, byte for byte"
    );

    // The same over plain HTTP, with the digest header a client verifies against.
    let resp = http::request(
        &registry.host(),
        "GET",
        &format!("/v2/testkit/small/manifests/{}", image.manifest.digest),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    )
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, image.manifest_bytes);
    assert_eq!(
        resp.header("docker-content-digest"),
        Some(image.manifest.digest.as_str())
    );
    assert_eq!(
        resp.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );

    // Every blob is there with the exact bytes.
    for d in image.layers.iter().chain([&image.config]) {
        let blob = http::get(
            &registry.host(),
            &format!("/v2/testkit/small/blobs/{}", d.digest),
        )
        .unwrap();
        assert_eq!(blob.status, 200);
        assert_eq!(
            blob.body,
            std::fs::read(image.blob_path(&d.digest)).unwrap()
        );
    }

    // Deletion is enabled.
    let del = http::request(
        &registry.host(),
        "DELETE",
        &format!("/v2/testkit/small/manifests/{}", image.manifest.digest),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(del.status, 202, "{}", del.text());
}

#[test]
fn basic_auth_registry_refuses_anonymous_and_accepts_credentials() {
    let registry = Registry::start_with_basic_auth("alice", "s3cret");
    assert_eq!(registry.credentials(), Some(("alice", "s3cret")));

    let ping = http::get(&registry.host(), "/v2/").unwrap();
    assert_eq!(ping.status, 401);
    assert!(
        ping.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{:?}",
        ping.headers
    );

    let tmp = tempfile::tempdir().unwrap();
    let image = small_image(tmp.path());
    let image_ref = registry.docker_ref("private/img:1");
    let src = format!("oci:{}", image.layout.display());

    // Anonymous push is refused.
    let refused = try_skopeo(&[
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &src,
        &image_ref,
    ]);
    assert!(!refused.status.success(), "anonymous push must fail");

    // With credentials it works (skopeo_copy_to_registry passes them).
    skopeo_copy_to_registry(&image.layout, &registry, "private/img:1");
    assert_eq!(
        skopeo_inspect_raw(&registry.host(), "private/img:1", Some("alice:s3cret")),
        image.manifest_bytes
    );

    // Anonymous and wrong-password reads are refused.
    let anon = try_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        &image_ref,
    ]);
    assert!(!anon.status.success());
    let wrong = try_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "alice:wrong",
        &image_ref,
    ]);
    assert!(!wrong.status.success());
}

#[test]
fn registry_stops_on_drop() {
    let registry = Registry::start();
    let host = registry.host();
    let pid = registry.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(registry);
    assert!(
        http::request_with_timeout(
            &host,
            "GET",
            "/v2/",
            &[],
            b"",
            std::time::Duration::from_secs(2)
        )
        .is_err(),
        "nothing should answer on {host} after drop"
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "registry pid {pid} still alive"
    );
}

#[test]
fn two_registries_run_side_by_side() {
    let a = Registry::start();
    let b = Registry::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.storage_dir(), b.storage_dir());
    assert_eq!(http::get(&a.host(), "/v2/").unwrap().status, 200);
    assert_eq!(http::get(&b.host(), "/v2/").unwrap().status, 200);
}
