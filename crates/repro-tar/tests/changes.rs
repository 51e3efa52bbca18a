//! containers/storage's change detection between a snapshot and the tree after a step.

mod common;

use repro_tar::gostorage::{ChangeKind, GoOptions, Snapshot, plan_changes};

fn changes(setup: &str, step: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    common::sh(setup, dir.path());
    let before = Snapshot::take(dir.path()).unwrap();
    common::sh(step, dir.path());
    before
        .changes(dir.path())
        .unwrap()
        .iter()
        .map(|c| format!("{:?} {}", c.kind, String::from_utf8_lossy(&c.path)))
        .collect()
}

#[test]
fn what_counts_as_a_change() {
    let setup =
        "mkdir -p d/sub keep gone; echo a > d/f; echo b > same; echo c > gone/x; ln -s same l
                 touch -d @1000 d/f same";
    assert_eq!(
        changes(
            setup,
            "touch -d @2000 d/f; touch -d @3000 keep; echo n > d/sub/new; rm gone/x; ln -sf d l; chmod 600 same",
        ),
        [
            "Modify d/f",    // mtime
            "Add d/sub/new", // new file (its parents come with it when writing)
            "Delete gone/x", // a whiteout
            "Modify l",      // link target
            "Modify same",   // mode
        ]
    );
    // A directory's own mtime is not a change; a directory replaced by a file is one
    // modification, its old entries are not reported.
    assert_eq!(
        changes(setup, "touch -d @5000 keep d; rm -r gone; echo f > gone"),
        ["Modify gone"]
    );
}

#[test]
fn deletions_become_whiteouts_only_with_a_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    common::sh("mkdir a; echo x > a/x; echo y > top", dir.path());
    let before = Snapshot::take(dir.path()).unwrap();
    common::sh("rm a/x top", dir.path());
    let changes = before.changes(dir.path()).unwrap();
    assert_eq!(
        changes.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [ChangeKind::Delete; 2]
    );
    // Without --timestamp podman dates whiteouts with the wall clock: not reproducible.
    let err = plan_changes(dir.path(), &changes, &GoOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("a/x: deleted by the step"),
        "{err}"
    );
    let layer = plan_changes(
        dir.path(),
        &changes,
        &GoOptions {
            timestamp: Some(1000),
            ..Default::default()
        },
    )
    .unwrap();
    let names: Vec<_> = layer
        .names()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names, ["a/", "a/.wh.x", ".wh.top"]);
    let mut tar = Vec::new();
    layer.write_to(&mut tar).unwrap();
    // The whiteout's header: type 0, mode 0, no size.
    assert_eq!(&tar[512..519], b"a/.wh.x");
    assert_eq!(&tar[512 + 100..512 + 108], b"0000000\0");
    assert_eq!(tar[512 + 156], b'0');
}
