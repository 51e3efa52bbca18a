//! Exact matching and quorum: pure functions, no I/O.
//!
//! An image package matches a rebuilder's record only when name, version and architecture
//! are all equal (`any` is an architecture like the others: an `any` package matches an `any`
//! record). A record with the same name but another version (or architecture) means "the
//! rebuilder has VERSION, not this one" and is never counted as a result for the package.
//!
//! Over N rebuilders with quorum K, a package is
//! - DISPUTED when at least one rebuilder says GOOD and another BAD or FAIL for this exact
//!   version (checked first: a disagreement is shown even when K GOODs exist),
//! - REPRODUCED when at least K rebuilders say GOOD,
//! - NOT REPRODUCED when some rebuilder has a result (GOOD, BAD or FAIL) but fewer than K GOOD,
//! - UNKNOWN when no rebuilder has a result for this exact version.

use std::collections::HashMap;

use serde::Serialize;

use crate::evidence::AttestationCheck;
use crate::{Record, Status};

/// An image package, as the match key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub arch: String,
}

impl Pkg {
    pub fn new(name: &str, version: &str, arch: &str) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
        }
    }
}

/// What one rebuilder said about one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Said {
    /// A record for this exact name, version and architecture (`UNKWN` when it has no
    /// result yet).
    Status {
        status: Status,
        build_id: Option<i64>,
        attestation_log_id: Option<i64>,
    },
    /// Several exact records that disagree (counted as neither GOOD nor BAD alone: a GOOD
    /// among them does not count towards the quorum, a BAD/FAIL among them disputes).
    Conflict { statuses: Vec<Status> },
    /// Only other versions (or architectures) of this name: "has VERSION, not this one".
    OtherVersion { versions: Vec<String> },
    /// No record of this name.
    NotListed,
    /// The rebuilder could not be asked.
    Unavailable { error: String },
}

impl Said {
    pub fn is_good(&self) -> bool {
        matches!(
            self,
            Said::Status {
                status: Status::Good,
                ..
            }
        )
    }

    pub fn is_bad(&self) -> bool {
        match self {
            Said::Status { status, .. } => matches!(status, Status::Bad | Status::Fail),
            Said::Conflict { statuses } => statuses
                .iter()
                .any(|s| matches!(s, Status::Bad | Status::Fail)),
            _ => false,
        }
    }

    /// Short human form: `GOOD`, `BAD`, `UNKWN`, `has 5.2.15-1, not this one`,
    /// `not listed`, `conflicting GOOD/BAD`, `unavailable`.
    pub fn describe(&self) -> String {
        match self {
            Said::Status { status, .. } => status.as_str().to_string(),
            Said::Conflict { statuses } => format!(
                "conflicting {}",
                statuses
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            Said::OtherVersion { versions } => {
                format!("has {}, not this one", versions.join(", "))
            }
            Said::NotListed => "not listed".into(),
            Said::Unavailable { .. } => "unavailable".into(),
        }
    }

    /// A one-word cell for the matrix.
    pub fn cell(&self) -> String {
        match self {
            Said::Status { status, .. } => status.as_str().to_string(),
            Said::Conflict { .. } => "CONFLICT".into(),
            Said::OtherVersion { versions } => format!("has {}", versions.join(",")),
            Said::NotListed => "-".into(),
            Said::Unavailable { .. } => "ERROR".into(),
        }
    }
}

/// The per-package decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Reproduced,
    Disputed,
    NotReproduced,
    Unknown,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Reproduced => "REPRODUCED",
            Verdict::Disputed => "DISPUTED",
            Verdict::NotReproduced => "NOT_REPRODUCED",
            Verdict::Unknown => "UNKNOWN",
        }
    }

    /// The verdict names, and arch-repro-status' status words as aliases
    /// (GOOD = REPRODUCED, BAD/FAIL = NOT_REPRODUCED, UNKWN = UNKNOWN); any case, `-` or `_`.
    pub fn parse(s: &str) -> Option<Verdict> {
        let s = s.trim().to_ascii_uppercase().replace(['-', ' '], "_");
        Some(match s.as_str() {
            "REPRODUCED" | "GOOD" => Verdict::Reproduced,
            "DISPUTED" => Verdict::Disputed,
            "NOT_REPRODUCED" | "BAD" | "FAIL" => Verdict::NotReproduced,
            "UNKNOWN" | "UNKWN" => Verdict::Unknown,
            _ => return None,
        })
    }
}

