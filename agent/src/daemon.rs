//! The `coop agent` daemon: scheduled jobs, hooks, retention, replication to peers,
//! healthcheck pings and a Prometheus textfile.
//!
//! Jobs and peer synchronisations run on their own threads, so a slow or unreachable peer
//! never blocks a backup or another peer. A peer that fails is retried with exponential
//! backoff (capped by its `retry_max`) and caught up when it returns. A job whose scheduled
//! time passed while the machine was off runs once, not once per missed slot.

use crate::agent_config::{self, AgentConfig, Job, Peer};
use crate::backup::{self, BackupOptions};
use crate::error::{Error, Result};
use crate::history::{History, JobRun, PeerState};
use crate::keys::{self, Access};
use crate::progress::NoProgress;
use crate::replicate::{self, ReplicateOptions, ReplicateReport};
use crate::repo::Repo;
use crate::store::Store;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Agent {
    pub cfg: AgentConfig,
    pub repo: Repo,
    pub access: Access,
    pub cache_dir: PathBuf,
    started: i64,
}

/// What one job run did.
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub job: String,
    pub ok: bool,
    pub snapshot: Option<String>,
    pub message: String,
    pub bytes_added: u64,
    pub forgotten: usize,
    pub peers: Vec<PeerOutcome>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerOutcome {
    pub peer: String,
    pub ok: bool,
    pub copied_objects: u64,
    pub copied_bytes: u64,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub name: String,
    pub schedule: String,
    pub last_run: Option<JobRun>,
    pub next_run: Option<String>,
    pub successful_runs: u64,
}

