//! The decision for each level, from what the edge read. Pure: no I/O, no clock.

use repro_oci::{Blob, Digest};

use repro_rebuilderd::quorum::{PackageStatus, Verdict};

use crate::blob::LayerRead;
use crate::{FileDifference, Level, LevelReport, Status};

/// Where pacman keeps an installed package's `desc` (with `%INSTALLDATE%`).
pub fn is_local_desc(path: &str) -> bool {
    let p = path.trim_start_matches('/');
    p.strip_prefix("var/lib/pacman/local/")
        .and_then(|rest| rest.strip_suffix("/desc"))
        .is_some_and(|dir| !dir.is_empty() && !dir.contains('/'))
}

/// A local db `desc` without its `%INSTALLDATE%` section (the header line, the value line
/// and the blank line after it), for comparing two installs that differ only in when.
pub fn strip_install_date(desc: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(desc.len());
    let mut lines = desc.split_inclusive(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line.strip_suffix(b"\n").unwrap_or(line) == b"%INSTALLDATE%" {
            // the value, then the separating blank line
            lines.next();
            if lines.peek().is_some_and(|l| *l == b"\n") {
                lines.next();
            }
            continue;
        }
        out.extend_from_slice(line);
    }
    out
}

/// An entry of the pacman keyring that `pacman-key --init` generates (random key material),
/// present in the original only: the repro recipe removes `etc/pacman.d/gnupg/*`, a recipe
/// without that step ships it.
pub fn is_keyring_leftover(d: &FileDifference) -> bool {
    d.field == "entry"
        && d.rebuilt.is_none()
        && d.path.as_deref().is_some_and(|p| {
            p.trim_start_matches('/')
                .strip_prefix("etc/pacman.d/gnupg/")
                .is_some_and(|rest| !rest.is_empty())
        })
}

