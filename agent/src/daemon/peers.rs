//! Replication to peers: each on its own thread, a failed one retried with exponential
//! backoff (capped by its `retry_max`), caught up when it returns.

use super::Agent;
use crate::error::{ErrorKind, Result};
use crate::history::PeerState;
use crate::progress::NoProgress;
use crate::replicate::{self, ReplicateOptions, ReplicateReport};
use crate::settings::PeerSettings;
use crate::store::Store;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct PeerOutcome {
    pub peer: String,
    pub ok: bool,
    pub copied_objects: u64,
    pub copied_bytes: u64,
    pub message: String,
    /// The kind of failure (store unreachable, damage refused), if it failed.
    pub kind: Option<ErrorKind>,
    /// Access-log forks this sync found between this site's store and the peer: alarms.
    pub log_forks: Vec<String>,
}

impl Agent {
    fn peer_store(&self, p: &PeerSettings) -> Result<Store> {
        Ok(Store::open_with(&p.repo, true, &p.s3)?)
    }

    /// Replicates to one peer now and records the result (with backoff on failure).
    pub fn sync_peer(&self, p: &PeerSettings) -> PeerOutcome {
        let mut out = PeerOutcome {
            peer: p.name.clone(),
            ok: false,
            copied_objects: 0,
            copied_bytes: 0,
            message: String::new(),
            kind: None,
            log_forks: Vec::new(),
        };
        let history = match self.history() {
            Ok(h) => h,
            Err(e) => {
                out.message = crate::error::chain(&e);
                out.kind = Some(e.kind());
                return out;
            }
        };
        let mut st = history.peer(&p.name).unwrap_or_default();
        st.peer = p.name.clone();
        st.last_attempt = Some(super::now());
        let res: Result<ReplicateReport> = self.peer_store(p).and_then(|to| {
            replicate::replicate(
                &self.repo.store,
                &to,
                &ReplicateOptions {
                    check_only: false,
                    limit: p.upload_limit,
                    parallel: 4,
                    // Peers follow this site's logged deletions after a day.
                    deletions: Some(replicate::DeletionPolicy {
                        grace: std::time::Duration::from_secs(86_400),
                    }),
                    admin_keys: Some(self.own_admin_keys()),
                    cache_dir: self.repo.cache_dir().map(|c| c.to_path_buf()),
                },
                &NoProgress,
            )
        });
        match res {
            Ok(r) if r.ok() => {
                st.last_ok = Some(super::now());
                st.failures = 0;
                st.next_retry = None;
                st.dirty = false;
                st.lag_objects = Some(0);
                st.lag_bytes = Some(0);
                st.message = String::new();
                out.ok = true;
                out.copied_objects = r.copied_objects;
                out.copied_bytes = r.copied_bytes;
            }
            Ok(r) => {
                out.log_forks = r.log_forks.clone();
                for f in &r.log_forks {
                    tracing::error!("log fork between this site and peer {}: {f}", p.name);
                }
                out.message = r
                    .log_forks
                    .first()
                    .or(r.refused.first())
                    .or(r.failed.first())
                    .cloned()
                    .unwrap_or_else(|| "snapshots held back".into());
                out.kind = Some(if r.refused.is_empty() && r.log_forks.is_empty() {
                    ErrorKind::Store
                } else {
                    ErrorKind::Integrity
                });
                out.copied_objects = r.copied_objects;
                out.copied_bytes = r.copied_bytes;
                self.failed_peer(p, &mut st, &out.message);
            }
            Err(e) => {
                out.message = crate::error::chain(&e);
                out.kind = Some(e.kind());
                // The lag is unknown while the peer cannot be reached.
                st.lag_objects = None;
                st.lag_bytes = None;
                self.failed_peer(p, &mut st, &out.message);
            }
        }
        if let Err(e) = history.save_peer(&st) {
            tracing::warn!("cannot record peer state: {e}");
        }
        self.write_metrics();
        out
    }

    fn failed_peer(&self, p: &PeerSettings, st: &mut PeerState, msg: &str) {
        st.failures += 1;
        st.dirty = true;
        let backoff = Duration::from_secs(1u64 << st.failures.min(16)).min(p.retry_max);
        st.next_retry = Some(super::now() + backoff.as_secs() as i64);
        st.message = msg.to_string();
        tracing::warn!(
            "peer {} failed ({} in a row), retrying in {}s: {msg}",
            p.name,
            st.failures,
            backoff.as_secs()
        );
    }

