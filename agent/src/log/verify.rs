//! Checking every log of a repository.
//!
//! A log's owner is found from the trusted keys (never from what the store says), its head is
//! its newest checkpoint that verifies under the owner's key, and only the entries that head
//! covers are returned. Every older checkpoint must be a prefix of the head; an entry whose
//! actor is not the log's own key, or a writer's entry of an event only admins may log, is
//! flagged as forged and counted nowhere. Junk that authenticates nothing (stray names, logs
//! of no known key, cosignatures of no trusted witness) is noted, not counted, and stops
//! nothing.

use super::trust::LogOwner;
use super::{b64, leaves, newest_verified, prefix, stored, Stored, Trusted};
use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog::{self, Entry, Event};
use std::collections::BTreeSet;

/// One log as [`verify`] saw it.
#[derive(Debug, serde::Serialize)]
pub struct LogSummary {
    pub origin: String,
    pub actor: String,
    /// An admin's log (by key).
    pub admin: bool,
    pub size: u64,
    pub checkpoints: usize,
    /// Witnesses whose cosignature on the newest cosigned checkpoint verifies.
    pub cosigned_by: Vec<String>,
    /// The largest size carrying the quorum (None: none does).
    pub witnessed_size: Option<u64>,
    /// Entries flagged as forged (another actor, or an admin's event in a writer's log).
    pub rejected: usize,
}

/// Serialised as `coop log verify --json` shows it: the problems as their messages.
#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub logs: Vec<LogSummary>,
    pub entries: u64,
    pub quorum: u32,
    #[serde(serialize_with = "messages")]
    pub problems: Vec<Problem>,
    /// Harmless junk that was ignored.
    pub notes: Vec<String>,
}

/// Problems as their messages (`object: message`).
fn messages<S: serde::Serializer>(
    problems: &[Problem],
    ser: S,
) -> std::result::Result<S::Ok, S::Error> {
    ser.collect_seq(problems.iter().map(|p| p.to_string()))
}

/// The verified entries of one log, with what proves them.
pub struct LogContent {
    pub id: String,
    pub origin: String,
    /// Entries `0..head`: exactly what the newest verifying checkpoint covers.
    pub entries: Vec<Vec<u8>>,
    pub stored: Stored,
    pub key: [u8; 32],
    /// An admin's log (by key).
    pub admin: bool,
    /// No fork, rollback or inconsistent checkpoint was found in it.
    pub sound: bool,
    /// The largest size carrying the quorum of cosignatures (`None`: none does).
    pub witnessed: Option<u64>,
    /// Each verifying checkpoint on the head's history (size) with the keys of the trusted
    /// witnesses that cosigned it.
    pub cosigned: Vec<(u64, Vec<[u8; 32]>)>,
    /// Indexes of entries flagged as forged.
    pub rejected: BTreeSet<usize>,
}

impl LogContent {
    /// The entries that count: decoded, by the log's own key, and allowed for its owner.
    pub fn accepted(&self) -> impl Iterator<Item = (usize, Entry)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, b)| {
            if self.rejected.contains(&i) {
                return None;
            }
            Entry::decode(b).ok().map(|e| (i, e))
        })
    }

    /// Whether entry `i` (an entry of `person`, if a person signed it) is covered by a
    /// checkpoint the quorum cosigned with at least one witness independent of that person
    /// (SPEC 24.5: the witnesses one admin adopted never alone make the quorum for her own
    /// entries). What a person asks or releases in a recovery counts only so.
    pub fn is_witnessed_by(&self, i: usize, trusted: &Trusted, person: Option<&[u8; 32]>) -> bool {
        trusted.quorum == 0
            || self.cosigned.iter().any(|(size, keys)| {
                (i as u64) < *size && trusted.quorum_for_at(keys, person, &self.origin, i as u64)
            })
    }

    /// Whether entry `i` is covered by a checkpoint the quorum cosigned (always, with a
    /// quorum of 0).
    pub fn is_witnessed(&self, i: usize, quorum: u32) -> bool {
        quorum == 0 || self.witnessed.is_some_and(|w| (i as u64) < w)
    }
}

