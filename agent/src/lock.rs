//! Locks: a backup announces itself so that prune never deletes what it may reference.
//!
//! A lock is a control object under `locks/<tag>/`. Its holder rewrites it every
//! [`REFRESH_SECS`] (a new object, then the old one is deleted) and deletes it when done.
//!
//! A lock is *stale* (ignored, and reported, by prune) only when either
//! - it was not refreshed for [`STALE_SECS`], or
//! - its holder is provably dead: the lock was taken on this very machine (same machine ID),
//!   in this boot (same boot ID), in this pid namespace, and no process with its pid and its
//!   start time exists. A second machine with the same host name, a container, or a process
//!   in another pid namespace is never taken for this one.
//!
//! A lock that cannot be read is treated as live, until the store says it was written more
//! than [`STALE_SECS`] ago. A lock's own `refreshed` time counts only up to the time the store
//! wrote it, so a lock dated in the future ages too.

use crate::error::Result;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::control::{Control, Holder, Lock, LockKind};
use coop_formats::id::Id;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub const REFRESH_SECS: i64 = 300;
pub const STALE_SECS: i64 = 1800;

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The pid namespace of `pid` (the inode of its `ns/pid` link), 0 if unknown.
fn pid_ns_of(pid: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/pid"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// This process as a lock holder.
pub fn this_holder() -> &'static Holder {
    static H: OnceLock<Holder> = OnceLock::new();
    H.get_or_init(|| Holder {
        host: crate::hostname(),
        machine_id: read_trimmed("/etc/machine-id"),
        boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        pid_ns: pid_ns_of("self"),
        pid: std::process::id(),
        start: start_ticks("self").unwrap_or(0),
        token: hex::encode(coop_formats::random_bytes::<16>()),
    })
}

/// Whether the holder of a lock is provably no longer running (see the module docs).
pub fn holder_is_dead(h: &Holder) -> bool {
    let me = this_holder();
    if h.machine_id.is_empty()
        || h.boot_id.is_empty()
        || h.pid_ns == 0
        || h.machine_id != me.machine_id
        || h.boot_id != me.boot_id
        || h.pid_ns != me.pid_ns
    {
        return false;
    }
    let pid = h.pid.to_string();
    match start_ticks(&pid) {
        None => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        // The pid exists: the holder only if it started at the same tick (else it was reused).
        Some(t) => t != h.start,
    }
}

/// Whether a lock may be ignored.
pub fn is_stale(l: &Lock, now: i64) -> bool {
    now - l.refreshed > STALE_SECS || holder_is_dead(&l.holder)
}

/// [`is_stale`], where the lock's own `refreshed` time is capped by when the store says the
/// object was written: a lock dated in the future (a writer key that wants prune blocked
/// forever) ages like any other. Every refresh writes a new object, so for a live holder the
/// two agree up to the clocks' difference, which the 30-minute window absorbs.
pub fn is_stale_stored(l: &Lock, modified: i64, now: i64) -> bool {
    let refreshed = if modified > 0 {
        l.refreshed.min(modified)
    } else {
        l.refreshed
    };
    now - refreshed > STALE_SECS || holder_is_dead(&l.holder)
}

