//! A bearer-token front for an anonymous [`Registry`], implementing the
//! Docker/OCI token flow the way Docker Hub does.
//!
//! * `/v2/...` without `Authorization: Bearer <valid token>` → 401 with
//!   `WWW-Authenticate: Bearer realm="http://HOST/token",service="testkit",scope="repository:NAME:pull"`
//!   (`pull,push` for PUT/POST/PATCH/DELETE; no scope for `/v2/` itself); a token lacking the
//!   needed scope gets the same challenge with `error="insufficient_scope"`.
//! * `GET /token?service=..&scope=..[&scope=..]` → `{"token","access_token","expires_in"}`;
//!   the token grants exactly the requested scopes. Basic auth can be required.
//! * everything else is proxied to the registry, bodies streamed both ways, `Location`
//!   rewritten to the proxy's own host.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown as NetShutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use crate::http::{self, RequestHead, response_head};
use crate::registry::Registry;
use crate::util::{Loopback, lock, sha256_digest};

/// Configuration of a [`TokenProxy`].
#[derive(Debug, Clone)]
pub struct TokenProxyConfig {
    /// `service` in challenges (Docker Hub: "registry.docker.io").
    pub service: String,
    /// When set, `/token` requires HTTP basic auth with these (user, password).
    pub credentials: Option<(String, String)>,
    /// `expires_in` of issued tokens, seconds; tokens are refused after it.
    pub expires_in: u64,
}

impl Default for TokenProxyConfig {
    fn default() -> Self {
        TokenProxyConfig {
            service: "testkit".to_string(),
            credentials: None,
            expires_in: 300,
        }
    }
}

/// One request to the token endpoint, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// HTTP method (GET; POST would be the OAuth2 form, which is refused).
    pub method: String,
    pub service: Option<String>,
    /// Each requested scope, in order (several `scope=` parameters and space-separated lists
    /// are both split).
    pub scopes: Vec<String>,
    /// The basic-auth user name, if one was sent.
    pub user: Option<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

/// One `/v2/...` request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedRequest {
    pub method: String,
    /// Request target (path and query).
    pub target: String,
    /// Scope the request needed, e.g. "repository:a/b:pull" (None for `/v2/`).
    pub needed_scope: Option<String>,
    /// Status sent to the client (401 when refused).
    pub status: u16,
}

struct Grant {
    scopes: Vec<Scope>,
    expires: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    kind: String,
    name: String,
    actions: Vec<String>,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        Some(Scope {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    fn render(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    fn covers(&self, need: &Scope) -> bool {
        self.kind == need.kind
            && self.name == need.name
            && need
                .actions
                .iter()
                .all(|a| self.actions.iter().any(|g| g == a || g == "*"))
    }
}

struct State {
    config: TokenProxyConfig,
    upstream: String,
    host: String,
    tokens: Mutex<HashMap<String, Grant>>,
    token_requests: Mutex<Vec<TokenRequest>>,
    proxied: Mutex<Vec<ProxiedRequest>>,
    counter: AtomicU64,
}

/// See the [module documentation](self). Stops on drop.
pub struct TokenProxy {
    state: Arc<State>,
    _server: Loopback,
}

impl TokenProxy {
    /// A proxy in front of `upstream` issuing tokens to anyone.
    pub fn start(upstream: &Registry) -> TokenProxy {
        Self::start_with(&upstream.host(), TokenProxyConfig::default())
    }

    /// A proxy in front of `upstream` whose token endpoint requires basic auth.
    pub fn start_with_credentials(upstream: &Registry, user: &str, pass: &str) -> TokenProxy {
        Self::start_with(
            &upstream.host(),
            TokenProxyConfig {
                credentials: Some((user.to_string(), pass.to_string())),
                ..TokenProxyConfig::default()
            },
        )
    }

    /// A proxy in front of any HTTP registry at `upstream_host` ("127.0.0.1:PORT").
    pub fn start_with(upstream_host: &str, config: TokenProxyConfig) -> TokenProxy {
        let (server, state) = Loopback::start(
            "token-proxy",
            |host, _| State {
                config,
                upstream: upstream_host.to_string(),
                host: host.to_string(),
                tokens: Mutex::new(HashMap::new()),
                token_requests: Mutex::new(Vec::new()),
                proxied: Mutex::new(Vec::new()),
                counter: AtomicU64::new(0),
            },
            handle_connection,
        );
        TokenProxy {
            state,
            _server: server,
        }
    }

    /// "127.0.0.1:PORT" of the proxy.
    pub fn host(&self) -> String {
        self.state.host.clone()
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.state.host)
    }

    /// The token endpoint, "http://127.0.0.1:PORT/token".
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.state.host)
    }

