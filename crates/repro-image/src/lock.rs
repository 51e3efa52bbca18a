//! `repro-image lock IMAGE --archive URL`: pin every input of an image (docs/lockfile.md).
//!
//! Derives the recipe's parameters from the image (each overridable by a flag, the lock says
//! which and how), pins each installed package from the snapshot's sync db (or the archive's
//! `/packages/` tree when the snapshot lacks that version), proves each pin is the installed
//! package (its `.MTREE` equals the local db `mtree` byte for byte; `.PKGINFO` name, version
//! and arch match), archives the image's index/manifest/config bytes in `<lock>.d/`, and
//! writes the lock atomically.
//!
//! Exit status: 0 the lock was written; 1 some package could not be proven to be the
//! installed one (nothing written); 2 error.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use repro_inventory::{InstallReason, Package, TreeView};
use repro_lock::archive::Client;
use repro_lock::{
    ImagePin, LayerPin, Lock, PackagePin, Param, PinnedFrom, Recipe, Sha256Hex, Signature,
    Snapshot, syncdb,
};
use repro_oci::TopLevel;
use repro_rootfs::Applier;
use repro_store::Store;
use serde::Serialize;

use crate::Global;

/// Largest sync db and package file accepted.
const MAX_DB: u64 = 512 * 1024 * 1024;
const MAX_PACKAGE: u64 = 4 * 1024 * 1024 * 1024;
const MAX_SIG: u64 = 16 * 1024;

const LABEL_CREATED: &str = "org.opencontainers.image.created";
const LABEL_REVISION: &str = "org.opencontainers.image.revision";
const LABEL_VERSION: &str = "org.opencontainers.image.version";
const LABEL_TITLE: &str = "org.opencontainers.image.title";
const LABEL_BUILDAH: &str = "io.buildah.version";

#[derive(Args)]
pub struct LockArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    pub(crate) image: String,
    /// Base URL of the Arch Linux Archive (…/repos/YYYY/MM/DD/ and …/packages/ below it).
    #[arg(long, value_name = "URL")]
    pub(crate) archive: String,
    /// Where to write the lock (its archived image bytes go to FILE.d/).
    #[arg(short, long, default_value = "repro-image.lock", value_name = "FILE")]
    pub(crate) output: PathBuf,
    /// SOURCE_DATE_EPOCH [default: derived from the image's created time / install dates].
    #[arg(long, value_name = "N")]
    pub(crate) source_date_epoch: Option<i64>,
    /// Archive snapshot [default: the day before SOURCE_DATE_EPOCH].
    #[arg(long, value_name = "YYYY/MM/DD")]
    pub(crate) snapshot: Option<Snapshot>,
    /// The recipe's revision [default: label org.opencontainers.image.revision].
    #[arg(long, value_name = "R")]
    pub(crate) revision: Option<String>,
    /// What the recipe installs, repeatable [default: the explicitly installed packages].
    #[arg(long, value_name = "G")]
    pub(crate) group: Vec<String>,
    /// The image version [default: label org.opencontainers.image.version].
    #[arg(long, value_name = "V")]
    pub(crate) image_version: Option<String>,
    /// The image title word ("Arch Linux WORD Image") [default: from label
    /// org.opencontainers.image.title].
    #[arg(long, value_name = "WORD")]
    pub(crate) image_title: Option<String>,
    /// Snapshot repositories to search, in order.
    #[arg(long = "repo", value_name = "NAME", default_values_t = ["core".to_string(), "extra".to_string()])]
    pub(crate) repos: Vec<String>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) jobs: usize,
}

#[derive(Serialize)]
struct LockReport<'a> {
    schema: &'static str,
    lock: String,
    archived: String,
    image: &'a ImagePin,
    recipe: RecipeReport<'a>,
    packages: Vec<PackageReport<'a>>,
    problems: &'a [String],
    warnings: &'a [String],
}

#[derive(Serialize)]
struct RecipeReport<'a> {
    source_date_epoch: i64,
    archive_snapshot: String,
    group: &'a [String],
    revision: &'a Option<String>,
    derived: BTreeMap<&'static str, &'a str>,
    given: BTreeMap<&'static str, &'a str>,
}

