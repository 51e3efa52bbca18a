//! Copy benchmark: a >= 100 MB, >= 20k-file image from the local docker-registry to an
//! `oci:` layout, with repro-image and with `skopeo copy`, alternating, in one run.
//! Prints each round and the ratio of medians (repro-image / skopeo; below 1.0 is faster).
//!
//!     cargo bench -p repro-image --bench copy            # ROUNDS=5 MIN_MB=100 to change
//!
//! Each round starts from an empty cache and an empty destination, so both tools download
//! and write every byte. The fixture (image built from this machine's /usr files) is
//! cached under target/bench-fixtures.

use repro_testkit::bench::{self, env_num, median};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use repro_testkit::{Registry, TestImage, skopeo_copy_to_registry};

fn run(cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().expect("command runs");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

fn main() {
    // `cargo bench` passes --bench; nothing else is accepted.
    let rounds = env_num("ROUNDS", 5).max(1) as usize;
    let min_mb = env_num("MIN_MB", 100);
    let min_files = env_num("MIN_FILES", 20_000) as usize;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-fixtures");
    let fixture = root.join(format!("bulk-{min_mb}mb-{min_files}"));
    if !fixture.join("index.json").exists() {
        eprintln!(
            "building the bulk image fixture in {} ...",
            fixture.display()
        );
        let tmp = root.join(format!("bulk-{min_mb}mb-{min_files}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        TestImage::bulk(&tmp, min_mb * 1_000_000, min_files);
        std::fs::rename(&tmp, &fixture).expect("publish fixture");
    }
    let reg = Registry::start();
    skopeo_copy_to_registry(&fixture, &reg, "bench/bulk:latest");
    let src = format!("docker://{}/bench/bulk:latest", reg.host());
    let work = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_repro-image");
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut bytes = 0;
    for round in 0..rounds {
        let cache = work.path().join(format!("cache-{round}"));
        let a = work.path().join(format!("ours-{round}"));
        let b = work.path().join(format!("skopeo-{round}"));
        for is_ours in bench::order(round) {
            if is_ours {
                let t = run(Command::new(bin)
                    .args(["--tls-verify=false", "--quiet", "--cache"])
                    .arg(&cache)
                    .args(["copy", &src])
                    .arg(format!("oci:{}:bulk", a.display())));
                ours.push(t);
            } else {
                let t = run(Command::new("skopeo")
                    .args([
                        "--insecure-policy",
                        "copy",
                        "--quiet",
                        "--src-tls-verify=false",
                        &src,
                    ])
                    .arg(format!("oci:{}:bulk", b.display())));
                theirs.push(t);
            }
        }
        bytes = dir_size(&a.join("blobs"));
        println!(
            "round {round}: repro-image {:>8.3}s  skopeo {:>8.3}s",
            ours[round].as_secs_f64(),
            theirs[round].as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&cache);
        let _ = std::fs::remove_dir_all(&a);
        let _ = std::fs::remove_dir_all(&b);
    }
    let mo = median(&ours);
    let ms = median(&theirs);
    println!(
        "copy registry -> oci: {:.1} MB of blobs (>= {min_mb} MB in >= {min_files} files uncompressed), {rounds} rounds: median repro-image {:.3}s, skopeo {:.3}s, ratio {:.2}x",
        bytes as f64 / 1e6,
        mo.as_secs_f64(),
        ms.as_secs_f64(),
        mo.as_secs_f64() / ms.as_secs_f64()
    );
}