/// Checks every log of the repository (see the module docs).
pub fn verify(repo: &Repo, trusted: &Trusted) -> Result<(VerifyReport, Vec<LogContent>)> {
    let mut rep = VerifyReport {
        quorum: trusted.quorum,
        ..Default::default()
    };
    let mut contents = Vec::new();
    let by_id = trusted.by_id();
    for id in super::log_ids(repo)? {
        let Some((origin, owner)) = by_id.get(&id) else {
            rep.notes.push(format!(
                "log/{id}: the log of no known writer or admin of this repository (ignored)"
            ));
            continue;
        };
        if let Some(c) = verify_log(repo, trusted, &id, origin, owner, &mut rep)? {
            contents.push(c);
        }
    }
    // A log this client verified here before and that is gone now (every object of it
    // deleted or hidden by the store) is a rollback, not "no log" (SPEC 24.6 step 6).
    let location = repo.store.location();
    for (origin, before) in
        crate::state::remembered_logs(repo.cache_dir(), &repo.config.repo_id, &location)
    {
        let id = tlog::log_id(&origin);
        if before > 0
            && trusted.owner(&origin).is_some()
            && !contents.iter().any(|c| c.origin == origin)
            && !rep
                .problems
                .iter()
                .any(|p| p.object.starts_with(&prefix(&id)))
        {
            rep.problems.push(Problem::damaged(
                &prefix(&id),
                format!(
                    "POSSIBLE ROLLBACK: the log {origin} is gone from this store, but this \
                     client verified {before} entries of it here (deleted or hidden by the \
                     store); copy it back from another site's replica"
                ),
            ));
        }
    }
    Ok((rep, contents))
}

/// Checks one log: its newest verifying checkpoint, the entries it covers, every older
/// checkpoint and its cosignatures, the entries' actors, and what this client saw before.
/// `None`: nothing of it counts (no checkpoint verifies, or its entries do not match).
fn verify_log(
    repo: &Repo,
    trusted: &Trusted,
    id: &str,
    origin: &str,
    owner: &LogOwner,
    rep: &mut VerifyReport,
) -> Result<Option<LogContent>> {
    let s = stored(repo, id)?;
    for p in &s.strays {
        rep.notes
            .push(format!("{p}: not a log object (stray name; ignored)"));
    }
    let key = owner.key;
    let Some(Head {
        size,
        entries,
        tree,
    }) = head_entries(repo, &s, id, origin, &key, rep)?
    else {
        return Ok(None);
    };
    let Heads {
        mut sound,
        witnessed,
        cosigned_by,
        cosigned,
        uncounted,
    } = checkpoints(trusted, &s, id, origin, &key, &tree, size, rep);
    let (proven, notes) = super::check_forks(&s, &key, origin, &tree);
    rep.notes.extend(notes);
    for (path, why) in proven {
        rep.problems.push(Problem::damaged(
            &path,
            format!("{why}; the evidence came from another copy of this repository"),
        ));
        sound = false;
    }
    if uncounted > 0 {
        rep.notes.push(format!(
            "{}: {uncounted} cosignature(s) by no trusted witness, or by a revoked one after its revocation (not counted)",
            prefix(id)
        ));
    }
    for sz in s.cosignatures.keys() {
        if !s.checkpoints.contains_key(sz) {
            rep.problems.push(Problem::damaged(
                &format!("{}/cosignature/{sz}", prefix(id)),
                "cosignatures of a checkpoint that is not there (a checkpoint was hidden or deleted?)",
            ));
        }
    }
    let rejected = forged_entries(&entries, id, origin, owner, &key, rep);
    if sound {
        let alarm = crate::state::observe_log(
            repo.cache_dir(),
            &repo.config.repo_id,
            &repo.store.location(),
            origin,
            size,
            &b64(&tree.root(size as usize)),
            |old, old_root| old <= size && b64(&tree.root(old as usize)) == old_root,
        );
        if let Some(a) = alarm {
            rep.problems.push(Problem::damaged(&prefix(id), a));
            sound = false;
        }
    }
    rep.entries += size;
    rep.logs.push(LogSummary {
        origin: origin.to_string(),
        actor: owner.name.clone(),
        admin: owner.admin,
        size,
        checkpoints: s.checkpoints.len(),
        cosigned_by,
        witnessed_size: witnessed,
        rejected: rejected.len(),
    });
    Ok(Some(LogContent {
        id: id.to_string(),
        origin: origin.to_string(),
        entries,
        stored: s,
        key,
        admin: owner.admin,
        sound,
        witnessed,
        cosigned,
        rejected,
    }))
}

