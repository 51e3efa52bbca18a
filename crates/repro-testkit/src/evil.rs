//! A programmable fake registry for adversarial tests: truncated bodies, stalls, redirect
//! loops, 429/503 storms, lying headers, and per-path request counts.
//!
//! One thread per connection, one request per connection (`Connection: close`). Routes are
//! keyed by path without the query (`/v2/a/manifests/latest`); the query is recorded but not
//! matched. `/v2/` answers 200 `{}` unless a route overrides it; unknown paths get 404.

use std::collections::HashMap;
use std::io::{self, BufReader, Write};
use std::net::{Shutdown as NetShutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::http::{self, response_head};
use crate::util::{Loopback, Shutdown, lock, sha256_digest};

/// Longest time any stall lasts, whatever was asked.
pub const MAX_STALL: Duration = Duration::from_secs(60);

/// What the server does for a path. Build with the constructors; add headers with
/// [`Behavior::with_header`].
#[derive(Debug, Clone)]
pub enum Behavior {
    /// Send `status`, `headers` and `body`. `Content-Length: body.len()` is added unless
    /// `headers` has one (so a test can lie about it).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Like `Respond` (Content-Length of the full body) but close the connection after
    /// `after` body bytes.
    Truncate {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        after: usize,
    },
    /// Send the head and `after` body bytes, then stall for `duration` (at most
    /// [`MAX_STALL`], and no longer than the server lives), then close without the rest.
    Stall {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        after: usize,
        duration: Duration,
    },
    /// Serve `body` honouring `Range: bytes=A-` / `bytes=A-B` with 206 and `Content-Range`
    /// (200 with the whole body otherwise; 416 if unsatisfiable).
    Ranged {
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Redirect with `status` (e.g. 307) to `location`; a location starting with '/' is made
    /// absolute on this server ("http://127.0.0.1:PORT/...").
    Redirect { status: u16, location: String },
    /// Answer `status` with `headers` (and a small JSON error body) to the first `times`
    /// requests for the path, then behave like `then`.
    FailFirst {
        times: usize,
        status: u16,
        headers: Vec<(String, String)>,
        then: Box<Behavior>,
    },
    /// The n-th request (0-based) for the path gets the n-th behaviour; later requests get
    /// the last one.
    Sequence(Vec<Behavior>),
}

impl Behavior {
    /// 200 with `body` as `application/octet-stream`.
    pub fn ok(body: impl Into<Vec<u8>>) -> Behavior {
        Behavior::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: body.into(),
        }
    }

    /// Any status, headers and body.
    pub fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> Behavior {
        Behavior::Respond {
            status,
            headers: owned(headers),
            body: body.into(),
        }
    }

    /// 200 with `body`, `Content-Type: media_type` and the true `Docker-Content-Digest`, as a
    /// registry serves a manifest.
    pub fn manifest(media_type: &str, body: impl Into<Vec<u8>>) -> Behavior {
        let body = body.into();
        Behavior::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), media_type.into()),
                ("Docker-Content-Digest".into(), sha256_digest(&body)),
            ],
            body,
        }
    }

    /// 200 with `body` as a blob (`application/octet-stream`, true `Docker-Content-Digest`).
    pub fn blob(body: impl Into<Vec<u8>>) -> Behavior {
        let body = body.into();
        Behavior::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/octet-stream".into()),
                ("Docker-Content-Digest".into(), sha256_digest(&body)),
            ],
            body,
        }
    }

    /// 200 announcing `body.len()` bytes, closing after `after`.
    pub fn truncated(body: impl Into<Vec<u8>>, after: usize) -> Behavior {
        Behavior::Truncate {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: body.into(),
            after,
        }
    }

    /// 200 sending `after` bytes of `body` and then stalling for [`MAX_STALL`].
    pub fn stall(body: impl Into<Vec<u8>>, after: usize) -> Behavior {
        Self::stall_for(body, after, MAX_STALL)
    }

    /// Like [`Behavior::stall`] with a chosen duration (capped at [`MAX_STALL`]).
    pub fn stall_for(body: impl Into<Vec<u8>>, after: usize, duration: Duration) -> Behavior {
        Behavior::Stall {
            status: 200,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: body.into(),
            after,
            duration,
        }
    }

    /// `body` with Range support (see [`Behavior::Ranged`]).
    pub fn ranged(body: impl Into<Vec<u8>>) -> Behavior {
        Behavior::Ranged {
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: body.into(),
        }
    }

    /// 307 to `location`.
    pub fn redirect(location: &str) -> Behavior {
        Behavior::Redirect {
            status: 307,
            location: location.to_string(),
        }
    }

    /// 429 with `Retry-After: 1` the first `times` requests, then `then`.
    pub fn rate_limited(times: usize, then: Behavior) -> Behavior {
        Behavior::FailFirst {
            times,
            status: 429,
            headers: vec![("Retry-After".into(), "1".into())],
            then: Box::new(then),
        }
    }

    /// 503 the first `times` requests, then `then`.
    pub fn unavailable(times: usize, then: Behavior) -> Behavior {
        Behavior::FailFirst {
            times,
            status: 503,
            headers: Vec::new(),
            then: Box::new(then),
        }
    }

    /// `status` with `headers` the first `times` requests, then `then`.
    pub fn fail_first(
        times: usize,
        status: u16,
        headers: &[(&str, &str)],
        then: Behavior,
    ) -> Behavior {
        Behavior::FailFirst {
            times,
            status,
            headers: owned(headers),
            then: Box::new(then),
        }
    }

    /// See [`Behavior::Sequence`].
    pub fn sequence(items: Vec<Behavior>) -> Behavior {
        Behavior::Sequence(items)
    }

    /// Adds (or, for the same name, replaces) a header on this behaviour; for `FailFirst` and
    /// `Sequence` it applies to the eventual success responses.
    pub fn with_header(mut self, name: &str, value: &str) -> Behavior {
        fn set(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
            headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value.to_string()));
        }
        match &mut self {
            Behavior::Respond { headers, .. }
            | Behavior::Truncate { headers, .. }
            | Behavior::Stall { headers, .. }
            | Behavior::Ranged { headers, .. } => set(headers, name, value),
            Behavior::Redirect { .. } => {}
            Behavior::FailFirst { then, .. } => {
                let inner = std::mem::replace(then.as_mut(), Behavior::ok(Vec::new()));
                **then = inner.with_header(name, value);
            }
            Behavior::Sequence(items) => {
                let taken = std::mem::take(items);
                *items = taken
                    .into_iter()
                    .map(|b| b.with_header(name, value))
                    .collect();
            }
        }
        self
    }

    /// The leaf behaviour for the `n`-th (0-based) request of a path.
    fn resolve(&self, n: usize) -> Leaf<'_> {
        match self {
            Behavior::FailFirst {
                times,
                status,
                headers,
                then,
            } => {
                if n < *times {
                    Leaf::Fail {
                        status: *status,
                        headers,
                    }
                } else {
                    then.resolve(n - times)
                }
            }
            Behavior::Sequence(items) => match items.len() {
                0 => Leaf::NotFound,
                len if n < len - 1 => items[n].resolve(0),
                len => items[len - 1].resolve(n - (len - 1)),
            },
            other => Leaf::Plain(other),
        }
    }
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

