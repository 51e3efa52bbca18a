//! `repro-image status` with attestations, keys and configuration, against the test world's
//! three real rebuilderd instances, and against fake rebuilders that lie (forged links,
//! links for other files, a changed key).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use repro_testkit::{Behavior, EvilServer};
use repro_world::World;
use serde_json::Value;

fn rb(n: u32) -> String {
    World::up()
        .get(&format!("WORLD_REBUILDER_{n}_URL"))
        .to_string()
}

fn image() -> &'static str {
    World::up().get("WORLD_IMAGE_REPRO")
}

/// The sync dbs of the snapshot the reference image was built from.
fn sync_dbs() -> Vec<PathBuf> {
    let w = World::up();
    let snap = w.get("WORLD_IMAGE_SNAPSHOT");
    let dir = Path::new(w.get("WORLD_ARCHIVE_DIR"))
        .join("repos")
        .join(snap);
    let dbs: Vec<PathBuf> = ["core", "extra"]
        .iter()
        .map(|r| dir.join(format!("{r}/os/x86_64/{r}.db")))
        .filter(|p| p.is_file())
        .collect();
    assert!(!dbs.is_empty(), "no sync db under {}", dir.display());
    dbs
}

fn args<'a>(urls: &'a [String], keys: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "status",
        image(),
        "--tls-verify=false",
        "--known-keys",
        keys.to_str().unwrap(),
    ];
    for u in urls {
        a.extend(["-r", u.as_str()]);
    }
    a.extend_from_slice(extra);
    a
}

fn curl(url: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sSf", "--max-time", "30", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {out:?}");
    out.stdout
}

/// rb1's record for `name` (exact JSON as served) and its attestation bytes.
fn rb1_record_and_link(name: &str) -> (Value, Vec<u8>) {
    let list: Value = serde_json::from_slice(&curl(&format!(
        "{}/api/v1/packages/binary?name={name}",
        rb(1)
    )))
    .unwrap();
    let rec = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["status"] == "GOOD")
        .unwrap_or_else(|| panic!("no GOOD {name} on rb1: {list}"))
        .clone();
    let link = curl(&format!(
        "{}/api/v1/builds/{}/artifacts/{}/attestation",
        rb(1),
        rec["build_id"],
        rec["artifact_id"]
    ));
    (rec, link)
}

#[test]
fn world_attestations_verified_against_the_archive_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    let urls = vec![rb(1), rb(2), rb(3)];
    let dbs = sync_dbs();
    let mut extra = vec!["--json", "--require-attestation"];
    for d in &dbs {
        extra.extend(["--sync-db", d.to_str().unwrap()]);
    }
    let j = json(&ok(tmp.path(), &args(&urls, &keys, &extra)));
    let a = &j["attestations"];
    // Every GOOD exact answer came with a link signed by its rebuilder, naming the archive's
    // file with the archive's sha256.
    let goods: usize = j["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["rebuilders"].as_array().unwrap())
        .filter(|r| r["status"] == "GOOD")
        .count();
    assert!(goods > 40, "{goods}");
    assert_eq!(a["verified"].as_u64().unwrap() as usize, goods, "{a}");
    assert_eq!(a["hash_matched"], a["verified"], "{a}");
    assert_eq!(a["invalid"], 0);
    assert_eq!(a["missing"], 0);
    let bash = status_pkg(&j, "bash");
    assert_eq!(bash["verdict"], "REPRODUCED");
    let att = &bash["rebuilders"][0]["attestation"];
    assert_eq!(att["state"], "verified");
    assert_eq!(att["product_check"], "matched");
    assert_eq!(att["product"], "bash-5.2.15-2-x86_64.pkg.tar.zst");
    assert_eq!(bash["rebuilders"][0]["counts"], true);
    assert_eq!(status_pkg(&j, "sed")["verdict"], "DISPUTED");
    // Keys were learned on first use, then are known.
    for rb in j["rebuilders"].as_array().unwrap() {
        assert_eq!(rb["key_trust"], "first_use", "{rb}");
        assert_eq!(rb["keyids"].as_array().unwrap().len(), 1);
    }
    let remembered: Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    assert_eq!(remembered["rebuilders"].as_object().unwrap().len(), 3);
    let j2 = json(&ok(tmp.path(), &args(&urls, &keys, &extra)));
    for rb in j2["rebuilders"].as_array().unwrap() {
        assert_eq!(rb["key_trust"], "known", "{rb}");
        // Warm: attestations came from the cache, not the network.
        assert!(rb["stats"]["cache_hits"].as_u64().unwrap() >= 15, "{rb}");
    }
    assert_eq!(j2["attestations"], j["attestations"]);

    // Without a sync db --require-attestation counts no GOOD: nothing is reproduced.
    let j = json(&ok(
        tmp.path(),
        &args(&urls, &keys, &["--json", "--require-attestation"]),
    ));
    assert_eq!(j["summary"]["reproduced"], 0, "{}", j["summary"]);
    assert!(
        j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("no sync db")),
        "{}",
        j["warnings"]
    );
    // …and without --require-attestation they count, product named but unchecked.
    let j = json(&ok(tmp.path(), &args(&urls, &keys, &["--json"])));
    assert_eq!(
        status_pkg(&j, "bash")["rebuilders"][0]["attestation"]["product_check"],
        "unchecked"
    );
    assert_eq!(status_pkg(&j, "bash")["verdict"], "REPRODUCED");
}

