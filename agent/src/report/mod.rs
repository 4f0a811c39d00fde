//! `coop report`: the transparency report, from the repository's own state and the
//! cooperative's facts in agent.toml (docs/TRANSPARENCY.md explains every figure).
//!
//! - this module: [`gather`], which composes the report's sections: the tenants (usage, the
//!   registry, keyrings: `tenants.rs`), the sites (`sites.rs`), members (`members.rs`), costs
//!   (`costs.rs`), energy and series (`energy.rs`), writers and readers (`readers.rs`), the
//!   accesses from the verified access logs (`accesses.rs`) and what is missing
//!   (`missing.rs`); the data model ([`Report`], serialised as `--json`) is in `model.rs`.
//! - every rendering of the model, here and nowhere else: [`html`], the page (one static
//!   file: no script, nothing fetched), with [`svg`] charts and [`i18n`] strings (German and
//!   English); [`text`], the report for a terminal; the JSON is the model's `Serialize`. The
//!   published setup ([`setup`]) has its page there and its text in [`text`] too.
//!
//! With [`Options::member`] the member-specific parts (members, cost shares, readers,
//! accesses, series) cover that member alone; the cooperative-wide parts stay.

mod accesses;
mod costs;
mod energy;
pub mod html;
pub mod i18n;
mod members;
mod missing;
mod model;
mod readers;
pub mod setup;
mod sites;
pub mod svg;
mod tenants;
pub mod text;

pub use costs::cost_model;
use costs::round;
use energy::{energy_report, stored_over_time};
use missing::missing_sections;
pub use model::*;
use tenants::Notes;

use crate::error::{Error, Result};
use crate::history::{EnergyMethod, History};
use crate::keys::{Access, TenantKeys};
use crate::layout::Kind;
use crate::repo::Repo;
use crate::settings::{Language, Settings};
use serde::Serialize;
use std::collections::BTreeMap;

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

/// Gathers the report: each section from the tenants (usage, registry, keys) and the store.
pub fn gather(src: &Sources, opts: &Options) -> Result<Report> {
    let settings = src.settings;
    let coop_facts = settings.and_then(|s| s.cooperative.as_ref());
    let mut notes = Notes::default();
    let t = tenants::gather(src, opts, &mut notes)?;
    let bytes = sites::StoreBytes::of(src.repo)?;
    let (sites, replicas) = sites::gather(src, bytes.here)?;
    let mut m = members::gather(&t, &replicas);
    let shared_bytes = bytes.packs.saturating_sub(m.member_bytes);
    // The access logs, verified once (for the last backups a key that cannot read snapshots
    // still sees, and for the accesses below).
    let logs = if t.admin_keys.is_empty() {
        None
    } else {
        let trusted = crate::writers::log_trust(src.repo, &t.admin_keys)?;
        Some(crate::log::verify(src.repo, &trusted)?)
    };
    members::fill_backup_times(src.repo, &t, &logs, &mut m)?;
    let costs = costs::gather(&t, coop_facts, bytes.packs, shared_bytes);
    if let Some(k) = &costs {
        for m in &mut m.members {
            m.cost = k.shares.iter().find(|s| s.member == m.name).cloned();
        }
    }
    let energy = match (settings, src.history) {
        (Some(s), Some(h)) => Some(energy_report(s, h, opts)?),
        _ => None,
    };
    let writers = readers::writers(src.repo, &t, &mut notes)?;
    let readers = readers::gather(&t, settings, &writers);
    let accesses = accesses::gather(&t, &logs, opts, &mut notes);
    let stored_over_time = stored_over_time(&t, src.history, opts, bytes.packs)?;
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
            id: src.repo.config.repo_id.to_hex(),
            location: src.repo.store.location(),
            site: settings.map(|s| s.site.name.clone()),
        },
        totals: Totals {
            members: t.member_names.len(),
            stored_bytes: bytes.packs,
        },
        cooperative: c.map(|c| CooperativeInfo {
            name: c.name.clone(),
            legal_form: c.legal_form.clone(),
            currency: c.currency.clone(),
        }),
        members: m.members,
        shared: m.shared,
        sites,
        costs,
        energy,
        caretakers: caretakers(settings),
        readers,
        writers,
        accesses,
        stored_over_time,
        missing,
        warnings: notes.warnings,
        integrity_problem: notes.integrity_problem,
        next_due: None,
    })
}

/// The jobs and their caretakers, if any job names one.
fn caretakers(settings: Option<&Settings>) -> Vec<JobCaretaker> {
    settings
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
        .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::costs::allocate_cents;
    use super::energy::series;
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
