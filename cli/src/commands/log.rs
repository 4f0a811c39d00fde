//! `coop log …`: the access log (SPEC section 24).

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::log;
use coop_agent::{Access, Repo};
use coop_formats::tlog::{Entry, Event, Reason};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Subcommand)]
pub enum LogCommand {
    /// List the entries of every log in the repository (index, site, time, event, tenant,
    /// reason, actor).
    Show {
        /// Only entries about this member's tenant.
        #[arg(long)]
        member: Option<String>,
    },
    /// Check every log: checkpoints signed by known keys, entries matching every checkpoint,
    /// cosignatures, and no rollback or fork since this client last looked. Exit 6 on damage.
    Verify,
    /// Witness the other sites' logs in this repository: check that each only grew, then
    /// cosign its newest checkpoint. Run by each site (with its writer key) on the copies it
    /// holds. A rollback or a fork is an alarm (exit 6) and is not cosigned. Give the site's
    /// key with --writer-key; for another site's repository, its admin key is pinned the
    /// first time (or given with --admin).
    Witness {
        /// The admin key (hex) of the repository whose logs are witnessed.
        #[arg(long)]
        admin: Option<String>,
        /// Another copy of the same repository (another site's replica of it): its logs are
        /// compared with this copy's first and what either lacks is carried to it, so a site
        /// showing two witnesses two branches of a log is found (a fork: exit 6). Repeatable.
        #[arg(long = "copy", value_name = "URL")]
        copies: Vec<String>,
    },
    /// Set how many witnesses must cosign before an access it records may happen (admin).
    Policy {
        /// Cosignatures needed (0: accesses are logged but do not wait for witnesses).
        #[arg(long)]
        quorum: u32,
        /// Also trust this other site's key as a witness: NAME=PUBLIC_KEY (hex, from that
        /// site's `coop key list --json`). Repeatable; this repository's own writers are
        /// witnesses too. Each is adopted by a log entry and counts once the witnesses already
        /// there cosigned it (never alone for the admin who adopted it: SPEC 24.5).
        #[arg(long = "witness", value_name = "NAME=KEY")]
        witnesses: Vec<String>,
    },
}

/// Tenant keyed tag → the keys of every tenant the caller can open (to read details).
fn tenant_readers(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &Access,
) -> HashMap<String, coop_agent::keys::TenantKeys> {
    util::tenants(g, repo, access)
        .map(|ts| ts.into_iter().map(|k| (log::tenant_tag(&k), k)).collect())
        .unwrap_or_default()
}

/// An entry's detail as the caller can show it: the text where the caller reads the tenant
/// it is encrypted to, otherwise a mark that there is one.
fn detail_text(
    e: &Entry,
    readers: &HashMap<String, coop_agent::keys::TenantKeys>,
) -> Option<String> {
    let d = e.detail.as_ref()?;
    Some(
        e.tenant
            .as_ref()
            .and_then(|t| readers.get(t))
            .and_then(|k| coop_agent::tenant::read_detail(k, d))
            .unwrap_or_else(|| "(encrypted to the tenant's readers)".into()),
    )
}

/// Tenant keyed tag → tenant name, for every tenant the caller can name (`readers`: the
/// tenants it opens, from [`tenant_readers`]).
fn tenant_names(
    repo: &coop_agent::repo::Repo,
    access: &Access,
    readers: &HashMap<String, coop_agent::keys::TenantKeys>,
) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = readers
        .iter()
        .map(|(tag, k)| (tag.clone(), k.tenant.clone()))
        .collect();
    if let Ok(coop) = coop_agent::tenant::keys(repo, access, "coop") {
        m.insert(log::tenant_tag(&coop), "coop".into());
        if let Ok(l) = coop_agent::members::load(repo, &coop) {
            for mem in &l.registry.members {
                if let Ok(k) = coop_agent::members::writer_keys_for_member(repo, &coop, &mem.name) {
                    m.insert(log::tenant_tag(&k), mem.tenant());
                }
            }
        }
    }
    m
}

/// The admin keys the caller trusts (from its keyring or its writer key file).
pub fn admin_keys(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &Access,
) -> Result<Vec<[u8; 32]>> {
    let tenant = if g.tenant_given {
        g.tenant.as_str()
    } else {
        "coop"
    };
    Ok(coop_agent::tenant::keys(repo, access, tenant)?.admin_keys)
}

