//! The Arch Linux Archive over HTTP: small files (sync dbs, signatures) and package files
//! downloaded into the verified content store.
//!
//! A package download is checked while it streams: the sha256 and size from the lock are
//! the only acceptable result. Bytes go to `<store>/.repro-partial/<sha256>.part` (named by
//! the validated hash, locked with `flock` against a concurrent fetch of the same file) and
//! the file is renamed into `blobs/sha256/` only once hash and size match. A cut connection
//! leaves the partial file; the next attempt (in this run or a later one) asks for the rest
//! with `Range: bytes=N-` and, when the server answers 206, hashes the kept bytes and goes
//! on. A wrong hash or an oversize body deletes the partial file: nothing half-written or
//! unverified stays behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::Digest as _;
use ureq::Agent;

use repro_store::Store;

use crate::types::Sha256Hex;

const PARTIAL_DIR: &str = ".repro-partial";

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Idle timeout: the longest wait for any single read or write.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Attempts per URL for connection failures, cut bodies, 429 and 5xx.
    pub attempts: u32,
    /// Pause before attempt n+1 is n × this.
    pub backoff: Duration,
    pub user_agent: String,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(200),
            user_agent: concat!("repro-image/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{what}: no mirror served it ({urls})")]
    Unavailable { what: String, urls: String },
    #[error(
        "{what}: sha256 mismatch: the lock says {expected}, {url} served {actual} ({size} bytes); nothing was stored"
    )]
    Mismatch {
        what: String,
        url: String,
        expected: String,
        actual: String,
        size: u64,
    },
    #[error(
        "{what}: size mismatch: the lock says {expected} bytes, {url} served more or other; nothing was stored"
    )]
    Size {
        what: String,
        url: String,
        expected: u64,
    },
    #[error("{url}: larger than {max} bytes")]
    TooLarge { url: String, max: u64 },
    #[error(transparent)]
    Store(#[from] repro_store::StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl ArchiveError {
    /// The bytes served are not the pinned ones (as opposed to a network or local problem).
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            ArchiveError::Mismatch { .. } | ArchiveError::Size { .. }
        )
    }
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a download did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The store had it already.
    Present,
    /// Downloaded: `bytes` transferred now, of which `resumed_from` were already on disk.
    Downloaded { bytes: u64, resumed_from: u64 },
}

/// One step of a download attempt.
enum Step {
    Done,
    Retry(String),
    Gone(u16),
}

#[derive(Clone)]
pub struct Client {
    agent: Agent,
    opts: ClientOptions,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Client {
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .timeout_connect(Some(opts.connect_timeout))
            .timeout_per_read(Some(opts.timeout))
            .timeout_per_write(Some(opts.timeout))
            .user_agent(opts.user_agent.as_str())
            .build()
            .into();
        Client { agent, opts }
    }

    fn pause(&self, attempt: u32) {
        std::thread::sleep(self.opts.backoff * attempt);
    }

    /// GET a small file whole (a sync db, a `.sig`); `None` on 404/410. Retries like
    /// downloads do.
    pub fn get_small(&self, url: &str, max: u64) -> Result<Option<Vec<u8>>, ArchiveError> {
        self.with_retries(url, |resp| {
            let mut body = Vec::new();
            match resp
                .into_body()
                .into_reader()
                .take(max + 1)
                .read_to_end(&mut body)
            {
                Ok(_) if body.len() as u64 > max => Err(ArchiveError::TooLarge {
                    url: url.to_string(),
                    max,
                }),
                Ok(_) => Ok(Attempt::Done(body)),
                Err(e) => Ok(Attempt::Retry(e.to_string())),
            }
        })
    }

