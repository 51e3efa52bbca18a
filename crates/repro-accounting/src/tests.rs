//! Small synthetic trees and databases: one test per class and per differing field.

use std::str::FromStr;

use alpm_mtree::Mtree;
use repro_inventory::{Inventory, Package, package_from_desc, parse_files};
use repro_oci::digest::sha256_of;

use super::*;

const T: i64 = 1_793_534_400;
const SDE: i64 = 1_793_664_000;

fn sha(content: &[u8]) -> String {
    sha256_of(content).digest().to_string()
}

fn node(kind: Kind, mode: u32) -> Node {
    Node {
        kind,
        mode,
        uid: 0,
        gid: 0,
        uname: None,
        gname: None,
        size: 0,
        sha256: None,
        link_target: None,
        xattrs: Default::default(),
        mtime: T,
        mtime_nsec: 0,
        device: None,
        layer: 0,
        content: None,
    }
}

fn file(content: &[u8], mode: u32) -> Node {
    Node {
        size: content.len() as u64,
        sha256: Some(sha256_of(content)),
        ..node(Kind::File, mode)
    }
}

fn dir(mode: u32) -> Node {
    node(Kind::Dir, mode)
}

fn symlink(target: &str) -> Node {
    Node {
        link_target: Some(target.into()),
        ..node(Kind::Symlink, 0o777)
    }
}

fn tree(entries: Vec<(&str, Node)>) -> Tree {
    let mut t = Tree::default();
    t.entries.insert(TreePath::root(), dir(0o755));
    for (p, n) in entries {
        t.entries.insert(TreePath(p.as_bytes().to_vec()), n);
    }
    t
}

/// A package from its `files` lines (dirs end in `/`), its backup paths and its mtree
/// lines (after the `/set` line).
fn pkg(name: &str, files: &[&str], backup: &[&str], mtree: &[String]) -> Package {
    let desc = format!(
        "%NAME%\n{name}\n\n%VERSION%\n1-1\n\n%BASE%\n{name}\n\n%DESC%\nx\n\n%URL%\nhttps://x\n\n%ARCH%\nx86_64\n\n\
         %BUILDDATE%\n{T}\n\n%INSTALLDATE%\n{T}\n\n%PACKAGER%\nP <p@x>\n\n%SIZE%\n1\n\n%VALIDATION%\npgp\n\n"
    );
    let mut p = package_from_desc(&format!("{name}-1-1"), &desc).expect("desc");
    let mut text = String::from("%FILES%\n");
    for f in files {
        text.push_str(f);
        text.push('\n');
    }
    text.push('\n');
    if !backup.is_empty() {
        text.push_str("%BACKUP%\n");
        for b in backup {
            text.push_str(&format!("{b}\t{}\n", "0".repeat(32)));
        }
        text.push('\n');
    }
    let (f, s) = parse_files(&text).expect("files");
    p.parsed.files = Some(f);
    p.files = Some(s);
    let mut m = String::from("#mtree\n/set type=file uid=0 gid=0 mode=644\n");
    m.push_str(&format!(
        "./.PKGINFO time={T}.0 size=1 sha256digest={}\n",
        sha(b"x")
    ));
    for l in mtree {
        m.push_str(l.trim_end());
        m.push('\n');
    }
    p.parsed.mtree = Some(Mtree::from_str(&m).expect("mtree"));
    p
}

fn mfile(path: &str, content: &[u8], extra: &str) -> String {
    format!(
        "./{path} time={T}.0 size={} sha256digest={} {extra}",
        content.len(),
        sha(content)
    )
}

fn mdir(path: &str, extra: &str) -> String {
    let mode = if extra.contains("mode=") {
        ""
    } else {
        "mode=755 "
    };
    format!("./{path} time={T}.0 {mode}type=dir {extra}")
}

fn mlink(path: &str, target: &str) -> String {
    format!("./{path} time={T}.0 mode=777 type=link link={target}")
}

fn inv(packages: Vec<Package>) -> Inventory {
    Inventory {
        local_db: true,
        packages,
        ..Inventory::default()
    }
}

