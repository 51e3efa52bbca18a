//! Helpers shared by the integration tests: the real tools, root checks, byte comparison
//! that names the first differing offset and member.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// Panic with a clear message unless running as root (owners, devices, xattrs, chroot).
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "{what} needs root (file owners, device nodes, trusted.* xattrs): run the tests as root, as CI does"
        );
    }
}

/// Run a command; panic with its output on failure.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (scripts/install-test-deps installs the tools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn sh(script: &str, dir: &Path) {
    run(Command::new("bash")
        .arg("-euc")
        .arg(script)
        .current_dir(dir));
}

/// The archlinux-docker recipe's tar command (GNU tar), over `root`, into bytes.
pub fn gnu_tar_recipe(root: &Path, sde: i64, exclude: Option<&Path>) -> Vec<u8> {
    let mut args: Vec<String> = vec![
        "--numeric-owner".into(),
        "--xattrs".into(),
        "--acls".into(),
        format!("--mtime=@{sde}"),
        "--clamp-mtime".into(),
        "--sort=name".into(),
        "--pax-option=delete=atime,delete=ctime".into(),
    ];
    if let Some(ex) = exclude {
        args.push(format!("--exclude-from={}", ex.display()));
    }
    gnu_tar(root, &args)
}

/// `tar ARGS -C root -c . -f OUT` with a fixed environment; the archive's bytes.
pub fn gnu_tar(root: &Path, args: &[String]) -> Vec<u8> {
    let out = tempfile::NamedTempFile::new().unwrap();
    run(Command::new("tar")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .args(args)
        .arg("-C")
        .arg(root)
        .args(["-c", ".", "-f"])
        .arg(out.path()));
    std::fs::read(out.path()).unwrap()
}

pub fn sha256(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

pub fn sha256_file(p: &Path) -> String {
    let mut f = std::fs::File::open(p).unwrap();
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

/// The name of the tar member whose header or data covers `offset` (walking headers).
fn member_at(tar: &[u8], offset: usize) -> String {
    let mut off = 0usize;
    let mut last = String::from("(before the first member)");
    while off + 512 <= tar.len() {
        let h = &tar[off..off + 512];
        if h.iter().all(|&b| b == 0) {
            if offset < off + 512 {
                return format!("end-of-archive padding after {last}");
            }
            off += 512;
            continue;
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let size_field = std::str::from_utf8(&h[124..135])
            .unwrap_or("0")
            .trim_matches(char::from(0));
        let size = u64::from_str_radix(size_field.trim(), 8).unwrap_or(0) as usize;
        let flag = h[156];
        let data = if matches!(flag, b'0' | b'x' | b'g' | 0 | b'7') {
            size.div_ceil(512) * 512
        } else {
            0
        };
        if offset < off + 512 + data {
            return format!("member {name:?} (type {:?}, header at {off})", flag as char);
        }
        last = name;
        off += 512 + data;
    }
    format!("past the end (last member {last})")
}

/// Assert two archives are byte-identical; on a mismatch say where and in which member.
pub fn assert_same_tar(expected: &[u8], actual: &[u8], what: &str) {
    if expected == actual {
        return;
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let ctx = |b: &[u8]| {
        let s = first.saturating_sub(16);
        let e = (first + 48).min(b.len());
        format!("{:?}", String::from_utf8_lossy(&b[s..e]))
    };
    panic!(
        "{what}: archives differ (expected {} bytes sha256 {}, got {} bytes sha256 {}); first difference at offset {first} in {} (ours: {})\n expected: {}\n actual:   {}",
        expected.len(),
        sha256(expected),
        actual.len(),
        sha256(actual),
        member_at(expected, first),
        member_at(actual, first),
        ctx(expected),
        ctx(actual),
    );
}