    /// GET `url` up to `attempts` times: connection failures, 429 and 5xx (and a body that
    /// `read` reports cut) are retried after a pause; 404/410 is `None`; any other status an
    /// error. `read` consumes a 200 answer.
    fn with_retries<T>(
        &self,
        url: &str,
        mut read: impl FnMut(ureq::http::Response<ureq::Body>) -> Result<Attempt<T>, ArchiveError>,
    ) -> Result<Option<T>, ArchiveError> {
        let mut last = String::new();
        for attempt in 0..self.opts.attempts.max(1) {
            if attempt > 0 {
                self.pause(attempt);
            }
            let resp = match self.agent.get(url).call() {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status().as_u16();
            match status {
                200 => {}
                404 | 410 => return Ok(None),
                429 | 500..=599 => {
                    last = format!("HTTP {status}");
                    continue;
                }
                _ => {
                    return Err(ArchiveError::Status {
                        url: url.to_string(),
                        status,
                    });
                }
            }
            match read(resp)? {
                Attempt::Done(v) => return Ok(Some(v)),
                Attempt::Retry(why) => last = why,
            }
        }
        Err(ArchiveError::Transport {
            url: url.to_string(),
            message: last,
        })
    }

    /// Download a file whose sha256 and size are known into `store`, trying `urls` in order
    /// (the next one only when a URL answers 404/410 or keeps failing). `what` names the
    /// package in messages; `progress` gets byte counts as they arrive.
    pub fn download(
        &self,
        store: &Store,
        urls: &[String],
        sha256: &Sha256Hex,
        size: u64,
        what: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Fetched, ArchiveError> {
        let digest = sha256.digest();
        if store.has(&digest, Some(size))? {
            return Ok(Fetched::Present);
        }
        let dir = store.root().join(PARTIAL_DIR);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let part = dir.join(format!("{sha256}.part"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&part)
            .map_err(io_at(&part))?;
        // Another fetch of the same file waits here, then finds it in the store.
        // SAFETY: flock on a descriptor we own; released when `file` is closed.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_at(&part)(io::Error::last_os_error()));
        }
        if store.has(&digest, Some(size))? {
            let _ = fs::remove_file(&part);
            return Ok(Fetched::Present);
        }
        // Hash what a previous attempt left, so the stream picks up where it stopped.
        let mut hasher = sha2::Sha256::new();
        let mut have = 0u64;
        {
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(io_at(&part))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                have += n as u64;
            }
        }
        if have > size {
            file.set_len(0).map_err(io_at(&part))?;
            file.seek(SeekFrom::Start(0)).map_err(io_at(&part))?;
            hasher = sha2::Sha256::new();
            have = 0;
        }
        let resumed_from = have;
        let mut notes: Vec<String> = Vec::new();
        let mut served_by: Option<&String> = None;
        'urls: for url in urls {
            for attempt in 0..self.opts.attempts.max(1) {
                if attempt > 0 {
                    self.pause(attempt);
                }
                let step = self.attempt(
                    url,
                    &part,
                    &mut file,
                    &mut hasher,
                    &mut have,
                    size,
                    what,
                    progress,
                );
                match step {
                    Ok(Step::Done) => {
                        served_by = Some(url);
                        break 'urls;
                    }
                    Ok(Step::Gone(status)) => {
                        notes.push(format!("{url}: HTTP {status}"));
                        continue 'urls;
                    }
                    Ok(Step::Retry(m)) => {
                        if attempt + 1 == self.opts.attempts.max(1) {
                            notes.push(format!("{url}: {m}"));
                        }
                    }
                    Err(e) => {
                        if e.is_mismatch() {
                            drop(file);
                            let _ = fs::remove_file(&part);
                        }
                        return Err(e);
                    }
                }
            }
        }
        let Some(url) = served_by else {
            return Err(ArchiveError::Unavailable {
                what: what.to_string(),
                urls: notes.join("; "),
            });
        };
        let actual = hex::encode(hasher.finalize());
        if actual != sha256.as_str() {
            drop(file);
            let _ = fs::remove_file(&part);
            return Err(ArchiveError::Mismatch {
                what: what.to_string(),
                url: url.clone(),
                expected: sha256.to_string(),
                actual,
                size: have,
            });
        }
        file.sync_all().map_err(io_at(&part))?;
        let dest = store.blob_path(&digest)?;
        commit(&part, &dest)?;
        drop(file);
        Ok(Fetched::Downloaded {
            bytes: have - resumed_from,
            resumed_from,
        })
    }

