//! The pure part of a build: from the lock, the recipe's files, the build directory and the
//! tool versions, every text written and every command run, in the recipe's order
//! (tests/world/recipe/build-rootfs.sh is the reference shell implementation; DESIGN.md
//! has the upstream facts). Nothing here touches the file system or the clock.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use repro_lock::Lock;
use repro_lock::types::Snapshot;

use crate::error::BuildError;
use crate::recipe::RecipeFiles;

/// Where everything of a build lives, below the output directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The output directory (repro.tar, repro.tar.zst, repro.tar.zst.SHA256, build.log).
    pub out: PathBuf,
    /// Build-time files, removed at the end unless kept: `out/work`.
    pub work: PathBuf,
    /// The rootfs being built (the recipe's `$BUILDDIR`): `work/build`.
    pub root: PathBuf,
    /// The local repositories, `repos/<repo>/os/<arch>/`.
    pub repos: PathBuf,
    /// The recipe's rootfs overlay with the snapshot prepended to its mirrorlist.
    pub overlay: PathBuf,
    pub mirrorlist_build: PathBuf,
    pub pacman_conf_build: PathBuf,
    pub pkgcache: PathBuf,
    pub gnupg: PathBuf,
    /// Keyring files taken from the pinned packages (or given).
    pub keyrings: PathBuf,
    pub ldconfig_probe: PathBuf,
    pub log: PathBuf,
}

impl Layout {
    pub fn new(out: &Path) -> Layout {
        let work = out.join("work");
        Layout {
            out: out.to_path_buf(),
            root: work.join("build"),
            repos: work.join("repos"),
            overlay: work.join("rootfs"),
            mirrorlist_build: work.join("mirrorlist.build"),
            pacman_conf_build: work.join("pacman.conf"),
            pkgcache: work.join("pkgcache"),
            gnupg: work.join("gnupg"),
            keyrings: work.join("keyrings"),
            ldconfig_probe: work.join("ldconfig-probe"),
            log: out.join("build.log"),
            work,
        }
    }

    /// The alpm hook dir whose entries mask the packages' hooks (excluded from the tarball).
    pub fn hookdir(&self) -> PathBuf {
        self.root.join("alpm-hooks/usr/share/libalpm/hooks")
    }

    pub fn repo_dir(&self, repo: &str, arch: &str) -> PathBuf {
        self.repos.join(repo).join("os").join(arch)
    }
}

/// A pacman version (`pacman --version`'s `Pacman vX.Y.Z`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PacmanVersion(pub u32, pub u32, pub u32);

impl PacmanVersion {
    /// From `pacman --version` output.
    pub fn parse(text: &str) -> Option<PacmanVersion> {
        let rest = &text[text.find("Pacman v")? + "Pacman v".len()..];
        let v: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut it = v.split('.').map(|n| n.parse::<u32>().ok());
        let major = it.next()??;
        let minor = it.next().flatten().unwrap_or(0);
        let patch = it.next().flatten().unwrap_or(0);
        Some(PacmanVersion(major, minor, patch))
    }

    /// pacman >= 7.1 writes `%INSTALLDATE%` = SOURCE_DATE_EPOCH itself; older ones write
    /// the wall clock, which the build freezes at SOURCE_DATE_EPOCH with libfaketime.
    pub fn honours_source_date_epoch(self) -> bool {
        self >= PacmanVersion(7, 1, 0)
    }
}

impl std::fmt::Display for PacmanVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// What the planner needs besides the lock.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    pub lock: &'a Lock,
    pub recipe: &'a RecipeFiles,
    pub layout: &'a Layout,
    pub pacman: PacmanVersion,
    /// libfaketime's library, needed when pacman does not honour SOURCE_DATE_EPOCH.
    pub faketime_lib: Option<PathBuf>,
    /// The Archive URL written into the image's mirrorlist (upstream's, not the one the
    /// packages were fetched from).
    pub published_archive: &'a str,
    /// Hook names to mask (sorted, unique).
    pub hooks: Vec<String>,
}

