//! The recipe's data files: what archlinux-docker's repository holds next to its scripts
//! (the pacman.conf that goes into the rootfs, the NoExtract list, the tar exclude list, the
//! rootfs overlay). Built in: the copies in `crates/repro-build/recipe/` (a test keeps them
//! equal to the test world's `tests/world/recipe/`); `RecipeFiles::from_dir` reads another
//! checkout laid out the same way.

use std::path::Path;

use crate::error::{BuildError, io_at};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipeFiles {
    /// devtools' `extra.conf` as the recipe installs it into the rootfs (`pacman-extra.conf`).
    pub pacman_conf: Vec<u8>,
    /// Appended to it (`pacman-conf.d-noextract.conf`).
    pub noextract: Vec<u8>,
    /// `exclude`: GNU tar `--exclude-from` patterns.
    pub exclude: Vec<u8>,
    /// The rootfs overlay, copied into the root before pacman runs: relative path and bytes,
    /// in path order. Files are written 0644 and their directories 0755, as a checkout
    /// holds them.
    pub overlay: Vec<(String, Vec<u8>)>,
}

/// Overlay files the recipe has (the mirrorlist must be one of them: the archive snapshot
/// is prepended to it).
const OVERLAY: [&str; 2] = ["etc/locale.conf", "etc/pacman.d/mirrorlist"];
pub const MIRRORLIST: &str = "etc/pacman.d/mirrorlist";

impl RecipeFiles {
    /// The built-in copy of the recipe's files.
    pub fn builtin() -> RecipeFiles {
        RecipeFiles {
            pacman_conf: include_bytes!("../recipe/pacman-extra.conf").to_vec(),
            noextract: include_bytes!("../recipe/pacman-conf.d-noextract.conf").to_vec(),
            exclude: include_bytes!("../recipe/exclude").to_vec(),
            overlay: vec![
                (
                    OVERLAY[0].to_string(),
                    include_bytes!("../recipe/rootfs/etc/locale.conf").to_vec(),
                ),
                (
                    OVERLAY[1].to_string(),
                    include_bytes!("../recipe/rootfs/etc/pacman.d/mirrorlist").to_vec(),
                ),
            ],
        }
    }

    /// Read the files from a recipe directory (`pacman-extra.conf`,
    /// `pacman-conf.d-noextract.conf`, `exclude`, `rootfs/etc/…`).
    pub fn from_dir(dir: &Path) -> Result<RecipeFiles, BuildError> {
        let read = |rel: &str| {
            let p = dir.join(rel);
            std::fs::read(&p).map_err(io_at(&p))
        };
        let mut overlay = Vec::new();
        for rel in OVERLAY {
            overlay.push((rel.to_string(), read(&format!("rootfs/{rel}"))?));
        }
        Ok(RecipeFiles {
            pacman_conf: read("pacman-extra.conf")?,
            noextract: read("pacman-conf.d-noextract.conf")?,
            exclude: read("exclude")?,
            overlay,
        })
    }

    pub fn mirrorlist(&self) -> &[u8] {
        self.overlay
            .iter()
            .find(|(p, _)| p == MIRRORLIST)
            .map_or(&[][..], |(_, b)| b.as_slice())
    }
}
