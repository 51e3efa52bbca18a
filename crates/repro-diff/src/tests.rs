//! Unit tests of the comparison core on tars built here (the end-to-end tests with real
//! images and tools are in crates/repro-image/tests/diff.rs).

use std::io::Cursor;

use super::*;
use crate::layers::compare_layer_blobs;

/// One entry of a test tar: (name, type, mode, content/link, mtime).
struct E<'a> {
    name: &'a str,
    kind: tar::EntryType,
    mode: u32,
    data: &'a [u8],
    mtime: u64,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> E<'a> {
    E {
        name,
        kind: tar::EntryType::Regular,
        mode: 0o644,
        data,
        mtime: 1000,
    }
}

fn tar(entries: &[E], gnu: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = if gnu {
            tar::Header::new_gnu()
        } else {
            tar::Header::new_ustar()
        };
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_mtime(e.mtime);
        h.set_uid(0);
        h.set_gid(0);
        if e.kind == tar::EntryType::Symlink || e.kind == tar::EntryType::Link {
            h.set_size(0);
            b.append_link(&mut h, e.name, std::str::from_utf8(e.data).unwrap())
                .unwrap();
        } else {
            // Names go into the header as given (`append_data` would drop a leading `./`).
            h.set_size(e.data.len() as u64);
            let n = e.name.as_bytes();
            h.as_old_mut().name[..n.len()].copy_from_slice(n);
            h.set_cksum();
            b.append(&h, e.data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn cmp(a: Vec<u8>, b: Vec<u8>, opts: &Options) -> Vec<Difference> {
    let mut d = compare_layer_blobs(
        Box::new(Cursor::new(a)),
        "a",
        Box::new(Cursor::new(b)),
        "b",
        Some(0),
        opts,
    )
    .unwrap()
    .differences;
    sort_differences(&mut d);
    d
}

fn fields(d: &[Difference]) -> Vec<(String, String, Option<String>, Option<String>)> {
    d.iter()
        .map(|d| {
            (
                d.path.clone().unwrap_or_default(),
                d.field.clone(),
                d.a.clone(),
                d.b.clone(),
            )
        })
        .collect()
}

#[test]
fn identical_tars_have_no_differences() {
    let t = tar(&[file("etc/a", b"x\n"), file("etc/b", b"y\n")], false);
    assert!(cmp(t.clone(), t, &Options::default()).is_empty());
}

#[test]
fn a_changed_file_is_named_with_an_inline_diff() {
    let a = tar(
        &[file("etc/a", b"one\ntwo\n"), file("etc/b", b"same")],
        false,
    );
    let b = tar(
        &[file("etc/a", b"one\nTWO\n"), file("etc/b", b"same")],
        false,
    );
    let d = cmp(a, b, &Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].path.as_deref(), Some("etc/a"));
    assert_eq!(d[0].field, "sha256");
    let diff = d[0].diff.as_deref().expect("inline diff");
    assert!(diff.contains("-two\n+TWO\n"), "{diff}");
    assert!(diff.starts_with("--- a/etc/a\n+++ b/etc/a\n"), "{diff}");
}

#[test]
fn binary_content_gets_no_inline_diff() {
    let a = tar(&[file("bin/x", b"\0\x01\x02")], false);
    let b = tar(&[file("bin/x", b"\0\x01\x03")], false);
    let d = cmp(a, b, &Options::default());
    assert_eq!(d.len(), 1);
    assert!(d[0].diff.is_none());
}

#[test]
fn mode_mtime_and_presence() {
    let mut x = file("etc/a", b"1");
    x.mode = 0o4755;
    x.mtime = 5;
    let a = tar(&[file("etc/a", b"1"), file("etc/only-a", b"")], false);
    let b = tar(&[x], false);
    let d = fields(&cmp(a.clone(), b.clone(), &Options::default()));
    assert_eq!(
        d,
        vec![
            (
                "".into(),
                "tar size".into(),
                Some("2560".into()),
                Some("2048".into())
            ),
            (
                "etc/a".into(),
                "mode".into(),
                Some("0644".into()),
                Some("4755".into())
            ),
            (
                "etc/a".into(),
                "mtime".into(),
                Some("1000".into()),
                Some("5".into())
            ),
            (
                "etc/only-a".into(),
                "entry".into(),
                Some("file".into()),
                None
            ),
        ]
    );
    let opts = Options {
        ignore_timestamps: true,
        ignore_paths: PathFilter::new(&["/etc/only-*"]).unwrap(),
        ..Options::default()
    };
    let d = fields(&cmp(a, b, &opts));
    assert_eq!(
        d,
        vec![(
            "etc/a".into(),
            "mode".into(),
            Some("0644".into()),
            Some("4755".into())
        )]
    );
}

#[test]
fn tar_dialect_differences_and_ignore_tar_format() {
    let mut root = file("./", b"");
    root.kind = tar::EntryType::Directory;
    root.mode = 0o755;
    let a = tar(&[root, file("./etc/a", b"1")], true);
    let b = tar(&[file("etc/a", b"1")], false);
    let d = fields(&cmp(a.clone(), b.clone(), &Options::default()));
    assert!(
        d.contains(&(".".into(), "entry".into(), Some("dir".into()), None)),
        "{d:?}"
    );
    assert!(
        d.contains(&(
            "etc/a".into(),
            "name".into(),
            Some("./etc/a".into()),
            Some("etc/a".into())
        )),
        "{d:?}"
    );
    assert!(
        d.contains(&(
            "etc/a".into(),
            "format".into(),
            Some("gnu".into()),
            Some("ustar".into())
        )),
        "{d:?}"
    );
    let opts = Options {
        ignore_tar_format: true,
        ..Options::default()
    };
    assert_eq!(fields(&cmp(a, b, &opts)), vec![]);
}

#[test]
fn order_is_a_difference_unless_ignored() {
    let a = tar(&[file("a", b"1"), file("b", b"2"), file("c", b"3")], false);
    let b = tar(&[file("a", b"1"), file("c", b"3"), file("b", b"2")], false);
    let d = cmp(a.clone(), b.clone(), &Options::default());
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].level, Level::Layer);
    assert_eq!(d[0].field, "entry order (common entry #1)");
    assert_eq!(
        (d[0].a.as_deref(), d[0].b.as_deref()),
        (Some("b"), Some("c"))
    );
    let opts = Options {
        ignore_file_order: true,
        ..Options::default()
    };
    assert!(cmp(a, b, &opts).is_empty());
}

