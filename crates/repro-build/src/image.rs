//! The image's two layers as the recipe's Dockerfile makes them with podman 4.x
//! (`--timestamp SOURCE_DATE_EPOCH`), in containers/storage's tar dialect (repro-tar's
//! `gostorage`): the `COPY` of the extracted rootfs, then the diff of
//! `RUN ldconfig && sed -i '/BUILD_ID/a VERSION_ID=<version>' /etc/os-release && rm -f
//! /var/cache/ldconfig/aux-cache`, run in a real chroot of the extracted tree after what
//! podman's chroot isolation leaves behind (`dev/ proc/ sys/`, empty 0755 `etc/hostname`
//! and `etc/resolv.conf`).
//!
//! As root the extraction and the `RUN` step run as they are; otherwise both run in a user
//! namespace that maps root to the caller (`unshare --user --map-root-user`, as rootless
//! podman does), where `tar --same-owner` may give files to 0:0 and `chroot(2)` is
//! allowed, and the layers record the owners as that namespace sees them. The rootfs
//! tarball's entries are all 0:0 (the recipe's tar runs in a fresh fakeroot session), so
//! both ways give the same layers.
//!
//! Then the config and manifest as podman writes them ([`crate::podman`]; the `COPY`
//! step's content digest from repro-tar's `plan_copier_get` over the extracted tree), and
//! an `oci:` layout with the uncompressed layers (`out/oci`, as `skopeo copy
//! --dest-oci-accept-uncompressed-layers` of the built image). Digests are compared with
//! the lock's: diff_ids and config always; the manifest when the lock's image has
//! uncompressed layers (a compressed image's manifest names other blobs; `verify` shows
//! those blobs equivalent).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use repro_tar::Owners;
use repro_tar::gostorage::{self, GoOptions};
use repro_tar::pipeline::{self, Outputs};

use repro_oci::digest::{DigestAlgorithm, HashingWriter};

use crate::Artifact;
use crate::error::{BuildError, io_at};
use crate::{exec, podman};

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
    /// The `COPY` step's buildah content digest (`dir:<hex>`, in the history).
    pub copy_digest: String,
    /// The config blob (in the `oci:` layout).
    pub config: Artifact,
    /// The lock's config digest; equal to ours when the config is reproduced.
    pub lock_config_digest: String,
    pub config_matches: bool,
    /// The manifest blob, with uncompressed layers.
    pub manifest: Artifact,
    /// The lock's manifest digest, and whether ours equals it: `None` when the lock's
    /// layers are compressed (then the manifests name other blobs and cannot be equal).
    pub lock_manifest_digest: String,
    pub manifest_matches: Option<bool>,
    /// The `oci:` layout directory and the tag of the image in it.
    pub oci: PathBuf,
    pub tag: String,
    /// How the extraction and the `RUN` step got root's powers.
    pub isolation: Isolation,
}

/// How the image step gets root's powers over the extracted tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// This process is root: `tar --same-owner` and `chroot` as they are.
    Root,
    /// An unprivileged `uid`/`gid`: both commands in a user namespace mapping root to it.
    UserNamespace { uid: u32, gid: u32 },
}

