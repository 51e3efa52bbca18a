//! The execution edge: files written with explicit modes, commands run with the plan's
//! cleared environment and umask, their output appended to the build log.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{BuildError, io_at};
use crate::plan::{Cmd, Plan};

/// The build log: every command's output, with a header line per step.
pub struct Log {
    pub path: PathBuf,
    file: File,
}

impl Log {
    pub fn create(path: &Path) -> Result<Log, BuildError> {
        let file = File::create(path).map_err(io_at(path))?;
        Ok(Log {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn line(&mut self, text: &str) -> Result<(), BuildError> {
        writeln!(self.file, "repro-build: {text}").map_err(io_at(&self.path))
    }

    fn clone_file(&self) -> Result<File, BuildError> {
        self.file.try_clone().map_err(io_at(&self.path))
    }

    /// The last `n` lines, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
            let mut bytes = Vec::new();
            let _ = f.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A command with the plan's environment (nothing inherited) and umask.
pub fn command(plan: &Plan, argv: &[&OsStr], extra: &[(String, std::ffi::OsString)]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..])
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .envs(extra.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    let umask = plan.umask as libc::mode_t;
    // SAFETY: umask(2) is async-signal-safe and touches only the child's state.
    unsafe {
        c.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    c
}

/// Run a recipe command; its output goes to the log.
pub fn run(plan: &Plan, cmd: &Cmd, cwd: &Path, log: &mut Log) -> Result<(), BuildError> {
    log.line(&cmd.label)?;
    let argv: Vec<&OsStr> = cmd.argv.iter().map(|a| a.as_os_str()).collect();
    let mut c = command(plan, &argv, &cmd.env);
    c.current_dir(cwd)
        .stdout(Stdio::from(log.clone_file()?))
        .stderr(Stdio::from(log.clone_file()?));
    let status = c.status().map_err(|e| BuildError::Tool {
        tool: argv[0].to_string_lossy().into_owned(),
        message: format!("cannot run it: {e}"),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Step {
            step: cmd.label.clone(),
            status: status.to_string(),
            log: log.path.clone(),
            tail: log.tail(15),
        })
    }
}

/// Run a command and return its stdout (for versions and gpg listings).
pub fn output(plan: &Plan, argv: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, BuildError> {
    let args: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
    let mut c = command(plan, &args, &[]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    if stdin.is_some() {
        c.stdin(Stdio::piped());
    }
    let tool = || argv.join(" ");
    let mut child = c.spawn().map_err(|e| BuildError::Tool {
        tool: tool(),
        message: format!("cannot run it: {e}"),
    })?;
    if let (Some(bytes), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(bytes).map_err(|e| BuildError::Tool {
            tool: tool(),
            message: format!("writing its input: {e}"),
        })?;
    }
    let out = child.wait_with_output().map_err(|e| BuildError::Tool {
        tool: tool(),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(BuildError::Tool {
            tool: tool(),
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(out.stdout)
}

/// `mkdir -p` with every created directory 0755 (whatever this process's umask).
pub fn mkdir_p(path: &Path) -> Result<(), BuildError> {
    let mut missing = Vec::new();
    let mut p = path;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    for d in missing.iter().rev() {
        fs::create_dir(d).map_err(io_at(d))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(io_at(d))?;
    }
    Ok(())
}

/// Write a file with an exact mode (its parents 0755).
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        mkdir_p(parent)?;
    }
    fs::write(path, bytes).map_err(io_at(path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

pub fn symlink_at(target: &Path, link: &Path) -> Result<(), BuildError> {
    if let Some(parent) = link.parent() {
        mkdir_p(parent)?;
    }
    if fs::symlink_metadata(link).is_ok() {
        fs::remove_file(link).map_err(io_at(link))?;
    }
    symlink(target, link).map_err(io_at(link))
}

/// `rm -rf DIR/*`: every entry but the hidden ones (the shell's `*` skips them).
pub fn clear_dir(dir: &Path) -> Result<(), BuildError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_at(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_at(dir))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let p = entry.path();
        let ft = entry.file_type().map_err(io_at(&p))?;
        if ft.is_dir() {
            fs::remove_dir_all(&p).map_err(io_at(&p))?;
        } else {
            fs::remove_file(&p).map_err(io_at(&p))?;
        }
    }
    Ok(())
}
