//! `repro-image build` on the local Arch Linux world (tests/world): lock → fetch → build the
//! world's repro image and compare with the reference rootfs that the world's independent
//! shell recipe (tests/world/recipe/build-rootfs.sh, GNU tar, the zstd CLI) made.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use repro_world::World;

fn world() -> &'static World {
    World::up()
}

/// A lock of the world's repro image and a cache holding its fetched packages, made once
/// for all tests of this file.
struct Prepared {
    dir: PathBuf,
    cache: PathBuf,
    lock: PathBuf,
}

fn prepared() -> &'static Prepared {
    static P: OnceLock<Prepared> = OnceLock::new();
    P.get_or_init(|| {
        let w = world();
        // under target/, not /tmp: the outputs are kept for a look after a failure and
        // replaced by the next run
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("repro-build-test");
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("cache");
        let lock = dir.join("repro.lock");
        common::ok(
            &cache,
            &[
                "lock",
                w.get("WORLD_OCI_REPRO_GZIP"),
                "--archive",
                w.get("WORLD_ARCHIVE_URL"),
                "-o",
                lock.to_str().unwrap(),
            ],
        );
        common::ok(
            &cache,
            &[
                "fetch",
                lock.to_str().unwrap(),
                "--keyring",
                w.get("WORLD_KEYRING"),
            ],
        );
        Prepared { dir, cache, lock }
    })
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// GNU tar's verbose listing, for a readable first difference.
fn listing(tar: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .args(["--full-time", "--numeric-owner", "-tvf"])
        .arg(tar)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn first_difference(ours: &Path, reference: &Path) -> String {
    let (a, b) = (listing(ours), listing(reference));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            return format!("entry {i}: ours\n  {x}\nreference\n  {y}");
        }
    }
    if a.len() != b.len() {
        return format!(
            "{} entries in ours, {} in the reference (same up to there)",
            a.len(),
            b.len()
        );
    }
    "the listings agree: the difference is in file contents, pax records or padding".into()
}

fn build(cache: &Path, lock: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", lock.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    common::run(cache, &args)
}

fn assert_reference(out: &Path) {
    let w = world();
    let reference_tar = Path::new(w.get("WORLD_ROOTFS_REPRO_TAR"));
    let reference_zst = Path::new(w.get("WORLD_ROOTFS_REPRO_TAR_ZST"));
    let tar = out.join("repro.tar");
    assert_eq!(
        sha256(&tar),
        sha256(reference_tar),
        "repro.tar differs from the reference: {}",
        first_difference(&tar, reference_tar)
    );
    assert_eq!(
        sha256(&out.join("repro.tar.zst")),
        sha256(reference_zst),
        "repro.tar.zst differs from the reference (repro.tar is equal: the zstd step)"
    );
    // the .SHA256 file is what `sha256sum repro.tar.zst` writes, byte for byte
    let check = Command::new("sha256sum")
        .args(["--quiet", "-c", "repro.tar.zst.SHA256"])
        .current_dir(out)
        .output()
        .unwrap();
    assert!(check.status.success(), "sha256sum -c repro.tar.zst.SHA256");
    assert_eq!(
        std::fs::read(out.join("repro.tar.zst.SHA256")).unwrap(),
        std::fs::read(reference_zst.with_extension("zst.SHA256")).unwrap()
    );
}

#[test]
fn build_reproduces_the_reference_rootfs_bit_for_bit() {
    let p = prepared();
    let out = p.dir.join("out-1");
    let o = build(&p.cache, &p.lock, &out, &["--json"]);
    assert!(
        o.status.success(),
        "build failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_reference(&out);

    // The printed digests are the files' digests.
    let j = common::json(&o);
    assert_eq!(j["schema"], "repro-image/build/v1");
    assert_eq!(
        j["tar"]["digest"].as_str().unwrap(),
        format!("sha256:{}", sha256(&out.join("repro.tar")))
    );
    assert_eq!(
        j["zst"]["digest"].as_str().unwrap(),
        format!("sha256:{}", sha256(&out.join("repro.tar.zst")))
    );
    assert_eq!(j["source_date_epoch"], 1_793_664_000i64);
    assert_eq!(j["hooks_masked"], serde_json::json!(["edgecases.hook"]));
    // The build directory is gone; only the outputs and the log stay.
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "build.log",
            "layers",
            "oci",
            "repro.tar",
            "repro.tar.zst",
            "repro.tar.zst.SHA256"
        ]
    );

    assert_reference_layers(&out, &j);
    assert_reference_image(&out, &j);
    assert_eq!(j["image"]["isolation"], "root");
}

/// The image's two layers (COPY, RUN ldconfig…) in containers/storage's dialect: the
/// reference image's diff_ids, and the layer files hash to them.
fn assert_reference_layers(out: &Path, j: &serde_json::Value) {
    let expected: Vec<&str> = world()
        .get("WORLD_IMAGE_REPRO_DIFF_IDS")
        .split(',')
        .collect();
    let layers = j["image"]["layers"].as_array().unwrap();
    let got: Vec<&str> = layers
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(got, expected, "the image's diff_ids");
    assert_eq!(j["image"]["diff_ids_match"], true);
    for (i, l) in layers.iter().enumerate() {
        let file = out.join(format!("layers/layer-{}.tar", i + 1));
        assert_eq!(l["file"].as_str().unwrap(), file.to_str().unwrap());
        assert_eq!(format!("sha256:{}", sha256(&file)), expected[i]);
    }
}

