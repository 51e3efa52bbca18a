//! `repro-image files`: file accounting. Every entry of the image's merged rootfs (or of a
//! directory with `--rootfs DIR`) is `package`, `modified`, `unowned` or `missing` against
//! the pacman local database (see the repro-accounting crate).
//!
//! Human output: one line per entry of the selected classes (all without a class flag),
//! `CLASS  PACKAGE  PATH  DETAILS`, then totals per class over every entry.
//! The `--json` output follows docs/files-json.md (schema "repro-image/files/v1").
//! Exit status: 0 when the database could be read (classification is information, not a
//! verdict); 2 when some of it could not (after printing) or on any other error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use repro_accounting::{Accounting, Class, Count, Entry, Totals};
use repro_inventory::ReadError;
use serde::Serialize;

use crate::Global;
use crate::view::Source;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct FilesArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    image: Option<String>,
    /// Read a directory instead of an image (e.g. `--rootfs /` on an Arch system).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// List entries owned by no package.
    #[arg(long)]
    unowned: bool,
    /// List owned entries that differ from their package's mtree.
    #[arg(long)]
    modified: bool,
    /// List owned entries absent from the rootfs.
    #[arg(long)]
    missing: bool,
}

#[derive(Serialize)]
struct FilesReport<'a> {
    schema: &'static str,
    source: Source,
    local_db: bool,
    /// Packages in the local db.
    packages: usize,
    /// The classes listed in `entries`.
    selected: Vec<Class>,
    entries: Vec<&'a Entry>,
    totals: &'a Totals,
    errors: &'a [ReadError],
    warnings: Vec<String>,
}

pub fn run(g: &Global, a: &FilesArgs) -> Result<ExitCode> {
    let crate::view::Subject {
        inv,
        source,
        tree,
        mut warnings,
    } = crate::view::read_subject(
        g,
        a.image.as_deref(),
        a.rootfs.as_deref(),
        true,
        ": every entry is unowned",
    )?;
    let tree = tree.context("internal: the tree was asked for")?;
    let acc = repro_accounting::account(&tree, &inv);
    warnings.extend(acc.warnings.iter().cloned());

    let mut selected: Vec<Class> = [
        (a.modified, Class::Modified),
        (a.unowned, Class::Unowned),
        (a.missing, Class::Missing),
    ]
    .into_iter()
    .filter_map(|(on, c)| on.then_some(c))
    .collect();
    if selected.is_empty() {
        selected = Class::ALL.to_vec();
    }
    selected.sort();
    let report = FilesReport {
        schema: "repro-image/files/v1",
        source,
        local_db: inv.local_db,
        packages: inv.packages.len(),
        entries: acc
            .entries
            .iter()
            .filter(|e| selected.contains(&e.class))
            .collect(),
        selected,
        totals: &acc.totals,
        errors: &inv.errors,
        warnings,
    };
    crate::view::finish(g, &report, &report.warnings, &inv.errors, |out| {
        print_human(out, &report, &acc)
    })
}

fn print_human(out: &mut dyn Write, r: &FilesReport, acc: &Accounting) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = r
        .entries
        .iter()
        .map(|e| {
            [
                e.class.to_string(),
                if e.packages.is_empty() {
                    "-".to_string()
                } else {
                    e.packages.join(",")
                },
                e.path.display(),
                repro_accounting::details(e),
            ]
        })
        .collect();
    // CLASS and PACKAGE are aligned (PACKAGE up to a point: a directory can have many
    // owners); PATH is not padded, DETAILS follow it after two spaces.
    let class_w = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let pkg_w = rows
        .iter()
        .map(|r| r[1].chars().count())
        .filter(|&w| w <= 24)
        .max()
        .unwrap_or(0);
    for row in &rows {
        let line = format!(
            "{:<class_w$}  {:<pkg_w$}  {}  {}",
            row[0], row[1], row[2], row[3]
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    if !rows.is_empty() {
        writeln!(out)?;
    }
    writeln!(out, "Source:    {}", r.source.reference)?;
    if let Some(d) = &r.source.manifest_digest {
        writeln!(out, "Manifest:  {d}")?;
    }
    writeln!(out, "Packages:  {}", r.packages)?;
    let t = &acc.totals;
    let line = |out: &mut dyn Write, name: &str, c: Count| {
        writeln!(out, "{name:<14} {:>8} files {:>14} bytes", c.files, c.bytes)
    };
    for c in Class::ALL {
        line(out, c.as_str(), t.class(c))?;
    }
    line(out, "present", t.present)?;
    writeln!(out, "Timestamps (counted apart from the classes):")?;
    line(out, "mtime equal", t.mtime_equal)?;
    line(out, "mtime differs", t.mtime_differs)?;
    Ok(())
}
