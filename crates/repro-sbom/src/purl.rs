//! Package URLs (purl) for pacman packages, per the purl specification's `alpm` type.
//!
//! `pkg:alpm/arch/<name>@<version>?arch=<arch>&upstream=<base>`: type and namespace are
//! lowercase, the name is lowercased (the `alpm` type says names are case-insensitive), the
//! version is pacman's as written (epoch and pkgrel included), qualifiers are sorted by key.
//! Every component is percent-encoded as the specification's "Character encoding" section
//! requires: only the alphanumerics, `.-_~` and the colon `:` stay as they are (so an epoch
//! `1:1.8.2-1` stays readable, as in the type's own example `containers-common@1:0.47.4-4`),
//! everything else is `%XX` of its UTF-8 bytes with uppercase hex (`+` becomes `%2B`, `/`
//! in a qualifier value `%2F`).

/// Percent-encode one purl component (a namespace segment, name, version or qualifier value).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Build a purl from its parts; qualifiers with an empty value are left out (the spec says
/// they are the same as absent) and the rest sorted by key. Keys must already be valid
/// (lowercase ASCII letters, digits, `.-_`).
pub fn build(
    ty: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, &str)],
) -> String {
    let mut s = format!("pkg:{}/", ty.to_ascii_lowercase());
    if let Some(ns) = namespace {
        for seg in ns.split('/').filter(|s| !s.is_empty()) {
            s.push_str(&encode(seg));
            s.push('/');
        }
    }
    s.push_str(&encode(name));
    if let Some(v) = version.filter(|v| !v.is_empty()) {
        s.push('@');
        s.push_str(&encode(v));
    }
    let mut q: Vec<(&str, &str)> = qualifiers
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    q.sort();
    for (i, (k, v)) in q.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(k);
        s.push('=');
        s.push_str(&encode(v));
    }
    s
}

/// `pkg:alpm/arch/<name>@<version>?arch=<arch>&upstream=<base>`.
pub fn alpm(name: &str, version: &str, arch: &str, base: &str) -> String {
    build(
        "alpm",
        Some("arch"),
        &name.to_lowercase(),
        Some(version),
        &[("arch", arch), ("upstream", base)],
    )
}

/// `pkg:oci/<name>@<digest>?arch=…&repository_url=<registry>/<repository>&tag=…` for an
/// image in a registry; `name` is the repository's last path segment, lowercased.
pub fn oci(
    registry: &str,
    repository: &str,
    digest: &str,
    arch: Option<&str>,
    tag: Option<&str>,
) -> String {
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let repo_url = format!("{registry}/{repository}");
    build(
        "oci",
        None,
        &name.to_lowercase(),
        Some(digest),
        &[
            ("arch", arch.unwrap_or("")),
            ("repository_url", &repo_url),
            ("tag", tag.unwrap_or("")),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_own_examples() {
        assert_eq!(
            alpm("pacman", "6.0.1-1", "x86_64", "pacman"),
            "pkg:alpm/arch/pacman@6.0.1-1?arch=x86_64&upstream=pacman"
        );
        // The epoch's colon is never encoded.
        assert_eq!(
            alpm(
                "containers-common",
                "1:0.47.4-4",
                "x86_64",
                "containers-common"
            ),
            "pkg:alpm/arch/containers-common@1:0.47.4-4?arch=x86_64&upstream=containers-common"
        );
    }

    #[test]
    fn plus_and_other_delimiters_are_encoded() {
        assert_eq!(
            alpm("gcc", "8.2.1+20181127-1", "x86_64", "gcc"),
            "pkg:alpm/arch/gcc@8.2.1%2B20181127-1?arch=x86_64&upstream=gcc"
        );
        assert_eq!(
            alpm("libsigc++", "3.6.0-1", "x86_64", "libsigc++-3.0"),
            "pkg:alpm/arch/libsigc%2B%2B@3.6.0-1?arch=x86_64&upstream=libsigc%2B%2B-3.0"
        );
        assert_eq!(
            alpm("Foo_Bar", "1~rc1-1", "any", "foo"),
            "pkg:alpm/arch/foo_bar@1~rc1-1?arch=any&upstream=foo"
        );
        assert_eq!(
            encode("a b/c?d#e@f&g=h%é"),
            "a%20b%2Fc%3Fd%23e%40f%26g%3Dh%25%C3%A9"
        );
    }

    #[test]
    fn qualifiers_sorted_and_empty_ones_dropped() {
        assert_eq!(
            build("x", None, "n", None, &[("z", "1"), ("a", ""), ("b", "2")]),
            "pkg:x/n?b=2&z=1"
        );
        assert_eq!(
            oci(
                "127.0.0.1:5000",
                "library/ArchLinux",
                "sha256:abcd",
                Some("amd64"),
                Some("repro")
            ),
            "pkg:oci/archlinux@sha256:abcd?arch=amd64&repository_url=127.0.0.1:5000%2Flibrary%2FArchLinux&tag=repro"
        );
    }
}
