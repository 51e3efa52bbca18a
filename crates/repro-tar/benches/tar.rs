//! Rootfs tarball benchmark: repro-tar's one-pass pipeline (GNU-tar-identical writer →
//! sha256 → zstd on the system libzstd → files) against the recipe's own commands on the
//! same tree, in one run, alternating:
//!
//! - peer (the recipe): `tar <recipe flags> -f repro.tar && zstd --long -T0 -8 repro.tar`
//!   (+ `sha256sum`, as the recipe writes `repro.tar.zst.SHA256`);
//! - also shown: `tar … -f - | zstd --long -T0 -8` (a pipe: no content size in the frame,
//!   so other bytes, and no `.tar` written), against repro-tar writing only the `.tar.zst`
//!   (same outputs as the pipe; repro-tar's bytes are still the recipe's).
//!
//! The tree is the test world's bulk rootfs (≈ 200 MB, 21k files), extracted once as root
//! into `target/bench-fixtures/repro-tar-bulk` (re-extracted when the tarball changes).
//! Every round checks that repro-tar's `.tar` and `.tar.zst` equal the peer's byte for
//! byte. Prints each round, the medians and the ratio repro-tar / recipe (goal <= 1.0x).
//!
//!     cargo bench -p repro-tar --bench tar          # ROUNDS=5 to change (default 3)

use std::path::{Path, PathBuf};
use std::time::Instant;

use repro_tar::Exclude;
use repro_tar::gnu::{self, GnuOptions};
use repro_tar::pipeline::{self, Compression, Outputs};
use repro_tar::zst::{self, ZstdParams};
use repro_testkit::bench::{env_num, median, sh, sha256_file};
use repro_world::World;

/// The bulk world's rootfs tarball and SOURCE_DATE_EPOCH (bringing the bulk world up, cached).
fn bulk_rootfs() -> (PathBuf, i64) {
    let w = World::bulk();
    let sde = w.get("WORLD_IMAGE_SDE").parse().expect("WORLD_IMAGE_SDE");
    (PathBuf::from(w.get("WORLD_ROOTFS_BULK_TAR")), sde)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the benchmark extracts a rootfs with its owners: run it as root"
    );
    let rounds = env_num("ROUNDS", 3).max(1) as usize;
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let (rootfs_tar, sde) = bulk_rootfs();
    let exclude = repo.join("tests/world/recipe/exclude");

    let fixtures = repo.join("target/bench-fixtures");
    let tree = fixtures.join("repro-tar-bulk");
    let stamp = fixtures.join("repro-tar-bulk.sha256");
    let want = sha256_file(&rootfs_tar);
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!(
            "extracting {} into {} ...",
            rootfs_tar.display(),
            tree.display()
        );
        let _ = std::fs::remove_dir_all(&tree);
        std::fs::create_dir_all(&tree).unwrap();
        sh(&format!(
            "tar --xattrs --xattrs-include='*' --acls --numeric-owner --same-owner -xpf '{}' -C '{}'",
            rootfs_tar.display(),
            tree.display()
        ));
        std::fs::write(&stamp, &want).unwrap();
    }
    let out = fixtures.join("repro-tar-out");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let tar_flags = format!(
        "--numeric-owner --xattrs --acls --mtime=@{sde} --clamp-mtime --sort=name \
         --pax-option=delete=atime,delete=ctime --exclude-from='{}'",
        exclude.display()
    );
    let peer_script = format!(
        "cd '{o}' && rm -f peer.tar peer.tar.zst && tar {tar_flags} -C '{t}' -c . -f peer.tar \
         && zstd -q --long -T0 -8 peer.tar -o peer.tar.zst && sha256sum peer.tar.zst > peer.tar.zst.SHA256",
        o = out.display(),
        t = tree.display()
    );
    let pipe_script = format!(
        "cd '{o}' && tar {tar_flags} -C '{t}' -c . -f - | zstd -q --long -T0 -8 -c > pipe.tar.zst",
        o = out.display(),
        t = tree.display()
    );
    let options = GnuOptions::recipe(sde, Exclude::from_file(&exclude).unwrap());
    let outputs = Outputs {
        tar: Some(out.join("ours.tar")),
        compression: Some(Compression::Zstd(ZstdParams::recipe())),
        blob: Some(out.join("ours.tar.zst")),
    };
    let tree_bytes: u64 = gnu::plan(&tree, &options).unwrap().size();
    println!(
        "repro-tar bench: {} ({:.0} MB tar), libzstd {}, {} zstd workers, {rounds} rounds",
        tree.display(),
        tree_bytes as f64 / 1e6,
        zst::libzstd().version,
        zst::default_workers()
    );
    let blob_only = Outputs {
        tar: None,
        compression: Some(Compression::Zstd(ZstdParams::recipe())),
        blob: Some(out.join("blob-only.tar.zst")),
    };
    let (mut ours_t, mut peer_t, mut pipe_t, mut blob_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let start = Instant::now();
        sh(&peer_script);
        peer_t.push(start.elapsed());

        let start = Instant::now();
        let plan = gnu::plan(&tree, &options).unwrap();
        let produced = pipeline::run(Some(plan.size()), &outputs, |w| plan.write_to(w)).unwrap();
        ours_t.push(start.elapsed());

        let start = Instant::now();
        sh(&pipe_script);
        pipe_t.push(start.elapsed());

        let start = Instant::now();
        let plan = gnu::plan(&tree, &options).unwrap();
        let blob = pipeline::run(Some(plan.size()), &blob_only, |w| plan.write_to(w)).unwrap();
        blob_t.push(start.elapsed());

        let peer_tar = sha256_file(&out.join("peer.tar"));
        let peer_zst = sha256_file(&out.join("peer.tar.zst"));
        assert_eq!(
            produced.tar.sha256, peer_tar,
            "repro-tar's tar differs from GNU tar's"
        );
        assert_eq!(sha256_file(&out.join("ours.tar")), peer_tar);
        assert_eq!(
            produced.blob.as_ref().unwrap().sha256,
            peer_zst,
            "repro-tar's .tar.zst differs from zstd's"
        );
        assert_eq!(sha256_file(&out.join("ours.tar.zst")), peer_zst);
        assert_eq!(blob.blob.as_ref().unwrap().sha256, peer_zst);
        println!(
            "round {}: repro-tar {:>7.3}s | recipe (tar; zstd) {:>7.3}s || repro-tar .zst only {:>7.3}s | tar | zstd {:>7.3}s   identical: yes",
            round + 1,
            ours_t[round].as_secs_f64(),
            peer_t[round].as_secs_f64(),
            blob_t[round].as_secs_f64(),
            pipe_t[round].as_secs_f64(),
        );
    }
    let (o, p, q, b) = (
        median(&ours_t),
        median(&peer_t),
        median(&pipe_t),
        median(&blob_t),
    );
    println!(
        "median: repro-tar {:.3}s, recipe {:.3}s; repro-tar .zst only {:.3}s, tar | zstd {:.3}s",
        o.as_secs_f64(),
        p.as_secs_f64(),
        b.as_secs_f64(),
        q.as_secs_f64()
    );
    println!(
        "ratio repro-tar / recipe (tar -f; zstd FILE): {:.2}x (goal <= 1.0x); .zst only / (tar | zstd): {:.2}x",
        o.as_secs_f64() / p.as_secs_f64(),
        b.as_secs_f64() / q.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&out);
}
