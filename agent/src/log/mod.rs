//! The access log in the store: one append-only Merkle log per signing key (each site's
//! agent, each admin), witnessed by the other sites (SPEC section 24).
//!
//! One concern per file:
//! - [`trust`]: whose logs and cosignatures count ([`Trusted`]): admin logs by key, never by
//!   name; witnesses (built from the admin-signed writer list by `writers::log_trust`, so the
//!   log depends on no list), revocation forward-only.
//! - [`append`]: adding entries to the caller's own log ([`append()`]), never signing over a
//!   history this machine signed differently, completing or superseding its own leftovers;
//!   [`wait_for_quorum`] for a cosigned checkpoint that provably contains the new entry.
//! - [`witness`]: cosigning other logs after checking them against what this witness saw.
//! - [`verify`]: checking every log; only what a verified checkpoint covers is returned.
//! - [`proof`]: a member's entries with inclusion proofs, checked offline.
//! - [`deletions`]: deletions admins logged, which replicas follow.
//! - [`gossip`]: two copies of one repository compared and their logs carried between them;
//!   two signed histories of one log are a fork, kept as evidence (`fork/` objects).

mod append;
mod deletions;
mod fork;
mod gossip;
pub mod persons;
mod proof;
mod setups;
mod slots;
mod trust;
mod verify;
mod witness;

pub use append::{append, wait_for_quorum, Appended};
pub use deletions::{
    record_deletions, record_deletions_replaced, recorded_deletions, Deletions, FirstSeen,
};
pub use fork::{check_forks, ForkEvidence, FORK_TYPE};
pub use gossip::{gossip, GossipReport};
pub use proof::{entries_about, verify_proven, ProvenEntry};
pub use setups::{COMBINED, RESHARE, RESHARED};
pub use slots::{Slot, MATERIAL, RESERVE};
pub use trust::{
    activate, adopted_key, pinned_admin_keys, trusted_admin_keys, Activation, Active, LogOwner,
    Trusted,
};
pub use verify::{
    admin_entries, admin_only, verify, writer_may_log, Found, LogContent, LogSummary, VerifyReport,
    FOLLOWING,
};
pub use witness::{witness, WitnessReport};

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::tlog::{self, Checkpoint, Entry, Event, Hash, Reason};
use std::collections::BTreeMap;

/// Who writes a log: a name and a signing key.
#[derive(Clone)]
pub struct Actor {
    pub name: String,
    pub key: ed25519_dalek::SigningKey,
    /// The admin as a person: entries this actor appends are signed with it (SPEC 24.3).
    pub person: Option<ed25519_dalek::SigningKey>,
}

impl Actor {
    /// The caller behind tenant keys: an admin (the coop signer) or a site writer.
    pub fn of(keys: &TenantKeys) -> Actor {
        let public = keys.signer.verifying_key().to_bytes();
        let name = if keys.admin_keys.contains(&public) {
            "admin".to_string()
        } else {
            keys.writer_name.clone()
        };
        Actor {
            person: (name == "admin").then(|| keys.person.clone()).flatten(),
            name,
            key: keys.signer.clone(),
        }
    }

    /// Who logs an action done with these keys: an admin, or a site's writer key. `None` for a
    /// member acting on their own tenant with their own key (as with their own reads, nobody
    /// else is involved, and their key writes no log).
    pub fn logging(keys: &TenantKeys) -> Option<Actor> {
        let a = Actor::of(keys);
        (a.name == "admin" || keys.reader.is_none()).then_some(a)
    }

