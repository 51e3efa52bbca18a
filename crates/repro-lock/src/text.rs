//! The lock's text: a canonical writer we control key by key, and a reader built on the
//! `toml` crate whose errors are turned into file:line:column plus the field's path.
//!
//! The writer emits a fixed subset of TOML (basic strings, integers, inline string arrays,
//! standard and array tables in a fixed order), so for every lock it wrote,
//! `print(parse(text)) == text`.

use std::fmt::Write as _;

use repro_oci::Digest;
use serde::Deserialize;
use toml::Spanned;

use crate::types::{self, Sha256Hex, Signature, Snapshot};
use crate::{ImagePin, LayerPin, Lock, LockError, PackagePin, Param, PinnedFrom, Recipe, VERSION};

const HEADER: &str =
    "# repro-image lock: the inputs of an image, pinned (format: docs/lockfile.md)\n";

/// A TOML basic string with the escapes TOML requires, and nothing else escaped.
fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn kv(o: &mut String, k: &str, v: &str) {
    let _ = writeln!(o, "{k} = {}", quote(v));
}

fn kv_num(o: &mut String, k: &str, v: impl std::fmt::Display) {
    let _ = writeln!(o, "{k} = {v}");
}

fn kv_list(o: &mut String, k: &str, v: &[String]) {
    let items: Vec<String> = v.iter().map(|s| quote(s)).collect();
    let _ = writeln!(o, "{k} = [{}]", items.join(", "));
}

pub(crate) fn print(l: &Lock) -> String {
    let mut o = String::from(HEADER);
    kv_num(&mut o, "version", VERSION);

    let i = &l.image;
    o.push_str("\n[image]\n");
    kv(&mut o, "reference", &i.reference);
    kv(&mut o, "platform", &i.platform);
    if let Some(d) = &i.index_digest {
        kv(&mut o, "index_digest", d.as_ref());
    }
    kv(&mut o, "digest", i.digest.as_ref());
    kv(&mut o, "media_type", &i.media_type);
    kv(&mut o, "config_digest", i.config_digest.as_ref());
    for layer in &i.layers {
        o.push_str("\n[[image.layer]]\n");
        kv(&mut o, "digest", layer.digest.as_ref());
        kv(&mut o, "diff_id", layer.diff_id.as_ref());
        kv(&mut o, "media_type", &layer.media_type);
        kv_num(&mut o, "size", layer.size);
    }

    let r = &l.recipe;
    o.push_str("\n[recipe]\n");
    kv(&mut o, "name", &r.name);
    kv_num(&mut o, "source_date_epoch", r.source_date_epoch);
    kv(&mut o, "archive", &r.archive);
    kv(&mut o, "archive_snapshot", &r.archive_snapshot.to_string());
    kv_list(&mut o, "repos", &r.repos);
    kv(&mut o, "arch", &r.arch);
    kv_list(&mut o, "group", &r.group);
    if let Some(v) = &r.revision {
        kv(&mut o, "revision", v);
    }
    if let Some(v) = &r.image_version {
        kv(&mut o, "image_version", v);
    }
    if let Some(v) = &r.image_title {
        kv(&mut o, "image_title", v);
    }
    if let Some(v) = &r.image_builder {
        kv(&mut o, "image_builder", v);
    }
    kv(&mut o, "tar", &r.tar);
    kv_num(&mut o, "zstd_level", r.zstd_level);
    kv_num(&mut o, "zstd_window_log", r.zstd_window_log);
    for (table, entries) in [("derived", &r.derived), ("given", &r.given)] {
        if entries.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n[recipe.{table}]");
        for (p, how) in entries {
            kv(&mut o, p.key(), how);
        }
    }

    for p in &l.packages {
        o.push_str("\n[[package]]\n");
        kv(&mut o, "name", &p.name);
        kv(&mut o, "version", &p.version);
        kv(&mut o, "arch", &p.arch);
        if let Some(repo) = &p.repo {
            kv(&mut o, "repo", repo);
        }
        kv(&mut o, "filename", &p.filename);
        kv(&mut o, "url", &p.url);
        kv_num(&mut o, "size", p.size);
        kv(&mut o, "sha256", p.sha256.as_str());
        if let Some(s) = &p.signature {
            kv(&mut o, "signature", &s.to_string());
        }
        kv(&mut o, "mtree_sha256", p.mtree_sha256.as_str());
        kv(&mut o, "pinned_from", p.pinned_from.as_str());
    }
    o
}

// --- reading ------------------------------------------------------------------------------

