//! `repro-image files` (file accounting) against the local Arch Linux world's images, and
//! the independent count: Debian's `pacman -Qkk` on the reference rootfs extracted by GNU tar.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::*;
use repro_world::World;
use serde_json::Value;

fn files_json(cache: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--tls-verify=false", "--json", "files"];
    all.extend_from_slice(args);
    json(&ok(cache, &all))
}

/// path → entry, over `entries`.
fn by_path(j: &Value) -> BTreeMap<String, Value> {
    j["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["path"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn fields(e: &Value) -> Vec<(String, String, String, String)> {
    e["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_string();
            (s("package"), s("field"), s("tree"), s("mtree"))
        })
        .collect()
}

/// Why a modified entry of the repro pipeline's output differs, from the facts DESIGN.md
/// records; `None` when nothing explains it.
fn explanation(e: &Value) -> Option<&'static str> {
    if e["backup"] == true {
        return Some("a backup file, edited by a recipe step");
    }
    let dir = e["kind"] == "dir";
    fields(e)
        .iter()
        .map(|(_, field, tree, mtree)| match field.as_str() {
            "uid" | "gid" if tree == "0" && mtree != "0" => {
                Some("owners are lost: pacman and tar run in separate fakeroot sessions")
            }
            "mode" if dir && tree == "0755" && mtree == "0555" => {
                Some("fakeroot widens a 0555 directory to 0755")
            }
            _ => None,
        })
        .try_fold("", |_, x| x)
        .filter(|s| !s.is_empty())
}