    /// One request: ask for the rest of the file and append it. `Ok(Done)` once `size`
    /// bytes are on disk (the caller checks the hash).
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        url: &str,
        part: &Path,
        file: &mut File,
        hasher: &mut sha2::Sha256,
        have: &mut u64,
        size: u64,
        what: &str,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Step, ArchiveError> {
        if *have == size {
            return Ok(Step::Done);
        }
        let mut req = self.agent.get(url);
        if *have > 0 {
            req = req.header("Range", format!("bytes={}-", *have));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(e) => return Ok(Step::Retry(e.to_string())),
        };
        let status = resp.status().as_u16();
        let restart = |file: &mut File, hasher: &mut sha2::Sha256, have: &mut u64| {
            file.set_len(0)
                .and_then(|_| file.seek(SeekFrom::Start(0)))
                .map_err(io_at(part))?;
            *hasher = sha2::Sha256::new();
            *have = 0;
            Ok::<_, ArchiveError>(())
        };
        match status {
            200 => {
                if *have > 0 {
                    // The server ignored the range: start over.
                    restart(file, hasher, have)?;
                }
            }
            206 => {
                let from = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if from != Some(*have) {
                    restart(file, hasher, have)?;
                    return Ok(Step::Retry(format!(
                        "206 for another range than bytes={}- ({from:?})",
                        *have
                    )));
                }
            }
            416 => {
                restart(file, hasher, have)?;
                return Ok(Step::Retry("HTTP 416 for the rest of the file".into()));
            }
            404 | 410 => return Ok(Step::Gone(status)),
            429 | 500..=599 => return Ok(Step::Retry(format!("HTTP {status}"))),
            _ => {
                return Err(ArchiveError::Status {
                    url: url.to_string(),
                    status,
                });
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io_at(part))?;
        let mut body = resp.into_body().into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    file.flush().map_err(io_at(part))?;
                    return Ok(Step::Retry(format!("cut after {} bytes: {e}", *have)));
                }
            };
            if *have + n as u64 > size {
                return Err(ArchiveError::Size {
                    what: what.to_string(),
                    url: url.to_string(),
                    expected: size,
                });
            }
            file.write_all(&buf[..n]).map_err(io_at(part))?;
            hasher.update(&buf[..n]);
            *have += n as u64;
            progress(n as u64);
        }
        if *have == size {
            Ok(Step::Done)
        } else {
            Ok(Step::Retry(format!(
                "body ended after {} of {size} bytes",
                *have
            )))
        }
    }

    /// Download a file whose hash is not known yet (pinning from the `/packages/` tree):
    /// hashed while it streams, then stored under that hash. `None` on 404/410.
    pub fn download_unpinned(
        &self,
        store: &Store,
        url: &str,
        max: u64,
    ) -> Result<Option<(Sha256Hex, u64)>, ArchiveError> {
        let dir = store.root().join(PARTIAL_DIR);
        fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        self.with_retries(url, |resp| {
            let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_at(&dir))?;
            let mut hasher = sha2::Sha256::new();
            let mut total = 0u64;
            let mut body = resp.into_body().into_reader();
            let mut buf = vec![0u8; 256 * 1024];
            let cut = loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Some(e.to_string()),
                };
                total += n as u64;
                if total > max {
                    return Err(ArchiveError::TooLarge {
                        url: url.to_string(),
                        max,
                    });
                }
                hasher.update(&buf[..n]);
                tmp.write_all(&buf[..n]).map_err(io_at(tmp.path()))?;
            };
            if let Some(e) = cut {
                return Ok(Attempt::Retry(e));
            }
            let hex = hex::encode(hasher.finalize());
            let sha: Sha256Hex = hex.parse().map_err(|m: String| ArchiveError::Transport {
                url: url.to_string(),
                message: m,
            })?;
            tmp.as_file().sync_all().map_err(io_at(tmp.path()))?;
            let dest = store.blob_path(&sha.digest())?;
            let (_, path) = tmp.keep().map_err(|e| ArchiveError::Io {
                path: dir.clone(),
                source: e.error,
            })?;
            commit(&path, &dest)?;
            Ok(Attempt::Done((sha, total)))
        })
    }
}

/// One answered attempt: the result, or why to try again.
enum Attempt<T> {
    Done(T),
    Retry(String),
}

/// Rename a verified file into its blob path and make the rename durable.
fn commit(from: &Path, dest: &Path) -> Result<(), ArchiveError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_at(dir))?;
    fs::rename(from, dest).map_err(|e| {
        let _ = fs::remove_file(from);
        ArchiveError::Io {
            path: dest.to_path_buf(),
            source: e,
        }
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_at(dir))?;
    Ok(())
}

/// Remove the partial-download directory when nothing is left in it (a layout others read
/// should hold only what the OCI spec defines).
pub fn finish(store: &Store) {
    let _ = fs::remove_dir(store.root().join(PARTIAL_DIR));
}

/// The partial download of `sha256` in `store`, if any (for tests and `--json` reports).
pub fn partial_path(store: &Store, sha256: &Sha256Hex) -> PathBuf {
    store
        .root()
        .join(PARTIAL_DIR)
        .join(format!("{sha256}.part"))
}

/// Run `f` over `items` on `jobs` threads; results in input order.
pub fn parallel<T: Sync, R: Send>(jobs: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .expect("every item was processed")
        })
        .collect()
}
