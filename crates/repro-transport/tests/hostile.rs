//! Hostile layers through the real decompression path: [`build_tree`] on an `oci:` layout
//! whose layer blobs are decompression bombs, truncated streams and lying tar headers.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use repro_oci::digest::sha256_of;
use repro_rootfs::{Applier, Tree};
use repro_testkit::gzip;
use repro_transport::TransportError;
use repro_transport::oci::OciSource;
use repro_transport::tree::{build_tree, resolve_manifest};

const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An `oci:` layout at `dir`, ref `t`, with the given layer blobs as they are.
fn layout(dir: &Path, layers: &[(&[u8], &str)]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = sha256_of(bytes);
        let hex = d.to_string().trim_start_matches("sha256:").to_string();
        fs::write(blobs.join(hex), bytes).unwrap();
        (d.to_string(), bytes.len())
    };
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|_| format!("sha256:{}", "0".repeat(64)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let layer_descs: Vec<_> = layers
        .iter()
        .map(|(b, mt)| {
            let (d, s) = put(b);
            serde_json::json!({"mediaType": mt, "digest": d, "size": s})
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": layer_descs,
    });
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": "t"},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn tree_of(layers: &[(&[u8], &str)], applier: Applier) -> Result<Tree, TransportError> {
    let dir = tempfile::tempdir().unwrap();
    layout(dir.path(), layers);
    let mut src = OciSource::open(dir.path(), Some("t")).unwrap();
    let m = resolve_manifest(&mut src, &"linux/amd64".parse().unwrap()).unwrap();
    build_tree(&mut src, &m.manifest, applier)
}

fn header(name: &str, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_path(name).unwrap();
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

fn small_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        b.append(
            &header(name, tar::EntryType::Regular, data.len() as u64),
            *data,
        )
        .unwrap();
    }
    b.into_inner().unwrap()
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// `n` zero bytes through a streaming encoder, never held whole.
fn zeros_with<W: Write>(mut w: W, n: u64) -> W {
    io::copy(&mut io::repeat(0).take(n), &mut w).unwrap();
    w
}

fn zstd_zeros(n: u64) -> Vec<u8> {
    zeros_with(zstd::Encoder::new(Vec::new(), 3).unwrap(), n)
        .finish()
        .unwrap()
}

fn gzip_zeros(n: u64) -> Vec<u8> {
    let e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    zeros_with(e, n).finish().unwrap()
}

/// A compressed tar of one file `name` of `size` zero bytes (`size` a multiple of 64 MiB):
/// the header, one compressed frame (gzip member) of 64 MiB of zeros repeated, the end
/// blocks. Decoders read concatenated frames as one stream, so 10 GiB never exists anywhere.
fn bomb(
    name: &str,
    size: u64,
    compress: fn(&[u8]) -> Vec<u8>,
    zeros: fn(u64) -> Vec<u8>,
) -> Vec<u8> {
    const CHUNK: u64 = 64 << 20;
    assert_eq!(size % CHUNK, 0);
    let chunk = zeros(CHUNK);
    let mut out = compress(header(name, tar::EntryType::Regular, size).as_bytes());
    for _ in 0..size / CHUNK {
        out.extend_from_slice(&chunk);
    }
    out.extend_from_slice(&compress(&[0u8; 1024]));
    out
}

/// Peak-RSS assertions read a per-process high-water mark: tests that measure it (and
/// allocate the most) run one at a time so they do not count each other's memory.
static MEMORY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Peak resident set of this process so far, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn ten_gib_of_zeros_in_a_few_hundred_kib_of_zstd_is_refused_at_the_cap_in_bounded_memory() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let blob = bomb("usr/share/bomb", 10 << 30, zstd, zstd_zeros);
    assert!(blob.len() < 512 << 10, "{} bytes compressed", blob.len());
    let ok = zstd(&small_tar(&[("etc/hostname", b"x\n")]));
    let before = peak_rss();
    let e = tree_of(
        &[(&ok, ZSTD), (&blob, ZSTD)],
        Applier::new().max_layer_bytes(1 << 30),
    )
    .unwrap_err()
    .to_string();
    let digest = sha256_of(&blob).to_string();
    assert!(e.contains(&format!("layer 1 ({digest})")), "{e}");
    assert!(
        e.contains("layer 1: entry \"usr/share/bomb\": reading content: ")
            && e.contains("more than 1073741824 uncompressed bytes"),
        "{e}"
    );
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes");
}

#[test]
fn gzip_bomb_is_refused_at_the_cap_and_streams_in_bounded_memory_below_it() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let blob = bomb("bomb", 1 << 30, gzip, gzip_zeros);
    assert!(blob.len() < 2 << 20, "{} bytes compressed", blob.len());
    let before = peak_rss();
    let e = tree_of(&[(&blob, GZIP)], Applier::new().max_layer_bytes(256 << 20))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0 (sha256:") && e.contains("entry \"bomb\"") && e.contains("268435456"),
        "{e}"
    );
    // Under the default limit the same layer streams through, hashed as it goes.
    let t = tree_of(&[(&blob, GZIP)], Applier::new()).unwrap();
    let n = t.get("bomb").unwrap();
    assert_eq!(n.size, 1 << 30);
    assert_eq!(
        n.sha256.as_ref().unwrap().to_string(),
        "sha256:49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
    );
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes");
}

#[test]
fn huge_size_field_through_decompression_is_a_truncation_error() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut tar = small_tar(&[("fine", b"1")]);
    tar.truncate(tar.len() - 1024);
    tar.extend_from_slice(header("liar", tar::EntryType::Regular, 1 << 60).as_bytes());
    tar.extend_from_slice(&[0u8; 1024]);
    for (blob, mt) in [(zstd(&tar), ZSTD), (gzip(&tar), GZIP)] {
        let e = tree_of(&[(&blob, mt)], Applier::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer 0 (sha256:")
                && e.contains("layer 0: entry \"liar\": truncated: the header declares 1152921504606846976 bytes"),
            "{e}"
        );
    }
}

#[test]
fn truncated_compressed_layers_are_errors_naming_the_layer() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let data: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let tar = small_tar(&[("a", b"1"), ("big", &data), ("z", b"2")]);
    for (full, mt) in [(zstd(&tar), ZSTD), (gzip(&tar), GZIP)] {
        let cut = &full[..full.len() / 2];
        let e = tree_of(
            &[
                (
                    &small_tar(&[("x", b"y")]),
                    "application/vnd.oci.image.layer.v1.tar",
                ),
                (cut, mt),
            ],
            Applier::new(),
        )
        .unwrap_err()
        .to_string();
        let digest = sha256_of(cut).to_string();
        assert!(e.contains(&format!("layer 1 ({digest})")), "{mt}: {e}");
        // gzip fails inside big's content; zstd notices the cut frame before giving out
        // any of it.
        assert!(
            e.contains("entry \"big\"") || e.contains("incomplete frame"),
            "{mt}: {e}"
        );
        // The uncompressed tar cut the same way: the same error from the tar side.
        let e = tree_of(
            &[(&tar[..3000], "application/vnd.oci.image.layer.v1.tar")],
            Applier::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("layer 0: entry \"big\": truncated"), "{e}");
    }
    // Garbage after a valid magic number.
    let mut junk = zstd(&tar)[..8].to_vec();
    junk.extend_from_slice(&[0xAB; 300]);
    let e = tree_of(&[(&junk, ZSTD)], Applier::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 0 (sha256:"), "{e}");
}
