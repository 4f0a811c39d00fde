//! Locks: a backup announces itself so that prune never deletes what it may reference.
//!
//! A lock is a control object under `locks/<tag>/`. Its holder rewrites it every
//! [`REFRESH_SECS`] (a new object, then the old one is deleted) and deletes it when done. A
//! lock not refreshed for [`STALE_SECS`] belongs to a process that died; it is ignored (and
//! reported) by prune, as is a lock taken on this host by a process that no longer exists.
//! A lock that cannot be read is treated as live.

use crate::error::Result;
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::control::{Lock, LockKind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const REFRESH_SECS: i64 = 300;
pub const STALE_SECS: i64 = 1800;

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A held lock; released on drop.
pub struct LockGuard {
    repo: Repo,
    path: Arc<Mutex<String>>,
    /// Dropped to stop the refresh thread at once (it waits on the other end).
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn lock_body(kind: LockKind, created: i64) -> Lock {
    Lock {
        kind,
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        pid: std::process::id(),
        created,
        refreshed: now(),
        nonce: hex::encode(coop_formats::random_bytes::<8>()),
    }
}

/// Stores a (new or refreshed) lock object; returns its path. Locks are not fsynced: the
/// process holding one dies with the machine, and a lock only matters while it lives.
fn write_lock(
    repo: &Repo,
    index_key: &[u8; 32],
    tag: coop_formats::envelope::TenantTag,
    kind: LockKind,
    created: i64,
) -> Result<String> {
    use coop_formats::control::Control;
    let sealed = lock_body(kind, created).seal(index_key, tag);
    let path = crate::repo::lock_path(&tag, &coop_formats::id::Id::of_stored(&sealed));
    repo.store.put_transient(&path, sealed)?;
    Ok(path)
}

/// Takes a lock of `kind` and keeps it fresh until the guard is dropped.
pub fn acquire(repo: &Repo, keys: &TenantKeys, kind: LockKind) -> Result<LockGuard> {
    let created = now();
    let (index_key, tag) = (keys.index_key, keys.tag);
    let path = Arc::new(Mutex::new(write_lock(
        repo, &index_key, tag, kind, created,
    )?));
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (r, p) = (repo.clone(), Arc::clone(&path));
    let thread = std::thread::Builder::new()
        .name("coop-lock".into())
        .spawn(move || {
            // Wakes every REFRESH_SECS, or at once when the guard is dropped.
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(Duration::from_secs(REFRESH_SECS as u64))
            {
                if let Ok(new_path) = write_lock(&r, &index_key, tag, kind, created) {
                    let old = std::mem::replace(&mut *p.lock().expect("lock"), new_path);
                    let _ = r.store.delete(&old);
                } else {
                    tracing::warn!("could not refresh the repository lock; will retry");
                }
            }
        })
        .expect("cannot start lock thread");
    Ok(LockGuard {
        repo: repo.clone(),
        path,
        stop: Some(stop),
        thread: Some(thread),
    })
}

impl LockGuard {
    pub fn path(&self) -> String {
        self.path.lock().expect("lock").clone()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = self.repo.store.delete(&self.path());
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A lock is stale if it was not refreshed for [`STALE_SECS`], or if it was taken on this
/// host by a process that no longer exists (it was killed).
fn is_stale(l: &Lock, now: i64) -> bool {
    now - l.refreshed > STALE_SECS
        || (!l.host.is_empty()
            && l.host == hostname()
            && !std::path::Path::new(&format!("/proc/{}", l.pid)).exists())
}

/// Locks other than `own` that are live (or unreadable), and stale ones.
pub struct LockView {
    pub live: Vec<(String, Option<Lock>)>,
    pub stale: Vec<(String, Lock)>,
}

pub fn view(repo: &Repo, keys: &TenantKeys, own: Option<&str>) -> Result<LockView> {
    let mut v = LockView {
        live: Vec::new(),
        stale: Vec::new(),
    };
    let t = now();
    for (path, lock) in repo.list_control::<Lock>(keys, "locks")? {
        if Some(path.as_str()) == own {
            continue;
        }
        match lock {
            Ok(l) if is_stale(&l, t) => v.stale.push((path, l)),
            Ok(l) => v.live.push((path, Some(l))),
            Err(_) => v.live.push((path, None)),
        }
    }
    Ok(v)
}