/// One command of the recipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cmd {
    /// What the step is, for the log and errors (`pacman -Sy base`).
    pub label: String,
    pub argv: Vec<OsString>,
    /// Added to the cleared base environment.
    pub env: Vec<(String, OsString)>,
}

/// A step after the install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Run(Cmd),
    /// `rm -rf DIR/*` (hidden entries kept, as the shell glob keeps them).
    ClearDir(PathBuf),
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub source_date_epoch: i64,
    pub snapshot: Snapshot,
    /// The fixed environment every command starts from (`env -i` + these).
    pub env: Vec<(String, OsString)>,
    /// The umask every command runs with.
    pub umask: u32,
    /// `/etc/pacman.conf` of the rootfs: the recipe's conf + the NoExtract list.
    pub pacman_conf_rootfs: Vec<u8>,
    /// The build-time copy: Includes rewritten into the overlay, the mirrorlist replaced by
    /// the local repositories, a private cache and gpg dir.
    pub pacman_conf_build: Vec<u8>,
    /// The overlay's mirrorlist with the snapshot's Archive server prepended.
    pub mirrorlist_rootfs: Vec<u8>,
    /// The build's mirrorlist: only the local repositories (no network).
    pub mirrorlist_build: Vec<u8>,
    /// The repositories the build pacman.conf names (each gets a local repository).
    pub repos: Vec<String>,
    pub hooks: Vec<String>,
    /// The libalpm ldconfig probe script.
    pub ldconfig_probe: Vec<u8>,
    /// Whether the install runs under libfaketime (pacman < 7.1).
    pub faketime: bool,
    pub pacman: Cmd,
    pub after: Vec<Step>,
}

pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

fn os(s: impl Into<OsString>) -> OsString {
    s.into()
}

/// A path that goes into pacman.conf, a file:// URL or a sed script: refuse what would
/// change their meaning.
fn check_path(p: &Path) -> Result<&str, BuildError> {
    let s = p.to_str().ok_or_else(|| {
        BuildError::Invalid(format!(
            "{}: the build directory must be UTF-8",
            p.display()
        ))
    })?;
    if !p.is_absolute()
        || s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || "#%|\\\"'$`".contains(c))
    {
        return Err(BuildError::Invalid(format!(
            "{s}: the build directory must be an absolute path without white space, quotes or any of #%|\\$`"
        )));
    }
    Ok(s)
}

/// Repository and architecture names become directory names and URL parts.
fn check_word(what: &str, s: &str) -> Result<(), BuildError> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(BuildError::Invalid(format!(
            "{what} {s:?} is not a plain name"
        )))
    }
}