enum Leaf<'a> {
    Plain(&'a Behavior),
    Fail {
        status: u16,
        headers: &'a [(String, String)],
    },
    NotFound,
}

/// A request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Size of the request body (read and discarded).
    pub body_len: u64,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        http::header(&self.headers, name)
    }

    /// Path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

struct State {
    host: String,
    routes: Mutex<HashMap<String, Behavior>>,
    hits: Mutex<HashMap<String, usize>>,
    requests: Mutex<Vec<RecordedRequest>>,
    shutdown: Arc<Shutdown>,
}

/// See the [module documentation](self). Stops on drop (stalls end early).
pub struct EvilServer {
    state: Arc<State>,
    _server: Loopback,
}

impl EvilServer {
    /// Starts on 127.0.0.1 on a free port with these routes.
    pub fn start<I, P>(routes: I) -> EvilServer
    where
        I: IntoIterator<Item = (P, Behavior)>,
        P: Into<String>,
    {
        let routes: HashMap<String, Behavior> =
            routes.into_iter().map(|(p, b)| (p.into(), b)).collect();
        let (server, state) = Loopback::start(
            "evil",
            |host, shutdown| State {
                host: host.to_string(),
                routes: Mutex::new(routes),
                hits: Mutex::new(HashMap::new()),
                requests: Mutex::new(Vec::new()),
                shutdown,
            },
            handle,
        );
        EvilServer {
            state,
            _server: server,
        }
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        self.state.host.clone()
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.state.host)
    }

    /// Adds or replaces the behaviour of `path` (its hit count is kept).
    pub fn set(&self, path: &str, behavior: Behavior) {
        lock(&self.state.routes).insert(path.to_string(), behavior);
    }

    /// Requests received for `path` (query ignored), whatever they got.
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.state.hits).get(path).copied().unwrap_or(0)
    }

    /// All requests received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Total number of requests received.
    pub fn total_hits(&self) -> usize {
        lock(&self.state.requests).len()
    }
}

