//! The agent's TOML config (`/etc/coop/agent.toml`) as written: serde structs with spans,
//! resolved into typed values by [`super::Settings`].
//!
//! ```toml
//! [site]
//! name = "hackspace"
//! repo = "/srv/coop/repo"
//! identity_file = "/etc/coop/identity.txt"   # or writer_key = "/etc/coop/writer.key"
//!
//! [[peer]]
//! name = "rented-vm"
//! repo = "s3://coop-backups/hackspace"
//! upload_limit = "2MiB"
//!
//! [[job]]
//! name = "forgejo"
//! schedule = "0 3 * * *"
//! paths = ["/srv/forgejo"]
//! commands = [{ command = "pg_dump -Fc forgejo", filename = "forgejo.dump" }]
//! retention = { keep_daily = 7, keep_weekly = 4 }
//! ```

use crate::backup::{DirCommand, SourceCommand};
use crate::store::S3Options;
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub site: Site,
    #[serde(default, rename = "peer")]
    pub peers: Vec<Peer>,
    #[serde(default, rename = "job")]
    pub jobs: Vec<Job>,
    #[serde(default, rename = "witness")]
    pub witnesses: Vec<Witness>,
    /// The cooperative's facts, published by `coop report` (docs/TRANSPARENCY.md).
    pub cooperative: Option<Cooperative>,
}

/// The cooperative's facts: who runs the sites, what they cost, the money to run them.
///
/// ```toml
/// [cooperative]
/// name = "Hackspace Kollektiv eG"
/// legal_form = "eingetragene Genossenschaft"
/// language = "de"                 # the report page's language: "de" or "en"
/// currency = "EUR"
/// balance = 2400.0                # money set aside for the running costs
/// balance_date = "2026-03-31"
/// fixed_share_percent = 20        # split equally among members; the rest by stored GB-month
///
/// [[cooperative.site]]
/// name = "hackspace"              # [site] name or a [[peer]] name
/// provider = "Hackspace e.V., own hardware"
/// location = "Leipzig, DE"
/// energy_source = "Polarstern (hydro)"
/// renewable = true
/// cpu_watts = 12                  # watts one busy core draws, for energy estimates
/// costs = { hardware = 8.50, power = 6.20, internet = 15.00 }   # per month
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cooperative {
    pub name: Spanned<String>,
    pub legal_form: Option<String>,
    /// "de" or "en" (default "en").
    pub language: Option<Spanned<String>>,
    /// ISO 4217 code of every amount, e.g. "EUR".
    pub currency: Option<Spanned<String>>,
    /// Money available for the running costs.
    pub balance: Option<Spanned<f64>>,
    /// When the balance was taken, YYYY-MM-DD.
    pub balance_date: Option<Spanned<String>>,
    /// Part of the monthly costs split equally among members, in percent (default 0).
    pub fixed_share_percent: Option<Spanned<f64>>,
    #[serde(default, rename = "site")]
    pub sites: Vec<SiteFacts>,
}

/// One site's facts: provider, place, energy and monthly costs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFacts {
    /// The site's name: [site] name, or the name of a [[peer]].
    pub name: Spanned<String>,
    /// Who provides the machine or the hosting.
    pub provider: Option<String>,
    /// Where it stands (city, country).
    pub location: Option<String>,
    /// Who supplies the site's electricity (and from what).
    pub energy_source: Option<String>,
    /// Whether that electricity is renewable.
    pub renewable: Option<bool>,
    /// Watts one busy CPU core draws, for energy estimates where RAPL cannot be read.
    pub cpu_watts: Option<Spanned<f64>>,
    /// Monthly costs by item (hardware, hosting, power, domain, …), in the currency.
    #[serde(default)]
    pub costs: std::collections::BTreeMap<String, Spanned<f64>>,
}

/// A copy of another site's repository held here, whose access logs this site witnesses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    pub repo: Spanned<String>,
    #[serde(default)]
    pub s3: S3Options,
    /// That repository's admin key (hex); pinned at first sight when not given.
    pub admin_key: Option<String>,
    /// Other copies of the same repository this site can reach (other sites' replicas of
    /// it): the witness compares its copy's logs with theirs and carries entries,
    /// checkpoints and cosignatures between them, so that a site showing two witnesses two
    /// branches is found, and the survivors of a lost site still witness each other's copies.
    #[serde(default, rename = "copy")]
    pub copies: Vec<Copy>,
}

