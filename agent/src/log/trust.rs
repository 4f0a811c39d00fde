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
    /// When each witness began to count, from the admin logs (SPEC 24.5 "Adopting a
    /// witness"). `None`: every listed witness counts from the start (only tests build a
    /// `Trusted` so; `log_trust` (in the trust layer) always computes it).
    pub activation: Option<Activation>,
}

/// How a witness joined: the admin log entry that adopted it, and from which checkpoint on
/// its cosignatures count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// Its cosignatures count for checkpoints of this admin log larger than this size (and,
    /// for other logs, once it is active in any admin log).
    pub since: u64,
    /// Adopted before the first cosigned checkpoint of the admin log: one of the founding
    /// witnesses, independent of every admin person.
    pub founding: bool,
    /// The admin person who adopted it (`data.person_key` of the adopting entry).
    pub by: Option<[u8; 32]>,
}

/// Witness activation per admin log: admin origin → witness key → how it joined; and the
/// admin persons that count, per admin log (SPEC 24.11).
#[derive(Debug, Clone, Default)]
pub struct Activation {
    pub logs: HashMap<String, HashMap<[u8; 32], Active>>,
    pub persons: HashMap<String, super::persons::Persons>,
}

impl Activation {
    /// Whether `key`'s cosignature of checkpoint `size` of `origin` counts.
    pub fn counts(&self, key: &[u8; 32], origin: &str, size: u64) -> bool {
        match self.logs.get(origin) {
            Some(m) => m.get(key).is_some_and(|a| a.since < size),
            None => self.logs.values().any(|m| m.contains_key(key)),
        }
    }

    /// How `key` joined, in any admin log (the first found).
    pub fn of(&self, key: &[u8; 32]) -> Option<&Active> {
        self.logs.values().find_map(|m| m.get(key))
    }

    /// Whether `key` is independent of the admin person `person` (the one who caused an
    /// entry): a founding witness, or one another, named person adopted. A witness adopted
    /// by an unnamed admin, and any witness for an entry of no named person, is independent
    /// only when founding.
    ///
    /// After the recovery split only a counted person (SPEC 24.11) is "another, named person":
    /// witnesses a second person key of one admin adopted (her `by` was not counted then) are
    /// independent of nobody, and an entry by a person who does not count (a second key of
    /// hers, or a removed admin) is witnessed independently only by founding witnesses.
    pub fn independent_of(&self, key: &[u8; 32], person: Option<&[u8; 32]>) -> bool {
        let person = person.filter(|p| self.person_counts(p));
        self.of(key).is_some_and(|a| {
            a.founding
                || matches!((a.by.as_ref(), person), (Some(b), Some(p))
                    if b != p && self.person_counts(b))
        })
    }

    /// [`Self::independent_of`] judged at entry `at` of admin log `origin`: whether the person
    /// and the witness's adopter counted *then* (a later, approved retirement of either does
    /// not take back what was witnessed independently when it was).
    pub fn independent_at(
        &self,
        key: &[u8; 32],
        person: Option<&[u8; 32]>,
        origin: &str,
        at: u64,
    ) -> bool {
        let counts = |k: &[u8; 32]| {
            self.persons
                .get(origin)
                .filter(|p| p.restricted_from.is_some())
                .is_none_or(|p| p.counts(k, at))
        };
        let person = person.filter(|p| counts(p));
        self.of(key).is_some_and(|a| {
            a.founding
                || matches!((a.by.as_ref(), person), (Some(b), Some(p)) if b != p && counts(b))
        })
    }

    /// Whether admin person `key` counts now: in every admin log whose split named persons
    /// (none: every person counts).
    pub fn person_counts(&self, key: &[u8; 32]) -> bool {
        self.persons
            .values()
            .filter(|p| p.restricted_from.is_some())
            .all(|p| p.counts_now(key))
    }

    /// The pending changes of the admin persons, over every admin log.
    pub fn pending_persons(&self) -> Vec<super::persons::Proposal> {
        self.persons
            .values()
            .flat_map(|p| p.pending.iter().cloned())
            .collect()
    }

    /// The person key and recipient of the newest completed addition of admin `name`.
    pub fn added(&self, name: &str) -> Option<([u8; 32], String)> {
        self.persons
            .values()
            .flat_map(|p| p.completed.iter())
            .filter(|x| x.op == super::persons::Op::Add && x.name == name)
            .last()
            .map(|x| (x.key, x.recipient.clone()))
    }

