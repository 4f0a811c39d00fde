//! The agent's TOML config (`/etc/coop/agent.toml`) and `coop config check`.
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

use crate::backup::SourceCommand;
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
    /// Random delay added to each scheduled run (e.g. "5m"), spreading load.
    #[serde(default)]
    pub jitter: Option<Spanned<String>>,
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
    pub name: String,
    /// cron expression, 5 fields (or 6 with seconds).
    pub schedule: Spanned<String>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub commands: Vec<SourceCommand>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub one_file_system: bool,
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
    pub retention: Option<Retention>,
    /// Run the job once per member: `"all"` or a list of names. Sources may use `{member}`;
    /// each member's data becomes a snapshot in the tenant `member/NAME`.
    pub members: Option<MemberSelect>,
    /// SQL sources: the query is fed to psql on stdin with the member name as the psql
    /// variable `member` (use `:'member'` in the query); never spliced into the SQL text.
    #[serde(default)]
    pub sql: Vec<SqlSource>,
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

/// A problem in a config file, with its line (1-based) where known.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a config; a syntax or schema error is returned with its line.
pub fn parse(text: &str) -> Result<AgentConfig, ConfigProblem> {
    toml::from_str::<AgentConfig>(text).map_err(|e| ConfigProblem {
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_string(),
    })
}

/// Parses a cron expression (5 fields, or 6 with seconds).
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(s)
        .map_err(|e| e.to_string())
}

/// Checks everything that can be checked without running a job. With `reach`, also tries
/// to open every store.
pub fn check(text: &str, reach: bool) -> (Option<AgentConfig>, Vec<ConfigProblem>) {
    let (cfg, problems, _) = check_with_notes(text, reach);
    (cfg, problems)
}

