//! `[cooperative]` and `[[cooperative.site]]` resolved: the facts `coop report` publishes
//! (name, language, currency, balance, each site's provider, electricity and costs).

use super::*;

pub(super) fn resolve_cooperative(
    c: &raw::Cooperative,
    p: &mut Problems,
) -> Option<CooperativeSettings> {
    let before = p.list.len();
    if c.name.get_ref().trim().is_empty() {
        p.err(c.name.span(), "cooperative: name is empty".into());
    }
    let language = resolve_language(c, p);
    let mut money_at = check_money(c, p);
    let fixed = match &c.fixed_share_percent {
        None => 0.0,
        Some(f) => {
            let v = *f.get_ref();
            if !(0.0..=100.0).contains(&v) {
                p.err(
                    f.span(),
                    format!("cooperative: fixed_share_percent {v} is not between 0 and 100"),
                );
            }
            v
        }
    };
    let mut names = std::collections::HashSet::new();
    let mut sites = Vec::new();
    for s in &c.sites {
        sites.push(site_facts(s, &mut names, &mut money_at, p));
    }
    if let (Some(span), None) = (money_at, &c.currency) {
        p.err(
            span,
            "cooperative: amounts are given but no currency (add currency = \"EUR\" or another ISO 4217 code to [cooperative])".into(),
        );
    }
    if p.list.len() > before {
        return None;
    }
    Some(CooperativeSettings {
        name: c.name.get_ref().clone(),
        legal_form: c.legal_form.clone(),
        language,
        currency: c.currency.as_ref().map(|c| c.get_ref().clone()),
        balance: c.balance.as_ref().map(|b| *b.get_ref()),
        balance_date: c.balance_date.as_ref().map(|d| d.get_ref().clone()),
        fixed_share_percent: fixed,
        sites,
    })
}

/// `language`: "de" or "en" (English if not given).
fn resolve_language(c: &raw::Cooperative, p: &mut Problems) -> Language {
    match &c.language {
        None => Language::En,
        Some(l) => match l.get_ref().as_str() {
            "en" => Language::En,
            "de" => Language::De,
            other => {
                p.err(
                    l.span(),
                    format!("cooperative: language {other:?} is not supported (\"de\" or \"en\")"),
                );
                Language::En
            }
        },
    }
}

/// The currency, the balance and its date; where the first amount is (for "amounts but no
/// currency").
fn check_money(c: &raw::Cooperative, p: &mut Problems) -> Option<std::ops::Range<usize>> {
    if let Some(cur) = &c.currency {
        let v = cur.get_ref();
        if v.len() != 3 || !v.chars().all(|ch| ch.is_ascii_uppercase()) {
            p.err(
                cur.span(),
                format!(
                    "cooperative: currency {v:?} is not an ISO 4217 code (e.g. \"EUR\", \"CHF\")"
                ),
            );
        }
    }
    let mut money_at = None;
    if let Some(b) = &c.balance {
        if !b.get_ref().is_finite() {
            p.err(b.span(), "cooperative: balance is not a number".into());
        }
        money_at = Some(b.span());
    }
    if let Some(d) = &c.balance_date {
        if chrono::NaiveDate::parse_from_str(d.get_ref(), "%Y-%m-%d").is_err() {
            p.err(
                d.span(),
                format!(
                    "cooperative: balance_date {:?} is not a date (YYYY-MM-DD)",
                    d.get_ref()
                ),
            );
        }
    }
    money_at
}

/// One `[[cooperative.site]]`: its name unique, its wattage and cost items valid.
fn site_facts(
    s: &raw::SiteFacts,
    names: &mut std::collections::HashSet<String>,
    money_at: &mut Option<std::ops::Range<usize>>,
    p: &mut Problems,
) -> SiteFacts {
    let name = s.name.get_ref().clone();
    if name.trim().is_empty() {
        p.err(s.name.span(), "cooperative.site: name is empty".into());
    }
    if !names.insert(name.clone()) {
        p.err(
            s.name.span(),
            format!("cooperative.site: two sites are named {name:?}"),
        );
    }
    let cpu_watts = s.cpu_watts.as_ref().map(|w| {
        let v = *w.get_ref();
        if !(v.is_finite() && v > 0.0 && v < 10_000.0) {
            p.err(
                w.span(),
                format!("cooperative.site {name:?}: cpu_watts {v} is not a wattage (more than 0, less than 10000)"),
            );
        }
        v
    });
    let mut costs = Vec::new();
    for (item, v) in &s.costs {
        let amount = *v.get_ref();
        if item.trim().is_empty() {
            p.err(
                v.span(),
                format!("cooperative.site {name:?}: a cost item has no name"),
            );
        }
        if !(amount.is_finite() && amount >= 0.0) {
            p.err(
                v.span(),
                format!("cooperative.site {name:?}: cost {item:?} = {amount} is not an amount (0 or more, per month)"),
            );
        }
        money_at.get_or_insert(v.span());
        costs.push((item.clone(), amount));
    }
    SiteFacts {
        name,
        provider: s.provider.clone(),
        location: s.location.clone(),
        energy_source: s.energy_source.clone(),
        renewable: s.renewable,
        cpu_watts,
        costs,
    }
}
