//! `prune`: reclaim space with a two-phase delete that never races a backup, and never
//! deletes on anybody's word but the packs' own.
//!
//! - [`plan`]: phase 1, from complete listings and a full walk of every snapshot: find packs
//!   that look unused or mostly unused, read each of them, copy every blob a snapshot needs
//!   out of it (verified), write one consolidated index (its supersession signed by the
//!   tenant's authority) and a signed *prune plan* naming the condemned packs. Nothing is
//!   deleted yet.
//! - [`execute`]: phase 2, in this run when the grace period is 0, else later: only if no
//!   other live lock exists, re-list, walk the new snapshots, and delete each condemned pack
//!   whose needed blobs this prune copied; keep (rescue) the others.
//!
//! - [`packs`]: for an admin keeping a member tenant up without reading it (after the
//!   recovery split), the same two phases per pack: a pack goes only when no snapshot's
//!   clear inventory needs it, nothing is read or copied (SPEC 13.7).
//!
//! What an index object says about where blobs are is only a hint: a stolen writer key can
//! write one that lies. So prune reads every pack it would delete and looks at the table
//! inside it (authenticated by age; genuine packs hold what their table says, and a writer
//! cannot forge a blob it does not know). A needed blob found in a condemned pack is always
//! copied by this prune or the pack is kept; no other copy is taken on trust. Plans and
//! supersessions count only when the tenant's authority signed them.

mod execute;
mod packs;
mod plan;

use crate::error::{Error, Result};
use crate::index::claims::Claims;
use crate::index::spill::{IdSet, Sorter, RUN_BYTES};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::lock;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::control::{LockKind, PrunePlan};
use coop_formats::id::Id;
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
    /// Packs no index object lists are kept while younger than this: they may belong to a
    /// backup that is still running (it indexes every few packs).
    pub unindexed_grace: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        Self {
            max_unused: 0.05,
            dry_run: false,
            grace: Duration::ZERO,
            unindexed_grace: Duration::from_secs(lock::STALE_SECS as u64),
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
    /// Unindexed packs kept because they are younger than the unindexed grace.
    pub packs_too_young: usize,
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
    /// Objects ignored because nobody entitled signed them (forged plans, snapshots, …),
    /// and index objects found to lie about where blobs are.
    pub warnings: Vec<String>,
}

pub use crate::control::condemned_packs;

fn signed_plans(
    repo: &Repo,
    keys: &TenantKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Id, PrunePlan)>> {
    crate::control::signed_plans(repo, keys, warnings)
}

/// Everything prune decides from: complete listings, read once.
pub(super) struct View {
    /// Pack name → (stored size, modified).
    pub packs: HashMap<Id, (u64, i64)>,
    /// Every claim of every index object, sorted on disk (the objects are not kept).
    pub claims: Claims,
    pub plans: Vec<(Id, PrunePlan)>,
    pub snapshots: Vec<crate::snapshots::Entry>,
    /// Upkeep keys only (an admin keeping a member tenant up without reading it): the
    /// inventories of the snapshots that opened and of those the service tenant's key does
    /// not open, and how many of the latter there are.
    pub inventories: Vec<(Id, coop_formats::snapshot::Inventory)>,
    pub opaque: usize,
}

