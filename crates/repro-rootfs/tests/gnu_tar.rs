//! The tree read from a GNU tar archive (the recipe's flags) agrees with the directory tar
//! read: every path, type, mode, size, content hash, link target and xattr.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use repro_rootfs::{Applier, Kind};

fn sha256_file(p: &Path) -> String {
    repro_oci::digest::sha256_of(&std::fs::read(p).unwrap()).to_string()
}

fn populate(root: &Path) {
    let w = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    w("etc/os-release", b"NAME=\"Arch Linux\"\n", 0o644);
    w("usr/bin/passwd", b"\x7fELF setuid", 0o4755);
    w("usr/bin/wall", b"\x7fELF setgid", 0o2755);
    w("etc/shadow-like", b"root:!:1::::::\n", 0o400);
    let long_dir = format!("usr/share/{}", "long-directory-name-".repeat(6));
    w(&format!("{long_dir}/{}", "f".repeat(200)), b"deep", 0o644); // > 255 bytes in all
    w("usr/share/ünïcødé name.txt", "ünïcødé\n".as_bytes(), 0o644);
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::os::unix::fs::symlink(format!("../{}", "t".repeat(150)), root.join("usr/longlink"))
        .unwrap();
    std::fs::hard_link(
        root.join("usr/bin/passwd"),
        root.join("usr/bin/passwd-hardlink"),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::create_dir_all(root.join("srv/empty")).unwrap();
    std::fs::create_dir_all(root.join("readonly")).unwrap();
    w("readonly/file", b"r", 0o444);
    std::fs::set_permissions(
        root.join("readonly"),
        std::fs::Permissions::from_mode(0o555),
    )
    .unwrap();
    // An xattr, through Python's os.setxattr (user namespace: no capability needed).
    let st = Command::new("python3")
        .args([
            "-c",
            "import os,sys; os.setxattr(sys.argv[1], 'user.repro', b'\\x00\\x01xattr')",
        ])
        .arg(root.join("etc/os-release"))
        .status()
        .unwrap();
    assert!(
        st.success(),
        "setting an xattr needs a filesystem with user xattrs"
    );
}

#[test]
fn tree_matches_the_directory_gnu_tar_archived() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    populate(&root);
    let tarball = tmp.path().join("repro.tar");
    let out = Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--mtime=@1764028800",
            "--clamp-mtime",
            "--sort=name",
        ])
        .args(["--pax-option=delete=atime,delete=ctime", "-C"])
        .arg(&root)
        .args(["-c", ".", "-f"])
        .arg(&tarball)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut a = Applier::new();
    a.apply_layer(std::fs::File::open(&tarball).unwrap())
        .unwrap();
    let tree = a.finish();
    assert!(tree.flags.is_empty(), "{:?}", tree.flags);

    // Walk the directory the way tar did.
    let mut disk = BTreeMap::new();
    let mut inodes = std::collections::HashMap::new();
    for entry in walk(&root) {
        let rel = entry.strip_prefix(&root).unwrap();
        let key = if rel.as_os_str().is_empty() {
            ".".to_string()
        } else {
            rel.display().to_string()
        };
        disk.insert(key, entry);
    }
    assert_eq!(
        tree.entries.keys().map(|p| p.display()).collect::<Vec<_>>(),
        disk.keys().cloned().collect::<Vec<_>>()
    );
    for (key, path) in &disk {
        let node = tree.get(key).unwrap();
        let md = std::fs::symlink_metadata(path).unwrap();
        assert_eq!(node.mode, md.mode() & 0o7777, "{key}");
        assert_eq!(node.mtime, 1_764_028_800.min(md.mtime()), "{key}");
        let ft = md.file_type();
        if ft.is_symlink() {
            assert_eq!(node.kind, Kind::Symlink, "{key}");
            assert_eq!(
                node.link_target.as_deref(),
                Some(std::fs::read_link(path).unwrap().to_str().unwrap())
            );
        } else if ft.is_dir() {
            assert_eq!(node.kind, Kind::Dir, "{key}");
        } else {
            // The first name of an inode is a file; later ones are hardlinks to it.
            let first = inodes.entry(md.ino()).or_insert_with(|| key.clone());
            let want = if first == key {
                Kind::File
            } else {
                Kind::Hardlink
            };
            assert_eq!(node.kind, want, "{key}");
            assert_eq!(node.size, md.len(), "{key}");
            assert_eq!(
                node.sha256.as_ref().unwrap().to_string(),
                sha256_file(path),
                "{key}"
            );
        }
    }
    let os = tree.get("etc/os-release").unwrap();
    assert_eq!(
        os.xattrs.get("user.repro").map(String::as_str),
        Some("AAF4YXR0cg==")
    );
}

/// Every path under root, root included, in sorted order.
fn walk(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