/// A log's head and what it covers.
struct Head {
    /// The size of the newest checkpoint that verifies.
    size: u64,
    entries: Vec<Vec<u8>>,
    /// The entries' hash tree.
    tree: tlog::Levels,
}

/// A log's head, its newest checkpoint that verifies under `key`, and the entries it covers
/// with their hash tree. Checkpoints past the head are reported as
/// forged. `None` (the problem reported, if there is anything stored) when no checkpoint
/// verifies, the entries do not read, or they do not hash to the head's root.
fn head_entries(
    repo: &Repo,
    s: &Stored,
    id: &str,
    origin: &str,
    key: &[u8; 32],
    rep: &mut VerifyReport,
) -> Result<Option<Head>> {
    let Some(head) = newest_verified(s, key, origin) else {
        if !s.checkpoints.is_empty() || !s.bundles.is_empty() {
            rep.problems.push(Problem::damaged(
                &prefix(id),
                format!("no checkpoint verifies under the key of {origin} (deleted or replaced?)"),
            ));
        }
        return Ok(None);
    };
    let size = head.size;
    for sz in s.checkpoints.range(size + 1..).map(|(k, _)| *k) {
        rep.problems.push(Problem::forged(
            &format!("{}/checkpoint/{sz}", prefix(id)),
            "does not verify under the log's key (ignored; the log ends at its newest valid checkpoint)",
        ));
    }
    let entries = match super::entries_for(repo, s, size, &head.root) {
        Ok(e) => {
            if super::bundles_absent(s, size) {
                rep.notes.push(format!(
                    "{}: entries up to {size} read from a pending append (SPEC 24.2): its \
                     bundles are not written yet, by an append in progress or one that stopped \
                     (or deleted); the next append writes them",
                    prefix(id)
                ));
            }
            e
        }
        Err(e) => {
            rep.problems
                .push(Problem::damaged(&prefix(id), crate::error::chain(&e)));
            return Ok(None);
        }
    };
    let tree = tlog::Levels::new(&leaves(&entries));
    if tree.root(size as usize) != head.root {
        rep.problems.push(Problem::damaged(
            &format!("{}/checkpoint/{size}", prefix(id)),
            "the entries do not hash to the newest checkpoint's root (changed, deleted or reordered entries)",
        ));
        return Ok(None);
    }
    Ok(Some(Head {
        size,
        entries,
        tree,
    }))
}

/// What a log's checkpoints up to its head say.
struct Heads {
    /// No checkpoint is forged or forks.
    sound: bool,
    /// The largest size the quorum cosigned.
    witnessed: Option<u64>,
    cosigned_by: Vec<String>,
    /// Per verifying checkpoint: its size and its trusted cosigners' keys.
    cosigned: Vec<(u64, Vec<[u8; 32]>)>,
    /// Cosignatures by no trusted witness.
    uncounted: usize,
}

/// Checks every checkpoint up to the head (`size`) against the entries' tree, and counts the
/// cosignatures of each.
#[allow(clippy::too_many_arguments)]
fn checkpoints(
    trusted: &Trusted,
    s: &Stored,
    id: &str,
    origin: &str,
    key: &[u8; 32],
    tree: &tlog::Levels,
    size: u64,
    rep: &mut VerifyReport,
) -> Heads {
    let mut sound = true;
    let mut witnessed = None;
    let mut cosigned_by = Vec::new();
    let mut cosigned = Vec::new();
    let mut uncounted = 0usize;
    for (sz, note) in s.checkpoints.range(..=size) {
        let path = format!("{}/checkpoint/{sz}", prefix(id));
        match tlog::open_checkpoint(note, key) {
            Ok(cp) if cp.origin != *origin || cp.size != *sz => {
                rep.problems
                    .push(Problem::forged(&path, "names another log or size"));
                sound = false;
            }
            Ok(cp) if tree.root(*sz as usize) != cp.root => {
                rep.problems.push(Problem::damaged(
                    &path,
                    "FORK: this checkpoint's tree is not a prefix of the log's newest one (the log's owner signed two histories)",
                ));
                sound = false;
            }
            Ok(cp) => {
                let lines = s.cosignatures.get(sz);
                let (c, keys): (Vec<String>, Vec<[u8; 32]>) =
                    trusted.cosigner_keys(&cp, lines, key).into_iter().unzip();
                uncounted += lines.map_or(0, |l| l.len()).saturating_sub(c.len());
                cosigned.push((*sz, keys));
                if c.len() as u32 >= trusted.quorum.max(1) {
                    witnessed = Some(*sz);
                    cosigned_by = c;
                } else if !c.is_empty() && witnessed.is_none() {
                    cosigned_by = c;
                }
            }
            Err(e) => {
                rep.problems.push(Problem::forged(&path, e));
            }
        }
    }
    Heads {
        sound,
        witnessed,
        cosigned_by,
        cosigned,
        uncounted,
    }
}