#[test]
fn repro_image_usr_bin_is_from_packages_and_every_modification_is_explained() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let j = files_json(tmp.path(), &[w.get("WORLD_IMAGE_REPRO")]);
    assert_eq!(j["schema"], "repro-image/files/v1");
    assert_eq!(j["source"]["kind"], "image");
    assert_eq!(
        j["source"]["manifest_digest"],
        w.get("WORLD_IMAGE_REPRO_DIGEST")
    );
    assert_eq!(
        j["selected"],
        serde_json::json!(["package", "modified", "unowned", "missing"])
    );
    let entries = by_path(&j);

    let mut owned_in_usr_bin = 0;
    for (path, e) in entries.range("usr/bin/".to_string()..) {
        if !path.starts_with("usr/bin/") {
            break;
        }
        if e["packages"].as_array().unwrap().is_empty() {
            continue;
        }
        owned_in_usr_bin += 1;
        match e["class"].as_str().unwrap() {
            "package" => {}
            "modified" => assert!(explanation(e).is_some(), "{path}: unexplained {e}"),
            other => panic!("{path}: owned but {other}: {e}"),
        }
    }
    assert!(
        owned_in_usr_bin > 100,
        "{owned_in_usr_bin} owned in usr/bin"
    );
    assert_eq!(entries["usr/bin/bash"]["class"], "package");
    assert_eq!(
        entries["usr/bin/bash"]["packages"],
        serde_json::json!(["bash"])
    );
    assert_eq!(entries["usr/bin/update-ca-trust"]["class"], "package");

    // Every modified entry of the whole image is one of DESIGN.md's observed facts; the
    // exact fields are reported, not hidden.
    for (path, e) in &entries {
        if e["class"] == "modified" {
            assert!(explanation(e).is_some(), "{path}: unexplained {e}");
        }
    }
    let f = |p: &str| fields(&entries[p]);
    let fx = |pkg: &str, field: &str, tree: &str, mtree: &str| {
        (pkg.into(), field.into(), tree.into(), mtree.into())
    };
    assert_eq!(
        f("usr/share/edgecases/mode-0555-dir"),
        [fx("edgecases", "mode", "0755", "0555")]
    );
    assert_eq!(
        f("home/alice/file"),
        [
            fx("edgecases", "uid", "0", "1000"),
            fx("edgecases", "gid", "0", "1000")
        ]
    );
    assert_eq!(
        f("usr/share/edgecases/owner-1000-0"),
        [fx("edgecases", "uid", "0", "1000")]
    );
    assert_eq!(f("proc"), [fx("filesystem", "mode", "0755", "0555")]);
    // The setuid/setgid bits and 0400/0444 files survive the pipeline.
    for p in [
        "usr/bin/edgecases-setuid",
        "usr/bin/edgecases-setgid",
        "usr/share/edgecases/mode-0400",
        "usr/share/edgecases/mode-0444",
        "usr/share/edgecases/sticky-dir",
        "usr/share/edgecases/setgid-dir",
        "usr/share/edgecases/hardlink-3",
    ] {
        assert_eq!(entries[p]["class"], "package", "{p}: {}", entries[p]);
    }
    // Backup files the recipe edits (sysusers, `root:!`, the pacman.conf it installs).
    for p in ["etc/shadow", "etc/passwd", "etc/group", "etc/pacman.conf"] {
        let e = &entries[p];
        assert_eq!(
            (e["class"].as_str(), e["backup"].as_bool()),
            (Some("modified"), Some(true)),
            "{p}"
        );
        assert!(f(p).iter().any(|d| d.1 == "sha256"), "{p}");
    }
    // The recipe touches everything to SOURCE_DATE_EPOCH: reported, counted apart.
    let bash = &entries["usr/bin/bash"]["mtime"];
    assert_eq!(bash["equal"], false);
    assert_eq!(
        bash["tree"].as_i64().unwrap().to_string(),
        w.get("WORLD_IMAGE_SDE")
    );
    let t = &j["totals"];
    assert_eq!(t["mtime_equal"]["files"], 0);
    assert_eq!(
        t["mtime_differs"]["files"].as_u64().unwrap(),
        t["package"]["files"].as_u64().unwrap() + t["modified"]["files"].as_u64().unwrap()
    );
    // Totals add up and count each path once.
    let n = |c: &str| t[c]["files"].as_u64().unwrap();
    assert_eq!(n("package") + n("modified") + n("unowned"), n("present"));
    assert_eq!(
        n("present") + n("missing"),
        entries.len() as u64,
        "one entry per path"
    );
    // The pacman db itself, the recipe's and the image build's files are not owned.
    for p in [
        "var/lib/pacman/local/bash-5.2.15-2/desc",
        "etc/os-release",
        "etc/ld.so.cache",
    ] {
        assert_eq!(entries[p]["class"], "unowned", "{p}");
    }
    // The install scriptlet pacman keeps in the db is the package's `.INSTALL`.
    assert_eq!(
        entries["var/lib/pacman/local/edgecases-1-2/install"]["class"],
        "package"
    );
}

#[test]
fn tampered_file_is_modified_by_its_digest_only_in_the_tampered_image() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let path = w.get("WORLD_IMAGE_TAMPERED_FILE").trim_start_matches('/');
    let tampered = files_json(tmp.path(), &["--modified", w.get("WORLD_IMAGE_TAMPERED")]);
    let repro = files_json(tmp.path(), &["--modified", w.get("WORLD_IMAGE_REPRO")]);
    let t = by_path(&tampered);
    let r = by_path(&repro);
    let e = t
        .get(path)
        .unwrap_or_else(|| panic!("{path} not modified in the tampered image"));
    let sha: Vec<_> = fields(e).into_iter().filter(|d| d.1 == "sha256").collect();
    assert_eq!(sha.len(), 1, "{e}");
    assert_eq!(sha[0].0, "ca-certificates-utils");
    assert_ne!(sha[0].2, sha[0].3);
    assert_eq!(e["backup"], false);
    assert!(!r.contains_key(path), "{path} modified in the repro image");
    // It is the only difference between the two accountings.
    let tk: BTreeSet<&String> = t.keys().collect();
    let rk: BTreeSet<&String> = r.keys().collect();
    assert_eq!(tk.difference(&rk).collect::<Vec<_>>(), [&&path.to_string()]);
    assert!(rk.is_subset(&tk));
    // The human line names the class, the package, the path and the differing digest.
    let out = ok(
        tmp.path(),
        &[
            "--tls-verify=false",
            "files",
            "--modified",
            w.get("WORLD_IMAGE_TAMPERED"),
        ],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains(path))
        .expect("a line for the tampered file");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[..3], ["modified", "ca-certificates-utils", path]);
    assert!(line.contains(&format!(
        "sha256 {} != {}",
        &sha[0].2[..12],
        &sha[0].3[..12]
    )));
}

