//! `repro-image diff A B`: the semantic image diff (the repro-diff crate).
//!
//! Human output: one line per difference, `TYPE  NAME  A  B` (`-` where a side has nothing),
//! inline unified diffs of small text files below their line, then a summary line.
//! The `--json` output follows docs/diff-json.md (schema "repro-image/diff/v1").
//! Exit status: 0 equal, 1 different, 2 error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use repro_diff::{Difference, Options, PathFilter, Report};
use serde::Serialize;

use crate::Global;

#[derive(Args)]
pub struct DiffArgs {
    /// First image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    a: String,
    /// Second image.
    b: String,
    /// Write the two versions of every file whose content differs under DIR (new or empty),
    /// as DIR/layer-N/{a,b}/PATH (DIR/{a,b}/PATH with --squash), for diffoscope.
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Ignore file mtimes, config and history `created`, the image.created label.
    #[arg(long)]
    ignore_timestamps: bool,
    /// Ignore the config's history.
    #[arg(long)]
    ignore_history: bool,
    /// Ignore the order of entries within a layer.
    #[arg(long)]
    ignore_file_order: bool,
    /// Ignore mode bits beyond 07777 (file type bits some tar writers add).
    #[arg(long)]
    ignore_file_mode_redundant_bits: bool,
    /// Ignore the org.opencontainers.image.ref.name and io.containerd.image.name annotations.
    #[arg(long)]
    ignore_image_name: bool,
    /// Ignore how layers are encoded: tar header format, name spelling, pax records that only
    /// encode header fields, tar length, a root entry on one side only, compression.
    #[arg(long)]
    ignore_tar_format: bool,
    /// Ignore paths matching GLOB and everything below them (repeatable; `*` stays within a
    /// component, `**` crosses them).
    #[arg(long, value_name = "GLOB")]
    ignore_path: Vec<String>,
    /// All of the --ignore-* options above (except --ignore-path).
    #[arg(long)]
    semantic: bool,
    /// Compare the merged rootfs trees instead of layer by layer (for different layer splits).
    #[arg(long)]
    squash: bool,
}

#[derive(Serialize)]
struct OptionsJson<'a> {
    ignore_timestamps: bool,
    ignore_history: bool,
    ignore_file_order: bool,
    ignore_file_mode_redundant_bits: bool,
    ignore_image_name: bool,
    ignore_tar_format: bool,
    ignore_paths: &'a [String],
    squash: bool,
    compares_digests: bool,
}

#[derive(Serialize)]
struct DiffReport<'a> {
    schema: &'static str,
    equal: bool,
    options: OptionsJson<'a>,
    report_dir: Option<String>,
    #[serde(flatten)]
    report: &'a Report,
}

fn options(a: &DiffArgs) -> Result<Options> {
    let mut o = if a.semantic {
        Options::semantic()
    } else {
        Options::default()
    };
    o.ignore_timestamps |= a.ignore_timestamps;
    o.ignore_history |= a.ignore_history;
    o.ignore_file_order |= a.ignore_file_order;
    o.ignore_file_mode_redundant_bits |= a.ignore_file_mode_redundant_bits;
    o.ignore_image_name |= a.ignore_image_name;
    o.ignore_tar_format |= a.ignore_tar_format;
    o.ignore_paths = PathFilter::new(&a.ignore_path)?;
    o.squash = a.squash;
    Ok(o)
}

pub fn run(g: &Global, a: &DiffArgs) -> Result<ExitCode> {
    let opts = options(a)?;
    let mut src_a = g.open_source(&crate::parse_image(&a.a)?)?;
    let mut src_b = g.open_source(&crate::parse_image(&a.b)?)?;
    let report = repro_diff::diff_images(
        src_a.as_mut(),
        src_b.as_mut(),
        &g.platform,
        &opts,
        a.report_dir.as_deref(),
    )
    .with_context(|| format!("comparing {} with {}", a.a, a.b))?;
    let mut out = std::io::stdout().lock();
    if g.json {
        let j = DiffReport {
            schema: "repro-image/diff/v1",
            equal: report.equal(),
            options: OptionsJson {
                ignore_timestamps: opts.ignore_timestamps,
                ignore_history: opts.ignore_history,
                ignore_file_order: opts.ignore_file_order,
                ignore_file_mode_redundant_bits: opts.ignore_file_mode_redundant_bits,
                ignore_image_name: opts.ignore_image_name,
                ignore_tar_format: opts.ignore_tar_format,
                ignore_paths: opts.ignore_paths.patterns(),
                squash: opts.squash,
                compares_digests: opts.compares_digests(),
            },
            report_dir: a.report_dir.as_ref().map(|p| p.display().to_string()),
            report: &report,
        };
        serde_json::to_writer_pretty(&mut out, &j)?;
        writeln!(out)?;
    } else {
        table(&mut out, &report)?;
    }
    out.flush()?;
    if !g.quiet {
        for w in &report.warnings {
            eprintln!("repro-image: warning: {w}");
        }
    }
    Ok(if report.equal() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn table(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<[String; 4]> = r
        .differences
        .iter()
        .map(|d: &Difference| {
            [
                d.level.as_str().to_string(),
                d.name(),
                cell(&d.a),
                cell(&d.b),
            ]
        })
        .collect();
    if !rows.is_empty() {
        // Columns are aligned up to a width; a longer name (paths can be 4096 bytes) just
        // pushes its own line's values right.
        const MAX_WIDTH: usize = 60;
        let mut w = [4usize, 4];
        for row in &rows {
            for (k, c) in row.iter().enumerate().take(2) {
                w[k] = w[k].max(c.chars().count().min(MAX_WIDTH));
            }
        }
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  A  B",
            "TYPE",
            "NAME",
            w0 = w[0],
            w1 = w[1]
        )?;
        for (row, d) in rows.iter().zip(&r.differences) {
            writeln!(
                out,
                "{:<w0$}  {:<w1$}  {}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = w[0],
                w1 = w[1]
            )?;
            if let Some(f) = &d.files {
                writeln!(out, "    written: {}  {}", cell(&f.a), cell(&f.b))?;
            }
            if let Some(diff) = &d.diff {
                for line in diff.lines() {
                    writeln!(out, "    {line}")?;
                }
            }
        }
    }
    let verdict = if r.equal() { "equal" } else { "different" };
    writeln!(
        out,
        "{verdict}: {} difference(s) between {} and {}{}",
        r.differences.len(),
        r.a.reference,
        r.b.reference,
        if r.squashed { " (merged trees)" } else { "" }
    )
}
