//! The local Arch Linux test world (`tests/world/`): packages built with makepkg, an archive
//! laid out like the Arch Linux Archive, three rebuilderd instances, a docker-registry and
//! the reference images. [`World::up`] brings it up (idempotent, cached under
//! `target/world`) and reads the `KEY=value` env file the scripts write.
//!
//! Bring-up is serialised across test processes with an exclusive `flock` on
//! `target/world.lock`, so parallel test binaries never build the world twice at once.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub struct World {
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

impl World {
    /// Bring the world up once per process and return it. Panics, with the script's output,
    /// if it cannot come up: a test that needs the world must fail loudly without it.
    pub fn up() -> &'static World {
        static WORLD: OnceLock<World> = OnceLock::new();
        WORLD.get_or_init(|| {
            let root = repo_root();
            let dir = std::env::var_os("WORLD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/world"));
            bring_up(&root, dir, &["up"], "target/world.lock")
        })
    }

    /// The bulk world for benchmarks (`world up --bulk --skip rebuilders`, ≥ 100 MB images),
    /// in its own directory so the shared `target/world` is not disturbed:
    /// `$BULK_WORLD_DIR`, default `target/world-bulk`. The first call builds it (minutes).
    pub fn bulk() -> &'static World {
        static BULK: OnceLock<World> = OnceLock::new();
        BULK.get_or_init(|| {
            let root = repo_root();
            let dir = std::env::var_os("BULK_WORLD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/world-bulk"));
            eprintln!(
                "bringing up the bulk world in {} (cached after the first run) ...",
                dir.display()
            );
            bring_up(
                &root,
                dir,
                &["up", "--bulk", "--skip", "rebuilders"],
                "target/world-bulk.lock",
            )
        })
    }

    /// A key of the env file; panics naming the key when the world lacks it.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("world env has no {key} (see {}/env)", self.dir.display()))
    }
}

/// Run `tests/world/world ARGS` for `dir` under an exclusive flock on `lock` (relative to
/// the repository root) and read the env file it writes.
fn bring_up(root: &Path, dir: PathBuf, args: &[&str], lock: &str) -> World {
    let lock_path = root.join(lock);
    std::fs::create_dir_all(root.join("target")).expect("create target/");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
    // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
    let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(r, 0, "flock {}", lock_path.display());
    let mut cmd = Command::new("bash");
    cmd.arg(root.join("tests/world/world"))
        .args(args)
        .env("WORLD_DIR", &dir)
        .stdin(Stdio::null());
    if args.contains(&"--bulk") {
        cmd.env("WORLD_BULK", "1");
    }
    let out = cmd.output().expect("run tests/world/world");
    assert!(
        out.status.success(),
        "tests/world/world {} failed ({}):\n{}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(lock);
    let text = std::fs::read_to_string(dir.join("env"))
        .unwrap_or_else(|e| panic!("{}/env: {e}", dir.display()));
    World {
        env: parse_env(&text),
        dir,
    }
}

/// `KEY=value` lines; later lines win (scripts append updated values).
pub fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .unwrap_or(v);
            (k.trim().to_string(), v.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_parsing() {
        let e = super::parse_env("A=1\n# c\nB='two words'\nA=3\nC=\"q\"\n");
        assert_eq!(e["A"], "3");
        assert_eq!(e["B"], "two words");
        assert_eq!(e["C"], "q");
    }
}
