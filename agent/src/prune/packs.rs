//! Prune of a member tenant by an admin who does not read it (after the recovery split,
//! SPEC 13.7): whole packs, judged from the snapshots' clear inventories and the index
//! objects' claims, never from a tree. Nothing is decrypted, copied or repacked; a pack
//! shared by a kept and a forgotten snapshot stays (repacking is the member's own prune's,
//! or a recovery's).
//!
//! A pack is **needed** when a present snapshot's inventory names it: every snapshot that
//! opened with the service tenant's key (flagged ones too) and every snapshot it does not
//! open (the member's own). Forged snapshots count for nothing, as in the full prune. Since an
//! inventory names the pack the backup's index *said* a reused blob is in, and a writer key
//! can write an index object that lies, every pack any index object claims holds a blob that
//! is claimed in a needed pack is needed too: the blob's genuine location stays whichever
//! claim the backup followed.
//!
//! An inventory that names a pack the store no longer lists (the member's own prune
//! repacked its blobs into packs it does not name, or the pack was lost) makes the needed set
//! unknowable: nothing is condemned then, and the report says why.
//!
//! The two phases are the full prune's: a plan signed by the admin key condemns the packs
//! (backups stop deduplicating against them), then, with no other live lock, a fresh view
//! decides again, the deletions are logged in the admin log (replicas follow them), and the
//! packs go.

use super::{PruneOptions, PruneReport, View};
use crate::error::Result;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::lock;
use crate::progress::Progress;
use crate::repo::Repo;
use coop_formats::control::{LockKind, PrunePlan};
use coop_formats::id::Id;
use std::collections::HashSet;

/// What the present snapshots need, per pack, or why that cannot be known.
pub(super) fn needed(view: &View) -> Result<std::result::Result<HashSet<Id>, String>> {
    let mut needed: HashSet<Id> = HashSet::new();
    let mut stale: Vec<Id> = Vec::new();
    for (snap, inv) in &view.inventories {
        for p in &inv.packs {
            if !view.packs.contains_key(p) && !stale.contains(snap) {
                stale.push(*snap);
            }
            needed.insert(*p);
        }
    }
    if !stale.is_empty() {
        let named: Vec<String> = stale.iter().take(5).map(|s| s.short()).collect();
        return Ok(Err(format!(
            "{} snapshot(s) ({}{}) name packs the store no longer has: a prune with the member's key \
             moved their data to packs their inventories do not name (or the packs were lost; \
             `coop check` tells). Which packs they need cannot be known without reading them, so \
             nothing is condemned; the member's own prune frees this space, and this one works \
             again once those snapshots are forgotten",
            stale.len(),
            named.join(", "),
            if stale.len() > 5 { ", …" } else { "" }
        )));
    }
    // Per blob, every pack an index object (superseded or not) claims holds it.
    let c = &view.claims;
    let mut more: HashSet<Id> = HashSet::new();
    c.for_each_blob(|_, claims| {
        if claims.iter().any(|cl| needed.contains(&c.pack_id(&cl.loc))) {
            more.extend(claims.iter().map(|cl| c.pack_id(&cl.loc)));
        }
        Ok(())
    })?;
    needed.extend(more);
    Ok(Ok(needed))
}

