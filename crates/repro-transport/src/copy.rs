//! Copy an image between transports, keeping the exact manifest bytes (and so the digest)
//! wherever the destination can hold them.

use std::cell::RefCell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;

use oci_spec::image::{Descriptor, ImageManifest};
use repro_oci::digest::Expect;
use repro_oci::image::{ManifestDoc, select_platform};
use repro_oci::{Blob, Digest, DockerRef, Platform, TopLevel};
use repro_registry::Client;
use repro_store::Store;
use serde::Serialize;

use crate::{ImageSource, TransportError};

/// Where a copy goes.
pub enum Destination {
    Registry {
        client: Arc<Client>,
        reference: DockerRef,
        /// The source's repository on the same registry, for cross-repository mounts.
        mount_from: Option<String>,
    },
    Oci {
        store: Store,
        ref_name: Option<String>,
    },
    DockerArchive(crate::docker_archive::DockerArchiveWriter),
}

/// Progress reporting, implemented by the CLI (a bar on a terminal, nothing otherwise).
pub trait Progress {
    /// A blob copy starts; `size` may be unknown.
    fn start(&self, what: &str, digest: &Digest, size: Option<u64>) -> Box<dyn BlobProgress>;
}

pub trait BlobProgress {
    fn inc(&mut self, n: u64);
    /// `skipped`: the destination already had it.
    fn finish(&mut self, skipped: bool);
}

pub struct NoProgress;
struct NoBar;
impl BlobProgress for NoBar {
    fn inc(&mut self, _: u64) {}
    fn finish(&mut self, _: bool) {}
}
impl Progress for NoProgress {
    fn start(&self, _: &str, _: &Digest, _: Option<u64>) -> Box<dyn BlobProgress> {
        Box::new(NoBar)
    }
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Copy every manifest of an index (and the index itself), as `skopeo copy --all`.
    pub all: bool,
    pub platform: Platform,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// Digest of the top-level document written at the destination.
    pub digest: Digest,
    pub media_type: String,
    /// Same bytes as the source's document (digest kept)?
    pub digest_kept: bool,
    pub blobs_copied: usize,
    pub blobs_skipped: usize,
    pub bytes_copied: u64,
}

pub fn copy(
    src: &mut dyn ImageSource,
    dst: &mut Destination,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyReport, TransportError> {
    let top = src.top_level()?;
    let mut report = CopyReport {
        digest: top.raw().digest.clone(),
        media_type: top.kind().media_type().to_string(),
        digest_kept: true,
        blobs_copied: 0,
        blobs_skipped: 0,
        bytes_copied: 0,
    };
    let manifest_doc = match &top {
        TopLevel::Manifest(m) => m.clone(),
        TopLevel::Index(idx) if opts.all && !matches!(dst, Destination::DockerArchive(_)) => {
            for d in idx.index.manifests() {
                match src.manifest(d)? {
                    TopLevel::Manifest(m) => {
                        copy_blobs(src, dst, &m.manifest, progress, &mut report)?;
                        put_child_manifest(dst, &m.raw, m.kind.media_type())?;
                    }
                    TopLevel::Index(_) => {
                        return Err(TransportError::Invalid {
                            input: src.describe(),
                            reason: format!("nested index {} is not supported", d.digest()),
                        });
                    }
                }
            }
            put_top(dst, &idx.raw, idx.kind.media_type())?;
            finish(dst)?;
            return Ok(report);
        }
        TopLevel::Index(idx) => {
            let d = select_platform(&idx.index, &opts.platform, &src.describe())?;
            match src.manifest(d)? {
                TopLevel::Manifest(m) => m,
                TopLevel::Index(_) => {
                    return Err(TransportError::Invalid {
                        input: src.describe(),
                        reason: format!("platform entry {} is an index", d.digest()),
                    });
                }
            }
        }
    };
    report.digest = manifest_doc.raw.digest.clone();
    report.media_type = manifest_doc.kind.media_type().to_string();
    if let Destination::DockerArchive(w) = dst {
        return copy_to_archive(src, w, &manifest_doc, progress, report);
    }
    if src.layers_are_uncompressed_tars() {
        return copy_compressing(src, dst, &manifest_doc, progress, report);
    }
    copy_blobs(src, dst, &manifest_doc.manifest, progress, &mut report)?;
    put_top(dst, &manifest_doc.raw, manifest_doc.kind.media_type())?;
    finish(dst)?;
    Ok(report)
}

fn blobs_of(m: &ImageManifest) -> Vec<&Descriptor> {
    std::iter::once(m.config()).chain(m.layers()).collect()
}

fn copy_blobs(
    src: &mut dyn ImageSource,
    dst: &mut Destination,
    m: &ImageManifest,
    progress: &dyn Progress,
    report: &mut CopyReport,
) -> Result<(), TransportError> {
    for d in blobs_of(m) {
        let digest = d.digest().clone();
        let size = d.size();
        let what = d.media_type().to_string();
        let mut bar = progress.start(&what, &digest, Some(size));
        let copied = copy_one_blob(src, dst, &digest, size, &mut *bar)?;
        bar.finish(!copied);
        if copied {
            report.blobs_copied += 1;
            report.bytes_copied += size;
        } else {
            report.blobs_skipped += 1;
        }
    }
    Ok(())
}

/// Returns false when the destination already had the blob.
fn copy_one_blob(
    src: &mut dyn ImageSource,
    dst: &mut Destination,
    digest: &Digest,
    size: u64,
    bar: &mut dyn BlobProgress,
) -> Result<bool, TransportError> {
    let expect = Expect {
        digest: digest.clone(),
        size: Some(size),
    };
    match dst {
        Destination::Oci { store, .. } => {
            if store.has(digest, Some(size))? {
                return Ok(false);
            }
            let reader = src.blob(digest, Some(size))?;
            store.put(&expect, reader, &format!("blob {digest}"), &mut |n| {
                bar.inc(n)
            })?;
            Ok(true)
        }
        Destination::Registry {
            client,
            reference,
            mount_from,
        } => {
            if client.blob_exists(reference, digest)?.is_some() {
                return Ok(false);
            }
            if let Some(from) = mount_from.as_deref()
                && from != reference.repository
                && client.mount_blob(reference, digest, from)?
            {
                return Ok(false);
            }
            // The HTTP client reads the body; count what it reads for the progress bar.
            let shared = Rc::new(RefCell::new(bar));
            let mut open = || -> io::Result<Box<dyn Read + '_>> {
                let r = src
                    .blob(digest, Some(size))
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Ok(Box::new(SharedCounting {
                    inner: r,
                    bar: Rc::clone(&shared),
                }))
            };
            client.push_blob(reference, digest, size, &mut open, None)?;
            Ok(true)
        }
        Destination::DockerArchive(_) => unreachable!("handled by copy_to_archive"),
    }
}

