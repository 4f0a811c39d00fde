//! Running one job: hooks, the backup (once, or once per member), retention.
//!
//! The job's result carries the kind of error a failure had, so `coop agent --once` exits
//! with the code `coop backup` would. A per-member job reports every member; one member's
//! failure does not stop the others, and what succeeded is replicated.

pub use super::sources::{expand, paths_from_commands};
use super::{Agent, JobLock};
use crate::backup::{self, BackupOptions, DirCommand, SourceCommand};
use crate::error::{Error, ErrorKind, Result};
use crate::progress::NoProgress;
use crate::settings::{JobSettings, Members};
use serde::Serialize;
use std::path::PathBuf;

/// Why a job (or one member of it) failed.
#[derive(Debug, Clone, Serialize)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<&Error> for JobError {
    fn from(e: &Error) -> Self {
        Self {
            kind: e.kind(),
            message: crate::error::chain(e),
        }
    }
}

/// One member of a per-member job.
#[derive(Debug, Clone, Serialize)]
pub struct MemberOutcome {
    pub member: String,
    pub ok: bool,
    pub snapshot: Option<String>,
    pub bytes_added: u64,
    pub error: Option<JobError>,
}

/// What one job run did.
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub job: String,
    pub ok: bool,
    /// The snapshot written (of the last tenant backed up).
    pub snapshot: Option<String>,
    pub message: String,
    pub error: Option<JobError>,
    pub bytes_added: u64,
    pub forgotten: usize,
    /// Per member (per-member jobs only).
    pub members: Vec<MemberOutcome>,
    pub warnings: Vec<String>,
    /// Things the run did not do by design (retention with a writer key): shown, and never
    /// a reason to exit with a warning code.
    pub notes: Vec<String>,
    pub peers: Vec<super::PeerOutcome>,
    /// Rollbacks and forks found while witnessing other sites' logs: alarms.
    pub witness_alarms: Vec<String>,
    /// CPU time and energy of the run (also in the history).
    pub energy: Option<crate::history::Energy>,
    /// The tenants the run wrote to (name, tag): their stored bytes are sampled after it.
    #[serde(skip)]
    touched: Vec<(String, coop_formats::envelope::TenantTag)>,
}

/// Runs a hook with `sh -c`; its output goes to standard error (and so to the log), never
/// to the standard output that `--json` results use.
fn hook(which: &'static str, cmd: &str) -> Result<()> {
    use std::os::fd::AsFd;
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(Error::HookFailed {
            which,
            command: cmd.into(),
            status: s.to_string(),
        }),
        Err(e) => Err(Error::HookFailed {
            which,
            command: cmd.into(),
            status: format!("could not start: {e}"),
        }),
    }
}

impl JobOutcome {
    /// A run of job `name` that has done nothing yet.
    fn new(name: &str) -> Self {
        JobOutcome {
            job: name.into(),
            ok: false,
            snapshot: None,
            message: String::new(),
            error: None,
            bytes_added: 0,
            forgotten: 0,
            members: vec![],
            warnings: vec![],
            notes: vec![],
            peers: vec![],
            witness_alarms: vec![],
            energy: None,
            touched: vec![],
        }
    }
}

impl Agent {
    /// Runs one job now: hooks, backup, retention. Peers are marked for replication.
    pub fn run_job(&self, name: &str) -> Result<JobOutcome> {
        let job = self.job(name)?;
        let _lock = JobLock::take(
            self.cfg
                .site
                .cache_dir
                .join(self.repo.config.repo_id.to_hex())
                .join(format!("job-{name}.lock")),
        )?;
        let history = self.history()?;
        let run_id = history.start_job(name, super::now())?;
        let meter = super::energy::Meter::start();
        let url = job
            .healthcheck_url
            .as_deref()
            .or(self.cfg.site.healthcheck_url.as_deref());
        super::healthcheck::ping(url, "/start", "");
        let mut out = JobOutcome::new(name);
        let result = job
            .before
            .iter()
            .try_for_each(|h| hook("before", h))
            .and_then(|()| self.act(job, &mut out));
        // After hooks run whatever happened (e.g. restart the service the before hook stopped).
        let after = job
            .after
            .iter()
            .map(|h| hook("after", h))
            .find_map(|r| r.err());
        match (result, after) {
            (Ok(()), None) => out.ok = true,
            (Err(e), _) | (Ok(()), Some(e)) => {
                out.error = Some(JobError::from(&e));
                // A per-member job has already said which members failed and why.
                if out.members.is_empty() {
                    out.message = crate::error::chain(&e);
                }
            }
        }
        self.record_run(&history, run_id, meter, &mut out)?;
        self.tell(job, url, &mut out);
        self.write_metrics();
        Ok(out)
    }

