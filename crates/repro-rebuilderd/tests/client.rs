//! The client against the test world's three real rebuilderd 0.28 instances, and against
//! misbehaving servers (v1 absent, malformed JSON, HTTP 500, a hang).

use std::time::{Duration, Instant};

use repro_rebuilderd::quorum::{self, Index, Pkg, Said, Verdict};
use repro_rebuilderd::{Api, Client, Error, Filter, Options, Status, list_all};
use repro_testkit::{Behavior, EvilServer};
use repro_world::World;

fn rb(n: u32) -> String {
    World::up()
        .get(&format!("WORLD_REBUILDER_{n}_URL"))
        .to_string()
}

fn quick() -> Options {
    Options {
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        ..Options::default()
    }
}

fn json(body: &str) -> Behavior {
    Behavior::respond(200, &[("Content-Type", "application/json")], body)
}

const V1: &str = "/api/v1/packages/binary";
const V0: &str = "/api/v0/pkgs/list";

#[test]
fn world_v1_listing_is_exact_per_instance() {
    let all = list_all(&[rb(1), rb(2), rb(3)], &quick(), &Filter::default());
    let l: Vec<_> = all.into_iter().map(|l| l.unwrap()).collect();
    for x in &l {
        assert_eq!(x.api, Api::V1);
        assert!(x.records.len() >= 10, "{}: {:?}", x.rebuilder, x.records);
    }
    let find = |i: usize, name: &str| -> Vec<(String, Status)> {
        l[i].records
            .iter()
            .filter(|r| r.name == name)
            .map(|r| (r.version.clone(), r.status))
            .collect()
    };
    assert_eq!(find(0, "bash"), vec![("5.2.15-2".into(), Status::Good)]);
    assert_eq!(find(2, "bash"), vec![("5.2.15-1".into(), Status::Good)]);
    assert_eq!(find(1, "sed"), vec![("4.9-1".into(), Status::Bad)]);
    assert!(find(1, "busybox").is_empty());
    let good = l[0]
        .records
        .iter()
        .find(|r| r.name == "filesystem")
        .unwrap();
    assert!(good.has_attestation && good.build_id.is_some() && good.artifact_id.is_some());

    // Exact matching and quorum over the real listings.
    let idx: Vec<(String, Result<Index, String>)> = l
        .into_iter()
        .map(|x| (x.rebuilder.clone(), Ok(Index::new(x.records))))
        .collect();
    let bash = Pkg::new("bash", "5.2.15-2", "x86_64");
    let st = quorum::evaluate(std::slice::from_ref(&bash), &idx, 3);
    assert_eq!(st[0].verdict, Verdict::NotReproduced);
    assert_eq!(
        st[0].rebuilders[2].said.describe(),
        "has 5.2.15-1, not this one"
    );
    assert_eq!(
        quorum::evaluate(&[bash], &idx, 2)[0].verdict,
        Verdict::Reproduced
    );
}

