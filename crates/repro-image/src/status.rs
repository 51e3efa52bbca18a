//! `repro-image status`: ask several rebuilderd instances about every pacman package in an
//! image (or `--rootfs DIR`), match exactly (name, version, architecture) and decide per
//! package with a quorum.
//!
//! Output: the lines arch-repro-status users know (`[+] name version GOOD`, `[-] … BAD`,
//! `[?] … UNKWN`; `[!] … DISPUTED` when rebuilders disagree), "N/M packages are not
//! reproducible", "Your image is XX.XX% reproducible", then a per-rebuilder matrix.
//! `--json`: schema "repro-image/status/v1" (docs/status-json.md).
//!
//! Rebuilders: `-r URL…`, else `$REBUILDERD`, else the config file's, else the public Arch
//! rebuilders. For each GOOD exact match the signed in-toto link is fetched and verified
//! (pinned keys from the config, else keys learned on first use); see
//! `repro_rebuilderd::evidence`.
//!
//! Exit status: 0; 1 when below `--min-percent`; 2 on errors (no rebuilder answered, the
//! image could not be read, a rebuilder's key changed). A rebuilder that fails while others
//! answer is a warning and its column says ERROR.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use repro_inventory::{SyncPackage, parse_sync_db};
use repro_rebuilderd::assess::{
    self, AssessOptions, AttestationSummary, FileFacts, RebuilderReport,
};
use repro_rebuilderd::attestation::PublicKey;
use repro_rebuilderd::config::{Config, DEFAULT_REBUILDERS, normalize_url};
use repro_rebuilderd::evidence::AttestationCheck;
use repro_rebuilderd::keys::{KnownKeys, Trust};
use repro_rebuilderd::quorum::{self, Index, PackageStatus, Pkg, Said, Summary, Verdict};
use repro_rebuilderd::{Api, BuildText, Client, Filter, Options, Status};
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
    /// A rebuilderd base URL; repeat for several (commas also separate). Default:
    /// $REBUILDERD, else the config file's rebuilders, else the public Arch rebuilders.
    #[arg(short = 'r', long = "rebuilder", value_name = "URL")]
    rebuilders: Vec<String>,
    /// GOOD results needed from different rebuilders for a package to count as reproduced
    /// [default: the config's `quorum`, else 1].
    #[arg(long, value_name = "K")]
    quorum: Option<usize>,
    /// Rebuilders and pinned keys [default: $XDG_CONFIG_HOME/repro-image/rebuilders.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Keys learned on first use [default: $XDG_DATA_HOME/repro-image/known-rebuilder-keys.json].
    #[arg(long, value_name = "FILE")]
    known_keys: Option<PathBuf>,
    /// Do not fetch or verify attestations.
    #[arg(long, conflicts_with = "require_attestation")]
    no_attestations: bool,
    /// Count a GOOD only when its attestation is signed by the rebuilder's key and attests the
    /// archive's file hash (needs the sync dbs: in the image, or --sync-db).
    #[arg(long)]
    require_attestation: bool,
    /// A pacman sync db (`core.db`…) giving the package files' sha256; repeatable. The
    /// image's own sync dbs are used too.
    #[arg(long = "sync-db", value_name = "FILE")]
    sync_dbs: Vec<PathBuf>,
    /// An Arch Linux Archive to take the package files' sha256 from: the sync dbs of
    /// `--snapshot` (default: the day before the newest install date) under
    /// URL/repos/YYYY/MM/DD/REPO/os/ARCH/REPO.db.
    #[arg(long, value_name = "URL")]
    archive: Option<String>,
    /// The archive snapshot (YYYY/MM/DD) for --archive.
    #[arg(long, value_name = "YYYY/MM/DD", requires = "archive")]
    snapshot: Option<repro_lock::Snapshot>,
    /// Repositories to read from --archive (repeatable).
    #[arg(long = "repo", value_name = "REPO", default_values_t = ["core".to_string(), "extra".to_string()], requires = "archive")]
    repos: Vec<String>,
    /// Attestation requests in flight per rebuilder.
    #[arg(long, default_value_t = 8, value_name = "N")]
    jobs: usize,
    /// Print each rebuilder's build log for package NAME (exact version of the image) and exit.
    #[arg(long, value_name = "NAME", conflicts_with = "diffoscope")]
    log: Option<String>,
    /// Print each rebuilder's diffoscope output for package NAME and exit.
    #[arg(long, value_name = "NAME")]
    diffoscope: Option<String>,
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
struct StatusReport<'a> {
    schema: &'static str,
    source: Source,
    quorum: usize,
    rebuilders: Vec<RebuilderReport>,
    summary: Summary,
    attestations: AttestationSummary,
    filter: Option<Verdict>,
    packages: Vec<&'a PackageStatus>,
    warnings: Vec<String>,
}

