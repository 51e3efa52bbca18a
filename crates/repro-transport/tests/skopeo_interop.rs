//! oci:, docker-archive: and our writers against the real skopeo.
//!
//! skopeo must be installed (Debian package `skopeo`, installed by .ci/run); without it these
//! tests fail.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use repro_oci::digest::sha256_of;
use repro_oci::media;
use repro_oci::{Blob, Digest, TopLevel};
use repro_store::Store;
use repro_testkit::{gzip, tar_of};
use repro_transport::ImageSource;
use repro_transport::docker_archive::{DockerArchiveSource, DockerArchiveWriter};
use repro_transport::oci::{OciSource, write_oci_ref};

/// Run skopeo with a permissive policy of its own (no dependence on /etc/containers).
struct Skopeo {
    policy: PathBuf,
    _dir: tempfile::TempDir,
}

impl Skopeo {
    fn new() -> Skopeo {
        let found = Command::new("skopeo").arg("--version").output().is_ok();
        assert!(found, "skopeo not found: install the Debian package skopeo");
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.json");
        fs::write(
            &policy,
            br#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        Skopeo { policy, _dir: dir }
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("skopeo")
            .arg("--policy")
            .arg(&self.policy)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

struct Layout {
    dir: tempfile::TempDir,
    manifest: Blob,
    config: Blob,
    diff_ids: Vec<Digest>,
}

/// An OCI layout with two gzip layers and fixed contents, named `v1`; `pretty` gives the
/// config insignificant whitespace and characters Go escapes.
fn layout_with(pretty: bool) -> Layout {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_or_create(dir.path()).unwrap();
    let tars = [
        tar_of(&[("etc/os-release", b"NAME=test\n"), ("a.txt", b"hello\n")]),
        tar_of(&[("b.txt", &[b'x'; 3000][..])]),
    ];
    let diff_ids: Vec<Digest> = tars.iter().map(|t| sha256_of(t)).collect();
    let mut layers = Vec::new();
    for t in &tars {
        let gz = Blob::new(gzip(t));
        store.put_bytes(&gz.bytes).unwrap();
        layers.push(format!(
            r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            media::OCI_LAYER_GZIP,
            gz.digest,
            gz.size()
        ));
    }
    let config = if pretty {
        format!(
            "{{\n  \"architecture\": \"amd64\",\n  \"created\": \"1970-01-01T00:00:00Z\",\n  \"os\": \"linux\",\n  \"config\": {{ \"Env\": [ \"A=<b> & c\u{2028}\" ],\n \"Labels\": {{\"z\": \"1\", \"a\": \"\\\"q\\\"\"}} }},\n  \"rootfs\": {{\"type\": \"layers\", \"diff_ids\": [\"{}\", \"{}\"]}}\n}}\n",
            diff_ids[0], diff_ids[1]
        )
    } else {
        format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/bin"],"Cmd":["/bin/sh"]}},"rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
            diff_ids[0], diff_ids[1]
        )
    };
    let config = Blob::new(config.into_bytes());
    store.put_bytes(&config.bytes).unwrap();
    let manifest = Blob::new(
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[{}]}}"#,
            media::OCI_MANIFEST,
            media::OCI_CONFIG,
            config.digest,
            config.size(),
            layers.join(",")
        )
        .into_bytes(),
    );
    write_oci_ref(&store, &manifest, media::OCI_MANIFEST, Some("v1")).unwrap();
    store.finish();
    Layout {
        dir,
        manifest,
        config,
        diff_ids,
    }
}

fn layout() -> Layout {
    layout_with(false)
}

fn manifest_raw(t: &TopLevel) -> &Blob {
    t.raw()
}

fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

/// Write a docker-archive from an OCI source with our writer, as `copy` does.
fn write_from_oci(src: &mut OciSource, dest: &Path, tag: &str, spool: bool) {
    let TopLevel::Manifest(m) = src.top_level().unwrap() else {
        panic!("a manifest")
    };
    let cfg = m.manifest.config();
    let config = read_all(src.blob(cfg.digest(), Some(cfg.size())).unwrap());
    let parsed = repro_oci::image::parse_config(config.clone(), "config").unwrap();
    let layers = repro_oci::image::layers(&m.manifest, &parsed.config).unwrap();
    let mut w = DockerArchiveWriter::create(dest, vec![tag.to_string()]).unwrap();
    w.add_config(&config).unwrap();
    for l in layers {
        let diff_id = l.diff_id.unwrap();
        let blob = src.blob(&l.digest, Some(l.size)).unwrap();
        let plain = flate2::read::GzDecoder::new(blob);
        if spool {
            w.add_layer(&diff_id, plain).unwrap();
        } else {
            let bytes = read_all(plain);
            w.add_layer_sized(&diff_id, bytes.len() as u64, &mut &bytes[..])
                .unwrap();
        }
    }
    w.finish().unwrap();
}