    /// K of the admin persons' split (approvals a change of persons takes), if any.
    pub fn person_approvals(&self) -> Option<usize> {
        self.persons
            .values()
            .filter(|p| p.restricted_from.is_some())
            .map(|p| p.approvals_needed)
            .max()
    }
}

/// The adoption a `key-change` entry makes, if it adopts a witness: its key (`data.witness_key`).
pub fn adopted_key(e: &coop_formats::tlog::Entry) -> Option<[u8; 32]> {
    (e.event == Event::KeyChange)
        .then(|| e.data.get("witness_key")?.as_str())
        .flatten()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
}

/// Computes when each witness began to count, from every admin log of `trusted` (SPEC 24.5):
/// a witness counts only once a `key-change` entry of an admin log with `data.witness_key`
/// adopted it, and only for checkpoints after the first checkpoint covering that entry that
/// the witnesses active then cosigned (`max(1, min(quorum logged before it, active
/// witnesses))` of them). Before the admin log's first cosigned checkpoint no witness is
/// active yet: adoptions then take effect at the next checkpoint and make the **founding**
/// witnesses. Only entries that count (by the admin key, with a valid or no person
/// signature) adopt; only checkpoints that verify and lie on the head's history count.
pub fn activate(repo: &Repo, trusted: &mut Trusted) -> Result<()> {
    let mut act = Activation::default();
    let ids = super::log_ids(repo)?;
    let admin_logs: Vec<(String, LogOwner)> = trusted
        .logs
        .iter()
        .filter(|(_, o)| o.admin)
        .map(|(o, w)| (o.clone(), w.clone()))
        .collect();
    for (origin, owner) in admin_logs {
        let id = tlog::log_id(&origin);
        let (active, persons) = if ids.contains(&id) {
            activate_log(repo, trusted, &id, &origin, &owner)?
        } else {
            Default::default()
        };
        act.logs.insert(origin.clone(), active);
        if let Some(p) = persons {
            act.persons.insert(origin, p);
        }
    }
    // After the split the quorum never falls below its floor by one admin's writer list
    // (SPEC 24.11): lowering it takes K other admins' approval in the log.
    let floor = act
        .persons
        .values()
        .filter_map(|p| p.quorum_floor)
        .max()
        .unwrap_or(0);
    trusted.quorum = trusted.quorum.max(floor);
    trusted.activation = Some(act);
    Ok(())
}

/// What one admin log's entries say about witnesses and persons, in log order.
#[derive(Default)]
pub(super) struct Changes {
    /// (index, key, adopting person) of each adoption of a listed witness.
    adoptions: Vec<(u64, [u8; 32], Option<[u8; 32]>)>,
    /// (index, quorum) of each `log_quorum=N` entry.
    quorums: Vec<(u64, u32)>,
    /// (index, key) of the logged revocations of witnesses.
    revoked: Vec<(u64, [u8; 32])>,
    /// Who counts as a person (SPEC 24.11).
    pub(super) persons: super::persons::Persons,
}

