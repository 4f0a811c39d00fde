//! `check` (structure, and with `--read-data` every blob) and `scrub` (no keys).
//!
//! Every problem names the damaged object by its full name (which is also its store path's
//! last component) and, where blobs are affected, the snapshots and files that need them.

use crate::error::{Error, Result};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::{self, Repo};
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use coop_formats::tree::{NodeKind, Part};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    All,
    /// Group `i` of `n` (1-based): every pack falls in exactly one group.
    Part {
        i: u32,
        n: u32,
    },
    /// A fraction of the packs, chosen reproducibly from `seed`.
    Percent {
        pct: f64,
        seed: u64,
    },
}

impl Subset {
    /// Parses `i/n` or `x%`.
    pub fn parse(s: &str, seed: u64) -> Result<Self> {
        let bad = || Error::Usage {
            what: format!("--read-data-subset {s:?}: use i/n (e.g. 2/5) or a percentage (e.g. 5%)"),
        };
        if let Some(p) = s.strip_suffix('%') {
            let pct: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&pct) || pct == 0.0 {
                return Err(bad());
            }
            return Ok(Subset::Percent { pct, seed });
        }
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Subset::Part { i, n })
    }

    fn select(&self, packs: &[Id]) -> Vec<Id> {
        match *self {
            Subset::All => packs.to_vec(),
            Subset::Part { i, n } => packs
                .iter()
                .filter(|p| {
                    u64::from_le_bytes(p.0[..8].try_into().expect("8")) % n as u64 == (i - 1) as u64
                })
                .copied()
                .collect(),
            Subset::Percent { pct, seed } => {
                let mut keyed: Vec<(blake3::Hash, Id)> = packs
                    .iter()
                    .map(|p| {
                        let mut h = blake3::Hasher::new();
                        h.update(&seed.to_le_bytes());
                        h.update(&p.0);
                        (h.finalize(), *p)
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let k = ((packs.len() as f64) * pct / 100.0).ceil() as usize;
                keyed.into_iter().take(k).map(|(_, p)| p).collect()
            }
        }
    }
}

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
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub index_objects: usize,
    pub blobs_in_index: usize,
    pub packs_read: usize,
    pub blobs_read: usize,
    pub errors: Vec<Problem>,
    /// Packs no index object lists (left by an interrupted backup; prune removes them).
    pub unreferenced_packs: Vec<String>,
    pub warnings: Vec<String>,
}

/// Parents of trees and blobs (capped per child), and the snapshots each root tree starts.
#[derive(Default)]
struct Graph {
    up: HashMap<Id, Vec<(Id, String)>>,
    roots: HashMap<Id, Vec<usize>>,
}

const MAX_PARENTS: usize = 64;

impl Graph {
    fn link(&mut self, child: Id, parent: Id, name: &str) {
        let v = self.up.entry(child).or_default();
        if v.len() < MAX_PARENTS && !v.iter().any(|(p, n)| *p == parent && n == name) {
            v.push((parent, name.to_string()));
        }
    }

    /// Every snapshot that reaches `id`.
    fn snapshots_of(&self, id: &Id) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![*id];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if let Some(r) = self.roots.get(&x) {
                out.extend(r);
            }
            for (p, _) in self.up.get(&x).into_iter().flatten() {
                stack.push(*p);
            }
        }
        out
    }

    /// A path of a tree (following first parents) and the snapshot whose root it reaches.
    fn path_of(&self, tree: &Id) -> (Option<usize>, String) {
        let mut names = Vec::new();
        let mut cur = *tree;
        for _ in 0..10_000 {
            if let Some(r) = self.roots.get(&cur) {
                names.reverse();
                return (
                    r.first().copied(),
                    names.iter().map(|n| format!("/{n}")).collect(),
                );
            }
            match self.up.get(&cur).and_then(|v| v.first()) {
                Some((p, n)) => {
                    names.push(n.clone());
                    cur = *p;
                }
                None => break,
            }
        }
        names.reverse();
        (None, names.iter().map(|n| format!("/{n}")).collect())
    }
}

