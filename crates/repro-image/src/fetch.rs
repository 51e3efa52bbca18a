//! `repro-image fetch LOCK`: download every pinned package into the content store, verified.
//!
//! Parallel (`--jobs`), resumable (a cut download continues with `Range` in this run or the
//! next), mirrors tried in order (`--mirror`, repeatable; the lock's archive when none is
//! given), only ever the `/packages/` URLs the lock names (never a live repo db). With
//! `--keyring`, each pinned signature is checked with sqv as of the end of the snapshot day.
//!
//! Exit status: 0 every package is in the store, verified (and signed, with --keyring);
//! 1 some file or signature does not match the lock; 2 error (e.g. unreachable mirrors).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use repro_lock::archive::{Client, Fetched};
use repro_lock::{Lock, PackagePin};
use serde::Serialize;

use crate::Global;

#[derive(Args)]
pub struct FetchArgs {
    /// The lock file (from `repro-image lock`).
    lock: PathBuf,
    /// Archive mirror base URL, tried in order (repeatable) [default: the lock's archive].
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// OpenPGP keyring (armored or binary) that must have signed every package.
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
}

#[derive(Serialize)]
struct FetchReport {
    schema: &'static str,
    lock: String,
    store: String,
    mirrors: Vec<String>,
    packages: Vec<PackageResult>,
    downloaded_bytes: u64,
    ok: bool,
}

#[derive(Serialize)]
pub(crate) struct PackageResult {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) sha256: String,
    /// "present", "downloaded", "failed".
    pub(crate) status: &'static str,
    pub(crate) bytes: u64,
    pub(crate) resumed_from: u64,
    /// "valid", "unchecked" (no --keyring), "unsigned", "bad".
    pub(crate) signature: &'static str,
    pub(crate) signer: Option<String>,
    pub(crate) error: Option<String>,
}

pub fn run(g: &Global, a: &FetchArgs) -> Result<ExitCode> {
    let lock = Lock::load(&a.lock)?;
    let store = g
        .store()?
        .context("fetch downloads into the content store: drop --no-cache")?;
    let mirrors: Vec<String> = if a.mirrors.is_empty() {
        vec![lock.recipe.archive.clone()]
    } else {
        a.mirrors.clone()
    };
    for m in &mirrors {
        repro_lock::types::check_url(m).map_err(|e| anyhow::anyhow!("--mirror: {e}"))?;
    }
    if let Some(k) = &a.keyring {
        anyhow::ensure!(k.is_file(), "--keyring {}: not a file", k.display());
    }
    let client = Client::new(repro_lock::archive::ClientOptions {
        timeout: std::time::Duration::from_secs(g.timeout.max(1)),
        attempts: g.retries.max(1),
        ..Default::default()
    });
    let total: u64 = lock.packages.iter().map(|p| p.size).sum();
    let bar = if g.quiet || g.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        let style = ProgressStyle::with_template(
            "fetch {bar:30} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()).with_style(style)
    };
    let results = fetch_packages(
        &client,
        &store,
        &lock,
        &mirrors,
        a.keyring.as_deref(),
        a.jobs,
        &|n| bar.inc(n),
    );
    bar.finish_and_clear();
    let mismatch = results.iter().any(|(_, m)| *m);
    let packages: Vec<PackageResult> = results.into_iter().map(|(r, _)| r).collect();
    let ok = packages.iter().all(|p| p.error.is_none());
    let report = FetchReport {
        schema: "repro-image/fetch/v1",
        lock: a.lock.display().to_string(),
        store: store.root().display().to_string(),
        mirrors,
        downloaded_bytes: packages.iter().map(|p| p.bytes).sum(),
        packages,
        ok,
    };
    store.finish();
    repro_lock::archive::finish(&store);
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        for p in &report.packages {
            let sig = match (p.signature, &p.signer) {
                ("valid", Some(s)) => format!("signed by {s}"),
                (s, _) => format!("signature {s}"),
            };
            let status = match p.status {
                "downloaded" if p.resumed_from > 0 => {
                    format!(
                        "downloaded {} bytes (resumed at {})",
                        p.bytes, p.resumed_from
                    )
                }
                "downloaded" => format!("downloaded {} bytes", p.bytes),
                s => s.to_string(),
            };
            writeln!(out, "{:<24} {:<20} {status}, {sig}", p.name, p.version)?;
        }
        writeln!(
            out,
            "{} packages: {} downloaded ({} bytes), {} already present, {} failed; store {}",
            report.packages.len(),
            report
                .packages
                .iter()
                .filter(|p| p.status == "downloaded")
                .count(),
            report.downloaded_bytes,
            report
                .packages
                .iter()
                .filter(|p| p.status == "present")
                .count(),
            report.packages.iter().filter(|p| p.error.is_some()).count(),
            report.store
        )?;
    }
    out.flush()?;
    for p in &report.packages {
        if let Some(e) = &p.error {
            eprintln!("repro-image: error: {e}");
        }
    }
    if ok && a.keyring.is_none() && !g.quiet {
        eprintln!("repro-image: warning: signatures not checked (give --keyring)");
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else if mismatch {
        ExitCode::from(1)
    } else {
        ExitCode::from(2)
    })
}

