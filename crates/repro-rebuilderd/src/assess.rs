//! Evidence for a set of packages, as `status` and `verify` gather it: list every rebuilder
//! at once ([`gather`]), match exactly, fetch and verify the attestations of GOOD builds
//! with each rebuilder's key (pinned, else learned on first use), and decide per package
//! with the quorum ([`assess`]).

use serde::Serialize;

use crate::attestation::PublicKey;
use crate::evidence::{self, AttestationCheck, Job, ProductState, Verifier};
use crate::keys::{KeyError, KnownKeys, Trust};
use crate::quorum::{self, Index, PackageStatus, Pkg};
use crate::{Api, Client, Filter, Listing, Stats, Status};

/// One rebuilder as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RebuilderReport {
    pub url: String,
    pub api: Option<Api>,
    pub records: usize,
    pub error: Option<String>,
    /// How the keys used for its attestations are trusted (absent: not checked).
    pub key_trust: Option<Trust>,
    pub keyids: Vec<String>,
    pub key_error: Option<String>,
    pub stats: Stats,
}

/// Counts over every checked attestation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AttestationSummary {
    pub checked: bool,
    pub required: bool,
    pub verified: usize,
    /// Of `verified`: the product's sha256 compared with the archive's.
    pub hash_matched: usize,
    pub missing: usize,
    pub invalid: usize,
    pub unavailable: usize,
}