impl View {
    /// Lists and reads everything; any listing error, damaged snapshot or sign of a
    /// rollback stops prune here, before anything is changed. The index objects are read
    /// one batch at a time into [`Claims`] in `dir`.
    pub fn read(
        repo: &Repo,
        keys: &TenantKeys,
        dir: &std::path::Path,
        warnings: &mut Vec<String>,
    ) -> Result<Self> {
        let packs: HashMap<Id, (u64, i64)> = repo
            .list(Kind::Pack, &keys.tag)?
            .into_iter()
            .map(|o| (o.name, (o.size, o.modified)))
            .collect();
        let claims = Claims::build(dir, crate::index::load::each_file(repo, keys)?)?;
        let plans = signed_plans(repo, keys, warnings)?;
        let view = crate::snapshots::view(repo, keys)?;
        if let Some(p) = view.listing.problems.iter().find(|p| p.may_be_needed()) {
            return Err(Error::damaged(
                &p.object,
                format!(
                    "prune refuses to run: {p}. A snapshot that is damaged or that these keys do \
                     not open may need data; copy it from another site, open the tenant with \
                     its current keys, or remove it knowingly with forget."
                ),
            ));
        }
        view.refuse_if_rollback("prune")?;
        warnings.extend(view.listing.problems.iter().map(|p| p.to_string()));
        let v = crate::state::observe(
            repo.cache_dir(),
            &repo.config.repo_id,
            &crate::state::Seen {
                location: &repo.store.location(),
                tag: &keys.tag,
                snapshots: None,
                verified: &[],
                forgotten: &HashSet::new(),
                index: Some((&claims.names, &claims.superseded)),
            },
        );
        if v.rollback() {
            return Err(Error::damaged(
                Kind::Index.prefix(&keys.tag),
                format!("prune refuses to run: {}", v.warnings().join(" ")),
            ));
        }
        Ok(Self {
            packs,
            claims,
            plans,
            snapshots: view.listing.entries,
            inventories: view.listing.inventories,
            opaque: view.listing.opaque.len(),
        })
    }

    pub fn present(&self) -> HashSet<Id> {
        self.packs.keys().copied().collect()
    }

    /// The merged index, as an on-disk table in `dir`, built from the claims (the same merge
    /// rule as [`crate::index::merge`], without a hash map of every blob).
    pub fn index(&self, keys: &TenantKeys, dir: &std::path::Path) -> Result<Index> {
        let present = self.present();
        let path = dir.join(format!(
            "index-{}",
            hex::encode(coop_formats::random_bytes::<8>())
        ));
        let table = self.claims.table(&path, &keys.tag, &present)?;
        // Open, it needs no name: nothing is left behind if the process is killed.
        let _ = std::fs::remove_file(&path);
        let mut index = Index::with_base(table);
        index.set_present(&present);
        Ok(index)
    }
}

/// The blobs the snapshots need: sorted ID sets on disk (one per walk), and the trees walked
/// (in memory: one per directory, not per blob).
pub(super) struct Used {
    dir: tempfile::TempDir,
    sets: Vec<IdSet>,
    trees: HashSet<Id>,
}

