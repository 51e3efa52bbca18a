//! `%DEPENDS%` resolved to installed packages, as pacman resolves them: by name, else
//! through `%PROVIDES%` (`sh` → bash, `libc.so=6-64` → glibc). Version constraints are
//! stripped for the lookup (the installed set is what it is; pacman checked them when it
//! installed). Optional dependencies are not dependencies and are left out.

use std::collections::{BTreeMap, BTreeSet};

/// The name part of a dependency or provision: `glibc>=2.28` → `glibc`,
/// `libc.so=6-64` → `libc.so`.
pub fn strip_constraint(dep: &str) -> &str {
    let end = dep.find(['<', '>', '=']).unwrap_or(dep.len());
    dep[..end].trim()
}

/// One package's dependencies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Indices of the packages satisfying some `%DEPENDS%` entry, sorted, without itself.
    pub on: BTreeSet<usize>,
    /// `%DEPENDS%` entries no installed package has as its name or provides, as written.
    pub unresolved: Vec<String>,
}

/// What a package needs to be resolved: its name, `%DEPENDS%` and `%PROVIDES%`.
pub struct Node<'a> {
    pub name: &'a str,
    pub depends: &'a [String],
    pub provides: &'a [String],
}

/// Resolve every package's dependencies against the set. A name an installed package
/// has wins; otherwise every package providing it is a target.
pub fn resolve(pkgs: &[Node<'_>]) -> Vec<Resolved> {
    let mut by_name: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    let mut providers: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        by_name.entry(p.name).or_default().insert(i);
        for prov in p.provides {
            providers
                .entry(strip_constraint(prov))
                .or_default()
                .insert(i);
        }
    }
    pkgs.iter()
        .enumerate()
        .map(|(i, p)| {
            let mut r = Resolved::default();
            for dep in p.depends {
                let name = strip_constraint(dep);
                let targets = by_name.get(name).or_else(|| providers.get(name));
                match targets {
                    Some(t) => r.on.extend(t.iter().copied().filter(|&j| j != i)),
                    None => r.unresolved.push(dep.clone()),
                }
            }
            r.unresolved.sort();
            r.unresolved.dedup();
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn constraints_are_stripped() {
        assert_eq!(strip_constraint("glibc>=2.28"), "glibc");
        assert_eq!(strip_constraint("gcc-libs=8.2.1+20181127-1"), "gcc-libs");
        assert_eq!(strip_constraint("libc.so=6-64"), "libc.so");
        assert_eq!(strip_constraint("foo<2"), "foo");
        assert_eq!(strip_constraint("sh"), "sh");
    }

    #[test]
    fn resolved_by_name_then_provides() {
        let names = ["bash", "glibc", "libtool", "sed", "busybox"];
        let deps = [
            s(&["glibc", "readline>=7"]),
            s(&["filesystem"]),
            s(&["sh", "libc.so=6-64", "tar", "glibc>=2.28"]),
            s(&["sh"]),
            s(&[]),
        ];
        let provs = [
            s(&["sh"]),
            s(&["libc.so=6-64"]),
            s(&[]),
            s(&[]),
            s(&["sh=1.35"]),
        ];
        let nodes: Vec<Node> = (0..5)
            .map(|i| Node {
                name: names[i],
                depends: &deps[i],
                provides: &provs[i],
            })
            .collect();
        let r = resolve(&nodes);
        assert_eq!(r[0].on, BTreeSet::from([1]));
        assert_eq!(r[0].unresolved, s(&["readline>=7"]));
        assert_eq!(r[1].unresolved, s(&["filesystem"]));
        // Two packages provide `sh`: both are targets.
        assert_eq!(r[2].on, BTreeSet::from([0, 1, 4]));
        assert_eq!(r[2].unresolved, s(&["tar"]));
        assert_eq!(r[3].on, BTreeSet::from([0, 4]));
        assert!(r[4].on.is_empty() && r[4].unresolved.is_empty());
    }

    #[test]
    fn a_name_beats_a_provider_and_self_is_skipped() {
        let deps = [s(&["awk"]), s(&["awk"])];
        let provs = [s(&[]), s(&["awk"])];
        let names = ["awk", "gawk"];
        let nodes: Vec<Node> = (0..2)
            .map(|i| Node {
                name: names[i],
                depends: &deps[i],
                provides: &provs[i],
            })
            .collect();
        let r = resolve(&nodes);
        // "awk" depends on "awk": the package named awk is itself, skipped.
        assert!(r[0].on.is_empty());
        // gawk provides awk, but the package named awk wins.
        assert_eq!(r[1].on, BTreeSet::from([0]));
    }
}
