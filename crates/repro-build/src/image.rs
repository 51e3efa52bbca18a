//! The image's two layers as the recipe's Dockerfile makes them with podman 4.x
//! (`--timestamp SOURCE_DATE_EPOCH`), in containers/storage's tar dialect (repro-tar's
//! `gostorage`): the `COPY` of the extracted rootfs, then the diff of
//! `RUN ldconfig && sed -i '/BUILD_ID/a VERSION_ID=<version>' /etc/os-release && rm -f
//! /var/cache/ldconfig/aux-cache`, run in a real chroot of the extracted tree after what
//! podman's chroot isolation leaves behind (`dev/ proc/ sys/`, empty 0755 `etc/hostname`
//! and `etc/resolv.conf`).
//!
//! Not yet: the config and manifest bytes and the `oci:` layout; the layers' diff_ids are
//! compared with the lock's.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use repro_tar::gostorage::{self, GoOptions};
use repro_tar::pipeline::{self, Outputs};

use crate::Artifact;
use crate::error::{BuildError, io_at};
use crate::exec;

/// podman's default PATH for a `RUN` step.
const RUN_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageLayers {
    /// The layer tars, in image order.
    pub layers: Vec<Artifact>,
    /// The image's diff_ids as the lock pins them.
    pub lock_diff_ids: Vec<String>,
    /// Every layer's digest equals the lock's diff_id.
    pub diff_ids_match: bool,
}

/// The `sed` script's version, refused unless it is a plain version string.
fn check_version(v: &str) -> Result<(), BuildError> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BuildError::Invalid(format!(
            "image version {v:?}: only letters, digits and ._+- go into the RUN step"
        )))
    }
}

fn run_checked(c: &mut Command, what: &str, log: &mut exec::Log) -> Result<(), BuildError> {
    log.line(what)?;
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::Tool {
            tool: what.to_string(),
            message: format!("cannot run it: {e}"),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BuildError::Step {
            step: what.to_string(),
            status: out.status.to_string(),
            log: log.path.clone(),
            tail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn write_layer(plan: &gostorage::GoLayer, file: PathBuf) -> Result<Artifact, BuildError> {
    let produced = pipeline::run(
        Some(plan.size()),
        &Outputs {
            tar: Some(file.clone()),
            compression: None,
            blob: None,
        },
        |w| plan.write_to(w),
    )?;
    Ok(Artifact {
        file,
        digest: produced.tar.oci(),
        size: produced.tar.size,
    })
}

/// Build both layers from `rootfs_tar` into `out_dir` (`layer-1.tar`, `layer-2.tar`),
/// working in `work`.
pub fn layers(
    rootfs_tar: &Path,
    version: &str,
    source_date_epoch: i64,
    lock_diff_ids: Vec<String>,
    out_dir: &Path,
    work: &Path,
    log: &mut exec::Log,
) -> Result<ImageLayers, BuildError> {
    check_version(version)?;
    let root = work.join("image-rootfs");
    exec::mkdir_p(&root)?;
    exec::mkdir_p(out_dir)?;
    // The verify stage's ADD: the tarball extracted with owners, modes, xattrs and ACLs.
    run_checked(
        Command::new("tar")
            .env_clear()
            .env("PATH", crate::plan::PATH)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .args([
                "--xattrs",
                "--xattrs-include=*",
                "--acls",
                "--numeric-owner",
                "--same-owner",
                "-xpf",
            ])
            .arg(rootfs_tar)
            .arg("-C")
            .arg(&root),
        "extract repro.tar for the image (tar -xpf)",
        log,
    )?;
    let options = GoOptions {
        timestamp: Some(source_date_epoch),
    };
    let copy = gostorage::plan_tree(&root, &options)?;
    let first = write_layer(&copy, out_dir.join("layer-1.tar"))?;

    let before = gostorage::Snapshot::take(&root)?;
    // What podman 4.3's chroot isolation leaves in the RUN layer.
    for d in ["dev", "proc", "sys"] {
        let p = root.join(d);
        if !p.exists() {
            fs::create_dir(&p).map_err(io_at(&p))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).map_err(io_at(&p))?;
        }
    }
    for f in ["etc/hostname", "etc/resolv.conf"] {
        exec::write_file(&root.join(f), b"", 0o755)?;
    }
    run_checked(
        Command::new("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c"])
            .arg(format!(
                "ldconfig && sed -i '/BUILD_ID/a VERSION_ID={version}' /etc/os-release && rm -f /var/cache/ldconfig/aux-cache"
            ))
            .env_clear()
            .env("PATH", RUN_PATH),
        "RUN ldconfig && sed … /etc/os-release && rm -f …aux-cache (chroot)",
        log,
    )?;
    let changes = before.changes(&root)?;
    let run = gostorage::plan_changes(&root, &changes, &options)?;
    let second = write_layer(&run, out_dir.join("layer-2.tar"))?;
    let layers = vec![first, second];
    let diff_ids_match = layers.len() == lock_diff_ids.len()
        && layers
            .iter()
            .zip(&lock_diff_ids)
            .all(|(l, d)| &l.digest == d);
    Ok(ImageLayers {
        layers,
        lock_diff_ids,
        diff_ids_match,
    })
}
