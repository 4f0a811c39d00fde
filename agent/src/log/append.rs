//! Appending to one's own log, and waiting for its witnesses.
//!
//! An append never signs over a history this machine signed differently: the (size, root) of
//! the last checkpoint it signed is kept in client state, and a store that shows less (a
//! hidden or rolled-back checkpoint) or another history is refused. Objects past the newest
//! checkpoint that verifies under the log's key are leftovers (a crashed append) or squatters
//! (anyone who may create an object): they authenticate nothing and are overwritten, so no
//! leftover or junk name can stop a log. Two processes on one machine take turns through a
//! lock file. Appenders on several machines race for the next checkpoint's name with a
//! create-only PUT: the first one counts, and the others start over on its head having
//! written nothing a reader uses. The winner's new entries are in a pending object (named
//! by size and root) before its claim, so a winner that stops before its bundles is
//! finished by the next appender (SPEC 24.2).

use super::{leaves, prefix, read_entries, stored, Actor, Trusted};
use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog::{self, Checkpoint, Entry, Hash};
use std::time::{Duration, Instant};

/// What [`append`] did. Serialised as where the entries are: `log` (the origin) and `index`
/// (the first new entry's).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Appended {
    #[serde(rename = "log")]
    pub origin: String,
    #[serde(skip)]
    pub id: String,
    /// Index of the first new entry.
    #[serde(rename = "index")]
    pub first: u64,
    /// The new tree size.
    #[serde(skip)]
    pub size: u64,
    /// The root of the tree this append signed: a checkpoint proves it holds the new entries
    /// when its tree has this one as a prefix.
    #[serde(skip)]
    pub root: Hash,
    /// The admin person who signed the new entries (SPEC 24.3), if any: the witnesses that
    /// person adopted never alone make the quorum for them (24.5).
    #[serde(skip)]
    pub person: Option<[u8; 32]>,
}

/// Holds this process's right to append to one log (a lock file in the cache directory).
struct AppendLock(#[allow(dead_code)] Option<nix::fcntl::Flock<std::fs::File>>);

fn append_lock(repo: &Repo, id: &str) -> Result<AppendLock> {
    let Some(cache) = repo.cache_dir() else {
        return Ok(AppendLock(None));
    };
    let dir = cache.join(repo.config.repo_id.to_hex());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let p = dir.join(format!("log-{id}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(&p, std::io::Error::from(e)))?;
    Ok(AppendLock(Some(l)))
}

/// The (size, root) this machine last signed for a log, in `<cache>/<repo id>/log-own-<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct OwnHead {
    size: u64,
    root: String,
}

fn own_path(repo: &Repo, id: &str) -> Option<std::path::PathBuf> {
    repo.cache_dir().map(|c| {
        c.join(repo.config.repo_id.to_hex())
            .join(format!("log-own-{id}.json"))
    })
}

fn load_own(repo: &Repo, id: &str) -> Option<OwnHead> {
    let b = std::fs::read(own_path(repo, id)?).ok()?;
    serde_json::from_slice(&b).ok()
}

fn save_own(repo: &Repo, id: &str, head: &OwnHead) -> Result<()> {
    use std::io::Write;
    let Some(p) = own_path(repo, id) else {
        return Ok(());
    };
    let tmp = p.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&serde_json::to_vec(head).expect("serializes"))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))
}

