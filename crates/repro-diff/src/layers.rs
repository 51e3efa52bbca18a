//! Two layer streams compared entry by entry.
//!
//! Each side is decompressed and read by its own thread (two cores: the two layers are read
//! at once) and sent over a bounded channel; the caller's thread takes one entry from each
//! side in turn, so what it does never depends on thread timing. An entry is matched with
//! the entry of the same path (and the same occurrence, for a path listed twice) on the
//! other side; while it waits for its counterpart only its metadata and content sha256 are
//! held, plus the bytes of small files within [`Options::inline_budget`]. Streams in the
//! same order match at once and hold nothing; a different order costs metadata, not content.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::entry::{Meta, read_entry};
use crate::{DiffError, Difference, Level, Options, compare_meta, text};

/// What reading one layer stream showed besides its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSummary {
    pub entries: u64,
    /// Length of the uncompressed tar, end-of-archive blocks and padding included.
    pub tar_bytes: u64,
}

#[derive(Debug, Default)]
pub struct LayerDiff {
    pub differences: Vec<Difference>,
    pub a: LayerSummary,
    pub b: LayerSummary,
    /// Paths (normalised) of files on both sides whose content differs.
    pub content_mismatches: Vec<Vec<u8>>,
}

enum Msg {
    Entry(Meta, Option<Vec<u8>>),
    Done(LayerSummary),
    Err(DiffError),
}

struct Counting<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

/// Entries sent ahead of the comparing thread; bounds what a fast side can queue up.
const CHANNEL_DEPTH: usize = 512;

/// Read a (possibly compressed) layer blob and send its entries. After the tar's end the
/// rest of the decompressed stream is counted and the rest of the blob read, so that a
/// verifying source checks digest and size.
fn read_layer(
    mut blob: Box<dyn Read + Send + '_>,
    what: &str,
    keep_max: u64,
    tx: &SyncSender<Msg>,
) {
    let err = |reason: String| DiffError::Layer {
        input: what.to_string(),
        reason,
    };
    let result = (|| -> Result<Option<LayerSummary>, DiffError> {
        let mut summary = LayerSummary::default();
        {
            let tar = repro_transport::decompress(&mut blob, what)?;
            let mut archive = tar::Archive::new(Counting { inner: tar, n: 0 });
            let entries = archive
                .entries()
                .map_err(|e| err(format!("not a tar stream: {e}")))?;
            let mut last: Option<String> = None;
            for entry in entries {
                let mut entry = entry.map_err(|e| match &last {
                    Some(l) => err(format!("reading the entry after {l:?}: {e}")),
                    None => err(format!("reading entry: {e}")),
                })?;
                let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let (meta, content) = read_entry(&mut entry, keep_max)
                    .map_err(|r| err(format!("entry {shown:?}: {r}")))?;
                last = Some(shown);
                summary.entries += 1;
                if tx.send(Msg::Entry(meta, content)).is_err() {
                    // The comparing side stopped (an error on the other side).
                    return Ok(None);
                }
            }
            let mut rest = archive.into_inner();
            io::copy(&mut rest, &mut io::sink()).map_err(|e| err(format!("after the tar: {e}")))?;
            summary.tar_bytes = rest.n;
        }
        io::copy(&mut blob, &mut io::sink()).map_err(|e| err(e.to_string()))?;
        Ok(Some(summary))
    })();
    let _ = match result {
        Ok(Some(s)) => tx.send(Msg::Done(s)),
        Ok(None) => Ok(()),
        Err(e) => tx.send(Msg::Err(e)),
    };
}

struct Pending {
    index: u64,
    meta: Meta,
    content: Option<Vec<u8>>,
}

/// One side's state in the matcher.
#[derive(Default)]
struct SideState {
    pending: BTreeMap<(Vec<u8>, u32), Pending>,
    occurrences: BTreeMap<Vec<u8>, u32>,
    next_index: u64,
    summary: Option<LayerSummary>,
}

fn recv(rx: &Receiver<Msg>, what: &str) -> Result<Msg, DiffError> {
    rx.recv().map_err(|_| DiffError::Layer {
        input: what.to_string(),
        reason: "the reading thread ended without a result".into(),
    })
}

/// Compare two layer blobs (compressed or plain tars, detected by magic) entry by entry.
/// `a_what`/`b_what` name the inputs in errors; `layer` is put in the differences.
pub fn compare_layer_blobs(
    a: Box<dyn Read + Send + '_>,
    a_what: &str,
    b: Box<dyn Read + Send + '_>,
    b_what: &str,
    layer: Option<usize>,
    opts: &Options,
) -> Result<LayerDiff, DiffError> {
    let keep_max = opts.inline_diff_max;
    std::thread::scope(|s| {
        let (tx_a, rx_a) = sync_channel(CHANNEL_DEPTH);
        let (tx_b, rx_b) = sync_channel(CHANNEL_DEPTH);
        s.spawn(move || read_layer(a, a_what, keep_max, &tx_a));
        s.spawn(move || read_layer(b, b_what, keep_max, &tx_b));
        let mut m = Matcher {
            opts,
            layer,
            sides: [SideState::default(), SideState::default()],
            pending_bytes: 0,
            pairs: Vec::new(),
            out: LayerDiff::default(),
        };
        let rx = [(&rx_a, a_what), (&rx_b, b_what)];
        while m.sides.iter().any(|s| s.summary.is_none()) {
            for (side, (rx, what)) in rx.iter().enumerate() {
                if m.sides[side].summary.is_some() {
                    continue;
                }
                match recv(rx, what)? {
                    Msg::Entry(meta, content) => m.entry(side, meta, content),
                    Msg::Done(summary) => m.sides[side].summary = Some(summary),
                    Msg::Err(e) => return Err(e),
                }
            }
        }
        Ok(m.finish())
    })
}

