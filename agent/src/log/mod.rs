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
//!   two signed histories of one log are a fork, kept as evidence (`fork/` objects, `fork`).
//! - [`persons`], `setups`, `slots`: which admin persons count, which recovery setups the log
//!   vouches for, and which slot holds each member's recovery identity (SPEC 24.11, 25.5, 25.6).
//! - `stored`: a log's objects as the store holds them (names, size bounds, pending appends,
//!   reading the entries a checkpoint covers).
//!
//! This file keeps what every part shares: who writes a log ([`Actor`], origins, keyed
//! tenant tags), making and recording entries ([`entry`], [`record`]), and the newest verified
//! checkpoint and cosignature.

mod append;
mod deletions;
mod fork;
mod gossip;
pub mod persons;
mod proof;
mod setups;
mod slots;
mod stored;
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
pub use stored::*;
pub use trust::{
    activate, adopted_key, pinned_admin_keys, trusted_admin_keys, Activation, Active, LogOwner,
    Trusted,
};
pub use verify::{
    admin_entries, admin_only, verify, writer_may_log, Found, LogContent, LogSummary, VerifyReport,
    FOLLOWING,
};
pub use witness::{witness, WitnessReport};

use crate::error::Result;
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
