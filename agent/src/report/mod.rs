//! `coop report`: the transparency report, from the repository's own state and the
//! cooperative's facts in agent.toml (docs/TRANSPARENCY.md explains every figure).
//!
//! - this module: the report's data model ([`Report`], serialised as `--json`) and
//!   [`gather`], which reads usage, the registry, keyrings, the writer list, the access logs
//!   and the agent's history, and computes costs, energy and who can read what.
//! - [`html`]: the page (one static file: no script, nothing fetched), with [`svg`] charts
//!   and [`i18n`] strings (German and English).
//!
//! With [`Options::member`] the member-specific parts (members, cost shares, readers,
//! accesses, series) cover that member alone; the cooperative-wide parts stay.

mod accesses;
mod costs;
mod energy;
pub mod html;
pub mod i18n;
mod model;
pub mod setup;
pub mod svg;

pub use costs::cost_model;
use costs::{group_costs, round};
use energy::{energy_report, series};
pub use model::*;

use crate::error::{Error, Result};
use crate::history::{EnergyMethod, History};
use crate::keys::{Access, TenantKeys};
use crate::layout::Kind;
use crate::repo::Repo;
use crate::settings::{Language, Settings};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The `format` of the JSON document.
pub const FORMAT: &str = "coop-report/1";
/// Costs are per GB (10^9 bytes) and month.
pub const GB: f64 = 1e9;
/// The default period: the last quarter.
pub const DEFAULT_DAYS: i64 = 90;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Options {
    /// Unix seconds.
    pub since: i64,
    pub until: i64,
    /// Limit the member-specific parts to this member.
    pub member: Option<String>,
}

/// Now, as the agent records it (`COOP_TEST_NOW` in tests that simulate history).
pub fn now() -> i64 {
    crate::history::now()
}

/// The start of a period ending `until`: a span back (`90d`, `2w`, `12h`), a date
/// (`2026-01-01`, midnight UTC) or an RFC 3339 time.
pub fn parse_since(s: &str, until: i64) -> Result<i64> {
    let t = s.trim();
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp());
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    match humantime::parse_duration(t) {
        Ok(d) => Ok(until - d.as_secs() as i64),
        Err(_) => Err(Error::invalid(format!(
            "--since {s:?} is neither a span (90d, 2w), a date (2026-01-01) nor an RFC 3339 time"
        ))),
    }
}

impl Options {
    /// The last quarter up to now.
    pub fn last_quarter() -> Self {
        let until = crate::history::now();
        Self {
            since: until - DEFAULT_DAYS * 86_400,
            until,
            member: None,
        }
    }
}

/// Where the figures come from.
pub struct Sources<'a> {
    pub repo: &'a Repo,
    pub access: &'a Access,
    /// agent.toml, resolved (`None`: the repository alone).
    pub settings: Option<&'a Settings>,
    /// The agent's job history (in the site's cache directory), if there is one.
    pub history: Option<&'a History>,
}

