//! The inventory of an image: layers applied with capture, a whiteout removing a package.

mod common;

use std::fs;

use common::*;
use repro_inventory::TreeView;
use repro_rootfs::{Applier, Capture};
use repro_testkit::{LayerSpec, TestImage};
use repro_transport::oci::OciSource;
use repro_transport::tree::{build_tree, resolve_manifest};

const GCC: &str = "var/lib/pacman/local/gcc-8.2.1+20181127-1";

/// Layer 0: the 2019 local db (every package) and os-release; layer 1: gcc removed by a
/// whiteout, pacman's desc replaced by one with another install date.
fn image(dir: &std::path::Path) -> TestImage {
    let mut l0 = LayerSpec::new()
        .dir("etc", 0o755)
        .dir("usr/lib", 0o755)
        .file(
            "usr/lib/os-release",
            "NAME=\"Arch Linux\"\nID=arch\n",
            0o644,
        )
        .symlink("etc/os-release", "../usr/lib/os-release")
        .dir("var/lib/pacman/local", 0o755);
    let sample = local_sample("alpmrs-2019-pacman5");
    let mut last_dir = String::new();
    for (rel, path) in files_below(&sample) {
        if let Some((d, _)) = rel.rsplit_once('/')
            && d != last_dir
        {
            l0 = l0.dir(&format!("var/lib/pacman/local/{d}"), 0o755);
            last_dir = d.to_string();
        }
        l0 = l0.file(
            &format!("var/lib/pacman/local/{rel}"),
            fs::read(path).unwrap(),
            0o644,
        );
    }
    let desc = fs::read_to_string(sample.join("pacman-5.1.3-1/desc"))
        .unwrap()
        .replace("1553684925", "1700000000");
    let l1 = LayerSpec::new().whiteout(GCC).file(
        "var/lib/pacman/local/pacman-5.1.3-1/desc",
        desc,
        0o644,
    );
    TestImage::build(dir, &[l0, l1])
}

#[test]
fn inventory_of_a_two_layer_image_with_a_whiteout() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let mut src = OciSource::open(&img.layout, Some(&img.ref_name)).unwrap();
    let m = resolve_manifest(&mut src, &"linux/amd64".parse().unwrap()).unwrap();
    let tree = build_tree(
        &mut src,
        &m.manifest,
        Applier::with_capture(repro_inventory::capture()),
    )
    .unwrap();
    assert!(tree.get(GCC).is_none());
    assert!(tree.get(&format!("{GCC}/desc")).is_none());
    let inv = repro_inventory::read(&TreeView::new(&tree, img.oci_ref())).unwrap();
    assert!(inv.errors.is_empty(), "{:#?}", inv.errors);
    assert_eq!(inv.db_version, Some(9));
    let names: Vec<&str> = inv.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "archlinux-keyring",
            "ca-certificates",
            "filesystem",
            "glibc",
            "iptables",
            "libtool",
            "linux-firmware",
            "pacman"
        ]
    );
    // The upper layer's desc wins; files and mtree come from the lower layer.
    let p = inv.package("pacman").unwrap();
    assert_eq!(p.install_date, 1_700_000_000);
    assert_eq!(p.mtree.as_ref().unwrap().entries, 345);
    assert_eq!(p.files.as_ref().unwrap().count, 343);
    assert_eq!(inv.os_release.unwrap().id.as_deref(), Some("arch"));

    // Only the selected files were captured.
    assert!(tree.get("usr/lib/os-release").unwrap().content.is_some());
    assert_eq!(
        tree.entries
            .values()
            .filter(|n| n.content.is_some())
            .count(),
        1 + files_below(&local_sample("alpmrs-2019-pacman5")).len() - 3
    );

    // The same db from a host directory reads the same.
    let host = rootfs_with_local("alpmrs-2019-pacman5");
    let host_inv = repro_inventory::read(&repro_inventory::HostDir::new(host.path())).unwrap();
    assert_eq!(host_inv.packages.len(), 9);
}

#[test]
fn capture_cap_and_corrupt_blob_are_errors_naming_layer_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path());
    let mut src = OciSource::open(&img.layout, Some(&img.ref_name)).unwrap();
    let m = resolve_manifest(&mut src, &"linux/amd64".parse().unwrap()).unwrap();
    let mut capture = repro_inventory::capture();
    capture.max_file = 100_000;
    let e = build_tree(&mut src, &m.manifest, Applier::with_capture(capture))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 0"), "{e}");
    assert!(e.contains("mtree") || e.contains("files"), "{e}");
    assert!(e.contains("100000 bytes"), "{e}");

    // Flip a byte at the end of the top layer blob: the digest check after the tar's end.
    let top = &img.layers[1];
    let path = img.blob_path(&top.digest);
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let mut src = OciSource::open(&img.layout, Some(&img.ref_name)).unwrap();
    let e = build_tree(
        &mut src,
        &m.manifest,
        Applier::with_capture(Capture::new(|_| false)),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("layer 1"), "{e}");
}
