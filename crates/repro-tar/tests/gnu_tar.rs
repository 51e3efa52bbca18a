//! The GNU tar writer against the real GNU tar 1.34 with the recipe's flags, on trees made
//! to hit every header case: long and non-ASCII names and link targets, hard links,
//! devices, fifos, sockets, mode bits, big ids, xattrs, ACLs, mtime clamping with
//! nanoseconds, sparse files, excludes, sizes around block and record boundaries.
//! Each test builds a tree in a tempdir, runs `tar`, runs the writer, and compares bytes
//! (on a mismatch: the first differing offset and the member there). Needs root.

mod common;

use std::path::Path;

use common::{assert_same_tar, gnu_tar, gnu_tar_recipe, require_root, sh};
use repro_tar::Exclude;
use repro_tar::gnu::{self, GnuOptions, MtimePolicy};

const SDE: i64 = 1_793_664_000; // 2026-11-03, the world's SOURCE_DATE_EPOCH

fn ours(root: &Path, options: &GnuOptions) -> Vec<u8> {
    let plan = gnu::plan(root, options).unwrap();
    let mut out = Vec::new();
    let n = plan.write_to(&mut out).unwrap();
    assert_eq!(n as usize, out.len());
    assert_eq!(plan.size() as usize, out.len(), "planned size");
    out
}

/// Build a tree with `script` (bash, run inside the tree) and compare with the recipe's
/// tar command.
fn check_recipe(what: &str, script: &str) -> Vec<u8> {
    require_root(what);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sh(script, &root);
    let expected = gnu_tar_recipe(&root, SDE, None);
    let actual = ours(&root, &GnuOptions::recipe(SDE, Exclude::none()));
    assert_same_tar(&expected, &actual, what);
    // And again: nothing of the run (time, thread, map order) leaks into the bytes.
    assert!(
        actual == ours(&root, &GnuOptions::recipe(SDE, Exclude::none())),
        "{what}: second run differs"
    );
    actual
}

#[test]
fn plain_tree_files_dirs_symlinks() {
    let tar = check_recipe(
        "plain tree",
        "mkdir -p a/b/c empty etc
         printf 'hello\\n' > a/b/c/f
         : > zero
         head -c 511 /dev/zero > s511; head -c 512 /dev/zero > s512; head -c 513 /dev/zero > s513
         head -c 10240 /dev/urandom > r10240; head -c 100000 /dev/urandom > r100000
         ln -s a/b/c/f rel-link; ln -s /etc/os-release abs-link; ln -s missing dangling
         ln -s a dirlink
         chmod 0400 s511; chmod 0444 s512; chmod 0700 a
         touch -h -d @1793664000 dangling",
    );
    // Padded to GNU tar's 10240-byte records.
    assert_eq!(tar.len() % 10240, 0);
}

#[test]
fn long_and_non_ascii_names_and_targets() {
    check_recipe(
        "long names",
        r#"
        n99=$(printf 'a%.0s' $(seq 1 97)); n100=$(printf 'b%.0s' $(seq 1 98)); n101=$(printf 'c%.0s' $(seq 1 99))
        : > "$n99"; : > "$n100"; echo x > "$n101"
        d98=$(printf 'd%.0s' $(seq 1 97)); mkdir "$d98"           # "./" + 97 + "/" = 100
        d99=$(printf 'e%.0s' $(seq 1 98)); mkdir "$d99"           # 101 with the slash
        p=$(printf 'p%.0s' $(seq 1 60))/$(printf 'q%.0s' $(seq 1 60)); mkdir -p "$p"; echo y > "$p/file"
        deep=x; for i in $(seq 1 30); do deep="$deep/segment$i"; done; mkdir -p "$deep"; echo z > "$deep/leaf"
        long255=$(printf 'L%.0s' $(seq 1 255)); echo w > "$long255"
        echo u > 'héllo wörld'; mkdir 'dïr'; echo v > 'dïr/ünïcödé-ß-日本語.txt'
        echo s > 'name with spaces'; echo t > 'tab	name'; echo n > $'new\nline'
        ln -s "$(printf 'T%.0s' $(seq 1 100))" link100
        ln -s "$(printf 'U%.0s' $(seq 1 101))" link101
        ln -s "$(printf 'V%.0s' $(seq 1 300))" link300
        ln -s 'tärget' link-non-ascii
        ln -s "$long255" "$(printf 'l%.0s' $(seq 1 120))"
        "#,
    );
}

