//! pacman `%LICENSE%` entries as SPDX license expressions.
//!
//! Each entry is read in this order:
//! 1. a valid SPDX expression (strict: current identifiers, `LicenseRef-…`; Arch has used
//!    SPDX identifiers since 2023, e.g. `GPL-3.0-or-later`) is kept as written;
//! 2. one of Arch's older names from its `licenses` package (`GPL2`, `LGPL2.1`, `Apache`, …)
//!    is mapped by [`LEGACY`]. Those names gave a version but not "only" or "or later"; they
//!    map to the `-only` identifier, which says exactly what the name says. `GPL`, `LGPL`
//!    and `FDL` with no version map to the `-or-later` of the first version, as the GPL's
//!    own terms read a missing version number (any version ever published);
//! 3. anything else (`custom`, `custom:XYZ`, `BSD`, …) becomes `LicenseRef-<sanitised>`,
//!    for which the document carries an extracted-licensing entry.
//!
//! A package's entries are joined with `AND` (each applies to some part of the package);
//! compound entries are parenthesised.

use std::collections::{BTreeMap, BTreeSet};

use spdx::{Expression, LicenseItem, ParseMode};

/// Arch's pre-2023 license names (the `licenses` package's `common/` directory and the
/// usual spellings) → SPDX identifiers.
pub const LEGACY: &[(&str, &str)] = &[
    ("AGPL3", "AGPL-3.0-only"),
    ("Apache", "Apache-2.0"),
    ("APACHE", "Apache-2.0"),
    ("Artistic2.0", "Artistic-2.0"),
    ("CDDL", "CDDL-1.0"),
    ("EPL", "EPL-1.0"),
    ("FDL", "GFDL-1.1-or-later"),
    ("FDL1.2", "GFDL-1.2-only"),
    ("FDL1.3", "GFDL-1.3-only"),
    ("GPL", "GPL-1.0-or-later"),
    ("GPL2", "GPL-2.0-only"),
    ("GPL3", "GPL-3.0-only"),
    ("LGPL", "LGPL-2.0-or-later"),
    ("LGPL2", "LGPL-2.0-only"),
    ("LGPL2.1", "LGPL-2.1-only"),
    ("LGPL3", "LGPL-3.0-only"),
    ("LPPL", "LPPL-1.3c"),
    ("MPL", "MPL-1.1"),
    ("MPL2", "MPL-2.0"),
    ("PerlArtistic", "Artistic-1.0-Perl"),
    ("PHP", "PHP-3.01"),
    ("PSF", "PSF-2.0"),
    ("RUBY", "Ruby"),
    ("W3C", "W3C"),
    ("ZPL", "ZPL-2.1"),
    ("zlib", "Zlib"),
];

/// A `LicenseRef-` the document must define (SPDX `hasExtractedLicensingInfos`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenseRef {
    /// `LicenseRef-…`.
    pub id: String,
    /// The `%LICENSE%` entry it stands for (for refs taken from an SPDX expression, the ref
    /// itself).
    pub original: String,
    /// Names of the packages using it, sorted.
    pub packages: Vec<String>,
}

/// Every package's declared license, and the refs they use.
#[derive(Debug, Clone, Default)]
pub struct Licenses {
    /// By package index; `None` when the package declares no license.
    pub declared: Vec<Option<String>>,
    /// Sorted by id.
    pub refs: Vec<LicenseRef>,
}

/// Is `s` a valid SPDX expression (strict)? Returns the `LicenseRef-`s it uses.
fn spdx_expression(s: &str) -> Option<Vec<String>> {
    let e = Expression::parse_mode(s, ParseMode::STRICT).ok()?;
    let mut refs = Vec::new();
    for r in e.requirements() {
        match &r.req.license {
            LicenseItem::Spdx { .. } => {}
            LicenseItem::Other(o) => {
                if o.doc_ref.is_some() {
                    // A DocumentRef would need an external document reference.
                    return None;
                }
                refs.push(format!("LicenseRef-{}", o.lic_ref));
            }
        }
        if r.req
            .addition
            .as_ref()
            .is_some_and(|a| !matches!(a, spdx::AdditionItem::Spdx(_)))
        {
            return None;
        }
    }
    Some(refs)
}

/// `LicenseRef-` + the entry with every character outside SPDX's idstring set
/// (`A-Za-z0-9.-`) replaced by `-`; `custom:XYZ` → `LicenseRef-custom-XYZ`.
pub fn license_ref(entry: &str) -> String {
    let s: String = entry
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("LicenseRef-{}", if s.is_empty() { "empty" } else { &s })
}

/// One entry as an expression, and the refs it needs (ref id → original).
pub fn map_entry(entry: &str) -> (String, Vec<(String, String)>) {
    let entry = entry.trim();
    if let Some(refs) = spdx_expression(entry) {
        let refs = refs.into_iter().map(|r| (r.clone(), r)).collect();
        return (entry.to_string(), refs);
    }
    if let Some((_, id)) = LEGACY.iter().find(|(k, _)| *k == entry) {
        return (id.to_string(), Vec::new());
    }
    let r = license_ref(entry);
    (r.clone(), vec![(r, entry.to_string())])
}

/// Join entries with `AND`; compound ones are parenthesised. Duplicates are dropped, the
/// order of first appearance kept.
pub fn join(exprs: &[String]) -> Option<String> {
    let mut seen = BTreeSet::new();
    let parts: Vec<String> = exprs
        .iter()
        .filter(|e| seen.insert(e.as_str()))
        .map(|e| {
            if exprs.len() > 1 && e.contains(' ') {
                format!("({e})")
            } else {
                e.clone()
            }
        })
        .collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" AND "))
    }
}

