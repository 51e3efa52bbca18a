//! Progress bars appear on a terminal only, and never with --quiet.

mod common;

use std::process::Command;

use common::*;

/// Run under a pseudo-terminal with util-linux `script`; returns everything the terminal saw.
fn on_terminal(args: &str) -> String {
    let out = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_repro-image")),
            "/dev/null",
        ])
        .output()
        .expect("util-linux script runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn bars_on_a_terminal_only() {
    let tmp = tempfile::tempdir().unwrap();
    let img = small_image(&tmp.path().join("layout"));
    let src = format!("oci:{}:{}", img.layout.display(), img.ref_name);
    let short = &img.layers[0].digest["sha256:".len().."sha256:".len() + 12];

    let tty = on_terminal(&format!(
        "--no-cache copy {src} oci:{}:a",
        tmp.path().join("a").display()
    ));
    assert!(tty.contains(&format!("blob {short}")), "{tty}");
    assert!(
        tty.contains(&format!(
            "{} B/{} B",
            img.layers[0].size, img.layers[0].size
        )),
        "{tty}"
    );

    let quiet = on_terminal(&format!(
        "--no-cache --quiet copy {src} oci:{}:b",
        tmp.path().join("b").display()
    ));
    assert!(!quiet.contains("blob "), "{quiet}");

    let piped = ok(
        tmp.path(),
        &[
            "--no-cache",
            "copy",
            &src,
            &format!("oci:{}:c", tmp.path().join("c").display()),
        ],
    );
    let stderr = String::from_utf8_lossy(&piped.stderr);
    assert!(!stderr.contains("blob "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "no terminal escapes when not a terminal: {stderr}"
    );
}