struct Matcher<'o> {
    opts: &'o Options,
    layer: Option<usize>,
    sides: [SideState; 2],
    pending_bytes: u64,
    /// (index in A, index in B, path) of every matched, compared pair.
    pairs: Vec<(u64, u64, Vec<u8>)>,
    out: LayerDiff,
}

impl Matcher<'_> {
    fn entry(&mut self, side: usize, meta: Meta, content: Option<Vec<u8>>) {
        let other = 1 - side;
        let st = &mut self.sides[side];
        let index = st.next_index;
        st.next_index += 1;
        let occ = st.occurrences.entry(meta.path.clone()).or_insert(0);
        let key = (meta.path.clone(), *occ);
        *occ += 1;
        if let Some(p) = self.sides[other].pending.remove(&key) {
            self.pending_bytes -= p.content.as_ref().map_or(0, |c| c.len() as u64);
            let mine = Pending {
                index,
                meta,
                content,
            };
            let (a, b) = if side == 0 { (mine, p) } else { (p, mine) };
            self.compare_pair(a, b);
            return;
        }
        let content = content.filter(|c| {
            let fits = self.pending_bytes + c.len() as u64 <= self.opts.inline_budget;
            if fits {
                self.pending_bytes += c.len() as u64;
            }
            fits
        });
        self.sides[side].pending.insert(
            key,
            Pending {
                index,
                meta,
                content,
            },
        );
    }

    fn compare_pair(&mut self, a: Pending, b: Pending) {
        if self.opts.ignore_paths.is_ignored(&a.meta.path) {
            return;
        }
        self.pairs.push((a.index, b.index, a.meta.path.clone()));
        let start = self.out.differences.len();
        compare_meta(
            Some(&a.meta),
            Some(&b.meta),
            self.layer,
            self.opts,
            &mut self.out.differences,
        );
        let content_differs =
            a.meta.sha256.is_some() && b.meta.sha256.is_some() && a.meta.sha256 != b.meta.sha256;
        if content_differs {
            self.out.content_mismatches.push(a.meta.path.clone());
            if let (Some(x), Some(y)) = (&a.content, &b.content) {
                let diff = text::unified(x, y, &a.meta.path);
                if let Some(d) = self.out.differences[start..]
                    .iter_mut()
                    .find(|d| d.field == "sha256")
                {
                    d.diff = diff;
                }
            }
        }
    }

    fn finish(mut self) -> LayerDiff {
        let a_left = std::mem::take(&mut self.sides[0].pending);
        let b_left = std::mem::take(&mut self.sides[1].pending);
        for (side, left) in [(0, a_left), (1, b_left)] {
            for (_, p) in left {
                if self.opts.ignore_paths.is_ignored(&p.meta.path) {
                    continue;
                }
                let (x, y) = if side == 0 {
                    (Some(&p.meta), None)
                } else {
                    (None, Some(&p.meta))
                };
                compare_meta(x, y, self.layer, self.opts, &mut self.out.differences);
            }
        }
        if !self.opts.ignore_file_order {
            self.order_difference();
        }
        let a = self.sides[0].summary.take().unwrap_or_default();
        let b = self.sides[1].summary.take().unwrap_or_default();
        // Like a digest, the length summarises the entries: only compared when digests are.
        if self.opts.compares_digests() && a.tar_bytes != b.tar_bytes {
            self.out.differences.push(
                Difference::new(
                    Level::Layer,
                    "tar size",
                    Some(a.tar_bytes.to_string()),
                    Some(b.tar_bytes.to_string()),
                )
                .in_layer(self.layer),
            );
        }
        self.out.a = a;
        self.out.b = b;
        self.out
    }

    /// The first place where the entries both sides have come in another order: the path
    /// at that rank among the common entries, in A and in B.
    fn order_difference(&mut self) {
        let mut by_a: Vec<&(u64, u64, Vec<u8>)> = self.pairs.iter().collect();
        by_a.sort_by_key(|p| p.0);
        let mut by_b = by_a.clone();
        by_b.sort_by_key(|p| p.1);
        if let Some((rank, (x, y))) = by_a
            .iter()
            .zip(by_b.iter())
            .enumerate()
            .find(|(_, (x, y))| x.2 != y.2)
        {
            let lossy = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
            self.out.differences.push(
                Difference::new(
                    Level::Layer,
                    format!("entry order (common entry #{rank})"),
                    Some(lossy(&x.2)),
                    Some(lossy(&y.2)),
                )
                .in_layer(self.layer),
            );
        }
    }
}
