//! Options every subcommand takes, each with an environment variable.

use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct GlobalArgs {
    /// Repository location: a directory path, file://PATH or s3://BUCKET/PREFIX.
    #[arg(long, short = 'r', env = "COOP_REPO", global = true)]
    pub repo: Option<String>,
    /// age identity file or OpenSSH private key (default: $XDG_CONFIG_HOME/coop/identity.txt).
    #[arg(long, short = 'i', env = "COOP_IDENTITY_FILE", global = true)]
    pub identity_file: Option<PathBuf>,
    /// Writer key file: back up without being able to read anything.
    #[arg(long, env = "COOP_WRITER_KEY", global = true)]
    pub writer_key: Option<PathBuf>,
    /// Tenant to work in (default: coop; check and prune cover every tenant you can read).
    #[arg(long, env = "COOP_TENANT", global = true)]
    pub tenant: Option<String>,
    /// Machine-readable JSON output.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_JSON", global = true)]
    pub json: bool,
    /// Directory for the catalog cache (default: $XDG_CACHE_HOME/coop).
    #[arg(long, env = "COOP_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// Do not use the catalog cache.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_NO_CACHE", global = true)]
    pub no_cache: bool,
    /// How old the newest witness cosignature in a store may be before reading commands warn
    /// that it may show an old state (only where the writer list asks for witnesses); `off`
    /// disables the check.
    #[arg(long, env = "COOP_FRESHNESS", global = true, default_value = "3d")]
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
