//! `coop agent` and `coop status`.

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::daemon::{self, Agent};
use coop_agent::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Args)]
pub struct AgentArgs {
    /// Agent config (TOML).
    #[arg(
        long,
        short = 'c',
        env = "COOP_CONFIG",
        default_value = "/etc/coop/agent.toml"
    )]
    config: PathBuf,
    /// Run this job once (then replicate to every peer) and exit, for systemd timers or cron.
    #[arg(long, value_name = "JOB", env = "COOP_AGENT_ONCE")]
    once: Option<String>,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Agent config (TOML).
    #[arg(
        long,
        short = 'c',
        env = "COOP_CONFIG",
        default_value = "/etc/coop/agent.toml"
    )]
    config: PathBuf,
    /// Do not contact peers; show the last recorded lag.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_AGENT_OFFLINE")]
    offline: bool,
}

/// Reads and checks the config like `coop config check` (without contacting stores), and
/// opens the site's repository. The agent does not start on a config with errors.
pub fn load(path: &Path) -> Result<Agent> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
        .context("reading the agent config (packaging/examples/ has examples; docs/OPERATOR.md explains them)")?;
    let checked = coop_agent::settings::check::check(&text, false);
    if !checked.ok() {
        let lines: Vec<String> = checked
            .problems
            .iter()
            .filter(|p| !p.warning)
            .map(|p| format!("{}:{p}", path.display()))
            .collect();
        return Err(Error::Invalid {
            what: format!(
                "the agent config has errors; the agent does not start:\n{}\n(run `coop config check {}`)",
                lines.join("\n"),
                path.display()
            ),
        }
        .into());
    }
    Ok(Agent::new(checked.settings.expect("ok"))?)
}

pub fn run(g: &Global, a: AgentArgs) -> Result<i32> {
    let p = g.printer();
    let agent = load(&a.config)?;
    if let Some(job) = &a.once {
        let o = agent.run_once(job)?;
        if g.json {
            p.json(&o)?;
        } else {
            for m in &o.members {
                match &m.error {
                    None => p.summary(format!(
                        "member {}: snapshot {} ({} new)",
                        m.member,
                        m.snapshot.as_deref().map(|s| &s[..8]).unwrap_or("-"),
                        util::bytes(m.bytes_added)
                    ))?,
                    Some(e) => p.problem(format!("member {} FAILED: {}", m.member, e.message)),
                }
            }
            if o.ok && o.snapshot.is_none() && !o.message.is_empty() {
                // A report or drill job: it says what it did.
                p.summary(format!("job {}: {}", o.job, o.message))?;
            } else if o.ok {
                p.summary(format!(
                    "job {}: snapshot {} ({} new)",
                    o.job,
                    o.snapshot.as_deref().map(|s| &s[..8]).unwrap_or("-"),
                    util::bytes(o.bytes_added)
                ))?;
            } else {
                p.problem(format!("job {} FAILED: {}", o.job, o.message));
            }
            for w in &o.warnings {
                p.warn(w);
            }
            for n in &o.notes {
                p.note(n);
            }
            for x in &o.peers {
                if x.ok {
                    p.summary(format!(
                        "peer {}: up to date ({} objects, {} copied)",
                        x.peer,
                        x.copied_objects,
                        util::bytes(x.copied_bytes)
                    ))?;
                } else {
                    p.problem(format!(
                        "peer {} not reached: {} (the daemon retries; or run again)",
                        x.peer, x.message
                    ));
                }
            }
            for a in &o.witness_alarms {
                p.problem(format!("WITNESS ALARM {a}"));
            }
        }
        return Ok(match (&o.error, o.peers.iter().find(|x| !x.ok)) {
            (Some(e), _) => crate::exit::code_of(e.kind),
            _ if !o.witness_alarms.is_empty() => crate::exit::INTEGRITY,
            (None, Some(x)) => x
                .kind
                .map(crate::exit::code_of)
                .unwrap_or(crate::exit::STORE),
            (None, None) if !o.warnings.is_empty() => crate::exit::WARNINGS,
            (None, None) => crate::exit::OK,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    daemon::stop_on_signals(Arc::clone(&stop));
    p.note(format!(
        "coop agent: site {}, {} job(s), {} peer(s); stop with Ctrl-C or SIGTERM",
        agent.cfg.site.name,
        agent.cfg.jobs.len(),
        agent.cfg.peers.len()
    ));
    agent.run(&stop)?;
    Ok(crate::exit::OK)
}

/// `coop status --json`: the engine's status, and whether it is healthy.
#[derive(serde::Serialize)]
struct StatusJson<'a> {
    healthy: bool,
    #[serde(flatten)]
    status: &'a daemon::Status,
}

/// Each job's last and next run, for a terminal.
fn jobs_text(p: &crate::output::Printer, jobs: &[daemon::JobStatus]) -> Result<()> {
    p.data(format!(
        "\n{:<16} {:<14} {:<8} {:<22} {:<22} {:>5}",
        "job", "schedule", "result", "last run", "next run", "runs"
    ))?;
    for j in jobs {
        let (res, last) = match &j.last_run {
            Some(r) => (r.status.clone(), daemon::rfc3339(r.started)),
            None => ("never".into(), "-".into()),
        };
        p.data(format!(
            "{:<16} {:<14} {:<8} {:<22} {:<22} {:>5}",
            j.name,
            j.schedule,
            res,
            last,
            j.next_run.clone().unwrap_or_default(),
            j.successful_runs
        ))?;
        if let Some(c) = &j.caretaker {
            p.data(format!("  caretaker: {c}"))?;
        }
        if let Some(r) = &j.last_run {
            if !r.message.is_empty() {
                p.data(format!("  {}", r.message))?;
            }
        }
    }
    Ok(())
}

pub fn status(g: &Global, a: StatusArgs) -> Result<i32> {
    let p = g.printer();
    let agent = load(&a.config)?;
    let s = agent.status(!a.offline)?;
    let code = if s.healthy() {
        crate::exit::OK
    } else {
        crate::exit::WARNINGS
    };
    if g.json {
        p.json(&serde_json::to_value(StatusJson {
            healthy: s.healthy(),
            status: &s,
        })?)?;
        return Ok(code);
    }
    p.data(format!("site {} ({}); times in UTC", s.site, s.repo))?;
    jobs_text(&p, &s.jobs)?;
    p.data(format!(
        "\n{:<16} {:<10} {:>10} {:>12} {:<22} note",
        "peer", "reachable", "lag objs", "lag bytes", "last ok"
    ))?;
    for x in &s.peers {
        p.data(format!(
            "{:<16} {:<10} {:>10} {:>12} {:<22} {}",
            x.name,
            if x.reachable {
                "yes"
            } else if a.offline {
                "?"
            } else {
                "NO"
            },
            x.lag_objects
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            x.lag_bytes.map(util::bytes).unwrap_or_else(|| "?".into()),
            x.last_ok.clone().unwrap_or_else(|| "never".into()),
            x.message
        ))?;
    }
    if !s.healthy() {
        p.problem("something needs attention: a job's last run failed, or a peer was not reached (see above)");
    }
    Ok(code)
}
