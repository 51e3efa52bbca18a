//! The image config and manifest bytes `podman build --format oci --timestamp T` (podman
//! 4.3, buildah 1.28) writes for a Dockerfile of `LABEL`, `COPY`, `RUN`, `ENV` and `CMD`
//! steps from `scratch`, learnt from the bytes of the test world's reference image (see
//! the tests) and buildah's sources:
//!
//! - with layers on (podman's default) every step commits an intermediate image; its
//!   image ID is the sha256 of its config, and the next step's history entry says
//!   `"comment":"FROM <the first 12 hex digits of that ID>"` (the first step, `FROM
//!   scratch`, none);
//! - every intermediate's manifest carries `org.opencontainers.image.base.digest` = the
//!   previous intermediate's manifest digest (`""` for the first) and an empty
//!   `org.opencontainers.image.base.name`; the final manifest names the last intermediate;
//! - a config: `created` (T), `architecture`, `os`, `config` {`Env` (podman's `PATH` first,
//!   then the `ENV`s), `Cmd`, `Labels` (sorted by key, `io.buildah.version` included)},
//!   `rootfs` {`type`, `diff_ids` (`[]` before the first layer)}, `history`;
//! - history `created_by`: `/bin/sh -c #(nop) LABEL k="v"`, `/bin/sh -c #(nop) COPY
//!   dir:<hex> in / ` (the copied directory's content digest, see
//!   `repro_tar::gostorage::plan_copier_get`; note the trailing space), `/bin/sh -c CMD`
//!   for `RUN`, `/bin/sh -c #(nop) ENV k=v`, `/bin/sh -c #(nop) CMD ["…"]`; steps that make
//!   no layer have `"empty_layer":true`;
//! - JSON as Go's `encoding/json` writes it: compact, struct field order, `<`, `>`, `&`
//!   escaped as `\u003c`, `\u003e`, `\u0026`.
//!
//! Everything here is pure: bytes in, bytes out.

use sha2::{Digest as _, Sha256};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
/// podman's `PATH` for an image without one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One Dockerfile step after `FROM scratch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Label {
        key: String,
        value: String,
    },
    /// `COPY` of a directory to `/`: its buildah content digest (`dir:<hex>`).
    CopyDir {
        content_digest: String,
    },
    /// `RUN` (shell form): the command.
    Run(String),
    Env {
        key: String,
        value: String,
    },
    /// `CMD` (exec form).
    Cmd(Vec<String>),
}

impl Step {
    fn makes_layer(&self) -> bool {
        matches!(self, Step::CopyDir { .. } | Step::Run(_))
    }

    fn created_by(&self) -> String {
        match self {
            Step::Label { key, value } => {
                format!("/bin/sh -c #(nop) LABEL {key}={}", quoted(value))
            }
            Step::CopyDir { content_digest } => {
                format!("/bin/sh -c #(nop) COPY {content_digest} in / ")
            }
            Step::Run(cmd) => format!("/bin/sh -c {cmd}"),
            Step::Env { key, value } => format!("/bin/sh -c #(nop) ENV {key}={value}"),
            Step::Cmd(args) => {
                let list: Vec<String> = args.iter().map(|a| quoted(a)).collect();
                format!("/bin/sh -c #(nop) CMD [{}]", list.join(","))
            }
        }
    }
}

/// A double-quoted Dockerfile word.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// What the build knows about the image besides its steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSpec {
    /// `created` of the config and every history entry (RFC 3339, `2026-11-03T00:00:00Z`).
    pub created: String,
    /// OCI architecture (`amd64`) and OS (`linux`).
    pub architecture: String,
    pub os: String,
    /// buildah's version (the `io.buildah.version` label).
    pub buildah_version: String,
    pub steps: Vec<Step>,
    /// The layers the `COPY`/`RUN` steps made, in order: (diff_id `sha256:…`, size).
    pub layers: Vec<(String, u64)>,
}

/// A JSON blob and its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub bytes: Vec<u8>,
    /// `sha256:<hex>`
    pub digest: String,
}

impl Blob {
    fn new(bytes: Vec<u8>) -> Blob {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        Blob { bytes, digest }
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// The final config and manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageJson {
    pub config: Blob,
    pub manifest: Blob,
    /// The intermediate images' IDs (config digests), one per step but the last.
    pub intermediate_ids: Vec<String>,
}

/// Why a spec cannot be written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("the steps make {steps} layers but {layers} layers are given")]
    LayerCount { steps: usize, layers: usize },
    #[error("an image needs at least one step")]
    NoSteps,
}

/// Go's `encoding/json` string.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_str_list(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, s);
    }
    out.push(']');
}

