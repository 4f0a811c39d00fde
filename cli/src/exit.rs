//! Exit codes, one per condition (documented in README.md and `coop --help`), and the hints
//! that name the flags and commands the engine's messages leave out.

use coop_agent::{Error, ErrorKind};

pub const OK: i32 = 0;
pub const UNEXPECTED: i32 = 1;
pub const USAGE: i32 = 2;
pub const WARNINGS: i32 = 3;
pub const REPO_NOT_FOUND: i32 = 4;
pub const ACCESS_DENIED: i32 = 5;
pub const INTEGRITY: i32 = 6;
pub const PARTIAL: i32 = 7;
pub const NOT_FOUND: i32 = 8;
pub const SOURCE_FAILED: i32 = 9;
pub const STORE: i32 = 10;
pub const IO: i32 = 11;
pub const QUOTA: i32 = 12;
pub const NOT_WITNESSED: i32 = 13;

/// The engine error in a chain, if any.
pub fn engine_error(e: &anyhow::Error) -> Option<&Error> {
    e.chain().find_map(|c| c.downcast_ref::<Error>())
}

/// The exit code of an error kind.
pub fn code_of(kind: ErrorKind) -> i32 {
    match kind {
        ErrorKind::Usage => USAGE,
        ErrorKind::RepoNotFound => REPO_NOT_FOUND,
        ErrorKind::AccessDenied => ACCESS_DENIED,
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::SourceFailed => SOURCE_FAILED,
        ErrorKind::Store => STORE,
        ErrorKind::Io => IO,
        ErrorKind::Quota => QUOTA,
        ErrorKind::NotWitnessed => NOT_WITNESSED,
        ErrorKind::Crypto | ErrorKind::Internal => UNEXPECTED,
    }
}

pub fn code_for(e: &anyhow::Error) -> i32 {
    match engine_error(e) {
        Some(err) => code_of(err.kind()),
        None if e.chain().any(|c| c.downcast_ref::<clap::Error>().is_some()) => USAGE,
        None => UNEXPECTED,
    }
}

/// What to do next, where coop can say.
pub fn hint_for(e: &anyhow::Error, repo: Option<&str>) -> Option<String> {
    let err = engine_error(e)?;
    let s3_without_keys = repo.is_some_and(|r| r.starts_with("s3://"))
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_none();
    Some(match err {
        Error::RepoNotFound { url } => format!("create one with `coop init --repo {url}`, or check --repo / COOP_REPO"),
        Error::NotRecipient { tenant } if tenant.starts_with("member/") => format!(
            "check --identity-file / COOP_IDENTITY_FILE; either your key is not one of the readers of {tenant} \
             (ask an admin to add it with `coop member recipients`), or there is no such member (ask an admin)"
        ),
        Error::AdminNotMemberReader { tenant } => format!(
            "to back up into {tenant}, use the site agent's writer key: --writer-key FILE (it writes member \
             tenants without reading them); to read it, the member's own key or `coop recovery request`"
        ),
        Error::NotCoopExport { .. } => "verify the archive exactly as `coop export` wrote it (a .tar or its \
             unpacked directory); one re-packed by another tool cannot be verified: ask for a new export"
            .into(),
        Error::NotRecipient { .. } => "check --identity-file / COOP_IDENTITY_FILE (the default is ~/.config/coop/identity.txt)".into(),
        Error::WriterCannotRead { .. } => "read with an identity: --identity-file FILE (or COOP_IDENTITY_FILE), without --writer-key".into(),
        Error::NothingToBackUp => "give paths to back up, or --stdin-from-command 'COMMAND'".into(),
        Error::AmbiguousSnapshot { .. } => "list them with `coop snapshots`".into(),
        Error::NotFound { what } if what.starts_with("snapshot") || what.starts_with("a snapshot") => {
            "list them with `coop snapshots` (narrow `latest` with --host, --path, --tag)".into()
        }
        Error::Quota { tenant, .. } => format!(
            "an admin raises it with `coop member quota {} SIZE`; or forget and prune old snapshots of {tenant}",
            tenant.strip_prefix("member/").unwrap_or(tenant)
        ),
        Error::GroupQuota { group, .. } => format!(
            "an admin raises it with `coop group quota {group} SIZE`; or the group's members forget and prune old snapshots"
        ),
        // Another process changed the same thing at once: the message says what to do.
        Error::Conflict { .. } => return None,
        Error::Store(_) if s3_without_keys => "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL, AWS_REGION for Garage or MinIO), or put them in the agent config's s3 = { … }".into(),
        _ => match err.kind() {
            ErrorKind::Integrity => "stored data failed verification; nothing was changed. `coop check` says which objects \
                 to restore from another site's replica (damaged in storage) and which to delete (junk no coop wrote).".into(),
            ErrorKind::AccessDenied => "check --identity-file / COOP_IDENTITY_FILE (or --writer-key for backups).".into(),
            ErrorKind::Store => "the store could not be read or written; check the location, credentials, permissions and free space, then retry.".into(),
            ErrorKind::Internal | ErrorKind::Crypto => "this is a bug in coop; please report it with the message above.".into(),
            _ => return None,
        },
    })
}

/// The error and its causes, each cause shown once (a cause whose text the message before
/// it already contains is not repeated).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
