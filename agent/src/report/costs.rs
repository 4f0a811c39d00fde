//! The cost model: the sites' monthly costs divided among the members (a fixed part equally,
//! the rest by stored GB-month), to the cent, and the groups' cost lines.

use super::*;

pub(super) fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

/// The costs part of the report, if the cooperative names a currency and costs or a
/// balance: the cost model over all active members, the runway, the groups' lines; with
/// `--member`, that member's share and groups alone.
pub(super) fn gather(
    t: &super::tenants::Tenants,
    coop: Option<&crate::settings::CooperativeSettings>,
    pack_bytes: u64,
    shared_bytes: u64,
) -> Option<Costs> {
    let c = coop?;
    let currency = c.currency.clone()?;
    let has_costs = c.sites.iter().any(|s| !s.costs.is_empty());
    if !has_costs && c.balance.is_none() {
        return None;
    }
    let quotas: Vec<(String, u64, Option<u64>)> = t
        .member_names
        .iter()
        .map(|n| {
            let u = t.usage_of(&format!("member/{n}"));
            (
                n.clone(),
                u.map(|u| u.stored_bytes).unwrap_or(0),
                u.and_then(|u| u.quota),
            )
        })
        .collect();
    let mut k = cost_model(
        &currency,
        c.sites.iter().map(|s| s.monthly_costs()).sum(),
        c.fixed_share_percent,
        pack_bytes,
        shared_bytes,
        &quotas,
    );
    k.balance = c.balance;
    k.balance_date = c.balance_date.clone();
    k.runway_months = match c.balance {
        Some(b) if k.monthly_total > 0.0 => Some((b / k.monthly_total).max(0.0)),
        _ => None,
    };
    k.groups = group_costs(t.registry.as_ref(), &quotas, &k.shares);
    k.groups
        .retain(|g| t.member.as_deref().is_none_or(|m| m == g.payer));
    k.shares.retain(|s| t.in_scope(&s.member));
    Some(k)
}

/// Each group's cost line from the members' shares.
pub(super) fn group_costs(
    registry: Option<&coop_formats::registry::Registry>,
    stored: &[(String, u64, Option<u64>)],
    shares: &[Share],
) -> Vec<GroupCost> {
    let Some(reg) = registry else {
        return Vec::new();
    };
    reg.groups
        .iter()
        .map(|g| {
            let mut names: Vec<&String> = vec![&g.payer];
            names.extend(g.members.iter().filter(|m| **m != g.payer));
            let members: Vec<(String, u64, f64)> = names
                .into_iter()
                .map(|n| {
                    let bytes = stored.iter().find(|s| &s.0 == n).map(|s| s.1).unwrap_or(0);
                    let monthly = shares
                        .iter()
                        .find(|s| &s.member == n)
                        .map(|s| s.monthly)
                        .unwrap_or(0.0);
                    (n.clone(), bytes, monthly)
                })
                .collect();
            GroupCost {
                group: g.name.clone(),
                payer: g.payer.clone(),
                quota: g.quota,
                stored_bytes: members.iter().map(|m| m.1).sum(),
                monthly: round(members.iter().map(|m| m.2).sum(), 2),
                members,
            }
        })
        .collect()
}

/// The cost model: `fixed_share_percent` of the monthly costs split equally among the
/// members, the rest by stored GB-month; what no member stores (the services' backups,
/// removed members) is priced the same and split equally. `members`: (name, stored bytes,
/// quota). The members' monthly shares are rounded to the cent so that they add up to the
/// costs exactly (largest remainder).
pub fn cost_model(
    currency: &str,
    monthly_total: f64,
    fixed_share_percent: f64,
    stored_bytes: u64,
    shared_bytes: u64,
    members: &[(String, u64, Option<u64>)],
) -> Costs {
    let monthly_total = round(monthly_total, 2);
    let n = members.len();
    let fixed_part = monthly_total * fixed_share_percent / 100.0;
    let usage_part = monthly_total - fixed_part;
    let stored_gb = stored_bytes as f64 / GB;
    let price = (stored_bytes > 0).then(|| usage_part / stored_gb);
    let mut shares = Vec::new();
    let mut exact = Vec::new();
    if n > 0 {
        let fixed = fixed_part / n as f64;
        let shared = match price {
            Some(p) => p * shared_bytes as f64 / GB / n as f64,
            None => usage_part / n as f64,
        };
        for (name, bytes, quota) in members {
            let usage = price.map(|p| p * *bytes as f64 / GB).unwrap_or(0.0);
            exact.push(fixed + usage + shared);
            shares.push(Share {
                member: name.clone(),
                fixed: round(fixed, 4),
                usage: round(usage, 4),
                shared: round(shared, 4),
                monthly: 0.0,
                at_quota: quota.map(|q| {
                    round(
                        fixed + shared + price.map(|p| p * q as f64 / GB).unwrap_or(0.0),
                        2,
                    )
                }),
            });
        }
        // If members store more than every pack (they cannot), keep the total anyway.
        let sum: f64 = exact.iter().sum();
        if sum > 0.0 {
            for e in &mut exact {
                *e *= monthly_total / sum;
            }
        }
        let cents = allocate_cents((monthly_total * 100.0).round() as i64, &exact);
        for (s, c) in shares.iter_mut().zip(cents) {
            s.monthly = c as f64 / 100.0;
        }
    }
    let shares_total = round(shares.iter().map(|s| s.monthly).sum(), 2);
    Costs {
        currency: currency.to_string(),
        monthly_total,
        fixed_share_percent,
        fixed_part: round(fixed_part, 4),
        usage_part: round(usage_part, 4),
        stored_bytes,
        member_bytes: stored_bytes.saturating_sub(shared_bytes),
        shared_bytes,
        price_per_gb_month: price.map(|p| round(p, 4)),
        member_count: n,
        shares_total,
        unallocated: round(monthly_total - shares_total, 2),
        shares,
        groups: Vec::new(),
        balance: None,
        balance_date: None,
        runway_months: None,
    }
}

/// Rounds amounts (in currency units) to cents that add up to `total_cents`: each is
/// rounded down, and the cents left go to the largest remainders.
pub(super) fn allocate_cents(total_cents: i64, exact: &[f64]) -> Vec<i64> {
    let mut out: Vec<i64> = exact.iter().map(|e| (e * 100.0).floor() as i64).collect();
    let mut left = total_cents - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..exact.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = exact[a] * 100.0 - (exact[a] * 100.0).floor();
        let fb = exact[b] * 100.0 - (exact[b] * 100.0).floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    // Floors add up to at most the total, and at least the total less one cent each.
    for &k in order.iter().cycle().take(order.len() * 2) {
        if left <= 0 {
            break;
        }
        out[k] += 1;
        left -= 1;
    }
    out
}
