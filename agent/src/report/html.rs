//! The report as one static page: `index.html`, self-contained (its CSS and SVG charts are
//! inline; no script, font, image or stylesheet is fetched, no link leaves the page),
//! readable on a phone (viewport, a single column, tables that scroll sideways) and
//! printable (`@media print`). Every text from the repository or the config is escaped.

use super::i18n::{self, Strings};
use super::svg::{self, Bar};
use super::{Report, SiteRole};
use crate::settings::Language;
use std::fmt::Write;

/// Escapes text for HTML (element content and quoted attributes alike).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(super) const CSS: &str = r#"
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dce3; --accent: #2f6f9f; --accent2: #9cc3e0; --soft: #f3f5f8; --warn: #9a3b00; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans", sans-serif; }
header, main, footer, nav { max-width: 70rem; margin: 0 auto; padding: 0 1rem; }
header { padding-top: 1.5rem; }
.kicker { margin: 0; color: var(--accent); font-weight: 600; text-transform: uppercase; letter-spacing: .06em; font-size: .85rem; }
h1 { margin: .2rem 0 .3rem; font-size: 1.9rem; line-height: 1.2; }
h2 { margin: 2.2rem 0 .6rem; font-size: 1.35rem; border-bottom: 2px solid var(--line); padding-bottom: .2rem; }
h3 { margin: 1.4rem 0 .4rem; font-size: 1.08rem; }
h4 { margin: .8rem 0 .2rem; font-size: .95rem; color: var(--muted); }
.meta, .note { color: var(--muted); margin: .2rem 0; }
.scope { display: inline-block; background: var(--soft); border-left: 4px solid var(--accent); padding: .3rem .7rem; margin: .6rem 0 0; }
nav { margin-top: 1rem; }
nav ul { list-style: none; padding: 0; margin: 0; display: flex; flex-wrap: wrap; gap: .3rem .9rem; }
nav a { color: var(--accent); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(10.5rem, 1fr)); gap: .7rem; margin: 1rem 0; padding: 0; }
.cards div { background: var(--soft); border-radius: 6px; padding: .6rem .8rem; }
.cards dt { color: var(--muted); font-size: .85rem; }
.cards dd { margin: .1rem 0 0; font-size: 1.3rem; font-weight: 600; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .5rem 0 1rem; }
table { border-collapse: collapse; width: 100%; font-size: .94rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--soft); }
td.num, th.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; border-top: 2px solid var(--line); }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85em; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; background: var(--soft); border: 1px solid var(--line); white-space: nowrap; }
.badge.measured { background: #e3f1e6; border-color: #9ccaa6; }
.badge.estimate { background: #fff2dc; border-color: #e6c07a; }
.badge.ok { background: #e3f1e6; border-color: #9ccaa6; }
.badge.bad { background: #fde7e4; border-color: #e79a8f; }
.tenant { border: 1px solid var(--line); border-radius: 6px; padding: .2rem .9rem .7rem; margin: .8rem 0; }
.tenant ul { margin: .2rem 0; padding-left: 1.2rem; }
.problems li, .warnings li { color: var(--warn); }
.chart { display: block; width: 100%; max-width: 40rem; height: auto; margin: .4rem 0 1rem; }
.chart .bar { fill: var(--accent); }
.chart .bar2 { fill: var(--accent2); }
.chart .label, .chart .value { font-size: 13px; fill: var(--ink); }
.chart .axis { font-size: 12px; fill: var(--muted); }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .line { fill: none; stroke: var(--accent); stroke-width: 2.5; }
.chart .dot { fill: var(--accent); }
footer { margin-top: 2.5rem; padding-bottom: 2rem; color: var(--muted); font-size: .9rem; border-top: 1px solid var(--line); }
@media (max-width: 34rem) {
  body { font-size: 15px; }
  h1 { font-size: 1.5rem; }
  .cards dd { font-size: 1.1rem; }
  /* Each row a card: its cells one under the other, each headed by its column. */
  table, tbody, tfoot, tr, td { display: block; width: 100%; }
  thead { display: none; }
  tr { border-bottom: 2px solid var(--line); padding: .3rem 0; }
  td, td.num { display: flex; justify-content: space-between; gap: 1rem; border: 0; padding: .12rem .2rem; text-align: right; white-space: normal; }
  td::before { content: attr(data-label); color: var(--muted); text-align: left; font-weight: 400; }
  td:empty, td[data-label=""]::before { display: none; }
  td:first-child { font-size: 1.02rem; }
}
@media print {
  body { font-size: 10.5pt; }
  nav { display: none; }
  header, main, footer { max-width: none; padding: 0; }
  h2 { break-after: avoid; page-break-after: avoid; }
  section, .tenant, table, .chart, .cards { break-inside: avoid; page-break-inside: avoid; }
  .table-wrap { overflow: visible; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

struct Page<'r> {
    r: &'r Report,
    t: &'static Strings,
    lang: Language,
    out: String,
}

impl Page<'_> {
    fn w(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn bytes(&self, n: u64) -> String {
        i18n::bytes(self.lang, n)
    }

    fn money(&self, v: f64) -> String {
        let cur = self
            .r
            .costs
            .as_ref()
            .map(|c| c.currency.as_str())
            .unwrap_or("");
        i18n::money(self.lang, v, cur)
    }

    fn opt(&self, v: Option<String>) -> String {
        v.unwrap_or_else(|| "–".to_string())
    }

    fn table(&mut self, head: &[(&str, bool)], rows: &[Vec<String>], foot: Option<Vec<String>>) {
        self.w("<div class=\"table-wrap\"><table><thead><tr>");
        for (h, num) in head {
            let _ = write!(
                self.out,
                "<th{}>{}</th>",
                if *num { " class=\"num\"" } else { "" },
                escape(h)
            );
        }
        self.w("</tr></thead><tbody>");
        let cell = |out: &mut String, cells: &[String]| {
            out.push_str("<tr>");
            for (i, c) in cells.iter().enumerate() {
                let (label, num) = head.get(i).copied().unwrap_or(("", false));
                // Cells are HTML already (escaped by the caller); the label heads the cell
                // where a phone shows each row as a card.
                if c.is_empty() {
                    out.push_str("<td></td>");
                    continue;
                }
                let _ = write!(
                    out,
                    "<td data-label=\"{}\"{}><span>{c}</span></td>",
                    escape(label),
                    if num { " class=\"num\"" } else { "" }
                );
            }
            out.push_str("</tr>");
        };
        for r in rows {
            cell(&mut self.out, r);
        }
        self.w("</tbody>");
        if let Some(f) = foot {
            self.w("<tfoot>");
            cell(&mut self.out, &f);
            self.w("</tfoot>");
        }
        self.w("</table></div>");
    }

    fn method_badge(&self, m: &str) -> String {
        let (class, text) = match m {
            "measured" => ("measured", self.t.measured),
            "estimate" => ("estimate", self.t.estimate),
            "mixed" => ("estimate", self.t.mixed),
            _ => ("", self.t.none),
        };
        format!("<span class=\"badge {class}\">{}</span>", escape(text))
    }
}

/// Shows an age key shortened (the full key is in its title), anything else whole.
fn key_html(fp: &str) -> String {
    if fp.starts_with("age1") && fp.chars().count() > 24 {
        let head: String = fp.chars().take(12).collect();
        let tail: String = fp
            .chars()
            .rev()
            .take(6)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!(
            "<code title=\"{}\">{}…{}</code>",
            escape(fp),
            escape(&head),
            escape(&tail)
        )
    } else {
        format!("<code>{}</code>", escape(fp))
    }
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let lang = r.language;
    let t = i18n::strings(lang);
    let mut p = Page {
        r,
        t,
        lang,
        out: String::with_capacity(64 * 1024),
    };
    let name = r
        .cooperative
        .as_ref()
        .map(|c| c.name.clone())
        .unwrap_or_else(|| r.repository.location.clone());
    let _ = write!(
        p.out,
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"generator\" content=\"{}\">\n<title>{} – {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        t.lang,
        escape(crate::PROGRAM),
        escape(t.title),
        escape(&name)
    );
    header(&mut p, &name);
    nav(&mut p);
    p.w("<main>\n");
    glance(&mut p);
    members(&mut p);
    sites(&mut p);
    costs(&mut p);
    energy(&mut p);
    history(&mut p);
    caretakers(&mut p);
    readers(&mut p);
    accesses(&mut p);
    missing(&mut p);
    p.w("</main>\n");
    let _ = write!(
        p.out,
        "<footer><p>{} {}</p><p>{}: <code>{}</code> ({})</p></footer>\n</body>\n</html>\n",
        escape(t.footer),
        escape(t.how),
        escape(t.repository),
        escape(&r.repository.id[..16.min(r.repository.id.len())]),
        escape(&r.repository.location),
    );
    p.out
}

fn header(p: &mut Page, name: &str) {
    let (r, t) = (p.r, p.t);
    let _ = write!(
        p.out,
        "<header>\n<p class=\"kicker\">{}</p>\n<h1>{}</h1>\n",
        escape(t.title),
        escape(name)
    );
    let mut meta = Vec::new();
    if let Some(l) = r.cooperative.as_ref().and_then(|c| c.legal_form.as_ref()) {
        meta.push(escape(l));
    }
    meta.push(format!(
        "{}: {} {} {}",
        escape(t.period),
        escape(&i18n::date(&r.period.since)),
        escape(t.to),
        escape(&i18n::date(&r.period.until))
    ));
    meta.push(format!(
        "{}: {}",
        escape(t.generated),
        escape(&i18n::date_time(&r.generated))
    ));
    if let Some(n) = &r.next_due {
        meta.push(format!(
            "{}: {}",
            escape(t.next_due),
            escape(&i18n::date(n))
        ));
    }
    let _ = writeln!(p.out, "<p class=\"meta\">{}</p>", meta.join(" · "));
    if let Some(m) = &r.member {
        let _ = writeln!(
            p.out,
            "<p class=\"scope\">{}: <strong>{}</strong></p>",
            escape(t.for_member),
            escape(m)
        );
    }
    p.w("</header>\n");
}

fn nav(p: &mut Page) {
    let t = p.t;
    let r = p.r;
    let mut items = vec![
        ("glance", t.glance),
        ("members", t.members),
        ("sites", t.sites),
    ];
    if r.costs.is_some() {
        items.push(("costs", t.costs));
    }
    if r.energy.is_some() {
        items.push(("energy", t.energy));
    }
    if r.stored_over_time.iter().any(|s| !s.points.is_empty()) {
        items.push(("history", t.stored_over_time));
    }
    if !r.caretakers.is_empty() {
        items.push(("caretakers", t.caretakers));
    }
    items.push(("readers", t.who_can_read));
    if r.accesses.is_some() {
        items.push(("accesses", t.accesses));
    }
    if !r.missing.is_empty() {
        items.push(("missing", t.missing));
    }
    let _ = write!(p.out, "<nav aria-label=\"{}\"><ul>", escape(t.contents));
    for (id, label) in items {
        let _ = write!(p.out, "<li><a href=\"#{id}\">{}</a></li>", escape(label));
    }
    p.w("</ul></nav>\n");
}

fn glance(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let mut cards: Vec<(String, String)> = vec![
        (t.members.into(), r.totals.members.to_string()),
        (t.stored.into(), p.bytes(r.totals.stored_bytes)),
    ];
    if let Some(c) = &r.costs {
        cards.push((t.monthly_costs.into(), p.money(c.monthly_total)));
        if let Some(pr) = c.price_per_gb_month {
            cards.push((t.price_per_gb.into(), p.money(pr)));
        }
        if let Some(m) = c.runway_months {
            cards.push((
                t.runway.into(),
                format!("{} {}", i18n::number(p.lang, m, 1), t.months),
            ));
        }
    }
    if let Some(e) = &r.energy {
        if let Some(wh) = e.wh {
            cards.push((
                format!("{} ({})", t.energy, label_of(t, e.method)),
                i18n::energy(p.lang, wh),
            ));
        }
    }
    let _ = write!(
        p.out,
        "<section id=\"glance\"><h2>{}</h2><dl class=\"cards\">",
        escape(t.glance)
    );
    for (k, v) in cards {
        let _ = write!(
            p.out,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            escape(&k),
            escape(&v)
        );
    }
    p.w("</dl></section>\n");
}

fn label_of(t: &Strings, m: &str) -> &'static str {
    match m {
        "measured" => t.measured,
        "estimate" => t.estimate,
        "mixed" => t.mixed,
        _ => t.none,
    }
}

fn members(p: &mut Page) {
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
    let mut rows = Vec::new();
    for m in &r.members {
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
        rows.push(vec![
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
        ]);
    }
    for s in &r.shared {
        rows.push(vec![
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
        ]);
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

fn sites(p: &mut Page) {
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

fn costs(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let Some(c) = &r.costs else { return };
    let _ = write!(
        p.out,
        "<section id=\"costs\"><h2>{}</h2><h3>{}</h3>",
        escape(t.costs),
        escape(t.monthly_costs)
    );
    let mut rows = Vec::new();
    for s in r.sites.iter().filter(|s| !s.cost_items.is_empty()) {
        for (i, item) in s.cost_items.iter().enumerate() {
            rows.push(vec![
                if i == 0 {
                    format!("<strong>{}</strong>", escape(&s.name))
                } else {
                    String::new()
                },
                escape(&item.item),
                escape(&p.money(item.amount)),
            ]);
        }
    }
    p.table(
        &[(t.site, false), (t.item, false), (t.per_month, true)],
        &rows,
        Some(vec![
            escape(t.total),
            String::new(),
            escape(&p.money(c.monthly_total)),
        ]),
    );
    let _ = write!(p.out, "<h3>{}</h3><p>", escape(t.cost_model));
    if c.fixed_share_percent > 0.0 {
        let _ = write!(
            p.out,
            "{} ",
            escape(&i18n::fill(
                t.model_fixed,
                &[
                    &i18n::number(p.lang, c.fixed_share_percent, 0),
                    &c.member_count.to_string()
                ]
            ))
        );
    }
    let _ = write!(
        p.out,
        "{} {}</p>",
        escape(t.model_usage),
        escape(t.model_shared)
    );
    let mut facts = vec![(
        t.price_per_gb.to_string(),
        c.price_per_gb_month
            .map(|v| i18n::money(p.lang, v, &c.currency))
            .unwrap_or_else(|| "–".into()),
    )];
    facts.push((t.stored.to_string(), p.bytes(c.stored_bytes)));
    if let Some(m) = c.runway_months {
        facts.push((
            t.runway.to_string(),
            format!("{} {}", i18n::number(p.lang, m, 1), t.months),
        ));
    }
    p.w("<dl class=\"cards\">");
    for (k, v) in facts {
        let _ = write!(
            p.out,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            escape(&k),
            escape(&v)
        );
    }
    p.w("</dl>");
    let rows: Vec<Vec<String>> = c
        .shares
        .iter()
        .map(|s| {
            vec![
                format!("<strong>{}</strong>", escape(&s.member)),
                escape(&p.money(s.fixed)),
                escape(&p.money(s.usage)),
                escape(&p.money(s.shared)),
                format!("<strong>{}</strong>", escape(&p.money(s.monthly))),
                escape(&p.opt(s.at_quota.map(|v| p.money(v)))),
            ]
        })
        .collect();
    p.table(
        &[
            (t.member, false),
            (t.fixed_part, true),
            (t.usage_part, true),
            (t.shared_part, true),
            (t.share, true),
            (t.at_quota, true),
        ],
        &rows,
        (r.member.is_none() && c.member_count > 0).then(|| {
            vec![
                escape(t.total),
                String::new(),
                String::new(),
                String::new(),
                format!("<strong>{}</strong>", escape(&p.money(c.shares_total))),
                String::new(),
            ]
        }),
    );
    if !c.groups.is_empty() {
        let rows: Vec<Vec<String>> = c
            .groups
            .iter()
            .map(|g| {
                vec![
                    format!("<strong>{}</strong>", escape(&g.group)),
                    escape(&g.payer),
                    escape(
                        &g.members
                            .iter()
                            .map(|(m, _, v)| format!("{m} {}", p.money(*v)))
                            .collect::<Vec<_>>()
                            .join(", "),
                    ),
                    format!("<strong>{}</strong>", escape(&p.money(g.monthly))),
                ]
            })
            .collect();
        p.table(
            &[
                (t.group, false),
                (t.group_payer, false),
                (t.group_parts, false),
                (t.share, true),
            ],
            &rows,
            None,
        );
    }
    if c.member_count > 0 && c.unallocated.abs() < 0.005 {
        let _ = write!(p.out, "<p class=\"note\">{}</p>", escape(t.shares_add_up));
    } else if c.unallocated.abs() >= 0.005 {
        let _ = write!(
            p.out,
            "<p class=\"note\">{}: {}</p>",
            escape(t.unallocated),
            escape(&p.money(c.unallocated))
        );
    }
    if let (Some(b), Some(m)) = (c.balance, c.runway_months) {
        let mut bal = i18n::money(p.lang, b, &c.currency);
        if let Some(d) = &c.balance_date {
            bal = format!("{bal} ({} {d})", t.as_of);
        }
        let _ = write!(
            p.out,
            "<h3>{}</h3><p>{}</p>",
            escape(t.runway),
            escape(&i18n::fill(
                t.runway_text,
                &[&bal, &i18n::number(p.lang, m, 1)]
            ))
        );
    }
    p.w("</section>\n");
}

fn energy(p: &mut Page) {
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
    p.w("<dl class=\"cards\">");
    for (k, v) in cards {
        let _ = write!(
            p.out,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            escape(&k),
            escape(&v)
        );
    }
    p.w("</dl>");
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
    p.w("</section>\n");
}

fn history(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    if !r.stored_over_time.iter().any(|s| !s.points.is_empty()) {
        return;
    }
    let _ = write!(
        p.out,
        "<section id=\"history\"><h2>{}</h2>",
        escape(t.stored_over_time)
    );
    let lang = p.lang;
    for s in &r.stored_over_time {
        if s.points.is_empty() {
            continue;
        }
        let title = match s.name.strip_prefix("member/") {
            Some(m) => format!("{} {m}", t.data_of),
            None => t.total.to_string(),
        };
        let pts: Vec<(i64, f64)> = s.points.iter().map(|p| (p.unix, p.bytes as f64)).collect();
        let chart = svg::line(
            &format!("{}: {title}", t.stored_over_time),
            &pts,
            |v| i18n::bytes(lang, v as u64),
            |ts| i18n::date(&crate::unix_rfc3339(ts)),
        );
        let _ = write!(p.out, "<h3>{}</h3>{chart}", escape(&title));
    }
    p.w("</section>\n");
}

fn readers(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let _ = write!(
        p.out,
        "<section id=\"readers\"><h2>{}</h2><p>{}</p>",
        escape(t.who_can_read),
        escape(t.readers_intro)
    );
    for x in &r.readers {
        let title = match &x.member {
            Some(m) => format!("{} <strong>{}</strong>", escape(t.data_of), escape(m)),
            None if x.tenant == "coop" => escape(t.shared_data),
            None => format!("{} <code>{}</code>", escape(t.data_of), escape(&x.tenant)),
        };
        let _ = write!(
            p.out,
            "<article class=\"tenant\"><h3>{title}</h3><h4>{}</h4><ul>",
            escape(t.readers)
        );
        for rd in &x.readers {
            let kind = match rd.kind {
                "member" => t.kind_member.to_string(),
                "admin" => t.kind_admin.to_string(),
                "recovery-split" => match &x.recovery {
                    Some(rp) => i18n::fill(
                        t.kind_split,
                        &[
                            &rp.approvals.to_string(),
                            &rp.holders.len().to_string(),
                            &rp.holders.join(", "),
                        ],
                    ),
                    None => t.kind_key.to_string(),
                },
                _ => t.kind_key.to_string(),
            };
            let comment = rd
                .comment
                .as_ref()
                .map(|c| format!(" <em>{}</em>", escape(c)))
                .unwrap_or_default();
            let _ = write!(
                p.out,
                "<li>{}{comment} – {}</li>",
                key_html(&rd.fingerprint),
                escape(&kind)
            );
        }
        p.w("</ul>");
        let _ = write!(p.out, "<h4>{}</h4><ul>", escape(t.writers));
        for w in &x.writers {
            let text = if w == "admin" {
                t.admins.to_string()
            } else if let Some(n) = w.strip_suffix(" (own key)") {
                format!("{n} ({})", t.own_key)
            } else {
                w.clone()
            };
            let _ = write!(p.out, "<li>{}</li>", escape(&text));
        }
        p.w("</ul>");
        if !x.storage_sites.is_empty() {
            let _ = write!(p.out, "<h4>{}</h4><ul>", escape(t.storage_only));
            for s in &x.storage_sites {
                let _ = write!(p.out, "<li>{}</li>", escape(s));
            }
            p.w("</ul>");
        }
        p.w("</article>");
    }
    p.w("</section>\n");
}

fn caretakers(p: &mut Page) {
    let (t, r) = (p.t, p.r);
    if r.caretakers.is_empty() {
        return;
    }
    let _ = write!(
        p.out,
        "<section id=\"caretakers\"><h2>{}</h2><p>{}</p><ul>",
        escape(t.caretakers),
        escape(t.caretakers_intro)
    );
    for c in &r.caretakers {
        let _ = write!(
            p.out,
            "<li>{} – {}</li>",
            escape(&c.job),
            escape(c.caretaker.as_deref().unwrap_or("–"))
        );
    }
    p.w("</ul></section>\n");
}

fn access_row(lang: Language, t: &Strings, e: &super::AccessEntry) -> Vec<String> {
    vec![
        escape(&i18n::date_time(&e.time)),
        escape(&i18n::event(lang, &e.event)),
        escape(&match &e.requested_by {
            Some(c) => format!("{} ({} {c})", e.actor_name, t.asked_by),
            None => e.actor_name.clone(),
        }),
        escape(
            &e.reason
                .as_deref()
                .map(|r| i18n::reason(lang, r))
                .unwrap_or_else(|| "–".into()),
        ),
        if e.witnessed {
            format!("<span class=\"badge ok\">{}</span>", escape(t.witnessed))
        } else {
            format!("<span class=\"badge\">{}</span>", escape(t.not_witnessed))
        },
    ]
}

fn accesses(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let Some(a) = &r.accesses else { return };
    let _ = write!(
        p.out,
        "<section id=\"accesses\"><h2>{}</h2><p>{}</p>",
        escape(t.accesses),
        escape(t.accesses_intro)
    );
    if a.verified {
        let _ = write!(
            p.out,
            "<p><span class=\"badge ok\">✓</span> {}</p>",
            escape(t.log_ok)
        );
    } else {
        let _ = write!(
            p.out,
            "<p><span class=\"badge bad\">!</span> {}</p><ul class=\"problems\">",
            escape(t.log_problems)
        );
        for pr in &a.problems {
            let _ = write!(p.out, "<li>{}</li>", escape(pr));
        }
        p.w("</ul>");
    }
    if a.quorum > 0 {
        let _ = write!(
            p.out,
            "<p class=\"note\">{}</p>",
            escape(&i18n::fill(t.quorum, &[&a.quorum.to_string()]))
        );
    }
    if !a.break_glass.is_empty() {
        let _ = write!(
            p.out,
            "<h3 id=\"break-glass\">{}</h3><p>{}</p>",
            escape(t.break_glass),
            escape(t.break_glass_intro)
        );
        let rows: Vec<Vec<String>> = a
            .break_glass
            .iter()
            .map(|e| access_row(p.lang, t, e))
            .collect();
        p.table(
            &[
                (t.when, false),
                (t.what, false),
                (t.who, false),
                (t.reason, false),
                ("", false),
            ],
            &rows,
            None,
        );
    }
    for m in &a.members {
        let _ = write!(p.out, "<h3>{}</h3>", escape(&m.member));
        if m.entries.is_empty() {
            let _ = write!(p.out, "<p>{}</p>", escape(t.no_access));
            continue;
        }
        let reasons: Vec<String> = m
            .by_reason
            .iter()
            .map(|(k, n)| {
                format!(
                    "<span class=\"badge\">{}: {n}</span>",
                    escape(&i18n::reason(p.lang, k))
                )
            })
            .collect();
        let _ = write!(p.out, "<p>{}</p>", reasons.join(" "));
        let rows: Vec<Vec<String>> = m.entries.iter().map(|e| access_row(p.lang, t, e)).collect();
        p.table(
            &[
                (t.when, false),
                (t.what, false),
                (t.who, false),
                (t.reason, false),
                ("", false),
            ],
            &rows,
            None,
        );
    }
    p.w("</section>\n");
}

fn missing(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    if r.missing.is_empty() && r.warnings.is_empty() {
        return;
    }
    if !r.missing.is_empty() {
        let _ = write!(
            p.out,
            "<section id=\"missing\"><h2>{}</h2><p>{}</p><ul>",
            escape(t.missing),
            escape(t.missing_intro)
        );
        for m in &r.missing {
            let keys: Vec<String> = m
                .keys
                .iter()
                .map(|k| format!("<code>{}</code>", escape(k)))
                .collect();
            let note = if p.lang == Language::En {
                format!(" ({})", escape(m.note))
            } else {
                String::new()
            };
            let _ = write!(
                p.out,
                "<li><strong>{}</strong>: {}{note}</li>",
                escape(i18n::section(p.lang, m.section)),
                keys.join(", ")
            );
        }
        p.w("</ul></section>\n");
    }
    if !r.warnings.is_empty() {
        let _ = write!(
            p.out,
            "<section id=\"warnings\"><h2>{}</h2><ul class=\"warnings\">",
            escape(t.warnings)
        );
        for w in &r.warnings {
            let _ = write!(p.out, "<li>{}</li>", escape(w));
        }
        p.w("</ul></section>\n");
    }
}
