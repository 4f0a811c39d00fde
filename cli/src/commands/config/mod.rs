//! `coop config check` and `coop config init`: the arguments, and `check`; `init` (planning,
//! rendering and writing a site's agent.toml) is in `init.rs`.

mod init;
pub use init::packaged_example;

use crate::global::Global;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where the agent, its units and these commands look for the config.
pub const DEFAULT_CONFIG: &str = "/etc/coop/agent.toml";
/// `config init`'s defaults: the package's state directory (writable by coop-agent.service) and
/// the identity next to the config.
const DEFAULT_REPO: &str = "/var/lib/coop/repo";
const DEFAULT_IDENTITY: &str = "/etc/coop/identity.txt";
const DEFAULT_CACHE: &str = "/var/cache/coop";

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate an agent config: syntax, unknown keys, cron schedules, sizes, files, paths,
    /// and (unless --offline) the stores and the key. A peer that is down is a warning.
    Check(CheckArgs),
    /// Write a commented agent config for this site, then print the next three commands.
    ///
    /// The site's repository is --repo (default /var/lib/coop/repo), its key --identity-file
    /// (default /etc/coop/identity.txt) or --writer-key. The config backs up /etc every night
    /// and has commented examples for the rest; `coop recipe show NAME >> FILE` adds a service.
    /// An existing file is never overwritten, except the packaged example while it is unchanged.
    Init(InitArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The config file.
    #[arg(env = "COOP_CONFIG", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Do not try to reach the stores.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_CONFIG_OFFLINE")]
    offline: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// This site's name: the host its snapshots carry (letters, digits, '.', '_', '-').
    #[arg(long, value_name = "NAME", env = "COOP_SITE")]
    site: String,
    /// Another site's store that keeps an encrypted replica, as [NAME=]URL (s3://BUCKET/PREFIX
    /// or a directory); repeatable.
    #[arg(
        long = "peer",
        value_name = "[NAME=]URL",
        env = "COOP_PEERS",
        value_delimiter = ','
    )]
    peers: Vec<String>,
    /// Where to write the config.
    #[arg(long, value_name = "FILE", env = "COOP_CONFIG", default_value = DEFAULT_CONFIG)]
    out: PathBuf,
}

pub fn run(g: &Global, c: ConfigCommand) -> Result<i32> {
    match c {
        ConfigCommand::Check(a) => check(g, a),
        ConfigCommand::Init(a) => init::init(g, a),
    }
}

fn check(g: &Global, a: CheckArgs) -> Result<i32> {
    let p = g.printer();
    let text = std::fs::read_to_string(&a.config)
        .map_err(|e| coop_agent::Error::Io {
            path: a.config.clone(),
            source: e,
        })
        .with_context(|| format!("reading {}", a.config.display()))?;
    let checked = coop_agent::settings::check::check(&text, !a.offline);
    let ok = checked.ok();
    if g.json {
        p.json_sorted(&checked)?;
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
        if !ok && text == packaged_example() {
            p.note(format!(
                "{} is the packaged example: `coop config init --site NAME` writes one for this machine, \
                 or create the repository and identity it names: coop init --repo {DEFAULT_REPO} --identity-file {DEFAULT_IDENTITY}",
                a.config.display()
            ));
        }
    }
    Ok(if ok {
        crate::exit::OK
    } else {
        crate::exit::USAGE
    })
}