/// Per-pack prune with upkeep keys (see the module docs).
pub(super) fn prune(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    let signer = keys.maintainer_signer()?;
    let mut rep = PruneReport::default();
    let lock = if opts.dry_run {
        None
    } else {
        Some(lock::acquire(repo, keys, LockKind::Prune)?)
    };
    progress.phase("listing", None);
    let scratch = crate::index::spill::scratch_dir(repo, ".prune-")?;
    let view = View::read(repo, keys, scratch.path(), &mut rep.warnings)?;
    rep.snapshots = view.snapshots.len() + view.opaque;
    rep.packs = view.packs.len();
    rep.bytes_total = view.packs.values().map(|(s, _)| s).sum();
    progress.finish();
    let needed = match needed(&view)? {
        Ok(n) => n,
        Err(why) => {
            rep.postponed.push(why);
            return Ok(rep);
        }
    };
    rep.bytes_used = view
        .packs
        .iter()
        .filter(|(p, _)| needed.contains(p))
        .map(|(_, (s, _))| s)
        .sum();
    let already: HashSet<Id> = view
        .plans
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .collect();
    let young = crate::now_unix() - opts.unindexed_grace.as_secs() as i64;
    let mut condemn: Vec<Id> = Vec::new();
    for (p, (size, modified)) in &view.packs {
        if needed.contains(p) || already.contains(p) {
            continue;
        }
        // A running backup may own a pack nothing indexes yet.
        if !view.claims.lists_pack(p) && *modified > young {
            rep.packs_too_young += 1;
            continue;
        }
        condemn.push(*p);
        rep.bytes_to_free += size;
    }
    condemn.sort();
    rep.packs_unused = condemn.len();
    if opts.dry_run {
        return Ok(rep);
    }
    let mut plans = own_plans(repo, keys, &mut rep.warnings)?;
    if !condemn.is_empty() {
        let plan = PrunePlan {
            created: crate::now_unix(),
            packs: condemn,
            index: vec![],
            replacement: None,
            new_packs: vec![],
            verified: vec![],
        };
        let name = repo.put(
            Kind::Plan,
            &keys.tag,
            coop_formats::control::Control::seal(&plan, &keys.index_key, keys.tag, &signer),
        )?;
        rep.plans_written += 1;
        crate::fault::point("prune:after-plan");
        plans.push((name, plan));
    }
    execute(
        repo,
        keys,
        plans,
        opts,
        lock.as_ref().map(|l| l.name()),
        progress,
        &mut rep,
    )?;
    super::log_plans(repo, keys, &mut rep, ", per pack");
    Ok(rep)
}

/// The per-pack plans an admin signed for this tenant (condemned packs, nothing copied).
/// The member's own plans are left to the member's prune, which checks the packs' tables.
fn own_plans(
    repo: &Repo,
    keys: &TenantKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Id, PrunePlan)>> {
    let mut out = Vec::new();
    for (name, r) in repo.list_control::<PrunePlan>(keys, Kind::Plan)? {
        match r {
            Ok((plan, signer))
                if keys.is_maintainer(&signer)
                    && !keys.is_authority(&signer)
                    && plan.replacement.is_none()
                    && plan.new_packs.is_empty()
                    && plan.verified.is_empty()
                    && plan.index.is_empty() =>
            {
                out.push((name, plan))
            }
            Ok((_, signer)) if keys.is_authority(&signer) => {}
            Ok(_) => warnings.push(format!(
                "prune plan {name} is not signed by this tenant's authority or an admin; ignored"
            )),
            Err(e) => warnings.push(format!("prune plan {name} does not open; ignored: {e}")),
        }
    }
    Ok(out)
}

