//! Rebuild the archlinux-docker `repro` rootfs from a lock's pins alone.
//!
//! - [`plan`]: the pure part: pacman.conf texts, mirrorlists, the environment, every
//!   command line, derived from the lock, the recipe's files and the tool versions.
//! - [`packages`]: the pinned files, verified against the lock while they are copied from
//!   the content store into local `file://` repositories (`repo-add`), so that the recipe's
//!   `pacman -Sy … base` installs exactly the pins with no network.
//! - [`exec`]: the edge that writes files and runs commands (`env -i`, fixed `TZ`, `LANG`,
//!   `umask`, `fakechroot -- fakeroot --`, libfaketime for pacman < 7.1).
//! - [`build`]: all of it, then `repro.tar` written by repro-tar's GNU tar writer (owners
//!   as the recipe's tar sees them in its own fakeroot session: all 0:0; the tree is not
//!   modified) and `repro.tar.zst` by the recipe's zstd step on the system libzstd;
//! - [`image`]: the image's two layers, then [`podman`]'s config and manifest bytes and an
//!   `oci:` layout in `out/oci` (uncompressed layers, tagged with the image version).
//!
//! Compressed blobs that cannot be replayed (skopeo's gzip/zstd) are shown equivalent by
//! the verify step (`repro_verify::blob`), in the same pass that reads their tree.
//!
//! `build` runs as root or not: the rootfs is installed under `fakechroot -- fakeroot` as
//! the recipe does either way, and the image step gets root's powers over its tree from a
//! user namespace when this process lacks them ([`image::Isolation`]), as rootless podman.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use repro_lock::Lock;
use repro_store::Store;
use repro_tar::Exclude;
use repro_tar::gnu::GnuOptions;
use repro_tar::pipeline::{self, Compression, Outputs};
use repro_tar::zst::ZstdParams;

mod error;
pub mod exec;
pub mod image;
pub mod packages;
pub mod plan;
pub mod podman;
pub mod recipe;

use error::io_at;
pub use error::{BuildError, Tampered};
pub use recipe::RecipeFiles;

/// Upstream's Archive, written into the image's mirrorlist.
pub const PUBLISHED_ARCHIVE: &str = "https://archive.archlinux.org";

/// The output file stem: archlinux-docker names the tarball after the image.
pub const STEM: &str = "repro";

/// The buildah of Debian 12's podman 4.3, for a lock that does not name its image builder.
pub const BUILDAH_VERSION: &str = "1.28.2";

/// The title word of the recipe's images (`Arch Linux <word> Image`).
fn recipe_title(recipe: &str) -> Result<&'static str, BuildError> {
    match recipe {
        "archlinux-docker-repro" => Ok("Repro"),
        other => Err(BuildError::Unsupported(format!(
            "recipe {other:?}: the image config is written for archlinux-docker-repro only"
        ))),
    }
}

pub struct BuildOptions<'a> {
    /// Output directory; the build works in `out/work`.
    pub out: PathBuf,
    /// Keep `out/work` (the built tree in `out/work/build`).
    pub keep_builddir: bool,
    /// OpenPGP keyring(s) the install trusts; empty: the keyrings the pinned packages ship
    /// (`usr/share/pacman/keyrings/*.gpg`).
    pub keyrings: Vec<PathBuf>,
    pub recipe: RecipeFiles,
    pub published_archive: String,
    /// Also write the image (`out/layers/layer-N.tar`, config, manifest, the `oci:` layout
    /// `out/oci`) when the lock pins an image version.
    pub image: bool,
    /// The word of the title label `Arch Linux <word> Image` (the Dockerfile template's
    /// TEMPLATE_TITLE); `None`: the lock's `image_title`, else the recipe's (`Repro`).
    pub image_title: Option<String>,
    /// Progress lines (`None`: silent).
    pub progress: Option<&'a dyn Fn(&str)>,
}

