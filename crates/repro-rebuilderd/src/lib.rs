//! A client for rebuilderd (0.28) and the exact, multi-rebuilder matching on top of it.
//!
//! - [`Client::list`] reads every binary package record of one rebuilder: API v1
//!   `GET /api/v1/packages/binary` (filters `distribution`, `architecture`, `name`; paged by
//!   `limit` + `after` = the last record id, since the server caps a page at 1000 by
//!   default), falling back to v0 `GET /api/v0/pkgs/list` when v1 answers 404.
//! - Every failure is a typed [`Error`] naming the rebuilder URL: HTTP status, transport,
//!   timeout, malformed JSON.
//! - [`quorum`]: pure functions matching an image's packages to the records by name, version
//!   and architecture, and deciding REPRODUCED / DISPUTED / NOT REPRODUCED / UNKNOWN.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ureq::Agent;

pub mod assess;
pub mod attestation;
pub mod cache;
pub mod config;
pub mod evidence;
pub mod keys;
pub mod quorum;

use std::sync::atomic::{AtomicU64, Ordering};

pub use cache::HttpCache;

/// A build result, as rebuilderd spells it. A v1 record without a result (`status: null`)
/// and v0's `UNKWN` are both [`Status::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    #[serde(rename = "GOOD")]
    Good,
    #[serde(rename = "BAD")]
    Bad,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "UNKWN")]
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Good => "GOOD",
            Status::Bad => "BAD",
            Status::Fail => "FAIL",
            Status::Unknown => "UNKWN",
        }
    }

    /// `GOOD`, `BAD`, `FAIL`, `UNKWN` (also `UNKNOWN`), any case.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s.to_ascii_uppercase().as_str() {
            "GOOD" => Status::Good,
            "BAD" => Status::Bad,
            "FAIL" => Status::Fail,
            "UNKWN" | "UNKNOWN" => Status::Unknown,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which API answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Api {
    #[serde(rename = "v1")]
    V1,
    #[serde(rename = "v0")]
    V0,
}

/// One binary package as a rebuilder knows it (v1 and v0 records mapped to one shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    /// v1 record id (v0 has none).
    pub id: Option<i64>,
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub status: Status,
    /// v1 `distribution`, v0 `distro`.
    pub distribution: Option<String>,
    /// v1 `component`, v0 `suite`.
    pub component: Option<String>,
    pub url: Option<String>,
    pub build_id: Option<i64>,
    /// v1 only.
    pub artifact_id: Option<i64>,
    /// v1 `attestation_log_id`.
    pub attestation_log_id: Option<i64>,
    /// v0 `has_attestation`, or v1 `attestation_log_id` present.
    pub has_attestation: bool,
    pub has_diffoscope: bool,
}

#[derive(Deserialize)]
struct V1Page {
    total: i64,
    records: Vec<V1Record>,
}

#[derive(Deserialize)]
struct V1Record {
    id: i64,
    name: String,
    version: String,
    #[serde(default)]
    distribution: Option<String>,
    #[serde(default)]
    component: Option<String>,
    architecture: String,
    #[serde(default)]
    url: Option<String>,
    status: Option<Status>,
    #[serde(default)]
    build_id: Option<i64>,
    #[serde(default)]
    artifact_id: Option<i64>,
    #[serde(default)]
    diffoscope_log_id: Option<i64>,
    #[serde(default)]
    attestation_log_id: Option<i64>,
}

#[derive(Deserialize)]
struct V0Record {
    name: String,
    version: String,
    status: Status,
    #[serde(default)]
    distro: Option<String>,
    #[serde(default)]
    suite: Option<String>,
    architecture: String,
    #[serde(default)]
    artifact_url: Option<String>,
    #[serde(default)]
    build_id: Option<i64>,
    #[serde(default)]
    has_diffoscope: bool,
    #[serde(default)]
    has_attestation: bool,
}

