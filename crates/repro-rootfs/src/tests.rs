use super::*;

/// A tar built entry by entry with the tar crate (GNU headers, long names as needed).
struct T(tar::Builder<Vec<u8>>);

impl T {
    fn new() -> Self {
        T(tar::Builder::new(Vec::new()))
    }
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }
    /// Write a raw name into the header, bypassing the tar crate's own checks.
    fn raw(mut self, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Self {
        let mut h = Self::header(kind, 0o644, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn apply(layers: &[Vec<u8>]) -> Result<Tree, RootfsError> {
    let mut a = Applier::new();
    for l in layers {
        a.apply_layer(&l[..])?;
    }
    Ok(a.finish())
}

fn paths(t: &Tree) -> Vec<String> {
    t.entries.keys().map(|p| p.display()).collect()
}

#[test]
fn files_dirs_and_content_hashes() {
    let t = apply(&[T::new()
        .dir("./", 0o755)
        .dir("./etc", 0o755)
        .file("./etc/os-release", b"NAME=x\n", 0o644)
        .file("./usr/bin/su", b"su", 0o4755)
        .bytes()])
    .unwrap();
    assert_eq!(paths(&t), [".", "etc", "etc/os-release", "usr/bin/su"]);
    let f = t.get("etc/os-release").unwrap();
    assert_eq!(f.kind, Kind::File);
    assert_eq!(f.size, 7);
    assert_eq!(f.sha256, Some(repro_oci::digest::sha256_of(b"NAME=x\n")));
    assert_eq!(t.get("/usr/bin/su").unwrap().mode, 0o4755);
}

#[test]
fn whiteouts_and_opaque_directories() {
    let lower = T::new()
        .dir("a", 0o755)
        .file("a/keep", b"1", 0o644)
        .file("a/gone", b"2", 0o644)
        .dir("b", 0o755)
        .file("b/x", b"3", 0o644)
        .file("b-sibling", b"4", 0o644)
        .dir("c", 0o755)
        .file("c/y", b"5", 0o644)
        .bytes();
    let upper = T::new()
        .file("a/.wh.gone", b"", 0o644)
        .file(".wh.b", b"", 0o644)
        .file("c/.wh..wh..opq", b"", 0o644)
        .file("c/new", b"6", 0o644)
        .bytes();
    let t = apply(&[lower, upper]).unwrap();
    assert_eq!(paths(&t), ["a", "a/keep", "b-sibling", "c", "c/new"]);
    assert_eq!(t.get("c/new").unwrap().layer, 1);
    assert_eq!(t.get("c").unwrap().layer, 0);
}

#[test]
fn hardlinks_within_and_across_layers() {
    let l0 = T::new().file("usr/bin/a", b"same", 0o755).bytes();
    let l1 = T::new()
        .link(tar::EntryType::Link, "usr/bin/b", "usr/bin/a")
        .file("x", b"y", 0o644)
        .link(tar::EntryType::Link, "z", "./x")
        .bytes();
    let t = apply(&[l0, l1]).unwrap();
    let b = t.get("usr/bin/b").unwrap();
    assert_eq!(b.kind, Kind::Hardlink);
    assert_eq!(b.sha256, t.get("usr/bin/a").unwrap().sha256);
    assert_eq!(b.link_target.as_deref(), Some("usr/bin/a"));
    assert_eq!(t.get("z").unwrap().size, 1);
}

#[test]
fn symlinks_are_recorded_never_followed_and_entries_below_them_flagged() {
    let t = apply(&[T::new()
        .link(tar::EntryType::Symlink, "bin", "usr/bin")
        .link(tar::EntryType::Symlink, "escape", "../../../etc")
        .file("escape/passwd", b"root::0:0", 0o644)
        .bytes()])
    .unwrap();
    assert_eq!(
        t.get("escape").unwrap().link_target.as_deref(),
        Some("../../../etc")
    );
    assert!(t.get("escape/passwd").is_some());
    assert_eq!(t.flags.len(), 1);
    assert!(
        t.flags[0].message.contains("below symlink escape"),
        "{:?}",
        t.flags
    );
}

#[test]
fn a_file_replacing_a_directory_removes_its_children() {
    let l0 = T::new().dir("d", 0o755).file("d/f", b"1", 0o644).bytes();
    let l1 = T::new().file("d", b"now a file", 0o644).bytes();
    let t = apply(&[l0, l1]).unwrap();
    assert_eq!(paths(&t), ["d"]);
    assert_eq!(t.get("d").unwrap().kind, Kind::File);
}

#[test]
fn hostile_entries_are_errors_naming_layer_and_entry() {
    let ok = T::new().file("fine", b"1", 0o644).bytes();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            T::new()
                .raw(b"../etc/passwd", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            T::new()
                .raw(b"a/../../b", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            T::new().link(tar::EntryType::Link, "h", "nowhere").bytes(),
            "does not exist",
        ),
        (
            T::new().raw(b".wh..", tar::EntryType::Regular, b"").bytes(),
            "whiteout of the root",
        ),
        (
            T::new().raw(b"./", tar::EntryType::Regular, b"x").bytes(),
            "root replaced",
        ),
    ];
    for (layer, needle) in cases {
        let e = apply(&[ok.clone(), layer]).unwrap_err().to_string();
        assert!(e.starts_with("layer 1: entry"), "{e}");
        assert!(e.contains(needle), "{e}");
    }
    let e = apply(&[
        b"this is not a tar archive at all, just text padding it out to 512 bytes. ".repeat(8),
    ])
    .unwrap_err();
    assert!(e.to_string().starts_with("layer 0"), "{e}");
}

#[test]
fn oddities_a_runtime_accepts_are_flagged() {
    let t = apply(&[T::new()
        .raw(b"/abs", tar::EntryType::Regular, b"1")
        .file("dup", b"first", 0o644)
        .file("dup", b"second", 0o644)
        .bytes()])
    .unwrap();
    assert!(t.get("abs").is_some());
    assert_eq!(t.get("dup").unwrap().size, 6);
    let msgs: Vec<&str> = t.flags.iter().map(|f| f.message.as_str()).collect();
    assert!(msgs.iter().any(|m| m.contains("absolute path")), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("same path twice")),
        "{msgs:?}"
    );
}

#[test]
fn long_names_pax_xattrs_and_mtime() {
    let long = format!("usr/share/{}/{}", "d".repeat(120), "f".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(3);
    h.set_mtime(5);
    h.set_uid(0);
    h.set_gid(0);
    b.append_pax_extensions([
        ("SCHILY.xattr.security.capability", &b"\x01\x00\x00\x02"[..]),
        ("mtime", &b"1700000000.25"[..]),
    ])
    .unwrap();
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let t = apply(&[b.into_inner().unwrap()]).unwrap();
    let n = t.get(&long).unwrap();
    assert_eq!(
        n.xattrs.get("security.capability").map(String::as_str),
        Some("AQAAAg==")
    );
    assert_eq!((n.mtime, n.mtime_nsec), (1_700_000_000, 250_000_000));
}

#[test]
fn root_children_removal_covers_names_sorting_before_the_dot() {
    let l0 = T::new()
        .file("-dash", b"1", 0o644)
        .file("zed", b"2", 0o644)
        .bytes();
    let l1 = T::new()
        .file(".wh..wh..opq", b"", 0o644)
        .file("new", b"3", 0o644)
        .bytes();
    let t = apply(&[l0, l1]).unwrap();
    assert_eq!(paths(&t), ["new"]);
}

fn capture_under(prefix: &'static str) -> Capture {
    Capture::new(move |p: &TreePath| p.as_bytes().starts_with(prefix.as_bytes()))
}

fn apply_capturing(capture: Capture, layers: &[Vec<u8>]) -> Result<Tree, RootfsError> {
    let mut a = Applier::with_capture(capture);
    for l in layers {
        a.apply_layer(&l[..])?;
    }
    Ok(a.finish())
}

#[test]
fn capture_keeps_selected_contents_and_hardlinks_share_them() {
    let l0 = T::new()
        .dir("db", 0o755)
        .file("db/a", b"alpha", 0o644)
        .file("other", b"not kept", 0o644)
        .bytes();
    let l1 = T::new()
        .link(tar::EntryType::Link, "db/b", "db/a")
        .link(tar::EntryType::Link, "elsewhere", "db/a")
        .bytes();
    let t = apply_capturing(capture_under("db/"), &[l0, l1]).unwrap();
    assert_eq!(t.content("db/a").map(|c| &c[..]), Some(&b"alpha"[..]));
    assert_eq!(t.content("/db/b").map(|c| &c[..]), Some(&b"alpha"[..]));
    // A hardlink outside the selection shares its target's content too.
    assert_eq!(t.content("elsewhere").map(|c| &c[..]), Some(&b"alpha"[..]));
    assert!(t.content("other").is_none());
    assert!(t.get("other").unwrap().content.is_none());
    // Content never goes to JSON.
    let json = serde_json::to_string(&t).unwrap();
    assert!(!json.contains("content"), "{json}");
}

#[test]
fn captured_content_goes_with_whiteouts_and_replacements() {
    let l0 = T::new()
        .file("db/pkg-1/desc", b"one", 0o644)
        .file("db/pkg-2/desc", b"two", 0o644)
        .file("db/x", b"x0", 0o644)
        .bytes();
    let l1 = T::new()
        .file("db/.wh.pkg-1", b"", 0o644)
        .file("db/x", b"x1", 0o644)
        .bytes();
    let t = apply_capturing(capture_under("db/"), &[l0, l1]).unwrap();
    assert!(t.get("db/pkg-1/desc").is_none());
    assert_eq!(
        t.content("db/pkg-2/desc").map(|c| &c[..]),
        Some(&b"two"[..])
    );
    assert_eq!(t.content("db/x").map(|c| &c[..]), Some(&b"x1"[..]));
    let names: Vec<String> = t
        .children("db")
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names, ["pkg-2", "x"]);
    let db = t.children("db");
    assert!(db[0].1.is_none(), "pkg-2 is only implied by db/pkg-2/desc");
    assert_eq!(db[1].1.map(|n| n.kind), Some(Kind::File));
    assert_eq!(t.children("").len(), 1, "only db at the root");
    assert!(t.children("nothing").is_empty());
}

#[test]
fn capture_caps_are_errors_naming_the_entry() {
    let mut c = capture_under("db/");
    c.max_file = 4;
    let e = apply_capturing(c, &[T::new().file("db/big", b"12345", 0o644).bytes()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 0") && e.contains("db/big") && e.contains("5 bytes"),
        "{e}"
    );

    let mut c = capture_under("db/");
    c.max_total = 6;
    let l0 = T::new().file("db/a", b"1234", 0o644).bytes();
    let l1 = T::new().file("db/b", b"1234", 0o644).bytes();
    let e = apply_capturing(c, &[l0, l1]).unwrap_err().to_string();
    assert!(
        e.contains("layer 1") && e.contains("db/b") && e.contains("total"),
        "{e}"
    );

    // Files outside the selection are not limited.
    let mut c = capture_under("db/");
    c.max_file = 1;
    let t = apply_capturing(c, &[T::new().file("big", b"12345", 0o644).bytes()]).unwrap();
    assert_eq!(t.get("big").unwrap().size, 5);
}