/// Another copy of a witnessed repository (`[[witness.copy]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Copy {
    pub repo: Spanned<String>,
    #[serde(default)]
    pub s3: S3Options,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    pub name: String,
    /// This site's own repository.
    pub repo: Spanned<String>,
    #[serde(default)]
    pub s3: S3Options,
    /// Identity (reads and writes) …
    pub identity_file: Option<Spanned<PathBuf>>,
    /// … or writer key (writes only). One of the two.
    pub writer_key: Option<Spanned<PathBuf>>,
    /// Catalog, job history and locks (default: $XDG_CACHE_HOME/coop or /var/cache/coop).
    pub cache_dir: Option<PathBuf>,
    /// Prometheus node-exporter textfile, written atomically after every job.
    pub metrics_file: Option<PathBuf>,
    /// Default healthchecks URL for jobs without one.
    pub healthcheck_url: Option<String>,
    /// Default hook for jobs without one: a shell command run when a job fails, with the
    /// job, its caretaker and the message in the environment (`COOP_CARETAKER_CONTACT`…).
    pub notify_command: Option<String>,
    /// Random delay added to each scheduled run (e.g. "5m"), spreading load.
    #[serde(default)]
    pub jitter: Option<Spanned<String>>,
    /// How often the daemon looks for access-log growth to carry to its peers (and witnesses
    /// the logs it holds), e.g. "60s" (the default).
    #[serde(default)]
    pub log_sync_interval: Option<Spanned<String>>,
}

/// Parses a config; a syntax or schema error is returned with its line.
pub fn parse(text: &str) -> Result<AgentConfig, super::ConfigProblem> {
    toml::from_str::<AgentConfig>(text).map_err(|e| super::ConfigProblem {
        line: e.span().map(|s| super::line_of(text, s.start)),
        message: e.message().to_string(),
        warning: false,
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    pub name: String,
    pub repo: Spanned<String>,
    #[serde(default)]
    pub s3: S3Options,
    /// Upload limit per second, e.g. "500KiB".
    pub upload_limit: Option<Spanned<String>>,
    /// Longest wait between retries while the peer is down (default "30m").
    pub retry_max: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    pub keep_within: Option<String>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// Run prune after forget.
    #[serde(default)]
    pub prune: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub name: Spanned<String>,
    /// cron expression, 5 fields (or 6 with seconds), in UTC.
    pub schedule: Spanned<String>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub commands: Vec<SourceCommand>,
    /// Commands that write a directory (its path replaces `{dir}`), backed up as `/<dirname>`.
    #[serde(default)]
    pub command_dirs: Vec<DirCommand>,
    /// Shell scripts whose output lines are more paths to back up (absolute, globs expanded),
    /// run each time the job runs (per member with `$COOP_MEMBER` set).
    #[serde(default)]
    pub paths_from_command: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub one_file_system: bool,
    /// Absolute directories at or below which CACHEDIR.TAG is not honoured (shared folders).
    #[serde(default)]
    pub ignore_cachedir_tag_below: Vec<PathBuf>,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Shell commands run before the backup; if one fails, the job fails.
    #[serde(default)]
    pub before: Vec<String>,
    /// Shell commands run after the backup (also after a failed one).
    #[serde(default)]
    pub after: Vec<String>,
    pub healthcheck_url: Option<String>,
    /// Who looks after the job: "Name <contact>" (shown by `coop status` and the report; a
    /// failure's notifications name them and reach them through `notify_command`).
    pub caretaker: Option<Spanned<String>>,
    /// Run when the job fails (else the site's `notify_command`).
    pub notify_command: Option<String>,
    pub retention: Option<Spanned<Retention>>,
    /// Run the job once per member: `"all"` or a list of names. Sources may use `{member}`;
    /// each member's data becomes a snapshot in the tenant `member/NAME`.
    pub members: Option<Spanned<MemberSelect>>,
    /// SQL sources: the query is fed to psql on stdin with the member name as the psql
    /// variable `member` (use `:'member'` in the query); never spliced into the SQL text.
    #[serde(default)]
    pub sql: Vec<SqlSource>,
    /// Instead of a backup: write the transparency report into a dated archive (issue 30).
    pub report: Option<Spanned<ReportJob>>,
    /// Instead of a backup: a restore drill of other jobs' latest snapshots (issue 30).
    pub drill: Option<Spanned<DrillJob>>,
}

/// `report = { dir = "/var/www/coop-report", since = "92d", setup = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportJob {
    pub dir: PathBuf,
    /// The period each report covers (default 92 days: a quarter).
    pub since: Option<String>,
    /// Also write the published setup beside each report (default true).
    #[serde(default = "yes")]
    pub setup: bool,
}

fn yes() -> bool {
    true
}

/// `drill = { jobs = ["forgejo"], sample = 20 }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillJob {
    /// The backup jobs whose latest snapshot is test-restored (default: every backup job of
    /// the service tenant).
    #[serde(default)]
    pub jobs: Vec<String>,
    /// Files restored per snapshot (default 20), spread over the snapshot.
    pub sample: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MemberSelect {
    All(String),
    Names(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlSource {
    pub database: String,
    pub query: String,
    pub filename: String,
    /// Extra psql arguments (host, port, user), e.g. "-h 127.0.0.1 -U postgres".
    #[serde(default)]
    pub psql_args: String,
}

fn default_tenant() -> String {
    "coop".into()
}
