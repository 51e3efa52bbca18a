//! Semantic diff of two container images, level by level: index, manifest, config (each
//! field), layers (each tar entry: header fields, pax records, content sha256, ...) or, with
//! `squash`, the merged rootfs trees.
//!
//! The comparison core ([`docs`], [`entry`], [`compare_meta`]) works on parsed documents and
//! entry metadata and returns [`Difference`]s; reading images ([`image`]) and writing the
//! differing files out ([`report_dir`]) are at the edge. Layers are streamed: content is
//! compared by the sha256 computed while reading, and only small files (for an inline unified
//! diff) are kept, within a fixed budget.
//!
//! `verify` uses the same functions to explain a mismatch: [`image::diff_images`] for two
//! whole images, or [`layers::compare_layer_blobs`] / [`compare_trees`] for parts.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub mod docs;
pub mod entry;
pub mod image;
pub mod layers;
pub mod report_dir;
mod text;

pub use entry::Meta;
pub use image::{Report, Side, diff_images};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error(transparent)]
    Transport(#[from] repro_transport::TransportError),
    #[error(transparent)]
    Image(#[from] repro_oci::ImageError),
    /// A layer that cannot be read: broken tar, hostile entry; names the input.
    #[error("{input}: {reason}")]
    Layer { input: String, reason: String },
    #[error("--ignore-path {pattern:?}: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("report dir {}: {reason}", path.display())]
    ReportDir { path: PathBuf, reason: String },
}

/// What a difference is about, in the order the report lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Index,
    Manifest,
    Config,
    /// A layer as a whole: count, descriptor, tar size, entry order.
    Layer,
    /// One entry of a layer (or of the merged tree with `squash`).
    File,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Index => "index",
            Level::Manifest => "manifest",
            Level::Config => "config",
            Level::Layer => "layer",
            Level::File => "file",
        }
    }
}

/// Where the two versions of a differing file were written (relative to the report dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportFiles {
    pub a: Option<String>,
    pub b: Option<String>,
}

/// One difference: `field` of the thing named by `level`/`layer`/`path` is `a` in the first
/// image and `b` in the second (`None`: absent there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub level: Level,
    /// The layer index (layer and file levels; `None` for the merged tree).
    pub layer: Option<usize>,
    /// The entry's normalised path (file level), `.` for the root.
    pub path: Option<String>,
    pub field: String,
    pub a: Option<String>,
    pub b: Option<String>,
    /// A unified diff of small UTF-8 files whose content differs.
    pub diff: Option<String>,
    /// Set when the files were written to a report dir.
    pub files: Option<ReportFiles>,
    /// Raw path bytes, for sorting non-UTF-8 names exactly.
    #[serde(skip)]
    pub(crate) path_bytes: Vec<u8>,
}

impl Difference {
    pub fn new(
        level: Level,
        field: impl Into<String>,
        a: Option<String>,
        b: Option<String>,
    ) -> Self {
        Difference {
            level,
            layer: None,
            path: None,
            field: field.into(),
            a,
            b,
            diff: None,
            files: None,
            path_bytes: Vec::new(),
        }
    }

    pub fn in_layer(mut self, layer: Option<usize>) -> Self {
        self.layer = layer;
        self
    }

    pub fn at_path(mut self, path: &[u8]) -> Self {
        self.path = Some(String::from_utf8_lossy(path).into_owned());
        self.path_bytes = path.to_vec();
        self
    }

    /// The `NAME` column of the table: field, prefixed with layer and path where there are.
    pub fn name(&self) -> String {
        let mut s = String::new();
        if let Some(l) = self.layer {
            s.push_str(&format!("layer {l}: "));
        }
        if let Some(p) = &self.path {
            s.push_str(p);
            s.push(' ');
            s.push('(');
            s.push_str(&self.field);
            s.push(')');
        } else {
            s.push_str(&self.field);
        }
        s
    }
}

/// Put differences in report order: documents first, then layer by layer (the layer's own
/// differences, then its entries by path bytes), the merged tree last; within one path the
/// order the fields were compared in. Independent of thread timing.
pub fn sort_differences(diffs: &mut [Difference]) {
    diffs.sort_by(|x, y| {
        let group = |d: &Difference| match d.level {
            Level::Index | Level::Manifest | Level::Config => 0,
            Level::Layer | Level::File => 1,
        };
        group(x)
            .cmp(&group(y))
            .then_with(|| {
                // The merged tree (layer None at file level) comes after every layer.
                let k = |d: &Difference| d.layer.map_or(usize::MAX, |l| l);
                k(x).cmp(&k(y))
            })
            .then_with(|| x.level.cmp(&y.level))
            .then_with(|| x.path_bytes.cmp(&y.path_bytes))
    });
}

/// Paths to leave out (`--ignore-path GLOB`): a path is ignored when it or one of its parent
/// directories matches. Patterns and paths are taken without a leading `/` or `./`.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    patterns: Vec<String>,
    set: Option<globset::GlobSet>,
}

