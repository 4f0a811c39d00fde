//! Who can write and who can read: the writer list's sites and the admin keys, and per
//! tenant the recipients of its keys (from its keyring, else from the registry), each named
//! as the member, an admin, the recovery split or a key.

use super::tenants::Tenants;
use super::*;
use coop_formats::registry::{Member, Registry};

/// The sites on the writer list and the admin keys.
pub(super) fn writers(
    repo: &Repo,
    t: &Tenants,
    notes: &mut super::tenants::Notes,
) -> Result<Vec<Writer>> {
    let writer_list = if t.admin_keys.is_empty() {
        None
    } else {
        let l = crate::writers::load(repo, &t.admin_keys)?;
        notes.problems(&l.problems);
        Some(l.list)
    };
    let mut writers = Vec::new();
    if let Some(l) = &writer_list {
        for w in &l.writers {
            writers.push(Writer {
                name: w.name.clone(),
                key: hex::encode(w.public_key)[..16].to_string(),
                kind: "site",
                added: Some(w.added.clone()),
                revoked: w.revoked.as_ref().map(|r| r.time.clone()),
            });
        }
    }
    for k in &t.admin_keys {
        writers.push(Writer {
            name: "admin".into(),
            key: hex::encode(k)[..16].to_string(),
            kind: "admin",
            added: None,
            revoked: None,
        });
    }
    Ok(writers)
}

/// What every tenant's readers share.
struct Common<'a> {
    t: &'a Tenants,
    /// The sites that may write (not revoked).
    site_writers: Vec<String>,
    /// The sites holding replicas.
    peers: Vec<String>,
    /// The recipients of the service tenant's keyring.
    coop_recipients: Vec<String>,
}

/// Who can read each tenant reported on, the service tenant first.
pub(super) fn gather(
    t: &Tenants,
    settings: Option<&Settings>,
    writers: &[Writer],
) -> Vec<TenantReaders> {
    let common = Common {
        t,
        site_writers: writers
            .iter()
            .filter(|w| w.kind == "site" && w.revoked.is_none())
            .map(|w| w.name.clone())
            .collect(),
        peers: settings
            .map(|s| s.peers.iter().map(|p| p.name.clone()).collect())
            .unwrap_or_default(),
        coop_recipients: t
            .known
            .get("coop")
            .and_then(|k| k.ring.as_ref())
            .map(|r| r.recipients.clone())
            .unwrap_or_default(),
    };
    let mut readers = Vec::new();
    for (tenant, k) in &t.known {
        if !t.scoped_tenant(tenant) {
            continue;
        }
        if let Some(r) = tenant_readers(&common, tenant, k) {
            readers.push(r);
        }
    }
    readers.sort_by(|a, b| (a.tenant != "coop", &a.tenant).cmp(&(b.tenant != "coop", &b.tenant)));
    readers
}

/// One tenant's readers (`None`: a removed member, or no recipients known).
fn tenant_readers(c: &Common, tenant: &str, k: &Known) -> Option<TenantReaders> {
    let registry = c.t.registry.as_ref();
    let member = tenant
        .strip_prefix("member/")
        .and_then(|n| registry.and_then(|r| r.members.iter().find(|m| m.name == n)));
    if tenant.starts_with("member/")
        && !c
            .t
            .member_names
            .iter()
            .any(|n| Some(n.as_str()) == tenant.strip_prefix("member/"))
    {
        return None; // a removed member: not reported by name
    }
    let (source, recipients) = match (&k.ring, member, registry) {
        (Some(r), _, _) => ("keyring", r.recipients.clone()),
        (None, Some(m), Some(reg)) => {
            let mut all = m.recipients.clone();
            all.extend(
                crate::members::recovery_readers(reg, m)
                    .into_iter()
                    .filter(|r| !m.recipients.contains(r)),
            );
            ("registry", all)
        }
        _ => return None,
    };
    let setup = registry.and_then(|r| r.recovery_setup.as_ref());
    let split_key = member
        .and_then(|m| m.recovery.as_ref())
        .map(|r| &r.recipient);
    let recovery = match (member, setup) {
        (Some(_), Some(s)) if split_key.is_some_and(|k| recipients.contains(k)) => {
            Some(RecoveryPolicy {
                threshold: s.threshold,
                approvals: s.approvals(),
                holders: s.holders.iter().map(|h| h.name.clone()).collect(),
                description: format!(
                    "one admin asks and {} approve, of {} admins: {}",
                    s.approvals(),
                    s.holders.len(),
                    s.holders
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        }
        _ => None,
    };
    let list = recipients
        .iter()
        .map(|r| {
            let kind = reader_kind(c, tenant, member, setup.is_some(), split_key, r);
            let (fingerprint, mut comment) = fingerprint(r);
            // An admin as a person: named (issue 25 finding 8).
            if let Some(a) = registry.and_then(|g| {
                g.admins
                    .iter()
                    .find(|a| &a.recipient == r && a.removed.is_none())
            }) {
                comment = Some(a.name.clone());
            }
            Reader {
                recipient: r.clone(),
                kind,
                fingerprint,
                comment,
            }
        })
        .collect();
    let mut w = c.site_writers.clone();
    if !c.t.admin_keys.is_empty() {
        w.push("admin".into());
    }
    if let Some(n) = tenant.strip_prefix("member/") {
        w.push(format!("{n} (own key)"));
    }
    Some(TenantReaders {
        tenant: tenant.to_string(),
        member: tenant.strip_prefix("member/").map(String::from),
        source,
        readers: list,
        recovery,
        writers: w,
        storage_sites: c.peers.clone(),
    })
}

/// What a recipient of a tenant's keys is: the member's own key, the recovery split's key,
/// an admin's, or just a key.
fn reader_kind(
    c: &Common,
    tenant: &str,
    member: Option<&Member>,
    split: bool,
    split_key: Option<&String>,
    r: &String,
) -> &'static str {
    let registry: Option<&Registry> = c.t.registry.as_ref();
    if member.is_some_and(|m| m.recipients.contains(r)) {
        "member"
    } else if split && split_key == Some(r) {
        "recovery-split"
    } else if tenant == "coop"
        || c.coop_recipients.contains(r)
        || registry.is_some_and(|g| g.recovery.contains(r))
    {
        "admin"
    } else {
        "key"
    }
}
