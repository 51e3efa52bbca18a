//! `repro-image status`: ask several rebuilderd instances about every pacman package in an
//! image (or `--rootfs DIR`), match exactly (name, version, architecture) and decide per
//! package with a quorum.
//!
//! Output: the lines arch-repro-status users know (`[+] name version GOOD`, `[-] … BAD`,
//! `[?] … UNKWN`; `[!] … DISPUTED` when rebuilders disagree), "N/M packages are not
//! reproducible", "Your image is XX.XX% reproducible", then a per-rebuilder matrix.
//! `--json`: schema "repro-image/status/v1".
//!
//! Exit status: 0; 1 when below `--min-percent`; 2 on errors (no rebuilder answered, the
//! image could not be read). A rebuilder that fails while others answer is a warning and
//! its column says ERROR.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use repro_rebuilderd::quorum::{self, Index, PackageStatus, Pkg, Said, Summary, Verdict};
use repro_rebuilderd::{Api, Filter, Options, Status};
use serde::Serialize;

use crate::Global;
use crate::view::Source;

#[derive(Args)]
#[command(group = clap::ArgGroup::new("root").required(true).args(["image", "rootfs"]))]
pub struct StatusArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    image: Option<String>,
    /// Read a directory instead of an image (e.g. `--rootfs /` on an Arch system).
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// A rebuilderd base URL; repeat for several (commas also separate). Default: $REBUILDERD.
    #[arg(short = 'r', long = "rebuilder", value_name = "URL")]
    rebuilders: Vec<String>,
    /// GOOD results needed from different rebuilders for a package to count as reproduced.
    #[arg(long, default_value_t = 1, value_name = "K")]
    quorum: usize,
    /// Only list packages with this result: REPRODUCED (GOOD), DISPUTED, NOT_REPRODUCED
    /// (BAD, FAIL) or UNKNOWN (UNKWN). The summary still counts every package.
    #[arg(long, value_name = "STATUS", value_parser = parse_verdict)]
    filter: Option<Verdict>,
    /// Exit 1 when less than P percent of the packages are reproduced.
    #[arg(long, value_name = "P")]
    min_percent: Option<f64>,
    /// The distribution name the rebuilders use for these packages.
    #[arg(long, default_value = "archlinux", value_name = "NAME")]
    distribution: String,
}

fn parse_verdict(s: &str) -> std::result::Result<Verdict, String> {
    Verdict::parse(s).ok_or_else(|| {
        format!("{s:?}: expected REPRODUCED, DISPUTED, NOT_REPRODUCED, UNKNOWN (or GOOD, BAD, FAIL, UNKWN)")
    })
}

#[derive(Serialize)]
struct RebuilderReport {
    url: String,
    api: Option<Api>,
    records: usize,
    error: Option<String>,
}

#[derive(Serialize)]
struct StatusReport<'a> {
    schema: &'static str,
    source: Source,
    quorum: usize,
    rebuilders: Vec<RebuilderReport>,
    summary: Summary,
    filter: Option<Verdict>,
    packages: Vec<&'a PackageStatus>,
    warnings: Vec<String>,
}

/// `-r` values (comma lists allowed), else `$REBUILDERD` (comma-separated).
fn rebuilder_urls(a: &StatusArgs) -> Result<Vec<String>> {
    let raw: Vec<String> = if a.rebuilders.is_empty() {
        std::env::var("REBUILDERD").ok().into_iter().collect()
    } else {
        a.rebuilders.clone()
    };
    let mut urls: Vec<String> = Vec::new();
    for u in raw.iter().flat_map(|s| s.split(',')) {
        let u = u.trim().trim_end_matches('/');
        if !u.is_empty() && !urls.iter().any(|x| x == u) {
            urls.push(u.to_string());
        }
    }
    if urls.is_empty() {
        bail!("no rebuilder: give -r URL (repeatable) or set REBUILDERD=URL[,URL…]");
    }
    Ok(urls)
}

