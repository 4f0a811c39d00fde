//! `prune`: reclaim space with a two-phase delete that never races a backup.
//!
//! Phase 1 (plan): from complete listings and a full walk of every snapshot, find packs with
//! no used blob and packs whose unused share exceeds `max_unused`; copy the used blobs of the
//! latter into new packs (no re-compression), write one consolidated index that supersedes
//! all index objects read, and write a *prune plan* naming the condemned packs. Nothing is
//! deleted yet. Backups that start after the plan exists never deduplicate against condemned
//! packs.
//!
//! Phase 2 (execute, in this run when the grace period is 0, else in a later run): only if no
//! other live lock exists, re-list the snapshots, walk any that are new, and delete each
//! condemned pack whose used blobs all have another surviving copy; then the superseded index
//! objects; then the plan. Any listing or read error stops before the first delete.
//! Interrupted anywhere, the repository stays complete; running prune again finishes.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::lock;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::{self, Repo};
use coop_formats::blob::Compression;
use coop_formats::control::{LockKind, PrunePlan};
use coop_formats::id::{BlobType, Id};
use coop_formats::index::IndexFile;
use coop_formats::pack::PackBuilder;
use coop_formats::tree::{NodeKind, Part};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack packs whose unused share is above this fraction (0.0–1.0).
    pub max_unused: f64,
    pub dry_run: bool,
    /// How old a plan must be before its packs are deleted.
    pub grace: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: 0.05,
            dry_run: false,
            grace: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct PruneReport {
    pub snapshots: usize,
    pub packs: usize,
    pub bytes_total: u64,
    pub bytes_used: u64,
    /// Packs with nothing used in them (including leftovers of interrupted backups).
    pub packs_unused: usize,
    pub packs_to_repack: usize,
    pub bytes_to_free: u64,
    pub packs_written: usize,
    pub packs_deleted: usize,
    pub bytes_freed: u64,
    pub index_objects_deleted: usize,
    pub plans_written: usize,
    pub plans_completed: usize,
    /// Packs a plan condemned that turned out to be needed (kept).
    pub packs_rescued: usize,
    /// Why deletion was postponed, if it was.
    pub postponed: Vec<String>,
    pub stale_locks: Vec<String>,
}

/// Every blob reachable from the given snapshots' trees (trees included).
fn walk_used(
    reader: &BlobReader,
    roots: impl Iterator<Item = Id>,
    used: &mut HashSet<Id>,
) -> Result<()> {
    let mut stack: Vec<Id> = roots.collect();
    while let Some(t) = stack.pop() {
        if !used.insert(t) {
            continue;
        }
        for n in reader.tree(&t)?.nodes {
            if let (NodeKind::Dir, Some(s)) = (n.kind, n.subtree) {
                stack.push(s);
            }
            for p in n.content {
                if let Part::Blob(id) = p {
                    used.insert(id);
                }
            }
        }
    }
    Ok(())
}