#[derive(Serialize)]
struct PackageReport<'a> {
    name: &'a str,
    version: &'a str,
    repo: &'a Option<String>,
    pinned_from: &'static str,
    sha256: &'a str,
    url: &'a str,
}

/// The image as read for locking.
struct Read {
    reference: String,
    pin: ImagePin,
    /// Exact bytes of the index (if any), manifest and config.
    blobs: Vec<Vec<u8>>,
    labels: BTreeMap<String, String>,
    created: Option<String>,
    packages: Vec<Package>,
    warnings: Vec<String>,
}

fn read_image(g: &Global, image: &str) -> Result<Read> {
    let r = crate::parse_image(image)?;
    let mut src = g.open_source(&r)?;
    let reference = src.describe();
    let mut blobs = Vec::new();
    let top = src.top_level()?;
    let manifest = repro_transport::tree::manifest_of(src.as_mut(), &top, &g.platform)?;
    let index_digest = match &top {
        TopLevel::Index(idx) => {
            blobs.push(idx.raw.bytes.clone());
            Some(idx.raw.digest.clone())
        }
        TopLevel::Manifest(_) => None,
    };
    blobs.push(manifest.raw.bytes.clone());
    let config = repro_transport::read_config(src.as_mut(), &manifest.manifest)?;
    blobs.push(config.raw.bytes.clone());
    let layers = repro_oci::image::layers(&manifest.manifest, &config.config)?;
    let c = &config.config;
    let labels: BTreeMap<String, String> = c
        .config()
        .as_ref()
        .and_then(|cc| cc.labels().clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    let tree = repro_transport::tree::build_tree(
        src.as_mut(),
        &manifest.manifest,
        Applier::with_capture(repro_inventory::capture()),
    )
    .with_context(|| format!("reading the layers of {reference}"))?;
    let inv = repro_inventory::read(&TreeView::new(&tree, reference.clone()))?;
    if let Some(e) = inv.errors.first() {
        bail!(
            "{reference}: the local db cannot be read ({} problems), first: {e}",
            inv.errors.len()
        );
    }
    if !inv.local_db || inv.packages.is_empty() {
        bail!("{reference}: no pacman local database (var/lib/pacman/local): nothing to lock");
    }
    let mut warnings = src.warnings();
    warnings.extend(inv.warnings.iter().cloned());
    warnings.extend(crate::view::flag_warnings(&tree));
    let pin = ImagePin {
        reference: reference.clone(),
        platform: g.platform.to_string(),
        index_digest,
        digest: manifest.raw.digest.clone(),
        media_type: manifest.kind.media_type().to_string(),
        config_digest: config.raw.digest.clone(),
        layers: layers
            .into_iter()
            .map(|l| LayerPin {
                diff_id: l.diff_id.unwrap_or_else(|| l.digest.clone()),
                digest: l.digest,
                media_type: l.media_type,
                size: l.size,
            })
            .collect(),
    };
    Ok(Read {
        reference,
        pin,
        blobs,
        labels,
        created: c.created().clone(),
        packages: inv.packages,
        warnings,
    })
}

/// SOURCE_DATE_EPOCH and how it was found: the created label, else the config's created
/// time, else the newest install date; each taken to midnight UTC of its day, as the recipe
/// sets SOURCE_DATE_EPOCH to the build day's midnight.
fn derive_sde(img: &Read) -> Result<(i64, String)> {
    let midnight = |t: i64| t - t.rem_euclid(86_400);
    let from_time = |what: String, t: i64| -> (i64, String) {
        let sde = midnight(t);
        let how = if sde == t {
            what
        } else {
            format!("{what}, taken to midnight UTC of its day")
        };
        (sde, how)
    };
    let label = img.labels.get(LABEL_CREATED).and_then(|v| {
        repro_lock::types::parse_rfc3339(v).map(|t| (format!("label {LABEL_CREATED} {v:?}"), t))
    });
    // A zero time (1970-01-01) is what builders write when told to hide the date.
    let config = img
        .created
        .as_deref()
        .and_then(|v| repro_lock::types::parse_rfc3339(v).map(|t| (v, t)))
        .filter(|(_, t)| *t > 0)
        .map(|(v, t)| (format!("config created {v:?}"), t));
    let installed = img.packages.iter().map(|p| p.install_date).max().map(|t| {
        (
            format!(
                "the newest %INSTALLDATE% ({})",
                repro_lock::types::rfc3339(t)
            ),
            t,
        )
    });
    let Some((what, t)) = label.or(config).or(installed) else {
        bail!(
            "{}: cannot derive SOURCE_DATE_EPOCH (no created label or time, no install dates): give --source-date-epoch",
            img.reference
        );
    };
    let (sde, mut how) = from_time(what, t);
    let differing = img
        .packages
        .iter()
        .filter(|p| p.install_date != sde)
        .count();
    if differing == 0 {
        how.push_str("; every %INSTALLDATE% equals it");
    } else {
        how.push_str(&format!(
            "; {differing} of {} %INSTALLDATE% differ (not installed with SOURCE_DATE_EPOCH)",
            img.packages.len()
        ));
    }
    Ok((sde, how))
}

fn pacman_arch(platform: &repro_oci::Platform) -> Result<&'static str> {
    Ok(match platform.architecture.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i686",
        other => bail!("no pacman architecture known for platform architecture {other:?}"),
    })
}