/// Every rebuilder's listing.
pub struct Gathered {
    pub rebuilders: Vec<RebuilderReport>,
    /// (URL, index or why there is none), in the order given.
    pub indexes: Vec<(String, Result<Index, String>)>,
    pub apis: Vec<Option<Api>>,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AssessError {
    #[error("no rebuilder answered:\n  {}", .0.join("\n  "))]
    NoAnswer(Vec<String>),
    #[error(transparent)]
    Keys(#[from] KeyError),
}

/// List every client's records at once. Fails only when no rebuilder answered.
pub fn gather(clients: &[Client], filter: &Filter) -> Result<Gathered, AssessError> {
    let listings = crate::list_each(clients, filter);
    if listings.iter().all(|l| l.is_err()) {
        return Err(AssessError::NoAnswer(
            listings
                .into_iter()
                .filter_map(|l| l.err().map(|e| e.to_string()))
                .collect(),
        ));
    }
    let mut g = Gathered {
        rebuilders: Vec::new(),
        indexes: Vec::new(),
        apis: Vec::new(),
        warnings: Vec::new(),
    };
    for (c, l) in clients.iter().zip(listings) {
        let (api, records, error, index) = match l {
            Ok(Listing { api, records, .. }) => {
                (Some(api), records.len(), None, Ok(Index::new(records)))
            }
            Err(e) => {
                g.warnings.push(e.to_string());
                (None, 0, Some(e.to_string()), Err(e.to_string()))
            }
        };
        g.apis.push(api);
        g.indexes.push((c.url().to_string(), index));
        g.rebuilders.push(RebuilderReport {
            url: c.url().to_string(),
            api,
            records,
            error,
            key_trust: None,
            keyids: Vec::new(),
            key_error: None,
            stats: Stats::default(),
        });
    }
    Ok(g)
}

/// The package file a package was installed from: its name and, when known, its sha256.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub filename: String,
    pub sha256: Option<String>,
}

pub struct AssessOptions {
    pub quorum: usize,
    /// Fetch and verify attestations of GOOD builds.
    pub attestations: bool,
    /// Count a GOOD only with a fully verified attestation.
    pub require_attestation: bool,
    /// Attestation requests in flight per rebuilder.
    pub jobs: usize,
}

pub struct Assessment {
    pub rebuilders: Vec<RebuilderReport>,
    pub statuses: Vec<PackageStatus>,
    pub attestations: AttestationSummary,
    pub warnings: Vec<String>,
}

/// Decide every package. `files[i]` describes `pkgs[i]`'s package file (`None`: derive the
/// name from the record, sha256 unknown); `pinned(url)` gives configured keys; keys fetched
/// from a rebuilder are checked against (and learned into) `known` — a changed key is an
/// error. Without `known`, fetched keys are trusted for this run only (a warning says so).
pub fn assess(
    clients: &[Client],
    g: Gathered,
    pkgs: &[Pkg],
    files: &[Option<FileFacts>],
    pinned: &dyn Fn(&str) -> Option<Vec<PublicKey>>,
    mut known: Option<&mut KnownKeys>,
    opts: &AssessOptions,
) -> Result<Assessment, AssessError> {
    let Gathered {
        mut rebuilders,
        indexes,
        apis,
        mut warnings,
    } = g;
    let mut statuses = quorum::evaluate(pkgs, &indexes, opts.quorum);
    let mut att = AttestationSummary {
        checked: opts.attestations,
        required: opts.require_attestation,
        ..AttestationSummary::default()
    };
    if opts.attestations {
        // Keys: pinned wins; else fetched (in parallel) and checked against those known.
        let asked: Vec<(&Client, bool)> = clients
            .iter()
            .zip(&apis)
            .map(|(c, api)| (c, api.is_some() && pinned(c.url()).is_none()))
            .collect();
        let fetched: Vec<Option<Result<Vec<PublicKey>, String>>> = crate::on_threads(
            &asked,
            |(c, ask)| ask.then(|| c.public_keys().map_err(|e| e.to_string())),
            |_| Some(Err("key request panicked".into())),
        );
        let mut keys: Vec<Result<Vec<PublicKey>, String>> = Vec::new();
        for ((r, f), c) in rebuilders.iter_mut().zip(fetched).zip(clients) {
            let k = if let Some(p) = pinned(c.url()) {
                r.key_trust = Some(Trust::Pinned);
                Ok(p)
            } else {
                match f {
                    None => Err("the rebuilder could not be asked".to_string()),
                    Some(Err(e)) => Err(e),
                    Some(Ok(ks)) => match known.as_deref_mut() {
                        // A changed key is a hard error: a compromised or replaced
                        // rebuilder must not be trusted silently.
                        Some(kk) => {
                            r.key_trust = Some(kk.check(c.url(), &ks)?);
                            Ok(ks)
                        }
                        None => {
                            warnings.push(format!(
                                "{}: its keys cannot be remembered (no known-keys file): \
                                 trusting what it serves now",
                                c.url()
                            ));
                            r.key_trust = Some(Trust::FirstUse);
                            Ok(ks)
                        }
                    },
                }
            };
            match &k {
                Ok(ks) => r.keyids = ks.iter().map(|k| k.keyid().to_string()).collect(),
                Err(e) => {
                    r.key_error = Some(e.clone());
                    if r.error.is_none() {
                        warnings.push(format!("{}: no key to verify attestations: {e}", r.url));
                    }
                }
            }
            keys.push(k);
        }
        let verifiers: Vec<Verifier> = clients
            .iter()
            .zip(&apis)
            .zip(keys)
            .map(|((client, api), keys)| Verifier {
                client,
                api: api.unwrap_or(Api::V1),
                keys,
            })
            .collect();
        let mut jobs: Vec<Job> = Vec::new();
        for (pi, p) in pkgs.iter().enumerate() {
            let facts = files.get(pi).and_then(Option::as_ref);
            for (ri, (_, idx)) in indexes.iter().enumerate() {
                let Ok(idx) = idx else { continue };
                let Some(rec) = idx.exact(p).filter(|r| r.status == Status::Good) else {
                    continue;
                };
                let filename = facts
                    .map(|f| f.filename.clone())
                    .or_else(|| {
                        rec.url
                            .as_deref()
                            .and_then(|u| u.rsplit('/').next())
                            .filter(|f| !f.is_empty())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| format!("{}-{}-{}.pkg.tar.zst", p.name, p.version, p.arch));
                jobs.push(Job {
                    rebuilder: ri,
                    package: pi,
                    record: rec.clone(),
                    filename,
                    sha256: facts.and_then(|f| f.sha256.clone()),
                });
            }
        }
        let checks = evidence::fetch_and_check(&verifiers, &jobs, opts.jobs);
        for (job, check) in jobs.iter().zip(checks) {
            match &check {
                AttestationCheck::Verified { product_check, .. } => {
                    att.verified += 1;
                    if *product_check == ProductState::Matched {
                        att.hash_matched += 1;
                    }
                }
                AttestationCheck::Missing { .. } => att.missing += 1,
                AttestationCheck::Invalid { reason } => {
                    att.invalid += 1;
                    warnings.push(format!(
                        "{}: {} {}: invalid attestation: {reason}",
                        rebuilders[job.rebuilder].url,
                        pkgs[job.package].name,
                        pkgs[job.package].version
                    ));
                }
                AttestationCheck::Unavailable { .. } => att.unavailable += 1,
            }
            statuses[job.package].rebuilders[job.rebuilder].attestation = Some(check);
        }
    }
    for st in &mut statuses {
        quorum::recount(st, opts.quorum, opts.require_attestation);
    }
    for (r, c) in rebuilders.iter_mut().zip(clients) {
        r.stats = c.stats();
    }
    Ok(Assessment {
        rebuilders,
        statuses,
        attestations: att,
        warnings,
    })
}
