//! A log's objects as the store holds them (SPEC 24.2): listing one log's checkpoints,
//! cosignatures, bundles, pending appends and fork objects with their size bounds, the names
//! each kind may have, and reading the entries a checkpoint covers (finishing an append a
//! crash left pending). No key is needed for any of it.

use super::leaves;
use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog::{self, Hash};
use std::collections::BTreeMap;

pub(super) fn prefix(id: &str) -> String {
    format!("log/{id}")
}

/// What the store holds of one log.
#[derive(Debug, Default)]
pub struct Stored {
    pub id: String,
    /// Size → the checkpoint note's bytes.
    pub checkpoints: BTreeMap<u64, Vec<u8>>,
    /// Size → witness key id (hex) → cosignature line.
    pub cosignatures: BTreeMap<u64, BTreeMap<String, Vec<u8>>>,
    /// Bundle paths present (below `log/<id>/`) and their sizes.
    pub bundles: BTreeMap<String, u64>,
    /// Fork evidence (`fork/<SHA-256>`): store path → bytes (their name checked).
    pub forks: BTreeMap<String, Vec<u8>>,
    /// Pending appends (`pending/<size>.<root hex>`, below `log/<id>/`): the entries an
    /// append wrote before claiming its checkpoint, so anyone can finish it (SPEC 24.2).
    pub pending: BTreeMap<String, u64>,
    /// Paths below `log/<id>/` that are none of the above.
    pub strays: Vec<String>,
}

/// The largest checkpoint note read (a C2SP checkpoint with a few signatures is far smaller).
pub(super) const MAX_CHECKPOINT: u64 = 8 << 10;
/// The largest cosignature line read.
pub(super) const MAX_COSIGNATURE: u64 = 1 << 10;
/// The largest entry bundle read: 256 entries of at most 65535 bytes, each with its length.
pub(crate) const MAX_BUNDLE: u64 = tlog::BUNDLE * (tlog::MAX_ENTRY as u64 + 2);
/// The largest pending append read: a full bundle before it and a batch of as many again.
pub(super) const MAX_PENDING: u64 = 2 * MAX_BUNDLE;
/// The largest fork evidence object read: a checkpoint with its cosignatures and a
/// consistency proof.
pub(super) const MAX_FORK: u64 = 16 << 10;

/// Whether `n` is a fork object's name: 64 lowercase hex digits (SHA-256 of its bytes).
pub(super) fn is_fork_name(n: &str) -> bool {
    n.len() == 64 && n.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lists one log's objects (no key needed). Objects larger than their kind may be are
/// strays, never read: a huge object under `log/` costs nothing but a note.
pub fn stored(repo: &Repo, id: &str) -> Result<Stored> {
    let mut s = Stored {
        id: id.to_string(),
        ..Default::default()
    };
    let pre = format!("{}/", prefix(id));
    // What to read, decided from the listing; read below, several at once.
    enum Want {
        Checkpoint(u64),
        Cosignature(u64, String),
        Fork(String),
    }
    let mut wanted: Vec<(String, Want)> = Vec::new();
    for o in repo.store.list(&prefix(id))? {
        let Some(rel) = o.path.strip_prefix(&pre) else {
            continue;
        };
        if let Some(n) = rel.strip_prefix("checkpoint/") {
            match n.parse::<u64>() {
                Ok(size) if size.to_string() == n && o.size <= MAX_CHECKPOINT => {
                    wanted.push((o.path.clone(), Want::Checkpoint(size)));
                }
                _ => s.strays.push(o.path.clone()),
            }
        } else if let Some(rest) = rel.strip_prefix("cosignature/") {
            match rest.split_once('/') {
                Some((size, kid))
                    if size.parse::<u64>().is_ok()
                        && kid.len() == 8
                        && kid.bytes().all(|b| b.is_ascii_hexdigit())
                        && o.size <= MAX_COSIGNATURE =>
                {
                    wanted.push((
                        o.path.clone(),
                        Want::Cosignature(size.parse().expect("checked"), kid.to_string()),
                    ));
                }
                _ => s.strays.push(o.path.clone()),
            }
        } else if rel.starts_with("entries/") && o.size <= MAX_BUNDLE {
            s.bundles.insert(rel.to_string(), o.size);
        } else if pending_size(rel).is_some() && o.size <= MAX_PENDING {
            s.pending.insert(rel.to_string(), o.size);
        } else if let Some(n) = rel
            .strip_prefix("fork/")
            .filter(|n| is_fork_name(n) && o.size <= MAX_FORK)
        {
            wanted.push((o.path.clone(), Want::Fork(n.to_string())));
        } else {
            s.strays.push(o.path.clone());
        }
    }
    let paths: Vec<&str> = wanted.iter().map(|(p, _)| p.as_str()).collect();
    for ((path, want), got) in wanted.iter().zip(get_many(repo, &paths)) {
        let b = got?;
        match want {
            Want::Checkpoint(size) => {
                s.checkpoints.insert(*size, b);
            }
            Want::Cosignature(size, kid) => {
                s.cosignatures
                    .entry(*size)
                    .or_default()
                    .insert(kid.clone(), b);
            }
            Want::Fork(n) => {
                if &hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)) == n {
                    s.forks.insert(path.clone(), b);
                } else {
                    s.strays.push(path.clone());
                }
            }
        }
    }
    Ok(s)
}

