//! The streaming layer pipeline `build` runs:
//!
//! ```text
//!              ┌─► sha256 (diff_id) ─► tar file (optional)
//! tar writer ──┤
//!              └─► compressor ─► sha256 (blob digest) ─► blob file (optional)
//! ```
//!
//! The writer runs on the calling thread and hands 1 MiB chunks over bounded channels to
//! a hashing thread and a compressing thread (libzstd adds its own workers), so a layer is
//! never held in memory whole and hashing and compression overlap the tar writing. Output
//! files are written under a temporary name next to the target and renamed only when the
//! whole stream succeeded.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::zst::{self, ZstdParams};

const CHUNK: usize = 1 << 20;
const DEPTH: usize = 8;

/// How the blob is compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    /// zstd with these parameters; the tar size is pledged when known.
    Zstd(ZstdParams),
}

/// Where the pipeline's outputs go. With neither path set it still computes the digests.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    /// The uncompressed tar.
    pub tar: Option<PathBuf>,
    /// Compress (and digest) the tar.
    pub compression: Option<Compression>,
    /// The compressed blob (only with `compression`).
    pub blob: Option<PathBuf>,
}

/// The sha256 and size of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digest {
    /// Lowercase hex, without the `sha256:` prefix.
    pub sha256: String,
    pub size: u64,
}

impl Digest {
    /// `sha256:<hex>`, as OCI writes digests and diff_ids.
    pub fn oci(&self) -> String {
        format!("sha256:{}", self.sha256)
    }

    /// The line `sha256sum FILE` prints, as the recipe's `repro.tar.zst.SHA256` holds it.
    pub fn sha256sum_line(&self, file_name: &str) -> String {
        format!("{}  {file_name}\n", self.sha256)
    }
}

/// What the pipeline produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Produced {
    /// The tar (its sha256 is the layer's diff_id).
    pub tar: Digest,
    /// The compressed blob, when compressing.
    pub blob: Option<Digest>,
}

/// A file written under a temporary name, renamed into place by `commit`.
struct Staged {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<BufWriter<File>>,
}

impl Staged {
    fn create(target: &Path) -> Result<Staged, Error> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = target.with_file_name(format!(".{name}.partial"));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Staged {
            tmp,
            target: target.to_path_buf(),
            file: Some(BufWriter::with_capacity(CHUNK, file)),
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match &mut self.file {
            Some(f) => f.write_all(buf),
            None => Err(io::Error::other("write after commit")),
        }
    }