#[test]
fn a_changed_key_is_an_error_naming_the_rebuilder_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    let urls = vec![rb(1)];
    ok(tmp.path(), &args(&urls, &keys, &[]));
    // Remember rb2's key as rb1's: rb1 now "changed" its key.
    let mut k: Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let urls2 = vec![rb(2)];
    let keys2 = tmp.path().join("known2.json");
    ok(tmp.path(), &args(&urls2, &keys2, &[]));
    let k2: Value = serde_json::from_slice(&std::fs::read(&keys2).unwrap()).unwrap();
    k["rebuilders"][rb(1)] = k2["rebuilders"][rb(2)].clone();
    std::fs::write(&keys, serde_json::to_vec(&k).unwrap()).unwrap();
    let before = std::fs::read(&keys).unwrap();
    let e = err(tmp.path(), &args(&urls, &keys, &[]));
    assert!(
        e.contains(&rb(1)) && e.contains("signing key changed"),
        "{e}"
    );
    assert!(e.contains(keys.to_str().unwrap()), "{e}");
    assert_eq!(
        std::fs::read(&keys).unwrap(),
        before,
        "the known keys were rewritten"
    );
}

#[test]
fn pinned_keys_from_the_config_win() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    // rb1 pinned to its own key, rb2 pinned to rb3's key (wrong), rb3 not pinned; the
    // rebuilders come from the config (no -r).
    let conf = tmp.path().join("rebuilders.toml");
    std::fs::write(
        &conf,
        format!(
            "quorum = 2\n[[rebuilder]]\nurl = \"{}\"\nkey_files = [\"{}\"]\n\
             [[rebuilder]]\nurl = \"{}/\"\nkey_files = [\"{}\"]\n[[rebuilder]]\nurl = \"{}\"\n",
            rb(1),
            w.get("WORLD_REBUILDER_1_PUBKEY"),
            rb(2),
            w.get("WORLD_REBUILDER_3_PUBKEY"),
            rb(3)
        ),
    )
    .unwrap();
    let out = run(
        tmp.path(),
        &[
            "status",
            image(),
            "--tls-verify=false",
            "--known-keys",
            keys.to_str().unwrap(),
            "--config",
            conf.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out);
    assert_eq!(j["quorum"], 2);
    let rbs = j["rebuilders"].as_array().unwrap();
    assert_eq!(rbs.len(), 3);
    assert_eq!(rbs[0]["key_trust"], "pinned");
    assert_eq!(rbs[1]["key_trust"], "pinned");
    assert_eq!(rbs[2]["key_trust"], "first_use");
    // Every rb2 GOOD is now badly attested and does not count.
    let fs = status_pkg(&j, "filesystem");
    assert_eq!(fs["rebuilders"][0]["attestation"]["state"], "verified");
    let bad = &fs["rebuilders"][1];
    assert_eq!(bad["attestation"]["state"], "invalid", "{bad}");
    assert!(
        bad["attestation"]["reason"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{bad}"
    );
    assert_eq!(bad["counts"], false);
    assert_eq!(fs["good"], 2);
    // busybox: GOOD on rb1 and rb3 (rb2 lacks it): still 2 of quorum 2.
    assert_eq!(status_pkg(&j, "busybox")["verdict"], "REPRODUCED");
    // bash: rb1 GOOD, rb2 GOOD but badly attested, rb3 has another version: 1 < 2.
    assert_eq!(status_pkg(&j, "bash")["verdict"], "NOT_REPRODUCED");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid attestation"), "{stderr}");
    // Only rb3's key was learned.
    let remembered: Value = serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let learned: Vec<&String> = remembered["rebuilders"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(learned, [&rb(3)]);
}

/// A fake rebuilder serving `records` (v1 JSON), `key_pem` as its key and `links`
/// (build id → link bytes).
fn fake_rebuilder(records: Vec<Value>, key_pem: &str, links: Vec<(i64, Vec<u8>)>) -> EvilServer {
    let mut routes: Vec<(String, Behavior)> = vec![
        (
            "/api/v1/packages/binary".into(),
            Behavior::respond(
                200,
                &[("Content-Type", "application/json")],
                serde_json::to_vec(
                    &serde_json::json!({"total": records.len(), "records": records}),
                )
                .unwrap(),
            ),
        ),
        (
            "/api/v1/meta/public-keys".into(),
            Behavior::respond(
                200,
                &[("Content-Type", "application/json")],
                serde_json::to_vec(&serde_json::json!({ "current": [key_pem] })).unwrap(),
            ),
        ),
    ];
    for (id, link) in links {
        routes.push((
            format!("/api/v1/builds/{id}/artifacts/{id}/attestation"),
            Behavior::respond(200, &[("Content-Type", "application/json")], link),
        ));
    }
    EvilServer::start(routes)
}

fn record(from: &Value, id: i64) -> Value {
    let mut r = from.clone();
    r["id"] = id.into();
    r["build_id"] = id.into();
    r["artifact_id"] = id.into();
    r["attestation_log_id"] = id.into();
    r
}

#[test]
fn forged_and_misdirected_attestations_do_not_count() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    let (bash, bash_link) = rb1_record_and_link("bash");
    let (fs, _) = rb1_record_and_link("filesystem");
    let (acl, _) = rb1_record_and_link("acl");
    let rb1_key = std::fs::read_to_string(w.get("WORLD_REBUILDER_1_PUBKEY")).unwrap();
    let rb2_key = std::fs::read_to_string(w.get("WORLD_REBUILDER_2_PUBKEY")).unwrap();
    // A rebuilder claiming rb2's key but serving rb1's links: forged (wrong key). Another
    // that serves rb1's key and rb1's real links, but bash's link for filesystem and none
    // for acl.
    let forger = fake_rebuilder(
        vec![record(&bash, 1)],
        &rb2_key,
        vec![(1, bash_link.clone())],
    );
    let mixer = fake_rebuilder(
        vec![record(&bash, 1), record(&fs, 2), record(&acl, 3)],
        &rb1_key,
        vec![(1, bash_link.clone()), (2, bash_link.clone())],
    );
    let urls = vec![forger.url(), mixer.url()];
    let j = json(&ok(tmp.path(), &args(&urls, &keys, &["--json"])));
    let b = status_pkg(&j, "bash");
    assert_eq!(b["rebuilders"][0]["attestation"]["state"], "invalid", "{b}");
    assert_eq!(b["rebuilders"][0]["counts"], false);
    assert_eq!(
        b["rebuilders"][1]["attestation"]["state"], "verified",
        "{b}"
    );
    assert_eq!(b["good"], 1);
    let f = status_pkg(&j, "filesystem");
    let reason = f["rebuilders"][1]["attestation"]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("attests bash-5.2.15-2")
            && reason.contains(&format!(
                "not filesystem-{}",
                fs["version"].as_str().unwrap()
            )),
        "{reason}"
    );
    assert_eq!(f["verdict"], "UNKNOWN", "{f}");
    let a = status_pkg(&j, "acl");
    assert_eq!(a["rebuilders"][1]["attestation"]["state"], "missing", "{a}");
    // Not required: a missing attestation still counts; required: it does not.
    assert_eq!(a["verdict"], "REPRODUCED");
    let j = json(&ok(
        tmp.path(),
        &args(&urls, &keys, &["--json", "--require-attestation"]),
    ));
    assert_eq!(status_pkg(&j, "acl")["verdict"], "UNKNOWN");

    // A sync db whose sha256 for bash differs from what the link attests.
    let dbdir = tmp.path().join("db");
    std::fs::create_dir_all(&dbdir).unwrap();
    let core = sync_dbs()
        .into_iter()
        .find(|p| p.ends_with("core.db"))
        .unwrap();
    let st = Command::new("bsdtar")
        .arg("-xf")
        .arg(&core)
        .arg("-C")
        .arg(&dbdir)
        .status()
        .unwrap();
    assert!(st.success());
    let desc = dbdir.join(format!("bash-{}/desc", bash["version"].as_str().unwrap()));
    let text = std::fs::read_to_string(&desc).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let i = lines.iter().position(|l| *l == "%SHA256SUM%").unwrap();
    let real = lines[i + 1].to_string();
    let fake = format!(
        "{}{}",
        if real.starts_with('0') { "1" } else { "0" },
        &real[1..]
    );
    std::fs::write(&desc, text.replace(&real, &fake)).unwrap();
    let evil_db = tmp.path().join("core.db");
    let st = Command::new("bsdtar")
        .arg("-czf")
        .arg(&evil_db)
        .arg("-C")
        .arg(&dbdir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let urls = vec![rb(1)];
    let out = ok(
        tmp.path(),
        &args(
            &urls,
            &keys,
            &["--json", "--sync-db", evil_db.to_str().unwrap()],
        ),
    );
    let j = json(&out);
    let b = &status_pkg(&j, "bash")["rebuilders"][0];
    assert_eq!(b["attestation"]["state"], "invalid", "{b}");
    let reason = b["attestation"]["reason"].as_str().unwrap();
    assert!(reason.contains(&real) && reason.contains(&fake), "{reason}");
    assert_eq!(status_pkg(&j, "bash")["verdict"], "UNKNOWN");
    // Other packages of the same db are fine.
    assert_eq!(
        status_pkg(&j, "filesystem")["rebuilders"][0]["attestation"]["product_check"],
        "matched"
    );
}

#[test]
fn log_and_diffoscope_of_a_rebuilder() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    let urls = vec![rb(1), rb(2)];
    let out = ok(tmp.path(), &args(&urls, &keys, &["--diffoscope", "sed"]));
    let text = String::from_utf8(out.stdout).unwrap();
    // rb2 says BAD for sed and ran diffoscope: the .BUILDINFO differs.
    assert!(
        text.starts_with(&format!(
            "==> {}: sed 4.9-1 diffoscope output (BAD, build ",
            rb(2)
        )),
        "{text}"
    );
    assert!(text.contains(".BUILDINFO"), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("{}: no diffoscope output", rb(1))),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ok(tmp.path(), &args(&urls, &keys, &["--log", "filesystem"]));
    let text = String::from_utf8(out.stdout).unwrap();
    let heads: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("==> http://"))
        .collect();
    assert_eq!(heads.len(), 2, "{heads:?}");
    assert!(
        heads[0].starts_with(&format!("==> {}: filesystem ", rb(1))),
        "{heads:?}"
    );
    assert!(
        text.contains("rebuild-makepkg: rebuilding filesystem"),
        "{text}"
    );
    let e = err(
        tmp.path(),
        &args(&urls, &keys, &["--log", "no-such-package"]),
    );
    assert!(
        e.contains("no-such-package: not a package of this image"),
        "{e}"
    );
    let e = err(
        tmp.path(),
        &args(&urls, &keys, &["--diffoscope", "filesystem"]),
    );
    assert!(
        e.contains("no rebuilder has a diffoscope output for filesystem"),
        "{e}"
    );
}