/// One rebuilder's records, by package name.
#[derive(Debug, Default, Clone)]
pub struct Index {
    by_name: HashMap<String, Vec<Record>>,
}

impl Index {
    pub fn new(records: impl IntoIterator<Item = Record>) -> Index {
        let mut by_name: HashMap<String, Vec<Record>> = HashMap::new();
        for r in records {
            by_name.entry(r.name.clone()).or_default().push(r);
        }
        Index { by_name }
    }

    /// The record that speaks for `pkg` when the rebuilder has exact records that agree
    /// (the newest build among them); `None` for no exact record or a conflict.
    pub fn exact(&self, pkg: &Pkg) -> Option<&Record> {
        let exact: Vec<&Record> = self
            .by_name
            .get(&pkg.name)?
            .iter()
            .filter(|r| r.version == pkg.version && r.architecture == pkg.arch)
            .collect();
        let first = exact.first()?.status;
        if exact.iter().any(|r| r.status != first) {
            return None;
        }
        exact
            .into_iter()
            .max_by_key(|r| r.build_id.unwrap_or(i64::MIN))
    }

    /// What this rebuilder says about `pkg`, matching exactly.
    pub fn said(&self, pkg: &Pkg) -> Said {
        let Some(records) = self.by_name.get(&pkg.name) else {
            return Said::NotListed;
        };
        let exact: Vec<&Record> = records
            .iter()
            .filter(|r| r.version == pkg.version && r.architecture == pkg.arch)
            .collect();
        if exact.is_empty() {
            let mut versions: Vec<String> = records
                .iter()
                .map(|r| {
                    if r.architecture == pkg.arch {
                        r.version.clone()
                    } else {
                        format!("{} ({})", r.version, r.architecture)
                    }
                })
                .collect();
            versions.sort();
            versions.dedup();
            return Said::OtherVersion { versions };
        }
        let mut statuses: Vec<Status> = exact.iter().map(|r| r.status).collect();
        statuses.sort_by_key(|s| s.as_str());
        statuses.dedup();
        if statuses.len() > 1 {
            return Said::Conflict { statuses };
        }
        // Same status everywhere: the newest build (highest build id) speaks.
        let best = exact
            .iter()
            .max_by_key(|r| r.build_id.unwrap_or(i64::MIN))
            .expect("non-empty");
        Said::Status {
            status: best.status,
            build_id: best.build_id,
            attestation_log_id: best.attestation_log_id,
        }
    }
}

/// The verdict from what every rebuilder said (every GOOD counting).
pub fn verdict(said: &[Said], quorum: usize) -> Verdict {
    let good = said.iter().filter(|s| s.is_good()).count();
    let bad = said.iter().filter(|s| s.is_bad()).count();
    let any_good_in_conflict = said
        .iter()
        .any(|s| matches!(s, Said::Conflict { statuses } if statuses.contains(&Status::Good)));
    decide(good, bad, any_good_in_conflict, quorum)
}

fn decide(good: usize, bad: usize, any_good_in_conflict: bool, quorum: usize) -> Verdict {
    if bad > 0 && (good > 0 || any_good_in_conflict) {
        Verdict::Disputed
    } else if good >= quorum.max(1) {
        Verdict::Reproduced
    } else if good > 0 || bad > 0 {
        Verdict::NotReproduced
    } else {
        Verdict::Unknown
    }
}

/// One rebuilder's answer for one package.
#[derive(Debug, Clone, Serialize)]
pub struct RebuilderSaid {
    pub rebuilder: String,
    #[serde(flatten)]
    pub said: Said,
    /// For a GOOD whose attestation was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<AttestationCheck>,
    /// Whether this answer counts as GOOD towards the quorum (a GOOD with an invalid
    /// attestation never does; with `--require-attestation` only a fully verified one does).
    pub counts: bool,
}

