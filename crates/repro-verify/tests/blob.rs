//! The blob level where the compressor cannot be replayed, on real blobs: skopeo's gzip and
//! zstd layers of the test world's reference image are shown equivalent to the
//! uncompressed layers, and every way a blob can carry more (a byte after it, a second
//! member or frame, a skippable frame, gzip header fields) or other bytes is not.
//! Judged by the same code `verify` uses: one pass of `blob::read_layer`, then
//! `BlobLayer::judge`.

use std::path::{Path, PathBuf};
use std::process::Command;

use repro_oci::Digest;
use repro_oci::digest::sha256_of;
use repro_verify::Status;
use repro_verify::blob::{LayerRead, read_layer};
use repro_verify::levels::BlobLayer;
use repro_world::World;

const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

fn digest_of(path: &Path) -> Digest {
    sha256_of(&std::fs::read(path).unwrap())
}

/// Read `blob` as verify does (the consumer takes nothing: read_layer reads the rest) and
/// judge it against `tar` as the reproduced layer.
fn judge(blob: &Path, tar: &Path) -> (Status, String, LayerRead) {
    let read = read_layer(
        std::fs::File::open(blob).unwrap(),
        &blob.display().to_string(),
        |_| Ok(()),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", blob.display()));
    let tar = digest_of(tar);
    let layer = BlobLayer {
        digest: digest_of(blob),
        media_type: GZIP.into(),
        read: read.clone(),
        rebuilt_blob: Some(tar.clone()),
        rebuilt_tar: Some(tar),
    };
    let (status, why) = layer.judge();
    (status, why, read)
}

/// The layer blobs of the world's `oci:` image `key`, in order.
fn layer_blobs(key: &str) -> Vec<PathBuf> {
    let spec = World::up().get(key);
    let (dir, _) = spec.strip_prefix("oci:").unwrap().rsplit_once(':').unwrap();
    let dir = Path::new(dir);
    let blob = |d: &str| {
        dir.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap())
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

#[test]
fn skopeo_gzip_and_zstd_blobs_are_equivalent_to_the_uncompressed_layers() {
    let tars = layer_blobs("WORLD_OCI_REPRO_NONE");
    let diff_ids: Vec<&str> = World::up()
        .get("WORLD_IMAGE_REPRO_DIFF_IDS")
        .split(',')
        .collect();
    for (key, compression) in [
        ("WORLD_OCI_REPRO_GZIP", "gzip"),
        ("WORLD_OCI_REPRO_ZSTD", "zstd"),
    ] {
        let blobs = layer_blobs(key);
        assert_eq!(blobs.len(), tars.len());
        for (i, (blob, tar)) in blobs.iter().zip(&tars).enumerate() {
            let (status, why, read) = judge(blob, tar);
            assert_eq!(status, Status::Equivalent, "{key} layer {i}: {why}");
            assert_eq!(read.framing.compression, compression);
            assert_eq!(read.decompressed.to_string(), diff_ids[i]);
            assert_eq!(
                read.decompressed_size,
                std::fs::metadata(tar).unwrap().len()
            );
            if compression == "gzip" {
                // skopeo's pgzip: MTIME is Go's zero time.Time as a uint32
                assert_eq!(read.framing.gzip_mtime, Some((-62_135_596_800i64) as u32));
            }
        }
        // layer 1's blob is not layer 2's tar
        let (status, why, _) = judge(&blobs[0], &tars[1]);
        assert_eq!(status, Status::Differs, "{key}: {why}");
        assert!(why.contains("not to the reproduced tar"), "{why}");
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

#[test]
fn extra_bytes_frames_fields_and_other_content_are_not_equivalent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = write(d, "t.tar", &content);
    let gz = run(Command::new("gzip").args(["-n", "-c"]).arg(&tar));
    let zst = run(Command::new("zstd").args(["-q", "-c"]).arg(&tar));
    let differs = |name: &str, bytes: &[u8], tar: &Path, says: &str| {
        let (status, why, read) = judge(&write(d, name, bytes), tar);
        assert_eq!(status, Status::Differs, "{name}: {why}");
        assert!(why.contains(says), "{name}: {why}");
        read
    };

    // the plain ones hold
    for (name, bytes) in [("ok.gz", &gz), ("ok.zst", &zst)] {
        let (status, why, _) = judge(&write(d, name, bytes), &tar);
        assert_eq!(status, Status::Equivalent, "{name}: {why}");
    }
    // gzip's FNAME (gzip without -n names the file)
    let named = run(Command::new("gzip").args(["-c"]).arg(&tar));
    let read = differs("named.gz", &named, &tar, "header fields FNAME");
    assert_eq!(read.framing.extra_fields, ["FNAME"]);
    // a byte after the member / frame
    for (name, bytes) in [("t.gz", &gz), ("t.zst", &zst)] {
        let read = differs(name, &[&bytes[..], &[0]].concat(), &tar, "1 bytes after it");
        assert_eq!(read.framing.trailing_bytes, 1);
    }
    // a second (empty) zstd frame, a second gzip member
    for (name, tool, first) in [
        ("two.zst", ["zstd", "-q"], &zst),
        ("two.gz", ["gzip", "-n"], &gz),
    ] {
        let empty = run(Command::new(tool[0])
            .args([tool[1], "-c", "-"])
            .stdin(std::process::Stdio::null()));
        differs(name, &[&first[..], &empty].concat(), &tar, "bytes after it");
    }
    // a skippable frame first: not a zstd stream of the tar at all
    let skippable = [&[0x50u8, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 7][..], &zst].concat();
    let read = differs("skip.zst", &skippable, &tar, "not to the reproduced tar");
    assert_eq!(read.framing.compression, "none");
    // other content; a shorter and a longer tar
    let mut other = content.clone();
    other[654_321] ^= 1;
    let other = write(d, "other.tar", &other);
    differs("o.gz", &gz, &other, "not to the reproduced tar");
    let short = write(d, "short.tar", &content[..1000]);
    differs("s.zst", &zst, &short, "not to the reproduced tar");
    let long = write(d, "long.tar", &[&content[..], b"x"].concat());
    differs("l.zst", &zst, &long, "not to the reproduced tar");
    // a truncated blob is an error naming it
    let cut = write(d, "cut.gz", &gz[..gz.len() - 4]);
    let e = read_layer(std::fs::File::open(&cut).unwrap(), "cut.gz", |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("cut.gz: "), "{e}");
}