/// Download every package `lock` pins from `mirrors` (in order) into `store`, each checked
/// against its sha256 and, with `keyring`, its signature. Returns one result per package and
/// whether its failure is a mismatch with the lock (rather than an unreachable mirror).
pub(crate) fn fetch_packages(
    client: &Client,
    store: &repro_store::Store,
    lock: &Lock,
    mirrors: &[String],
    keyring: Option<&std::path::Path>,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<(PackageResult, bool)> {
    let snapshot = lock.recipe.archive_snapshot;
    repro_lock::archive::parallel(jobs, &lock.packages, |p: &PackagePin| {
        let what = format!("package {} {}", p.name, p.version);
        let urls: Vec<String> = mirrors
            .iter()
            .map(|m| p.url_on(&lock.recipe.archive, m))
            .collect();
        let fetched = client.download(store, &urls, &p.sha256, p.size, &what, progress);
        let mut r = PackageResult {
            name: p.name.clone(),
            version: p.version.clone(),
            sha256: p.sha256.to_string(),
            status: "failed",
            bytes: 0,
            resumed_from: 0,
            signature: "unchecked",
            signer: None,
            error: None,
        };
        let mut mismatch = false;
        match fetched {
            Ok(Fetched::Present) => {
                r.status = "present";
                progress(p.size);
            }
            Ok(Fetched::Downloaded {
                bytes,
                resumed_from,
            }) => {
                r.status = "downloaded";
                r.bytes = bytes;
                r.resumed_from = resumed_from;
                progress(resumed_from);
            }
            Err(e) => {
                mismatch = e.is_mismatch();
                r.error = Some(e.to_string());
                return (r, mismatch);
            }
        }
        if let Some(keyring) = keyring {
            match &p.signature {
                None => {
                    r.signature = "unsigned";
                    r.error = Some(format!("{what}: the lock pins no signature"));
                    mismatch = true;
                }
                Some(sig) => {
                    let path = match store.blob_path(&p.sha256.digest()) {
                        Ok(path) => path,
                        Err(e) => {
                            r.error = Some(e.to_string());
                            return (r, false);
                        }
                    };
                    match repro_lock::pgp::verify(keyring, sig, &path, &snapshot, &what) {
                        Ok(fpr) => {
                            r.signature = "valid";
                            r.signer = Some(fpr);
                        }
                        Err(e) => {
                            mismatch = matches!(e, repro_lock::pgp::PgpError::Bad { .. });
                            r.signature = "bad";
                            r.error = Some(e.to_string());
                        }
                    }
                }
            }
        }
        (r, mismatch)
    })
}