impl RebuilderSaid {
    fn counts_good(&self, require: bool) -> bool {
        self.said.is_good()
            && match &self.attestation {
                Some(AttestationCheck::Invalid { .. }) => false,
                Some(a) => !require || a.fully_verified(),
                None => !require,
            }
    }
}

/// A package's result over all rebuilders.
#[derive(Debug, Clone, Serialize)]
pub struct PackageStatus {
    pub name: String,
    pub version: String,
    pub arch: String,
    pub verdict: Verdict,
    /// GOOD answers that count (see [`RebuilderSaid::counts`]).
    pub good: usize,
    pub bad: usize,
    pub rebuilders: Vec<RebuilderSaid>,
}

/// Decide again after attestations were checked: a GOOD counts only as
/// [`RebuilderSaid::counts`] says.
pub fn recount(p: &mut PackageStatus, quorum: usize, require_attestation: bool) {
    for r in &mut p.rebuilders {
        r.counts = r.counts_good(require_attestation);
    }
    let good = p.rebuilders.iter().filter(|r| r.counts).count();
    let bad = p.rebuilders.iter().filter(|r| r.said.is_bad()).count();
    let conflict_good = p.rebuilders.iter().any(
        |r| matches!(&r.said, Said::Conflict { statuses } if statuses.contains(&Status::Good)),
    );
    p.good = good;
    p.bad = bad;
    p.verdict = decide(good, bad, conflict_good, quorum);
}

