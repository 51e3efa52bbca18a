//! Small deterministic OCI image layouts for tests, built without external tools.
//!
//! Layers are tars (GNU headers, mtime 0, uid/gid 0, no user/group names) compressed with gzip
//! (no mtime, no file name, OS byte 255), zstd (level 3) or left uncompressed. JSON documents
//! are compact with a fixed field order, so the same inputs give the same digests on every
//! run.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::util::{HashWriter, sha256_digest};

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_IN_TOTO: &str = "application/vnd.in-toto+json";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// `created` used when nothing else is asked.
pub const DEFAULT_CREATED: &str = "2024-01-01T00:00:00Z";

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    None,
    #[default]
    Gzip,
    Zstd,
}

impl Compression {
    /// The OCI layer media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER_TAR,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }
}

/// One tar entry of a [`LayerSpec`]. Paths are relative ("etc/os-release"); a leading '/' is
/// removed; directories get a trailing '/'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    File {
        path: String,
        contents: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
    Hardlink {
        path: String,
        target: String,
    },
}

/// A layer: entries in tar order, a compression, and the history `created_by` text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LayerSpec {
    pub entries: Vec<Entry>,
    pub compression: Compression,
    pub created_by: Option<String>,
}

impl LayerSpec {
    /// An empty gzip layer.
    pub fn new() -> LayerSpec {
        LayerSpec::default()
    }

    /// A layer of regular files `(path, contents, mode)`, gzip-compressed.
    pub fn files(files: &[(&str, &[u8], u32)]) -> LayerSpec {
        files
            .iter()
            .fold(LayerSpec::new(), |l, (p, c, m)| l.file(p, c, *m))
    }

    pub fn compression(mut self, compression: Compression) -> LayerSpec {
        self.compression = compression;
        self
    }

    pub fn created_by(mut self, text: &str) -> LayerSpec {
        self.created_by = Some(text.to_string());
        self
    }

    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>, mode: u32) -> LayerSpec {
        self.entries.push(Entry::File {
            path: path.to_string(),
            contents: contents.as_ref().to_vec(),
            mode,
        });
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> LayerSpec {
        self.entries.push(Entry::Dir {
            path: path.to_string(),
            mode,
        });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> LayerSpec {
        self.entries.push(Entry::Symlink {
            path: path.to_string(),
            target: target.to_string(),
        });
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> LayerSpec {
        self.entries.push(Entry::Hardlink {
            path: path.to_string(),
            target: target.to_string(),
        });
        self
    }

    /// An OCI whiteout for `path` (an empty file `.wh.<name>` beside it).
    pub fn whiteout(self, path: &str) -> LayerSpec {
        let path = path.trim_start_matches('/').trim_end_matches('/');
        let wh = match path.rsplit_once('/') {
            Some((dir, name)) => format!("{dir}/.wh.{name}"),
            None => format!(".wh.{path}"),
        };
        self.file(&wh, b"", 0o644)
    }
}

/// Image-level settings for [`TestImage::build_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageOptions {
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    /// `created` of the config and every history entry.
    pub created: String,
    /// `org.opencontainers.image.ref.name` in index.json (the tag in `oci:DIR:REF`).
    pub ref_name: String,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `config.Env`.
    pub env: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            architecture: "amd64".to_string(),
            os: "linux".to_string(),
            variant: None,
            created: DEFAULT_CREATED.to_string(),
            ref_name: "latest".to_string(),
            labels: BTreeMap::new(),
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
            ],
            cmd: vec!["/bin/sh".to_string()],
        }
    }
}

impl ImageOptions {
    /// Defaults for linux/`architecture` (e.g. "arm64", with variant "v8" for arm64).
    pub fn for_arch(architecture: &str) -> ImageOptions {
        ImageOptions {
            architecture: architecture.to_string(),
            variant: (architecture == "arm64").then(|| "v8".to_string()),
            ..ImageOptions::default()
        }
    }
}

