//! `repro-image attestation verify` on the real Debian sample link and on links fetched from
//! the test world's rebuilderd instances.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use repro_world::World;

const SAMPLE_NAME: &str = "librust-as-slice-dev_0.2.1-1+b2_amd64.deb";

fn samples() -> PathBuf {
    repro_testkit::samples().join("rebuilderd")
}

fn sample_link() -> PathBuf {
    samples().join("attestations/librust-as-slice-dev_0.2.1-1+b2_amd64.in-toto.link")
}

fn sample_key() -> PathBuf {
    samples().join("pubkeys/reproduce-debian-net-amd64.pub")
}

fn verify(cache: &Path, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["attestation", "verify"];
    a.extend_from_slice(args);
    let out: Output = run(cache, &a);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn debian_sample_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, out, err) = verify(tmp.path(), &[s(&sample_link()), "--key", s(&sample_key())]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("signature valid"), "{out}");
    assert!(out.contains("VALID: rebuild librust-as-slice-dev"), "{out}");

    let j = json(&ok(
        tmp.path(),
        &[
            "attestation",
            "verify",
            s(&sample_link()),
            "--key",
            s(&sample_key()),
            "--json",
        ],
    ));
    assert_eq!(j["valid"], true);
    assert_eq!(
        j["keys"][0]["keyid"],
        "2980aa6249ad89ce0ef0f0f5e6d0896214301b2818aad33443444cf460df6ed6"
    );
    assert_eq!(j["keys"][0]["result"], "valid");
}

#[test]
fn debian_sample_one_byte_changed_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(sample_link()).unwrap();
    let forged = text.replacen("\"rebuild librust", "\"rebuilD librust", 1);
    assert_eq!(forged.len(), text.len());
    assert_ne!(forged, text);
    let link = tmp.path().join("forged.link");
    std::fs::write(&link, forged).unwrap();
    let (code, out, err) = verify(tmp.path(), &[s(&link), "--key", s(&sample_key())]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("signature does not verify"), "{out}");
}

#[test]
fn debian_sample_other_key_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    let w = World::up();
    let (code, out, err) = verify(
        tmp.path(),
        &[
            s(&sample_link()),
            "--key",
            w.get("WORLD_REBUILDER_1_PUBKEY"),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no signature by any given key"), "{out}");
}

#[test]
fn debian_sample_other_artifact_is_invalid() {
    let tmp = tempfile::tempdir().unwrap();
    // Named like the product, other content: hash mismatch.
    let art = tmp.path().join(SAMPLE_NAME);
    std::fs::write(&art, b"not the package").unwrap();
    let (code, out, err) = verify(
        tmp.path(),
        &[
            s(&sample_link()),
            "--key",
            s(&sample_key()),
            "--artifact",
            s(&art),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("sha256 mismatch"), "{out}");
    // Another name: product missing.
    let other = tmp.path().join("other_1.0_amd64.deb");
    std::fs::write(&other, b"x").unwrap();
    let (code, out, err) = verify(
        tmp.path(),
        &[
            s(&sample_link()),
            "--key",
            s(&sample_key()),
            "--artifact",
            s(&other),
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("product other_1.0_amd64.deb not in link"),
        "{out}"
    );
}

#[test]
fn malformed_inputs_are_errors_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_link = tmp.path().join("bad.link");
    std::fs::write(&bad_link, b"{\"signed\": ").unwrap();
    let (code, _, err) = verify(tmp.path(), &[s(&bad_link), "--key", s(&sample_key())]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("bad.link") && err.contains("not JSON"),
        "{err}"
    );

    let bad_pem = tmp.path().join("bad.pem");
    std::fs::write(
        &bad_pem,
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (code, _, err) = verify(tmp.path(), &[s(&sample_link()), "--key", s(&bad_pem)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.pem"), "{err}");

    let missing = tmp.path().join("missing.deb");
    let (code, _, err) = verify(
        tmp.path(),
        &[
            s(&sample_link()),
            "--key",
            s(&sample_key()),
            "--artifact",
            s(&missing),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.deb"), "{err}");
}

fn curl(url: &str) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .args(["-sSf", "--max-time", "30", url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {url}: {:?}", out);
    out.stdout
}

#[test]
fn world_filesystem_attestation() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let rb1 = w.get("WORLD_REBUILDER_1_URL");
    let list: serde_json::Value = serde_json::from_slice(&curl(&format!(
        "{rb1}/api/v1/packages/binary?name=filesystem"
    )))
    .unwrap();
    let rec = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "filesystem" && r["status"] == "GOOD")
        .unwrap_or_else(|| panic!("no GOOD filesystem on rb1: {list}"));
    let (bid, aid) = (&rec["build_id"], &rec["artifact_id"]);
    let link = tmp.path().join("filesystem.link");
    std::fs::write(
        &link,
        curl(&format!(
            "{rb1}/api/v1/builds/{bid}/artifacts/{aid}/attestation"
        )),
    )
    .unwrap();
    let file_name = rec["url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let artifact = Path::new(w.get("WORLD_ARCHIVE_DIR"))
        .join("packages/f/filesystem")
        .join(&file_name);
    assert!(artifact.is_file(), "{}", artifact.display());

    let k1 = w.get("WORLD_REBUILDER_1_PUBKEY");
    let k2 = w.get("WORLD_REBUILDER_2_PUBKEY");
    let (code, out, err) = verify(tmp.path(), &[s(&link), "--key", k1]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = verify(tmp.path(), &[s(&link), "--key", k2]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no signature by any given key"), "{out}");
    let (code, out, err) = verify(
        tmp.path(),
        &[s(&link), "--key", k1, "--artifact", s(&artifact)],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sha256, sha512 match"), "{out}");
    // Both keys given: rb1's signature suffices, rb2's absence is not a failure.
    let (code, out, err) = verify(tmp.path(), &[s(&link), "--key", k2, "--key", k1]);
    assert_eq!(code, 0, "{out}{err}");
}
