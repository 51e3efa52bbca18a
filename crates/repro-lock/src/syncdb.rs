//! A snapshot's sync db (`<repo>.db`): the entries as repro-inventory reads them, and the
//! `%PGPSIG%` of each as a [`Signature`].

use std::collections::BTreeMap;

use repro_inventory::{SyncDb, parse_sync_db};

use crate::types::Signature;

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
    let mut signatures = BTreeMap::new();
    for p in &db.packages {
        if let Some(sig) = &p.pgp_signature {
            let sig: Signature = sig
                .parse()
                .map_err(|m| err(format!("{} {}: %PGPSIG%: {m}", p.name, p.version)))?;
            signatures.insert(p.filename.clone(), sig);
        }
    }
    Ok(RepoDb { db, signatures })
}
