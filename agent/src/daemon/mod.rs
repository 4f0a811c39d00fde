//! The `coop agent` daemon: scheduled jobs, replication to peers, status.
//!
//! - [`jobs`]: one job run (hooks, backup once or per member, retention).
//! - [`peers`]: replication to each peer, with backoff.
//! - [`schedule`]: when jobs are due.
//! - [`metrics`]: the Prometheus textfile. [`healthcheck`]: the pings.
//! - [`energy`]: what each job run used (RAPL or an estimate), recorded in the history.
//!
//! Jobs and peer synchronisations run on their own threads, so a slow or unreachable peer
//! never blocks a backup or another peer. The daemon calls the same engine functions as the
//! CLI; its settings are resolved once ([`crate::settings`]).

mod archive;
mod drill;
pub mod energy;
pub mod healthcheck;
pub mod jobs;
mod metrics;
pub mod notify;
pub mod peers;
pub mod schedule;
mod sources;

pub use jobs::{JobError, JobOutcome, MemberOutcome};
pub use peers::PeerOutcome;

use crate::error::{Error, Result};
use crate::history::{History, JobRun};
use crate::keys::Access;
use crate::progress::NoProgress;
use crate::replicate::{self, ReplicateOptions};
use crate::repo::{OpenOptions, Repo};
use crate::settings::{JobSettings, Settings};
use crate::store::Store;
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Agent {
    pub cfg: Settings,
    pub repo: Repo,
    pub access: Access,
    started: i64,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    #[serde(serialize_with = "last_run")]
    pub last_run: Option<JobRun>,
    /// RFC 3339, UTC.
    pub next_run: Option<String>,
    pub successful_runs: u64,
    /// Who looks after the job ("Name <contact>").
    pub caretaker: Option<String>,
}

/// A job's last run, as status shows it (the job is named already).
fn last_run<S: serde::Serializer>(
    run: &Option<JobRun>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(Serialize)]
    struct Run<'a> {
        started: String,
        finished: Option<String>,
        status: &'a str,
        snapshot: &'a Option<String>,
        message: &'a str,
        bytes_added: u64,
    }
    run.as_ref()
        .map(|r| Run {
            started: rfc3339(r.started),
            finished: r.finished.map(rfc3339),
            status: &r.status,
            snapshot: &r.snapshot,
            message: &r.message,
            bytes_added: r.bytes_added,
        })
        .serialize(s)
}

#[derive(Debug, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub repo: String,
    pub reachable: bool,
    /// Objects and bytes the peer lacks (live when reachable, else as last recorded; `None`
    /// when unknown).
    pub lag_objects: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub last_ok: Option<String>,
    pub failures: u32,
    pub next_retry: Option<String>,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub site: String,
    pub repo: String,
    pub jobs: Vec<JobStatus>,
    pub peers: Vec<PeerStatus>,
}

impl Status {
    /// Whether anything needs attention: a job whose last run failed, or a peer not reached.
    pub fn healthy(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| j.last_run.as_ref().is_none_or(|r| r.status != "failed"))
            && self.peers.iter().all(|p| p.failures == 0)
    }
}

/// The time the agent records runs at (see [`crate::history::now`]).
pub(crate) use crate::history::now;

/// RFC 3339 in UTC, for status output.
pub use crate::unix_rfc3339 as rfc3339;

/// A per-job lock file so that one job never runs twice at once (also across processes).
pub(crate) struct JobLock(PathBuf);

