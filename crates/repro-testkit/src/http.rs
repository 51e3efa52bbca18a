//! Minimal blocking HTTP/1.1 pieces on `std::net`: a tiny client for tests and health checks,
//! and the request-head parsing shared by the servers of this crate.
//!
//! Every connection carries exactly one request (`Connection: close`), which keeps framing
//! trivial: a response body ends where the connection ends.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest request or response head accepted (status line plus headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most headers accepted in one head.
const MAX_HEADERS: usize = 128;

/// Default read/write timeout of [`request`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A response read by [`request`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body as received: de-chunked if `Transfer-Encoding: chunked`, otherwise every byte up
    /// to the end of the connection (so a truncated body is shorter than its `Content-Length`).
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The `Content-Length` header, parsed.
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }

    /// The body as (lossy) UTF-8, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// First header named `name` (case-insensitive) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends one request to `host` ("127.0.0.1:PORT") and reads the whole response, with
/// [`DEFAULT_TIMEOUT`]. `path` is the request target ("/v2/", "/v2/x/manifests/y?q=1").
/// `Host`, `Content-Length` (when `body` is non-empty or the method sends one) and
/// `Connection: close` are added. Errors are I/O errors, including timeouts.
pub fn request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Response> {
    request_with_timeout(host, method, path, headers, body, DEFAULT_TIMEOUT)
}

/// [`request`] with a GET and no extra headers.
pub fn get(host: &str, path: &str) -> io::Result<Response> {
    request(host, "GET", path, &[], &[])
}

/// [`request`] with an explicit connect/read/write timeout.
pub fn request_with_timeout(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let addr = host.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("no address for {host}"),
        )
    })?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length") {
            has_length = true;
        }
        if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("connection") {
            continue;
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has_length && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;

    let mut reader = BufReader::new(stream);
    let raw_head = read_head(&mut reader)?.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a response",
        )
    })?;
    let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut parsed_headers);
    match parsed.parse(&raw_head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete response head")),
        Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
    }
    let status = parsed.code.ok_or_else(|| invalid("no status code"))?;
    let reason = parsed.reason.unwrap_or("").to_string();
    let headers = owned_headers(parsed.headers);
    let mut body = Vec::new();
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        // no body
    } else if chunked {
        copy_chunked(&mut reader, &mut body, false)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        reason,
        headers,
        body,
    })
}

pub(crate) fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

pub(crate) fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|h| !h.name.is_empty())
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect()
}

/// Reads one message head (through the blank line) byte-exactly. `Ok(None)` on a clean EOF
/// before any byte.
pub(crate) fn read_head<R: BufRead>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader
            .take((MAX_HEAD + 1 - before) as u64)
            .read_until(b'\n', &mut head)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a message head",
            ));
        }
        if head.len() > MAX_HEAD {
            return Err(invalid("message head too large"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            // A blank line before anything else is tolerated (RFC 9112 2.2).
            if before == 0 {
                head.clear();
                continue;
            }
            return Ok(Some(head));
        }
    }
}

/// If the client opened with a TLS handshake record (as Go clients probing HTTPS first do),
/// answers like Go's HTTP server ("400 ... HTTP request to an HTTPS server") so the client
/// fails at once and falls back to plain HTTP instead of waiting for a timeout. Returns true
/// when it did.
pub(crate) fn reject_tls<R: BufRead, W: Write>(reader: &mut R, out: &mut W) -> io::Result<bool> {
    let first = reader.fill_buf()?.first().copied();
    if first == Some(0x16) {
        out.write_all(
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n",
        )?;
        out.flush()?;
        return Ok(true);
    }
    Ok(false)
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    pub method: String,
    /// Request target as sent (path plus query).
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// Path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Query string without the '?', or "".
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }

    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")?.trim().parse().ok()
    }
}

/// Reads and parses one request head; `Ok(None)` on clean EOF.
pub(crate) fn read_request_head<R: BufRead>(reader: &mut R) -> io::Result<Option<RequestHead>> {
    let Some(raw) = read_head(reader)? else {
        return Ok(None);
    };
    let mut parsed_headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut parsed_headers);
    match req.parse(&raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete request head")),
        Err(e) => return Err(invalid(&format!("bad request head: {e}"))),
    }
    Ok(Some(RequestHead {
        method: req.method.unwrap_or("").to_string(),
        target: req.path.unwrap_or("").to_string(),
        headers: owned_headers(req.headers),
    }))
}

/// Copies a request body framed by `head` from `reader` to `out`, returning the number of
/// body bytes. With `raw`, chunked framing is copied verbatim (for proxying); otherwise only
/// the payload is written.
pub(crate) fn copy_request_body<R: BufRead, W: Write>(
    head: &RequestHead,
    reader: &mut R,
    out: &mut W,
    raw: bool,
) -> io::Result<u64> {
    if head.is_chunked() {
        copy_chunked(reader, out, raw)
    } else if let Some(len) = head.content_length() {
        let n = io::copy(&mut reader.take(len), out)?;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "request body shorter than Content-Length",
            ));
        }
        Ok(n)
    } else {
        Ok(0)
    }
}

/// Decodes (or with `raw`, copies verbatim) a chunked body including trailers. Returns the
/// payload size.
pub(crate) fn copy_chunked<R: BufRead, W: Write>(
    reader: &mut R,
    out: &mut W,
    raw: bool,
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let mut line = Vec::new();
        reader.take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(invalid("bad chunk size line"));
        }
        if raw {
            out.write_all(&line)?;
        }
        let text = String::from_utf8_lossy(&line);
        let size_text = text
            .trim()
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let size = u64::from_str_radix(&size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // trailers until a blank line
            loop {
                let mut trailer = Vec::new();
                reader
                    .take(MAX_HEAD as u64)
                    .read_until(b'\n', &mut trailer)?;
                if raw {
                    out.write_all(&trailer)?;
                }
                if trailer.is_empty() || trailer == b"\r\n" || trailer == b"\n" {
                    return Ok(total);
                }
            }
        }
        let n = io::copy(&mut reader.take(size), out)?;
        if n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunk shorter than announced",
            ));
        }
        total += n;
        let mut crlf = Vec::new();
        reader.take(2).read_until(b'\n', &mut crlf)?;
        if raw {
            out.write_all(&crlf)?;
        }
    }
}

/// Reason phrase for the status codes this crate sends.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Formats a response head with `Connection: close`.
pub(crate) fn response_head(status: u16, headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Percent-decodes a query component (`+` is a space).
pub(crate) fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a query string into decoded (name, value) pairs.
pub(crate) fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(
            url_decode("repository%3Afoo%2Fbar%3Apull%2Cpush"),
            "repository:foo/bar:pull,push"
        );
        assert_eq!(url_decode("a+b%2"), "a b%2");
        assert_eq!(url_decode("%zz%41"), "%zzA");
        assert_eq!(
            query_pairs("service=testkit&scope=a%3Ab&scope=c&x"),
            vec![
                ("service".to_string(), "testkit".to_string()),
                ("scope".to_string(), "a:b".to_string()),
                ("scope".to_string(), "c".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
    }

    #[test]
    fn chunked_roundtrip() {
        let data = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: y\r\n\r\nrest";
        let mut reader = io::BufReader::new(&data[..]);
        let mut out = Vec::new();
        assert_eq!(copy_chunked(&mut reader, &mut out, false).unwrap(), 11);
        assert_eq!(out, b"hello world");
        let mut reader = io::BufReader::new(&data[..]);
        let mut raw = Vec::new();
        copy_chunked(&mut reader, &mut raw, true).unwrap();
        assert_eq!(raw, &data[..data.len() - 4]);
    }
}
