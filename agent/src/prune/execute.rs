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
    let now = crate::now_unix();
    let due = super::due(plans, opts);
    if due.is_empty() {
        return Ok(());
    }
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
        return Ok(());
    }
    // A fresh, complete view: snapshots committed since the walk count too.
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
        &mut used,
    )?;
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
    // Sorted on disk: a plan may have copied millions of blobs.
    let dir = used.dir().to_path_buf();
    let io = |e| crate::error::Error::io(&dir, e);
    let mut copies = Sorter::new(&dir, 32, RUN_BYTES);
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
    // Copies the plans verified in packs that stay (and stay after this run).
    for (_, plan) in &due {
        for (b, q) in &plan.verified {
            if fresh.packs.contains_key(q) && !condemned.contains(q) {
                copies.push(&b.0).map_err(io)?;
            }
        }
    }
    let copies = IdSet::from_sorter(copies, &dir).map_err(io)?;
    let tables = crate::packtable::Tables::new(repo, keys)?;
    let mut delete: Vec<Id> = Vec::new();
    let mut rescued: Vec<(Id, Vec<coop_formats::pack::PackEntry>)> = Vec::new();
    for p in &condemned {
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
    rep.packs_rescued += rescued.len();
    // Rescued packs stay; index them (from their own tables) so that an index object that
    // survives this prune lists them.
    let mut keep_index_name = None;
    if !rescued.is_empty() {
        let mut keep_index = IndexFile::default();
        for (p, table) in &rescued {
            keep_index.add_pack(*p, fresh.packs[p].0, table);
        }
        keep_index_name = Some(repo.put(
            Kind::Index,
            &keys.tag,
            keep_index.seal(&keys.index_key, keys.tag, None),
        )?);
    }
    progress.phase("deleting", None);
    delete.sort();
    // What goes, logged first (replicas delete only what such an entry names).
    let index_present: HashSet<Id> = fresh.claims.names.iter().copied().collect();
    let mut index_gone: Vec<Id> = Vec::new();
    for (_, plan) in &due {
        if plan.replacement.is_none_or(|r| index_present.contains(&r)) {
            for n in &plan.index {
                if Some(*n) != plan.replacement && index_present.contains(n) {
                    index_gone.push(*n);
                }
            }
        }
    }
    let paths: Vec<String> = delete
        .iter()
        .map(|p| Kind::Pack.path(&keys.tag, p))
        .chain(index_gone.iter().map(|n| Kind::Index.path(&keys.tag, n)))
        .collect();
    // What the plans wrote in place of it: snapshots whose inventories name a deleted object
    // need these instead (replicas resolve inventories through the log entry).
    let mut replaced_by: Vec<String> = new_packs
        .iter()
        .map(|p| Kind::Pack.path(&keys.tag, p))
        .chain(
            due.iter()
                .filter_map(|(_, p)| p.replacement)
                .filter(|r| index_present.contains(r))
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
    )
    .map_err(|e| crate::error::Error::Conflict {
        what: format!(
            "prune deletes nothing it cannot log first: {}",
            crate::error::chain(&e)
        ),
    })?;
    for (i, p) in delete.iter().enumerate() {
        repo.delete(Kind::Pack, &keys.tag, p)?;
        rep.packs_deleted += 1;
        rep.bytes_freed += before.packs.get(p).map(|(s, _)| *s).unwrap_or(0);
        if i == delete.len() / 2 {
            crate::fault::point("prune:mid-delete");
        }
    }
    crate::fault::point("prune:after-delete-packs");
    for (name, plan) in &due {
        let replaced = plan.replacement.is_none_or(|r| index_present.contains(&r));
        if replaced {
            for n in &plan.index {
                if Some(*n) == plan.replacement || !index_present.contains(n) {
                    continue;
                }
                repo.delete(Kind::Index, &keys.tag, n)?;
                rep.index_objects_deleted += 1;
            }
        }
        crate::fault::point("prune:before-plan-delete");
        repo.delete(Kind::Plan, &keys.tag, name)?;
        rep.plans_completed += 1;
    }
    progress.finish();
    Ok(())
}
