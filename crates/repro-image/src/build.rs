//! `repro-image build LOCK -o DIR`: rebuild the rootfs tarball from the lock's pins alone
//! (the packages `fetch` put into the content store; no network), with the recipe run
//! hermetically. Writes DIR/repro.tar, DIR/repro.tar.zst, DIR/repro.tar.zst.SHA256 and
//! DIR/build.log; with the image (unless --no-image), DIR/layers/layer-N.tar and the image
//! with uncompressed layers as an `oci:` layout in DIR/oci (tagged with the image
//! version), and prints every digest. Nothing is pushed.
//!
//! Exit status: 0 built; 1 a store file is not what the lock pins (nothing was built);
//! 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use repro_build::{BuildError, BuildOptions, RecipeFiles};
use repro_lock::Lock;
use serde::Serialize;

use crate::Global;

#[derive(Args)]
pub struct BuildArgs {
    /// The lock file (from `repro-image lock`; its packages fetched with `repro-image fetch`).
    lock: PathBuf,
    /// Output directory.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    out: PathBuf,
    /// Keep the build directory (DIR/work, the rebuilt tree in DIR/work/build).
    #[arg(long)]
    keep_builddir: bool,
    /// OpenPGP keyring the install trusts (repeatable) [default: the keyrings the pinned
    /// packages ship in usr/share/pacman/keyrings/].
    #[arg(long = "keyring", value_name = "FILE")]
    keyrings: Vec<PathBuf>,
    /// A recipe checkout to take the data files from (pacman-extra.conf,
    /// pacman-conf.d-noextract.conf, exclude, rootfs/) [default: the built-in copy].
    #[arg(long, value_name = "DIR")]
    recipe: Option<PathBuf>,
    /// The Archive URL written into the image's mirrorlist.
    #[arg(long, value_name = "URL", default_value = repro_build::PUBLISHED_ARCHIVE)]
    published_archive: String,
    /// Only the rootfs tarball, not the image (DIR/layers/layer-N.tar, DIR/oci).
    #[arg(long)]
    no_image: bool,
    /// The word of the image's title label `Arch Linux <WORD> Image` [default: the
    /// recipe's, Repro].
    #[arg(long, value_name = "WORD")]
    image_title: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    lock: String,
    #[serde(flatten)]
    build: &'a repro_build::BuildReport,
}

pub fn run(g: &Global, a: &BuildArgs) -> Result<ExitCode> {
    let lock = Lock::load(&a.lock)?;
    let store = g
        .store()?
        .context("build takes the packages from the content store: drop --no-cache")?;
    let recipe = match &a.recipe {
        Some(d) => RecipeFiles::from_dir(d)?,
        None => RecipeFiles::builtin(),
    };
    let quiet = g.quiet || g.json;
    let progress = |m: &str| eprintln!("repro-image: build: {m}");
    let mut opts = BuildOptions::new(a.out.clone());
    opts.keep_builddir = a.keep_builddir;
    opts.keyrings = a.keyrings.clone();
    opts.recipe = recipe;
    opts.published_archive = a.published_archive.clone();
    opts.image = !a.no_image;
    opts.image_title = a.image_title.clone();
    if !quiet {
        opts.progress = Some(&progress);
    }
    let report = match repro_build::build(&lock, &store, &opts) {
        Ok(r) => r,
        Err(e @ BuildError::Tampered(_)) => {
            eprintln!("repro-image: error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(
            &mut out,
            &Report {
                schema: "repro-image/build/v1",
                lock: a.lock.display().to_string(),
                build: &report,
            },
        )?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "built {} packages ({}) from snapshot {}, SOURCE_DATE_EPOCH {}",
            report.packages,
            report.group.join(" "),
            report.snapshot,
            report.source_date_epoch
        )?;
        writeln!(
            out,
            "tools: pacman {} (install date by {}), {}, {}, libzstd {}",
            report.tools.pacman,
            report.install_date,
            report.tools.fakechroot,
            report.tools.fakeroot,
            report.tools.libzstd
        )?;
        for k in &report.keyrings {
            writeln!(out, "trusted keys: {k}")?;
        }
        for art in [&report.tar, &report.zst] {
            writeln!(
                out,
                "{}  {}  {} bytes",
                art.digest,
                art.file.display(),
                art.size
            )?;
        }
        writeln!(out, "{}", report.sha256_file.display())?;
        if let Some(img) = &report.image {
            for (i, l) in img.layers.iter().enumerate() {
                let pinned = img.lock_diff_ids.get(i).map(String::as_str);
                let verdict = match pinned {
                    Some(d) if d == l.digest => "= the lock's diff_id",
                    Some(_) => "DIFFERS from the lock's diff_id",
                    None => "(the lock pins no such layer)",
                };
                writeln!(
                    out,
                    "{}  {}  {} bytes  layer {} {verdict}",
                    l.digest,
                    l.file.display(),
                    l.size,
                    i + 1
                )?;
            }
            let verdict = if img.config_matches {
                "= the lock's config".to_string()
            } else {
                format!("DIFFERS from the lock's config {}", img.lock_config_digest)
            };
            writeln!(
                out,
                "{}  {}  {} bytes  config {verdict}",
                img.config.digest,
                img.config.file.display(),
                img.config.size
            )?;
            let verdict = match img.manifest_matches {
                Some(true) => "= the lock's manifest".to_string(),
                Some(false) => format!(
                    "DIFFERS from the lock's manifest {}",
                    img.lock_manifest_digest
                ),
                None => "(uncompressed layers; the lock's image has compressed ones)".to_string(),
            };
            writeln!(
                out,
                "{}  {}  {} bytes  manifest {verdict}",
                img.manifest.digest,
                img.manifest.file.display(),
                img.manifest.size
            )?;
            writeln!(out, "image: oci:{}:{}", img.oci.display(), img.tag)?;
            writeln!(out, "image step: {}", img.isolation.describe())?;
        }
        if let Some(d) = &report.builddir {
            writeln!(out, "build tree kept: {}", d.display())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
