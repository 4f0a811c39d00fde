//! `coop agent` and `coop status`.

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::agent_config;
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

pub fn load(path: &Path) -> Result<Agent> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg = agent_config::parse(&text).map_err(|p| Error::Usage {
        what: format!(
            "{}: {p} (run `coop config check {}`)",
            path.display(),
            path.display()
        ),
    })?;
    Ok(Agent::new(cfg)?)
}

pub fn run(g: &Global, a: AgentArgs) -> Result<i32> {
    let agent = load(&a.config)?;
    if let Some(job) = &a.once {
        let o = agent.run_once(job)?;
        if g.json {
            util::print_json(&o)?;
        } else {
            if o.ok {
                println!(
                    "job {}: snapshot {} ({} new)",
                    o.job,
                    o.snapshot.as_deref().map(|s| &s[..8]).unwrap_or("-"),
                    util::bytes(o.bytes_added)
                );
            } else {
                eprintln!("coop: job {} FAILED: {}", o.job, o.message);
            }
            if !o.message.is_empty() && o.ok {
                eprintln!("coop: {}", o.message);
            }
            for p in &o.peers {
                if p.ok {
                    println!(
                        "peer {}: up to date ({} objects, {} copied)",
                        p.peer,
                        p.copied_objects,
                        util::bytes(p.copied_bytes)
                    );
                } else {
                    eprintln!(
                        "coop: peer {} not reached: {} (the daemon retries; or run again)",
                        p.peer, p.message
                    );
                }
            }
        }
        return Ok(if !o.ok {
            crate::exit::UNEXPECTED
        } else if o.peers.iter().any(|p| !p.ok) {
            crate::exit::STORE
        } else {
            crate::exit::OK
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    daemon::stop_on_signals(Arc::clone(&stop));
    if !g.quiet {
        eprintln!(
            "coop agent: site {}, {} job(s), {} peer(s); stop with Ctrl-C or SIGTERM",
            agent.cfg.site.name,
            agent.cfg.jobs.len(),
            agent.cfg.peers.len()
        );
    }
    agent.run(&stop)?;
    Ok(crate::exit::OK)
}

pub fn status(g: &Global, a: StatusArgs) -> Result<i32> {
    let agent = load(&a.config)?;
    let s = agent.status(!a.offline)?;
    if g.json {
        util::print_json(&s)?;
        return Ok(crate::exit::OK);
    }
    println!("site {} ({})", s.site, s.repo);
    println!(
        "\n{:<16} {:<14} {:<8} {:<26} {:<26} {:>5}",
        "job", "schedule", "result", "last run", "next run", "runs"
    );
    for j in &s.jobs {
        let (res, last) = match &j.last_run {
            Some(r) => (
                r.status.clone(),
                chrono::DateTime::from_timestamp(r.started, 0)
                    .map(|d| d.to_rfc3339())
                    .unwrap_or_default(),
            ),
            None => ("never".into(), "-".into()),
        };
        println!(
            "{:<16} {:<14} {:<8} {:<26} {:<26} {:>5}",
            j.name,
            j.schedule,
            res,
            last,
            j.next_run.clone().unwrap_or_default(),
            j.successful_runs
        );
        if let Some(r) = &j.last_run {
            if !r.message.is_empty() {
                println!("  {}", r.message);
            }
        }
    }
    println!(
        "{:<16} {:<10} {:>10} {:>12} {:<26} note",
        "peer", "reachable", "lag objs", "lag bytes", "last ok"
    );
    for p in &s.peers {
        println!(
            "{:<16} {:<10} {:>10} {:>12} {:<26} {}",
            p.name,
            if p.reachable {
                "yes"
            } else if a.offline {
                "?"
            } else {
                "NO"
            },
            p.lag_objects,
            util::bytes(p.lag_bytes),
            p.last_ok.clone().unwrap_or_else(|| "never".into()),
            p.message
        );
    }
    Ok(crate::exit::OK)
}