/// The newest checkpoint of `id` that verifies under `actor`'s key, the entries it covers,
/// and the pending objects listed with it. Checkpoints above it that do not verify are
/// ignored (junk, or a crash's leftover).
fn head(repo: &Repo, actor: &Actor, origin: &str, id: &str) -> Result<Head> {
    let s = stored(repo, id)?;
    let pending: Vec<String> = s.pending.keys().cloned().collect();
    for (&size, note) in s.checkpoints.iter().rev() {
        let Ok(cp) = tlog::open_checkpoint(note, &actor.public()) else {
            continue;
        };
        if cp.origin != origin || cp.size != size {
            continue;
        }
        let read = read_entries(repo, &s, size);
        let entries = match read {
            Ok(es) if tlog::root(&leaves(&es)) == cp.root => es,
            // An append that claimed this checkpoint and has not written (or died before
            // writing) its bundles: finish it from its pending object.
            read => match super::pending_entries(repo, &s, size, &cp.root) {
                Some((start, all)) => {
                    put_bundles(repo, id, &all, start)?;
                    all
                }
                None => {
                    read?;
                    return Err(Error::damaged(
                        format!("{}/checkpoint/{size}", prefix(id)),
                        "the log's entries do not hash to its newest checkpoint (tampered, or \
                         another appender's bundles); this log cannot be appended to",
                    ));
                }
            },
        };
        return Ok(Head {
            size,
            entries,
            pending,
        });
    }
    Ok(Head {
        size: 0,
        entries: Vec::new(),
        pending,
    })
}

/// What [`head`] found.
struct Head {
    size: u64,
    entries: Vec<Vec<u8>>,
    /// The pending objects' names (below `log/<id>/`) as listed.
    pending: Vec<String>,
}

/// Refuses a store that shows less of this log than this machine signed, or another history.
fn check_own(repo: &Repo, id: &str, size: u64, entries: &[Vec<u8>]) -> Result<()> {
    let Some(own) = load_own(repo, id) else {
        return Ok(());
    };
    let path = format!("{}/checkpoint/{}", prefix(id), own.size);
    if size < own.size {
        return Err(Error::damaged(
            path,
            format!(
                "POSSIBLE ROLLBACK: this machine signed this log at {} entries, the store shows {size} \
                 (a checkpoint was hidden or deleted); nothing is appended on a shorter history. \
                 Run `coop log verify` and restore the log from another site's replica",
                own.size
            ),
        ));
    }
    if super::b64(&tlog::root(&leaves(&entries[..own.size as usize]))) != own.root {
        return Err(Error::damaged(
            path,
            "FORK: the log no longer holds the history this machine signed; nothing is appended. \
             Run `coop log verify` on every site",
        ));
    }
    Ok(())
}

/// How often an append starts over when another appender signed the same size first.
const ATTEMPTS: usize = 8;

/// Waits before attempt `attempt + 1` after losing a race for the next checkpoint: a random
/// time that doubles with each loss (from 10 to about 1300 ms), so that appenders that keep
/// colliding spread out instead of colliding again in lockstep.
fn back_off(attempt: usize) {
    let base = 10u64 << attempt.min(7);
    let mut r = [0u8; 2];
    let jitter = match getrandom::getrandom(&mut r) {
        Ok(()) => u64::from(u16::from_le_bytes(r)) % (base + 1),
        Err(_) => base / 2,
    };
    std::thread::sleep(std::time::Duration::from_millis(base + jitter));
}

/// Appends entries to the actor's log in `repo` and signs the new checkpoint.
pub fn append(repo: &Repo, actor: &Actor, entries: &[Entry]) -> Result<Appended> {
    let origin = actor.origin(repo);
    let id = tlog::log_id(&origin);
    let _lock = append_lock(repo, &id)?;
    let new = encode(actor, entries)?;
    // A pending object holds a bundle's start and the batch (at most twice a bundle's size,
    // SPEC 24.2): a larger batch goes in several appends, each one whole on its own.
    let mut batches: Vec<&[Vec<u8>]> = Vec::new();
    let (mut from, mut bytes) = (0, 0u64);
    for (i, e) in new.iter().enumerate() {
        let n = e.len() as u64 + 2;
        if i > from && bytes + n > super::MAX_BUNDLE {
            batches.push(&new[from..i]);
            (from, bytes) = (i, 0);
        }
        bytes += n;
    }
    batches.push(&new[from..]);
    let mut done: Option<Appended> = None;
    for batch in batches {
        let a = append_batch(repo, actor, &origin, &id, batch)?;
        done = Some(match done {
            Some(d) => Appended {
                first: d.first,
                ..a
            },
            None => a,
        });
    }
    Ok(done.expect("at least one batch"))
}

