//! `files` benchmark: file accounting of the test world's bulk image (>= 100 MB, >= 20k
//! files) against the one-pass floor on the same layer blobs (`zstd -dc LAYER | sha256sum`,
//! each layer in turn), alternating, in one run. Prints each round, the ratio of medians
//! (repro-image / floor; goal <= 1.3x) and the peak RSS of repro-image (goal < 150 MB).
//!
//!     cargo bench -p repro-image --bench files          # ROUNDS=5 to change
//!
//! The bulk world is brought up in its own directory, `target/world-bulk` (`BULK_WORLD_DIR`
//! overrides it; `repro_world::World::bulk`), so the shared `target/world` is not disturbed: the first run builds the
//! packages and images (minutes), later runs are cached. The image is read from the
//! world's `oci-zstd` layout (`COMPRESSION=gzip` for `oci-gzip` against `gzip -dc`), so
//! no registry timing is measured. Peak RSS comes from `/usr/bin/time -f %M` (Debian's
//! `time` package).

use repro_testkit::bench::{self, env_num, layer_blobs, median, split_oci, timed};
use repro_world::World;

fn main() {
    let rounds = env_num("ROUNDS", 5).max(1) as usize;
    let compression = std::env::var("COMPRESSION").unwrap_or_else(|_| "zstd".into());
    assert!(compression == "zstd" || compression == "gzip");
    let env = &World::bulk().env;
    let key = format!("WORLD_OCI_BULK_{}", compression.to_uppercase());
    let image = env
        .get(&key)
        .unwrap_or_else(|| panic!("{key} missing from the world's env file"))
        .clone();
    let (dir, reference) = split_oci(&image);
    let layers = layer_blobs(&dir, &reference);
    let compressed: u64 = layers
        .iter()
        .map(|l| std::fs::metadata(l).unwrap().len())
        .sum();
    let floor_script = format!(
        "set -e -o pipefail; for l in \"$@\"; do {compression} -dc \"$l\" | sha256sum; done"
    );
    let bin = env!("CARGO_BIN_EXE_repro-image");
    let ours_cmd = [bin, "--tls-verify=false", "files", &image];
    let mut floor_cmd = vec!["bash", "-c", &floor_script, "floor"];
    let layer_args: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    floor_cmd.extend(layer_args.iter().map(String::as_str));

    println!(
        "files {image}: {} layers, {:.1} MB {compression}-compressed",
        layers.len(),
        compressed as f64 / 1e6
    );
    // One untimed run of each warms the page cache for both.
    timed(&ours_cmd);
    timed(&floor_cmd);
    let (mut ours, mut floor, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for is_ours in bench::order(round) {
            if is_ours {
                let t = timed(&ours_cmd);
                // `files` exits 2 when part of the database could not be read: still a run.
                assert!(matches!(t.code, 0 | 2), "{ours_cmd:?} failed");
                ours.push(t.took);
                rss.push(t.peak_rss);
            } else {
                let t = timed(&floor_cmd);
                assert_eq!(t.code, 0, "{floor_cmd:?} failed");
                floor.push(t.took);
            }
        }
        println!(
            "round {round}: repro-image files {:>7.3}s (peak RSS {:>6.1} MB)  floor {:>7.3}s  ratio {:.2}x",
            ours[round].as_secs_f64(),
            rss[round] as f64 / 1e6,
            floor[round].as_secs_f64(),
            ours[round].as_secs_f64() / floor[round].as_secs_f64()
        );
    }
    let (mo, mf) = (median(&ours), median(&floor));
    let ratio = mo.as_secs_f64() / mf.as_secs_f64();
    let peak = *rss.iter().max().unwrap();
    println!(
        "files vs `{compression} -dc | sha256sum`, {rounds} rounds: median repro-image {:.3}s, floor {:.3}s, ratio {ratio:.2}x (goal <= 1.30x: {}); peak RSS {:.1} MB (goal < 150 MB: {})",
        mo.as_secs_f64(),
        mf.as_secs_f64(),
        if ratio <= 1.3 { "met" } else { "MISSED" },
        peak as f64 / 1e6,
        if peak < 150_000_000 { "met" } else { "MISSED" },
    );
}
