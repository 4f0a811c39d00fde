//! The agent's settings: agent.toml parsed and resolved once into typed values.
//!
//! - [`raw`]: the TOML as written (serde structs with spans, for line numbers).
//! - this module: [`Settings`], every size, duration, schedule and retention rule resolved
//!   and checked, with a line-numbered [`ConfigProblem`] for each mistake. `coop config
//!   check` reports them; `coop agent` refuses to start on the same errors.
//! - [`check`]: what can only be checked on this machine (files, stores, keys).
//!
//! Schedules are cron expressions in UTC.

pub mod check;
mod cooperative;
mod jobs;
pub mod raw;

use cooperative::resolve_cooperative;
use jobs::resolve_job;

use crate::backup::{DirCommand, SourceCommand};
use crate::store::S3Options;
use std::path::PathBuf;
use std::time::Duration;

/// A problem in a config file, with its line (1-based) where known. Warnings do not stop
/// the agent (a peer that is down, say); errors do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = if self.warning { "warning: " } else { "" };
        match self.line {
            Some(l) => write!(f, "line {l}: {w}{}", self.message),
            None => write!(f, "{w}{}", self.message),
        }
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a size: `4096`, `500KiB`, `2MiB`, `1GiB` (powers of 1024) or `500KB`, `2MB`,
/// `1GB` (powers of 1000). A lowercase `b` could mean bits, so `500kb` is refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500KiB, 2MiB, 5GiB)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1048576.0,
        "G" | "GB" => 1e9,
        "GiB" => 1073741824.0,
        "T" | "TB" => 1e12,
        "TiB" => 1099511627776.0,
        u if u.to_ascii_lowercase().ends_with('b') && !u.ends_with('B') => {
            return Err(format!(
                "{s:?} is ambiguous (a lowercase b means bits): write {num}KB, {num}KiB, {num}MB or {num}MiB"
            ))
        }
        u => return Err(format!("{s:?}: unknown unit {u:?} (use KiB, MiB, GiB, TiB, or KB, MB, GB, TB)")),
    };
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("{s:?} is not a size"));
    }
    Ok((n * mult) as u64)
}

/// Parses a duration like `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration (e.g. 30m, 12h, 7d): {e}"))
}

const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
}

