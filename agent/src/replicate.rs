//! Replication: copy the objects a target store lacks, verbatim, with no keys.
//!
//! Every object is verified by its name (BLAKE3 of its bytes) before it is written, so a
//! corrupt object at the source is refused and reported, never spread. Snapshots are copied
//! last, and not at all if anything else failed, so a replica never shows a snapshot whose
//! data it does not hold. Copying is idempotent and resumable: a second run copies only what
//! is still missing. Locks and prune plans are per-site and not replicated.

use crate::error::{Error, Result};
use crate::layout::{Kind, ObjectPath, CONFIG};
use crate::progress::Progress;
use crate::store::{Listed, Store};
use coop_formats::id::Id;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct ReplicateOptions {
    /// Only compare; copy nothing.
    pub check_only: bool,
    /// Upload limit in bytes per second.
    pub limit: Option<u64>,
    /// Objects copied at once.
    pub parallel: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct ReplicateReport {
    /// Objects (and bytes) the target lacked before this run.
    pub missing_objects: u64,
    pub missing_bytes: u64,
    pub copied_objects: u64,
    pub copied_bytes: u64,
    /// Objects at the target the source does not have (for example, pruned at the source).
    pub extra_objects: u64,
    /// Source objects whose bytes do not match their name: not copied.
    pub refused: Vec<String>,
    /// Copies that failed (the store said no); retried by the next run.
    pub failed: Vec<String>,
    /// Snapshots held back because something they may need was not copied.
    pub snapshots_held_back: u64,
    /// Things worth knowing that did not stop the copy.
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

impl ReplicateReport {
    pub fn ok(&self) -> bool {
        self.refused.is_empty() && self.failed.is_empty() && self.snapshots_held_back == 0
    }
}

fn listing(s: &Store) -> Result<HashMap<String, u64>> {
    let mut m = HashMap::new();
    for k in Kind::replicated_kinds() {
        for Listed { path, size, .. } in s.list(k.dir())? {
            m.insert(path, size);
        }
    }
    Ok(m)
}

/// Copies what `to` lacks from `from`.
pub fn replicate(
    from: &Store,
    to: &Store,
    opts: &ReplicateOptions,
    progress: &dyn Progress,
) -> Result<ReplicateReport> {
    let started = Instant::now();
    let mut rep = ReplicateReport::default();
    // The config identifies the repository: never mix two repositories.
    let config = match from.get(CONFIG) {
        Ok(c) => c,
        Err(e) if e.is_not_found() => {
            return Err(Error::RepoNotFound {
                url: from.url().into(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    coop_formats::config::Config::decode(&config)
        .map_err(|e| Error::damaged(format!("{} config", from.url()), e))?;
    let target_config = match to.get(CONFIG) {
        Ok(c) => Some(c),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(tc) = &target_config {
        if *tc != config {
            return Err(Error::invalid(format!(
                "{} holds a different repository than {}; refusing to mix them",
                to.url(),
                from.url()
            )));
        }
    }
    let src = listing(from)?;
    let dst = listing(to)?;
    rep.extra_objects = dst.keys().filter(|k| !src.contains_key(*k)).count() as u64;
    let mut todo: Vec<(&String, u64)> = src
        .iter()
        .filter(|(k, _)| !dst.contains_key(*k))
        .map(|(k, s)| (k, *s))
        .collect();
    if target_config.is_none() {
        rep.missing_objects += 1;
        rep.missing_bytes += config.len() as u64;
    }
    rep.missing_objects += todo.len() as u64;
    rep.missing_bytes += todo.iter().map(|(_, s)| s).sum::<u64>();
    if opts.check_only {
        rep.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(rep);
    }
    if target_config.is_none() {
        to.put(CONFIG, config.clone())?;
        rep.copied_objects += 1;
        rep.copied_bytes += config.len() as u64;
    }
    let order = |p: &str| {
        ObjectPath::parse(p)
            .map(|o| o.kind)
            .unwrap_or(Kind::Keyring)
    };
    todo.sort_by(|a, b| order(a.0).cmp(&order(b.0)).then(a.0.cmp(b.0)));
    let (first, snapshots): (Vec<_>, Vec<_>) = todo
        .into_iter()
        .partition(|(p, _)| !p.starts_with("snapshots/"));
    progress.phase(
        "replicate",
        Some(first.iter().chain(snapshots.iter()).map(|(_, s)| s).sum()),
    );
    let copied_objects = AtomicU64::new(0);
    let copied_bytes = AtomicU64::new(0);
    let refused = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    let copy_all = |list: &[(&String, u64)]| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..opts.parallel.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, _)) = list.get(i) else { break };
                    let t0 = Instant::now();
                    match copy_one(from, to, path) {
                        Ok(CopyResult::Copied(n)) => {
                            copied_objects.fetch_add(1, Ordering::Relaxed);
                            copied_bytes.fetch_add(n, Ordering::Relaxed);
                            progress.add_bytes(n);
                            if let Some(limit) = opts.limit {
                                // Each of `parallel` workers gets an equal share of the limit.
                                let share = (limit / opts.parallel.max(1) as u64).max(1);
                                let due = Duration::from_secs_f64(n as f64 / share as f64);
                                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                                    std::thread::sleep(wait);
                                }
                            }
                        }
                        Ok(CopyResult::Refused(why)) => {
                            refused.lock().expect("lock").push(format!("{path}: {why}"))
                        }
                        Ok(CopyResult::Vanished) => {}
                        Err(e) => failed.lock().expect("lock").push(format!("{path}: {e}")),
                    }
                    crate::fault::point("replicate:after-copy");
                });
            }
        });
    };
    copy_all(&first);
    let blocked =
        !refused.lock().expect("lock").is_empty() || !failed.lock().expect("lock").is_empty();
    if blocked {
        rep.snapshots_held_back = snapshots.len() as u64;
    } else {
        copy_all(&snapshots);
    }
    progress.finish();
    rep.copied_objects += copied_objects.into_inner();
    rep.copied_bytes += copied_bytes.into_inner();
    rep.refused = refused.into_inner().expect("lock");
    rep.failed = failed.into_inner().expect("lock");
    rep.refused.sort();
    rep.failed.sort();
    rep.duration_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

enum CopyResult {
    Copied(u64),
    Refused(String),
    /// Deleted at the source since the listing (a prune): nothing to copy.
    Vanished,
}

fn copy_one(from: &Store, to: &Store, path: &str) -> Result<CopyResult> {
    let Some(name) = ObjectPath::parse(path).map(|p| p.name) else {
        return Ok(CopyResult::Refused("not a coop object name".into()));
    };
    let bytes = match from.get(path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(CopyResult::Vanished),
        Err(e) => return Err(e.into()),
    };
    if Id::of_stored(&bytes) != name {
        return Ok(CopyResult::Refused(
            "bytes do not match the name (corrupt at the source); not copied".into(),
        ));
    }
    let n = bytes.len() as u64;
    to.put(path, bytes)?;
    Ok(CopyResult::Copied(n))
}
