//! `repro-image sbom` on the world's reference image and on a directory: every package
//! once with its purl, relationships that point at existing elements, identical bytes on
//! each run, and both documents accepted by the official validators.

mod common;
#[path = "../../repro-sbom/tests/common.rs"]
mod sbom_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::*;
use repro_world::World;
use serde_json::Value;

fn alpm_purl(p: &Value) -> String {
    repro_sbom::purl::alpm(
        p["name"].as_str().unwrap(),
        p["version"].as_str().unwrap(),
        p["arch"].as_str().unwrap(),
        p["base"].as_str().unwrap(),
    )
}

fn check_spdx(doc: &Value, pkgs: &[Value]) {
    let packages = doc["packages"].as_array().unwrap();
    let mut ids: BTreeSet<&str> = packages
        .iter()
        .map(|p| p["SPDXID"].as_str().unwrap())
        .collect();
    ids.insert("SPDXRef-DOCUMENT");
    for f in doc["files"].as_array().into_iter().flatten() {
        ids.insert(f["SPDXID"].as_str().unwrap());
    }
    for want in pkgs {
        let purl = alpm_purl(want);
        let found: Vec<&Value> = packages
            .iter()
            .filter(|p| p["externalRefs"][0]["referenceLocator"] == purl.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{purl}");
        assert_eq!(found[0]["name"], want["name"]);
        assert_eq!(found[0]["versionInfo"], want["version"]);
    }
    assert_eq!(packages.len(), pkgs.len() + 1, "the image and its packages");
    for r in doc["relationships"].as_array().unwrap() {
        for k in ["spdxElementId", "relatedSpdxElement"] {
            assert!(ids.contains(r[k].as_str().unwrap()), "{r}");
        }
    }
}

fn check_cdx(doc: &Value, pkgs: &[Value]) {
    let comps = doc["components"].as_array().unwrap();
    let by_purl: BTreeMap<&str, usize> =
        comps
            .iter()
            .filter_map(|c| c["purl"].as_str())
            .fold(BTreeMap::new(), |mut m, p| {
                *m.entry(p).or_default() += 1;
                m
            });
    for want in pkgs {
        assert_eq!(by_purl.get(alpm_purl(want).as_str()), Some(&1), "{want}");
    }
    assert_eq!(by_purl.len(), pkgs.len());
    let mut refs: BTreeSet<&str> = comps
        .iter()
        .map(|c| c["bom-ref"].as_str().unwrap())
        .collect();
    refs.insert(doc["metadata"]["component"]["bom-ref"].as_str().unwrap());
    for d in doc["dependencies"].as_array().unwrap() {
        assert!(refs.contains(d["ref"].as_str().unwrap()), "{d}");
        for o in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(o.as_str().unwrap()), "{d}");
        }
    }
}