impl PathFilter {
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, DiffError> {
        if patterns.is_empty() {
            return Ok(Self::default());
        }
        let mut b = globset::GlobSetBuilder::new();
        let mut kept = Vec::new();
        for p in patterns {
            let p = p.as_ref();
            let norm = strip_root(p.as_bytes());
            let norm = std::str::from_utf8(norm).unwrap_or(p).trim_end_matches('/');
            let glob = globset::GlobBuilder::new(norm)
                // `*` stays within one component, `**` crosses them, as in a shell.
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| DiffError::Pattern {
                    pattern: p.to_string(),
                    reason: e.kind().to_string(),
                })?;
            b.add(glob);
            kept.push(p.to_string());
        }
        let set = b.build().map_err(|e| DiffError::Pattern {
            pattern: kept.join(" "),
            reason: e.to_string(),
        })?;
        Ok(PathFilter {
            patterns: kept,
            set: Some(set),
        })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Is the normalised `path` (or a parent of it) ignored?
    pub fn is_ignored(&self, path: &[u8]) -> bool {
        let Some(set) = &self.set else { return false };
        let path = strip_root(path);
        let mut end = path.len();
        loop {
            let p = &path[..end];
            if !p.is_empty() && set.is_match(as_path(p)) {
                return true;
            }
            match p.iter().rposition(|&b| b == b'/') {
                Some(i) => end = i,
                None => return false,
            }
        }
    }
}

fn as_path(b: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    Path::new(std::ffi::OsStr::from_bytes(b))
}

fn strip_root(mut p: &[u8]) -> &[u8] {
    loop {
        if let Some(r) = p.strip_prefix(b"./") {
            p = r;
        } else if let Some(r) = p.strip_prefix(b"/") {
            p = r;
        } else {
            return p;
        }
    }
}

/// What to leave out of the comparison.
#[derive(Debug, Clone)]
pub struct Options {
    /// File mtimes (and pax atime/ctime), config `created`, history `created`, the
    /// `org.opencontainers.image.created` label/annotation.
    pub ignore_timestamps: bool,
    /// The config's `history`.
    pub ignore_history: bool,
    /// The order of entries within a layer.
    pub ignore_file_order: bool,
    /// Bits of the tar header's mode beyond `0o7777` (file type bits some writers add).
    pub ignore_file_mode_redundant_bits: bool,
    /// `org.opencontainers.image.ref.name` and `io.containerd.image.name` annotations/labels.
    pub ignore_image_name: bool,
    /// How the tar is written rather than what it holds: header format, name spelling
    /// (`./a` vs `a`, trailing `/`), pax records that only encode header fields, the size of
    /// the tar stream, a root entry `./` listed on one side only, and layer compression.
    pub ignore_tar_format: bool,
    pub ignore_paths: PathFilter,
    /// Compare the merged rootfs trees instead of layer by layer; the layer split (the
    /// manifest's `layers`, the config's `rootfs.diff_ids`) is then not compared.
    pub squash: bool,
    /// Largest file kept for an inline unified diff (0: no inline diffs).
    pub inline_diff_max: u64,
    /// Most bytes of small files held at once while entries wait for their counterpart.
    pub inline_budget: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ignore_timestamps: false,
            ignore_history: false,
            ignore_file_order: false,
            ignore_file_mode_redundant_bits: false,
            ignore_image_name: false,
            ignore_tar_format: false,
            ignore_paths: PathFilter::default(),
            squash: false,
            inline_diff_max: 64 * 1024,
            inline_budget: 64 * 1024 * 1024,
        }
    }
}

impl Options {
    /// Every ignore option (`--semantic`).
    pub fn semantic() -> Self {
        Options {
            ignore_timestamps: true,
            ignore_history: true,
            ignore_file_order: true,
            ignore_file_mode_redundant_bits: true,
            ignore_image_name: true,
            ignore_tar_format: true,
            ..Options::default()
        }
    }

    /// With anything ignored, digests and sizes of documents and blobs are not compared
    /// themselves: they summarise content that is compared under the ignore rules, and would
    /// differ for every ignored difference.
    pub fn compares_digests(&self) -> bool {
        !(self.ignore_timestamps
            || self.ignore_history
            || self.ignore_file_order
            || self.ignore_file_mode_redundant_bits
            || self.ignore_image_name
            || self.ignore_tar_format
            || self.squash
            || !self.ignore_paths.patterns.is_empty())
    }
}

pub use entry::compare_meta;

/// Compare two merged trees path by path (`squash`).
pub fn compare_trees(
    a: &repro_rootfs::Tree,
    b: &repro_rootfs::Tree,
    opts: &Options,
) -> Vec<Difference> {
    let mut out = Vec::new();
    let mut ia = a.entries.iter().peekable();
    let mut ib = b.entries.iter().peekable();
    loop {
        let (pa, pb) = (ia.peek(), ib.peek());
        let ord = match (pa, pb) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((x, _)), Some((y, _))) => x.cmp(y),
        };
        let (ma, mb) = match ord {
            std::cmp::Ordering::Less => (ia.next().map(|(p, n)| Meta::from_node(p, n)), None),
            std::cmp::Ordering::Greater => (None, ib.next().map(|(p, n)| Meta::from_node(p, n))),
            std::cmp::Ordering::Equal => (
                ia.next().map(|(p, n)| Meta::from_node(p, n)),
                ib.next().map(|(p, n)| Meta::from_node(p, n)),
            ),
        };
        let path = ma.as_ref().or(mb.as_ref()).map(|m| m.path.clone());
        let Some(path) = path else { break };
        if opts.ignore_paths.is_ignored(&path) {
            continue;
        }
        compare_meta(ma.as_ref(), mb.as_ref(), None, opts, &mut out);
    }
    out
}

#[cfg(test)]
mod tests;
