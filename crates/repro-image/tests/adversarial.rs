//! A registry that lies, truncates, stalls, loops and rate-limits: every case ends with a
//! clear error (exit 2) or a correct result, and the cache never holds a bad or partial blob.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use repro_testkit::{Behavior, EvilServer, LayerSpec, TestImage};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

struct World {
    server: EvilServer,
    img: TestImage,
    _tmp: tempfile::TempDir,
    cache: std::path::PathBuf,
    out: std::path::PathBuf,
}

impl World {
    /// Serve a real image honestly; tests then replace one route with a misbehaviour.
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let img = TestImage::build(
            &tmp.path().join("layout"),
            &[LayerSpec::files(&[(
                "data/blob.bin",
                &vec![7u8; 300_000],
                0o644,
            )])],
        );
        let mut routes = vec![(
            "/v2/evil/img/manifests/v1".to_string(),
            Behavior::manifest(OCI_MANIFEST, img.manifest_bytes.clone()),
        )];
        routes.push((
            format!("/v2/evil/img/manifests/{}", img.manifest.digest),
            Behavior::manifest(OCI_MANIFEST, img.manifest_bytes.clone()),
        ));
        for d in std::iter::once(&img.config).chain(&img.layers) {
            let bytes = std::fs::read(img.blob_path(&d.digest)).unwrap();
            routes.push((
                format!("/v2/evil/img/blobs/{}", d.digest),
                Behavior::blob(bytes),
            ));
        }
        let server = EvilServer::start(routes);
        let cache = tmp.path().join("cache");
        let out = tmp.path().join("out");
        World {
            server,
            img,
            cache,
            out,
            _tmp: tmp,
        }
    }
    fn image(&self) -> String {
        format!("docker://{}/evil/img:v1", self.server.host())
    }
    fn layer_path(&self) -> String {
        format!("/v2/evil/img/blobs/{}", self.img.layers[0].digest)
    }
    fn layer_bytes(&self) -> Vec<u8> {
        std::fs::read(self.img.blob_path(&self.img.layers[0].digest)).unwrap()
    }
    fn copy_args(&self) -> Vec<String> {
        vec![
            "--tls-verify=false".into(),
            "--retries=2".into(),
            "--timeout=3".into(),
            "-q".into(),
            "copy".into(),
            self.image(),
            format!("oci:{}:x", self.out.display()),
        ]
    }
    fn copy(&self) -> std::process::Output {
        let args = self.copy_args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&self.cache, &refs)
    }
    fn copy_err(&self) -> String {
        let out = self.copy();
        let e = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(
            out.status.code(),
            Some(2),
            "expected an error, got {:?}: {e}",
            out.status
        );
        e
    }
    fn layer_cached(&self) -> bool {
        let hex = self.img.layers[0].digest.trim_start_matches("sha256:");
        self.cache.join("blobs/sha256").join(hex).exists()
    }
    fn layer_in_output(&self) -> bool {
        let hex = self.img.layers[0].digest.trim_start_matches("sha256:");
        self.out.join("blobs/sha256").join(hex).exists()
    }
}

fn no_temp_files(store: &Path) -> bool {
    listing(&store.join(".repro-tmp")).is_empty()
}

#[test]
fn blob_whose_bytes_do_not_match_its_digest() {
    let w = World::new();
    let mut bad = w.layer_bytes();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    w.server.set(&w.layer_path(), Behavior::blob(bad));
    let e = w.copy_err();
    assert!(
        e.contains("digest mismatch") && e.contains(&w.img.layers[0].digest),
        "{e}"
    );
    assert!(!w.layer_cached());
    assert!(!w.layer_in_output());
    assert!(no_temp_files(&w.cache) && no_temp_files(&w.out));
}

#[test]
fn truncated_blob() {
    let w = World::new();
    let bytes = w.layer_bytes();
    let half = bytes.len() / 2;
    w.server
        .set(&w.layer_path(), Behavior::truncated(bytes, half));
    let e = w.copy_err();
    assert!(e.contains(&w.img.layers[0].digest), "{e}");
    assert!(!w.layer_cached());
    assert!(!w.layer_in_output());
    assert!(no_temp_files(&w.cache));
}

