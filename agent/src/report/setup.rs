//! The published setup (issue 30 item 2, `coop report --setup`): what the cooperative runs,
//! generated from agent.toml, the registry, the writer list and the log policy, never from
//! hand-written text, so that anyone can check it against what coop does.
//!
//! Left out on purpose (docs/TRANSPARENCY.md): every secret and credential, repository and
//! store addresses (internal host names), commands (they may carry passwords or hosts),
//! healthcheck URLs, identity and key file paths, and member names: a per-member job shows
//! its path pattern with `{member}`, never a name.

use super::html::escape;
use crate::error::Result;
use crate::history::History;
use crate::keys::Access;
use crate::repo::Repo;
use crate::settings::{JobSettings, Settings};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub format: &'static str,
    pub generated: String,
    pub cooperative: Option<String>,
    pub site: SiteEntry,
    /// Where this site's data is replicated to.
    pub replicas: Vec<SiteEntry>,
    pub jobs: Vec<JobEntry>,
    /// How data is stored (fixed by coop's formats, SPEC).
    pub encryption: &'static str,
    /// Who can read what.
    pub readers: Readers,
    /// Sites whose keys may add backups (the writer list, revoked ones left out).
    pub writers: Vec<String>,
    pub witnesses: Vec<String>,
    pub quorum: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct SiteEntry {
    pub name: String,
    pub provider: Option<String>,
    pub location: Option<String>,
    pub energy_source: Option<String>,
    pub renewable: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobEntry {
    pub name: String,
    pub schedule: String,
    /// `service` (the cooperative's tenant) or `each member` (one tenant per member).
    pub tenant: &'static str,
    pub paths: Vec<String>,
    /// Files and directories produced by commands (database dumps), by name.
    pub dumps: Vec<String>,
    pub excluded: Vec<String>,
    /// Why, from the recipe the job is named after (or tagged `recipe:NAME`), if any.
    pub recipe: Option<String>,
    pub recipe_notes: Option<String>,
    pub retention: Option<String>,
    pub last_run: Option<String>,
    pub last_status: Option<String>,
    /// The last restore drill of this job, if one is recorded.
    pub last_test_restore: Option<String>,
    /// Who looks after the job ("Name <contact>", as agent.toml gives it for publishing).
    pub caretaker: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Readers {
    /// The service tenant: the admins, by name (`coop admin add`), else how many keys.
    pub service: Vec<String>,
    /// A member's tenant: the member, and the recovery split if any.
    pub members: String,
}

fn site(s: &Settings, name: &str) -> SiteEntry {
    let f = s
        .cooperative
        .as_ref()
        .and_then(|c| c.sites.iter().find(|x| x.name == name));
    SiteEntry {
        name: name.to_string(),
        provider: f.and_then(|f| f.provider.clone()),
        location: f.and_then(|f| f.location.clone()),
        energy_source: f.and_then(|f| f.energy_source.clone()),
        renewable: f.and_then(|f| f.renewable),
    }
}

fn retention(j: &JobSettings) -> Option<String> {
    let r = j.retention.as_ref()?;
    let p = &r.policy;
    let mut parts = Vec::new();
    for (n, what) in [
        (p.last, "last"),
        (p.hourly, "hourly"),
        (p.daily, "daily"),
        (p.weekly, "weekly"),
        (p.monthly, "monthly"),
        (p.yearly, "yearly"),
    ] {
        if let Some(n) = n {
            parts.push(format!("{n} {what}"));
        }
    }
    if let Some(w) = p.within {
        parts.push(format!("all within {}", humantime::format_duration(w)));
    }
    let mut s = format!("keep {}", parts.join(", "));
    if r.prune {
        s.push_str("; space freed (prune)");
    }
    Some(s)
}

/// Gathers the setup. `recipes`: (name, summary) of the recipes shipped with coop.
pub fn gather(
    repo: &Repo,
    access: &Access,
    settings: &Settings,
    history: Option<&History>,
    recipes: &[(String, String)],
) -> Result<Setup> {
    let coop = crate::tenant::keys(repo, access, "coop")?;
    let registry = crate::registry::load(repo, &coop)?.registry;
    let writer_list = crate::writers::load(repo, &coop.admin_keys)?.list;
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let jobs = settings
        .jobs
        .iter()
        .filter(|j| matches!(j.action, crate::settings::JobAction::Backup))
        .map(|j| job_entry(j, history, recipes))
        .collect::<Result<Vec<_>>>()?;
    Ok(Setup {
        format: "coop-setup/1",
        generated: crate::now_rfc3339(),
        cooperative: settings.cooperative.as_ref().map(|c| c.name.clone()),
        site: site(settings, &settings.site.name),
        replicas: settings
            .peers
            .iter()
            .map(|p| site(settings, &p.name))
            .collect(),
        jobs,
        encryption: "content-defined chunks (FastCDC), deduplicated per tenant by keyed \
                     BLAKE3, compressed (zstd), encrypted with age (X25519, ChaCha20-Poly1305) \
                     to the tenant's own key; indexes sealed with XChaCha20-Poly1305; the \
                     storage sites hold only ciphertext",
        readers: readers(&coop, &registry),
        writers: writer_list
            .writers
            .iter()
            .filter(|w| w.revoked.is_none())
            .map(|w| w.name.clone())
            .collect(),
        witnesses: trusted.witnesses.iter().map(|(n, _)| n.clone()).collect(),
        quorum: trusted.quorum,
    })
}

/// One backup job as published: what it backs up and leaves out, its recipe, retention and
/// (from this site's `history`) its last run and last test restore.
fn job_entry(
    j: &JobSettings,
    history: Option<&History>,
    recipes: &[(String, String)],
) -> Result<JobEntry> {
    let recipe_name = j
        .tags
        .iter()
        .find_map(|t| t.strip_prefix("recipe:"))
        .unwrap_or(&j.name);
    let recipe = recipes.iter().find(|(n, _)| n == recipe_name);
    let (last, drill) = match history {
        Some(h) => (
            h.last_run(&j.name)?,
            h.last_run(&format!("drill:{}", j.name))?,
        ),
        None => (None, None),
    };
    let mut dumps: Vec<String> = j.commands.iter().map(|c| c.filename.clone()).collect();
    dumps.extend(j.command_dirs.iter().map(|c| format!("{}/", c.dirname)));
    dumps.extend(j.sql.iter().map(|q| q.filename.clone()));
    Ok(JobEntry {
        name: j.name.clone(),
        schedule: j.schedule.clone(),
        tenant: if j.members.is_some() {
            "each member"
        } else {
            "service"
        },
        paths: j.paths.iter().map(|p| p.display().to_string()).collect(),
        dumps,
        excluded: j.exclude.clone(),
        recipe: recipe.map(|(n, _)| n.clone()),
        recipe_notes: recipe.map(|(_, s)| s.trim().to_string()),
        retention: retention(j),
        last_run: last.as_ref().map(|r| crate::unix_rfc3339(r.started)),
        last_status: last.as_ref().map(|r| r.status.clone()),
        caretaker: j.caretaker.as_ref().map(|c| c.to_string()),
        last_test_restore: drill.map(|d| {
            format!(
                "{} ({})",
                crate::unix_rfc3339(d.started),
                if d.status == "ok" {
                    "restored and checked"
                } else {
                    "FAILED"
                }
            )
        }),
    })
}

/// Who can read the service tenant (the admins) and a member's tenant (the member, and the
/// recovery split if any).
fn readers(coop: &crate::keys::TenantKeys, registry: &coop_formats::registry::Registry) -> Readers {
    let active_admins: Vec<String> = registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .map(|a| a.name.clone())
        .collect();
    let service = if active_admins.is_empty() {
        match coop.reader.as_ref() {
            Some(r) => vec![format!("{} admin key(s)", r.keyring.recipients.len())],
            None => vec!["the admins".into()],
        }
    } else {
        active_admins
    };
    let members = match &registry.recovery_setup {
        Some(s) => format!(
            "the member, with their own keys; a recovery takes one admin asking and {} of the \
             others approving ({} admins: {}), each step in the access log",
            s.approvals(),
            s.holders.len(),
            s.holders
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "the member, with their own keys, and the admins (each admin read is logged \
                 before it happens)"
            .into(),
    };
    Readers { service, members }
}

/// The setup as one static page (no script, nothing fetched), in English.
pub fn render(s: &Setup) -> String {
    let mut o = String::with_capacity(16 * 1024);
    let name = s.cooperative.clone().unwrap_or_else(|| s.site.name.clone());
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta \
         name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Setup – \
         {}</title>\n<style>{}</style>\n</head>\n<body>\n<header><h1>How {} keeps your \
         data</h1><p>Generated by coop from the configuration of site {} on {}.</p></header>\n<main>\n",
        escape(&name),
        super::html::CSS,
        escape(&name),
        escape(&s.site.name),
        escape(&s.generated)
    );
    let site_line = |e: &SiteEntry| {
        let mut parts = vec![format!("<strong>{}</strong>", escape(&e.name))];
        for v in [&e.provider, &e.location, &e.energy_source]
            .into_iter()
            .flatten()
        {
            parts.push(escape(v));
        }
        if let Some(r) = e.renewable {
            parts.push(if r { "renewable" } else { "not renewable" }.into());
        }
        parts.join(" · ")
    };
    o.push_str("<section><h2>Sites</h2><ul>");
    let _ = write!(o, "<li>{} (this site)</li>", site_line(&s.site));
    for r in &s.replicas {
        let _ = write!(o, "<li>{} (keeps an encrypted replica)</li>", site_line(r));
    }
    o.push_str("</ul></section>\n<section><h2>What is backed up</h2>");
    for j in &s.jobs {
        render_job(&mut o, j);
    }
    let _ = write!(
        o,
        "</section>\n<section><h2>Encryption</h2><p>{}</p></section>\n<section><h2>Who can \
         read what</h2><p>The service's own data: {}.</p><p>A member's data: {}.</p><p>Sites \
         that may add backups (and cannot read them): {}.</p><p>Every access to member data \
         is logged before it happens{}.</p></section>\n</main>\n</body>\n</html>\n",
        escape(s.encryption),
        escape(&s.readers.service.join(", ")),
        escape(&s.readers.members),
        escape(&s.writers.join(", ")),
        if s.quorum > 0 {
            format!(
                " and cosigned by {} of the witnesses ({}) first",
                s.quorum,
                escape(&s.witnesses.join(", "))
            )
        } else {
            String::new()
        }
    );
    o
}

/// One backup job's article: schedule and tenant, paths, dumps and what is left out, its
/// recipe and caretaker, retention, last run and last test restore.
fn render_job(o: &mut String, j: &JobEntry) {
    let _ = write!(
        o,
        "<article class=\"tenant\"><h3>{}</h3><p>Schedule <code>{}</code>, into the {} \
         tenant.</p>",
        escape(&j.name),
        escape(&j.schedule),
        if j.tenant == "service" {
            "service's"
        } else {
            "each member's own"
        }
    );
    let list = |o: &mut String, title: &str, items: &[String]| {
        if items.is_empty() {
            return;
        }
        let _ = write!(o, "<p>{title}:</p><ul>");
        for i in items {
            let _ = write!(o, "<li><code>{}</code></li>", escape(i));
        }
        o.push_str("</ul>");
    };
    list(o, "Paths", &j.paths);
    list(o, "Database dumps and exports", &j.dumps);
    list(o, "Left out", &j.excluded);
    if let (Some(r), Some(n)) = (&j.recipe, &j.recipe_notes) {
        let _ = write!(
            o,
            "<p>From the <code>{}</code> recipe: {}</p>",
            escape(r),
            escape(n)
        );
    }
    if let Some(c) = &j.caretaker {
        let _ = write!(o, "<p>Caretaker: {}</p>", escape(c));
    }
    let _ = write!(
        o,
        "<p>Retention: {}. Last run: {}. Last test restore: {}.</p></article>",
        escape(j.retention.as_deref().unwrap_or("all snapshots kept")),
        escape(
            &j.last_run
                .as_ref()
                .map(|t| format!("{t} ({})", j.last_status.as_deref().unwrap_or("?")))
                .unwrap_or_else(|| "not recorded at this site".into())
        ),
        escape(
            j.last_test_restore
                .as_deref()
                .unwrap_or("none recorded yet")
        )
    );
}
