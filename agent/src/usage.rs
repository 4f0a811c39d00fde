//! `coop usage`: per tenant, what is stored and how it compares with the quota.

use crate::error::Result;
use crate::keys::{Access, TenantKeys};
use crate::layout::Kind;
use crate::repo::Repo;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    /// Size of the newest snapshot's files (None if the caller cannot read the tenant).
    pub logical_bytes: Option<u64>,
    /// Bytes of packs in the store (after dedup, compression and encryption).
    pub stored_bytes: u64,
    pub snapshots: Option<usize>,
    pub last_backup: Option<String>,
    pub quota: Option<u64>,
    pub quota_used_percent: Option<f64>,
    /// Why the figures may be wrong (damaged snapshots, a store that shows less than this
    /// client saw there: a possible rollback).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Whether the store showed signs of a rollback or of hidden snapshots for this tenant.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// The group the member is in (its quota is shared with the group's other members).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// A group's storage: its members' parts and the shared quota.
#[derive(Debug, Serialize)]
pub struct GroupUsage {
    pub group: String,
    pub payer: String,
    pub stored_bytes: u64,
    pub quota: Option<u64>,
    pub quota_used_percent: Option<f64>,
    /// (member, stored bytes), the payer first.
    pub members: Vec<(String, u64)>,
}

/// Every group's usage (stored bytes need no key; the registry needs the coop tenant's
/// keys, an admin's or a writer's).
pub fn groups(repo: &Repo, access: &Access) -> Result<Vec<GroupUsage>> {
    let coop = crate::tenant::keys(repo, access, "coop")?;
    let reg = crate::registry::load(repo, &coop)?.registry;
    let mut out = Vec::new();
    for g in &reg.groups {
        let mut members = Vec::new();
        let mut names: Vec<&String> = vec![&g.payer];
        names.extend(g.members.iter().filter(|m| **m != g.payer));
        for n in names {
            if let Some(m) = reg.members.iter().find(|m| &m.name == n) {
                members.push((n.clone(), stored(repo, &m.tenant_tag)?));
            }
        }
        let total: u64 = members.iter().map(|(_, b)| b).sum();
        out.push(GroupUsage {
            group: g.name.clone(),
            payer: g.payer.clone(),
            stored_bytes: total,
            quota: g.quota,
            quota_used_percent: g.quota.map(|q| 100.0 * total as f64 / q.max(1) as f64),
            members,
        });
    }
    Ok(out)
}

fn stored(repo: &Repo, tag: &[u8; 16]) -> Result<u64> {
    Ok(repo.list(Kind::Pack, tag)?.iter().map(|o| o.size).sum())
}

/// Usage of every tenant the caller knows: all keyrings its identity opens, and every
/// registered member (stored bytes need no key).
pub fn usage(repo: &Repo, access: &Access) -> Result<Vec<TenantUsage>> {
    let mut out = Vec::new();
    let registry = match crate::tenant::keys(repo, access, "coop") {
        Ok(coop) => Some(crate::members::load(repo, &coop)?.registry),
        Err(_) => None,
    };
    let mut seen = std::collections::HashSet::new();
    if let Access::Identity(ids, _) = access {
        for ring in repo.keyrings(ids)?.rings {
            let tenant = ring.tenant.clone();
            let keys = TenantKeys::from_keyring(ring, ids.clone())?;
            let view = crate::snapshots::view(repo, &keys)?;
            let warnings = view.warnings();
            let rollback = view.verdict.rollback();
            let snaps: Vec<_> = view
                .listing
                .entries
                .into_iter()
                .filter(|e| e.trusted())
                .map(|e| (e.id, e.snapshot))
                .collect();
            let quota = registry
                .as_ref()
                .and_then(|r| tenant.strip_prefix("member/").and_then(|n| r.member(n)))
                .and_then(|m| m.quota);
            let bytes = stored(repo, &keys.tag)?;
            seen.insert(keys.tag);
            let group = registry.as_ref().and_then(|r| {
                tenant
                    .strip_prefix("member/")
                    .and_then(|n| r.group_of(n))
                    .map(|g| g.name.clone())
            });
            out.push(TenantUsage {
                tenant,
                logical_bytes: snaps.last().map(|(_, s)| s.summary.total_bytes),
                stored_bytes: bytes,
                snapshots: Some(snaps.len()),
                last_backup: snaps.last().map(|(_, s)| s.time.clone()),
                quota,
                quota_used_percent: quota.map(|q| 100.0 * bytes as f64 / q.max(1) as f64),
                warnings,
                rollback,
                group,
            });
        }
    }
    for m in registry.iter().flat_map(|r| r.active()) {
        if seen.contains(&m.tenant_tag) {
            continue;
        }
        let bytes = stored(repo, &m.tenant_tag)?;
        out.push(TenantUsage {
            tenant: m.tenant(),
            logical_bytes: None,
            stored_bytes: bytes,
            snapshots: None,
            last_backup: None,
            quota: m.quota,
            quota_used_percent: m.quota.map(|q| 100.0 * bytes as f64 / q.max(1) as f64),
            warnings: Vec::new(),
            rollback: false,
            group: registry
                .as_ref()
                .and_then(|r| r.group_of(&m.name))
                .map(|g| g.name.clone()),
        });
    }
    out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    Ok(out)
}
