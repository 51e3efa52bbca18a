//! The lock's text: exact round trip, canonical order, and errors that name file, line and
//! field.

use repro_lock::{
    ImagePin, LayerPin, Lock, LockError, PackagePin, Param, PinnedFrom, Recipe, Sha256Hex,
    Signature, Snapshot,
};

const SAMPLE: &str = include_str!("data/sample.lock");

#[test]
fn sample_round_trips_byte_for_byte() {
    let lock = Lock::parse(SAMPLE, "sample.lock").unwrap();
    assert_eq!(lock.to_text(), SAMPLE);
    assert_eq!(lock.packages.len(), 2);
    assert_eq!(lock.recipe.archive_snapshot.to_string(), "2026/11/02");
    assert_eq!(lock.recipe.derived.len(), 7);
    assert_eq!(lock.recipe.image_title.as_deref(), Some("Repro"));
    assert_eq!(lock.recipe.derived[0].0, Param::SourceDateEpoch);
    assert!(
        lock.recipe.derived[0]
            .1
            .contains("\"2026-11-03T00:00:00+00:00\"")
    );
    let bash = lock.package("bash").unwrap();
    assert_eq!(bash.repo, None);
    assert_eq!(bash.signature, None);
    assert_eq!(bash.pinned_from, PinnedFrom::Packages);
    assert_eq!(
        bash.url_on("http://127.0.0.1:37385", "http://mirror.example/arch/"),
        "http://mirror.example/arch/packages/b/bash/bash-5.2.15-2-x86_64.pkg.tar.zst"
    );
    assert_eq!(lock.image.layers.len(), 2);
    // Parsing the printed text gives the same model.
    assert_eq!(Lock::parse(&lock.to_text(), "again").unwrap(), lock);
}

fn parse_err(text: &str) -> (usize, String, String) {
    match Lock::parse(text, "x.lock") {
        Err(LockError::Parse {
            file,
            line,
            field,
            message,
            ..
        }) => {
            assert_eq!(file, "x.lock");
            (line, field, message)
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not in text"))
        + 1
}

#[test]
fn errors_name_line_and_field() {
    // A sha256 with an uppercase digit in the second package.
    let bad = SAMPLE.replace(
        "sha256 = \"e245eb839758614d97da5380990e19594b87c9566cee3d840dfbf091b71d04c7\"\nmtree_sha256 = \"9f1c",
        "sha256 = \"E245eb839758614d97da5380990e19594b87c9566cee3d840dfbf091b71d04c7\"\nmtree_sha256 = \"9f1c",
    );
    let (line, field, msg) = parse_err(&bad);
    assert_eq!(line, line_of(&bad, "\"E245eb"));
    assert_eq!(field, "package[1].sha256");
    assert!(msg.contains("not a sha256"), "{msg}");

    // A digest that is not sha256/sha512.
    let bad = SAMPLE.replacen("config_digest = \"sha256:", "config_digest = \"md5:", 1);
    let (line, field, msg) = parse_err(&bad);
    assert_eq!(line, line_of(&bad, "config_digest"));
    assert_eq!(field, "image.config_digest");
    assert!(msg.contains("md5"), "{msg}");

    // A snapshot that is no day.
    let bad = SAMPLE.replace("\"2026/11/02\"", "\"2026/11/31\"");
    let (line, field, msg) = parse_err(&bad);
    assert_eq!(line, line_of(&bad, "archive_snapshot ="));
    assert_eq!(field, "recipe.archive_snapshot");
    assert!(msg.contains("no such day"), "{msg}");

    // A file name that would escape a directory.
    let bad = SAMPLE.replace(
        "filename = \"acl-2.3.1-1-x86_64.pkg.tar.zst\"",
        "filename = \"acl-../../etc/passwd.pkg.tar.zst\"",
    );
    let (line, field, _) = parse_err(&bad);
    assert_eq!(line, line_of(&bad, "etc/passwd"));
    assert_eq!(field, "package[0].filename");

    // Packages out of order.
    let bad = SAMPLE.replace("name = \"bash\"", "name = \"aaa\"");
    let bad = bad.replace("bash-5.2.15-2-x86_64", "aaa-5.2.15-2-x86_64");
    let (line, field, msg) = parse_err(&bad);
    assert_eq!(line, line_of(&bad, "name = \"aaa\""));
    assert_eq!(field, "package[1].name");
    assert!(msg.contains("sorted"), "{msg}");

    // An unknown key (a typo) is refused, not ignored.
    let bad = SAMPLE.replace("pinned_from = \"packages\"", "pinned_frm = \"packages\"");
    let (line, field, msg) = parse_err(&bad);
    assert!(msg.contains("pinned_frm"), "{msg}");
    assert_eq!(line, line_of(&bad, "pinned_frm"));
    assert_eq!(field, "package[1].pinned_frm");

    // A missing field.
    let bad = SAMPLE.replace(
        "mtree_sha256 = \"0b6d0e5b6b3f0b8ad2a4e6c94a9e1f4fd6ebbd1c1c6e0c0b0ac6f0a4c2e3d1f0\"\n",
        "",
    );
    let (_, _, msg) = parse_err(&bad);
    assert!(msg.contains("mtree_sha256"), "{msg}");

    // Another format version.
    let bad = SAMPLE.replace("version = 1\n", "version = 2\n");
    let (line, field, msg) = parse_err(&bad);
    assert_eq!((line, field.as_str()), (2, "version"));
    assert!(msg.contains("version 2 is not supported"), "{msg}");

    // The Display form says all of it in one line.
    let e = Lock::parse(
        &SAMPLE.replace("\"2026/11/02\"", "\"2026/11/31\""),
        "x.lock",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!(
            "x.lock: line {}, column ",
            line_of(SAMPLE, "archive_snapshot =")
        )),
        "{e}"
    );
    assert!(e.contains("recipe.archive_snapshot: "), "{e}");
}

/// A small deterministic generator (no clock, no OS randomness): the same cases every run.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn hex(&mut self) -> String {
        (0..4).map(|_| format!("{:016x}", self.next())).collect()
    }
    fn digest(&mut self) -> repro_oci::Digest {
        format!("sha256:{}", self.hex()).parse().unwrap()
    }
    /// Any text, including quotes, backslashes, control characters, DEL and non-ASCII.
    fn text(&mut self) -> String {
        const ALPHABET: &[char] = &[
            'a', 'Z', '0', ' ', '"', '\\', '\n', '\t', '\r', '\u{1}', '\u{1f}', '\u{7f}', 'é',
            '字', '🦀', '#', '=', '[', ']', '\'', '$', '\u{85}', '\u{2028}',
        ];
        let n = self.below(12) as usize;
        (0..n)
            .map(|_| ALPHABET[self.below(ALPHABET.len() as u64) as usize])
            .collect()
    }
    fn maybe<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.below(2) == 0).then(|| f(self))
    }
}