/// Reads `paths` from the store, several at once, in their order.
pub(super) fn get_many(repo: &Repo, paths: &[&str]) -> Vec<Result<Vec<u8>>> {
    crate::par::map(paths, crate::par::THREADS, |p| {
        repo.store.get(p).map(|b| b.to_vec()).map_err(Error::from)
    })
}

/// Whether `path` (with its listed `size`) can be a log object: `log/<32 hex>/` and then a
/// checkpoint, a cosignature or an entry bundle by their names, no larger than that kind may
/// be (a fork object: `fork/<64 hex>`). Replication copies nothing else under `log/`.
pub fn is_log_object(path: &str, size: u64) -> bool {
    let mut parts = path.splitn(3, '/');
    let (Some("log"), Some(id), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return false;
    }
    let number = |n: &str| n.parse::<u64>().is_ok_and(|v| v.to_string() == n);
    if let Some(n) = rel.strip_prefix("checkpoint/") {
        return number(n) && size <= MAX_CHECKPOINT;
    }
    if let Some(rest) = rel.strip_prefix("cosignature/") {
        return rest.split_once('/').is_some_and(|(n, kid)| {
            number(n)
                && kid.len() == 8
                && kid.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }) && size <= MAX_COSIGNATURE;
    }
    if rel.starts_with("entries/") {
        return bundle_end(path).is_some() && size <= MAX_BUNDLE;
    }
    if let Some(n) = rel.strip_prefix("fork/") {
        return is_fork_name(n) && size <= MAX_FORK;
    }
    pending_size(rel).is_some() && size <= MAX_PENDING
}

/// The name of the pending append that ends at `size` with `root` (relative to `log/<id>/`).
pub(super) fn pending_name(size: u64, root: &Hash) -> String {
    format!("pending/{size}.{}", hex::encode(root))
}

