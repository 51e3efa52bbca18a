//! The blob-equivalence proof on the test world's reference image: skopeo's gzip and zstd
//! layer blobs hold exactly the uncompressed layers, and every way a blob can carry more
//! (trailing bytes, a second frame or member, gzip header fields) or other bytes is refused.

use std::path::{Path, PathBuf};
use std::process::Command;

use repro_build::equivalence::{Compression, EquivalenceError, prove};
use repro_world::World;

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
fn skopeo_gzip_and_zstd_blobs_are_the_uncompressed_layers() {
    let tars = layer_blobs("WORLD_OCI_REPRO_NONE");
    let diff_ids: Vec<&str> = World::up()
        .get("WORLD_IMAGE_REPRO_DIFF_IDS")
        .split(',')
        .collect();
    for (key, compression) in [
        ("WORLD_OCI_REPRO_GZIP", Compression::Gzip),
        ("WORLD_OCI_REPRO_ZSTD", Compression::Zstd),
    ] {
        let blobs = layer_blobs(key);
        assert_eq!(blobs.len(), tars.len());
        for (i, (blob, tar)) in blobs.iter().zip(&tars).enumerate() {
            let e = prove(blob, tar).unwrap_or_else(|e| panic!("{key} layer {i}: {e}"));
            assert_eq!(e.compression, compression);
            assert_eq!(e.tar_digest, diff_ids[i]);
            assert_eq!(
                e.blob_digest,
                format!("sha256:{}", blob.file_name().unwrap().to_str().unwrap())
            );
            assert_eq!(e.blob_size, std::fs::metadata(blob).unwrap().len());
            if compression == Compression::Gzip {
                // skopeo's pgzip: MTIME is Go's zero time.Time as a uint32, OS "unknown"
                let h = e.gzip_header.unwrap();
                assert_eq!((h.mtime, h.os), ((-62_135_596_800i64) as u32, 255));
            }
        }
        // layer 1's blob is not layer 2's tar
        match prove(&blobs[0], &tars[1]) {
            Err(EquivalenceError::Differs { .. } | EquivalenceError::Length { .. }) => {}
            other => panic!("{key}: {other:?}"),
        }
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
fn extra_bytes_frames_and_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let tar = write(d, "t.tar", &content);
    let gz = run(Command::new("gzip").args(["-n", "-c"]).arg(&tar));
    let zst = run(Command::new("zstd").args(["-q", "-c"]).arg(&tar));
    // the plain ones hold
    prove(&write(d, "ok.gz", &gz), &tar).unwrap();
    prove(&write(d, "ok.zst", &zst), &tar).unwrap();

    // gzip's FNAME (gzip without -n names the file)
    let named = run(Command::new("gzip").args(["-c"]).arg(&tar));
    match prove(&write(d, "named.gz", &named), &tar) {
        Err(EquivalenceError::GzipFields { flags, .. }) => assert_eq!(flags & 0x08, 0x08),
        other => panic!("{other:?}"),
    }
    // a byte after the member / frame
    let trailing = |b: &[u8], name: &str| {
        let mut v = b.to_vec();
        v.push(0);
        write(d, name, &v)
    };
    assert!(matches!(
        prove(&trailing(&gz, "t.gz"), &tar),
        Err(EquivalenceError::Trailing { trailing: 1, .. })
    ));
    assert!(matches!(
        prove(&trailing(&zst, "t.zst"), &tar),
        Err(EquivalenceError::Trailing { trailing: 1, .. })
    ));
    // a second (empty) zstd frame, and a skippable frame
    let empty_zst = run(Command::new("zstd")
        .args(["-q", "-c", "-"])
        .stdin(std::process::Stdio::null()));
    assert!(matches!(
        prove(
            &write(d, "two.zst", &[zst.clone(), empty_zst].concat()),
            &tar
        ),
        Err(EquivalenceError::Trailing { .. })
    ));
    let skippable = [&[0x50u8, 0x2a, 0x4d, 0x18, 1, 0, 0, 0, 7][..], &zst].concat();
    assert!(matches!(
        prove(&write(d, "skip.zst", &skippable), &tar),
        Err(EquivalenceError::UnknownCompression { .. })
    ));
    // a second gzip member
    let empty_gz = run(Command::new("gzip")
        .args(["-n", "-c", "-"])
        .stdin(std::process::Stdio::null()));
    assert!(matches!(
        prove(&write(d, "two.gz", &[gz.clone(), empty_gz].concat()), &tar),
        Err(EquivalenceError::Trailing { .. })
    ));
    // other content, shorter and longer tars
    let mut other = content.clone();
    other[654_321] ^= 1;
    assert!(matches!(
        prove(&write(d, "ok2.gz", &gz), &write(d, "other.tar", &other)),
        Err(EquivalenceError::Differs {
            offset: 654_321,
            ..
        })
    ));
    assert!(matches!(
        prove(
            &write(d, "ok3.zst", &zst),
            &write(d, "short.tar", &content[..1000])
        ),
        Err(EquivalenceError::Length { .. })
    ));
    assert!(matches!(
        prove(
            &write(d, "ok4.zst", &zst),
            &write(d, "long.tar", &[&content[..], b"x"].concat())
        ),
        Err(EquivalenceError::Length { .. })
    ));
    // a truncated blob
    assert!(matches!(
        prove(&write(d, "cut.gz", &gz[..gz.len() - 4]), &tar),
        Err(EquivalenceError::Corrupt { .. })
    ));
    assert!(matches!(
        prove(&tar, &tar),
        Err(EquivalenceError::UnknownCompression { .. })
    ));
}
