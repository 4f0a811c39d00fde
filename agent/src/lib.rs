//! The coop engine: stores, keys, the repository, backup, restore, maintenance and the agent.
//!
//! The CLI (`coop-cli`) is a thin layer over this crate. Everything here is synchronous
//! from the caller's point of view; store I/O runs on an internal tokio runtime.
//!
//! Modules, in layers from the bottom up; each uses only its own layer and those below it,
//! and no module uses itself through others. [`layering`] lists the layers and its tests
//! check both rules on the sources:
//!
//! | layer | modules |
//! |---|---|
//! | base | [`layout`] (object kinds and paths), [`damage`], [`fault`], [`progress`], [`chunker`], [`fsx`] (descriptor-relative calls), [`store`] (object storage), [`error`], [`state`] (client state, rollback detection) |
//! | local | [`keys`] (identities, writer keys, a tenant's key material), [`patterns`], [`recipes`], [`catalog`], [`history`] |
//! | repository | [`repo`] (config, objects by kind, keyrings), [`control`] (authority-signed control objects), [`lock`], [`packtable`], [`index`] |
//! | access log | [`log`] (append, witness, verify, proofs, deletions) |
//! | trust | [`registry`] (member registry), [`tenant`] (keys from what the caller holds), [`writers`] (writer list, whose logs count), [`shares`] (recovery shares), [`members`], [`admins`] (admins as persons), [`groups`], [`read`] (verified blobs and trees), [`access`] (log before access) |
//! | data operations | [`mod@backup`], [`mod@restore`], [`snapshots`], [`mod@export`], [`recovery`] |
//! | maintenance and audit | [`mod@check`], [`mod@forget`], [`mod@prune`], [`usage`], [`mod@replicate`] |
//! | the agent | [`settings`] (agent.toml, typed), [`daemon`], [`report`] |
//!
//! ## The operations
//!
//! The entry points of the operations are re-exported at the crate root with their options
//! and results; the modules hold the rest (and keep their paths). An operation on a tenant
//! opens the repository, takes the tenant's keys from what the caller holds, and runs:
//!
//! | operation | entry point | takes → gives |
//! |---|---|---|
//! | open a repository | [`Repo::open_with`], [`tenant_keys`] | [`OpenOptions`] → [`Repo`]; an [`Access`] → [`TenantKeys`] |
//! | list snapshots | [`snapshot_view`] | → [`SnapshotView`] (its entries: [`SnapshotEntry`]) |
//! | backup | [`fn@backup`] | [`BackupOptions`] → [`BackupOutcome`] |
//! | restore | [`fn@restore`] (a [`BlobReader`] over [`load_index`]) | [`RestoreOptions`], a [`RestoreRoot`] → [`RestoreReport`] |
//! | export | [`fn@export`] | a [`Target`] → [`ExportReport`] |
//! | verify an export | [`verify`] | [`VerifyOptions`] → [`VerifyReport`] |
//! | check | [`fn@check`] | a [`Subset`] to read → [`CheckReport`] |
//! | prune | [`fn@prune`] | [`PruneOptions`] → [`PruneReport`] |
//! | forget | [`fn@forget`] | a [`Policy`], [`GroupBy`] → [`ForgetReport`] |
//! | replicate | [`fn@replicate`] | two [`Store`]s, [`ReplicateOptions`] → [`ReplicateReport`] |
//! | report | [`gather_report`] | [`ReportSources`], [`ReportOptions`] → [`Report`] (rendered by [`report::html`] and [`report::text`]) |
//! | the access log | [`log_append`], [`log_verify`] (whom to trust: [`log_trust`]) | an [`Actor`]'s entries → [`Appended`]; → [`LogVerifyReport`] |
//!
//! Long operations report through a [`Progress`]; every error is an [`Error`] with an
//! [`ErrorKind`].
//!
//! ```no_run
//! use coop_agent::{snapshot_view, tenant_keys, Access, Repo};
//!
//! /// How many snapshots tenant `coop` of the repository at `url` has.
//! fn snapshots(url: &str, access: &Access) -> Result<usize, coop_agent::Error> {
//!     let repo = Repo::open(url)?;
//!     let keys = tenant_keys(&repo, access, "coop")?;
//!     Ok(snapshot_view(&repo, &keys)?.listing.entries.len())
//! }
//! ```

pub mod access;
pub mod admins;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod control;
pub mod daemon;
pub mod damage;
pub mod error;
pub mod export;
pub mod fault;
pub mod forget;
pub mod fsx;
pub mod groups;
pub mod history;
pub mod index;
pub mod keys;
pub mod layering;
pub mod layout;
pub mod lock;
pub mod log;
pub mod members;
pub mod packtable;
pub mod par;
pub mod patterns;
pub mod progress;
pub mod prune;
pub mod read;
pub mod recipes;
pub mod recovery;
pub mod registry;
pub mod replicate;
pub mod repo;
pub mod report;
pub mod reshare;
pub mod restore;
pub mod settings;
pub mod shares;
pub mod snapshots;
pub mod state;
pub mod store;
pub mod tenant;
pub mod usage;
pub mod writers;

pub use error::{Error, ErrorKind};

// The facade: each operation's entry point with its options and result (see the crate docs).
pub use backup::{backup, BackupOptions, BackupOutcome};
pub use check::{check, CheckReport, Subset};
// (`export::verify` and `index::load` are modules too: the functions by their own paths.)
pub use export::verify::verify;
pub use export::{export, ExportReport, Target, VerifyOptions, VerifyReport};
pub use forget::{forget, ForgetReport, GroupBy, Policy};
pub use index::load::load as load_index;
pub use keys::{Access, TenantKeys};
pub use log::{
    append as log_append, verify as log_verify, Actor, Appended, VerifyReport as LogVerifyReport,
};
pub use progress::Progress;
pub use prune::{prune, PruneOptions, PruneReport};
pub use read::BlobReader;
pub use replicate::{replicate, ReplicateOptions, ReplicateReport};
pub use repo::{OpenOptions, Repo};
pub use report::{
    gather as gather_report, Options as ReportOptions, Report, Sources as ReportSources,
};
pub use restore::{restore, RestoreOptions, RestoreReport, RestoreRoot};
pub use snapshots::{view as snapshot_view, Entry as SnapshotEntry, View as SnapshotView};
pub use store::Store;
pub use tenant::keys as tenant_keys;
pub use writers::log_trust;

/// Worker threads to use: `requested`, or one per core when it is 0.
pub fn workers(requested: usize) -> usize {
    if requested > 0 {
        requested
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    }
}

/// The program string recorded in snapshots.
pub const PROGRAM: &str = concat!("coop ", env!("CARGO_PKG_VERSION"));

/// The current time as RFC 3339 with seconds (keyrings, registry, manifests).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Unix seconds as RFC 3339 (UTC, whole seconds); empty for a time chrono cannot show.
pub fn unix_rfc3339(t: i64) -> String {
    use chrono::TimeZone;
    chrono::Utc
        .timestamp_opt(t, 0)
        .single()
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The current time in Unix seconds.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
