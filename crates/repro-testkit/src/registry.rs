//! A real registry for tests: Debian's `docker-registry` (distribution 2.8) on 127.0.0.1.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::http;
use crate::util::free_port;

/// Path of the registry binary (apt package `docker-registry`).
pub const DOCKER_REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// Path of `htpasswd` (apt package `apache2-utils`).
pub const HTPASSWD_BIN: &str = "/usr/bin/htpasswd";

/// How long [`Registry::start`] waits for `GET /v2/` to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `docker-registry` on 127.0.0.1:PORT with its own storage in a tempdir.
/// Killed (by pid) and its storage removed on drop.
pub struct Registry {
    child: Child,
    port: u16,
    dir: TempDir,
    credentials: Option<(String, String)>,
}

impl Registry {
    /// An anonymous registry (no auth; anyone can pull and push).
    pub fn start() -> Registry {
        Self::spawn(None)
    }

    /// A registry requiring HTTP basic auth with one user (bcrypt htpasswd file made with
    /// `htpasswd -Bbn`). Anonymous requests get 401 with `WWW-Authenticate: Basic`.
    pub fn start_with_basic_auth(user: &str, pass: &str) -> Registry {
        Self::spawn(Some((user.to_string(), pass.to_string())))
    }

    fn spawn(credentials: Option<(String, String)>) -> Registry {
        assert!(
            Path::new(DOCKER_REGISTRY_BIN).exists(),
            "repro-testkit: {DOCKER_REGISTRY_BIN} not found; install the Debian package `docker-registry` (see .ci/run)"
        );
        let dir = tempfile::Builder::new()
            .prefix("repro-testkit-registry-")
            .tempdir()
            .unwrap_or_else(|e| {
                panic!("repro-testkit: cannot create a tempdir for the registry: {e}")
            });
        let htpasswd = credentials.as_ref().map(|(user, pass)| {
            let path = dir.path().join("htpasswd");
            write_htpasswd(&path, user, pass);
            path
        });
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage)
            .unwrap_or_else(|e| panic!("repro-testkit: cannot create {}: {e}", storage.display()));

        // The port is found by bind-and-release, so another process may grab it before the
        // registry binds it: retry a few times on "address already in use".
        let mut last_failure = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            let config_path = dir.path().join("config.yml");
            fs::write(
                &config_path,
                config_yaml(port, &storage, htpasswd.as_deref()),
            )
            .unwrap_or_else(|e| {
                panic!("repro-testkit: cannot write {}: {e}", config_path.display())
            });
            let log_path = dir.path().join("registry.log");
            let mut child = spawn_registry(dir.path(), &config_path, &log_path);
            match wait_ready(&mut child, port, &log_path) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        dir,
                        credentials,
                    };
                }
                Err(failure) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !failure.contains("address already in use") {
                        panic!(
                            "repro-testkit: docker-registry did not start on 127.0.0.1:{port}: {failure}"
                        );
                    }
                    last_failure = failure;
                }
            }
        }
        panic!(
            "repro-testkit: docker-registry could not get a free port after 5 attempts: {last_failure}"
        );
    }

    /// "127.0.0.1:PORT"
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// "http://127.0.0.1:PORT"
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Process id of the registry.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (user, password) for a basic-auth registry.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// "user:pass" as skopeo's `--creds` wants it.
    pub fn creds_arg(&self) -> Option<String> {
        self.credentials.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The registry's storage root (filesystem driver `rootdirectory`).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The registry's log (stdout and stderr) so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// "docker://127.0.0.1:PORT/<name_ref>" for skopeo, e.g. `docker_ref("test/img:latest")`.
    pub fn docker_ref(&self, name_ref: &str) -> String {
        format!("docker://{}/{}", self.host(), name_ref)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to exactly this pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_registry(dir: &Path, config_path: &Path, log_path: &Path) -> Child {
    let log = fs::File::create(log_path)
        .unwrap_or_else(|e| panic!("repro-testkit: cannot create {}: {e}", log_path.display()));
    let log2 = log
        .try_clone()
        .unwrap_or_else(|e| panic!("repro-testkit: cannot duplicate a file handle: {e}"));
    let mut cmd = Command::new(DOCKER_REGISTRY_BIN);
    cmd.arg("serve")
        .arg(config_path)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // The registry lets REGISTRY_* variables override its config file; keep ours.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("REGISTRY_") {
            cmd.env_remove(&key);
        }
    }
    cmd.spawn()
        .unwrap_or_else(|e| panic!("repro-testkit: cannot run {DOCKER_REGISTRY_BIN}: {e}"))
}

/// Polls `GET /v2/` until it answers 200 or 401. Err(description with the registry log).
fn wait_ready(child: &mut Child, port: u16, log_path: &Path) -> Result<(), String> {
    let host = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(format!(
                "the registry exited with {status}; its output:\n{log}"
            ));
        }
        let last = match http::request_with_timeout(
            &host,
            "GET",
            "/v2/",
            &[],
            &[],
            Duration::from_secs(2),
        ) {
            Ok(resp) if resp.status == 200 || resp.status == 401 => return Ok(()),
            Ok(resp) => format!("GET /v2/ answered {}", resp.status),
            Err(e) => format!("GET /v2/ failed: {e}"),
        };
        if Instant::now() >= deadline {
            let log = fs::read_to_string(log_path).unwrap_or_default();
            return Err(format!(
                "not ready after {START_TIMEOUT:?} ({last}); its output:\n{log}"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn write_htpasswd(path: &Path, user: &str, pass: &str) {
    let out = Command::new(HTPASSWD_BIN)
        .args(["-Bbn", user, pass])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("repro-testkit: cannot run {HTPASSWD_BIN} (Debian package apache2-utils): {e}")
        });
    assert!(
        out.status.success(),
        "repro-testkit: htpasswd -Bbn failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // htpasswd -n prints "user:hash\n\n"; keep the one line.
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("repro-testkit: htpasswd printed no entry"));
    fs::write(path, format!("{line}\n"))
        .unwrap_or_else(|e| panic!("repro-testkit: cannot write {}: {e}", path.display()));
}

fn config_yaml(port: u16, storage: &Path, htpasswd: Option<&Path>) -> String {
    let mut config = format!(
        "version: 0.1\n\
         log:\n  level: warn\n  formatter: text\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: \"{storage}\"\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: repro-testkit-not-a-secret\n  \
         headers:\n    X-Content-Type-Options: [nosniff]\n",
        storage = storage.display(),
    );
    if let Some(htpasswd) = htpasswd {
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: repro-testkit\n    path: \"{}\"\n",
            htpasswd.display()
        ));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_essentials() {
        let c = config_yaml(
            5123,
            Path::new("/tmp/x/storage"),
            Some(Path::new("/tmp/x/htpasswd")),
        );
        assert!(c.contains("addr: 127.0.0.1:5123"));
        assert!(c.contains("rootdirectory: \"/tmp/x/storage\""));
        assert!(c.contains("delete:\n    enabled: true"));
        assert!(c.contains("level: warn"));
        assert!(c.contains("path: \"/tmp/x/htpasswd\""));
        assert!(!config_yaml(1, Path::new("/s"), None).contains("auth:"));
    }
}
