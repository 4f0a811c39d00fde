//! `check` (structure, and with `--read-data` every blob) and `scrub` (no keys).
//!
//! - [`subset`]: which packs `--read-data` reads.
//! - [`graph`]: the child→parent graph that traces damage to snapshots and files.
//! - [`scrub`]: names against bytes, for every object, without keys.
//!
//! Every problem names the damaged object by its full name (which is also its store path's
//! last component) and, where blobs are affected, the snapshots and files that need them.
//! Besides the trees, `check` compares what the index objects claim with the packs' own
//! tables (read with ranged reads and cached), so an index object that lies about where a
//! blob is (forged with a writer key) is found without reading any data.

mod graph;
pub mod scrub;
mod subset;

pub use scrub::{scrub, ScrubReport};
pub use subset::Subset;

use crate::damage::ProblemKind;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use coop_formats::tree::{NodeKind, Part};
use graph::Graph;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// One problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The damaged object: `pack <id>`, `index <id>`, `snapshot <id>`, `blob <id>`, …
    pub object: String,
    pub message: String,
    /// Snapshots that need the damaged object.
    pub snapshots: Vec<String>,
    /// Files (snapshot short id: path) that need it.
    pub files: Vec<String>,
    /// The object was stored as it is (its bytes match its name) but is no coop object of
    /// this tenant: junk anyone with create rights can write. Delete it; a replica's copy
    /// would be the same junk.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub junk: bool,
    /// Every blob this problem concerns verifies at another location: nothing that needs it
    /// is damaged (a bad or forged copy), so no snapshot is affected.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intact_elsewhere: bool,
}

impl Problem {
    fn new(object: String, message: String) -> Self {
        Self {
            object,
            message,
            snapshots: vec![],
            files: vec![],
            junk: false,
            intact_elsewhere: false,
        }
    }

    /// A problem with an object whose bytes match its name: never a genuine object damaged
    /// in storage, so it is to be deleted, not restored from a replica.
    fn junk(object: String, path: &str, why: impl std::fmt::Display) -> Self {
        Self {
            junk: true,
            ..Self::new(
                object,
                format!("not a coop object ({why}): delete it ({path}); nothing refers to it"),
            )
        }
    }
}

/// Whether the object at `path` holds the bytes its name says (it was stored as it is: a
/// failure to decode it is not damage in storage). A read error counts as no.
fn stored_as_named(repo: &Repo, path: &str) -> bool {
    let Some(p) = crate::layout::ObjectPath::parse(path) else {
        return false;
    };
    repo.store
        .get(path)
        .is_ok_and(|b| Id::of_stored(&b) == p.name)
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub tenant: String,
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub index_objects: usize,
    pub blobs_in_index: usize,
    /// Pack tables compared with the index (from the cache or read from the packs).
    pub pack_tables_checked: usize,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub errors: Vec<Problem>,
    /// Packs no index object lists (left by an interrupted backup; prune removes them).
    pub unreferenced_packs: Vec<String>,
    pub warnings: Vec<String>,
}

/// What the check has read so far.
struct Checker<'a> {
    repo: &'a Repo,
    keys: &'a TenantKeys,
    r: CheckReport,
    packs: HashMap<Id, u64>,
    files: Vec<(Id, IndexFile)>,
    snaps: Vec<crate::snapshots::Entry>,
    /// Upkeep keys: the inventories of the snapshots that opened and of the opaque ones.
    inventories: Vec<(Id, coop_formats::snapshot::Inventory)>,
    graph: Graph,
}

/// Checks the tenant's part of the repository.
pub fn check(
    repo: &Repo,
    keys: &TenantKeys,
    read: Option<Subset>,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    if !keys.is_upkeep() {
        keys.reader()?;
    } else if read.is_some() {
        return Err(Error::AccessDenied {
            what: format!(
                "{} is not yours: reading its data is the member's (or a recovery's); without \
                 --read-data an admin checks its snapshots, index and packs per inventory",
                keys.tenant
            ),
        });
    }
    let mut c = Checker {
        repo,
        keys,
        r: CheckReport {
            tenant: keys.tenant.clone(),
            ..Default::default()
        },
        packs: HashMap::new(),
        files: Vec::new(),
        snaps: Vec::new(),
        inventories: Vec::new(),
        graph: Graph::default(),
    };
    // Listings first; a listing error aborts the check (never read as "empty").
    c.packs = repo
        .list(Kind::Pack, &keys.tag)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    c.r.packs = c.packs.len();
    c.read_index()?;
    let present: HashSet<Id> = c.packs.keys().copied().collect();
    let index = crate::index::merge(c.files.clone(), Some(&present));
    c.r.blobs_in_index = index.len();
    c.check_pack_sizes(&index);
    c.read_snapshots()?;
    if keys.is_upkeep() {
        // A member tenant the admin does not read (SPEC 13.7): every pack a snapshot's
        // inventory names must be there; trees and data are the member's to check.
        c.check_inventories();
        c.rollback();
        return Ok(c.r);
    }
    progress.phase("trees", None);
    let reader = BlobReader::for_maintenance(repo, keys, &index)?;
    c.walk(&reader, &index)?;
    progress.finish();
    c.check_claims(&index, progress)?;
    c.attach(&index, 0);
    if let Some(subset) = read {
        let before = c.r.errors.len();
        c.read_data(&reader, &index, subset, progress)?;
        c.attach(&index, before);
    }
    c.rollback();
    Ok(c.r)
}

