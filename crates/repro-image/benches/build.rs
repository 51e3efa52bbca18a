//! `repro-image build` benchmark on the test world's bulk image (≈ 230 MB rootfs, 21k
//! files; `tests/world/world up --bulk`, brought up and cached by `World::bulk()`):
//!
//! 1. lock + fetch once, then one whole `repro-image build LOCK -o OUT --keep-builddir
//!    --image-title Bulk`
//!    (pacman install, recipe steps, rootfs tar + zstd, both image layers, config,
//!    manifest, `oci:` layout), timed for information; its `repro.tar` must equal the
//!    world's reference bulk rootfs, its config and manifest the bulk image's (`oci-none`);
//! 2. the tar + compress stage on the tree that build kept, in one run, alternating:
//!    the recipe's `fakeroot -- tar <recipe flags> -f repro.tar && zstd --long -T0 -8
//!    repro.tar && sha256sum` against repro-tar's one-pass pipeline (fakeroot view of the
//!    owners, tar -> sha256 -> libzstd -> files); every round checks both give the same
//!    bytes. Prints each round, the medians and the ratio (goal <= 1.0x).
//!
//!     cargo bench -p repro-image --bench build        # ROUNDS=5 to change (default 3)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use repro_tar::Exclude;
use repro_tar::gnu::{self, GnuOptions};
use repro_tar::pipeline::{self, Compression, Outputs};
use repro_tar::zst::{self, ZstdParams};
use repro_testkit::bench::{env_num, median, sh, sha256_file};
use repro_world::World;

fn repro_image(cache: &Path, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_repro-image"))
        .arg("--cache")
        .arg(cache)
        .arg("--quiet")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run repro-image");
    assert!(
        out.status.success(),
        "repro-image {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let rounds = env_num("ROUNDS", 3).max(1) as usize;
    let repo: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let w = World::bulk();
    let sde: i64 = w.get("WORLD_IMAGE_SDE").parse().expect("WORLD_IMAGE_SDE");
    let fixtures = repo.join("target/bench-fixtures/repro-image-build");
    let cache = fixtures.join("cache");
    let lock = fixtures.join("bulk.lock");
    let out = fixtures.join("out");
    std::fs::create_dir_all(&fixtures).unwrap();
    let lock_s = lock.to_str().unwrap();
    repro_image(
        &cache,
        &[
            "lock",
            w.get("WORLD_OCI_BULK_GZIP"),
            "--archive",
            w.get("WORLD_ARCHIVE_URL"),
            "-o",
            lock_s,
        ],
    );
    repro_image(
        &cache,
        &["fetch", lock_s, "--keyring", w.get("WORLD_KEYRING")],
    );

    let start = Instant::now();
    repro_image(
        &cache,
        &[
            "build",
            lock_s,
            "-o",
            out.to_str().unwrap(),
            "--keep-builddir",
            // the world builds the bulk image with the title word `Bulk`
            "--image-title",
            "Bulk",
        ],
    );
    let whole = start.elapsed();
    let reference = sha256_file(Path::new(w.get("WORLD_ROOTFS_BULK_TAR")));
    assert_eq!(
        sha256_file(&out.join("repro.tar")),
        reference,
        "the build's repro.tar is not the reference bulk rootfs"
    );
    // and the image: the reference's config, and its manifest with uncompressed layers
    let index = std::fs::read_to_string(out.join("oci/index.json")).unwrap();
    let ours_manifest = index
        .split("\"digest\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let (none_dir, _) = w
        .get("WORLD_OCI_BULK_NONE")
        .strip_prefix("oci:")
        .unwrap()
        .rsplit_once(':')
        .unwrap();
    let reference_index = std::fs::read_to_string(Path::new(none_dir).join("index.json")).unwrap();
    assert!(
        reference_index.contains(ours_manifest),
        "the rebuilt manifest {ours_manifest} is not the reference's: {reference_index}"
    );
    assert!(
        out.join("oci/blobs/sha256")
            .join(
                w.get("WORLD_IMAGE_BULK_CONFIG_DIGEST")
                    .trim_start_matches("sha256:")
            )
            .is_file(),
        "the rebuilt config is not the reference's"
    );
    let tree = out.join("work/build");
    let exclude = repo.join("tests/world/recipe/exclude");
    let options = GnuOptions::recipe_in_fakeroot(sde, Exclude::from_file(&exclude).unwrap());
    let tar_bytes = gnu::plan(&tree, &options).unwrap().size();
    println!(
        "repro-image build bench: bulk image, {:.0} MB tar, libzstd {}, {} zstd workers, {rounds} rounds",
        tar_bytes as f64 / 1e6,
        zst::libzstd().version,
        zst::default_workers()
    );
    println!(
        "whole build (lock and fetch done before): {:.3}s; repro.tar, config and manifest = the reference bulk image's",
        whole.as_secs_f64()
    );

    let stage = fixtures.join("stage");
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(&stage).unwrap();
    let peer_script = format!(
        "cd '{o}' && rm -f peer.tar peer.tar.zst && fakeroot -- tar --numeric-owner --xattrs --acls \
         --mtime=@{sde} --clamp-mtime --sort=name --pax-option=delete=atime,delete=ctime \
         --exclude-from='{x}' -C '{t}' -c . -f peer.tar \
         && zstd -q --long -T0 -8 peer.tar -o peer.tar.zst && sha256sum peer.tar.zst > peer.tar.zst.SHA256",
        o = stage.display(),
        x = exclude.display(),
        t = tree.display()
    );
    let outputs = Outputs {
        tar: Some(stage.join("ours.tar")),
        compression: Some(Compression::Zstd(ZstdParams::recipe())),
        blob: Some(stage.join("ours.tar.zst")),
    };
    let (mut ours_t, mut peer_t) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let start = Instant::now();
        sh(&peer_script);
        peer_t.push(start.elapsed());

        let start = Instant::now();
        let plan = gnu::plan(&tree, &options).unwrap();
        let produced = pipeline::run(Some(plan.size()), &outputs, |w| plan.write_to(w)).unwrap();
        ours_t.push(start.elapsed());

        assert_eq!(produced.tar.sha256, sha256_file(&stage.join("peer.tar")));
        assert_eq!(
            produced.blob.as_ref().unwrap().sha256,
            sha256_file(&stage.join("peer.tar.zst"))
        );
        println!(
            "round {}: repro-tar (fakeroot view) {:>7.3}s | recipe (fakeroot tar; zstd; sha256sum) {:>7.3}s   identical: yes",
            round + 1,
            ours_t[round].as_secs_f64(),
            peer_t[round].as_secs_f64()
        );
    }
    let (o, p) = (median(&ours_t), median(&peer_t));
    println!(
        "median: repro-tar {:.3}s, recipe {:.3}s; ratio repro-tar / recipe: {:.2}x (goal <= 1.0x)",
        o.as_secs_f64(),
        p.as_secs_f64(),
        o.as_secs_f64() / p.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&stage);
    // the lock and the fetched packages stay (cached); the outputs are remade each run
    let _ = std::fs::remove_dir_all(&out);
}
