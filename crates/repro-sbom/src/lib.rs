//! Software bills of materials for an image's pacman packages: SPDX 2.3 JSON and
//! CycloneDX 1.6 JSON, as canonical bytes.
//!
//! The core is pure: an [`Inventory`] (the pacman databases, see `repro-inventory`), the
//! image's identity ([`Subject`]) and, for `--files`, the root's files ([`FileEntry`]) go
//! in; JSON bytes come out ([`generate`]). The I/O for `--files` (hashing a directory,
//! reading layers for SHA-1) is in [`files`].
//!
//! What the documents say:
//! - the image is the root element (SPDX package `SPDXRef-Image`, described by the
//!   document; CycloneDX `metadata.component`), with its manifest digest, platform and
//!   config digest; for `--rootfs` the directory;
//! - one package/component per installed pacman package, with its purl ([`purl::alpm`]),
//!   declared license as an SPDX expression ([`license`]), packager as supplier, build
//!   date, package file name and sha256 when a sync db the image carries lists them;
//! - dependencies resolved through `%PROVIDES%` ([`deps`]); entries nothing installed
//!   satisfies are listed (SPDX package `comment`, CycloneDX property
//!   `repro-image:alpm:unresolved-depends`), never dropped silently;
//! - with files: every regular file and hardlink with SHA-1 and SHA-256, contained by the
//!   packages owning it (`%FILES%`), the rest by the image.
//!
//! Determinism: the output depends only on the inputs. Everything is sorted; identifiers
//! are derived from names ([`spdx_id`]); no time is written unless given: CycloneDX's
//! `metadata.timestamp` only from [`Options::created`]; SPDX, which requires
//! `creationInfo.created`, takes [`Options::created`], else the image config's `created`,
//! else fails with [`SbomError::NoCreationTime`] (a `--rootfs` directory has no config).
//! The SPDX `documentNamespace` is `https://repro-image.invalid/spdx/<manifest digest>`
//! (`…/rootfs/<sha256 of the package set>` for a directory; `/files` appended with files),
//! and the CycloneDX `serialNumber` a UUIDv5 of the same key.

use std::collections::{BTreeMap, BTreeSet};

use repro_inventory::{Inventory, Package};
use sha2::{Digest as _, Sha256};

mod cdx;
pub mod deps;
pub mod files;
pub mod license;
pub mod purl;
mod spdx_doc;
pub mod time;

pub use files::{FileEntry, Sha1Index};

/// Where the document namespace lives (a reserved `.invalid` host: it names, it does not
/// resolve).
pub const NAMESPACE_BASE: &str = "https://repro-image.invalid";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// SPDX 2.3, JSON.
    SpdxJson,
    /// CycloneDX 1.6, JSON.
    CycloneDxJson,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "spdx-json" => Ok(Format::SpdxJson),
            "cyclonedx-json" => Ok(Format::CycloneDxJson),
            other => Err(format!(
                "unknown SBOM format {other:?} (spdx-json or cyclonedx-json)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Image,
    /// A directory (`--rootfs DIR`).
    Rootfs,
}

/// What the SBOM is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub kind: SubjectKind,
    /// The image as the user named it (transport spelling), or the directory.
    pub name: String,
    /// `sha256:…` of the manifest read (images).
    pub manifest_digest: Option<String>,
    /// `sha256:…` of the config (images).
    pub config_digest: Option<String>,
    /// `os/arch[/variant]` from the config (images).
    pub platform: Option<String>,
    /// The config's `created`, as written.
    pub created: Option<String>,
    /// The image's own purl (`pkg:oci/…`), when it has one (registry images).
    pub purl: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Creation time (seconds since the epoch) from `--created` or `SOURCE_DATE_EPOCH`.
    pub created: Option<i64>,
    /// With `--files`: the root's files.
    pub files: Option<Vec<FileEntry>>,
    /// Written as the creating tool's version.
    pub tool_version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SbomError {
    #[error(
        "SPDX requires a creation time (creationInfo.created) and {0} has none: pass --created TIME \
         (RFC 3339 or seconds) or set SOURCE_DATE_EPOCH"
    )]
    NoCreationTime(String),
    #[error("the image config's created time {0:?} is not RFC 3339: pass --created TIME")]
    BadConfigCreated(String),
    #[error("{0}: no SHA-1 known, and SPDX 2.3 requires one for every file")]
    MissingSha1(String),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// First 12 hex digits of the sha256 of `s`: a stable suffix that tells apart names