/// An OCI descriptor (the three fields tests need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// What went into one layer's tar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerStats {
    /// Tar entries of any type.
    pub entries: usize,
    /// Non-directory entries (regular files, symlinks, hardlinks).
    pub files: usize,
    /// Sum of regular file sizes.
    pub file_bytes: u64,
    /// Size of the uncompressed tar.
    pub tar_bytes: u64,
}

/// A written OCI image layout with one image and everything a test wants to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestImage {
    /// The layout directory (has `oci-layout`, `index.json`, `blobs/sha256/`).
    pub layout: PathBuf,
    pub ref_name: String,
    pub architecture: String,
    pub os: String,
    pub variant: Option<String>,
    pub manifest: Descriptor,
    pub manifest_bytes: Vec<u8>,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    /// Layer blob descriptors, bottom first.
    pub layers: Vec<Descriptor>,
    /// `sha256:` of each uncompressed tar, bottom first.
    pub diff_ids: Vec<String>,
    pub layer_stats: Vec<LayerStats>,
}

impl TestImage {
    /// Builds an amd64/linux image tagged "latest" into `dir` (created if needed). An
    /// existing layout in `dir` is kept; its index.json entry of the same ref name is replaced.
    pub fn build(dir: &Path, layers: &[LayerSpec]) -> TestImage {
        Self::build_with(dir, &ImageOptions::default(), layers)
    }

    /// [`TestImage::build`] with explicit options.
    pub fn build_with(dir: &Path, options: &ImageOptions, layers: &[LayerSpec]) -> TestImage {
        let blobs = init_layout(dir);
        let mut written = Vec::new();
        for (i, spec) in layers.iter().enumerate() {
            let w = write_layer(&blobs, spec.compression, |builder| {
                let mut stats = LayerStats::default();
                for entry in &spec.entries {
                    append_entry(builder, entry, &mut stats)?;
                }
                Ok(stats)
            })
            .unwrap_or_else(|e| {
                panic!(
                    "repro-testkit: cannot write layer {i} in {}: {e}",
                    dir.display()
                )
            });
            written.push(w);
        }
        let created_by: Vec<String> = layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                l.created_by
                    .clone()
                    .unwrap_or_else(|| format!("repro-testkit layer {i}"))
            })
            .collect();
        finish_image(dir, &blobs, options, written, &created_by)
    }

    /// A large single-layer gzip image of real files from this machine (see
    /// [`TestImage::bulk_with`]).
    pub fn bulk(dir: &Path, min_bytes: u64, min_files: usize) -> TestImage {
        Self::bulk_with(dir, min_bytes, min_files, Compression::Gzip)
    }

    /// A single-layer image holding real files under `/usr` of this machine (zoneinfo,
    /// Python's library, man pages, headers, locales, docs, shared libraries, ... in that
    /// order), walked in sorted order, until at least `min_bytes` of regular-file content and
    /// `min_files` non-directory entries are in. Unreadable files, sockets, FIFOs and devices
    /// are skipped; symlinks stay symlinks; metadata is normalised (mtime 0, uid/gid 0). Panics
    /// if the machine does not have that much.
    pub fn bulk_with(
        dir: &Path,
        min_bytes: u64,
        min_files: usize,
        compression: Compression,
    ) -> TestImage {
        let blobs = init_layout(dir);
        let roots = bulk_roots();
        let w = write_layer(&blobs, compression, |builder| {
            let mut stats = LayerStats::default();
            let mut dirs_done = HashSet::new();
            let mut roots_done = HashSet::new();
            for root in &roots {
                if stats.file_bytes >= min_bytes && stats.files >= min_files {
                    break;
                }
                walk(
                    builder,
                    root,
                    &mut stats,
                    &mut dirs_done,
                    &roots_done,
                    min_bytes,
                    min_files,
                )?;
                roots_done.insert(root.clone());
            }
            Ok(stats)
        })
        .unwrap_or_else(|e| {
            panic!(
                "repro-testkit: cannot write the bulk layer in {}: {e}",
                dir.display()
            )
        });
        assert!(
            w.stats.file_bytes >= min_bytes && w.stats.files >= min_files,
            "repro-testkit: this machine has only {} bytes in {} files under {:?}; asked for {min_bytes} bytes and {min_files} files",
            w.stats.file_bytes,
            w.stats.files,
            roots
        );
        let options = ImageOptions::default();
        finish_image(
            dir,
            &blobs,
            &options,
            vec![w],
            &["repro-testkit bulk copy of /usr".to_string()],
        )
    }

    /// `blobs/sha256/<hex>` of a digest in this layout.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path(&self.layout, digest)
    }

    /// `oci:<layout>:<ref>` for skopeo.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.ref_name)
    }

    /// The index entry's platform as "os/arch[/variant]".
    pub fn platform(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// `blobs/sha256/<hex>` of a digest in the layout at `layout`.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    layout.join("blobs").join(alg).join(hex)
}