/// Gathers the report.
pub fn gather(src: &Sources, opts: &Options) -> Result<Report> {
    let repo = src.repo;
    let settings = src.settings;
    let coop_facts = settings.and_then(|s| s.cooperative.as_ref());
    let mut warnings = Vec::new();
    let mut integrity_problem = false;

    // Tenants: usage (as `coop usage`), keyrings, the registry.
    let usage = crate::usage::usage(repo, src.access)?;
    let coop = crate::tenant::keys(repo, src.access, "coop").ok();
    let registry = match &coop {
        Some(c) => {
            let l = crate::members::load(repo, c)?;
            for p in &l.problems {
                warnings.push(p.to_string());
                integrity_problem = true;
            }
            Some(l.registry)
        }
        None => None,
    };
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    if let Access::Identity(ids, _) = src.access {
        let found = repo.keyrings(ids)?;
        for ring in found.rings {
            let name = ring.tenant.clone();
            if let Ok(keys) = TenantKeys::from_keyring(ring.clone(), std::sync::Arc::clone(ids)) {
                known.insert(
                    name,
                    Known {
                        keys,
                        ring: Some(ring),
                    },
                );
            }
        }
    }
    if let (Some(c), Some(reg)) = (&coop, &registry) {
        for m in reg.active() {
            if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(m.tenant()) {
                if let Ok(keys) = crate::members::writer_keys_for_member(repo, c, &m.name) {
                    slot.insert(Known { keys, ring: None });
                }
            }
        }
    }
    // Active members: from the registry, else the member tenants the caller reads.
    let member_names: Vec<String> = match &registry {
        Some(r) => r.active().map(|m| m.name.clone()).collect(),
        None => usage
            .iter()
            .filter_map(|u| u.tenant.strip_prefix("member/").map(String::from))
            .collect(),
    };
    if let Some(m) = &opts.member {
        if !member_names.contains(m) {
            return Err(Error::NotFound {
                what: format!(
                    "member {m:?} (the report knows: {})",
                    member_names.join(", ")
                ),
            });
        }
    }
    let in_scope = |name: &str| opts.member.as_deref().is_none_or(|m| m == name);
    let scoped_tenant = |tenant: &str| match tenant.strip_prefix("member/") {
        Some(n) => in_scope(n),
        None => true,
    };
    for u in &usage {
        if u.rollback {
            integrity_problem = true;
        }
        if scoped_tenant(&u.tenant) {
            warnings.extend(u.warnings.iter().map(|w| format!("{}: {w}", u.tenant)));
        }
    }
    let admin_keys: Vec<[u8; 32]> = coop
        .as_ref()
        .map(|c| c.admin_keys.clone())
        .or_else(|| known.values().next().map(|k| k.keys.admin_keys.clone()))
        .unwrap_or_default();

    // Sites.
    let store_listing = repo.store.list("")?;
    let here_bytes: u64 = store_listing.iter().map(|o| o.size).sum();
    let pack_bytes: u64 = store_listing
        .iter()
        .filter(|o| o.path.starts_with(&format!("{}/", Kind::Pack.dir())))
        .map(|o| o.size)
        .sum();
    let mut sites = Vec::new();
    let mut peer_states = Vec::new();
    if let Some(s) = settings {
        let facts = s.site_facts(&s.site.name);
        sites.push(site_report(
            &s.site.name,
            SiteRole::ThisSite,
            facts,
            Some(here_bytes),
            false,
            None,
            Some(matches!(
                s.site.key,
                crate::settings::KeySource::Identity(_)
            )),
        ));
        for p in &s.peers {
            let st = match src.history {
                Some(h) => Some(h.peer(&p.name)?),
                None => None,
            };
            let stored = st
                .as_ref()
                .and_then(|st| st.last_attempt.and(st.lag_bytes))
                .map(|lag| here_bytes.saturating_sub(lag));
            let last_ok = st
                .as_ref()
                .and_then(|st| st.last_ok)
                .map(crate::unix_rfc3339);
            sites.push(site_report(
                &p.name,
                SiteRole::Replica,
                s.site_facts(&p.name),
                stored,
                true,
                last_ok.clone(),
                Some(false),
            ));
            peer_states.push(Replica {
                site: p.name.clone(),
                last_ok,
                lag_objects: st
                    .as_ref()
                    .and_then(|st| st.last_attempt.and(st.lag_objects)),
                lag_bytes: st.as_ref().and_then(|st| st.last_attempt.and(st.lag_bytes)),
            });
        }
        for f in coop_facts.map(|c| c.sites.as_slice()).unwrap_or_default() {
            if !sites.iter().any(|x| x.name == f.name) {
                sites.push(site_report(
                    &f.name,
                    SiteRole::Other,
                    Some(f),
                    None,
                    false,
                    None,
                    None,
                ));
            }
        }
    }

    // Members and shared tenants.
    let mut members = Vec::new();
    let mut shared = Vec::new();
    let mut member_bytes = 0u64;
    let mut usage_of: HashMap<String, &crate::usage::TenantUsage> = HashMap::new();
    for u in &usage {
        usage_of.insert(u.tenant.clone(), u);
        match u.tenant.strip_prefix("member/") {
            Some(n) if member_names.iter().any(|m| m == n) => {
                member_bytes += u.stored_bytes;
                if !in_scope(n) {
                    continue;
                }
                members.push(MemberReport {
                    name: n.to_string(),
                    tenant: u.tenant.clone(),
                    stored_bytes: u.stored_bytes,
                    logical_bytes: u.logical_bytes,
                    snapshots: u.snapshots,
                    last_backup: u.last_backup.clone(),
                    quota: u.quota,
                    quota_used_percent: u.quota_used_percent,
                    replicas: peer_states.clone(),
                    cost: None,
                });
            }
            _ => shared.push(SharedTenant {
                // With --member, other (removed) members' names stay out.
                tenant: if u.tenant.starts_with("member/") && opts.member.is_some() {
                    "member/…".into()
                } else {
                    u.tenant.clone()
                },
                stored_bytes: u.stored_bytes,
                logical_bytes: u.logical_bytes,
                snapshots: u.snapshots,
                last_backup: u.last_backup.clone(),
            }),
        }
    }
    let shared_bytes = pack_bytes.saturating_sub(member_bytes);

    // The access logs, verified once (for the last backups a key that cannot read snapshots
    // still sees, and for the accesses below).
    let logs = if admin_keys.is_empty() {
        None
    } else {
        let trusted = crate::writers::log_trust(repo, &admin_keys)?;
        Some(crate::log::verify(repo, &trusted)?)
    };
    // Tenants whose snapshots the caller cannot open (a site's writer key): the snapshot
    // objects under the tenant's tag are listed, and the newest one's time is the time of
    // the backup entry that names it in a trusted log. No snapshot objects: never; objects
    // but no entry naming one: unknown (`None`, shown as "?"), never a false "never".
    let registry_tag = |tenant: &str| -> Option<[u8; 16]> {
        let n = tenant.strip_prefix("member/")?;
        registry.as_ref()?.member(n).map(|m| m.tenant_tag)
    };
    let backup_times = |tenant: &str| -> Result<(Option<usize>, Option<String>)> {
        let keys = known.get(tenant).map(|k| &k.keys);
        let Some(tag) = keys.map(|k| k.tag).or_else(|| registry_tag(tenant)) else {
            return Ok((None, None));
        };
        let names: std::collections::HashSet<String> = repo
            .list(Kind::Snapshot, &tag)?
            .iter()
            .map(|o| o.name.to_hex())
            .collect();
        if names.is_empty() {
            return Ok((Some(0), None));
        }
        let (Some(keys), Some((_, contents))) = (keys, &logs) else {
            return Ok((None, None));
        };
        let tenant_tag = crate::log::tenant_tag(keys);
        let newest = contents
            .iter()
            .flat_map(|c| c.accepted().map(|(_, e)| e))
            .filter(|e| {
                e.event == coop_formats::tlog::Event::Backup
                    && e.tenant.as_deref() == Some(tenant_tag.as_str())
                    && e.object.as_ref().is_some_and(|o| names.contains(o))
                    && chrono::DateTime::parse_from_rfc3339(&e.time).is_ok()
            })
            .map(|e| e.time)
            .max();
        Ok((None, newest))
    };
    for m in &mut members {
        if m.snapshots.is_none() && m.last_backup.is_none() {
            let (n, t) = backup_times(&m.tenant)?;
            m.snapshots = n;
            m.last_backup = t;
        }
    }
    for x in &mut shared {
        if x.snapshots.is_none() && x.last_backup.is_none() && !x.tenant.ends_with('…') {
            let (n, t) = backup_times(&x.tenant)?;
            x.snapshots = n;
            x.last_backup = t;
        }
    }

    // Costs.
    let costs = coop_facts.and_then(|c| {
        let currency = c.currency.clone()?;
        let has_costs = c.sites.iter().any(|s| !s.costs.is_empty());
        if !has_costs && c.balance.is_none() {
            return None;
        }
        let quotas: Vec<(String, u64, Option<u64>)> = member_names
            .iter()
            .map(|n| {
                let u = usage_of.get(&format!("member/{n}"));
                (
                    n.clone(),
                    u.map(|u| u.stored_bytes).unwrap_or(0),
                    u.and_then(|u| u.quota),
                )
            })
            .collect();
        let mut k = cost_model(
            &currency,
            c.sites.iter().map(|s| s.monthly_costs()).sum(),
            c.fixed_share_percent,
            pack_bytes,
            shared_bytes,
            &quotas,
        );
        k.balance = c.balance;
        k.balance_date = c.balance_date.clone();
        k.runway_months = match c.balance {
            Some(b) if k.monthly_total > 0.0 => Some((b / k.monthly_total).max(0.0)),
            _ => None,
        };
        k.groups = group_costs(registry.as_ref(), &quotas, &k.shares);
        k.groups
            .retain(|g| opts.member.as_deref().is_none_or(|m| m == g.payer));
        k.shares.retain(|s| in_scope(&s.member));
        Some(k)
    });
    if let Some(k) = &costs {
        for m in &mut members {
            m.cost = k.shares.iter().find(|s| s.member == m.name).cloned();
        }
    }

    // Energy.
    let energy = match (settings, src.history) {
        (Some(s), Some(h)) => Some(energy_report(s, h, opts)?),
        _ => None,
    };

    // Writers and readers.
    let writer_list = if admin_keys.is_empty() {
        None
    } else {
        let l = crate::writers::load(repo, &admin_keys)?;
        for p in &l.problems {
            warnings.push(p.to_string());
            integrity_problem = true;
        }
        Some(l.list)
    };
    let mut writers = Vec::new();
    if let Some(l) = &writer_list {
        for w in &l.writers {
            writers.push(Writer {
                name: w.name.clone(),
                key: hex::encode(w.public_key)[..16].to_string(),
                kind: "site",
                added: Some(w.added.clone()),
                revoked: w.revoked.as_ref().map(|r| r.time.clone()),
            });
        }
    }
    for k in &admin_keys {
        writers.push(Writer {
            name: "admin".into(),
            key: hex::encode(k)[..16].to_string(),
            kind: "admin",
            added: None,
            revoked: None,
        });
    }
    let site_writers: Vec<String> = writers
        .iter()
        .filter(|w| w.kind == "site" && w.revoked.is_none())
        .map(|w| w.name.clone())
        .collect();
    let peers: Vec<String> = settings
        .map(|s| s.peers.iter().map(|p| p.name.clone()).collect())
        .unwrap_or_default();
    let coop_recipients: Vec<String> = known
        .get("coop")
        .and_then(|k| k.ring.as_ref())
        .map(|r| r.recipients.clone())
        .unwrap_or_default();
    let mut readers = Vec::new();
    for (tenant, k) in &known {
        if !scoped_tenant(tenant) {
            continue;
        }
        let member = tenant.strip_prefix("member/").and_then(|n| {
            registry
                .as_ref()
                .and_then(|r| r.members.iter().find(|m| m.name == n))
        });
        if tenant.starts_with("member/")
            && !member_names
                .iter()
                .any(|n| Some(n.as_str()) == tenant.strip_prefix("member/"))
        {
            continue; // a removed member: not reported by name
        }
        let (source, recipients) = match (&k.ring, member, &registry) {
            (Some(r), _, _) => ("keyring", r.recipients.clone()),
            (None, Some(m), Some(reg)) => {
                let mut all = m.recipients.clone();
                all.extend(
                    crate::members::recovery_readers(reg, m)
                        .into_iter()
                        .filter(|r| !m.recipients.contains(r)),
                );
                ("registry", all)
            }
            _ => continue,
        };
        let setup = registry.as_ref().and_then(|r| r.recovery_setup.as_ref());
        let split_key = member
            .and_then(|m| m.recovery.as_ref())
            .map(|r| &r.recipient);
        let recovery = match (member, setup) {
            (Some(_), Some(s)) if split_key.is_some_and(|k| recipients.contains(k)) => {
                Some(RecoveryPolicy {
                    threshold: s.threshold,
                    approvals: s.approvals(),
                    holders: s.holders.iter().map(|h| h.name.clone()).collect(),
                    description: format!(
                        "one admin asks and {} approve, of {} admins: {}",
                        s.approvals(),
                        s.holders.len(),
                        s.holders
                            .iter()
                            .map(|h| h.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
            _ => None,
        };
        let list = recipients
            .iter()
            .map(|r| {
                let kind = if member.is_some_and(|m| m.recipients.contains(r)) {
                    "member"
                } else if setup.is_some() && split_key == Some(r) {
                    "recovery-split"
                } else if tenant == "coop"
                    || coop_recipients.contains(r)
                    || registry.as_ref().is_some_and(|g| g.recovery.contains(r))
                {
                    "admin"
                } else {
                    "key"
                };
                let (fingerprint, mut comment) = fingerprint(r);
                // An admin as a person: named (issue 25 finding 8).
                if let Some(a) = registry.as_ref().and_then(|g| {
                    g.admins
                        .iter()
                        .find(|a| &a.recipient == r && a.removed.is_none())
                }) {
                    comment = Some(a.name.clone());
                }
                Reader {
                    recipient: r.clone(),
                    kind,
                    fingerprint,
                    comment,
                }
            })
            .collect();
        let mut w = site_writers.clone();
        if !admin_keys.is_empty() {
            w.push("admin".into());
        }
        if let Some(n) = tenant.strip_prefix("member/") {
            w.push(format!("{n} (own key)"));
        }
        readers.push(TenantReaders {
            tenant: tenant.clone(),
            member: tenant.strip_prefix("member/").map(String::from),
            source,
            readers: list,
            recovery,
            writers: w,
            storage_sites: peers.clone(),
        });
    }
    readers.sort_by(|a, b| (a.tenant != "coop", &a.tenant).cmp(&(b.tenant != "coop", &b.tenant)));

    // Accesses.
    let accesses = if admin_keys.is_empty() {
        None
    } else {
        let (rep, contents) = logs.expect("verified above with admin keys");
        if !rep.problems.is_empty() {
            integrity_problem = true;
        }
        let tags: Vec<(String, String)> = member_names
            .iter()
            .filter(|n| in_scope(n))
            .filter_map(|n| {
                known
                    .get(&format!("member/{n}"))
                    .map(|k| (n.clone(), crate::log::tenant_tag(&k.keys)))
            })
            .collect();
        Some(accesses::gather(
            &rep,
            &contents,
            &tags,
            opts,
            registry.as_ref(),
        ))
    };

    // Stored bytes over time.
    let mut stored_over_time = Vec::new();
    if let Some(h) = src.history {
        let samples = h.usage_samples(opts.until)?;
        let now_total = pack_bytes;
        stored_over_time.push(series("total", &samples, opts, |_| true, now_total));
        if let Some(m) = &opts.member {
            let tenant = format!("member/{m}");
            let now = usage_of.get(&tenant).map(|u| u.stored_bytes).unwrap_or(0);
            stored_over_time.push(series(&tenant, &samples, opts, |t| t == tenant, now));
        }
    }

    let missing = missing_sections(settings, src.history.is_some(), &costs, &energy, &accesses);
    let c = coop_facts;
    Ok(Report {
        format: FORMAT,
        generated: crate::unix_rfc3339(opts.until),
        period: Period {
            since: crate::unix_rfc3339(opts.since),
            until: crate::unix_rfc3339(opts.until),
            days: ((opts.until - opts.since) as f64 / 86_400.0 * 10.0).round() / 10.0,
        },
        language: c.map(|c| c.language).unwrap_or_default(),
        member: opts.member.clone(),
        repository: RepositoryInfo {
            id: repo.config.repo_id.to_hex(),
            location: repo.store.location(),
            site: settings.map(|s| s.site.name.clone()),
        },
        totals: Totals {
            members: member_names.len(),
            stored_bytes: pack_bytes,
        },
        cooperative: c.map(|c| CooperativeInfo {
            name: c.name.clone(),
            legal_form: c.legal_form.clone(),
            currency: c.currency.clone(),
        }),
        members,
        shared,
        sites,
        costs,
        energy,
        caretakers: settings
            .filter(|s| s.jobs.iter().any(|j| j.caretaker.is_some()))
            .map(|s| {
                s.jobs
                    .iter()
                    .map(|j| JobCaretaker {
                        job: j.name.clone(),
                        caretaker: j.caretaker.as_ref().map(|c| c.to_string()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        readers,
        writers,
        accesses,
        stored_over_time,
        missing,
        warnings,
        integrity_problem,
        next_due: None,
    })
}

#[allow(clippy::too_many_arguments)]
fn site_report(
    name: &str,
    role: SiteRole,
    facts: Option<&crate::settings::SiteFacts>,
    stored_bytes: Option<u64>,
    stored_is_estimate: bool,
    last_replicated: Option<String>,
    can_read: Option<bool>,
) -> SiteReport {
    SiteReport {
        name: name.to_string(),
        role,
        provider: facts.and_then(|f| f.provider.clone()),
        location: facts.and_then(|f| f.location.clone()),
        energy_source: facts.and_then(|f| f.energy_source.clone()),
        renewable: facts.and_then(|f| f.renewable),
        stored_bytes,
        stored_is_estimate: stored_is_estimate && stored_bytes.is_some(),
        monthly_costs: facts
            .filter(|f| !f.costs.is_empty())
            .map(|f| round(f.monthly_costs(), 2)),
        cost_items: facts
            .map(|f| {
                f.costs
                    .iter()
                    .map(|(i, a)| CostItem {
                        item: i.clone(),
                        amount: *a,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_replicated,
        can_read,
    }
}

/// `SHA256:…` (as `ssh-keygen -l` prints it) and the comment of an SSH key; an age key is
/// its own fingerprint.
pub fn fingerprint(recipient: &str) -> (String, Option<String>) {
    use base64::Engine;
    use sha2::Digest;
    let parts: Vec<&str> = recipient.split_whitespace().collect();
    if parts.len() >= 2 && parts[0].starts_with("ssh-") {
        if let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(parts[1]) {
            let fp = base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(sha2::Sha256::digest(&blob));
            let comment = (parts.len() > 2).then(|| parts[2..].join(" "));
            return (format!("SHA256:{fp}"), comment);
        }
    }
    (recipient.trim().to_string(), None)
}

fn missing_sections(
    settings: Option<&Settings>,
    history: bool,
    costs: &Option<Costs>,
    energy: &Option<EnergyReport>,
    accesses: &Option<Accesses>,
) -> Vec<Missing> {
    let mut out = Vec::new();
    let coop = settings.and_then(|s| s.cooperative.as_ref());
    if settings.is_none() {
        out.push(Missing {
            section: "config",
            keys: vec!["--config /etc/coop/agent.toml"],
            note:
                "without the agent's config the report knows no sites, peers, costs or job history",
        });
    }
    if coop.is_none() {
        out.push(Missing {
            section: "cooperative",
            keys: vec![
                "[cooperative] name",
                "[cooperative] legal_form",
                "[cooperative] language",
            ],
            note: "who runs the sites",
        });
    }
    if coop.is_none_or(|c| c.sites.is_empty()) {
        out.push(Missing {
            section: "sites",
            keys: vec![
                "[[cooperative.site]] name",
                "[[cooperative.site]] provider",
                "[[cooperative.site]] location",
                "[[cooperative.site]] energy_source",
                "[[cooperative.site]] renewable",
            ],
            note: "where data and its replicas are, and who provides the sites",
        });
    }
    if costs.is_none() {
        out.push(Missing {
            section: "costs",
            keys: vec![
                "[cooperative] currency",
                "[[cooperative.site]] costs",
                "[cooperative] fixed_share_percent",
            ],
            note: "the sites' monthly costs and each member's share",
        });
    }
    if coop.is_none_or(|c| c.balance.is_none()) {
        out.push(Missing {
            section: "runway",
            keys: vec!["[cooperative] balance", "[cooperative] balance_date"],
            note: "for how many months the running costs are covered",
        });
    }
    if settings.is_some_and(|s| s.peers.is_empty()) {
        out.push(Missing {
            section: "replicas",
            keys: vec!["[[peer]]"],
            note: "no other site holds a replica of this repository",
        });
    }
    if settings.is_some() && !history {
        out.push(Missing {
            section: "history",
            keys: vec!["[site] cache_dir"],
            note: "no job has run with this config's cache directory yet: energy, replication lag and stored bytes over time come from the agent's history there",
        });
    }
    if let Some(e) = energy {
        if e.wh.is_none() {
            out.push(Missing {
                section: "energy",
                keys: vec!["[[cooperative.site]] cpu_watts"],
                note: "some runs could not be measured (no readable RAPL counters) and no wattage is configured for an estimate",
            });
        }
    } else if settings.is_none() {
        out.push(Missing {
            section: "energy",
            keys: vec!["--config", "[[cooperative.site]] cpu_watts"],
            note: "energy is recorded per job run in the agent's history",
        });
    }
    if accesses.is_none() {
        out.push(Missing {
            section: "accesses",
            keys: vec!["an identity or writer key of this repository"],
            note: "the access logs are checked against the admin keys, which the key given does not name",
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::costs::allocate_cents;
    use super::*;

    #[test]
    fn shares_add_up_to_the_costs_to_the_cent() {
        let members = vec![
            ("alice".to_string(), 3_000_000_000, Some(10_000_000_000)),
            ("bob".to_string(), 1_000_000_000, None),
            ("cleo".to_string(), 1, None),
        ];
        let k = cost_model("EUR", 100.01, 20.0, 5_000_000_000, 999_999_999, &members);
        let sum: f64 = k.shares.iter().map(|s| s.monthly).sum();
        assert!((sum - 100.01).abs() < 1e-9, "{sum}");
        assert_eq!(k.shares_total, 100.01);
        assert_eq!(k.unallocated, 0.0);
        // 80.008 over 5 GB.
        assert_eq!(k.price_per_gb_month, Some(16.0016));
        let a = &k.shares[0];
        assert!((a.fixed - 20.002 / 3.0).abs() < 1e-3);
        assert!(a.monthly > k.shares[1].monthly && k.shares[1].monthly > k.shares[2].monthly);
        // At 10 GB, alice pays 7 GB more than now.
        let more = a.at_quota.unwrap() - (a.fixed + a.usage + a.shared);
        assert!((more - 7.0 * 16.0016).abs() < 0.01, "{more}");
        // Nothing stored: the usage part is split equally too.
        let k = cost_model("EUR", 10.0, 0.0, 0, 0, &members);
        assert_eq!(k.price_per_gb_month, None);
        let sum: f64 = k.shares.iter().map(|s| s.monthly).sum();
        assert!((sum - 10.0).abs() < 1e-9);
        // No members: nothing is allocated.
        let k = cost_model("EUR", 10.0, 50.0, 100, 100, &[]);
        assert_eq!((k.shares_total, k.unallocated), (0.0, 10.0));
    }

    #[test]
    fn cents_go_to_the_largest_remainders() {
        assert_eq!(
            allocate_cents(100, &[1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0]),
            vec![34, 33, 33]
        );
        assert_eq!(allocate_cents(1001, &[5.005, 5.005]), vec![501, 500]);
    }

    #[test]
    fn ssh_fingerprints_are_ssh_keygens() {
        // `ssh-keygen -l` of this key prints the same.
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEN5zzO3neHuW/t9ip57wFgKD+Y3emWT10ge2c1Yb+bX anna@laptop";
        let (fp, comment) = fingerprint(key);
        assert_eq!(fp, "SHA256:9/2KSlnS38bzmqAyvKcgauvatO4X+GgjuJMKKNEK7UQ");
        assert_eq!(comment.as_deref(), Some("anna@laptop"));
        let (fp, comment) = fingerprint("age1xyz");
        assert_eq!((fp.as_str(), comment), ("age1xyz", None));
    }

    #[test]
    fn the_line_steps_from_sample_to_sample() {
        let opts = Options {
            since: 100,
            until: 400,
            member: None,
        };
        let s = vec![
            (50, "coop".to_string(), 10),
            (150, "member/a".to_string(), 5),
            (200, "coop".to_string(), 20),
        ];
        let line = series("total", &s, &opts, |_| true, 30);
        let pts: Vec<(i64, u64)> = line.points.iter().map(|p| (p.unix, p.bytes)).collect();
        assert_eq!(pts, vec![(100, 10), (150, 15), (200, 25), (400, 30)]);
        let a = series("member/a", &s, &opts, |t| t == "member/a", 6);
        let pts: Vec<(i64, u64)> = a.points.iter().map(|p| (p.unix, p.bytes)).collect();
        assert_eq!(pts, vec![(150, 5), (400, 6)]);
    }
}
