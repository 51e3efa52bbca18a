//! Verified, resumable downloads against the testkit's adversarial server: cut connections
//! resumed with Range, servers that ignore Range, wrong bytes, oversize bodies, mirrors.

use std::time::Duration;

use repro_lock::Sha256Hex;
use repro_lock::archive::{self, ArchiveError, Client, ClientOptions, Fetched};
use repro_store::Store;
use repro_testkit::evil::{Behavior, EvilServer};

fn body(n: usize) -> Vec<u8> {
    // Not all zeros, so a wrong offset gives a wrong hash.
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn sha(b: &[u8]) -> Sha256Hex {
    Sha256Hex::from_digest(&repro_oci::digest::sha256_of(b)).unwrap()
}

fn client(attempts: u32) -> Client {
    Client::new(ClientOptions {
        attempts,
        backoff: Duration::from_millis(1),
        timeout: Duration::from_secs(10),
        ..Default::default()
    })
}

const PATH: &str = "/packages/b/bash/bash-1-1-x86_64.pkg.tar.zst";

fn partial_len(store: &Store, h: &Sha256Hex) -> Option<u64> {
    std::fs::metadata(archive::partial_path(store, h))
        .ok()
        .map(|m| m.len())
}

#[test]
fn cut_download_resumes_with_range_in_the_same_run() {
    let data = body(300_000);
    let server = EvilServer::start([(
        PATH,
        Behavior::sequence(vec![
            Behavior::truncated(data.clone(), 100_000),
            Behavior::ranged(data.clone()),
        ]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    let got = client(3)
        .download(
            &store,
            &[format!("{}{PATH}", server.url())],
            &h,
            data.len() as u64,
            "package bash 1-1",
            &|_| {},
        )
        .unwrap();
    assert_eq!(
        got,
        Fetched::Downloaded {
            bytes: data.len() as u64,
            resumed_from: 0
        }
    );
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("range"), None);
    assert_eq!(reqs[1].header("range"), Some("bytes=100000-"));
    let stored = std::fs::read(store.blob_path(&h.digest()).unwrap()).unwrap();
    assert_eq!(stored, data);
    assert_eq!(
        partial_len(&store, &h),
        None,
        "partial file renamed into place"
    );
}

#[test]
fn cut_download_resumes_in_a_later_run() {
    let data = body(200_000);
    let server = EvilServer::start([(PATH, Behavior::truncated(data.clone(), 64_000))]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    let url = format!("{}{PATH}", server.url());
    let e = client(1)
        .download(
            &store,
            std::slice::from_ref(&url),
            &h,
            200_000,
            "package bash 1-1",
            &|_| {},
        )
        .unwrap_err();
    assert!(matches!(e, ArchiveError::Unavailable { .. }), "{e}");
    assert!(e.to_string().contains("package bash 1-1"), "{e}");
    assert!(
        !store.has(&h.digest(), None).unwrap(),
        "nothing unverified in the store"
    );
    let kept = partial_len(&store, &h).expect("partial kept for resuming");
    assert!(kept > 0 && kept <= 64_000, "{kept}");

    server.set(PATH, Behavior::ranged(data.clone()));
    let got = client(1)
        .download(&store, &[url], &h, 200_000, "package bash 1-1", &|_| {})
        .unwrap();
    assert_eq!(
        got,
        Fetched::Downloaded {
            bytes: 200_000 - kept,
            resumed_from: kept
        }
    );
    let last = server.requests().pop().unwrap();
    assert_eq!(
        last.header("range"),
        Some(format!("bytes={kept}-").as_str())
    );
    assert_eq!(
        std::fs::read(store.blob_path(&h.digest()).unwrap()).unwrap(),
        data
    );
}

#[test]
fn server_ignoring_range_restarts_from_zero() {
    let data = body(150_000);
    let server = EvilServer::start([(
        PATH,
        Behavior::sequence(vec![
            Behavior::truncated(data.clone(), 50_000),
            // 200 with the whole body, whatever Range said.
            Behavior::ok(data.clone()),
        ]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    client(3)
        .download(
            &store,
            &[format!("{}{PATH}", server.url())],
            &h,
            150_000,
            "p",
            &|_| {},
        )
        .unwrap();
    assert_eq!(
        std::fs::read(store.blob_path(&h.digest()).unwrap()).unwrap(),
        data
    );
}

#[test]
fn wrong_bytes_leave_nothing_behind() {
    let data = body(100_000);
    let mut evil = data.clone();
    evil[50_000] ^= 1;
    let server = EvilServer::start([(PATH, Behavior::ok(evil))]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    let e = client(2)
        .download(
            &store,
            &[format!("{}{PATH}", server.url())],
            &h,
            100_000,
            "package bash 1-1",
            &|_| {},
        )
        .unwrap_err();
    assert!(e.is_mismatch(), "{e}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("package bash 1-1: sha256 mismatch"),
        "{msg}"
    );
    assert!(msg.contains(h.as_str()), "{msg}");
    assert!(!store.has(&h.digest(), None).unwrap());
    assert_eq!(
        partial_len(&store, &h),
        None,
        "no half-written partial file"
    );
    // Nothing else either: the blob directory stays empty.
    let blobs = dir.path().join("blobs/sha256");
    assert!(!blobs.exists() || std::fs::read_dir(&blobs).unwrap().next().is_none());
}

#[test]
fn oversize_body_is_refused() {
    let data = body(10_000);
    let mut more = data.clone();
    more.extend_from_slice(b"trailing");
    let server = EvilServer::start([(PATH, Behavior::ok(more))]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    let e = client(1)
        .download(
            &store,
            &[format!("{}{PATH}", server.url())],
            &h,
            10_000,
            "p",
            &|_| {},
        )
        .unwrap_err();
    assert!(matches!(e, ArchiveError::Size { .. }), "{e}");
    assert_eq!(partial_len(&store, &h), None);
}

#[test]
fn mirrors_are_tried_in_order() {
    let data = body(20_000);
    let first = EvilServer::start([("/nothing", Behavior::ok(Vec::new()))]);
    let second = EvilServer::start([(PATH, Behavior::ok(data.clone()))]);
    let third = EvilServer::start([(PATH, Behavior::ok(data.clone()))]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let h = sha(&data);
    let urls: Vec<String> = [&first, &second, &third]
        .iter()
        .map(|s| format!("{}{PATH}", s.url()))
        .collect();
    client(2)
        .download(&store, &urls, &h, 20_000, "p", &|_| {})
        .unwrap();
    assert_eq!(first.hits(PATH), 1, "404 moves on at once");
    assert_eq!(second.hits(PATH), 1);
    assert_eq!(third.hits(PATH), 0, "later mirrors untouched");
    // Present now: no request at all.
    assert_eq!(
        client(2)
            .download(&store, &urls, &h, 20_000, "p", &|_| {})
            .unwrap(),
        Fetched::Present
    );
    assert_eq!(second.hits(PATH), 1);
}

#[test]
fn unpinned_download_is_stored_under_its_hash() {
    let data = body(5_000);
    let server = EvilServer::start([(PATH, Behavior::ok(data.clone()))]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let c = client(1);
    let (h, n) = c
        .download_unpinned(&store, &format!("{}{PATH}", server.url()), 1 << 20)
        .unwrap()
        .unwrap();
    assert_eq!((h.clone(), n), (sha(&data), 5_000));
    assert_eq!(
        std::fs::read(store.blob_path(&h.digest()).unwrap()).unwrap(),
        data
    );
    assert!(
        c.download_unpinned(&store, &format!("{}/missing", server.url()), 1 << 20)
            .unwrap()
            .is_none()
    );
    let e = c
        .download_unpinned(&store, &format!("{}{PATH}", server.url()), 100)
        .unwrap_err();
    assert!(matches!(e, ArchiveError::TooLarge { .. }), "{e}");
}
