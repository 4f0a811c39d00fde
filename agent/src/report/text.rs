//! The report for a terminal: [`render`] (the transparency report) and [`setup`] (the
//! published setup), each the whole text, one line per `\n`. The CLI prints it as it is, with
//! its own escaping of control characters; the page is [`super::html`], the JSON the model's
//! `Serialize`.

use super::setup::Setup;
use super::{last_backup_text, Report, SiteRole};
use std::fmt::Write;

/// A size in binary units, as every terminal line of coop shows sizes: `512 B`, `1.50 MiB`.
pub fn bytes(n: u64) -> String {
    const U: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", U[i])
    }
}

/// Lines of text; `line!(out, …)` writes one.
struct Text {
    out: String,
}

macro_rules! line {
    ($t:expr) => {
        $t.out.push('\n')
    };
    ($t:expr, $($arg:tt)*) => {{
        let _ = write!($t.out, $($arg)*);
        $t.out.push('\n');
    }};
}

/// The report for a terminal: the title and totals, the members and shared tenants, the
/// sites, the costs (groups, energy), the caretakers and readers, the accesses and what the
/// report lacks. Every line ends with `\n`.
pub fn render(r: &Report) -> String {
    let mut t = Text { out: String::new() };
    let name = r
        .cooperative
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| r.repository.location.clone());
    line!(
        t,
        "Transparency report: {name}, {} to {}{}",
        &r.period.since[..10],
        &r.period.until[..10],
        r.member
            .as_ref()
            .map(|m| format!(", for member {m}"))
            .unwrap_or_default()
    );
    line!(
        t,
        "{} members, {} stored",
        r.totals.members,
        bytes(r.totals.stored_bytes)
    );
    members(&mut t, r);
    sites(&mut t, r);
    costs(&mut t, r);
    readers(&mut t, r);
    accesses(&mut t, r);
    t.out
}

/// The members and the shared tenants.
fn members(t: &mut Text, r: &Report) {
    let cur = currency(r);
    line!(
        t,
        "\n{:<20} {:>12} {:>12} {:>6} {:<21} {:>8} {:>12}",
        "member",
        "stored",
        "logical",
        "snaps",
        "last backup",
        "quota",
        "share/month"
    );
    for m in &r.members {
        line!(
            t,
            "{:<20} {:>12} {:>12} {:>6} {:<21} {:>8} {:>12}",
            m.name,
            bytes(m.stored_bytes),
            m.logical_bytes.map(bytes).unwrap_or_else(|| "?".into()),
            m.snapshots
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            last_backup_text(
                m.last_backup.as_deref(),
                m.snapshots,
                |t| t.chars().take(19).collect::<String>(),
                "never",
            ),
            m.quota_used_percent
                .map(|q| format!("{q:.0}%"))
                .unwrap_or_else(|| "-".into()),
            m.cost
                .as_ref()
                .map(|c| format!("{:.2} {cur}", c.monthly))
                .unwrap_or_else(|| "-".into()),
        );
    }
    for s in &r.shared {
        line!(
            t,
            "{:<20} {:>12}",
            format!("({})", s.tenant),
            bytes(s.stored_bytes)
        );
    }
}

/// The sites.
fn sites(t: &mut Text, r: &Report) {
    let cur = currency(r);
    if r.sites.is_empty() {
        return;
    }
    line!(
        t,
        "\n{:<16} {:<12} {:<28} {:>12} {:>14}",
        "site",
        "role",
        "provider",
        "stored",
        "costs/month"
    );
    for s in &r.sites {
        line!(
            t,
            "{:<16} {:<12} {:<28} {:>12} {:>14}",
            s.name,
            s.role.name(),
            s.provider.as_deref().unwrap_or("-"),
            s.stored_bytes
                .map(|b| format!(
                    "{}{}",
                    if s.stored_is_estimate { "~" } else { "" },
                    bytes(b)
                ))
                .unwrap_or_else(|| "-".into()),
            s.monthly_costs
                .map(|c| format!("{c:.2} {cur}"))
                .unwrap_or_else(|| "-".into()),
        );
    }
}

