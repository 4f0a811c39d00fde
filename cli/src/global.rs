//! Options with an environment variable each: `--json`, `--quiet` and `--verbose` for every
//! subcommand; the repository, key, tenant, cache and freshness options for the subcommands
//! that use them ([`SCOPES`]). Those are given before the subcommand (`coop --repo R ls`) or
//! after it, where the subcommand takes them (`coop ls --repo R`); each subcommand's help
//! shows only its own.

use clap::{ArgMatches, Args};
use std::path::PathBuf;

#[derive(Args)]
pub struct GlobalArgs {
    /// Repository location: a directory path, file://PATH or s3://BUCKET/PREFIX.
    #[arg(long, short = 'r', env = "COOP_REPO")]
    pub repo: Option<String>,
    /// age identity file or OpenSSH private key (default: $XDG_CONFIG_HOME/coop/identity.txt).
    #[arg(long, short = 'i', env = "COOP_IDENTITY_FILE")]
    pub identity_file: Option<PathBuf>,
    /// Writer key file: back up without being able to read anything.
    #[arg(long, env = "COOP_WRITER_KEY")]
    pub writer_key: Option<PathBuf>,
    /// Tenant to work in (default: coop; check and prune cover every tenant you can read).
    #[arg(long, env = "COOP_TENANT")]
    pub tenant: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_JSON", global = true)]
    pub json: bool,
    /// Directory for the catalog cache (default: $XDG_CACHE_HOME/coop).
    #[arg(long, env = "COOP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the catalog cache.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_NO_CACHE")]
    pub no_cache: bool,
    /// How old the newest witness cosignature in a store may be before reading commands warn
    /// that it may show an old state (only where the writer list asks for witnesses); `off`
    /// disables the check.
    #[arg(long, env = "COOP_FRESHNESS", default_value = "3d")]
    pub freshness: String,
    /// No progress bars or summaries.
    #[arg(long, short = 'q', value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_QUIET", global = true)]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// Global settings after resolution.
pub struct Global {
    pub repo: Option<String>,
    pub identity_file: Option<PathBuf>,
    pub writer_key: Option<PathBuf>,
    pub tenant: String,
    /// Whether --tenant (or COOP_TENANT) was given.
    pub tenant_given: bool,
    pub json: bool,
    pub cache_dir: Option<PathBuf>,
    /// `None`: no freshness check.
    pub freshness: Option<std::time::Duration>,
    pub quiet: bool,
    pub verbose: u8,
}

impl Global {
    pub fn printer(&self) -> crate::output::Printer {
        crate::output::Printer::new(self.json, self.quiet)
    }
}

impl GlobalArgs {
    pub fn resolve(&self) -> Result<Global, coop_agent::Error> {
        let freshness = match self.freshness.trim() {
            "off" | "0" => None,
            f => Some(coop_agent::settings::parse_duration(f).map_err(|what| {
                coop_agent::Error::Invalid {
                    what: format!("--freshness: {what}"),
                }
            })?),
        };
        Ok(Global {
            repo: self.repo.clone(),
            identity_file: self.identity_file.clone(),
            writer_key: self.writer_key.clone(),
            tenant: self.tenant.clone().unwrap_or_else(|| "coop".into()),
            tenant_given: self.tenant.is_some(),
            json: self.json,
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(coop_agent::catalog::default_cache_dir)
            },
            freshness,
            quiet: self.quiet,
            verbose: self.verbose,
        })
    }
}

/// The options a subcommand uses, beyond `--json`, `--quiet`, `--verbose`.
pub mod flag {
    pub const REPO: u8 = 1;
    pub const IDENTITY: u8 = 2;
    pub const WRITER: u8 = 4;
    pub const TENANT: u8 = 8;
    /// `--cache-dir`, `--no-cache`.
    pub const CACHE: u8 = 16;
    pub const FRESHNESS: u8 = 32;
    /// What opening a repository reads (`util::open_repo`).
    pub const OPEN: u8 = REPO | CACHE | FRESHNESS;
}