fn plural(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// The evidence level: every package reproduced by at least `quorum` of the `n` rebuilders,
/// as `repro_rebuilderd::assess` decided it (exact matching; a GOOD against a BAD is
/// disputed; a GOOD counts only with an attestation signed by the rebuilder's key for the
/// pinned file's sha256 when `attested` says attestations were required).
pub fn evidence(
    statuses: &[PackageStatus],
    quorum: usize,
    n: usize,
    attested: bool,
) -> LevelReport {
    let mut shown = Vec::new();
    for p in statuses.iter().filter(|p| p.verdict != Verdict::Reproduced) {
        let who: Vec<String> = p
            .rebuilders
            .iter()
            .map(|r| {
                let a = match &r.attestation {
                    Some(a) if r.said.is_good() && !a.fully_verified() => {
                        format!(" ({})", a.describe())
                    }
                    _ => String::new(),
                };
                format!("{} {}{a}", r.rebuilder, r.said.describe())
            })
            .collect();
        shown.push(format!(
            "{} {} {} ({})",
            p.name,
            p.version,
            p.verdict.as_str(),
            who.join(", ")
        ));
    }
    let total = statuses.len();
    let how = if attested {
        "exact name, version, architecture; attestation verified for the pinned sha256"
    } else {
        "exact name, version, architecture"
    };
    let (status, why) = if shown.is_empty() {
        (
            Status::Match,
            format!(
                "all {total} packages reproduced by at least {quorum} of {n} rebuilders ({how})"
            ),
        )
    } else {
        (
            Status::Differs,
            format!(
                "{} of {total} packages not reproduced by at least {quorum} of {n} rebuilders ({how}), first {}",
                shown.len(),
                shown[0]
            ),
        )
    };
    let mut r = LevelReport::new(Level::Evidence, status, true, why);
    r.shown = shown;
    r
}

/// The tree level.
///
/// - `full`: every field compared (times included);
/// - `content`: the comparison without times, with the `desc` files that differ only in
///   `%INSTALLDATE%` taken out (`install_dates` lists them).
///
/// What remains of `content` besides the keyring a recipe without the repro recipe's
/// keyring removal leaves ([`is_keyring_leftover`]) is unexplained. `entries` is the
/// original tree's entry count, for the line.
pub fn tree(
    entries: usize,
    full: Vec<FileDifference>,
    content: Vec<FileDifference>,
    install_dates: &[String],
) -> LevelReport {
    if full.is_empty() {
        return LevelReport::new(
            Level::Tree,
            Status::Match,
            true,
            format!(
                "all {entries} entries equal: type, path, mode, owner, size, sha256, link target, xattrs, mtime"
            ),
        );
    }
    let (keyring, content): (Vec<FileDifference>, Vec<FileDifference>) =
        content.into_iter().partition(is_keyring_leftover);
    if content.is_empty() {
        let mtimes = full.iter().filter(|d| d.field == "mtime").count();
        let mut parts = Vec::new();
        if mtimes > 0 {
            parts.push(format!("{} mtimes", plural(mtimes, "entry's", "entries'")));
        }
        if !install_dates.is_empty() {
            parts.push(format!(
                "{} %INSTALLDATE% in the local db",
                plural(install_dates.len(), "package's", "packages'")
            ));
        }
        let mut why = if parts.is_empty() {
            "the content matches".to_string()
        } else {
            format!(
                "timestamps differ ({}): not normalised to SOURCE_DATE_EPOCH as the repro recipe does",
                parts.join(", ")
            )
        };
        if !keyring.is_empty() {
            why.push_str(&format!(
                "; the original keeps the pacman keyring pacman-key --init generated ({}, random key material the repro recipe removes)",
                plural(keyring.len(), "entry", "entries")
            ));
        }
        let rest = entries - keyring.len();
        why.push_str(&format!(
            "; otherwise the content matches (tree without times: {rest} entries equal)"
        ));
        let mut r = LevelReport::new(Level::Tree, Status::Explained, true, why);
        r.shown.push(format!(
            "tree without times: {rest} entries equal in type, path, mode, owner, size, sha256, link target, xattrs"
        ));
        if !install_dates.is_empty() {
            r.shown.push(format!(
                "{} equal once %INSTALLDATE% is left out",
                plural(
                    install_dates.len(),
                    "local db desc file",
                    "local db desc files"
                )
            ));
        }
        let mut listed = keyring;
        listed.extend(full);
        return r.with_differences(listed);
    }
    let paths: std::collections::BTreeSet<&str> =
        content.iter().filter_map(|d| d.path.as_deref()).collect();
    let first = &content[0];
    let mut why = format!(
        "{} in content, first {}",
        plural(paths.len(), "entry differs", "entries differ"),
        first.name()
    );
    if first.class == Some("modified") {
        why.push_str(": changed after the package installed it, and not by our build");
    }
    LevelReport::new(Level::Tree, Status::Differs, true, why).with_differences(content)
}

/// One layer as the tar level sees it.
#[derive(Debug, Clone)]
pub struct TarLayer {
    /// The original config's `rootfs.diff_ids` entry.
    pub diff_id: Option<Digest>,
    /// What the original blob really decompresses to.
    pub decompressed: Digest,
    /// The rebuilt layer tar's digest (`None`: the rebuild has no such layer).
    pub rebuilt: Option<Digest>,
}

/// The tar level: the layers' uncompressed bytes (diff_ids). `layer_diffs` are the diff
/// engine's entry-level differences of the layers that differ.
pub fn tar(
    layers: &[TarLayer],
    rebuilt_count: usize,
    layer_diffs: Vec<FileDifference>,
) -> LevelReport {
    let mut bad = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        if let Some(d) = &l.diff_id
            && *d != l.decompressed
        {
            bad.push(format!(
                "layer {}: the original's config says diff_id {d} but its blob decompresses to {}",
                i + 1,
                l.decompressed
            ));
        }
        match &l.rebuilt {
            None => bad.push(format!("layer {}: the rebuild has no such layer", i + 1)),
            Some(r) if *r != l.decompressed => bad.push(format!(
                "layer {}: {} (original) != {r} (rebuilt)",
                i + 1,
                l.decompressed
            )),
            Some(_) => {}
        }
    }
    if rebuilt_count > layers.len() {
        bad.push(format!(
            "the rebuild has {rebuilt_count} layers, the original {}",
            layers.len()
        ));
    }
    if bad.is_empty() {
        let mut r = LevelReport::new(
            Level::Tar,
            Status::Match,
            true,
            format!(
                "all {} layers' uncompressed bytes equal (diff_ids)",
                layers.len()
            ),
        );
        r.shown = layers
            .iter()
            .enumerate()
            .map(|(i, l)| format!("layer {}: {}", i + 1, l.decompressed))
            .collect();
        return r;
    }
    let mut why = bad[0].clone();
    if let Some(d) = layer_diffs.first() {
        why.push_str(&format!("; first entry difference {}", d.name()));
    } else if bad.len() > 1 {
        why.push_str(&format!(" (and {} more)", bad.len() - 1));
    }
    let mut r = LevelReport::new(Level::Tar, Status::Differs, true, why);
    r.shown = bad;
    r.with_differences(layer_diffs)
}