/// A held lock; released on drop.
pub struct LockGuard {
    repo: Repo,
    tag: coop_formats::envelope::TenantTag,
    name: Arc<Mutex<Id>>,
    /// Dropped to stop the refresh thread at once (it waits on the other end).
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Stores a (new or refreshed) lock object; returns its name. Locks are not fsynced: the
/// process holding one dies with the machine, and a lock only matters while it lives.
fn write_lock(
    repo: &Repo,
    index_key: &[u8; 32],
    tag: coop_formats::envelope::TenantTag,
    signer: &ed25519_dalek::SigningKey,
    kind: LockKind,
    created: i64,
) -> Result<Id> {
    let body = Lock {
        kind,
        holder: this_holder().clone(),
        created,
        refreshed: crate::now_unix(),
        nonce: hex::encode(coop_formats::random_bytes::<8>()),
    };
    let sealed = body.seal(index_key, tag, signer);
    let name = Id::of_stored(&sealed);
    repo.store
        .put_transient(&Kind::Lock.path(&tag, &name), sealed)?;
    Ok(name)
}

/// Takes a lock of `kind` and keeps it fresh until the guard is dropped.
pub fn acquire(repo: &Repo, keys: &TenantKeys, kind: LockKind) -> Result<LockGuard> {
    let created = crate::now_unix();
    let (index_key, tag, signer) = (keys.index_key, keys.tag, keys.signer.clone());
    let name = Arc::new(Mutex::new(write_lock(
        repo, &index_key, tag, &signer, kind, created,
    )?));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (r, n) = (repo.clone(), Arc::clone(&name));
    let thread = std::thread::Builder::new()
        .name("coop-lock".into())
        .spawn(move || {
            // Wakes every REFRESH_SECS, or at once when the guard is dropped.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(REFRESH_SECS as u64))
            {
                if let Ok(new) = write_lock(&r, &index_key, tag, &signer, kind, created) {
                    let old = std::mem::replace(&mut *n.lock().expect("lock"), new);
                    let _ = r.delete(Kind::Lock, &tag, &old);
                } else {
                    tracing::warn!("could not refresh the repository lock; will retry");
                }
            }
        })
        .expect("cannot start lock thread");
    Ok(LockGuard {
        repo: repo.clone(),
        tag,
        name,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl LockGuard {
    /// The name of the lock object as it is now (it changes at every refresh).
    pub fn name(&self) -> Id {
        *self.name.lock().expect("lock")
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.repo.delete(Kind::Lock, &self.tag, &self.name());
    }
}

/// Locks other than `own` that are live (or unreadable), and stale ones.
pub struct LockView {
    pub live: Vec<(Id, Option<Lock>)>,
    pub stale: Vec<(Id, Lock)>,
    /// Unreadable lock objects the store wrote more than [`STALE_SECS`] ago: no live holder
    /// leaves its lock unrefreshed that long, so they are ignored (and reported).
    pub unreadable_stale: Vec<Id>,
}

pub fn view(repo: &Repo, keys: &TenantKeys, own: Option<Id>) -> Result<LockView> {
    let mut v = LockView {
        live: Vec::new(),
        stale: Vec::new(),
        unreadable_stale: Vec::new(),
    };
    let t = crate::now_unix();
    let modified: std::collections::HashMap<Id, i64> = repo
        .list(Kind::Lock, &keys.tag)?
        .into_iter()
        .map(|o| (o.name, o.modified))
        .collect();
    for (name, lock) in repo.list_control::<Lock>(keys, Kind::Lock)? {
        if Some(name) == own {
            continue;
        }
        let written = modified.get(&name).copied().unwrap_or(0);
        match lock {
            Ok((l, _)) if l.holder.token == this_holder().token => {} // ours, from another guard
            Ok((l, _)) if is_stale_stored(&l, written, t) => v.stale.push((name, l)),
            Ok((l, _)) => v.live.push((name, Some(l))),
            Err(_) if written > 0 && t - written > STALE_SECS => v.unreadable_stale.push(name),
            Err(_) => v.live.push((name, None)),
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(h: Holder, age: i64) -> Lock {
        let now = crate::now_unix();
        Lock {
            kind: LockKind::Backup,
            holder: h,
            created: now - age,
            refreshed: now - age,
            nonce: String::new(),
        }
    }

    #[test]
    fn only_provably_dead_or_old_locks_are_stale() {
        let now = crate::now_unix();
        let me = this_holder().clone();
        // Alive: this very process.
        assert!(!is_stale(&lock(me.clone(), 2), now));
        // Same host name, another machine: fresh, so live, whatever its pid.
        let other = Holder {
            machine_id: "another machine".into(),
            pid: 999_999,
            ..me.clone()
        };
        assert!(!is_stale(&lock(other.clone(), 2), now));
        // Same machine, another pid namespace (a container, unshare --pid): live.
        let container = Holder {
            pid_ns: me.pid_ns + 1,
            pid: 999_999,
            ..me.clone()
        };
        assert!(!is_stale(&lock(container, 2), now));
        // Same machine, boot and namespace, process gone: provably dead.
        let dead = Holder {
            pid: 999_999,
            ..me.clone()
        };
        assert!(is_stale(&lock(dead, 2), now));
        // Our pid, but another start time: the pid was reused; the holder is dead.
        let reused = Holder {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(is_stale(&lock(reused, 2), now));
        // Nothing known about the holder: only age decides.
        assert!(!is_stale(&lock(Holder::default(), 2), now));
        assert!(is_stale(&lock(other.clone(), STALE_SECS + 5), now));
        // Dated in the future, but written long ago by the store's clock: stale.
        let mut future = lock(other.clone(), 0);
        future.refreshed = now + 100 * 365 * 86400;
        assert!(!is_stale_stored(&future, now, now));
        assert!(is_stale_stored(&future, now - STALE_SECS - 5, now));
    }
}
