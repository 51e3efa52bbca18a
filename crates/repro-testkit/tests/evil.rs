//! EvilServer behaviours, seen by a plain HTTP client.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use repro_testkit::{Behavior, EvilServer, http, sha256_digest};

#[test]
fn serves_v2_routes_and_404() {
    let evil = EvilServer::start([(
        "/v2/x/manifests/latest",
        Behavior::manifest("application/vnd.oci.image.manifest.v1+json", b"{}".to_vec()),
    )]);
    let ping = http::get(&evil.host(), "/v2/").unwrap();
    assert_eq!(ping.status, 200);
    assert_eq!(ping.body, b"{}");

    let m = http::get(&evil.host(), "/v2/x/manifests/latest?ns=docker.io").unwrap();
    assert_eq!(m.status, 200);
    assert_eq!(
        m.header("docker-content-digest"),
        Some(sha256_digest(b"{}").as_str())
    );
    assert_eq!(
        m.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );

    let head = http::request(&evil.host(), "HEAD", "/v2/x/manifests/latest", &[], b"").unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.content_length(), Some(2));
    assert!(head.body.is_empty());

    assert_eq!(
        http::get(&evil.host(), "/v2/nope/manifests/latest")
            .unwrap()
            .status,
        404
    );
    assert_eq!(evil.hits("/v2/x/manifests/latest"), 2);
    assert_eq!(evil.hits("/v2/"), 1);
    assert_eq!(evil.total_hits(), 4);
    let reqs = evil.requests();
    assert_eq!(reqs[1].target, "/v2/x/manifests/latest?ns=docker.io");
    assert_eq!(reqs[1].path(), "/v2/x/manifests/latest");
}

#[test]
fn truncates_after_n_bytes_with_full_content_length() {
    let body = vec![7u8; 10_000];
    let evil = EvilServer::start([("/blob", Behavior::truncated(body, 1234))]);
    let resp = http::get(&evil.host(), "/blob").unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), Some(10_000));
    assert_eq!(resp.body.len(), 1234);
}

#[test]
fn stalls_and_client_times_out_then_drop_is_prompt() {
    let evil = EvilServer::start([("/slow", Behavior::stall(vec![1u8; 1000], 100))]);
    let started = Instant::now();
    let err = http::request_with_timeout(
        &evil.host(),
        "GET",
        "/slow",
        &[],
        b"",
        Duration::from_millis(500),
    )
    .expect_err("the client must time out");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // A raw client sees the head and the first 100 bytes, then nothing until the server is
    // dropped, which ends the stall (the connection closes) well before MAX_STALL.
    let mut s = TcpStream::connect(evil.host()).unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") || got.len() < 100 {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let dropped = Instant::now();
    drop(evil);
    let rest = s.read_to_end(&mut got);
    assert!(rest.is_ok(), "{rest:?}");
    assert!(
        dropped.elapsed() < Duration::from_secs(10),
        "drop must end the stall"
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("Content-Length: 1000"), "{text}");
    let body_start = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(got.len() - body_start, 100);
}

#[test]
fn redirect_loops_are_counted() {
    let evil = EvilServer::start([
        ("/a", Behavior::redirect("/b")),
        ("/b", Behavior::redirect("/a")),
    ]);
    let mut path = "/a".to_string();
    for _ in 0..6 {
        let r = http::get(&evil.host(), &path).unwrap();
        assert_eq!(r.status, 307);
        let location = r.header("location").unwrap().to_string();
        let prefix = format!("{}/", evil.url());
        assert!(location.starts_with(&prefix), "{location}");
        path = location[prefix.len() - 1..].to_string();
    }
    assert_eq!(evil.hits("/a"), 3);
    assert_eq!(evil.hits("/b"), 3);
}

#[test]
fn rate_limits_then_succeeds() {
    let evil = EvilServer::start([(
        "/m",
        Behavior::rate_limited(2, Behavior::ok(b"fine".to_vec())),
    )]);
    for _ in 0..2 {
        let r = http::get(&evil.host(), "/m").unwrap();
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let r = http::get(&evil.host(), "/m").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"fine");
    assert_eq!(evil.hits("/m"), 3);
}

#[test]
fn unavailable_then_succeeds_and_sequences() {
    let evil = EvilServer::start([
        (
            "/u",
            Behavior::unavailable(1, Behavior::blob(b"blob".to_vec())),
        ),
        (
            "/s",
            Behavior::sequence(vec![
                Behavior::truncated(b"0123456789".to_vec(), 4),
                Behavior::ranged(b"0123456789".to_vec()),
            ]),
        ),
    ]);
    assert_eq!(http::get(&evil.host(), "/u").unwrap().status, 503);
    let ok = http::get(&evil.host(), "/u").unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("docker-content-digest"),
        Some(sha256_digest(b"blob").as_str())
    );

    // A truncated first answer, then a resumable one.
    let first = http::get(&evil.host(), "/s").unwrap();
    assert_eq!(first.body, b"0123");
    let resumed = http::request(&evil.host(), "GET", "/s", &[("Range", "bytes=4-")], b"").unwrap();
    assert_eq!(resumed.status, 206);
    assert_eq!(resumed.header("content-range"), Some("bytes 4-9/10"));
    assert_eq!(resumed.body, b"456789");
    let whole = http::get(&evil.host(), "/s").unwrap();
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, b"0123456789");
    let bad = http::request(&evil.host(), "GET", "/s", &[("Range", "bytes=20-")], b"").unwrap();
    assert_eq!(bad.status, 416);
}

#[test]
fn lying_headers_and_runtime_changes() {
    let evil = EvilServer::start([(
        "/lie",
        Behavior::blob(b"actual".to_vec()).with_header("Docker-Content-Digest", "sha256:0000"),
    )]);
    let r = http::get(&evil.host(), "/lie").unwrap();
    assert_eq!(r.header("docker-content-digest"), Some("sha256:0000"));
    assert_eq!(r.body, b"actual");

    evil.set(
        "/v2/",
        Behavior::respond(
            401,
            &[("WWW-Authenticate", "Basic realm=\"x\"")],
            b"".to_vec(),
        ),
    );
    let r = http::get(&evil.host(), "/v2/").unwrap();
    assert_eq!(r.status, 401);

    // Request bodies are read and their size recorded; headers are recorded.
    let r = http::request(&evil.host(), "PUT", "/lie", &[("X-Test", "1")], b"12345").unwrap();
    assert_eq!(r.status, 200);
    let last = evil.requests().pop().unwrap();
    assert_eq!(last.method, "PUT");
    assert_eq!(last.body_len, 5);
    assert_eq!(last.header("x-test"), Some("1"));
}

#[test]
fn curl_sees_the_same() {
    if !std::path::Path::new("/usr/bin/curl").exists() {
        panic!("curl is required (apt package curl, see .ci/run)");
    }
    let evil = EvilServer::start([("/t", Behavior::truncated(vec![b'x'; 5000], 10))]);
    let out = std::process::Command::new("/usr/bin/curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("{}/t", evil.url()),
        ])
        .output()
        .unwrap();
    // curl reports the short body as an error (exit 18: partial file).
    assert_eq!(
        out.status.code(),
        Some(18),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 10");
}
