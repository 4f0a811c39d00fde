//! `coop report`: the transparency report (docs/TRANSPARENCY.md explains every figure).

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::history::History;
use coop_agent::keys::Access;
use coop_agent::repo::{OpenOptions, Repo};
use coop_agent::report::{self, Options, Report, Sources};
use coop_agent::Error;
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
    let opts = Options {
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
        &Sources {
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
        text(&p, &r)?;
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
        for j in &setup.jobs {
            p.data(format!(
                "{:<16} {:<14} {:<12} {} path(s), {} dump(s), {} left out; {}; last run {}",
                j.name,
                j.schedule,
                j.tenant,
                j.paths.len(),
                j.dumps.len(),
                j.excluded.len(),
                j.retention.as_deref().unwrap_or("all kept"),
                j.last_run.as_deref().unwrap_or("-")
            ))?;
        }
        p.data(format!(
            "replicated to: {}",
            setup
                .replicas
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        p.data(format!(
            "service data read by: {}",
            setup.readers.service.join(", ")
        ))?;
        p.data(format!("member data read by: {}", setup.readers.members))?;
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

/// The report for a terminal.
fn text(p: &crate::output::Printer, r: &Report) -> Result<()> {
    let name = r
        .cooperative
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| r.repository.location.clone());
    p.data(format!(
        "Transparency report: {name}, {} to {}{}",
        &r.period.since[..10],
        &r.period.until[..10],
        r.member
            .as_ref()
            .map(|m| format!(", for member {m}"))
            .unwrap_or_default()
    ))?;
    p.data(format!(
        "{} members, {} stored",
        r.totals.members,
        util::bytes(r.totals.stored_bytes)
    ))?;
    text_members(p, r)?;
    text_sites(p, r)?;
    text_costs(p, r)?;
    text_readers(p, r)?;
    text_accesses(p, r)?;
    Ok(())
}

/// The members and the shared tenants.
fn text_members(p: &crate::output::Printer, r: &Report) -> Result<()> {
    let cur = currency(r);
    p.data(format!(
        "\n{:<20} {:>12} {:>12} {:>6} {:<21} {:>8} {:>12}",
        "member", "stored", "logical", "snaps", "last backup", "quota", "share/month"
    ))?;
    for m in &r.members {
        p.data(format!(
            "{:<20} {:>12} {:>12} {:>6} {:<21} {:>8} {:>12}",
            m.name,
            util::bytes(m.stored_bytes),
            m.logical_bytes
                .map(util::bytes)
                .unwrap_or_else(|| "?".into()),
            m.snapshots
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            coop_agent::report::last_backup_text(
                m.last_backup.as_deref(),
                m.snapshots,
                |t| t[..t.len().min(19)].to_string(),
                "never",
            ),
            m.quota_used_percent
                .map(|q| format!("{q:.0}%"))
                .unwrap_or_else(|| "-".into()),
            m.cost
                .as_ref()
                .map(|c| format!("{:.2} {cur}", c.monthly))
                .unwrap_or_else(|| "-".into()),
        ))?;
    }
    for s in &r.shared {
        p.data(format!(
            "{:<20} {:>12}",
            format!("({})", s.tenant),
            util::bytes(s.stored_bytes)
        ))?;
    }
    Ok(())
}

/// The sites.
fn text_sites(p: &crate::output::Printer, r: &Report) -> Result<()> {
    let cur = currency(r);
    if !r.sites.is_empty() {
        p.data(format!(
            "\n{:<16} {:<12} {:<28} {:>12} {:>14}",
            "site", "role", "provider", "stored", "costs/month"
        ))?;
        for s in &r.sites {
            p.data(format!(
                "{:<16} {:<12} {:<28} {:>12} {:>14}",
                s.name,
                serde_json::to_value(s.role)?.as_str().unwrap_or(""),
                s.provider.as_deref().unwrap_or("-"),
                s.stored_bytes
                    .map(|b| format!(
                        "{}{}",
                        if s.stored_is_estimate { "~" } else { "" },
                        util::bytes(b)
                    ))
                    .unwrap_or_else(|| "-".into()),
                s.monthly_costs
                    .map(|c| format!("{c:.2} {cur}"))
                    .unwrap_or_else(|| "-".into()),
            ))?;
        }
    }
    Ok(())
}

/// The costs, the groups' lines and the energy.
fn text_costs(p: &crate::output::Printer, r: &Report) -> Result<()> {
    let cur = currency(r);
    if let Some(c) = &r.costs {
        p.data(format!(
            "\ncosts: {:.2} {cur} a month ({} % fixed), {} per GB-month{}",
            c.monthly_total,
            c.fixed_share_percent,
            c.price_per_gb_month
                .map(|v| format!("{v:.4} {cur}"))
                .unwrap_or_else(|| "-".into()),
            c.runway_months
                .map(|m| format!("; the balance covers {m:.1} months"))
                .unwrap_or_default()
        ))?;
        for gc in &c.groups {
            p.data(format!(
                "group {} (paid by {}): {:.2} {cur} a month for {}",
                gc.group,
                gc.payer,
                gc.monthly,
                gc.members
                    .iter()
                    .map(|(m, _, v)| format!("{m} {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))?;
        }
    }
    if let Some(e) = &r.energy {
        p.data(format!(
            "energy at {}: {} runs, {:.1} CPU-seconds, {} ({})",
            e.site,
            e.runs,
            e.cpu_seconds,
            e.wh.map(|w| format!("{w:.3} Wh"))
                .unwrap_or_else(|| "? Wh".into()),
            e.method
        ))?;
    }
    Ok(())
}

/// The caretakers and who can read each tenant.
fn text_readers(p: &crate::output::Printer, r: &Report) -> Result<()> {
    p.data("")?;
    if !r.caretakers.is_empty() {
        for c in &r.caretakers {
            p.data(format!(
                "job {} is looked after by {}",
                c.job,
                c.caretaker.as_deref().unwrap_or("nobody named")
            ))?;
        }
        p.data("")?;
    }
    for t in &r.readers {
        p.data(format!(
            "{} can be read by: {}{}",
            t.tenant,
            t.readers
                .iter()
                .map(|x| match &x.comment {
                    Some(c) => format!("{} ({c}, {})", x.fingerprint, x.kind),
                    None => format!("{} ({})", x.fingerprint, x.kind),
                })
                .collect::<Vec<_>>()
                .join(", "),
            t.recovery
                .as_ref()
                .map(|rp| format!("; recovery: {}", rp.description))
                .unwrap_or_default()
        ))?;
    }
    Ok(())
}

/// The accesses and what the report lacks.
fn text_accesses(p: &crate::output::Printer, r: &Report) -> Result<()> {
    if let Some(a) = &r.accesses {
        p.data(format!(
            "\naccess logs: {}",
            if a.verified {
                "verified".to_string()
            } else {
                format!("{} problem(s)", a.problems.len())
            }
        ))?;
        for e in &a.break_glass {
            p.data(format!(
                "  BREAK-GLASS {} of tenant coop by {} at {} ({}){}",
                e.event,
                e.actor_name,
                e.time,
                e.reason.as_deref().unwrap_or("-"),
                if e.witnessed {
                    ""
                } else {
                    ", not yet witnessed"
                }
            ))?;
        }
        for m in &a.members {
            p.data(format!(
                "  {}: {} access(es) in the period{}",
                m.member,
                m.total,
                if m.by_reason.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        m.by_reason
                            .iter()
                            .map(|(k, n)| format!("{k}: {n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))?;
        }
    }
    if !r.missing.is_empty() {
        p.data("\nnot in this report (add these to the config):")?;
        for m in &r.missing {
            p.data(format!("  {}: {}", m.section, m.keys.join(", ")))?;
        }
    }
    Ok(())
}

/// The currency of the costs (empty without costs).
fn currency(r: &Report) -> String {
    r.costs
        .as_ref()
        .map(|c| c.currency.clone())
        .unwrap_or_default()
}
