//! `check` (structure, and with `--read-data` every blob) and `scrub` (no keys).
//!
//! - [`affected`]: the snapshots and files each problem concerns.
//! - [`data`]: `--read-data`, every blob of the selected packs.
//! - [`subset`]: which packs `--read-data` reads.
//! - [`graph`]: the child→parent graph that traces damage to snapshots and files.
//! - [`scrub`]: names against bytes, for every object, without keys.
//!
//! Memory does not grow with the number of blobs: the index objects are read one at a time
//! into an on-disk index table (the one readers use, built in a temporary directory) and, for
//! the comparison with the packs' tables, into an external sort of every claim by pack (see
//! [`crate::index::spill`]); the walk looks blobs up in the table, and the files that need a
//! damaged blob are found by a second walk, only when there is damage.
//!
//! Every problem names the damaged object by its full name (which is also its store path's
//! last component) and, where blobs are affected, the snapshots and files that need them.
//! Besides the trees, `check` compares what the index objects claim with the packs' own
//! tables (read with ranged reads and cached), so an index object that lies about where a
//! blob is (forged with a writer key) is found without reading any data.

mod affected;
mod data;
mod graph;
pub mod scrub;
mod subset;

pub use scrub::{scrub, ScrubReport};
pub use subset::Subset;

use crate::damage::ProblemKind;
use crate::error::{Error, Result};
use crate::index::spill::{Sorter, RUN_BYTES};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::id::Id;
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
    repo.get(p.kind, &p.tag, &p.name).is_ok()
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
    /// The index objects read (their entries are in the table and the claims, not here).
    objects: Vec<Object>,
    snaps: Vec<crate::snapshots::Entry>,
    /// Upkeep keys: the inventories of the snapshots that opened and of the opaque ones.
    inventories: Vec<(Id, coop_formats::snapshot::Inventory)>,
    graph: Graph,
}

/// What the check keeps of one index object: no entries.
struct Object {
    name: Id,
    superseded: Vec<Id>,
    packs: Vec<Id>,
}

/// A claim record for the external sort: pack, blob, offset, stored length (big-endian, so
/// the bytes sort by pack first), the object's number and the entry's number in it.
const CLAIM_REC: usize = 32 + 32 + 4 + 4 + 4 + 4;

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
        objects: Vec::new(),
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
    let scratch = crate::index::spill::scratch_dir(repo, ".check-")?;
    let (index, claims) = c.read_index(scratch.path())?;
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
    let reader = BlobReader::for_maintenance(repo, keys, &index)?;
    let Some(subset) = read else {
        progress.phase("trees", None);
        c.walk(&reader, &index)?;
        progress.finish();
        c.check_claims(claims, scratch.path(), progress)?;
        c.attach(&reader, &index, 0)?;
        c.rollback();
        return Ok(c.r);
    };
    // With --read-data, the trees and the pack tables are checked on this thread while the
    // workers read the packs (the structural checks would otherwise leave a core idle for
    // their whole length); the progress shows the packs read.
    let packs = c.to_read(&index, subset);
    let (data, structural) = std::thread::scope(|s| {
        let data = s.spawn(|| data::read_packs(&reader, &index, &packs, progress));
        let structural = c
            .walk(&reader, &index)
            .and_then(|()| c.check_claims(claims, scratch.path(), &crate::progress::NoProgress));
        (data.join().expect("the read-data thread"), structural)
    });
    structural?;
    c.attach(&reader, &index, 0)?;
    let before = c.r.errors.len();
    c.r.packs_read = packs.len();
    c.r.blobs_read = data.blobs_read;
    c.r.errors.extend(data.problems);
    c.attach(&reader, &index, before)?;
    c.rollback();
    Ok(c.r)
}

