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
            let lock_path = root.join("target/world.lock");
            std::fs::create_dir_all(root.join("target")).expect("create target/");
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .expect("open target/world.lock");
            // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
            let r = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
            assert_eq!(r, 0, "flock {}", lock_path.display());
            let out = Command::new("bash")
                .arg(root.join("tests/world/world"))
                .arg("up")
                .stdin(Stdio::null())
                .output()
                .expect("run tests/world/world up");
            assert!(
                out.status.success(),
                "tests/world/world up failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            drop(lock);
            let dir = std::env::var_os("WORLD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/world"));
            let text = std::fs::read_to_string(dir.join("env"))
                .unwrap_or_else(|e| panic!("{}/env: {e}", dir.display()));
            World {
                env: parse_env(&text),
                dir,
            }
        })
    }

    /// A key of the env file; panics naming the key when the world lacks it.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("world env has no {key} (see {}/env)", self.dir.display()))
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