/// Each subcommand (by its path of names) with the options it uses. Every subcommand has a
/// line (a test checks), so a new one decides what it takes.
pub const SCOPES: &[(&str, u8)] = {
    use flag::*;
    &[
        ("init", REPO | IDENTITY),
        ("backup", OPEN | IDENTITY | WRITER | TENANT),
        ("snapshots", OPEN | IDENTITY | TENANT),
        ("ls", OPEN | IDENTITY | TENANT),
        ("dump", OPEN | IDENTITY | TENANT),
        ("diff", OPEN | IDENTITY | TENANT),
        ("restore", OPEN | IDENTITY | TENANT),
        ("check", OPEN | IDENTITY | TENANT),
        ("scrub", REPO),
        ("forget", OPEN | IDENTITY | TENANT),
        ("prune", OPEN | IDENTITY | TENANT),
        ("protect", OPEN | IDENTITY | TENANT),
        ("replicate", IDENTITY | CACHE),
        ("agent", 0),
        ("status", 0),
        ("config check", 0),
        ("config init", REPO | IDENTITY | WRITER),
        ("export", OPEN | IDENTITY),
        ("verify", CACHE),
        ("usage", OPEN | IDENTITY | WRITER),
        ("report", OPEN | IDENTITY | WRITER),
        ("recipe list", 0),
        ("recipe show", 0),
        ("member add", OPEN | IDENTITY),
        ("member list", OPEN | IDENTITY),
        ("member remove", OPEN | IDENTITY),
        ("member quota", OPEN | IDENTITY),
        ("member recipients", OPEN | IDENTITY),
        ("group add", OPEN | IDENTITY),
        ("group members", OPEN | IDENTITY),
        ("group quota", OPEN | IDENTITY),
        ("group remove", OPEN | IDENTITY),
        ("group list", OPEN | IDENTITY | WRITER),
        ("admin whoami", IDENTITY),
        ("admin add", OPEN | IDENTITY),
        ("admin remove", OPEN | IDENTITY),
        ("admin approve", OPEN | IDENTITY),
        ("admin list", OPEN | IDENTITY),
        ("key export-writer", OPEN | IDENTITY),
        ("key list", OPEN | IDENTITY),
        ("key revoke", OPEN | IDENTITY),
        ("log show", OPEN | IDENTITY | TENANT),
        ("log verify", OPEN | IDENTITY | WRITER | TENANT),
        ("log witness", OPEN | WRITER),
        ("log policy", OPEN | IDENTITY),
        ("recovery init", OPEN | IDENTITY),
        ("recovery request", OPEN | IDENTITY),
        ("recovery approve", OPEN | IDENTITY),
        ("recovery status", OPEN | IDENTITY),
        ("recovery reshare", OPEN | IDENTITY),
    ]
};

/// The argument IDs (`GlobalArgs` field names) of each option.
const IDS: &[(u8, &[&str])] = &[
    (flag::REPO, &["repo"]),
    (flag::IDENTITY, &["identity_file"]),
    (flag::WRITER, &["writer_key"]),
    (flag::TENANT, &["tenant"]),
    (flag::CACHE, &["cache_dir", "no_cache"]),
    (flag::FRESHNESS, &["freshness"]),
];

fn scope_of(path: &str) -> Option<u8> {
    SCOPES.iter().find(|(p, _)| *p == path).map(|(_, f)| *f)
}

/// Gives each subcommand the options of [`SCOPES`] it uses (a group such as `coop log` those
/// all its subcommands use), as the top level has them, environment variables included.
pub fn attach(cmd: clap::Command) -> clap::Command {
    // After a subcommand's own options: its repository and key options, then --json & co.
    let mut cmd = cmd;
    for (i, id) in ["json", "quiet", "verbose"].into_iter().enumerate() {
        cmd = cmd.mut_arg(id, |a| a.display_order(2000 + i));
    }
    let top: Vec<clap::Arg> = cmd
        .get_arguments()
        .cloned()
        .enumerate()
        .map(|(i, a)| a.display_order(1000 + i))
        .collect();
    fn walk(cmd: clap::Command, path: &str, top: &[clap::Arg]) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let mut cmd = cmd;
        for name in names {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path} {name}")
            };
            cmd = cmd.mut_subcommand(&name, |sub| {
                let flags = flags_below(&sub, &sub_path);
                let mut sub = walk(sub, &sub_path, top);
                for (bit, ids) in IDS {
                    if flags & bit != 0 {
                        for id in *ids {
                            if let Some(a) = top.iter().find(|a| a.get_id() == id) {
                                sub = sub.arg(a.clone());
                            }
                        }
                    }
                }
                sub
            });
        }
        cmd
    }
    walk(cmd, "", &top)
}

/// The options a subcommand uses; for a group, those every subcommand of it uses.
fn flags_below(cmd: &clap::Command, path: &str) -> u8 {
    if cmd.get_subcommands().next().is_none() {
        return scope_of(path).unwrap_or(0);
    }
    cmd.get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| flags_below(c, &format!("{path} {}", c.get_name())))
        .fold(0xff, |a, b| a & b)
}

impl GlobalArgs {
    /// Takes the options given after the subcommand names (on a group, then on the
    /// subcommand itself) over those given before them or in the environment.
    pub fn merge_from(&mut self, top: &ArgMatches) {
        use clap::parser::ValueSource;
        let mut m = top;
        while let Some((_, sub)) = m.subcommand() {
            m = sub;
            let given = |id: &str| {
                m.try_get_raw(id).ok().flatten().is_some()
                    && m.value_source(id) == Some(ValueSource::CommandLine)
            };
            if given("repo") {
                self.repo = m.get_one::<String>("repo").cloned();
            }
            if given("identity_file") {
                self.identity_file = m.get_one::<PathBuf>("identity_file").cloned();
            }
            if given("writer_key") {
                self.writer_key = m.get_one::<PathBuf>("writer_key").cloned();
            }
            if given("tenant") {
                self.tenant = m.get_one::<String>("tenant").cloned();
            }
            if given("cache_dir") {
                self.cache_dir = m.get_one::<PathBuf>("cache_dir").cloned();
            }
            if given("no_cache") {
                self.no_cache = m.get_flag("no_cache");
            }
            if given("freshness") {
                if let Some(f) = m.get_one::<String>("freshness") {
                    self.freshness = f.clone();
                }
            }
        }
    }
}
