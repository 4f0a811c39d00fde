//! Phase 2 of prune: delete what the plans condemned, from a fresh, complete view.

use super::{walk_used, PruneOptions, PruneReport, Used, View};
use crate::error::Result;
use crate::index::spill::{IdSet, Sorter, RUN_BYTES};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::lock;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::control::PrunePlan;
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use coop_formats::pack::PackEntry;
use std::collections::HashSet;

/// Executes the plans that are old enough, if no other operation holds a live lock: re-lists
/// everything, walks the snapshots written since the plan, and deletes each condemned pack
/// unless a needed blob in it (by the pack's own table) has no copy in a pack a plan wrote;
/// such packs are kept (rescued) and indexed again.
#[allow(clippy::too_many_arguments)]
pub(super) fn run(
    repo: &Repo,
    keys: &TenantKeys,
    before: &View,
    mut used: Used,
    plans: Vec<(Id, PrunePlan)>,
    opts: &PruneOptions,
    own_lock: Option<Id>,
    progress: &dyn Progress,
    rep: &mut PruneReport,
) -> Result<()> {
    let due = super::due(plans, opts);
    if due.is_empty() || !no_live_lock(repo, keys, own_lock, rep)? {
        return Ok(());
    }
    let fresh = fresh_view(repo, keys, before, &mut used)?;
    let condemned: HashSet<Id> = due
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .collect();
    // Copies a plan made (verified as it copied them), in packs that stay.
    let new_packs: HashSet<Id> = due
        .iter()
        .flat_map(|(_, p)| p.new_packs.iter().copied())
        .filter(|p| fresh.packs.contains_key(p) && !condemned.contains(p))
        .collect();
    let copies = copies(&fresh, &due, &condemned, &new_packs, used.dir())?;
    let (mut delete, rescued) = rescue(repo, keys, &fresh, &condemned, &copies, &used)?;
    rep.packs_rescued += rescued.len();
    let keep_index_name = index_rescued(repo, keys, &fresh, &rescued)?;
    progress.phase("deleting", None);
    delete.sort();
    let index_present: HashSet<Id> = fresh.claims.names.iter().copied().collect();
    let gone = Gone {
        packs: &delete,
        index_present: &index_present,
        due: &due,
    };
    // Every snapshot this run walked (read before, or since): only their inventories resolve
    // through its replacements at a replica.
    let mut covered: Vec<String> = before
        .snapshots
        .iter()
        .chain(&fresh.snapshots)
        .map(|e| e.id)
        .chain(
            before
                .inventories
                .iter()
                .chain(&fresh.inventories)
                .map(|(id, _)| *id),
        )
        .map(|id| id.to_hex())
        .collect();
    covered.sort();
    covered.dedup();
    gone.log(repo, keys, &new_packs, keep_index_name, &covered)?;
    gone.delete(repo, keys, before, rep)?;
    progress.finish();
    Ok(())
}

/// Step 1: whether no other operation holds a live lock (else the deletion is postponed,
/// and the report says why). Stale locks are named in the report either way.
fn no_live_lock(
    repo: &Repo,
    keys: &TenantKeys,
    own_lock: Option<Id>,
    rep: &mut PruneReport,
) -> Result<bool> {
    let now = crate::now_unix();
    let locks = lock::view(repo, keys, own_lock)?;
    rep.stale_locks = locks
        .stale
        .iter()
        .map(|(n, l)| {
            format!(
                "{n} (pid {} on {}, last refreshed {}s ago)",
                l.holder.pid,
                l.holder.host,
                now - l.refreshed
            )
        })
        .collect();
    rep.stale_locks.extend(
        locks
            .unreadable_stale
            .iter()
            .map(|n| format!("{n} (unreadable, written over 30 minutes ago)")),
    );
    if !locks.live.is_empty() {
        rep.postponed.push(format!(
            "{} other operation(s) hold a lock (a backup is running?); condemned packs are kept until a later prune",
            locks.live.len()
        ));
        return Ok(false);
    }
    Ok(true)
}

