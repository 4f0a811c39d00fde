//! The engine's error type. Each variant has structured fields; [`ErrorKind`] classifies
//! it so the CLI can pick a documented exit code without looking at message text.

use coop_formats::id::Id;
use std::path::PathBuf;

/// Coarse classes of failure, one per documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something the user asked for does not make sense.
    Usage,
    /// No coop repository at the given location.
    RepoNotFound,
    /// The key given cannot open what was asked (wrong identity, writer key only, …).
    AccessDenied,
    /// Stored data failed verification: corrupt, truncated, forged.
    Integrity,
    /// A snapshot, path or tenant that does not exist.
    NotFound,
    /// A source (e.g. `--stdin-from-command`) failed.
    SourceFailed,
    /// The store could not be reached or written.
    Store,
    /// Local I/O (the files being backed up or restored, the catalog).
    Io,
    /// A member's quota would be exceeded.
    Quota,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("no coop repository at {url} (run `coop init --repo {url}` to create one)")]
    RepoNotFound { url: String },
    #[error("a coop repository already exists at {url}")]
    RepoExists { url: String },
    #[error("repository object {name} is damaged: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("{what}")]
    AccessDenied { what: String },
    #[error("{what} not found{hint}")]
    NotFound { what: String, hint: String },
    #[error("{what}")]
    Usage { what: String },
    #[error("the source command `{command}` failed ({status}); no snapshot was written")]
    SourceFailed { command: String, status: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("blob {id} is not in the index of this tenant (repository incomplete)")]
    MissingBlob { id: Id },
    #[error(transparent)]
    Blob(#[from] coop_formats::blob::BlobError),
    #[error(transparent)]
    Tree(#[from] coop_formats::tree::TreeError),
    #[error("backup interrupted: {reason}")]
    Aborted { reason: String },
    #[error("{tenant} is over its quota: {used} bytes stored (with this backup), quota {quota}; no snapshot was written. Ask an admin to raise it, or forget and prune old snapshots")]
    Quota {
        tenant: String,
        used: u64,
        quota: u64,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(_) => ErrorKind::Store,
            Error::RepoNotFound { .. } => ErrorKind::RepoNotFound,
            Error::RepoExists { .. } | Error::Usage { .. } => ErrorKind::Usage,
            Error::Corrupt { .. } | Error::MissingBlob { .. } | Error::Blob(_) | Error::Tree(_) => {
                ErrorKind::Integrity
            }
            Error::AccessDenied { .. } => ErrorKind::AccessDenied,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::SourceFailed { .. } => ErrorKind::SourceFailed,
            Error::Io { .. } | Error::Catalog(_) | Error::Aborted { .. } => ErrorKind::Io,
            Error::Quota { .. } => ErrorKind::Quota,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupt(name: impl Into<String>, reason: impl ToString) -> Self {
        Error::Corrupt {
            name: name.into(),
            reason: reason.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    /// An I/O error without a path; callers attach the path where they know it.
    fn from(source: std::io::Error) -> Self {
        Error::Io {
            path: PathBuf::new(),
            source,
        }
    }
}