#[test]
fn default_rebuilders_are_the_public_arch_ones() {
    let tmp = tempfile::tempdir().unwrap();
    // No -r, no $REBUILDERD, no config: the shipped list (unreachable from here).
    let e = err(
        tmp.path(),
        &["status", image(), "--tls-verify=false", "--retries", "1"],
    );
    assert!(e.contains("rebuilders from defaults"), "{e}");
    for u in [
        "https://reproducible.archlinux.org",
        "https://r-b.engineering.nyu.edu",
        "https://reproducible.crypto-lab.ch",
        "https://wolfpit.net/rebuild",
        "https://rebuilder.pitastrudl.me",
    ] {
        assert!(
            e.contains(&format!("rebuilder {u}: GET {u}/api/v1/packages/binary")),
            "{e}"
        );
    }
    // A broken config file is an error naming it.
    let conf = tmp.path().join("rebuilders.toml");
    std::fs::write(&conf, "[[rebuilder]]\nurl = 5\n").unwrap();
    let e = err(
        tmp.path(),
        &[
            "status",
            image(),
            "--tls-verify=false",
            "--config",
            conf.to_str().unwrap(),
        ],
    );
    assert!(e.contains(conf.to_str().unwrap()), "{e}");
}

#[test]
fn archive_sync_dbs_give_the_file_hashes() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("known.json");
    let urls = vec![rb(1), rb(3)];
    let archive = w.get("WORLD_ARCHIVE_URL");
    // Snapshot derived from the install dates (= SOURCE_DATE_EPOCH): the image's own.
    let j = json(&ok(
        tmp.path(),
        &args(
            &urls,
            &keys,
            &["--json", "--archive", archive, "--require-attestation"],
        ),
    ));
    let a = &j["attestations"];
    assert_eq!(a["hash_matched"], a["verified"], "{a}");
    assert!(a["verified"].as_u64().unwrap() > 30, "{a}");
    let snap = w.get("WORLD_IMAGE_SNAPSHOT");
    assert!(
        j["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x.as_str().unwrap().contains(&format!("snapshot {snap}"))),
        "{}",
        j["warnings"]
    );
    assert_eq!(status_pkg(&j, "filesystem")["verdict"], "REPRODUCED");
    // The older snapshot lacks bash 5.2.15-2: its attestation is verified but its file hash
    // unknown, so with --require-attestation it does not count.
    let old = w.get("SNAPSHOT_OLD");
    let j = json(&ok(
        tmp.path(),
        &args(
            &urls,
            &keys,
            &[
                "--json",
                "--archive",
                archive,
                "--snapshot",
                old,
                "--require-attestation",
            ],
        ),
    ));
    let b = status_pkg(&j, "bash");
    assert_eq!(
        b["rebuilders"][0]["attestation"]["product_check"], "unchecked",
        "{b}"
    );
    assert_eq!(b["verdict"], "UNKNOWN", "{b}");
    let e = err(
        tmp.path(),
        &args(
            &urls,
            &keys,
            &["--archive", archive, "--snapshot", "1999/01/01"],
        ),
    );
    assert!(e.contains("no sync db for snapshot 1999/01/01"), "{e}");
}

