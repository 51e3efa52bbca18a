//! `repro-image lock` and `fetch` on the local Arch Linux world (tests/world): pins checked
//! against the archive by independent means (bsdtar on the sync db, sha256sum of the files,
//! GNU tar on the reference rootfs), mirror drift, tampered pins, cut downloads.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use repro_lock::{Lock, PinnedFrom};
use repro_testkit::evil::{Behavior, EvilServer};
use repro_world::World;

fn world() -> &'static World {
    World::up()
}

fn sh(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("run a reference tool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn sha256sum(path: &Path) -> String {
    let out = sh(Command::new("sha256sum").arg(path));
    String::from_utf8(out).unwrap()[..64].to_string()
}

fn sha256_of_stdout(cmd: &mut Command) -> String {
    let bytes = sh(cmd);
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = c.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// A section of a sync db entry, read with bsdtar (not our reader).
fn db_field(snapshot: &str, repo: &str, entry: &str, field: &str) -> Option<String> {
    let w = world();
    let db = Path::new(w.get("WORLD_ARCHIVE_DIR"))
        .join("repos")
        .join(snapshot)
        .join(repo)
        .join("os/x86_64")
        .join(format!("{repo}.db"));
    let out = Command::new("bsdtar")
        .arg("-xOf")
        .arg(&db)
        .arg(format!("{entry}/desc"))
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    lines.find(|l| *l == format!("%{field}%"))?;
    lines.next().map(str::to_string)
}

/// `name-version` of every local db entry in a rootfs tarball, listed by GNU tar.
fn installed(rootfs_tar: &Path) -> BTreeSet<String> {
    let list = String::from_utf8(sh(Command::new("tar").arg("-tf").arg(rootfs_tar))).unwrap();
    list.lines()
        .filter_map(|l| l.strip_prefix("./var/lib/pacman/local/"))
        .filter_map(|l| l.strip_suffix('/'))
        .filter(|l| !l.contains('/'))
        .map(str::to_string)
        .collect()
}

fn archive_file(p: &repro_lock::PackagePin) -> PathBuf {
    Path::new(world().get("WORLD_ARCHIVE_DIR"))
        .join("packages")
        .join(&p.name[..1])
        .join(&p.name)
        .join(&p.filename)
}

fn lock_image(cache: &Path, out: &Path, image: &str, extra: &[&str]) -> (Lock, String) {
    let w = world();
    let o = out.to_str().unwrap();
    let mut args = vec![
        "lock",
        image,
        "--archive",
        w.get("WORLD_ARCHIVE_URL"),
        "-o",
        o,
    ];
    args.extend_from_slice(extra);
    common::ok(cache, &args);
    let text = std::fs::read_to_string(out).unwrap();
    let lock = Lock::parse(&text, o).unwrap();
    (lock, text)
}

fn layout_blob(oci_ref: &str, digest: &str) -> Vec<u8> {
    // oci:DIR:REF
    let dir = oci_ref
        .strip_prefix("oci:")
        .and_then(|r| r.rsplit_once(':'))
        .unwrap()
        .0;
    std::fs::read(
        Path::new(dir)
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap()
}

#[test]
fn lock_pins_every_package_of_the_repro_image() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repro-image.lock");
    let image = w.get("WORLD_OCI_REPRO_GZIP");
    let (lock, text) = lock_image(&tmp.path().join("cache"), &out, image, &[]);

    // The exact text round-trips, and another run (fresh cache) writes the same bytes.
    assert_eq!(lock.to_text(), text);
    let out2 = tmp.path().join("again.lock");
    let (_, text2) = lock_image(&tmp.path().join("cache2"), &out2, image, &[]);
    assert_eq!(text2, text, "two runs give identical locks");

    // The image.
    assert_eq!(
        lock.image.digest.to_string(),
        w.get("WORLD_IMAGE_REPRO_DIGEST")
    );
    assert_eq!(
        lock.image.config_digest.to_string(),
        w.get("WORLD_IMAGE_REPRO_CONFIG_DIGEST")
    );
    let diff_ids: Vec<String> = lock
        .image
        .layers
        .iter()
        .map(|l| l.diff_id.to_string())
        .collect();
    assert_eq!(diff_ids.join(","), w.get("WORLD_IMAGE_REPRO_DIFF_IDS"));
    // Its exact manifest and config bytes are archived next to the lock.
    let archived = tmp.path().join("repro-image.lock.d/blobs/sha256");
    for d in [&lock.image.digest, &lock.image.config_digest] {
        let kept = std::fs::read(archived.join(d.digest())).unwrap();
        assert_eq!(kept, layout_blob(image, d.as_ref()), "{d}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&layout_blob(image, lock.image.config_digest.as_ref())).unwrap();
    let label = |k: &str| config["config"]["Labels"][k].as_str().unwrap().to_string();

    // The recipe parameters, all derived, each saying how.
    let r = &lock.recipe;
    assert_eq!(r.source_date_epoch.to_string(), w.get("WORLD_IMAGE_SDE"));
    assert_eq!(
        r.archive_snapshot.to_string(),
        w.get("WORLD_IMAGE_SNAPSHOT")
    );
    assert_eq!(r.group, ["base"]);
    assert_eq!(
        r.revision.as_deref(),
        Some(label("org.opencontainers.image.revision").as_str())
    );
    assert_eq!(
        r.image_version.as_deref(),
        Some(w.get("WORLD_IMAGE_VERSION"))
    );
    // The title word, from the title label "Arch Linux <word> Image".
    let title = label("org.opencontainers.image.title");
    assert_eq!(
        Some(format!(
            "Arch Linux {} Image",
            r.image_title.as_deref().unwrap()
        )),
        Some(title)
    );
    assert_eq!(r.derived.len(), 7, "{:?}", r.derived);
    assert!(r.given.is_empty());
    assert!(
        r.derived[0].1.contains("org.opencontainers.image.created"),
        "{:?}",
        r.derived[0]
    );
    assert!(
        r.derived[0].1.contains("every %INSTALLDATE% equals it"),
        "{:?}",
        r.derived[0]
    );

    // Every installed package, and nothing else, pinned as the snapshot's db says.
    let rootfs = Path::new(w.get("WORLD_ROOTFS_REPRO_TAR"));
    let pinned: BTreeSet<String> = lock
        .packages
        .iter()
        .map(|p| format!("{}-{}", p.name, p.version))
        .collect();
    assert_eq!(pinned, installed(rootfs));
    let snapshot = w.get("WORLD_IMAGE_SNAPSHOT");
    for p in &lock.packages {
        let entry = format!("{}-{}", p.name, p.version);
        let repo = p.repo.as_deref().unwrap();
        assert_eq!(p.pinned_from, PinnedFrom::Snapshot, "{entry}");
        assert_eq!(
            db_field(snapshot, repo, &entry, "SHA256SUM").unwrap(),
            p.sha256.as_str(),
            "{entry}"
        );
        assert_eq!(
            db_field(snapshot, repo, &entry, "FILENAME").unwrap(),
            p.filename,
            "{entry}"
        );
        assert_eq!(
            db_field(snapshot, repo, &entry, "CSIZE").unwrap(),
            p.size.to_string()
        );
        assert_eq!(
            db_field(snapshot, repo, &entry, "PGPSIG").unwrap(),
            p.signature.as_ref().unwrap().to_string()
        );
        assert_eq!(sha256sum(&archive_file(p)), p.sha256.as_str(), "{entry}");
        assert_eq!(
            p.url,
            format!(
                "{}/packages/{}/{}/{}",
                w.get("WORLD_ARCHIVE_URL"),
                &p.name[..1],
                p.name,
                p.filename
            )
        );
        // The proof: the local db mtree in the image is the package's .MTREE.
        let mtree = sha256_of_stdout(
            Command::new("tar")
                .arg("-xOf")
                .arg(rootfs)
                .arg(format!("./var/lib/pacman/local/{entry}/mtree")),
        );
        assert_eq!(mtree, p.mtree_sha256.as_str(), "{entry}");
    }
}

#[test]
fn lock_from_the_registry_matches_the_layout() {
    // Same image through docker:// (the registry): same pins, the manifest bytes archived.
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = lock_image(
        &tmp.path().join("cache"),
        &tmp.path().join("a.lock"),
        w.get("WORLD_OCI_REPRO_GZIP"),
        &[],
    );
    let (b, _) = lock_image(
        &tmp.path().join("cache"),
        &tmp.path().join("b.lock"),
        w.get("WORLD_IMAGE_REPRO"),
        &["--tls-verify=false"],
    );
    assert_eq!(a.packages, b.packages);
    assert_eq!(a.recipe, b.recipe);
    assert_eq!(a.image.digest, b.image.digest);
    let kept = tmp
        .path()
        .join("b.lock.d/blobs/sha256")
        .join(b.image.digest.digest());
    assert!(kept.is_file());
}

/// A repro image made from the *old* snapshot with the world's own recipe script.
fn old_rootfs(dir: &Path) -> PathBuf {
    let w = world();
    let old: repro_lock::Snapshot = w.get("SNAPSHOT_OLD").parse().unwrap();
    let sde = old.epoch() + 86_400;
    let out = dir.join("old");
    sh(Command::new("bash")
        .arg(repro_world::repo_root().join("tests/world/recipe/build-rootfs.sh"))
        .arg(w.get("WORLD_ARCHIVE_URL"))
        .arg(sde.to_string())
        .arg(&out));
    out.join("repro.tar")
}

#[test]
fn lock_of_an_old_image_picks_the_old_versions_after_the_archive_moved_on() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let tar = old_rootfs(tmp.path());
    let (old_snap, new_snap) = (w.get("SNAPSHOT_OLD"), w.get("SNAPSHOT_NEW"));
    assert!(old_snap < new_snap, "the archive has a newer snapshot");
    let image = format!("rootfs:{}", tar.display());
    let (lock, _) = lock_image(
        &tmp.path().join("cache"),
        &tmp.path().join("old.lock"),
        &image,
        &[],
    );
    // A bare rootfs has no labels: SOURCE_DATE_EPOCH comes from the install dates.
    assert_eq!(lock.recipe.archive_snapshot.to_string(), old_snap);
    assert!(
        lock.recipe.derived[0].1.contains("%INSTALLDATE%"),
        "{:?}",
        lock.recipe.derived
    );
    assert_eq!(lock.recipe.revision, None);
    assert_eq!(lock.package("bash").unwrap().version, "5.2.15-1");
    assert_eq!(lock.package("edgecases").unwrap().version, "1-1");
    assert!(lock.package("hello").is_none());
    let pinned: BTreeSet<String> = lock
        .packages
        .iter()
        .map(|p| format!("{}-{}", p.name, p.version))
        .collect();
    assert_eq!(pinned, installed(&tar));
    for p in &lock.packages {
        let entry = format!("{}-{}", p.name, p.version);
        assert_eq!(p.pinned_from, PinnedFrom::Snapshot);
        let repo = p.repo.as_deref().unwrap();
        assert_eq!(
            db_field(old_snap, repo, &entry, "SHA256SUM").unwrap(),
            p.sha256.as_str()
        );
        assert_eq!(sha256sum(&archive_file(p)), p.sha256.as_str());
    }
}

#[test]
fn lock_falls_back_to_the_packages_tree_when_the_snapshot_lacks_a_version() {
    // The new image locked against the old snapshot: bash 5.2.15-2 and edgecases 1-2 are
    // not in it, so they are pinned from /packages/, hashed and with the .sig next to them.
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (lock, text) = lock_image(
        &tmp.path().join("cache"),
        &tmp.path().join("x.lock"),
        w.get("WORLD_OCI_REPRO_NONE"),
        &["--snapshot", w.get("SNAPSHOT_OLD")],
    );
    assert_eq!(
        lock.recipe.archive_snapshot.to_string(),
        w.get("SNAPSHOT_OLD")
    );
    assert_eq!(
        lock.recipe.given,
        [(repro_lock::Param::ArchiveSnapshot, "--snapshot".to_string())]
    );
    assert!(
        lock.recipe
            .derived
            .iter()
            .all(|(p, _)| *p != repro_lock::Param::ArchiveSnapshot)
    );
    assert!(
        text.contains("[recipe.given]\narchive_snapshot = \"--snapshot\"\n"),
        "{text}"
    );
    for name in ["bash", "edgecases"] {
        let p = lock.package(name).unwrap();
        assert_eq!(p.pinned_from, PinnedFrom::Packages, "{name}");
        assert_eq!(p.repo, None);
        let file = archive_file(p);
        assert_eq!(sha256sum(&file), p.sha256.as_str());
        let sig = std::fs::read(format!("{}.sig", file.display())).unwrap();
        assert_eq!(p.signature.as_ref().unwrap().bytes(), sig.as_slice());
    }
    assert_eq!(
        lock.package("glibc").unwrap().pinned_from,
        PinnedFrom::Snapshot
    );
}

fn fetch(cache: &Path, lock: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--json", "fetch", lock.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::run(cache, &args)
}

/// A lock of the repro image (made once per test, in `dir`).
fn repro_lock(dir: &Path) -> (PathBuf, Lock, String) {
    let path = dir.join("repro-image.lock");
    let (lock, text) = lock_image(
        &dir.join("lock-cache"),
        &path,
        world().get("WORLD_OCI_REPRO_GZIP"),
        &[],
    );
    (path, lock, text)
}

#[test]
fn fetch_downloads_and_verifies_sha256_and_signatures() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (path, lock, _) = repro_lock(tmp.path());
    let cache = tmp.path().join("fetch-cache");
    let keyring = w.get("WORLD_KEYRING");
    let out = fetch(&cache, &path, &["--keyring", keyring, "--jobs", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = common::json(&out);
    assert_eq!(report["ok"], true);
    let pkgs = report["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), lock.packages.len());
    for (r, p) in pkgs.iter().zip(&lock.packages) {
        assert_eq!(r["name"], p.name.as_str());
        assert_eq!(r["status"], "downloaded");
        assert_eq!(r["signature"], "valid");
        assert_eq!(r["signer"], w.get("WORLD_KEY_FINGERPRINT"));
        let blob = cache.join("blobs/sha256").join(p.sha256.as_str());
        assert_eq!(sha256sum(&blob), p.sha256.as_str());
        assert_eq!(
            std::fs::read(&blob).unwrap(),
            std::fs::read(archive_file(p)).unwrap()
        );
    }
    assert!(
        !cache.join(".repro-partial").exists(),
        "no partial files left"
    );
    // Again: everything is there, nothing is downloaded.
    let out = fetch(&cache, &path, &["--keyring", keyring]);
    assert!(out.status.success());
    let report = common::json(&out);
    assert!(
        report["packages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] == "present")
    );
    assert_eq!(report["downloaded_bytes"], 0);
}

/// Replace one line of package `name`'s table.
fn edit_package(text: &str, name: &str, key: &str, value: &str) -> String {
    let start = text
        .find(&format!("[[package]]\nname = \"{name}\"\n"))
        .unwrap();
    let end = text[start + 1..]
        .find("[[package]]")
        .map_or(text.len(), |i| start + 1 + i);
    let table = &text[start..end];
    let line_start = table.find(&format!("\n{key} = ")).unwrap() + 1;
    let line_end = line_start + table[line_start..].find('\n').unwrap();
    let new_table = format!(
        "{}{key} = {value}{}",
        &table[..line_start],
        &table[line_end..]
    );
    format!("{}{new_table}{}", &text[..start], &text[end..])
}

#[test]
fn fetch_stops_when_the_archive_file_does_not_match_the_pinned_sha256() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, lock, text) = repro_lock(tmp.path());
    let wrong = "ab".repeat(32);
    let bad = edit_package(&text, "bash", "sha256", &format!("\"{wrong}\""));
    let path = tmp.path().join("bad.lock");
    std::fs::write(&path, &bad).unwrap();
    let cache = tmp.path().join("fetch-cache");
    let out = fetch(&cache, &path, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let bash = lock.package("bash").unwrap();
    assert!(
        stderr.contains(&format!(
            "package bash {}: sha256 mismatch: the lock says {wrong}",
            bash.version
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(bash.sha256.as_str()),
        "names what was served: {stderr}"
    );
    assert!(!cache.join("blobs/sha256").join(&wrong).exists());
    assert!(
        !cache.join(".repro-partial").exists(),
        "nothing half-written left"
    );
    // The other packages are fetched and verified.
    let report = common::json(&out);
    let failed: Vec<&str> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "failed")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["bash"]);
}

#[test]
fn fetch_rejects_a_wrong_signature_and_one_made_after_the_snapshot() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (_, lock, text) = repro_lock(tmp.path());
    let keyring = w.get("WORLD_KEYRING");
    // bash with acl's (valid, but other) signature.
    let acl_sig = lock
        .package("acl")
        .unwrap()
        .signature
        .as_ref()
        .unwrap()
        .to_string();
    let bad = edit_package(&text, "bash", "signature", &format!("\"{acl_sig}\""));
    let path = tmp.path().join("badsig.lock");
    std::fs::write(&path, &bad).unwrap();
    let cache = tmp.path().join("fetch-cache");
    let out = fetch(&cache, &path, &["--keyring", keyring]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let bash = lock.package("bash").unwrap();
    assert!(
        stderr.contains(&format!("package bash {}: bad signature", bash.version)),
        "{stderr}"
    );
    let report = common::json(&out);
    let bad_sigs: Vec<&str> = report["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["signature"] == "bad")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(bad_sigs, ["bash"]);

    // The verification time is the snapshot day: packages signed later do not pass.
    let early = text.replace(
        &format!("archive_snapshot = \"{}\"", lock.recipe.archive_snapshot),
        "archive_snapshot = \"2026/10/01\"",
    );
    let path = tmp.path().join("early.lock");
    std::fs::write(&path, &early).unwrap();
    let out = fetch(&cache, &path, &["--keyring", keyring]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--not-after"), "sqv's reason: {stderr}");
    assert!(
        stderr.contains(&format!("package bash {}", bash.version)),
        "{stderr}"
    );
}

#[test]
fn fetch_resumes_a_cut_download_and_uses_mirrors_in_order() {
    let w = world();
    let tmp = tempfile::tempdir().unwrap();
    let (path, lock, _) = repro_lock(tmp.path());
    let bash = lock.package("bash").unwrap();
    let body = std::fs::read(archive_file(bash)).unwrap();
    let route = bash
        .url
        .strip_prefix(w.get("WORLD_ARCHIVE_URL"))
        .unwrap()
        .to_string();
    // The first mirror has only bash, and cuts the first download; the world's archive
    // has the rest.
    let evil = EvilServer::start([(
        route.clone(),
        Behavior::sequence(vec![
            Behavior::truncated(body.clone(), body.len() / 3),
            Behavior::ranged(body.clone()),
        ]),
    )]);
    let cache = tmp.path().join("fetch-cache");
    let evil_url = evil.url();
    let out = fetch(
        &cache,
        &path,
        &[
            "--mirror",
            &evil_url,
            "--mirror",
            w.get("WORLD_ARCHIVE_URL"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reqs: Vec<_> = evil
        .requests()
        .into_iter()
        .filter(|r| r.path() == route)
        .collect();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[0].header("range"), None);
    let range = reqs[1].header("range").unwrap();
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(from > 0 && from <= (body.len() / 3) as u64, "{range}");
    // Every other package was asked of the first mirror (404), then fetched from the second.
    assert_eq!(evil.total_hits(), 2 + lock.packages.len() - 1);
    let blob = cache.join("blobs/sha256").join(bash.sha256.as_str());
    assert_eq!(std::fs::read(blob).unwrap(), body);
}