impl Isolation {
    /// Root when this process is, a user namespace otherwise.
    pub fn of_this_process() -> Isolation {
        // SAFETY: geteuid and getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if uid == 0 {
            Isolation::Root
        } else {
            Isolation::UserNamespace { uid, gid }
        }
    }

    /// The layers' view of the owners on disk.
    pub fn owners(self) -> Owners {
        match self {
            Isolation::Root => Owners::Disk,
            Isolation::UserNamespace { uid, gid } => Owners::UserNamespace { uid, gid },
        }
    }

    /// `program args…`, run as root in this isolation.
    fn command(self, program: &str) -> Command {
        match self {
            Isolation::Root => Command::new(program),
            Isolation::UserNamespace { .. } => {
                let mut c = Command::new("unshare");
                c.args(["--user", "--map-root-user", "--", program]);
                c
            }
        }
    }

    /// Refuse early, before anything is built, when the user namespace cannot be made.
    pub fn check(self) -> Result<(), BuildError> {
        if self == Isolation::Root {
            return Ok(());
        }
        let out = self
            .command("true")
            .env_clear()
            .env("PATH", crate::plan::PATH)
            .stdin(Stdio::null())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Ok(()),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("cannot run unshare: {e}"),
        };
        Err(BuildError::Unsupported(format!(
            "not root, and no user namespace for the image step (`unshare --user --map-root-user true`: {why}): \
             run as root, allow unprivileged user namespaces (sysctl user.max_user_namespaces; \
             on Ubuntu kernel.apparmor_restrict_unprivileged_userns), or build without the image (--no-image)"
        )))
    }

    /// One line for the report.
    pub fn describe(self) -> String {
        match self {
            Isolation::Root => "as root (tar --same-owner, chroot)".into(),
            Isolation::UserNamespace { uid, gid } => format!(
                "in a user namespace mapping root to {uid}:{gid} (rootless; owners as it sees them)"
            ),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Isolation::Root => "",
            Isolation::UserNamespace { .. } => {
                " in a user namespace (unshare --user --map-root-user)"
            }
        }
    }
}

/// What the image's config takes from the lock besides the layers.
#[derive(Clone, Debug)]
pub struct ImageInput<'a> {
    /// The image version (labels, `VERSION_ID`, the tag).
    pub version: &'a str,
    /// The recipe revision (the `revision` label); 40 zeros when the lock has none.
    pub revision: &'a str,
    /// The title word of `Arch Linux <title> Image`.
    pub title: &'a str,
    pub source_date_epoch: i64,
    /// `linux/amd64`
    pub platform: &'a str,
    /// buildah's version (`io.buildah.version`), from the lock's `image_builder`.
    pub buildah_version: &'a str,
    pub lock_diff_ids: Vec<String>,
    pub lock_config_digest: String,
    pub lock_manifest_digest: String,
    /// The lock's layers are uncompressed tars (then the manifest can match).
    pub lock_uncompressed: bool,
    pub isolation: Isolation,
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
/// then the config and manifest, and the `oci:` layout in `oci_dir`; working in `work`.
pub fn layers(
    rootfs_tar: &Path,
    input: &ImageInput,
    out_dir: &Path,
    oci_dir: &Path,
    work: &Path,
    log: &mut exec::Log,
) -> Result<ImageLayers, BuildError> {
    let version = input.version;
    let source_date_epoch = input.source_date_epoch;
    check_version(version)?;
    let root = work.join("image-rootfs");
    exec::mkdir_p(&root)?;
    exec::mkdir_p(out_dir)?;
    let isolation = input.isolation;
    // The verify stage's ADD: the tarball extracted with owners, modes, xattrs and ACLs.
    run_checked(
        isolation
            .command("tar")
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
        &format!(
            "extract repro.tar for the image (tar -xpf){}",
            isolation.label()
        ),
        log,
    )?;
    let options = GoOptions {
        timestamp: Some(source_date_epoch),
        owners: isolation.owners(),
    };
    // The COPY's history names its source's content digest, over the tree as the verify
    // stage's ADD left it.
    let copier = gostorage::plan_copier_get(&root, options.owners)?;
    let copy_digest = {
        let mut h = HashingWriter::new(std::io::sink(), &DigestAlgorithm::Sha256);
        copier.write_to(&mut h)?;
        format!("dir:{}", h.finish().1.digest())
    };
    log.line(&format!("COPY content digest {copy_digest}"))?;
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
        isolation
            .command("chroot")
            .arg(&root)
            .args(["/bin/sh", "-c"])
            .arg(format!(
                "ldconfig && sed -i '/BUILD_ID/a VERSION_ID={version}' /etc/os-release && rm -f /var/cache/ldconfig/aux-cache"
            ))
            .env_clear()
            .env("PATH", RUN_PATH),
        &format!(
            "RUN ldconfig && sed … /etc/os-release && rm -f …aux-cache (chroot){}",
            isolation.label()
        ),
        log,
    )?;
    let changes = before.changes(&root)?;
    let run = gostorage::plan_changes(&root, &changes, &options)?;
    let second = write_layer(&run, out_dir.join("layer-2.tar"))?;
    let layers = vec![first, second];
    let lock_diff_ids = input.lock_diff_ids.clone();
    let diff_ids_match = layers.len() == lock_diff_ids.len()
        && layers
            .iter()
            .zip(&lock_diff_ids)
            .all(|(l, d)| &l.digest == d);

    let (created, created_label) = podman::rfc3339(source_date_epoch);
    let (os, architecture) = input.platform.split_once('/').ok_or_else(|| {
        BuildError::Invalid(format!(
            "platform {:?}: not OS/ARCHITECTURE",
            input.platform
        ))
    })?;
    let spec = podman::ImageSpec {
        created,
        architecture: architecture.to_string(),
        os: os.to_string(),
        buildah_version: input.buildah_version.to_string(),
        steps: podman::archlinux_docker_steps(
            input.title,
            version,
            input.revision,
            &created_label,
            &copy_digest,
        ),
        layers: layers.iter().map(|l| (l.digest.clone(), l.size)).collect(),
    };
    let json = podman::image_json(&spec).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let tag = version.to_string();
    write_oci(oci_dir, &json, &layers, &tag)?;
    let blob = |b: &podman::Blob| Artifact {
        file: oci_dir
            .join("blobs/sha256")
            .join(b.digest.trim_start_matches("sha256:")),
        digest: b.digest.clone(),
        size: b.size(),
    };
    Ok(ImageLayers {
        config_matches: json.config.digest == input.lock_config_digest,
        manifest_matches: input
            .lock_uncompressed
            .then(|| json.manifest.digest == input.lock_manifest_digest),
        config: blob(&json.config),
        manifest: blob(&json.manifest),
        lock_config_digest: input.lock_config_digest.clone(),
        lock_manifest_digest: input.lock_manifest_digest.clone(),
        layers,
        lock_diff_ids,
        diff_ids_match,
        copy_digest,
        oci: oci_dir.to_path_buf(),
        tag,
        isolation,
    })
}