    fn commit(mut self) -> Result<(), Error> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let file = file
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // A stage that was not committed leaves no temporary file behind.
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Counts and hashes what passes through to an optional file.
struct HashSink {
    hasher: Sha256,
    size: u64,
    file: Option<Staged>,
}

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        if let Some(f) = &mut self.file {
            f.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut().and_then(|f| f.file.as_mut()) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl HashSink {
    fn new(target: Option<&Path>) -> Result<HashSink, Error> {
        Ok(HashSink {
            hasher: Sha256::new(),
            size: 0,
            file: target.map(Staged::create).transpose()?,
        })
    }

    fn finish(self) -> Result<Digest, Error> {
        let digest = Digest {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
        };
        if let Some(f) = self.file {
            f.commit()?;
        }
        Ok(digest)
    }
}

/// The writer the tar writer writes into: chunks fanned out to every stage.
struct Fanout {
    buf: Vec<u8>,
    senders: Vec<SyncSender<Arc<Vec<u8>>>>,
}

impl Fanout {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Arc::new(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        for s in &self.senders {
            s.send(Arc::clone(&chunk)).map_err(|_| {
                io::Error::new(io::ErrorKind::BrokenPipe, "a pipeline stage stopped")
            })?;
        }
        Ok(())
    }
}

impl Write for Fanout {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

fn spawn<T: Send + 'static>(
    name: &'static str,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<JoinHandle<Result<T, Error>>, Error> {
    thread::Builder::new()
        .name(format!("repro-tar-{name}"))
        .spawn(work)
        .map_err(|e| Error::Pipeline {
            stage: name,
            message: format!("cannot start its thread: {e}"),
        })
}

fn join<T>(name: &'static str, h: JoinHandle<Result<T, Error>>) -> Result<T, Error> {
    h.join().unwrap_or_else(|_| {
        Err(Error::Pipeline {
            stage: name,
            message: "panicked".into(),
        })
    })
}

/// Did the producer stop only because a stage hung up (whose own error says why)?
fn broken_pipe(e: &Error) -> bool {
    matches!(e, Error::Write { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
}

/// Run `produce` (a tar writer: `|out| archive.write_to(out)`) through the pipeline.
/// `tar_size`: the exact size of the stream when known (a plan's `size()`), pledged to
/// zstd as `zstd FILE` does, and checked.
pub fn run<F>(tar_size: Option<u64>, outputs: &Outputs, produce: F) -> Result<Produced, Error>
where
    F: FnOnce(&mut dyn Write) -> Result<u64, Error>,
{
    if outputs.blob.is_some() && outputs.compression.is_none() {
        return Err(Error::Pipeline {
            stage: "setup",
            message: "a blob file was asked for without a compression".into(),
        });
    }
    // Set before the channels close when the producer failed: no stage commits its file.
    let abort = Arc::new(AtomicBool::new(false));
    let aborted = |abort: &AtomicBool, stage: &'static str| -> Result<(), Error> {
        if abort.load(Ordering::SeqCst) {
            return Err(Error::Pipeline {
                stage,
                message: "aborted: the tar writer failed".into(),
            });
        }
        Ok(())
    };
    let (tar_tx, tar_rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);
    let tar_abort = Arc::clone(&abort);
    let mut tar_sink = HashSink::new(outputs.tar.as_deref())?;
    let tar_handle = spawn("hash", move || {
        for chunk in tar_rx {
            tar_sink
                .write_all(&chunk)
                .map_err(|e| Error::write("the tar file", e))?;
        }
        aborted(&tar_abort, "hash")?;
        tar_sink.finish()
    })?;
    let mut senders = vec![tar_tx];
    let mut blob_handle = None;
    if let Some(Compression::Zstd(params)) = &outputs.compression {
        let (tx, rx) = sync_channel::<Arc<Vec<u8>>>(DEPTH);
        senders.push(tx);
        let sink = HashSink::new(outputs.blob.as_deref())?;
        let mut enc = zst::encoder(sink, params, tar_size)?;
        let blob_abort = Arc::clone(&abort);
        blob_handle = Some(spawn("zstd", move || {
            for chunk in rx {
                enc.write_all(&chunk)
                    .map_err(|e| Error::Zstd(format!("compressing: {e}")))?;
            }
            aborted(&blob_abort, "zstd")?;
            let sink = enc
                .finish()
                .map_err(|e| Error::Zstd(format!("finishing the frame: {e}")))?;
            sink.finish()
        })?);
    }
    let mut fan = Fanout {
        buf: Vec::with_capacity(CHUNK),
        senders,
    };
    let produced = produce(&mut fan).and_then(|n| {
        fan.flush()
            .map_err(|e| Error::write("the pipeline", e))
            .map(|_| n)
    });
    if produced.is_err() {
        abort.store(true, Ordering::SeqCst);
    }
    drop(fan);
    let tar = join("hash", tar_handle);
    let blob = blob_handle.map(|h| join("zstd", h)).transpose();
    // The producer's own failure explains the stages' (a short stream); a stage's failure
    // explains the producer's broken pipe.
    let n = match produced {
        Err(e) if !broken_pipe(&e) => return Err(e),
        other => other,
    };
    let tar = tar?;
    let blob = blob?;
    let n = n?;
    if tar.size != n || tar_size.is_some_and(|s| s != n) {
        return Err(Error::PlannedSize {
            planned: tar_size.unwrap_or(n),
            actual: tar.size,
        });
    }
    Ok(Produced { tar, blob })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn digests_and_files_match_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = data(3 * CHUNK + 123);
        let outputs = Outputs {
            tar: Some(dir.path().join("x.tar")),
            compression: Some(Compression::Zstd(ZstdParams::recipe())),
            blob: Some(dir.path().join("x.tar.zst")),
        };
        let got = run(Some(bytes.len() as u64), &outputs, |w| {
            for c in bytes.chunks(1000) {
                w.write_all(c).map_err(|e| Error::write("test", e))?;
            }
            Ok(bytes.len() as u64)
        })
        .unwrap();
        assert_eq!(got.tar.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(std::fs::read(dir.path().join("x.tar")).unwrap(), bytes);
        let blob = std::fs::read(dir.path().join("x.tar.zst")).unwrap();
        let b = got.blob.unwrap();
        assert_eq!(b.sha256, hex::encode(Sha256::digest(&blob)));
        assert_eq!(b.size, blob.len() as u64);
        assert_eq!(zstd::decode_all(&blob[..]).unwrap(), bytes);
        // The same bytes as the one-shot encoder with the size pledged.
        let mut enc =
            zst::encoder(Vec::new(), &ZstdParams::recipe(), Some(bytes.len() as u64)).unwrap();
        enc.write_all(&bytes).unwrap();
        assert_eq!(enc.finish().unwrap(), blob);
        // No temporary files are left behind.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["x.tar", "x.tar.zst"]);
    }

    #[test]
    fn a_failing_producer_leaves_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let outputs = Outputs {
            tar: Some(dir.path().join("x.tar")),
            compression: Some(Compression::Zstd(ZstdParams::recipe())),
            blob: Some(dir.path().join("x.tar.zst")),
        };
        let err = run(Some(10), &outputs, |w| {
            w.write_all(b"abc").map_err(|e| Error::write("test", e))?;
            Err(Error::unsupported("/some/input", "boom"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("/some/input: boom"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_size_other_than_planned_is_an_error() {
        let err = run(Some(10), &Outputs::default(), |w| {
            w.write_all(b"abc").map_err(|e| Error::write("test", e))?;
            Ok(3)
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::PlannedSize {
                    planned: 10,
                    actual: 3
                }
            ),
            "{err}"
        );
    }
}