impl Used {
    pub fn new(repo: &Repo) -> Result<Self> {
        Ok(Self {
            dir: crate::index::spill::scratch_dir(repo, ".prune-")?,
            sets: Vec::new(),
            trees: HashSet::new(),
        })
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn contains(&self, id: &Id) -> Result<bool> {
        for s in &self.sets {
            if s.contains(id).map_err(|e| Error::io(self.dir.path(), e))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every needed blob (an ID in several sets comes once per set).
    pub fn for_each(&self, mut f: impl FnMut(&Id) -> Result<()>) -> Result<()> {
        let mut failed = None;
        for s in &self.sets {
            s.for_each(|id| {
                if failed.is_none() {
                    if let Err(e) = f(id) {
                        failed = Some(e);
                    }
                }
            })
            .map_err(|e| Error::io(self.dir.path(), e))?;
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Every blob the given snapshots need: their trees, the files' data, and their manifests,
/// added to `used` as one more sorted set (trees walked before are not walked again). A tree
/// that cannot be read anywhere stops prune: data a snapshot needs would be judged unused.
pub(super) fn walk_used<'a>(
    reader: &BlobReader,
    snapshots: impl Iterator<Item = &'a coop_formats::snapshot::Snapshot>,
    used: &mut Used,
) -> Result<()> {
    let dir = used.dir.path().to_path_buf();
    let io = |e| Error::io(&dir, e);
    let mut ids = Sorter::new(&dir, 32, RUN_BYTES);
    let mut stack: Vec<Id> = Vec::new();
    for s in snapshots {
        stack.push(s.tree);
        // The signed file list exports are checked against (a blob of its own).
        if let Some(m) = s.manifest {
            ids.push(&m.0).map_err(io)?;
        }
    }
    while let Some(t) = stack.pop() {
        if !used.trees.insert(t) || used.contains(&t)? {
            continue;
        }
        ids.push(&t.0).map_err(io)?;
        let tree = reader.tree(&t).map_err(|e| {
            Error::damaged(
                t.to_hex(),
                format!("prune refuses to run: a snapshot's tree cannot be read ({e}). Run `coop check`."),
            )
        })?;
        // A split tree's parts (read above) are needed like the tree itself.
        for p in tree.parts {
            used.trees.insert(p);
            ids.push(&p.0).map_err(io)?;
        }
        for n in tree.nodes {
            if let (NodeKind::Dir, Some(s)) = (n.kind, n.subtree) {
                stack.push(s);
            }
            for p in n.content {
                if let Part::Blob(id) = p {
                    ids.push(&id.0).map_err(io)?;
                }
            }
        }
    }
    used.sets.push(IdSet::from_sorter(ids, &dir).map_err(io)?);
    Ok(())
}

pub fn prune(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &PruneOptions,
    progress: &dyn Progress,
) -> Result<PruneReport> {
    if keys.is_upkeep() {
        // An admin and a member tenant it does not read: per pack, from the inventories.
        return packs::prune(repo, keys, opts, progress);
    }
    let authority = keys.authority_signer()?;
    let mut rep = PruneReport::default();
    let lock = if opts.dry_run {
        None
    } else {
        Some(lock::acquire(repo, keys, LockKind::Prune)?)
    };
    progress.phase("listing", None);
    let mut used = Used::new(repo)?;
    let view = View::read(repo, keys, used.dir(), &mut rep.warnings)?;
    rep.snapshots = view.snapshots.len();
    rep.packs = view.packs.len();
    rep.bytes_total = view.packs.values().map(|(s, _)| s).sum();
    progress.finish();

    progress.phase("walking", None);
    let index = view.index(keys, used.dir())?;
    let reader = BlobReader::for_maintenance(repo, keys, &index)?;
    walk_used(
        &reader,
        view.snapshots.iter().map(|e| &e.snapshot),
        &mut used,
    )?;
    // The trees are walked: the packs cached for them are not needed again.
    reader.clear_cache();
    plan::check_needed_present(&view, &index, &used)?;
    progress.finish();

    let candidates = plan::decide(&view, &index, &used, opts, &mut rep)?;
    if opts.dry_run {
        return Ok(rep);
    }
    let mut plans = view.plans.clone();
    plans.extend(plan::write(
        repo, keys, &reader, &view, &used, candidates, &authority, progress, &mut rep,
    )?);
    execute::run(
        repo,
        keys,
        &view,
        used,
        plans,
        opts,
        lock.as_ref().map(|l| l.name()),
        progress,
        &mut rep,
    )?;
    log_plans(repo, keys, &mut rep, "");
    Ok(rep)
}

/// Logs the plans this run wrote (a warning, never a failure, if the log cannot be written).
pub(super) fn log_plans(repo: &Repo, keys: &TenantKeys, rep: &mut PruneReport, how: &str) {
    if rep.plans_written == 0 {
        return;
    }
    if let Err(e) = crate::log::record(
        repo,
        keys,
        coop_formats::tlog::Event::PrunePlan,
        None,
        Some(format!("{} plan(s){how}", rep.plans_written)),
    ) {
        rep.warnings.push(format!(
            "the prune plan could not be logged: {}",
            crate::error::chain(&e)
        ));
    }
}

/// The plans whose grace period is over.
pub(super) fn due(plans: Vec<(Id, PrunePlan)>, opts: &PruneOptions) -> Vec<(Id, PrunePlan)> {
    let now = crate::now_unix();
    plans
        .into_iter()
        .filter(|(_, p)| now - p.created >= opts.grace.as_secs() as i64)
        .collect()
}

#[cfg(test)]
mod tests;