/// Parses a cron expression (5 fields, or 6 with seconds first); an error names the field.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    let fields: Vec<&str> = s.split_whitespace().collect();
    if !(fields.len() == 5 || fields.len() == 6) {
        return Err(format!(
            "{s:?} has {} fields; a schedule has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first",
            fields.len()
        ));
    }
    cron_parser().parse(s).map_err(|e| {
        let off = fields.len() - 5;
        let names: Vec<&str> = if off == 1 {
            std::iter::once("second").chain(CRON_FIELDS).collect()
        } else {
            CRON_FIELDS.to_vec()
        };
        for (i, f) in fields.iter().enumerate() {
            let probe: Vec<&str> = (0..fields.len())
                .map(|j| if j == i { *f } else { "*" })
                .collect();
            if cron_parser().parse(&probe.join(" ")).is_err() {
                return format!("{s:?}: the {} field {f:?} is not valid ({e})", names[i]);
            }
        }
        format!("{s:?}: {e}")
    })
}

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

    /// Parses and resolves a config. Every problem found is returned, with its line.
    pub fn resolve(text: &str) -> Result<Settings, Vec<ConfigProblem>> {
        let cfg = raw::parse(text).map_err(|p| vec![p])?;
        let mut p = Problems {
            text,
            list: Vec::new(),
        };
        // A recipe's values still to be filled in (`coop recipe show` marks them).
        for (i, l) in text.lines().enumerate() {
            if let Some(at) = l.find("<FILL IN:") {
                let what = l[at..]
                    .split('>')
                    .next()
                    .unwrap_or("")
                    .trim_start_matches('<');
                p.list.push(ConfigProblem {
                    line: Some(i + 1),
                    message: format!("a value is still to be filled in: {what}"),
                    warning: false,
                });
            }
        }
        let site = resolve_site(&cfg.site, &mut p);
        let mut names = std::collections::HashSet::new();
        let jobs: Vec<Option<JobSettings>> = cfg
            .jobs
            .iter()
            .map(|j| {
                if !names.insert(j.name.get_ref().clone()) {
                    p.err(
                        j.name.span(),
                        format!("two jobs are named {:?}", j.name.get_ref()),
                    );
                }
                resolve_job(j, &mut p)
            })
            .collect();
        // A drill names backup jobs of this config.
        for (raw, job) in cfg.jobs.iter().zip(&jobs) {
            if let Some(JobSettings {
                action: JobAction::Drill { jobs: names, .. },
                ..
            }) = job
            {
                for n in names {
                    let target = jobs.iter().flatten().find(|x| &x.name == n);
                    if !matches!(
                        target,
                        Some(JobSettings {
                            action: JobAction::Backup,
                            ..
                        })
                    ) {
                        p.err(
                            raw.name.span(),
                            format!(
                                "job {:?}: drill names {n:?}, which is no backup job here",
                                raw.name.get_ref()
                            ),
                        );
                    }
                }
            }
        }
        let peers: Vec<Option<PeerSettings>> =
            cfg.peers.iter().map(|x| resolve_peer(x, &mut p)).collect();
        let mut witnesses = Vec::new();
        for w in &cfg.witnesses {
            let admin_key = match &w.admin_key {
                Some(h) => match hex::decode(h.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                {
                    Some(k) => Some(k),
                    None => {
                        p.err(
                            w.repo.span(),
                            "witness admin_key must be 64 hex characters".to_string(),
                        );
                        None
                    }
                },
                None => None,
            };
            witnesses.push(WitnessSettings {
                repo: w.repo.get_ref().clone(),
                s3: w.s3.clone(),
                admin_key,
                copies: w
                    .copies
                    .iter()
                    .map(|c| (c.repo.get_ref().clone(), c.s3.clone()))
                    .collect(),
            });
        }
        let cooperative = cfg
            .cooperative
            .as_ref()
            .and_then(|c| resolve_cooperative(c, &mut p));
        if !p.list.is_empty() {
            return Err(p.list);
        }
        Ok(Settings {
            cooperative,
            site: site.expect("no problems"),
            peers: peers.into_iter().map(|x| x.expect("no problems")).collect(),
            jobs: jobs.into_iter().map(|x| x.expect("no problems")).collect(),
            witnesses,
        })
    }
}

pub(super) struct Problems<'t> {
    pub(super) text: &'t str,
    pub(super) list: Vec<ConfigProblem>,
}

impl Problems<'_> {
    pub(super) fn err(&mut self, span: std::ops::Range<usize>, message: String) {
        self.list.push(ConfigProblem {
            line: Some(line_of(self.text, span.start)),
            message,
            warning: false,
        });
    }
}

fn resolve_site(s: &raw::Site, p: &mut Problems) -> Option<SiteSettings> {
    let key = match (&s.identity_file, &s.writer_key) {
        (None, None) => {
            p.list.push(ConfigProblem {
                line: None,
                message: "[site] needs identity_file or writer_key".into(),
                warning: false,
            });
            None
        }
        (Some(a), Some(_)) => {
            p.err(
                a.span(),
                "give identity_file or writer_key, not both".into(),
            );
            None
        }
        (Some(i), None) => Some(KeySource::Identity(i.get_ref().clone())),
        (None, Some(w)) => Some(KeySource::Writer(w.get_ref().clone())),
    };
    let jitter = match &s.jitter {
        Some(j) => match parse_duration(j.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                p.err(j.span(), format!("jitter: {e}"));
                None
            }
        },
        None => None,
    };
    let log_sync_interval = match &s.log_sync_interval {
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(86_400) => d,
            Ok(_) => {
                p.err(
                    v.span(),
                    "log_sync_interval: give between 1s and 24h".to_string(),
                );
                DEFAULT_LOG_SYNC_INTERVAL
            }
            Err(e) => {
                p.err(v.span(), format!("log_sync_interval: {e}"));
                DEFAULT_LOG_SYNC_INTERVAL
            }
        },
        None => DEFAULT_LOG_SYNC_INTERVAL,
    };
    let cache_dir = s
        .cache_dir
        .clone()
        .or_else(crate::catalog::default_cache_dir)
        .unwrap_or_else(|| PathBuf::from("/var/cache/coop"));
    Some(SiteSettings {
        name: s.name.clone(),
        repo: s.repo.get_ref().clone(),
        s3: s.s3.clone(),
        key: key?,
        cache_dir,
        metrics_file: s.metrics_file.clone(),
        healthcheck_url: s.healthcheck_url.clone(),
        notify_command: s.notify_command.clone(),
        jitter,
        log_sync_interval,
    })
}