/// Map every package's `%LICENSE%` entries (`licenses[i]` for package `names[i]`).
pub fn map_all(names: &[&str], licenses: &[&[String]]) -> Licenses {
    let mut declared = Vec::new();
    // ref id → (original, packages); a sanitised id shared by two originals is made
    // unique below.
    let mut by_original: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    let mut per_pkg: Vec<Vec<(String, Option<String>)>> = Vec::new();
    for (name, entries) in names.iter().zip(licenses) {
        let mut v = Vec::new();
        for e in entries.iter() {
            let (expr, refs) = map_entry(e);
            let from_legacy = refs.len() == 1 && refs[0].0 == expr && refs[0].1 != expr;
            for (id, original) in refs {
                by_original
                    .entry(original.clone())
                    .or_insert_with(|| (id, BTreeSet::new()))
                    .1
                    .insert(name.to_string());
            }
            v.push((expr, from_legacy.then(|| e.trim().to_string())));
        }
        per_pkg.push(v);
    }
    // Two different entries sanitised to the same id: suffix both with a hash of the entry.
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _) in by_original.values() {
        *count.entry(id.clone()).or_default() += 1;
    }
    let mut final_id: BTreeMap<String, String> = BTreeMap::new();
    for (original, (id, _)) in &by_original {
        let id = if count[id] > 1 {
            format!("{id}-{}", crate::short_hash(original))
        } else {
            id.clone()
        };
        final_id.insert(original.clone(), id);
    }
    for v in per_pkg {
        let exprs: Vec<String> = v
            .into_iter()
            .map(|(expr, original)| match original {
                Some(o) => final_id[&o].clone(),
                None => expr,
            })
            .collect();
        declared.push(join(&exprs));
    }
    let mut refs: Vec<LicenseRef> = by_original
        .into_iter()
        .map(|(original, (_, pkgs))| LicenseRef {
            id: final_id[&original].clone(),
            original,
            packages: pkgs.into_iter().collect(),
        })
        .collect();
    refs.sort_by(|a, b| a.id.cmp(&b.id));
    Licenses { declared, refs }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(e: &str) -> String {
        map_entry(e).0
    }

    #[test]
    fn spdx_identifiers_are_kept() {
        assert_eq!(one("GPL-3.0-or-later"), "GPL-3.0-or-later");
        assert_eq!(one("MIT"), "MIT");
        assert_eq!(one("CC0-1.0"), "CC0-1.0");
        assert_eq!(
            one("GPL-2.0-or-later WITH Linux-syscall-note"),
            "GPL-2.0-or-later WITH Linux-syscall-note"
        );
        assert_eq!(one("MIT OR Apache-2.0"), "MIT OR Apache-2.0");
        let (e, refs) = map_entry("LicenseRef-Unicode");
        assert_eq!(e, "LicenseRef-Unicode");
        assert_eq!(
            refs,
            vec![("LicenseRef-Unicode".into(), "LicenseRef-Unicode".into())]
        );
    }

    #[test]
    fn legacy_names_map() {
        assert_eq!(one("GPL"), "GPL-1.0-or-later");
        assert_eq!(one("GPL2"), "GPL-2.0-only");
        assert_eq!(one("GPL3"), "GPL-3.0-only");
        assert_eq!(one("LGPL2.1"), "LGPL-2.1-only");
        assert_eq!(one("LGPL"), "LGPL-2.0-or-later");
        assert_eq!(one("FDL"), "GFDL-1.1-or-later");
        assert_eq!(one("PerlArtistic"), "Artistic-1.0-Perl");
        for (k, v) in LEGACY {
            assert!(spdx::license_id(v).is_some(), "{k} → {v} is not an SPDX id");
        }
    }

    #[test]
    fn everything_else_is_a_license_ref() {
        assert_eq!(one("custom"), "LicenseRef-custom");
        assert_eq!(one("custom:XYZ"), "LicenseRef-custom-XYZ");
        assert_eq!(
            one("custom: The Foo License"),
            "LicenseRef-custom--The-Foo-License"
        );
        assert_eq!(one("BSD"), "LicenseRef-BSD");
        // Deprecated identifiers are not kept (validators reject them).
        assert_eq!(one("GPL-2.0"), "LicenseRef-GPL-2.0");
    }

    #[test]
    fn packages_join_with_and_and_refs_are_collected() {
        let a = vec!["GPL2".to_string(), "custom".to_string()];
        let b = vec!["custom".to_string(), "MIT OR Apache-2.0".to_string()];
        let c: Vec<String> = vec![];
        let d = vec!["custom:a b".to_string(), "custom:a-b".to_string()];
        let m = map_all(&["a", "b", "c", "d"], &[&a, &b, &c, &d]);
        assert_eq!(
            m.declared[0].as_deref(),
            Some("GPL-2.0-only AND LicenseRef-custom")
        );
        assert_eq!(
            m.declared[1].as_deref(),
            Some("LicenseRef-custom AND (MIT OR Apache-2.0)")
        );
        assert_eq!(m.declared[2], None);
        let ids: Vec<&str> = m.refs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0], "LicenseRef-custom");
        assert!(
            ids[1].starts_with("LicenseRef-custom-a-b-")
                && ids[2].starts_with("LicenseRef-custom-a-b-")
        );
        assert_ne!(ids[1], ids[2]);
        assert_eq!(m.refs[0].packages, vec!["a", "b"]);
        let d_expr = m.declared[3].as_deref().unwrap();
        assert!(
            d_expr.contains(ids[1]) && d_expr.contains(ids[2]),
            "{d_expr}"
        );
    }
}
