//! `repro-image packages`: the pacman packages installed in an image (or in a directory
//! with `--rootfs DIR`), read from the local database.
//!
//! The `--json` output follows docs/packages-json.md (schema "repro-image/packages/v1").
//! Exit status: 0 when every package could be read, 2 when some could not (after printing
//! what could) or on any other error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use repro_inventory::{Inventory, Package, ReadError, SyncDb};
use serde::Serialize;

use crate::Global;
use crate::view::Source;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct PackagesArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    image: Option<String>,
    /// Read a directory instead of an image (e.g. `--rootfs /` on an Arch system).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
}

#[derive(Serialize)]
pub struct PackagesReport<'a> {
    pub schema: &'static str,
    pub source: Source,
    /// Is there a var/lib/pacman/local at all?
    pub local_db: bool,
    pub db_version: Option<u32>,
    pub os_release: Option<&'a repro_inventory::OsRelease>,
    pub packages: &'a [Package],
    pub sync_dbs: &'a [SyncDb],
    pub errors: &'a [ReadError],
    pub warnings: Vec<String>,
}

pub fn run(g: &Global, a: &PackagesArgs) -> Result<ExitCode> {
    let crate::view::Subject {
        inv,
        source,
        warnings,
        ..
    } = crate::view::read_subject(g, a.image.as_deref(), a.rootfs.as_deref(), false, "")?;
    let report = PackagesReport {
        schema: "repro-image/packages/v1",
        source,
        local_db: inv.local_db,
        db_version: inv.db_version,
        os_release: inv.os_release.as_ref(),
        packages: &inv.packages,
        sync_dbs: &inv.sync_dbs,
        errors: &inv.errors,
        warnings,
    };
    crate::view::finish(g, &report, &report.warnings, &inv.errors, |out| {
        print_human(out, &inv, &report)
    })
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn print_human(out: &mut dyn Write, inv: &Inventory, r: &PackagesReport) -> std::io::Result<()> {
    writeln!(out, "Source:     {}", r.source.reference)?;
    if let Some(d) = &r.source.manifest_digest {
        writeln!(out, "Manifest:   {d}")?;
    }
    writeln!(
        out,
        "Local db:   {}",
        match (r.local_db, r.db_version) {
            (false, _) => "none".to_string(),
            (true, Some(v)) => format!("version {v}"),
            (true, None) => "version unknown".to_string(),
        }
    )?;
    writeln!(out, "Packages:   {}", inv.packages.len())?;
    let header = [
        "NAME",
        "VERSION",
        "ARCH",
        "BASE",
        "BUILD DATE",
        "INSTALL DATE",
        "PACKAGER",
        "SIZE",
        "VALIDATION",
        "LICENSES",
        "DEPENDS",
        "PROVIDES",
        "REASON",
    ];
    let rows: Vec<[String; 13]> = inv
        .packages
        .iter()
        .map(|p| {
            [
                p.name.clone(),
                p.version.clone(),
                p.arch.clone(),
                p.base.clone(),
                repro_inventory::rfc3339(p.build_date),
                repro_inventory::rfc3339(p.install_date),
                p.packager.clone(),
                p.installed_size.to_string(),
                list(&p.validation),
                list(&p.licenses),
                list(&p.depends),
                list(&p.provides),
                p.reason.as_str().to_string(),
            ]
        })
        .collect();
    // Align every column but the last few, whose lists can be long.
    let aligned = 9;
    let mut width = [0usize; 13];
    for row in std::iter::once(&header.map(String::from)).chain(&rows) {
        for (w, c) in width.iter_mut().zip(row).take(aligned) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String; 13]| -> String {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if i < aligned {
                s.push_str(&format!("{c:<w$}", w = width[i]));
            } else {
                s.push_str(c);
            }
        }
        s
    };
    writeln!(out, "{}", line(&header.map(String::from)))?;
    for row in &rows {
        writeln!(out, "{}", line(row))?;
    }
    for db in &inv.sync_dbs {
        writeln!(
            out,
            "Sync db:    {} ({}, {}): {} packages",
            db.file,
            db.compression,
            db.sha256,
            db.packages.len()
        )?;
    }
    Ok(())
}