#[test]
fn noextract_files_are_missing() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let j = files_json(tmp.path(), &["--missing", w.get("WORLD_IMAGE_REPRO")]);
    assert_eq!(j["selected"], serde_json::json!(["missing"]));
    let m = by_path(&j);
    assert!(m.values().all(|e| e["class"] == "missing"));
    for p in [
        "usr/share/man/man1/edgecases.1",
        "usr/share/info/edgecases.info",
        "usr/share/doc/edgecases/README",
        "usr/share/help/de/edgecases/index.page",
        "usr/share/locale/de/LC_MESSAGES/edgecases.mo",
    ] {
        let e = m.get(p).unwrap_or_else(|| panic!("{p} not missing"));
        assert_eq!(e["packages"], serde_json::json!(["edgecases"]), "{p}");
        assert_eq!(e["kind"], "file", "{p}");
        assert!(e["size"].as_u64().unwrap() > 0, "{p}: size from the mtree");
    }
    // Directories several packages list are one entry with every owner.
    assert_eq!(
        m["usr/share/man"]["packages"],
        serde_json::json!(["edgecases", "filesystem"])
    );
    // What NoExtract keeps is there.
    for p in [
        "usr/share/help/C/edgecases/index.page",
        "usr/share/locale/en_GB/LC_MESSAGES/edgecases.mo",
        "usr/share/locale/locale.alias",
    ] {
        assert!(!m.contains_key(p), "{p} reported missing");
    }
    // Every missing entry is NoExtract'ed documentation, a locale or a help page.
    for p in m.keys() {
        assert!(
            [
                "usr/share/man",
                "usr/share/info",
                "usr/share/doc",
                "usr/share/help/de",
                "usr/share/locale/de"
            ]
            .iter()
            .any(|d| p.starts_with(d)),
            "{p} missing"
        );
    }
}

#[test]
fn selections_share_totals_and_output_is_deterministic() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let image = w.get("WORLD_IMAGE_REPRO");
    let all = files_json(tmp.path(), &[image]);
    let some = files_json(tmp.path(), &["--unowned", "--missing", image]);
    assert_eq!(all["totals"], some["totals"]);
    assert_eq!(some["selected"], serde_json::json!(["unowned", "missing"]));
    let classes: BTreeSet<&str> = some["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, BTreeSet::from(["missing", "unowned"]));
    let paths: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(paths, sorted);
    let args = ["--tls-verify=false", "files", image];
    let a = ok(tmp.path(), &args).stdout;
    let b = ok(tmp.path(), &args).stdout;
    assert_eq!(a, b);
    let text = String::from_utf8(a).unwrap();
    let present = &all["totals"]["present"];
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == [
                    "present",
                    &present["files"].to_string(),
                    "files",
                    &present["bytes"].to_string(),
                    "bytes"
                ])
    );
    assert!(text.contains("mtime differs"));
    assert!(err(tmp.path(), &["files"]).contains("IMAGE"));
    assert!(
        err(tmp.path(), &["files", "--rootfs", "/nonexistent/dir"]).contains("not a directory")
    );
}

/// (package, path, finding).
type Findings = BTreeSet<(String, String, String)>;