impl BuildOptions<'_> {
    pub fn new(out: PathBuf) -> Self {
        BuildOptions {
            out,
            keep_builddir: false,
            keyrings: Vec::new(),
            recipe: RecipeFiles::builtin(),
            published_archive: PUBLISHED_ARCHIVE.to_string(),
            image: true,
            image_title: None,
            progress: None,
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Tools {
    pub pacman: String,
    pub fakechroot: String,
    pub fakeroot: String,
    /// The libzstd `repro.tar.zst` was compressed with (another version: other bytes).
    pub libzstd: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Artifact {
    pub file: PathBuf,
    /// `sha256:<hex>`
    pub digest: String,
    pub size: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildReport {
    pub source_date_epoch: i64,
    pub snapshot: String,
    pub group: Vec<String>,
    pub packages: usize,
    pub tools: Tools,
    /// How `%INSTALLDATE%` became SOURCE_DATE_EPOCH: `faketime` (pacman < 7.1) or `pacman`.
    pub install_date: &'static str,
    pub hooks_masked: Vec<String>,
    /// Where the trusted keys came from.
    pub keyrings: Vec<String>,
    /// What wrote the tarball.
    pub tar_writer: &'static str,
    pub tar: Artifact,
    pub zst: Artifact,
    pub sha256_file: PathBuf,
    pub log: PathBuf,
    /// The image's layers (when the lock pins an image version), compared with the lock's
    /// diff_ids.
    pub image: Option<image::ImageLayers>,
    /// The built tree, when kept.
    pub builddir: Option<PathBuf>,
}

fn first_line(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// libfaketime, where Debian and others install it.
fn faketime_lib() -> Option<PathBuf> {
    let triplet = format!("{}-linux-gnu", std::env::consts::ARCH);
    [
        format!("/usr/lib/{triplet}/faketime/libfaketime.so.1"),
        "/usr/lib/faketime/libfaketime.so.1".to_string(),
        "/usr/lib64/faketime/libfaketime.so.1".to_string(),
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Build the rootfs tarball of `lock` from the packages in `store`.
pub fn build(lock: &Lock, store: &Store, opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    let say = |m: &str| {
        if let Some(p) = opts.progress {
            p(m)
        }
    };
    // Before anything is built: a rootless image step needs a user namespace.
    if opts.image && lock.recipe.image_version.is_some() {
        image::Isolation::of_this_process().check()?;
    }
    let out = if opts.out.is_absolute() {
        opts.out.clone()
    } else {
        std::env::current_dir()
            .map_err(io_at(&opts.out))?
            .join(&opts.out)
    };
    let layout = plan::Layout::new(&out);
    exec::mkdir_p(&out)?;
    // A build starts from nothing: no earlier work tree or outputs survive it.
    if layout.work.exists() {
        std::fs::remove_dir_all(&layout.work).map_err(io_at(&layout.work))?;
    }
    let tar_path = out.join(format!("{STEM}.tar"));
    let zst_path = out.join(format!("{STEM}.tar.zst"));
    let sha_path = out.join(format!("{STEM}.tar.zst.SHA256"));
    for p in [&tar_path, &zst_path, &sha_path] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(p)(e)),
            _ => {}
        }
    }
    for d in [out.join("layers"), out.join("oci")] {
        if d.exists() {
            std::fs::remove_dir_all(&d).map_err(io_at(&d))?;
        }
    }
    exec::mkdir_p(&layout.work)?;
    let mut log = exec::Log::create(&layout.log)?;
    let result = run_build(lock, store, opts, &layout, &mut log, &say);
    // A failed build leaves no half-made tree behind (unless asked to keep it).
    if result.is_err() && !opts.keep_builddir {
        let _ = std::fs::remove_dir_all(&layout.work);
    }
    result
}

fn run_build(
    lock: &Lock,
    store: &Store,
    opts: &BuildOptions,
    layout: &plan::Layout,
    log: &mut exec::Log,
    say: &dyn Fn(&str),
) -> Result<BuildReport, BuildError> {
    let out = &layout.out;
    let tar_path = out.join(format!("{STEM}.tar"));
    let zst_path = out.join(format!("{STEM}.tar.zst"));
    let sha_path = out.join(format!("{STEM}.tar.zst.SHA256"));

    // The pins, verified, as local repositories; nothing runs before all of them pass.
    say(&format!(
        "verifying {} pinned packages from the content store",
        lock.packages.len()
    ));
    let arch = lock.recipe.arch.clone();
    let repo_files = packages::lay_out(lock, store, &|repo| layout.repo_dir(repo, &arch))?;
    let mut scanned = packages::Scanned::default();
    for p in &lock.packages {
        if let Some(repo) = packages::repo_of(lock, p) {
            packages::scan(
                p,
                &layout.repo_dir(repo, &arch).join(&p.filename),
                &mut scanned,
            )?;
        }
    }
    // As upstream masks its (Arch) host's hooks: every hook a pinned package ships, plus
    // this host's own.
    let mut hooks: BTreeSet<String> = scanned.hooks.clone();
    if let Ok(rd) = std::fs::read_dir("/usr/share/libalpm/hooks") {
        for e in rd.flatten() {
            if let Ok(n) = e.file_name().into_string() {
                hooks.insert(n);
            }
        }
    }

    // Tool versions decide the plan (the install date) and go into the report.
    let bootstrap = plan::Plan {
        source_date_epoch: lock.recipe.source_date_epoch,
        snapshot: lock.recipe.archive_snapshot,
        env: vec![
            ("PATH".into(), plan::PATH.into()),
            ("LC_ALL".into(), "C".into()),
        ],
        umask: 0o022,
        pacman_conf_rootfs: Vec::new(),
        pacman_conf_build: Vec::new(),
        mirrorlist_rootfs: Vec::new(),
        mirrorlist_build: Vec::new(),
        repos: Vec::new(),
        hooks: Vec::new(),
        ldconfig_probe: Vec::new(),
        faketime: false,
        pacman: plan::Cmd {
            label: String::new(),
            argv: Vec::new(),
            env: Vec::new(),
        },
        after: Vec::new(),
    };
    let pacman_text =
        String::from_utf8_lossy(&exec::output(&bootstrap, &["pacman", "--version"], None)?)
            .into_owned();
    let pacman = plan::PacmanVersion::parse(&pacman_text).ok_or_else(|| BuildError::Tool {
        tool: "pacman --version".into(),
        message: "no `Pacman vX.Y.Z` in its output".into(),
    })?;
    let tools = Tools {
        pacman: pacman.to_string(),
        fakechroot: first_line(&exec::output(
            &bootstrap,
            &["fakechroot", "--version"],
            None,
        )?),
        fakeroot: first_line(&exec::output(&bootstrap, &["fakeroot", "--version"], None)?),
        libzstd: repro_tar::zst::libzstd().version,
    };

    let plan = plan::plan(&plan::PlanInput {
        lock,
        recipe: &opts.recipe,
        layout,
        pacman,
        faketime_lib: faketime_lib(),
        published_archive: &opts.published_archive,
        hooks: hooks.into_iter().collect(),
    })?;
    log.line(&format!(
        "SOURCE_DATE_EPOCH={} snapshot={} group={} pacman {} ({}), {}, {}, libzstd {}",
        plan.source_date_epoch,
        plan.snapshot,
        lock.recipe.group.join(" "),
        tools.pacman,
        if plan.faketime {
            "install date by libfaketime"
        } else {
            "install date by pacman"
        },
        tools.fakechroot,
        tools.fakeroot,
        tools.libzstd
    ))?;

    // Local repositories: one per repository the pacman.conf names (empty where no pin is).
    for repo in &plan.repos {
        let dir = layout.repo_dir(repo, &arch);
        exec::mkdir_p(&dir)?;
        let files: Vec<&PathBuf> = repo_files
            .iter()
            .filter(|(r, _)| r == repo)
            .flat_map(|(_, f)| f)
            .collect();
        let mut cmd = plan::Cmd {
            label: format!("repo-add {repo} ({} packages)", files.len()),
            argv: vec![
                "repo-add".into(),
                "-q".into(),
                format!("{repo}.db.tar.gz").into(),
            ],
            env: Vec::new(),
        };
        cmd.argv
            .extend(files.iter().filter_map(|f| f.file_name()).map(Into::into));
        exec::run(&plan, &cmd, &dir, log)?;
    }

    // Build-time files.
    for (rel, bytes) in &opts.recipe.overlay {
        let bytes = if rel == recipe::MIRRORLIST {
            &plan.mirrorlist_rootfs
        } else {
            bytes
        };
        exec::write_file(&layout.overlay.join(rel), bytes, 0o644)?;
    }
    exec::write_file(&layout.mirrorlist_build, &plan.mirrorlist_build, 0o644)?;
    exec::write_file(&layout.pacman_conf_build, &plan.pacman_conf_build, 0o644)?;
    exec::write_file(&layout.ldconfig_probe, &plan.ldconfig_probe, 0o755)?;
    exec::mkdir_p(&layout.pkgcache)?;
    let keyring_sources = trust_keys(&plan, layout, &opts.keyrings, &scanned, log)?;

    // The root: masked hooks, pacman.conf, the overlay, the os-release link.
    say("installing the pinned packages (pacman)");
    exec::mkdir_p(&layout.root)?;
    let hookdir = layout.hookdir();
    exec::mkdir_p(&hookdir)?;
    for h in &plan.hooks {
        exec::symlink_at(Path::new("/dev/null"), &hookdir.join(h))?;
        log.line(&format!("hook masked: {h}"))?;
    }
    exec::mkdir_p(&layout.root.join("var/lib/pacman"))?;
    exec::write_file(
        &layout.root.join("etc/pacman.conf"),
        &plan.pacman_conf_rootfs,
        0o644,
    )?;
    for (rel, _) in &opts.recipe.overlay {
        let bytes = std::fs::read(layout.overlay.join(rel)).map_err(io_at(&layout.overlay))?;
        exec::write_file(&layout.root.join(rel), &bytes, 0o644)?;
    }
    exec::symlink_at(
        Path::new("/usr/lib/os-release"),
        &layout.root.join("etc/os-release"),
    )?;

    exec::run(&plan, &plan.pacman, &layout.work, log)?;
    say("running the recipe's chroot steps");
    for step in &plan.after {
        match step {
            plan::Step::Run(cmd) => exec::run(&plan, cmd, &layout.work, log)?,
            plan::Step::ClearDir(d) => {
                log.line(&format!("rm -rf {}/*", d.display()))?;
                exec::clear_dir(d)?
            }
        }
    }

    say("writing repro.tar and repro.tar.zst");
    log.line("tar (repro-tar's GNU tar 1.34 writer, owners as a fresh fakeroot session sees them) | zstd")?;
    let exclude = Exclude::parse(&opts.recipe.exclude);
    // The recipe's tar runs in a fakeroot session of its own, which reports every file
    // as root's: the writer takes that view instead of the disk's owners (the tree is not
    // touched).
    let archive = repro_tar::gnu::plan(
        &layout.root,
        &GnuOptions::recipe_in_fakeroot(plan.source_date_epoch, exclude),
    )?;
    let zstd = ZstdParams {
        level: lock.recipe.zstd_level,
        window_log: Some(lock.recipe.zstd_window_log),
        ..ZstdParams::recipe()
    };
    let produced = pipeline::run(
        Some(archive.size()),
        &Outputs {
            tar: Some(tar_path.clone()),
            compression: Some(Compression::Zstd(zstd)),
            blob: Some(zst_path.clone()),
        },
        |w| archive.write_to(w),
    )?;
    let blob = produced.blob.ok_or_else(|| {
        BuildError::Invalid("internal: the pipeline returned no compressed blob".into())
    })?;
    exec::write_file(
        &sha_path,
        blob.sha256sum_line(&format!("{STEM}.tar.zst")).as_bytes(),
        0o644,
    )?;

    let image = match &lock.recipe.image_version {
        Some(version) if opts.image => {
            say("writing the image's layers (containers/storage dialect)");
            let revision = lock
                .recipe
                .revision
                .clone()
                .unwrap_or_else(|| "0".repeat(40));
            let buildah_version = lock
                .recipe
                .image_builder
                .as_deref()
                .and_then(|b| b.strip_prefix("buildah "))
                .unwrap_or(BUILDAH_VERSION)
                .to_string();
            let input = image::ImageInput {
                version,
                revision: &revision,
                title: match (&opts.image_title, &lock.recipe.image_title) {
                    (Some(t), _) | (None, Some(t)) => t,
                    (None, None) => recipe_title(&lock.recipe.name)?,
                },
                source_date_epoch: plan.source_date_epoch,
                platform: &lock.image.platform,
                buildah_version: &buildah_version,
                lock_diff_ids: lock
                    .image
                    .layers
                    .iter()
                    .map(|l| l.diff_id.to_string())
                    .collect(),
                lock_config_digest: lock.image.config_digest.to_string(),
                lock_manifest_digest: lock.image.digest.to_string(),
                lock_uncompressed: !lock.image.layers.is_empty()
                    && lock
                        .image
                        .layers
                        .iter()
                        .all(|l| l.media_type == podman::LAYER_MEDIA_TYPE),
                isolation: image::Isolation::of_this_process(),
            };
            Some(image::layers(
                &tar_path,
                &input,
                &out.join("layers"),
                &out.join("oci"),
                &layout.work,
                log,
            )?)
        }
        _ => None,
    };
    let builddir = if opts.keep_builddir {
        Some(layout.root.clone())
    } else {
        std::fs::remove_dir_all(&layout.work).map_err(io_at(&layout.work))?;
        None
    };
    Ok(BuildReport {
        source_date_epoch: plan.source_date_epoch,
        snapshot: plan.snapshot.to_string(),
        group: lock.recipe.group.clone(),
        packages: lock.packages.len(),
        tools,
        install_date: if plan.faketime { "faketime" } else { "pacman" },
        hooks_masked: plan.hooks.clone(),
        keyrings: keyring_sources,
        tar_writer: "repro-tar gnu (GNU tar 1.34 pax, the recipe's flags, in a fresh fakeroot session's view)",
        tar: Artifact {
            file: tar_path,
            digest: produced.tar.oci(),
            size: produced.tar.size,
        },
        zst: Artifact {
            file: zst_path,
            digest: blob.oci(),
            size: blob.size,
        },
        sha256_file: sha_path,
        log: layout.log.clone(),
        image,
        builddir,
    })
}

/// The build's gpg dir trusting every key of the keyrings, as the recipe sets it up
/// (`GPGDir` of the build-time pacman.conf). Returns where the keys came from.
fn trust_keys(
    plan: &plan::Plan,
    layout: &plan::Layout,
    given: &[PathBuf],
    scanned: &packages::Scanned,
    log: &mut exec::Log,
) -> Result<Vec<String>, BuildError> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    if given.is_empty() {
        exec::mkdir_p(&layout.keyrings)?;
        for (i, k) in scanned.keyrings.iter().enumerate() {
            let p = layout.keyrings.join(format!("{i}.gpg"));
            exec::write_file(&p, &k.bytes, 0o644)?;
            files.push((
                p,
                format!("{}: usr/share/pacman/keyrings/{}", k.package, k.file),
            ));
        }
        if files.is_empty() {
            return Err(BuildError::Invalid(
                "no keyring: the pinned packages ship no usr/share/pacman/keyrings/*.gpg; give one (--keyring)".into(),
            ));
        }
    } else {
        for k in given {
            let abs = std::fs::canonicalize(k).map_err(io_at(k))?;
            files.push((abs.clone(), abs.display().to_string()));
        }
    }
    let g = &layout.gnupg;
    std::fs::create_dir(g).map_err(io_at(g))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(g, std::fs::Permissions::from_mode(0o700)).map_err(io_at(g))?;
    // as pacman-key --init: an existing (empty) pubring.gpg keeps gpg on the keyring file
    // pacman reads
    for f in ["pubring.gpg", "trustdb.gpg"] {
        exec::write_file(&g.join(f), b"", 0o600)?;
    }
    let home = g
        .to_str()
        .ok_or_else(|| BuildError::Invalid(format!("{}: not UTF-8", g.display())))?;
    let gpg = |args: &[&str], stdin: Option<&[u8]>| {
        let mut argv = vec!["gpg", "--homedir", home, "--batch"];
        argv.extend_from_slice(args);
        exec::output(plan, &argv, stdin)
    };
    let mut trust = String::new();
    for (f, source) in &files {
        let f = f
            .to_str()
            .ok_or_else(|| BuildError::Invalid(format!("{}: not UTF-8", f.display())))?;
        gpg(&["--quiet", "--import", f], None)?;
        let listing = gpg(
            &[
                "--with-colons",
                "--import-options",
                "show-only",
                "--import",
                f,
            ],
            None,
        )?;
        for line in String::from_utf8_lossy(&listing).lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.first() == Some(&"fpr")
                && let Some(fpr) = fields.get(9)
                && !fpr.is_empty()
                && fpr.bytes().all(|b| b.is_ascii_hexdigit())
            {
                trust.push_str(&format!("{fpr}:6:\n"));
            }
        }
        log.line(&format!("trusted keyring {source}"))?;
    }
    gpg(&["--quiet", "--import-ownertrust"], Some(trust.as_bytes()))?;
    let _ = exec::output(plan, &["gpgconf", "--homedir", home, "--kill", "all"], None);
    Ok(files.into_iter().map(|(_, s)| s).collect())
}