impl From<V1Record> for Record {
    fn from(r: V1Record) -> Record {
        Record {
            id: Some(r.id),
            name: r.name,
            version: r.version,
            architecture: r.architecture,
            status: r.status.unwrap_or(Status::Unknown),
            distribution: r.distribution,
            component: r.component,
            url: r.url,
            build_id: r.build_id,
            artifact_id: r.artifact_id,
            has_attestation: r.attestation_log_id.is_some(),
            attestation_log_id: r.attestation_log_id,
            has_diffoscope: r.diffoscope_log_id.is_some(),
        }
    }
}

impl From<V0Record> for Record {
    fn from(r: V0Record) -> Record {
        Record {
            id: None,
            name: r.name,
            version: r.version,
            architecture: r.architecture,
            status: r.status,
            distribution: r.distro,
            component: r.suite,
            url: r.artifact_url,
            build_id: r.build_id,
            artifact_id: None,
            attestation_log_id: None,
            has_attestation: r.has_attestation,
            has_diffoscope: r.has_diffoscope,
        }
    }
}

/// What went wrong talking to one rebuilder. Every variant names the rebuilder's URL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rebuilder {rebuilder}: GET {url}: HTTP {status}{}", detail(body))]
    Http {
        rebuilder: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("rebuilder {rebuilder}: GET {url}: timed out ({message})")]
    Timeout {
        rebuilder: String,
        url: String,
        message: String,
    },
    #[error("rebuilder {rebuilder}: GET {url}: {message}")]
    Transport {
        rebuilder: String,
        url: String,
        message: String,
    },
    #[error("rebuilder {rebuilder}: GET {url}: malformed JSON: {message}")]
    Malformed {
        rebuilder: String,
        url: String,
        message: String,
    },
    #[error("rebuilder {rebuilder}: invalid URL: {message}")]
    BadUrl { rebuilder: String, message: String },
}

fn detail(body: &str) -> String {
    let b: String = body.trim().chars().take(200).collect();
    if b.is_empty() {
        String::new()
    } else {
        format!(": {b}")
    }
}

impl Error {
    /// The rebuilder (base URL) the error is about.
    pub fn rebuilder(&self) -> &str {
        match self {
            Error::Http { rebuilder, .. }
            | Error::Timeout { rebuilder, .. }
            | Error::Transport { rebuilder, .. }
            | Error::Malformed { rebuilder, .. }
            | Error::BadUrl { rebuilder, .. } => rebuilder,
        }
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Idle timeout: the longest wait for any single read or write.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Bound on one whole request (head and body), so a trickling server cannot hold us.
    pub request_timeout: Duration,
    /// Records per v1 page (the server's own default and cap is 1000).
    pub page_size: u32,
    /// Largest response body accepted.
    pub max_body: u64,
    pub user_agent: String,
    /// Attempts per request: connection failures, 429 and 5xx are retried (a timeout is
    /// not: a hanging rebuilder must not hold the run for attempts × the timeout).
    pub attempts: u32,
    /// First retry delay, doubled per attempt; a `Retry-After` (seconds, ≤ 30) wins.
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(15),
            request_timeout: Duration::from_secs(120),
            page_size: 1000,
            max_body: 256 * 1024 * 1024,
            user_agent: concat!("repro-image/", env!("CARGO_PKG_VERSION")).to_string(),
            attempts: 3,
            backoff: Duration::from_millis(250),
        }
    }
}

/// Narrow the listing (both APIs filter on these server-side).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub distribution: Option<String>,
    pub architecture: Option<String>,
    pub name: Option<String>,
}

/// HTTP cache validators of a response (`Last-Modified`, `ETag`), sent back as
/// `If-Modified-Since` / `If-None-Match`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    pub last_modified: Option<String>,
    pub etag: Option<String>,
}

impl Validators {
    pub fn is_some(&self) -> bool {
        self.last_modified.is_some() || self.etag.is_some()
    }
}

/// One answered GET.
#[derive(Debug)]
struct Fetched {
    not_modified: bool,
    validators: Validators,
    body: Vec<u8>,
}

/// Everything one rebuilder listed.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub rebuilder: String,
    pub api: Api,
    pub records: Vec<Record>,
}

/// What talking to one rebuilder cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Response body bytes received.
    pub bytes: u64,
    /// Answers taken from the cache without a request (immutable entries).
    pub cache_hits: u64,
    /// `304 Not Modified` answers (the cached body was used).
    pub not_modified: u64,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    cache_hits: AtomicU64,
    not_modified: AtomicU64,
}

