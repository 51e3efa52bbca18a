//! Two images from any [`ImageSource`]s, compared level by level: the I/O edge of the crate.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::mpsc::{SyncSender, channel, sync_channel};

use oci_spec::image::ImageManifest;
use repro_oci::{ManifestDoc, Platform, TopLevel};
use repro_rootfs::{Applier, Kind, Tree, TreePath};
use repro_transport::{ImageSource, TransportError, decompress};
use serde::Serialize;

use crate::docs::{compare_configs, compare_manifests, compare_top_levels};
use crate::entry::normalize;
use crate::layers::compare_layer_blobs;
use crate::report_dir::ReportDir;
use crate::{
    DiffError, Difference, Level, Options, ReportFiles, compare_trees, sort_differences, text,
};

/// One of the two images, as read.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub reference: String,
    /// The document the reference names (an index or the manifest itself).
    pub top_level_digest: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layers: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub a: Side,
    pub b: Side,
    /// True when the merged trees were compared instead of the layers.
    pub squashed: bool,
    pub differences: Vec<Difference>,
    /// Oddities found while reading (flags of the merged trees, source warnings).
    pub warnings: Vec<String>,
}

impl Report {
    pub fn equal(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The manifest `top` stands for: itself, or from an index the entry for `platform`.
pub fn resolve(
    src: &mut dyn ImageSource,
    top: &TopLevel,
    platform: &Platform,
) -> Result<ManifestDoc, DiffError> {
    Ok(repro_transport::tree::manifest_of(src, top, platform)?)
}

/// Compare image `a` with image `b` (the platform's manifest of each), with `opts`; with
/// `report_dir`, the two versions of every file whose content differs are written there.
pub fn diff_images(
    a: &mut dyn ImageSource,
    b: &mut dyn ImageSource,
    platform: &Platform,
    opts: &Options,
    report_dir: Option<&Path>,
) -> Result<Report, DiffError> {
    let report = report_dir.map(ReportDir::create).transpose()?;
    let (top_a, top_b) = (a.top_level()?, b.top_level()?);
    let mut diffs = compare_top_levels(&top_a, &top_b, opts);
    let ma = resolve(a, &top_a, platform)?;
    let mb = resolve(b, &top_b, platform)?;
    diffs.extend(compare_manifests(&ma, &mb, opts));
    let ca = repro_transport::read_config(a, &ma.manifest)?;
    let cb = repro_transport::read_config(b, &mb.manifest)?;
    diffs.extend(compare_configs(&ca, &cb, opts));
    let side =
        |src: &dyn ImageSource, top: &TopLevel, m: &ManifestDoc, c: &repro_oci::ConfigDoc| Side {
            reference: src.describe(),
            top_level_digest: top.raw().digest.to_string(),
            manifest_digest: m.raw.digest.to_string(),
            config_digest: c.raw.digest.to_string(),
            layers: m.manifest.layers().len(),
        };
    let (side_a, side_b) = (side(a, &top_a, &ma, &ca), side(b, &top_b, &mb, &cb));
    let mut warnings = a.warnings();
    warnings.extend(b.warnings());

    let mut wanted = Wanted::default();
    if opts.squash {
        let (ta, tb) = build_trees(a, &ma.manifest, b, &mb.manifest)?;
        for (t, name) in [(&ta, "a"), (&tb, "b")] {
            warnings.extend(
                t.flags
                    .iter()
                    .map(|f| format!("{name}: layer {}: {:?}: {}", f.layer, f.entry, f.message)),
            );
        }
        let tree_diffs = compare_trees(&ta, &tb, opts);
        for d in tree_diffs.iter().filter(|d| d.field == "sha256") {
            let p = TreePath(d.path_bytes.clone());
            let (Some(na), Some(nb)) = (ta.entries.get(&p), tb.entries.get(&p)) else {
                continue;
            };
            let small = na.size <= opts.inline_diff_max && nb.size <= opts.inline_diff_max;
            if report.is_none() && !small {
                continue;
            }
            for (t, w, prefix) in [(&ta, &mut wanted.a, "a"), (&tb, &mut wanted.b, "b")] {
                if let Some((layer, entry)) = content_entry(t, &p) {
                    w.entry(layer)
                        .or_default()
                        .entry(entry)
                        .or_default()
                        .push((prefix.to_string(), p.0.clone()));
                }
            }
        }
        diffs.extend(tree_diffs);
    } else {
        let (la, lb) = (ma.manifest.layers(), mb.manifest.layers());
        if la.len() != lb.len() {
            diffs.push(Difference::new(
                Level::Layer,
                "count",
                Some(la.len().to_string()),
                Some(lb.len().to_string()),
            ));
        }
        for (i, (da, db)) in la.iter().zip(lb.iter()).enumerate() {
            let what_a = format!("{} layer {i} ({})", a.describe(), da.digest());
            let what_b = format!("{} layer {i} ({})", b.describe(), db.digest());
            let blob_a = a.blob(da.digest(), Some(da.size()))?;
            let blob_b = b.blob(db.digest(), Some(db.size()))?;
            let ld = compare_layer_blobs(blob_a, &what_a, blob_b, &what_b, Some(i), opts)?;
            if report.is_some() {
                for p in &ld.content_mismatches {
                    for (w, side) in [(&mut wanted.a, "a"), (&mut wanted.b, "b")] {
                        w.entry(i)
                            .or_default()
                            .entry(p.clone())
                            .or_default()
                            .push((format!("layer-{i}/{side}"), p.clone()));
                    }
                }
            }
            diffs.extend(ld.differences);
        }
    }

    if !wanted.a.is_empty() || !wanted.b.is_empty() {
        let got_a = extract(
            a,
            &ma.manifest,
            &wanted.a,
            opts.inline_diff_max,
            report.as_ref(),
        )?;
        let got_b = extract(
            b,
            &mb.manifest,
            &wanted.b,
            opts.inline_diff_max,
            report.as_ref(),
        )?;
        for d in diffs
            .iter_mut()
            .filter(|d| d.level == Level::File && d.field == "sha256")
        {
            let (pa, pb) = match d.layer {
                Some(i) => (format!("layer-{i}/a"), format!("layer-{i}/b")),
                None => ("a".to_string(), "b".to_string()),
            };
            let xa = got_a.get(&(pa, d.path_bytes.clone()));
            let xb = got_b.get(&(pb, d.path_bytes.clone()));
            if report.is_some() {
                d.files = Some(ReportFiles {
                    a: xa.and_then(|x| x.written.clone()),
                    b: xb.and_then(|x| x.written.clone()),
                });
            }
            if d.diff.is_none()
                && let (
                    Some(Extracted { small: Some(x), .. }),
                    Some(Extracted { small: Some(y), .. }),
                ) = (xa, xb)
            {
                d.diff = text::unified(x, y, &d.path_bytes);
            }
        }
    }
    sort_differences(&mut diffs);
    Ok(Report {
        a: side_a,
        b: side_b,
        squashed: opts.squash,
        differences: diffs,
        warnings,
    })
}

/// Per side: layer → entry path in that layer → (prefix, tree path) to file it under.
#[derive(Default)]
struct Wanted {
    a: WantedSide,
    b: WantedSide,
}
type WantedSide = BTreeMap<usize, BTreeMap<Vec<u8>, Vec<(String, Vec<u8>)>>>;

struct Extracted {
    written: Option<String>,
    small: Option<Vec<u8>>,
}

/// The layer and entry path whose content a merged-tree file has (following hardlinks).
fn content_entry(t: &Tree, p: &TreePath) -> Option<(usize, Vec<u8>)> {
    let mut cur = p.clone();
    // Hardlink chains are short; the bound only guards against a cycle.
    for _ in 0..16 {
        let n = t.entries.get(&cur)?;
        match n.kind {
            Kind::File => return Some((n.layer, cur.0)),
            Kind::Hardlink => cur = TreePath(n.link_target.clone()?.into_bytes()),
            _ => return None,
        }
    }
    None
}

/// Second pass over the layers named in `wanted`: the bytes of the wanted entries, written
/// to the report dir and (when at most `keep_max` bytes) kept for an inline diff.
fn extract(
    src: &mut dyn ImageSource,
    manifest: &ImageManifest,
    wanted: &WantedSide,
    keep_max: u64,
    report: Option<&ReportDir>,
) -> Result<BTreeMap<(String, Vec<u8>), Extracted>, DiffError> {
    let mut got = BTreeMap::new();
    for (&i, paths) in wanted {
        let Some(desc) = manifest.layers().get(i) else {
            continue;
        };
        let what = format!("{} layer {i} ({})", src.describe(), desc.digest());
        let err = |reason: String| DiffError::Layer {
            input: what.clone(),
            reason,
        };
        let mut blob = src.blob(desc.digest(), Some(desc.size()))?;
        {
            let tar = decompress(&mut blob, &what)?;
            let mut archive = tar::Archive::new(tar);
            for entry in archive.entries().map_err(|e| err(e.to_string()))? {
                let mut entry = entry.map_err(|e| err(e.to_string()))?;
                if !matches!(
                    entry.header().entry_type(),
                    tar::EntryType::Regular | tar::EntryType::Continuous
                ) {
                    continue;
                }
                let Ok(path) = normalize(&entry.path_bytes()) else {
                    continue;
                };
                let Some(targets) = paths.get(&path) else {
                    continue;
                };
                let mut small = (entry.size() <= keep_max).then(Vec::new);
                let mut whole = Vec::new();
                let mut written = Vec::new();
                match report {
                    Some(r) => {
                        // The first target is written from the stream; the others (the
                        // same entry under other names) are copies of that file.
                        let mut tee = Tee {
                            inner: &mut entry,
                            keep: small.as_mut(),
                            max: keep_max,
                        };
                        let (prefix, name) = &targets[0];
                        let rel = r.write(prefix, name, &mut tee)?;
                        for (prefix, name) in &targets[1..] {
                            let mut f = std::fs::File::open(r.root().join(&rel))
                                .map_err(|e| err(e.to_string()))?;
                            written.push(r.write(prefix, name, &mut f)?);
                        }
                        written.insert(0, rel);
                    }
                    None => {
                        if small.is_some() {
                            entry
                                .read_to_end(&mut whole)
                                .map_err(|e| err(e.to_string()))?;
                            small = Some(whole);
                        }
                    }
                }
                for (k, (prefix, name)) in targets.iter().enumerate() {
                    got.insert(
                        (prefix.clone(), name.clone()),
                        Extracted {
                            written: written.get(k).cloned(),
                            small: small.clone(),
                        },
                    );
                }
            }
        }
        io::copy(&mut blob, &mut io::sink()).map_err(|e| err(e.to_string()))?;
    }
    Ok(got)
}

/// Passes bytes through, keeping a copy while it stays within `max`.
struct Tee<'a, R> {
    inner: R,
    keep: Option<&'a mut Vec<u8>>,
    max: u64,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(k) = self.keep.as_mut()
            && (k.len() + n) as u64 <= self.max
        {
            k.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

type BlobReply = SyncSender<Result<Box<dyn Read + Send>, TransportError>>;

/// Both images' merged trees, built at the same time: each tree by its own thread, which
/// asks this thread (the owner of the sources) for its layer blobs one at a time.
fn build_trees(
    a: &mut dyn ImageSource,
    ma: &ImageManifest,
    b: &mut dyn ImageSource,
    mb: &ImageManifest,
) -> Result<(Tree, Tree), DiffError> {
    let (desc_a, desc_b) = (a.describe(), b.describe());
    std::thread::scope(|s| {
        let (req_tx, req_rx) = channel::<(usize, usize, BlobReply)>();
        let worker = |side: usize, m: &ImageManifest, what: String| {
            let req_tx = req_tx.clone();
            let n = m.layers().len();
            let digests: Vec<String> = m.layers().iter().map(|l| l.digest().to_string()).collect();
            move || -> Result<Tree, DiffError> {
                let mut applier = Applier::new();
                for (i, digest) in digests.iter().enumerate().take(n) {
                    let (tx, rx) = sync_channel(1);
                    req_tx
                        .send((side, i, tx))
                        .map_err(|_| layer_err(&what, i, "the blob server stopped"))?;
                    let mut blob = rx
                        .recv()
                        .map_err(|_| layer_err(&what, i, "the blob server stopped"))??;
                    let input = format!("{what} layer {i} ({digest})");
                    repro_transport::tree::apply_blob(&mut applier, &mut blob, &input)?;
                }
                Ok(applier.finish())
            }
        };
        let ha = s.spawn(worker(0, ma, desc_a));
        let hb = s.spawn(worker(1, mb, desc_b));
        drop(req_tx);
        // Serve blob requests until both workers are done (their senders dropped).
        for (side, i, reply) in req_rx {
            let r = if side == 0 {
                layer_blob(&mut *a, ma, i)
            } else {
                layer_blob(&mut *b, mb, i)
            };
            let _ = reply.send(r);
        }
        let ta = ha.join().map_err(|_| panicked("a"))??;
        let tb = hb.join().map_err(|_| panicked("b"))??;
        Ok((ta, tb))
    })
}

fn layer_blob(
    src: &mut dyn ImageSource,
    m: &ImageManifest,
    i: usize,
) -> Result<Box<dyn Read + Send>, TransportError> {
    match m.layers().get(i) {
        Some(d) => src.blob(d.digest(), Some(d.size())),
        None => Err(TransportError::Invalid {
            input: src.describe(),
            reason: format!("no layer {i}"),
        }),
    }
}

fn layer_err(what: &str, i: usize, reason: &str) -> DiffError {
    DiffError::Layer {
        input: format!("{what} layer {i}"),
        reason: reason.to_string(),
    }
}

fn panicked(side: &str) -> DiffError {
    DiffError::Layer {
        input: format!("image {side}"),
        reason: "the thread reading the layers panicked".into(),
    }
}
