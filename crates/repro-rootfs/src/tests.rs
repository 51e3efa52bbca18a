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

// ---- hostile layers (issue 4, "How it is shown") -------------------------------------------

impl T {
    /// A name too long for the header, as a GNU `L` entry before a placeholder header.
    fn gnu_long(mut self, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Self {
        let mut l = Self::header(tar::EntryType::GNULongName, 0o644, name.len() as u64 + 1);
        l.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        l.set_cksum();
        let mut d = name.to_vec();
        d.push(0);
        self.0.append(&l, &d[..]).unwrap();
        self.raw(b"placeholder", kind, data)
    }
    /// The name in a pax `path` record, which overrides the header's.
    fn pax_path(mut self, name: &[u8], kind: tar::EntryType, data: &[u8]) -> Self {
        self.0.append_pax_extensions([("path", name)]).unwrap();
        self.raw(b"placeholder", kind, data)
    }
    /// A hardlink whose target is written raw into the header.
    fn raw_hardlink(mut self, path: &str, target: &[u8]) -> Self {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        h.set_path(path).unwrap();
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        h.set_cksum();
        self.0.append(&h, &[][..]).unwrap();
        self
    }
}

fn err_of(layers: &[Vec<u8>]) -> String {
    apply(layers).unwrap_err().to_string()
}

/// Peak-RSS assertions read a per-process high-water mark: tests that measure it (and
/// allocate the most) run one at a time so they do not count each other's memory.
static MEMORY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Peak resident set of this process so far, in bytes (`VmHWM`).
/// The kernel folds per-thread RSS counters into the high-water mark lazily, so two readings
/// can come out slightly non-monotonic: callers subtract with `saturating_sub`.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A tar stream of one regular file `name` of `size` zero bytes, generated as it is read:
/// a bomb's worth of tar without a bomb's worth of memory or disk.
fn zeros_tar(name: &str, size: u64) -> impl Read {
    let mut h = T::header(tar::EntryType::Regular, 0o644, size);
    h.set_path(name).unwrap();
    h.set_cksum();
    let pad = (512 - size % 512) % 512;
    io::Cursor::new(h.as_bytes().to_vec())
        .chain(io::repeat(0).take(size + pad))
        .chain(io::Cursor::new(vec![0u8; 1024]))
}

#[test]
fn hostile_path_traversal_in_every_place_a_name_can_hide() {
    let ok = T::new().file("etc/passwd", b"root:x:0:0", 0o644).bytes();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "../x",
            T::new().raw(b"../x", tar::EntryType::Regular, b"x").bytes(),
            "\"..\"",
        ),
        (
            "./../x",
            T::new()
                .raw(b"./../x", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            "a/b/../../../x",
            T::new()
                .raw(b"a/b/../../../x", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            // Even a `..` that stays inside the tree: no runtime needs one.
            "a/../x",
            T::new()
                .raw(b"a/../x", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            "../d",
            T::new()
                .raw(b"../d", tar::EntryType::Directory, b"")
                .bytes(),
            "\"..\"",
        ),
        (
            "../s",
            T::new().raw(b"../s", tar::EntryType::Symlink, b"").bytes(),
            "\"..\"",
        ),
        (
            "../.wh.etc",
            T::new()
                .raw(b"../.wh.etc", tar::EntryType::Regular, b"")
                .bytes(),
            "\"..\"",
        ),
        (
            "etc/.wh...",
            T::new()
                .raw(b"etc/.wh...", tar::EntryType::Regular, b"")
                .bytes(),
            "whiteout of the root or of a parent",
        ),
        (
            "/../etc/passwd",
            T::new()
                .raw(b"/../etc/passwd", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
    ];
    let long = format!("{}/../../../../etc/shadow", "d/".repeat(60));
    let long_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            long.as_str(),
            T::new()
                .gnu_long(long.as_bytes(), tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
        (
            "../../pax",
            T::new()
                .pax_path(b"../../pax", tar::EntryType::Regular, b"x")
                .bytes(),
            "\"..\"",
        ),
    ];
    for (entry, layer, needle) in cases.into_iter().chain(long_cases) {
        let e = err_of(&[ok.clone(), layer]);
        assert!(
            e.starts_with(&format!("layer 1: entry {entry:?}: ")),
            "{entry}: {e}"
        );
        assert!(e.contains(needle), "{entry}: {e}");
    }
}

#[test]
fn hostile_absolute_paths_are_applied_below_the_root_and_flagged() {
    let t = apply(&[
        T::new().file("etc/passwd", b"root:x:0:0", 0o644).bytes(),
        T::new()
            .raw(b"/etc/passwd", tar::EntryType::Regular, b"evil")
            .raw(b"//etc//shadow", tar::EntryType::Regular, b"evil")
            .raw(b"/", tar::EntryType::Directory, b"")
            .bytes(),
    ])
    .unwrap();
    // Replaced inside the tree, never anywhere else.
    assert_eq!(paths(&t), [".", "etc/passwd", "etc/shadow"]);
    let p = t.get("etc/passwd").unwrap();
    assert_eq!((p.layer, p.size), (1, 4));
    assert_eq!(p.sha256, Some(repro_oci::digest::sha256_of(b"evil")));
    let flagged: Vec<(&str, usize)> = t
        .flags
        .iter()
        .filter(|f| f.message.contains("absolute path"))
        .map(|f| (f.entry.as_str(), f.layer))
        .collect();
    assert_eq!(
        flagged,
        [("/etc/passwd", 1), ("//etc//shadow", 1), ("/", 1)]
    );
}

#[test]
fn hostile_symlink_then_write_through_it_is_flagged_and_recorded_in_the_tree() {
    // Same layer, absolute target, nested below the link, and across layers.
    let l0 = T::new()
        .link(tar::EntryType::Symlink, "evil", "/etc")
        .file("evil/passwd", b"root::0:0:pwned", 0o644)
        .dir("evil/cron.d", 0o755)
        .file("evil/cron.d/job", b"* * * * * root sh", 0o644)
        .bytes();
    let l1 = T::new()
        .link(tar::EntryType::Symlink, "up", "../../../../")
        .bytes();
    let l2 = T::new().file("up/etc/shadow", b"root::", 0o600).bytes();
    let t = apply(&[l0, l1, l2]).unwrap();
    let evil = t.get("evil").unwrap();
    assert_eq!(evil.kind, Kind::Symlink);
    assert_eq!(evil.link_target.as_deref(), Some("/etc"));
    // `evil/passwd` is its own entry; nothing appears at the link's target.
    let p = t.get("evil/passwd").unwrap();
    assert_eq!(p.kind, Kind::File);
    assert_eq!(
        p.sha256,
        Some(repro_oci::digest::sha256_of(b"root::0:0:pwned"))
    );
    assert!(t.get("etc/passwd").is_none() && t.get("etc").is_none());
    assert_eq!(t.get("up/etc/shadow").unwrap().layer, 2);
    let flags: Vec<(usize, &str, &str)> = t
        .flags
        .iter()
        .map(|f| (f.layer, f.entry.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(flags.len(), 4, "{flags:#?}");
    for (layer, entry, link) in [
        (0, "evil/passwd", "evil"),
        (0, "evil/cron.d", "evil"),
        (0, "evil/cron.d/job", "evil"),
        (2, "up/etc/shadow", "up"),
    ] {
        assert!(
            flags.iter().any(|(l, e, m)| *l == layer
                && *e == entry
                && m.contains(&format!("below symlink {link}:"))),
            "{entry}: {flags:#?}"
        );
    }
    // The JSON view says the same: entries below the link are listed, not resolved.
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["entries"]["evil/passwd"]["kind"], "file");
    assert_eq!(json["entries"]["evil"]["link_target"], "/etc");
}

#[test]
fn hostile_hardlinks_out_of_the_tree_are_errors_naming_layer_and_entry() {
    let base = T::new()
        .file("etc/passwd", b"root:x:0:0", 0o644)
        .link(tar::EntryType::Symlink, "evil", "/etc")
        .bytes();
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("h1", b"../../etc/passwd", "link target: \"..\" component"),
        (
            "h2",
            b"etc/../../etc/passwd",
            "link target: \"..\" component",
        ),
        ("h3", b"/../etc/passwd", "link target: \"..\" component"),
        // Through a symlink: the tree has no `evil/passwd`, so there is nothing to link to.
        (
            "h4",
            b"evil/passwd",
            "hardlink to evil/passwd, which does not exist",
        ),
        (
            "h5",
            b"/nonexistent",
            "hardlink to nonexistent, which does not exist",
        ),
        ("h6", b"evil", "which is a Symlink, not a file"),
        ("h7", b"", "hardlink without a target"),
    ];
    for (name, target, needle) in cases {
        let e = err_of(&[base.clone(), T::new().raw_hardlink(name, target).bytes()]);
        assert!(
            e.starts_with(&format!("layer 1: entry {name:?}: ")),
            "{name}: {e}"
        );
        assert!(e.contains(needle), "{name}: {e}");
    }
    // An absolute target naming an entry of the tree resolves inside it.
    let t = apply(&[base, T::new().raw_hardlink("ok", b"/etc/passwd").bytes()]).unwrap();
    assert_eq!(
        t.get("ok").unwrap().link_target.as_deref(),
        Some("etc/passwd")
    );
}

#[test]
fn hostile_huge_size_field_is_a_truncation_error_not_an_allocation() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let huge = 1u64 << 60;
    let mut h = T::header(tar::EntryType::Regular, 0o644, huge);
    h.set_path("var/lib/pacman/local/x/desc").unwrap();
    h.set_cksum();
    assert_eq!(h.size().unwrap(), huge);
    let mut only_header = T::new().file("fine", b"1", 0o644).bytes();
    only_header.truncate(only_header.len() - 1024); // drop the end-of-archive blocks
    only_header.extend_from_slice(h.as_bytes());
    let mut with_end = only_header.clone();
    with_end.extend_from_slice(&[0u8; 1024]);

    let before = peak_rss();
    for layer in [only_header, with_end] {
        let e = err_of(&[T::new().bytes(), layer.clone()]);
        assert!(
            e.starts_with("layer 1: entry \"var/lib/pacman/local/x/desc\": truncated"),
            "{e}"
        );
        assert!(e.contains(&format!("declares {huge} bytes")), "{e}");
        // Captured, it is refused before any buffer is made for it.
        let mut a = Applier::with_capture(capture_under("var/lib/pacman/"));
        let e = a.apply_layer(&layer[..]).unwrap_err().to_string();
        assert!(
            e.starts_with("layer 0: entry \"var/lib/pacman/local/x/desc\": ")
                && e.contains("more than the 16777216 bytes a captured file may have"),
            "{e}"
        );
    }
    // Same for a directory or symlink claiming data: the tar reader must skip it.
    let mut d = T::header(tar::EntryType::Directory, 0o755, huge);
    d.set_path("dir").unwrap();
    d.set_cksum();
    let mut layer = d.as_bytes().to_vec();
    layer.extend_from_slice(&[0u8; 1024]);
    let e = err_of(&[layer]);
    assert!(
        e.starts_with("layer 0: reading the entry after \"dir\""),
        "{e}"
    );
    assert!(
        peak_rss().saturating_sub(before) < 16 << 20,
        "the header was believed"
    );
}

#[test]
fn hostile_truncated_tar_is_an_error_naming_layer_and_entry() {
    let full = T::new()
        .dir("usr", 0o755)
        .file("usr/a", &[7u8; 3000], 0o644)
        .file("usr/b", &[8u8; 100], 0o644)
        .bytes();
    // Cut inside usr/a's content (its header is at 512, its data at 1024..4024).
    for cut in [1025, 2048, 4000] {
        let e = err_of(&[T::new().bytes(), full[..cut].to_vec()]);
        assert!(
            e.starts_with("layer 1: entry \"usr/a\": truncated: the header declares 3000 bytes"),
            "cut at {cut}: {e}"
        );
    }
    // Cut inside usr/b's header: the error names the layer and the last entry read.
    let e = err_of(&[full[..4096 + 100].to_vec()]);
    assert!(
        e.starts_with("layer 0: reading the entry after \"usr/a\""),
        "{e}"
    );
    // Cut in the padding after usr/a's data (4024..4096): usr/a is whole, the tar is not.
    let e = err_of(&[full[..4050].to_vec()]);
    assert!(
        e.starts_with("layer 0: reading the entry after \"usr/a\""),
        "{e}"
    );
    // The whole tar applies.
    assert_eq!(paths(&apply(&[full]).unwrap()), ["usr", "usr/a", "usr/b"]);
}

#[test]
fn hostile_uncompressed_bomb_is_refused_at_the_layer_limit() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let mut a = Applier::new().max_layer_bytes(64 << 20);
    a.apply_layer(&T::new().file("small", b"1", 0o644).bytes()[..])
        .unwrap();
    let e = a
        .apply_layer(zeros_tar("usr/share/bomb", 1 << 30))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("layer 1: entry \"usr/share/bomb\": reading content: ")
            && e.contains("more than 67108864 uncompressed bytes"),
        "{e}"
    );
    // A layer of exactly the limit is fine: 512 header + 1 MiB + 1024 end blocks.
    let mut a = Applier::new().max_layer_bytes(512 + (1 << 20) + 1024);
    a.apply_layer(zeros_tar("exact", 1 << 20)).unwrap();
    assert_eq!(a.finish().get("exact").unwrap().size, 1 << 20);
    assert!(peak_rss().saturating_sub(before) < 64 << 20);
}

#[test]
fn hostile_one_gib_of_zeros_streams_in_bounded_memory() {
    let _serial = MEMORY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = peak_rss();
    let mut a = Applier::new();
    a.apply_layer(zeros_tar("zeros", 1 << 30)).unwrap();
    let t = a.finish();
    let n = t.get("zeros").unwrap();
    assert_eq!(n.size, 1 << 30);
    // sha256 of 1 GiB of zeros.
    assert_eq!(
        n.sha256.as_ref().unwrap().to_string(),
        "sha256:49bc20df15e412a64472421e13fe86ff1c5165e18b2afccf160d4dc19fe68a14"
    );
    let grown = peak_rss().saturating_sub(before);
    assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes");
}