/// The entries that name another actor, hold an event their log's owner may not log, or
/// name an admin whose signature does not verify: flagged as forged (their indexes).
fn forged_entries(
    entries: &[Vec<u8>],
    id: &str,
    origin: &str,
    owner: &LogOwner,
    key: &[u8; 32],
    rep: &mut VerifyReport,
) -> BTreeSet<usize> {
    let mut rejected = BTreeSet::new();
    let own = hex::encode(key);
    for (i, b) in entries.iter().enumerate() {
        let object = format!("{} entry {i}", prefix(id));
        match Entry::decode(b) {
            Err(err) => {
                rep.problems.push(Problem::damaged(&object, err));
                rejected.insert(i);
            }
            Ok(e) if e.actor != own => {
                rep.problems.push(Problem::forged(
                    &object,
                    format!(
                        "names actor {} ({}) but is in the log of {origin}",
                        e.actor, e.actor_name
                    ),
                ));
                rejected.insert(i);
            }
            Ok(e) if !owner.admin && !writer_may_log(&e) => {
                rep.problems.push(Problem::forged(
                    &object,
                    format!(
                        "a {} event in a site writer's log: only an admin's log may hold one (a stolen agent key?)",
                        serde_json::to_value(e.event)
                            .ok()
                            .and_then(|v| v.as_str().map(String::from))
                            .unwrap_or_default()
                    ),
                ));
                rejected.insert(i);
            }
            Ok(e) if e.person() == coop_formats::tlog::PersonCheck::Forged => {
                rep.problems.push(Problem::forged(
                    &object,
                    "names an admin person whose signature does not verify (an entry \
                     changed, or made in another admin's name)",
                ));
                rejected.insert(i);
            }
            Ok(_) => {}
        }
    }
    rejected
}

/// An entry of an admins' log, where it is, and whether a quorum witnessed it.
pub struct Found {
    /// The entry's index in its log.
    pub index: u64,
    pub entry: Entry,
    pub witnessed: bool,
}

/// The accepted entries of the admins' logs that `pred` takes, in log order. Fails when an
/// admins' log is not sound (a fork or rollback): what it says then counts for nothing.
pub fn admin_entries(
    repo: &Repo,
    trusted: &Trusted,
    pred: impl Fn(&Entry) -> bool,
) -> Result<Vec<Found>> {
    let (report, contents) = verify(repo, trusted)?;
    // Only admins' logs (by key) count; one with a fork or rollback counts
    // for nothing. A writer's log (a stolen agent key) or junk elsewhere changes nothing here.
    let mut out = Vec::new();
    for c in contents.iter().filter(|c| c.admin) {
        if !c.sound {
            let p = report
                .problems
                .iter()
                .find(|p| p.object.starts_with(&format!("log/{}", c.id)));
            return Err(Error::damaged(
                format!("log/{}", c.id),
                format!(
                    "the admins' access log is not sound: {}",
                    p.map(|p| p.message.as_str())
                        .unwrap_or("a fork or rollback")
                ),
            ));
        }
        for (i, e) in c.accepted() {
            if pred(&e) {
                let person = match e.person() {
                    coop_formats::tlog::PersonCheck::Signed(by) => Some(by),
                    _ => None,
                };
                out.push(Found {
                    index: i as u64,
                    witnessed: c.is_witnessed_by(i, trusted, person.as_ref()),
                    entry: e,
                });
            }
        }
    }
    Ok(out)
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

/// Whether a site writer's log may hold entry `e`: every event but the admins' (above),
/// and the one `key-change` a writer makes, `following` a member's new keys (SPEC 15.3),
/// which nothing but people reads (the member's export, `log show`).
pub fn writer_may_log(e: &coop_formats::tlog::Entry) -> bool {
    !admin_only(e.event) || (e.event == Event::KeyChange && e.object.as_deref() == Some(FOLLOWING))
}

/// The `object` of the entry in which a client (an agent's writer key, or an admin's) says
/// it follows a member's new keys.
pub const FOLLOWING: &str = "following";