#[test]
fn connection_reset_mid_blob_is_resumed_with_a_range_request() {
    let w = World::new();
    let bytes = w.layer_bytes();
    let half = bytes.len() / 2;
    w.server.set(
        &w.layer_path(),
        Behavior::sequence(vec![
            Behavior::truncated(bytes.clone(), half),
            Behavior::ranged(bytes),
        ]),
    );
    let out = w.copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.layer_cached() && w.layer_in_output());
    let reqs: Vec<_> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| r.path() == w.layer_path())
        .collect();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].header("range"),
        Some(format!("bytes={half}-").as_str())
    );
}

#[test]
fn manifest_digest_differs_from_docker_content_digest() {
    let w = World::new();
    let lie = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    w.server.set(
        "/v2/evil/img/manifests/v1",
        Behavior::respond(
            200,
            &[
                ("Content-Type", OCI_MANIFEST),
                ("Docker-Content-Digest", lie),
            ],
            w.img.manifest_bytes.clone(),
        ),
    );
    let e = w.copy_err();
    assert!(
        e.contains("Docker-Content-Digest") && e.contains(lie),
        "{e}"
    );
    assert!(blobs(&w.cache).is_empty(), "{:?}", blobs(&w.cache));
}

#[test]
fn manifest_over_4_mib() {
    let w = World::new();
    let mut big = w.img.manifest_bytes.clone();
    big.truncate(big.len() - 1);
    big.extend(std::iter::repeat_n(b' ', 4 * 1024 * 1024));
    big.push(b'}');
    w.server.set(
        "/v2/evil/img/manifests/v1",
        Behavior::manifest(OCI_MANIFEST, big),
    );
    let e = w.copy_err();
    assert!(
        e.contains("manifest limit") || e.contains("over the"),
        "{e}"
    );
    assert!(blobs(&w.cache).is_empty());
}

#[test]
fn unknown_media_type() {
    let w = World::new();
    let v1 = br#"{"schemaVersion":1,"name":"evil/img","tag":"v1","fsLayers":[]}"#.to_vec();
    w.server.set(
        "/v2/evil/img/manifests/v1",
        Behavior::manifest(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            v1,
        ),
    );
    let e = w.copy_err();
    assert!(
        e.contains("unsupported media type") && e.contains("manifest.v1+prettyjws"),
        "{e}"
    );
}

#[test]
fn redirect_loop() {
    let w = World::new();
    w.server.set(&w.layer_path(), Behavior::redirect("/loop/a"));
    w.server.set("/loop/a", Behavior::redirect("/loop/b"));
    w.server.set("/loop/b", Behavior::redirect("/loop/a"));
    let e = w.copy_err();
    assert!(e.contains("redirects"), "{e}");
    assert!(!w.layer_cached());
}

#[test]
fn redirect_to_storage_is_followed_without_forwarding_credentials() {
    let w = World::new();
    // Blob storage on another host, as registries redirect to object stores.
    let storage = EvilServer::start([(
        format!("/storage/{}", w.img.layers[0].digest),
        Behavior::blob(w.layer_bytes()),
    )]);
    let location = format!("{}/storage/{}", storage.url(), w.img.layers[0].digest);
    // The registry wants basic auth first, then redirects.
    w.server.set(
        &w.layer_path(),
        Behavior::fail_first(
            1,
            401,
            &[("WWW-Authenticate", "Basic realm=\"evil\"")],
            Behavior::redirect(&location),
        ),
    );
    let mut args = w.copy_args();
    args.insert(0, "--creds=user:pw".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&w.cache, &refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.layer_cached() && w.layer_in_output());
    let reqs = w.server.requests();
    let authed = reqs
        .iter()
        .filter(|r| r.path() == w.layer_path())
        .filter(|r| r.header("authorization").is_some())
        .count();
    assert_eq!(
        authed, 1,
        "the registry got the credentials once, after its challenge"
    );
    let st = storage.requests();
    assert_eq!(st.len(), 1);
    assert!(
        st[0].header("authorization").is_none(),
        "credentials leaked to the storage host"
    );
}

