//! `repro-image verify IMAGE`: lock (unless `--lock`), fetch, build, then compare the
//! original with the rebuild level by level (DESIGN.md "Verification levels"): evidence,
//! tree, tar, blob, config, manifest, index; end with the accounting headline.
//!
//! Each original layer is read once: its tar goes into the merged tree while the
//! decompressed bytes are hashed and the compressed framing checked (repro_verify::blob),
//! which gives the tar level (diff_ids) and shows a compressed blob equivalent to the
//! reproduced tar without a second read. The decisions are repro_verify's; the diff engine
//! (repro_diff) gives the file-level differences. `--json`: docs/verify-json.md.
//!
//! Exit status: 0 every level the recipe promises holds; 1 something does not hold (also: a
//! package not proven to be the installed one, a fetched file that does not match the
//! lock); 2 error.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use repro_build::{BuildError, BuildOptions};
use repro_diff::Options as DiffOptions;
use repro_inventory::TreeView;
use repro_lock::{Lock, Snapshot};
use repro_oci::{Blob, ConfigDoc, Digest, ManifestDoc, TopLevel};
use repro_rootfs::{Applier, Tree};
use repro_transport::ImageSource;
use repro_verify::blob::{LayerRead, read_layer};
use repro_verify::headline::Headline;
use repro_verify::levels::{self, BlobLayer, ManifestLayer, TarLayer};
use repro_verify::{FileDifference, Level, LevelReport, Status, VerifyError};
use serde::Serialize;

use crate::Global;

#[derive(Args)]
pub struct VerifyArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], or name[:tag][@digest]).
    image: String,
    /// Base URL of the Arch Linux Archive to pin the packages from (needed without --lock).
    #[arg(long, value_name = "URL")]
    archive: Option<String>,
    /// Verify from this lock instead of making one (its packages are fetched if missing).
    #[arg(long, value_name = "FILE", conflicts_with = "archive")]
    lock: Option<PathBuf>,
    /// A rebuilderd base URL for the evidence level; repeat for several.
    #[arg(short = 'r', long = "rebuilder", value_name = "URL")]
    rebuilders: Vec<String>,
    /// GOOD results needed from different rebuilders for a package to count as reproduced.
    #[arg(long, default_value_t = 1, value_name = "K")]
    quorum: usize,
    /// Keep the lock, the rebuilt tree and every artefact in DIR (created; must be empty).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Archive mirror base URLs the packages are fetched from, in order [default: the
    /// lock's archive].
    #[arg(long = "mirror", value_name = "URL")]
    mirrors: Vec<String>,
    /// OpenPGP keyring that must have signed every package (checked at the snapshot date).
    #[arg(long, value_name = "FILE")]
    keyring: Option<PathBuf>,
    /// SOURCE_DATE_EPOCH for the lock [default: derived from the image].
    #[arg(long, value_name = "N", conflicts_with = "lock")]
    source_date_epoch: Option<i64>,
    /// Archive snapshot for the lock [default: the day before SOURCE_DATE_EPOCH].
    #[arg(long, value_name = "YYYY/MM/DD", conflicts_with = "lock")]
    snapshot: Option<Snapshot>,
    /// Parallel downloads.
    #[arg(long, default_value_t = 4, value_name = "N")]
    jobs: usize,
}

/// The original image as read: documents and, per layer, what one pass found.
struct Original {
    reference: String,
    index: Option<Blob>,
    manifest: ManifestDoc,
    config: ConfigDoc,
    tree: Tree,
    layers: Vec<LayerRead>,
}

/// The rebuild: its layer tars and, when the build wrote an `oci:` layout, its documents.
struct Rebuilt {
    /// (file, digest of the tar) per layer.
    tars: Vec<(PathBuf, Digest)>,
    /// The manifest and config of DIR/oci.
    docs: Option<(ManifestDoc, ConfigDoc)>,
    /// (media type, digest, size) of each rebuilt layer blob: the `oci:` layout's, or
    /// `repro.tar.zst` for a bare rootfs.
    blobs: Vec<(String, Digest, u64)>,
    tree: Tree,
}