/// Checks the tenant's part of the repository.
pub fn check(
    repo: &Repo,
    keys: &TenantKeys,
    read: Option<Subset>,
    cache: Option<&std::path::Path>,
    progress: &dyn Progress,
) -> Result<CheckReport> {
    let mut r = CheckReport::default();
    let tagh = repo::tag_hex(&keys.tag);
    // Listings first; a listing error aborts the check (never read as "empty").
    let packs_listed: HashMap<Id, u64> = repo
        .store
        .list(&format!("packs/{tagh}"))?
        .into_iter()
        .filter_map(|o| Some((repo::name_of(&o.path)?, o.size)))
        .collect();
    r.packs = packs_listed.len();
    // Index objects one by one, so a damaged one is named and the rest still checked.
    let mut files = Vec::new();
    for obj in repo.store.list(&format!("index/{tagh}"))? {
        let Some(name) = repo::name_of(&obj.path) else {
            continue;
        };
        r.index_objects += 1;
        let res = repo
            .store
            .get(&obj.path)
            .map_err(Error::from)
            .and_then(|b| {
                if Id::of_stored(&b) != name {
                    return Err(Error::corrupt(name.to_hex(), "bytes do not match the name"));
                }
                IndexFile::open(&keys.index_key, &b).map_err(|e| Error::corrupt(name.to_hex(), e))
            });
        match res {
            Ok((_, f)) => files.push((name, f)),
            Err(e) => r.errors.push(Problem {
                object: format!("index {name}"),
                message: e.to_string(),
                snapshots: vec![],
                files: vec![],
            }),
        }
    }
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.superseded.iter().copied())
        .collect();
    let active_pack_ids: HashSet<Id> = files
        .iter()
        .filter(|(n, _)| !superseded.contains(n))
        .flat_map(|(_, f)| f.packs.iter().map(|p| p.id))
        .collect();
    let present: HashSet<Id> = packs_listed.keys().copied().collect();
    let index: Index = repo::merge_index(files, Some(&present));
    r.blobs_in_index = index.len();
    let indexed_packs: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
    // Packs only superseded index objects list are garbage awaiting prune, not damage.
    let active_packs: HashSet<Id> = active_pack_ids;
    // A pack the index lists but the store lacks is an error if a snapshot needs it (found
    // by the walk below), otherwise a warning: prune drops such entries.
    let missing_packs: HashSet<Id> = index
        .packs
        .iter()
        .map(|p| p.id)
        .filter(|p| active_packs.contains(p) && !packs_listed.contains_key(p))
        .collect();
    for p in index.packs.iter().filter(|p| active_packs.contains(&p.id)) {
        if let Some(&size) = packs_listed.get(&p.id) {
            if size != p.stored_size {
                r.errors.push(Problem {
                    object: format!("pack {}", p.id),
                    message: format!(
                        "is {size} bytes in the store, the index says {} (truncated or replaced)",
                        p.stored_size
                    ),
                    snapshots: vec![],
                    files: vec![],
                });
            }
        }
    }
    let mut needed_missing: HashSet<Id> = HashSet::new();
    let mut leftovers: Vec<String> = packs_listed
        .keys()
        .filter(|p| !indexed_packs.contains(p))
        .map(|p| p.to_hex())
        .collect();
    leftovers.sort();
    r.unreferenced_packs = leftovers;

    // Snapshots, one by one.
    let reader_keys = keys.reader()?;
    let mut snaps = Vec::new();
    for obj in repo.store.list(&format!("snapshots/{tagh}"))? {
        let Some(name) = repo::name_of(&obj.path) else {
            continue;
        };
        let res = repo
            .store
            .get(&obj.path)
            .map_err(Error::from)
            .and_then(|b| {
                if Id::of_stored(&b) != name {
                    return Err(Error::corrupt(name.to_hex(), "bytes do not match the name"));
                }
                coop_formats::snapshot::Snapshot::open(
                    &reader_keys.identities,
                    &b,
                    (repo.config.repo_id, keys.tag),
                    |k| reader_keys.keyring.is_writer(k),
                )
                .map_err(|e| Error::corrupt(name.to_hex(), e))
            });
        match res {
            Ok(s) => snaps.push((name, s)),
            Err(e) => r.errors.push(Problem {
                object: format!("snapshot {name}"),
                message: e.to_string(),
                snapshots: vec![name.to_hex()],
                files: vec![],
            }),
        }
    }
    snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    r.snapshots = snaps.len();

    // Walk every snapshot once per distinct tree: trees are read (and so verified); data
    // blobs must be indexed. The child→parent graph lets damage be traced to every snapshot
    // and file that needs it.
    progress.phase("trees", None);
    let reader = BlobReader::new(repo, keys, &index)?;
    let mut graph = Graph::default();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    for (si, (sid, s)) in snaps.iter().enumerate() {
        graph.roots.entry(s.tree).or_default().push(si);
        let mut stack = vec![s.tree];
        while let Some(tid) = stack.pop() {
            if !seen_trees.insert(tid) {
                continue;
            }
            let tree = match reader.tree(&tid) {
                Ok(t) => t,
                Err(e) => {
                    r.errors.push(Problem {
                        object: format!("tree {tid}"),
                        message: e.to_string(),
                        snapshots: vec![sid.to_hex()],
                        files: vec![],
                    });
                    continue;
                }
            };
            r.trees += 1;
            for n in tree.nodes {
                let name = n.display_name();
                if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                    graph.link(sub, tid, &name);
                    stack.push(sub);
                    continue;
                }
                for p in &n.content {
                    if let Part::Blob(id) = p {
                        graph.link(*id, tid, &name);
                        if let Some(loc) = index.get(id)? {
                            let pid = index.pack_id(&loc);
                            if !packs_listed.contains_key(&pid) && needed_missing.insert(pid) {
                                r.errors.push(Problem {
                                    object: format!("pack {pid}"),
                                    message: format!("holds blob {id}, which a file needs, and is missing from the store"),
                                    snapshots: vec![],
                                    files: vec![],
                                });
                            }
                        } else {
                            r.errors.push(Problem {
                                object: format!("blob {id}"),
                                message: "referenced by a file but in no index (data missing)"
                                    .into(),
                                snapshots: vec![],
                                files: vec![],
                            });
                        }
                    }
                }
            }
        }
    }
    progress.finish();
    for p in &missing_packs {
        if !needed_missing.contains(p) && !r.errors.iter().any(|e| e.object == format!("pack {p}"))
        {
            r.warnings.push(format!("index lists pack {p}, which is missing from the store; no snapshot needs it (`coop prune` cleans the index)"));
        }
    }
    // Attach affected snapshots and files to problems found so far.
    let attach = |r: &mut CheckReport| {
        for prob in r.errors.iter_mut() {
            let (kind, id) = match prob.object.split_once(' ') {
                Some((k, i)) => (k, i.parse::<Id>().ok()),
                None => continue,
            };
            let Some(id) = id else { continue };
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
                for si in graph.snapshots_of(b) {
                    snapset.insert(si);
                }
                for si in graph.roots.get(b).into_iter().flatten() {
                    files.push(format!(
                        "{}: / (the root tree: the whole snapshot)",
                        snaps[*si].0.short()
                    ));
                }
                for (parent, name) in graph.up.get(b).into_iter().flatten() {
                    if files.len() < 200 {
                        let (si, dir) = graph.path_of(parent);
                        let snap = si.map(|i| snaps[i].0.short()).unwrap_or_default();
                        files.push(format!("{snap}: {dir}/{name}"));
                    }
                }
            }
            files.sort();
            files.dedup();
            prob.snapshots
                .extend(snapset.into_iter().map(|i| snaps[i].0.to_hex()));
            prob.snapshots.sort();
            prob.snapshots.dedup();
            if prob.files.is_empty() {
                prob.files = files;
            }
        }
    };
    attach(&mut r);

    // --read-data: decrypt and verify every blob of the selected packs.
    if let Some(subset) = read {
        let mut all: Vec<Id> = indexed_packs
            .iter()
            .filter(|p| packs_listed.contains_key(p))
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
        let total: u64 = selected
            .iter()
            .map(|p| packs_listed.get(p).copied().unwrap_or(0))
            .sum();
        progress.phase("read-data", Some(total));
        let next = AtomicUsize::new(0);
        let found: Mutex<Vec<Problem>> = Mutex::new(Vec::new());
        let blobs_read = AtomicUsize::new(0);
        let workers = crate::workers(0);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    // Reused for every pack: the decrypted pack and decompressed blobs.
                    let mut plain = Vec::new();
                    let mut scratch = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(pid) = selected.get(i) else { break };
                        let mut bad_blobs = Vec::new();
                        let res = reader.fetch_pack_into(pid, &mut plain).and_then(|()| {
                            let table = coop_formats::pack::parse_table(&plain).map_err(|e| Error::corrupt(pid.to_hex(), e))?;
                            let listed: HashSet<(Id, u32, u32)> = table.iter().map(|e| (e.id, e.offset, e.stored_len)).collect();
                            for (bid, loc) in by_pack.get(pid).into_iter().flatten() {
                                if !listed.contains(&(*bid, loc.offset, loc.stored_len)) {
                                    bad_blobs.push((*bid, "the pack's own table does not list it where the index says".to_string()));
                                    continue;
                                }
                                match reader.decode_ref(&plain, bid, loc, &mut scratch) {
                                    Ok(_) => {
                                        blobs_read.fetch_add(1, Ordering::Relaxed);
                                    }
                                    Err(e) => bad_blobs.push((*bid, e.to_string())),
                                }
                            }
                            Ok(())
                        });
                        progress.add_bytes(packs_listed.get(pid).copied().unwrap_or(0));
                        let mut f = found.lock().expect("lock");
                        if let Err(e) = res {
                            f.push(Problem { object: format!("pack {pid}"), message: e.to_string(), snapshots: vec![], files: vec![] });
                        } else if !bad_blobs.is_empty() {
                            f.push(Problem {
                                object: format!("pack {pid}"),
                                message: format!("{} blob(s) fail verification, first {}: {}", bad_blobs.len(), bad_blobs[0].0, bad_blobs[0].1),
                                snapshots: vec![],
                                files: vec![],
                            });
                        }
                    }
                });
            }
        });
        progress.finish();
        r.packs_read = selected.len();
        r.blobs_read = blobs_read.into_inner();
        let before = r.errors.len();
        r.errors.extend(found.into_inner().expect("lock"));
        if r.errors.len() > before {
            let mut tail = CheckReport {
                errors: r.errors.split_off(before),
                ..Default::default()
            };
            attach(&mut tail);
            r.errors.extend(tail.errors);
        }
    }
    // Rollback detection.
    r.warnings.extend(crate::state::check_and_update(
        cache,
        &repo.config.repo_id,
        &keys.tag,
        Some(&snaps),
        Some((&index.files, &index.superseded)),
    ));
    Ok(r)
}