/// Not root: the recipe's pacman under fakechroot and fakeroot, the image's extraction and
/// `RUN` step in a user namespace (as rootless podman). The same bytes as the root build:
/// the reference rootfs, both diff_ids, config and manifest. The lock and the store are
/// only read (they stay root's); the outputs belong to the user who built them.
/// `repro-image --cache CACHE build LOCK -o OUT EXTRA…` with a cleared environment, as
/// an unprivileged user: nobody when the tests run as root (OUT made theirs), else this
/// user. `wrap`: argv words run between the user switch and the binary. Returns the uid.
fn build_unprivileged(out: &Path, wrap: &[&str], extra: &[&str]) -> (u32, Output) {
    let p = prepared();
    std::fs::create_dir_all(out).unwrap();
    let mut c;
    // SAFETY: geteuid has no preconditions.
    let uid = match unsafe { libc::geteuid() } {
        0 => {
            std::os::unix::fs::chown(out, Some(65534), Some(65534)).unwrap();
            c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .args(wrap);
            65534
        }
        uid => {
            let (first, rest) = wrap.split_first().unwrap_or((&"env", &[]));
            c = Command::new(first);
            c.args(rest);
            uid
        }
    };
    let o = c
        .arg(env!("CARGO_BIN_EXE_repro-image"))
        .arg("--cache")
        .arg(&p.cache)
        .arg("build")
        .arg(&p.lock)
        .arg("-o")
        .arg(out)
        .args(extra)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (uid, o)
}

/// Not root: the recipe's pacman under fakechroot and fakeroot, the image's extraction and
/// `RUN` step in a user namespace (as rootless podman). The same bytes as the root build:
/// the reference rootfs, both diff_ids, config and manifest. The lock and the store are
/// only read (they stay root's); the outputs belong to the user who built them.
#[test]
fn a_build_as_an_unprivileged_user_reproduces_the_reference_bit_for_bit() {
    let out = prepared().dir.join("rootless");
    let (uid, o) = build_unprivileged(&out, &[], &["--json"]);
    assert!(
        o.status.success(),
        "rootless build failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j = common::json(&o);
    assert_eq!(
        j["image"]["isolation"]["user_namespace"]["uid"], uid,
        "{:#}",
        j["image"]
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(out.join("repro.tar")).unwrap().uid(),
        uid,
        "the build ran as the unprivileged user"
    );
    assert_reference(&out);
    assert_reference_layers(&out, &j);
    assert_reference_image(&out, &j);
    let log = std::fs::read_to_string(out.join("build.log")).unwrap();
    assert!(
        log.contains("(chroot) in a user namespace (unshare --user --map-root-user)"),
        "{log}"
    );
}

/// The reference image with uncompressed layers (`oci-none`): (config digest, manifest
/// digest, manifest bytes).
fn reference_none() -> (String, String, Vec<u8>) {
    let spec = world().get("WORLD_OCI_REPRO_NONE");
    let (dir, _) = spec.strip_prefix("oci:").unwrap().rsplit_once(':').unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(dir).join("index.json")).unwrap()).unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = std::fs::read(
        Path::new(dir)
            .join("blobs/sha256")
            .join(manifest_digest.strip_prefix("sha256:").unwrap()),
    )
    .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    (
        m["config"]["digest"].as_str().unwrap().to_string(),
        manifest_digest,
        manifest,
    )
}

/// The rebuilt image (config, manifest, oci: layout) is the reference's uncompressed image
/// byte for byte, and skopeo reads the layout.
fn assert_reference_image(out: &Path, j: &serde_json::Value) {
    let (config_digest, manifest_digest, manifest) = reference_none();
    assert_eq!(
        config_digest,
        world().get("WORLD_IMAGE_REPRO_CONFIG_DIGEST")
    );
    let img = &j["image"];
    assert_eq!(
        img["config"]["digest"],
        config_digest.as_str(),
        "config digest"
    );
    assert_eq!(img["config_matches"], true);
    assert_eq!(
        img["manifest"]["digest"],
        manifest_digest.as_str(),
        "manifest digest"
    );
    // the lock was made from the gzip image: its manifest names other blobs
    assert_eq!(img["manifest_matches"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read(img["manifest"]["file"].as_str().unwrap()).unwrap(),
        manifest
    );
    let oci = out.join("oci");
    assert_eq!(img["oci"], oci.to_str().unwrap());
    let tag = img["tag"].as_str().unwrap();
    assert_eq!(tag, world().get("WORLD_IMAGE_VERSION"));
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{tag}", oci.display()))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(raw.stdout, manifest, "skopeo reads our layout's manifest");
    // every blob of the layout is where its digest says
    for e in std::fs::read_dir(oci.join("blobs/sha256")).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(sha256(&p), p.file_name().unwrap().to_str().unwrap());
    }
}