/// One layer as the blob level sees it.
#[derive(Debug, Clone)]
pub struct BlobLayer {
    /// The original manifest's layer digest and media type.
    pub digest: Digest,
    pub media_type: String,
    pub read: LayerRead,
    /// The rebuilt layer's blob digest and its uncompressed tar digest (the same for an
    /// uncompressed rebuild).
    pub rebuilt_blob: Option<Digest>,
    pub rebuilt_tar: Option<Digest>,
}

impl BlobLayer {
    /// `exact`, `equivalent` or `differs` and why.
    pub fn judge(&self) -> (Status, String) {
        // An uncompressed original equal to the reproduced tar is exact too.
        if Some(&self.digest) == self.rebuilt_blob.as_ref()
            || Some(&self.digest) == self.rebuilt_tar.as_ref()
        {
            return (Status::Match, format!("{} reproduced exactly", self.digest));
        }
        let Some(tar) = &self.rebuilt_tar else {
            return (Status::Differs, "the rebuild has no such layer".into());
        };
        if self.read.decompressed != *tar {
            return (
                Status::Differs,
                format!(
                    "{} decompresses to {}, not to the reproduced tar {tar} (see the tar level)",
                    self.digest, self.read.decompressed
                ),
            );
        }
        if !self.read.framing.is_clean() {
            return (
                Status::Differs,
                format!(
                    "{} decompresses to the reproduced tar, but the stream carries more: {}",
                    self.digest,
                    self.read.framing.describe()
                ),
            );
        }
        (
            Status::Equivalent,
            format!(
                "{} ({}) is not replayed (another compressor) but decompresses exactly to the reproduced tar {tar} ({} bytes; {})",
                self.digest,
                self.media_type,
                self.read.decompressed_size,
                self.read.framing.describe()
            ),
        )
    }
}

/// The blob level: each layer exact, or shown equivalent.
pub fn blob(layers: &[BlobLayer]) -> LevelReport {
    let judged: Vec<(Status, String)> = layers.iter().map(BlobLayer::judge).collect();
    let shown: Vec<String> = judged
        .iter()
        .enumerate()
        .map(|(i, (s, m))| format!("layer {}: {}: {m}", i + 1, s.as_str()))
        .collect();
    let exact = judged.iter().filter(|(s, _)| *s == Status::Match).count();
    let equivalent = judged
        .iter()
        .filter(|(s, _)| *s == Status::Equivalent)
        .count();
    let (status, why) = if let Some((i, (_, m))) = judged
        .iter()
        .enumerate()
        .find(|(_, (s, _))| *s == Status::Differs)
    {
        (Status::Differs, format!("layer {}: {m}", i + 1))
    } else if equivalent == 0 {
        (
            Status::Match,
            format!("all {exact} layer blobs reproduced exactly (same digests)"),
        )
    } else {
        (
            Status::Equivalent,
            format!(
                "{exact} layer blobs exact, {equivalent} shown equivalent: the compressor is not replayed, each blob decompresses exactly to the reproduced tar with nothing else in the stream"
            ),
        )
    };
    let mut r = LevelReport::new(Level::Blob, status, true, why);
    r.shown = shown;
    r
}

/// The config level: the config bytes. `fields` are the diff engine's field differences.
pub fn config(original: &Blob, rebuilt: Option<&Blob>, fields: Vec<FileDifference>) -> LevelReport {
    let Some(rebuilt) = rebuilt else {
        return not_built(Level::Config, "config");
    };
    if original.digest == rebuilt.digest {
        return LevelReport::new(
            Level::Config,
            Status::Match,
            true,
            format!("config bytes equal ({})", original.digest),
        );
    }
    json_differs(Level::Config, original, rebuilt, fields)
}

/// A promised JSON level the build wrote nothing for.
fn not_built(level: Level, what: &str) -> LevelReport {
    LevelReport::new(
        level,
        Status::NotChecked,
        true,
        format!("the build wrote no image {what} to compare"),
    )
}