/// The image state after some steps.
#[derive(Default)]
struct State {
    env: Vec<String>,
    cmd: Option<Vec<String>>,
    labels: std::collections::BTreeMap<String, String>,
    diff_ids: Vec<String>,
    /// `(created_by, comment, empty_layer)`
    history: Vec<(String, Option<String>, bool)>,
}

fn config_json(spec: &ImageSpec, st: &State) -> Vec<u8> {
    let mut o = String::new();
    o.push_str("{\"created\":");
    json_str(&mut o, &spec.created);
    o.push_str(",\"architecture\":");
    json_str(&mut o, &spec.architecture);
    o.push_str(",\"os\":");
    json_str(&mut o, &spec.os);
    o.push_str(",\"config\":{");
    let mut fields = Vec::new();
    if !st.env.is_empty() {
        let mut f = String::from("\"Env\":");
        json_str_list(&mut f, &st.env);
        fields.push(f);
    }
    if let Some(cmd) = &st.cmd {
        let mut f = String::from("\"Cmd\":");
        json_str_list(&mut f, cmd);
        fields.push(f);
    }
    if !st.labels.is_empty() {
        let mut f = String::from("\"Labels\":{");
        for (i, (k, v)) in st.labels.iter().enumerate() {
            if i > 0 {
                f.push(',');
            }
            json_str(&mut f, k);
            f.push(':');
            json_str(&mut f, v);
        }
        f.push('}');
        fields.push(f);
    }
    o.push_str(&fields.join(","));
    o.push_str("},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":");
    json_str_list(&mut o, &st.diff_ids);
    o.push_str("},\"history\":[");
    for (i, (created_by, comment, empty)) in st.history.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"created\":");
        json_str(&mut o, &spec.created);
        o.push_str(",\"created_by\":");
        json_str(&mut o, created_by);
        if let Some(c) = comment {
            o.push_str(",\"comment\":");
            json_str(&mut o, c);
        }
        if *empty {
            o.push_str(",\"empty_layer\":true");
        }
        o.push('}');
    }
    o.push_str("]}");
    o.into_bytes()
}

fn manifest_json(config: &Blob, layers: &[(String, u64)], base_digest: &str) -> Vec<u8> {
    let mut o = String::new();
    o.push_str("{\"schemaVersion\":2,\"mediaType\":");
    json_str(&mut o, MANIFEST_MEDIA_TYPE);
    o.push_str(",\"config\":{\"mediaType\":");
    json_str(&mut o, CONFIG_MEDIA_TYPE);
    o.push_str(",\"digest\":");
    json_str(&mut o, &config.digest);
    o.push_str(&format!(",\"size\":{}}},\"layers\":[", config.size()));
    for (i, (digest, size)) in layers.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str("{\"mediaType\":");
        json_str(&mut o, LAYER_MEDIA_TYPE);
        o.push_str(",\"digest\":");
        json_str(&mut o, digest);
        o.push_str(&format!(",\"size\":{size}}}"));
    }
    o.push_str("],\"annotations\":{\"org.opencontainers.image.base.digest\":");
    json_str(&mut o, base_digest);
    o.push_str(",\"org.opencontainers.image.base.name\":\"\"}}");
    o.into_bytes()
}

/// The config and manifest of the image `spec` describes, with every intermediate image
/// of the build computed for the history comments and the base digest.
pub fn image_json(spec: &ImageSpec) -> Result<ImageJson, SpecError> {
    let layer_steps = spec.steps.iter().filter(|s| s.makes_layer()).count();
    if layer_steps != spec.layers.len() {
        return Err(SpecError::LayerCount {
            steps: layer_steps,
            layers: spec.layers.len(),
        });
    }
    if spec.steps.is_empty() {
        return Err(SpecError::NoSteps);
    }
    let mut st = State {
        env: vec![format!("PATH={DEFAULT_PATH}")],
        ..State::default()
    };
    st.labels
        .insert("io.buildah.version".into(), spec.buildah_version.clone());
    let mut layers_so_far = 0;
    let mut parent: Option<Blob> = None;
    let mut base_digest = String::new();
    let mut intermediate_ids = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        match step {
            Step::Label { key, value } => {
                st.labels.insert(key.clone(), value.clone());
            }
            Step::Env { key, value } => {
                let prefix = format!("{key}=");
                st.env.retain(|e| !e.starts_with(&prefix));
                st.env.push(format!("{key}={value}"));
            }
            Step::Cmd(args) => st.cmd = Some(args.clone()),
            Step::CopyDir { .. } | Step::Run(_) => {
                st.diff_ids.push(spec.layers[layers_so_far].0.clone());
                layers_so_far += 1;
            }
        }
        // the short image ID, as `podman images` shows it
        let comment = parent.as_ref().map(|p| {
            let hex = p.digest.strip_prefix("sha256:").unwrap_or(&p.digest);
            format!("FROM {}", hex.get(..12).unwrap_or(hex))
        });
        st.history
            .push((step.created_by(), comment, !step.makes_layer()));
        let config = Blob::new(config_json(spec, &st));
        if i + 1 == spec.steps.len() {
            let manifest = Blob::new(manifest_json(&config, &spec.layers, &base_digest));
            return Ok(ImageJson {
                config,
                manifest,
                intermediate_ids,
            });
        }
        let manifest = manifest_json(&config, &spec.layers[..layers_so_far], &base_digest);
        base_digest = Blob::new(manifest).digest;
        intermediate_ids.push(config.digest.clone());
        parent = Some(config);
    }
    Err(SpecError::NoSteps)
}

