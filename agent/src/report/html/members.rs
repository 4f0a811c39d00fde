//! The members section: stored bytes per member and shared tenant (a bar chart and a
//! table with snapshots, last backup, quota, replicas and cost share).

use super::*;
use crate::report::{MemberReport, SharedTenant};

pub(super) fn members(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let _ = write!(
        p.out,
        "<section id=\"members\"><h2>{}</h2><p class=\"note\">{}: {}.</p>",
        escape(t.members),
        escape(t.stored),
        escape(t.stored_hint)
    );
    let mut bars: Vec<Bar> = r
        .members
        .iter()
        .map(|m| Bar {
            label: m.name.clone(),
            value: m.stored_bytes as f64,
            text: p.bytes(m.stored_bytes),
        })
        .collect();
    for s in &r.shared {
        bars.push(Bar {
            label: if s.tenant == "coop" {
                t.shared_services.to_string()
            } else {
                s.tenant.clone()
            },
            value: s.stored_bytes as f64,
            text: p.bytes(s.stored_bytes),
        });
    }
    if !bars.is_empty() {
        let chart = svg::bars(t.stored_per_member, &bars);
        p.w(&chart);
    }
    let mut rows: Vec<Vec<String>> = r.members.iter().map(|m| member_row(p, m)).collect();
    for s in &r.shared {
        rows.push(shared_row(p, s));
    }
    p.table(
        &[
            (t.member, false),
            (t.stored, true),
            (t.logical, true),
            (t.snapshots, true),
            (t.last_backup, false),
            (t.quota, false),
            (t.replicas, false),
            (t.share, true),
        ],
        &rows,
        None,
    );
    p.w("</section>\n");
}

/// A member's row: stored, snapshots, last backup, quota, replicas and cost share.
fn member_row(p: &Page, m: &MemberReport) -> Vec<String> {
    let t = p.t;
    let quota = match (m.quota, m.quota_used_percent) {
        (Some(q), Some(u)) => format!(
            "{} ({} % {})",
            escape(&p.bytes(q)),
            escape(&i18n::number(p.lang, u, 0)),
            escape(t.quota_used)
        ),
        _ => escape(t.no_quota),
    };
    let replicas: Vec<String> = m
        .replicas
        .iter()
        .map(|x| {
            let state = match (x.lag_objects, x.lag_bytes) {
                (Some(0), _) => {
                    format!("<span class=\"badge ok\">{}</span>", escape(t.up_to_date))
                }
                (Some(_), Some(b)) => format!(
                    "<span class=\"badge\">{} {}</span>",
                    escape(t.behind),
                    escape(&p.bytes(b))
                ),
                _ => format!("<span class=\"badge\">{}</span>", escape(t.unknown)),
            };
            format!("{} {state}", escape(&x.site))
        })
        .collect();
    vec![
        format!("<strong>{}</strong>", escape(&m.name)),
        escape(&p.bytes(m.stored_bytes)),
        escape(&p.opt(m.logical_bytes.map(|b| p.bytes(b)))),
        escape(&p.opt(m.snapshots.map(|n| n.to_string()))),
        escape(&super::last_backup_text(
            m.last_backup.as_deref(),
            m.snapshots,
            i18n::date_time,
            t.never,
        )),
        quota,
        if replicas.is_empty() {
            "–".into()
        } else {
            replicas.join("<br>")
        },
        escape(&p.opt(m.cost.as_ref().map(|c| p.money(c.monthly)))),
    ]
}

/// A shared tenant's row.
fn shared_row(p: &Page, s: &SharedTenant) -> Vec<String> {
    let t = p.t;
    vec![
        format!(
            "{} <code>{}</code>",
            escape(t.shared_services),
            escape(&s.tenant)
        ),
        escape(&p.bytes(s.stored_bytes)),
        escape(&p.opt(s.logical_bytes.map(|b| p.bytes(b)))),
        escape(&p.opt(s.snapshots.map(|n| n.to_string()))),
        escape(&super::last_backup_text(
            s.last_backup.as_deref(),
            s.snapshots,
            i18n::date_time,
            t.never,
        )),
        "–".into(),
        "–".into(),
        "–".into(),
    ]
}