/// Reads the adoptions, quorum changes, revocations and persons of an admin log's entries
/// (only entries by the log's own key count; a forged person signature voids the entry).
pub(super) fn changes(trusted: &Trusted, entries: &[Vec<u8>], owner: &LogOwner) -> Changes {
    use coop_formats::tlog::{Entry, PersonCheck};
    let listed: Vec<[u8; 32]> = trusted
        .witnesses
        .iter()
        .map(|w| w.1)
        .chain(trusted.revoked_witnesses.iter().map(|w| w.1))
        .collect();
    let own = hex::encode(owner.key);
    let mut c = Changes::default();
    let mut person_entries: Vec<(u64, Entry)> = Vec::new();
    for (i, b) in entries.iter().enumerate() {
        let i = i as u64;
        let about_persons = contains(b, b"recovery-init")
            || contains(b, b"recovery-combined")
            || contains(b, b"\"material\"")
            // recovery-request, -release, -reshare, -reshared
            || contains(b, b"recovery-re")
            || contains(b, b"recovery-slot")
            // Names written with JSON escapes (`\u0069`, `\/`) decode to the same entry:
            // an entry with any escape is read whole rather than passed over.
            || contains(b, b"\\")
            || contains(b, b"\"admin-")
            || contains(b, b"log_quorum=")
            || contains(b, b"quorum-lower");
        let about_witnesses = contains(b, b"witness_key")
            || contains(b, b"log_quorum=")
            || contains(b, b"\"revoke\"")
            // As above: an escaped name is read whole.
            || contains(b, b"\\");
        if !(about_persons || about_witnesses) {
            continue;
        }
        let Ok(e) = Entry::decode(b) else { continue };
        if e.actor != own {
            continue;
        }
        if about_witnesses {
            let by = match e.person() {
                PersonCheck::Forged => None,
                PersonCheck::Signed(k) => Some(Some(k)),
                PersonCheck::Unsigned => Some(None),
            };
            if let Some(by) = by {
                if let Some(k) = adopted_key(&e).filter(|k| listed.contains(k) && *k != owner.key) {
                    c.adoptions.push((i, k, by));
                }
                if let Some(q) = super::persons::quorum_set(&e) {
                    c.quorums.push((i, q));
                }
                if e.event == Event::Revoke {
                    let name = e.object.as_deref().unwrap_or_default();
                    for (wname, k, _) in &trusted.revoked_witnesses {
                        if *wname == super::witness_name(name, k) {
                            c.revoked.push((i, *k));
                        }
                    }
                }
            }
        }
        if about_persons {
            person_entries.push((i, e));
        }
    }
    c.persons = super::persons::Persons::from_entries(person_entries.iter().map(|(i, e)| (*i, e)));
    // Only a person who counts adopts as a person.
    for a in c.adoptions.iter_mut() {
        if a.2.is_some_and(|by| !c.persons.counts(&by, a.0)) {
            a.2 = None;
        }
    }
    c
}

/// Witness key → how it joined, for one admin log.
type Activated = HashMap<[u8; 32], Active>;

/// When each witness of one admin log began to count (SPEC 24.5), and its persons; nothing
/// for a log whose head does not verify.
fn activate_log(
    repo: &Repo,
    trusted: &Trusted,
    id: &str,
    origin: &str,
    owner: &LogOwner,
) -> Result<(Activated, Option<super::persons::Persons>)> {
    let mut active: HashMap<[u8; 32], Active> = HashMap::new();
    let s = super::stored(repo, id)?;
    let Some(head) = super::newest_verified(&s, &owner.key, origin) else {
        return Ok((active, None));
    };
    let Ok(entries) = super::entries_for(repo, &s, head.size, &head.root) else {
        return Ok((active, None));
    };
    let tree = tlog::Levels::new(&super::leaves(&entries));
    if tree.root(head.size as usize) != head.root {
        return Ok((active, None));
    }
    let c = changes(trusted, &entries, owner);
    let mut founding = true;
    let mut next = 0; // the first adoption not yet in effect
    for (&size, note) in s.checkpoints.range(..=head.size) {
        let Ok(cp) = tlog::open_checkpoint(note, &owner.key) else {
            continue;
        };
        if cp.origin != origin || cp.size != size || tree.root(size as usize) != cp.root {
            continue;
        }
        let cos = cosigned(trusted, &cp, s.cosignatures.get(&size), &owner.key)
            .into_iter()
            .filter(|k| active.get(k).is_some_and(|a| a.since < size))
            .count();
        // The active witnesses no logged revocation before this checkpoint retired.
        let live = active
            .keys()
            .filter(|k| !c.revoked.iter().any(|(i, r)| r == *k && *i < size))
            .count();
        // Before the first cosigned checkpoint, and again once every active witness was
        // revoked (nobody is left who could witness an adoption), adoptions take effect at
        // the next checkpoint: the (re)founding witnesses. Members see the whole witness set
        // change (SPEC 16.4).
        let initial = founding;
        let was_founding = founding || live == 0;
        let take = if was_founding {
            founding = founding && cos == 0;
            true
        } else {
            let q = c
                .quorums
                .iter()
                .take_while(|(i, _)| *i < size)
                .last()
                .map_or(0, |(_, q)| *q) as usize;
            cos >= q.min(live).max(1)
        };
        if !take {
            continue;
        }
        while let Some(&(i, k, by)) = c.adoptions.get(next).filter(|a| a.0 < size) {
            active.entry(k).or_insert(Active {
                since: size,
                // Adopted before the first checkpoint any witness cosigned; or, before the
                // recovery split, once every witness was revoked. After the split a witness
                // re-founded so is its adopter's, like any other: one admin who revokes
                // every witness and adopts her own gets no founding witness.
                founding: initial || (was_founding && c.persons.before_split(i)),
                by,
            });
            next += 1;
        }
    }
    Ok((active, Some(c.persons)))
}

