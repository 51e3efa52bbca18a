//! Small shared helpers: digests, free ports, shutdown signalling.

use std::io::{self, Write};
use std::net::TcpListener;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
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