/// Like [`check`], also returning notes on what each S3 server supports.
pub fn check_with_notes(
    text: &str,
    reach: bool,
) -> (Option<AgentConfig>, Vec<ConfigProblem>, Vec<String>) {
    let mut notes = Vec::new();
    let cfg = match parse(text) {
        Ok(c) => c,
        Err(p) => return (None, vec![p], notes),
    };
    let mut out = Vec::new();
    let at = |sp: std::ops::Range<usize>| Some(line_of(text, sp.start));
    match (&cfg.site.identity_file, &cfg.site.writer_key) {
        (None, None) => out.push(ConfigProblem {
            line: None,
            message: "[site] needs identity_file or writer_key".into(),
        }),
        (Some(a), Some(_)) => out.push(ConfigProblem {
            line: at(a.span()),
            message: "give identity_file or writer_key, not both".into(),
        }),
        _ => {}
    }
    for f in [&cfg.site.identity_file, &cfg.site.writer_key]
        .into_iter()
        .flatten()
    {
        if !f.get_ref().exists() {
            out.push(ConfigProblem {
                line: at(f.span()),
                message: format!("{} does not exist", f.get_ref().display()),
            });
        }
    }
    if let Some(j) = &cfg.site.jitter {
        if let Err(e) = humantime::parse_duration(j.get_ref()) {
            out.push(ConfigProblem {
                line: at(j.span()),
                message: format!("bad jitter {:?}: {e}", j.get_ref()),
            });
        }
    }
    let mut names = std::collections::HashSet::new();
    for j in &cfg.jobs {
        if !names.insert(&j.name) {
            out.push(ConfigProblem {
                line: at(j.schedule.span()),
                message: format!("two jobs are named {:?}", j.name),
            });
        }
        if let Err(e) = parse_cron(j.schedule.get_ref()) {
            out.push(ConfigProblem {
                line: at(j.schedule.span()),
                message: format!(
                    "job {:?}: bad cron schedule {:?}: {e}",
                    j.name,
                    j.schedule.get_ref()
                ),
            });
        }
        if let Some(MemberSelect::All(s)) = &j.members {
            if s != "all" {
                out.push(ConfigProblem {
                    line: at(j.schedule.span()),
                    message: format!(
                        "job {:?}: members must be \"all\" or a list of names",
                        j.name
                    ),
                });
            }
        }
        if j.members.is_none()
            && (!j.sql.is_empty()
                || j.paths
                    .iter()
                    .any(|p| p.to_string_lossy().contains("{member}")))
        {
            out.push(ConfigProblem {
                line: at(j.schedule.span()),
                message: format!(
                    "job {:?} uses {{member}} or sql but has no `members`",
                    j.name
                ),
            });
        }
        if j.paths.is_empty() && j.commands.is_empty() && j.sql.is_empty() {
            out.push(ConfigProblem {
                line: at(j.schedule.span()),
                message: format!("job {:?} has no paths and no commands", j.name),
            });
        }
        if let Some(w) = j.retention.as_ref().and_then(|r| r.keep_within.as_ref()) {
            if let Err(e) = humantime::parse_duration(w) {
                out.push(ConfigProblem {
                    line: at(j.schedule.span()),
                    message: format!("job {:?}: bad keep_within {w:?}: {e}", j.name),
                });
            }
        }
    }
    for p in &cfg.peers {
        for (what, v) in [
            ("upload_limit", &p.upload_limit),
            ("retry_max", &p.retry_max),
        ] {
            if let Some(v) = v {
                let ok = if what == "upload_limit" {
                    parse_size(v.get_ref()).is_some()
                } else {
                    humantime::parse_duration(v.get_ref()).is_ok()
                };
                if !ok {
                    out.push(ConfigProblem {
                        line: at(v.span()),
                        message: format!("peer {:?}: bad {what} {:?}", p.name, v.get_ref()),
                    });
                }
            }
        }
    }
    if reach {
        let stores = std::iter::once((&cfg.site.repo, &cfg.site.s3, "site"))
            .chain(cfg.peers.iter().map(|p| (&p.repo, &p.s3, "peer")));
        for (repo, s3, what) in stores {
            let store = crate::store::Store::open_with(repo.get_ref(), false, s3);
            if let (Ok(s), true) = (&store, repo.get_ref().starts_with("s3://")) {
                match s.probe() {
                    Ok(n) => {
                        notes.extend(n.into_iter().map(|n| format!("{}: {n}", repo.get_ref())))
                    }
                    Err(e) => notes.push(format!("{}: could not probe: {e}", repo.get_ref())),
                }
            }
            let res = store.and_then(|s| s.exists(crate::repo::CONFIG));
            match res {
                Ok(true) => {}
                Ok(false) if what == "peer" => {} // replication creates it
                Ok(false) => out.push(ConfigProblem {
                    line: at(repo.span()),
                    message: format!(
                        "{} is reachable but holds no coop repository (run coop init)",
                        repo.get_ref()
                    ),
                }),
                Err(e) if e.is_not_found() && what == "peer" => {}
                Err(e) => out.push(ConfigProblem {
                    line: at(repo.span()),
                    message: format!("{what} store {} is unreachable: {e}", repo.get_ref()),
                }),
            }
        }
    }
    (Some(cfg), out, notes)
}

/// Parses `500KiB`, `2MiB`, `1GB`, `4096`.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1048576.0,
        "g" | "gb" => 1e9,
        "gib" => 1073741824.0,
        "t" | "tb" => 1e12,
        "tib" => 1099511627776.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_line() {
        let text = "[site]\nname = \"a\"\nrepo = \"/nonexistent\"\nidentity_file = \"/etc/hostname\"\n\n[[job]]\nname = \"j\"\nschedule = \"61 * * * *\"\npaths = [\"/tmp\"]\n";
        let (_, p) = check(text, false);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, Some(8));
        let (_, p) = check("[site]\nname = \"a\"\nrepo = \"r\"\nbogus = 1\n", false);
        assert_eq!(p[0].line, Some(4), "{p:?}");
        assert!(p[0].message.contains("bogus"));
        let (_, p) = check("[site\n", false);
        assert_eq!(p[0].line, Some(1));
    }

    #[test]
    fn shipped_examples_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            let (cfg, problems) = check(&text, false);
            assert!(cfg.is_some(), "{}: {problems:?}", p.display());
            // Only missing key files may be reported (they do not exist on a build machine).
            assert!(
                problems
                    .iter()
                    .all(|x| x.message.contains("does not exist")),
                "{}: {problems:?}",
                p.display()
            );
            n += 1;
        }
        assert!(n >= 3);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500KiB"), Some(512_000));
        assert_eq!(parse_size("2MiB"), Some(2 << 20));
        assert_eq!(parse_size("x"), None);
    }
}