/// `$XDG_CONFIG_HOME/repro-image/rebuilders.toml` (or `~/.config/…`).
pub(crate) fn default_config() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join("repro-image/rebuilders.toml"))
}

/// `$XDG_DATA_HOME/repro-image/known-rebuilder-keys.json` (or `~/.local/share/…`).
pub(crate) fn default_known_keys() -> Option<PathBuf> {
    xdg_dir("XDG_DATA_HOME", ".local/share")
        .map(|d| d.join("repro-image/known-rebuilder-keys.json"))
}

fn xdg_dir(var: &str, home_rel: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() && PathBuf::from(&v).is_absolute() => Some(PathBuf::from(v)),
        _ => std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(home_rel)),
    }
}

/// `-r` values (comma lists allowed), else `$REBUILDERD` (comma-separated), else the config
/// file's rebuilders, else the shipped defaults. Returns the URLs and where they came from.
fn rebuilder_urls(a: &StatusArgs, config: &Config) -> (Vec<String>, &'static str) {
    let split = |raw: &[String]| -> Vec<String> {
        let mut urls: Vec<String> = Vec::new();
        for u in raw.iter().flat_map(|s| s.split(',')) {
            let u = normalize_url(u);
            if !u.is_empty() && !urls.contains(&u) {
                urls.push(u);
            }
        }
        urls
    };
    let from_flags = split(&a.rebuilders);
    if !from_flags.is_empty() {
        return (from_flags, "-r");
    }
    let from_env = split(
        &std::env::var("REBUILDERD")
            .ok()
            .into_iter()
            .collect::<Vec<_>>(),
    );
    if !from_env.is_empty() {
        return (from_env, "$REBUILDERD");
    }
    if !config.rebuilders.is_empty() {
        return (
            config.rebuilders.iter().map(|r| r.url.clone()).collect(),
            "config",
        );
    }
    (
        DEFAULT_REBUILDERS.iter().map(|u| u.to_string()).collect(),
        "defaults",
    )
}

/// One client per rebuilder, with the global timeouts and retries, caching under the
/// content store's `rebuilderd/` (unless `--no-cache`).
pub(crate) fn rebuilder_clients(g: &Global, urls: &[String]) -> Result<Vec<Client>> {
    let timeout = Duration::from_secs(g.timeout.max(1));
    let opts = Options {
        timeout,
        connect_timeout: timeout,
        request_timeout: timeout * 5,
        attempts: g.retries.max(1),
        ..Options::default()
    };
    let cache_root = g.store()?.map(|s| s.root().join("rebuilderd"));
    Ok(urls
        .iter()
        .map(|u| {
            let c = Client::new(u, opts.clone())?;
            Ok(match &cache_root {
                Some(root) => c.with_cache(root),
                None => c,
            })
        })
        .collect::<Result<_, repro_rebuilderd::Error>>()?)
}

