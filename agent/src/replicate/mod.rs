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

mod copy;
mod deletions;
mod logs;
mod pace;
use copy::Copier;
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
    let (config, target_config) = configs(from, to)?;
    let src = listing(from)?;
    let dst = listing(to)?;
    let mut todo = compare(&src, &dst, &mut rep);
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
        rep.incomplete_at_target = check_target(from, to, opts, &src, &dst)?;
        rep.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(rep);
    }
    if target_config.is_none() {
        to.put(CONFIG, config.clone())?;
        rep.copied_objects += 1;
        rep.copied_bytes += config.len() as u64;
    }
    todo.sort_by(|a, b| order(a.0).cmp(&order(b.0)).then(a.0.cmp(b.0)));
    let (first, snapshot_paths): (Vec<_>, Vec<_>) =
        todo.into_iter().partition(|(p, _)| !is_snapshot(p));
    progress.phase("replicate", Some(first.iter().map(|(_, s)| s).sum()));
    let copier = Copier::new(from, to, opts, progress);
    let first_paths: Vec<String> = first.iter().map(|(p, _)| (*p).clone()).collect();
    copier.copy_all(&first_paths);
    // Anything but packs and index objects that did not land (a keyring, the registry, the
    // writer list) holds back every snapshot: readers need them to trust any snapshot.
    let control_missing = first_paths.iter().any(|p| {
        !matches!(order(p), Kind::Pack | Kind::Index)
            && !copier.landed.lock().expect("lock").contains(p)
            && !copier.junk.lock().expect("lock").contains(p)
    });
    let mut pending = copier.read_snapshots(&snapshot_paths);
    let deletions = resolve_pruned(from, opts, &src, &dst, &mut pending, &mut rep);
    let unlisted = copier.fetch_unlisted(&src, &dst, &pending, &mut rep);
    let landed = std::mem::take(&mut *copier.landed.lock().expect("lock"));
    let ready = hold_back(pending, &dst, &landed, &unlisted, control_missing, &mut rep);
    for p in ready {
        let n = p.bytes.len() as u64;
        match to.put(&p.path, p.bytes) {
            Ok(()) => {
                rep.copied_objects += 1;
                rep.copied_bytes += n;
                progress.add_bytes(n);
            }
            Err(e) => copier
                .failed
                .lock()
                .expect("lock")
                .push(format!("{}: {e}", p.path)),
        }
    }
    let blocked_deletions = !copier.refused.lock().expect("lock").is_empty()
        || !copier.failed.lock().expect("lock").is_empty();
    follow(
        from,
        to,
        opts,
        (&src, &dst),
        deletions,
        blocked_deletions,
        &mut rep,
    )?;
    progress.finish();
    copier.into_report(&mut rep);
    rep.refused.sort();
    rep.failed.sort();
    rep.held_back.sort();
    rep.duration_ms = started.elapsed().as_millis() as u64;
    Ok(rep)
}

fn is_snapshot(p: &str) -> bool {
    p.starts_with("snapshots/")
}

/// The order objects are copied in: by kind (snapshots last).
fn order(p: &str) -> Kind {
    ObjectPath::parse(p)
        .map(|o| o.kind)
        .unwrap_or(Kind::Keyring)
}

/// With `check_only`: the snapshots at the target whose inventory names an object the target
/// does not hold.
fn check_target(
    from: &Store,
    to: &Store,
    opts: &ReplicateOptions,
    src: &HashMap<String, u64>,
    dst: &HashMap<String, u64>,
) -> Result<Vec<String>> {
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
    incomplete(to, dst, |p| src.contains_key(p), load)
}

/// Follows the source's logged deletions, as the policy says, unless this run could not
/// copy everything or the source's admin keys are not known.
fn follow(
    from: &Store,
    to: &Store,
    opts: &ReplicateOptions,
    (src, dst): (&HashMap<String, u64>, &HashMap<String, u64>),
    deletions: Option<crate::log::Deletions>,
    blocked: bool,
    rep: &mut ReplicateReport,
) -> Result<()> {
    if let Some(pol) = &opts.deletions {
        if blocked {
            rep.kept_at_target
                .push("deletions not followed: this run could not copy everything".into());
        } else if let Some(keys) = &opts.admin_keys {
            follow_deletions(
                from,
                to,
                src,
                dst,
                keys,
                deletions,
                pol,
                opts.cache_dir.as_deref(),
                rep,
            )?;
        } else {
            rep.kept_at_target
                .push("deletions not followed: the source's admin keys are not known here".into());
        }
    }
    Ok(())
}

/// The source's config, and the target's if it has one. The config identifies the
/// repository: never mix two repositories.
fn configs(from: &Store, to: &Store) -> Result<(Vec<u8>, Option<Vec<u8>>)> {
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
    Ok((config, target_config))
}

/// What the target lacks (path, size), and what it has that the source does not.
fn compare<'s>(
    src: &'s HashMap<String, u64>,
    dst: &HashMap<String, u64>,
    rep: &mut ReplicateReport,
) -> Vec<(&'s String, u64)> {
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
    src.iter()
        .filter(|(k, _)| !dst.contains_key(*k))
        .map(|(k, s)| (k, *s))
        .collect()
}

/// An inventory is fixed when its snapshot is written; a prune since then deleted some of
/// what it names and logged what it wrote in their place. Such a snapshot needs those
/// replacements instead (only an admin's log entries count). The logged deletions, if read.
fn resolve_pruned(
    from: &Store,
    opts: &ReplicateOptions,
    src: &HashMap<String, u64>,
    dst: &HashMap<String, u64>,
    pending: &mut [Pending],
    rep: &mut ReplicateReport,
) -> Option<crate::log::Deletions> {
    if !pending
        .iter()
        .flat_map(|p| p.needs.iter())
        .any(|n| !dst.contains_key(n) && !src.contains_key(n))
    {
        return None;
    }
    let keys = opts.admin_keys.as_ref()?;
    match logged_deletions(from, keys, opts.cache_dir.as_deref()) {
        Ok(d) => {
            for p in pending.iter_mut() {
                p.needs = d.resolve(&p.path, &p.needs, |n| {
                    dst.contains_key(n) || src.contains_key(n)
                });
            }
            Some(d)
        }
        Err(e) => {
            rep.warnings.push(format!(
                "the source's access log could not be verified ({}): snapshots whose \
                 inventories name pruned objects are held back",
                crate::error::chain(&e)
            ));
            None
        }
    }
}

/// The snapshots whose every needed object is on the target; the others are held back, and
/// why.
fn hold_back(
    pending: Vec<Pending>,
    dst: &HashMap<String, u64>,
    landed: &HashSet<String>,
    unlisted: &[String],
    control_missing: bool,
    rep: &mut ReplicateReport,
) -> Vec<Pending> {
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
    ready
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
        let mut bytes = Vec::new();
        match store.get_into(path, &mut bytes, Kind::Snapshot.max_stored()) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match needs(&bytes) {
            Ok(needs) => {
                let lacks_any = needs.iter().any(|n| !listed.contains_key(n));
                let needs = match deletions().filter(|_| lacks_any) {
                    Some(d) => d.resolve(path, &needs, |n| listed.contains_key(n) || at_source(n)),
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
