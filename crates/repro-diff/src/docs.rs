//! Index, manifest and config compared field by field.
//!
//! Each document's JSON is flattened into `(field path, value)` leaves in document order
//! (`config.Labels["org.opencontainers.image.version"]`, `history[3].created`,
//! `layers[0].digest`); `config.Env` is keyed by variable name, so one changed variable is
//! one difference, not a shifted list. Values are the JSON text of the leaf (strings
//! unquoted); an empty object or array is a leaf of its own, so presence is visible.

use repro_oci::{ConfigDoc, ManifestDoc, TopLevel};
use serde_json::Value;

use crate::{Difference, Level, Options};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

type Leaves = Vec<(Vec<Seg>, String)>;

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                let plain = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if plain {
                    if !s.is_empty() {
                        s.push('.');
                    }
                    s.push_str(k);
                } else {
                    s.push_str(&format!("[{}]", Value::String(k.clone())));
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn flatten(v: &Value, path: &mut Vec<Seg>, out: &mut Leaves) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                path.push(Seg::Key(k.clone()));
                flatten(x, path, out);
                path.pop();
            }
        }
        Value::Array(a) if !a.is_empty() => {
            // `Env` is a list of NAME=value: keyed by name.
            let is_env = matches!(path.last(), Some(Seg::Key(k)) if k == "Env")
                && a.iter()
                    .all(|e| e.as_str().is_some_and(|s| s.contains('=')));
            for (i, x) in a.iter().enumerate() {
                match (is_env, x.as_str().and_then(|s| s.split_once('='))) {
                    (true, Some((name, value))) => {
                        path.push(Seg::Key(name.to_string()));
                        out.push((path.clone(), value.to_string()));
                    }
                    _ => {
                        path.push(Seg::Index(i));
                        flatten(x, path, out);
                    }
                }
                path.pop();
            }
        }
        Value::String(s) => out.push((path.clone(), s.clone())),
        other => out.push((path.clone(), other.to_string())),
    }
}

fn leaves(bytes: &[u8]) -> Leaves {
    let mut out = Vec::new();
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => flatten(&v, &mut Vec::new(), &mut out),
        // The documents were parsed before; this is only a fallback.
        Err(_) => out.push((Vec::new(), String::from_utf8_lossy(bytes).into_owned())),
    }
    out
}

fn key_is(seg: Option<&Seg>, names: &[&str]) -> bool {
    matches!(seg, Some(Seg::Key(k)) if names.contains(&k.as_str()))
}

const IMAGE_NAME_KEYS: &[&str] = &[
    "org.opencontainers.image.ref.name",
    "io.containerd.image.name",
];
const CREATED_KEY: &str = "org.opencontainers.image.created";

/// Is the leaf at `path` left out under `opts`? Rules common to all three documents.
fn ignored_common(path: &[Seg], opts: &Options) -> bool {
    let n = path.len();
    let in_map = |names: &[&str]| {
        n >= 2 && key_is(path.get(n - 2), &["annotations", "Labels"]) && key_is(path.last(), names)
    };
    if opts.ignore_image_name && in_map(IMAGE_NAME_KEYS) {
        return true;
    }
    if opts.ignore_timestamps && in_map(&[CREATED_KEY]) {
        return true;
    }
    false
}

/// Descriptor digests and sizes (`config.digest`, `layers[i].size`, `manifests[i].digest`).
fn is_descriptor_digest(path: &[Seg]) -> bool {
    let n = path.len();
    n >= 2
        && key_is(path.last(), &["digest", "size"])
        && (matches!(path.first(), Some(Seg::Key(k)) if k == "config" && n == 2)
            || (n == 3
                && key_is(path.first(), &["layers", "manifests"])
                && matches!(path.get(1), Some(Seg::Index(_)))))
}

/// The layer media type without its compression, for `ignore_tar_format`.
fn strip_compression(mt: &str) -> String {
    for suffix in ["+gzip", "+zstd", "+xz", ".gzip", ".zstd"] {
        if let Some(s) = mt.strip_suffix(suffix) {
            return s.to_string();
        }
    }
    mt.to_string()
}

