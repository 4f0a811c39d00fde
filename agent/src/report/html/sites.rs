//! The sites section: stored bytes per site, and per site its role, provider, location,
//! power, whether it can read, its costs and its last replication.

use super::*;

pub(super) fn sites(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let _ = write!(p.out, "<section id=\"sites\"><h2>{}</h2>", escape(t.sites));
    let bars: Vec<Bar> = r
        .sites
        .iter()
        .filter_map(|s| {
            s.stored_bytes.map(|b| Bar {
                label: s.name.clone(),
                value: b as f64,
                text: p.bytes(b),
            })
        })
        .collect();
    if !bars.is_empty() {
        let chart = svg::bars(t.stored_per_site, &bars);
        p.w(&chart);
    }
    let mut rows = Vec::new();
    for s in &r.sites {
        let role = match s.role {
            SiteRole::ThisSite => t.role_this,
            SiteRole::Replica => t.role_replica,
            SiteRole::Other => t.role_other,
        };
        let power = match (&s.energy_source, s.renewable) {
            (Some(src), Some(true)) => format!(
                "{} <span class=\"badge ok\">{}</span>",
                escape(src),
                escape(t.renewable)
            ),
            (Some(src), Some(false)) => format!(
                "{} <span class=\"badge\">{}</span>",
                escape(src),
                escape(t.not_renewable)
            ),
            (Some(src), None) => escape(src),
            (None, Some(true)) => {
                format!("<span class=\"badge ok\">{}</span>", escape(t.renewable))
            }
            (None, Some(false)) => {
                format!("<span class=\"badge\">{}</span>", escape(t.not_renewable))
            }
            (None, None) => "–".into(),
        };
        let stored = match s.stored_bytes {
            Some(b) if s.stored_is_estimate => format!(
                "<span title=\"{}\">≈ {}</span>",
                escape(t.estimated_from_lag),
                escape(&p.bytes(b))
            ),
            Some(b) => escape(&p.bytes(b)),
            None => "–".into(),
        };
        rows.push(vec![
            format!("<strong>{}</strong>", escape(&s.name)),
            escape(role),
            escape(&p.opt(s.provider.clone())),
            escape(&p.opt(s.location.clone())),
            power,
            stored,
            escape(match s.can_read {
                Some(true) => t.yes,
                Some(false) => t.no,
                None => "–",
            }),
            escape(&p.opt(s.monthly_costs.map(|c| p.money(c)))),
            escape(
                &s.last_replicated
                    .as_deref()
                    .map(i18n::date_time)
                    .unwrap_or_else(|| {
                        if s.role == SiteRole::Replica {
                            t.never.to_string()
                        } else {
                            "–".to_string()
                        }
                    }),
            ),
        ]);
    }
    p.table(
        &[
            (t.site, false),
            (t.role, false),
            (t.provider, false),
            (t.location, false),
            (t.energy_source, false),
            (t.stored, true),
            (t.can_read, false),
            (t.monthly_costs, true),
            (t.last_replicated, false),
        ],
        &rows,
        None,
    );
    p.w("</section>\n");
}