/// `s|Include = |&PREFIX|g` then `s|Include = PREFIX/etc/pacman.d/mirrorlist$|Include = MIRRORLIST|`
/// per line, as the recipe rewrites the Includes with sed.
pub fn rewrite_includes(conf: &[u8], overlay: &str, mirrorlist_build: &str) -> Vec<u8> {
    const KEY: &[u8] = b"Include = ";
    let mut out = Vec::with_capacity(conf.len() + 256);
    for (i, line) in conf.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let mut l = Vec::with_capacity(line.len());
        let mut rest = line;
        while let Some(pos) = find(rest, KEY) {
            l.extend_from_slice(&rest[..pos + KEY.len()]);
            l.extend_from_slice(overlay.as_bytes());
            rest = &rest[pos + KEY.len()..];
        }
        l.extend_from_slice(rest);
        let old = format!("Include = {overlay}/etc/pacman.d/mirrorlist");
        // the pattern is anchored at the line's end
        if l.ends_with(old.as_bytes()) {
            l.truncate(l.len() - old.len());
            l.extend_from_slice(format!("Include = {mirrorlist_build}").as_bytes());
        }
        out.extend_from_slice(&l);
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// awk `{ print } /^\[options\]$/ { print opts }`: the lines after every `[options]` line.
pub fn add_options(conf: &[u8], opts: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(conf.len() + opts.len() * 2);
    let body = conf.strip_suffix(b"\n").unwrap_or(conf);
    for line in body.split(|&b| b == b'\n') {
        out.extend_from_slice(line);
        out.push(b'\n');
        if line == b"[options]" {
            out.extend_from_slice(opts.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// The `[section]` names of a pacman.conf other than `options`, in order, deduplicated.
pub fn repo_sections(conf: &[u8]) -> Vec<String> {
    let mut repos: Vec<String> = Vec::new();
    for line in conf.split(|&b| b == b'\n') {
        let t = line.trim_ascii();
        if let Some(name) = t.strip_prefix(b"[").and_then(|r| r.strip_suffix(b"]")) {
            let name = String::from_utf8_lossy(name).into_owned();
            if name != "options" && !repos.contains(&name) {
                repos.push(name);
            }
        }
    }
    repos
}

/// `date -u -d @T '+%Y-%m-%d %H:%M:%S'`, libfaketime's absolute time format.
fn faketime_spec(epoch: i64) -> String {
    // rfc3339 gives `YYYY-MM-DDTHH:MM:SSZ`
    let s = repro_lock::types::rfc3339(epoch);
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

pub fn plan(input: &PlanInput) -> Result<Plan, BuildError> {
    let lock = input.lock;
    let l = input.layout;
    let recipe = &lock.recipe;
    let sde = recipe.source_date_epoch;
    if sde < 0 {
        return Err(BuildError::Invalid(format!(
            "source_date_epoch {sde} is before 1970"
        )));
    }
    if recipe.tar != "gnu-pax" {
        return Err(BuildError::Unsupported(format!(
            "the lock's tar dialect {:?}: only gnu-pax (GNU tar with the recipe's flags) is built",
            recipe.tar
        )));
    }
    if recipe.group.is_empty() {
        return Err(BuildError::Invalid(
            "the lock names nothing to install (recipe.group is empty)".into(),
        ));
    }
    for g in &recipe.group {
        repro_lock::types::check_name(g).map_err(BuildError::Invalid)?;
    }
    check_word("architecture", &recipe.arch)?;
    for r in &recipe.repos {
        check_word("repository", r)?;
    }
    for h in &input.hooks {
        if h.is_empty() || h == "." || h == ".." || h.contains('/') || h.contains('\0') {
            return Err(BuildError::Invalid(format!("hook name {h:?}")));
        }
    }
    let root = check_path(&l.root)?;
    let overlay = check_path(&l.overlay)?;
    let mirror_build = check_path(&l.mirrorlist_build)?;
    let repos_dir = check_path(&l.repos)?;
    let pkgcache = check_path(&l.pkgcache)?;
    let gnupg = check_path(&l.gnupg)?;
    let conf_build = check_path(&l.pacman_conf_build)?;
    let probe = check_path(&l.ldconfig_probe)?;

    let mut pacman_conf_rootfs = input.recipe.pacman_conf.clone();
    pacman_conf_rootfs.extend_from_slice(&input.recipe.noextract);
    let rewritten = rewrite_includes(&pacman_conf_rootfs, overlay, mirror_build);
    let opts = format!("CacheDir = {pkgcache}/\nGPGDir = {gnupg}/");
    let pacman_conf_build = add_options(&rewritten, &opts);

    let mut repos = repo_sections(&pacman_conf_build);
    for r in &repos {
        check_word("repository", r)?;
    }
    for r in &recipe.repos {
        if !repos.contains(r) {
            return Err(BuildError::Unsupported(format!(
                "the lock's repository {r} is not in the recipe's pacman.conf ({})",
                repos.join(", ")
            )));
        }
    }
    repos.dedup();

    let snapshot = recipe.archive_snapshot;
    let published = input.published_archive.trim_end_matches('/');
    repro_lock::types::check_url(published).map_err(BuildError::Invalid)?;
    let mut mirrorlist_rootfs =
        format!("Server = {published}/repos/{snapshot}/$repo/os/$arch\n").into_bytes();
    let overlay_mirrorlist = input.recipe.mirrorlist();
    if overlay_mirrorlist.is_empty() {
        // sed '1i…' on an empty file prints nothing
        mirrorlist_rootfs.clear();
    }
    mirrorlist_rootfs.extend_from_slice(overlay_mirrorlist);
    let mirrorlist_build = format!("Server = file://{repos_dir}/$repo/os/$arch\n").into_bytes();

    let env: Vec<(String, OsString)> = vec![
        ("PATH".into(), os(PATH)),
        ("TZ".into(), os("UTC")),
        ("LANG".into(), os("C.UTF-8")),
        ("HOME".into(), os("/root")),
        ("SOURCE_DATE_EPOCH".into(), os(sde.to_string())),
    ];

    let faketime = !input.pacman.honours_source_date_epoch();
    let mut pacman_env: Vec<(String, OsString)> = Vec::new();
    let mut argv: Vec<OsString> = ["fakechroot", "--", "fakeroot", "--"]
        .into_iter()
        .map(os)
        .collect();
    if faketime {
        let lib = input.faketime_lib.as_ref().ok_or_else(|| BuildError::Tool {
            tool: "libfaketime".into(),
            message: format!(
                "pacman {} writes the wall clock as the install date; libfaketime (Debian's faketime package) is needed to make it SOURCE_DATE_EPOCH",
                input.pacman
            ),
        })?;
        pacman_env.extend([
            ("FAKETIME".into(), os(faketime_spec(sde))),
            // monotonic clocks stay real so that download timeouts work
            ("FAKETIME_DONT_FAKE_MONOTONIC".into(), os("1")),
            ("DONT_FAKE_MONOTONIC".into(), os("1")),
            ("NO_FAKE_STAT".into(), os("1")),
            ("FAKETIME_NO_CACHE".into(), os("1")),
            ("REPRO_PRELOAD_ADD".into(), lib.as_os_str().to_owned()),
        ]);
        // Preloaded after libfakechroot and libfakeroot, inside their sessions: each
        // interposes with RTLD_NEXT, so the three chain.
        argv.extend(
            [
                "sh",
                "-c",
                r#"LD_PRELOAD="${LD_PRELOAD}${REPRO_PRELOAD_ADD:+:$REPRO_PRELOAD_ADD}" exec "$@""#,
                "sh",
            ]
            .into_iter()
            .map(os),
        );
    }
    // libalpm runs ldconfig "in the chroot"; the static ldconfig escapes fakechroot and
    // would rewrite the host's cache: a probe that only logs the call stands in.
    pacman_env.push((
        "FAKECHROOT_CMD_SUBST".into(),
        os(format!(
            "/sbin/ldconfig={probe}:/usr/sbin/ldconfig={probe}:/usr/bin/ldconfig={probe}"
        )),
    ));
    argv.extend(
        [
            "pacman",
            "-Sy",
            "-r",
            root,
            "--noconfirm",
            "--dbpath",
            &format!("{root}/var/lib/pacman"),
            "--config",
            conf_build,
            "--noscriptlet",
            "--logfile",
            "/dev/null",
            "--hookdir",
            &format!("{root}/alpm-hooks/usr/share/libalpm/hooks/"),
        ]
        .into_iter()
        .map(os),
    );
    if input.pacman >= PacmanVersion(7, 1, 0) {
        argv.push(os("--disable-sandbox-filesystem"));
    }
    argv.extend(recipe.group.iter().map(os));
    let pacman = Cmd {
        label: format!("pacman -Sy {}", recipe.group.join(" ")),
        argv,
        env: pacman_env,
    };

    let chroot = |label: &str, args: &[&str]| {
        let mut argv: Vec<OsString> = ["fakechroot", "--", "fakeroot", "--", "chroot", root]
            .into_iter()
            .map(os)
            .collect();
        argv.extend(args.iter().map(os));
        Step::Run(Cmd {
            label: label.to_string(),
            argv,
            env: Vec::new(),
        })
    };
    let run = |label: &str, args: Vec<OsString>| {
        Step::Run(Cmd {
            label: label.to_string(),
            argv: args,
            env: Vec::new(),
        })
    };
    let after = vec![
        chroot("update-ca-trust", &["update-ca-trust"]),
        chroot("pacman-key --init", &["pacman-key", "--init"]),
        chroot("pacman-key --populate", &["pacman-key", "--populate"]),
        // pacman-key --init makes a new secret key every run: none of the keyring ships.
        Step::ClearDir(l.root.join("etc/pacman.d/gnupg")),
        run(
            "touch every entry to SOURCE_DATE_EPOCH",
            vec![
                os("find"),
                os(root),
                os("-exec"),
                os("touch"),
                os("--no-dereference"),
                os(format!("--date=@{sde}")),
                os("{}"),
                os("+"),
            ],
        ),
        chroot(
            "systemd-sysusers",
            &["/usr/bin/systemd-sysusers", "--root", "/"],
        ),
        // no passwordless root (CVE-2019-5021)
        run(
            "lock root's password",
            vec![
                os("sed"),
                os("-i"),
                os("-e"),
                os("s/^root::/root:!:/"),
                os(format!("{root}/etc/shadow")),
            ],
        ),
    ];

    let ldconfig_probe = b"#!/bin/sh\necho \"repro-build: libalpm ran ldconfig ($0 $*) in the chroot (probe, host untouched)\" >&2\n".to_vec();

    Ok(Plan {
        source_date_epoch: sde,
        snapshot,
        env,
        umask: 0o022,
        pacman_conf_rootfs,
        pacman_conf_build,
        mirrorlist_rootfs,
        mirrorlist_build,
        repos,
        hooks: input.hooks.clone(),
        ldconfig_probe,
        faketime,
        pacman,
        after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacman_versions() {
        let v = PacmanVersion::parse(
            "\n .--.                  Pacman v6.0.2 - libalpm v13.0.2\n/ _.-' .-.",
        );
        assert_eq!(v, Some(PacmanVersion(6, 0, 2)));
        assert!(!PacmanVersion(6, 0, 2).honours_source_date_epoch());
        assert!(!PacmanVersion(7, 0, 0).honours_source_date_epoch());
        assert!(PacmanVersion(7, 1, 0).honours_source_date_epoch());
        assert_eq!(
            PacmanVersion::parse("Pacman v7.1"),
            Some(PacmanVersion(7, 1, 0))
        );
        assert_eq!(PacmanVersion::parse("pacman 6"), None);
    }

    #[test]
    fn faketime_format() {
        assert_eq!(faketime_spec(1_793_664_000), "2026-11-03 00:00:00");
        assert_eq!(faketime_spec(1_793_664_000 + 3723), "2026-11-03 01:02:03");
    }

    #[test]
    fn sections_and_options() {
        let conf = b"[options]\nA = 1\n#[testing]\n[core]\nInclude = x\n[extra]\n[options]\nB\n";
        assert_eq!(repo_sections(conf), ["core", "extra"]);
        assert_eq!(
            add_options(conf, "X = 1"),
            b"[options]\nX = 1\nA = 1\n#[testing]\n[core]\nInclude = x\n[extra]\n[options]\nX = 1\nB\n"
        );
    }

    #[test]
    fn unsafe_build_dirs_are_refused() {
        for bad in ["/a b/c", "relative", "/a#b", "/a|b", "/a\nb"] {
            assert!(check_path(Path::new(bad)).is_err(), "{bad:?}");
        }
        assert!(check_path(Path::new("/srv/out/work/build")).is_ok());
        assert!(check_word("repository", "core").is_ok());
        for bad in ["", "../x", ".hidden", "a/b", "a b"] {
            assert!(check_word("repository", bad).is_err(), "{bad:?}");
        }
    }
}
