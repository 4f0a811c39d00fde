//! The accesses section: whether the access logs verify, break-glass reads of the service
//! tenant, and per member every read in the period.

use super::*;

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

pub(super) fn accesses(p: &mut Page) {
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
