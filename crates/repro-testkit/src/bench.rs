//! What the `benches/` harnesses share: knobs from the environment, medians, timing a
//! command with its peak RSS, hashing files, and the layer blobs of an `oci:` layout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A number from the environment (`ROUNDS=5`), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (upper middle for an even count); panics on an empty slice.
pub fn median<T: Ord + Copy>(v: &[T]) -> T {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

/// Run a peer tool's `script` with `bash -euc` in a cleared environment (Debian's PATH,
/// `TZ=UTC`, `LC_ALL=C`); panics naming the script when it fails.
pub fn sh(script: &str) {
    let ok = Command::new("bash")
        .arg("-euc")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .status()
        .expect("bash runs")
        .success();
    assert!(ok, "failed: {script}");
}

/// The order of the two contenders in `round` (`true`: ours): alternated each round, so
/// that neither always gets the warmer page cache.
pub fn order(round: usize) -> [bool; 2] {
    if round.is_multiple_of(2) {
        [true, false]
    } else {
        [false, true]
    }
}

/// One run of a command under `/usr/bin/time -f %M`.
pub struct Timed {
    pub took: Duration,
    /// Peak resident set size, bytes.
    pub peak_rss: u64,
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: Vec<u8>,
}

/// Run `cmd` (program and arguments) under `/usr/bin/time -f %M` (Debian's `time`).
pub fn timed(cmd: &[&str]) -> Timed {
    let marker = "PEAK_RSS_KB=";
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg(format!("{marker}%M"))
        .args(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("/usr/bin/time runs (apt-get install time)");
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    let kb: u64 = err
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(marker))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {err}"));
    Timed {
        took,
        peak_rss: kb * 1024,
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
    }
}

/// sha256 of a file, hex.
pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    hex::encode(h.finalize())
}

/// `oci:DIR:REF` → (DIR, REF).
pub fn split_oci(image: &str) -> (PathBuf, String) {
    let (dir, reference) = image
        .strip_prefix("oci:")
        .and_then(|r| r.rsplit_once(':'))
        .unwrap_or_else(|| panic!("{image}: expected oci:DIR:REF"));
    (PathBuf::from(dir), reference.to_string())
}

/// The layer blob paths of the manifest tagged `reference` in an OCI layout, bottom first.
pub fn layer_blobs(dir: &Path, reference: &str) -> Vec<PathBuf> {
    let blob = |digest: &str| {
        let (alg, hex) = digest.split_once(':').expect("algorithm:hex digest");
        dir.join("blobs").join(alg).join(hex)
    };
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let index = json(dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .expect("index.json manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .unwrap_or_else(|| panic!("{reference} not in {}/index.json", dir.display()));
    let manifest = json(blob(entry["digest"].as_str().expect("digest")));
    manifest["layers"]
        .as_array()
        .expect("manifest layers")
        .iter()
        .map(|l| blob(l["digest"].as_str().expect("layer digest")))
        .collect()
}