#[test]
fn a_path_twice_is_matched_by_occurrence() {
    let a = tar(&[file("x", b"1"), file("x", b"2")], false);
    let b = tar(&[file("x", b"1"), file("x", b"3")], false);
    let d = cmp(a, b, &Options::default());
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].field, "sha256");
}

#[test]
fn hostile_names_are_errors_naming_the_input() {
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // tar::Builder refuses "..": write the name into the header directly.
    h.as_old_mut().name[..4].copy_from_slice(b"../x");
    h.set_cksum();
    let mut bad = h.as_bytes().to_vec();
    bad.extend_from_slice(b"x");
    bad.resize(512 * 2, 0);
    bad.extend_from_slice(&[0u8; 1024]);
    let good = tar(&[file("x", b"x")], false);
    let e = compare_layer_blobs(
        Box::new(Cursor::new(good)),
        "good",
        Box::new(Cursor::new(bad)),
        "evil.tar",
        Some(0),
        &Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("evil.tar") && e.contains("\"..\""), "{e}");
}

#[test]
fn redundant_mode_bits() {
    let mut x = file("a", b"1");
    x.mode = 0o100644;
    let a = tar(&[file("a", b"1")], false);
    let b = tar(&[x], false);
    let d = fields(&cmp(a.clone(), b.clone(), &Options::default()));
    assert_eq!(
        d,
        vec![(
            "a".into(),
            "mode".into(),
            Some("0644".into()),
            Some("100644".into())
        )]
    );
    let opts = Options {
        ignore_file_mode_redundant_bits: true,
        ..Options::default()
    };
    assert!(cmp(a, b, &opts).is_empty());
}

#[test]
fn path_filter_matches_parents_and_globs() {
    let f = PathFilter::new(&["/usr/share/**/*.mo", "var/cache", "./etc/*.conf"]).unwrap();
    assert!(f.is_ignored(b"usr/share/locale/de/LC_MESSAGES/x.mo"));
    assert!(f.is_ignored(b"var/cache/ldconfig/aux-cache"));
    assert!(f.is_ignored(b"var/cache"));
    assert!(!f.is_ignored(b"var/cachex"));
    assert!(f.is_ignored(b"etc/ld.so.conf"));
    assert!(!f.is_ignored(b"etc/sub/ld.so.conf"));
    assert!(PathFilter::new(&["a[b"]).is_err());
}

fn config(json: &str) -> repro_oci::ConfigDoc {
    repro_oci::image::parse_config(json.as_bytes().to_vec(), "t").unwrap()
}

#[test]
fn config_fields_env_labels_history() {
    let a = config(
        r#"{"created":"2026-01-01T00:00:00Z","architecture":"amd64","os":"linux",
        "config":{"Env":["PATH=/bin","LANG=C"],"Labels":{"org.opencontainers.image.version":"1","io.containerd.image.name":"x"}},
        "rootfs":{"type":"layers","diff_ids":["sha256:2817786deac407be0f2f477634fbaf4a6b39505d36e2537d283de2525e461306"]},
        "history":[{"created":"2026-01-01T00:00:00Z","created_by":"COPY"}]}"#,
    );
    let b = config(
        r#"{"created":"2026-02-02T00:00:00Z","architecture":"amd64","os":"linux",
        "config":{"Env":["PATH=/bin","LANG=C.UTF-8"],"Labels":{"org.opencontainers.image.version":"2","io.containerd.image.name":"y"}},
        "rootfs":{"type":"layers","diff_ids":["sha256:2817786deac407be0f2f477634fbaf4a6b39505d36e2537d283de2525e461306"]},
        "history":[{"created":"2026-02-02T00:00:00Z","created_by":"COPY"}]}"#,
    );
    let names = |d: Vec<Difference>| d.into_iter().map(|d| d.field).collect::<Vec<_>>();
    assert_eq!(
        names(docs::compare_configs(&a, &b, &Options::default())),
        vec![
            "digest",
            "config.Env.LANG",
            "config.Labels[\"io.containerd.image.name\"]",
            "config.Labels[\"org.opencontainers.image.version\"]",
            "created",
            "history[0].created",
        ]
    );
    let opts = Options {
        ignore_timestamps: true,
        ignore_image_name: true,
        ..Options::default()
    };
    assert_eq!(
        names(docs::compare_configs(&a, &b, &opts)),
        vec![
            "config.Env.LANG",
            "config.Labels[\"org.opencontainers.image.version\"]"
        ]
    );
}

