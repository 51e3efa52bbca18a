//! Small shared helpers: digests, free ports, shutdown signalling.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A ustar archive of regular files (mode 0644, mtime 0), for hand-made layers.
pub fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name)
            .unwrap_or_else(|e| panic!("repro-testkit: tar_of: {name:?}: {e}"));
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, *body)
            .unwrap_or_else(|e| panic!("repro-testkit: tar_of: {name:?}: {e}"));
    }
    b.into_inner()
        .unwrap_or_else(|e| panic!("repro-testkit: tar_of: {e}"))
}

/// `bytes` as one gzip member (flate2's default level, no header fields).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)
        .and_then(|_| e.finish())
        .unwrap_or_else(|e| panic!("repro-testkit: gzip: {e}"))
}

/// `shared/samples` beside the checkout (real Arch, OCI and rebuilderd files), or
/// `$REPRO_SAMPLES`; panics naming where it looked when they are not there.
pub fn samples() -> std::path::PathBuf {
    let dir = std::env::var_os("REPRO_SAMPLES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/samples")
        });
    assert!(
        dir.join("pacman-local").is_dir(),
        "repro-testkit: no samples at {} (set REPRO_SAMPLES)",
        dir.display()
    );
    dir
}

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, release it).
/// Racy by nature; callers that spawn a server on it retry on "address in use".
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| {
        panic!("repro-testkit: cannot bind 127.0.0.1:0 to find a free port: {e}")
    });
    match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(e) => panic!("repro-testkit: local_addr of a bound listener failed: {e}"),
    }
}

/// A writer that hashes (sha256) and counts what passes through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// (inner writer, `sha256:<hex>`, byte count)
    pub fn finish(self) -> (W, String, u64) {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        (self.inner, digest, self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A one-way "we are shutting down" flag that sleepers can wait on, so that bounded stalls end
/// as soon as the server is dropped.
#[derive(Default)]
pub(crate) struct Shutdown {
    flag: Mutex<bool>,
    cond: Condvar,
}

impl Shutdown {
    pub fn trigger(&self) {
        let mut flag = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        *flag = true;
        self.cond.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        *self.flag.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps up to `timeout`; returns early (true) when shutdown is triggered.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut flag = self.flag.lock().unwrap_or_else(|p| p.into_inner());
        while !*flag {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            flag = match self.cond.wait_timeout(flag, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// A test server on 127.0.0.1 (a free port): one thread accepting, one per connection,
/// each connection handed to `handle` with the server's state; stopped on drop (the
/// [`Shutdown`] shared with the state is triggered, so stalls end early, and the accept
/// thread joined).
pub(crate) struct Loopback {
    host: String,
    shutdown: Arc<Shutdown>,
    accept: Option<JoinHandle<()>>,
}

impl Loopback {
    /// `what` names the server in panics and threads; `state` is made knowing the host
    /// ("127.0.0.1:PORT") and the shutdown flag.
    pub fn start<S: Send + Sync + 'static>(
        what: &'static str,
        state: impl FnOnce(&str, Arc<Shutdown>) -> S,
        handle: fn(TcpStream, &S) -> io::Result<()>,
    ) -> (Loopback, Arc<S>) {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("repro-testkit: {what} cannot bind 127.0.0.1:0: {e}"));
        let host = match listener.local_addr() {
            Ok(addr) => format!("127.0.0.1:{}", addr.port()),
            Err(e) => panic!("repro-testkit: {what}: local_addr failed: {e}"),
        };
        let shutdown = Arc::new(Shutdown::default());
        let state = Arc::new(state(&host, shutdown.clone()));
        let (st, stop) = (state.clone(), shutdown.clone());
        let accept = std::thread::Builder::new()
            .name(format!("testkit-{what}"))
            .spawn(move || {
                for conn in listener.incoming() {
                    if stop.is_triggered() {
                        break;
                    }
                    let Ok(stream) = conn else { continue };
                    let st = st.clone();
                    let _ = std::thread::Builder::new()
                        .name(format!("testkit-{what}-conn"))
                        .spawn(move || {
                            let _ = handle(stream, &st);
                        });
                }
            })
            .unwrap_or_else(|e| panic!("repro-testkit: cannot spawn a thread: {e}"));
        let server = Loopback {
            host,
            shutdown,
            accept: Some(accept),
        };
        (server, state)
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        self.shutdown.trigger();
        // wake the accept loop
        let _ = TcpStream::connect(&self.host);
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

/// Locks a mutex, ignoring poisoning (a panicking test thread must not cascade).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut w = HashWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (inner, d, n) = w.finish();
        assert_eq!(inner, b"abc");
        assert_eq!(n, 3);
        assert_eq!(d, sha256_digest(b"abc"));
    }

    #[test]
    fn shutdown_wakes_sleepers() {
        let s = std::sync::Arc::new(Shutdown::default());
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        s.trigger();
        assert!(t.join().unwrap());
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(!Shutdown::default().wait(Duration::from_millis(10)));
    }
}
