//! Detached OpenPGP signatures, checked with Sequoia's `sqv` (Debian package `sqv`): a
//! verifier with no state and no trust database, that takes armored or binary keyrings and
//! a `--not-after` time. The time is the end of the snapshot day, so a package signed after
//! the snapshot cannot pass as part of it, and an old signature is judged as of its day.

use std::io::Write;
use std::path::Path;
use std::process::Command;

use crate::types::{Signature, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    #[error("cannot run sqv (install Debian's sqv package): {0}")]
    Tool(std::io::Error),
    #[error("{what}: bad signature: {message}")]
    Bad { what: String, message: String },
    #[error("{what}: {message}")]
    Io { what: String, message: String },
}

/// Verify `sig` over `file` with the keys in `keyring`, as of the end of `day`. Returns the
/// fingerprint(s) of the key(s) that made a valid signature (what sqv prints). `what` names
/// the package in messages.
pub fn verify(
    keyring: &Path,
    sig: &Signature,
    file: &Path,
    day: &Snapshot,
    what: &str,
) -> Result<String, PgpError> {
    let io = |e: std::io::Error| PgpError::Io {
        what: what.to_string(),
        message: e.to_string(),
    };
    let mut tmp = tempfile::NamedTempFile::new().map_err(io)?;
    tmp.write_all(sig.bytes()).map_err(io)?;
    tmp.flush().map_err(io)?;
    let out = Command::new("sqv")
        .arg("--keyring")
        .arg(keyring)
        .arg("--not-after")
        .arg(day.iso())
        .arg("--")
        .arg(tmp.path())
        .arg(file)
        .env("LC_ALL", "C")
        .output()
        .map_err(PgpError::Tool)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let message = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "Verifying signature:")
            .collect::<Vec<_>>()
            .join("; ");
        Err(PgpError::Bad {
            what: what.to_string(),
            message: if message.is_empty() {
                format!("sqv exited with {}", out.status)
            } else {
                message
            },
        })
    }
}