/// The `oci:` layout: `oci-layout`, `index.json`, the config, the manifest and the layers
/// (hard links to the layer files where the filesystem allows, copies otherwise). Written
/// into a fresh directory next to `dir`, then renamed into place.
fn write_oci(
    dir: &Path,
    json: &podman::ImageJson,
    layers: &[Artifact],
    tag: &str,
) -> Result<(), BuildError> {
    let tmp = dir.with_extension("partial");
    for d in [&tmp, &dir.to_path_buf()] {
        if d.exists() {
            fs::remove_dir_all(d).map_err(io_at(d))?;
        }
    }
    let blobs = tmp.join("blobs/sha256");
    exec::mkdir_p(&blobs)?;
    let put = |digest: &str| blobs.join(digest.trim_start_matches("sha256:"));
    for l in layers {
        let target = put(&l.digest);
        if target.exists() {
            continue;
        }
        if fs::hard_link(&l.file, &target).is_err() {
            fs::copy(&l.file, &target).map_err(io_at(&target))?;
        }
    }
    exec::write_file(&put(&json.config.digest), &json.config.bytes, 0o644)?;
    exec::write_file(&put(&json.manifest.digest), &json.manifest.bytes, 0o644)?;
    exec::write_file(&tmp.join("oci-layout"), podman::OCI_LAYOUT, 0o644)?;
    exec::write_file(
        &tmp.join("index.json"),
        &podman::oci_index(&json.manifest, tag),
        0o644,
    )?;
    fs::rename(&tmp, dir).map_err(io_at(dir))
}
