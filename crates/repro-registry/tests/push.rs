//! Pushes against Debian's real docker-registry: monolithic and chunked uploads, mounts,
//! manifests with their exact bytes.

use std::io::Read;
use std::sync::Arc;

use repro_oci::DockerRef;
use repro_oci::digest::sha256_of;
use repro_registry::{Client, ClientOptions};
use repro_testkit::{Registry, TokenProxy};

fn client() -> Arc<Client> {
    Arc::new(Client::new(ClientOptions {
        insecure: true,
        auth_files: vec![],
        ..ClientOptions::default()
    }))
}

fn reference(host: &str, repo: &str) -> DockerRef {
    DockerRef::parse(&format!("{host}/{repo}")).unwrap()
}

fn pull(c: &Arc<Client>, r: &DockerRef, d: &repro_oci::Digest) -> Vec<u8> {
    let (_, mut body) = c.get_blob(r, d).unwrap();
    let mut v = Vec::new();
    body.read_to_end(&mut v).unwrap();
    v
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn monolithic_and_chunked_uploads_round_trip() {
    let reg = Registry::start();
    let c = client();
    let r = reference(&reg.host(), "push/test");
    for (bytes, chunk) in [(data(100_000), None), (data(250_001), Some(64 * 1024))] {
        let d = sha256_of(&bytes);
        assert_eq!(c.blob_exists(&r, &d).unwrap(), None);
        let mut open = || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn Read>);
        c.push_blob(&r, &d, bytes.len() as u64, &mut open, chunk)
            .unwrap();
        assert_eq!(c.blob_exists(&r, &d).unwrap(), Some(bytes.len() as u64));
        assert_eq!(pull(&c, &r, &d), bytes);
    }
}

#[test]
fn the_registry_refuses_a_blob_that_does_not_match_its_digest() {
    let reg = Registry::start();
    let c = client();
    let r = reference(&reg.host(), "push/test");
    let bytes = data(5000);
    let wrong = sha256_of(b"something else");
    let mut open = || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn Read>);
    let e = c
        .push_blob(&r, &wrong, bytes.len() as u64, &mut open, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("400") || e.to_lowercase().contains("digest"),
        "{e}"
    );
    assert_eq!(c.blob_exists(&r, &wrong).unwrap(), None);
}

#[test]
fn cross_repository_mount() {
    let reg = Registry::start();
    let c = client();
    let a = reference(&reg.host(), "mount/a");
    let b = reference(&reg.host(), "mount/b");
    let bytes = data(30_000);
    let d = sha256_of(&bytes);
    let mut open = || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn Read>);
    c.push_blob(&a, &d, bytes.len() as u64, &mut open, None)
        .unwrap();
    assert_eq!(c.blob_exists(&b, &d).unwrap(), None);
    assert!(c.mount_blob(&b, &d, "mount/a").unwrap());
    assert_eq!(pull(&c, &b, &d), bytes);
}

#[test]
fn manifests_keep_their_exact_bytes() {
    let reg = Registry::start();
    let c = client();
    let r = reference(&reg.host(), "push/manifest");
    let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let cd = sha256_of(cfg);
    let mut open = || Ok(Box::new(std::io::Cursor::new(cfg.to_vec())) as Box<dyn Read>);
    c.push_blob(&r, &cd, cfg.len() as u64, &mut open, None)
        .unwrap();
    // Unusual but valid formatting: a re-serializing client would change the digest.
    let manifest = format!(
        "{{\n   \"schemaVersion\" : 2,\n \"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"{cd}\",\"size\":{}}},\"layers\":[]}}\n",
        cfg.len()
    );
    let d = c
        .put_manifest(
            &r,
            "v1",
            manifest.as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .unwrap();
    assert_eq!(d, sha256_of(manifest.as_bytes()));
    let got = c.get_manifest(&r, "v1").unwrap();
    assert_eq!(got.bytes, manifest.as_bytes());
    assert_eq!(got.digest, d);
    assert_eq!(c.head_manifest(&r, "v1").unwrap(), Some(d));
}

#[test]
fn bearer_tokens_are_cached_per_scope() {
    let reg = Registry::start();
    let proxy = TokenProxy::start(&reg);
    let c = client();
    let r = reference(&proxy.host(), "tok/img");
    let bytes = data(1000);
    let d = sha256_of(&bytes);
    let mut open = || Ok(Box::new(std::io::Cursor::new(bytes.clone())) as Box<dyn Read>);
    c.push_blob(&r, &d, bytes.len() as u64, &mut open, None)
        .unwrap();
    assert_eq!(pull(&c, &r, &d), bytes);
    assert_eq!(pull(&c, &r, &d), bytes);
    let reqs = proxy.token_requests();
    // One token for push (which covers pull requests made under the push scope) and one
    // for pull; not one per request.
    assert!(reqs.len() <= 2, "{reqs:?}");
    assert!(reqs.iter().all(|t| t.granted));
}
