//! The coop engine: stores, keys, the repository, backup, restore, maintenance and the agent.
//!
//! The CLI (`coop-cli`) is a thin layer over this crate. Everything here is synchronous
//! from the caller's point of view; store I/O runs on an internal tokio runtime.
//!
//! Modules, from the bottom up (each uses only those above it):
//!
//! | layer | modules |
//! |---|---|
//! | places | [`layout`] (object kinds and paths), [`store`] (object storage), [`error`], [`progress`], [`fault`] |
//! | keys | [`keys`] (identities, writer keys, a tenant's key material) |
//! | repository | [`repo`] (config, objects by kind, keyrings), [`members`] (registry), [`tenant`] (keys from what the caller holds) |
//! | reading | [`index`], [`snapshots`], [`read`] (verified blobs and trees), [`state`] (rollback detection) |
//! | operations | [`backup`], [`restore`], [`check`], [`forget`], [`prune`], [`lock`], [`replicate`], [`export`], [`usage`], [`writers`], [`report`] |
//! | the agent | [`settings`] (agent.toml, typed), [`daemon`], [`history`], [`catalog`] |
//!
//! ```no_run
//! use coop_agent::{repo::Repo, keys::Access};
//! let repo = Repo::open("/srv/backup/repo")?;
//! # Ok::<(), coop_agent::Error>(())
//! ```

pub mod access;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod daemon;
pub mod damage;
pub mod error;
pub mod export;
pub mod fault;
pub mod forget;
pub mod fsx;
pub mod history;
pub mod index;
pub mod keys;
pub mod layout;
pub mod lock;
pub mod log;
pub mod members;
pub mod packtable;
pub mod patterns;
pub mod progress;
pub mod prune;
pub mod read;
pub mod recipes;
pub mod recovery;
pub mod replicate;
pub mod repo;
pub mod report;
pub mod restore;
pub mod settings;
pub mod snapshots;
pub mod state;
pub mod store;
pub mod tenant;
pub mod usage;
pub mod writers;

pub use error::{Error, ErrorKind};

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