fn handle(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    if http::reject_tls(&mut reader, &mut out)? {
        return Ok(());
    }
    let Some(head) = http::read_request_head(&mut reader)? else {
        return Ok(());
    };
    if head
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body_len = http::copy_request_body(&head, &mut reader, &mut io::sink(), false).unwrap_or(0);
    let path = head.path().to_string();
    let n = {
        let mut hits = lock(&state.hits);
        let count = hits.entry(path.clone()).or_insert(0);
        *count += 1;
        *count - 1
    };
    lock(&state.requests).push(RecordedRequest {
        method: head.method.clone(),
        target: head.target.clone(),
        headers: head.headers.clone(),
        body_len,
    });
    let is_head = head.method == "HEAD";
    let range = head.header("range").map(str::to_string);
    let behavior = lock(&state.routes).get(&path).cloned();
    let behavior = match behavior {
        Some(b) => b,
        None if path == "/v2/" || path == "/v2" => Behavior::Respond {
            status: 200,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                (
                    "Docker-Distribution-API-Version".into(),
                    "registry/2.0".into(),
                ),
            ],
            body: b"{}".to_vec(),
        },
        None => {
            return send(
                &mut out,
                404,
                &[("Content-Type".into(), "application/json".into())],
                br#"{"errors":[{"code":"NOT_FOUND","message":"no route in EvilServer"}]}"#,
                is_head,
            );
        }
    };
    match behavior.resolve(n) {
        Leaf::NotFound => send(&mut out, 404, &[], b"", is_head),
        Leaf::Fail { status, headers } => {
            let mut h = headers.to_vec();
            if http::header(&h, "content-type").is_none() {
                h.push(("Content-Type".into(), "application/json".into()));
            }
            let code = match status {
                429 => "TOOMANYREQUESTS",
                503 => "UNAVAILABLE",
                401 => "UNAUTHORIZED",
                403 => "DENIED",
                404 => "NOT_FOUND",
                _ => "UNKNOWN",
            };
            let body = format!(
                "{{\"errors\":[{{\"code\":\"{code}\",\"message\":\"EvilServer says {status}\"}}]}}"
            );
            send(&mut out, status, &h, body.as_bytes(), is_head)
        }
        Leaf::Plain(b) => match b {
            Behavior::Respond {
                status,
                headers,
                body,
            } => send(&mut out, *status, headers, body, is_head),
            Behavior::Truncate {
                status,
                headers,
                body,
                after,
            } => {
                let mut h = headers.clone();
                ensure_length(&mut h, body.len());
                out.write_all(&response_head(*status, &h))?;
                if !is_head {
                    out.write_all(&body[..(*after).min(body.len())])?;
                }
                out.flush()?;
                let _ = out.shutdown(NetShutdown::Both);
                Ok(())
            }
            Behavior::Stall {
                status,
                headers,
                body,
                after,
                duration,
            } => {
                let mut h = headers.clone();
                ensure_length(&mut h, body.len());
                out.write_all(&response_head(*status, &h))?;
                if !is_head {
                    out.write_all(&body[..(*after).min(body.len())])?;
                }
                out.flush()?;
                state.shutdown.wait((*duration).min(MAX_STALL));
                let _ = out.shutdown(NetShutdown::Both);
                Ok(())
            }
            Behavior::Ranged { headers, body } => {
                serve_ranged(&mut out, headers, body, range.as_deref(), is_head)
            }
            Behavior::Redirect { status, location } => {
                let location = if location.starts_with('/') {
                    format!("http://{}{}", state.host, location)
                } else {
                    location.clone()
                };
                send(
                    &mut out,
                    *status,
                    &[("Location".into(), location)],
                    b"",
                    is_head,
                )
            }
            // resolve() never yields these.
            Behavior::FailFirst { .. } | Behavior::Sequence(_) => {
                send(&mut out, 500, &[], b"", is_head)
            }
        },
    }
}