/// The sync dbs of `--archive` at `--snapshot` (or the day before the newest install date).
fn archive_dbs(
    g: &Global,
    a: &StatusArgs,
    inv: &repro_inventory::Inventory,
    warnings: &mut Vec<String>,
) -> Result<Vec<repro_inventory::SyncDb>> {
    const MAX_DB: u64 = 256 * 1024 * 1024;
    let Some(archive) = &a.archive else {
        return Ok(Vec::new());
    };
    let archive = archive.trim_end_matches('/');
    let snapshot = match &a.snapshot {
        Some(s) => *s,
        None => {
            let Some(newest) = inv.packages.iter().map(|p| p.install_date).max() else {
                bail!("--archive: no package to derive the snapshot from; give --snapshot");
            };
            let s = repro_lock::Snapshot::day_before(newest - newest.rem_euclid(86_400));
            warnings.push(format!(
                "--archive: snapshot {s} (the day before the newest install date; --snapshot to choose)"
            ));
            s
        }
    };
    let arch = inv
        .packages
        .iter()
        .map(|p| p.arch.as_str())
        .find(|a| *a != "any")
        .unwrap_or("x86_64");
    let client = repro_lock::archive::Client::new(repro_lock::archive::ClientOptions {
        timeout: Duration::from_secs(g.timeout.max(1)),
        attempts: g.retries.max(1),
        ..Default::default()
    });
    let mut dbs = Vec::new();
    for repo in &a.repos {
        let url = format!("{archive}/repos/{snapshot}/{repo}/os/{arch}/{repo}.db");
        match client.get_small(&url, MAX_DB)? {
            Some(bytes) => {
                let (db, errors) = parse_sync_db(&url, repo, &bytes);
                if let Some(e) = errors.first() {
                    bail!("{url}: {e}");
                }
                dbs.extend(db);
            }
            None => warnings.push(format!("{url}: not in the archive")),
        }
    }
    if dbs.is_empty() {
        bail!(
            "--archive {archive}: no sync db for snapshot {snapshot} ({})",
            a.repos.join(", ")
        );
    }
    Ok(dbs)
}

/// The package files' names and sha256 by (name, version, arch): the image's sync dbs,
/// those of `--archive` and every `--sync-db`.
fn sync_packages(
    inv: &repro_inventory::Inventory,
    extra: Vec<repro_inventory::SyncDb>,
    files: &[PathBuf],
) -> Result<HashMap<(String, String, String), SyncPackage>> {
    let mut dbs = inv.sync_dbs.clone();
    dbs.extend(extra);
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("--sync-db {}", f.display()))?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let repo = name.split('.').next().unwrap_or_default().to_string();
        let (db, errors) = parse_sync_db(&f.display().to_string(), &repo, &bytes);
        if let Some(e) = errors.first() {
            bail!("--sync-db {}: {e}", f.display());
        }
        dbs.extend(db);
    }
    let mut out = HashMap::new();
    for db in dbs {
        for p in db.packages {
            out.insert((p.name.clone(), p.version.clone(), p.arch.clone()), p);
        }
    }
    Ok(out)
}

