//! `repro-image inspect`: index, chosen manifest, config and layers.
//!
//! The `--json` output follows docs/inspect-json.md (schema "repro-image/inspect/v1").

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use oci_spec::image::Descriptor;
use repro_oci::image::{LayerInfo, descriptor_platform, is_attestation, layers, parse_config};
use repro_oci::{Digest, Platform, TopLevel};
use serde::Serialize;

use crate::Global;

#[derive(Args)]
pub struct InspectArgs {
    /// The image (docker://…, oci:DIR[:ref], docker-archive:FILE[:ref], rootfs:FILE, or name[:tag][@digest]).
    image: String,
    /// Print the exact bytes of the top-level document (index or manifest), as skopeo inspect --raw.
    #[arg(long)]
    raw: bool,
    /// With --raw: print the exact config bytes instead.
    #[arg(long, requires = "raw")]
    config: bool,
}

#[derive(Serialize)]
pub struct InspectReport {
    pub schema: &'static str,
    pub reference: String,
    pub index: Option<IndexReport>,
    pub manifest: DocReport,
    pub config: ConfigReport,
    pub layers: Vec<LayerInfo>,
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
pub struct IndexReport {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub manifests: Vec<IndexEntry>,
}

#[derive(Serialize)]
pub struct IndexEntry {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// "image" or "attestation".
    pub kind: &'static str,
    pub platform: Option<Platform>,
    /// For an attestation: the image manifest it is about.
    pub attests: Option<String>,
    pub selected: bool,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct DocReport {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct ConfigReport {
    pub digest: Digest,
    pub size: u64,
    pub created: Option<String>,
    pub author: Option<String>,
    pub platform: Platform,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub history: Vec<HistoryEntry>,
}

#[derive(Serialize)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

fn sorted(m: &Option<std::collections::HashMap<String, String>>) -> BTreeMap<String, String> {
    m.as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn entry(d: &Descriptor, selected: bool) -> IndexEntry {
    let attestation = is_attestation(d);
    let annotations = sorted(d.annotations());
    IndexEntry {
        digest: d.digest().clone(),
        media_type: d.media_type().to_string(),
        size: d.size(),
        kind: if attestation { "attestation" } else { "image" },
        platform: descriptor_platform(d),
        attests: if attestation {
            annotations.get("vnd.docker.reference.digest").cloned()
        } else {
            None
        },
        selected,
        annotations,
    }
}

pub fn run(g: &Global, a: &InspectArgs) -> Result<ExitCode> {
    let r = crate::parse_image(&a.image)?;
    let mut src = g.open_source(&r)?;
    let top = src.top_level()?;
    if a.raw && !a.config {
        std::io::stdout().write_all(&top.raw().bytes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (index, manifest) = match top {
        TopLevel::Manifest(m) => (None, m),
        TopLevel::Index(ref idx) => {
            let m = repro_transport::tree::manifest_of(src.as_mut(), &top, &g.platform)?;
            let report = IndexReport {
                digest: idx.raw.digest.clone(),
                media_type: idx.kind.media_type().to_string(),
                size: idx.raw.size(),
                manifests: idx
                    .index
                    .manifests()
                    .iter()
                    .map(|d| entry(d, *d.digest() == m.raw.digest))
                    .collect(),
            };
            (Some(report), m)
        }
    };
    let cfg_desc = manifest.manifest.config();
    let cfg_bytes = repro_transport::read_config_bytes(src.as_mut(), &manifest.manifest)?;
    if a.raw {
        std::io::stdout().write_all(&cfg_bytes)?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = parse_config(cfg_bytes, &format!("config {}", cfg_desc.digest()))?;
    let layer_info = layers(&manifest.manifest, &config.config)?;
    let c = &config.config;
    let cc = c.config().clone().unwrap_or_default();
    let report = InspectReport {
        schema: "repro-image/inspect/v1",
        reference: src.describe(),
        index,
        manifest: DocReport {
            digest: manifest.raw.digest.clone(),
            media_type: manifest.kind.media_type().to_string(),
            size: manifest.raw.size(),
            annotations: sorted(manifest.manifest.annotations()),
        },
        config: ConfigReport {
            digest: config.raw.digest.clone(),
            size: config.raw.size(),
            created: c.created().clone(),
            author: c.author().clone(),
            platform: Platform {
                os: c.os().to_string(),
                architecture: c.architecture().to_string(),
                variant: c.variant().clone(),
            },
            labels: sorted(cc.labels()),
            env: cc.env().clone().unwrap_or_default(),
            entrypoint: cc.entrypoint().clone(),
            cmd: cc.cmd().clone(),
            working_dir: cc.working_dir().clone(),
            user: cc.user().clone(),
            history: c
                .history()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|h| HistoryEntry {
                    created: h.created().clone(),
                    created_by: h.created_by().clone(),
                    comment: h.comment().clone(),
                    empty_layer: h.empty_layer().unwrap_or(false),
                })
                .collect(),
        },
        layers: layer_info,
        warnings: src.warnings(),
    };
    let mut out = std::io::stdout().lock();
    if g.json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &report)?;
    }
    for w in &report.warnings {
        eprintln!("repro-image: warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(out: &mut impl Write, r: &InspectReport) -> std::io::Result<()> {
    writeln!(out, "Image:     {}", r.reference)?;
    if let Some(i) = &r.index {
        writeln!(
            out,
            "Index:     {}  {}  {} bytes, {} entries",
            i.digest,
            i.media_type,
            i.size,
            i.manifests.len()
        )?;
        for e in &i.manifests {
            let plat = e
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into());
            let label = match (e.kind, &e.attests) {
                ("attestation", Some(a)) => format!("attestation for {a}"),
                ("attestation", None) => "attestation".into(),
                _ => plat,
            };
            writeln!(
                out,
                "  {} {:<36} {}  {} bytes",
                if e.selected { "*" } else { " " },
                label,
                e.digest,
                e.size
            )?;
        }
    }
    let m = &r.manifest;
    writeln!(
        out,
        "Manifest:  {}  {}  {} bytes",
        m.digest, m.media_type, m.size
    )?;
    for (k, v) in &m.annotations {
        writeln!(out, "  {k}={v}")?;
    }
    let c = &r.config;
    writeln!(out, "Config:    {}  {} bytes", c.digest, c.size)?;
    writeln!(out, "  Platform:   {}", c.platform)?;
    if let Some(t) = &c.created {
        writeln!(out, "  Created:    {t}")?;
    }
    if let Some(a) = &c.author {
        writeln!(out, "  Author:     {a}")?;
    }
    for (k, v) in &c.labels {
        writeln!(out, "  Label:      {k}={v}")?;
    }
    for e in &c.env {
        writeln!(out, "  Env:        {e}")?;
    }
    if let Some(e) = &c.entrypoint {
        writeln!(
            out,
            "  Entrypoint: {}",
            serde_json::to_string(e).unwrap_or_default()
        )?;
    }
    if let Some(cmd) = &c.cmd {
        writeln!(
            out,
            "  Cmd:        {}",
            serde_json::to_string(cmd).unwrap_or_default()
        )?;
    }
    if let Some(w) = &c.working_dir {
        writeln!(out, "  WorkingDir: {w}")?;
    }
    if let Some(u) = &c.user {
        writeln!(out, "  User:       {u}")?;
    }
    if !c.history.is_empty() {
        writeln!(out, "  History:")?;
        for h in &c.history {
            writeln!(
                out,
                "    {}  {}{}",
                h.created.as_deref().unwrap_or("-"),
                h.created_by.as_deref().unwrap_or(""),
                if h.empty_layer { "  (empty layer)" } else { "" }
            )?;
        }
    }
    writeln!(out, "Layers:    {}", r.layers.len())?;
    for (i, l) in r.layers.iter().enumerate() {
        writeln!(
            out,
            "  {i:>2}  {}  {}  {} bytes  {}",
            l.digest,
            l.compression.map(|c| c.as_str()).unwrap_or("?"),
            l.size,
            l.media_type
        )?;
        if let Some(d) = &l.diff_id {
            writeln!(out, "      diff_id {d}")?;
        }
    }
    Ok(())
}