    /// What the job does: a report archive, a restore drill, or a backup of its paths or of
    /// each member.
    fn act(&self, job: &JobSettings, out: &mut JobOutcome) -> Result<()> {
        match (&job.action, &job.members) {
            (crate::settings::JobAction::Report { dir, since, setup }, _) => {
                self.write_report_archive(job, dir, *since, *setup, out)
            }
            (crate::settings::JobAction::Drill { jobs, sample }, _) => {
                self.run_drill(jobs, *sample, out)
            }
            (_, None) => paths_from_commands(&job.paths_from_command, &Default::default())
                .and_then(|more| {
                    let paths: Vec<PathBuf> = job.paths.iter().cloned().chain(more).collect();
                    self.backup_target(
                        job,
                        &job.tenant,
                        &paths,
                        &job.commands,
                        &job.command_dirs,
                        Limits::default(),
                        out,
                    )
                }),
            (_, Some(sel)) => self.backup_members(job, sel, out),
        }
    }

    /// Records the run in the history: its end, its energy, what the tenants it wrote to
    /// store now (for `coop report`; neither of these may fail the job), and which peers
    /// need replication.
    fn record_run(
        &self,
        history: &crate::history::History,
        run_id: i64,
        meter: super::energy::Meter,
        out: &mut JobOutcome,
    ) -> Result<()> {
        let note = if out.ok {
            out.warnings
                .iter()
                .chain(&out.notes)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            out.message.clone()
        };
        history.finish_job(
            run_id,
            super::now(),
            out.ok,
            out.snapshot.as_deref(),
            note.trim(),
            out.bytes_added,
        )?;
        // What the run used, and what the tenants it wrote to store now (for `coop report`);
        // neither may fail the job.
        let energy = meter.stop(self.cfg.cpu_watts());
        if let Err(e) = history.record_energy(run_id, &energy) {
            tracing::warn!(
                "cannot record the run's energy: {}",
                crate::error::chain(&e)
            );
        }
        out.energy = Some(energy);
        let at = super::now();
        for (tenant, tag) in &out.touched {
            let stored = self
                .repo
                .list(crate::layout::Kind::Pack, tag)
                .map(|l| l.iter().map(|o| o.size).sum::<u64>());
            match stored.and_then(|b| history.sample_usage(at, tenant, b)) {
                Ok(()) => {}
                Err(e) => tracing::warn!(
                    "cannot record the stored bytes of {tenant}: {}",
                    crate::error::chain(&e)
                ),
            }
        }
        if out.ok || out.members.iter().any(|m| m.ok) {
            history.mark_dirty(
                &self
                    .cfg
                    .peers
                    .iter()
                    .map(|p| p.name.clone())
                    .collect::<Vec<_>>(),
            )?;
        }
        Ok(())
    }

    /// A failure is pinged, naming the job's caretaker, and reaches them through the
    /// notify hook.
    fn tell(&self, job: &JobSettings, url: Option<&str>, out: &mut JobOutcome) {
        // A failure names the job's caretaker in the ping and reaches them through the hook.
        let fail_body = match &job.caretaker {
            Some(c) if !out.ok => format!("caretaker: {c}\n{}", out.message),
            _ => out.message.clone(),
        };
        super::healthcheck::ping(url, if out.ok { "" } else { "/fail" }, &fail_body);
        let hook = job
            .notify_command
            .as_deref()
            .or(self.cfg.site.notify_command.as_deref());
        if let (false, Some(cmd)) = (out.ok, hook) {
            let notice = super::notify::Notice {
                site: &self.cfg.site.name,
                job: &out.job,
                caretaker: job.caretaker.as_ref(),
                message: &out.message,
            };
            if let Err(w) = super::notify::run(cmd, &notice) {
                tracing::warn!("{w}");
                out.warnings.push(w);
            }
        }
    }