#[test]
fn two_builds_are_byte_identical_and_keep_builddir_keeps_the_tree() {
    let p = prepared();
    let (a, b) = (p.dir.join("twice-a"), p.dir.join("twice-b"));
    for (out, extra) in [(&a, &[][..]), (&b, &["--keep-builddir"][..])] {
        let o = build(&p.cache, &p.lock, out, extra);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for f in ["repro.tar", "repro.tar.zst", "repro.tar.zst.SHA256"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between two builds"
        );
    }
    // The kept tree is the one archived: its local db says SOURCE_DATE_EPOCH.
    let desc =
        std::fs::read_to_string(b.join("work/build/var/lib/pacman/local/bash-5.2.15-2/desc"))
            .unwrap();
    assert!(
        desc.contains("%INSTALLDATE%\n1793664000\n"),
        "install date: {desc}"
    );
    assert!(!a.join("work").exists());
}

/// Once fetched, a build needs no network: the lock's archive is a dead port and the
/// build runs in a network namespace of its own with no interfaces up.
#[test]
fn build_never_touches_the_network() {
    let p = prepared();
    let w = world();
    let text = std::fs::read_to_string(&p.lock).unwrap();
    let dead = text.replace(w.get("WORLD_ARCHIVE_URL"), "http://127.0.0.1:9");
    assert_ne!(dead, text);
    let lock = p.dir.join("dead-archive.lock");
    std::fs::write(&lock, dead).unwrap();
    let out = p.dir.join("offline");
    let o = Command::new("unshare")
        .arg("--net")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_repro-image"))
        .arg("--cache")
        .arg(&p.cache)
        .args(["build", lock.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .env("HOME", "/nonexistent")
        .output()
        .expect("unshare (util-linux)");
    assert!(
        o.status.success(),
        "offline build failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_reference(&out);
}

#[test]
fn a_tampered_package_in_the_store_is_refused_before_anything_is_built() {
    let p = prepared();
    // A copy of the store with one package file changed after it was fetched.
    let cache = p.dir.join("tampered-cache");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&p.cache)
        .arg(&cache)
        .status()
        .unwrap();
    assert!(st.success());
    let lock = repro_lock::Lock::load(&p.lock).unwrap();
    let pin = lock.package("bash").unwrap();
    let blob = cache.join("blobs/sha256").join(pin.sha256.as_str());
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01;
    let _ = std::fs::remove_file(&blob);
    std::fs::write(&blob, &bytes).unwrap();

    let out = p.dir.join("tampered-out");
    let o = build(&cache, &p.lock, &out, &[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("package bash 5.2.15-2") && stderr.contains("does not match the lock"),
        "{stderr}"
    );
    assert!(stderr.contains(pin.sha256.as_str()), "{stderr}");
    assert!(!out.join("repro.tar").exists());
    assert!(!out.join("work").exists(), "the work tree is removed");
    // nothing ran: no recipe step reached the log
    let log = std::fs::read_to_string(out.join("build.log")).unwrap_or_default();
    assert!(!log.contains("pacman -Sy"), "{log}");
}

#[test]
fn a_package_missing_from_the_store_says_to_fetch_it() {
    let p = prepared();
    let empty = p.dir.join("empty-cache");
    let out = p.dir.join("missing-out");
    let stderr = common::err(
        &empty,
        &[
            "build",
            p.lock.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        stderr.contains("is not in the content store") && stderr.contains("repro-image fetch"),
        "{stderr}"
    );
    assert!(!out.join("repro.tar").exists());
}

/// A kernel that gives this user no user namespace (here: 33 nested ones, the kernel's
/// limit) gets a clear refusal before anything is built, naming the way out; `--no-image`
/// still builds the rootfs there (fakechroot and fakeroot need no namespace).
#[test]
fn without_user_namespaces_a_rootless_build_refuses_up_front_and_no_image_still_works() {
    let p = prepared();
    let mut wrap: Vec<&str> = Vec::new();
    for _ in 0..33 {
        wrap.extend(["unshare", "--user", "--map-current-user", "--"]);
    }
    wrap.extend([
        "sh",
        "-c",
        // the precondition, checked: no user namespace can be made in here
        r#"if unshare --user --map-root-user true 2>/dev/null; then echo "precondition: a user namespace can still be made" >&2; exit 99; fi; exec "$@""#,
        "sh",
    ]);
    let run = |out: &Path, extra: &[&str]| build_unprivileged(out, &wrap, extra).1;
    let out = p.dir.join("no-userns");
    let o = run(&out, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("not root, and no user namespace for the image step")
            && err.contains("unshare --user --map-root-user true")
            && err.contains("--no-image"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&out).unwrap().count(),
        0,
        "refused before anything was written"
    );

    let out = p.dir.join("no-userns-no-image");
    let o = run(&out, &["--no-image"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_reference(&out);
    assert!(!out.join("layers").exists() && !out.join("oci").exists());
}
