use std::path::PathBuf;

/// Everything that stops a build. Each variant names the input or step it is about.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A pinned package is not in the content store.
    #[error(
        "package {name} {version}: {sha256} is not in the content store {store} (run `repro-image fetch` first)"
    )]
    Missing {
        name: String,
        version: String,
        sha256: String,
        store: PathBuf,
    },
    /// A store file is not what the lock pins (changed on disk after it was fetched).
    #[error("{0}")]
    Tampered(Box<Tampered>),
    /// A package file is not a readable pacman package.
    #[error("package {name} {version}: {message}")]
    Package {
        name: String,
        version: String,
        message: String,
    },
    /// The lock asks for something this build does not do.
    #[error("{0}")]
    Unsupported(String),
    /// A value of the lock or the options cannot be used safely (in a path, URL or config).
    #[error("{0}")]
    Invalid(String),
    /// A tool the recipe runs is missing or printed something unexpected.
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    /// A recipe step exited with failure; its output is in the build log.
    #[error("recipe step `{step}` failed ({status}); see {}:\n{tail}", log.display())]
    Step {
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the rootfs tarball: {0}")]
    Tar(#[from] repro_tar::Error),
    #[error(transparent)]
    Store(#[from] repro_store::StoreError),
}

pub(crate) fn io_at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A package file in the store that is not the pinned one.
#[derive(Debug)]
pub struct Tampered {
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    pub expected: String,
    pub expected_size: u64,
    pub actual: String,
    pub size: u64,
}

impl std::fmt::Display for Tampered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "package {} {}: {} does not match the lock (sha256 {}, {} bytes; the lock pins {}, {} bytes); nothing was built",
            self.name,
            self.version,
            self.path.display(),
            self.actual,
            self.size,
            self.expected,
            self.expected_size
        )
    }
}
