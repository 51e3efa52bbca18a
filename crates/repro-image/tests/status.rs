//! `repro-image status` against the test world's three real rebuilderd instances (and a
//! hanging or broken fourth).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use repro_testkit::{Behavior, EvilServer};
use repro_world::World;
use serde_json::Value;

const V1: &str = "/api/v1/packages/binary";

fn rbs() -> Vec<String> {
    let w = World::up();
    (1..=3)
        .map(|n| w.get(&format!("WORLD_REBUILDER_{n}_URL")).to_string())
        .collect()
}

fn status_args<'a>(image: &'a str, rebuilders: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["status", image, "--tls-verify=false"];
    for r in rebuilders {
        a.push("-r");
        a.push(r);
    }
    a.extend_from_slice(extra);
    a
}

fn image() -> &'static str {
    World::up().get("WORLD_IMAGE_REPRO")
}

#[test]
fn world_quorum_three() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let rbs = rbs();
    let j = json(&ok(
        tmp.path(),
        &status_args(image(), &rbs, &["--quorum", "3", "--json"]),
    ));
    assert_eq!(j["schema"], "repro-image/status/v1");
    assert_eq!(j["quorum"], 3);
    for rb in j["rebuilders"].as_array().unwrap() {
        assert_eq!(rb["api"], "v1");
        assert!(rb["error"].is_null());
    }
    let fs = status_pkg(&j, "filesystem");
    assert_eq!(fs["verdict"], "REPRODUCED");
    assert_eq!(fs["good"], 3);
    let sed = status_pkg(&j, w.get("WORLD_REBUILDER_DISPUTED"));
    assert_eq!(sed["verdict"], "DISPUTED");
    let said: Vec<&Value> = sed["rebuilders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["status"])
        .collect();
    assert_eq!(said, ["GOOD", "BAD", "GOOD"]);
    let busybox = status_pkg(&j, w.get("WORLD_REBUILDER_UNKNOWN_ON_2"));
    assert_eq!(busybox["verdict"], "NOT_REPRODUCED");
    assert_eq!(busybox["rebuilders"][1]["result"], "not_listed");
    let bash = status_pkg(&j, "bash");
    assert_eq!(bash["version"], "5.2.15-2");
    assert_eq!(bash["verdict"], "NOT_REPRODUCED");
    assert_eq!(bash["rebuilders"][2]["result"], "other_version");
    assert_eq!(bash["rebuilders"][2]["versions"][0], "5.2.15-1");
    let total = j["summary"]["total"].as_u64().unwrap();
    assert!(total >= 15, "{j:#}");
    assert_eq!(j["summary"]["disputed"], 1);
    // busybox, bash, edgecases miss the quorum of 3.
    assert_eq!(j["summary"]["not_reproduced"], 3);
    assert_eq!(j["summary"]["reproduced"].as_u64().unwrap(), total - 4);
}

#[test]
fn world_quorum_two_human_output() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let rbs = rbs();
    let out = ok(tmp.path(), &status_args(image(), &rbs, &["--quorum", "2"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = |prefix: &str| -> &str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in\n{text}"))
    };
    assert!(line("[+] filesystem ").contains(" GOOD"));
    let busybox = line(&format!("[+] {} ", w.get("WORLD_REBUILDER_UNKNOWN_ON_2")));
    assert!(busybox.contains("not listed"), "{busybox}");
    assert!(line("[+] bash 5.2.15-2 GOOD").contains("has 5.2.15-1, not this one"));
    assert!(line("[!] sed 4.9-1 DISPUTED").contains(": BAD"));
    assert!(line("1/").ends_with("packages are not reproducible."));
    assert!(line("Your image is ").ends_with("% reproducible."));
    // The matrix.
    assert!(line("PACKAGE ").contains("#3"));
    let row = line("bash ");
    assert!(
        row.contains("REPRODUCED") && row.contains("has 5.2.15-1"),
        "{row}"
    );
}

#[test]
fn single_rebuilder_from_env_like_arch_repro_status() {
    let tmp = tempfile::tempdir().unwrap();
    let rbs = rbs();
    let out = bin()
        .arg("--cache")
        .arg(tmp.path())
        .args(["status", image(), "--tls-verify=false"])
        .env("REBUILDERD", &rbs[1])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l == "[-] sed 4.9-1 BAD"), "{text}");
    assert!(
        text.lines().any(|l| l == "[?] busybox 1.35.0-1 UNKWN"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("[+] filesystem ") && l.ends_with(" GOOD"))
    );
    assert!(text.contains("2/"), "{text}");
    // REBUILDERD may be a comma list too.
    let out = bin()
        .arg("--cache")
        .arg(tmp.path())
        .args(["status", image(), "--tls-verify=false", "--json"])
        .env("REBUILDERD", rbs.join(","))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(json(&out)["rebuilders"].as_array().unwrap().len(), 3);
}

