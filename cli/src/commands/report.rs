//! `coop report`: the transparency report (docs/TRANSPARENCY.md explains every figure).

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::history::History;
use coop_agent::report;
use coop_agent::{Access, Error, OpenOptions, Repo, ReportOptions, ReportSources};
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct ReportArgs {
    /// The site's agent config: its repository, key, peers and job history, and the
    /// cooperative's facts (`[cooperative]`, `[[cooperative.site]]`). Without it, the report
    /// covers what the repository alone tells (--repo and your identity) and lists the
    /// config keys that would fill the rest.
    #[arg(long, short = 'c', value_name = "FILE", env = "COOP_CONFIG")]
    config: Option<PathBuf>,
    /// Also write the report as one static page, DIR/index.html (no script, nothing
    /// fetched; readable on a phone, printable).
    #[arg(long, value_name = "DIR", env = "COOP_REPORT_HTML")]
    html: Option<PathBuf>,
    /// Limit the member-specific parts (members, cost shares, readers, accesses) to this
    /// member, for publishing to them alone; the cooperative-wide parts stay.
    #[arg(long, value_name = "NAME", env = "COOP_REPORT_MEMBER")]
    member: Option<String>,
    /// Start of the period: a span back from now (90d, 2w), a date (2026-01-01) or an RFC
    /// 3339 time. The period ends now.
    #[arg(
        long,
        value_name = "WHEN",
        default_value = "90d",
        env = "COOP_REPORT_SINCE"
    )]
    since: String,
    /// Publish the setup instead: every job (schedule, what it backs up and leaves out, and
    /// why, retention, last run), the sites it replicates to, encryption, who can read what,
    /// the witnesses; generated from --config and the repository, with no secret, address,
    /// command or member name (docs/TRANSPARENCY.md).
    #[arg(long, requires = "config", conflicts_with_all = ["member", "since"])]
    setup: bool,
}

/// agent.toml, resolved; a config with errors is refused (exit 2) with every problem.
fn load_settings(path: &Path) -> Result<coop_agent::settings::Settings> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })
        .context("reading the agent config")?;
    coop_agent::settings::Settings::resolve(&text).map_err(|problems| {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}:{p}", path.display()))
            .collect();
        Error::Invalid {
            what: format!(
                "the agent config has errors:\n{}\n(run `coop config check {}`)",
                lines.join("\n"),
                path.display()
            ),
        }
        .into()
    })
}

pub fn run(g: &Global, a: ReportArgs) -> Result<i32> {
    let p = g.printer();
    let settings = a.config.as_deref().map(load_settings).transpose()?;
    let (repo, access, history) = open(g, settings.as_ref())?;
    if a.setup {
        let s = settings.as_ref().expect("--setup requires --config");
        return setup(g, &a, &repo, &access, s, history.as_ref());
    }
    let until = report::now();
    let opts = ReportOptions {
        since: report::parse_since(&a.since, until)?,
        until,
        member: a.member.clone(),
    };
    if opts.since >= opts.until {
        return Err(Error::Invalid {
            what: format!("--since {} is not before now", a.since),
        }
        .into());
    }
    let r = report::gather(
        &ReportSources {
            repo: &repo,
            access: &access,
            settings: settings.as_ref(),
            history: history.as_ref(),
        },
        &opts,
    )?;
    for w in &r.warnings {
        p.warn(w);
    }
    if let Some(dir) = &a.html {
        let path = write_page(dir, &report::html::render(&r))?;
        p.note(format!("wrote {}", path.display()));
    }
    if g.json {
        p.json(&r)?;
    } else if a.html.is_none() {
        p.lines(&report::text::render(&r))?;
    }
    Ok(if r.integrity_problem {
        crate::exit::INTEGRITY
    } else {
        crate::exit::OK
    })
}

/// The repository, the key and the job history: with a config, the site's repository, key
/// and cache directory (an explicit --identity-file or --writer-key still wins for the key).
fn open(
    g: &Global,
    settings: Option<&coop_agent::settings::Settings>,
) -> Result<(Repo, Access, Option<History>)> {
    let (repo, access, cache_dir) = match settings {
        Some(s) => {
            let repo = Repo::open_with(
                &s.site.repo,
                &OpenOptions {
                    s3: s.site.s3.clone(),
                    cache_dir: Some(s.site.cache_dir.clone()),
                    freshness: g.freshness,
                },
            )?;
            let access = if g.identity_file.is_some() || g.writer_key.is_some() {
                util::write_access(g)?
            } else {
                Access::load(&s.site.key)?
            };
            (repo, access, Some(s.site.cache_dir.clone()))
        }
        None => (util::open_repo(g)?, util::write_access(g)?, None),
    };
    let history = match &cache_dir {
        Some(d) => History::open_existing(d, &repo.config.repo_id)?,
        None => None,
    };
    Ok((repo, access, history))
}

/// `coop report --setup`.
fn setup(
    g: &Global,
    a: &ReportArgs,
    repo: &Repo,
    access: &Access,
    s: &coop_agent::settings::Settings,
    history: Option<&History>,
) -> Result<i32> {
    let p = g.printer();
    let recipes: Vec<(String, String)> = super::recipe::all()?
        .into_iter()
        .map(|r| (r.name, r.summary))
        .collect();
    let setup = report::setup::gather(repo, access, s, history, &recipes)?;
    if let Some(dir) = &a.html {
        let path = write_page(dir, &report::setup::render(&setup))?;
        p.note(format!("wrote {}", path.display()));
    }
    if g.json {
        p.json(&setup)?;
    } else if a.html.is_none() {
        p.lines(&report::text::setup(&setup))?;
    }
    Ok(crate::exit::OK)
}

/// Writes DIR/index.html through a temporary file, so a reader never sees half a page.
fn write_page(dir: &Path, html: &str) -> Result<PathBuf> {
    let io = |path: &Path, e: std::io::Error| Error::Io {
        path: path.to_path_buf(),
        source: e,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join("index.html");
    let tmp = dir.join(".index.html.tmp");
    std::fs::write(&tmp, html).map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    Ok(path)
}
