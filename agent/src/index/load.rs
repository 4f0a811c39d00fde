//! Loading a tenant's index: every index object read and authenticated, merged in memory or
//! through the on-disk table of the cache directory.

use super::table::{self, CacheError, Table};
use super::Index;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use std::collections::HashSet;
use std::path::Path;

/// Merges index objects. Where a blob has several locations, the first of these wins:
/// a pack the store has, listed by an index object nothing supersedes; a pack the store has,
/// listed by a superseded one; then any (so that errors name the missing pack).
/// `present` is the set of packs in the store (`None`: assume all present).
pub fn merge(files: Vec<(Id, IndexFile)>, present: Option<&HashSet<Id>>) -> Index {
    let mut index = Index::default();
    merge_into(&mut index, files, present);
    index
}

/// [`merge`] into an existing index (the overlay of an on-disk table).
pub fn merge_into(index: &mut Index, files: Vec<(Id, IndexFile)>, present: Option<&HashSet<Id>>) {
    let superseded: HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.superseded.iter().copied())
        .collect();
    for pass in 0..3 {
        for (name, f) in &files {
            let active = !superseded.contains(name);
            let keep = |pid: &Id| {
                let here = present.is_none_or(|p| p.contains(pid));
                match pass {
                    0 => active && here,
                    1 => !active && here,
                    _ => !here,
                }
            };
            let sub = IndexFile {
                packs: f.packs.clone(),
                superseded: f.superseded.clone(),
                signer: f.signer,
                entries: f
                    .entries
                    .iter()
                    .filter(|e| keep(&f.packs[e.pack as usize].id))
                    .copied()
                    .collect(),
            };
            if pass == 0 || !sub.entries.is_empty() {
                index.add(*name, &sub);
            }
        }
    }
    index.files.sort();
    index.files.dedup();
}

/// Reads and authenticates one index object; `None` if a concurrent prune deleted it.
pub fn file(repo: &Repo, keys: &TenantKeys, name: &Id) -> Result<Option<(Id, IndexFile)>> {
    let Some(bytes) = repo.get_opt(Kind::Index, &keys.tag, name)? else {
        return Ok(None);
    };
    let path = || Kind::Index.path(&keys.tag, name);
    let (h, mut f) =
        IndexFile::open(&keys.index_key, &bytes).map_err(|e| Error::damaged(path(), e))?;
    if h.tenant != keys.tag {
        return Err(Error::damaged(path(), "index object of another tenant"));
    }
    // Supersession makes readers ignore other objects: only the tenant's authority may.
    if f.signer.is_some_and(|s| !keys.is_authority(&s)) {
        tracing::warn!(
            "{}: its supersession is not signed by this tenant's authority; ignored",
            path()
        );
        f.superseded.clear();
        f.signer = None;
    }
    Ok(Some((*name, f)))
}

/// Reads and authenticates every index object of the tenant (name, content). A damaged or
/// malformed one is an error: for prune, which must not judge data by a partial index.
pub fn files(repo: &Repo, keys: &TenantKeys) -> Result<Vec<(Id, IndexFile)>> {
    let names = listing(repo, keys)?;
    let mut out = Vec::new();
    for (_, r) in fetched(repo, keys, &names) {
        out.extend(r?);
    }
    Ok(out)
}

/// [`file`] of every index object of the tenant, read as the iterator goes (a few at a
/// time): for callers that must not hold them all. A damaged or malformed one is an error.
pub fn each_file<'a>(
    repo: &'a Repo,
    keys: &'a TenantKeys,
) -> Result<impl Iterator<Item = Result<(Id, IndexFile)>> + 'a> {
    Ok(each_file_result(repo, keys)?.filter_map(|(_, r)| r.transpose()))
}

/// One index object read: its name, and what [`file`] gave.
type Fetched = (Id, Result<Option<(Id, IndexFile)>>);

/// [`file`] of every listed index object, with its name, a batch at a time.
fn each_file_result<'a>(
    repo: &'a Repo,
    keys: &'a TenantKeys,
) -> Result<impl Iterator<Item = Fetched> + 'a> {
    let names = listing(repo, keys)?;
    Ok(batches(&names)
        .into_iter()
        .map(|c| c.to_vec())
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(move |chunk| {
            let got = crate::par::map(&chunk, crate::par::THREADS, |(n, _)| file(repo, keys, n));
            chunk.into_iter().map(|(n, _)| n).zip(got)
        }))
}

/// Index objects held in memory at once while they are read in parallel.
const FETCH_BATCH: usize = 64;
/// Listed bytes of the index objects held in memory at once (a batch has at least one):
/// backups write small objects, prune's consolidated parts are about 13 MiB each.
const FETCH_BYTES: u64 = 32 << 20;

/// The tenant's index objects, with their stored sizes.
fn listing(repo: &Repo, keys: &TenantKeys) -> Result<Vec<(Id, u64)>> {
    Ok(repo
        .list(Kind::Index, &keys.tag)?
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect())
}