#[derive(Serialize)]
struct ImageInfo {
    reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    index_digest: Option<String>,
    manifest_digest: String,
    config_digest: String,
    layers: Vec<String>,
}

#[derive(Serialize)]
struct LockInfo {
    file: String,
    made: bool,
    source_date_epoch: i64,
    archive_snapshot: String,
    packages: usize,
}

#[derive(Serialize)]
struct BuildInfo {
    tar: repro_build::Artifact,
    zst: repro_build::Artifact,
    layers: Vec<repro_build::Artifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oci: Option<String>,
    libzstd: String,
    pacman: String,
    /// How the image step got root's powers (when the build made the image).
    #[serde(skip_serializing_if = "Option::is_none")]
    image_step: Option<repro_build::image::Isolation>,
}

#[derive(Serialize)]
struct AccountingInfo {
    line: String,
    bytes_line: String,
    #[serde(flatten)]
    counts: Headline,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    image: ImageInfo,
    lock: LockInfo,
    build: BuildInfo,
    levels: Vec<LevelReport>,
    accounting: AccountingInfo,
    holds: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<String>,
    warnings: Vec<String>,
}

fn say(g: &Global, m: &str) {
    if !g.quiet {
        eprintln!("repro-image: verify: {m}");
    }
}

pub fn run(g: &Global, a: &VerifyArgs) -> Result<ExitCode> {
    if a.lock.is_none() && a.archive.is_none() {
        bail!("give --archive URL (to lock the image) or --lock FILE");
    }
    // Refused before anything is built.
    let rebuilders = rebuilder_urls(a);
    if !rebuilders.is_empty() && (a.quorum == 0 || a.quorum > rebuilders.len()) {
        bail!(
            "--quorum {}: must be between 1 and the number of rebuilders ({})",
            a.quorum,
            rebuilders.len()
        );
    }
    // Where everything goes: --keep DIR, or a temporary directory removed at the end.
    let (work, _tmp) = match &a.keep {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                bail!("--keep {}: not empty", d.display());
            }
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            (std::fs::canonicalize(d)?, None)
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("repro-image-verify.")
                .tempdir()
                .context("creating a work directory")?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let mut warnings = Vec::new();

    // 1. The lock.
    let (lock, lock_file, made) = match &a.lock {
        Some(f) => (Lock::load(f)?, f.clone(), false),
        None => {
            say(
                g,
                "locking: pinning every package of the image from the archive",
            );
            let out = work.join("repro-image.lock");
            let made = crate::lock::make(
                g,
                &crate::lock::LockArgs {
                    image: a.image.clone(),
                    archive: a.archive.clone().unwrap_or_default(),
                    output: out.clone(),
                    source_date_epoch: a.source_date_epoch,
                    snapshot: a.snapshot,
                    revision: None,
                    group: Vec::new(),
                    image_version: None,
                    image_title: None,
                    repos: vec!["core".into(), "extra".into()],
                    jobs: a.jobs,
                },
            )?;
            warnings.extend(made.warnings);
            if !made.problems.is_empty() {
                for p in &made.problems {
                    eprintln!("repro-image: {p}");
                }
                eprintln!(
                    "repro-image: verify: {} package(s) not proven to be the installed ones: nothing to rebuild from",
                    made.problems.len()
                );
                return Ok(ExitCode::from(1));
            }
            (made.lock, out, true)
        }
    };

    // 2. Fetch (what the lock step downloaded is already in the store).
    let store = g
        .store()?
        .context("verify keeps the packages in the content store: drop --no-cache")?;
    say(
        g,
        &format!("fetching {} pinned packages", lock.packages.len()),
    );
    let mirrors = if a.mirrors.is_empty() {
        vec![lock.recipe.archive.clone()]
    } else {
        a.mirrors.clone()
    };
    for m in &mirrors {
        repro_lock::types::check_url(m).map_err(|e| anyhow::anyhow!("--mirror: {e}"))?;
    }
    let client = repro_lock::archive::Client::new(repro_lock::archive::ClientOptions {
        timeout: std::time::Duration::from_secs(g.timeout.max(1)),
        attempts: g.retries.max(1),
        ..Default::default()
    });
    let fetched = crate::fetch::fetch_packages(
        &client,
        &store,
        &lock,
        &mirrors,
        a.keyring.as_deref(),
        a.jobs,
        &|_| {},
    );
    repro_lock::archive::finish(&store);
    let failed: Vec<_> = fetched.iter().filter(|(r, _)| r.error.is_some()).collect();
    if !failed.is_empty() {
        for (r, _) in &failed {
            eprintln!(
                "repro-image: error: {}",
                r.error.as_deref().unwrap_or_default()
            );
        }
        let mismatch = failed.iter().any(|(_, m)| *m);
        return Ok(ExitCode::from(if mismatch { 1 } else { 2 }));
    }

    // 3. Build.
    say(g, "building from the pins (the recipe, hermetic)");
    let progress = |m: &str| say(g, m);
    let mut opts = BuildOptions::new(work.join("build"));
    opts.keep_builddir = a.keep.is_some();
    if let Some(k) = &a.keyring {
        opts.keyrings = vec![k.clone()];
    }
    opts.progress = Some(&progress);
    let build = match repro_build::build(&lock, &store, &opts) {
        Ok(r) => r,
        Err(e @ BuildError::Tampered(_)) => {
            eprintln!("repro-image: error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };

    // 4. Read both sides.
    say(g, "reading the original image");
    let orig = read_original(g, &a.image)?;
    if lock.image.digest != orig.manifest.raw.digest {
        warnings.push(format!(
            "the lock was made from manifest {}, the image is {}",
            lock.image.digest, orig.manifest.raw.digest
        ));
    }
    say(g, "reading the rebuild");
    let bare = matches!(
        crate::parse_image(&a.image)?,
        repro_oci::ImageRef::Rootfs { .. }
    );
    let rebuilt = read_rebuilt(&build, bare, &g.platform)?;

    // 5. Compare.
    say(g, "comparing level by level");
    let inv = repro_inventory::read(&TreeView::new(&orig.tree, orig.reference.clone()))?;
    let acc = repro_accounting::account(&orig.tree, &inv);
    let annotate = |mut d: FileDifference| {
        if let Some(e) = d.path.as_deref().and_then(|p| acc.get(p)) {
            d.packages = e.packages.clone();
            d.class = Some(e.class.as_str());
        }
        d
    };
    let mut levels_out = Vec::new();
    levels_out.push(if a.rebuilders.is_empty() {
        LevelReport::not_checked(
            Level::Evidence,
            "no rebuilder given (-r URL): package evidence not checked",
        )
    } else {
        say(g, &format!("asking {} rebuilders", a.rebuilders.len()));
        evidence(g, a, &lock, &mut warnings)?
    });

    // tree
    let full = repro_diff::compare_trees(&orig.tree, &rebuilt.tree, &DiffOptions::default());
    let timeless = DiffOptions {
        ignore_timestamps: true,
        ..DiffOptions::default()
    };
    let mut content = repro_diff::compare_trees(&orig.tree, &rebuilt.tree, &timeless);
    let mut install_dates = BTreeSet::new();
    content.retain(|d| {
        let Some(p) = d.path.as_deref() else {
            return true;
        };
        if !levels::is_local_desc(p) || !(d.field == "sha256" || d.field == "size") {
            return true;
        }
        let same = match (orig.tree.content(p), rebuilt.tree.content(p)) {
            (Some(x), Some(y)) => levels::strip_install_date(x) == levels::strip_install_date(y),
            _ => false,
        };
        if same {
            install_dates.insert(p.to_string());
        }
        !same
    });
    let differing: BTreeSet<Vec<u8>> = content
        .iter()
        .filter_map(|d| d.path.as_ref().map(|p| p.as_bytes().to_vec()))
        .collect();
    let install_dates: Vec<String> = install_dates.into_iter().collect();
    levels_out.push(levels::tree(
        orig.tree.entries.keys().filter(|p| !p.is_root()).count(),
        full.iter()
            .map(FileDifference::from_diff)
            .map(annotate)
            .collect(),
        content
            .iter()
            .map(FileDifference::from_diff)
            .map(annotate)
            .collect(),
        &install_dates,
    ));

    // tar
    let diff_ids: Vec<Digest> = orig
        .config
        .config
        .rootfs()
        .diff_ids()
        .iter()
        .filter_map(|d| d.parse::<Digest>().ok())
        .collect();
    let tar_layers: Vec<TarLayer> = orig
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| TarLayer {
            diff_id: diff_ids.get(i).cloned(),
            decompressed: l.decompressed.clone(),
            rebuilt: rebuilt.tars.get(i).map(|(_, d)| d.clone()),
        })
        .collect();
    let mut layer_diffs = Vec::new();
    for (i, t) in tar_layers.iter().enumerate() {
        let Some((file, d)) = rebuilt.tars.get(i) else {
            continue;
        };
        if *d == t.decompressed {
            continue;
        }
        say(g, &format!("layer {}: comparing entry by entry", i + 1));
        layer_diffs.extend(
            layer_differences(g, &a.image, &orig, i, file)?
                .into_iter()
                .map(annotate),
        );
    }
    levels_out.push(levels::tar(&tar_layers, rebuilt.tars.len(), layer_diffs));

    // blob
    let rebuilt_layer_descs = &rebuilt.blobs;
    let blob_layers: Vec<BlobLayer> = orig
        .manifest
        .manifest
        .layers()
        .iter()
        .zip(&orig.layers)
        .enumerate()
        .map(|(i, (desc, read))| BlobLayer {
            digest: desc.digest().clone(),
            media_type: desc.media_type().to_string(),
            read: read.clone(),
            rebuilt_blob: rebuilt_layer_descs
                .get(i)
                .map(|(_, d, _)| d.clone())
                .or_else(|| rebuilt.tars.get(i).map(|(_, d)| d.clone())),
            rebuilt_tar: rebuilt.tars.get(i).map(|(_, d)| d.clone()),
        })
        .collect();
    let blob_level = levels::blob(&blob_layers);
    let blob_holds: Vec<bool> = blob_layers.iter().map(|b| b.judge().0.holds()).collect();
    levels_out.push(blob_level);

    // config and manifest
    let rebuilt_config = rebuilt.docs.as_ref().map(|(_, c)| c);
    let config_fields = match rebuilt_config {
        Some(c) => repro_diff::docs::compare_configs(&orig.config, c, &DiffOptions::default())
            .iter()
            .filter(|d| d.field != "digest")
            .map(FileDifference::from_diff)
            .collect(),
        None => Vec::new(),
    };
    if bare {
        levels_out.push(LevelReport::not_checked(
            Level::Config,
            "a bare rootfs tarball: no image config to compare",
        ));
    } else {
        levels_out.push(levels::config(
            &orig.config.raw,
            rebuilt_config.map(|c| &c.raw),
            config_fields,
        ));
    }
    let rebuilt_manifest = rebuilt.docs.as_ref().map(|(m, _)| m);
    let manifest_fields = match rebuilt_manifest {
        Some(m) => repro_diff::docs::compare_manifests(&orig.manifest, m, &DiffOptions::default())
            .iter()
            .filter(|d| d.field != "digest")
            .map(FileDifference::from_diff)
            .collect(),
        None => Vec::new(),
    };
    let manifest_layers: Vec<ManifestLayer> = blob_layers
        .iter()
        .zip(&blob_holds)
        .zip(rebuilt_layer_descs)
        .map(|((b, holds), ours)| ManifestLayer {
            rebuilt: ours.clone(),
            original: (
                b.media_type.clone(),
                b.digest.clone(),
                orig.manifest
                    .manifest
                    .layers()
                    .iter()
                    .find(|l| *l.digest() == b.digest)
                    .map_or(0, |l| l.size()),
            ),
            blob_holds: *holds,
        })
        .collect();
    if bare {
        levels_out.push(LevelReport::not_checked(
            Level::Manifest,
            "a bare rootfs tarball: no image manifest to compare",
        ));
    } else {
        levels_out.push(levels::manifest(
            &orig.manifest.raw,
            rebuilt_manifest.map(|m| &m.raw),
            &manifest_layers,
            manifest_fields,
        ));
    }
    levels_out.push(levels::index(orig.index.as_ref(), None));

    // accounting
    let headline = repro_verify::headline::headline(&acc, &differing);
    let holds = repro_verify::holds(&levels_out);
    let report = Report {
        schema: repro_verify::SCHEMA,
        image: ImageInfo {
            reference: orig.reference.clone(),
            index_digest: orig.index.as_ref().map(|b| b.digest.to_string()),
            manifest_digest: orig.manifest.raw.digest.to_string(),
            config_digest: orig.config.raw.digest.to_string(),
            layers: orig
                .manifest
                .manifest
                .layers()
                .iter()
                .map(|l| l.digest().to_string())
                .collect(),
        },
        lock: LockInfo {
            file: lock_file.display().to_string(),
            made,
            source_date_epoch: lock.recipe.source_date_epoch,
            archive_snapshot: lock.recipe.archive_snapshot.to_string(),
            packages: lock.packages.len(),
        },
        build: BuildInfo {
            tar: build.tar.clone(),
            zst: build.zst.clone(),
            layers: build
                .image
                .as_ref()
                .map(|i| i.layers.clone())
                .unwrap_or_default(),
            oci: rebuilt
                .docs
                .as_ref()
                .map(|_| build_oci_dir(&build).display().to_string()),
            libzstd: build.tools.libzstd.clone(),
            pacman: build.tools.pacman.clone(),
            image_step: build.image.as_ref().map(|i| i.isolation),
        },
        levels: levels_out,
        accounting: AccountingInfo {
            line: headline.line(),
            bytes_line: headline.bytes_line(),
            counts: headline,
        },
        holds,
        kept: a.keep.as_ref().map(|_| work.display().to_string()),
        warnings,
    };
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &report)?;
    }
    out.flush()?;
    if !g.quiet {
        for w in &report.warnings {
            eprintln!("repro-image: warning: {w}");
        }
    }
    Ok(if holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `-r` URLs (commas also separate), normalised.
fn rebuilder_urls(a: &VerifyArgs) -> Vec<String> {
    a.rebuilders
        .iter()
        .flat_map(|r| r.split(','))
        .map(repro_rebuilderd::config::normalize_url)
        .filter(|u| !u.is_empty())
        .collect()
}

/// The evidence level: what each rebuilder says about each pinned package (exact name,
/// version, architecture), each GOOD counting only with an attestation signed by the
/// rebuilder's key (pinned in rebuilders.toml, else learned on first use) for the pinned
/// file and sha256, decided with the quorum.
fn evidence(
    g: &Global,
    a: &VerifyArgs,
    lock: &Lock,
    warnings: &mut Vec<String>,
) -> Result<LevelReport> {
    use repro_rebuilderd::assess::{self, AssessOptions, FileFacts};
    use repro_rebuilderd::quorum::Pkg;
    let urls = rebuilder_urls(a);
    let clients = crate::status::rebuilder_clients(g, &urls)?;
    let filter = repro_rebuilderd::Filter {
        distribution: Some("archlinux".into()),
        ..Default::default()
    };
    let gathered = assess::gather(&clients, &filter)?;
    let pkgs: Vec<Pkg> = lock
        .packages
        .iter()
        .map(|p| Pkg::new(&p.name, &p.version, &p.arch))
        .collect();
    let files: Vec<Option<FileFacts>> = lock
        .packages
        .iter()
        .map(|p| {
            Some(FileFacts {
                filename: p.filename.clone(),
                sha256: Some(p.sha256.as_str().to_string()),
            })
        })
        .collect();
    let config = match crate::status::default_config() {
        Some(p) => repro_rebuilderd::config::Config::load(&p)?.unwrap_or_default(),
        None => repro_rebuilderd::config::Config::default(),
    };
    let pinned = |url: &str| config.pinned(url).map(<[_]>::to_vec);
    let mut known = match crate::status::default_known_keys() {
        Some(p) => Some(repro_rebuilderd::keys::KnownKeys::load(&p)?),
        None => None,
    };
    let done = assess::assess(
        &clients,
        gathered,
        &pkgs,
        &files,
        &pinned,
        known.as_mut(),
        &AssessOptions {
            quorum: a.quorum,
            attestations: true,
            require_attestation: true,
            jobs: 8,
        },
    )?;
    if let Some(kk) = &known
        && let Err(e) = kk.save()
    {
        warnings.push(format!("keys not remembered: {e}"));
    }
    warnings.extend(done.warnings);
    Ok(levels::evidence(&done.statuses, a.quorum, urls.len(), true))
}

fn build_oci_dir(b: &repro_build::BuildReport) -> PathBuf {
    b.tar
        .file
        .parent()
        .map_or_else(|| PathBuf::from("oci"), |p| p.join("oci"))
}

fn tree_applier() -> Applier {
    Applier::with_capture(repro_inventory::capture())
}

/// Apply one layer stream to `applier`, mapping its error to name the input.
fn apply(applier: &mut Applier, r: &mut dyn std::io::Read, what: &str) -> Result<(), VerifyError> {
    applier.apply_layer(r).map_err(|e| VerifyError::Layer {
        input: what.to_string(),
        reason: e.to_string(),
    })
}

fn read_original(g: &Global, image: &str) -> Result<Original> {
    let r = crate::parse_image(image)?;
    let mut src = g.open_source(&r)?;
    let reference = src.describe();
    let top = src.top_level()?;
    let index = match &top {
        TopLevel::Index(i) => Some(i.raw.clone()),
        TopLevel::Manifest(_) => None,
    };
    let manifest = repro_diff::image::resolve(src.as_mut(), &top, &g.platform)?;
    let config = repro_transport::read_config(src.as_mut(), &manifest.manifest)?;
    let mut applier = tree_applier();
    let mut layers = Vec::new();
    for (i, l) in manifest.manifest.layers().iter().enumerate() {
        let what = format!("{reference} layer {} ({})", i + 1, l.digest());
        let blob = src.blob(l.digest(), Some(l.size()))?;
        layers.push(read_layer(blob, &what, |r| apply(&mut applier, r, &what))?);
    }
    let tree = applier.finish();
    Ok(Original {
        reference,
        index,
        manifest,
        config,
        tree,
        layers,
    })
}

/// The rebuild as layers. For an image, the build's image layers (and its `oci:` layout's
/// documents); for a bare rootfs tarball (`rootfs:`), the one layer is `repro.tar` and its
/// blob `repro.tar.zst`.
fn read_rebuilt(
    build: &repro_build::BuildReport,
    bare: bool,
    platform: &repro_oci::Platform,
) -> Result<Rebuilt> {
    let files: Vec<&repro_build::Artifact> = match (&build.image, bare) {
        (_, true) => vec![&build.tar],
        (Some(image), false) => image.layers.iter().collect(),
        (None, false) => bail!(
            "the build wrote no image layers (the lock pins no image version): nothing to compare with"
        ),
    };
    let mut applier = tree_applier();
    let mut tars = Vec::new();
    for l in files {
        let what = l.file.display().to_string();
        let f = std::fs::File::open(&l.file).with_context(|| format!("opening {what}"))?;
        let read = read_layer(f, &what, |r| apply(&mut applier, r, &what))?;
        let digest: Digest = l
            .digest
            .parse()
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        // The build's own digest and what was read must agree (the file was not changed).
        anyhow::ensure!(
            read.decompressed == digest,
            "{what}: reads as {}, the build reported {digest}",
            read.decompressed
        );
        tars.push((l.file.clone(), digest));
    }
    if bare {
        let zst: Digest = build
            .zst
            .digest
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", build.zst.file.display()))?;
        return Ok(Rebuilt {
            tars,
            docs: None,
            blobs: vec![(
                repro_oci::media::OCI_LAYER_ZSTD.to_string(),
                zst,
                build.zst.size,
            )],
            tree: applier.finish(),
        });
    }
    let oci = build_oci_dir(build);
    let docs = if oci.join("index.json").is_file() {
        let mut src = repro_transport::oci::OciSource::open(&oci, None)?;
        let top = src.top_level()?;
        let m = repro_diff::image::resolve(&mut src, &top, platform)?;
        let c = repro_transport::read_config(&mut src, &m.manifest)?;
        Some((m, c))
    } else {
        None
    };
    let blobs = match &docs {
        Some((m, _)) => m
            .manifest
            .layers()
            .iter()
            .map(|l| (l.media_type().to_string(), l.digest().clone(), l.size()))
            .collect(),
        None => Vec::new(),
    };
    Ok(Rebuilt {
        tars,
        docs,
        blobs,
        tree: applier.finish(),
    })
}

/// The entry-level differences of original layer `i` against the rebuilt layer tar.
fn layer_differences(
    g: &Global,
    image: &str,
    orig: &Original,
    i: usize,
    rebuilt: &Path,
) -> Result<Vec<FileDifference>> {
    let r = crate::parse_image(image)?;
    let mut src = g.open_source(&r)?;
    let desc = &orig.manifest.manifest.layers()[i];
    let blob = src.blob(desc.digest(), Some(desc.size()))?;
    let file =
        std::fs::File::open(rebuilt).with_context(|| format!("opening {}", rebuilt.display()))?;
    let what_a = format!("{} layer {}", orig.reference, i + 1);
    let what_b = rebuilt.display().to_string();
    let d = repro_diff::layers::compare_layer_blobs(
        blob,
        &what_a,
        Box::new(file),
        &what_b,
        Some(i),
        &DiffOptions::default(),
    )?;
    Ok(d.differences
        .iter()
        .map(FileDifference::from_diff)
        .collect())
}

/// How many differences the human form lists per level.
const SHOW: usize = 20;

fn print_human(out: &mut dyn Write, r: &Report) -> std::io::Result<()> {
    writeln!(out, "Image:    {}", r.image.reference)?;
    writeln!(out, "Manifest: {}", r.image.manifest_digest)?;
    writeln!(
        out,
        "Lock:     {} ({} packages, snapshot {}, SOURCE_DATE_EPOCH {}{})",
        r.lock.file,
        r.lock.packages,
        r.lock.archive_snapshot,
        r.lock.source_date_epoch,
        if r.lock.made { ", made now" } else { "" }
    )?;
    writeln!(out, "Rebuilt:  {}  repro.tar", r.build.tar.digest)?;
    writeln!(
        out,
        "          {}  repro.tar.zst (libzstd {})",
        r.build.zst.digest, r.build.libzstd
    )?;
    writeln!(out)?;
    for l in &r.levels {
        let mark = match (l.status, l.promised) {
            (s, _) if s.holds() => "ok ",
            (Status::NotChecked, false) => " - ",
            (_, false) => " ~ ",
            _ => "!! ",
        };
        writeln!(
            out,
            "{mark}{:<9} {:<11} {}",
            l.level.as_str(),
            l.status.as_str(),
            l.why
        )?;
        for s in &l.shown {
            writeln!(out, "               {s}")?;
        }
        if !l.status.holds() {
            for d in l.differences.iter().take(SHOW) {
                writeln!(
                    out,
                    "               {}: {} -> {}",
                    d.name(),
                    d.original.as_deref().unwrap_or("(absent)"),
                    d.rebuilt.as_deref().unwrap_or("(absent)")
                )?;
                if let Some(diff) = &d.diff {
                    for line in diff.lines() {
                        writeln!(out, "                 {line}")?;
                    }
                }
            }
            let more = l.differences.len().saturating_sub(SHOW) + l.more_differences;
            if more > 0 {
                writeln!(out, "               … and {more} more (--json lists them)")?;
            }
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", r.accounting.line)?;
    writeln!(out, "{}", r.accounting.bytes_line)?;
    match repro_verify::first_failure(&r.levels) {
        None => {
            let promised: Vec<&str> = r
                .levels
                .iter()
                .filter(|l| l.promised)
                .map(|l| l.level.as_str())
                .collect();
            writeln!(
                out,
                "HOLDS: every level the recipe promises matches ({})",
                promised.join(", ")
            )?
        }
        Some(l) => writeln!(
            out,
            "DOES NOT HOLD: the {} level {} ({})",
            l.level.as_str(),
            l.status.as_str(),
            l.why
        )?,
    }
    if let Some(k) = &r.kept {
        writeln!(out, "Kept:     {k}")?;
    }
    Ok(())
}