fn resolve_peer(x: &raw::Peer, p: &mut Problems) -> Option<PeerSettings> {
    let mut ok = true;
    let upload_limit = match &x.upload_limit {
        Some(v) => match parse_size(v.get_ref()) {
            Ok(n) => Some(n),
            Err(e) => {
                p.err(v.span(), format!("peer {:?}: upload_limit {e}", x.name));
                ok = false;
                None
            }
        },
        None => None,
    };
    let retry_max = match &x.retry_max {
        Some(v) => match parse_duration(v.get_ref()) {
            Ok(d) => d,
            Err(e) => {
                p.err(v.span(), format!("peer {:?}: retry_max {e}", x.name));
                ok = false;
                Duration::ZERO
            }
        },
        None => Duration::from_secs(1800),
    };
    ok.then(|| PeerSettings {
        name: x.name.clone(),
        repo: x.repo.get_ref().clone(),
        s3: x.s3.clone(),
        upload_limit,
        retry_max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caretaker_is_a_name_and_a_contact() {
        let c = Caretaker::parse(" Anna Beispiel <anna@example.org> ").unwrap();
        assert_eq!(
            (c.name.as_str(), c.contact.as_str()),
            ("Anna Beispiel", "anna@example.org")
        );
        assert_eq!(c.to_string(), "Anna Beispiel <anna@example.org>");
        assert_eq!(
            Caretaker::parse("Ben <@ben:example.org>").unwrap().contact,
            "@ben:example.org"
        );
        for bad in [
            "anna@example.org",
            "<anna@example.org>",
            "Anna <>",
            "Anna",
            "A <b> c",
            "A<b>\n",
            "A > <b>",
        ] {
            assert!(Caretaker::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "[site]\nname = \"a\"\nrepo = \"/nonexistent\"\nidentity_file = \"/etc/hostname\"\n\n[[job]]\nname = \"j\"\nschedule = \"61 * * * *\"\npaths = [\"/tmp\"]\n";
        let p = Settings::resolve(text).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, Some(8));
        assert!(p[0].message.contains("minute"), "{}", p[0].message);
        let p = Settings::resolve("[site]\nname = \"a\"\nrepo = \"r\"\nbogus = 1\n").unwrap_err();
        assert_eq!(p[0].line, Some(4), "{p:?}");
        assert!(p[0].message.contains("bogus"));
        let p = Settings::resolve("[site\n").unwrap_err();
        assert_eq!(p[0].line, Some(1));
        let text = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n[[peer]]\nname = \"p\"\nrepo = \"/x\"\nupload_limit = \"500kb\"\n";
        let p = Settings::resolve(text).unwrap_err();
        assert_eq!(p[0].line, Some(9));
        assert!(p[0].message.contains("ambiguous"), "{}", p[0].message);
    }

    #[test]
    fn log_sync_interval_defaults_to_a_minute_and_is_checked() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n";
        let s = Settings::resolve(base).unwrap();
        assert_eq!(s.site.log_sync_interval, Duration::from_secs(60));
        let s = Settings::resolve(&format!("{base}log_sync_interval = \"5s\"\n")).unwrap();
        assert_eq!(s.site.log_sync_interval, Duration::from_secs(5));
        for bad in ["0s", "2d", "soon"] {
            let p =
                Settings::resolve(&format!("{base}log_sync_interval = \"{bad}\"\n")).unwrap_err();
            assert_eq!(p[0].line, Some(5), "{bad}: {p:?}");
            assert!(p[0].message.contains("log_sync_interval"), "{p:?}");
        }
    }

    #[test]
    fn a_witness_lists_the_other_copies_it_compares_with() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n";
        let s = Settings::resolve(&format!(
            "{base}[[witness]]\nrepo = \"/srv/hackspace-here\"\n\n[[witness.copy]]\nrepo = \"s3://pi/hackspace\"\ns3 = {{ region = \"garage\" }}\n\n[[witness.copy]]\nrepo = \"/mnt/vm/hackspace\"\n"
        ))
        .unwrap();
        let copies: Vec<&str> = s.witnesses[0]
            .copies
            .iter()
            .map(|(u, _)| u.as_str())
            .collect();
        assert_eq!(copies, ["s3://pi/hackspace", "/mnt/vm/hackspace"]);
        assert!(Settings::resolve(&format!(
            "{base}[[witness]]\nrepo = \"x\"\n[[witness.copy]]\nurl = \"y\"\n"
        ))
        .is_err());
    }

    #[test]
    fn cooperative_facts_are_checked_with_their_lines() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n";
        let good = format!(
            "{base}[cooperative]\nname = \"C eG\"\nlanguage = \"de\"\ncurrency = \"EUR\"\nbalance = 1200\nfixed_share_percent = 25\n\n[[cooperative.site]]\nname = \"a\"\ncpu_watts = 10\ncosts = {{ power = 5, hosting = 7.5 }}\n"
        );
        let s = Settings::resolve(&good).unwrap();
        let c = s.cooperative.as_ref().unwrap();
        assert_eq!(c.language, Language::De);
        assert_eq!(c.balance, Some(1200.0));
        assert_eq!(s.cpu_watts(), Some(10.0));
        assert_eq!(s.site_facts("a").unwrap().monthly_costs(), 12.5);
        assert_eq!(
            s.site_facts("a").unwrap().costs,
            vec![("hosting".to_string(), 7.5), ("power".to_string(), 5.0)]
        );
        let cases: &[(&str, usize, &str)] = &[
            ("[cooperative]\nname = \"C\"\nlanguage = \"fr\"\n", 8, "language"),
            ("[cooperative]\nname = \"C\"\ncurrency = \"euro\"\n", 8, "ISO 4217"),
            ("[cooperative]\nname = \"C\"\nbalance = 5\n", 8, "no currency"),
            ("[cooperative]\nname = \"C\"\nfixed_share_percent = 120\n", 8, "between 0 and 100"),
            ("[cooperative]\nname = \"C\"\nbalance_date = \"31.3.2026\"\n", 8, "YYYY-MM-DD"),
            ("[cooperative]\nname = \"C\"\ncolour = \"red\"\n", 8, "colour"),
            ("[cooperative]\nname = \"C\"\ncurrency = \"EUR\"\n[[cooperative.site]]\nname = \"a\"\ncosts = { power = -3 }\n", 11, "not an amount"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\ncpu_watts = 0\n", 10, "cpu_watts"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\n[[cooperative.site]]\nname = \"a\"\n", 11, "two sites"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\nwatts = 3\n", 10, "watts"),
        ];
        for (extra, line, what) in cases {
            let p = Settings::resolve(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(p.len(), 1, "{extra}: {p:?}");
            assert_eq!(p[0].line, Some(*line), "{extra}: {p:?}");
            assert!(p[0].message.contains(what), "{extra}: {}", p[0].message);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500KiB"), Ok(512_000));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert!(parse_size("500kb").unwrap_err().contains("ambiguous"));
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn shipped_examples_resolve() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            if let Err(problems) = Settings::resolve(&text) {
                panic!("{}: {problems:?}", p.display());
            }
            n += 1;
        }
        assert!(n >= 3);
    }
}
