use std::io;
use std::path::PathBuf;

/// Everything that can stop a plan or a write. Each variant names the input it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the tree failed (stat, readdir, readlink, xattrs, file contents).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing the archive (or a pipeline output) failed.
    #[error("writing {what}: {source}")]
    Write {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The tree holds something the dialect cannot represent the way its tool would.
    #[error("{}: {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// A file's size changed between planning and writing: the archive would be corrupt.
    #[error("{}: size changed while archiving (planned {planned} bytes, found {read})", path.display())]
    SizeChanged {
        path: PathBuf,
        planned: u64,
        read: u64,
    },
    /// The exclude list could not be read.
    #[error("exclude file {}: {source}", path.display())]
    Exclude {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// libzstd refused a parameter or failed while compressing.
    #[error("zstd: {0}")]
    Zstd(String),
    /// The written archive's size differs from the planned one (a bug, or the tree changed).
    #[error("archive size {actual} differs from the planned {planned}")]
    PlannedSize { planned: u64, actual: u64 },
    /// A pipeline stage failed or panicked.
    #[error("pipeline {stage}: {message}")]
    Pipeline {
        stage: &'static str,
        message: String,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn write(what: impl Into<String>, source: io::Error) -> Self {
        Error::Write {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn unsupported(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Unsupported {
            path: path.into(),
            what: what.into(),
        }
    }
}