pub(super) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The keys of the listed witnesses (active or revoked, before their revocation) whose
/// cosignature of `cp` verifies, never the log's own key; activation is not applied.
fn cosigned(
    trusted: &Trusted,
    cp: &Checkpoint,
    lines: Option<&BTreeMap<String, Vec<u8>>>,
    log_key: &[u8; 32],
) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let Some(lines) = lines else { return out };
    let active = trusted.witnesses.iter().map(|(n, k)| (n, k, u64::MAX));
    let revoked = trusted.revoked_witnesses.iter().map(|(n, k, t)| (n, k, *t));
    for (name, key, until) in active.chain(revoked) {
        if key == log_key || out.contains(key) {
            continue;
        }
        let kid = format!("{:08x}", tlog::key_id(name, key, true));
        if let Some(line) = lines.get(&kid) {
            if matches!(tlog::verify_cosignature(cp, line, name, key), Ok(t) if t < until) {
                out.push(*key);
            }
        }
    }
    out
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

    /// Valid cosignatures (distinct witnesses, never the log's own key) on a checkpoint, by
    /// witnesses that count for it (adopted, and active before it: SPEC 24.5).
    pub fn cosigners(
        &self,
        cp: &Checkpoint,
        lines: Option<&BTreeMap<String, Vec<u8>>>,
        log_key: &[u8; 32],
    ) -> Vec<String> {
        self.cosigner_keys(cp, lines, log_key)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    /// [`Self::cosigners`] with their keys.
    pub fn cosigner_keys(
        &self,
        cp: &Checkpoint,
        lines: Option<&BTreeMap<String, Vec<u8>>>,
        log_key: &[u8; 32],
    ) -> Vec<(String, [u8; 32])> {
        let names: HashMap<[u8; 32], &String> = self
            .witnesses
            .iter()
            .map(|(n, k)| (*k, n))
            .chain(self.revoked_witnesses.iter().map(|(n, k, _)| (*k, n)))
            .collect();
        cosigned(self, cp, lines, log_key)
            .into_iter()
            .filter(|k| {
                self.activation
                    .as_ref()
                    .is_none_or(|a| a.counts(k, &cp.origin, cp.size))
            })
            .map(|k| (names[&k].clone(), k))
            .collect()
    }

    /// [`Self::quorum_for`] for entry `at` of admin log `origin`, judged at that entry
    /// ([`Activation::independent_at`]).
    pub fn quorum_for_at(
        &self,
        keys: &[[u8; 32]],
        person: Option<&[u8; 32]>,
        origin: &str,
        at: u64,
    ) -> bool {
        keys.len() as u32 >= self.quorum
            && (self.quorum == 0
                || self
                    .activation
                    .as_ref()
                    .is_none_or(|a| keys.iter().any(|k| a.independent_at(k, person, origin, at))))
    }

    /// Whether the cosigners `keys` of a checkpoint make the quorum for an entry the admin
    /// person `person` caused: `quorum` of them, at least one independent of that person
    /// (SPEC 24.5: a witness one admin adopted never alone witnesses that admin's entries).
    pub fn quorum_for(&self, keys: &[[u8; 32]], person: Option<&[u8; 32]>) -> bool {
        keys.len() as u32 >= self.quorum
            && (self.quorum == 0
                || self
                    .activation
                    .as_ref()
                    .is_none_or(|a| keys.iter().any(|k| a.independent_of(k, person))))
    }
}

/// Whose admin keys count for a repository (SPEC 24.1), decided here for every client that
/// may hold no key of it (a witness, a replicator, the agent's peer rounds): the key the
/// caller names; else the caller's own admin keys when they are this repository's (`own`:
/// the repository ID they belong to, and the keys); else the ones pinned here the first time
/// ([`pinned_admin_keys`]).
pub fn trusted_admin_keys(
    repo: &Repo,
    given: Option<[u8; 32]>,
    own: Option<(&coop_formats::id::Id, &[[u8; 32]])>,
) -> Result<Vec<[u8; 32]>> {
    match (given, own) {
        (Some(k), _) => Ok(vec![k]),
        (None, Some((id, keys))) if *id == repo.config.repo_id => Ok(keys.to_vec()),
        _ => pinned_admin_keys(repo),
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