pub fn run(g: &Global, a: &StatusArgs) -> Result<ExitCode> {
    let config_path = a.config.clone().or_else(default_config);
    let config = match &config_path {
        Some(p) => Config::load(p)?.unwrap_or_default(),
        None => Config::default(),
    };
    if a.config.is_some() && config.path.is_none() {
        bail!(
            "--config {}: no such file",
            a.config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let (urls, urls_from) = rebuilder_urls(a, &config);
    let quorum = a.quorum.or(config.quorum).unwrap_or(1);
    if quorum == 0 || quorum > urls.len() {
        bail!(
            "--quorum {quorum}: must be between 1 and the number of rebuilders ({})",
            urls.len()
        );
    }
    let crate::view::Subject {
        inv,
        source,
        mut warnings,
        ..
    } = crate::view::read_subject(g, a.image.as_deref(), a.rootfs.as_deref(), false, "")?;

    let clients = rebuilder_clients(g, &urls)?;
    let filter = Filter {
        distribution: Some(a.distribution.clone()),
        ..Filter::default()
    };
    let gathered = match assess::gather(&clients, &filter) {
        Ok(g) => g,
        Err(e) => bail!("{e} (rebuilders from {urls_from})"),
    };
    let pkgs: Vec<Pkg> = inv
        .packages
        .iter()
        .map(|p| Pkg::new(&p.name, &p.version, &p.arch))
        .collect();

    if let Some((name, what)) = a
        .log
        .as_ref()
        .map(|n| (n, BuildText::Log))
        .or(a.diffoscope.as_ref().map(|n| (n, BuildText::Diffoscope)))
    {
        return show_build_text(
            &clients,
            &gathered.apis,
            &gathered.indexes,
            &pkgs,
            name,
            what,
        );
    }

    let mut files: Vec<Option<FileFacts>> = vec![None; pkgs.len()];
    if !a.no_attestations {
        let from_archive = archive_dbs(g, a, &inv, &mut warnings)?;
        let sync = sync_packages(&inv, from_archive, &a.sync_dbs)?;
        if sync.is_empty() {
            let msg = "no sync db (in the image, --archive or --sync-db): attested products are \
                       named but their sha256 is not compared with the archive's";
            if a.require_attestation {
                warnings.push(format!("{msg}; --require-attestation counts no GOOD"));
            } else {
                warnings.push(msg.to_string());
            }
        }
        for (f, p) in files.iter_mut().zip(&pkgs) {
            *f = sync
                .get(&(p.name.clone(), p.version.clone(), p.arch.clone()))
                .map(|s| FileFacts {
                    filename: s.filename.clone(),
                    sha256: Some(s.sha256.clone()),
                });
        }
    }
    let known_path = a.known_keys.clone().or_else(default_known_keys);
    let mut known = match (&known_path, a.no_attestations) {
        (Some(p), false) => Some(KnownKeys::load(p)?),
        _ => None,
    };
    let pinned = |url: &str| config.pinned(url).map(<[PublicKey]>::to_vec);
    let opts = AssessOptions {
        quorum,
        attestations: !a.no_attestations,
        require_attestation: a.require_attestation,
        jobs: a.jobs,
    };
    let done = assess::assess(
        &clients,
        gathered,
        &pkgs,
        &files,
        &pinned,
        known.as_mut(),
        &opts,
    )?;
    if let Some(kk) = &known
        && let Err(e) = kk.save()
    {
        warnings.push(format!("keys not remembered: {e}"));
    }
    warnings.extend(done.warnings);
    let statuses = done.statuses;
    let summary = quorum::summarize(&statuses);
    let shown: Vec<&PackageStatus> = statuses
        .iter()
        .filter(|s| a.filter.is_none_or(|f| s.verdict == f))
        .collect();
    let report = StatusReport {
        schema: "repro-image/status/v1",
        source,
        quorum,
        rebuilders: done.rebuilders,
        summary,
        attestations: done.attestations,
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

/// `--log NAME` / `--diffoscope NAME`: each rebuilder's text for the image's exact version.
fn show_build_text(
    clients: &[Client],
    apis: &[Option<Api>],
    indexes: &[(String, Result<Index, String>)],
    pkgs: &[Pkg],
    name: &str,
    what: BuildText,
) -> Result<ExitCode> {
    let Some(p) = pkgs.iter().find(|p| p.name == name) else {
        bail!("{name}: not a package of this image");
    };
    let word = match what {
        BuildText::Log => "build log",
        BuildText::Diffoscope => "diffoscope output",
    };
    let mut out = std::io::stdout().lock();
    let mut shown = 0;
    let mut notes: Vec<String> = Vec::new();
    for ((client, api), (url, idx)) in clients.iter().zip(apis).zip(indexes) {
        let (Some(api), Ok(idx)) = (api, idx) else {
            notes.push(format!("{url}: unavailable"));
            continue;
        };
        let Some(rec) = idx.exact(p) else {
            notes.push(format!("{url}: {}", idx.said(p).describe()));
            continue;
        };
        match client.build_text(rec, *api, what)? {
            Some(text) => {
                writeln!(
                    out,
                    "==> {url}: {} {} {} ({}, build {})",
                    p.name,
                    p.version,
                    word,
                    rec.status,
                    rec.build_id.map(|b| b.to_string()).unwrap_or_default()
                )?;
                out.write_all(&text)?;
                if !text.ends_with(b"\n") {
                    writeln!(out)?;
                }
                shown += 1;
            }
            None => notes.push(format!(
                "{url}: no {word} for {} {} ({})",
                p.name, p.version, rec.status
            )),
        }
    }
    out.flush()?;
    for n in &notes {
        eprintln!("repro-image: {n}");
    }
    if shown == 0 {
        bail!("no rebuilder has a {word} for {} {}", p.name, p.version);
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

/// The matrix cell / detail of one rebuilder's answer, with its attestation when it matters.
fn cell(r: &quorum::RebuilderSaid) -> String {
    let base = r.said.cell();
    match &r.attestation {
        Some(a) if r.said.is_good() && !a.fully_verified() => match a {
            AttestationCheck::Verified { .. } => format!("{base}(att., hash?)"),
            AttestationCheck::Missing { .. } => format!("{base}(no att.)"),
            AttestationCheck::Invalid { .. } => format!("{base}(INVALID att.)"),
            AttestationCheck::Unavailable { .. } => format!("{base}(att.?)"),
        },
        Some(_) => format!("{base}(att.)"),
        None => base,
    }
}

fn detail(r: &quorum::RebuilderSaid) -> String {
    match &r.attestation {
        Some(a) if r.said.is_good() => format!("{}, {}", r.said.describe(), a.describe()),
        _ => r.said.describe(),
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
                .map(|s| format!("{}: {}", label(&s.rebuilder), detail(s)))
                .collect();
            write!(out, "  ({})", parts.join("; "))?;
        } else if let Some(s) = p.rebuilders.first()
            && (matches!(s.said, Said::OtherVersion { .. }) || (s.said.is_good() && !s.counts))
        {
            write!(out, "  ({})", detail(s))?;
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
    let a = &r.attestations;
    if a.checked {
        writeln!(
            out,
            "Attestations{}: {} verified ({} against the archive's file hash), {} missing, {} invalid, {} unavailable.",
            if a.required { " (required)" } else { "" },
            a.verified,
            a.hash_matched,
            a.missing,
            a.invalid,
            a.unavailable
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Rebuilders:")?;
    for (i, rb) in r.rebuilders.iter().enumerate() {
        match (&rb.error, rb.api) {
            (Some(e), _) => writeln!(out, "  #{} {}  ERROR: {e}", i + 1, rb.url)?,
            (None, Some(api)) => {
                write!(
                    out,
                    "  #{} {}  API {}, {} records",
                    i + 1,
                    rb.url,
                    match api {
                        Api::V1 => "v1",
                        Api::V0 => "v0",
                    },
                    rb.records
                )?;
                if let Some(t) = rb.key_trust {
                    let ids: Vec<&str> = rb.keyids.iter().map(|k| &k[..k.len().min(16)]).collect();
                    let how = match t {
                        Trust::Pinned => "pinned",
                        Trust::Known => "known",
                        Trust::FirstUse => "first use, remembered",
                    };
                    write!(out, ", key {} ({how})", ids.join(","))?;
                } else if let Some(e) = &rb.key_error {
                    write!(out, ", no key: {e}")?;
                }
                writeln!(out)?;
            }
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
            row.extend(p.rebuilders.iter().map(cell));
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
