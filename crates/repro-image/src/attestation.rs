//! `repro-image attestation verify`: offline check of a rebuilderd in-toto link.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use repro_rebuilderd::attestation::{KeyCheck, Link, ProductCheck, PublicKey};
use serde_json::json;

use crate::Global;

#[derive(Args)]
pub struct AttestationArgs {
    #[command(subcommand)]
    command: AttestationCommand,
}

#[derive(Subcommand)]
enum AttestationCommand {
    /// Verify a rebuilderd in-toto link: every signature matching a --key verifies (at least
    /// one must exist), and with --artifact the product named after FILE has its sha256/sha512.
    /// Exit 0 valid, 1 invalid, 2 error.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The in-toto link file (JSON).
    link: PathBuf,
    /// Ed25519 public key PEM (SPKI; rebuilderd's NULL-parameter form accepted). Repeatable.
    #[arg(long = "key", value_name = "PEM", required = true, num_args = 1..)]
    keys: Vec<PathBuf>,
    /// The package file the link's product must describe.
    #[arg(long, value_name = "FILE")]
    artifact: Option<PathBuf>,
}

pub fn run(g: &Global, a: &AttestationArgs) -> Result<ExitCode> {
    match &a.command {
        AttestationCommand::Verify(v) => verify(g, v),
    }
}

fn verify(g: &Global, a: &VerifyArgs) -> Result<ExitCode> {
    // Read everything first so that unreadable or malformed input is an error (2), not a verdict.
    let link = Link::from_file(&a.link)?;
    let keys = a
        .keys
        .iter()
        .map(|p| PublicKey::from_pem_file(p).map(|k| (p, k)))
        .collect::<Result<Vec<_>, _>>()?;
    let product = match &a.artifact {
        Some(f) => Some(link.check_artifact(f)?),
        None => None,
    };

    let mut reasons = Vec::new();
    let mut key_json = Vec::new();
    let mut valid_keys = 0;
    for (path, key) in &keys {
        let check = link.check_key(key);
        let (result, line) = match check {
            KeyCheck::Valid { count } => {
                valid_keys += 1;
                ("valid", format!("signature valid ({count})"))
            }
            KeyCheck::NotSigned => ("not-signed", "did not sign the link".to_string()),
            KeyCheck::Invalid => {
                reasons.push(format!(
                    "{}: keyid {}: signature does not verify",
                    path.display(),
                    key.keyid()
                ));
                ("invalid", "signature INVALID".to_string())
            }
        };
        if !g.json {
            println!("{}: keyid {}: {line}", path.display(), key.keyid());
        }
        key_json.push(json!({
            "path": path.display().to_string(),
            "keyid": key.keyid(),
            "result": result,
        }));
    }
    if valid_keys == 0 && reasons.is_empty() {
        let ids: Vec<&str> = link.signatures.iter().map(|s| s.keyid.as_str()).collect();
        reasons.push(format!(
            "no signature by any given key (link signed by keyid {})",
            if ids.is_empty() {
                "none".to_string()
            } else {
                ids.join(", ")
            }
        ));
    }
    let product_json = product.as_ref().map(|p| {
        if !g.json {
            println!("{p}");
        }
        if !p.ok() {
            reasons.push(p.to_string());
        }
        match p {
            ProductCheck::Match { name, algorithms } => {
                json!({"name": name, "result": "match", "algorithms": algorithms})
            }
            ProductCheck::Missing { name, products } => {
                json!({"name": name, "result": "missing", "products": products})
            }
            ProductCheck::NoDigest { name } => json!({"name": name, "result": "no-digest"}),
            ProductCheck::Mismatch {
                name,
                algorithm,
                link,
                file,
            } => json!({"name": name, "result": "mismatch", "algorithm": algorithm,
                        "link": link, "file": file}),
        }
    });
    let valid = reasons.is_empty();
    if g.json {
        let out = json!({
            "schema": "repro-image/attestation-verify/v1",
            "link": a.link.display().to_string(),
            "name": link.name,
            "valid": valid,
            "reasons": reasons,
            "keys": key_json,
            "product": product_json,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if valid {
        println!("VALID: {}", link.name);
    } else {
        for r in &reasons {
            println!("INVALID: {r}");
        }
    }
    Ok(ExitCode::from(if valid { 0 } else { 1 }))
}
