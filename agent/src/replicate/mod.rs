//! Replication: copy the objects a target store lacks, verbatim, with no keys.
//!
//! Every object is verified by its name (BLAKE3 of its bytes) before it is written, so a
//! corrupt object at the source is refused and reported, never spread. Snapshots are copied
//! last, each only once every object of its inventory (the packs and index objects it needs,
//! stored in the clear in front of it) is on the target, so a replica never lists a snapshot
//! whose data it does not hold, even when the source's listing leaves objects out: an
//! inventory object the listing does not show is fetched by name. Copying is idempotent and
//! resumable: a second run copies only what is still missing. Locks and prune plans are
//! per-site and not replicated.

use crate::error::{Error, Result};
use crate::layout::{Kind, ObjectPath, CONFIG};
use crate::progress::Progress;
use crate::store::{Listed, Store};
use coop_formats::id::Id;
use coop_formats::snapshot::read_inventory;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod deletions;
mod logs;
mod pace;
use deletions::{follow_deletions, logged_deletions};
use logs::{compare_logs, logs, recovery_shares};
use pace::{sleep_until, Pace};

#[derive(Debug, Clone, Default)]
pub struct ReplicateOptions {
    /// Only compare; copy nothing.
    pub check_only: bool,
    /// Upload limit in bytes per second: the rate of all parallel copies together.
    pub limit: Option<u64>,
    /// Objects copied at once.
    pub parallel: usize,
    /// Follow the source's deletions (see [`DeletionPolicy`]); `None` keeps everything.
    pub deletions: Option<DeletionPolicy>,
    /// The source's admin keys (pinned, or the caller's own): whose logged deletions and
    /// prune replacements count. Without them deletions are not followed, and snapshots whose
    /// inventories name pruned objects are held back.
    pub admin_keys: Option<Vec<[u8; 32]>>,
    /// This client's cache directory: when it first saw each logged deletion (the grace
    /// period counts from then). Without one, only a grace of 0 follows deletions.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// When a replica deletes what the source deleted: only objects an admin of the source logged
/// as deleted (a signed access log entry, SPEC section 24.9), at least `grace` ago, absent from
/// the source's complete listing, and needed by no snapshot the replica keeps.
#[derive(Debug, Clone)]
pub struct DeletionPolicy {
    pub grace: Duration,
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
    /// Snapshots held back because an object they need is not on the target.
    pub snapshots_held_back: u64,
    /// Why each held-back snapshot was held back.
    pub held_back: Vec<String>,
    /// Objects a snapshot's inventory needs that the source's listing did not show but a
    /// fetch by name found (a listing that leaves objects out).
    pub unlisted_found: u64,
    /// With `check_only`: snapshots at the target whose inventory names an object the
    /// target does not hold.
    pub incomplete_at_target: Vec<String>,
    /// Access log objects copied (entries, checkpoints, cosignatures).
    pub log_objects: u64,
    /// Recovery shares (`recovery/<epoch>/<slot>/<admin>`) copied.
    pub recovery_objects: u64,
    /// Witnesses' cosignatures found on the target and brought back to the source.
    pub cosignatures_returned: u64,
    /// Log objects whose name holds different bytes on the two sides: evidence of a fork
    /// (a log that told two stories). Never overwritten.
    pub log_forks: Vec<String>,
    /// Objects removed from the target because the source deleted them (logged by an admin).
    pub deleted_at_target: u64,
    /// Objects the source no longer has that the target keeps, and why.
    pub kept_at_target: Vec<String>,
    /// Things worth knowing that did not stop the copy.
    pub warnings: Vec<String>,
    pub duration_ms: u64,
}

impl ReplicateReport {
    pub fn ok(&self) -> bool {
        self.refused.is_empty()
            && self.log_forks.is_empty()
            && self.failed.is_empty()
            && self.snapshots_held_back == 0
            && self.incomplete_at_target.is_empty()
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

/// The store paths a stored snapshot's inventory names.
fn needs(stored: &[u8]) -> std::result::Result<Vec<String>, String> {
    let (header, inv, _) = read_inventory(stored).map_err(|e| e.to_string())?;
    let tag = header.tenant;
    Ok(inv
        .packs
        .iter()
        .map(|p| Kind::Pack.path(&tag, p))
        .chain(inv.index.iter().map(|i| Kind::Index.path(&tag, i)))
        .collect())
}

/// A snapshot the target lacks, read from the source and checked against its name.
struct Pending {
    path: String,
    bytes: Vec<u8>,
    needs: Vec<String>,
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
    let is_snapshot = |p: &str| p.starts_with("snapshots/");
    rep.extra_objects = dst.keys().filter(|k| !src.contains_key(*k)).count() as u64;
    let vanished = dst
        .keys()
        .filter(|k| is_snapshot(k) && !src.contains_key(*k))
        .count();
    if vanished > 0 {
        rep.warnings.push(format!(
            "{vanished} snapshot(s) on the target are not listed at the source (forgotten \
             there, or the source serves an older or partial copy of the store); they stay \
             on the target unless an admin of the source logged their deletion"
        ));
    }
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
    let forked = compare_logs(from, to, opts, &mut rep)?;
    logs(from, to, opts.check_only, &forked, &mut rep)?;
    recovery_shares(from, to, opts.check_only, &mut rep)?;
    if opts.check_only {
        // The source's log is read only if some inventory names an object the target lacks.
        let deletions = std::cell::OnceCell::new();
        let load = || {
            deletions
                .get_or_init(|| {
                    opts.admin_keys
                        .as_ref()
                        .and_then(|k| logged_deletions(from, k, opts.cache_dir.as_deref()).ok())
                })
                .as_ref()
        };
        rep.incomplete_at_target = incomplete(to, &dst, |p| src.contains_key(p), load)?;
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
    let (first, snapshot_paths): (Vec<_>, Vec<_>) =
        todo.into_iter().partition(|(p, _)| !is_snapshot(p));
    progress.phase("replicate", Some(first.iter().map(|(_, s)| s).sum()));
    let copied_objects = AtomicU64::new(0);
    let copied_bytes = AtomicU64::new(0);
    let refused = Mutex::new(Vec::new());
    let failed = Mutex::new(Vec::new());
    // Objects that are on the target after their copy (or were already).
    let landed = Mutex::new(HashSet::<String>::new());
    // Objects refused as junk: no reader needs them, so they hold no snapshot back.
    let junk = Mutex::new(HashSet::<String>::new());
    // One limit for all parallel copies: the rate the line gets.
    let pace = opts.limit.map(Pace::new);
    let copy_all = |list: &[String]| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..opts.parallel.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = list.get(i) else { break };
                    match copy_one(from, to, path, pace.as_ref()) {
                        Ok(CopyResult::Copied(n)) => {
                            copied_objects.fetch_add(1, Ordering::Relaxed);
                            copied_bytes.fetch_add(n, Ordering::Relaxed);
                            landed.lock().expect("lock").insert(path.clone());
                            progress.add_bytes(n);
                        }
                        Ok(CopyResult::Refused(why)) => {
                            refused.lock().expect("lock").push(format!("{path}: {why}"))
                        }
                        Ok(CopyResult::Junk(why)) => {
                            refused.lock().expect("lock").push(format!("{path}: {why}"));
                            junk.lock().expect("lock").insert(path.clone());
                        }
                        Ok(CopyResult::Vanished) => {}
                        Err(e) => failed.lock().expect("lock").push(format!("{path}: {e}")),
                    }
                    crate::fault::point("replicate:after-copy");
                });
            }
        });
    };
    let first_paths: Vec<String> = first.iter().map(|(p, _)| (*p).clone()).collect();
    copy_all(&first_paths);
    // Anything but packs and index objects that did not land (a keyring, the registry, the
    // writer list) holds back every snapshot: readers need them to trust any snapshot.
    let control_missing = first_paths.iter().any(|p| {
        !matches!(order(p), Kind::Pack | Kind::Index)
            && !landed.lock().expect("lock").contains(p)
            && !junk.lock().expect("lock").contains(p)
    });

    // The snapshots, with their inventories.
    let mut pending = Vec::new();
    for (path, _) in &snapshot_paths {
        match from.get(path) {
            Ok(bytes) => {
                let name = ObjectPath::parse(path).map(|o| o.name);
                if name != Some(Id::of_stored(&bytes)) {
                    refused.lock().expect("lock").push(format!(
                        "{path}: bytes do not match the name (corrupt at the source); not copied"
                    ));
                    continue;
                }
                match needs(&bytes) {
                    Ok(needs) => pending.push(Pending {
                        path: (*path).clone(),
                        bytes,
                        needs,
                    }),
                    Err(why) => refused
                        .lock()
                        .expect("lock")
                        .push(format!("{path}: unreadable inventory ({why}); not copied")),
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => failed.lock().expect("lock").push(format!("{path}: {e}")),
        }
    }
    // An inventory is fixed when its snapshot is written; a prune since then deleted some of
    // what it names and logged what it wrote in their place. Such a snapshot needs those
    // replacements instead (only an admin's log entries count).
    let mut deletions: Option<crate::log::Deletions> = None;
    if pending
        .iter()
        .flat_map(|p| p.needs.iter())
        .any(|n| !dst.contains_key(n) && !src.contains_key(n))
    {
        if let Some(keys) = &opts.admin_keys {
            match logged_deletions(from, keys, opts.cache_dir.as_deref()) {
                Ok(d) => {
                    for p in &mut pending {
                        p.needs =
                            d.resolve(&p.needs, |n| dst.contains_key(n) || src.contains_key(n));
                    }
                    deletions = Some(d);
                }
                Err(e) => rep.warnings.push(format!(
                    "the source's access log could not be verified ({}): snapshots whose \
                     inventories name pruned objects are held back",
                    crate::error::chain(&e)
                )),
            }
        }
    }
    // Inventory objects the source's listing did not show: fetch them by name.
    let unlisted: BTreeSet<String> = pending
        .iter()
        .flat_map(|p| p.needs.iter())
        .filter(|n| !dst.contains_key(*n) && !src.contains_key(*n))
        .cloned()
        .collect();
    let unlisted: Vec<String> = unlisted.into_iter().collect();
    let before = landed.lock().expect("lock").len();
    copy_all(&unlisted);
    rep.unlisted_found = (landed.lock().expect("lock").len() - before) as u64;
    if rep.unlisted_found > 0 {
        rep.warnings.push(format!(
            "the source's listing left out {} object(s) that its snapshots need; they were \
             fetched by name and copied (a store whose listings are incomplete is unreliable: \
             check it)",
            rep.unlisted_found
        ));
    }
    let landed = landed.into_inner().expect("lock");
    let mut ready = Vec::new();
    for p in pending {
        let lacking: Vec<&String> = p
            .needs
            .iter()
            .filter(|n| !dst.contains_key(*n) && !landed.contains(*n))
            .collect();
        if control_missing {
            rep.held_back.push(format!(
                "{}: a keyring, registry or writer list was not copied",
                p.path
            ));
        } else if !lacking.is_empty() {
            let gone = lacking.iter().filter(|n| unlisted.contains(**n)).count();
            rep.held_back.push(format!(
                "{}: needs {} object(s) the target lacks ({} of them the source does not \
                 have either: pruned there since this snapshot was written, or lost), e.g. {}",
                p.path,
                lacking.len(),
                gone,
                lacking[0]
            ));
        } else {
            ready.push(p);
        }
    }
    rep.snapshots_held_back = rep.held_back.len() as u64;
    for p in ready {
        let n = p.bytes.len() as u64;
        match to.put(&p.path, p.bytes) {
            Ok(()) => {
                rep.copied_objects += 1;
                rep.copied_bytes += n;
                progress.add_bytes(n);
            }
            Err(e) => failed
                .lock()
                .expect("lock")
                .push(format!("{}: {e}", p.path)),
        }
    }
    let blocked_deletions =
        !refused.lock().expect("lock").is_empty() || !failed.lock().expect("lock").is_empty();
    if let Some(pol) = &opts.deletions {
        if blocked_deletions {
            rep.kept_at_target
                .push("deletions not followed: this run could not copy everything".into());
        } else if let Some(keys) = &opts.admin_keys {
            follow_deletions(
                from,
                to,
                &src,
                &dst,
                keys,
                deletions,
                pol,
                opts.cache_dir.as_deref(),
                &mut rep,
            )?;
        } else {
            rep.kept_at_target
                .push("deletions not followed: the source's admin keys are not known here".into());
        }
    }
    progress.finish();
    rep.copied_objects += copied_objects.into_inner();
    rep.copied_bytes += copied_bytes.into_inner();
    rep.refused.extend(refused.into_inner().expect("lock"));
    rep.failed = failed.into_inner().expect("lock");
    rep.refused.sort();
    rep.failed.sort();
    rep.held_back.sort();
    rep.duration_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

/// The snapshots at `store` whose inventory names an object `listed` does not show (or
/// that cannot be read).
/// Inventories are resolved through the source's logged prune replacements where those are
/// known (`deletions`; `at_source` says which objects the source still has).
fn incomplete<'d>(
    store: &Store,
    listed: &HashMap<String, u64>,
    at_source: impl Fn(&str) -> bool,
    deletions: impl Fn() -> Option<&'d crate::log::Deletions>,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut paths: Vec<&String> = listed
        .keys()
        .filter(|k| k.starts_with("snapshots/"))
        .collect();
    paths.sort();
    for path in paths {
        let bytes = match store.get(path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match needs(&bytes) {
            Ok(needs) => {
                let lacks_any = needs.iter().any(|n| !listed.contains_key(n));
                let needs = match deletions().filter(|_| lacks_any) {
                    Some(d) => d.resolve(&needs, |n| listed.contains_key(n) || at_source(n)),
                    None => needs,
                };
                let lacking: Vec<&String> =
                    needs.iter().filter(|n| !listed.contains_key(*n)).collect();
                if let Some(first) = lacking.first() {
                    out.push(format!(
                        "{path}: lacks {} object(s) it needs, e.g. {first}",
                        lacking.len()
                    ));
                }
            }
            Err(why) => out.push(format!("{path}: unreadable inventory ({why})")),
        }
    }
    Ok(out)
}

enum CopyResult {
    Copied(u64),
    Refused(String),
    /// Stored as named, but no coop object (junk): refused, and holds nothing back.
    Junk(String),
    /// Deleted at the source since the listing (a prune): nothing to copy.
    Vanished,
}

fn copy_one(from: &Store, to: &Store, path: &str, pace: Option<&Pace>) -> Result<CopyResult> {
    let Some(op) = ObjectPath::parse(path) else {
        return Ok(CopyResult::Refused("not a coop object name".into()));
    };
    let bytes = match from.get(path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(CopyResult::Vanished),
        Err(e) => return Err(e.into()),
    };
    if Id::of_stored(&bytes) != op.name {
        return Ok(CopyResult::Refused(
            "bytes do not match the name (corrupt at the source); not copied".into(),
        ));
    }
    // The keyless checks `scrub` makes (magic, header, kind, tenant): junk is not spread.
    if let Err(why) = crate::check::scrub::object_ok(&op, &bytes) {
        return Ok(CopyResult::Junk(format!(
            "not a coop object ({why}); not copied: delete it at the source"
        )));
    }
    let n = bytes.len() as u64;
    let slot = pace.map(|p| p.reserve(n));
    if let Some((start, _)) = slot {
        sleep_until(start);
    }
    to.put(path, bytes)?;
    if let Some((_, end)) = slot {
        sleep_until(end);
    }
    Ok(CopyResult::Copied(n))
}