pub fn run(g: &Global, c: LogCommand) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let access = util::write_access(g)?;
    match c {
        LogCommand::Show { member } => show(g, &repo, &access, member),
        LogCommand::Verify => verify(g, &repo, &access),
        LogCommand::Witness { admin, copies } => witness(g, &repo, &access, admin, copies),
        LogCommand::Policy { quorum, witnesses } => policy(g, &repo, quorum, witnesses),
    }
}

/// The admin keys `log show` checks the logs against: the service tenant's, or, for a member
/// asking about herself (she holds no key of tenant coop), those her own keyring names.
fn show_admin_keys(
    g: &Global,
    repo: &Repo,
    access: &Access,
    member: &Option<String>,
) -> Result<Vec<[u8; 32]>> {
    match (admin_keys(g, repo, access), member) {
        (Ok(k), _) => Ok(k),
        (Err(_), Some(m)) if !g.tenant_given => {
            Ok(coop_agent::tenant::keys(repo, access, &format!("member/{m}"))?.admin_keys)
        }
        (Err(e), _) => Err(e),
    }
}

/// `coop log show`.
fn show(g: &Global, repo: &Repo, access: &Access, member: Option<String>) -> Result<i32> {
    let p = g.printer();
    let trusted =
        coop_agent::writers::log_trust(repo, &show_admin_keys(g, repo, access, &member)?)?;
    let (report, contents) = log::verify(repo, &trusted)?;
    let readers = tenant_readers(g, repo, access);
    let who = Who {
        names: tenant_names(repo, access, &readers),
        readers,
        registry: coop_agent::tenant::keys(repo, access, "coop")
            .and_then(|coop| coop_agent::members::load(repo, &coop))
            .ok()
            .map(|l| l.registry),
        persons: trusted
            .activation
            .as_ref()
            .map(|a| a.persons.clone())
            .unwrap_or_default(),
    };
    let want = match &member {
        Some(m) => match coop_agent::tenant::keys(repo, access, "coop") {
            Ok(coop) => Some(log::tenant_tag(
                &coop_agent::members::writer_keys_for_member(repo, &coop, m)?,
            )),
            // The member herself: her own tenant's keys give its tag.
            Err(_) => Some(log::tenant_tag(&coop_agent::tenant::keys(
                repo,
                access,
                &format!("member/{m}"),
            )?)),
        },
        None => None,
    };
    let mut rows = Vec::new();
    for c in &contents {
        for (i, e) in c.accepted() {
            if want.is_some() && e.tenant != want {
                continue;
            }
            rows.push((c.origin.clone(), i, e));
        }
    }
    rows.sort_by(|a, b| {
        a.2.time
            .cmp(&b.2.time)
            .then(a.0.cmp(&b.0))
            .then(a.1.cmp(&b.1))
    });
    if g.json {
        let v: Vec<_> = rows.iter().map(|(o, i, e)| who.shown(o, *i, e)).collect();
        p.json_sorted(&v)?;
    } else {
        for (o, i, e) in &rows {
            who.print(&p, o, *i, e)?;
        }
        p.summary(format!(
            "{} in {} logs",
            util::plural(rows.len() as u64, "entry", "entries"),
            contents.len()
        ))?;
    }
    for n in &report.notes {
        p.note(n);
    }
    for pr in &report.problems {
        p.problem(pr);
    }
    Ok(if report.problems.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

/// `log verify --json`: the engine's report and how long it took.
#[derive(Serialize)]
struct Verified<'a> {
    #[serde(flatten)]
    report: &'a log::VerifyReport,
    duration_ms: u64,
}

/// `coop log verify`.
fn verify(g: &Global, repo: &Repo, access: &Access) -> Result<i32> {
    let p = g.printer();
    let trusted = coop_agent::writers::log_trust(repo, &admin_keys(g, repo, access)?)?;
    let started = std::time::Instant::now();
    let (report, _) = log::verify(repo, &trusted)?;
    if g.json {
        p.json_sorted(&Verified {
            report: &report,
            duration_ms: started.elapsed().as_millis() as u64,
        })?;
    } else {
        for l in &report.logs {
            p.data(format!(
                "{:<40} {:<14} {:>7} entries, {} checkpoints; witnessed up to {} by {}",
                l.origin,
                l.actor,
                l.size,
                l.checkpoints,
                l.witnessed_size
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                if l.cosigned_by.is_empty() {
                    "nobody".into()
                } else {
                    l.cosigned_by.join(", ")
                }
            ))?;
        }
        for n in &report.notes {
            p.note(n);
        }
        for pr in &report.problems {
            p.problem(pr);
        }
        p.summary(format!(
            "{} logs, {} entries, quorum {}: {}",
            report.logs.len(),
            report.entries,
            report.quorum,
            if report.problems.is_empty() {
                "no problems found".to_string()
            } else {
                format!("{} problems", report.problems.len())
            }
        ))?;
    }
    Ok(if report.problems.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

/// `coop log witness`.
fn witness(
    g: &Global,
    repo: &Repo,
    access: &Access,
    admin: Option<String>,
    copies: Vec<String>,
) -> Result<i32> {
    let p = g.printer();
    let Access::Writer(wk) = access else {
        return Err(coop_agent::Error::Invalid {
            what: "a witness signs with a site's writer key: give --writer-key KEY".into(),
        }
        .into());
    };
    let me = log::Actor::from_writer_key(wk);
    let given = match admin {
        Some(h) => Some(
            hex::decode(h.trim())
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| coop_agent::Error::Invalid {
                    what: "--admin: give the admin's public key as 64 hex characters".into(),
                })?,
        ),
        None => None,
    };
    let admin_keys = log::trusted_admin_keys(repo, given, Some((&wk.repo_id, &wk.admin_keys)))?;
    let trusted = coop_agent::writers::log_trust(repo, &admin_keys)?;
    let (mut forks, mut notes) = (Vec::new(), Vec::new());
    for url in &copies {
        let other = coop_agent::repo::Repo::open_with(
            url,
            &coop_agent::repo::OpenOptions {
                cache_dir: repo.cache_dir().map(|c| c.to_path_buf()),
                ..Default::default()
            },
        )?;
        let gr = log::gossip(repo, &other, &trusted, true)?;
        if gr.copied > 0 {
            notes.push(format!(
                "{} log object(s) carried between this copy and {url} ({} cosignatures)",
                gr.copied, gr.cosignatures
            ));
        }
        notes.extend(gr.notes);
        forks.extend(
            gr.forks
                .into_iter()
                .map(|f| format!("{f} (compared with {url})")),
        );
    }
    let mut r = log::witness(repo, &me, &trusted)?;
    r.alarms.splice(0..0, forks);
    r.notes.splice(0..0, notes);
    if g.json {
        p.json(&r)?;
    } else {
        for (o, s) in &r.cosigned {
            p.summary(format!("cosigned {o} at {s} entries"))?;
        }
        for n in &r.notes {
            p.note(n);
        }
        for a in &r.alarms {
            p.problem(format!("ALARM {a}"));
        }
        p.summary(format!(
            "{} cosigned, {} already cosigned, {} alarms (as {})",
            r.cosigned.len(),
            r.unchanged,
            r.alarms.len(),
            me.witness_name()
        ))?;
    }
    Ok(if r.alarms.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

/// `coop log policy`.
fn policy(g: &Global, repo: &Repo, quorum: u32, witnesses: Vec<String>) -> Result<i32> {
    let p = g.printer();
    let coop = coop_agent::tenant::keys(repo, &util::identity_access(g)?, "coop")?;
    let mut named = Vec::new();
    for w in &witnesses {
        let (name, key) = w
            .split_once('=')
            .ok_or_else(|| coop_agent::Error::Invalid {
                what: format!("--witness {w:?}: give NAME=KEY"),
            })?;
        let public_key: [u8; 32] = hex::decode(key.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| coop_agent::Error::Invalid {
                what: format!("--witness {name}: the key must be 64 hex characters"),
            })?;
        named.push((name.to_string(), public_key));
    }
    let r = coop_agent::admins::log_policy(repo, &coop, quorum, &named)?;
    if quorum > r.sites.saturating_sub(1) && quorum > 0 {
        p.warn(format!(
            "{} site writer(s): a log is witnessed by the others only, so a quorum of {quorum} \
             needs at least {} sites",
            r.sites,
            quorum + 1
        ));
    }
    for (name, why) in &r.unlogged {
        p.warn(format!(
            "witness {name} could not be logged, so it witnesses nothing until it is: {why}"
        ));
    }
    if g.json {
        p.json(&r)?;
        return Ok(crate::exit::OK);
    }
    match r.pending {
        Some((approvals, needed)) => {
            p.summary(format!(
                "lowering the quorum to {quorum} is logged and waits for approval: {approvals} \
                 of {needed} other admins approved; accesses wait for {} cosignature(s) until then",
                r.log_quorum
            ))?;
            p.note(format!(
                "each of them runs `coop log policy --quorum {quorum}`; the approval that makes \
                 {needed} lowers it (SPEC 24.11)"
            ));
        }
        None => p.summary(format!(
            "accesses now wait for {} witness cosignature(s)",
            r.log_quorum
        ))?,
    }
    Ok(crate::exit::OK)
}

/// What the caller can say about an entry: the tenants it names and reads, the registry.
struct Who {
    /// From [`tenant_readers`].
    readers: HashMap<String, coop_agent::keys::TenantKeys>,
    /// From [`tenant_names`].
    names: HashMap<String, String>,
    registry: Option<coop_formats::registry::Registry>,
    /// Who counts as an admin person, per admin log (by origin).
    persons: HashMap<String, coop_agent::log::persons::Persons>,
}

/// An entry of `coop log show --json`: where it is, the entry's fields (not its type; its
/// detail only as the caller can read it), who caused it, and its tenant's name where the
/// caller knows it.
#[derive(Serialize)]
struct Shown<'a> {
    log: &'a str,
    index: usize,
    time: &'a str,
    event: &'a Event,
    actor: &'a str,
    actor_name: &'a str,
    reason: &'a Option<Reason>,
    object: &'a Option<String>,
    who: String,
    tenant_tag: &'a Option<String>,
    tenant: Option<&'a String>,
    data: &'a serde_json::Map<String, serde_json::Value>,
    detail: Option<String>,
}

impl Who {
    /// Who caused entry `i` of log `o`, marked when that person does not count there.
    fn who(&self, o: &str, i: usize, e: &Entry) -> String {
        coop_agent::admins::who_at(e, self.registry.as_ref(), self.persons.get(o), i as u64)
    }

    /// An entry of `coop log show --json`.
    fn shown<'a>(&'a self, o: &'a str, i: usize, e: &'a Entry) -> Shown<'a> {
        Shown {
            log: o,
            index: i,
            time: &e.time,
            event: &e.event,
            actor: &e.actor,
            actor_name: &e.actor_name,
            reason: &e.reason,
            object: &e.object,
            who: self.who(o, i, e),
            tenant_tag: &e.tenant,
            tenant: e.tenant.as_ref().and_then(|t| self.names.get(t)),
            data: &e.data,
            detail: detail_text(e, &self.readers),
        }
    }

    /// An entry's line (and its detail's) of `coop log show`.
    fn print(&self, p: &crate::output::Printer, o: &str, i: usize, e: &Entry) -> Result<()> {
        let (names, readers) = (&self.names, &self.readers);
        let tenant = e
            .tenant
            .as_ref()
            .map(|t| names.get(t).cloned().unwrap_or_else(|| format!("tag {t}")))
            .unwrap_or_else(|| "-".into());
        p.data(format!(
            "{:<21} {:<18} {:<14} {:<18} {:<18} {o}#{i}{}",
            e.time.chars().take(20).collect::<String>(),
            serde_json::to_value(e.event)?.as_str().unwrap_or("?"),
            match e.data.get("requested_by").and_then(|v| v.as_str()) {
                Some(c) => format!("{} for {c}", self.who(o, i, e)),
                None => self.who(o, i, e),
            },
            tenant,
            e.reason
                .map(|r| r.to_string())
                .unwrap_or_else(|| "-".into()),
            e.object
                .as_ref()
                .map(|o| format!(" {}", o.chars().take(16).collect::<String>()))
                .unwrap_or_default()
        ))?;
        if let Some(d) = detail_text(e, readers) {
            p.data(format!("{:<21} detail: {d}", ""))?;
        }
        Ok(())
    }
}
