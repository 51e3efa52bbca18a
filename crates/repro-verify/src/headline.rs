//! The accounting headline (DESIGN.md "File accounting"): every entry of the original's
//! rootfs is counted once as
//!
//! - *package*: owned by a package, equal to its mtree line, and equal in the rebuild;
//! - *generated*: not owned (or owned but changed, e.g. a `backup` file a recipe step
//!   edits), and equal in the rebuild: a recipe step made it and our build made it again;
//! - *unexplained*: anything that differs from the rebuild or is missing from it.
//!
//! "Equal in the rebuild" is the content comparison (the tree without times): timestamps
//! are the tree level's business, reported there.

use std::collections::BTreeSet;

use repro_accounting::{Accounting, Class, Count};
use serde::Serialize;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Headline {
    /// Entries of the original's rootfs (the root directory excluded) and their bytes.
    pub total: Count,
    pub package: Count,
    pub generated: Count,
    pub unexplained: Count,
}

/// Count `acc`'s present entries; `differing` holds the paths (as the tree spells them)
/// whose content differs between the original and the rebuild, or that only one has.
pub fn headline(acc: &Accounting, differing: &BTreeSet<Vec<u8>>) -> Headline {
    let mut h = Headline::default();
    for e in &acc.entries {
        if e.class == Class::Missing {
            continue;
        }
        let bucket = if differing.contains(e.path.as_bytes()) {
            &mut h.unexplained
        } else if e.class == Class::Package {
            &mut h.package
        } else {
            &mut h.generated
        };
        bucket.files += 1;
        bucket.bytes += e.bytes;
        h.total.files += 1;
        h.total.bytes += e.bytes;
    }
    h
}

/// `part` of `whole` as a percentage with one decimal, rounded half up, in integers (no
/// float formatting differences between platforms).
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    let tenths = (part as u128 * 1000 + whole as u128 / 2) / whole as u128;
    format!("{}.{}%", tenths / 10, tenths % 10)
}

impl Headline {
    /// "N files / B bytes: x% from reproduced packages, y% generated and reproduced, z%
    /// unexplained" (percentages of files; [`Headline::bytes_line`] gives them by bytes).
    pub fn line(&self) -> String {
        let f = self.total.files;
        format!(
            "{} files / {} bytes: {} from reproduced packages, {} generated and reproduced, {} unexplained",
            f,
            self.total.bytes,
            percent(self.package.files, f),
            percent(self.generated.files, f),
            percent(self.unexplained.files, f)
        )
    }

    pub fn bytes_line(&self) -> String {
        let b = self.total.bytes;
        format!(
            "by bytes: {} from reproduced packages, {} generated and reproduced, {} unexplained",
            percent(self.package.bytes, b),
            percent(self.generated.bytes, b),
            percent(self.unexplained.bytes, b)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use repro_accounting::Entry;
    use repro_rootfs::{Kind, TreePath};

    fn entry(path: &str, class: Class, bytes: u64) -> Entry {
        Entry {
            path: TreePath(path.as_bytes().to_vec()),
            class,
            kind: Some(Kind::File),
            packages: if class == Class::Unowned {
                vec![]
            } else {
                vec!["p".into()]
            },
            backup: false,
            size: bytes,
            bytes,
            differences: Vec::new(),
            mtime: None,
        }
    }

    #[test]
    fn every_present_entry_lands_in_one_bucket() {
        let acc = Accounting {
            entries: vec![
                entry("etc/passwd", Class::Modified, 10),
                entry("etc/shadow", Class::Modified, 5),
                entry("usr/bin/a", Class::Package, 100),
                entry("usr/bin/b", Class::Package, 200),
                entry("usr/bin/gone", Class::Missing, 7),
                entry("var/cache/x", Class::Unowned, 3),
            ],
            ..Default::default()
        };
        let differing: BTreeSet<Vec<u8>> = [b"usr/bin/b".to_vec(), b"etc/shadow".to_vec()].into();
        let h = headline(&acc, &differing);
        assert_eq!(
            h.total,
            Count {
                files: 5,
                bytes: 318
            }
        );
        assert_eq!(
            h.package,
            Count {
                files: 1,
                bytes: 100
            }
        );
        assert_eq!(
            h.generated,
            Count {
                files: 2,
                bytes: 13
            }
        );
        assert_eq!(
            h.unexplained,
            Count {
                files: 2,
                bytes: 205
            }
        );
        assert_eq!(
            h.line(),
            "5 files / 318 bytes: 20.0% from reproduced packages, 40.0% generated and reproduced, 40.0% unexplained"
        );
        assert_eq!(
            h.bytes_line(),
            "by bytes: 31.4% from reproduced packages, 4.1% generated and reproduced, 64.5% unexplained"
        );
    }

    #[test]
    fn percentages_round_half_up_and_survive_zero() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(1, 2000), "0.1%");
        assert_eq!(percent(0, 0), "0%");
        assert_eq!(percent(5, 5), "100.0%");
    }
}