/// A sync db of the snapshot, with the repository name.
struct RepoDb {
    repo: String,
    db: syncdb::RepoDb,
}

/// What pinning one package found.
struct Pinned {
    pin: PackagePin,
    problems: Vec<String>,
}

fn pin_package(
    client: &Client,
    store: &Store,
    archive: &str,
    dbs: &[RepoDb],
    p: &Package,
) -> Result<Pinned> {
    let what = format!("package {} {}", p.name, p.version);
    // The snapshot's entry for exactly this version, from the first repo listing the name.
    let listed = dbs.iter().find_map(|r| {
        r.db.db
            .packages
            .iter()
            .find(|s| s.name == p.name)
            .map(|s| (r, s))
    });
    let pin = match listed {
        Some((r, s)) if s.version == p.version && s.arch == p.arch => {
            let sha256: Sha256Hex = s
                .sha256
                .parse()
                .map_err(|m| anyhow::anyhow!("{}: {}: %SHA256SUM%: {m}", r.db.db.file, p.name))?;
            repro_lock::types::check_filename(&s.filename, &s.name)
                .map_err(|m| anyhow::anyhow!("{}: {}: %FILENAME%: {m}", r.db.db.file, p.name))?;
            let url = repro_lock::packages_url(archive, &s.name, &s.filename);
            client
                .download(
                    store,
                    std::slice::from_ref(&url),
                    &sha256,
                    s.compressed_size,
                    &what,
                    &|_| {},
                )
                .with_context(|| format!("{what}: the archive's file"))?;
            PackagePin {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                repo: Some(r.repo.clone()),
                url,
                size: s.compressed_size,
                signature: r.db.signatures.get(&s.filename).cloned(),
                filename: s.filename.clone(),
                sha256,
                // Filled in below from the file itself.
                mtree_sha256: sha256_zero(),
                pinned_from: PinnedFrom::Snapshot,
            }
        }
        _ => pin_from_packages(client, store, archive, p, &what)?,
    };
    let expect = repro_oci::Expect {
        digest: pin.sha256.digest(),
        size: Some(pin.size),
    };
    let file = store
        .open(&expect)?
        .with_context(|| format!("{what}: not in the store after download"))?;
    let facts = repro_lock::package::read(&pin.filename, file)?;
    let mut problems = Vec::new();
    if (
        facts.name.as_str(),
        facts.version.as_str(),
        facts.arch.as_str(),
    ) != (p.name.as_str(), p.version.as_str(), p.arch.as_str())
    {
        problems.push(format!(
            "{what}: {} says .PKGINFO {} {} {}, the local db says {} {} {}",
            pin.url, facts.name, facts.version, facts.arch, p.name, p.version, p.arch
        ));
    }
    match &p.mtree {
        None => problems.push(format!(
            "{what}: the local db has no readable mtree to compare with the package's .MTREE"
        )),
        Some(m) if m.sha256 != facts.mtree_sha256.digest().to_string() => {
            problems.push(format!(
                "{what}: the package's .MTREE (sha256 {}) differs from the local db mtree ({}): not the installed package",
                facts.mtree_sha256, m.sha256
            ))
        }
        Some(_) => {}
    }
    Ok(Pinned {
        pin: PackagePin {
            mtree_sha256: facts.mtree_sha256,
            ..pin
        },
        problems,
    })
}