#[test]
fn a_package_bad_everywhere_is_not_reproduced() {
    // `randomized` embeds random bytes: every rebuilder says BAD. It is not in the reference
    // image, so a root with just its local db entry (made from the archive's desc) is asked.
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let db = sync_dbs()
        .into_iter()
        .find(|p| {
            let out = Command::new("bsdtar").arg("-tf").arg(p).output().unwrap();
            String::from_utf8_lossy(&out.stdout).contains("randomized-")
        })
        .expect("randomized in a sync db");
    let st = Command::new("bsdtar")
        .arg("-xf")
        .arg(&db)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(st.success());
    let entry = std::fs::read_dir(&x)
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("randomized-"))
        .unwrap();
    let local = tmp.path().join("root/var/lib/pacman/local");
    let dir = local.join(entry.file_name());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(local.join("ALPM_DB_VERSION"), "9\n").unwrap();
    // A local desc from the sync desc's fields, in pacman's order.
    let sync = std::fs::read_to_string(entry.path().join("desc")).unwrap();
    let field = |h: &str| -> String {
        sync.split(&format!("%{h}%\n"))
            .nth(1)
            .and_then(|s| s.split("\n\n").next())
            .unwrap_or_else(|| panic!("no %{h}% in {sync}"))
            .to_string()
    };
    let mut desc = String::new();
    for (local, from) in [
        ("NAME", "NAME"),
        ("VERSION", "VERSION"),
        ("BASE", "BASE"),
        ("DESC", "DESC"),
        ("URL", "URL"),
        ("ARCH", "ARCH"),
        ("BUILDDATE", "BUILDDATE"),
    ] {
        desc.push_str(&format!("%{local}%\n{}\n\n", field(from)));
    }
    desc.push_str(&format!("%INSTALLDATE%\n{}\n\n", w.get("WORLD_IMAGE_SDE")));
    desc.push_str(&format!("%PACKAGER%\n{}\n\n", field("PACKAGER")));
    desc.push_str(&format!(
        "%SIZE%\n{}\n\n%REASON%\n1\n\n%VALIDATION%\npgp\n\n",
        field("ISIZE")
    ));
    std::fs::write(dir.join("desc"), desc).unwrap();
    std::fs::write(dir.join("files"), "%FILES%\n\n").unwrap();
    let keys = tmp.path().join("known.json");
    let mut a: Vec<String> = vec![
        "status".into(),
        "--rootfs".into(),
        tmp.path().join("root").to_str().unwrap().to_string(),
        "--json".into(),
        "--known-keys".into(),
        keys.to_str().unwrap().into(),
    ];
    let urls = [rb(1), rb(2), rb(3)];
    for u in &urls {
        a.extend(["-r".to_string(), u.clone()]);
    }
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = ok(&tmp.path().join("cache"), &a);
    let j = json(&out);
    let p = status_pkg(&j, "randomized");
    assert_eq!(p["verdict"], "NOT_REPRODUCED", "{p}");
    assert_eq!(p["bad"], 3, "{p}");
    for r in p["rebuilders"].as_array().unwrap() {
        assert_eq!(r["status"], "BAD", "{r}");
        assert!(
            r.get("attestation").is_none(),
            "only GOOD builds are attested: {r}"
        );
    }
    assert_eq!(j["summary"]["not_reproduced"], 1);
}