#[derive(Debug, Serialize)]
pub struct PeerStatus {
    pub name: String,
    pub repo: String,
    pub reachable: bool,
    /// Objects and bytes the peer lacks (live when reachable, else as last recorded).
    pub lag_objects: u64,
    pub lag_bytes: u64,
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

fn now() -> i64 {
    Utc::now().timestamp()
}

fn rfc3339(t: i64) -> String {
    Utc.timestamp_opt(t, 0)
        .single()
        .map(|d| d.to_rfc3339())
        .unwrap_or_default()
}

fn sh(cmd: &str) -> std::result::Result<(), String> {
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{cmd}` failed ({s})")),
        Err(e) => Err(format!("`{cmd}` could not start: {e}")),
    }
}

/// A per-job lock file so that one job never runs twice at once (also across processes).
struct JobLock(PathBuf);

impl JobLock {
    fn take(path: PathBuf) -> Result<Self> {
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
                        return Err(Error::Usage {
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
        Err(Error::Usage {
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
    pub fn new(cfg: AgentConfig) -> Result<Self> {
        let repo = match Store::open_with(cfg.site.repo.get_ref(), false, &cfg.site.s3) {
            Ok(s) => Repo::open_store(s)?,
            Err(e) if e.is_not_found() => {
                return Err(Error::RepoNotFound {
                    url: cfg.site.repo.get_ref().clone(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let access = match (&cfg.site.writer_key, &cfg.site.identity_file) {
            (Some(w), _) => Access::Writer(Arc::new(keys::load_writer_key(w.get_ref())?)),
            (None, Some(i)) => Access::Identity(Arc::new(keys::load_identities(i.get_ref())?)),
            (None, None) => {
                return Err(Error::Usage {
                    what: "[site] needs identity_file or writer_key".into(),
                })
            }
        };
        let cache_dir = cfg
            .site
            .cache_dir
            .clone()
            .or_else(crate::catalog::default_cache_dir)
            .unwrap_or_else(|| PathBuf::from("/var/cache/coop"));
        let mut repo = repo;
        repo.cache_dir = Some(cache_dir.clone());
        Ok(Self {
            cfg,
            repo,
            access,
            cache_dir,
            started: now(),
        })
    }

    pub fn history(&self) -> Result<History> {
        History::open(&self.cache_dir, &self.repo.config.repo_id)
    }

    fn job(&self, name: &str) -> Result<&Job> {
        self.cfg
            .jobs
            .iter()
            .find(|j| j.name == name)
            .ok_or_else(|| Error::NotFound {
                what: format!("job {name:?}"),
                hint: format!(
                    " (the config has: {})",
                    self.cfg
                        .jobs
                        .iter()
                        .map(|j| j.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    fn ping(&self, job: &Job, suffix: &str, body: &str) {
        let Some(url) = job
            .healthcheck_url
            .as_ref()
            .or(self.cfg.site.healthcheck_url.as_ref())
        else {
            return;
        };
        let url = format!("{}{suffix}", url.trim_end_matches('/'));
        let body = body.to_string();
        let res = crate::store::runtime().block_on(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?;
            client
                .post(&url)
                .body(body)
                .send()
                .await?
                .error_for_status()
        });
        if let Err(e) = res {
            tracing::warn!("healthcheck ping failed: {e}");
        }
    }

    /// Runs one job now: hooks, backup, retention. Peers are marked for replication.
    pub fn run_job(&self, name: &str) -> Result<JobOutcome> {
        let job = self.job(name)?;
        let _lock = JobLock::take(
            self.cache_dir
                .join(self.repo.config.repo_id.to_hex())
                .join(format!("job-{name}.lock")),
        )?;
        let history = self.history()?;
        let run_id = history.start_job(name, now())?;
        self.ping(job, "/start", "");
        let mut out = JobOutcome {
            job: name.into(),
            ok: false,
            snapshot: None,
            message: String::new(),
            bytes_added: 0,
            forgotten: 0,
            peers: vec![],
        };
        let result = (|| -> std::result::Result<(), String> {
            for h in &job.before {
                sh(h).map_err(|e| format!("before hook {e}"))?;
            }
            match &job.members {
                None => {
                    self.backup_target(job, &job.tenant, &job.paths, &job.commands, None, &mut out)
                }
                Some(sel) => self.backup_members(job, sel, &mut out),
            }
        })();
        // After hooks run whatever happened (e.g. restart the service the before hook stopped).
        let mut after_err = None;
        for h in &job.after {
            if let Err(e) = sh(h) {
                after_err.get_or_insert(format!("after hook {e}"));
            }
        }
        match (result, after_err) {
            (Ok(()), None) => out.ok = true,
            (Err(e), _) | (Ok(()), Some(e)) => out.message = e,
        }
        history.finish_job(
            run_id,
            now(),
            out.ok,
            out.snapshot.as_deref(),
            out.message.trim(),
            out.bytes_added,
        )?;
        if out.ok {
            history.mark_dirty(
                &self
                    .cfg
                    .peers
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>(),
            )?;
        }
        self.ping(job, if out.ok { "" } else { "/fail" }, &out.message);
        self.write_metrics();
        Ok(out)
    }

    /// One backup (and its retention) into one tenant.
    fn backup_target(
        &self,
        job: &Job,
        tenant: &str,
        paths: &[PathBuf],
        commands: &[crate::backup::SourceCommand],
        quota: Option<u64>,
        out: &mut JobOutcome,
    ) -> std::result::Result<(), String> {
        let keys = self
            .repo
            .tenant_keys(&self.access, tenant)
            .map_err(|e| e.to_string())?;
        let opts = BackupOptions {
            paths: paths.to_vec(),
            excludes: job.exclude.clone(),
            one_file_system: job.one_file_system,
            exclude_caches: true,
            commands: commands.to_vec(),
            tags: job
                .tags
                .iter()
                .cloned()
                .chain([format!("job:{}", job.name)])
                .collect(),
            host: self.cfg.site.name.clone(),
            cache_dir: Some(self.cache_dir.clone()),
            manifest: tenant.starts_with("member/"),
            quota,
            ..Default::default()
        };
        let b = backup::backup(&self.repo, &keys, &opts, &NoProgress).map_err(|e| e.to_string())?;
        out.snapshot = Some(b.id.to_hex());
        out.bytes_added += b.snapshot.summary.bytes_added;
        if !b.warnings.is_empty() {
            out.message.push_str(&format!(
                "{}: {} warning(s): {}; ",
                tenant,
                b.warnings.len(),
                b.warnings[0]
            ));
        }
        let Some(r) = &job.retention else {
            return Ok(());
        };
        if keys.reader.is_none() {
            out.message.push_str("retention skipped: a writer key cannot read snapshots (run forget where an identity is); ");
            return Ok(());
        }
        let policy = crate::forget::Policy {
            last: r.keep_last,
            hourly: r.keep_hourly,
            daily: r.keep_daily,
            weekly: r.keep_weekly,
            monthly: r.keep_monthly,
            yearly: r.keep_yearly,
            within: r
                .keep_within
                .as_deref()
                .map(humantime::parse_duration)
                .transpose()
                .map_err(|e| e.to_string())?,
            tags: r.keep_tags.clone(),
        };
        let d = crate::forget::forget(
            &self.repo,
            &keys,
            &policy,
            crate::forget::GroupBy::default(),
            false,
        )
        .map_err(|e| format!("retention: {e}"))?;
        let forgotten = d.iter().filter(|d| !d.keep).count();
        out.forgotten += forgotten;
        if r.prune && forgotten > 0 {
            crate::prune::prune(&self.repo, &keys, &Default::default(), &NoProgress)
                .map_err(|e| format!("prune: {e}"))?;
        }
        Ok(())
    }

    /// A per-member job: one snapshot per member in `member/NAME`. A member whose sources
    /// yield nothing, or who is over quota, fails alone and is reported.
    fn backup_members(
        &self,
        job: &Job,
        sel: &agent_config::MemberSelect,
        out: &mut JobOutcome,
    ) -> std::result::Result<(), String> {
        let coop = self
            .repo
            .tenant_keys(&self.access, "coop")
            .map_err(|e| e.to_string())?;
        let (reg, _) = crate::members::load(&self.repo, &coop).map_err(|e| e.to_string())?;
        let names: Vec<String> = match sel {
            agent_config::MemberSelect::All(_) => {
                reg.members.iter().map(|m| m.name.clone()).collect()
            }
            agent_config::MemberSelect::Names(n) => n.clone(),
        };
        let mut failures = Vec::new();
        let mut done = 0;
        for name in &names {
            let Some(m) = reg.member(name) else {
                failures.push(format!("{name}: not in the member registry"));
                continue;
            };
            let fill = |s: &str| s.replace("{member}", name);
            let paths: Vec<PathBuf> = job
                .paths
                .iter()
                .map(|p| PathBuf::from(fill(&p.to_string_lossy())))
                .collect();
            let existing: Vec<PathBuf> = paths.iter().filter(|p| p.exists()).cloned().collect();
            let env: std::collections::BTreeMap<String, String> =
                [("COOP_MEMBER".to_string(), name.clone())].into();
            let mut commands: Vec<crate::backup::SourceCommand> = job
                .commands
                .iter()
                .map(|c| crate::backup::SourceCommand {
                    command: fill(&c.command),
                    filename: fill(&c.filename),
                    stdin: c.stdin.clone(),
                    env: env.clone(),
                })
                .collect();
            for q in &job.sql {
                commands.push(crate::backup::SourceCommand {
                    command: format!("psql -X -q -A -t -v ON_ERROR_STOP=1 -v member=\"$COOP_MEMBER\" {} -d {} -f -", q.psql_args, q.database),
                    filename: fill(&q.filename),
                    stdin: Some(q.query.clone()),
                    env: env.clone(),
                });
            }
            if existing.is_empty() && commands.is_empty() {
                failures.push(format!(
                    "{name}: nothing to back up (none of {} exists)",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                continue;
            }
            match self.backup_target(job, &m.tenant(), &existing, &commands, m.quota, out) {
                Ok(()) => done += 1,
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
        out.message
            .push_str(&format!("{done} of {} member(s) backed up; ", names.len()));
        if failures.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} member(s) failed: {}",
                failures.len(),
                failures.join("; ")
            ))
        }
    }

    fn peer_store(&self, p: &Peer) -> Result<Store> {
        Ok(Store::open_with(p.repo.get_ref(), true, &p.s3)?)
    }

    /// Replicates to one peer now and records the result (with backoff on failure).
    pub fn sync_peer(&self, p: &Peer) -> PeerOutcome {
        let history = match self.history() {
            Ok(h) => h,
            Err(e) => {
                return PeerOutcome {
                    peer: p.name.clone(),
                    ok: false,
                    copied_objects: 0,
                    copied_bytes: 0,
                    message: e.to_string(),
                }
            }
        };
        let mut st = history.peer(&p.name).unwrap_or_default();
        st.peer = p.name.clone();
        st.last_attempt = Some(now());
        let limit = p
            .upload_limit
            .as_ref()
            .and_then(|l| agent_config::parse_size(l.get_ref()));
        let res: Result<ReplicateReport> = self.peer_store(p).and_then(|to| {
            replicate::replicate(
                &self.repo.store,
                &to,
                &ReplicateOptions {
                    check_only: false,
                    limit,
                    parallel: 4,
                },
                &NoProgress,
            )
        });
        let out = match res {
            Ok(r) if r.ok() => {
                st.last_ok = Some(now());
                st.failures = 0;
                st.next_retry = None;
                st.dirty = false;
                st.lag_objects = 0;
                st.lag_bytes = 0;
                st.message = String::new();
                PeerOutcome {
                    peer: p.name.clone(),
                    ok: true,
                    copied_objects: r.copied_objects,
                    copied_bytes: r.copied_bytes,
                    message: String::new(),
                }
            }
            Ok(r) => {
                let msg = r
                    .refused
                    .first()
                    .or(r.failed.first())
                    .cloned()
                    .unwrap_or_else(|| "snapshots held back".into());
                self.failed_peer(p, &mut st, &msg);
                PeerOutcome {
                    peer: p.name.clone(),
                    ok: false,
                    copied_objects: r.copied_objects,
                    copied_bytes: r.copied_bytes,
                    message: msg,
                }
            }
            Err(e) => {
                self.failed_peer(p, &mut st, &e.to_string());
                PeerOutcome {
                    peer: p.name.clone(),
                    ok: false,
                    copied_objects: 0,
                    copied_bytes: 0,
                    message: e.to_string(),
                }
            }
        };
        if let Err(e) = history.save_peer(&st) {
            tracing::warn!("cannot record peer state: {e}");
        }
        self.write_metrics();
        out
    }

    fn failed_peer(&self, p: &Peer, st: &mut PeerState, msg: &str) {
        st.failures += 1;
        st.dirty = true;
        let max = p
            .retry_max
            .as_ref()
            .and_then(|r| humantime::parse_duration(r.get_ref()).ok())
            .unwrap_or(Duration::from_secs(1800));
        let backoff = Duration::from_secs(1u64 << st.failures.min(16)).min(max);
        st.next_retry = Some(now() + backoff.as_secs() as i64);
        st.message = msg.to_string();
        tracing::warn!(
            "peer {} failed ({} in a row), retrying in {}s: {msg}",
            p.name,
            st.failures,
            backoff.as_secs()
        );
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

    /// `--once`: run the job, then replicate to every peer once.
    pub fn run_once(&self, name: &str) -> Result<JobOutcome> {
        let mut out = self.run_job(name)?;
        if out.ok {
            out.peers = self.sync_all();
        }
        Ok(out)
    }

    /// When the job is next due: the first scheduled time after its last run (or after the
    /// agent started), plus jitter. A time in the past means "run now, once".
    pub fn next_due(&self, job: &Job, history: &History) -> Option<i64> {
        let last = history
            .last_run(&job.name)
            .ok()
            .flatten()
            .map(|r| r.started);
        let jitter = self
            .cfg
            .site
            .jitter
            .as_ref()
            .and_then(|j| humantime::parse_duration(j.get_ref()).ok());
        next_due(
            job.schedule.get_ref(),
            &job.name,
            last.unwrap_or(self.started),
            jitter,
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
        std::thread::scope(|s| {
            while !stop.load(Ordering::Relaxed) {
                let t = now();
                for job in &self.cfg.jobs {
                    if running_jobs.lock().expect("lock").contains(&job.name) {
                        continue;
                    }
                    if self.next_due(job, &history).is_some_and(|due| due <= t) {
                        running_jobs.lock().expect("lock").insert(job.name.clone());
                        let rj = &running_jobs;
                        s.spawn(move || {
                            match self.run_job(&job.name) {
                                Ok(o) if o.ok => tracing::info!(
                                    "job {} done: snapshot {}",
                                    job.name,
                                    o.snapshot.unwrap_or_default()
                                ),
                                Ok(o) => tracing::warn!("job {} failed: {}", job.name, o.message),
                                Err(e) => tracing::warn!("job {} could not run: {e}", job.name),
                            }
                            rj.lock().expect("lock").remove(&job.name);
                        });
                    }
                }
                for p in &self.cfg.peers {
                    if running_peers.lock().expect("lock").contains(&p.name) {
                        continue;
                    }
                    let st = history.peer(&p.name).unwrap_or_default();
                    if st.dirty && st.next_retry.is_none_or(|r| r <= t) {
                        running_peers.lock().expect("lock").insert(p.name.clone());
                        let rp = &running_peers;
                        s.spawn(move || {
                            let o = self.sync_peer(p);
                            if o.ok {
                                tracing::info!(
                                    "peer {} up to date ({} objects copied)",
                                    p.name,
                                    o.copied_objects
                                );
                            }
                            rp.lock().expect("lock").remove(&p.name);
                        });
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Ok(())
    }

    /// Each job's last and next run, each peer's lag.
    pub fn status(&self, live: bool) -> Result<Status> {
        let history = self.history()?;
        let mut jobs = Vec::new();
        for j in &self.cfg.jobs {
            jobs.push(JobStatus {
                name: j.name.clone(),
                schedule: j.schedule.get_ref().clone(),
                last_run: history.last_run(&j.name)?,
                next_run: self.next_due(j, &history).map(|t| rfc3339(t.max(now()))),
                successful_runs: history.runs(&j.name)?,
            });
        }
        let mut peers = Vec::new();
        for p in &self.cfg.peers {
            let st = history.peer(&p.name)?;
            let mut ps = PeerStatus {
                name: p.name.clone(),
                repo: p.repo.get_ref().clone(),
                reachable: false,
                lag_objects: st.lag_objects,
                lag_bytes: st.lag_bytes,
                last_ok: st.last_ok.map(rfc3339),
                failures: st.failures,
                next_retry: st.next_retry.map(rfc3339),
                message: st.message.clone(),
            };
            if live {
                let res = Store::open_with(p.repo.get_ref(), false, &p.s3)
                    .map_err(Error::from)
                    .and_then(|to| {
                        replicate::replicate(
                            &self.repo.store,
                            &to,
                            &ReplicateOptions {
                                check_only: true,
                                ..Default::default()
                            },
                            &NoProgress,
                        )
                    });
                match res {
                    Ok(r) => {
                        ps.reachable = true;
                        ps.lag_objects = r.missing_objects;
                        ps.lag_bytes = r.missing_bytes;
                    }
                    Err(Error::Store(e)) if e.is_not_found() => {
                        ps.reachable = true; // an empty target: everything missing
                        if let Ok(r) = replicate::replicate(
                            &self.repo.store,
                            &Store::open("memory:", true)?,
                            &ReplicateOptions {
                                check_only: true,
                                ..Default::default()
                            },
                            &NoProgress,
                        ) {
                            ps.lag_objects = r.missing_objects;
                            ps.lag_bytes = r.missing_bytes;
                        }
                    }
                    Err(e) => ps.message = format!("unreachable: {e}"),
                }
            }
            peers.push(ps);
        }
        Ok(Status {
            site: self.cfg.site.name.clone(),
            repo: self.cfg.site.repo.get_ref().clone(),
            jobs,
            peers,
        })
    }

    /// Writes the Prometheus textfile atomically (temp file + rename).
    pub fn write_metrics(&self) {
        let Some(path) = &self.cfg.site.metrics_file else {
            return;
        };
        let Ok(history) = self.history() else { return };
        let mut m = String::new();
        m.push_str("# HELP coop_job_last_run_timestamp_seconds Start of the last run of a coop job.\n# TYPE coop_job_last_run_timestamp_seconds gauge\n");
        let mut status = String::from("# HELP coop_job_last_success Whether the last run of a coop job succeeded (1) or failed (0).\n# TYPE coop_job_last_success gauge\n");
        let mut added = String::from("# HELP coop_job_last_bytes_added Bytes of new data the last run uploaded.\n# TYPE coop_job_last_bytes_added gauge\n");
        for j in &self.cfg.jobs {
            if let Ok(Some(r)) = history.last_run(&j.name) {
                m.push_str(&format!(
                    "coop_job_last_run_timestamp_seconds{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name, j.name, r.started
                ));
                status.push_str(&format!(
                    "coop_job_last_success{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name,
                    j.name,
                    (r.status == "ok") as u8
                ));
                added.push_str(&format!(
                    "coop_job_last_bytes_added{{site=\"{}\",job=\"{}\"}} {}\n",
                    self.cfg.site.name, j.name, r.bytes_added
                ));
            }
        }
        m.push_str(&status);
        m.push_str(&added);
        m.push_str("# HELP coop_peer_last_success_timestamp_seconds Last successful replication to a peer.\n# TYPE coop_peer_last_success_timestamp_seconds gauge\n");
        let mut fails = String::from("# HELP coop_peer_consecutive_failures Failed replication attempts to a peer since its last success.\n# TYPE coop_peer_consecutive_failures gauge\n");
        for p in &self.cfg.peers {
            if let Ok(st) = history.peer(&p.name) {
                m.push_str(&format!(
                    "coop_peer_last_success_timestamp_seconds{{site=\"{}\",peer=\"{}\"}} {}\n",
                    self.cfg.site.name,
                    p.name,
                    st.last_ok.unwrap_or(0)
                ));
                fails.push_str(&format!(
                    "coop_peer_consecutive_failures{{site=\"{}\",peer=\"{}\"}} {}\n",
                    self.cfg.site.name, p.name, st.failures
                ));
            }
        }
        m.push_str(&fails);
        let tmp = path.with_extension("prom.tmp");
        if std::fs::write(&tmp, m)
            .and_then(|_| std::fs::rename(&tmp, path))
            .is_err()
        {
            tracing::warn!("cannot write metrics file {}", path.display());
        }
    }
}

/// The next time a job is due after `last` (its last run, or when the agent started): the
/// first scheduled time after it, plus a jitter derived from the job name and that time. If
/// several scheduled times passed (the machine was off), this is the first of them, so the job
/// runs once now and its next due time is computed from this run: missed runs are caught up
/// once, not once per missed slot.
pub fn next_due(schedule: &str, job: &str, last: i64, jitter: Option<Duration>) -> Option<i64> {
    let cron = agent_config::parse_cron(schedule).ok()?;
    let from: DateTime<Utc> = Utc.timestamp_opt(last, 0).single()?;
    let next = cron.find_next_occurrence(&from, false).ok()?.timestamp();
    let j = match jitter {
        Some(d) if d.as_secs() > 0 => {
            let h = blake3::hash(format!("{job}@{next}").as_bytes());
            (u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8")) % d.as_secs()) as i64
        }
        _ => 0,
    };
    Some(next + j)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_runs_are_caught_up_once() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap()
            .timestamp();
        // Last run three days ago; daily at 03:00: due (in the past), so it runs now …
        let three_days_ago = now - 3 * 86400;
        let due = next_due("0 3 * * *", "j", three_days_ago, None).unwrap();
        assert!(due <= now);
        // … once: after that run, the next due time is tomorrow 03:00, not the other missed slots.
        let after = next_due("0 3 * * *", "j", now, None).unwrap();
        assert_eq!(
            after,
            Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0)
                .unwrap()
                .timestamp()
        );
    }

    #[test]
    fn jitter_is_bounded_and_stable() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap()
            .timestamp();
        let base = next_due("0 3 * * *", "a", t, None).unwrap();
        let j = Some(Duration::from_secs(600));
        let a = next_due("0 3 * * *", "a", t, j).unwrap();
        assert!((base..base + 600).contains(&a));
        assert_eq!(
            a,
            next_due("0 3 * * *", "a", t, j).unwrap(),
            "deterministic"
        );
        let spread: std::collections::HashSet<i64> = (0..20)
            .map(|i| next_due("0 3 * * *", &format!("job{i}"), t, j).unwrap())
            .collect();
        assert!(spread.len() > 10, "jobs are spread out");
        assert!(next_due("not a cron", "a", t, None).is_none());
    }
}