fn de_digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
    let s = String::deserialize(d)?;
    repro_oci::digest::parse_verifiable(&s).map_err(serde::de::Error::custom)
}

fn de_opt_digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Digest>, D::Error> {
    de_digest(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLock {
    version: Spanned<u32>,
    image: RawImage,
    recipe: RawRecipe,
    #[serde(default)]
    package: Vec<Spanned<RawPackage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    reference: String,
    platform: String,
    #[serde(default, deserialize_with = "de_opt_digest")]
    index_digest: Option<Digest>,
    #[serde(deserialize_with = "de_digest")]
    digest: Digest,
    media_type: String,
    #[serde(deserialize_with = "de_digest")]
    config_digest: Digest,
    #[serde(default)]
    layer: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    #[serde(deserialize_with = "de_digest")]
    digest: Digest,
    #[serde(deserialize_with = "de_digest")]
    diff_id: Digest,
    media_type: String,
    size: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    name: Spanned<String>,
    source_date_epoch: i64,
    archive: Spanned<String>,
    archive_snapshot: Snapshot,
    repos: Vec<String>,
    arch: String,
    group: Vec<String>,
    revision: Option<String>,
    image_version: Option<String>,
    image_title: Option<String>,
    image_builder: Option<String>,
    tar: String,
    zstd_level: i32,
    zstd_window_log: u32,
    derived: Option<Spanned<toml::Table>>,
    given: Option<Spanned<toml::Table>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPackage {
    name: Spanned<String>,
    version: Spanned<String>,
    arch: String,
    repo: Option<String>,
    filename: Spanned<String>,
    url: Spanned<String>,
    size: u64,
    sha256: Sha256Hex,
    signature: Option<Signature>,
    mtree_sha256: Sha256Hex,
    pinned_from: Spanned<String>,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The field at a byte offset, as `table[index].key` (for the canonical layout: the nearest
/// table header above and the key on the line).
fn field_at(text: &str, at: usize) -> String {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[line_start..line_end];
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().to_string())
        .filter(|k| !k.starts_with('[') && !k.is_empty());
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in text[..line_start].lines() {
        let l = l.trim();
        if let Some(h) = l.strip_prefix("[[").and_then(|h| h.strip_suffix("]]")) {
            let n = counts.entry(h.trim().to_string()).or_insert(0);
            *n += 1;
            table = format!("{}[{}]", h.trim(), *n - 1);
        } else if let Some(h) = l.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            table = h.trim().to_string();
        }
    }
    match (table.is_empty(), key) {
        (true, Some(k)) => k,
        (false, Some(k)) => format!("{table}.{k}"),
        (false, None) => table,
        (true, None) => "(top level)".into(),
    }
}

struct Ctx<'a> {
    text: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn at(&self, span: std::ops::Range<usize>, message: impl Into<String>) -> LockError {
        let (line, column) = line_col(self.text, span.start);
        LockError::Parse {
            file: self.file.to_string(),
            line,
            column,
            field: field_at(self.text, span.start),
            message: message.into(),
        }
    }
}

pub(crate) fn parse(text: &str, file: &str) -> Result<Lock, LockError> {
    let cx = Ctx { text, file };
    let raw: RawLock = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.at(span, e.message().trim_end().to_string())
    })?;
    if *raw.version.get_ref() != VERSION {
        return Err(cx.at(
            raw.version.span(),
            format!(
                "lock format version {} is not supported (this repro-image reads version {VERSION})",
                raw.version.get_ref()
            ),
        ));
    }
    let ri = raw.image;
    let image = ImagePin {
        reference: ri.reference,
        platform: ri.platform,
        index_digest: ri.index_digest,
        digest: ri.digest,
        media_type: ri.media_type,
        config_digest: ri.config_digest,
        layers: ri
            .layer
            .into_iter()
            .map(|l| LayerPin {
                digest: l.digest,
                diff_id: l.diff_id,
                media_type: l.media_type,
                size: l.size,
            })
            .collect(),
    };

    let rr = raw.recipe;
    if rr.name.get_ref() != crate::RECIPE_NAME {
        return Err(cx.at(
            rr.name.span(),
            format!(
                "unknown recipe {:?} (known: {:?})",
                rr.name.get_ref(),
                crate::RECIPE_NAME
            ),
        ));
    }
    types::check_url(rr.archive.get_ref()).map_err(|m| cx.at(rr.archive.span(), m))?;
    let provenance = |t: Option<Spanned<toml::Table>>| -> Result<Vec<(Param, String)>, LockError> {
        let Some(t) = t else { return Ok(Vec::new()) };
        let span = t.span();
        let mut v = Vec::new();
        for (k, val) in t.into_inner() {
            let p = Param::from_key(&k)
                .ok_or_else(|| cx.at(span.clone(), format!("unknown recipe parameter {k:?}")))?;
            let s = val
                .as_str()
                .ok_or_else(|| cx.at(span.clone(), format!("{k}: expected a string saying how")))?;
            v.push((p, s.to_string()));
        }
        v.sort_by_key(|(p, _)| *p);
        Ok(v)
    };
    let derived_span = rr.derived.as_ref().map_or(0..0, |t| t.span());
    let recipe = Recipe {
        name: rr.name.into_inner(),
        source_date_epoch: rr.source_date_epoch,
        archive: rr.archive.into_inner(),
        archive_snapshot: rr.archive_snapshot,
        repos: rr.repos,
        arch: rr.arch,
        group: rr.group,
        revision: rr.revision,
        image_version: rr.image_version,
        image_title: rr.image_title,
        image_builder: rr.image_builder,
        tar: rr.tar,
        zstd_level: rr.zstd_level,
        zstd_window_log: rr.zstd_window_log,
        derived: provenance(rr.derived)?,
        given: provenance(rr.given)?,
    };

    let mut packages = Vec::with_capacity(raw.package.len());
    for sp in raw.package {
        let table_span = sp.span();
        let p = sp.into_inner();
        types::check_name(p.name.get_ref()).map_err(|m| cx.at(p.name.span(), m))?;
        types::check_version(p.version.get_ref()).map_err(|m| cx.at(p.version.span(), m))?;
        types::check_filename(p.filename.get_ref(), p.name.get_ref())
            .map_err(|m| cx.at(p.filename.span(), m))?;
        types::check_url(p.url.get_ref()).map_err(|m| cx.at(p.url.span(), m))?;
        let pinned_from = match p.pinned_from.get_ref().as_str() {
            "snapshot" => PinnedFrom::Snapshot,
            "packages" => PinnedFrom::Packages,
            other => {
                return Err(cx.at(
                    p.pinned_from.span(),
                    format!("{other:?}: expected \"snapshot\" or \"packages\""),
                ));
            }
        };
        if let Some(prev) = packages.last() {
            let prev: &PackagePin = prev;
            if prev.name.as_str() >= p.name.get_ref().as_str() {
                return Err(cx.at(
                    p.name.span(),
                    format!(
                        "package {:?} after {:?}: packages must be sorted by name, each once",
                        p.name.get_ref(),
                        prev.name
                    ),
                ));
            }
        }
        let _ = table_span;
        packages.push(PackagePin {
            name: p.name.into_inner(),
            version: p.version.into_inner(),
            arch: p.arch,
            repo: p.repo,
            filename: p.filename.into_inner(),
            url: p.url.into_inner(),
            size: p.size,
            sha256: p.sha256,
            signature: p.signature,
            mtree_sha256: p.mtree_sha256,
            pinned_from,
        });
    }
    let lock = Lock {
        image,
        recipe,
        packages,
    };
    lock.validate().map_err(|m| cx.at(derived_span, m))?;
    Ok(lock)
}