    /// One backup (and its retention) into one tenant.
    #[allow(clippy::too_many_arguments)]
    fn backup_target(
        &self,
        job: &JobSettings,
        tenant: &str,
        paths: &[PathBuf],
        commands: &[SourceCommand],
        command_dirs: &[DirCommand],
        limits: Limits,
        out: &mut JobOutcome,
    ) -> Result<()> {
        // With an admin identity, a member tenant it does not read (after the recovery split)
        // is backed up with the registry's write material and kept up from its snapshots'
        // metadata; with a writer key this is its write-only keys.
        let keys = crate::tenant::upkeep_keys(&self.repo, &self.access, tenant)?;
        if !out.touched.iter().any(|(t, _)| t == tenant) {
            out.touched.push((tenant.to_string(), keys.tag));
        }
        let opts = BackupOptions {
            paths: paths.to_vec(),
            excludes: job.exclude.clone(),
            one_file_system: job.one_file_system,
            exclude_caches: true,
            ignore_cachedir_tag_below: job.ignore_cachedir_tag_below.clone(),
            commands: commands.to_vec(),
            dir_commands: command_dirs.to_vec(),
            tags: job
                .tags
                .iter()
                .cloned()
                .chain([format!("job:{}", job.name)])
                .collect(),
            host: self.cfg.site.name.clone(),
            cache_dir: Some(self.cfg.site.cache_dir.clone()),
            manifest: tenant.starts_with("member/"),
            quota: limits.quota,
            group: limits.group,
            ..Default::default()
        };
        let b = backup::backup(&self.repo, &keys, &opts, &NoProgress)?;
        out.snapshot = Some(b.id.to_hex());
        out.bytes_added += b.snapshot.summary.bytes_added;
        out.warnings
            .extend(b.warnings.iter().map(|w| format!("{tenant}: {w}")));
        if let Some(w) = &b.log_warning {
            tracing::warn!("{tenant}: {w}");
        }
        if !b.excluded_caches.is_empty() {
            out.notes.push(format!(
                "{tenant}: {} left out for its CACHEDIR.TAG (ignore_cachedir_tag_below keeps them): {}",
                if b.excluded_caches.len() == 1 {
                    "1 directory".to_string()
                } else {
                    format!("{} directories", b.excluded_caches.len())
                },
                b.excluded_caches.join(", ")
            ));
        }
        let Some(r) = &job.retention else {
            return Ok(());
        };
        if keys.reader.is_none() && !keys.is_upkeep() {
            out.notes.push(format!(
                "{tenant}: retention skipped: a writer key cannot forget (run the agent, or forget, with an admin identity)"
            ));
            return Ok(());
        }
        let f = crate::forget::forget(
            &self.repo,
            &keys,
            &r.policy,
            crate::forget::GroupBy::default(),
            false,
        )?;
        let forgotten = f.decisions.iter().filter(|d| !d.keep).count();
        out.forgotten += forgotten;
        out.warnings.extend(f.warnings);
        if r.prune && forgotten > 0 {
            let p = crate::prune::prune(&self.repo, &keys, &Default::default(), &NoProgress)?;
            out.warnings.extend(p.warnings);
        }
        Ok(())
    }