#[test]
fn skopeo_reads_our_oci_layout_and_we_read_its() {
    let skopeo = Skopeo::new();
    let l = layout();
    let oci = format!("oci:{}:v1", l.dir.path().display());
    assert_eq!(skopeo.run(&["inspect", "--raw", &oci]), l.manifest.bytes);

    let copy = tempfile::tempdir().unwrap();
    let dest = copy.path().join("layout");
    let dest_ref = format!("oci:{}:v2", dest.display());
    skopeo.run(&["copy", "--quiet", &oci, &dest_ref]);
    let mut src = OciSource::open(&dest, Some("v2")).unwrap();
    let top = src.top_level().unwrap();
    assert_eq!(manifest_raw(&top), &l.manifest);
    let TopLevel::Manifest(m) = top else { panic!() };
    for d in m.manifest.layers() {
        read_all(src.blob(d.digest(), Some(d.size())).unwrap());
    }
}

#[test]
fn we_read_skopeos_docker_archive_like_skopeo() {
    let skopeo = Skopeo::new();
    let l = layout();
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    skopeo.run(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", l.dir.path().display()),
        &format!("docker-archive:{}:test/img:1", archive.display()),
    ]);
    let spelled = format!("docker-archive:{}", archive.display());

    let mut src = DockerArchiveSource::open(&archive, None).unwrap();
    assert_eq!(src.repo_tags(), ["docker.io/test/img:1"]);
    // Byte-identical manifest, so the same digest as skopeo reports.
    assert_eq!(
        skopeo.run(&["inspect", "--raw", &spelled]),
        src.manifest_blob().bytes
    );
    let config = skopeo.run(&["inspect", "--raw", "--config", &spelled]);
    assert_eq!(sha256_of(&config), src.config().digest);
    assert_eq!(config, l.config.bytes);
    let inspected: serde_json::Value =
        serde_json::from_slice(&skopeo.run(&["inspect", "--config", &spelled])).unwrap();
    let skopeo_diff_ids: Vec<String> = inspected["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ours: Vec<String> = src.layers().iter().map(|l| l.diff_id.to_string()).collect();
    assert_eq!(ours, skopeo_diff_ids);
    assert_eq!(
        ours,
        l.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );

    // Every layer and the config verify while streamed.
    let TopLevel::Manifest(m) = src.top_level().unwrap() else {
        panic!()
    };
    for d in m.manifest.layers() {
        let bytes = read_all(src.blob(d.digest(), Some(d.size())).unwrap());
        assert_eq!(&sha256_of(&bytes), d.digest());
    }
    let c = m.manifest.config();
    assert_eq!(
        read_all(src.blob(c.digest(), Some(c.size())).unwrap()),
        l.config.bytes
    );
    // Selecting by tag, normalised or not, and by index.
    for r in ["test/img:1", "docker.io/test/img:1", "@0"] {
        DockerArchiveSource::open(&archive, Some(r)).unwrap();
    }
}

#[test]
fn our_docker_archive_is_skopeos_byte_for_byte() {
    let skopeo = Skopeo::new();
    same_archive_as_skopeo(&skopeo, layout_with(false), true);
    // skopeo re-serializes a config that is not Go's compact JSON when it converts the
    // image to OCI, so after `copy docker-archive: oci:` only a compact config keeps its
    // digest (that is skopeo's conversion, the same for its own archive).
    same_archive_as_skopeo(&skopeo, layout_with(true), false);
}

fn same_archive_as_skopeo(skopeo: &Skopeo, l: Layout, copy_keeps_config: bool) {
    let work = tempfile::tempdir().unwrap();
    let theirs = work.path().join("theirs.tar");
    skopeo.run(&[
        "copy",
        "--quiet",
        &format!("oci:{}:v1", l.dir.path().display()),
        &format!("docker-archive:{}:test/img:1", theirs.display()),
    ]);

    let mut src = OciSource::open(l.dir.path(), Some("v1")).unwrap();
    let ours = work.path().join("ours.tar");
    let again = work.path().join("again.tar");
    write_from_oci(&mut src, &ours, "test/img:1", true);
    write_from_oci(&mut src, &again, "test/img:1", false);
    let ours_bytes = fs::read(&ours).unwrap();
    assert_eq!(
        ours_bytes,
        fs::read(&again).unwrap(),
        "writer is deterministic"
    );
    assert!(
        ours_bytes == fs::read(&theirs).unwrap(),
        "our docker-archive differs from skopeo's"
    );

    // skopeo reads ours: same config digest, and copies it to an OCI layout.
    let spelled = format!("docker-archive:{}", ours.display());
    let raw = skopeo.run(&["inspect", "--raw", &spelled]);
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["config"]["digest"].as_str().unwrap(),
        l.config.digest.to_string()
    );
    let out = work.path().join("out");
    skopeo.run(&[
        "copy",
        "--quiet",
        &spelled,
        &format!("oci:{}:copied", out.display()),
    ]);
    let mut copied = OciSource::open(&out, Some("copied")).unwrap();
    let TopLevel::Manifest(m) = copied.top_level().unwrap() else {
        panic!()
    };
    let c = m.manifest.config();
    let copied_config = read_all(copied.blob(c.digest(), Some(c.size())).unwrap());
    let diff_ids = repro_oci::image::parse_config(copied_config.clone(), "copied config")
        .unwrap()
        .config
        .rootfs()
        .diff_ids()
        .clone();
    assert_eq!(
        diff_ids,
        l.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    );
    if copy_keeps_config {
        assert_eq!(c.digest(), &l.config.digest);
        assert_eq!(copied_config, l.config.bytes);
    }
    for d in m.manifest.layers() {
        read_all(copied.blob(d.digest(), Some(d.size())).unwrap());
    }
}
