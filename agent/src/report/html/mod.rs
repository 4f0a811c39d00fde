//! The report as one static page: `index.html`, self-contained (its CSS and SVG charts are
//! inline; no script, font, image or stylesheet is fetched, no link leaves the page),
//! readable on a phone (viewport, a single column, tables that scroll sideways) and
//! printable (`@media print`). Every text from the repository or the config is escaped.

use super::i18n::{self, Strings};
use super::svg::{self, Bar};
use super::{last_backup_text, AccessEntry, Report, SiteRole};
use crate::settings::Language;
use std::fmt::Write;

mod accesses;
mod costs;
mod css;
mod energy;
mod members;
mod readers;
mod sites;

use accesses::accesses;
use costs::costs;
pub(super) use css::CSS;
use energy::energy;
use members::members;
use readers::readers;
use sites::sites;

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

    /// Figures as cards: (label, value), both text.
    fn cards(&mut self, cards: Vec<(String, String)>) {
        self.w("<dl class=\"cards\">");
        for (k, v) in cards {
            let _ = write!(
                self.out,
                "<div><dt>{}</dt><dd>{}</dd></div>",
                escape(&k),
                escape(&v)
            );
        }
        self.w("</dl>");
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
        "<section id=\"glance\"><h2>{}</h2>",
        escape(t.glance)
    );
    p.cards(cards);
    p.w("</section>\n");
}

fn label_of(t: &Strings, m: &str) -> &'static str {
    match m {
        "measured" => t.measured,
        "estimate" => t.estimate,
        "mixed" => t.mixed,
        _ => t.none,
    }
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