fn random_lock(g: &mut Gen) -> Lock {
    let layers = (0..g.below(4))
        .map(|_| LayerPin {
            digest: g.digest(),
            diff_id: g.digest(),
            media_type: g.text(),
            size: g.next(),
        })
        .collect();
    let mut derived = Vec::new();
    let mut given = Vec::new();
    for p in Param::ALL {
        match g.below(3) {
            0 => derived.push((p, g.text())),
            1 => given.push((p, g.text())),
            _ => {}
        }
    }
    let needs = |p: Param| derived.iter().chain(&given).any(|(q, _)| *q == p);
    let revision = needs(Param::Revision).then(|| g.text());
    let image_version = needs(Param::ImageVersion).then(|| g.text());
    let image_title = needs(Param::ImageTitle).then(|| g.text());
    let image_builder = needs(Param::ImageBuilder).then(|| g.text());
    let mut names: Vec<String> = (0..g.below(6))
        .map(|i| format!("pkg{i}-{}", g.below(1000)))
        .collect();
    names.sort();
    names.dedup();
    let packages = names
        .into_iter()
        .map(|name| {
            let version = format!("{}.{}-{}", g.below(10), g.below(100), 1 + g.below(5));
            let filename = format!("{name}-{version}-x86_64.pkg.tar.zst");
            PackagePin {
                url: repro_lock::packages_url("http://127.0.0.1:1", &name, &filename),
                repo: g.maybe(|g| g.text()),
                arch: "x86_64".into(),
                size: g.next(),
                sha256: g.hex().parse::<Sha256Hex>().unwrap(),
                signature: g.maybe(|g| {
                    let n = 1 + g.below(200) as usize;
                    Signature::new((0..n).map(|_| g.next() as u8).collect()).unwrap()
                }),
                mtree_sha256: g.hex().parse().unwrap(),
                pinned_from: if g.below(2) == 0 {
                    PinnedFrom::Snapshot
                } else {
                    PinnedFrom::Packages
                },
                name,
                version,
                filename,
            }
        })
        .collect();
    Lock {
        image: ImagePin {
            reference: g.text(),
            platform: g.text(),
            index_digest: g.maybe(|g| g.digest()),
            digest: g.digest(),
            media_type: g.text(),
            config_digest: g.digest(),
            layers,
        },
        recipe: Recipe {
            name: repro_lock::RECIPE_NAME.into(),
            source_date_epoch: g.next() as i64,
            archive: "http://127.0.0.1:1".into(),
            archive_snapshot: Snapshot::of_epoch((g.below(40_000) * 86_400) as i64),
            repos: (0..g.below(3)).map(|_| g.text()).collect(),
            arch: g.text(),
            group: (0..g.below(3)).map(|_| g.text()).collect(),
            revision,
            image_version,
            image_title,
            image_builder,
            tar: g.text(),
            zstd_level: g.next() as i32,
            zstd_window_log: g.next() as u32,
            derived,
            given,
        },
        packages,
    }
}

#[test]
fn random_locks_round_trip() {
    let mut g = Gen(0x5eed_1234_abcd_0001);
    for case in 0..2000 {
        let lock = random_lock(&mut g);
        lock.validate().unwrap();
        let text = lock.to_text();
        let back = Lock::parse(&text, "random.lock")
            .unwrap_or_else(|e| panic!("case {case}: {e}\n{text}"));
        assert_eq!(back, lock, "case {case}:\n{text}");
        assert_eq!(back.to_text(), text, "case {case}");
    }
}

#[test]
fn save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repro-image.lock");
    let lock = Lock::parse(SAMPLE, "sample").unwrap();
    lock.save(&path).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), SAMPLE);
    // readable by whoever builds from it, not a temp file's 0600
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    assert_eq!(Lock::load(&path).unwrap(), lock);
    assert_eq!(
        repro_lock::archive_dir(&path),
        dir.path().join("repro-image.lock.d")
    );
    let e = Lock::load(&dir.path().join("missing.lock")).unwrap_err();
    assert!(e.to_string().contains("missing.lock"), "{e}");
}
