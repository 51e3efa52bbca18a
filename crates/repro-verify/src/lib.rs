//! What `repro-image verify` decides, level by level (DESIGN.md "Verification levels"):
//! evidence, tree, tar, blob, config, manifest, index. The report model ([`Report`],
//! [`LevelReport`]) and the decisions ([`levels`]) are pure: they take what the edge read
//! (merged trees, layer digests, document bytes, the diff engine's differences) and say
//! for each level whether the original and the rebuild match, are equivalent, differ only
//! in an explained way, or differ, in one line, with the file-level differences. The
//! accounting headline is in [`headline`]; the one-pass layer reader, which also shows a
//! compressed blob equivalent to the reproduced tar, is in [`blob`].
//!
//! [`holds`] is the verdict: every level the recipe promises matches (or, for the blob and
//! manifest levels, is shown equivalent).

use serde::Serialize;

pub mod blob;
pub mod headline;
pub mod levels;

/// The JSON report's schema name (docs/verify-json.md).
pub const SCHEMA: &str = "repro-image/verify/v1";

/// Most file-level differences kept per level (the count of the rest is kept).
pub const MAX_DIFFERENCES: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A layer that cannot be read; names the input.
    #[error("{input}: {reason}")]
    Layer { input: String, reason: String },
}

/// The levels, in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Evidence,
    Tree,
    Tar,
    Blob,
    Config,
    Manifest,
    Index,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Evidence => "evidence",
            Level::Tree => "tree",
            Level::Tar => "tar",
            Level::Blob => "blob",
            Level::Config => "config",
            Level::Manifest => "manifest",
            Level::Index => "index",
        }
    }
}

/// What a level found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Byte for byte (or, for the tree, field for field) the same.
    Match,
    /// Not the same bytes, but shown to hold the same thing (a compressed blob that
    /// decompresses exactly to the reproduced tar; a manifest equal once it names those
    /// blobs).
    Equivalent,
    /// Differs only in ways the report explains (timestamps, install dates); the content
    /// matches. Not a match.
    Explained,
    Differs,
    /// Nothing to compare (no rebuilder given, no index, not built).
    NotChecked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Match => "match",
            Status::Equivalent => "equivalent",
            Status::Explained => "explained",
            Status::Differs => "differs",
            Status::NotChecked => "not checked",
        }
    }
    /// What counts for a promised level.
    pub fn holds(self) -> bool {
        matches!(self, Status::Match | Status::Equivalent)
    }
}

/// One file-level (or document-field) difference between the original and the rebuild.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDifference {
    /// The entry's path (no leading `/`), absent for document fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The layer (0-based) for tar-level differences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// What differs (`sha256`, `size`, `mtime`, `entry`, a JSON path, ...).
    pub field: String,
    /// The original image's value (absent: not there).
    pub original: Option<String>,
    /// The rebuild's value (absent: not there).
    pub rebuilt: Option<String>,
    /// The packages owning the path in the original's local db.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// The original entry's accounting class (`package`, `modified`, `unowned`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<&'static str>,
    /// A unified diff of small text files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl FileDifference {
    pub fn from_diff(d: &repro_diff::Difference) -> Self {
        FileDifference {
            path: d.path.clone(),
            layer: d.layer,
            field: d.field.clone(),
            original: d.a.clone(),
            rebuilt: d.b.clone(),
            packages: Vec::new(),
            class: None,
            diff: d.diff.clone(),
        }
    }

    /// `usr/bin/x (sha256) [package foo, modified]` for people.
    pub fn name(&self) -> String {
        let mut s = String::new();
        if let Some(l) = self.layer {
            s.push_str(&format!("layer {}: ", l + 1));
        }
        match &self.path {
            Some(p) => s.push_str(&format!("/{} ({})", p.trim_start_matches('/'), self.field)),
            None => s.push_str(&self.field),
        }
        if !self.packages.is_empty() || self.class.is_some() {
            let mut tags = Vec::new();
            if !self.packages.is_empty() {
                tags.push(format!("package {}", self.packages.join(", ")));
            }
            if let Some(c) = self.class {
                tags.push(c.to_string());
            }
            s.push_str(&format!(" [{}]", tags.join(", ")));
        }
        s
    }
}

