//! The accesses part of the report: per member, every read of their data (and each step
//! towards a recovery) in the period, with who did it, why, who asked and whether the
//! witnesses cosigned it; break-glass reads of the service tenant apart.

use super::*;
use crate::log::{LogContent, VerifyReport};
use coop_formats::registry::Registry;
use coop_formats::tlog::{Entry, Event};

/// One log entry as the report shows it.
fn entry(c: &LogContent, i: usize, e: &Entry, registry: Option<&Registry>) -> AccessEntry {
    AccessEntry {
        time: e.time.clone(),
        event: serde_json::to_value(e.event)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        reason: e.reason.map(|r| r.to_string()),
        actor_name: crate::admins::who(e, registry),
        requested_by: e
            .data
            .get("requested_by")
            .and_then(|v| v.as_str())
            .map(String::from),
        witnessed: c.witnessed.is_some_and(|s| (i as u64) < s),
    }
}

/// The accesses part of the report (`None`: no admin keys to check the logs against).
pub(super) fn gather(
    t: &super::tenants::Tenants,
    logs: &Option<(VerifyReport, Vec<LogContent>)>,
    opts: &Options,
    notes: &mut super::tenants::Notes,
) -> Option<Accesses> {
    if t.admin_keys.is_empty() {
        return None;
    }
    let (rep, contents) = logs.as_ref().expect("verified above with admin keys");
    if !rep.problems.is_empty() {
        notes.integrity_problem = true;
    }
    let tags: Vec<(String, String)> = t
        .member_names
        .iter()
        .filter(|n| t.in_scope(n))
        .filter_map(|n| {
            t.known
                .get(&format!("member/{n}"))
                .map(|k| (n.clone(), crate::log::tenant_tag(&k.keys)))
        })
        .collect();
    Some(from_logs(rep, contents, &tags, opts, t.registry.as_ref()))
}

/// The accesses of the period from the verified logs; `tags`: (member, keyed tenant tag) of
/// the members reported on.
fn from_logs(
    rep: &VerifyReport,
    contents: &[LogContent],
    tags: &[(String, String)],
    opts: &Options,
    registry: Option<&Registry>,
) -> Accesses {
    let mut per: Vec<MemberAccesses> = tags
        .iter()
        .map(|(n, _)| MemberAccesses {
            member: n.clone(),
            total: 0,
            by_reason: BTreeMap::new(),
            entries: Vec::new(),
        })
        .collect();
    let mut break_glass = Vec::new();
    for c in contents {
        for (i, e) in c.accepted() {
            let access = e.event.is_access()
                || matches!(e.event, Event::RecoveryRequest | Event::RecoveryRelease);
            if !access {
                continue;
            }
            let Some(t) = chrono::DateTime::parse_from_rfc3339(&e.time)
                .ok()
                .map(|t| t.timestamp())
            else {
                continue;
            };
            if t < opts.since || t > opts.until {
                continue;
            }
            if c.admin && e.data.get("break-glass") == Some(&serde_json::Value::Bool(true)) {
                break_glass.push(entry(c, i, &e, registry));
                continue;
            }
            let Some(pos) = tags
                .iter()
                .position(|(_, tag)| e.tenant.as_ref() == Some(tag))
            else {
                continue;
            };
            let x = entry(c, i, &e, registry);
            let m = &mut per[pos];
            m.total += 1;
            *m.by_reason
                .entry(x.reason.clone().unwrap_or_else(|| "-".into()))
                .or_default() += 1;
            m.entries.push(x);
        }
    }
    for m in &mut per {
        m.entries.sort_by(|a, b| a.time.cmp(&b.time));
    }
    Accesses {
        verified: rep.problems.is_empty(),
        problems: rep.problems.iter().map(|p| p.to_string()).collect(),
        quorum: rep.quorum,
        logs: rep
            .logs
            .iter()
            .map(|l| LogState {
                actor: l.actor.clone(),
                entries: l.size,
                witnessed_size: l.witnessed_size,
                cosigned_by: l.cosigned_by.clone(),
            })
            .collect(),
        members: per,
        break_glass,
    }
}
