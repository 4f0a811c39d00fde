//! Shared helpers for subcommands.

use crate::global::Global;
use anyhow::{Context, Result};
use coop_agent::keys::{self, Access};
use coop_agent::repo::Repo;
use coop_agent::Error;
use std::sync::Arc;

pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}

pub fn repo_url(g: &Global) -> Result<&str> {
    g.repo.as_deref().ok_or_else(|| {
        Error::Usage {
            what: "no repository given: use --repo PATH or set COOP_REPO".into(),
        }
        .into()
    })
}

/// Opens the repository; its index is cached in the cache directory unless `--no-cache`.
pub fn open_repo(g: &Global) -> Result<Repo> {
    let mut repo = Repo::open(repo_url(g)?)?;
    repo.cache_dir.clone_from(&g.cache_dir);
    Ok(repo)
}

/// The identity to use: --identity-file / COOP_IDENTITY_FILE, else the default file.
pub fn identity_access(g: &Global) -> Result<Access> {
    let path = match &g.identity_file {
        Some(p) => p.clone(),
        None => match keys::default_identity_path().filter(|p| p.exists()) {
            Some(p) => p,
            None => {
                return Err(Error::AccessDenied {
                    what: "no identity: give --identity-file (or COOP_IDENTITY_FILE); \
                           the default identity file does not exist"
                        .into(),
                }
                .into())
            }
        },
    };
    let ids = keys::load_identities(&path)
        .with_context(|| format!("loading identity {}", path.display()))?;
    Ok(Access::Identity(Arc::new(ids)))
}

/// Writer key if given, else identity.
pub fn write_access(g: &Global) -> Result<Access> {
    if let Some(p) = &g.writer_key {
        return Ok(Access::Writer(Arc::new(keys::load_writer_key(p)?)));
    }
    identity_access(g)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

pub fn bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

pub fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parses a size like `500KiB`, `2MiB`, `1.5GB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64> {
    coop_agent::agent_config::parse_size(s).ok_or_else(|| {
        Error::Usage {
            what: format!("bad size {s:?} (e.g. 500KiB, 2MiB, 5GiB)"),
        }
        .into()
    })
}

/// A store that is not there, reported as "no repository".
pub fn not_found_as_repo(e: coop_agent::store::StoreError, url: &str) -> anyhow::Error {
    if e.is_not_found() {
        Error::RepoNotFound { url: url.into() }.into()
    } else {
        Error::from(e).into()
    }
}
