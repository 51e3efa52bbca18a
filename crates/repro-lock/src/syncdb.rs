//! A snapshot's sync db (`<repo>.db`): the entries as repro-inventory reads them, plus the
//! `%PGPSIG%` of each (repro-inventory only records whether one is there).

use std::collections::BTreeMap;
use std::io::Read;

use repro_inventory::{SyncDb, parse_sync_db};

use crate::types::Signature;

/// Largest `desc` member read.
const MAX_DESC: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct SyncDbError {
    pub file: String,
    pub message: String,
}

/// A parsed sync db and the signatures of its entries, keyed by `%FILENAME%`.
#[derive(Debug, Clone)]
pub struct RepoDb {
    pub db: SyncDb,
    pub signatures: BTreeMap<String, Signature>,
}

/// Parse a sync db's bytes; `file` names it in errors. Any unreadable entry is an error:
/// a lock must not be made from half a database.
pub fn read(file: &str, repo: &str, bytes: &[u8]) -> Result<RepoDb, SyncDbError> {
    let err = |message: String| SyncDbError {
        file: file.to_string(),
        message,
    };
    let (db, errors) = parse_sync_db(file, repo, bytes);
    if let Some(e) = errors.first() {
        return Err(err(format!("{} ({} unreadable entries)", e, errors.len())));
    }
    let db = db.ok_or_else(|| err("not a sync database".into()))?;
    let (_, stream) = repro_compress::decoder(bytes).map_err(|e| err(e.to_string()))?;
    let mut signatures = BTreeMap::new();
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(|e| err(format!("tar: {e}")))? {
        let mut entry = entry.map_err(|e| err(format!("tar: {e}")))?;
        let member = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if !entry.header().entry_type().is_file() || !member.ends_with("/desc") {
            continue;
        }
        let mut text = Vec::new();
        (&mut entry)
            .take(MAX_DESC)
            .read_to_end(&mut text)
            .map_err(|e| err(format!("{member}: {e}")))?;
        let text = String::from_utf8_lossy(&text);
        let (Some(filename), Some(sig)) =
            (section(&text, "%FILENAME%"), section(&text, "%PGPSIG%"))
        else {
            continue;
        };
        let sig: Signature = sig
            .parse()
            .map_err(|m| err(format!("{member}: %PGPSIG%: {m}")))?;
        signatures.insert(filename.to_string(), sig);
    }
    Ok(RepoDb { db, signatures })
}

fn section<'a>(text: &'a str, header: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    lines.find(|l| *l == header)?;
    lines.next().filter(|l| !l.is_empty())
}