impl JobLock {
    pub(crate) fn take(path: PathBuf) -> Result<Self> {
        use std::io::Write;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(JobLock(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path).unwrap_or_default();
                    let alive = !pid.trim().is_empty()
                        && std::path::Path::new(&format!("/proc/{}", pid.trim())).exists();
                    if alive {
                        return Err(Error::Conflict {
                            what: format!(
                                "the job is already running (pid {}); not starting it twice",
                                pid.trim()
                            ),
                        });
                    }
                    let _ = std::fs::remove_file(&path); // stale: its process is gone
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::Conflict {
            what: format!("cannot take job lock {}", path.display()),
        })
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Agent {
    /// Opens the site's repository with the configured key.
    pub fn new(cfg: Settings) -> Result<Self> {
        let repo = Repo::open_with(
            &cfg.site.repo,
            &OpenOptions {
                s3: cfg.site.s3.clone(),
                cache_dir: Some(cfg.site.cache_dir.clone()),
                // The agent lists snapshots only to back up and witness; freshness is a
                // reader's check.
                freshness: None,
            },
        )?;
        let access = Access::load(&cfg.site.key)?;
        Ok(Self {
            cfg,
            repo,
            access,
            started: now(),
        })
    }

    pub fn history(&self) -> Result<History> {
        History::open(&self.cfg.site.cache_dir, &self.repo.config.repo_id)
    }

    fn job(&self, name: &str) -> Result<&JobSettings> {
        self.cfg.job(name).ok_or_else(|| Error::NotFound {
            what: format!(
                "job {name:?} (the config has: {})",
                self.cfg
                    .jobs
                    .iter()
                    .map(|j| j.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// `--once`: run the job, then replicate to every peer once (also when only some members
    /// of a per-member job succeeded: what was backed up is replicated).
    pub fn run_once(&self, name: &str) -> Result<JobOutcome> {
        let mut out = self.run_job(name)?;
        if out.ok || out.members.iter().any(|m| m.ok) {
            out.peers = self.sync_all();
        }
        // A log fork a peer sync found is an alarm like a witness's.
        let mut alarms: Vec<String> = out
            .peers
            .iter()
            .flat_map(|p| p.log_forks.iter().map(|f| format!("peer {}: {f}", p.peer)))
            .collect();
        alarms.extend(self.gossip_peers());
        alarms.extend(self.witness_all());
        out.witness_alarms = alarms;
        Ok(out)
    }

    /// The admin keys of this site's own repository.
    pub fn own_admin_keys(&self) -> Vec<[u8; 32]> {
        match &self.access {
            Access::Writer(wk) => wk.admin_keys.clone(),
            Access::Identity(..) => crate::tenant::keys(&self.repo, &self.access, "coop")
                .map(|k| k.admin_keys)
                .unwrap_or_default(),
        }
    }

    /// Witnesses the access logs of every configured copy of another site's repository;
    /// returns the alarms (rollbacks, forks), which are also logged as errors.
    pub fn witness_all(&self) -> Vec<String> {
        let mut alarms: Vec<String> = Vec::new();
        let me = match &self.access {
            Access::Writer(wk) => crate::log::Actor::from_writer_key(wk),
            Access::Identity(..) => match crate::tenant::keys(&self.repo, &self.access, "coop") {
                Ok(k) => crate::log::Actor::of(&k),
                Err(e) => {
                    if !self.cfg.witnesses.is_empty() {
                        alarms.push(format!("cannot witness: {}", crate::error::chain(&e)));
                    }
                    return alarms;
                }
            },
        };
        let own_admins = self.own_admin_keys();
        for w in &self.cfg.witnesses {
            let res = (|| -> Result<crate::log::WitnessReport> {
                let store = crate::store::Store::open_with(&w.repo, false, &w.s3)?;
                let mut repo = Repo::open_store(store)?;
                repo.cache_dir = Some(self.cfg.site.cache_dir.clone());
                let admins = crate::log::trusted_admin_keys(
                    &repo,
                    w.admin_key,
                    Some((&self.repo.config.repo_id, &own_admins)),
                )?;
                let trusted = crate::writers::log_trust(&repo, &admins)?;
                // The other copies of this repository first: what they hold comes here (and
                // what this copy holds goes there), and two branches are a fork.
                for (url, s3) in &w.copies {
                    let other = crate::store::Store::open_with(url, false, s3)
                        .map_err(crate::error::Error::from)
                        .and_then(Repo::open_store)
                        .map(|mut r| {
                            r.cache_dir = Some(self.cfg.site.cache_dir.clone());
                            r
                        });
                    match other.and_then(|o| crate::log::gossip(&repo, &o, &trusted, true)) {
                        Ok(g) => {
                            for n in g.notes {
                                tracing::warn!("{} and {url}: {n}", w.repo);
                            }
                            for f in g.forks {
                                tracing::error!("witness alarm at {} and {url}: {f}", w.repo);
                                alarms.push(format!("{} and {url}: {f}", w.repo));
                            }
                        }
                        Err(e) => tracing::warn!(
                            "cannot compare {} with the copy at {url}: {}",
                            w.repo,
                            crate::error::chain(&e)
                        ),
                    }
                }
                crate::log::witness(&repo, &me, &trusted)
            })();
            match res {
                Ok(r) => {
                    for (o, s) in &r.cosigned {
                        tracing::info!("witnessed {o} at {s} entries");
                    }
                    for a in r.alarms {
                        tracing::error!("witness alarm at {}: {a}", w.repo);
                        alarms.push(format!("{}: {a}", w.repo));
                    }
                }
                Err(e) => tracing::warn!("cannot witness {}: {}", w.repo, crate::error::chain(&e)),
            }
        }
        alarms
    }

    /// When the job is next due: the first scheduled time after its last run (or after the
    /// agent started), plus jitter. A time in the past means "run now, once".
    pub fn next_due(&self, job: &JobSettings, history: &History) -> Option<i64> {
        let last = history
            .last_run(&job.name)
            .ok()
            .flatten()
            .map(|r| r.started);
        schedule::next_due(
            &job.cron,
            &job.name,
            last.unwrap_or(self.started),
            self.cfg.site.jitter,
        )
    }

    /// Runs until `stop` is set: scheduled jobs and peer catch-up.
    pub fn run(&self, stop: &AtomicBool) -> Result<()> {
        let running_jobs: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        let running_peers: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
        let history = self.history()?;
        tracing::info!(
            "coop agent for site {} started with {} job(s), {} peer(s)",
            self.cfg.site.name,
            self.cfg.jobs.len(),
            self.cfg.peers.len()
        );
        let mut last_witness: Option<std::time::Instant> = None;
        let mut last_log_sync: Option<std::time::Instant> = None;
        let gossiping = AtomicBool::new(false);
        std::thread::scope(|s| {
            while !stop.load(Ordering::Relaxed) {
                let t = now();
                self.start_due_jobs(s, &running_jobs, &history, t);
                // Access-log growth travels to the peers every log_sync_interval (and their
                // witnesses' cosignatures come back), independent of the backups.
                let log_round = last_log_sync.is_none_or(|w: std::time::Instant| {
                    w.elapsed() >= self.cfg.site.log_sync_interval
                });
                if log_round {
                    last_log_sync = Some(std::time::Instant::now());
                }
                self.start_due_peers(s, &running_peers, &history, t, log_round);
                // The peers' copies of this site's logs compared with each other, and
                // carried between them, on the same interval (on its own thread: a slow
                // peer delays no job).
                if log_round && !gossiping.swap(true, Ordering::Relaxed) {
                    let g = &gossiping;
                    s.spawn(move || {
                        let _ = self.gossip_peers();
                        g.store(false, Ordering::Relaxed);
                    });
                }
                // Other sites' logs held here: witnessed every log_sync_interval.
                if !self.cfg.witnesses.is_empty()
                    && last_witness.is_none_or(|w: std::time::Instant| {
                        w.elapsed() >= self.cfg.site.log_sync_interval
                    })
                {
                    last_witness = Some(std::time::Instant::now());
                    let _ = self.witness_all();
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Ok(())
    }

    /// Starts each job that is due and not running yet, on a thread of its own in `s`; the
    /// job is in `running` until it ends.
    fn start_due_jobs<'scope, 'env>(
        &'env self,
        s: &'scope std::thread::Scope<'scope, 'env>,
        running: &'env Mutex<HashSet<String>>,
        history: &History,
        t: i64,
    ) {
        for job in &self.cfg.jobs {
            if running.lock().expect("lock").contains(&job.name) {
                continue;
            }
            if self.next_due(job, history).is_some_and(|due| due <= t) {
                running.lock().expect("lock").insert(job.name.clone());
                s.spawn(move || {
                    match self.run_job(&job.name) {
                        Ok(o) if o.ok => tracing::info!(
                            "job {} done: snapshot {}",
                            job.name,
                            o.snapshot.unwrap_or_default()
                        ),
                        Ok(o) => tracing::warn!("job {} failed: {}", job.name, o.message),
                        Err(e) => tracing::warn!(
                            "job {} could not run: {}",
                            job.name,
                            crate::error::chain(&e)
                        ),
                    }
                    running.lock().expect("lock").remove(&job.name);
                });
            }
        }
    }

    /// Starts, for each peer not being synced yet and whose retry time has come, on a thread
    /// of its own in `s`: the access log carried to it on a `log_round` (when it has no
    /// backups to catch up on), else its catch-up once it is dirty; the peer is in `running`
    /// until that ends.
    fn start_due_peers<'scope, 'env>(
        &'env self,
        s: &'scope std::thread::Scope<'scope, 'env>,
        running: &'env Mutex<HashSet<String>>,
        history: &History,
        t: i64,
        log_round: bool,
    ) {
        for p in &self.cfg.peers {
            if running.lock().expect("lock").contains(&p.name) {
                continue;
            }
            let st = history.peer(&p.name).unwrap_or_default();
            let due = st.next_retry.is_none_or(|r| r <= t);
            if log_round && due && !st.dirty {
                running.lock().expect("lock").insert(p.name.clone());
                s.spawn(move || {
                    if let Some(o) = self.sync_peer_log(p) {
                        if o.ok {
                            tracing::info!(
                                "access log carried to peer {} ({} objects copied)",
                                p.name,
                                o.copied_objects
                            );
                        }
                    }
                    running.lock().expect("lock").remove(&p.name);
                });
                continue;
            }
            if st.dirty && due {
                running.lock().expect("lock").insert(p.name.clone());
                s.spawn(move || {
                    let o = self.sync_peer(p);
                    if o.ok {
                        tracing::info!(
                            "peer {} up to date ({} objects copied)",
                            p.name,
                            o.copied_objects
                        );
                    }
                    running.lock().expect("lock").remove(&p.name);
                });
            }
        }
    }

    /// Each job's last and next run, each peer's lag.
    pub fn status(&self, live: bool) -> Result<Status> {
        let history = self.history()?;
        let mut jobs = Vec::new();
        for j in &self.cfg.jobs {
            jobs.push(JobStatus {
                name: j.name.clone(),
                schedule: j.schedule.clone(),
                last_run: history.last_run(&j.name)?,
                next_run: self.next_due(j, &history).map(|t| rfc3339(t.max(now()))),
                successful_runs: history.runs(&j.name)?,
                caretaker: j.caretaker.as_ref().map(|c| c.to_string()),
            });
        }
        let mut peers = Vec::new();
        for p in &self.cfg.peers {
            let st = history.peer(&p.name)?;
            let mut ps = PeerStatus {
                name: p.name.clone(),
                repo: p.repo.clone(),
                reachable: false,
                lag_objects: st.lag_objects,
                lag_bytes: st.lag_bytes,
                last_ok: st.last_ok.map(rfc3339),
                failures: st.failures,
                next_retry: st.next_retry.map(rfc3339),
                message: st.message.clone(),
            };
            if live {
                let check = |to: &Store| {
                    replicate::replicate(
                        &self.repo.store,
                        to,
                        &ReplicateOptions {
                            check_only: true,
                            ..Default::default()
                        },
                        &NoProgress,
                    )
                };
                let res = match Store::open_with(&p.repo, false, &p.s3) {
                    Ok(to) => check(&to),
                    // An empty target: everything is missing.
                    Err(e) if e.is_not_found() => Store::open("memory:", true)
                        .map_err(Error::from)
                        .and_then(|m| check(&m)),
                    Err(e) => Err(e.into()),
                };
                match res {
                    Ok(r) => {
                        ps.reachable = true;
                        ps.lag_objects = Some(r.missing_objects);
                        ps.lag_bytes = Some(r.missing_bytes);
                        if r.missing_objects == 0 {
                            ps.message.clear();
                        }
                    }
                    Err(e) => {
                        ps.lag_objects = None;
                        ps.lag_bytes = None;
                        ps.message = format!("unreachable: {}", crate::error::chain(&e));
                    }
                }
            }
            peers.push(ps);
        }
        Ok(Status {
            site: self.cfg.site.name.clone(),
            repo: self.cfg.site.repo.clone(),
            jobs,
            peers,
        })
    }
}

/// Sets `stop` on SIGINT or SIGTERM.
pub fn stop_on_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        crate::store::runtime().block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(t) => t,
                    Err(_) => return,
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        stop.store(true, Ordering::Relaxed);
    });
}