/// `names` in order, cut into batches of at most [`FETCH_BATCH`] objects and
/// [`FETCH_BYTES`] listed bytes (at least one object each).
fn batches(names: &[(Id, u64)]) -> Vec<&[(Id, u64)]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0u64);
    for (i, (_, size)) in names.iter().enumerate() {
        if i > start && (i - start >= FETCH_BATCH || bytes + size > FETCH_BYTES) {
            out.push(&names[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < names.len() {
        out.push(&names[start..]);
    }
    out
}

/// [`file`] of each of `names`, in their order, several read at once (a fresh machine, the
/// disaster case, reads every index object before anything else) and one batch
/// ([`batches`]) in memory at once.
fn fetched<'a>(
    repo: &'a Repo,
    keys: &'a TenantKeys,
    names: &'a [(Id, u64)],
) -> impl Iterator<Item = (Id, Result<Option<(Id, IndexFile)>>)> + 'a {
    batches(names).into_iter().flat_map(move |chunk| {
        let got = crate::par::map(chunk, crate::par::THREADS, |(n, _)| file(repo, keys, n));
        chunk.iter().map(|(n, _)| *n).zip(got).collect::<Vec<_>>()
    })
}

/// [`file`] for readers: a damaged or malformed index object (junk anyone with create
/// rights on the store can write) is named in a warning, recorded in `skipped`, and left
/// out; readers go on from the other index objects and the packs' own tables.
fn skip_damaged(
    name: &Id,
    read: Result<Option<(Id, IndexFile)>>,
    skipped: &mut Vec<Id>,
) -> Result<Option<(Id, IndexFile)>> {
    match read {
        Err(Error::Damaged { object, cause }) => {
            tracing::warn!(
                "{object} is not a readable index object of this tenant ({cause}); it is skipped, \
                 and blobs are found through the other index objects and the packs' own tables \
                 (`coop check` says what to do with it)"
            );
            skipped.push(*name);
            Ok(None)
        }
        other => other,
    }
}

/// Every index object a reader can use, read as the iterator goes; damaged or malformed
/// ones are named in warnings and left out (as [`readable_files`] does).
pub fn each_readable_file<'a>(
    repo: &'a Repo,
    keys: &'a TenantKeys,
) -> Result<impl Iterator<Item = Result<(Id, IndexFile)>> + 'a> {
    let mut skipped = Vec::new();
    Ok(each_file_result(repo, keys)?
        .filter_map(move |(n, r)| skip_damaged(&n, r, &mut skipped).transpose()))
}

/// Index objects a reader can use (name, content), and the names of those it skipped.
pub type Readable = (Vec<(Id, IndexFile)>, Vec<Id>);

/// Every index object a reader can use, and the names of those it had to skip.
pub fn readable_files(repo: &Repo, keys: &TenantKeys) -> Result<Readable> {
    let names = listing(repo, keys)?;
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (name, r) in fetched(repo, keys, &names) {
        out.extend(skip_damaged(&name, r, &mut skipped)?);
    }
    Ok((out, skipped))
}