/// The archlinux-docker `repro` Dockerfile's steps after `FROM scratch AS root`, with the
/// template's values: title word (`Repro`), version, revision, created label.
pub fn archlinux_docker_steps(
    title: &str,
    version: &str,
    revision: &str,
    created_label: &str,
    copy_digest: &str,
) -> Vec<Step> {
    let label = |k: &str, v: &str| Step::Label {
        key: format!("org.opencontainers.image.{k}"),
        value: v.to_string(),
    };
    vec![
        label("title", &format!("Arch Linux {title} Image")),
        label(
            "description",
            "Official containerd image of Arch Linux, a simple, lightweight Linux distribution aimed for flexibility.",
        ),
        label(
            "authors",
            "Santiago Torres-Arias <santiago@archlinux.org> (@SantiagoTorres), Christian Rebischke <Chris.Rebischke@archlinux.org> (@shibumi), Justin Kromlinger <hashworks@archlinux.org> (@hashworks)",
        ),
        label(
            "url",
            "https://gitlab.archlinux.org/archlinux/archlinux-docker/-/blob/master/README.md",
        ),
        label(
            "documentation",
            "https://wiki.archlinux.org/title/Docker#Arch_Linux",
        ),
        label(
            "source",
            "https://gitlab.archlinux.org/archlinux/archlinux-docker",
        ),
        label("licenses", "GPL-3.0-or-later"),
        label("version", version),
        label("revision", revision),
        label("created", created_label),
        Step::CopyDir {
            content_digest: copy_digest.to_string(),
        },
        Step::Run(run_command(version)),
        Step::Env {
            key: "LANG".into(),
            value: "C.UTF-8".into(),
        },
        Step::Cmd(vec!["/usr/bin/bash".into()]),
    ]
}

/// The recipe's `RUN` step.
pub fn run_command(version: &str) -> String {
    format!(
        "ldconfig && sed -i '/BUILD_ID/a VERSION_ID={version}' /etc/os-release && rm -f /var/cache/ldconfig/aux-cache"
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` and the recipe's label form `…+00:00` of a Unix time (UTC).
pub fn rfc3339(t: i64) -> (String, String) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // civil_from_days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    (format!("{base}Z"), format!("{base}+00:00"))
}

/// `oci-layout` as containers/image writes it.
pub const OCI_LAYOUT: &[u8] = b"{\"imageLayoutVersion\": \"1.0.0\"}";

/// `index.json` of an `oci:` layout holding one manifest under `tag`.
pub fn oci_index(manifest: &Blob, tag: &str) -> Vec<u8> {
    let mut o = String::from("{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":");
    json_str(&mut o, MANIFEST_MEDIA_TYPE);
    o.push_str(",\"digest\":");
    json_str(&mut o, &manifest.digest);
    o.push_str(&format!(
        ",\"size\":{},\"annotations\":{{\"org.opencontainers.image.ref.name\":",
        manifest.size()
    ));
    json_str(&mut o, tag);
    o.push_str("}}]}");
    o.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_json_escapes() {
        let mut s = String::new();
        json_str(&mut s, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(s, "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\\u2028é\"");
    }

    #[test]
    fn dates() {
        assert_eq!(
            rfc3339(1_793_664_000),
            (
                "2026-11-03T00:00:00Z".to_string(),
                "2026-11-03T00:00:00+00:00".to_string()
            )
        );
        assert_eq!(rfc3339(0).0, "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400 + 3661).0, "2000-02-29T01:01:01Z");
    }

    #[test]
    fn layer_count_is_checked() {
        let spec = ImageSpec {
            created: "x".into(),
            architecture: "amd64".into(),
            os: "linux".into(),
            buildah_version: "1".into(),
            steps: vec![Step::Run("true".into())],
            layers: vec![],
        };
        assert_eq!(
            image_json(&spec),
            Err(SpecError::LayerCount {
                steps: 1,
                layers: 0
            })
        );
    }
}