#[test]
fn server_that_stalls_mid_body_hits_the_timeout() {
    let w = World::new();
    let bytes = w.layer_bytes();
    let half = bytes.len() / 2;
    w.server.set(&w.layer_path(), Behavior::stall(bytes, half));
    let start = Instant::now();
    let e = w.copy_err();
    // --timeout=3 and two attempts: far below the server's 60-second stall.
    assert!(
        start.elapsed() < Duration::from_secs(45),
        "took {:?}",
        start.elapsed()
    );
    assert!(
        e.to_lowercase().contains("timed out") || e.to_lowercase().contains("timeout"),
        "{e}"
    );
    assert!(!w.layer_cached());
    assert!(no_temp_files(&w.cache));
}

#[test]
fn rate_limit_and_unavailable_are_retried() {
    let w = World::new();
    w.server.set(
        "/v2/evil/img/manifests/v1",
        Behavior::rate_limited(
            1,
            Behavior::manifest(OCI_MANIFEST, w.img.manifest_bytes.clone()),
        ),
    );
    w.server.set(
        &w.layer_path(),
        Behavior::unavailable(1, Behavior::blob(w.layer_bytes())),
    );
    let out = w.copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.server.hits("/v2/evil/img/manifests/v1"), 2);
    assert_eq!(w.server.hits(&w.layer_path()), 2);
    assert!(w.layer_cached());
}

#[test]
fn persistent_server_errors_give_up_with_the_status() {
    let w = World::new();
    w.server.set(
        &w.layer_path(),
        Behavior::unavailable(100, Behavior::blob(w.layer_bytes())),
    );
    let e = w.copy_err();
    assert!(e.contains("503"), "{e}");
    assert_eq!(
        w.server.hits(&w.layer_path()),
        2,
        "--retries=2 means two attempts"
    );
}

#[test]
fn process_killed_mid_download_leaves_no_partial_entry() {
    let w = World::new();
    let bytes = w.layer_bytes();
    let half = bytes.len() / 2;
    w.server
        .set(&w.layer_path(), Behavior::stall(bytes.clone(), half));
    let mut child = bin()
        .arg("--cache")
        .arg(&w.cache)
        .args(
            w.copy_args()
                .iter()
                .map(|s| s.replace("--timeout=3", "--timeout=60")),
        )
        .spawn()
        .unwrap();
    // Wait until the download is under way: the temp file has received bytes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tmp = w.cache.join(".repro-tmp");
        let partial = std::fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
            })
            .unwrap_or(false);
        if partial {
            break;
        }
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL: no destructor, no cleanup.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!w.layer_cached(), "a partial blob must never be visible");
    assert!(!w.layer_in_output());

    w.server.set(&w.layer_path(), Behavior::blob(bytes));
    let out = w.copy();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(w.layer_cached() && w.layer_in_output());
    assert!(
        no_temp_files(&w.cache),
        "stale temp files of the killed run are removed"
    );
    // What the cache holds verifies.
    let hex = w.img.layers[0].digest.trim_start_matches("sha256:");
    assert_eq!(
        std::fs::read(w.cache.join("blobs/sha256").join(hex)).unwrap(),
        w.layer_bytes()
    );
}

#[test]
fn config_larger_than_the_limit_is_refused_before_reading() {
    let w = World::new();
    let m: serde_json::Value = serde_json::from_slice(&w.img.manifest_bytes).unwrap();
    let mut m = m;
    m["config"]["size"] = serde_json::json!(100u64 << 20);
    let bytes = serde_json::to_vec(&m).unwrap();
    w.server.set(
        "/v2/evil/img/manifests/v1",
        Behavior::manifest(OCI_MANIFEST, bytes),
    );
    let out = run(&w.cache, &["--tls-verify=false", "inspect", &w.image()]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert!(e.contains("over the 67108864-byte limit"), "{e}");
    assert_eq!(
        w.server
            .hits(&format!("/v2/evil/img/blobs/{}", w.img.config.digest)),
        0
    );
}
