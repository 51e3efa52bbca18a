//! `files` benchmark: file accounting of the test world's bulk image (>= 100 MB, >= 20k
//! files) against the one-pass floor on the same layer blobs (`zstd -dc LAYER | sha256sum`,
//! each layer in turn), alternating, in one run. Prints each round, the ratio of medians
//! (repro-image / floor; goal <= 1.3x) and the peak RSS of repro-image (goal < 150 MB).
//!
//!     cargo bench -p repro-image --bench files          # ROUNDS=5 to change
//!
//! The bulk world is brought up in its own directory, `target/world-bulk` (`WORLD_DIR`
//! overrides it), so the shared `target/world` is not disturbed: the first run builds the
//! packages and images (minutes), later runs are cached. The image is read from the
//! world's `oci-zstd` layout (`COMPRESSION=gzip` for `oci-gzip` against `gzip -dc`), so
//! no registry timing is measured. Peak RSS comes from `/usr/bin/time -f %M` (Debian's
//! `time` package).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median<T: Ord + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The layer blob paths of `oci:DIR:REF`, bottom first.
fn layer_blobs(dir: &Path, reference: &str) -> Vec<PathBuf> {
    let blob = |digest: &str| {
        let (alg, hex) = digest.split_once(':').unwrap();
        dir.join("blobs").join(alg).join(hex)
    };
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let index = json(dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .expect("ref in index.json");
    let manifest = json(blob(entry["digest"].as_str().unwrap()));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

/// Run `cmd` under `/usr/bin/time -f %M`: wall time and peak RSS in bytes.
fn timed(cmd: &[&str]) -> (Duration, u64) {
    let marker = "PEAK_RSS_KB=";
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg(format!("{marker}%M"))
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    // `files` exits 2 when part of the database could not be read; that is still a run.
    assert!(
        matches!(out.status.code(), Some(0) | Some(2)) && !err.contains("Command exited"),
        "{cmd:?} failed: {err}"
    );
    let kb: u64 = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(marker))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {err}"));
    (took, kb * 1024)
}

fn main() {
    let rounds = env_num("ROUNDS", 5).max(1) as usize;
    let compression = std::env::var("COMPRESSION").unwrap_or_else(|_| "zstd".into());
    assert!(compression == "zstd" || compression == "gzip");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let repo = repo.canonicalize().unwrap();
    let world_dir = std::env::var("WORLD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target/world-bulk"));
    eprintln!(
        "bringing up the bulk world in {} (cached after the first run) ...",
        world_dir.display()
    );
    let up = Command::new("bash")
        .arg(repo.join("tests/world/world"))
        .args(["up", "--bulk", "--skip", "rebuilders"])
        .env("WORLD_DIR", &world_dir)
        .env("WORLD_BULK", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("tests/world/world runs");
    assert!(up.success(), "world up --bulk failed");
    let env = read_env(&world_dir.join("env"));
    let key = format!("WORLD_OCI_BULK_{}", compression.to_uppercase());
    let image = env
        .get(&key)
        .unwrap_or_else(|| panic!("{key} missing from the world's env file"))
        .clone();
    let (dir, reference) = image
        .strip_prefix("oci:")
        .and_then(|r| r.rsplit_once(':'))
        .expect("oci:DIR:REF");
    let layers = layer_blobs(Path::new(dir), reference);
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
        let mut order = [true, false];
        if round % 2 == 1 {
            order.reverse();
        }
        for is_ours in order {
            if is_ours {
                let (t, m) = timed(&ours_cmd);
                ours.push(t);
                rss.push(m);
            } else {
                floor.push(timed(&floor_cmd).0);
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
