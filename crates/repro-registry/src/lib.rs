//! OCI distribution client: pull manifests and blobs with their exact bytes, push them back
//! unchanged.
//!
//! - Auth: anonymous, basic, and the bearer-token flow from `WWW-Authenticate` (Docker Hub,
//!   ghcr.io, quay.io), with a token per repository scope.
//! - Retries with exponential backoff on 429/5xx and connection failures, honouring
//!   `Retry-After`; an idle timeout on every read, so a stalled server cannot hang us.
//! - Redirects are followed by hand (blob storage lives elsewhere), with a hop limit and
//!   without forwarding credentials to another host.
//! - Manifests are checked against the requested digest and `Docker-Content-Digest`.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use repro_oci::DockerRef;
use repro_oci::digest::{Digest, Hasher, check_verifiable};
use repro_oci::media::{MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use ureq::Agent;
use ureq::http::{self, Response};

pub mod auth;
use auth::Challenge;
pub use auth::Credentials;

const MAX_REDIRECTS: usize = 10;
/// Longest `Retry-After` we are willing to sleep for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{method} {url}: HTTP {status}{}", fmt_detail(.detail))]
    Http {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{method} {url}: {message}")]
    Transport {
        method: String,
        url: String,
        message: String,
        /// Worth another attempt (connection reset, refused, timeout)?
        transient: bool,
    },
    #[error("{registry}/{repository}: not authorized: {reason}")]
    Unauthorized {
        registry: String,
        repository: String,
        reason: String,
    },
    #[error("{what}: not found ({url})")]
    NotFound { what: String, url: String },
    #[error("{what}: digest mismatch: expected {expected}, got {got}")]
    DigestMismatch {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{what}: {size} bytes is over the {MAX_MANIFEST_BYTES}-byte manifest limit")]
    TooLarge { what: String, size: u64 },
    #[error("{url}: more than {MAX_REDIRECTS} redirects (loop?)")]
    TooManyRedirects { url: String },
    #[error("{0}")]
    Config(String),
    #[error("{what}: {message}")]
    Protocol { what: String, message: String },
}

fn fmt_detail(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(": {d}")
    }
}

impl RegistryError {
    fn transient(&self) -> bool {
        match self {
            RegistryError::Http { status, .. } => {
                matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
            }
            RegistryError::Transport { transient, .. } => *transient,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `--tls-verify=false`: accept any certificate, and plain http when https fails.
    pub insecure: bool,
    /// Idle timeout: the longest wait for any single read or write.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Attempts per request (1 = no retries).
    pub attempts: u32,
    /// First backoff delay; doubled each retry.
    pub backoff: Duration,
    /// `--creds USER:PASS`; overrides the auth files.
    pub credentials: Option<Credentials>,
    /// Auth files to read, in order.
    pub auth_files: Vec<PathBuf>,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
            credentials: None,
            auth_files: auth::default_auth_files(),
            user_agent: concat!("repro-image/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    /// sha256 of `bytes` (checked against the reference and `Docker-Content-Digest`).
    pub digest: Digest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Access {
    Pull,
    Push,
}

impl Access {
    fn scope(self, repository: &str) -> String {
        match self {
            Access::Pull => format!("repository:{repository}:pull"),
            Access::Push => format!("repository:{repository}:pull,push"),
        }
    }
}

/// A registry client. Cheap to share across threads.
pub struct Client {
    opts: ClientOptions,
    agent: Agent,
    /// Authorization header per (host, scope).
    auth_cache: Mutex<HashMap<(String, String), String>>,
    /// http or https per host (only ever http when insecure).
    schemes: Mutex<HashMap<String, &'static str>>,
}

/// A request body that can be replayed for a retry.
pub enum Body<'a, 'b> {
    Empty,
    Bytes(&'a [u8]),
    /// A stream, reopened for each attempt.
    Stream(&'a mut dyn FnMut() -> io::Result<Box<dyn Read + 'b>>),
}

impl Client {
    pub fn new(opts: ClientOptions) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .disable_verification(opts.insecure)
            .build();
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .user_agent(opts.user_agent.as_str())
            .build()
            .into();
        Client {
            opts,
            agent,
            auth_cache: Mutex::new(HashMap::new()),
            schemes: Mutex::new(HashMap::new()),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn scheme(&self, host: &str) -> &'static str {
        if !self.opts.insecure {
            return "https";
        }
        if let Some(s) = self.schemes.lock().expect("lock").get(host) {
            return s;
        }
        // Insecure: probe https first, as skopeo does, and fall back to plain http. The probe
        // has short timeouts: a plain-http server may sit waiting on a TLS hello.
        let quick = Duration::from_secs(5).min(self.opts.timeout);
        let probe_agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .disable_verification(true)
                    .build(),
            )
            .timeout_connect(Some(quick))
            .timeout_global(Some(quick))
            .build()
            .into();
        let probe = probe_agent.get(format!("https://{host}/v2/")).call();
        let s = match probe {
            Ok(_) => "https",
            Err(_) => "http",
        };
        self.schemes
            .lock()
            .expect("lock")
            .insert(host.to_string(), s);
        s
    }

    fn url(&self, r: &DockerRef, tail: &str) -> String {
        let host = r.api_host();
        format!("{}://{host}/v2/{}/{tail}", self.scheme(host), r.repository)
    }

    /// GET or HEAD `manifests/<reference>` with the manifest Accept header; a non-2xx answer
    /// is an error. Returns the URL and a description for messages along with the response.
    fn manifest_request(
        &self,
        r: &DockerRef,
        reference: &str,
        method: &str,
    ) -> Result<(String, String, Response<ureq::Body>), RegistryError> {
        let url = self.url(r, &format!("manifests/{reference}"));
        let what = format!("manifest {}@{reference}", r.name());
        let resp = self.request(
            r,
            Access::Pull,
            method,
            &url,
            &[("Accept", MANIFEST_ACCEPT)],
            &mut Body::Empty,
        )?;
        let resp = expect_ok(resp, method, &url, &what)?;
        Ok((url, what, resp))
    }

    /// GET a manifest or index by tag or digest, with its exact bytes.
    pub fn get_manifest(
        &self,
        r: &DockerRef,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let (url, what, resp) = self.manifest_request(r, reference, "GET")?;
        let content_type = header(&resp, "content-type");
        let dcd = header(&resp, "docker-content-digest");
        if let Some(len) = resp.body().content_length()
            && len > MAX_MANIFEST_BYTES
        {
            return Err(RegistryError::TooLarge { what, size: len });
        }
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| transport_io("GET", &url, e))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(RegistryError::TooLarge {
                what,
                size: bytes.len() as u64,
            });
        }
        let digest = verify_manifest_digest(&bytes, reference, dcd.as_deref(), &what)?;
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// HEAD a manifest: the digest a tag points to now (for checking tag and digest together).
    pub fn head_manifest(
        &self,
        r: &DockerRef,
        reference: &str,
    ) -> Result<Option<Digest>, RegistryError> {
        let (_, what, resp) = self.manifest_request(r, reference, "HEAD")?;
        match header(&resp, "docker-content-digest") {
            Some(d) => d.parse().map(Some).map_err(|_| RegistryError::Protocol {
                what,
                message: format!("invalid Docker-Content-Digest {d:?}"),
            }),
            None => Ok(None),
        }
    }

    /// Open a blob for streaming. The caller verifies digest and size while reading
    /// ([`repro_oci::VerifyingReader`]); redirects to storage hosts are followed. A connection
    /// that breaks mid-body is resumed with a `Range` request (up to the retry budget), so a
    /// reset late in a large layer does not restart it.
    pub fn get_blob(
        self: &Arc<Self>,
        r: &DockerRef,
        digest: &Digest,
    ) -> Result<(Option<u64>, Box<dyn Read + Send>), RegistryError> {
        check_verifiable(digest).map_err(|e| RegistryError::Config(e.to_string()))?;
        let (len, body) = self.get_blob_from(r, digest, 0)?;
        Ok((
            len,
            Box::new(Resuming {
                client: Arc::clone(self),
                r: r.clone(),
                digest: digest.clone(),
                inner: body,
                offset: 0,
                total: len,
                resumes_left: self.opts.attempts.saturating_sub(1),
            }),
        ))
    }

    /// GET a blob from `offset` on. A registry that ignores `Range` (200) is read past the
    /// bytes we already have.
    fn get_blob_from(
        &self,
        r: &DockerRef,
        digest: &Digest,
        offset: u64,
    ) -> Result<(Option<u64>, Box<dyn Read + Send>), RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let what = format!("blob {}@{digest}", r.name());
        let range = format!("bytes={offset}-");
        let headers: &[(&str, &str)] = if offset > 0 {
            &[("Range", &range)]
        } else {
            &[]
        };
        let resp = self.request(r, Access::Pull, "GET", &url, headers, &mut Body::Empty)?;
        let status = resp.status().as_u16();
        let resp = expect_ok(resp, "GET", &url, &what)?;
        let len = resp.body().content_length();
        let mut reader: Box<dyn Read + Send> = Box::new(MapErr {
            inner: resp.into_body().into_reader(),
            url: url.clone(),
        });
        if offset > 0 && status != 206 {
            io::copy(&mut (&mut reader).take(offset), &mut io::sink())
                .map_err(|e| transport_io("GET", &url, e))?;
        }
        Ok((len, reader))
    }

    /// Does the repository have this blob? Returns its size.
    pub fn blob_exists(
        &self,
        r: &DockerRef,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let resp = self.request(r, Access::Push, "HEAD", &url, &[], &mut Body::Empty)?;
        match resp.status().as_u16() {
            200..=299 => Ok(Some(
                header(&resp, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            404 => Ok(None),
            s => Err(http_error("HEAD", &url, s, String::new())),
        }
    }

    /// Try a cross-repository mount; `Ok(true)` when the registry mounted it.
    pub fn mount_blob(
        &self,
        r: &DockerRef,
        digest: &Digest,
        from_repository: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(
            r,
            &format!("blobs/uploads/?mount={digest}&from={from_repository}"),
        );
        let resp = self.request(
            r,
            Access::Push,
            "POST",
            &url,
            &[("Content-Length", "0")],
            &mut Body::Empty,
        )?;
        match resp.status().as_u16() {
            201 => Ok(true),
            // 202: the registry started an ordinary upload instead; abandon it.
            202 => Ok(false),
            s => Err(http_error("POST", &url, s, error_detail(resp))),
        }
    }

    /// Upload a blob: monolithically (POST then PUT with the whole body), or in chunks of
    /// `chunk_size` (POST, PATCH…, PUT). The registry checks the digest on the final PUT.
    pub fn push_blob<'b>(
        &self,
        r: &DockerRef,
        digest: &Digest,
        size: u64,
        open: &mut dyn FnMut() -> io::Result<Box<dyn Read + 'b>>,
        chunk_size: Option<u64>,
    ) -> Result<(), RegistryError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r2 = self.push_blob_once(r, digest, size, open, chunk_size);
            match r2 {
                Err(e) if e.transient() && attempt < self.opts.attempts => {
                    std::thread::sleep(self.backoff(attempt, None));
                }
                other => return other,
            }
        }
    }

    fn push_blob_once<'b>(
        &self,
        r: &DockerRef,
        digest: &Digest,
        size: u64,
        open: &mut dyn FnMut() -> io::Result<Box<dyn Read + 'b>>,
        chunk_size: Option<u64>,
    ) -> Result<(), RegistryError> {
        let start = self.url(r, "blobs/uploads/");
        let resp = self.request(
            r,
            Access::Push,
            "POST",
            &start,
            &[("Content-Length", "0")],
            &mut Body::Empty,
        )?;
        if resp.status().as_u16() != 202 {
            let s = resp.status().as_u16();
            return Err(http_error("POST", &start, s, error_detail(resp)));
        }
        let mut location = self.location(&resp, &start)?;
        let mut reader = open().map_err(|e| transport_io("read", "blob source", e))?;
        if let Some(chunk) = chunk_size.filter(|c| *c > 0 && *c < size) {
            let mut offset = 0u64;
            while offset < size {
                let n = chunk.min(size - offset);
                let mut buf = vec![0u8; n as usize];
                reader
                    .read_exact(&mut buf)
                    .map_err(|e| transport_io("read", "blob source", e))?;
                let range = format!("{offset}-{}", offset + n - 1);
                let len = n.to_string();
                let resp = self.request(
                    r,
                    Access::Push,
                    "PATCH",
                    &location,
                    &[
                        ("Content-Type", "application/octet-stream"),
                        ("Content-Range", &range),
                        ("Content-Length", &len),
                    ],
                    &mut Body::Bytes(&buf),
                )?;
                if resp.status().as_u16() != 202 {
                    let s = resp.status().as_u16();
                    return Err(http_error("PATCH", &location, s, error_detail(resp)));
                }
                location = self.location(&resp, &location)?;
                offset += n;
            }
            let put = with_query(&location, &format!("digest={digest}"));
            let resp = self.request(
                r,
                Access::Push,
                "PUT",
                &put,
                &[("Content-Length", "0")],
                &mut Body::Empty,
            )?;
            return expect_created(resp, "PUT", &put);
        }
        let put = with_query(&location, &format!("digest={digest}"));
        let len = size.to_string();
        // The reader was opened above; hand it to the body once, reopen on retries.
        let mut first = Some(reader);
        let mut reopen = || -> io::Result<Box<dyn Read + 'b>> {
            match first.take() {
                Some(r) => Ok(r),
                None => open(),
            }
        };
        let resp = self.request(
            r,
            Access::Push,
            "PUT",
            &put,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            &mut Body::Stream(&mut reopen),
        )?;
        expect_created(resp, "PUT", &put)
    }

    /// PUT a manifest with its exact bytes; returns the digest the registry reports.
    pub fn put_manifest(
        &self,
        r: &DockerRef,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let url = self.url(r, &format!("manifests/{reference}"));
        let len = bytes.len().to_string();
        let resp = self.request(
            r,
            Access::Push,
            "PUT",
            &url,
            &[("Content-Type", media_type), ("Content-Length", &len)],
            &mut Body::Bytes(bytes),
        )?;
        let status = resp.status().as_u16();
        if status != 201 && status != 200 {
            return Err(http_error("PUT", &url, status, error_detail(resp)));
        }
        let ours = repro_oci::digest::sha256_of(bytes);
        if let Some(d) = header(&resp, "docker-content-digest")
            && d != ours.to_string()
        {
            return Err(RegistryError::DigestMismatch {
                what: format!("manifest pushed to {}:{reference}", r.name()),
                expected: ours.to_string(),
                got: d,
            });
        }
        Ok(ours)
    }

    fn location(&self, resp: &Response<ureq::Body>, base: &str) -> Result<String, RegistryError> {
        let loc = header(resp, "location").ok_or_else(|| RegistryError::Protocol {
            what: base.to_string(),
            message: "upload response without Location".into(),
        })?;
        resolve_url(base, &loc)
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(ra) = retry_after {
            return ra.min(MAX_RETRY_AFTER);
        }
        let factor = 1u32 << (attempt.saturating_sub(1)).min(6);
        self.opts.backoff * factor
    }

    /// Send a request with auth, retries and manual redirects. Returns the final response,
    /// whatever its status (callers decide what a status means).
    fn request(
        &self,
        r: &DockerRef,
        access: Access,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &mut Body<'_, '_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let scope = access.scope(&r.repository);
        let mut attempt = 0;
        let mut auth_tries = 0;
        let mut url = url.to_string();
        let mut redirects = 0;
        let origin_host = host_of(&url);
        loop {
            attempt += 1;
            let same_host = host_of(&url) == origin_host;
            let auth = if same_host {
                self.auth_cache
                    .lock()
                    .expect("lock")
                    .get(&(origin_host.clone(), scope.clone()))
                    .cloned()
            } else {
                None
            };
            let result = self.send_once(method, &url, headers, auth.as_deref(), body);
            let resp = match result {
                Ok(resp) => resp,
                Err(e) if e.transient() && attempt < self.opts.attempts => {
                    std::thread::sleep(self.backoff(attempt, None));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status().as_u16();
            if status == 401 && same_host && auth_tries < 2 {
                auth_tries += 1;
                let challenge = header(&resp, "www-authenticate");
                let header_value = self.authenticate(r, &scope, challenge.as_deref())?;
                self.auth_cache
                    .lock()
                    .expect("lock")
                    .insert((origin_host.clone(), scope.clone()), header_value);
                attempt -= 1;
                continue;
            }
            if status == 401 {
                return Err(RegistryError::Unauthorized {
                    registry: r.registry.clone(),
                    repository: r.repository.clone(),
                    reason: format!("{method} {url}: {}", error_detail(resp)),
                });
            }
            if matches!(status, 301 | 302 | 303 | 307 | 308) && matches!(method, "GET" | "HEAD") {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(RegistryError::TooManyRedirects { url });
                }
                let loc = header(&resp, "location").ok_or_else(|| RegistryError::Protocol {
                    what: url.clone(),
                    message: format!("HTTP {status} without Location"),
                })?;
                url = resolve_url(&url, &loc)?;
                attempt -= 1;
                continue;
            }
            let err_like = matches!(status, 408 | 429 | 500 | 502 | 503 | 504);
            if err_like && attempt < self.opts.attempts {
                let ra = header(&resp, "retry-after").and_then(|v| parse_retry_after(&v));
                std::thread::sleep(self.backoff(attempt, ra));
                continue;
            }
            return Ok(resp);
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        auth: Option<&str>,
        body: &mut Body<'_, '_>,
    ) -> Result<Response<ureq::Body>, RegistryError> {
        let m: http::Method = method
            .parse()
            .map_err(|_| RegistryError::Config(format!("bad method {method}")))?;
        let mut req = http::Request::builder().method(m).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let fail = |e: http::Error| RegistryError::Config(format!("{method} {url}: {e}"));
        let result = match body {
            Body::Empty => self.agent.run(req.body(()).map_err(fail)?),
            Body::Bytes(b) => self.agent.run(req.body(*b).map_err(fail)?),
            Body::Stream(open) => {
                let mut reader = open().map_err(|e| transport_io(method, url, e))?;
                let send = ureq::SendBody::from_reader(&mut reader);
                self.agent.run(req.body(send).map_err(fail)?)
            }
        };
        result.map_err(|e| transport_error(method, url, e))
    }

    /// Answer a 401 challenge: Basic with known credentials, or fetch a bearer token.
    fn authenticate(
        &self,
        r: &DockerRef,
        scope: &str,
        challenge: Option<&str>,
    ) -> Result<String, RegistryError> {
        let unauthorized = |reason: String| RegistryError::Unauthorized {
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            reason,
        };
        let creds = match &self.opts.credentials {
            Some(c) => Some(c.clone()),
            None => auth::lookup(&self.opts.auth_files, &r.registry, &r.repository)?,
        };
        let challenge = challenge.and_then(auth::parse_challenge).ok_or_else(|| {
            unauthorized(format!(
                "unsupported or missing WWW-Authenticate: {challenge:?}"
            ))
        })?;
        match challenge {
            Challenge::Basic => creds.map(|c| c.basic_header()).ok_or_else(|| {
                unauthorized(
                    "registry wants a username and password (--creds or an auth file)".into(),
                )
            }),
            Challenge::Bearer { realm, service, .. } => {
                // Ask for exactly our repository's scope, whatever the challenge named.
                let mut url = realm.clone();
                let mut q = Vec::new();
                if let Some(s) = service {
                    q.push(format!("service={}", urlencode(&s)));
                }
                q.push(format!("scope={}", urlencode(scope)));
                url = with_query(&url, &q.join("&"));
                let mut req = self.agent.get(&url);
                if let Some(c) = &creds {
                    req = req.header("Authorization", &c.basic_header());
                }
                let resp = req.call().map_err(|e| transport_error("GET", &url, e))?;
                let status = resp.status().as_u16();
                if status != 200 {
                    return Err(unauthorized(format!("token endpoint {url}: HTTP {status}")));
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let mut body = Vec::new();
                resp.into_body()
                    .into_reader()
                    .take(1 << 20)
                    .read_to_end(&mut body)
                    .map_err(|e| transport_io("GET", &url, e))?;
                let t: Token =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                        what: format!("token endpoint {url}"),
                        message: format!("malformed token response: {e}"),
                    })?;
                let tok = t
                    .token
                    .or(t.access_token)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| RegistryError::Protocol {
                        what: format!("token endpoint {url}"),
                        message: "no token in response".into(),
                    })?;
                Ok(format!("Bearer {tok}"))
            }
        }
    }
}

/// Check fetched manifest bytes against the digest asked for (if the reference is one) and
/// the registry's `Docker-Content-Digest` (if sent). Returns the sha256 of the bytes.
pub fn verify_manifest_digest(
    bytes: &[u8],
    reference: &str,
    docker_content_digest: Option<&str>,
    what: &str,
) -> Result<Digest, RegistryError> {
    let sha = repro_oci::digest::sha256_of(bytes);
    let check = |claimed: &str, source: &str| -> Result<(), RegistryError> {
        let d: Digest = claimed.parse().map_err(|_| RegistryError::Protocol {
            what: what.to_string(),
            message: format!("invalid digest {claimed:?} in {source}"),
        })?;
        check_verifiable(&d).map_err(|e| RegistryError::Protocol {
            what: what.to_string(),
            message: format!("{source}: {e}"),
        })?;
        let mut h = Hasher::new(d.algorithm());
        h.update(bytes);
        let got = h.finish();
        if got != d {
            return Err(RegistryError::DigestMismatch {
                what: format!("{what} ({source})"),
                expected: d.to_string(),
                got: got.to_string(),
            });
        }
        Ok(())
    };
    if reference.contains(':') {
        check(reference, "requested digest")?;
    }
    if let Some(dcd) = docker_content_digest {
        check(dcd, "Docker-Content-Digest")?;
    }
    Ok(sha)
}

/// A blob body that resumes with a Range request when the connection breaks.
struct Resuming {
    client: Arc<Client>,
    r: DockerRef,
    digest: Digest,
    inner: Box<dyn Read + Send>,
    offset: u64,
    /// Content-Length of the first response, to tell an early close from the end.
    total: Option<u64>,
    resumes_left: u32,
}

impl Read for Resuming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let err = match self.inner.read(buf) {
                Ok(0) if buf.is_empty() => return Ok(0),
                Ok(0) if self.total.is_some_and(|t| self.offset < t) => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed after {} bytes", self.offset),
                ),
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            if self.resumes_left == 0 {
                return Err(err);
            }
            self.resumes_left -= 1;
            std::thread::sleep(self.client.opts.backoff);
            match self
                .client
                .get_blob_from(&self.r, &self.digest, self.offset)
            {
                Ok((_, body)) => self.inner = body,
                Err(e) => return Err(io::Error::other(format!("{err}; resuming failed: {e}"))),
            }
        }
    }
}

