//! The bearer-token proxy behaves like Docker Hub and skopeo can pull and push through it.

use repro_testkit::{
    LayerSpec, Registry, TestImage, TokenProxy, http, skopeo, skopeo_copy_layout_to,
    skopeo_copy_to_registry, skopeo_inspect_raw, try_skopeo,
};

fn image(dir: &std::path::Path, text: &str) -> TestImage {
    TestImage::build(dir, &[LayerSpec::new().file("data.txt", text, 0o644)])
}

fn challenge_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = challenge.find(&key)? + key.len();
    let end = challenge[start..].find('"')? + start;
    Some(&challenge[start..end])
}

#[test]
fn challenges_and_tokens_like_docker_hub() {
    let registry = Registry::start();
    let proxy = TokenProxy::start(&registry);

    let base = http::get(&proxy.host(), "/v2/").unwrap();
    assert_eq!(base.status, 401);
    let c = base.header("www-authenticate").unwrap().to_string();
    assert!(c.starts_with("Bearer "), "{c}");
    assert_eq!(challenge_param(&c, "realm"), Some(proxy.realm().as_str()));
    assert_eq!(challenge_param(&c, "service"), Some("testkit"));
    assert_eq!(challenge_param(&c, "scope"), None);

    let get = http::get(&proxy.host(), "/v2/library/alpine/manifests/latest").unwrap();
    assert_eq!(get.status, 401);
    let c = get.header("www-authenticate").unwrap().to_string();
    assert_eq!(
        challenge_param(&c, "scope"),
        Some("repository:library/alpine:pull")
    );

    let post = http::request(&proxy.host(), "POST", "/v2/a/b/blobs/uploads/", &[], b"").unwrap();
    assert_eq!(post.status, 401);
    let c = post.header("www-authenticate").unwrap().to_string();
    assert_eq!(
        challenge_param(&c, "scope"),
        Some("repository:a/b:pull,push")
    );

    // Get a pull token for library/alpine.
    let tok = http::get(
        &proxy.host(),
        "/token?service=testkit&scope=repository%3Alibrary%2Falpine%3Apull",
    )
    .unwrap();
    assert_eq!(tok.status, 200, "{}", tok.text());
    let body: serde_json::Value = serde_json::from_slice(&tok.body).unwrap();
    let token = body["token"].as_str().unwrap().to_string();
    assert_eq!(body["access_token"].as_str(), Some(token.as_str()));
    assert_eq!(body["expires_in"].as_u64(), Some(300));
    assert_eq!(
        proxy.requested_scopes(),
        vec!["repository:library/alpine:pull"]
    );

    let bearer = format!("Bearer {token}");
    // Granted scope: proxied to the registry (which does not know the repo: 404).
    let ok = http::request(
        &proxy.host(),
        "GET",
        "/v2/library/alpine/manifests/latest",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(ok.status, 404, "{}", ok.text());
    // The token is not good for another repository or for pushing.
    let other = http::request(
        &proxy.host(),
        "GET",
        "/v2/other/manifests/latest",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(other.status, 401);
    let c = other.header("www-authenticate").unwrap().to_string();
    assert!(c.contains("error=\"insufficient_scope\""), "{c}");
    let push = http::request(
        &proxy.host(),
        "POST",
        "/v2/library/alpine/blobs/uploads/",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(push.status, 401);
    // /v2/ with any valid token is fine.
    let base = http::request(
        &proxy.host(),
        "GET",
        "/v2/",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(base.status, 200);
    // Revoked tokens stop working.
    proxy.revoke_all_tokens();
    let base = http::request(
        &proxy.host(),
        "GET",
        "/v2/",
        &[("Authorization", &bearer)],
        b"",
    )
    .unwrap();
    assert_eq!(base.status, 401);
    // Unknown tokens never worked.
    let bogus = http::request(
        &proxy.host(),
        "GET",
        "/v2/",
        &[("Authorization", "Bearer nope")],
        b"",
    )
    .unwrap();
    assert_eq!(bogus.status, 401);
}

#[test]
fn skopeo_pulls_and_pushes_through_the_proxy_with_a_scope_per_repository() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let one = image(&tmp.path().join("one"), "one");
    let two = image(&tmp.path().join("two"), "two");
    // Seed the registry directly.
    skopeo_copy_to_registry(&one.layout, &registry, "team/one:latest");

    let proxy = TokenProxy::start(&registry);
    // Pull (inspect and a full copy) through the proxy.
    assert_eq!(
        skopeo_inspect_raw(&proxy.host(), "team/one:latest", None),
        one.manifest_bytes
    );
    let pulled = tmp.path().join("pulled");
    let src = proxy.docker_ref("team/one:latest");
    let dst = format!("oci:{}:latest", pulled.display());
    skopeo(&[
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--preserve-digests",
        &src,
        &dst,
    ]);
    for layer in &one.layers {
        let got = std::fs::read(repro_testkit::image::blob_path(&pulled, &layer.digest)).unwrap();
        assert_eq!(got, std::fs::read(one.blob_path(&layer.digest)).unwrap());
    }

    // Push a second repository through the proxy: uploads (POST, PATCH/PUT with Location
    // rewritten to the proxy) must work with a push token.
    skopeo_copy_layout_to(&two.layout, &proxy.host(), "team/two:latest", None);
    assert_eq!(
        skopeo_inspect_raw(&registry.host(), "team/two:latest", None),
        two.manifest_bytes
    );

    let scopes = proxy.requested_scopes();
    assert!(
        scopes.iter().any(|s| s == "repository:team/one:pull"),
        "{scopes:?}"
    );
    assert!(
        scopes.iter().any(|s| s == "repository:team/two:pull,push"),
        "{scopes:?}"
    );
    assert!(
        scopes.iter().all(|s| s.starts_with("repository:team/one:") || s.starts_with("repository:team/two:")),
        "{scopes:?}"
    );
    // Every proxied request that was let through carried the right repository's token.
    let proxied = proxy.proxied_requests();
    assert!(
        proxied.iter().any(|r| r.method == "PUT" && r.status == 201),
        "{proxied:#?}"
    );
    assert!(
        proxied.iter().any(|r| r.status == 401),
        "the first request of each repository is challenged"
    );
}

#[test]
fn token_endpoint_can_require_basic_auth() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = image(tmp.path(), "secret");
    skopeo_copy_to_registry(&img.layout, &registry, "priv/img:latest");
    let proxy = TokenProxy::start_with_credentials(&registry, "bob", "hunter2");

    let anon = http::get(
        &proxy.host(),
        "/token?service=testkit&scope=repository:priv/img:pull",
    )
    .unwrap();
    assert_eq!(anon.status, 401);
    assert!(
        anon.header("www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );

    let image_ref = proxy.docker_ref("priv/img:latest");
    let refused = try_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        &image_ref,
    ]);
    assert!(!refused.status.success());
    let wrong = try_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "bob:nope",
        &image_ref,
    ]);
    assert!(!wrong.status.success());

    assert_eq!(
        skopeo_inspect_raw(&proxy.host(), "priv/img:latest", Some("bob:hunter2")),
        img.manifest_bytes
    );
    let reqs = proxy.token_requests();
    assert!(
        reqs.iter()
            .any(|r| r.granted && r.user.as_deref() == Some("bob")),
        "{reqs:#?}"
    );
    assert!(
        reqs.iter()
            .filter(|r| r.granted)
            .all(|r| r.user.as_deref() == Some("bob"))
    );
}