    /// A per-member job: one snapshot per member in `member/NAME`. Every member is tried and
    /// reported; the job fails if any member failed.
    fn backup_members(&self, job: &JobSettings, sel: &Members, out: &mut JobOutcome) -> Result<()> {
        let coop = crate::tenant::keys(&self.repo, &self.access, "coop")?;
        let loaded = crate::members::load(&self.repo, &coop)?;
        out.warnings
            .extend(loaded.problems.iter().map(|p| p.to_string()));
        let reg = loaded.registry;
        let names: Vec<String> = match sel {
            Members::All => reg.active().map(|m| m.name.clone()).collect(),
            Members::Names(n) => n.clone(),
        };
        let mut first_err: Option<Error> = None;
        for name in &names {
            let before = out.bytes_added;
            let res = match reg.member(name) {
                None => Err(Error::NotFound {
                    what: format!("member {name:?} in the registry"),
                }),
                Some(m) => self.backup_member(job, m, crate::groups::limit(&reg, name), out),
            };
            out.members.push(MemberOutcome {
                member: name.clone(),
                ok: res.is_ok(),
                snapshot: res.is_ok().then(|| out.snapshot.clone()).flatten(),
                bytes_added: out.bytes_added - before,
                error: res.as_ref().err().map(JobError::from),
            });
            if let Err(e) = res {
                first_err.get_or_insert(e);
            }
        }
        let done = out.members.iter().filter(|m| m.ok).count();
        out.message = format!("{done} of {} member(s) backed up", names.len());
        match first_err {
            None => Ok(()),
            Some(e) => {
                let failed: Vec<String> = out
                    .members
                    .iter()
                    .filter(|m| !m.ok)
                    .map(|m| {
                        format!(
                            "{}: {}",
                            m.member,
                            m.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
                        )
                    })
                    .collect();
                out.message = format!(
                    "{}; {} failed: {}",
                    out.message,
                    failed.len(),
                    failed.join("; ")
                );
                Err(e)
            }
        }
    }

    fn backup_member(
        &self,
        job: &JobSettings,
        m: &coop_formats::registry::Member,
        group: Option<crate::groups::GroupLimit>,
        out: &mut JobOutcome,
    ) -> Result<()> {
        let name = &m.name;
        let fill = |s: &str| s.replace("{member}", name);
        let patterns: Vec<PathBuf> = job
            .paths
            .iter()
            .map(|p| PathBuf::from(fill(&p.to_string_lossy())))
            .collect();
        let env: std::collections::BTreeMap<String, String> =
            [("COOP_MEMBER".to_string(), name.clone())].into();
        let scripts: Vec<String> = job.paths_from_command.iter().map(|c| fill(c)).collect();
        let mut seen = std::collections::HashSet::new();
        let existing: Vec<PathBuf> = patterns
            .iter()
            .flat_map(|p| expand(p))
            .chain(paths_from_commands(&scripts, &env)?)
            .filter(|p| std::fs::symlink_metadata(p).is_ok())
            .filter(|p| seen.insert(p.clone()))
            .collect();
        let mut commands: Vec<SourceCommand> = job
            .commands
            .iter()
            .map(|c| SourceCommand {
                command: fill(&c.command),
                filename: fill(&c.filename),
                stdin: c.stdin.clone(),
                env: env.clone(),
            })
            .collect();
        for q in &job.sql {
            commands.push(SourceCommand {
                command: format!(
                    "psql -X -q -A -t -v ON_ERROR_STOP=1 -v member=\"$COOP_MEMBER\" {} -d {} -f -",
                    q.psql_args, q.database
                ),
                filename: fill(&q.filename),
                stdin: Some(q.query.clone()),
                env: env.clone(),
            });
        }
        let dirs: Vec<DirCommand> = job
            .command_dirs
            .iter()
            .map(|c| DirCommand {
                command: fill(&c.command),
                dirname: fill(&c.dirname),
                env: env.clone(),
            })
            .collect();
        if existing.is_empty() && commands.is_empty() && dirs.is_empty() {
            return Err(Error::NothingForMember {
                member: name.clone(),
                paths: patterns
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let limits = Limits {
            quota: m.quota,
            group,
        };
        self.backup_target(job, &m.tenant(), &existing, &commands, &dirs, limits, out)
    }
}

/// What a backup into one tenant must stay within: the member's quota and their group's.
#[derive(Default)]
struct Limits {
    quota: Option<u64>,
    group: Option<crate::groups::GroupLimit>,
}
