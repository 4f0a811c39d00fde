//! Exit codes, one per condition. Documented in README.md and `coop --help`.

use coop_agent::ErrorKind;

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

fn kind(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain()
        .find_map(|c| c.downcast_ref::<coop_agent::Error>())
        .map(|e| e.kind())
}

pub fn code_for(e: &anyhow::Error) -> i32 {
    match kind(e) {
        Some(ErrorKind::Usage) => USAGE,
        Some(ErrorKind::RepoNotFound) => REPO_NOT_FOUND,
        Some(ErrorKind::AccessDenied) => ACCESS_DENIED,
        Some(ErrorKind::Integrity) => INTEGRITY,
        Some(ErrorKind::NotFound) => NOT_FOUND,
        Some(ErrorKind::SourceFailed) => SOURCE_FAILED,
        Some(ErrorKind::Store) => STORE,
        Some(ErrorKind::Io) => IO,
        Some(ErrorKind::Quota) => QUOTA,
        None => UNEXPECTED,
    }
}

pub fn hint_for(e: &anyhow::Error) -> Option<&'static str> {
    match kind(e)? {
        ErrorKind::Integrity => Some(
            "stored data failed verification; nothing was changed. Restore from another site's replica, \
             or report the object named above.",
        ),
        ErrorKind::AccessDenied => Some("check --identity-file / COOP_IDENTITY_FILE (or --writer-key for backups)."),
        ErrorKind::Store => Some("the store could not be read or written; check the path, permissions and free space, then retry."),
        _ => None,
    }
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