fn sha256_zero() -> Sha256Hex {
    "0".repeat(64)
        .parse()
        .unwrap_or_else(|_| unreachable!("64 zeros are hex"))
}

/// The snapshot lacks this version: take it from `/packages/`, hashing it on download; the
/// signature is the `.sig` next to it.
fn pin_from_packages(
    client: &Client,
    store: &Store,
    archive: &str,
    p: &Package,
    what: &str,
) -> Result<PackagePin> {
    let mut tried = Vec::new();
    for ext in ["zst", "xz", "gz"] {
        let filename = format!("{}-{}-{}.pkg.tar.{ext}", p.name, p.version, p.arch);
        let url = repro_lock::packages_url(archive, &p.name, &filename);
        let Some((sha256, size)) = client.download_unpinned(store, &url, MAX_PACKAGE)? else {
            tried.push(url);
            continue;
        };
        let signature = match client.get_small(&format!("{url}.sig"), MAX_SIG)? {
            Some(b) => Some(Signature::new(b).map_err(|m| anyhow::anyhow!("{url}.sig: {m}"))?),
            None => None,
        };
        return Ok(PackagePin {
            name: p.name.clone(),
            version: p.version.clone(),
            arch: p.arch.clone(),
            repo: None,
            filename,
            url,
            size,
            sha256,
            signature,
            mtree_sha256: sha256_zero(),
            pinned_from: PinnedFrom::Packages,
        });
    }
    bail!(
        "{what}: not in the snapshot and not in the archive's /packages/ tree (tried {})",
        tried.join(", ")
    )
}

/// What [`make`] produced: the lock (written only when `problems` is empty), where its
/// image bytes were archived, and what the proof found.
pub(crate) struct Made {
    pub lock: Lock,
    pub archived: PathBuf,
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

pub fn run(g: &Global, a: &LockArgs) -> Result<ExitCode> {
    let Made {
        lock,
        archived,
        problems,
        warnings,
    } = make(g, a)?;
    let archive_snapshot = lock.recipe.archive_snapshot;
    let source_date_epoch = lock.recipe.source_date_epoch;
    let report = LockReport {
        schema: "repro-image/lock/v1",
        lock: a.output.display().to_string(),
        archived: archived.display().to_string(),
        image: &lock.image,
        recipe: RecipeReport {
            source_date_epoch,
            archive_snapshot: archive_snapshot.to_string(),
            group: &lock.recipe.group,
            revision: &lock.recipe.revision,
            derived: lock
                .recipe
                .derived
                .iter()
                .map(|(p, h)| (p.key(), h.as_str()))
                .collect(),
            given: lock
                .recipe
                .given
                .iter()
                .map(|(p, h)| (p.key(), h.as_str()))
                .collect(),
        },
        packages: lock
            .packages
            .iter()
            .map(|p| PackageReport {
                name: &p.name,
                version: &p.version,
                repo: &p.repo,
                pinned_from: p.pinned_from.as_str(),
                sha256: p.sha256.as_str(),
                url: &p.url,
            })
            .collect(),
        problems: &problems,
        warnings: &warnings,
    };
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &lock, &report)?;
    }
    out.flush()?;
    if !g.quiet {
        for w in &warnings {
            eprintln!("repro-image: warning: {w}");
        }
    }
    for p in &problems {
        eprintln!("repro-image: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "repro-image: {} problem(s): no lock written",
            problems.len()
        );
        ExitCode::from(1)
    })
}