/// What `pacman -Qkk` reports, as (package, path, finding), with the finding in our
/// field names: "missing", "mtime", or a field of a difference.
fn pacman_qkk(root: &Path) -> (Findings, BTreeMap<String, u64>) {
    let conf = root.with_extension("pacman.conf");
    std::fs::write(&conf, "").unwrap();
    let out = Command::new("pacman")
        .arg("-Qkk")
        .arg("--root")
        .arg(root)
        .arg("--dbpath")
        .arg(root.join("var/lib/pacman"))
        .arg("--config")
        .arg(&conf)
        .env("LC_ALL", "C")
        .output()
        .expect("run pacman");
    // 0 = nothing altered, 1 = something altered.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "pacman -Qkk: {out:?}"
    );
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}/", root.display());
    let mut findings = BTreeSet::new();
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line
            .strip_prefix("warning: ")
            .or_else(|| line.strip_prefix("backup file: "))
        {
            let (pkg, rest) = rest.split_once(": ").unwrap();
            let (path, reason) = rest.rsplit_once(" (").unwrap();
            let path = path
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{line}"));
            let finding = match reason.trim_end_matches(')') {
                "No such file or directory" => "missing",
                "Modification time mismatch" => "mtime",
                "UID mismatch" => "uid",
                "GID mismatch" => "gid",
                "Permissions mismatch" => "mode",
                "Size mismatch" => "size",
                "SHA256 checksum mismatch" => "sha256",
                // Implied by the sha256 mismatch pacman reports with it (checked below).
                "MD5 checksum mismatch" => "md5",
                "Symlink path mismatch" => "link",
                "File type mismatch" => "type",
                other => panic!("unexpected pacman finding {other:?} in {line:?}"),
            };
            findings.insert((pkg.to_string(), path.to_string(), finding.to_string()));
        } else if let Some((pkg, rest)) = line.split_once(": ")
            && let Some((n, _)) = rest.split_once(" total file")
        {
            totals.insert(pkg.to_string(), n.parse().unwrap());
        } else {
            panic!("unexpected pacman -Qkk line {line:?}");
        }
    }
    for (pkg, path, f) in findings.clone() {
        if f == "md5" {
            assert!(findings.contains(&(pkg.clone(), path.clone(), "sha256".into())));
            findings.remove(&(pkg, path, f));
        }
    }
    (findings, totals)
}

/// Our findings in the same shape: missing per owner, each difference, and the mtime
/// against each owner whose mtree time differs. Directories' times are left out: pacman
/// -Qkk does not check them (libalpm's check skips the mtime of directories, and every
/// directory of this rootfs has the recipe's time).
fn our_findings(j: &Value) -> (Findings, BTreeMap<String, u64>) {
    let mut out = BTreeSet::new();
    let mut totals = BTreeMap::new();
    for e in j["entries"].as_array().unwrap() {
        let path = e["path"].as_str().unwrap().to_string();
        for p in e["packages"].as_array().unwrap() {
            let p = p.as_str().unwrap().to_string();
            *totals.entry(p.clone()).or_insert(0) += 1;
            if e["class"] == "missing" {
                out.insert((p, path.clone(), "missing".to_string()));
            }
        }
        for (pkg, field, _, _) in fields(e) {
            out.insert((pkg, path.clone(), field));
        }
        if let Some(m) = e["mtime"].as_object()
            && e["kind"] != "dir"
        {
            for t in m["mtree"].as_array().unwrap() {
                if t["time"] != m["tree"] {
                    let p = t["package"].as_str().unwrap().to_string();
                    out.insert((p, path.clone(), "mtime".to_string()));
                }
            }
        }
    }
    (out, totals)
}

fn extract(tar: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    // As root GNU tar restores owners (numerically here: the recipe's tar has no names),
    // modes without the umask, setuid/setgid/sticky bits, and every mtime.
    let st = Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("run tar");
    assert!(st.success());
}

