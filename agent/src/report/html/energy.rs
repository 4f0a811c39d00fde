//! The energy section: runs, CPU time and energy, per month (a chart), per job and per
//! site with its electricity.

use super::*;
use crate::report::EnergyReport;

pub(super) fn energy(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let Some(e) = &r.energy else { return };
    let _ = write!(
        p.out,
        "<section id=\"energy\"><h2>{}</h2><p>{} {}</p><p class=\"note\">{}</p>",
        escape(t.energy),
        escape(&i18n::fill(t.energy_note, &[&e.site])),
        p.method_badge(e.method),
        escape(&i18n::fill(
            t.estimate_note,
            &[&e.cpu_watts
                .map(|w| i18n::number(p.lang, w, 1))
                .unwrap_or_else(|| "?".into())]
        ))
    );
    let mut cards = vec![
        (t.runs.to_string(), e.runs.to_string()),
        (
            t.cpu_time.to_string(),
            i18n::duration(p.lang, e.cpu_seconds),
        ),
    ];
    if let Some(wh) = e.wh {
        cards.push((t.energy.to_string(), i18n::energy(p.lang, wh)));
    }
    p.cards(cards);
    if !e.by_month.is_empty() {
        let cols: Vec<(String, f64, f64)> = e
            .by_month
            .iter()
            .map(|m| (m.month.clone(), m.measured_wh, m.estimated_wh))
            .collect();
        let lang = p.lang;
        let chart =
            svg::stacked_columns(t.energy_per_month, &cols, (t.measured, t.estimate), |v| {
                i18n::energy(lang, v)
            });
        let _ = write!(p.out, "<h3>{}</h3>{chart}", escape(t.energy_per_month));
    }
    let rows: Vec<Vec<String>> = e
        .by_job
        .iter()
        .map(|j| {
            vec![
                escape(&j.job),
                j.runs.to_string(),
                escape(&i18n::duration(p.lang, j.cpu_seconds)),
                escape(&p.opt(j.wh.map(|w| i18n::energy(p.lang, w)))),
                p.method_badge(j.method),
            ]
        })
        .collect();
    p.table(
        &[
            (t.job, false),
            (t.runs, true),
            (t.cpu_time, true),
            (t.energy, true),
            (t.method, false),
        ],
        &rows,
        None,
    );
    electricity(p, e);
    p.w("</section>\n");
}

/// Each site's electricity and the energy recorded here.
fn electricity(p: &mut Page, e: &EnergyReport) {
    let t = p.t;
    let _ = write!(p.out, "<h3>{}</h3>", escape(t.electricity));
    let rows: Vec<Vec<String>> = e
        .sites
        .iter()
        .map(|s| {
            vec![
                format!("<strong>{}</strong>", escape(&s.site)),
                escape(&p.opt(s.energy_source.clone())),
                escape(match s.renewable {
                    Some(true) => t.renewable,
                    Some(false) => t.not_renewable,
                    None => "–",
                }),
                if s.recorded_here {
                    e.wh.map(|w| escape(&i18n::energy(p.lang, w)))
                        .unwrap_or_else(|| "–".into())
                } else {
                    escape(t.recorded_elsewhere)
                },
            ]
        })
        .collect();
    let mut renewable_head: String = t
        .renewable
        .chars()
        .take(1)
        .flat_map(char::to_uppercase)
        .collect();
    renewable_head.extend(t.renewable.chars().skip(1));
    p.table(
        &[
            (t.site, false),
            (t.energy_source, false),
            (&renewable_head, false),
            (t.energy, true),
        ],
        &rows,
        None,
    );
}