/// Pin the image's inputs and, when every package is proven to be the installed one, write
/// the lock and archive the image's bytes next to it (`lock`, and `verify` without `--lock`).
pub(crate) fn make(g: &Global, a: &LockArgs) -> Result<Made> {
    let archive = a.archive.trim_end_matches('/').to_string();
    repro_lock::types::check_url(&archive).map_err(|m| anyhow::anyhow!("--archive: {m}"))?;
    for repo in &a.repos {
        anyhow::ensure!(
            !repo.is_empty()
                && repo
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "--repo {repo:?}: not a repository name"
        );
    }
    let img = read_image(g, &a.image)?;
    let arch = pacman_arch(&g.platform)?;

    let mut derived: Vec<(Param, String)> = Vec::new();
    let mut given: Vec<(Param, String)> = Vec::new();
    let source_date_epoch = match a.source_date_epoch {
        Some(n) => {
            given.push((Param::SourceDateEpoch, "--source-date-epoch".into()));
            n
        }
        None => {
            let (sde, how) = derive_sde(&img)?;
            derived.push((Param::SourceDateEpoch, how));
            sde
        }
    };
    let archive_snapshot = match a.snapshot {
        Some(s) => {
            given.push((Param::ArchiveSnapshot, "--snapshot".into()));
            s
        }
        None => {
            derived.push((
                Param::ArchiveSnapshot,
                "the day before source_date_epoch (the recipe's rule)".into(),
            ));
            Snapshot::day_before(source_date_epoch)
        }
    };
    let group = if a.group.is_empty() {
        let explicit: Vec<String> = img
            .packages
            .iter()
            .filter(|p| p.reason == InstallReason::Explicit)
            .map(|p| p.name.clone())
            .collect();
        if explicit.is_empty() {
            bail!(
                "{}: no explicitly installed package to derive the group from: give --group",
                img.reference
            );
        }
        derived.push((
            Param::Group,
            "the explicitly installed packages of the local db".into(),
        ));
        explicit
    } else {
        given.push((Param::Group, "--group".into()));
        a.group.clone()
    };
    let mut from_label = |flag: &Option<String>, param: Param, flag_name: &str, label: &str| {
        if let Some(v) = flag {
            given.push((param, flag_name.to_string()));
            Some(v.clone())
        } else if let Some(v) = img.labels.get(label) {
            derived.push((param, format!("label {label}")));
            Some(v.clone())
        } else {
            None
        }
    };
    let revision = from_label(&a.revision, Param::Revision, "--revision", LABEL_REVISION);
    let image_version = from_label(
        &a.image_version,
        Param::ImageVersion,
        "--image-version",
        LABEL_VERSION,
    );
    let image_builder =
        from_label(&None, Param::ImageBuilder, "", LABEL_BUILDAH).map(|v| format!("buildah {v}"));
    // The recipe's title label is "Arch Linux <word> Image"; the word is what varies.
    let image_title = match &a.image_title {
        Some(t) => {
            given.push((Param::ImageTitle, "--image-title".to_string()));
            Some(t.clone())
        }
        None => img.labels.get(LABEL_TITLE).and_then(|v| {
            let word = v.strip_prefix("Arch Linux ")?.strip_suffix(" Image")?;
            derived.push((Param::ImageTitle, format!("label {LABEL_TITLE} {v:?}")));
            Some(word.to_string())
        }),
    };
    derived.sort_by_key(|(p, _)| *p);
    given.sort_by_key(|(p, _)| *p);

    // Package files are downloaded into the content store, which `fetch` and `build` reuse.
    let store = g
        .store()?
        .context("lock downloads the packages into the content store: drop --no-cache")?;
    let client = Client::new(repro_lock::archive::ClientOptions {
        timeout: std::time::Duration::from_secs(g.timeout.max(1)),
        attempts: g.retries.max(1),
        ..Default::default()
    });
    let mut warnings = img.warnings.clone();
    let mut dbs = Vec::new();
    for repo in &a.repos {
        let url = format!("{archive}/repos/{archive_snapshot}/{repo}/os/{arch}/{repo}.db");
        match client.get_small(&url, MAX_DB)? {
            Some(bytes) => dbs.push(RepoDb {
                repo: repo.clone(),
                db: syncdb::read(&url, repo, &bytes)?,
            }),
            None => warnings.push(format!(
                "{url}: not found: the snapshot has no {repo} repository, its packages are pinned from /packages/ (give --snapshot if the image was built from another day's snapshot)"
            )),
        }
    }

    let results = repro_lock::archive::parallel(a.jobs, &img.packages, |p| {
        pin_package(&client, &store, &archive, &dbs, p)
    });
    let mut packages = Vec::new();
    let mut problems = Vec::new();
    for r in results {
        let pinned = r?;
        problems.extend(pinned.problems);
        packages.push(pinned.pin);
    }
    packages.sort_by(|x, y| x.name.cmp(&y.name));
    repro_lock::archive::finish(&store);

    let lock = Lock {
        image: img.pin.clone(),
        recipe: Recipe {
            name: repro_lock::RECIPE_NAME.into(),
            source_date_epoch,
            archive: archive.clone(),
            archive_snapshot,
            repos: a.repos.clone(),
            arch: arch.into(),
            group,
            revision,
            image_version,
            image_title,
            image_builder,
            tar: "gnu-pax".into(),
            zstd_level: 8,
            zstd_window_log: 27,
            derived,
            given,
        },
        packages,
    };
    let archived = repro_lock::archive_dir(&a.output);
    if problems.is_empty() {
        let blobs = Store::open_or_create(&archived)
            .with_context(|| format!("creating {}", archived.display()))?;
        for b in &img.blobs {
            blobs.put_bytes(b)?;
        }
        blobs.finish();
        lock.save(&a.output)?;
    }
    Ok(Made {
        lock,
        archived,
        problems,
        warnings,
    })
}

