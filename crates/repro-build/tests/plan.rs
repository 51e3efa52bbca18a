//! The pure planning steps against the real tools the reference recipe
//! (tests/world/recipe/build-rootfs.sh) uses for them: sed and awk on the same files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use repro_build::RecipeFiles;
use repro_build::plan::{add_options, repo_sections, rewrite_includes};

fn world_recipe() -> PathBuf {
    repro_world::repo_root().join("tests/world/recipe")
}

fn filter(argv: &[&str], input: &[u8]) -> Vec<u8> {
    let mut c = Command::new(argv[0])
        .args(&argv[1..])
        .env("LC_ALL", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run a reference tool");
    c.stdin.take().unwrap().write_all(input).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "{argv:?}");
    out.stdout
}

#[test]
fn the_builtin_recipe_files_are_the_world_recipes() {
    let dir = world_recipe();
    assert_eq!(RecipeFiles::from_dir(&dir).unwrap(), RecipeFiles::builtin());
}

#[test]
fn pacman_conf_rewrites_match_sed_and_awk() {
    let r = RecipeFiles::builtin();
    let mut conf = r.pacman_conf.clone();
    conf.extend_from_slice(&r.noextract);
    let work = "/srv/out/work";
    let overlay = format!("{work}/rootfs");
    let mirror = format!("{work}/mirrorlist.build");
    // build-rootfs.sh's two sed expressions
    let sed = filter(
        &[
            "sed",
            "-e",
            &format!("s|Include = |&{overlay}|g"),
            "-e",
            &format!("s|Include = {overlay}/etc/pacman.d/mirrorlist$|Include = {mirror}|"),
        ],
        &conf,
    );
    let ours = rewrite_includes(&conf, &overlay, &mirror);
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&sed)
    );
    assert!(String::from_utf8_lossy(&ours).contains(&format!("Include = {mirror}\n")));

    // and its awk that puts the build-time options after every [options] line
    let opts = format!("CacheDir = {work}/pkgcache/\nGPGDir = {work}/gnupg/");
    let awk = filter(
        &[
            "awk",
            "-v",
            &format!("opts={opts}"),
            r"{ print } /^\[options\]$/ { print opts }",
        ],
        &sed,
    );
    let ours = add_options(&ours, &opts);
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&awk)
    );
    assert_eq!(repo_sections(&ours), ["core", "extra"]);
}

#[test]
fn the_mirrorlist_gets_the_snapshot_first_as_sed_1i_does() {
    let r = RecipeFiles::builtin();
    let line = "Server = https://archive.archlinux.org/repos/2026/11/02/$repo/os/$arch";
    let sed = filter(&["sed", &format!("1i{line}")], r.mirrorlist());
    let mut ours = format!("{line}\n").into_bytes();
    ours.extend_from_slice(r.mirrorlist());
    assert_eq!(ours, sed);
    assert!(Path::new(&world_recipe().join("rootfs/etc/pacman.d/mirrorlist")).is_file());
}