struct MapErr<R> {
    inner: R,
    url: String,
}

impl<R: Read> Read for MapErr<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("GET {}: {e}", self.url)))
    }
}

fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn expect_ok(
    resp: Response<ureq::Body>,
    method: &str,
    url: &str,
    what: &str,
) -> Result<Response<ureq::Body>, RegistryError> {
    match resp.status().as_u16() {
        200..=299 => Ok(resp),
        404 => Err(RegistryError::NotFound {
            what: what.to_string(),
            url: url.to_string(),
        }),
        s => Err(http_error(method, url, s, error_detail(resp))),
    }
}

fn expect_created(
    resp: Response<ureq::Body>,
    method: &str,
    url: &str,
) -> Result<(), RegistryError> {
    match resp.status().as_u16() {
        201 | 204 | 200 => Ok(()),
        s => Err(http_error(method, url, s, error_detail(resp))),
    }
}

fn http_error(method: &str, url: &str, status: u16, detail: String) -> RegistryError {
    RegistryError::Http {
        method: method.into(),
        url: url.into(),
        status,
        detail,
    }
}

/// The registry's error message (`{"errors":[{"code","message"}]}`), if it sent one.
fn error_detail(resp: Response<ureq::Body>) -> String {
    let mut body = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(64 * 1024)
        .read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errs {
        errors: Vec<E>,
    }
    #[derive(serde::Deserialize)]
    struct E {
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errs>(&body) {
        Ok(e) => e
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::new(),
    }
}

fn transport_error(method: &str, url: &str, e: ureq::Error) -> RegistryError {
    let transient = matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    );
    RegistryError::Transport {
        method: method.into(),
        url: url.into(),
        message: e.to_string(),
        transient,
    }
}