#[test]
fn world_v1_filters_and_paging() {
    let c = Client::new(&rb(1), quick()).unwrap();
    let all = c.list_v1(&Filter::default()).unwrap();
    // Pages of 3 (by id, `after` = the last id) give the same records as one page.
    let paged = Client::new(
        &rb(1),
        Options {
            page_size: 3,
            ..quick()
        },
    )
    .unwrap()
    .list_v1(&Filter::default())
    .unwrap();
    assert_eq!(paged, all);
    let only = c
        .list_v1(&Filter {
            name: Some("sed".into()),
            distribution: Some("archlinux".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].name, "sed");
    let none = c
        .list(&Filter {
            distribution: Some("debian".into()),
            ..Filter::default()
        })
        .unwrap();
    assert!(none.records.is_empty());
}

#[test]
fn v0_fallback_when_v1_is_404() {
    // Real v0 JSON, captured from a world rebuilder, served by a server without v1.
    let real_v0 = ureq::get(format!("{}{V0}", rb(3)))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    let server = EvilServer::start([(V0, json(&real_v0))]);
    let l = Client::new(&server.url(), quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap();
    assert_eq!(l.api, Api::V0);
    assert_eq!(server.hits(V1), 1);
    assert_eq!(server.hits(V0), 1);
    let bash = Index::new(l.records.clone()).said(&Pkg::new("bash", "5.2.15-2", "x86_64"));
    assert_eq!(
        bash,
        Said::OtherVersion {
            versions: vec!["5.2.15-1".into()]
        }
    );
    // Same records (but for the v1-only fields) as rb3's v1 listing.
    let v1 = Client::new(&rb(3), quick())
        .unwrap()
        .list_v1(&Filter::default())
        .unwrap();
    let key = |r: &repro_rebuilderd::Record| {
        (
            r.name.clone(),
            r.version.clone(),
            r.architecture.clone(),
            r.status,
            r.has_attestation,
        )
    };
    let mut a: Vec<_> = l.records.iter().map(key).collect();
    let mut b: Vec<_> = v1.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn v1_paging_over_a_fake_server() {
    let rec = |id: i64, name: &str| {
        format!(
            r#"{{"id":{id},"name":"{name}","version":"1-1","distribution":"archlinux","release":null,"component":"core","architecture":"any","url":null,"status":"GOOD","build_id":{id},"artifact_id":{id},"diffoscope_log_id":null,"attestation_log_id":null,"last_seen":"x","seen_in_last_sync":true}}"#
        )
    };
    let page1 = format!(
        r#"{{"total":3,"records":[{},{}]}}"#,
        rec(1, "a"),
        rec(2, "b")
    );
    let page2 = format!(r#"{{"total":3,"records":[{}]}}"#, rec(3, "c"));
    let server = EvilServer::start([(V1, Behavior::sequence(vec![json(&page1), json(&page2)]))]);
    let l = Client::new(
        &server.url(),
        Options {
            page_size: 2,
            ..quick()
        },
    )
    .unwrap()
    .list(&Filter::default())
    .unwrap();
    let names: Vec<_> = l.records.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let targets: Vec<String> = server.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        [format!("{V1}?limit=2"), format!("{V1}?limit=2&after=2")]
    );
}

#[test]
fn malformed_json_is_a_typed_error_naming_the_rebuilder() {
    let server = EvilServer::start([(V1, json(r#"{"total":1,"records":[{"id":1,"name":"#))]);
    let e = Client::new(&server.url(), quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
    assert_eq!(e.rebuilder(), server.url());
    let msg = e.to_string();
    assert!(
        msg.contains(&server.url()) && msg.contains("malformed JSON"),
        "{msg}"
    );

    // A status word rebuilderd never sends is malformed too.
    let server = EvilServer::start([(
        V1,
        json(
            r#"{"total":1,"records":[{"id":1,"name":"a","version":"1","architecture":"any","status":"MAYBE"}]}"#,
        ),
    )]);
    let e = Client::new(&server.url(), quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap_err();
    assert!(matches!(e, Error::Malformed { .. }), "{e:?}");
}

#[test]
fn http_500_is_a_typed_error_and_not_a_fallback() {
    let server = EvilServer::start([
        (
            V1,
            Behavior::respond(500, &[("Content-Type", "text/plain")], "database is locked"),
        ),
        (V0, json("[]")),
    ]);
    let e = Client::new(&server.url(), quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap_err();
    match &e {
        Error::Http { status, body, .. } => {
            assert_eq!(*status, 500);
            assert!(body.contains("database is locked"));
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains(&server.url()), "{e}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(server.hits(V0), 0, "only a 404 falls back to v0");
    // Both APIs missing: the v0 404 is the error.
    let empty = EvilServer::start(Vec::<(String, Behavior)>::new());
    let e = Client::new(&empty.url(), quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap_err();
    assert!(
        matches!(e, Error::Http { status: 404, ref url, .. } if url.contains(V0)),
        "{e:?}"
    );
}

#[test]
fn a_hanging_rebuilder_times_out_while_the_others_answer() {
    let hang = EvilServer::start([(V1, Behavior::stall(br#"{"total":20,"rec"#.to_vec(), 10))]);
    let urls = vec![rb(1), hang.url(), rb(3)];
    let t = Instant::now();
    let all = list_all(&urls, &quick(), &Filter::default());
    let took = t.elapsed();
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(all[0].as_ref().unwrap().records.len() >= 10);
    assert!(all[2].as_ref().unwrap().records.len() >= 10);
    let e = all[1].as_ref().unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains(&hang.url()), "{e}");
}

#[test]
fn unreachable_rebuilder_is_a_transport_error() {
    let port = repro_testkit::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let e = Client::new(&url, quick())
        .unwrap()
        .list(&Filter::default())
        .unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.to_string().contains(&url));
}

#[test]
fn listings_are_revalidated_with_if_modified_since() {
    let lm = "Tue, 24 Nov 2026 10:00:00 GMT";
    let page = r#"{"total":1,"records":[{"id":1,"name":"a","version":"1-1","architecture":"any","status":"GOOD","build_id":3,"artifact_id":3,"attestation_log_id":3}]}"#;
    let server = EvilServer::start([(
        V1,
        Behavior::sequence(vec![
            json(page).with_header("Last-Modified", lm),
            Behavior::respond(304, &[("Last-Modified", lm)], ""),
        ]),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let first = Client::new(&server.url(), quick())
        .unwrap()
        .with_cache(dir.path());
    let l1 = first.list(&Filter::default()).unwrap();
    assert_eq!(first.stats().not_modified, 0);
    // A new client (a new run) sends the validator and takes the cached body on 304.
    let second = Client::new(&server.url(), quick())
        .unwrap()
        .with_cache(dir.path());
    let l2 = second.list(&Filter::default()).unwrap();
    assert_eq!(l1.records, l2.records);
    let s = second.stats();
    assert_eq!((s.requests, s.not_modified, s.bytes), (1, 1, 0), "{s:?}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("If-Modified-Since"), None);
    assert_eq!(reqs[1].header("If-Modified-Since"), Some(lm));
}

#[test]
fn without_validators_a_listing_is_fetched_again_and_attestations_are_cached() {
    // rebuilderd itself sends no Last-Modified: the listing is asked for every run, while
    // a finished build's attestation comes from the cache.
    let dir = tempfile::tempdir().unwrap();
    let url = rb(1);
    let c = Client::new(&url, quick()).unwrap().with_cache(dir.path());
    let l = c.list(&Filter::default()).unwrap();
    let good = l
        .records
        .iter()
        .find(|r| r.name == "filesystem" && r.status == Status::Good)
        .unwrap();
    let a1 = c.attestation(good, l.api).unwrap().unwrap();
    let before = c.stats();
    let c2 = Client::new(&url, quick()).unwrap().with_cache(dir.path());
    let l2 = c2.list(&Filter::default()).unwrap();
    let a2 = c2.attestation(good, l2.api).unwrap().unwrap();
    assert_eq!(a1, a2);
    let s = c2.stats();
    assert_eq!(s.cache_hits, 1, "{s:?}");
    assert_eq!(s.requests, 1, "only the listing was asked for: {s:?}");
    assert!(before.requests >= 2);
    // The keys the rebuilder serves are the world's saved PEM.
    let keys = c2.public_keys().unwrap();
    let pem = std::fs::read_to_string(World::up().get("WORLD_REBUILDER_1_PUBKEY")).unwrap();
    let want = repro_rebuilderd::attestation::PublicKey::from_pem(&pem).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].keyid(), want.keyid());
}

#[test]
fn server_errors_are_retried_with_backoff_then_reported() {
    let page = r#"{"total":0,"records":[]}"#;
    let server = EvilServer::start([(V1, Behavior::unavailable(2, json(page)))]);
    let c = Client::new(&server.url(), quick()).unwrap();
    let l = c.list(&Filter::default()).unwrap();
    assert!(l.records.is_empty());
    assert_eq!(c.stats().requests, 3);
    // Always failing: the last error is reported after the configured attempts.
    let server = EvilServer::start([(V1, Behavior::respond(503, &[], "down"))]);
    let c = Client::new(
        &server.url(),
        Options {
            attempts: 2,
            ..quick()
        },
    )
    .unwrap();
    let e = c.list(&Filter::default()).unwrap_err();
    assert!(matches!(e, Error::Http { status: 503, .. }), "{e:?}");
    assert_eq!(server.hits(V1), 2);
}

#[test]
fn public_keys_in_both_shapes_and_v0() {
    let pem = "-----BEGIN PUBLIC KEY-----\nMCwwBwYDK2VwBQADIQD7Z+bUcy6vE5A5wngcT6NvJiOa4ryGtKiElsBX3cS6ig==\n-----END PUBLIC KEY-----\n";
    let spec_shape = serde_json::json!([{ "current": pem }]).to_string();
    let s1 = EvilServer::start([("/api/v1/meta/public-keys", json(&spec_shape))]);
    assert_eq!(
        Client::new(&s1.url(), quick())
            .unwrap()
            .public_keys()
            .unwrap()
            .len(),
        1
    );
    let v0 = serde_json::json!({ "current": [pem] }).to_string();
    let s0 = EvilServer::start([("/api/v0/public-keys", json(&v0))]);
    assert_eq!(
        Client::new(&s0.url(), quick())
            .unwrap()
            .public_keys()
            .unwrap()
            .len(),
        1
    );
    let bad = EvilServer::start([("/api/v1/meta/public-keys", json(r#"{"current":["nope"]}"#))]);
    let e = Client::new(&bad.url(), quick())
        .unwrap()
        .public_keys()
        .unwrap_err();
    assert!(
        matches!(e, Error::Malformed { .. }) && e.to_string().contains("public key"),
        "{e}"
    );
}
