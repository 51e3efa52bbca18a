//! What `packages`, `files` and `sbom` share: an image (or a directory) read into a merged
//! tree and its pacman inventory, and the common ending of a report (output, warnings,
//! errors, exit status).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use repro_inventory::{HostDir, Inventory, ReadError, TreeView};
use repro_oci::Digest;
use repro_oci::image::ManifestDoc;
use repro_rootfs::{Applier, Tree};
use repro_transport::ImageSource;
use serde::Serialize;

use crate::Global;

/// Where a report's data came from (the `source` object of the JSON schemas).
#[derive(Serialize)]
pub struct Source {
    pub kind: &'static str,
    pub reference: String,
    pub manifest_digest: Option<Digest>,
}

/// An image read into a tree (with the pacman db captured) and its inventory.
pub struct ImageView {
    pub src: Box<dyn ImageSource>,
    pub manifest: ManifestDoc,
    pub tree: Tree,
    pub inv: Inventory,
    /// The source's warnings and the tree's flags.
    pub warnings: Vec<String>,
}

impl ImageView {
    pub fn source(&self) -> Source {
        Source {
            kind: "image",
            reference: self.src.describe(),
            manifest_digest: Some(self.manifest.raw.digest.clone()),
        }
    }
}

/// Read an image: the platform's manifest, every layer streamed into the tree, the inventory.
pub fn read_image(g: &Global, image: &str) -> Result<ImageView> {
    let r = crate::parse_image(image)?;
    let mut src = g.open_source(&r)?;
    let manifest = repro_transport::tree::resolve_manifest(src.as_mut(), &g.platform)?;
    let tree = repro_transport::tree::build_tree(
        src.as_mut(),
        &manifest.manifest,
        Applier::with_capture(repro_inventory::capture()),
    )
    .with_context(|| format!("reading the layers of {}", src.describe()))?;
    let inv = repro_inventory::read(&TreeView::new(&tree, src.describe()))?;
    let mut warnings = src.warnings();
    warnings.extend(flag_warnings(&tree));
    Ok(ImageView {
        src,
        manifest,
        tree,
        inv,
        warnings,
    })
}

/// Read a directory's inventory (`--rootfs DIR`).
pub fn read_dir(dir: &Path) -> Result<(Inventory, Source)> {
    anyhow::ensure!(dir.is_dir(), "--rootfs {}: not a directory", dir.display());
    let inv = repro_inventory::read(&HostDir::new(dir))?;
    let source = Source {
        kind: "rootfs",
        reference: dir.display().to_string(),
        manifest_digest: None,
    };
    Ok((inv, source))
}

/// What `packages`, `status` and `files` read from an IMAGE or `--rootfs DIR`.
pub struct Subject {
    pub inv: Inventory,
    pub source: Source,
    /// The merged tree, when asked for.
    pub tree: Option<Tree>,
    /// The source's warnings, the tree's flags, a missing local db, the inventory's own.
    pub warnings: Vec<String>,
}

/// Read an IMAGE or `--rootfs DIR`: its inventory, and with `tree` its merged tree.
/// `without_db` says what a missing local database means for the command.
pub fn read_subject(
    g: &Global,
    image: Option<&str>,
    rootfs: Option<&Path>,
    tree: bool,
    without_db: &str,
) -> Result<Subject> {
    let mut s = match (image, rootfs) {
        (_, Some(dir)) => {
            let (inv, source) = read_dir(dir)?;
            let tree = if tree {
                Some(
                    repro_accounting::host::tree_from_dir(dir)
                        .with_context(|| format!("reading {}", dir.display()))?,
                )
            } else {
                None
            };
            let warnings = tree.iter().flat_map(flag_warnings).collect();
            Subject {
                inv,
                source,
                tree,
                warnings,
            }
        }
        (Some(image), None) => {
            let v = read_image(g, image)?;
            Subject {
                source: v.source(),
                inv: v.inv,
                tree: tree.then_some(v.tree),
                warnings: v.warnings,
            }
        }
        (None, None) => anyhow::bail!("give an IMAGE or --rootfs DIR"),
    };
    if !s.inv.local_db {
        s.warnings.push(format!(
            "{}: no pacman local database (var/lib/pacman/local){without_db}",
            s.source.reference
        ));
    }
    s.warnings.extend(s.inv.warnings.iter().cloned());
    Ok(s)
}

pub fn flag_warnings(tree: &Tree) -> impl Iterator<Item = String> + '_ {
    tree.flags
        .iter()
        .map(|f| format!("layer {}: {:?}: {}", f.layer, f.entry, f.message))
}

/// Print the report (`--json` or the human form), then warnings (unless `--quiet`) and
/// errors on stderr. Exit 0, or 2 when some package could not be read.
pub fn finish<R: Serialize>(
    g: &Global,
    report: &R,
    warnings: &[String],
    errors: &[ReadError],
    human: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        human(&mut out)?;
    }
    out.flush()?;
    if !g.quiet {
        for w in warnings {
            eprintln!("repro-image: warning: {w}");
        }
    }
    for e in errors {
        eprintln!("repro-image: error: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