pub fn prune(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let mut rep = PruneReport::default();
    let _lock = if opts.dry_run {
        None
    } else {
        Some(lock::acquire(repo, keys, LockKind::Prune)?)
    };
    let own_lock = _lock.as_ref().map(|l| l.path());
    let tagh = repo::tag_hex(&keys.tag);

    // Complete listings; any error ends prune here.
    progress.phase("listing", None);
    let packs_listed: HashMap<Id, u64> = repo
        .store
        .list(&format!("packs/{tagh}"))?
        .into_iter()
        .filter_map(|o| Some((repo::name_of(&o.path)?, o.size)))
        .collect();
    let files = repo.index_files(keys)?;
    let plans: Vec<(String, PrunePlan)> = repo
        .list_control::<PrunePlan>(keys, "plans")?
        .into_iter()
        .map(|(p, r)| r.map(|plan| (p, plan)))
        .collect::<Result<_>>()?;
    let snaps = repo.snapshots(keys)?;
    rep.snapshots = snaps.len();
    rep.packs = packs_listed.len();
    rep.bytes_total = packs_listed.values().sum();

    // Every location of every blob, and the merged view for reading.
    let mut locations: HashMap<Id, Vec<Id>> = HashMap::new();
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.superseded.iter().copied())
        .collect();
    for (_, f) in &files {
        for e in &f.entries {
            let p = f.packs[e.pack as usize].id;
            let v = locations.entry(e.id).or_default();
            if !v.contains(&p) {
                v.push(p);
            }
        }
    }
    let present: HashSet<Id> = packs_listed.keys().copied().collect();
    let index = repo::merge_index(files.clone(), Some(&present));
    let reader = BlobReader::new(repo, keys, &index)?;

    // Everything any snapshot needs. Missing referenced data stops prune.
    progress.phase("walking", None);
    let mut used: HashSet<Id> = HashSet::new();
    walk_used(&reader, snaps.iter().map(|(_, s)| s.tree), &mut used).map_err(|e| {
        Error::corrupt(
            "snapshots",
            format!("prune refuses to run: {e}. Run `coop check`."),
        )
    })?;
    let mut stored_size: HashMap<Id, u64> = HashMap::new();
    for (_, f) in &files {
        for p in &f.packs {
            stored_size.insert(p.id, p.stored_size);
        }
    }
    for b in &used {
        if let Some(loc) = index.get(b)? {
            let pid = index.pack_id(&loc);
            if let (Some(listed), Some(expected)) = (packs_listed.get(&pid), stored_size.get(&pid))
            {
                if listed != expected {
                    return Err(Error::corrupt(
                        pid.to_hex(),
                        format!(
                            "prune refuses to run: this pack holds data snapshots need, and is {listed} bytes \
                             in the store where the index says {expected} (truncated or replaced). \
                             Run `coop check --read-data`."
                        ),
                    ));
                }
            }
        }
        let present = locations
            .get(b)
            .is_some_and(|v| v.iter().any(|p| packs_listed.contains_key(p)));
        if !present {
            return Err(Error::corrupt(
                b.to_hex(),
                "prune refuses to run: a snapshot needs this blob and no pack in the store holds it. Run `coop check`.",
            ));
        }
    }
    progress.finish();

    // Phase 1: what is unused, from active index objects (superseded ones only as fallback).
    let mut pack_used: HashMap<Id, u64> = HashMap::new();
    let mut pack_stored: HashMap<Id, u64> = HashMap::new();
    let mut attributed: HashSet<Id> = HashSet::new();
    for pass in [false, true] {
        for (name, f) in &files {
            if superseded.contains(name) != pass {
                continue;
            }
            for e in &f.entries {
                let p = f.packs[e.pack as usize].id;
                if !packs_listed.contains_key(&p) {
                    continue;
                }
                if !pass {
                    *pack_stored.entry(p).or_default() += e.stored_len as u64;
                }
                if used.contains(&e.id) && attributed.insert(e.id) {
                    *pack_used.entry(p).or_default() += e.stored_len as u64;
                }
            }
        }
    }
    rep.bytes_used = pack_used.values().sum();
    let already: HashSet<Id> = plans
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .collect();
    let mut unused: Vec<Id> = Vec::new();
    let mut repack: Vec<Id> = Vec::new();
    for (p, size) in &packs_listed {
        if already.contains(p) {
            continue;
        }
        let u = pack_used.get(p).copied().unwrap_or(0);
        if u == 0 {
            unused.push(*p);
            rep.bytes_to_free += size;
        } else {
            let stored = pack_stored.get(p).copied().unwrap_or(*size).max(1);
            if (stored.saturating_sub(u)) as f64 / stored as f64 > opts.max_unused {
                repack.push(*p);
                rep.bytes_to_free += size.saturating_sub(u);
            }
        }
    }
    unused.sort();
    repack.sort();
    rep.packs_unused = unused.len();
    rep.packs_to_repack = repack.len();
    if opts.dry_run {
        return Ok(rep);
    }

    let now = lock::now();
    let mut plans = plans;
    if !unused.is_empty() || !repack.is_empty() {
        // Copy the used blobs of partly used packs into new packs.
        progress.phase(
            "repacking",
            Some(repack.iter().map(|p| packs_listed[p]).sum()),
        );
        let mut new_index = IndexFile::default();
        let mut moved: HashSet<Id> = HashSet::new();
        let mut builders: [Option<PackBuilder>; 2] = [None, None];
        let pack_size = repo.config.pack_size as usize;
        let flush = |b: PackBuilder, idx: &mut IndexFile| -> Result<()> {
            let (stored, entries, id) = b.finish().map_err(|e| Error::Usage {
                what: e.to_string(),
            })?;
            let size = stored.len() as u64;
            repo.store.put(&repo::pack_path(&keys.tag, &id), stored)?;
            idx.add_pack(id, size, &entries);
            crate::fault::point("prune:after-repack-pack");
            Ok(())
        };
        for p in &repack {
            let plain = reader.fetch_pack(p)?;
            for e in coop_formats::pack::parse_table(&plain)
                .map_err(|e| Error::corrupt(p.to_hex(), e))?
            {
                if !used.contains(&e.id) || !moved.insert(e.id) {
                    continue;
                }
                let stored = &plain[e.offset as usize..(e.offset + e.stored_len) as usize];
                // Verify before copying: never spread a damaged blob.
                let mut check = Vec::new();
                coop_formats::blob::decode(
                    &keys.id_key,
                    e.id,
                    e.ty,
                    e.compression,
                    e.raw_len,
                    stored,
                    &mut check,
                )
                .map_err(|err| Error::corrupt(p.to_hex(), err))?;
                let slot = &mut builders[(e.ty == BlobType::Tree) as usize];
                if slot.is_none() {
                    *slot = Some(
                        PackBuilder::new(keys.tag, &keys.recipients, Vec::new()).map_err(|e| {
                            Error::Usage {
                                what: e.to_string(),
                            }
                        })?,
                    );
                }
                let b = slot.as_mut().expect("set above");
                let comp = Compression::from_u8(e.compression).unwrap_or(Compression::None);
                b.add_stored(e.ty, e.id, comp, e.raw_len, stored)
                    .map_err(|e| Error::Usage {
                        what: e.to_string(),
                    })?;
                if b.len() >= pack_size {
                    flush(slot.take().expect("builder"), &mut new_index)?;
                    rep.packs_written += 1;
                }
            }
            progress.add_bytes(packs_listed[p]);
        }
        for b in builders.into_iter().flatten() {
            flush(b, &mut new_index)?;
            rep.packs_written += 1;
        }
        progress.finish();
        // One consolidated index: everything in kept packs, plus the new packs.
        let condemned: HashSet<Id> = unused
            .iter()
            .chain(repack.iter())
            .chain(already.iter())
            .copied()
            .collect();
        let mut seen: HashSet<Id> = new_index.entries.iter().map(|e| e.id).collect();
        for (_, f) in &files {
            for e in &f.entries {
                let p = f.packs[e.pack as usize];
                if condemned.contains(&p.id)
                    || !packs_listed.contains_key(&p.id)
                    || !seen.insert(e.id)
                {
                    continue;
                }
                new_index.push(p, e);
            }
        }
        new_index.superseded = files.iter().map(|(n, _)| *n).collect();
        let replacement = repo.write_index(keys, &new_index)?;
        crate::fault::point("prune:after-index");
        let plan = PrunePlan {
            created: now,
            packs: unused.iter().chain(repack.iter()).copied().collect(),
            index: files.iter().map(|(n, _)| *n).collect(),
            replacement: Some(replacement),
        };
        let (path, _) = repo.write_control(keys, "plans", &plan)?;
        rep.plans_written += 1;
        crate::fault::point("prune:after-plan");
        plans.push((path, plan));
    }

    // Phase 2: execute plans that are old enough, if nothing else holds a lock.
    let due: Vec<(String, PrunePlan)> = plans
        .into_iter()
        .filter(|(_, p)| now - p.created >= opts.grace.as_secs() as i64)
        .collect();
    if due.is_empty() {
        return Ok(rep);
    }
    let locks = lock::view(repo, keys, own_lock.as_deref())?;
    rep.stale_locks = locks
        .stale
        .iter()
        .map(|(p, l)| {
            format!(
                "{p} (pid {} on {}, last refreshed {}s ago)",
                l.pid,
                l.host,
                now - l.refreshed
            )
        })
        .collect();
    if !locks.live.is_empty() {
        rep.postponed.push(format!(
            "{} other operation(s) hold a lock (a backup is running?); condemned packs are kept until a later prune",
            locks.live.len()
        ));
        return Ok(rep);
    }
    // A fresh, complete view: snapshots committed since the walk above count too.
    let fresh = repo.snapshots(keys)?;
    let known: HashSet<Id> = snaps.iter().map(|(i, _)| *i).collect();
    let files_now = repo.index_files(keys)?;
    let present_now = repo.pack_names(keys)?;
    let index_now = repo::merge_index(files_now.clone(), Some(&present_now));
    let reader_now = BlobReader::new(repo, keys, &index_now)?;
    walk_used(
        &reader_now,
        fresh
            .iter()
            .filter(|(i, _)| !known.contains(i))
            .map(|(_, s)| s.tree),
        &mut used,
    )?;
    for (_, f) in &files_now {
        for e in &f.entries {
            let p = f.packs[e.pack as usize].id;
            let v = locations.entry(e.id).or_default();
            if !v.contains(&p) {
                v.push(p);
            }
        }
    }
    let packs_now: HashSet<Id> = repo
        .store
        .list(&format!("packs/{tagh}"))?
        .iter()
        .filter_map(|o| repo::name_of(&o.path))
        .collect();
    // Blobs in each candidate pack.
    let mut blobs_in: HashMap<Id, Vec<Id>> = HashMap::new();
    for (b, locs) in &locations {
        for p in locs {
            blobs_in.entry(*p).or_default().push(*b);
        }
    }
    let mut delete: HashSet<Id> = due
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .filter(|p| packs_now.contains(p))
        .collect();
    loop {
        let rescue: Vec<Id> = delete
            .iter()
            .filter(|p| {
                blobs_in.get(p).into_iter().flatten().any(|b| {
                    used.contains(b)
                        && !locations[b]
                            .iter()
                            .any(|q| q != *p && packs_now.contains(q) && !delete.contains(q))
                })
            })
            .copied()
            .collect();
        if rescue.is_empty() {
            break;
        }
        rep.packs_rescued += rescue.len();
        for p in rescue {
            delete.remove(&p);
        }
    }
    // Rescued packs stay; make sure an index object that survives this prune lists them
    // (the plan's index objects, which may be the only ones listing them, go below).
    let rescued: HashSet<Id> = due
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .filter(|p| packs_now.contains(p) && !delete.contains(p))
        .collect();
    if !rescued.is_empty() {
        let mut keep_index = IndexFile::default();
        let mut seen: HashSet<Id> = HashSet::new();
        for (_, f) in &files_now {
            for e in &f.entries {
                let p = f.packs[e.pack as usize];
                if !rescued.contains(&p.id) || !seen.insert(e.id) {
                    continue;
                }
                keep_index.push(p, e);
            }
        }
        if !keep_index.entries.is_empty() {
            repo.write_index(keys, &keep_index)?;
        }
    }
    progress.phase("deleting", None);
    let mut delete: Vec<Id> = delete.into_iter().collect();
    delete.sort();
    for (i, p) in delete.iter().enumerate() {
        match repo.store.delete(&repo::pack_path(&keys.tag, p)) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        rep.packs_deleted += 1;
        rep.bytes_freed += packs_listed.get(p).copied().unwrap_or(0);
        if i == delete.len() / 2 {
            crate::fault::point("prune:mid-delete");
        }
    }
    crate::fault::point("prune:after-delete-packs");
    let index_present: HashSet<Id> = files_now.iter().map(|(n, _)| *n).collect();
    for (path, plan) in &due {
        let replaced = plan.replacement.is_none_or(|r| index_present.contains(&r));
        if replaced {
            for n in &plan.index {
                if Some(*n) == plan.replacement || !index_present.contains(n) {
                    continue;
                }
                match repo.store.delete(&repo::index_path(&keys.tag, n)) {
                    Ok(()) => rep.index_objects_deleted += 1,
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        crate::fault::point("prune:before-plan-delete");
        match repo.store.delete(path) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        rep.plans_completed += 1;
    }
    progress.finish();
    Ok(rep)
}