#[test]
fn pacman_qkk_on_the_extracted_reference_rootfs_agrees() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    extract(w.get("WORLD_ROOTFS_REPRO_TAR"), &root);
    let j = files_json(tmp.path(), &["--rootfs", root.to_str().unwrap()]);
    assert_eq!(j["source"]["kind"], "rootfs");
    let (theirs, their_totals) = pacman_qkk(&root);
    let (ours, our_totals) = our_findings(&j);
    // pacman checks what we check, plus file times (which we report apart): with directory
    // times left out (see `our_findings`) the findings are the same, file by file.
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "found by repro-image only"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&(String, String, String)>::new(),
        "found by pacman -Qkk only"
    );
    // pacman's "N total files" per package counts the paths of its `files` plus the
    // install scriptlet in the db: the same as the entries naming the package here (a
    // directory shared by several packages is one entry but counts for each).
    // (`base`, a meta package, owns nothing: "0 total files".)
    let their_totals: BTreeMap<String, u64> =
        their_totals.into_iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(our_totals, their_totals);
    // Some of each kind of finding, so the comparison means something.
    for f in ["missing", "mtime", "uid", "gid", "mode", "size", "sha256"] {
        assert!(theirs.iter().any(|t| t.2 == f), "pacman reported no {f}");
    }
}

/// Entry by entry: class, owners, backup, kind, size and every difference.
fn comparable(j: &Value) -> BTreeMap<String, String> {
    j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let kind = match e["kind"].as_str() {
                // Which of several hard links a tar writes as the file depends on its
                // order; the host walk's choice differs. Both are files.
                Some("hardlink") => "file",
                other => other.unwrap_or("-"),
            };
            let v = format!(
                "{} {} backup={} {kind} {} {:?} mtime={}",
                e["class"],
                e["packages"],
                e["backup"],
                e["size"],
                fields(e),
                e["mtime"]
            );
            (e["path"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn extracted_rootfs_agrees_with_the_tarball_and_the_image() {
    let w = World::up();
    let tmp = tempfile::tempdir().unwrap();
    let tar = w.get("WORLD_ROOTFS_REPRO_TAR");
    let root = tmp.path().join("root");
    extract(tar, &root);
    let dir = comparable(&files_json(
        tmp.path(),
        &["--rootfs", root.to_str().unwrap()],
    ));
    // The same tarball read as a one-layer image: GNU tar as root restores everything that
    // is compared (type, mode with the special bits, numeric owners, content, link
    // targets) and even the times, so every path agrees. What extraction does change is
    // not compared: xattrs (not restored without --xattrs; mtree does not list them),
    // which hard link is "the file" (see `comparable`), and the root directory itself.
    // As a non-root user it would differ: owners become the user's, setuid/setgid bits and
    // 0555 directories (made writable to fill them) would show up as modes.
    let tarball = comparable(&files_json(tmp.path(), &[&format!("rootfs:{tar}")]));
    let diff: Vec<_> = tarball
        .iter()
        .filter(|(p, v)| dir.get(*p) != Some(v))
        .map(|(p, _)| p)
        .chain(dir.keys().filter(|p| !tarball.contains_key(*p)))
        .collect();
    assert!(diff.is_empty(), "paths classified differently: {diff:?}");

    // The image built from that rootfs differs only where the image build changed it:
    // podman's COPY layer adds the mount points dev, proc and sys (the recipe's tar
    // excludes them, so they are `missing` in the tarball) and etc/hostname and
    // etc/resolv.conf; `RUN ldconfig` writes etc/ld.so.cache, and its `sed -i` on
    // etc/os-release replaces the recipe's symlink with a file (GNU sed does not follow
    // symlinks without --follow-symlinks).
    let image = comparable(&files_json(tmp.path(), &[w.get("WORLD_IMAGE_REPRO")]));
    let mut changed: Vec<&str> = image
        .iter()
        .filter(|(p, v)| dir.get(*p) != Some(v))
        .map(|(p, _)| p.as_str())
        .chain(
            dir.keys()
                .filter(|p| !image.contains_key(*p))
                .map(|p| p.as_str()),
        )
        .collect();
    changed.sort();
    changed.dedup();
    assert_eq!(
        changed,
        [
            "dev",
            "etc/hostname",
            "etc/ld.so.cache",
            "etc/os-release",
            "etc/resolv.conf",
            "proc",
            "sys"
        ]
    );
}