/// which sanitise to the same identifier.
pub fn short_hash(s: &str) -> String {
    hex::encode(&Sha256::digest(s.as_bytes())[..6])
}

/// `s` in SPDX's idstring charset (`A-Za-z0-9.-`): every other character becomes `-`.
pub fn spdx_id(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() { "-".into() } else { out }
}

/// `prefix` + the sanitised name of each item; where two different items sanitise to the
/// same id, each of them gets `-<short_hash(key)>` appended. `items` are (name, unique key).
pub fn unique_ids(prefix: &str, items: &[(&str, &str)]) -> Vec<String> {
    let base: Vec<String> = items
        .iter()
        .map(|(n, _)| format!("{prefix}{}", spdx_id(n)))
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for b in &base {
        *count.entry(b.as_str()).or_default() += 1;
    }
    let mut out: Vec<String> = base
        .iter()
        .zip(items)
        .map(|(b, (_, key))| {
            if count[b.as_str()] > 1 {
                format!("{b}-{}", short_hash(key))
            } else {
                b.clone()
            }
        })
        .collect();
    // Astronomically unlikely: a suffixed id equal to another one. Fall back to full hashes.
    let distinct: BTreeSet<&String> = out.iter().collect();
    if distinct.len() != out.len() {
        out = items
            .iter()
            .map(|(n, key)| {
                format!(
                    "{prefix}{}-{}",
                    spdx_id(n),
                    hex::encode(Sha256::digest(key.as_bytes()))
                )
            })
            .collect();
    }
    out
}

/// A packager string `Name <email>` split; `None` for pacman's "Unknown Packager" and
/// empty strings.
pub fn packager(s: &str) -> Option<(String, Option<String>)> {
    let s = s.trim();
    if s.is_empty() || s == "Unknown Packager" {
        return None;
    }
    if let Some(open) = s.rfind('<')
        && let Some(email) = s[open + 1..].strip_suffix('>')
    {
        let name = s[..open].trim();
        let email = email.trim();
        if !email.is_empty() && !email.contains(['<', '>', ' ']) {
            let name = if name.is_empty() { email } else { name };
            return Some((name.to_string(), Some(email.to_string())));
        }
    }
    Some((s.to_string(), None))
}

/// `homepage` and CycloneDX `website` only take URLs; pacman's `%URL%` is free text.
fn url_ok(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://") || u.starts_with("ftp://"))
        && u.len() > 8
        && !u
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
}

/// What both formats are made from, computed once.
pub(crate) struct Model<'a> {
    pub inv: &'a Inventory,
    pub subject: &'a Subject,
    pub opts: &'a Options,
    pub pkgs: &'a [Package],
    pub spdx_ids: Vec<String>,
    pub purls: Vec<String>,
    pub licenses: license::Licenses,
    pub deps: Vec<deps::Resolved>,
    /// (package file name, sha256) from a sync db.
    pub package_file: Vec<Option<(String, String)>>,
    /// Files sorted by path, their SPDX ids and owning packages.
    pub files: Vec<&'a FileEntry>,
    pub file_ids: Vec<String>,
    pub file_owners: Vec<Vec<usize>>,
    /// Document key: the manifest digest, or `rootfs/<hash>`, plus `/files`.
    pub key: String,
    /// Sorted human-readable notes (inventory errors).
    pub notes: Vec<String>,
}

