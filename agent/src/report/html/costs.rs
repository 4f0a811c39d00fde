//! The costs section: the sites' cost items, the cost model, each member's share, the
//! groups' lines and the runway.

use super::*;
use crate::report::Costs;

pub(super) fn costs(p: &mut Page) {
    let (r, t) = (p.r, p.t);
    let Some(c) = &r.costs else { return };
    let _ = write!(
        p.out,
        "<section id=\"costs\"><h2>{}</h2><h3>{}</h3>",
        escape(t.costs),
        escape(t.monthly_costs)
    );
    items(p, c);
    model(p, c);
    shares(p, c);
    groups(p, c);
    balance(p, c);
    p.w("</section>\n");
}

/// The sites' cost items and their total.
fn items(p: &mut Page, c: &Costs) {
    let (r, t) = (p.r, p.t);
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
}

/// How the costs are divided, the price per GB and the runway.
fn model(p: &mut Page, c: &Costs) {
    let t = p.t;
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
    p.cards(facts);
}

/// Each member's share, and their total (for the whole cooperative).
fn shares(p: &mut Page, c: &Costs) {
    let (r, t) = (p.r, p.t);
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
}

/// The groups' cost lines.
fn groups(p: &mut Page, c: &Costs) {
    let t = p.t;
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
}

/// Whether the shares add up, and for how many months the balance covers the costs.
fn balance(p: &mut Page, c: &Costs) {
    let t = p.t;
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
}