/// Step 2: a fresh, complete view; the snapshots committed since `before` was read are
/// walked, so that what they need counts too.
fn fresh_view(repo: &Repo, keys: &TenantKeys, before: &View, used: &mut Used) -> Result<View> {
    let fresh = View::read(repo, keys, used.dir(), &mut Vec::new())?;
    let known: HashSet<Id> = before.snapshots.iter().map(|e| e.id).collect();
    let index_now = fresh.index(keys, used.dir())?;
    let reader_now = BlobReader::for_maintenance(repo, keys, &index_now)?;
    walk_used(
        &reader_now,
        fresh
            .snapshots
            .iter()
            .filter(|e| !known.contains(&e.id))
            .map(|e| &e.snapshot),
        used,
    )?;
    Ok(fresh)
}

/// Step 3: the blobs that have a copy a deletion may rely on, sorted on disk in `dir` (a
/// plan may have copied millions of blobs): those a signed replacement a due plan names
/// puts in one of `new_packs`, and those the plans verified in packs that stay (and stay
/// after this run).
fn copies(
    fresh: &View,
    due: &[(Id, PrunePlan)],
    condemned: &HashSet<Id>,
    new_packs: &HashSet<Id>,
    dir: &std::path::Path,
) -> Result<IdSet> {
    let io = |e| crate::error::Error::io(dir, e);
    let mut copies = Sorter::new(dir, 32, RUN_BYTES);
    let replacements: HashSet<Id> = due.iter().filter_map(|(_, p)| p.replacement).collect();
    // Per index object read: whether it is a signed replacement a due plan names.
    let honoured: Vec<bool> = fresh
        .claims
        .names
        .iter()
        .zip(&fresh.claims.signed)
        .map(|(n, signed)| *signed && replacements.contains(n))
        .collect();
    if honoured.iter().any(|h| *h) {
        fresh.claims.for_each_blob(|id, claims| {
            if claims.iter().any(|c| {
                honoured[c.object as usize] && new_packs.contains(&fresh.claims.pack_id(&c.loc))
            }) {
                copies.push(&id.0).map_err(io)?;
            }
            Ok(())
        })?;
    }
    for (_, plan) in due {
        for (b, q) in &plan.verified {
            if fresh.packs.contains_key(q) && !condemned.contains(q) {
                copies.push(&b.0).map_err(io)?;
            }
        }
    }
    IdSet::from_sorter(copies, dir).map_err(io)
}

/// A pack and its own table.
type PackTable = (Id, Vec<PackEntry>);

/// Step 4: the condemned packs still there, split into those to delete and those to keep
/// (rescued, with their own tables): a pack is kept when its own table lists a needed blob
/// that has none of the `copies`.
fn rescue(
    repo: &Repo,
    keys: &TenantKeys,
    fresh: &View,
    condemned: &HashSet<Id>,
    copies: &IdSet,
    used: &Used,
) -> Result<(Vec<Id>, Vec<PackTable>)> {
    let io = |e| crate::error::Error::io(used.dir(), e);
    let tables = crate::packtable::Tables::new(repo, keys)?;
    let mut delete: Vec<Id> = Vec::new();
    let mut rescued: Vec<PackTable> = Vec::new();
    for p in condemned {
        let Some((size, _)) = fresh.packs.get(p) else {
            continue; // gone already (an earlier, interrupted run)
        };
        let table = tables.get(p, *size)?;
        let mut needed = false;
        for e in &table {
            if !copies.contains(&e.id).map_err(io)? && used.contains(&e.id)? {
                needed = true;
                break;
            }
        }
        if needed {
            rescued.push((*p, table));
        } else {
            delete.push(*p);
        }
    }
    Ok((delete, rescued))
}