/// Appends encoded entries `new` to log `id` (the append lock held).
fn append_batch(
    repo: &Repo,
    actor: &Actor,
    origin: &str,
    id: &str,
    new: &[Vec<u8>],
) -> Result<Appended> {
    let (origin, id) = (origin.to_string(), id.to_string());
    for attempt in 0..ATTEMPTS {
        // Another appender of this key (elsewhere) may be between its checkpoint and the
        // repair of its bundles (below): a head whose entries do not hash yet gets a moment.
        let Head {
            size,
            entries: mut all,
            pending,
        } = match head(repo, actor, &origin, &id) {
            Err(e @ Error::Damaged { .. }) if attempt + 1 < ATTEMPTS => {
                tracing::debug!("log head not consistent yet ({e}); trying again");
                std::thread::sleep(std::time::Duration::from_millis(300));
                continue;
            }
            r => r?,
        };
        check_own(repo, &id, size, &all)?;
        all.extend(new.iter().cloned());
        let new_size = all.len() as u64;
        let cp = Checkpoint {
            origin: origin.clone(),
            size: new_size,
            root: tlog::root(&leaves(&all)),
        };
        let cp_path = format!("{}/checkpoint/{new_size}", prefix(&id));
        if signed_by_us(repo, &cp_path, actor, &origin, new_size)?.is_some() {
            // Another appender got to this size first: start over on its head.
            back_off(attempt);
            continue;
        }
        // The new entries (with the bundle they start in) where any appender can finish
        // this append if it stops after the claim below. The name holds the root: no two
        // histories share it.
        let start = size - size % tlog::BUNDLE;
        // Replacing: junk squatting the name authenticates nothing.
        repo.store.put_replace(
            &format!(
                "{}/{}",
                prefix(&id),
                super::pending_name(new_size, &cp.root)
            ),
            tlog::encode_bundle(&all[start as usize..]),
        )?;
        crate::fault::point("log:after-pending");
        // The claim: the first checkpoint of this size is the one that counts. A loser has
        // written nothing another appender reads, so it only starts over.
        let note = tlog::sign_checkpoint(&cp, &actor.key);
        // (A retried PUT may find its own first try: the same bytes, so this one's.)
        if !repo.store.put_claim(&cp_path, note.clone())? && !holds(repo, &cp_path, &note)? {
            if signed_by_us(repo, &cp_path, actor, &origin, new_size)?.is_some() {
                back_off(attempt);
                continue;
            }
            // Junk under the name (it authenticates nothing): overwrite it.
            repo.store.put_replace(&cp_path, note.clone())?;
        }
        // Read back: on a server without create-only PUT a concurrent appender that wrote
        // the same name last wins, and this one starts over.
        if !holds(repo, &cp_path, &note)? {
            back_off(attempt);
            continue;
        }
        crate::fault::point("log:after-claim");
        put_bundles(repo, &id, &all, size)?;
        crate::fault::point("log:after-bundles");
        if !holds(repo, &cp_path, &note)? {
            // Overwritten meanwhile (no create-only PUT): the winner's pending object
            // repairs whatever bundles this one wrote.
            back_off(attempt);
            continue;
        }
        save_own(
            repo,
            &id,
            &OwnHead {
                size: new_size,
                root: super::b64(&cp.root),
            },
        )?;
        clear_pending(repo, &id, &pending, size);
        crate::fault::point("log:after-checkpoint");
        return Ok(Appended {
            origin,
            id,
            first: size,
            size: new_size,
            root: cp.root,
            person: actor.person.as_ref().map(|p| p.verifying_key().to_bytes()),
        });
    }
    Err(Error::Conflict {
        what: format!(
            "{}: other appenders kept signing this log first ({ATTEMPTS} attempts); try again",
            prefix(&id)
        ),
    })
}

/// The entries as stored, signed by the actor's person key if it has one; none may be longer
/// than a log entry can be.
fn encode(actor: &Actor, entries: &[Entry]) -> Result<Vec<Vec<u8>>> {
    let mut new = Vec::with_capacity(entries.len());
    for e in entries {
        let mut e = e.clone();
        if let Some(p) = &actor.person {
            e.sign_person(p);
        }
        let b = e.encode();
        if b.len() > tlog::MAX_ENTRY {
            return Err(Error::invalid("a log entry is longer than 65535 bytes"));
        }
        new.push(b);
    }
    Ok(new)
}