#[test]
fn report_dir_never_follows_a_symlink_or_leaves_the_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let r = report_dir::ReportDir::create(&tmp.path().join("report")).unwrap();
    // Planted after the check that the dir was empty: a symlink where a directory goes.
    std::os::unix::fs::symlink(&outside, tmp.path().join("report/a")).unwrap();
    let e = r.write("a", b"etc/x", &mut &b"data"[..]).unwrap_err();
    assert!(e.to_string().contains("not a directory"), "{e}");
    std::fs::write(outside.join("target"), b"keep").unwrap();
    std::os::unix::fs::symlink(outside.join("target"), tmp.path().join("report/f")).unwrap();
    assert_eq!(r.write("b", b"ok", &mut &b"1"[..]).unwrap(), "b/ok");
    let mut data = &b"new"[..];
    r.write("f", b"y", &mut data).unwrap_err(); // "f" is a symlink, not a directory
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"keep");
    assert!(std::fs::read_dir(&outside).unwrap().count() == 1);
    // A symlink planted where the file goes is replaced, never written through.
    std::os::unix::fs::symlink(outside.join("target"), tmp.path().join("report/b/link")).unwrap();
    r.write("b", b"link", &mut &b"new"[..]).unwrap();
    assert_eq!(std::fs::read(outside.join("target")).unwrap(), b"keep");
    let m = std::fs::symlink_metadata(tmp.path().join("report/b/link")).unwrap();
    assert!(m.file_type().is_file());
    for bad in [&b"../x"[..], b"/abs", b"a/../../x", b"", b"a\0b"] {
        assert!(r.write("b", bad, &mut &b""[..]).is_err(), "{bad:?}");
    }
    // A non-empty dir is refused.
    let e = report_dir::ReportDir::create(tmp.path()).unwrap_err();
    assert!(e.to_string().contains("not empty"), "{e}");
}

fn top(json: &str) -> repro_oci::TopLevel {
    repro_oci::image::parse_top_level(json.as_bytes().to_vec(), None, "t").unwrap()
}

const M_GZIP: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":20}],
"annotations":{"org.opencontainers.image.ref.name":"a"}}"#;
const M_ZSTD: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},
"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":21}],
"annotations":{"org.opencontainers.image.ref.name":"b"}}"#;

#[test]
fn manifests_compression_and_image_name() {
    let m = |s| match top(s) {
        repro_oci::TopLevel::Manifest(m) => m,
        _ => unreachable!(),
    };
    let (a, b) = (m(M_GZIP), m(M_ZSTD));
    let names = |d: Vec<Difference>| d.into_iter().map(|d| d.field).collect::<Vec<_>>();
    assert_eq!(
        names(docs::compare_manifests(&a, &b, &Options::default())),
        vec![
            "digest",
            "annotations[\"org.opencontainers.image.ref.name\"]",
            "layers[0].digest",
            "layers[0].mediaType",
            "layers[0].size",
        ]
    );
    // The compression is how the layer is encoded; digests and sizes summarise it.
    let opts = Options {
        ignore_tar_format: true,
        ..Options::default()
    };
    assert_eq!(
        names(docs::compare_manifests(&a, &b, &opts)),
        vec!["annotations[\"org.opencontainers.image.ref.name\"]"]
    );
    let opts = Options {
        ignore_image_name: true,
        ..opts
    };
    assert!(docs::compare_manifests(&a, &b, &opts).is_empty());
}

#[test]
fn index_versus_manifest_is_said_only_when_digests_count() {
    let index = top(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":5,"platform":{"os":"linux","architecture":"amd64"}}]}"#,
    );
    let manifest = top(M_GZIP);
    let d = docs::compare_top_levels(&index, &manifest, &Options::default());
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].field.as_str(), d[0].a.as_deref(), d[0].b.as_deref()),
        ("kind", Some("index"), Some("manifest"))
    );
    assert!(docs::compare_top_levels(&index, &manifest, &Options::semantic()).is_empty());
    assert!(docs::compare_top_levels(&index, &index, &Options::default()).is_empty());
}