/// One level's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelReport {
    pub level: Level,
    pub status: Status,
    /// The recipe promises this level: it counts for the exit status.
    pub promised: bool,
    /// One line: what was compared and, when it does not match, why.
    pub why: String,
    /// What was shown, e.g. how each compressed blob was proven equivalent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub shown: Vec<String>,
    /// File-level differences (at most [`MAX_DIFFERENCES`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<FileDifference>,
    /// Differences beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub more_differences: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl LevelReport {
    pub fn new(level: Level, status: Status, promised: bool, why: impl Into<String>) -> Self {
        LevelReport {
            level,
            status,
            promised,
            why: why.into(),
            shown: Vec::new(),
            differences: Vec::new(),
            more_differences: 0,
        }
    }

    /// Keep the first [`MAX_DIFFERENCES`] of `diffs`, count the rest.
    pub fn with_differences(mut self, diffs: Vec<FileDifference>) -> Self {
        let n = diffs.len();
        self.differences = diffs.into_iter().take(MAX_DIFFERENCES).collect();
        self.more_differences = n - self.differences.len();
        self
    }

    pub fn not_checked(level: Level, why: impl Into<String>) -> Self {
        LevelReport::new(level, Status::NotChecked, false, why)
    }
}

/// The verdict: every promised level holds. A promised level that was not checked does
/// not hold (nothing unproven passes).
pub fn holds(levels: &[LevelReport]) -> bool {
    levels
        .iter()
        .filter(|l| l.promised)
        .all(|l| l.status.holds())
}

/// The first promised level that does not hold, for the closing line.
pub fn first_failure(levels: &[LevelReport]) -> Option<&LevelReport> {
    levels.iter().find(|l| l.promised && !l.status.holds())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lr(level: Level, status: Status, promised: bool) -> LevelReport {
        LevelReport::new(level, status, promised, "")
    }

    #[test]
    fn holds_needs_every_promised_level_to_match_or_be_equivalent() {
        let mut v = vec![
            lr(Level::Evidence, Status::NotChecked, false),
            lr(Level::Tree, Status::Match, true),
            lr(Level::Tar, Status::Match, true),
            lr(Level::Blob, Status::Equivalent, true),
            lr(Level::Config, Status::Match, true),
            lr(Level::Manifest, Status::Equivalent, true),
            lr(Level::Index, Status::Differs, false),
        ];
        assert!(holds(&v), "an unpromised level does not count");
        assert!(first_failure(&v).is_none());
        v[1].status = Status::Explained;
        assert!(!holds(&v), "explained is not a match");
        assert_eq!(first_failure(&v).unwrap().level, Level::Tree);
        v[1].status = Status::Match;
        v[4].status = Status::NotChecked;
        assert!(
            !holds(&v),
            "a promised level that was not checked does not hold"
        );
    }

    #[test]
    fn differences_are_capped_and_counted() {
        let d = FileDifference {
            path: Some("etc/x".into()),
            layer: None,
            field: "sha256".into(),
            original: Some("a".into()),
            rebuilt: Some("b".into()),
            packages: vec!["filesystem".into()],
            class: Some("modified"),
            diff: None,
        };
        assert_eq!(d.name(), "/etc/x (sha256) [package filesystem, modified]");
        let r = lr(Level::Tree, Status::Differs, true)
            .with_differences(vec![d.clone(); MAX_DIFFERENCES + 5]);
        assert_eq!(r.differences.len(), MAX_DIFFERENCES);
        assert_eq!(r.more_differences, 5);
    }
}