impl Checker<'_> {
    /// Index objects one by one, so a damaged one is named and the rest still checked. Their
    /// entries go into an on-disk index table (in `dir`) and into an external sort of the
    /// claims by pack; only names, supersessions and pack lists stay in memory.
    fn read_index(&mut self, dir: &std::path::Path) -> Result<(Index, Sorter)> {
        let (repo, keys) = (self.repo, self.keys);
        let present: HashSet<Id> = self.packs.keys().copied().collect();
        let listed = repo.list(Kind::Index, &keys.tag)?;
        let mut claims = Sorter::new(dir, CLAIM_REC, RUN_BYTES);
        let mut objects = Vec::new();
        let mut errors = Vec::new();
        let mut rec = Vec::with_capacity(CLAIM_REC);
        let objs = listed.iter().filter_map(|obj| {
            match crate::index::load::file(repo, keys, &obj.name) {
                Ok(Some((name, f))) => {
                    let ix = objects.len() as u32;
                    for (n, e) in f.entries.iter().enumerate() {
                        let Some(p) = f.packs.get(e.pack as usize) else {
                            continue; // IndexFile::open checked this
                        };
                        rec.clear();
                        rec.extend_from_slice(&p.id.0);
                        rec.extend_from_slice(&e.id.0);
                        rec.extend_from_slice(&e.offset.to_be_bytes());
                        rec.extend_from_slice(&e.stored_len.to_be_bytes());
                        rec.extend_from_slice(&ix.to_be_bytes());
                        rec.extend_from_slice(&(n as u32).to_be_bytes());
                        if let Err(e) = claims.push(&rec) {
                            return Some(Err(Error::io(dir, e)));
                        }
                    }
                    objects.push(Object {
                        name,
                        superseded: f.superseded.clone(),
                        packs: f.packs.iter().map(|p| p.id).collect(),
                    });
                    Some(Ok((name, f)))
                }
                Ok(None) => None,
                Err(e @ Error::Damaged { .. }) => {
                    let what = format!("index {}", obj.name);
                    errors.push(if stored_as_named(repo, &obj.path) {
                        let why = match &e {
                            Error::Damaged { cause, .. } => cause.to_string(),
                            _ => e.to_string(),
                        };
                        Problem::junk(what, &obj.path, why)
                    } else {
                        Problem::new(what, e.to_string())
                    });
                    None
                }
                Err(e) => Some(Err(e)),
            }
        });
        let path = dir.join("index");
        let table = crate::index::table::build(&path, &keys.tag, objs, &present)?;
        // Open, it needs no name: nothing is left behind if the process is killed.
        let _ = std::fs::remove_file(&path);
        self.r.index_objects = listed.len();
        self.r.errors.extend(errors);
        self.objects = objects;
        let mut index = Index::with_base(table);
        index.set_present(&present);
        Ok((index, claims))
    }

    /// Index objects nothing supersedes.
    fn superseded(&self) -> HashSet<Id> {
        self.objects
            .iter()
            .flat_map(|o| o.superseded.iter().copied())
            .collect()
    }

    /// A pack the index lists must have the size the index says.
    fn check_pack_sizes(&mut self, index: &Index) {
        let superseded = self.superseded();
        let active: HashSet<Id> = self
            .objects
            .iter()
            .filter(|o| !superseded.contains(&o.name))
            .flat_map(|o| o.packs.iter().copied())
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
                (ProblemKind::Unreadable, _) => "unreadable",
            };
            // A snapshot stored as it is that is no snapshot at all (fails the keyless
            // checks) is junk to delete.
            let keyless = crate::layout::ObjectPath::parse(&p.object).and_then(|op| {
                let b = self.repo.get(op.kind, &op.tag, &op.name).ok()?;
                scrub::object_ok(&op, &b).err()
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
    /// back is a lying index object (forged with a writer key, or damaged). The claims come
    /// sorted by pack, so one pack's table is in memory at a time.
    fn check_claims(
        &mut self,
        claims: Sorter,
        dir: &std::path::Path,
        progress: &dyn Progress,
    ) -> Result<()> {
        let tables = crate::packtable::Tables::new(self.repo, self.keys)?;
        let n = self.objects.len();
        let mut lies = vec![0usize; n];
        // Per object: the number of its first lying entry, the blob and the pack.
        let mut first: Vec<Option<(u32, Id, Id)>> = vec![None; n];
        progress.phase("pack tables", None);
        let mut sorted = claims.finish().map_err(|e| Error::io(dir, e))?;
        let mut cur: Option<Id> = None;
        let mut real: Option<HashSet<(Id, u32, u32)>> = None;
        while let Some(r) = sorted.next().map_err(|e| Error::io(dir, e))? {
            let id = |at: usize| Id(r[at..at + 32].try_into().expect("32"));
            let word = |at: usize| u32::from_be_bytes(r[at..at + 4].try_into().expect("4"));
            let (pack, blob) = (id(0), id(32));
            let (offset, stored_len, obj, entry) = (word(64), word(68), word(72), word(76));
            if cur != Some(pack) {
                cur = Some(pack);
                real = None;
                if let Some(&size) = self.packs.get(&pack) {
                    match tables.get(&pack, size) {
                        Ok(t) => {
                            real = Some(t.iter().map(|e| (e.id, e.offset, e.stored_len)).collect());
                            self.r.pack_tables_checked += 1;
                        }
                        Err(e @ Error::Damaged { .. }) => self
                            .r
                            .errors
                            .push(Problem::new(format!("pack {pack}"), e.to_string())),
                        Err(e) => return Err(e),
                    }
                }
            }
            if real
                .as_ref()
                .is_some_and(|t| !t.contains(&(blob, offset, stored_len)))
            {
                let o = obj as usize;
                lies[o] += 1;
                if first[o].is_none_or(|(e, _, _)| entry < e) {
                    first[o] = Some((entry, blob, pack));
                }
            }
        }
        progress.finish();
        for (o, obj) in self.objects.iter().enumerate() {
            if let Some((_, blob, pack)) = first[o] {
                self.r.errors.push(Problem::new(
                    format!("index {}", obj.name),
                    format!(
                        "claims {} blob(s) in packs whose own tables do not hold them (first: blob {blob} in pack {pack}); \
                         a forged or damaged index object (readers use the other locations; prune does not trust it)",
                        lies[o]
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Index objects this client saw that are gone without a supersession: a rollback.
    fn rollback(&mut self) {
        let superseded = self.superseded();
        let names: Vec<Id> = self.objects.iter().map(|o| o.name).collect();
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