/// Writes every bundle of log `id` that entries from `from` on (to the end of `all`) touch,
/// under its new width, replacing whatever is stored under those names.
fn put_bundles(repo: &Repo, id: &str, all: &[Vec<u8>], from: u64) -> Result<()> {
    let new_size = all.len() as u64;
    let mut n = from / tlog::BUNDLE;
    while n * tlog::BUNDLE < new_size {
        let start = n * tlog::BUNDLE;
        let width = (new_size - start).min(tlog::BUNDLE);
        let bytes = tlog::encode_bundle(&all[start as usize..(start + width) as usize]);
        repo.store.put_replace(
            &format!("{}/{}", prefix(id), tlog::bundle_path(n, width)),
            bytes,
        )?;
        n += 1;
    }
    Ok(())
}

/// Whether the object at `path` holds exactly `note`.
fn holds(repo: &Repo, path: &str, note: &[u8]) -> Result<bool> {
    match repo.store.get(path) {
        Ok(b) => Ok(b[..] == note[..]),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the pending objects of appends that ended below `size`, a head whose bundles
/// were read whole: nothing needs them. Best effort (a writer may lack delete rights).
fn clear_pending(repo: &Repo, id: &str, pending: &[String], size: u64) {
    for rel in pending {
        if super::pending_size(rel).is_some_and(|n| n < size) {
            if let Err(e) = repo.store.delete(&format!("{}/{rel}", prefix(id))) {
                tracing::debug!("{rel}: not deleted ({e})");
            }
        }
    }
}

/// The checkpoint at `path` if it verifies under the actor's key for this size.
fn signed_by_us(
    repo: &Repo,
    path: &str,
    actor: &Actor,
    origin: &str,
    size: u64,
) -> Result<Option<Checkpoint>> {
    match repo.store.get(path) {
        Ok(b) => Ok(tlog::open_checkpoint(&b, &actor.public())
            .ok()
            .filter(|cp| cp.origin == origin && cp.size == size)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Waits until a checkpoint that provably contains the appended entries (its tree has the
/// appended tree as a prefix, checked against the stored entries) carries `quorum` valid
/// cosignatures of other sites, one of them independent of the person who appended (a
/// founding witness, or one another admin adopted: SPEC 24.5). A cosigned checkpoint of the
/// same size with another history does not count. Returns the cosigners.
pub fn wait_for_quorum(
    repo: &Repo,
    appended: &Appended,
    log_key: &[u8; 32],
    trusted: &Trusted,
    timeout: Duration,
) -> Result<Vec<String>> {
    if trusted.quorum == 0 {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    loop {
        let s = stored(repo, &appended.id)?;
        let mut best = Vec::new();
        for (size, note) in s.checkpoints.range(appended.size..) {
            let Ok(cp) = tlog::open_checkpoint(note, log_key) else {
                continue;
            };
            if cp.origin != appended.origin || cp.size != *size {
                continue;
            }
            let ck = trusted.cosigner_keys(&cp, s.cosignatures.get(size), log_key);
            let keys: Vec<[u8; 32]> = ck.iter().map(|(_, k)| *k).collect();
            let c: Vec<String> = ck.into_iter().map(|(n, _)| n).collect();
            if !trusted.quorum_for(&keys, appended.person.as_ref()) {
                best = if c.len() > best.len() { c } else { best };
                continue;
            }
            let Ok(es) = super::entries_for(repo, &s, *size, &cp.root) else {
                continue;
            };
            let hashes = leaves(&es);
            if tlog::root(&hashes) == cp.root
                && tlog::root(&hashes[..appended.size as usize]) == appended.root
            {
                return Ok(c);
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::LogQuorum {
                have: best.len() as u32,
                need: trusted.quorum,
                waited_secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500).min(timeout));
    }
}