#[derive(Debug, Default, Serialize)]
pub struct ScrubReport {
    pub objects: usize,
    pub bytes: u64,
    /// Full store paths of objects whose bytes do not hash to their name.
    pub bad: Vec<String>,
    /// Paths whose last component is not a valid object name.
    pub unexpected: Vec<String>,
}

/// Checks, without any key, that every object's name is the BLAKE3 of its bytes.
pub fn scrub(store: &crate::store::Store, progress: &dyn Progress) -> Result<ScrubReport> {
    let mut objects = Vec::new();
    for dir in repo::OBJECT_DIRS {
        objects.extend(store.list(dir)?);
    }
    let total: u64 = objects.iter().map(|o| o.size).sum();
    progress.phase("scrub", Some(total));
    let next = AtomicUsize::new(0);
    let report = Mutex::new(ScrubReport {
        objects: objects.len(),
        bytes: total,
        ..Default::default()
    });
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(o) = objects.get(i) else { break };
                let Some(name) = repo::name_of(&o.path) else {
                    report.lock().expect("lock").unexpected.push(o.path.clone());
                    continue;
                };
                match store.get(&o.path) {
                    Ok(b) => {
                        if Id::of_stored(&b) != name {
                            report.lock().expect("lock").bad.push(o.path.clone());
                        }
                    }
                    Err(e) if e.is_not_found() => {} // removed meanwhile (a lock)
                    Err(e) => {
                        failure.lock().expect("lock").get_or_insert(e.into());
                    }
                }
                progress.add_bytes(o.size);
            });
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let mut r = report.into_inner().expect("lock");
    r.bad.sort();
    r.unexpected.sort();
    // The config has a fixed name: check that it at least decodes.
    if let Err(e) = store.get(repo::CONFIG).map_err(Error::from).and_then(|b| {
        coop_formats::config::Config::decode(&b).map_err(|e| Error::corrupt(repo::CONFIG, e))
    }) {
        r.bad.push(format!("config ({e})"));
    }
    Ok(r)
}
