//! `status` benchmark: an image with 1,000 pacman packages against three rebuilders holding
//! 10,000 records each (every image package GOOD with a signed attestation on each, the
//! rest other packages), cold (empty cache and key store) and warm (same cache). Prints wall
//! time, requests and bytes fetched per round and the medians; goal: cold under 2 s.
//!
//!     cargo bench -p repro-image --bench status        # ROUNDS=5, PACKAGES=1000, RECORDS=10000
//!
//! The rebuilders are `repro_testkit::FakeRebuilderd` (rebuilderd's v1 API and JSON shapes,
//! paged at 1,000, attestations signed per record): a real rebuilderd holding 10,000 GOOD
//! builds would need 10,000 rebuilds. The image is a generated OCI layout whose single layer
//! holds a pacman local db (`ALPM_DB_VERSION`, `desc` + `files` per package).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use repro_testkit::bench::{env_num, median};
use repro_testkit::{FakeRebuilderd, FakeRecord, LayerSpec, TestImage};

fn pkg_name(i: usize) -> String {
    format!("pkg{i:05}")
}

fn image(dir: &Path, packages: usize) -> TestImage {
    let mut layer = LayerSpec::new()
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("var/lib/pacman", 0o755)
        .dir("var/lib/pacman/local", 0o755)
        .file("var/lib/pacman/local/ALPM_DB_VERSION", "9\n", 0o644);
    for i in 0..packages {
        let (n, v) = (pkg_name(i), "1.0-1");
        let d = format!("var/lib/pacman/local/{n}-{v}");
        let desc = format!(
            "%NAME%\n{n}\n\n%VERSION%\n{v}\n\n%BASE%\n{n}\n\n%DESC%\nbenchmark package\n\n\
             %URL%\nhttps://example.invalid\n\n%ARCH%\nx86_64\n\n%BUILDDATE%\n1793404800\n\n\
             %INSTALLDATE%\n1793491200\n\n%PACKAGER%\nBench <bench@example.invalid>\n\n\
             %SIZE%\n1024\n\n%REASON%\n1\n\n%LICENSE%\nMIT\n\n%VALIDATION%\npgp\n\n"
        );
        layer = layer
            .dir(&d, 0o755)
            .file(&format!("{d}/desc"), desc, 0o644)
            .file(&format!("{d}/files"), "%FILES%\n\n", 0o644);
    }
    TestImage::build(dir, &[layer])
}

fn records(packages: usize, total: usize, salt: usize) -> Vec<FakeRecord> {
    (0..total)
        .map(|i| {
            let (name, status) = if i < packages {
                (pkg_name(i), Some("GOOD"))
            } else {
                // Other packages: mostly GOOD, some BAD and unbuilt, as on a real rebuilder.
                let s = match (i + salt) % 10 {
                    0 => Some("BAD"),
                    1 => None,
                    _ => Some("GOOD"),
                };
                (format!("other{i:06}"), s)
            };
            FakeRecord {
                sha256: format!("{:064x}", i + 1),
                name,
                version: "1.0-1".into(),
                arch: "x86_64".into(),
                status,
            }
        })
        .collect()
}

struct Round {
    took: Duration,
    requests: u64,
    bytes: u64,
    verified: u64,
}

fn run(image: &str, urls: &[String], cache: &Path, keys: &Path) -> Round {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_repro-image"));
    cmd.arg("--cache")
        .arg(cache)
        .args(["status", image, "--json", "--known-keys"])
        .arg(keys)
        .env("HOME", "/nonexistent")
        .env_remove("REBUILDERD");
    for u in urls {
        cmd.args(["-r", u]);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run repro-image");
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let sum = |k: &str| -> u64 {
        j["rebuilders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["stats"][k].as_u64().unwrap())
            .sum()
    };
    Round {
        took,
        requests: sum("requests"),
        bytes: sum("bytes"),
        verified: j["attestations"]["verified"].as_u64().unwrap(),
    }
}

fn main() {
    let rounds = env_num("ROUNDS", 5).max(1) as usize;
    let packages = env_num("PACKAGES", 1000) as usize;
    let total = (env_num("RECORDS", 10_000) as usize).max(packages);
    let tmp = tempfile::tempdir().expect("tempdir");
    let img = image(&tmp.path().join("image"), packages);
    let servers: Vec<FakeRebuilderd> = (0..3)
        .map(|i| FakeRebuilderd::start(10 + i as u8, &records(packages, total, i)))
        .collect();
    let urls: Vec<String> = servers.iter().map(|s| s.url()).collect();
    println!(
        "status benchmark: {packages} packages, 3 rebuilders x {total} records, {rounds} rounds"
    );
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let cache = tmp.path().join(format!("cache-{r}"));
        let keys = tmp.path().join(format!("keys-{r}.json"));
        let c = run(&img.oci_ref(), &urls, &cache, &keys);
        let w = run(&img.oci_ref(), &urls, &cache, &keys);
        assert_eq!(c.verified as usize, 3 * packages, "every GOOD attested");
        assert_eq!(w.verified, c.verified);
        println!(
            "round {}: cold {:>7.3} s, {:>5} requests, {:>9} bytes | warm {:>7.3} s, {:>5} requests, {:>9} bytes",
            r + 1,
            c.took.as_secs_f64(),
            c.requests,
            c.bytes,
            w.took.as_secs_f64(),
            w.requests,
            w.bytes
        );
        cold.push(c);
        warm.push(w);
    }
    let mc = median(&cold.iter().map(|r| r.took).collect::<Vec<_>>());
    let mw = median(&warm.iter().map(|r| r.took).collect::<Vec<_>>());
    println!(
        "median cold {:.3} s ({} requests, {:.1} MB), warm {:.3} s ({} requests, {:.1} MB); goal cold < 2 s: {}",
        mc.as_secs_f64(),
        cold[0].requests,
        cold[0].bytes as f64 / 1e6,
        mw.as_secs_f64(),
        warm[0].requests,
        warm[0].bytes as f64 / 1e6,
        if mc < Duration::from_secs(2) {
            "met"
        } else {
            "NOT met"
        }
    );
}
