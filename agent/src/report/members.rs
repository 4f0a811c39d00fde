//! The members part of the report: each member's and each shared tenant's usage, and, where
//! the caller cannot open a tenant's snapshots, their number and the last backup's time from
//! the verified access logs.

use super::tenants::Tenants;
use super::*;
use crate::log::{LogContent, VerifyReport};

/// The members reported on and the shared tenants.
pub(super) struct Members {
    pub(super) members: Vec<MemberReport>,
    pub(super) shared: Vec<SharedTenant>,
    /// What all active members store (also with `--member`).
    pub(super) member_bytes: u64,
}

pub(super) fn gather(t: &Tenants, replicas: &[Replica]) -> Members {
    let mut out = Members {
        members: Vec::new(),
        shared: Vec::new(),
        member_bytes: 0,
    };
    for u in &t.usage {
        match u.tenant.strip_prefix("member/") {
            Some(n) if t.member_names.iter().any(|m| m == n) => {
                out.member_bytes += u.stored_bytes;
                if !t.in_scope(n) {
                    continue;
                }
                out.members.push(MemberReport {
                    name: n.to_string(),
                    tenant: u.tenant.clone(),
                    stored_bytes: u.stored_bytes,
                    logical_bytes: u.logical_bytes,
                    snapshots: u.snapshots,
                    last_backup: u.last_backup.clone(),
                    quota: u.quota,
                    quota_used_percent: u.quota_used_percent,
                    replicas: replicas.to_vec(),
                    cost: None,
                });
            }
            _ => out.shared.push(SharedTenant {
                // With --member, other (removed) members' names stay out.
                tenant: if u.tenant.starts_with("member/") && t.member.is_some() {
                    "member/…".into()
                } else {
                    u.tenant.clone()
                },
                stored_bytes: u.stored_bytes,
                logical_bytes: u.logical_bytes,
                snapshots: u.snapshots,
                last_backup: u.last_backup.clone(),
            }),
        }
    }
    out
}

/// Fills in the snapshots and last backups of the tenants whose snapshots the caller cannot
/// open (a site's writer key).
pub(super) fn fill_backup_times(
    repo: &Repo,
    t: &Tenants,
    logs: &Option<(VerifyReport, Vec<LogContent>)>,
    m: &mut Members,
) -> Result<()> {
    for m in &mut m.members {
        if m.snapshots.is_none() && m.last_backup.is_none() {
            let (n, time) = backup_times(repo, t, logs, &m.tenant)?;
            m.snapshots = n;
            m.last_backup = time;
        }
    }
    for x in &mut m.shared {
        if x.snapshots.is_none() && x.last_backup.is_none() && !x.tenant.ends_with('…') {
            let (n, time) = backup_times(repo, t, logs, &x.tenant)?;
            x.snapshots = n;
            x.last_backup = time;
        }
    }
    Ok(())
}

/// A tenant's snapshot objects under its tag are listed, and the newest one's time is the
/// time of the backup entry that names it in a trusted log. No snapshot objects: never;
/// objects but no entry naming one: unknown (`None`, shown as "?"), never a false "never".
fn backup_times(
    repo: &Repo,
    t: &Tenants,
    logs: &Option<(VerifyReport, Vec<LogContent>)>,
    tenant: &str,
) -> Result<(Option<usize>, Option<String>)> {
    let registry_tag = |tenant: &str| -> Option<[u8; 16]> {
        let n = tenant.strip_prefix("member/")?;
        t.registry.as_ref()?.member(n).map(|m| m.tenant_tag)
    };
    let keys = t.known.get(tenant).map(|k| &k.keys);
    let Some(tag) = keys.map(|k| k.tag).or_else(|| registry_tag(tenant)) else {
        return Ok((None, None));
    };
    let names: std::collections::HashSet<String> = repo
        .list(Kind::Snapshot, &tag)?
        .iter()
        .map(|o| o.name.to_hex())
        .collect();
    if names.is_empty() {
        return Ok((Some(0), None));
    }
    let (Some(keys), Some((_, contents))) = (keys, logs) else {
        return Ok((None, None));
    };
    let tenant_tag = crate::log::tenant_tag(keys);
    let newest = contents
        .iter()
        .flat_map(|c| c.accepted().map(|(_, e)| e))
        .filter(|e| {
            e.event == coop_formats::tlog::Event::Backup
                && e.tenant.as_deref() == Some(tenant_tag.as_str())
                && e.object.as_ref().is_some_and(|o| names.contains(o))
                && chrono::DateTime::parse_from_rfc3339(&e.time).is_ok()
        })
        .map(|e| e.time)
        .max();
    Ok((None, newest))
}