    /// "docker://127.0.0.1:PORT/<name_ref>" for skopeo.
    pub fn docker_ref(&self, name_ref: &str) -> String {
        format!("docker://{}/{}", self.state.host, name_ref)
    }

    /// Every scope requested at the token endpoint, in order, including repeats.
    pub fn requested_scopes(&self) -> Vec<String> {
        lock(&self.state.token_requests)
            .iter()
            .flat_map(|r| r.scopes.iter().cloned())
            .collect()
    }

    /// Every token request, in order.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.token_requests).clone()
    }

    /// Every `/v2/...` request, in order, with the status it got.
    pub fn proxied_requests(&self) -> Vec<ProxiedRequest> {
        lock(&self.state.proxied).clone()
    }

    /// Forgets every issued token, so that clients must authenticate again (a token that
    /// expired early).
    pub fn revoke_all_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// Issues a token for `scopes` directly (as if requested), for raw-HTTP tests.
    pub fn issue_token(&self, scopes: &[&str]) -> String {
        issue(
            &self.state,
            scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        )
    }
}

fn handle_connection(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut client_out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    if http::reject_tls(&mut reader, &mut client_out)? {
        return Ok(());
    }
    let Some(head) = http::read_request_head(&mut reader)? else {
        return Ok(());
    };
    if head
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
    {
        client_out.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let path = head.path().to_string();
    if path == "/token" {
        let _ = http::copy_request_body(&head, &mut reader, &mut io::sink(), false);
        return token_endpoint(&head, &mut client_out, state);
    }
    if path != "/v2" && !path.starts_with("/v2/") {
        let _ = http::copy_request_body(&head, &mut reader, &mut io::sink(), false);
        return send_simple(
            &mut client_out,
            404,
            "application/json",
            br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#,
            &[],
        );
    }

    let needed = needed_scopes(&head);
    let needed_text = if needed.is_empty() {
        None
    } else {
        Some(
            needed
                .iter()
                .map(Scope::render)
                .collect::<Vec<_>>()
                .join(" "),
        )
    };
    let auth = authorize(&head, &needed, state);
    if let Err(insufficient) = auth {
        let _ = http::copy_request_body(&head, &mut reader, &mut io::sink(), false);
        lock(&state.proxied).push(ProxiedRequest {
            method: head.method.clone(),
            target: head.target.clone(),
            needed_scope: needed_text.clone(),
            status: 401,
        });
        let mut challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"{}\"",
            state.host, state.config.service
        );
        if let Some(scope) = &needed_text {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        if insufficient {
            challenge.push_str(",error=\"insufficient_scope\"");
        }
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        return send_simple(
            &mut client_out,
            401,
            "application/json",
            body,
            &[("WWW-Authenticate".to_string(), challenge)],
        );
    }

    let status = proxy(&head, &mut reader, &mut client_out, state)?;
    lock(&state.proxied).push(ProxiedRequest {
        method: head.method.clone(),
        target: head.target.clone(),
        needed_scope: needed_text,
        status,
    });
    Ok(())
}

/// Scopes a `/v2/<name>/...` request needs; empty for `/v2/` and unrecognised paths.
fn needed_scopes(head: &RequestHead) -> Vec<Scope> {
    let Some(name) = repository_of(head.path()) else {
        return Vec::new();
    };
    let push = matches!(head.method.as_str(), "PUT" | "POST" | "PATCH" | "DELETE");
    let actions = if push {
        vec!["pull", "push"]
    } else {
        vec!["pull"]
    };
    let mut scopes = vec![Scope {
        kind: "repository".to_string(),
        name,
        actions: actions.into_iter().map(str::to_string).collect(),
    }];
    // Cross-repository blob mount: POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>
    if head.method == "POST" {
        let pairs = http::query_pairs(head.query());
        let mount = pairs.iter().any(|(k, _)| k == "mount");
        let from = pairs
            .iter()
            .find(|(k, _)| k == "from")
            .map(|(_, v)| v.clone())
            .filter(|from| mount && !from.is_empty() && *from != scopes[0].name);
        if let Some(from) = from {
            scopes.push(Scope {
                kind: "repository".to_string(),
                name: from,
                actions: vec!["pull".to_string()],
            });
        }
    }
    scopes
}

/// Repository name of a distribution API path, if it is one.
pub(crate) fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_end = if n >= 4 && segs[n - 3] == "blobs" && segs[n - 2] == "uploads" {
        n - 3
    } else if n >= 3
        && (matches!(segs[n - 2], "manifests" | "blobs" | "referrers")
            || (segs[n - 2] == "tags" && segs[n - 1] == "list"))
    {
        n - 2
    } else {
        return None;
    };
    let name = segs[..name_end].join("/");
    if name.is_empty() { None } else { Some(name) }
}