/// A JSON blob (config, manifest) whose bytes differ: how many fields the diff engine
/// found and the first, or that only the bytes differ.
fn json_differs(
    level: Level,
    original: &Blob,
    rebuilt: &Blob,
    fields: Vec<FileDifference>,
) -> LevelReport {
    let why = match fields.first() {
        Some(f) => format!(
            "{} (original) != {} (rebuilt): {} fields differ, first {}",
            original.digest,
            rebuilt.digest,
            fields.len(),
            f.name()
        ),
        None => format!(
            "{} (original) != {} (rebuilt): same fields, other bytes (key order, spacing)",
            original.digest, rebuilt.digest
        ),
    };
    LevelReport::new(level, Status::Differs, true, why).with_differences(fields)
}

/// A layer descriptor as podman/skopeo (Go's encoding/json) write it in a manifest.
pub fn descriptor_text(media_type: &str, digest: &Digest, size: u64) -> String {
    format!(r#"{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}"#)
}

/// One layer for the manifest level: the rebuilt descriptor, the original's, and whether
/// the blob level showed the original blob exact or equivalent.
#[derive(Debug, Clone)]
pub struct ManifestLayer {
    pub rebuilt: (String, Digest, u64),
    pub original: (String, Digest, u64),
    pub blob_holds: bool,
}

/// The manifest level: the manifest bytes (the image digest). When only the blobs differ
/// and each was shown equivalent, the rebuilt manifest with the original's blob descriptors
/// in place of its own must be byte-identical to the original.
pub fn manifest(
    original: &Blob,
    rebuilt: Option<&Blob>,
    layers: &[ManifestLayer],
    fields: Vec<FileDifference>,
) -> LevelReport {
    let Some(rebuilt) = rebuilt else {
        return not_built(Level::Manifest, "manifest");
    };
    if original.digest == rebuilt.digest {
        return LevelReport::new(
            Level::Manifest,
            Status::Match,
            true,
            format!(
                "manifest bytes equal: the image digest {} is reproduced",
                original.digest
            ),
        );
    }
    if !layers.is_empty() && layers.iter().all(|l| l.blob_holds) {
        let mut text = String::from_utf8_lossy(&rebuilt.bytes).into_owned();
        let mut replaced = true;
        for l in layers {
            let ours = descriptor_text(&l.rebuilt.0, &l.rebuilt.1, l.rebuilt.2);
            let theirs = descriptor_text(&l.original.0, &l.original.1, l.original.2);
            if text.matches(&ours).count() != 1 {
                replaced = false;
                break;
            }
            text = text.replacen(&ours, &theirs, 1);
        }
        if replaced && text.as_bytes() == &original.bytes[..] {
            let mut r = LevelReport::new(
                Level::Manifest,
                Status::Equivalent,
                true,
                format!(
                    "{} (original) != {} (rebuilt) only because the original names its compressed blobs: with those (shown equivalent) in place of the rebuilt layers, the rebuilt manifest is byte-identical to the original",
                    original.digest, rebuilt.digest
                ),
            );
            r.shown.push(format!(
                "rebuilt manifest with the original's layer descriptors: {}",
                original.digest
            ));
            return r;
        }
    }
    json_differs(Level::Manifest, original, rebuilt, fields)
}

/// The index level. Not promised: an index digest covers attestation manifests with build
/// times.
pub fn index(original: Option<&Blob>, rebuilt: Option<&Blob>) -> LevelReport {
    match (original, rebuilt) {
        (None, _) => LevelReport::not_checked(
            Level::Index,
            "the original reference names a manifest, not an index",
        ),
        (Some(o), Some(r)) if o.digest == r.digest => LevelReport::new(
            Level::Index,
            Status::Match,
            false,
            format!("index bytes equal ({})", o.digest),
        ),
        (Some(o), Some(r)) => LevelReport::new(
            Level::Index,
            Status::Differs,
            false,
            format!(
                "{} (original) != {} (rebuilt): not promised (an index may carry attestations with build times)",
                o.digest, r.digest
            ),
        ),
        (Some(o), None) => LevelReport::new(
            Level::Index,
            Status::NotChecked,
            false,
            format!(
                "the original is an index ({}); the build writes none (not promised: an index may carry attestations with build times)",
                o.digest
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::Framing;

    fn d(s: &str) -> Digest {
        repro_oci::digest::sha256_of(s.as_bytes())
    }

    fn fd(path: &str, field: &str, class: Option<&'static str>) -> FileDifference {
        FileDifference {
            path: Some(path.into()),
            layer: None,
            field: field.into(),
            original: Some("1".into()),
            rebuilt: Some("2".into()),
            packages: if class.is_some() {
                vec!["ca-certificates-utils".into()]
            } else {
                vec![]
            },
            class,
            diff: None,
        }
    }

    #[test]
    fn local_desc_paths() {
        assert!(is_local_desc("var/lib/pacman/local/bash-5.2.15-1/desc"));
        assert!(is_local_desc("/var/lib/pacman/local/bash-5.2.15-1/desc"));
        assert!(!is_local_desc("var/lib/pacman/local/bash-5.2.15-1/files"));
        assert!(!is_local_desc("var/lib/pacman/local/a/b/desc"));
        assert!(!is_local_desc("var/lib/pacman/local//desc"));
    }

    #[test]
    fn install_date_section_is_left_out_and_nothing_else() {
        let a = b"%NAME%\nbash\n\n%INSTALLDATE%\n1793664000\n\n%SIZE%\n10\n\n";
        let b = b"%NAME%\nbash\n\n%INSTALLDATE%\n1800000000\n\n%SIZE%\n10\n\n";
        let c = b"%NAME%\nbash\n\n%INSTALLDATE%\n1800000000\n\n%SIZE%\n11\n\n";
        assert_eq!(strip_install_date(a), strip_install_date(b));
        assert_ne!(strip_install_date(a), strip_install_date(c));
        assert_eq!(strip_install_date(a), b"%NAME%\nbash\n\n%SIZE%\n10\n\n");
        // at the end, without the blank line
        assert_eq!(
            strip_install_date(b"%A%\nx\n\n%INSTALLDATE%\n5\n"),
            b"%A%\nx\n\n"
        );
    }

    #[test]
    fn tree_match_explained_differs() {
        assert_eq!(tree(10, vec![], vec![], &[]).status, Status::Match);

        let times = vec![fd("etc/a", "mtime", None), fd("etc/b", "mtime", None)];
        let r = tree(10, times, vec![], &["var/lib/pacman/local/x-1/desc".into()]);
        assert_eq!(r.status, Status::Explained);
        assert!(
            r.why.starts_with(
                "timestamps differ (2 entries' mtimes, 1 package's %INSTALLDATE% in the local db)"
            ),
            "{}",
            r.why
        );
        assert!(
            r.why
                .ends_with("otherwise the content matches (tree without times: 10 entries equal)"),
            "{}",
            r.why
        );
        assert_eq!(r.differences.len(), 2);
        assert_eq!(r.shown.len(), 2);

        let content = vec![
            fd("usr/bin/update-ca-trust", "size", Some("modified")),
            fd("usr/bin/update-ca-trust", "sha256", Some("modified")),
        ];
        let r = tree(10, content.clone(), content, &[]);
        assert_eq!(r.status, Status::Differs);
        assert_eq!(
            r.why,
            "1 entry differs in content, first /usr/bin/update-ca-trust (size) [package ca-certificates-utils, modified]: changed after the package installed it, and not by our build"
        );
    }

    #[test]
    fn a_generated_pacman_keyring_is_explained_and_nothing_else_is() {
        let gone = |p: &str| FileDifference {
            rebuilt: None,
            ..fd(p, "entry", None)
        };
        assert!(is_keyring_leftover(&gone("etc/pacman.d/gnupg/pubring.gpg")));
        assert!(!is_keyring_leftover(&gone("etc/pacman.d/gnupg")));
        assert!(!is_keyring_leftover(&gone("etc/pacman.d/mirrorlist")));
        // present in the rebuild but different: not the leftover keyring
        assert!(!is_keyring_leftover(&fd(
            "etc/pacman.d/gnupg/pubring.gpg",
            "sha256",
            None
        )));

        let content = vec![
            gone("etc/pacman.d/gnupg/gpg.conf"),
            gone("etc/pacman.d/gnupg/trustdb.gpg"),
        ];
        let full = vec![fd("etc/a", "mtime", None)];
        let r = tree(10, full.clone(), content.clone(), &[]);
        assert_eq!(r.status, Status::Explained);
        assert!(
            r.why
                .contains("pacman keyring pacman-key --init generated (2 entries"),
            "{}",
            r.why
        );
        assert!(
            r.why.ends_with("(tree without times: 8 entries equal)"),
            "{}",
            r.why
        );
        let mut more = content;
        more.push(fd("etc/shadow", "sha256", Some("modified")));
        let r = tree(10, full, more, &[]);
        assert_eq!(r.status, Status::Differs);
        assert!(
            r.why
                .starts_with("1 entry differs in content, first /etc/shadow (sha256)"),
            "{}",
            r.why
        );
    }

    #[test]
    fn evidence_needs_a_quorum_for_every_package() {
        use repro_rebuilderd::Record;
        use repro_rebuilderd::Status as S;
        use repro_rebuilderd::quorum::{Index, Pkg, evaluate};
        let rec = |name: &str, status| Record {
            id: Some(1),
            name: name.into(),
            version: "1-1".into(),
            architecture: "x86_64".into(),
            status,
            distribution: None,
            component: None,
            url: None,
            build_id: Some(1),
            artifact_id: Some(1),
            attestation_log_id: None,
            has_attestation: false,
            has_diffoscope: false,
        };
        let rbs = vec![
            (
                "rb1".to_string(),
                Ok(Index::new(vec![
                    rec("bash", S::Good),
                    rec("glibc", S::Good),
                    rec("sed", S::Good),
                ])),
            ),
            (
                "rb2".to_string(),
                Ok(Index::new(vec![rec("bash", S::Good), rec("sed", S::Bad)])),
            ),
        ];
        let pkgs = [
            Pkg::new("bash", "1-1", "x86_64"),
            Pkg::new("glibc", "1-1", "x86_64"),
        ];
        assert_eq!(
            evidence(&evaluate(&pkgs, &rbs, 1), 1, 2, false).status,
            Status::Match
        );
        let r = evidence(&evaluate(&pkgs, &rbs, 2), 2, 2, false);
        assert_eq!(r.status, Status::Differs);
        assert_eq!(
            r.why,
            "1 of 2 packages not reproduced by at least 2 of 2 rebuilders (exact name, version, architecture), first glibc 1-1 NOT_REPRODUCED (rb1 GOOD, rb2 not listed)"
        );
        let r = evidence(
            &evaluate(&[Pkg::new("sed", "1-1", "x86_64")], &rbs, 1),
            1,
            2,
            true,
        );
        assert_eq!(r.status, Status::Differs);
        assert_eq!(r.shown, ["sed 1-1 DISPUTED (rb1 GOOD, rb2 BAD)"]);
        assert!(r.promised);
    }

    #[test]
    fn tar_level() {
        let l = |o: &str, r: Option<&str>| TarLayer {
            diff_id: Some(d(o)),
            decompressed: d(o),
            rebuilt: r.map(d),
        };
        let r = tar(&[l("a", Some("a")), l("b", Some("b"))], 2, vec![]);
        assert_eq!(r.status, Status::Match);
        assert_eq!(r.shown.len(), 2);
        let r = tar(
            &[l("a", Some("x")), l("b", Some("b"))],
            2,
            vec![fd("usr/bin/u", "sha256", None)],
        );
        assert_eq!(r.status, Status::Differs);
        assert!(r.why.starts_with("layer 1: "), "{}", r.why);
        assert!(
            r.why
                .ends_with("first entry difference /usr/bin/u (sha256)"),
            "{}",
            r.why
        );
        assert_eq!(tar(&[l("a", None)], 0, vec![]).status, Status::Differs);
        assert_eq!(tar(&[l("a", Some("a"))], 2, vec![]).status, Status::Differs);
        // An original whose config disagrees with its own blob
        let bad = TarLayer {
            diff_id: Some(d("z")),
            decompressed: d("a"),
            rebuilt: Some(d("a")),
        };
        let r = tar(&[bad], 1, vec![]);
        assert_eq!(r.status, Status::Differs);
        assert!(r.why.contains("config says diff_id"), "{}", r.why);
    }

    fn read(content: &str, compression: &'static str, extra: &[&str], trailing: u64) -> LayerRead {
        LayerRead {
            decompressed: d(content),
            decompressed_size: 100,
            framing: Framing {
                compression,
                extra_fields: extra.iter().map(|s| s.to_string()).collect(),
                trailing_bytes: trailing,
                gzip_mtime: None,
            },
        }
    }

    #[test]
    fn blob_exact_equivalent_differs() {
        let exact = BlobLayer {
            digest: d("t"),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            read: read("t", "none", &[], 0),
            rebuilt_blob: Some(d("t")),
            rebuilt_tar: Some(d("t")),
        };
        let gz = BlobLayer {
            digest: d("gz"),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            read: read("t", "gzip", &[], 0),
            rebuilt_blob: Some(d("t")),
            rebuilt_tar: Some(d("t")),
        };
        assert_eq!(blob(std::slice::from_ref(&exact)).status, Status::Match);
        // an uncompressed original against a rebuild that also has a compressed blob
        let plain = BlobLayer {
            rebuilt_blob: Some(d("zst")),
            ..exact.clone()
        };
        assert_eq!(blob(&[plain]).status, Status::Match);
        let r = blob(&[exact.clone(), gz.clone()]);
        assert_eq!(r.status, Status::Equivalent);
        assert!(
            r.shown[1].starts_with("layer 2: equivalent: "),
            "{}",
            r.shown[1]
        );
        assert!(r.shown[1].contains("decompresses exactly to the reproduced tar"));

        let named = BlobLayer {
            read: read("t", "gzip", &["FNAME"], 0),
            ..gz.clone()
        };
        let r = blob(&[exact.clone(), named]);
        assert_eq!(r.status, Status::Differs);
        assert!(r.why.contains("header fields FNAME"), "{}", r.why);
        let other = BlobLayer {
            read: read("u", "gzip", &[], 0),
            ..gz
        };
        assert!(blob(&[other]).why.contains("see the tar level"));
    }

    fn blob_of(bytes: &[u8]) -> Blob {
        Blob {
            digest: repro_oci::digest::sha256_of(bytes),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn manifest_equivalent_only_when_the_substitution_gives_the_very_bytes() {
        let tar_mt = "application/vnd.oci.image.layer.v1.tar";
        let gz_mt = "application/vnd.oci.image.layer.v1.tar+gzip";
        let (t, g) = (d("tar"), d("gz"));
        let ours = format!(
            r#"{{"schemaVersion":2,"layers":[{}],"annotations":{{"a":"b"}}}}"#,
            descriptor_text(tar_mt, &t, 100)
        );
        let theirs = format!(
            r#"{{"schemaVersion":2,"layers":[{}],"annotations":{{"a":"b"}}}}"#,
            descriptor_text(gz_mt, &g, 40)
        );
        let layer = ManifestLayer {
            rebuilt: (tar_mt.into(), t.clone(), 100),
            original: (gz_mt.into(), g.clone(), 40),
            blob_holds: true,
        };
        let (o, r) = (blob_of(theirs.as_bytes()), blob_of(ours.as_bytes()));
        let rep = manifest(&o, Some(&r), std::slice::from_ref(&layer), vec![]);
        assert_eq!(rep.status, Status::Equivalent, "{}", rep.why);
        // a blob not shown equivalent: no substitution
        let no = ManifestLayer {
            blob_holds: false,
            ..layer.clone()
        };
        assert_eq!(
            manifest(&o, Some(&r), &[no], vec![]).status,
            Status::Differs
        );
        // anything else different: differs
        let other = blob_of(theirs.replace(r#""a":"b""#, r#""a":"c""#).as_bytes());
        assert_eq!(
            manifest(&other, Some(&r), &[layer], vec![]).status,
            Status::Differs
        );
        assert_eq!(manifest(&o, Some(&o), &[], vec![]).status, Status::Match);
        let nc = manifest(&o, None, &[], vec![]);
        assert_eq!(nc.status, Status::NotChecked);
        assert!(nc.promised, "a promised level not built does not hold");
    }

    #[test]
    fn config_and_index() {
        let a = blob_of(b"{\"a\":1}");
        let b = blob_of(b"{\"a\":2}");
        assert_eq!(config(&a, Some(&a), vec![]).status, Status::Match);
        let r = config(&a, Some(&b), vec![fd("x", "created", None)]);
        assert_eq!(r.status, Status::Differs);
        assert!(r.why.contains("1 fields differ"), "{}", r.why);
        assert_eq!(index(None, None).status, Status::NotChecked);
        assert!(!index(Some(&a), Some(&b)).promised);
    }
}
