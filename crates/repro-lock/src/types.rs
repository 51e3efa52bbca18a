//! Validated scalar types of the lock: each parses from exactly the text it prints, so the
//! lock's text round-trips, and none lets an unchecked string reach a path or a URL.

use std::fmt;
use std::str::FromStr;

use base64::Engine;

/// A lowercase hex sha256 (64 characters), as pacman's `%SHA256SUM%` spells it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The same hash as an OCI digest (`sha256:…`), for the content store.
    pub fn digest(&self) -> repro_oci::Digest {
        // 64 lowercase hex digits always form a valid sha256 digest.
        format!("sha256:{}", self.0)
            .parse()
            .expect("validated sha256 hex is a digest")
    }
    /// From a sha256 digest (`sha256:…`); `None` for other algorithms.
    pub fn from_digest(d: &repro_oci::Digest) -> Option<Sha256Hex> {
        match d.algorithm() {
            repro_oci::digest::DigestAlgorithm::Sha256 => d.digest().parse().ok(),
            _ => None,
        }
    }
}

impl FromStr for Sha256Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Sha256Hex(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a sha256 (64 lowercase hexadecimal digits)"
            ))
        }
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An Arch Linux Archive snapshot day, `YYYY/MM/DD` as in `/repos/YYYY/MM/DD/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Snapshot {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

const DAY: i64 = 86_400;

impl Snapshot {
    /// The UTC day that contains `epoch`.
    pub fn of_epoch(epoch: i64) -> Snapshot {
        let (y, m, d) = civil_from_days(epoch.div_euclid(DAY));
        Snapshot {
            year: y as u16,
            month: m as u8,
            day: d as u8,
        }
    }
    /// The recipe's rule: the day before the one holding SOURCE_DATE_EPOCH.
    pub fn day_before(epoch: i64) -> Snapshot {
        Snapshot::of_epoch(epoch - DAY)
    }
    /// Midnight UTC starting this day.
    pub fn epoch(&self) -> i64 {
        days_from_civil(self.year.into(), self.month.into(), self.day.into()) * DAY
    }
    /// ISO 8601 `YYYY-MM-DD` (what sqv's `--not-after` takes).
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Snapshot {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a snapshot day YYYY/MM/DD");
        let b = s.as_bytes();
        if b.len() != 10
            || b[4] != b'/'
            || b[7] != b'/'
            || !b
                .iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        {
            return Err(bad());
        }
        let n = |r: std::ops::Range<usize>| s[r].parse::<u16>().map_err(|_| bad());
        let (year, month, day) = (n(0..4)?, n(5..7)?, n(8..10)?);
        if year < 1970 || !(1..=12).contains(&month) || day < 1 {
            return Err(bad());
        }
        let snap = Snapshot {
            year,
            month: month as u8,
            day: day as u8,
        };
        // A day that does not exist (2026/02/30) comes back as another date.
        if Snapshot::of_epoch(snap.epoch()) != snap {
            return Err(format!("{s:?}: no such day"));
        }
        Ok(snap)
    }
}

impl TryFrom<String> for Snapshot {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC (`2026-11-03T00:00:00Z`) of an epoch, for messages.
pub fn rfc3339(epoch: i64) -> String {
    let s = Snapshot::of_epoch(epoch);
    let t = epoch.rem_euclid(DAY);
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        s.iso(),
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

/// Parse an RFC 3339 / ISO 8601 timestamp as OCI configs and labels write it
/// (`2026-11-03T00:00:00Z`, `2026-11-03T00:00:00+00:00`, fractional seconds allowed) into
/// seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let ob = rest.as_bytes();
            if ob.len() != 6 || !matches!(ob[0], b'+' | b'-') || ob[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            let sign = if ob[0] == b'-' { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days_from_civil(y, mo, d) * DAY + h * 3600 + mi * 60 + se - offset)
}

/// A detached OpenPGP signature, written as standard base64 (as `%PGPSIG%` in a sync db).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Signature(Vec<u8>);

/// Largest signature accepted (real ones are a few hundred bytes).
const MAX_SIGNATURE: usize = 16 * 1024;

impl Signature {
    pub fn new(bytes: Vec<u8>) -> Result<Signature, String> {
        if bytes.is_empty() || bytes.len() > MAX_SIGNATURE {
            return Err(format!(
                "a signature of {} bytes (expected 1 to {MAX_SIGNATURE})",
                bytes.len()
            ));
        }
        Ok(Signature(bytes))
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({} bytes)", self.0.len())
    }
}

impl FromStr for Signature {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // The strict standard engine rejects non-canonical padding and trailing bits, so
        // decoding then encoding gives back the very same text.
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("signature is not standard base64: {e}"))?;
        Signature::new(bytes)
    }
}

impl TryFrom<String> for Signature {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

/// A package name as alpm defines it (`alpm_types::Name`).
pub fn check_name(s: &str) -> Result<(), String> {
    alpm_types::Name::from_str(s)
        .map(|_| ())
        .map_err(|e| format!("{s:?} is not a package name: {}", e.to_string().trim_end()))
}

/// A full package version `[epoch:]pkgver-pkgrel` (`alpm_types::FullVersion`).
pub fn check_version(s: &str) -> Result<(), String> {
    alpm_types::FullVersion::from_str(s)
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{s:?} is not a package version: {}",
                e.to_string().trim_end()
            )
        })
}

/// A package file name: one path component that names the package, usable as a file name
/// in a local repository (never a path).
pub fn check_filename(s: &str, name: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
        && s.starts_with(&format!("{name}-"))
        && s.contains(".pkg.tar");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a package file name for {name:?} (NAME-VERSION-ARCH.pkg.tar.*, one path component)"
        ))
    }
}

/// An http(s) URL without whitespace or control characters.
pub fn check_url(s: &str) -> Result<(), String> {
    let rest = s
        .strip_prefix("http://")
        .or_else(|| s.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) => Ok(()),
        _ => Err(format!("{s:?} is not an http:// or https:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_and_dates() {
        let s: Snapshot = "2026/11/02".parse().unwrap();
        assert_eq!(s.to_string(), "2026/11/02");
        assert_eq!(s.iso(), "2026-11-02");
        assert_eq!(s.epoch(), 1_793_577_600);
        assert_eq!(Snapshot::day_before(1_793_664_000), s);
        assert_eq!(Snapshot::of_epoch(1_793_664_000 - 1), s);
        for bad in [
            "2026/02/30",
            "2026-11-02",
            "2026/13/01",
            "2026/1/02",
            "+026/11/02",
        ] {
            assert!(bad.parse::<Snapshot>().is_err(), "{bad}");
        }
        assert_eq!(parse_rfc3339("2026-11-03T00:00:00Z"), Some(1_793_664_000));
        assert_eq!(
            parse_rfc3339("2026-11-03T00:00:00+00:00"),
            Some(1_793_664_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-03T01:30:00.123456789+01:30"),
            Some(1_793_664_000)
        );
        assert_eq!(parse_rfc3339("2026-11-03"), None);
        assert_eq!(rfc3339(1_793_664_000 + 3661), "2026-11-03T01:01:01Z");
        // Every day for 200 years survives days → date → days.
        for day in (0..73_000).step_by(7) {
            let s = Snapshot::of_epoch(day * DAY);
            assert_eq!(s.epoch(), day * DAY);
            assert_eq!(s.to_string().parse::<Snapshot>().unwrap(), s);
        }
    }

    #[test]
    fn sha256_and_signature() {
        assert!("A".repeat(64).parse::<Sha256Hex>().is_err());
        assert!("a".repeat(63).parse::<Sha256Hex>().is_err());
        let h: Sha256Hex = "ab".repeat(32).parse().unwrap();
        assert_eq!(Sha256Hex::from_digest(&h.digest()), Some(h));
        let sig: Signature = "iHUEABYIAB0=".parse().unwrap();
        assert_eq!(sig.to_string(), "iHUEABYIAB0=");
        // Non-canonical trailing bits would not print back the same text: refused.
        assert!("iHUEABYIAB1=".parse::<Signature>().is_err());
        assert!("".parse::<Signature>().is_err());
    }

    #[test]
    fn names_and_files() {
        assert!(check_name("bash").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_version("5.2.15-2").is_ok());
        assert!(check_version("1:2.0-1").is_ok());
        assert!(check_version("5.2.15").is_err());
        assert!(check_filename("bash-5.2.15-2-x86_64.pkg.tar.zst", "bash").is_ok());
        assert!(check_filename("../bash-5.2.15-2-x86_64.pkg.tar.zst", "bash").is_err());
        assert!(check_filename("bash-5/../../x.pkg.tar.zst", "bash").is_err());
        assert!(check_filename("glibc-2.36-1-x86_64.pkg.tar.zst", "bash").is_err());
        assert!(check_url("http://127.0.0.1:1/x").is_ok());
        assert!(check_url("file:///etc/passwd").is_err());
        assert!(check_url("http://a b").is_err());
    }
}