/// Step 5: rescued packs stay; an index object of them (from their own tables) is written
/// so that an index object that survives this prune lists them. Returns its name.
fn index_rescued(
    repo: &Repo,
    keys: &TenantKeys,
    fresh: &View,
    rescued: &[PackTable],
) -> Result<Option<Id>> {
    if rescued.is_empty() {
        return Ok(None);
    }
    let mut keep_index = IndexFile::default();
    for (p, table) in rescued {
        keep_index.add_pack(*p, fresh.packs[p].0, table);
    }
    Ok(Some(repo.put(
        Kind::Index,
        &keys.tag,
        keep_index.seal(&keys.index_key, keys.tag, None),
    )?))
}

/// What this run deletes: the packs, and of each due plan the index objects it replaced.
struct Gone<'a> {
    /// The condemned packs to delete, sorted.
    packs: &'a [Id],
    /// The index objects in the fresh view.
    index_present: &'a HashSet<Id>,
    due: &'a [(Id, PrunePlan)],
}

impl Gone<'_> {
    /// The index objects `plan` deletes: those it names that are still there, other than
    /// its replacement, and only once its replacement is there (or it names none).
    fn index_of<'p>(&'p self, plan: &'p PrunePlan) -> impl Iterator<Item = &'p Id> + 'p {
        let replaced = plan
            .replacement
            .is_none_or(|r| self.index_present.contains(&r));
        plan.index.iter().filter(move |n| {
            replaced && Some(**n) != plan.replacement && self.index_present.contains(n)
        })
    }

    /// Step 6: what goes, logged first (replicas delete only what such an entry names), with
    /// what the plans wrote in place of it: snapshots whose inventories name a deleted
    /// object need these instead (replicas resolve inventories through the log entry).
    fn log(
        &self,
        repo: &Repo,
        keys: &TenantKeys,
        new_packs: &HashSet<Id>,
        keep_index_name: Option<Id>,
        covered: &[String],
    ) -> Result<()> {
        let index_gone: Vec<Id> = self
            .due
            .iter()
            .flat_map(|(_, plan)| self.index_of(plan))
            .copied()
            .collect();
        let paths: Vec<String> = self
            .packs
            .iter()
            .map(|p| Kind::Pack.path(&keys.tag, p))
            .chain(index_gone.iter().map(|n| Kind::Index.path(&keys.tag, n)))
            .collect();
        let mut replaced_by: Vec<String> = new_packs
            .iter()
            .map(|p| Kind::Pack.path(&keys.tag, p))
            .chain(
                self.due
                    .iter()
                    .filter_map(|(_, p)| p.replacement)
                    .filter(|r| self.index_present.contains(r))
                    .chain(keep_index_name)
                    .map(|n| Kind::Index.path(&keys.tag, &n)),
            )
            .collect();
        replaced_by.sort();
        replaced_by.dedup();
        crate::log::record_deletions_replaced(
            repo,
            keys,
            coop_formats::tlog::Event::Delete,
            &paths,
            &replaced_by,
            covered,
        )
        .map_err(|e| crate::error::Error::Conflict {
            what: format!(
                "prune deletes nothing it cannot log first: {}",
                crate::error::chain(&e)
            ),
        })
    }

    /// Step 7: deletes the packs, then per due plan the index objects it replaced and the
    /// plan itself (last: an interrupted run leaves a plan to finish).
    fn delete(
        &self,
        repo: &Repo,
        keys: &TenantKeys,
        before: &View,
        rep: &mut PruneReport,
    ) -> Result<()> {
        for (i, p) in self.packs.iter().enumerate() {
            repo.delete(Kind::Pack, &keys.tag, p)?;
            rep.packs_deleted += 1;
            rep.bytes_freed += before.packs.get(p).map(|(s, _)| *s).unwrap_or(0);
            if i == self.packs.len() / 2 {
                crate::fault::point("prune:mid-delete");
            }
        }
        crate::fault::point("prune:after-delete-packs");
        for (name, plan) in self.due {
            for n in self.index_of(plan) {
                repo.delete(Kind::Index, &keys.tag, n)?;
                rep.index_objects_deleted += 1;
            }
            crate::fault::point("prune:before-plan-delete");
            repo.delete(Kind::Plan, &keys.tag, name)?;
            rep.plans_completed += 1;
        }
        Ok(())
    }
}