#[test]
fn hard_links() {
    check_recipe(
        "hard links",
        r#"
        echo one > h1; ln h1 h2; ln h1 h3; mkdir d; ln h1 d/h4
        long=$(printf 'H%.0s' $(seq 1 120)); echo two > "$long"; ln "$long" short-to-long
        echo three > 'zz-ü'; ln 'zz-ü' 'aa-link-to-non-ascii'
        ln -s h1 sym; ln sym sym-hardlink
        mkfifo fifo; ln fifo fifo-link
        "#,
    );
}

#[test]
fn devices_fifos_sockets_modes_owners() {
    check_recipe(
        "special files",
        r#"
        mknod cdev c 1 3; mknod bdev b 8 1; mknod bigdev c 259 70000; mkfifo fifo
        python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("sock")'
        echo s > suid; chmod 4755 suid; echo g > sgid; chmod 2755 sgid
        mkdir sticky; chmod 1777 sticky; mkdir sgid-dir; chmod 2775 sgid-dir
        mkdir ro-dir; echo x > ro-dir/f; chmod 0555 ro-dir
        echo o > owned; chown 1000:1000 owned; echo p > owned2; chown 0:1000 owned2
        echo b > bigid; chown 3000000:4000000 bigid
        ln -s owned biglink; chown -h 2097152:2097151 biglink
        "#,
    );
}

#[test]
fn xattrs_on_files_dirs_and_symlinks() {
    check_recipe(
        "xattrs",
        r#"
        echo a > f; setfattr -n user.foo -v bar f; setfattr -n user.zzz -v 1 f; setfattr -n user.aaa -v 2 f
        setcap cap_net_raw+ep f
        mkdir d; setfattr -n user.dir -v "$(printf 'v%.0s' $(seq 1 200))" d
        echo b > t; setfattr -n trusted.overlay.opaque -v y t
        ln -s f l; setfattr -h -n trusted.s -v 4 l
        echo c > bin; setfattr -n user.bin -v 0sAAECAwQFBgcICQoLDA0ODw== bin
        echo h > hx; setfattr -n user.h -v 3 hx; ln hx hy
        setfattr -n user.root -v r .
        "#,
    );
}

#[test]
fn acls() {
    check_recipe(
        "ACLs",
        r#"
        echo a > f; setfacl -m u:1000:rw f
        echo e > eff; setfacl -m u:1000:rwx,g:1001:rw,m:r eff
        echo n > unnamed; setfacl -m u:54321:r,g:54321:rx unnamed
        mkdir dacl; setfacl -d -m u:1000:rx dacl
        mkdir both; setfacl -m u:1001:rx both; setfacl -d -m g:1000:rwx both
        mkdir access-only; setfacl -m u:1001:rx access-only
        mkfifo fifo; setfacl -m u:1000:r fifo
        echo h > hx; setfacl -m u:1000:r hx; ln hx hy
        "#,
    );
}

#[test]
fn mtimes_clamped_and_fractional() {
    check_recipe(
        "mtimes",
        r#"
        echo n > newer; touch -d @1900000000 newer
        echo n > newer-ns; touch -d @1900000000.123 newer-ns
        echo o > older; touch -d @1500000000 older
        echo o > older-ns; touch -d @1500000000.5 older-ns
        echo o > older-1ns; touch -d @1500000000.000000001 older-1ns
        echo e > exact; touch -d @1793664000 exact
        echo e > exact-ns; touch -d @1793664000.000000001 exact-ns
        echo z > epoch; touch -d @0 epoch
        mkdir olddir; touch -d @1000000000.25 olddir
        ln -s older oldlink; touch -h -d @1200000000.75 oldlink
        setfattr -n user.x -v y older-ns
        "#,
    );
}