    /// Whether the access logs here and at peer `p` differ in a way a replication settles:
    /// a log object this site lists that the peer lacks (an entry, a checkpoint, a
    /// cosignature), or a cosignature the peer lists that this site lacks (a witness there
    /// cosigned, and the log's writer here waits for it). Two listings of `log/`, nothing
    /// read; names the two sides hold with other bytes (forks) and junk count for nothing,
    /// so they do not make every round a replication.
    pub fn log_behind(&self, p: &PeerSettings) -> Result<bool> {
        let names = |s: &Store| -> Result<HashSet<String>> {
            Ok(s.list("log")?
                .into_iter()
                .filter(|l| crate::log::is_log_object(&l.path, l.size))
                .map(|l| l.path)
                .collect())
        };
        let here = names(&self.repo.store)?;
        let there = names(&self.peer_store(p)?)?;
        let is_cosig = |p: &str| p.split('/').nth(2) == Some("cosignature");
        Ok(here.iter().any(|n| !there.contains(n))
            || there.iter().any(|n| is_cosig(n) && !here.contains(n)))
    }

    /// The daemon's log round for one peer: replicates when [`Self::log_behind`] says so, so
    /// that a recovery request or an access reaches the witnesses (and their cosignatures
    /// come back) within a `log_sync_interval` or two, not at the next backup. `None` when
    /// there was nothing to carry.
    pub fn sync_peer_log(&self, p: &PeerSettings) -> Option<PeerOutcome> {
        match self.log_behind(p) {
            Ok(true) => Some(self.sync_peer(p)),
            Ok(false) => None,
            Err(e) => {
                tracing::debug!(
                    "cannot compare the access logs with peer {}: {}",
                    p.name,
                    crate::error::chain(&e)
                );
                None
            }
        }
    }

    /// Compares the access logs of every two peers (this site's replicas at other sites) and
    /// carries what one lacks to the other (SPEC 24.10): a cosignature made at one site
    /// reaches the others without passing through this site's own store, which may be the
    /// lying one, and two peers shown two branches of a log are a fork. Returns the fork
    /// alarms (also logged as errors); unreachable peers are skipped.
    pub fn gossip_peers(&self) -> Vec<String> {
        let mut alarms = Vec::new();
        if self.cfg.peers.len() < 2 {
            return alarms;
        }
        let trusted = match crate::writers::log_trust(&self.repo, &self.own_admin_keys()) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(
                    "cannot compare the peers' logs: {}",
                    crate::error::chain(&e)
                );
                return alarms;
            }
        };
        let open = |p: &PeerSettings| -> Result<crate::repo::Repo> {
            let mut r = crate::repo::Repo::open_store(self.peer_store(p)?)?;
            r.cache_dir = self.repo.cache_dir.clone();
            Ok(r)
        };
        let repos: Vec<(&PeerSettings, crate::repo::Repo)> = self
            .cfg
            .peers
            .iter()
            .filter_map(|p| match open(p) {
                Ok(r) if r.config.repo_id == self.repo.config.repo_id => Some((p, r)),
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!("peer {} not compared: {}", p.name, crate::error::chain(&e));
                    None
                }
            })
            .collect();
        for (i, (pa, a)) in repos.iter().enumerate() {
            for (pb, b) in &repos[i + 1..] {
                match crate::log::gossip(a, b, &trusted, true) {
                    Ok(g) => {
                        if g.copied > 0 {
                            tracing::info!(
                                "access logs carried between peers {} and {} ({} objects, {} \
                                 cosignatures)",
                                pa.name,
                                pb.name,
                                g.copied,
                                g.cosignatures
                            );
                        }
                        for n in g.notes {
                            tracing::warn!("peers {} and {}: {n}", pa.name, pb.name);
                        }
                        for f in g.forks {
                            tracing::error!(
                                "log fork between peers {} and {}: {f}",
                                pa.name,
                                pb.name
                            );
                            alarms.push(format!("peers {} and {}: {f}", pa.name, pb.name));
                        }
                    }
                    Err(e) => tracing::warn!(
                        "cannot compare the logs of peers {} and {}: {}",
                        pa.name,
                        pb.name,
                        crate::error::chain(&e)
                    ),
                }
            }
        }
        alarms
    }

    /// Replicates to every peer, each on its own thread; one peer's outage blocks no other.
    pub fn sync_all(&self) -> Vec<PeerOutcome> {
        std::thread::scope(|s| {
            let hs: Vec<_> = self
                .cfg
                .peers
                .iter()
                .map(|p| s.spawn(move || self.sync_peer(p)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("peer thread"))
                .collect()
        })
    }
}