/// Invariants beyond single fields (a constructed lock is checked before it is saved).
pub(crate) fn validate(l: &Lock) -> Result<(), String> {
    let r = &l.recipe;
    for (p, _) in &r.derived {
        if r.given.iter().any(|(q, _)| q == p) {
            return Err(format!(
                "recipe parameter {} is listed both as derived and as given",
                p.key()
            ));
        }
    }
    for (p, _) in r.derived.iter().chain(&r.given) {
        let present = match p {
            Param::Revision => r.revision.is_some(),
            Param::ImageVersion => r.image_version.is_some(),
            Param::ImageTitle => r.image_title.is_some(),
            Param::ImageBuilder => r.image_builder.is_some(),
            Param::SourceDateEpoch | Param::ArchiveSnapshot | Param::Group => true,
        };
        if !present {
            return Err(format!(
                "recipe parameter {} has a provenance but no value",
                p.key()
            ));
        }
    }
    for w in l.packages.windows(2) {
        if w[0].name >= w[1].name {
            return Err(format!(
                "packages not sorted by name or not unique: {:?} before {:?}",
                w[0].name, w[1].name
            ));
        }
    }
    for p in &l.packages {
        types::check_name(&p.name)?;
        types::check_version(&p.version)?;
        types::check_filename(&p.filename, &p.name)?;
        types::check_url(&p.url)?;
    }
    types::check_url(&r.archive)?;
    Ok(())
}
