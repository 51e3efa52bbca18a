//! `repro-image packages`: an OCI layout and a directory holding the same pacman db agree;
//! unreadable packages give exit status 2 after the rest is printed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use repro_testkit::{LayerSpec, TestImage, samples};

fn files_below(dir: &Path, base: &Path, out: &mut Vec<(String, PathBuf)>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_below(&p, base, out);
        } else {
            out.push((p.strip_prefix(base).unwrap().display().to_string(), p));
        }
    }
}

/// The sample db as an image layer and as a directory.
fn both(sample: &str, tmp: &Path) -> (TestImage, PathBuf) {
    let src = samples().join("pacman-local").join(sample);
    let mut files = Vec::new();
    files_below(&src, &src, &mut files);
    files.sort();
    let rootfs = tmp.join("rootfs");
    let mut layer = LayerSpec::new().dir("var/lib/pacman/local", 0o755);
    for (rel, path) in &files {
        let bytes = fs::read(path).unwrap();
        let dst = rootfs.join("var/lib/pacman/local").join(rel);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::write(&dst, &bytes).unwrap();
        layer = layer.file(&format!("var/lib/pacman/local/{rel}"), bytes, 0o644);
    }
    let img = TestImage::build(&tmp.join("layout"), &[layer]);
    (img, rootfs)
}

#[test]
fn image_and_rootfs_agree_on_the_same_db() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (img, rootfs) = both("alpmrs-2019-pacman5", tmp.path());
    let oci = format!("oci:{}", img.layout.display());
    let a = json(&ok(&cache, &["packages", &oci, "--json"]));
    let b = json(&ok(
        &cache,
        &["packages", "--rootfs", rootfs.to_str().unwrap(), "--json"],
    ));
    assert_eq!(a["schema"], "repro-image/packages/v1");
    assert_eq!(a["source"]["kind"], "image");
    assert_eq!(a["source"]["manifest_digest"], img.manifest.digest.as_str());
    assert_eq!(b["source"]["kind"], "rootfs");
    assert_eq!(a["packages"], b["packages"]);
    assert_eq!(a["db_version"], 9);
    let pkgs = a["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), 9);
    let pacman = pkgs.iter().find(|p| p["name"] == "pacman").unwrap();
    assert_eq!(pacman["version"], "5.1.3-1");
    assert_eq!(pacman["build_date"], "2019-03-01T01:41:56Z");
    assert_eq!(pacman["reason"], "explicit");
    assert_eq!(pacman["mtree"]["entries"], 345);
    assert_eq!(pacman["files"]["backup"][0]["path"], "etc/makepkg.conf");
    assert!(pacman["files"]["backup"][0]["md5"].is_null());
    assert_eq!(a["errors"].as_array().unwrap().len(), 0);

    // Deterministic: a second run prints the same bytes.
    let again = ok(&cache, &["packages", &oci, "--json"]);
    assert_eq!(
        again.stdout,
        ok(&cache, &["packages", &oci, "--json"]).stdout
    );

    // Human output: sorted by name, one line each.
    let text = String::from_utf8(ok(&cache, &["packages", &oci]).stdout).unwrap();
    let names: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("NAME"))
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), 9);
    assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
    assert!(text.contains("Local db:   version 9"), "{text}");
}

#[test]
fn unreadable_packages_exit_2_after_printing_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let (img, rootfs) = both("paru-2021-pacman6", tmp.path());
    let oci = format!("oci:{}", img.layout.display());
    for args in [
        vec!["packages", oci.as_str(), "--json"],
        vec!["packages", "--rootfs", rootfs.to_str().unwrap(), "--json"],
    ] {
        let out = run(&cache, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json(&out);
        assert_eq!(v["packages"].as_array().unwrap().len(), 5);
        let errs = v["errors"].as_array().unwrap();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0]["package"], "devel-1-1");
        assert_eq!(errs[0]["path"], "var/lib/pacman/local/devel-1-1/desc");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("polybar-1.0.0-1/desc") && stderr.contains("Unknown Packager"));
    }
}

#[test]
fn no_db_is_a_warning_and_bad_arguments_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let img = small_image(&tmp.path().join("layout"));
    let out = ok(
        &cache,
        &[
            "packages",
            &format!("oci:{}", img.layout.display()),
            "--json",
        ],
    );
    let v = json(&out);
    assert_eq!(v["local_db"], false);
    assert_eq!(v["packages"].as_array().unwrap().len(), 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no pacman local database"));
    let e = err(&cache, &["packages", "--rootfs", "/nonexistent/dir"]);
    assert!(e.contains("not a directory"), "{e}");
    let out = run(&cache, &["packages"]);
    assert_eq!(out.status.code(), Some(2));
}
