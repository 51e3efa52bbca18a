//! The world's own checks (tests/world/check-*.sh), run against a world brought up by
//! `World::up`: bit-reproducible packages and archive databases, the rebuilders' arranged
//! statuses and verifying attestations, bit-identical reference rootfs and images.

use std::process::{Command, Stdio};

use repro_world::{World, repo_root};

/// The checks rebuild packages and images from scratch; one at a time keeps them from
/// competing for the machine's two cores (and keeps their logs apart).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn check(script: &str, args: &[&str]) {
    let w = World::up();
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Command::new("bash")
        .arg(repo_root().join("tests/world").join(script))
        .args(args)
        .env("WORLD_DIR", &w.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn packages_and_archive_are_reproducible_and_installable() {
    check("check-packages.sh", &[]);
}

#[test]
fn rebuilders_report_the_arranged_statuses_with_valid_attestations() {
    check("check-rebuilders.sh", &[]);
}

#[test]
fn reference_images_are_bit_identical_across_builds() {
    check("check-images.sh", &[]);
}