/// After an index object was skipped, the blobs it listed are found in the packs' own
/// tables: every pack in the store that no index object lists is read (its table only)
/// and added. Needs a reading key; with a writer key (a backup) nothing is added, which
/// costs only deduplication.
fn add_unindexed_packs(repo: &Repo, keys: &TenantKeys, index: &mut Index) -> Result<()> {
    if keys.reader().is_err() {
        return Ok(());
    }
    let indexed: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
    let tables = crate::packtable::Tables::new(repo, keys)?;
    for obj in repo.list(Kind::Pack, &keys.tag)? {
        if indexed.contains(&obj.name) {
            continue;
        }
        match tables.get(&obj.name, obj.size) {
            Ok(entries) => index.add_pack_table(
                coop_formats::index::IndexPack {
                    id: obj.name,
                    stored_size: obj.size,
                },
                &entries,
            ),
            Err(Error::Damaged { object, cause }) => {
                tracing::warn!(
                    "{object} is not a readable pack of this tenant ({cause}); it is not used"
                )
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Loads and merges every index object of the tenant.
pub fn load(repo: &Repo, keys: &TenantKeys) -> Result<Index> {
    Ok(load_with_packs(repo, keys)?.0)
}

/// The merged index and the names of the packs in the store (one listing for both). With a
/// cache directory the index is read through the on-disk table.
pub fn load_with_packs(repo: &Repo, keys: &TenantKeys) -> Result<(Index, HashSet<Id>)> {
    let present = repo.pack_names(&keys.tag)?;
    if let Some(dir) = repo.cache_dir() {
        match load_cached(repo, keys, dir, &present) {
            Ok((mut index, kind)) => {
                tracing::debug!("index cache: {kind:?}");
                if index.skipped > 0 {
                    add_unindexed_packs(repo, keys, &mut index)?;
                }
                return Ok((index, present));
            }
            // A cache that cannot be written is not fatal: merge in memory instead.
            Err(Error::Io { path, source }) => tracing::warn!(
                "index cache not usable ({}: {source}); loading the index into memory",
                path.display()
            ),
            Err(e) => return Err(e),
        }
    }
    let (files, skipped) = readable_files(repo, keys)?;
    let mut index = merge(files, Some(&present));
    if !skipped.is_empty() {
        index.skipped = skipped.len();
        add_unindexed_packs(repo, keys, &mut index)?;
    }
    Ok((index, present))
}

/// What [`load_cached`] did, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// The table was current; `usize` new index objects went into the overlay.
    Reused(usize),
    /// The table was (re)built from every index object.
    Rebuilt,
}

/// Loads a tenant's index through the table in `cache`: the table plus an overlay of the
/// index objects written since, or a rebuilt table.
pub fn load_cached(
    repo: &Repo,
    keys: &TenantKeys,
    cache: &Path,
    present: &HashSet<Id>,
) -> Result<(Index, LoadKind)> {
    let listed = listing(repo, keys)?;
    let path = table::path(cache, &repo.config.repo_id, &keys.tag);
    match Table::open(&path, &keys.tag) {
        Ok(table) => {
            if let Some(index) = try_overlay(repo, keys, table, &listed, present)? {
                let n = index.files.len();
                return Ok((index, LoadKind::Reused(n)));
            }
        }
        Err(CacheError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("{e}; rebuilding it"),
    }
    let mut skipped = Vec::new();
    let objects = fetched(repo, keys, &listed)
        .filter_map(|(n, r)| skip_damaged(&n, r, &mut skipped).transpose());
    let table = table::build(&path, &keys.tag, objects, present)?;
    let mut index = Index::with_base(table);
    index.set_present(present);
    index.skipped = skipped.len();
    Ok((index, LoadKind::Rebuilt))
}

/// The table plus an overlay of the new index objects, or `None` when it must be rebuilt.
fn try_overlay(
    repo: &Repo,
    keys: &TenantKeys,
    table: Table,
    listed: &[(Id, u64)],
    present: &HashSet<Id>,
) -> Result<Option<Index>> {
    let listed_names: HashSet<Id> = listed.iter().map(|(n, _)| *n).collect();
    if table.names().iter().any(|n| !listed_names.contains(n)) {
        return Ok(None); // an index object went away (prune)
    }
    if table
        .packs()
        .iter()
        .zip(&table.present)
        .any(|(p, was)| *was && !present.contains(&p.id))
    {
        return Ok(None); // a pack went away
    }
    let known: HashSet<Id> = table.names().iter().copied().collect();
    let new: Vec<(Id, u64)> = listed
        .iter()
        .filter(|(n, _)| !known.contains(n))
        .copied()
        .collect();
    if new.len() > table::MAX_OVERLAY_OBJECTS {
        return Ok(None);
    }
    let mut files = Vec::with_capacity(new.len());
    let mut blobs = 0usize;
    let mut skipped = Vec::new();
    for (n, r) in fetched(repo, keys, &new) {
        let Some((name, f)) = skip_damaged(&n, r, &mut skipped)? else {
            continue;
        };
        if f.superseded.iter().any(|s| known.contains(s)) {
            return Ok(None); // a prune consolidated objects the table holds
        }
        blobs += f.entries.len();
        if blobs > table::MAX_OVERLAY_BLOBS {
            return Ok(None);
        }
        files.push((name, f));
    }
    let mut index = Index::with_base(table);
    merge_into(&mut index, files, Some(present));
    index.set_present(present);
    index.skipped = skipped.len();
    Ok(Some(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches keep the listing order, hold at most FETCH_BATCH objects and FETCH_BYTES
    /// listed bytes, and at least one object (a larger one goes alone).
    #[test]
    fn batches_are_bounded_by_count_and_bytes() {
        let n = |i: u8| Id([i; 32]);
        let small: Vec<(Id, u64)> = (0..150).map(|i| (n(i), 1000)).collect();
        let b = batches(&small);
        assert_eq!(
            b.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![64, 64, 22]
        );
        let big: Vec<(Id, u64)> = [20u64 << 20, 13 << 20, 40 << 20, 1, 1]
            .iter()
            .enumerate()
            .map(|(i, s)| (n(i as u8), *s))
            .collect();
        let b = batches(&big);
        assert_eq!(
            b.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![1, 1, 1, 2]
        );
        let flat: Vec<Id> = b.iter().flat_map(|c| c.iter().map(|(i, _)| *i)).collect();
        assert_eq!(flat, big.iter().map(|(i, _)| *i).collect::<Vec<_>>());
        assert!(batches(&[]).is_empty());
    }
}