/// The costs, the groups' lines and the energy.
fn costs(t: &mut Text, r: &Report) {
    let cur = currency(r);
    if let Some(c) = &r.costs {
        line!(
            t,
            "\ncosts: {:.2} {cur} a month ({} % fixed), {} per GB-month{}",
            c.monthly_total,
            c.fixed_share_percent,
            c.price_per_gb_month
                .map(|v| format!("{v:.4} {cur}"))
                .unwrap_or_else(|| "-".into()),
            c.runway_months
                .map(|m| format!("; the balance covers {m:.1} months"))
                .unwrap_or_default()
        );
        for gc in &c.groups {
            line!(
                t,
                "group {} (paid by {}): {:.2} {cur} a month for {}",
                gc.group,
                gc.payer,
                gc.monthly,
                gc.members
                    .iter()
                    .map(|(m, _, v)| format!("{m} {v:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    if let Some(e) = &r.energy {
        line!(
            t,
            "energy at {}: {} runs, {:.1} CPU-seconds, {} ({})",
            e.site,
            e.runs,
            e.cpu_seconds,
            e.wh.map(|w| format!("{w:.3} Wh"))
                .unwrap_or_else(|| "? Wh".into()),
            e.method
        );
    }
}

/// The caretakers and who can read each tenant.
fn readers(t: &mut Text, r: &Report) {
    line!(t);
    if !r.caretakers.is_empty() {
        for c in &r.caretakers {
            line!(
                t,
                "job {} is looked after by {}",
                c.job,
                c.caretaker.as_deref().unwrap_or("nobody named")
            );
        }
        line!(t);
    }
    for tr in &r.readers {
        line!(
            t,
            "{} can be read by: {}{}",
            tr.tenant,
            tr.readers
                .iter()
                .map(|x| match &x.comment {
                    Some(c) => format!("{} ({c}, {})", x.fingerprint, x.kind),
                    None => format!("{} ({})", x.fingerprint, x.kind),
                })
                .collect::<Vec<_>>()
                .join(", "),
            tr.recovery
                .as_ref()
                .map(|rp| format!("; recovery: {}", rp.description))
                .unwrap_or_default()
        );
    }
}

/// The accesses and what the report lacks.
fn accesses(t: &mut Text, r: &Report) {
    if let Some(a) = &r.accesses {
        line!(
            t,
            "\naccess logs: {}",
            if a.verified {
                "verified".to_string()
            } else {
                format!("{} problem(s)", a.problems.len())
            }
        );
        for e in &a.break_glass {
            line!(
                t,
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
            );
        }
        for m in &a.members {
            line!(
                t,
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
            );
        }
    }
    if !r.missing.is_empty() {
        line!(t, "\nnot in this report (add these to the config):");
        for m in &r.missing {
            line!(t, "  {}: {}", m.section, m.keys.join(", "));
        }
    }
}

/// The currency of the costs (empty without costs).
fn currency(r: &Report) -> String {
    r.costs
        .as_ref()
        .map(|c| c.currency.clone())
        .unwrap_or_default()
}

/// The published setup for a terminal: a line per job, where it is replicated to, who reads
/// what. Every line ends with `\n`.
pub fn setup(s: &Setup) -> String {
    let mut t = Text { out: String::new() };
    for j in &s.jobs {
        line!(
            t,
            "{:<16} {:<14} {:<12} {} path(s), {} dump(s), {} left out; {}; last run {}",
            j.name,
            j.schedule,
            j.tenant,
            j.paths.len(),
            j.dumps.len(),
            j.excluded.len(),
            j.retention.as_deref().unwrap_or("all kept"),
            j.last_run.as_deref().unwrap_or("-")
        );
    }
    line!(
        t,
        "replicated to: {}",
        s.replicas
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    line!(t, "service data read by: {}", s.readers.service.join(", "));
    line!(t, "member data read by: {}", s.readers.members);
    t.out
}

impl SiteRole {
    /// The role as the JSON and the text name it: `this-site`, `replica`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            SiteRole::ThisSite => "this-site",
            SiteRole::Replica => "replica",
            SiteRole::Other => "other",
        }
    }
}

#[cfg(test)]
#[path = "text_tests.rs"]
mod tests;