pub fn run(g: &Global, a: &StatusArgs) -> Result<ExitCode> {
    let urls = rebuilder_urls(a)?;
    if a.quorum == 0 || a.quorum > urls.len() {
        bail!(
            "--quorum {}: must be between 1 and the number of rebuilders ({})",
            a.quorum,
            urls.len()
        );
    }
    let (inv, source, mut warnings) = match (&a.image, &a.rootfs) {
        (_, Some(dir)) => {
            let (inv, source) = crate::view::read_dir(dir)?;
            (inv, source, Vec::new())
        }
        (Some(image), None) => {
            let v = crate::view::read_image(g, image)?;
            let source = v.source();
            (v.inv, source, v.warnings)
        }
        (None, None) => bail!("give an IMAGE or --rootfs DIR"),
    };
    if !inv.local_db {
        warnings.push(format!(
            "{}: no pacman local database (var/lib/pacman/local)",
            source.reference
        ));
    }
    warnings.extend(inv.warnings.iter().cloned());

    let timeout = Duration::from_secs(g.timeout.max(1));
    let opts = Options {
        timeout,
        connect_timeout: timeout,
        request_timeout: timeout * 5,
        ..Options::default()
    };
    let filter = Filter {
        distribution: Some(a.distribution.clone()),
        ..Filter::default()
    };
    let listings = repro_rebuilderd::list_all(&urls, &opts, &filter);
    if listings.iter().all(|l| l.is_err()) {
        let msgs: Vec<String> = listings
            .into_iter()
            .filter_map(|l| l.err().map(|e| e.to_string()))
            .collect();
        bail!("no rebuilder answered:\n  {}", msgs.join("\n  "));
    }
    let mut reports = Vec::new();
    let mut indexes = Vec::new();
    for (url, l) in urls.iter().zip(listings) {
        match l {
            Ok(l) => {
                reports.push(RebuilderReport {
                    url: url.clone(),
                    api: Some(l.api),
                    records: l.records.len(),
                    error: None,
                });
                indexes.push((url.clone(), Ok(Index::new(l.records))));
            }
            Err(e) => {
                warnings.push(e.to_string());
                reports.push(RebuilderReport {
                    url: url.clone(),
                    api: None,
                    records: 0,
                    error: Some(e.to_string()),
                });
                indexes.push((url.clone(), Err(e.to_string())));
            }
        }
    }
    let pkgs: Vec<Pkg> = inv
        .packages
        .iter()
        .map(|p| Pkg::new(&p.name, &p.version, &p.arch))
        .collect();
    let statuses = quorum::evaluate(&pkgs, &indexes, a.quorum);
    let summary = quorum::summarize(&statuses);
    let shown: Vec<&PackageStatus> = statuses
        .iter()
        .filter(|s| a.filter.is_none_or(|f| s.verdict == f))
        .collect();
    let report = StatusReport {
        schema: "repro-image/status/v1",
        source,
        quorum: a.quorum,
        rebuilders: reports,
        summary,
        filter: a.filter,
        packages: shown,
        warnings,
    };
    let code = crate::view::finish(g, &report, &report.warnings, &inv.errors, |out| {
        print_human(out, &report)
    })?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    if let Some(p) = a.min_percent
        && report.summary.percent < p
    {
        eprintln!(
            "repro-image: {:.2}% reproducible is below --min-percent {p}",
            report.summary.percent
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `host:port/path` of a URL, for columns.
fn label(url: &str) -> &str {
    url.split_once("://").map(|(_, r)| r).unwrap_or(url)
}

/// The arch-repro-status marker and word for a package.
fn marker(s: &PackageStatus) -> (&'static str, &'static str) {
    match s.verdict {
        Verdict::Reproduced => ("[+]", "GOOD"),
        Verdict::Disputed => ("[!]", "DISPUTED"),
        Verdict::NotReproduced => {
            let only_fail = s.rebuilders.iter().all(|r| {
                !r.said.is_bad()
                    || matches!(
                        r.said,
                        Said::Status {
                            status: Status::Fail,
                            ..
                        }
                    )
            }) && s.bad > 0;
            ("[-]", if only_fail { "FAIL" } else { "BAD" })
        }
        Verdict::Unknown => ("[?]", "UNKWN"),
    }
}

fn print_human(out: &mut dyn Write, r: &StatusReport) -> std::io::Result<()> {
    let several = r.rebuilders.len() > 1;
    for p in &r.packages {
        let (m, word) = marker(p);
        write!(out, "{m} {} {} {word}", p.name, p.version)?;
        if several {
            let parts: Vec<String> = p
                .rebuilders
                .iter()
                .map(|s| format!("{}: {}", label(&s.rebuilder), s.said.describe()))
                .collect();
            write!(out, "  ({})", parts.join("; "))?;
        } else if let Some(s) = p.rebuilders.first()
            && matches!(s.said, Said::OtherVersion { .. })
        {
            write!(out, "  ({})", s.said.describe())?;
        }
        writeln!(out)?;
    }
    let s = &r.summary;
    writeln!(
        out,
        "{}/{} packages are not reproducible.",
        s.total - s.reproduced,
        s.total
    )?;
    writeln!(out, "Your image is {:.2}% reproducible.", s.percent)?;
    writeln!(
        out,
        "Quorum {}: {} reproduced, {} disputed, {} not reproduced, {} unknown.",
        r.quorum, s.reproduced, s.disputed, s.not_reproduced, s.unknown
    )?;
    writeln!(out)?;
    writeln!(out, "Rebuilders:")?;
    for (i, rb) in r.rebuilders.iter().enumerate() {
        match (&rb.error, rb.api) {
            (Some(e), _) => writeln!(out, "  #{} {}  ERROR: {e}", i + 1, rb.url)?,
            (None, Some(api)) => writeln!(
                out,
                "  #{} {}  API {}, {} records",
                i + 1,
                rb.url,
                match api {
                    Api::V1 => "v1",
                    Api::V0 => "v0",
                },
                rb.records
            )?,
            (None, None) => writeln!(out, "  #{} {}", i + 1, rb.url)?,
        }
    }
    // The matrix: one row per listed package, one column per rebuilder.
    let mut header = vec!["PACKAGE".to_string(), "VERSION".into(), "RESULT".into()];
    header.extend((1..=r.rebuilders.len()).map(|i| format!("#{i}")));
    let rows: Vec<Vec<String>> = r
        .packages
        .iter()
        .map(|p| {
            let mut row = vec![
                p.name.clone(),
                p.version.clone(),
                p.verdict.as_str().to_string(),
            ];
            row.extend(p.rebuilders.iter().map(|s| s.said.cell()));
            row
        })
        .collect();
    let mut width = vec![0usize; header.len()];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    writeln!(out)?;
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&width)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}