// ---------------------------------------------------------------------------------------------
// JSON documents (field order fixed by the struct definitions)

#[derive(Serialize)]
struct Platform {
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
}

#[derive(Serialize)]
struct IndexEntry {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform>,
}

#[derive(Serialize)]
struct Index {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    manifests: Vec<IndexEntry>,
}

#[derive(Serialize)]
struct LayerDescriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: Descriptor,
    layers: Vec<LayerDescriptor>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History {
    created: String,
    created_by: String,
    comment: &'static str,
}

#[derive(Serialize)]
struct ContainerConfig {
    #[serde(rename = "Env", skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(rename = "Cmd", skip_serializing_if = "Vec::is_empty")]
    cmd: Vec<String>,
    #[serde(rename = "Labels", skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Config {
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<String>,
    architecture: String,
    os: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    config: ContainerConfig,
    rootfs: RootFs,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history: Vec<History>,
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value)
        .unwrap_or_else(|e| panic!("repro-testkit: JSON serialisation failed: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Layout writing

/// Creates `dir/blobs/sha256` and `dir/oci-layout`; returns the blobs dir.
fn init_layout(dir: &Path) -> PathBuf {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot create {}: {e}", blobs.display()));
    let layout_file = dir.join("oci-layout");
    fs::write(&layout_file, br#"{"imageLayoutVersion":"1.0.0"}"#)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot write {}: {e}", layout_file.display()));
    blobs
}

/// Writes `bytes` as a blob; returns its descriptor with `media_type`.
pub(crate) fn write_blob(layout: &Path, media_type: &str, bytes: &[u8]) -> Descriptor {
    let digest = sha256_digest(bytes);
    let path = blob_path(layout, &digest);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("repro-testkit: cannot create {}: {e}", parent.display()));
    }
    fs::write(&path, bytes)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot write {}: {e}", path.display()));
    Descriptor {
        media_type: media_type.to_string(),
        digest,
        size: bytes.len() as u64,
    }
}

/// Adds (or replaces, by ref name) one entry of the layout's index.json, keeping others.
fn add_to_index_json(layout: &Path, entry: IndexEntry) {
    let path = layout.join("index.json");
    let mut others: Vec<serde_json::Value> = Vec::new();
    if let Ok(bytes) = fs::read(&path) {
        let existing: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("repro-testkit: {} is not JSON: {e}", path.display()));
        if let Some(list) = existing.get("manifests").and_then(|m| m.as_array()) {
            let ours = entry.annotations.get(ANNOTATION_REF_NAME);
            others = list
                .iter()
                .filter(|m| {
                    m.get("annotations")
                        .and_then(|a| a.get(ANNOTATION_REF_NAME))
                        .and_then(|r| r.as_str())
                        != ours.map(String::as_str)
                })
                .cloned()
                .collect();
        }
    }
    let entry = serde_json::to_value(&entry)
        .unwrap_or_else(|e| panic!("repro-testkit: JSON serialisation failed: {e}"));
    others.push(entry);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_INDEX,
        "manifests": others,
    });
    fs::write(&path, to_json(&index))
        .unwrap_or_else(|e| panic!("repro-testkit: cannot write {}: {e}", path.display()));
}

