//! The engine's error type. Each variant has structured fields and keeps its cause as a
//! `source`; [`ErrorKind`] classifies it so the CLI can pick a documented exit code without
//! looking at message text. Engine messages never name a CLI flag: the CLI adds those hints.

use coop_formats::id::Id;
use std::path::PathBuf;

/// A cause kept with an error: another error, or a sentence.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Coarse classes of failure, one per documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Something the user asked for does not make sense.
    Usage,
    /// No coop repository at the given location.
    RepoNotFound,
    /// The key given cannot open what was asked (wrong identity, writer key only, …).
    AccessDenied,
    /// Stored data failed verification: corrupt, truncated, forged, or rolled back.
    Integrity,
    /// A snapshot, path, member or tenant that does not exist.
    NotFound,
    /// A source (a command whose output is backed up) failed.
    SourceFailed,
    /// The store could not be reached, read or written, or changed under us.
    Store,
    /// Local I/O (the files being backed up or restored, the catalog, the cache).
    Io,
    /// A member's quota would be exceeded.
    Quota,
    /// An access could not be witnessed in time (the access log's quorum); nothing was read.
    NotWitnessed,
    /// Encryption or signing failed (a bug or a broken key, never bad input).
    Crypto,
    /// A bug: something that should not happen.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("no coop repository at {url}")]
    RepoNotFound { url: String },
    #[error("a coop repository already exists at {url}")]
    RepoExists { url: String },
    #[error("repository object {object} is damaged: {cause}")]
    Damaged {
        object: String,
        #[source]
        cause: Cause,
    },
    #[error("{what}")]
    AccessDenied { what: String },
    #[error("your identity is not a recipient of tenant {tenant:?} in this repository")]
    NotRecipient { tenant: String },
    /// An admin identity (it opens tenant coop) that does not open a member's tenant: after
    /// the recovery split no admin key does, by design.
    #[error("your admin identity does not open {tenant:?}: member tenants are not encrypted to any admin key (after `coop recovery init` only the member's keys and a k-of-n recovery open them)")]
    AdminNotMemberReader { tenant: String },
    /// An archive given as a member's export that is not in the exact format `coop export`
    /// writes (a tar re-packed by another tool, PAX headers, …): refused as a whole.
    #[error("{path} is not a coop export in the format coop writes: {why}")]
    NotCoopExport { path: String, why: String },
    #[error("a writer key can only add backups to {tenant:?}; reading it needs an identity that is a recipient of the tenant")]
    WriterCannotRead { tenant: String },
    #[error("{what} not found")]
    NotFound { what: String },
    #[error(
        "snapshot prefix {prefix:?} is ambiguous: {matches} snapshots match; give more digits"
    )]
    AmbiguousSnapshot { prefix: String, matches: usize },
    #[error("nothing to back up: no paths and no commands")]
    NothingToBackUp,
    #[error("nothing to back up for member {member}: none of {paths} exists")]
    NothingForMember { member: String, paths: String },
    #[error("{what}")]
    Invalid { what: String },
    #[error("the source command `{command}` failed ({status}); no snapshot was written")]
    SourceFailed { command: String, status: String },
    #[error("the {which} hook `{command}` failed ({status})")]
    HookFailed {
        which: &'static str,
        command: String,
        status: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("catalog: {0}")]
    Catalog(#[from] rusqlite::Error),
    #[error("blob {id} is not in the index of this tenant (repository incomplete)")]
    MissingBlob { id: Id },
    #[error("{what}")]
    Conflict { what: String },
    #[error("the access was logged, but only {have} of the {need} witnesses needed cosigned it within {waited_secs} s; nothing was read (one of them must be a witness the asking admin did not adopt: SPEC 24.5)")]
    LogQuorum {
        have: u32,
        need: u32,
        waited_secs: u64,
    },
    #[error("{what} was not cosigned by the {need} witnesses needed within {waited_secs} s (the site agents carry the log to the witnesses every log_sync_interval; or run `coop replicate` to a witness site and `coop log witness` there); {outcome}")]
    NotWitnessed {
        what: String,
        need: u32,
        waited_secs: u64,
        outcome: String,
    },
    #[error("{tenant} is over its quota: {used} bytes stored (with this backup), quota {quota}; no snapshot was written")]
    Quota {
        tenant: String,
        used: u64,
        quota: u64,
    },
    #[error("group {group} is over its quota: {used} bytes stored by its members together (with this backup), quota {quota}; no snapshot was written")]
    GroupQuota {
        group: String,
        used: u64,
        quota: u64,
    },
    /// The registry names keys for a member that the member tenant did not sign, or other
    /// keys than this client pinned for that member: nothing is encrypted to them.
    #[error("member {member:?}: {what}; nothing was written for this member")]
    MemberKeysChanged { member: String, what: String },
    #[error("{what} failed: {cause}")]
    Crypto {
        what: &'static str,
        #[source]
        cause: Cause,
    },
    #[error("internal error: {what}")]
    Internal { what: String },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(_) | Error::Conflict { .. } => ErrorKind::Store,
            Error::RepoNotFound { .. } => ErrorKind::RepoNotFound,
            Error::RepoExists { .. }
            | Error::Invalid { .. }
            | Error::AmbiguousSnapshot { .. }
            | Error::NothingToBackUp => ErrorKind::Usage,
            Error::Damaged { .. }
            | Error::MissingBlob { .. }
            | Error::NotCoopExport { .. }
            | Error::MemberKeysChanged { .. } => ErrorKind::Integrity,
            Error::AccessDenied { .. }
            | Error::NotRecipient { .. }
            | Error::AdminNotMemberReader { .. }
            | Error::WriterCannotRead { .. } => ErrorKind::AccessDenied,
            Error::NotFound { .. } | Error::NothingForMember { .. } => ErrorKind::NotFound,
            Error::SourceFailed { .. } | Error::HookFailed { .. } => ErrorKind::SourceFailed,
            Error::Io { .. } | Error::Catalog(_) => ErrorKind::Io,
            Error::Quota { .. } | Error::GroupQuota { .. } => ErrorKind::Quota,
            Error::LogQuorum { .. } | Error::NotWitnessed { .. } => ErrorKind::NotWitnessed,
            Error::Crypto { .. } => ErrorKind::Crypto,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Stored data that failed verification: `object` names it (its full name or path).
    pub(crate) fn damaged(object: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Damaged {
            object: object.into(),
            cause: cause.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Error::Invalid { what: what.into() }
    }

    pub(crate) fn crypto(what: &'static str, cause: impl Into<Cause>) -> Self {
        Error::Crypto {
            what,
            cause: cause.into(),
        }
    }

    pub(crate) fn internal(what: impl Into<String>) -> Self {
        Error::Internal { what: what.into() }
    }

    /// Whether the store said "not there" (a missing repository or object).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_not_found())
    }
}

/// The error and its causes as one line, each cause shown once (a cause whose text the
/// message before it already contains is not repeated). For logs and job records.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cur = err.source();
    }
    out
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_shown_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no way");
        let e = Error::io("/srv/x", io);
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(chain(&e), "/srv/x: no way");
        let d = Error::damaged("pack abc", "the table is truncated");
        assert_eq!(d.kind(), ErrorKind::Integrity);
        assert_eq!(
            chain(&d),
            "repository object pack abc is damaged: the table is truncated"
        );
    }
}