/// Ok if the request carries a valid token covering `needed`; Err(true) if the token is valid
/// but lacks a scope, Err(false) if there is no valid token.
fn authorize(head: &RequestHead, needed: &[Scope], state: &State) -> Result<(), bool> {
    let Some(auth) = head.header("authorization") else {
        return Err(false);
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
    else {
        return Err(false);
    };
    let tokens = lock(&state.tokens);
    let Some(grant) = tokens.get(token.trim()) else {
        return Err(false);
    };
    if Instant::now() >= grant.expires {
        return Err(false);
    }
    if needed
        .iter()
        .all(|need| grant.scopes.iter().any(|g| g.covers(need)))
    {
        Ok(())
    } else {
        Err(true)
    }
}

fn issue(state: &State, scopes: Vec<Scope>) -> String {
    let n = state.counter.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{}-{n}-{nanos}-{}", state.host, std::process::id());
    let token = format!("testkit.{}", &sha256_digest(seed.as_bytes())[7..39]);
    lock(&state.tokens).insert(
        token.clone(),
        Grant {
            scopes,
            expires: Instant::now() + Duration::from_secs(state.config.expires_in),
        },
    );
    token
}

fn token_endpoint(head: &RequestHead, out: &mut TcpStream, state: &State) -> io::Result<()> {
    let pairs = http::query_pairs(head.query());
    let service = pairs
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone());
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| {
            v.split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    let user_pass = head
        .header("authorization")
        .and_then(|a| {
            a.strip_prefix("Basic ")
                .or_else(|| a.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .map(|raw| String::from_utf8_lossy(&raw).into_owned())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let mut record = TokenRequest {
        method: head.method.clone(),
        service: service.clone(),
        scopes: scopes.clone(),
        user: user_pass.as_ref().map(|(u, _)| u.clone()),
        granted: false,
    };

    if head.method != "GET" {
        lock(&state.token_requests).push(record);
        return send_simple(
            out,
            405,
            "application/json",
            br#"{"details":"only GET is supported"}"#,
            &[],
        );
    }
    if state
        .config
        .credentials
        .as_ref()
        .is_some_and(|expected| user_pass.as_ref() != Some(expected))
    {
        lock(&state.token_requests).push(record);
        return send_simple(
            out,
            401,
            "application/json",
            br#"{"details":"incorrect username or password"}"#,
            &[(
                "WWW-Authenticate".to_string(),
                "Basic realm=\"testkit token service\"".to_string(),
            )],
        );
    }
    if service
        .as_deref()
        .is_some_and(|s| s != state.config.service)
    {
        lock(&state.token_requests).push(record);
        return send_simple(
            out,
            400,
            "application/json",
            br#"{"details":"unknown service"}"#,
            &[],
        );
    }
    let parsed: Vec<Scope> = scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    let token = issue(state, parsed);
    record.granted = true;
    lock(&state.token_requests).push(record);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": state.config.expires_in,
    });
    let body = serde_json::to_vec(&body).unwrap_or_default();
    send_simple(out, 200, "application/json", &body, &[])
}

fn send_simple(
    out: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    extra: &[(String, String)],
) -> io::Result<()> {
    let mut headers = vec![
        ("Content-Type".to_string(), content_type.to_string()),
        ("Content-Length".to_string(), body.len().to_string()),
        (
            "Docker-Distribution-API-Version".to_string(),
            "registry/2.0".to_string(),
        ),
    ];
    headers.extend_from_slice(extra);
    out.write_all(&response_head(status, &headers))?;
    out.write_all(body)?;
    out.flush()?;
    let _ = out.shutdown(NetShutdown::Write);
    Ok(())
}

/// Forwards the request upstream and streams the response back. Returns the status.
fn proxy(
    head: &RequestHead,
    client_in: &mut BufReader<TcpStream>,
    client_out: &mut TcpStream,
    state: &State,
) -> io::Result<u16> {
    let upstream = match TcpStream::connect(&state.upstream) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "{{\"errors\":[{{\"code\":\"UNAVAILABLE\",\"message\":\"upstream: {e}\"}}]}}"
            );
            send_simple(client_out, 502, "application/json", msg.as_bytes(), &[])?;
            return Ok(502);
        }
    };
    upstream.set_read_timeout(Some(Duration::from_secs(120)))?;
    upstream.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut up_out = io::BufWriter::new(upstream.try_clone()?);
    let mut req = format!("{} {} HTTP/1.1\r\n", head.method, head.target);
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "authorization" | "connection" | "keep-alive" | "proxy-connection" | "expect"
        ) {
            continue;
        }
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!(
        "Host: {}\r\nConnection: close\r\n\r\n",
        state.upstream
    ));
    up_out.write_all(req.as_bytes())?;
    http::copy_request_body(head, client_in, &mut up_out, true)?;
    up_out.flush()?;
    drop(up_out);

    let mut up_in = BufReader::new(upstream);
    let raw = http::read_head(&mut up_in)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "upstream closed without a response",
        )
    })?;
    let mut hdrs = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut hdrs);
    match resp.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(http::invalid("bad upstream response head")),
    }
    let status = resp.code.unwrap_or(502);
    let upstream_prefix = format!("http://{}", state.upstream);
    let own_prefix = format!("http://{}", state.host);
    let mut out = format!("HTTP/1.1 {} {}\r\n", status, resp.reason.unwrap_or(""));
    for (name, value) in http::owned_headers(resp.headers) {
        let lower = name.to_ascii_lowercase();
        if matches!(lower.as_str(), "connection" | "keep-alive") {
            continue;
        }
        let value = if lower == "location" {
            match value.strip_prefix(&upstream_prefix) {
                Some(rest) => format!("{own_prefix}{rest}"),
                None => value,
            }
        } else {
            value
        };
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    client_out.write_all(out.as_bytes())?;
    // The upstream closes after its response (we sent Connection: close), so the body, in
    // whatever framing it has, is everything up to EOF.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match up_in.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        client_out.write_all(&buf[..n])?;
    }
    client_out.flush()?;
    let _ = client_out.shutdown(NetShutdown::Write);
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_from_paths() {
        assert_eq!(repository_of("/v2/"), None);
        assert_eq!(
            repository_of("/v2/a/manifests/latest").as_deref(),
            Some("a")
        );
        assert_eq!(
            repository_of("/v2/a/b/c/manifests/sha256:00").as_deref(),
            Some("a/b/c")
        );
        assert_eq!(
            repository_of("/v2/a/b/blobs/sha256:00").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            repository_of("/v2/a/b/blobs/uploads/").as_deref(),
            Some("a/b")
        );
        assert_eq!(
            repository_of("/v2/a/b/blobs/uploads/uuid-1").as_deref(),
            Some("a/b")
        );
        assert_eq!(repository_of("/v2/a/tags/list").as_deref(), Some("a"));
        assert_eq!(repository_of("/v2/a/manifests/blobs").as_deref(), Some("a"));
        assert_eq!(repository_of("/v2/_catalog"), None);
    }

    #[test]
    fn scopes_parse_and_cover() {
        let g = Scope::parse("repository:a/b:pull,push").unwrap();
        assert_eq!(g.render(), "repository:a/b:pull,push");
        assert!(g.covers(&Scope::parse("repository:a/b:pull").unwrap()));
        assert!(!g.covers(&Scope::parse("repository:a/c:pull").unwrap()));
        let pull = Scope::parse("repository:a/b:pull").unwrap();
        assert!(!pull.covers(&Scope::parse("repository:a/b:pull,push").unwrap()));
        assert!(Scope::parse("repository:a/b:*").unwrap().covers(&g));
    }

    #[test]
    fn mount_needs_source_scope() {
        let head = RequestHead {
            method: "POST".to_string(),
            target: "/v2/dst/blobs/uploads/?mount=sha256%3A00&from=src%2Fx".to_string(),
            headers: vec![],
        };
        let s: Vec<String> = needed_scopes(&head).iter().map(Scope::render).collect();
        assert_eq!(s, vec!["repository:dst:pull,push", "repository:src/x:pull"]);
    }
}