impl Checker<'_> {
    /// Index objects one by one, so a damaged one is named and the rest still checked.
    fn read_index(&mut self) -> Result<()> {
        for obj in self.repo.list(Kind::Index, &self.keys.tag)? {
            self.r.index_objects += 1;
            match crate::index::load::file(self.repo, self.keys, &obj.name) {
                Ok(Some(f)) => self.files.push(f),
                Ok(None) => {}
                Err(e @ Error::Damaged { .. }) => {
                    let what = format!("index {}", obj.name);
                    self.r
                        .errors
                        .push(if stored_as_named(self.repo, &obj.path) {
                            let why = match &e {
                                Error::Damaged { cause, .. } => cause.to_string(),
                                _ => e.to_string(),
                            };
                            Problem::junk(what, &obj.path, why)
                        } else {
                            Problem::new(what, e.to_string())
                        })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A pack the index lists must have the size the index says.
    fn check_pack_sizes(&mut self, index: &Index) {
        let superseded: HashSet<Id> = self
            .files
            .iter()
            .flat_map(|(_, f)| f.superseded.iter().copied())
            .collect();
        let active: HashSet<Id> = self
            .files
            .iter()
            .filter(|(n, _)| !superseded.contains(n))
            .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
            .collect();
        for p in index.packs.iter().filter(|p| active.contains(&p.id)) {
            if let Some(&size) = self.packs.get(&p.id) {
                if size != p.stored_size {
                    self.r.errors.push(Problem::new(
                        format!("pack {}", p.id),
                        format!(
                            "is {size} bytes in the store, the index says {} (truncated or replaced)",
                            p.stored_size
                        ),
                    ));
                }
            }
        }
        // A pack the index lists but the store lacks is an error if a snapshot needs it
        // (found by the walk), otherwise a warning (prune drops such entries).
        for p in index.packs.iter().filter(|p| active.contains(&p.id)) {
            if !self.packs.contains_key(&p.id) {
                self.r.warnings.push(format!(
                    "index lists pack {}, which is missing from the store (if no snapshot needs it, `coop prune` cleans the index)",
                    p.id
                ));
            }
        }
        let indexed: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
        let mut leftovers: Vec<String> = self
            .packs
            .keys()
            .filter(|p| !indexed.contains(p))
            .map(|p| p.to_hex())
            .collect();
        leftovers.sort();
        self.r.unreferenced_packs = leftovers;
    }

    fn read_snapshots(&mut self) -> Result<()> {
        let view = crate::snapshots::view(self.repo, self.keys)?;
        for p in &view.listing.problems {
            let name = crate::layout::name_of(&p.object).map(|n| n.to_hex());
            let what = match (p.kind, &name) {
                (ProblemKind::Damaged, _) => "damaged",
                (ProblemKind::Forged, _) => "forged",
            };
            // A snapshot stored as it is that is no snapshot at all (fails the keyless
            // checks) is junk to delete.
            let keyless = crate::layout::ObjectPath::parse(&p.object).and_then(|op| {
                let b = self.repo.store.get(&p.object).ok()?;
                (Id::of_stored(&b) == op.name)
                    .then(|| scrub::object_ok(&op, &b).err())
                    .flatten()
            });
            if let (Some(why), Some(n)) = (keyless, &name) {
                self.r
                    .errors
                    .push(Problem::junk(format!("snapshot {n}"), &p.object, why));
                continue;
            }
            self.r.errors.push(Problem {
                object: match &name {
                    Some(n) if p.object.starts_with(Kind::Snapshot.dir()) => {
                        format!("snapshot {n}")
                    }
                    _ => p.object.clone(),
                },
                message: format!("{what}: {}", p.message),
                snapshots: name.into_iter().collect(),
                files: vec![],
                junk: false,
                intact_elsewhere: false,
            });
        }
        self.r.warnings.extend(view.verdict.warnings());
        if view.verdict.rollback() {
            self.r.errors.push(Problem::new(
                "snapshots".into(),
                "snapshots this client saw in this store are gone without a forget record (rollback or hiding)".into(),
            ));
        }
        for e in &view.listing.entries {
            for f in &e.flags {
                self.r
                    .warnings
                    .push(format!("snapshot {} is {f}", e.id.short()));
            }
        }
        self.snaps = view.listing.entries;
        self.r.snapshots = self.snaps.len() + view.listing.opaque.len();
        self.inventories = view.listing.inventories;
        Ok(())
    }

    /// Upkeep keys: every pack named by an inventory is in the store. A missing one is lost
    /// data, or the member's own prune moved its blobs (which only the member's check tells).
    fn check_inventories(&mut self) {
        let mut missing: std::collections::BTreeMap<Id, Vec<String>> = Default::default();
        for (snap, inv) in &self.inventories {
            for p in inv.packs.iter().filter(|p| !self.packs.contains_key(p)) {
                missing.entry(*p).or_default().push(snap.to_hex());
            }
        }
        for (p, snapshots) in missing {
            self.r.errors.push(Problem {
                snapshots,
                ..Problem::new(
                    format!("pack {p}"),
                    "is named by these snapshots' inventories and missing from the store (lost, or \
                     moved by the member's own prune: the member's `coop check` tells)"
                        .into(),
                )
            });
        }
        self.r.warnings.push(format!(
            "{}: checked per inventory, without reading it (trees and data are the member's to check)",
            self.keys.tenant
        ));
    }

    /// Walks every snapshot once per distinct tree: trees are read (and so verified); data
    /// blobs must be indexed in a present pack.
    fn walk(&mut self, reader: &BlobReader, index: &Index) -> Result<()> {
        let mut seen_trees: HashSet<Id> = HashSet::new();
        let mut needed_missing: HashSet<Id> = HashSet::new();
        for si in 0..self.snaps.len() {
            let (sid, root) = (self.snaps[si].id, self.snaps[si].snapshot.tree);
            self.graph.roots.entry(root).or_default().push(si);
            // The signed file list exports are checked against.
            if let Some(m) = self.snaps[si].snapshot.manifest {
                let present = match index.get(&m)? {
                    Some(loc) => self.packs.contains_key(&index.pack_id(&loc)),
                    None => false,
                };
                if !present {
                    self.r.errors.push(Problem {
                        object: format!("blob {m}"),
                        message: "the snapshot's manifest (its signed file list) is missing: exports of it cannot be verified".into(),
                        snapshots: vec![sid.to_hex()],
                        files: vec![],
                        junk: false,
                        intact_elsewhere: false,
                    });
                }
            }
            let mut stack = vec![root];
            while let Some(tid) = stack.pop() {
                if !seen_trees.insert(tid) {
                    continue;
                }
                let tree = match reader.tree(&tid) {
                    Ok(t) => t,
                    Err(e) if e.kind() == crate::ErrorKind::Integrity => {
                        self.r.errors.push(Problem {
                            object: format!("tree {tid}"),
                            message: e.to_string(),
                            snapshots: vec![sid.to_hex()],
                            files: vec![],
                            junk: false,
                            intact_elsewhere: false,
                        });
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                self.r.trees += 1;
                for p in &tree.parts {
                    // A split tree's parts (read above): damage in one is this directory's.
                    self.graph.link(*p, tid, "");
                    seen_trees.insert(*p);
                }
                for n in tree.nodes {
                    let name = n.display_name();
                    if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                        self.graph.link(sub, tid, &name);
                        stack.push(sub);
                        continue;
                    }
                    for p in &n.content {
                        let Part::Blob(id) = p else { continue };
                        self.graph.link(*id, tid, &name);
                        match index.get(id)? {
                            Some(loc) => {
                                let pid = index.pack_id(&loc);
                                if !self.packs.contains_key(&pid) && needed_missing.insert(pid) {
                                    self.r.errors.push(Problem::new(
                                        format!("pack {pid}"),
                                        format!("holds blob {id}, which a file needs, and is missing from the store"),
                                    ));
                                }
                            }
                            None => self.r.errors.push(Problem::new(
                                format!("blob {id}"),
                                "referenced by a file but in no index (data missing)".into(),
                            )),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Compares every index claim with the pack's own table: a claim the table does not
    /// back is a lying index object (forged with a writer key, or damaged).
    fn check_claims(&mut self, index: &Index, progress: &dyn Progress) -> Result<()> {
        let tables = crate::packtable::Tables::new(self.repo, self.keys)?;
        let mut claimed: HashMap<Id, HashSet<(Id, u32, u32)>> = HashMap::new();
        for (_, f) in &self.files {
            for e in &f.entries {
                claimed
                    .entry(f.packs[e.pack as usize].id)
                    .or_default()
                    .insert((e.id, e.offset, e.stored_len));
            }
        }
        progress.phase("pack tables", None);
        let mut real: HashMap<Id, HashSet<(Id, u32, u32)>> = HashMap::new();
        let mut packs: Vec<&Id> = claimed
            .keys()
            .filter(|p| self.packs.contains_key(*p))
            .collect();
        packs.sort();
        for p in packs {
            match tables.get(p, self.packs[p]) {
                Ok(t) => {
                    real.insert(
                        *p,
                        t.iter().map(|e| (e.id, e.offset, e.stored_len)).collect(),
                    );
                    self.r.pack_tables_checked += 1;
                }
                Err(e @ Error::Damaged { .. }) => self
                    .r
                    .errors
                    .push(Problem::new(format!("pack {p}"), e.to_string())),
                Err(e) => return Err(e),
            }
        }
        progress.finish();
        for (name, f) in &self.files {
            let mut lies = 0usize;
            let mut first = None;
            for e in &f.entries {
                let p = f.packs[e.pack as usize].id;
                if real
                    .get(&p)
                    .is_some_and(|t| !t.contains(&(e.id, e.offset, e.stored_len)))
                {
                    lies += 1;
                    first.get_or_insert((e.id, p));
                }
            }
            if let Some((blob, pack)) = first {
                self.r.errors.push(Problem::new(
                    format!("index {name}"),
                    format!(
                        "claims {lies} blob(s) in packs whose own tables do not hold them (first: blob {blob} in pack {pack}); \
                         a forged or damaged index object (readers use the other locations; prune does not trust it)"
                    ),
                ));
            }
        }
        let _ = index;
        Ok(())
    }

    /// Attaches affected snapshots and files to the problems from `from` on.
    fn attach(&mut self, index: &Index, from: usize) {
        let (graph, snaps) = (&self.graph, &self.snaps);
        for prob in self.r.errors[from..].iter_mut() {
            if prob.intact_elsewhere {
                continue;
            }
            let Some((kind, id)) = prob.object.split_once(' ') else {
                continue;
            };
            let Ok(id) = id.parse::<Id>() else { continue };
            let affected: Vec<Id> = match kind {
                "pack" => index
                    .iter()
                    .filter(|(_, l)| index.pack_id(l) == id)
                    .map(|(b, _)| *b)
                    .collect(),
                "blob" | "tree" => vec![id],
                _ => continue,
            };
            let mut snapset = std::collections::BTreeSet::new();
            let mut files = Vec::new();
            for b in &affected {
                snapset.extend(graph.snapshots_of(b));
                for si in graph.roots.get(b).into_iter().flatten() {
                    files.push(format!(
                        "{}: / (the root tree: the whole snapshot)",
                        snaps[*si].id.short()
                    ));
                }
                for (parent, name) in graph.up.get(b).into_iter().flatten() {
                    if files.len() < 200 {
                        let (si, dir) = graph.path_of(parent);
                        let snap = si.map(|i| snaps[i].id.short()).unwrap_or_default();
                        files.push(format!("{snap}: {dir}/{name}"));
                    }
                }
            }
            files.sort();
            files.dedup();
            prob.snapshots
                .extend(snapset.into_iter().map(|i| snaps[i].id.to_hex()));
            prob.snapshots.sort();
            prob.snapshots.dedup();
            if prob.files.is_empty() {
                prob.files = files;
            }
        }
    }

    /// `--read-data`: decrypt and verify every blob of the selected packs.
    fn read_data(
        &mut self,
        reader: &BlobReader,
        index: &Index,
        subset: Subset,
        progress: &dyn Progress,
    ) -> Result<()> {
        let indexed: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
        let mut all: Vec<Id> = indexed
            .iter()
            .filter(|p| self.packs.contains_key(p))
            .copied()
            .collect();
        all.sort();
        let selected = subset.select(&all);
        let mut by_pack: HashMap<Id, Vec<(Id, crate::index::Loc)>> = HashMap::new();
        for (bid, loc) in index.iter() {
            by_pack
                .entry(index.pack_id(loc))
                .or_default()
                .push((*bid, *loc));
        }
        let packs = &self.packs;
        let total: u64 = selected
            .iter()
            .map(|p| packs.get(p).copied().unwrap_or(0))
            .sum();
        progress.phase("read-data", Some(total));
        let next = AtomicUsize::new(0);
        let found: Mutex<Vec<Problem>> = Mutex::new(Vec::new());
        let blobs_read = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..crate::workers(0) {
                s.spawn(|| {
                    // Reused for every pack: the decrypted pack and decompressed blobs.
                    let mut plain = Vec::new();
                    let mut scratch = Vec::new();
                    let mut other = Vec::new();
                    while let Some(pid) = selected.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let mut bad_blobs = Vec::new();
                        let mut intact = 0usize;
                        let res = reader.fetch_pack_into(pid, &mut plain).and_then(|()| {
                            let table = coop_formats::pack::parse_table(&plain)
                                .map_err(|e| Error::damaged(pid.to_hex(), e))?;
                            let listed: HashSet<(Id, u32, u32)> = table
                                .iter()
                                .map(|e| (e.id, e.offset, e.stored_len))
                                .collect();
                            for (bid, loc) in by_pack.get(pid).into_iter().flatten() {
                                if !listed.contains(&(*bid, loc.offset, loc.stored_len)) {
                                    continue; // a lying claim, reported by check_claims
                                }
                                match reader.decode_ref(&plain, bid, loc, &mut scratch) {
                                    Ok(_) => {
                                        blobs_read.fetch_add(1, Ordering::Relaxed);
                                    }
                                    // Before a blob is called damaged, every other location
                                    // an index object gives is tried, as readers do.
                                    Err(e) => {
                                        let elsewhere = reader
                                            .alternatives(bid)
                                            .unwrap_or_default()
                                            .into_iter()
                                            .any(|alt| {
                                                (alt.pack != *pid || alt.loc.offset != loc.offset)
                                                    && alt.loc.ty == loc.ty
                                                    && reader
                                                        .blob_in(&alt.pack, bid, &alt.loc, &mut other)
                                                        .is_ok()
                                            });
                                        if elsewhere {
                                            intact += 1;
                                        } else {
                                            bad_blobs.push((*bid, e.to_string()))
                                        }
                                    }
                                }
                            }
                            Ok(())
                        });
                        progress.add_bytes(packs.get(pid).copied().unwrap_or(0));
                        let mut f = found.lock().expect("lock");
                        if intact > 0 {
                            f.push(Problem {
                                intact_elsewhere: true,
                                ..Problem::new(
                                    format!("pack {pid}"),
                                    format!(
                                        "{intact} blob copie(s) in this pack fail verification, but each \
                                         verifies at another location: nothing is lost (a damaged or \
                                         forged copy; no snapshot is affected)"
                                    ),
                                )
                            });
                        }
                        if let Err(e) = res {
                            f.push(Problem::new(format!("pack {pid}"), e.to_string()));
                        } else if !bad_blobs.is_empty() {
                            f.push(Problem::new(
                                format!("pack {pid}"),
                                format!(
                                    "{} blob(s) fail verification, first {}: {}",
                                    bad_blobs.len(),
                                    bad_blobs[0].0,
                                    bad_blobs[0].1
                                ),
                            ));
                        }
                    }
                });
            }
        });
        progress.finish();
        self.r.packs_read = selected.len();
        self.r.blobs_read = blobs_read.into_inner();
        self.r.errors.extend(found.into_inner().expect("lock"));
        Ok(())
    }

    /// Index objects this client saw that are gone without a supersession: a rollback.
    fn rollback(&mut self) {
        let superseded: HashSet<Id> = self
            .files
            .iter()
            .flat_map(|(_, f)| f.superseded.iter().copied())
            .collect();
        let names: Vec<Id> = self.files.iter().map(|(n, _)| *n).collect();
        let v = crate::state::observe(
            self.repo.cache_dir(),
            &self.repo.config.repo_id,
            &crate::state::Seen {
                location: &self.repo.store.location(),
                tag: &self.keys.tag,
                snapshots: None,
                verified: &[],
                forgotten: &HashSet::new(),
                index: Some((&names, &superseded)),
            },
        );
        self.r.warnings.extend(v.warnings());
    }
}
