//! `repro-image copy SRC DST`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::Args;
use repro_oci::ImageRef;
use repro_store::Store;
use repro_transport::copy::{CopyOptions, Destination, copy};

use crate::Global;

#[derive(Args)]
pub struct CopyArgs {
    /// Source image.
    src: String,
    /// Destination: docker://…, oci:DIR[:ref] or docker-archive:FILE[:ref].
    dst: String,
    /// Copy every manifest of an index and the index itself (as skopeo copy --all).
    #[arg(long, short)]
    all: bool,
}

pub fn run(g: &Global, a: &CopyArgs) -> Result<ExitCode> {
    let src_ref = crate::parse_image(&a.src)?;
    let dst_ref = crate::parse_image(&a.dst)?;
    let mut src = g.open_source(&src_ref)?;
    let mut dst = match &dst_ref {
        ImageRef::Docker(d) => {
            let mount_from = match &src_ref {
                ImageRef::Docker(s) if s.registry == d.registry => Some(s.repository.clone()),
                _ => None,
            };
            Destination::Registry {
                client: Arc::new(g.client()?),
                reference: d.clone(),
                mount_from,
            }
        }
        ImageRef::Oci { dir, reference } => Destination::Oci {
            store: Store::open_or_create(dir)?,
            ref_name: reference.clone(),
        },
        ImageRef::DockerArchive { path, reference } => {
            let tags = reference.iter().cloned().collect();
            Destination::DockerArchive(
                repro_transport::docker_archive::DockerArchiveWriter::create(path, tags)?,
            )
        }
        ImageRef::Rootfs { .. } => bail!("{dst_ref}: rootfs: is a source only"),
    };
    let progress = crate::progress::reporter(g.quiet);
    let opts = CopyOptions {
        all: a.all,
        platform: g.platform.clone(),
    };
    let report = copy(&mut *src, &mut dst, &opts, &*progress)?;
    if let Destination::DockerArchive(mut w) = dst {
        w.finish()?;
    }
    for w in src.warnings() {
        eprintln!("repro-image: warning: {w}");
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !g.quiet {
        eprintln!(
            "Copied {} blobs ({} bytes), {} already present",
            report.blobs_copied, report.bytes_copied, report.blobs_skipped
        );
        println!("{}", report.digest);
    }
    Ok(ExitCode::SUCCESS)
}