fn ref_annotation(ref_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(ANNOTATION_REF_NAME.to_string(), ref_name.to_string())])
}

struct WrittenLayer {
    blob: Descriptor,
    diff_id: String,
    stats: LayerStats,
}

fn finish_image(
    dir: &Path,
    _blobs: &Path,
    options: &ImageOptions,
    written: Vec<WrittenLayer>,
    created_by: &[String],
) -> TestImage {
    let diff_ids: Vec<String> = written.iter().map(|w| w.diff_id.clone()).collect();
    let config = Config {
        created: Some(options.created.clone()),
        architecture: options.architecture.clone(),
        os: options.os.clone(),
        variant: options.variant.clone(),
        config: ContainerConfig {
            env: options.env.clone(),
            cmd: options.cmd.clone(),
            labels: options.labels.clone(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: diff_ids.clone(),
        },
        history: created_by
            .iter()
            .map(|c| History {
                created: options.created.clone(),
                created_by: c.clone(),
                comment: "repro-testkit",
            })
            .collect(),
    };
    let config_bytes = to_json(&config);
    let config_desc = write_blob(dir, MEDIA_TYPE_OCI_CONFIG, &config_bytes);
    let layers: Vec<Descriptor> = written.iter().map(|w| w.blob.clone()).collect();
    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_TYPE_OCI_MANIFEST,
        config: config_desc.clone(),
        layers: layers
            .iter()
            .map(|l| LayerDescriptor {
                media_type: l.media_type.clone(),
                digest: l.digest.clone(),
                size: l.size,
                annotations: BTreeMap::new(),
            })
            .collect(),
    };
    let manifest_bytes = to_json(&manifest);
    let manifest_desc = write_blob(dir, MEDIA_TYPE_OCI_MANIFEST, &manifest_bytes);
    add_to_index_json(
        dir,
        IndexEntry {
            media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
            digest: manifest_desc.digest.clone(),
            size: manifest_desc.size,
            annotations: ref_annotation(&options.ref_name),
            platform: None,
        },
    );
    TestImage {
        layout: dir.to_path_buf(),
        ref_name: options.ref_name.clone(),
        architecture: options.architecture.clone(),
        os: options.os.clone(),
        variant: options.variant.clone(),
        manifest: manifest_desc,
        manifest_bytes,
        config: config_desc,
        config_bytes,
        layers,
        diff_ids,
        layer_stats: written.iter().map(|w| w.stats).collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// Layer writing: tar -> HashWriter (diff_id) -> compressor -> HashWriter (blob digest) -> file

enum Compressor<W: Write> {
    None(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::Encoder<'static, W>),
}

impl<W: Write> Compressor<W> {
    fn new(compression: Compression, w: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Compressor::None(w),
            Compression::Gzip => Compressor::Gzip(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(w, flate2::Compression::default()),
            ),
            Compression::Zstd => Compressor::Zstd(zstd::Encoder::new(w, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(e) => e.flush(),
            Compressor::Zstd(e) => e.flush(),
        }
    }
}

type LayerWriter = HashWriter<Compressor<HashWriter<io::BufWriter<fs::File>>>>;

fn write_layer<F>(blobs: &Path, compression: Compression, fill: F) -> io::Result<WrittenLayer>
where
    F: FnOnce(&mut tar::Builder<LayerWriter>) -> io::Result<LayerStats>,
{
    let tmp = tempfile::NamedTempFile::new_in(blobs)?;
    let file = tmp.reopen()?;
    let outer = HashWriter::new(io::BufWriter::with_capacity(1 << 20, file));
    let inner = HashWriter::new(Compressor::new(compression, outer)?);
    let mut builder = tar::Builder::new(inner);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.follow_symlinks(false);
    let mut stats = fill(&mut builder)?;
    let inner = builder.into_inner()?;
    let (compressor, diff_id, tar_bytes) = inner.finish();
    stats.tar_bytes = tar_bytes;
    let mut outer = compressor.finish()?;
    outer.flush()?;
    let (mut buffered, digest, size) = outer.finish();
    buffered.flush()?;
    drop(buffered);
    let dest = blobs.join(digest.trim_start_matches("sha256:"));
    tmp.persist(&dest).map_err(|e| e.error)?;
    Ok(WrittenLayer {
        blob: Descriptor {
            media_type: compression.media_type().to_string(),
            digest,
            size,
        },
        diff_id,
        stats,
    })
}

fn clean_path(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

fn base_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn append_entry<W: Write>(
    builder: &mut tar::Builder<W>,
    entry: &Entry,
    stats: &mut LayerStats,
) -> io::Result<()> {
    stats.entries += 1;
    match entry {
        Entry::File {
            path,
            contents,
            mode,
        } => {
            let mut h = base_header(tar::EntryType::Regular, *mode, contents.len() as u64);
            builder.append_data(&mut h, clean_path(path), contents.as_slice())?;
            stats.files += 1;
            stats.file_bytes += contents.len() as u64;
        }
        Entry::Dir { path, mode } => {
            let mut p = clean_path(path);
            if !p.ends_with('/') {
                p.push('/');
            }
            let mut h = base_header(tar::EntryType::Directory, *mode, 0);
            builder.append_data(&mut h, p, io::empty())?;
        }
        Entry::Symlink { path, target } => {
            let mut h = base_header(tar::EntryType::Symlink, 0o777, 0);
            builder.append_link(&mut h, clean_path(path), target)?;
            stats.files += 1;
        }
        Entry::Hardlink { path, target } => {
            let mut h = base_header(tar::EntryType::Link, 0o644, 0);
            builder.append_link(&mut h, clean_path(path), clean_path(target))?;
            stats.files += 1;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Bulk images from real files

fn bulk_roots() -> Vec<PathBuf> {
    // Small many-file trees and larger files alternate so that the usual thresholds (100 MB,
    // 20k files) are met together, around 150-250 MB, on a Debian machine.
    let mut roots = vec![PathBuf::from("/usr/share/zoneinfo")];
    // /usr/lib/python3* in sorted order
    if let Ok(rd) = fs::read_dir("/usr/lib") {
        let mut py: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path())
            .collect();
        py.sort();
        roots.extend(py);
    }
    for p in [
        "/usr/share/man",
        "/usr/include",
        "/usr/share/locale",
        "/usr/share/i18n",
        "/usr/share/perl",
        "/usr/share/doc",
        "/usr/share/mime",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib/gcc",
        "/usr/bin",
        "/usr/share",
        "/usr/lib",
    ] {
        roots.push(PathBuf::from(p));
    }
    roots.retain(|r| r.is_dir());
    roots
}

/// Appends the parent directories of `path` (not yet written) as directory entries.
fn append_parents<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    stats: &mut LayerStats,
    dirs_done: &mut HashSet<PathBuf>,
) -> io::Result<()> {
    let mut parents: Vec<&Path> = path
        .ancestors()
        .skip(1)
        .filter(|p| p != &Path::new("/"))
        .collect();
    parents.reverse();
    for p in parents {
        if dirs_done.contains(p) {
            continue;
        }
        let mode = fs::symlink_metadata(p).map(|m| m.mode()).unwrap_or(0o755);
        append_dir(builder, p, mode, stats)?;
        dirs_done.insert(p.to_path_buf());
    }
    Ok(())
}

fn tar_name(path: &Path) -> String {
    path.to_string_lossy().trim_start_matches('/').to_string()
}

fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    mode: u32,
    stats: &mut LayerStats,
) -> io::Result<()> {
    let mut h = base_header(tar::EntryType::Directory, mode, 0);
    builder.append_data(&mut h, format!("{}/", tar_name(path)), io::empty())?;
    stats.entries += 1;
    Ok(())
}

/// Depth-first walk in byte-sorted order, skipping trees already walked as earlier roots;
/// stops once both thresholds are reached.
fn walk<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    stats: &mut LayerStats,
    dirs_done: &mut HashSet<PathBuf>,
    roots_done: &HashSet<PathBuf>,
    min_bytes: u64,
    min_files: usize,
) -> io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        if stats.file_bytes >= min_bytes && stats.files >= min_files {
            return Ok(());
        }
        if roots_done.contains(&path) {
            continue;
        }
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !dirs_done.contains(&path) {
                append_parents(builder, &path, stats, dirs_done)?;
                append_dir(builder, &path, meta.mode(), stats)?;
                dirs_done.insert(path.clone());
            }
            let Ok(rd) = fs::read_dir(&path) else {
                continue;
            };
            let mut children: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            children.sort();
            // reverse so that pop() yields them in sorted order
            stack.extend(children.into_iter().rev());
        } else if ft.is_symlink() {
            let Ok(target) = fs::read_link(&path) else {
                continue;
            };
            append_parents(builder, &path, stats, dirs_done)?;
            let mut h = base_header(tar::EntryType::Symlink, 0o777, 0);
            builder.append_link(&mut h, tar_name(&path), &target)?;
            stats.entries += 1;
            stats.files += 1;
        } else if ft.is_file() {
            // Whole-file read: skips unreadable files and never writes a size that changed.
            let Ok(contents) = fs::read(&path) else {
                continue;
            };
            append_parents(builder, &path, stats, dirs_done)?;
            let mut h = base_header(tar::EntryType::Regular, meta.mode(), contents.len() as u64);
            builder.append_data(&mut h, tar_name(&path), contents.as_slice())?;
            stats.entries += 1;
            stats.files += 1;
            stats.file_bytes += contents.len() as u64;
        } else if ft.is_socket() || ft.is_fifo() || ft.is_block_device() || ft.is_char_device() {
            continue;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Multi-platform index with a BuildKit-style attestation manifest

/// A layout whose index.json entry (by ref name) is an OCI image index of two platform
/// images plus an attestation manifest, as BuildKit produces. Push it with `skopeo copy
/// --all` (see [`crate::skopeo_copy_to_registry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiPlatformImage {
    pub layout: PathBuf,
    pub ref_name: String,
    pub index: Descriptor,
    pub index_bytes: Vec<u8>,
    pub amd64: TestImage,
    pub arm64: TestImage,
    pub attestation_manifest: Descriptor,
    pub attestation_manifest_bytes: Vec<u8>,
    pub attestation_config: Descriptor,
    /// The in-toto statement blob.
    pub attestation_layer: Descriptor,
}

impl MultiPlatformImage {
    /// Writes into `out` (created if needed; may be one of the two layouts) the blobs of
    /// `amd64` and `arm64`, an attestation manifest for the amd64 image (config
    /// `unknown/unknown`, one `application/vnd.in-toto+json` layer holding an SLSA provenance
    /// statement whose subject is the amd64 manifest), and an OCI index listing
    /// amd64, arm64 and the attestation (platform unknown/unknown, annotations
    /// `vnd.docker.reference.type=attestation-manifest` and
    /// `vnd.docker.reference.digest=<amd64 manifest digest>`), tagged `ref_name` in
    /// index.json.
    pub fn build(
        out: &Path,
        amd64: &TestImage,
        arm64: &TestImage,
        ref_name: &str,
    ) -> MultiPlatformImage {
        init_layout(out);
        for img in [amd64, arm64] {
            copy_blobs(&img.layout, out);
        }
        let amd64_hex = amd64.manifest.digest.trim_start_matches("sha256:");
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{
                "name": format!("pkg:docker/repro-testkit@{ref_name}?platform=linux%2Famd64"),
                "digest": {"sha256": amd64_hex},
            }],
            "predicate": {
                "builder": {"id": ""},
                "buildType": "https://mobyproject.org/buildkit@v1",
                "metadata": {
                    "buildStartedOn": DEFAULT_CREATED,
                    "buildFinishedOn": DEFAULT_CREATED,
                },
            },
        });
        let statement_bytes = to_json(&statement);
        let layer = write_blob(out, MEDIA_TYPE_IN_TOTO, &statement_bytes);
        let att_config = serde_json::json!({
            "architecture": "unknown",
            "os": "unknown",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        });
        let att_config_bytes = to_json(&att_config);
        let att_config_desc = write_blob(out, MEDIA_TYPE_OCI_CONFIG, &att_config_bytes);
        let att_manifest = Manifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_OCI_MANIFEST,
            config: att_config_desc.clone(),
            layers: vec![LayerDescriptor {
                media_type: MEDIA_TYPE_IN_TOTO.to_string(),
                digest: layer.digest.clone(),
                size: layer.size,
                annotations: BTreeMap::from([(
                    "in-toto.io/predicate-type".to_string(),
                    "https://slsa.dev/provenance/v0.2".to_string(),
                )]),
            }],
        };
        let att_manifest_bytes = to_json(&att_manifest);
        let att_manifest_desc = write_blob(out, MEDIA_TYPE_OCI_MANIFEST, &att_manifest_bytes);

        let platform_entry = |img: &TestImage| IndexEntry {
            media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
            digest: img.manifest.digest.clone(),
            size: img.manifest.size,
            annotations: BTreeMap::new(),
            platform: Some(Platform {
                architecture: img.architecture.clone(),
                os: img.os.clone(),
                variant: img.variant.clone(),
            }),
        };
        let index = Index {
            schema_version: 2,
            media_type: MEDIA_TYPE_OCI_INDEX,
            manifests: vec![
                platform_entry(amd64),
                platform_entry(arm64),
                IndexEntry {
                    media_type: MEDIA_TYPE_OCI_MANIFEST.to_string(),
                    digest: att_manifest_desc.digest.clone(),
                    size: att_manifest_desc.size,
                    annotations: BTreeMap::from([
                        (
                            "vnd.docker.reference.digest".to_string(),
                            amd64.manifest.digest.clone(),
                        ),
                        (
                            "vnd.docker.reference.type".to_string(),
                            "attestation-manifest".to_string(),
                        ),
                    ]),
                    platform: Some(Platform {
                        architecture: "unknown".to_string(),
                        os: "unknown".to_string(),
                        variant: None,
                    }),
                },
            ],
        };
        let index_bytes = to_json(&index);
        let index_desc = write_blob(out, MEDIA_TYPE_OCI_INDEX, &index_bytes);
        add_to_index_json(
            out,
            IndexEntry {
                media_type: MEDIA_TYPE_OCI_INDEX.to_string(),
                digest: index_desc.digest.clone(),
                size: index_desc.size,
                annotations: ref_annotation(ref_name),
                platform: None,
            },
        );
        MultiPlatformImage {
            layout: out.to_path_buf(),
            ref_name: ref_name.to_string(),
            index: index_desc,
            index_bytes,
            amd64: amd64.clone(),
            arm64: arm64.clone(),
            attestation_manifest: att_manifest_desc,
            attestation_manifest_bytes: att_manifest_bytes,
            attestation_config: att_config_desc,
            attestation_layer: layer,
        }
    }

    /// `oci:<layout>:<ref>` for skopeo.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.ref_name)
    }
}

/// Copies every blob of layout `from` into layout `to` (skipping those already there).
fn copy_blobs(from: &Path, to: &Path) {
    let src = from.join("blobs").join("sha256");
    let dst = to.join("blobs").join("sha256");
    if src == dst {
        return;
    }
    let rd = fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot read {}: {e}", src.display()));
    for entry in rd.filter_map(Result::ok) {
        let target = dst.join(entry.file_name());
        if target.exists() {
            continue;
        }
        fs::copy(entry.path(), &target).unwrap_or_else(|e| {
            panic!(
                "repro-testkit: cannot copy {} to {}: {e}",
                entry.path().display(),
                target.display()
            )
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteout_names() {
        let l = LayerSpec::new().whiteout("/etc/motd").whiteout("top");
        let names: Vec<&str> = l
            .entries
            .iter()
            .map(|e| match e {
                Entry::File { path, .. } => path.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(names, vec!["etc/.wh.motd", ".wh.top"]);
    }
}
