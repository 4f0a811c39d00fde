//! Whose logs and cosignatures count (SPEC section 24.5).
//!
//! Authority comes from keys, never from names: a log is an admin's log when its key is one of
//! the admin keys the caller holds or pinned, and a writer named `admin` is still a writer.
//! Witnesses are the writers and external witnesses of the admin-signed writer list; a revoked
//! writer's cosignatures made before its revocation keep counting (revocation is forward-only).

use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog::{self, Checkpoint, Event};
use std::collections::{BTreeMap, HashMap};

/// Who writes one log.
#[derive(Debug, Clone)]
pub struct LogOwner {
    pub key: [u8; 32],
    /// The name in the writer list (a site) or `admin`.
    pub name: String,
    /// An admin's log: only these carry accesses, recovery, registry, key and deletion events.
    pub admin: bool,
}

/// The keys whose logs and cosignatures count, and the quorum (from the admin-signed writer
/// list, and the admin keys).
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    /// Origin → its owner.
    pub logs: HashMap<String, LogOwner>,
    /// Witness name → key (the sites' writers that are not revoked, and external witnesses).
    pub witnesses: Vec<(String, [u8; 32])>,
    /// Revoked writers as witnesses: (name, key, revocation time in Unix seconds). Their
    /// cosignatures dated before the revocation count.
    pub revoked_witnesses: Vec<(String, [u8; 32], u64)>,
    pub quorum: u32,
}

/// Events only an admin's log may carry: from a writer's log (a possibly stolen agent key)
/// they are forgeries, flagged by [`super::verify`] and counted nowhere. (Deletions count
/// only from admin logs too, see [`super::recorded_deletions`].)
pub fn admin_only(event: Event) -> bool {
    event.is_access()
        || matches!(
            event,
            Event::RecoveryInit
                | Event::RecoveryRequest
                | Event::RecoveryRelease
                | Event::RegistryChange
                | Event::KeyChange
                | Event::Revoke
        )
}

impl Trusted {
    /// The owner of a log, by origin.
    pub fn owner(&self, origin: &str) -> Option<&LogOwner> {
        self.logs.get(origin)
    }

    /// Log id → (origin, owner), for finding a stored log's owner without trusting anything
    /// the store says about it.
    pub fn by_id(&self) -> HashMap<String, (String, LogOwner)> {
        self.logs
            .iter()
            .map(|(o, w)| (tlog::log_id(o), (o.clone(), w.clone())))
            .collect()
    }

    /// The trusted witness (active, or revoked: its cosignature may predate the revocation)
    /// whose cosignature `line` of `cp` is, under key id `kid`, when it verifies; never the
    /// log's own key. What gossip checks before it copies a cosignature anywhere.
    pub fn cosignature_by(
        &self,
        cp: &Checkpoint,
        kid: &str,
        line: &[u8],
        log_key: &[u8; 32],
    ) -> Option<String> {
        let active = self.witnesses.iter().map(|(n, k)| (n, k));
        let revoked = self.revoked_witnesses.iter().map(|(n, k, _)| (n, k));
        active.chain(revoked).find_map(|(name, key)| {
            (key != log_key
                && format!("{:08x}", tlog::key_id(name, key, true)) == kid
                && tlog::verify_cosignature(cp, line, name, key).is_ok())
            .then(|| name.clone())
        })
    }

    /// Valid cosignatures (distinct witnesses, never the log's own key) on a checkpoint.
    pub fn cosigners(
        &self,
        cp: &Checkpoint,
        lines: Option<&BTreeMap<String, Vec<u8>>>,
        log_key: &[u8; 32],
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(lines) = lines else { return out };
        let active = self.witnesses.iter().map(|(n, k)| (n, k, u64::MAX));
        let revoked = self.revoked_witnesses.iter().map(|(n, k, t)| (n, k, *t));
        for (name, key, until) in active.chain(revoked) {
            if key == log_key {
                continue;
            }
            let kid = format!("{:08x}", tlog::key_id(name, key, true));
            if let Some(line) = lines.get(&kid) {
                match tlog::verify_cosignature(cp, line, name, key) {
                    Ok(t) if t < until && !out.contains(name) => out.push(name.clone()),
                    _ => {}
                }
            }
        }
        out
    }
}

/// The admin keys of a repository this client holds no key of (a witness, a replicator
/// following deletions): pinned the first time (the signer of its newest writer list then),
/// in `<cache>/<repo id>/admin-pins.json`, and required ever after.
pub fn pinned_admin_keys(repo: &Repo) -> Result<Vec<[u8; 32]>> {
    let path = repo
        .cache_dir()
        .map(|c| c.join(repo.config.repo_id.to_hex()).join("admin-pins.json"))
        .ok_or_else(|| {
            Error::invalid("pinning a repository's admin key needs a cache directory (--cache-dir)")
        })?;
    if let Ok(b) = std::fs::read(&path) {
        let keys: Vec<String> = serde_json::from_slice(&b)
            .map_err(|e| Error::damaged(path.display().to_string(), e.to_string()))?;
        return keys
            .iter()
            .map(|k| {
                hex::decode(k)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        Error::damaged(path.display().to_string(), "a pinned key is not hex")
                    })
            })
            .collect();
    }
    let mut best: Option<(u64, [u8; 32])> = None;
    for obj in repo.list(crate::layout::Kind::Writers, &[0; 16])? {
        let Ok(Some(b)) = repo.get_opt(crate::layout::Kind::Writers, &[0; 16], &obj.name) else {
            continue;
        };
        if let Ok((l, signer)) = coop_formats::writers::WriterList::open(&b, |_| true) {
            if l.repo_id == repo.config.repo_id && best.is_none_or(|(g, _)| l.generation > g) {
                best = Some((l.generation, signer));
            }
        }
    }
    let (_, admin) = best.ok_or_else(|| Error::NotFound {
        what:
            "a writer list in this repository (nothing says whose logs to trust; give --admin KEY)"
                .into(),
    })?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    std::fs::write(
        &path,
        serde_json::to_vec(&[hex::encode(admin)]).expect("serializes"),
    )
    .map_err(|e| Error::io(&path, e))?;
    Ok(vec![admin])
}
