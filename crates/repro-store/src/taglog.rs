//! The append-only record of tag resolutions: which digest a tag pointed to, and when.
//! One JSON object per line, appended with a single `write` under `O_APPEND` and fsynced,
//! so concurrent writers interleave whole lines and a crash loses at most the last one.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// RFC 3339 UTC time of the resolution (this log is the one place a clock belongs).
    pub time: String,
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
}

pub struct TagLog {
    path: PathBuf,
}

impl TagLog {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TagLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append a record stamped with the current time.
    pub fn record(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
        digest: &str,
        media_type: &str,
    ) -> Result<TagRecord, StoreError> {
        let rec = TagRecord {
            time: httpdate_to_rfc3339(SystemTime::now()),
            registry: registry.into(),
            repository: repository.into(),
            tag: tag.into(),
            digest: digest.into(),
            media_type: media_type.into(),
        };
        self.append(&rec)?;
        Ok(rec)
    }

    pub fn append(&self, rec: &TagRecord) -> Result<(), StoreError> {
        let err = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(rec).map_err(|e| err(io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(err)?;
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }

    /// All records, oldest first. A torn last line (crash mid-append) is skipped; any other
    /// malformed line is an error naming the line.
    pub fn read(&self) -> Result<Vec<TagRecord>, StoreError> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let lines: Vec<String> = BufReader::new(f)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Io {
                path: self.path.clone(),
                source,
            })?;
        let mut out = Vec::new();
        let n = lines.len();
        for (i, l) in lines.iter().enumerate() {
            match serde_json::from_str(l) {
                Ok(r) => out.push(r),
                Err(_) if i + 1 == n => {}
                Err(e) => {
                    return Err(StoreError::Verify(format!(
                        "{}:{}: malformed tag record: {e}",
                        self.path.display(),
                        i + 1
                    )));
                }
            }
        }
        Ok(out)
    }
}

/// RFC 3339 from the system clock, via httpdate's civil-time conversion.
fn httpdate_to_rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339_utc(secs)
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339_utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(1_764_028_800), "2025-11-25T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn appends_and_survives_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let log = TagLog::new(dir.path().join("tags.jsonl"));
        log.record("r", "a/b", "latest", "sha256:00", "mt").unwrap();
        log.record("r", "a/b", "latest", "sha256:11", "mt").unwrap();
        let mut f = OpenOptions::new().append(true).open(log.path()).unwrap();
        f.write_all(b"{\"time\":\"20").unwrap();
        let recs = log.read().unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].digest, "sha256:11");
    }
}
