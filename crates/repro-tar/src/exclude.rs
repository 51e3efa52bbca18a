//! GNU tar's `--exclude-from` as tar 1.34 applies it by default: one pattern a line
//! (trailing white space dropped, empty lines skipped), wildcards that match `/`,
//! unanchored (a pattern may match at the start or after any `/` of the member name) and
//! matching leading directories, against the member name as archived (`./etc/hostname`).

use std::path::Path;

use crate::Error;
use crate::fnmatch::fnmatch;

/// A list of exclude patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exclude {
    patterns: Vec<Vec<u8>>,
}

impl Exclude {
    /// No exclusions.
    pub fn none() -> Self {
        Exclude::default()
    }

    /// The patterns of an exclude file's text, as `--exclude-from` reads it.
    pub fn parse(text: &[u8]) -> Self {
        let patterns = text
            .split(|&b| b == b'\n')
            .map(|line| {
                let end = line
                    .iter()
                    .rposition(|b| !b.is_ascii_whitespace())
                    .map_or(0, |i| i + 1);
                line[..end].to_vec()
            })
            .filter(|p| !p.is_empty())
            .collect();
        Exclude { patterns }
    }

    /// Read an exclude file (the recipe's `exclude`).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|source| Error::Exclude {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.patterns.iter().map(Vec::as_slice)
    }

    /// Is the member `name` (as archived, e.g. `./var/tmp/x`, no trailing slash) excluded?
    pub fn is_excluded(&self, name: &[u8]) -> bool {
        self.patterns.iter().any(|p| unanchored(p, name))
    }
}

fn unanchored(pattern: &[u8], name: &[u8]) -> bool {
    if fnmatch(pattern, name, true) {
        return true;
    }
    // gnulib exclude_fnmatch: retry after every `/` that is not followed by another `/`.
    (0..name.len()).any(|i| {
        name[i] == b'/' && name.get(i + 1) != Some(&b'/') && fnmatch(pattern, &name[i + 1..], true)
    })
}

#[cfg(test)]
mod tests {
    use super::Exclude;

    #[test]
    fn recipe_patterns() {
        let ex = Exclude::parse(b"./sys\n./root/*  \n\n./etc/pacman.d/gnupg/S.*\n./alpm-hooks\n");
        assert_eq!(ex.patterns().count(), 4);
        assert!(ex.is_excluded(b"./sys"));
        assert!(!ex.is_excluded(b"./root"));
        assert!(ex.is_excluded(b"./root/.bashrc"));
        assert!(ex.is_excluded(b"./root/a/b"));
        assert!(ex.is_excluded(b"./etc/pacman.d/gnupg/S.gpg-agent.ssh"));
        assert!(!ex.is_excluded(b"./etc/pacman.d/gnupg"));
        assert!(!ex.is_excluded(b"./usr/sys"));
        assert!(ex.is_excluded(b"./alpm-hooks/usr/share"));
    }

    #[test]
    fn unanchored_matches_after_a_slash() {
        let ex = Exclude::parse(b"*.o\nbuild\n");
        assert!(ex.is_excluded(b"./src/a.o"));
        assert!(ex.is_excluded(b"./x/build"));
        assert!(ex.is_excluded(b"./x/build/y"));
        assert!(!ex.is_excluded(b"./x/builder"));
    }
}
