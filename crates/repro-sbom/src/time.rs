//! Timestamps: RFC 3339 in, `YYYY-MM-DDThh:mm:ssZ` (what SPDX and CycloneDX both accept) out.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parse RFC 3339 (`2026-11-03T00:00:00Z`, `…T00:00:00.123+01:00`; a space for `T` and a
/// lowercase `z` are accepted) to seconds since the epoch; fractions are dropped.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 20 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let sep = rest.as_bytes()[0];
    if !matches!(sep, b'T' | b't' | b' ') {
        return None;
    }
    let (time, mut zone) = rest[1..].split_at(8);
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 || d[0].len() != 4 || d[1].len() != 2 || d[2].len() != 2 {
        return None;
    }
    let (y, mo, da) = (num(d[0])?, num(d[1])?, num(d[2])?);
    let (h, mi, se) = (num(t[0])?, num(t[1])?, num(t[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    if let Some(frac) = zone.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        zone = &frac[n..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) && &z[3..4] == ":" => {
            let secs = num(&z[1..3])? * 3600 + num(&z[4..6])? * 60;
            if z.starts_with('-') { -secs } else { secs }
        }
        _ => return None,
    };
    Some(days_from_civil(y, mo as u32, da as u32) * 86_400 + h * 3600 + mi * 60 + se - offset)
}

/// `--created` and `SOURCE_DATE_EPOCH` spellings: seconds (`1793664000`, `@1793664000`) or
/// RFC 3339.
pub fn parse_time(s: &str) -> Option<i64> {
    let t = s.trim();
    let secs = t.strip_prefix('@').unwrap_or(t);
    if let Some(n) = num(secs) {
        return Some(n);
    }
    parse_rfc3339(t)
}

/// Seconds → `YYYY-MM-DDThh:mm:ssZ`.
pub fn format(secs: i64) -> String {
    repro_inventory::rfc3339(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        for t in [0, 1_551_404_516, 1_793_664_000, 951_782_400] {
            assert_eq!(parse_rfc3339(&format(t)), Some(t));
        }
        assert_eq!(parse_rfc3339("2026-11-03T00:00:00Z"), Some(1_793_664_000));
        assert_eq!(
            parse_rfc3339("2026-11-03T01:00:00.999999+01:00"),
            Some(1_793_664_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-02T23:00:00-01:00"),
            Some(1_793_664_000)
        );
        assert_eq!(parse_rfc3339("2026-11-03 00:00:00z"), Some(1_793_664_000));
        for bad in [
            "",
            "2026-11-03",
            "2026-13-03T00:00:00Z",
            "2026-11-03T00:00:00",
            "x026-11-03T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_time("@1793664000"), Some(1_793_664_000));
        assert_eq!(parse_time("1793664000"), Some(1_793_664_000));
        assert_eq!(parse_time("2026-11-03T00:00:00Z"), Some(1_793_664_000));
        assert_eq!(parse_time("yesterday"), None);
    }
}
