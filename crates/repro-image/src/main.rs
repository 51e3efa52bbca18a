//! `repro-image`: the thin binary over the library crates.
//!
//! Exit status: 0 = holds, 1 = does not hold / differs, 2 = error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use repro_oci::{ImageRef, Platform};
use repro_registry::{Client, ClientOptions, Credentials};
use repro_store::{Store, TagLog};
use repro_transport::ImageSource;
use repro_transport::registry::RegistrySource;

mod attestation;
mod build;
mod copy_cmd;
mod diff;
mod fetch;
mod files;
mod inspect;
mod lock;
mod packages;
mod progress;
mod sbom;
mod status;
mod verify;
mod view;

#[derive(Parser)]
#[command(
    name = "repro-image",
    version,
    about = "Prove a container image is exactly what its sources say it is",
    after_help = "IMAGE: docker://[registry/]repo[:tag][@digest], oci:DIR[:ref], docker-archive:FILE[:ref], \
rootfs:FILE; a bare name[:tag][@digest] means Docker Hub.\nExit status: 0 holds, 1 differs, 2 error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: Global,
}

#[derive(Args, Clone)]
pub struct Global {
    /// Machine-readable output (a documented, stable schema).
    #[arg(long, global = true)]
    json: bool,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Content store directory [default: $REPRO_IMAGE_CACHE, $XDG_CACHE_HOME/repro-image].
    #[arg(long, global = true, value_name = "DIR")]
    cache: Option<PathBuf>,
    /// Do not read or write the content store.
    #[arg(long, global = true)]
    no_cache: bool,
    /// Platform to choose from an index.
    #[arg(
        long,
        global = true,
        default_value = "linux/amd64",
        value_name = "OS/ARCH[/VARIANT]"
    )]
    platform: Platform,
    /// Require HTTPS and verify certificates (skopeo's spelling: --tls-verify=false).
    #[arg(long, global = true, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    tls_verify: bool,
    /// Registry credentials USER:PASSWORD (otherwise the auth files are read).
    #[arg(
        long,
        global = true,
        value_name = "USER:PASSWORD",
        env = "REPRO_IMAGE_CREDS",
        hide_env_values = true
    )]
    creds: Option<String>,
    /// Auth file to read instead of the default locations.
    #[arg(long, global = true, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// Idle network timeout in seconds.
    #[arg(long, global = true, default_value_t = 60, value_name = "SECS")]
    timeout: u64,
    /// Attempts per request (429/5xx/connection failures are retried with backoff).
    #[arg(long, global = true, default_value_t = 4, value_name = "N")]
    retries: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Show index, manifest, config and layers.
    Inspect(inspect::InspectArgs),
    /// Copy an image between docker://, oci: and docker-archive:, keeping digests.
    Copy(copy_cmd::CopyArgs),
    /// List the pacman packages installed in an image (or in a directory with --rootfs).
    Packages(packages::PackagesArgs),
    /// Account for every file: package, modified, unowned or missing (or --rootfs DIR).
    Files(files::FilesArgs),
    /// SPDX 2.3 or CycloneDX 1.6 JSON for the pacman packages in an image (or --rootfs DIR).
    Sbom(sbom::SbomArgs),
    /// Ask rebuilderd instances whether each package was reproduced (exact match, --quorum K).
    Status(status::StatusArgs),
    /// Offline checks of rebuilderd in-toto link attestations.
    Attestation(attestation::AttestationArgs),
    /// Pin every input of an image: recipe parameters, packages (sha256, signature), image bytes.
    Lock(lock::LockArgs),
    /// Download the packages a lock pins into the content store, verified (sha256, signatures).
    Fetch(fetch::FetchArgs),
    /// Semantic diff of two images down to tar entries (exit 0 equal, 1 different).
    Diff(diff::DiffArgs),
    /// Rebuild the rootfs tarball from a lock's pins alone: repro.tar, repro.tar.zst, digests.
    ///
    /// Also the image (both layers, config, manifest, an oci: layout) unless --no-image.
    /// Runs as root or as any user: pacman under fakechroot and fakeroot as the recipe does;
    /// when not root, the image's extraction and RUN step in a user namespace, as rootless
    /// podman (the bytes are the same).
    Build(build::BuildArgs),
    /// Lock, fetch, build, then compare with the original level by level (exit 0: holds).
    Verify(verify::VerifyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Inspect(a) => inspect::run(&cli.global, a),
        Command::Copy(a) => copy_cmd::run(&cli.global, a),
        Command::Packages(a) => packages::run(&cli.global, a),
        Command::Sbom(a) => sbom::run(&cli.global, a),
        Command::Files(a) => files::run(&cli.global, a),
        Command::Status(a) => status::run(&cli.global, a),
        Command::Attestation(a) => attestation::run(&cli.global, a),
        Command::Lock(a) => lock::run(&cli.global, a),
        Command::Fetch(a) => fetch::run(&cli.global, a),
        Command::Diff(a) => diff::run(&cli.global, a),
        Command::Build(a) => build::run(&cli.global, a),
        Command::Verify(a) => verify::run(&cli.global, a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::stdout().flush();
            eprintln!("repro-image: error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, `: `-separated like anyhow's `{:#}`, leaving out
/// a cause whose text the line already ends with (library errors that name their source in
/// their own message, `"{path}: {source}"`, would otherwise print it twice).
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

impl Global {
    pub fn client(&self) -> Result<Client> {
        let mut opts = ClientOptions {
            insecure: !self.tls_verify,
            timeout: Duration::from_secs(self.timeout.max(1)),
            attempts: self.retries.max(1),
            ..ClientOptions::default()
        };
        if let Some(c) = &self.creds {
            opts.credentials = Some(Credentials::parse(c)?);
        }
        if let Some(f) = &self.authfile {
            opts.auth_files = vec![f.clone()];
        }
        Ok(Client::new(opts))
    }

    pub fn store(&self) -> Result<Option<Store>> {
        if self.no_cache {
            return Ok(None);
        }
        let dir = match &self.cache {
            Some(d) => d.clone(),
            None => repro_store::default_cache_dir().context(
                "no cache directory: set $XDG_CACHE_HOME or $HOME, or pass --cache/--no-cache",
            )?,
        };
        Ok(Some(Store::open_or_create(&dir).with_context(|| {
            format!("opening the content store {}", dir.display())
        })?))
    }

    /// Open any transport as a source. For docker://, also return the registry details
    /// the caller may want (warnings, same-registry mounts).
    pub fn open_source(&self, r: &ImageRef) -> Result<Box<dyn ImageSource>> {
        Ok(match r {
            ImageRef::Docker(d) => {
                let store = self.store()?;
                let log = store
                    .as_ref()
                    .map(|s| TagLog::new(s.root().join("tags.jsonl")));
                Box::new(RegistrySource::new(
                    Arc::new(self.client()?),
                    d.clone(),
                    store,
                    log,
                ))
            }
            ImageRef::Oci { dir, reference } => Box::new(repro_transport::oci::OciSource::open(
                dir,
                reference.as_deref(),
            )?),
            ImageRef::DockerArchive { path, reference } => {
                Box::new(repro_transport::docker_archive::DockerArchiveSource::open(
                    path,
                    reference.as_deref(),
                )?)
            }
            ImageRef::Rootfs { path } => Box::new(repro_transport::rootfs::RootfsSource::open(
                path,
                &self.platform,
            )?),
        })
    }
}

pub fn parse_image(s: &str) -> Result<ImageRef> {
    match ImageRef::parse(s) {
        Ok(r) => Ok(r),
        Err(e) => bail!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct PathError {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn an_error_naming_its_source_prints_it_once() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let text = io.to_string();
        let e = anyhow::Error::new(PathError {
            path: "/x/repro.lock".into(),
            source: io,
        })
        .context("reading the lock");
        assert_eq!(
            error_line(&e),
            format!("reading the lock: /x/repro.lock: {text}")
        );
        // a cause not already in the line is kept
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(error_line(&e), "outer: inner");
    }
}