fn ensure_length(headers: &mut Vec<(String, String)>, len: usize) {
    if http::header(headers, "content-length").is_none() {
        headers.push(("Content-Length".into(), len.to_string()));
    }
}

fn send(
    out: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    is_head: bool,
) -> io::Result<()> {
    let mut h = headers.to_vec();
    ensure_length(&mut h, body.len());
    out.write_all(&response_head(status, &h))?;
    if !is_head {
        out.write_all(body)?;
    }
    out.flush()?;
    let _ = out.shutdown(NetShutdown::Write);
    Ok(())
}

/// Parses "bytes=A-" / "bytes=A-B" against `len`: Some(Ok((start, end_inclusive))),
/// Some(Err(())) if unsatisfiable, None if absent or not understood.
fn parse_range(range: Option<&str>, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = range?.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // suffix range: last N bytes
        let n: usize = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: usize = a.parse().ok()?;
    let end = if b.is_empty() {
        len.checked_sub(1)
    } else {
        b.parse::<usize>()
            .ok()
            .map(|e| e.min(len.saturating_sub(1)))
    };
    match end {
        Some(end) if start < len && start <= end => Some(Ok((start, end))),
        _ => Some(Err(())),
    }
}

fn serve_ranged(
    out: &mut TcpStream,
    headers: &[(String, String)],
    body: &[u8],
    range: Option<&str>,
    is_head: bool,
) -> io::Result<()> {
    let mut h = headers.to_vec();
    h.push(("Accept-Ranges".into(), "bytes".into()));
    match parse_range(range, body.len()) {
        None => send(out, 200, &h, body, is_head),
        Some(Err(())) => {
            h.push(("Content-Range".into(), format!("bytes */{}", body.len())));
            send(out, 416, &h, b"", is_head)
        }
        Some(Ok((start, end))) => {
            h.push((
                "Content-Range".into(),
                format!("bytes {start}-{end}/{}", body.len()),
            ));
            send(out, 206, &h, &body[start..=end], is_head)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), None);
        assert_eq!(parse_range(Some("bytes=2-"), 10), Some(Ok((2, 9))));
        assert_eq!(parse_range(Some("bytes=2-4"), 10), Some(Ok((2, 4))));
        assert_eq!(parse_range(Some("bytes=2-40"), 10), Some(Ok((2, 9))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Some(Ok((7, 9))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Some(Err(())));
        assert_eq!(parse_range(Some("items=1-2"), 10), None);
    }

    #[test]
    fn resolution_order() {
        let b = Behavior::rate_limited(
            2,
            Behavior::sequence(vec![Behavior::ok("a"), Behavior::ok("b")]),
        );
        let body = |n| match b.resolve(n) {
            Leaf::Plain(Behavior::Respond { body, .. }) => String::from_utf8(body.clone()).unwrap(),
            Leaf::Fail { status, .. } => status.to_string(),
            _ => "?".to_string(),
        };
        assert_eq!(
            (0..5).map(body).collect::<Vec<_>>(),
            vec!["429", "429", "a", "b", "b"]
        );
    }
}