fn put_child_manifest(
    dst: &mut Destination,
    raw: &Blob,
    media_type: &str,
) -> Result<(), TransportError> {
    match dst {
        Destination::Oci { store, .. } => {
            store.put_bytes(&raw.bytes)?;
        }
        Destination::Registry {
            client, reference, ..
        } => {
            client.put_manifest(reference, raw.digest.as_ref(), &raw.bytes, media_type)?;
        }
        Destination::DockerArchive(_) => {}
    }
    Ok(())
}

fn put_top(dst: &mut Destination, raw: &Blob, media_type: &str) -> Result<(), TransportError> {
    match dst {
        Destination::Oci { store, ref_name } => {
            store.put_bytes(&raw.bytes)?;
            crate::oci::write_oci_ref(store, raw, media_type, ref_name.as_deref())?;
        }
        Destination::Registry {
            client, reference, ..
        } => {
            if let Some(d) = &reference.digest
                && *d != raw.digest
            {
                return Err(TransportError::Invalid {
                    input: format!("docker://{reference}"),
                    reason: format!(
                        "destination digest {d} differs from the image's {}",
                        raw.digest
                    ),
                });
            }
            let target = match (&reference.tag, &reference.digest) {
                (Some(t), _) => t.clone(),
                (None, Some(d)) => d.to_string(),
                (None, None) => "latest".to_string(),
            };
            client.put_manifest(reference, &target, &raw.bytes, media_type)?;
        }
        Destination::DockerArchive(_) => {}
    }
    Ok(())
}

fn finish(dst: &mut Destination) -> Result<(), TransportError> {
    if let Destination::Oci { store, .. } = dst {
        store.finish();
    }
    Ok(())
}

/// A docker-schema2 manifest written by us: field order fixed by the struct, compact JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchemaTwo<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Desc<'a>,
    layers: Vec<Desc<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Desc<'a> {
    media_type: &'a str,
    size: u64,
    digest: String,
}