/// For a pending append's path (`log/<id>/pending/<size>.<root>`), the path of the bundle
/// that ends at its size: a replica needs the pending object only while its source lacks
/// that bundle (an append that stopped after its claim). `None` for any other path.
pub fn pending_bundle(path: &str) -> Option<String> {
    let mut parts = path.splitn(3, '/');
    let (Some("log"), Some(id), Some(rel)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let size = pending_size(rel)?;
    let n = size.saturating_sub(1) / tlog::BUNDLE;
    Some(format!(
        "log/{id}/{}",
        tlog::bundle_path(n, size - n * tlog::BUNDLE)
    ))
}

/// The size a pending append's name (`pending/<size>.<64 hex>`) ends at, if it is one.
pub(super) fn pending_size(rel: &str) -> Option<u64> {
    let (n, root) = rel.strip_prefix("pending/")?.split_once('.')?;
    let size = n.parse::<u64>().ok().filter(|v| v.to_string() == n)?;
    (root.len() == 64 && root.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(size)
}

/// Entries `0..size` of a checkpoint with `root`: as the bundles hold them, or, when a bundle
/// is not there (an append between claiming its checkpoint and writing its bundles, or one
/// that stopped there), as its pending object completes them. A bundle that is there and
/// holds other entries is damage, never covered up. Errors are the bundles' own; callers
/// still compare the root.
pub fn entries_for(repo: &Repo, s: &Stored, size: u64, root: &Hash) -> Result<Vec<Vec<u8>>> {
    let first = read_entries(repo, s, size);
    if !bundles_absent(s, size) {
        return first;
    }
    pending_entries(repo, s, size, root).map_or(first, |(_, all)| Ok(all))
}

/// Whether a bundle that entries `0..size` need is not in the listing `s`.
pub fn bundles_absent(s: &Stored, size: u64) -> bool {
    (0..size.div_ceil(tlog::BUNDLE)).any(|n| {
        let width = (size - n * tlog::BUNDLE).min(tlog::BUNDLE);
        !s.bundles.contains_key(&tlog::bundle_path(n, width))
    })
}

/// Entries `0..size` from the full bundles before the pending append of (`size`, `root`) and
/// the pending object itself, if they hash to `root`; with the index the pending object
/// starts at.
pub(super) fn pending_entries(
    repo: &Repo,
    s: &Stored,
    size: u64,
    root: &Hash,
) -> Option<(u64, Vec<Vec<u8>>)> {
    let rel = pending_name(size, root);
    if !s.pending.contains_key(&rel) {
        return None;
    }
    let b = repo.store.get(&format!("{}/{rel}", prefix(&s.id))).ok()?;
    let tail = tlog::decode_entries(&b, MAX_PENDING / 2).ok()?;
    let start = size.checked_sub(tail.len() as u64)?;
    if start % tlog::BUNDLE != 0 {
        return None;
    }
    let mut all = read_entries(repo, s, start).ok()?;
    all.extend(tail);
    (tlog::root(&leaves(&all)) == *root).then_some((start, all))
}

/// The index after the last entry of the bundle at `path` (`log/<id>/entries/...`), if the
/// name is one.
pub fn bundle_end(path: &str) -> Option<u64> {
    let rest = path.splitn(3, '/').nth(2)?.strip_prefix("entries/")?;
    let (tile, width) = match rest.split_once(".p/") {
        Some((t, w)) => {
            let v = w.parse::<u64>().ok()?;
            ((1..tlog::BUNDLE).contains(&v) && v.to_string() == w).then_some((t, v))?
        }
        None => (rest, tlog::BUNDLE),
    };
    let n = tlog::parse_tile_index(tile).filter(|n| tlog::tile_index_path(*n) == tile)?;
    Some(n * tlog::BUNDLE + width)
}

/// Every log id in the repository.
pub fn log_ids(repo: &Repo) -> Result<Vec<String>> {
    let mut ids: Vec<String> = repo
        .store
        .list("log")?
        .into_iter()
        .filter_map(|o| o.path.split('/').nth(1).map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Reads entries `0..size` from the bundles the listing `s` showed.
pub fn read_entries(repo: &Repo, s: &Stored, size: u64) -> Result<Vec<Vec<u8>>> {
    let id = &s.id;
    let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
    let mut n = 0;
    while n * tlog::BUNDLE < size {
        let width = (size - n * tlog::BUNDLE).min(tlog::BUNDLE);
        let rel = tlog::bundle_path(n, width);
        let path = format!("{}/{rel}", prefix(id));
        if !s.bundles.contains_key(&rel) {
            return Err(Error::damaged(
                &path,
                format!(
                    "the log's entries {}..{} are missing (or larger than a bundle may be)",
                    n * 256,
                    n * 256 + width
                ),
            ));
        }
        let b = match repo.store.get(&path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::damaged(
                    &path,
                    format!(
                        "the log's entries {}..{} are missing",
                        n * 256,
                        n * 256 + width
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let es = tlog::decode_bundle(&b).map_err(|e| Error::damaged(&path, e))?;
        if es.len() as u64 != width {
            return Err(Error::damaged(
                &path,
                format!("holds {} entries where {width} belong", es.len()),
            ));
        }
        out.extend(es);
        n += 1;
    }
    Ok(out)
}
