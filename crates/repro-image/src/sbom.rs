//! `repro-image sbom`: SPDX 2.3 or CycloneDX 1.6 JSON for an image's pacman packages (or a
//! directory's, with `--rootfs DIR`). The documents are made by `repro-sbom`; this is the
//! I/O around it: reading the image (manifest, config, layers), the creation time, and
//! with `--files` the hashes of every file.
//!
//! Creation time: `--created TIME`, else `SOURCE_DATE_EPOCH`, else (SPDX only, which
//! requires one) the image config's `created`; a directory has no config, so SPDX for
//! `--rootfs` needs one of the first two. CycloneDX gets a timestamp only from the first two.
//!
//! Exit status: 0 written; 2 on errors, including packages that could not be read (the
//! SBOM is still written, listing them, so that nothing is silently missing).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use repro_oci::ImageRef;
use repro_sbom::{FileEntry, Format, Options, Sha1Index, Subject, SubjectKind};

use crate::Global;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct SbomArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    image: Option<String>,
    /// Read a directory instead of an image (e.g. `--rootfs /` on an Arch system).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// spdx-json (SPDX 2.3) or cyclonedx-json (CycloneDX 1.6).
    #[arg(long, default_value = "spdx-json", value_name = "FORMAT")]
    format: Format,
    /// Write to FILE (atomically) instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// List every file with its hashes (regular files and hardlinks).
    #[arg(long)]
    files: bool,
    /// Creation time: RFC 3339 or seconds since the epoch [default: $SOURCE_DATE_EPOCH,
    /// then (SPDX) the image config's created].
    #[arg(long, value_name = "TIME")]
    created: Option<String>,
    /// Threads hashing a directory's files (--rootfs --files) [default: the CPU count].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
}

fn created(a: &SbomArgs) -> Result<Option<i64>> {
    if let Some(c) = &a.created {
        return match repro_sbom::time::parse_time(c) {
            Some(t) => Ok(Some(t)),
            None => bail!("--created {c:?}: not RFC 3339 (2026-11-03T00:00:00Z) or seconds"),
        };
    }
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse::<i64>() {
            Ok(t) => Ok(Some(t)),
            Err(_) => bail!("SOURCE_DATE_EPOCH={v:?}: not a number of seconds"),
        },
        _ => Ok(None),
    }
}

pub fn run(g: &Global, a: &SbomArgs) -> Result<ExitCode> {
    let created = created(a)?;
    let mut warnings = Vec::new();
    let (inv, subject, files) = match (&a.image, &a.rootfs) {
        (_, Some(dir)) => {
            let (inv, _) = crate::view::read_dir(dir)?;
            let files = if a.files {
                let jobs = a
                    .jobs
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                Some(
                    repro_sbom::files::from_dir(dir, jobs)
                        .with_context(|| format!("hashing the files of {}", dir.display()))?,
                )
            } else {
                None
            };
            let subject = Subject {
                kind: SubjectKind::Rootfs,
                name: dir.display().to_string(),
                manifest_digest: None,
                config_digest: None,
                platform: None,
                created: None,
                purl: None,
            };
            (inv, subject, files)
        }
        (Some(image), None) => {
            let (inv, subject, files, w) = read_image(g, image, a)?;
            warnings = w;
            (inv, subject, files)
        }
        (None, None) => bail!("give an IMAGE or --rootfs DIR"),
    };
    if !inv.local_db {
        warnings.push(format!(
            "{}: no pacman local database (var/lib/pacman/local)",
            subject.name
        ));
    }
    warnings.extend(inv.warnings.iter().cloned());
    let opts = Options {
        format: a.format,
        created,
        files,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let bytes = repro_sbom::generate(&inv, &subject, &opts)?;
    match &a.output {
        Some(path) => write_atomic(path, &bytes)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
    }
    if !g.quiet {
        for w in &warnings {
            eprintln!("repro-image: warning: {w}");
        }
    }
    for e in &inv.errors {
        eprintln!("repro-image: error: {e}");
    }
    Ok(if inv.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

type ImageRead = (
    repro_inventory::Inventory,
    Subject,
    Option<Vec<FileEntry>>,
    Vec<String>,
);

fn read_image(g: &Global, image: &str, a: &SbomArgs) -> Result<ImageRead> {
    let crate::view::ImageView {
        mut src,
        manifest,
        tree,
        inv,
        warnings,
    } = crate::view::read_image(g, image)?;
    let r = crate::parse_image(image)?;
    let config = repro_transport::read_config(src.as_mut(), &manifest.manifest)?;
    let c = &config.config;
    let mut platform = format!("{}/{}", c.os(), c.architecture());
    if let Some(v) = c.variant() {
        platform.push('/');
        platform.push_str(v);
    }
    let files = if a.files {
        // SPDX needs each file's SHA-1, which the merged tree does not keep: read the
        // layers once more.
        let sha1 = if a.format == Format::SpdxJson {
            let mut idx = Sha1Index::default();
            for (i, layer) in manifest.manifest.layers().iter().enumerate() {
                let what = format!("{} layer {i} ({})", src.describe(), layer.digest());
                let mut blob = src.blob(layer.digest(), Some(layer.size()))?;
                {
                    let tar = repro_transport::decompress(&mut blob, &what)?;
                    idx.add_tar(tar).with_context(|| what.clone())?;
                }
                std::io::copy(&mut blob, &mut std::io::sink()).with_context(|| what.clone())?;
            }
            Some(idx)
        } else {
            None
        };
        Some(repro_sbom::files::from_tree(&tree, sha1.as_ref()))
    } else {
        None
    };
    let digest = manifest.raw.digest.to_string();
    let purl = match &r {
        ImageRef::Docker(d) => Some(repro_sbom::purl::oci(
            &d.registry,
            &d.repository,
            &digest,
            Some(c.architecture().to_string().as_str()),
            d.tag.as_deref(),
        )),
        _ => None,
    };
    let subject = Subject {
        kind: SubjectKind::Image,
        name: src.describe(),
        manifest_digest: Some(digest),
        config_digest: Some(config.raw.digest.to_string()),
        platform: Some(platform),
        created: c.created().clone(),
        purl,
    };
    Ok((inv, subject, files, warnings))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("-o {}: not a file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}