    /// A site's writer key (of this repository or another one), as a witness.
    pub fn from_writer_key(wk: &coop_formats::writerkey::WriterKey) -> Actor {
        Actor {
            name: wk.name.clone(),
            key: ed25519_dalek::SigningKey::from_bytes(&wk.signing_key),
            person: None,
        }
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn origin(&self, repo: &Repo) -> String {
        origin(repo, &self.name, &self.public())
    }

    /// The name this key cosigns under as a witness.
    pub fn witness_name(&self) -> String {
        witness_name(&self.name, &self.public())
    }
}

/// A valid note key name: no spaces, no `+`.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || c == '+' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `coop/<repo id, 16 hex>/<name>/<key, 8 hex>`: the log of one key in one repository.
pub fn origin(repo: &Repo, name: &str, key: &[u8; 32]) -> String {
    format!(
        "coop/{}/{}/{}",
        &repo.config.repo_id.to_hex()[..16],
        clean(name),
        &hex::encode(key)[..8]
    )
}

pub fn witness_name(name: &str, key: &[u8; 32]) -> String {
    format!("coop-witness/{}/{}", clean(name), &hex::encode(key)[..8])
}

/// The keyed tag a log entry names a tenant by: the tenant's readers and writers can
/// recompute it (they hold its ID key); a storage site cannot link entries to tenants.
pub fn tenant_tag(keys: &TenantKeys) -> String {
    tenant_tag_of(&keys.id_key, &keys.tag)
}

/// [`tenant_tag`] from a tenant's `id_key` and stored tag (a keyring's, before the member
/// it is for is registered).
pub fn tenant_tag_of(id_key: &[u8; 32], tag: &[u8]) -> String {
    let k = blake3::derive_key("coop log tenant v1", id_key);
    hex::encode(&blake3::keyed_hash(&k, tag).as_bytes()[..16])
}

/// How an access entry names the snapshot read: keyed like the tenant tag, so that only the
/// tenant's readers and writers can tell which snapshot (and, since snapshot names appear in
/// the store under the tenant's tag, whose) it was. A member with a copy of the store cannot
/// map another member's accesses to that member.
pub fn private_object(keys: &TenantKeys, object: &str) -> String {
    let k = blake3::derive_key("coop log object v1", &keys.id_key);
    hex::encode(&blake3::keyed_hash(&k, object.as_bytes()).as_bytes()[..16])
}

fn prefix(id: &str) -> String {
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
const MAX_CHECKPOINT: u64 = 8 << 10;
/// The largest cosignature line read.
const MAX_COSIGNATURE: u64 = 1 << 10;
/// The largest entry bundle read: 256 entries of at most 65535 bytes, each with its length.
pub(crate) const MAX_BUNDLE: u64 = tlog::BUNDLE * (tlog::MAX_ENTRY as u64 + 2);
/// The largest pending append read: a full bundle before it and a batch of as many again.
const MAX_PENDING: u64 = 2 * MAX_BUNDLE;
/// The largest fork evidence object read: a checkpoint with its cosignatures and a
/// consistency proof.
const MAX_FORK: u64 = 16 << 10;

/// Whether `n` is a fork object's name: 64 lowercase hex digits (SHA-256 of its bytes).
fn is_fork_name(n: &str) -> bool {
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
fn get_many(repo: &Repo, paths: &[&str]) -> Vec<Result<Vec<u8>>> {
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
fn pending_name(size: u64, root: &Hash) -> String {
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
fn pending_size(rel: &str) -> Option<u64> {
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
fn pending_entries(repo: &Repo, s: &Stored, size: u64, root: &Hash) -> Option<(u64, Vec<Vec<u8>>)> {
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

fn b64(h: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
}

fn leaves(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| tlog::leaf_hash(e)).collect()
}

/// A new entry about `tenant` (if any), by `actor`, now.
pub fn entry(
    actor: &Actor,
    event: Event,
    tenant: Option<&TenantKeys>,
    reason: Option<Reason>,
    object: Option<String>,
) -> Entry {
    Entry {
        ty: tlog::ENTRY_TYPE.into(),
        time: crate::now_rfc3339(),
        event,
        actor: hex::encode(actor.public()),
        actor_name: actor.name.clone(),
        tenant: tenant.map(tenant_tag),
        reason,
        object,
        data: Default::default(),
        detail: None,
    }
}

/// Records one event in the caller's log; a failure is returned for the caller to report
/// (a backup that succeeded stays done).
pub fn record(
    repo: &Repo,
    keys: &TenantKeys,
    event: Event,
    reason: Option<Reason>,
    object: Option<String>,
) -> Result<Option<Appended>> {
    let Some(actor) = Actor::logging(keys) else {
        return Ok(None);
    };
    append(
        repo,
        &actor,
        &[entry(&actor, event, Some(keys), reason, object)],
    )
    .map(Some)
}

/// Records that an admin adopted a witness (SPEC 24.5): a `key-change` entry whose `object`
/// is the witness's name and whose `data` names it (`witness`, its note name) and its key
/// (`witness_key`). A witness counts only once an entry like this is witnessed.
pub fn record_witness(
    repo: &Repo,
    keys: &TenantKeys,
    name: &str,
    key: &[u8; 32],
) -> Result<Option<Appended>> {
    let Some(actor) = Actor::logging(keys) else {
        return Ok(None);
    };
    let mut e = entry(&actor, Event::KeyChange, None, None, Some(name.to_string()));
    e.data
        .insert("witness".into(), witness_name(name, key).into());
    e.data.insert("witness_key".into(), hex::encode(key).into());
    append(repo, &actor, &[e]).map(Some)
}

/// The newest checkpoint of a stored log that verifies under `key` for `origin` and names
/// its own size. Checkpoints above it are junk or forgeries and authenticate nothing.
fn newest_verified(s: &Stored, key: &[u8; 32], origin: &str) -> Option<Checkpoint> {
    s.checkpoints.iter().rev().find_map(|(&size, note)| {
        tlog::open_checkpoint(note, key)
            .ok()
            .filter(|cp| cp.origin == origin && cp.size == size)
    })
}

/// The time (Unix seconds) of the newest cosignature by a trusted witness on any trusted log
/// of the repository, looking only at each log's newest cosigned checkpoint (a listing and a
/// few small reads per log). `None`: no valid cosignature at all.
pub fn newest_cosignature(repo: &Repo, trusted: &Trusted) -> Result<Option<u64>> {
    let by_id = trusted.by_id();
    let mut sizes: BTreeMap<String, u64> = BTreeMap::new();
    for o in repo.store.list("log")? {
        if !is_log_object(&o.path, o.size) {
            continue;
        }
        let parts: Vec<&str> = o.path.split('/').collect();
        if parts.get(2) == Some(&"cosignature") {
            if let Some(n) = parts.get(3).and_then(|n| n.parse::<u64>().ok()) {
                let e = sizes.entry(parts[1].to_string()).or_default();
                *e = (*e).max(n);
            }
        }
    }
    let mut newest = None;
    for (id, size) in sizes {
        let Some((origin, owner)) = by_id.get(&id) else {
            continue;
        };
        let Ok(note) = repo
            .store
            .get(&format!("{}/checkpoint/{size}", prefix(&id)))
        else {
            continue;
        };
        let Ok(cp) = tlog::open_checkpoint(&note, &owner.key) else {
            continue;
        };
        if cp.origin != *origin {
            continue;
        }
        let lines: BTreeMap<String, Vec<u8>> = repo
            .store
            .list(&format!("{}/cosignature/{size}", prefix(&id)))?
            .into_iter()
            .filter(|o| o.size <= MAX_COSIGNATURE)
            .filter_map(|o| {
                let kid = o.path.rsplit('/').next()?.to_string();
                Some((kid, repo.store.get(&o.path).ok()?.to_vec()))
            })
            .collect();
        for (name, key) in trusted.cosigner_keys(&cp, Some(&lines), &owner.key) {
            let kid = format!("{:08x}", tlog::key_id(&name, &key, true));
            if let Some(t) = lines
                .get(&kid)
                .and_then(|l| tlog::verify_cosignature(&cp, l, &name, &key).ok())
            {
                newest = newest.max(Some(t));
            }
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod witness_tests;