/// How a cached response may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheUse {
    /// Ask again, conditionally when the entry has validators.
    Revalidate,
    /// A finished build's output never changes: use the entry without asking.
    Immutable,
}

/// A build's text output to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildText {
    Log,
    Diffoscope,
}

/// One rebuilder.
pub struct Client {
    base: String,
    opts: Options,
    agent: Agent,
    cache: Option<HttpCache>,
    counters: Counters,
}

impl Client {
    /// `url` is the rebuilder's base URL (`https://reproducible.archlinux.org`); a trailing
    /// `/` is dropped.
    pub fn new(url: &str, opts: Options) -> Result<Client, Error> {
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 8 {
            return Err(Error::BadUrl {
                rebuilder: url.to_string(),
                message: "expected http://HOST[:PORT][/PATH] or https://…".into(),
            });
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .timeout_global(Some(opts.request_timeout))
            .user_agent(opts.user_agent.as_str())
            .build()
            .into();
        Ok(Client {
            base,
            opts,
            agent,
            cache: None,
            counters: Counters::default(),
        })
    }

    /// Keep responses in `root/<rebuilder key>/` (see [`cache`]).
    pub fn with_cache(mut self, root: &Path) -> Client {
        self.cache = Some(HttpCache::for_rebuilder(root, &self.base));
        self
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn stats(&self) -> Stats {
        Stats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
            cache_hits: self.counters.cache_hits.load(Ordering::Relaxed),
            not_modified: self.counters.not_modified.load(Ordering::Relaxed),
        }
    }

    /// The rebuilder's signing keys: v1 `/api/v1/meta/public-keys` (rebuilderd 0.28 answers
    /// `{"current":[PEM…]}`; its OpenAPI text says `[{"current":PEM}]`: both are read), v0
    /// `/api/v0/public-keys` when v1 answers 404.
    pub fn public_keys(&self) -> Result<Vec<attestation::PublicKey>, Error> {
        let v1 = format!("{}/api/v1/meta/public-keys", self.base);
        let (url, value) = match self.get_json::<serde_json::Value>(&v1) {
            Ok(v) => (v1, v),
            Err(Error::Http { status: 404, .. }) => {
                let v0 = format!("{}/api/v0/public-keys", self.base);
                let v = self.get_json::<serde_json::Value>(&v0)?;
                (v0, v)
            }
            Err(e) => return Err(e),
        };
        let malformed = |message: String| Error::Malformed {
            rebuilder: self.base.clone(),
            url: url.clone(),
            message,
        };
        let mut pems: Vec<String> = Vec::new();
        let mut take = |v: &serde_json::Value| -> Result<(), Error> {
            match v.get("current") {
                Some(serde_json::Value::String(p)) => pems.push(p.clone()),
                Some(serde_json::Value::Array(a)) => {
                    for p in a {
                        pems.push(
                            p.as_str()
                                .ok_or_else(|| {
                                    malformed("a key in \"current\" is not a string".into())
                                })?
                                .to_string(),
                        );
                    }
                }
                _ => return Err(malformed("no \"current\" key list".into())),
            }
            Ok(())
        };
        match &value {
            serde_json::Value::Array(items) => items.iter().try_for_each(&mut take)?,
            v => take(v)?,
        }
        if pems.is_empty() {
            return Err(malformed("no public key".into()));
        }
        pems.iter()
            .map(|p| {
                attestation::PublicKey::from_pem(p)
                    .map_err(|e| malformed(format!("public key: {e}")))
            })
            .collect()
    }

    /// The in-toto link of a GOOD build: v1
    /// `/api/v1/builds/{build}/artifacts/{artifact}/attestation`, v0
    /// `/api/v0/builds/{build}/attestation`. `Ok(None)`: the rebuilder has none (404, or the
    /// record names no build).
    pub fn attestation(&self, record: &Record, api: Api) -> Result<Option<Vec<u8>>, Error> {
        let url = match (api, record.build_id, record.artifact_id) {
            (Api::V1, Some(b), Some(a)) => {
                format!("{}/api/v1/builds/{b}/artifacts/{a}/attestation", self.base)
            }
            (Api::V0, Some(b), _) => format!("{}/api/v0/builds/{b}/attestation", self.base),
            _ => return Ok(None),
        };
        match self.get_cached(&url, "application/json", CacheUse::Immutable) {
            Ok(body) => Ok(Some(body)),
            Err(Error::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A build's log or diffoscope output (v1, or v0 for v0 records). `Ok(None)` when the
    /// rebuilder has none.
    pub fn build_text(
        &self,
        record: &Record,
        api: Api,
        what: BuildText,
    ) -> Result<Option<Vec<u8>>, Error> {
        let url = match (api, what, record.build_id, record.artifact_id) {
            (Api::V1, BuildText::Log, Some(b), _) => format!("{}/api/v1/builds/{b}/log", self.base),
            (Api::V1, BuildText::Diffoscope, Some(b), Some(a)) => {
                format!("{}/api/v1/builds/{b}/artifacts/{a}/diffoscope", self.base)
            }
            (Api::V0, BuildText::Log, Some(b), _) => format!("{}/api/v0/builds/{b}/log", self.base),
            (Api::V0, BuildText::Diffoscope, Some(b), _) => {
                format!("{}/api/v0/builds/{b}/diffoscope", self.base)
            }
            _ => return Ok(None),
        };
        match self.get_cached(&url, "text/plain", CacheUse::Immutable) {
            Ok(body) => Ok(Some(body)),
            Err(Error::Http { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET through the cache (when there is one).
    fn get_cached(&self, url: &str, accept: &str, mode: CacheUse) -> Result<Vec<u8>, Error> {
        let Some(cache) = &self.cache else {
            return Ok(self.get(url, accept, &Validators::default())?.body);
        };
        let entry = cache.get(url);
        if mode == CacheUse::Immutable
            && let Some(e) = entry
        {
            self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(e.body);
        }
        let cond = entry
            .as_ref()
            .map(|e| e.validators.clone())
            .unwrap_or_default();
        let f = self.get(url, accept, &cond)?;
        if f.not_modified {
            self.counters.not_modified.fetch_add(1, Ordering::Relaxed);
            if let Some(e) = entry {
                return Ok(e.body);
            }
        }
        // Listings are kept only when they can be revalidated; a write failure only costs
        // the next run a request.
        if mode == CacheUse::Immutable || f.validators.is_some() {
            let _ = cache.put(url, &f.validators, &f.body);
        }
        Ok(f.body)
    }

    /// Every record matching `filter`: v1 (all pages), or v0 when v1 answers 404.
    pub fn list(&self, filter: &Filter) -> Result<Listing, Error> {
        match self.list_v1(filter) {
            Ok(records) => Ok(Listing {
                rebuilder: self.base.clone(),
                api: Api::V1,
                records,
            }),
            Err(Error::Http { status: 404, .. }) => Ok(Listing {
                rebuilder: self.base.clone(),
                api: Api::V0,
                records: self.list_v0(filter)?,
            }),
            Err(e) => Err(e),
        }
    }

    /// v1 `/api/v1/packages/binary`, paged by id.
    pub fn list_v1(&self, filter: &Filter) -> Result<Vec<Record>, Error> {
        let mut out: Vec<Record> = Vec::new();
        let mut after: Option<i64> = None;
        loop {
            let mut q: Vec<(&str, String)> = vec![("limit", self.opts.page_size.to_string())];
            if let Some(a) = after {
                q.push(("after", a.to_string()));
            }
            push_opt(&mut q, "distribution", &filter.distribution);
            push_opt(&mut q, "architecture", &filter.architecture);
            push_opt(&mut q, "name", &filter.name);
            let url = format!("{}/api/v1/packages/binary{}", self.base, query(&q));
            let body = self.get_cached(&url, "application/json", CacheUse::Revalidate)?;
            let page: V1Page = self.parse_json(&url, &body)?;
            let n = page.records.len();
            let last = page.records.last().map(|r| r.id);
            out.extend(page.records.into_iter().map(Record::from));
            // Done on a short page, or when we have as many as the server counts.
            let stalled = matches!((after, last), (Some(a), Some(l)) if l <= a);
            if n < self.opts.page_size as usize
                || out.len() as i64 >= page.total
                || last.is_none()
                || stalled
            {
                break;
            }
            after = last;
        }
        Ok(out)
    }

    /// v0 `/api/v0/pkgs/list` (one response, no paging).
    pub fn list_v0(&self, filter: &Filter) -> Result<Vec<Record>, Error> {
        let mut q: Vec<(&str, String)> = Vec::new();
        push_opt(&mut q, "distro", &filter.distribution);
        push_opt(&mut q, "architecture", &filter.architecture);
        push_opt(&mut q, "name", &filter.name);
        let url = format!("{}/api/v0/pkgs/list{}", self.base, query(&q));
        let body = self.get_cached(&url, "application/json", CacheUse::Revalidate)?;
        let list: Vec<V0Record> = self.parse_json(&url, &body)?;
        Ok(list.into_iter().map(Record::from).collect())
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, Error> {
        let r = self.get(url, "application/json", &Validators::default())?;
        self.parse_json(url, &r.body)
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        body: &[u8],
    ) -> Result<T, Error> {
        serde_json::from_slice(body).map_err(|e| Error::Malformed {
            rebuilder: self.base.clone(),
            url: url.to_string(),
            message: e.to_string(),
        })
    }

    /// GET with retries; 200 (and 304 when `cond` has validators) are answers, any other
    /// status is [`Error::Http`].
    fn get(&self, url: &str, accept: &str, cond: &Validators) -> Result<Fetched, Error> {
        let attempts = self.opts.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= attempts;
            match self.get_once(url, accept, cond) {
                Ok(f) => return Ok(f),
                Err((e, retry_after)) => {
                    let retryable = match &e {
                        Error::Http { status, .. } => *status == 429 || *status >= 500,
                        Error::Transport { .. } => true,
                        _ => false,
                    };
                    if last || !retryable {
                        return Err(e);
                    }
                    let backoff = self.opts.backoff * 2u32.saturating_pow(attempt - 1);
                    std::thread::sleep(retry_after.unwrap_or(backoff));
                }
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn get_once(
        &self,
        url: &str,
        accept: &str,
        cond: &Validators,
    ) -> Result<Fetched, (Error, Option<Duration>)> {
        let mut req = self.agent.get(url).header("Accept", accept);
        if let Some(lm) = &cond.last_modified {
            req = req.header("If-Modified-Since", lm.as_str());
        }
        if let Some(et) = &cond.etag {
            req = req.header("If-None-Match", et.as_str());
        }
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.call().map_err(|e| (self.transport(url, e), None))?;
        let status = resp.status().as_u16();
        let header = |n: &str| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let validators = Validators {
            last_modified: header("Last-Modified"),
            etag: header("ETag"),
        };
        let retry_after = header("Retry-After")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(30)));
        let mut body = resp.into_body();
        let bytes = body
            .with_config()
            .limit(self.opts.max_body)
            .read_to_vec()
            .map_err(|e| (self.transport(url, e), None))?;
        self.counters
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if status == 304 && cond.is_some() {
            return Ok(Fetched {
                not_modified: true,
                validators,
                body: Vec::new(),
            });
        }
        if status != 200 {
            return Err((
                Error::Http {
                    rebuilder: self.base.clone(),
                    url: url.to_string(),
                    status,
                    body: String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned(),
                },
                retry_after,
            ));
        }
        Ok(Fetched {
            not_modified: false,
            validators,
            body: bytes,
        })
    }

    fn transport(&self, url: &str, e: ureq::Error) -> Error {
        let timed_out = match &e {
            ureq::Error::Timeout(_) => true,
            ureq::Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        };
        if timed_out {
            Error::Timeout {
                rebuilder: self.base.clone(),
                url: url.to_string(),
                message: e.to_string(),
            }
        } else {
            Error::Transport {
                rebuilder: self.base.clone(),
                url: url.to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// `f` of every item, each on a thread of its own; the results in the order given (an
/// item whose thread panicked gets `panicked(item)`).
pub(crate) fn on_threads<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> R + Sync,
    panicked: impl Fn(&T) -> R,
) -> Vec<R> {
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|t| s.spawn(|| f(t))).collect();
        handles
            .into_iter()
            .zip(items)
            .map(|(h, t)| h.join().unwrap_or_else(|_| panicked(t)))
            .collect()
    })
}

fn panicked_listing(url: &str) -> Result<Listing, Error> {
    Err(Error::Transport {
        rebuilder: url.to_string(),
        url: url.to_string(),
        message: "the request thread panicked".into(),
    })
}

/// List with several clients at once, one thread each; results in the order given.
pub fn list_each(clients: &[Client], filter: &Filter) -> Vec<Result<Listing, Error>> {
    on_threads(clients, |c| c.list(filter), |c| panicked_listing(c.url()))
}

/// List several rebuilders at once, one thread each; results in the order given.
pub fn list_all(urls: &[String], opts: &Options, filter: &Filter) -> Vec<Result<Listing, Error>> {
    on_threads(
        urls,
        |u| Client::new(u, opts.clone())?.list(filter),
        |u| panicked_listing(u),
    )
}

fn push_opt<'a>(q: &mut Vec<(&'a str, String)>, k: &'a str, v: &Option<String>) {
    if let Some(v) = v {
        q.push((k, v.clone()));
    }
}

fn query(q: &[(&str, String)]) -> String {
    if q.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = q.iter().map(|(k, v)| format!("{k}={}", enc(v))).collect();
    format!("?{}", parts.join("&"))
}

/// Percent-encode everything but unreserved characters.
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED_KEPT).to_string()
}

/// Percent-encode all but RFC 3986's unreserved characters.
const UNRESERVED_KEPT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_record_null_status_is_unknown() {
        let p: V1Page = serde_json::from_str(
            r#"{"total":1,"records":[{"id":4,"name":"bash","version":"5.2.15-1","distribution":"archlinux","release":null,"component":"core","architecture":"x86_64","url":"http://x/bash.pkg.tar.zst","status":null,"build_id":null,"artifact_id":null,"diffoscope_log_id":null,"attestation_log_id":null,"last_seen":"2026-11-25T21:54:02.648676385","seen_in_last_sync":true}]}"#,
        )
        .unwrap();
        let r = Record::from(p.records.into_iter().next().unwrap());
        assert_eq!(r.status, Status::Unknown);
        assert_eq!(r.id, Some(4));
        assert!(!r.has_attestation);
    }

    #[test]
    fn v0_sample_parses() {
        let text = r#"[{"name":"0ad","version":"a26-14","status":"GOOD","distro":"archlinux","suite":"extra","architecture":"x86_64","artifact_url":"https://geo.mirror.pkgbuild.com/extra/os/x86_64/0ad-a26-14-x86_64.pkg.tar.zst","build_id":626841,"built_at":"2024-05-22T23:04:25.781533388","has_diffoscope":false,"has_attestation":true},
        {"name":"x","version":"1-1","status":"UNKWN","distro":"archlinux","suite":"core","architecture":"any","artifact_url":null,"build_id":null,"built_at":null,"has_diffoscope":false,"has_attestation":false}]"#;
        let v: Vec<V0Record> = serde_json::from_str(text).unwrap();
        let r: Vec<Record> = v.into_iter().map(Record::from).collect();
        assert_eq!(r[0].status, Status::Good);
        assert_eq!(r[0].component.as_deref(), Some("extra"));
        assert!(r[0].has_attestation);
        assert_eq!(r[1].status, Status::Unknown);
        assert_eq!(r[1].architecture, "any");
    }

    #[test]
    fn unknown_status_word_is_malformed() {
        assert!(serde_json::from_str::<Status>(r#""MAYBE""#).is_err());
        assert_eq!(Status::parse("unkwn"), Some(Status::Unknown));
    }

    #[test]
    fn query_encoding() {
        assert_eq!(
            query(&[("name", "a+b c".into()), ("limit", "5".into())]),
            "?name=a%2Bb%20c&limit=5"
        );
        assert!(Client::new("ftp://x", Options::default()).is_err());
        assert_eq!(
            Client::new("http://h:1/", Options::default())
                .unwrap()
                .url(),
            "http://h:1"
        );
    }
}