#[test]
fn mtime_policies_without_clamp() {
    require_root("mtime policies");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sh(
        r#"echo a > a; touch -d @1500000000.5 a; echo b > b; touch -d @1900000000 b
           mkdir d; touch -d @1600000000 d"#,
        root,
    );
    let base: Vec<String> = [
        "--numeric-owner",
        "--xattrs",
        "--acls",
        "--sort=name",
        "--pax-option=delete=atime,delete=ctime",
    ]
    .map(String::from)
    .to_vec();
    let mut options = GnuOptions::recipe(SDE, Exclude::none());
    options.mtime = MtimePolicy::File;
    assert_same_tar(&gnu_tar(root, &base), &ours(root, &options), "no --mtime");
    let mut forced = base.clone();
    forced.push(format!("--mtime=@{SDE}"));
    options.mtime = MtimePolicy::Force(SDE);
    assert_same_tar(
        &gnu_tar(root, &forced),
        &ours(root, &options),
        "--mtime without --clamp-mtime",
    );
}

#[test]
fn sparse_and_larger_files() {
    check_recipe(
        "sparse files",
        r#"
        truncate -s 20M sparse; printf 'middle' | dd of=sparse bs=1 seek=10485760 conv=notrunc status=none
        truncate -s 1M hole-only
        head -c 3000000 /dev/urandom > random3m
        "#,
    );
}

#[test]
fn recipe_excludes() {
    require_root("recipe excludes");
    let exclude_file = repro_world::repo_root().join("tests/world/recipe/exclude");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sh(
        r#"
        mkdir -p sys/kernel proc/1 dev etc/pacman.d/gnupg/openpgp-revocs.d etc/pacman.d/gnupg/private-keys-v1.d
        mkdir -p root/.gnupg tmp/x var/cache/pacman/pkg var/lib/pacman/sync var/tmp alpm-hooks/usr/share/libalpm/hooks usr/sys
        echo k > sys/kernel/f; echo p > proc/1/status; mknod dev/null c 1 3
        echo h > etc/hostname; echo m > etc/machine-id; echo r > etc/resolv.conf; : > .dockerenv
        echo r > etc/pacman.d/gnupg/openpgp-revocs.d/A.rev; echo k > etc/pacman.d/gnupg/private-keys-v1.d/B.key
        echo p > etc/pacman.d/gnupg/pubring.gpg~; echo p > etc/pacman.d/gnupg/pubring.gpg; echo t > etc/pacman.d/gnupg/trustdb.gpg
        python3 -c 'import socket; s=socket.socket(socket.AF_UNIX); s.bind("etc/pacman.d/gnupg/S.gpg-agent")'
        echo b > root/.bashrc; echo t > tmp/x/y; echo p > var/cache/pacman/pkg/a.pkg.tar.zst
        echo s > var/lib/pacman/sync/core.db; echo v > var/tmp/v; echo h > alpm-hooks/usr/share/libalpm/hooks/x.hook
        echo keep > usr/sys/keep; echo keep > etc/hostname.d
        "#,
        &root,
    );
    let expected = gnu_tar_recipe(&root, SDE, Some(&exclude_file));
    let options = GnuOptions::recipe(SDE, Exclude::from_file(&exclude_file).unwrap());
    let actual = ours(&root, &options);
    assert_same_tar(&expected, &actual, "recipe excludes");
    let plan = gnu::plan(&root, &options).unwrap();
    let names: Vec<String> = plan
        .names()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    for kept in [
        "./root/",
        "./tmp/",
        "./var/tmp/",
        "./etc/pacman.d/gnupg/",
        "./usr/sys/keep",
        "./etc/hostname.d",
    ] {
        assert!(names.contains(&kept.to_string()), "{kept} kept: {names:?}");
    }
    for gone in [
        "./sys/",
        "./proc/",
        "./dev/",
        "./root/.bashrc",
        "./etc/hostname",
        "./alpm-hooks/",
        "./.dockerenv",
    ] {
        assert!(!names.contains(&gone.to_string()), "{gone} excluded");
    }
}