fn print_human(out: &mut dyn Write, lock: &Lock, r: &LockReport) -> std::io::Result<()> {
    let rc = &lock.recipe;
    writeln!(out, "Image:      {}", lock.image.reference)?;
    writeln!(out, "Manifest:   {}", lock.image.digest)?;
    let how = |p: Param| -> String {
        rc.derived
            .iter()
            .find(|(q, _)| *q == p)
            .map(|(_, h)| format!("derived: {h}"))
            .or_else(|| {
                rc.given
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, h)| format!("given: {h}"))
            })
            .unwrap_or_else(|| "not found".into())
    };
    writeln!(
        out,
        "SDE:        {} ({}) — {}",
        rc.source_date_epoch,
        repro_lock::types::rfc3339(rc.source_date_epoch),
        how(Param::SourceDateEpoch)
    )?;
    writeln!(
        out,
        "Snapshot:   {} — {}",
        rc.archive_snapshot,
        how(Param::ArchiveSnapshot)
    )?;
    writeln!(
        out,
        "Group:      {} — {}",
        rc.group.join(" "),
        how(Param::Group)
    )?;
    writeln!(
        out,
        "Revision:   {} — {}",
        rc.revision.as_deref().unwrap_or("-"),
        how(Param::Revision)
    )?;
    let from_snapshot = lock
        .packages
        .iter()
        .filter(|p| p.pinned_from == PinnedFrom::Snapshot)
        .count();
    writeln!(
        out,
        "Packages:   {} pinned ({from_snapshot} from the snapshot, {} from /packages/)",
        lock.packages.len(),
        lock.packages.len() - from_snapshot
    )?;
    for p in &lock.packages {
        writeln!(
            out,
            "  {:<24} {:<20} {:<6} {}",
            p.name,
            p.version,
            p.repo.as_deref().unwrap_or("-"),
            p.sha256
        )?;
    }
    if r.problems.is_empty() {
        writeln!(
            out,
            "Proof:      every .MTREE equals the local db mtree, every .PKGINFO matches"
        )?;
        writeln!(
            out,
            "Lock:       {} (image bytes in {})",
            r.lock, r.archived
        )?;
    }
    Ok(())
}
