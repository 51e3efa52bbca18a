//! fnmatch(3) as gnulib's exclude module calls it for GNU tar's `--exclude`: no
//! `FNM_PATHNAME` (wildcards match `/`), no `FNM_PERIOD`, backslash escapes, and
//! `FNM_LEADING_DIR` (the pattern may match a leading directory of the name).

/// Does `pattern` match `name` (or, with `leading_dir`, a prefix of it ending before a `/`)?
pub(crate) fn fnmatch(pattern: &[u8], name: &[u8], leading_dir: bool) -> bool {
    match_at(pattern, name, leading_dir)
}

fn match_at(mut p: &[u8], mut s: &[u8], leading_dir: bool) -> bool {
    loop {
        let Some((&c, rest)) = p.split_first() else {
            return s.is_empty() || (leading_dir && s[0] == b'/');
        };
        match c {
            b'*' => {
                // Consecutive stars are one star.
                let mut rest = rest;
                while let Some((&b'*', r)) = rest.split_first() {
                    rest = r;
                }
                if rest.is_empty() {
                    return true;
                }
                return (0..=s.len()).any(|i| match_at(rest, &s[i..], leading_dir));
            }
            b'?' => {
                if s.is_empty() {
                    return false;
                }
                p = rest;
                s = &s[1..];
            }
            b'[' => {
                let Some(&sc) = s.first() else { return false };
                match bracket(rest, sc) {
                    Some((matched, after)) => {
                        if !matched {
                            return false;
                        }
                        p = after;
                        s = &s[1..];
                    }
                    // An unterminated bracket is an ordinary `[`.
                    None => {
                        if sc != b'[' {
                            return false;
                        }
                        p = rest;
                        s = &s[1..];
                    }
                }
            }
            b'\\' if !rest.is_empty() => {
                if s.first() != Some(&rest[0]) {
                    return false;
                }
                p = &rest[1..];
                s = &s[1..];
            }
            _ => {
                if s.first() != Some(&c) {
                    return false;
                }
                p = rest;
                s = &s[1..];
            }
        }
    }
}

/// Match one byte against the bracket expression starting after `[`. Returns whether it
/// matched and the pattern after the closing `]`, or `None` when there is no closing `]`.
fn bracket(p: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let mut i = 0;
    let negate = matches!(p.first(), Some(b'!') | Some(b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &b = p.get(i)?;
        if b == b']' && !first {
            return Some((matched != negate, &p[i + 1..]));
        }
        first = false;
        if b == b'[' && p.get(i + 1) == Some(&b':') {
            let end = p[i + 2..].windows(2).position(|w| w == b":]")?;
            let class = &p[i + 2..i + 2 + end];
            matched |= in_class(class, c);
            i += 2 + end + 2;
            continue;
        }
        let mut lo = b;
        if b == b'\\' {
            lo = *p.get(i + 1)?;
            i += 1;
        }
        i += 1;
        if p.get(i) == Some(&b'-') && p.get(i + 1).is_some_and(|&n| n != b']') {
            let mut hi = p[i + 1];
            i += 2;
            if hi == b'\\' {
                hi = *p.get(i)?;
                i += 1;
            }
            matched |= lo <= c && c <= hi;
        } else {
            matched |= lo == c;
        }
    }
}

fn in_class(class: &[u8], c: u8) -> bool {
    match class {
        b"alpha" => c.is_ascii_alphabetic(),
        b"digit" => c.is_ascii_digit(),
        b"alnum" => c.is_ascii_alphanumeric(),
        b"upper" => c.is_ascii_uppercase(),
        b"lower" => c.is_ascii_lowercase(),
        b"space" => c.is_ascii_whitespace() || c == 0x0b,
        b"blank" => c == b' ' || c == b'\t',
        b"punct" => c.is_ascii_punctuation(),
        b"print" => (0x20..0x7f).contains(&c),
        b"graph" => (0x21..0x7f).contains(&c),
        b"cntrl" => c.is_ascii_control(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn wildcards_match_slash_and_leading_dirs() {
        assert!(fnmatch(b"./tmp/*", b"./tmp/a/b", true));
        assert!(!fnmatch(b"./tmp/*", b"./tmp", true));
        assert!(fnmatch(b"./sys", b"./sys", true));
        assert!(fnmatch(b"./sys", b"./sys/kernel", true));
        assert!(!fnmatch(b"./sys", b"./sys/kernel", false));
        assert!(!fnmatch(b"./sys", b"./system", true));
        assert!(fnmatch(
            b"./etc/pacman.d/gnupg/S.*",
            b"./etc/pacman.d/gnupg/S.gpg-agent",
            true
        ));
        assert!(fnmatch(b"a?c", b"abc", false));
        assert!(fnmatch(b"a[b-d]c", b"acc", false));
        assert!(!fnmatch(b"a[!b-d]c", b"acc", false));
        assert!(fnmatch(b"a[[:digit:]]", b"a7", false));
        assert!(fnmatch(b"a\\*", b"a*", false));
        assert!(!fnmatch(b"a\\*", b"ab", false));
        assert!(fnmatch(b"pubring.gpg~", b"pubring.gpg~", false));
        assert!(fnmatch(b"**x", b"abx", false));
        assert!(fnmatch(b"[]]", b"]", false));
        assert!(fnmatch(b"a[", b"a[", false));
    }
}
