//! The resolved settings: the typed values `coop agent`, `coop report` and `config check`
//! read (jobs, peers, the site, the cooperative's facts, witnesses).

use super::*;

/// Which members a per-member job covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members {
    All,
    Names(Vec<String>),
}

/// A retention policy and whether to prune after it.
#[derive(Debug, Clone)]
pub struct RetentionSettings {
    pub policy: crate::forget::Policy,
    pub prune: bool,
}

#[derive(Debug, Clone)]
pub struct SqlSource {
    pub database: String,
    pub query: String,
    pub filename: String,
    pub psql_args: String,
}

/// One job, resolved.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub name: String,
    pub schedule: String,
    pub cron: croner::Cron,
    pub paths: Vec<PathBuf>,
    pub commands: Vec<SourceCommand>,
    pub command_dirs: Vec<DirCommand>,
    /// Scripts whose output lines are more paths (see `raw::Job::paths_from_command`).
    pub paths_from_command: Vec<String>,
    pub exclude: Vec<String>,
    pub one_file_system: bool,
    /// CACHEDIR.TAG is not honoured at or below these.
    pub ignore_cachedir_tag_below: Vec<PathBuf>,
    pub tenant: String,
    pub tags: Vec<String>,
    pub before: Vec<String>,
    pub after: Vec<String>,
    pub healthcheck_url: Option<String>,
    /// Who looks after the job.
    pub caretaker: Option<Caretaker>,
    /// Run when the job fails (the job's, else the site's).
    pub notify_command: Option<String>,
    pub retention: Option<RetentionSettings>,
    pub members: Option<Members>,
    pub sql: Vec<SqlSource>,
    /// What the job does: a backup (the default), a report archive or a restore drill.
    pub action: JobAction,
}

/// What a scheduled job does.
#[derive(Debug, Clone, Default)]
pub enum JobAction {
    #[default]
    Backup,
    /// Writes the transparency report (and the setup) into a dated archive under `dir`.
    Report {
        dir: PathBuf,
        since: Duration,
        setup: bool,
    },
    /// Restores `sample` files of each named job's latest snapshot into a scratch directory
    /// and checks them.
    Drill { jobs: Vec<String>, sample: usize },
}

/// A job's caretaker: `Name <contact>` (a mail address, a chat handle, a URL…).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caretaker {
    pub name: String,
    pub contact: String,
}

impl Caretaker {
    /// Parses `Name <contact>`: both parts non-empty, one `<…>` at the end, no control
    /// characters.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let bad = || {
            format!("caretaker {s:?} is not \"Name <contact>\" (e.g. \"Anna <anna@example.org>\")")
        };
        let t = s.trim();
        if s.chars().any(char::is_control) {
            return Err(bad());
        }
        let inner = t.strip_suffix('>').ok_or_else(bad)?;
        let (name, contact) = inner.rsplit_once('<').ok_or_else(bad)?;
        let (name, contact) = (name.trim(), contact.trim());
        if name.is_empty() || contact.is_empty() || name.contains(['<', '>']) {
            return Err(bad());
        }
        Ok(Self {
            name: name.into(),
            contact: contact.into(),
        })
    }
}

impl std::fmt::Display for Caretaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} <{}>", self.name, self.contact)
    }
}

/// One peer, resolved.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    pub name: String,
    pub repo: String,
    pub s3: S3Options,
    /// Bytes per second.
    pub upload_limit: Option<u64>,
    pub retry_max: Duration,
}

/// This site, resolved.
#[derive(Debug, Clone)]
pub struct SiteSettings {
    pub name: String,
    pub repo: String,
    pub s3: S3Options,
    pub key: KeySource,
    pub cache_dir: PathBuf,
    pub metrics_file: Option<PathBuf>,
    pub healthcheck_url: Option<String>,
    /// Run when a job without its own `notify_command` fails.
    pub notify_command: Option<String>,
    pub jitter: Option<Duration>,
    /// How often the daemon carries access-log growth to its peers (when the log listing
    /// changed) and witnesses the logs it holds.
    pub log_sync_interval: Duration,
}

/// The default `log_sync_interval`.
pub const DEFAULT_LOG_SYNC_INTERVAL: Duration = Duration::from_secs(60);

pub use crate::keys::KeySource;

/// agent.toml, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub site: SiteSettings,
    pub peers: Vec<PeerSettings>,
    pub jobs: Vec<JobSettings>,
    /// Copies of other sites' repositories whose access logs this site witnesses.
    pub witnesses: Vec<WitnessSettings>,
    /// The cooperative's facts for `coop report` (`[cooperative]`), if given.
    pub cooperative: Option<CooperativeSettings>,
}

/// The language of the report page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    De,
}

/// `[cooperative]`, resolved.
#[derive(Debug, Clone)]
pub struct CooperativeSettings {
    pub name: String,
    pub legal_form: Option<String>,
    pub language: Language,
    /// ISO 4217 code; set whenever costs or a balance are.
    pub currency: Option<String>,
    pub balance: Option<f64>,
    /// YYYY-MM-DD.
    pub balance_date: Option<String>,
    /// 0–100.
    pub fixed_share_percent: f64,
    pub sites: Vec<SiteFacts>,
}

/// `[[cooperative.site]]`, resolved.
#[derive(Debug, Clone)]
pub struct SiteFacts {
    pub name: String,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub energy_source: Option<String>,
    pub renewable: Option<bool>,
    pub cpu_watts: Option<f64>,
    /// Monthly costs: (item, amount), sorted by item.
    pub costs: Vec<(String, f64)>,
}

impl SiteFacts {
    /// The site's monthly costs, all items.
    pub fn monthly_costs(&self) -> f64 {
        self.costs.iter().map(|(_, v)| v).sum()
    }
}

/// One witnessed repository, resolved.
#[derive(Debug, Clone)]
pub struct WitnessSettings {
    pub repo: String,
    pub s3: S3Options,
    pub admin_key: Option<[u8; 32]>,
    /// Other copies of the same repository (URL, S3 options) whose logs are compared and
    /// carried to and from this one.
    pub copies: Vec<(String, S3Options)>,
}

impl Settings {
    pub fn job(&self, name: &str) -> Option<&JobSettings> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The facts `[[cooperative.site]]` gives for a site.
    pub fn site_facts(&self, name: &str) -> Option<&SiteFacts> {
        self.cooperative
            .as_ref()
            .and_then(|c| c.sites.iter().find(|s| s.name == name))
    }

    /// Watts per busy core of this site, for energy estimates.
    pub fn cpu_watts(&self) -> Option<f64> {
        self.site_facts(&self.site.name).and_then(|f| f.cpu_watts)
    }
}
