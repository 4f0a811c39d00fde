//! The coop engine: stores, keys, the repository, backup, restore and reading.
//!
//! The CLI (`coop-cli`) is a thin layer over this crate. Everything here is synchronous
//! from the caller's point of view; store I/O runs on an internal tokio runtime.
//!
//! ```no_run
//! use coop_agent::{repo::Repo, keys::Access};
//! let repo = Repo::open("/srv/backup/repo")?;
//! # Ok::<(), coop_agent::Error>(())
//! ```

pub mod agent_config;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod chunker;
pub mod daemon;
pub mod error;
pub mod export;
pub mod fault;
pub mod forget;
pub mod history;
pub mod index;
pub mod index_cache;
pub mod keys;
pub mod lock;
pub mod members;
pub mod progress;
pub mod prune;
pub mod read;
pub mod replicate;
pub mod repo;
pub mod restore;
pub mod state;
pub mod store;
pub mod usage;

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