#[test]
fn reference_image_sboms_list_every_package_and_validate() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let image = w.get("WORLD_IMAGE_REPRO");
    let pk = json(&ok(
        &cache,
        &["--tls-verify=false", "packages", "--json", image],
    ));
    let pkgs = pk["packages"].as_array().unwrap().clone();
    assert!(!pkgs.is_empty());
    let digest = w.get("WORLD_IMAGE_REPRO_DIGEST");
    let mut files = Vec::new();
    for (format, ext) in [("spdx-json", "spdx"), ("cyclonedx-json", "cdx")] {
        for with_files in [false, true] {
            let out = tmp.path().join(format!("sbom-{with_files}.{ext}.json"));
            let mut args = vec![
                "--tls-verify=false",
                "sbom",
                image,
                "--format",
                format,
                "-o",
                out.to_str().unwrap(),
            ];
            if with_files {
                args.push("--files");
            }
            let o = ok(&cache, &args);
            assert!(o.stdout.is_empty(), "-o writes the file only");
            let bytes = std::fs::read(&out).unwrap();
            // A second run (stdout this time) gives the same bytes.
            args.truncate(5);
            if with_files {
                args.push("--files");
            }
            assert_eq!(ok(&cache, &args).stdout, bytes, "{format} {with_files}");
            let doc: Value = serde_json::from_slice(&bytes).unwrap();
            if ext == "spdx" {
                check_spdx(&doc, &pkgs);
                assert_eq!(
                    doc["documentNamespace"].as_str().unwrap(),
                    format!(
                        "https://repro-image.invalid/spdx/{digest}{}",
                        if with_files { "/files" } else { "" }
                    )
                );
                assert_eq!(doc["packages"][0]["versionInfo"], digest);
                if with_files {
                    let n = doc["files"].as_array().unwrap().len();
                    assert!(n > 100, "{n} files");
                }
            } else {
                check_cdx(&doc, &pkgs);
                assert_eq!(doc["metadata"]["component"]["version"], digest);
                assert!(doc["metadata"].get("timestamp").is_none());
            }
            files.push((ext, out));
        }
    }
    // bash provides sh: a dependency on sh resolves to it.
    let spdx: Value = serde_json::from_slice(&std::fs::read(&files[0].1).unwrap()).unwrap();
    let rels = spdx["relationships"].as_array().unwrap();
    assert!(
        rels.iter()
            .any(|r| r["spdxElementId"] == "SPDXRef-Package-alpm-base"
                && r["relationshipType"] == "DEPENDS_ON"
                && r["relatedSpdxElement"] == "SPDXRef-Package-alpm-bash")
    );
    for kind in ["spdx", "cdx"] {
        let paths: Vec<&Path> = files
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, p)| p.as_path())
            .collect();
        sbom_common::validate(if kind == "spdx" { "spdx" } else { "cyclonedx" }, &paths);
    }
    // SOURCE_DATE_EPOCH, then --created, set the time.
    let out = bin()
        .args([
            "--cache",
            cache.to_str().unwrap(),
            "--tls-verify=false",
            "sbom",
            image,
        ])
        .args(["--format", "cyclonedx-json"])
        .env("SOURCE_DATE_EPOCH", "1793664000")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(json(&out)["metadata"]["timestamp"], "2026-11-03T00:00:00Z");
    let out = bin()
        .args([
            "--cache",
            cache.to_str().unwrap(),
            "--tls-verify=false",
            "sbom",
            image,
        ])
        .args(["--created", "2030-01-01T00:00:00+01:00"])
        .env("SOURCE_DATE_EPOCH", "1793664000")
        .output()
        .unwrap();
    assert_eq!(
        json(&out)["creationInfo"]["created"],
        "2029-12-31T23:00:00Z"
    );
}

#[test]
fn a_directory_needs_a_time_for_spdx_and_hashes_the_same_with_any_job_count() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let root = sbom_common::sample_root(tmp.path(), "alpmrs-2019-pacman5", None);
    std::fs::write(root.join("etc-motd"), b"hello\n").unwrap();
    let dir = root.to_str().unwrap();
    let e = bin()
        .args(["--no-cache", "sbom", "--rootfs", dir])
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&e.stderr);
    assert!(
        stderr.contains("--created") && stderr.contains("SOURCE_DATE_EPOCH"),
        "{stderr}"
    );
    let run = |jobs: &str| {
        ok(
            &cache,
            &[
                "sbom",
                "--rootfs",
                dir,
                "--files",
                "--jobs",
                jobs,
                "--created",
                "@0",
            ],
        )
        .stdout
    };
    let one = run("1");
    assert_eq!(one, run("3"));
    let doc: Value = serde_json::from_slice(&one).unwrap();
    assert_eq!(doc["packages"][0]["SPDXID"], "SPDXRef-Rootfs");
    assert!(
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["fileName"] == "./etc-motd")
    );
    let p = tmp.path().join("dir.spdx.json");
    std::fs::write(&p, &one).unwrap();
    sbom_common::validate("spdx", &[&p]);
    // Bad input is an error (2).
    let e = err(&cache, &["sbom", "--rootfs", dir, "--created", "yesterday"]);
    assert!(e.contains("--created"), "{e}");
    let e = err(&cache, &["sbom", "--rootfs", dir, "--format", "xml"]);
    assert!(e.contains("spdx-json"), "{e}");
}