fn compare_leaves(
    level: Level,
    a: &Leaves,
    b: &Leaves,
    skip: impl Fn(&[Seg]) -> bool,
    value: impl Fn(&[Seg], &str) -> String,
    out: &mut Vec<Difference>,
) {
    // Document order of A, then the fields only B has, in B's order.
    let bmap: std::collections::BTreeMap<String, &String> =
        b.iter().map(|(p, v)| (render(p), v)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for (p, v) in a {
        let name = render(p);
        seen.insert(name.clone());
        if skip(p) {
            continue;
        }
        let other = bmap.get(&name).map(|w| value(p, w));
        let mine = value(p, v);
        if other.as_deref() != Some(mine.as_str()) {
            out.push(Difference::new(level, name, Some(mine), other));
        }
    }
    for (p, w) in b {
        let name = render(p);
        if seen.contains(&name) || skip(p) {
            continue;
        }
        out.push(Difference::new(level, name, None, Some(value(p, w))));
    }
}

/// Compare two configs field by field (and, when digests count, their digests).
pub fn compare_configs(a: &ConfigDoc, b: &ConfigDoc, opts: &Options) -> Vec<Difference> {
    let mut out = Vec::new();
    if opts.compares_digests() && a.raw.digest != b.raw.digest {
        out.push(Difference::new(
            Level::Config,
            "digest",
            Some(a.raw.digest.to_string()),
            Some(b.raw.digest.to_string()),
        ));
    }
    let skip = |p: &[Seg]| {
        if ignored_common(p, opts) {
            return true;
        }
        let top = p.first();
        if opts.ignore_history && key_is(top, &["history"]) {
            return true;
        }
        if opts.ignore_timestamps
            && (p.len() == 1 && key_is(top, &["created"])
                || key_is(top, &["history"]) && key_is(p.last(), &["created"]))
        {
            return true;
        }
        // diff_ids are the layers' digests: compared there.
        (!opts.compares_digests() || opts.squash)
            && key_is(top, &["rootfs"])
            && key_is(p.get(1), &["diff_ids"])
    };
    compare_leaves(
        Level::Config,
        &leaves(&a.raw.bytes),
        &leaves(&b.raw.bytes),
        skip,
        |_, v| v.to_string(),
        &mut out,
    );
    out
}

/// Compare two image manifests field by field (and their digests when digests count).
pub fn compare_manifests(a: &ManifestDoc, b: &ManifestDoc, opts: &Options) -> Vec<Difference> {
    let mut out = Vec::new();
    if opts.compares_digests() && a.raw.digest != b.raw.digest {
        out.push(Difference::new(
            Level::Manifest,
            "digest",
            Some(a.raw.digest.to_string()),
            Some(b.raw.digest.to_string()),
        ));
    }
    let skip = |p: &[Seg]| {
        ignored_common(p, opts)
            || (!opts.compares_digests() && is_descriptor_digest(p))
            || (opts.squash && key_is(p.first(), &["layers"]))
    };
    let value = |p: &[Seg], v: &str| {
        let layer_mt =
            p.len() == 3 && key_is(p.first(), &["layers"]) && key_is(p.last(), &["mediaType"]);
        if opts.ignore_tar_format && layer_mt {
            strip_compression(v)
        } else {
            v.to_string()
        }
    };
    compare_leaves(
        Level::Manifest,
        &leaves(&a.raw.bytes),
        &leaves(&b.raw.bytes),
        skip,
        value,
        &mut out,
    );
    out
}

/// Compare the top-level documents when both are indexes; when one is an index and the
/// other a manifest, say so (only when digests count: the platform's manifests are compared
/// either way). Two manifests give nothing here.
pub fn compare_top_levels(a: &TopLevel, b: &TopLevel, opts: &Options) -> Vec<Difference> {
    let mut out = Vec::new();
    match (a, b) {
        (TopLevel::Index(x), TopLevel::Index(y)) => {
            if opts.compares_digests() && x.raw.digest != y.raw.digest {
                out.push(Difference::new(
                    Level::Index,
                    "digest",
                    Some(x.raw.digest.to_string()),
                    Some(y.raw.digest.to_string()),
                ));
            }
            let skip = |p: &[Seg]| {
                ignored_common(p, opts) || (!opts.compares_digests() && is_descriptor_digest(p))
            };
            compare_leaves(
                Level::Index,
                &leaves(&x.raw.bytes),
                &leaves(&y.raw.bytes),
                skip,
                |_, v| v.to_string(),
                &mut out,
            );
        }
        (TopLevel::Manifest(_), TopLevel::Manifest(_)) => {}
        _ if opts.compares_digests() => {
            let kind = |t: &TopLevel| match t {
                TopLevel::Index(_) => "index",
                TopLevel::Manifest(_) => "manifest",
            };
            out.push(Difference::new(
                Level::Index,
                "kind",
                Some(kind(a).into()),
                Some(kind(b).into()),
            ));
        }
        _ => {}
    }
    out
}