fn transport_io(method: &str, url: &str, e: io::Error) -> RegistryError {
    RegistryError::Transport {
        method: method.into(),
        url: url.into(),
        message: e.to_string(),
        transient: false,
    }
}

fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(secs) = v.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v.trim()).ok()?;
    // Retry-After as a date is relative to now: the one place a clock is unavoidable.
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or("").to_string()
}

/// Resolve a Location header (absolute, or absolute-path as registries send) against `base`.
fn resolve_url(base: &str, loc: &str) -> Result<String, RegistryError> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Ok(loc.to_string());
    }
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| RegistryError::Protocol {
            what: base.to_string(),
            message: "base URL without scheme".into(),
        })?;
    let host = rest.split('/').next().unwrap_or("");
    if loc.starts_with("//") {
        return Ok(format!("{scheme}:{loc}"));
    }
    if loc.starts_with('/') {
        return Ok(format!("{scheme}://{host}{loc}"));
    }
    Err(RegistryError::Protocol {
        what: base.to_string(),
        message: format!("unsupported relative Location {loc:?}"),
    })
}

fn with_query(url: &str, q: &str) -> String {
    if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

fn urlencode(s: &str) -> String {
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
    fn manifest_digest_checks() {
        let b = b"{}";
        let d = repro_oci::digest::sha256_of(b).to_string();
        assert!(verify_manifest_digest(b, &d, Some(&d), "m").is_ok());
        assert!(verify_manifest_digest(b, "latest", None, "m").is_ok());
        let other = repro_oci::digest::sha256_of(b"x").to_string();
        let e = verify_manifest_digest(b, "latest", Some(&other), "m").unwrap_err();
        assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
        let e = verify_manifest_digest(b, &other, None, "m").unwrap_err();
        assert!(e.to_string().contains("requested digest"), "{e}");
    }

    #[test]
    fn urls() {
        assert_eq!(
            resolve_url(
                "http://a:5000/v2/x/blobs/uploads/",
                "/v2/x/blobs/uploads/u?s=1"
            )
            .unwrap(),
            "http://a:5000/v2/x/blobs/uploads/u?s=1"
        );
        assert_eq!(
            resolve_url("http://a/x", "https://b/y").unwrap(),
            "https://b/y"
        );
        assert_eq!(
            with_query("http://a/u?s=1", "digest=d"),
            "http://a/u?s=1&digest=d"
        );
        assert_eq!(
            urlencode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
        assert_eq!(host_of("https://h:1/v2/"), "h:1");
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
    }
}
