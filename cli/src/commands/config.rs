//! `coop config check`

use crate::global::Global;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate an agent config: syntax, unknown keys, cron schedules, sizes, files, paths,
    /// and (unless --offline) the stores and the key. A peer that is down is a warning.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(env = "COOP_CONFIG", default_value = "/etc/coop/agent.toml")]
    config: PathBuf,
    /// Do not try to reach the stores.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_CONFIG_OFFLINE")]
    offline: bool,
}

pub fn run(g: &Global, c: ConfigCommand) -> Result<i32> {
    let p = g.printer();
    let ConfigCommand::Check(a) = c;
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| coop_agent::Error::Io {
            path: a.config.clone(),
            source: e,
        })
        .with_context(|| format!("reading {}", a.config.display()))?;
    let checked = coop_agent::settings::check::check(&text, !a.offline);
    let ok = checked.ok();
    if g.json {
        p.json(
            &serde_json::json!({"ok": ok, "problems": checked.problems, "notes": checked.notes}),
        )?;
    } else {
        for n in &checked.notes {
            p.data(format!("note: {n}"))?;
        }
        for x in &checked.problems {
            p.data(format!("{}:{x}", a.config.display()))?;
        }
        if let (true, Some(cfg)) = (ok, &checked.settings) {
            p.data(format!(
                "{}: ok (site {}, {} job(s), {} peer(s)){}",
                a.config.display(),
                cfg.site.name,
                cfg.jobs.len(),
                cfg.peers.len(),
                if checked.problems.is_empty() {
                    ""
                } else {
                    " with warnings"
                }
            ))?;
        }
    }
    Ok(if ok {
        crate::exit::OK
    } else {
        crate::exit::USAGE
    })
}
