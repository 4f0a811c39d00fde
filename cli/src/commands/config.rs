//! `coop config check`

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use coop_agent::agent_config;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate an agent config: syntax, unknown keys, cron schedules, files, reachable stores.
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
    let ConfigCommand::Check(a) = c;
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let (cfg, problems, notes) = agent_config::check_with_notes(&text, !a.offline);
    if g.json {
        util::print_json(
            &serde_json::json!({"ok": problems.is_empty(), "problems": problems, "notes": notes}),
        )?;
    } else {
        for n in &notes {
            println!("note: {n}");
        }
        for p in &problems {
            println!("{}:{p}", a.config.display());
        }
        if problems.is_empty() {
            let cfg = cfg.expect("parsed");
            println!(
                "{}: ok (site {}, {} job(s), {} peer(s))",
                a.config.display(),
                cfg.site.name,
                cfg.jobs.len(),
                cfg.peers.len()
            );
        }
    }
    Ok(if problems.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::USAGE
    })
}