/// Evaluate every package against every rebuilder (`Err` = that rebuilder could not be
/// asked; its message is what [`Said::Unavailable`] carries).
pub fn evaluate(
    pkgs: &[Pkg],
    rebuilders: &[(String, Result<Index, String>)],
    quorum: usize,
) -> Vec<PackageStatus> {
    pkgs.iter()
        .map(|p| {
            let said: Vec<Said> = rebuilders
                .iter()
                .map(|(_, idx)| match idx {
                    Ok(i) => i.said(p),
                    Err(e) => Said::Unavailable { error: e.clone() },
                })
                .collect();
            PackageStatus {
                name: p.name.clone(),
                version: p.version.clone(),
                arch: p.arch.clone(),
                verdict: verdict(&said, quorum),
                good: said.iter().filter(|s| s.is_good()).count(),
                bad: said.iter().filter(|s| s.is_bad()).count(),
                rebuilders: rebuilders
                    .iter()
                    .zip(said)
                    .map(|((url, _), said)| RebuilderSaid {
                        rebuilder: url.clone(),
                        counts: said.is_good(),
                        said,
                        attestation: None,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Counts over all packages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub total: usize,
    pub reproduced: usize,
    pub disputed: usize,
    pub not_reproduced: usize,
    pub unknown: usize,
    /// reproduced / total × 100 (100 for no packages).
    pub percent: f64,
}

pub fn summarize(statuses: &[PackageStatus]) -> Summary {
    let count = |v: Verdict| statuses.iter().filter(|s| s.verdict == v).count();
    let total = statuses.len();
    let reproduced = count(Verdict::Reproduced);
    Summary {
        total,
        reproduced,
        disputed: count(Verdict::Disputed),
        not_reproduced: count(Verdict::NotReproduced),
        unknown: count(Verdict::Unknown),
        percent: if total == 0 {
            100.0
        } else {
            reproduced as f64 * 100.0 / total as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, version: &str, arch: &str, status: Status, build: i64) -> Record {
        Record {
            id: Some(build),
            name: name.into(),
            version: version.into(),
            architecture: arch.into(),
            status,
            distribution: Some("archlinux".into()),
            component: Some("core".into()),
            url: None,
            build_id: Some(build),
            artifact_id: Some(build),
            attestation_log_id: None,
            has_attestation: false,
            has_diffoscope: false,
        }
    }

    use Status::*;

    #[test]
    fn exact_match_on_all_three() {
        let idx = Index::new([
            rec("bash", "5.2.15-1", "x86_64", Good, 1),
            rec("hello", "2.12.1-1", "any", Good, 2),
        ]);
        assert!(idx.said(&Pkg::new("hello", "2.12.1-1", "any")).is_good());
        assert_eq!(
            idx.said(&Pkg::new("bash", "5.2.15-2", "x86_64")),
            Said::OtherVersion {
                versions: vec!["5.2.15-1".into()]
            }
        );
        assert_eq!(
            idx.said(&Pkg::new("bash", "5.2.15-2", "x86_64")).describe(),
            "has 5.2.15-1, not this one"
        );
        // Same version, other architecture: not a match either.
        assert_eq!(
            idx.said(&Pkg::new("hello", "2.12.1-1", "x86_64")),
            Said::OtherVersion {
                versions: vec!["2.12.1-1 (any)".into()]
            }
        );
        assert_eq!(idx.said(&Pkg::new("zsh", "1-1", "x86_64")), Said::NotListed);
    }

    #[test]
    fn duplicates_agreeing_and_conflicting() {
        let idx = Index::new([
            rec("a", "1-1", "x86_64", Good, 1),
            rec("a", "1-1", "x86_64", Good, 7),
            rec("b", "1-1", "x86_64", Good, 2),
            rec("b", "1-1", "x86_64", Bad, 3),
        ]);
        assert_eq!(
            idx.said(&Pkg::new("a", "1-1", "x86_64")),
            Said::Status {
                status: Good,
                build_id: Some(7),
                attestation_log_id: None
            }
        );
        let b = idx.said(&Pkg::new("b", "1-1", "x86_64"));
        assert_eq!(
            b,
            Said::Conflict {
                statuses: vec![Bad, Good]
            }
        );
        assert!(!b.is_good() && b.is_bad());
        // A conflict alone is a dispute, never a reproduction.
        assert_eq!(verdict(&[b], 1), Verdict::Disputed);
    }

    fn st(s: Status) -> Said {
        Said::Status {
            status: s,
            build_id: None,
            attestation_log_id: None,
        }
    }

    #[test]
    fn quorum_verdicts() {
        let all_good = [st(Good), st(Good), st(Good)];
        assert_eq!(verdict(&all_good, 3), Verdict::Reproduced);
        assert_eq!(verdict(&all_good, 4), Verdict::NotReproduced);
        // sed: GOOD, BAD, GOOD: disputed whatever the quorum.
        let sed = [st(Good), st(Bad), st(Good)];
        assert_eq!(verdict(&sed, 1), Verdict::Disputed);
        assert_eq!(verdict(&sed, 2), Verdict::Disputed);
        assert_eq!(verdict(&[st(Good), st(Fail)], 1), Verdict::Disputed);
        // busybox: unknown to one rebuilder.
        let busybox = [st(Good), Said::NotListed, st(Good)];
        assert_eq!(verdict(&busybox, 2), Verdict::Reproduced);
        assert_eq!(verdict(&busybox, 3), Verdict::NotReproduced);
        // bash: one rebuilder has only the older version.
        let bash = [
            st(Good),
            st(Good),
            Said::OtherVersion {
                versions: vec!["5.2.15-1".into()],
            },
        ];
        assert_eq!(verdict(&bash, 2), Verdict::Reproduced);
        assert_eq!(verdict(&bash, 3), Verdict::NotReproduced);
        assert_eq!(verdict(&[st(Bad), st(Bad)], 1), Verdict::NotReproduced);
        assert_eq!(
            verdict(
                &[
                    st(Unknown),
                    Said::NotListed,
                    Said::Unavailable { error: "x".into() }
                ],
                1
            ),
            Verdict::Unknown
        );
        // Only other versions everywhere: unknown, never GOOD by name.
        assert_eq!(
            verdict(
                &[Said::OtherVersion {
                    versions: vec!["1".into()]
                }],
                1
            ),
            Verdict::Unknown
        );
        // Quorum 0 behaves as 1.
        assert_eq!(verdict(&[Said::NotListed], 0), Verdict::Unknown);
    }

    #[test]
    fn evaluate_and_summarize() {
        let rb = |recs: Vec<Record>| Ok(Index::new(recs));
        let rebuilders = vec![
            (
                "http://rb1".to_string(),
                rb(vec![
                    rec("a", "1-1", "x86_64", Good, 1),
                    rec("b", "1-1", "any", Bad, 2),
                ]),
            ),
            (
                "http://rb2".to_string(),
                Err("rebuilder http://rb2: timed out".to_string()),
            ),
        ];
        let pkgs = [
            Pkg::new("a", "1-1", "x86_64"),
            Pkg::new("b", "1-1", "any"),
            Pkg::new("c", "1-1", "x86_64"),
        ];
        let st = evaluate(&pkgs, &rebuilders, 1);
        assert_eq!(st[0].verdict, Verdict::Reproduced);
        assert_eq!(st[1].verdict, Verdict::NotReproduced);
        assert_eq!(st[2].verdict, Verdict::Unknown);
        assert!(matches!(st[0].rebuilders[1].said, Said::Unavailable { .. }));
        let s = summarize(&st);
        assert_eq!(
            (s.total, s.reproduced, s.not_reproduced, s.unknown),
            (3, 1, 1, 1)
        );
        assert!((s.percent - 33.333).abs() < 0.01);
        let j = serde_json::to_value(&st[0]).unwrap();
        assert_eq!(j["verdict"], "REPRODUCED");
        assert_eq!(j["rebuilders"][0]["result"], "status");
        assert_eq!(j["rebuilders"][0]["status"], "GOOD");
        assert_eq!(j["rebuilders"][1]["result"], "unavailable");
        assert_eq!(
            Verdict::parse("not-reproduced"),
            Some(Verdict::NotReproduced)
        );
        assert_eq!(Verdict::parse("UNKWN"), Some(Verdict::Unknown));
        assert_eq!(Verdict::parse("x"), None);
    }

    #[test]
    fn recount_with_attestations() {
        use crate::evidence::{AttestationCheck, ProductState};
        let idx = |st: Status| Ok(Index::new(vec![rec("a", "1-1", "any", st, 1)]));
        let rebuilders = vec![
            ("http://rb1".to_string(), idx(Good)),
            ("http://rb2".to_string(), idx(Good)),
            ("http://rb3".to_string(), idx(Bad)),
        ];
        let pkgs = [Pkg::new("a", "1-1", "any")];
        let verified = |pc| AttestationCheck::Verified {
            keyid: "k".into(),
            product: "a-1-1-any.pkg.tar.zst".into(),
            sha256: None,
            product_check: pc,
        };
        let mut st = evaluate(&pkgs, &rebuilders[..2], 2).remove(0);
        assert_eq!(st.verdict, Verdict::Reproduced);
        // An invalid attestation never counts.
        st.rebuilders[0].attestation = Some(AttestationCheck::Invalid { reason: "x".into() });
        st.rebuilders[1].attestation = Some(verified(ProductState::Unchecked));
        recount(&mut st, 2, false);
        assert_eq!((st.good, st.verdict), (1, Verdict::NotReproduced));
        assert!(!st.rebuilders[0].counts && st.rebuilders[1].counts);
        // Required: only a product checked against the archive's hash counts.
        st.rebuilders[0].attestation = Some(verified(ProductState::Matched));
        recount(&mut st, 1, true);
        assert_eq!((st.good, st.verdict), (1, Verdict::Reproduced));
        recount(&mut st, 2, true);
        assert_eq!(st.verdict, Verdict::NotReproduced);
        recount(&mut st, 2, false);
        assert_eq!(st.verdict, Verdict::Reproduced);
        // A BAD elsewhere disputes a counted GOOD, but not a GOOD that does not count.
        let mut st = evaluate(&pkgs, &rebuilders, 1).remove(0);
        assert_eq!(st.verdict, Verdict::Disputed);
        st.rebuilders[0].attestation = Some(AttestationCheck::Missing { reason: "-".into() });
        st.rebuilders[1].attestation = Some(AttestationCheck::Invalid { reason: "-".into() });
        recount(&mut st, 1, true);
        assert_eq!(st.verdict, Verdict::NotReproduced);
    }
}