/// Phase 2: with no other live lock, decide again from a fresh view (snapshots written since
/// the plan count), log the deletions in the admin log, delete the packs and the plans.
fn execute(
    repo: &Repo,
    keys: &TenantKeys,
    plans: Vec<(Id, PrunePlan)>,
    opts: &PruneOptions,
    own_lock: Option<Id>,
    progress: &dyn Progress,
    rep: &mut PruneReport,
) -> Result<()> {
    let due = super::due(plans, opts);
    if due.is_empty() {
        return Ok(());
    }
    let locks = lock::view(repo, keys, own_lock)?;
    if !locks.live.is_empty() {
        rep.postponed.push(format!(
            "{} other operation(s) hold a lock (a backup is running?); condemned packs are kept until a later prune",
            locks.live.len()
        ));
        return Ok(());
    }
    let scratch = crate::index::spill::scratch_dir(repo, ".prune-")?;
    let fresh = View::read(repo, keys, scratch.path(), &mut Vec::new())?;
    let needed = match needed(&fresh)? {
        Ok(n) => n,
        Err(why) => {
            rep.postponed.push(why);
            return Ok(());
        }
    };
    let mut delete: Vec<Id> = Vec::new();
    for (_, plan) in &due {
        for p in &plan.packs {
            if !fresh.packs.contains_key(p) || delete.contains(p) {
                continue; // gone already (an earlier, interrupted run)
            }
            if needed.contains(p) {
                rep.packs_rescued += 1; // a snapshot written since needs it
            } else {
                delete.push(*p);
            }
        }
    }
    delete.sort();
    progress.phase("deleting", None);
    let paths: Vec<String> = delete
        .iter()
        .map(|p| Kind::Pack.path(&keys.tag, p))
        .collect();
    // Logged first: replicas delete only what an admin's entry names.
    crate::log::record_deletions(repo, keys, coop_formats::tlog::Event::Delete, &paths).map_err(
        |e| crate::error::Error::Conflict {
            what: format!(
                "prune deletes nothing it cannot log first: {}",
                crate::error::chain(&e)
            ),
        },
    )?;
    for p in &delete {
        repo.delete(Kind::Pack, &keys.tag, p)?;
        rep.packs_deleted += 1;
        rep.bytes_freed += fresh.packs.get(p).map(|(s, _)| *s).unwrap_or(0);
    }
    for (name, _) in &due {
        repo.delete(Kind::Plan, &keys.tag, name)?;
        rep.plans_completed += 1;
    }
    progress.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coop_formats::id::BlobType;
    use coop_formats::index::IndexFile;
    use coop_formats::pack::PackEntry;
    use coop_formats::snapshot::Inventory;

    fn blob(n: u8) -> PackEntry {
        PackEntry {
            ty: BlobType::Data,
            compression: 0,
            id: Id([n; 32]),
            offset: 24,
            stored_len: 10,
            raw_len: 10,
        }
    }

    fn index(packs: &[(u8, &[u8])]) -> (Id, IndexFile) {
        let mut f = IndexFile::default();
        for (p, blobs) in packs {
            let entries: Vec<PackEntry> = blobs.iter().map(|b| blob(*b)).collect();
            f.add_pack(Id([*p; 32]), 100, &entries);
        }
        (Id([packs[0].0 ^ 0xff; 32]), f)
    }

    fn view(packs: &[u8], files: Vec<(Id, IndexFile)>, snaps: &[(u8, &[u8])]) -> View {
        let dir = tempfile::tempdir().unwrap();
        View {
            packs: packs.iter().map(|p| (Id([*p; 32]), (100, 0))).collect(),
            claims: crate::index::claims::Claims::from_files(dir.path(), files).unwrap(),
            plans: vec![],
            snapshots: vec![],
            inventories: snaps
                .iter()
                .map(|(s, ps)| {
                    (
                        Id([*s; 32]),
                        Inventory {
                            packs: ps.iter().map(|p| Id([*p; 32])).collect(),
                            index: vec![],
                        },
                    )
                })
                .collect(),
            opaque: 0,
        }
    }

    /// A kept snapshot's packs stay, shared ones included; a pack only a forgotten snapshot
    /// named (it is no longer listed) goes.
    #[test]
    fn packs_named_by_a_present_inventory_stay() {
        let files = vec![index(&[(1, &[1]), (2, &[2]), (3, &[3])])];
        // Snapshot 10 (kept) uses packs 1 and 2; the forgotten one used 2 and 3.
        let v = view(&[1, 2, 3], files, &[(10, &[1, 2])]);
        let n = needed(&v).unwrap().unwrap();
        assert!(n.contains(&Id([1; 32])) && n.contains(&Id([2; 32])));
        assert!(
            !n.contains(&Id([3; 32])),
            "only the forgotten snapshot needed pack 3"
        );
    }

    /// A writer key's index object says blob 7 is in pack 9 (it is in pack 5): a genuine
    /// backup that reused blob 7 names pack 9 in its inventory. Pack 5, where the blob is,
    /// still stays: every pack claimed to hold a blob claimed in a needed pack is needed.
    #[test]
    fn a_lying_index_object_cannot_get_a_needed_pack_deleted() {
        let genuine = index(&[(5, &[7, 8])]);
        let lie = index(&[(9, &[7])]);
        let v = view(&[5, 9], vec![genuine, lie], &[(10, &[9])]);
        let n = needed(&v).unwrap().unwrap();
        assert!(
            n.contains(&Id([5; 32])),
            "the blob's genuine pack would be deleted"
        );
        assert!(n.contains(&Id([9; 32])));
    }

    /// An inventory that names a pack the store lost (the member's own prune repacked it)
    /// leaves the needed set unknown: nothing is condemned.
    #[test]
    fn a_stale_inventory_condemns_nothing() {
        let files = vec![index(&[(1, &[1]), (4, &[4])])];
        let v = view(&[1, 4], files, &[(10, &[1, 2])]);
        let why = needed(&v).unwrap().unwrap_err();
        assert!(why.contains("no longer has"), "{why}");
    }
}