/// Layers that are plain tars (docker-archive) go to registries and layouts gzip-compressed,
/// as `skopeo copy` does, under a new manifest; config and diff_ids are kept. The gzip
/// stream is deterministic (no name, no mtime), so the same archive always gives the same
/// manifest digest.
fn copy_compressing(
    src: &mut dyn ImageSource,
    dst: &mut Destination,
    m: &ManifestDoc,
    progress: &dyn Progress,
    mut report: CopyReport,
) -> Result<CopyReport, TransportError> {
    let tmpdir = tempfile::tempdir().map_err(|e| TransportError::Io {
        path: std::env::temp_dir(),
        source: e,
    })?;
    let cfg = m.manifest.config();
    let mut bar = progress.start(cfg.media_type().as_ref(), cfg.digest(), Some(cfg.size()));
    let copied = copy_one_blob(src, dst, cfg.digest(), cfg.size(), &mut *bar)?;
    bar.finish(!copied);
    let mut layers = Vec::new();
    for (i, l) in m.manifest.layers().iter().enumerate() {
        let path = tmpdir.path().join(format!("layer-{i}.tar.gz"));
        let file = std::fs::File::create(&path).map_err(|e| TransportError::Io {
            path: path.clone(),
            source: e,
        })?;
        let hashing = repro_oci::digest::HashingWriter::new(
            file,
            &repro_oci::digest::DigestAlgorithm::Sha256,
        );
        let mut gz = flate2::GzBuilder::new().write(hashing, flate2::Compression::default());
        let mut bar = progress.start(l.media_type().as_ref(), l.digest(), Some(l.size()));
        let mut reader = Counting {
            inner: src.blob(l.digest(), Some(l.size()))?,
            bar: &mut *bar,
        };
        io::copy(&mut reader, &mut gz).map_err(|e| TransportError::Invalid {
            input: src.describe(),
            reason: format!("layer {}: {e}", l.digest()),
        })?;
        let hashing = gz.finish().map_err(|e| TransportError::Io {
            path: path.clone(),
            source: e,
        })?;
        let (_, digest, size) = hashing.finish();
        let mut push_bar = progress.start("gzip layer", &digest, Some(size));
        let copied = copy_local_file(dst, &path, &digest, size, &mut *push_bar)?;
        push_bar.finish(!copied);
        bar.finish(false);
        if copied {
            report.blobs_copied += 1;
            report.bytes_copied += size;
        } else {
            report.blobs_skipped += 1;
        }
        layers.push(Desc {
            media_type: repro_oci::media::DOCKER_LAYER_GZIP,
            size,
            digest: digest.to_string(),
        });
    }
    let manifest = SchemaTwo {
        schema_version: 2,
        media_type: repro_oci::media::DOCKER_MANIFEST,
        config: Desc {
            media_type: repro_oci::media::DOCKER_CONFIG,
            size: cfg.size(),
            digest: cfg.digest().to_string(),
        },
        layers,
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| TransportError::Invalid {
        input: src.describe(),
        reason: e.to_string(),
    })?;
    let raw = Blob::new(bytes);
    put_top(dst, &raw, repro_oci::media::DOCKER_MANIFEST)?;
    finish(dst)?;
    report.digest = raw.digest;
    report.media_type = repro_oci::media::DOCKER_MANIFEST.to_string();
    report.digest_kept = false;
    Ok(report)
}

/// Put a file we produced into a registry or layout destination.
fn copy_local_file(
    dst: &mut Destination,
    path: &std::path::Path,
    digest: &Digest,
    size: u64,
    bar: &mut dyn BlobProgress,
) -> Result<bool, TransportError> {
    let open_file = || {
        std::fs::File::open(path).map_err(|e| TransportError::Io {
            path: path.to_path_buf(),
            source: e,
        })
    };
    let expect = Expect {
        digest: digest.clone(),
        size: Some(size),
    };
    match dst {
        Destination::Oci { store, .. } => {
            if store.has(digest, Some(size))? {
                return Ok(false);
            }
            store.put(&expect, open_file()?, &format!("blob {digest}"), &mut |n| {
                bar.inc(n)
            })?;
            Ok(true)
        }
        Destination::Registry {
            client, reference, ..
        } => {
            if client.blob_exists(reference, digest)?.is_some() {
                return Ok(false);
            }
            let mut open =
                || -> io::Result<Box<dyn Read>> { Ok(Box::new(std::fs::File::open(path)?)) };
            client.push_blob(reference, digest, size, &mut open, None)?;
            bar.inc(size);
            Ok(true)
        }
        Destination::DockerArchive(_) => unreachable!("handled by copy_to_archive"),
    }
}

/// docker-archive holds uncompressed layers and no manifest, so the manifest digest cannot
/// be kept; the config and diff_ids are.
fn copy_to_archive(
    src: &mut dyn ImageSource,
    w: &mut crate::docker_archive::DockerArchiveWriter,
    m: &ManifestDoc,
    progress: &dyn Progress,
    mut report: CopyReport,
) -> Result<CopyReport, TransportError> {
    let config = crate::read_config(src, &m.manifest)?;
    let layers = repro_oci::image::layers(&m.manifest, &config.config)?;
    w.add_config(&config.raw.bytes)?;
    for l in &layers {
        let mut bar = progress.start(&l.media_type, &l.digest, Some(l.size));
        let reader = src.blob(&l.digest, Some(l.size))?;
        let counting = Counting {
            inner: reader,
            bar: &mut *bar,
        };
        let decompressed = crate::decompress(counting, &src.describe())?;
        let diff_id = l.diff_id.clone().ok_or_else(|| TransportError::Invalid {
            input: src.describe(),
            reason: format!("layer {} has no diff_id", l.digest),
        })?;
        w.add_layer(&diff_id, decompressed)?;
        bar.finish(false);
        report.blobs_copied += 1;
        report.bytes_copied += l.size;
    }
    report.digest_kept = false;
    Ok(report)
}

struct SharedCounting<'a, R> {
    inner: R,
    bar: Rc<RefCell<&'a mut dyn BlobProgress>>,
}

impl<R: Read> Read for SharedCounting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.borrow_mut().inc(n as u64);
        Ok(n)
    }
}

struct Counting<'a, R> {
    inner: R,
    bar: &'a mut dyn BlobProgress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