#[test]
fn filter_and_min_percent() {
    let tmp = tempfile::tempdir().unwrap();
    let rbs = rbs();
    let j = json(&ok(
        tmp.path(),
        &status_args(image(), &rbs, &["--filter", "disputed", "--json"]),
    ));
    let names: Vec<&Value> = j["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    assert_eq!(names, ["sed"]);
    assert!(j["summary"]["total"].as_u64().unwrap() > 1);
    let out = run(
        tmp.path(),
        &status_args(image(), &rbs, &["--min-percent", "99.9", "--filter", "BAD"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("below --min-percent"));
    ok(
        tmp.path(),
        &status_args(image(), &rbs, &["--min-percent", "50"]),
    );
    let e = err(tmp.path(), &status_args(image(), &rbs, &["--quorum", "4"]));
    assert!(e.contains("--quorum 4"), "{e}");
}

#[test]
fn a_hanging_rebuilder_is_bounded_and_the_others_still_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let hang = EvilServer::start([(V1, Behavior::stall(br#"{"total":9,"re"#.to_vec(), 8))]);
    let mut urls = rbs();
    urls.push(hang.url());
    let t = Instant::now();
    let out = ok(
        tmp.path(),
        &status_args(
            image(),
            &urls,
            &["--json", "--timeout", "2", "--quorum", "2"],
        ),
    );
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let j = json(&out);
    let e = j["rebuilders"][3]["error"].as_str().unwrap();
    assert!(e.contains(&hang.url()) && e.contains("timed out"), "{e}");
    assert_eq!(status_pkg(&j, "filesystem")["verdict"], "REPRODUCED");
    assert_eq!(
        status_pkg(&j, "filesystem")["rebuilders"][3]["result"],
        "unavailable"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn broken_rebuilders_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_json = EvilServer::start([(
        V1,
        Behavior::respond(200, &[("Content-Type", "application/json")], "{\"total\":"),
    )]);
    let e500 = EvilServer::start([(V1, Behavior::respond(500, &[], "boom"))]);
    let urls = vec![bad_json.url(), e500.url()];
    let e = err(tmp.path(), &status_args(image(), &urls, &[]));
    assert!(e.contains("no rebuilder answered"), "{e}");
    assert!(
        e.contains(&format!("rebuilder {}", bad_json.url())) && e.contains("malformed JSON"),
        "{e}"
    );
    assert!(
        e.contains(&format!("rebuilder {}", e500.url())) && e.contains("HTTP 500"),
        "{e}"
    );
}

#[test]
fn rootfs_dir_works_too() {
    // The world's rootfs tar, unpacked: the same packages as the image.
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    extract_local_db(w.get("WORLD_ROOTFS_REPRO_TAR"), &root);
    let rbs = rbs();
    let mut args = vec!["status", "--rootfs", root.to_str().unwrap(), "--json"];
    for r in &rbs {
        args.extend(["-r", r.as_str()]);
    }
    let j = json(&ok(Path::new(&tmp.path().join("cache")), &args));
    assert_eq!(j["source"]["kind"], "rootfs");
    assert_eq!(status_pkg(&j, "sed")["verdict"], "DISPUTED");
}
