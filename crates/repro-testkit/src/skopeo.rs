//! Running `/usr/bin/skopeo` (Debian package `skopeo`, 1.9) against test registries.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::image::{ANNOTATION_REF_NAME, MEDIA_TYPE_OCI_INDEX};
use crate::registry::Registry;

/// Path of skopeo.
pub const SKOPEO_BIN: &str = "/usr/bin/skopeo";

/// Upper bound on one skopeo run (its own `--command-timeout`).
pub const SKOPEO_TIMEOUT: &str = "300s";

/// Runs `skopeo --insecure-policy --command-timeout 300s ARGS...` and returns its output
/// without judging the exit status.
pub fn try_skopeo(args: &[&str]) -> Output {
    assert!(
        Path::new(SKOPEO_BIN).exists(),
        "repro-testkit: {SKOPEO_BIN} not found; install the Debian package `skopeo` (see .ci/run)"
    );
    Command::new(SKOPEO_BIN)
        .arg("--insecure-policy")
        .args(["--command-timeout", SKOPEO_TIMEOUT])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("repro-testkit: cannot run {SKOPEO_BIN}: {e}"))
}

/// Like [`try_skopeo`] but panics with skopeo's stderr unless it succeeded.
pub fn skopeo(args: &[&str]) -> Output {
    let out = try_skopeo(args);
    assert!(
        out.status.success(),
        "repro-testkit: `skopeo {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout),
    );
    out
}

/// The skopeo source for a layout and a destination tag: `oci:<layout>` when index.json has
/// one entry, otherwise `oci:<layout>:<tag>` for the entry whose ref name is `tag`; plus
/// whether that entry is an index (so `--all` is needed).
fn layout_source(layout: &Path, name_ref: &str) -> (String, bool) {
    let index_path = layout.join("index.json");
    let bytes = fs::read(&index_path)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot read {}: {e}", index_path.display()));
    let index: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("repro-testkit: {} is not JSON: {e}", index_path.display()));
    let entries = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let ref_of = |e: &serde_json::Value| {
        e.get("annotations")
            .and_then(|a| a.get(ANNOTATION_REF_NAME))
            .and_then(|r| r.as_str())
            .map(str::to_string)
    };
    let is_index = |e: &serde_json::Value| {
        e.get("mediaType").and_then(|m| m.as_str()) == Some(MEDIA_TYPE_OCI_INDEX)
    };
    if entries.len() == 1 {
        return (format!("oci:{}", layout.display()), is_index(&entries[0]));
    }
    let tag = name_ref
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t)
        .unwrap_or("latest");
    let entry = entries
        .iter()
        .find(|e| ref_of(e).as_deref() == Some(tag))
        .unwrap_or_else(|| {
            panic!(
                "repro-testkit: {} has {} entries and none is named {tag:?}",
                index_path.display(),
                entries.len()
            )
        });
    (format!("oci:{}:{tag}", layout.display()), is_index(entry))
}

/// Pushes the image of OCI layout `layout` to `docker://<dest_host>/<name_ref>` over plain
/// HTTP with `--preserve-digests` (so the registry gets our exact bytes) and `--all` when the
/// layout's entry is an index. `creds` is "user:pass".
pub fn skopeo_copy_layout_to(
    layout: &Path,
    dest_host: &str,
    name_ref: &str,
    creds: Option<&str>,
) -> Output {
    let (src, all) = layout_source(layout, name_ref);
    let dest = format!("docker://{dest_host}/{name_ref}");
    let mut args = vec![
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
    ];
    if all {
        args.push("--all");
    }
    if let Some(c) = creds {
        args.push("--dest-creds");
        args.push(c);
    }
    args.push(&src);
    args.push(&dest);
    skopeo(&args)
}

/// [`skopeo_copy_layout_to`] a [`Registry`], with its credentials if it has some.
pub fn skopeo_copy_to_registry(layout: &Path, registry: &Registry, name_ref: &str) -> Output {
    let creds = registry.creds_arg();
    skopeo_copy_layout_to(layout, &registry.host(), name_ref, creds.as_deref())
}

/// `skopeo inspect --raw --tls-verify=false docker://<host>/<name_ref>`: the manifest bytes as
/// served.
pub fn skopeo_inspect_raw(host: &str, name_ref: &str, creds: Option<&str>) -> Vec<u8> {
    let image = format!("docker://{host}/{name_ref}");
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.push("--creds");
        args.push(c);
    }
    args.push(&image);
    skopeo(&args).stdout
}
