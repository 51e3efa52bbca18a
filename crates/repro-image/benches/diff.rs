//! `diff` benchmark: two >= 100 MB images that differ in one file (the world's bulk image,
//! and a copy whose big layer has one byte of one file flipped), against reading both images
//! once (`repro-image files A; repro-image files B`). Alternating, in one run; prints each
//! round, the ratio of medians (diff / files A + files B; goal <= 1.2x) and the peak RSS of
//! the diff.
//!
//!     cargo bench -p repro-image --bench diff          # ROUNDS=5 to change
//!
//! The bulk world is brought up in `target/world-bulk` (`BULK_WORLD_DIR` overrides it), as the
//! `files` benchmark does; the second image is made once under
//! `target/bench-fixtures/diff-<layer digest>/` from the world's `oci-zstd` layout: the
//! layer is decompressed, one byte of a regular file's content is flipped in place (the tar
//! stays valid: content has no checksum), recompressed with `zstd -3`, and config, manifest
//! and index.json rewritten. The benchmark checks that the diff names exactly that file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use repro_testkit::bench::{self, env_num, median, sha256_file, split_oci, timed};
use repro_world::World;
use serde_json::Value;

fn blob(dir: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap();
    dir.join("blobs").join(alg).join(hex)
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().expect("command runs");
    assert!(out.status.success(), "{cmd:?} failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Write `bytes` as a blob of the layout; returns (digest, size).
fn put(dir: &Path, bytes: &[u8]) -> (String, u64) {
    let d = repro_oci::digest::sha256_of(bytes).to_string();
    std::fs::write(blob(dir, &d), bytes).unwrap();
    (d, bytes.len() as u64)
}

/// The layout `src` (ref `reference`) with one byte of one file of layer 0 flipped, under
/// `out`; returns the image reference and the changed file's path.
fn one_file_changed(src: &Path, reference: &str, out: &Path) -> (String, String) {
    let index = json(&src.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == reference)
        .expect("ref in index.json")
        .clone();
    let mut manifest = json(&blob(src, entry["digest"].as_str().unwrap()));
    let layer0 = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let done = out.join("done");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(out);
        std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
        for e in std::fs::read_dir(src.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            std::fs::hard_link(e.path(), out.join("blobs/sha256").join(e.file_name())).unwrap();
        }
        let tar = out.join("layer.tar");
        sh(Command::new("sh").arg("-c").arg(format!(
            "zstd -q -d -c '{}' > '{}'",
            blob(src, &layer0).display(),
            tar.display()
        )));
        // The first regular file of > 4 KiB with a plain ustar header: its content follows.
        let listing = sh(Command::new("tar").arg("-R").arg("-tvf").arg(&tar));
        let mut bytes = std::fs::read(&tar).unwrap();
        let (path, offset) = listing
            .lines()
            .find_map(|l| {
                let (block, rest) = l.strip_prefix("block ")?.split_once(": ")?;
                let f: Vec<&str> = rest.split_whitespace().collect();
                if !f.first()?.starts_with('-') || f.get(2)?.parse::<u64>().ok()? < 4096 {
                    return None;
                }
                let name = f.get(5)?.trim_start_matches("./");
                let h = block.parse::<usize>().ok()? * 512;
                let hdr = bytes.get(h..h + 512)?;
                let stored = String::from_utf8_lossy(&hdr[..100]);
                let typ = hdr[156];
                (stored.trim_end_matches('\0').trim_start_matches("./") == name
                    && (typ == b'0' || typ == 0))
                    .then(|| (name.to_string(), h + 512 + 100))
            })
            .expect("a regular file to change");
        bytes[offset] ^= 0x01;
        std::fs::write(&tar, &bytes).unwrap();
        drop(bytes);
        let diff_id = sha256_file(&tar);
        let zst = out.join("layer.tar.zst");
        sh(Command::new("zstd")
            .args(["-q", "-T0", "-3", "-f", "-o"])
            .arg(&zst)
            .arg(&tar));
        let layer_digest = sha256_file(&zst);
        let layer_size = std::fs::metadata(&zst).unwrap().len();
        std::fs::rename(&zst, blob(out, &layer_digest)).unwrap();
        std::fs::remove_file(&tar).unwrap();
        let mut config = json(&blob(src, manifest["config"]["digest"].as_str().unwrap()));
        config["rootfs"]["diff_ids"][0] = Value::String(diff_id);
        let (cd, cs) = put(out, &serde_json::to_vec(&config).unwrap());
        manifest["config"]["digest"] = cd.into();
        manifest["config"]["size"] = cs.into();
        manifest["layers"][0]["digest"] = layer_digest.into();
        manifest["layers"][0]["size"] = layer_size.into();
        let (md, ms) = put(out, &serde_json::to_vec(&manifest).unwrap());
        let mut e = entry.clone();
        e["digest"] = md.into();
        e["size"] = ms.into();
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": [e]});
        std::fs::write(out.join("index.json"), serde_json::to_vec(&idx).unwrap()).unwrap();
        std::fs::write(out.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(&done, &path).unwrap();
    }
    let path = std::fs::read_to_string(&done).unwrap();
    (format!("oci:{}:{reference}", out.display()), path)
}

fn main() {
    let rounds = env_num("ROUNDS", 5).max(1) as usize;
    let repo = repro_world::repo_root();
    let env = &World::bulk().env;
    let a = env
        .get("WORLD_OCI_BULK_ZSTD")
        .expect("WORLD_OCI_BULK_ZSTD in the world's env file")
        .clone();
    let (dir, reference) = split_oci(&a);
    let diff_ids = env.get("WORLD_IMAGE_BULK_DIFF_IDS").unwrap();
    let key = &diff_ids[7..23];
    let fixture = repo.join(format!("target/bench-fixtures/diff-{key}"));
    let (b, changed) = one_file_changed(&dir, &reference, &fixture);

    let bin = env!("CARGO_BIN_EXE_repro-image");
    let diff_cmd = [bin, "--quiet", "--json", "diff", &a, &b];
    let files_script = format!(
        "'{bin}' --quiet files \"$1\" >/dev/null; '{bin}' --quiet files \"$2\" >/dev/null; true"
    );
    let files_cmd = ["bash", "-c", &files_script, "files", &a, &b];

    // The diff names exactly the changed file (and what summarises it).
    let t = timed(&diff_cmd);
    assert_eq!(t.code, 1, "the images differ");
    let j: Value = serde_json::from_slice(&t.stdout).unwrap();
    let files: Vec<(String, String)> = j["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["level"] == "file")
        .map(|d| {
            (
                d["path"].as_str().unwrap().into(),
                d["field"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        files,
        vec![(changed.clone(), "sha256".to_string())],
        "{j:#}"
    );
    timed(&files_cmd);

    println!("diff {a}\n  vs {b}\n  (one byte of {changed} flipped)");
    let (mut ours, mut peer, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for is_ours in bench::order(round) {
            if is_ours {
                let t = timed(&diff_cmd);
                assert_eq!(t.code, 1);
                ours.push(t.took);
                rss.push(t.peak_rss);
            } else {
                peer.push(timed(&files_cmd).took);
            }
        }
        println!(
            "round {round}: diff {:>7.3}s (peak RSS {:>6.1} MB)  files A + files B {:>7.3}s  ratio {:.2}x",
            ours[round].as_secs_f64(),
            rss[round] as f64 / 1e6,
            peer[round].as_secs_f64(),
            ours[round].as_secs_f64() / peer[round].as_secs_f64()
        );
    }
    let (mo, mp) = (median(&ours), median(&peer));
    let ratio = mo.as_secs_f64() / mp.as_secs_f64();
    let peak = *rss.iter().max().unwrap();
    println!(
        "diff vs files on each, {rounds} rounds: median diff {:.3}s, files A + B {:.3}s, ratio {ratio:.2}x (goal <= 1.20x: {}); diff peak RSS {:.1} MB",
        mo.as_secs_f64(),
        mp.as_secs_f64(),
        if ratio <= 1.2 { "met" } else { "MISSED" },
        peak as f64 / 1e6,
    );
}