/// The one package `p` owning `usr/` and `usr/x`, whose mtree line is `line`, against a
/// tree where `usr/x` is `n`.
fn one(n: Node, line: String) -> Entry {
    let p = pkg("p", &["usr/", "usr/x"], &[], &[mdir("usr", ""), line]);
    let a = account(
        &tree(vec![("usr", dir(0o755)), ("usr/x", n)]),
        &inv(vec![p]),
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    a.get("usr/x").expect("usr/x").clone()
}

fn fields(e: &Entry) -> Vec<String> {
    e.differences.iter().map(ToString::to_string).collect()
}

#[test]
fn equal_file_is_package() {
    let e = one(file(b"hello\n", 0o644), mfile("usr/x", b"hello\n", ""));
    assert_eq!(e.class, Class::Package);
    assert_eq!(e.packages, ["p"]);
    assert_eq!((e.size, e.bytes), (6, 6));
    assert!(e.differences.is_empty());
    assert!(e.mtime.as_ref().unwrap().equal);
    assert_eq!(details(&e), "");
}

#[test]
fn mode_difference() {
    let e = one(file(b"a", 0o755), mfile("usr/x", b"a", ""));
    assert_eq!(e.class, Class::Modified);
    assert_eq!(fields(&e), ["mode 0755 != 0644"]);
    assert_eq!(e.differences[0].field, Field::Mode);
    assert_eq!(e.differences[0].package, "p");
}

#[test]
fn special_bits_are_part_of_the_mode() {
    let e = one(file(b"a", 0o755), mfile("usr/x", b"a", "mode=4755"));
    assert_eq!(fields(&e), ["mode 0755 != 4755"]);
    let e = one(file(b"a", 0o4755), mfile("usr/x", b"a", "mode=4755"));
    assert_eq!(e.class, Class::Package);
}

#[test]
fn uid_and_gid_differences() {
    // The repro image: every owner is 0 (fakeroot sessions), the package says 1000.
    let e = one(file(b"a", 0o644), mfile("usr/x", b"a", "uid=1000 gid=1000"));
    assert_eq!(fields(&e), ["uid 0 != 1000", "gid 0 != 1000"]);
    let e = one(
        Node {
            gid: 1000,
            ..file(b"a", 0o644)
        },
        mfile("usr/x", b"a", "uid=1000 gid=1000"),
    );
    assert_eq!(fields(&e), ["uid 0 != 1000"]);
}

#[test]
fn content_difference_gives_size_and_sha256() {
    let e = one(file(b"tampered\n", 0o644), mfile("usr/x", b"a", ""));
    assert_eq!(e.class, Class::Modified);
    let f: Vec<Field> = e.differences.iter().map(|d| d.field).collect();
    assert_eq!(f, [Field::Size, Field::Sha256]);
    assert_eq!(e.differences[0].to_string(), "size 9 != 1");
    assert_eq!(e.differences[1].tree, sha(b"tampered\n"));
    assert_eq!(e.differences[1].mtree, sha(b"a"));
    // Same size, other bytes: only the digest.
    let e = one(file(b"b", 0o644), mfile("usr/x", b"a", ""));
    assert_eq!(
        e.differences.iter().map(|d| d.field).collect::<Vec<_>>(),
        [Field::Sha256]
    );
    assert_eq!(
        details(&e),
        format!("sha256 {} != {}", &sha(b"b")[..12], &sha(b"a")[..12])
    );
}

#[test]
fn link_target_difference() {
    let e = one(symlink("b"), mlink("usr/x", "a"));
    assert_eq!(fields(&e), ["link b != a"]);
    let e = one(symlink("a"), mlink("usr/x", "a"));
    assert_eq!(e.class, Class::Package);
}

#[test]
fn type_difference_stops_the_comparison() {
    let e = one(symlink("a"), mfile("usr/x", b"a", "mode=755 uid=5"));
    assert_eq!(fields(&e), ["type symlink != file"]);
    let e = one(dir(0o700), mfile("usr/x", b"a", ""));
    assert_eq!(fields(&e), ["type dir != file"]);
    let e = one(node(Kind::Fifo, 0o644), mfile("usr/x", b"a", ""));
    assert_eq!(fields(&e), ["type fifo != file"]);
}

#[test]
fn directory_mode_widened_by_fakeroot_is_reported() {
    let p = pkg("p", &["d/"], &[], &[mdir("d", "mode=555")]);
    let a = account(&tree(vec![("d", dir(0o755))]), &inv(vec![p]));
    let e = a.get("d").unwrap();
    assert_eq!(e.class, Class::Modified);
    assert_eq!(fields(e), ["mode 0755 != 0555"]);
    assert_eq!(e.kind, Some(Kind::Dir));
    assert_eq!(e.bytes, 0);
}

#[test]
fn hardlink_is_a_file_counted_once() {
    let p = pkg(
        "p",
        &["a", "b"],
        &[],
        &[mfile("a", b"same", ""), mfile("b", b"same", "")],
    );
    let t = tree(vec![
        ("a", file(b"same", 0o644)),
        (
            "b",
            Node {
                link_target: Some("a".into()),
                ..Node {
                    kind: Kind::Hardlink,
                    ..file(b"same", 0o644)
                }
            },
        ),
    ]);
    let a = account(&t, &inv(vec![p]));
    assert_eq!(a.get("a").unwrap().class, Class::Package);
    let b = a.get("b").unwrap();
    assert_eq!(b.class, Class::Package);
    assert_eq!((b.size, b.bytes), (4, 0));
    assert_eq!(a.totals.package, Count { files: 2, bytes: 4 });
}

#[test]
fn unowned_entries() {
    let p = pkg("p", &["usr/"], &[], &[mdir("usr", "")]);
    let a = account(
        &tree(vec![("usr", dir(0o755)), ("usr/new", file(b"123", 0o644))]),
        &inv(vec![p]),
    );
    let e = a.get("usr/new").unwrap();
    assert_eq!(e.class, Class::Unowned);
    assert!(e.packages.is_empty());
    assert!(e.mtime.is_none());
    assert_eq!(a.totals.unowned, Count { files: 1, bytes: 3 });
    // The root directory is not an entry.
    assert!(a.get(".").is_none());
    assert_eq!(a.totals.present.files, 2);
}

#[test]
fn missing_entries_take_type_and_size_from_mtree() {
    let p = pkg(
        "p",
        &["usr/", "usr/share/", "usr/share/man/", "usr/share/man/x.1"],
        &[],
        &[
            mdir("usr", ""),
            mdir("usr/share", ""),
            mdir("usr/share/man", ""),
            mfile("usr/share/man/x.1", b"manpage", ""),
        ],
    );
    let a = account(
        &tree(vec![("usr", dir(0o755)), ("usr/share", dir(0o755))]),
        &inv(vec![p]),
    );
    let m = a.get("usr/share/man/x.1").unwrap();
    assert_eq!(m.class, Class::Missing);
    assert_eq!(m.kind, Some(Kind::File));
    assert_eq!((m.size, m.bytes), (7, 7));
    assert!(m.mtime.is_none());
    let d = a.get("usr/share/man").unwrap();
    assert_eq!((d.class, d.kind), (Class::Missing, Some(Kind::Dir)));
    assert_eq!(a.totals.missing, Count { files: 2, bytes: 7 });
    assert_eq!(a.totals.present.files, 2);
    // Entries are sorted by path whatever their class.
    let paths: Vec<String> = a.entries.iter().map(|e| e.path.display()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
}

#[test]
fn backup_files_are_marked() {
    let p = pkg(
        "p",
        &["etc/", "etc/conf", "etc/same"],
        &["etc/conf", "etc/same"],
        &[
            mdir("etc", ""),
            mfile("etc/conf", b"orig\n", ""),
            mfile("etc/same", b"s", ""),
        ],
    );
    let a = account(
        &tree(vec![
            ("etc", dir(0o755)),
            ("etc/conf", file(b"edited by a recipe\n", 0o644)),
            ("etc/same", file(b"s", 0o644)),
        ]),
        &inv(vec![p]),
    );
    let e = a.get("etc/conf").unwrap();
    assert_eq!(e.class, Class::Modified);
    assert!(e.backup);
    assert!(details(e).starts_with("backup; size 19 != 5; sha256 "));
    // An untouched backup file is simply a package file, still marked.
    let s = a.get("etc/same").unwrap();
    assert_eq!(s.class, Class::Package);
    assert!(s.backup);
    assert!(!a.get("etc").unwrap().backup);
}

#[test]
fn shared_directory_counts_once_with_every_owner() {
    let a1 = pkg(
        "a",
        &["usr/", "usr/a"],
        &[],
        &[mdir("usr", ""), mfile("usr/a", b"a", "")],
    );
    let b1 = pkg(
        "b",
        &["usr/", "usr/b"],
        &[],
        &[
            format!("./usr time={}.0 mode=755 type=dir", T + 5),
            mfile("usr/b", b"b", ""),
        ],
    );
    let t = tree(vec![
        ("usr", dir(0o755)),
        ("usr/a", file(b"a", 0o644)),
        ("usr/b", file(b"b", 0o644)),
    ]);
    let a = account(&t, &inv(vec![b1, a1]));
    let e = a.get("usr").unwrap();
    assert_eq!(e.class, Class::Package);
    assert_eq!(e.packages, ["a", "b"]);
    assert_eq!(a.totals.package.files, 3);
    // Owners disagree on the time: not equal to every owner's, and reported per owner.
    let m = e.mtime.as_ref().unwrap();
    assert!(!m.equal);
    assert_eq!(m.mtree.len(), 2);
    assert_eq!(details(e), format!("mtime {T} != a {T}, b {}", T + 5));
}

#[test]
fn shared_directory_differing_from_one_owner_names_it() {
    let a1 = pkg("a", &["d/"], &[], &[mdir("d", "")]);
    let b1 = pkg("b", &["d/"], &[], &[mdir("d", "mode=555")]);
    let a = account(&tree(vec![("d", dir(0o755))]), &inv(vec![a1, b1]));
    let e = a.get("d").unwrap();
    assert_eq!(e.class, Class::Modified);
    assert_eq!(e.differences.len(), 1);
    assert_eq!(e.differences[0].package, "b");
    assert_eq!(details(e), "b: mode 0755 != 0555");
}

#[test]
fn mtime_is_reported_but_counted_apart() {
    let e = one(
        Node {
            mtime: SDE,
            ..file(b"a", 0o644)
        },
        mfile("usr/x", b"a", ""),
    );
    assert_eq!(e.class, Class::Package);
    let m = e.mtime.as_ref().unwrap();
    assert_eq!((m.tree, m.mtree[0].time, m.equal), (SDE, T, false));
    assert_eq!(details(&e), format!("mtime {SDE} != {T}"));

    let p = pkg(
        "p",
        &["a", "b"],
        &[],
        &[mfile("a", b"1", ""), mfile("b", b"2", "")],
    );
    let t = tree(vec![
        (
            "a",
            Node {
                mtime: SDE,
                ..file(b"1", 0o644)
            },
        ),
        ("b", file(b"2", 0o644)),
        ("c", file(b"333", 0o644)),
    ]);
    let a = account(&t, &inv(vec![p]));
    assert_eq!(a.totals.package, Count { files: 2, bytes: 2 });
    assert_eq!(a.totals.mtime_differs, Count { files: 1, bytes: 1 });
    assert_eq!(a.totals.mtime_equal, Count { files: 1, bytes: 1 });
}

#[test]
fn escaped_mtree_paths_match_tree_bytes() {
    let p = pkg(
        "p",
        &["d/", "d/name with spaces", "d/ünï"],
        &[],
        &[
            mdir("d", ""),
            mfile("d/name\\040with\\040spaces", b"s", ""),
            mfile("d/\\303\\274n\\303\\257", b"u", ""),
        ],
    );
    let a = account(
        &tree(vec![
            ("d", dir(0o755)),
            ("d/name with spaces", file(b"s", 0o644)),
            ("d/ünï", file(b"u", 0o644)),
        ]),
        &inv(vec![p]),
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    assert_eq!(a.totals.package.files, 3);
    assert_eq!(a.totals.missing.files, 0);
}

#[test]
fn owned_path_without_mtree_line_is_modified() {
    let p = pkg("p", &["a", "b"], &[], &[mfile("a", b"1", "")]);
    let a = account(
        &tree(vec![("a", file(b"1", 0o644)), ("b", file(b"2", 0o644))]),
        &inv(vec![p]),
    );
    let e = a.get("b").unwrap();
    assert_eq!(e.class, Class::Modified);
    assert_eq!(e.differences[0].field, Field::MtreeLine);
    assert_eq!(details(e), "no mtree line in p");
    assert!(e.mtime.is_none());
}

#[test]
fn database_inconsistencies_are_warnings() {
    let mut nofiles = pkg("nofiles", &["x"], &[], &[mfile("x", b"1", "")]);
    nofiles.parsed.files = None;
    let extra = pkg(
        "extra",
        &["y"],
        &[],
        &[mfile("y", b"1", ""), mfile("z", b"1", "")],
    );
    let a = account(
        &tree(vec![("x", file(b"1", 0o644)), ("y", file(b"1", 0o644))]),
        &inv(vec![nofiles, extra]),
    );
    assert_eq!(a.get("x").unwrap().class, Class::Unowned);
    assert_eq!(a.get("y").unwrap().class, Class::Package);
    assert!(a.get("z").is_none());
    assert_eq!(
        a.warnings,
        [
            "extra-1-1: mtree lists z, which files does not (not counted as owned)",
            "nofiles-1-1: no readable files list, so the package owns nothing here",
        ]
    );
}

#[test]
fn json_shape() {
    let e = one(file(b"b", 0o600), mfile("usr/x", b"a", ""));
    let j = serde_json::to_value(&e).unwrap();
    assert_eq!(j["path"], "usr/x");
    assert_eq!(j["class"], "modified");
    assert_eq!(j["kind"], "file");
    assert_eq!(j["differences"][0]["field"], "mode");
    assert_eq!(j["differences"][0]["tree"], "0600");
    assert_eq!(j["differences"][0]["mtree"], "0644");
    assert_eq!(j["differences"][1]["field"], "sha256");
    assert_eq!(j["mtime"]["mtree"][0]["package"], "p");
}

#[test]
fn host_directory_tree() {
    use std::os::unix::fs::{PermissionsExt, symlink as mksymlink};
    let d = tempfile::tempdir().unwrap();
    let r = d.path();
    std::fs::create_dir_all(r.join("usr/bin")).unwrap();
    std::fs::write(r.join("usr/bin/a"), b"abc").unwrap();
    std::fs::set_permissions(r.join("usr/bin/a"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(r.join("usr/bin/a"), r.join("usr/bin/b")).unwrap();
    mksymlink("usr/bin", r.join("bin")).unwrap();
    let t = host::tree_from_dir(r).unwrap();
    assert_eq!(t.entries[&TreePath::root()].kind, Kind::Dir);
    let a = t.get("usr/bin/a").unwrap();
    assert_eq!((a.kind, a.mode, a.size), (Kind::File, 0o4755, 3));
    assert_eq!(a.sha256, Some(sha256_of(b"abc")));
    let b = t.get("usr/bin/b").unwrap();
    assert_eq!(b.kind, Kind::Hardlink);
    assert_eq!(b.link_target.as_deref(), Some("usr/bin/a"));
    assert_eq!(b.sha256, a.sha256);
    let l = t.get("bin").unwrap();
    assert_eq!(
        (l.kind, l.link_target.as_deref()),
        (Kind::Symlink, Some("usr/bin"))
    );
    assert!(host::tree_from_dir(&r.join("usr/bin/a")).is_err());
}

#[test]
fn install_scriptlet_is_owned_in_the_db() {
    let script = b"post_install() { :; }\n";
    let p = pkg(
        "p",
        &["a"],
        &[],
        &[mfile(".INSTALL", script, ""), mfile("a", b"1", "")],
    );
    let t = tree(vec![
        ("a", file(b"1", 0o644)),
        ("var/lib/pacman/local/p-1-1/desc", file(b"d", 0o644)),
        ("var/lib/pacman/local/p-1-1/install", file(script, 0o644)),
    ]);
    let a = account(&t, &inv(vec![p.clone()]));
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    let e = a.get("var/lib/pacman/local/p-1-1/install").unwrap();
    assert_eq!(
        (e.class, e.packages.as_slice()),
        (Class::Package, &["p".to_string()][..])
    );
    assert_eq!(
        a.get("var/lib/pacman/local/p-1-1/desc").unwrap().class,
        Class::Unowned
    );
    // Edited in the db: modified, like any other owned file.
    let t = tree(vec![
        ("a", file(b"1", 0o644)),
        ("var/lib/pacman/local/p-1-1/install", file(b"x", 0o644)),
    ]);
    let a = account(&t, &inv(vec![p]));
    assert_eq!(
        a.get("var/lib/pacman/local/p-1-1/install").unwrap().class,
        Class::Modified
    );
}