impl<'a> Model<'a> {
    fn new(inv: &'a Inventory, subject: &'a Subject, opts: &'a Options) -> Self {
        let pkgs = &inv.packages[..];
        let items: Vec<(&str, &str)> = pkgs
            .iter()
            .map(|p| (p.name.as_str(), p.dir.as_str()))
            .collect();
        let spdx_ids = unique_ids("SPDXRef-Package-alpm-", &items);
        let purls = pkgs
            .iter()
            .map(|p| purl::alpm(&p.name, &p.version, &p.arch, &p.base))
            .collect();
        let names: Vec<&str> = pkgs.iter().map(|p| p.name.as_str()).collect();
        let lic: Vec<&[String]> = pkgs.iter().map(|p| &p.licenses[..]).collect();
        let licenses = license::map_all(&names, &lic);
        let nodes: Vec<deps::Node> = pkgs
            .iter()
            .map(|p| deps::Node {
                name: &p.name,
                depends: &p.depends,
                provides: &p.provides,
            })
            .collect();
        let deps = deps::resolve(&nodes);
        let mut sync: BTreeMap<(&str, &str, &str), (String, String)> = BTreeMap::new();
        for db in &inv.sync_dbs {
            for sp in &db.packages {
                sync.entry((&sp.name, &sp.version, &sp.arch))
                    .or_insert_with(|| (sp.filename.clone(), sp.sha256.clone()));
            }
        }
        let package_file = pkgs
            .iter()
            .map(|p| {
                sync.get(&(p.name.as_str(), p.version.as_str(), p.arch.as_str()))
                    .cloned()
            })
            .collect();

        let mut files: Vec<&FileEntry> = opts.files.iter().flatten().collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        let fitems: Vec<(&str, &str)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.path.as_str()))
            .collect();
        let file_ids = unique_ids("SPDXRef-File-", &fitems);
        let mut owner_of: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        if opts.files.is_some() {
            for (i, p) in pkgs.iter().enumerate() {
                if let Some(f) = &p.parsed.files {
                    for path in f.as_ref() {
                        let s = path.to_string_lossy();
                        let s = s.trim_matches('/');
                        owner_of.entry(s.to_string()).or_default().push(i);
                    }
                }
            }
        }
        let file_owners = files
            .iter()
            .map(|f| owner_of.get(&f.path).cloned().unwrap_or_default())
            .collect();

        let mut key = match (&subject.kind, &subject.manifest_digest) {
            (SubjectKind::Image, Some(d)) => d.clone(),
            _ => {
                let mut h = Sha256::new();
                for p in pkgs {
                    let mtree = p.mtree.as_ref().map(|m| m.sha256.as_str()).unwrap_or("");
                    h.update(format!("{}\t{}\t{}\t{mtree}\n", p.name, p.version, p.arch));
                }
                format!("rootfs/{}", hex::encode(h.finalize()))
            }
        };
        if opts.files.is_some() {
            key.push_str("/files");
        }
        let mut notes: Vec<String> = inv.errors.iter().map(|e| e.to_string()).collect();
        notes.sort();
        Model {
            inv,
            subject,
            opts,
            pkgs,
            spdx_ids,
            purls,
            licenses,
            deps,
            package_file,
            files,
            file_ids,
            file_owners,
            key,
            notes,
        }
    }
}

/// The SBOM of `inv` in `opts.format`, pretty-printed JSON ending in a newline. The same
/// inputs give the same bytes.
pub fn generate(inv: &Inventory, subject: &Subject, opts: &Options) -> Result<Vec<u8>, SbomError> {
    let m = Model::new(inv, subject, opts);
    let mut out = match opts.format {
        Format::SpdxJson => spdx_doc::render(&m)?,
        Format::CycloneDxJson => cdx::render(&m)?,
    };
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitised_and_unique() {
        assert_eq!(spdx_id("libsigc++_2.0@x"), "libsigc---2.0-x");
        let ids = unique_ids("P-", &[("a+b", "1"), ("a_b", "2"), ("c", "3")]);
        assert_eq!(ids[2], "P-c");
        assert!(ids[0].starts_with("P-a-b-") && ids[1].starts_with("P-a-b-"));
        assert_ne!(ids[0], ids[1]);
        // Stable: the same key gives the same suffix.
        assert_eq!(
            ids,
            unique_ids("P-", &[("a+b", "1"), ("a_b", "2"), ("c", "3")])
        );
    }

    #[test]
    fn packagers() {
        assert_eq!(
            packager("Jan Alexander Steffens (heftig) <heftig@archlinux.org>"),
            Some((
                "Jan Alexander Steffens (heftig)".into(),
                Some("heftig@archlinux.org".into())
            ))
        );
        assert_eq!(packager("Unknown Packager"), None);
        assert_eq!(
            packager("Arch Build System"),
            Some(("Arch Build System".into(), None))
        );
        assert_eq!(
            packager("<a@b.c>"),
            Some(("a@b.c".into(), Some("a@b.c".into())))
        );
    }
}