/// A deterministic pseudo-random tree: many names (sorted by bytes, not locale), sizes
/// across block boundaries, nesting, links.
#[test]
fn generated_tree() {
    require_root("generated tree");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    let alphabet: &[u8] = b"aAbB-_.09zZ~+";
    let mut dirs = vec![root.clone()];
    for i in 0..600 {
        let parent = dirs[next(dirs.len() as u64) as usize].clone();
        let len = 1 + next(40) as usize;
        let name: String = (0..len)
            .map(|_| alphabet[next(alphabet.len() as u64) as usize] as char)
            .collect();
        let name = format!("{name}{i}");
        let path = parent.join(&name);
        match next(10) {
            0 | 1 => {
                std::fs::create_dir(&path).unwrap();
                dirs.push(path);
            }
            2 => std::os::unix::fs::symlink(format!("../{name}"), &path).unwrap(),
            _ => {
                let size = match next(6) {
                    0 => 0,
                    1 => 512 * next(5) as usize,
                    2 => 512 * next(5) as usize + 1,
                    3 => 10240 - 512 + next(1024) as usize,
                    _ => next(70000) as usize,
                };
                let data: Vec<u8> = (0..size).map(|j| (j as u64 * 31 + i) as u8).collect();
                std::fs::write(&path, data).unwrap();
            }
        }
    }
    let expected = gnu_tar_recipe(&root, SDE, None);
    let actual = ours(&root, &GnuOptions::recipe(SDE, Exclude::none()));
    assert_same_tar(&expected, &actual, "generated tree");
}

#[test]
fn a_file_that_shrinks_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 5000]).unwrap();
    let plan = gnu::plan(dir.path(), &GnuOptions::recipe(SDE, Exclude::none())).unwrap();
    std::fs::write(dir.path().join("f"), vec![7u8; 100]).unwrap();
    let err = plan.write_to(&mut Vec::new()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/f: size changed") && msg.contains("planned 5000"),
        "{msg}"
    );
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let err = gnu::plan(
        Path::new("/nonexistent/rootfs"),
        &GnuOptions::recipe(SDE, Exclude::none()),
    )
    .unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/rootfs: "),
        "{err}"
    );
}

/// The recipe runs its tar as `fakeroot -- tar …` in a session of its own: every owner
/// reads as 0:0 there, whatever the disk says, while modes (setuid/setgid/sticky, a 0555
/// directory) are the disk's. The writer's fakeroot view gives the same bytes as the real
/// fakeroot + GNU tar, without touching the tree.
#[test]
fn fresh_fakeroot_view_equals_fakeroot_tar() {
    require_root("fakeroot view");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    sh(
        "mkdir -p ro/sub owned; echo a > owned/f; echo s > suid; echo g > sgid
         mkdir sticky; ln owned/f owned/hard; ln -s owned/f owned/link
         chown -R 1000:1000 owned; chown -h 2000:3000 owned/link; chown 4242:4343 suid sgid sticky
         chmod 4755 suid; chmod 2711 sgid; chmod 1777 sticky; chmod 0444 owned/f
         chmod 0555 ro; chown 70000:70000 ro/sub",
        &root,
    );
    use std::os::unix::fs::MetadataExt;
    let before: Vec<(u32, u32, u32)> = ["owned/f", "suid", "sgid", "ro/sub"]
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            (m.uid(), m.gid(), m.mode())
        })
        .collect();
    let out = tempfile::NamedTempFile::new().unwrap();
    common::run(
        std::process::Command::new("fakeroot")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .args([
                "--",
                "tar",
                "--numeric-owner",
                "--xattrs",
                "--acls",
                &format!("--mtime=@{SDE}"),
                "--clamp-mtime",
                "--sort=name",
                "--pax-option=delete=atime,delete=ctime",
                "-C",
            ])
            .arg(&root)
            .args(["-c", ".", "-f"])
            .arg(out.path()),
    );
    let expected = std::fs::read(out.path()).unwrap();
    let view = GnuOptions::recipe_in_fakeroot(SDE, Exclude::none());
    assert_same_tar(&expected, &ours(&root, &view), "fresh fakeroot view");
    // The disk view is a different archive here (the owners), so the test can fail.
    assert_ne!(
        expected,
        ours(&root, &GnuOptions::recipe(SDE, Exclude::none()))
    );
    // Nothing on disk changed: owners and setuid/setgid bits are where they were.
    let after: Vec<(u32, u32, u32)> = ["owned/f", "suid", "sgid", "ro/sub"]
        .iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(root.join(p)).unwrap();
            (m.uid(), m.gid(), m.mode())
        })
        .collect();
    assert_eq!(before, after);
}
