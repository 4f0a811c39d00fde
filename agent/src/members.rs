//! Members: the registry, per-member tenants, quotas and key re-wrapping.
//!
//! A member `NAME` gets the tenant `member/NAME`: its own ID key, index key and data
//! identity, in a keyring wrapped to the member's recipients plus the cooperative's recovery
//! recipients. Dedup never crosses tenants. The registry (sealed with the coop tenant's index
//! key, signed by an admin) lists members, quotas and the recovery recipients, and carries
//! each member tenant's *writer* material, so agents holding only a coop writer key can back
//! members up without being able to read them. A removed member stays in the registry as a
//! tombstone: its tenant keeps its data, and the name cannot be given to a new tenant.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
use crate::layout::Kind;
pub use crate::registry::{load, writer_keys_for_member, Loaded};
pub(crate) use crate::registry::{load_for_change, save};
use crate::repo::Repo;
use coop_formats::keyring::Keyring;
use coop_formats::registry::{check_member_name, Member};
use std::sync::Arc;

pub(crate) fn admin(
    repo: &Repo,
    access: &Access,
) -> Result<(TenantKeys, Arc<Vec<coop_formats::crypt::Identity>>)> {
    let Access::Identity(ids) = access else {
        return Err(Error::AccessDenied {
            what: "managing members needs an admin identity, not a writer key".into(),
        });
    };
    Ok((crate::tenant::keys(repo, access, "coop")?, Arc::clone(ids)))
}

fn check_recipients(recipients: &[String]) -> Result<()> {
    for r in recipients {
        coop_formats::crypt::parse_recipient(r).map_err(|e| Error::invalid(e.to_string()))?;
    }
    Ok(())
}

/// Adds a member: creates its tenant and registers it. A name that was removed before is
/// brought back with its old tenant and data (re-wrapped to the recipients given).
pub fn add(
    repo: &Repo,
    access: &Access,
    name: &str,
    recipients: Vec<String>,
    quota: Option<u64>,
) -> Result<Member> {
    check_member_name(name).map_err(Error::invalid)?;
    if recipients.is_empty() {
        return Err(Error::invalid(
            "a member needs at least one recipient (their age or SSH public key)",
        ));
    }
    check_recipients(&recipients)?;
    let (coop, ids) = admin(repo, access)?;
    let coop_ring = &coop.reader()?.keyring;
    let mut loaded = load_for_change(repo, &coop)?;
    if loaded.registry.member(name).is_some() {
        return Err(Error::invalid(format!(
            "member {name:?} exists already (change its keys with `member recipients`, its quota with `member quota`)"
        )));
    }
    if loaded.registry.recovery.is_empty() {
        loaded.registry.recovery = coop_ring.recipients.clone();
    }
    if let Some(m) = loaded.registry.members.iter_mut().find(|m| m.name == name) {
        // A tombstone: bring the old tenant back.
        m.removed = None;
        m.quota = quota;
        let old = m.recipients.clone();
        m.recipients = recipients.clone();
        let back = m.clone();
        if old != recipients {
            rewrap(repo, &coop, &ids, &back, &loaded.registry.recovery)?;
        }
        save(repo, &coop, &mut loaded)?;
        return Ok(back);
    }
    let mut all = recipients.clone();
    all.extend(
        loaded
            .registry
            .recovery
            .iter()
            .filter(|r| !recipients.contains(r))
            .cloned(),
    );
    let mut ring = Keyring::generate(
        &format!("member/{name}"),
        repo.config.repo_id,
        repo.config_hash,
        all,
        crate::now_rfc3339(),
    );
    ring.admins = coop.admin_keys.clone();
    ring.owners = recipients.clone();
    repo.write_keyring(&ring)?;
    let m = Member {
        name: name.into(),
        recipients,
        quota,
        tenant_tag: ring.tenant_tag,
        added: crate::now_rfc3339(),
        id_key: ring.id_key,
        index_key: ring.index_key,
        data_recipient: ring
            .data_recipient()
            .map_err(|e| Error::damaged("keyring", e))?,
        authority: ring.authority(),
        removed: None,
    };
    loaded.registry.members.push(m.clone());
    save(repo, &coop, &mut loaded)?;
    Ok(m)
}

/// Removes a member from the registry. Its tenant and stored data are kept (forget and
/// prune it to delete the data); the name stays reserved for it.
pub fn remove(repo: &Repo, access: &Access, name: &str) -> Result<()> {
    let (coop, _) = admin(repo, access)?;
    let mut loaded = load_for_change(repo, &coop)?;
    let Some(m) = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == name && m.removed.is_none())
    else {
        return Err(Error::NotFound {
            what: format!("member {name:?}"),
        });
    };
    m.removed = Some(crate::now_rfc3339());
    save(repo, &coop, &mut loaded)
}

/// Sets (or, with `None`, lifts) a member's quota.
pub fn set_quota(repo: &Repo, access: &Access, name: &str, quota: Option<u64>) -> Result<Member> {
    let (coop, _) = admin(repo, access)?;
    let mut loaded = load_for_change(repo, &coop)?;
    let Some(m) = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == name && m.removed.is_none())
    else {
        return Err(Error::NotFound {
            what: format!("member {name:?}"),
        });
    };
    m.quota = quota;
    let out = m.clone();
    save(repo, &coop, &mut loaded)?;
    Ok(out)
}

/// Re-wraps a member tenant's keyring to its recipients plus the recovery recipients, and
/// removes the older generations (they were wrapped to the old recipients).
///
/// The older generations' deletion is logged first (by `coop`'s admin), so that replicas
/// follow it: a replica must not keep a keyring wrapped to keys that no longer read the
/// tenant (SPEC section 24.9).
pub(crate) fn rewrap(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[coop_formats::crypt::Identity],
    m: &Member,
    recovery: &[String],
) -> Result<()> {
    let mut ring = repo
        .keyrings(ids)?
        .rings
        .into_iter()
        .find(|k| k.tenant == m.tenant())
        .ok_or_else(|| Error::NotRecipient { tenant: m.tenant() })?;
    ring.recipients = m.recipients.clone();
    ring.owners = m.recipients.clone();
    ring.recipients.extend(
        recovery
            .iter()
            .filter(|r| !m.recipients.contains(r))
            .cloned(),
    );
    ring.generation += 1;
    let new_id = repo.write_keyring(&ring)?;
    let old: Vec<crate::repo::Listed> = repo
        .list(Kind::Keyring, &ring.tenant_tag)?
        .into_iter()
        .filter(|o| o.name != new_id)
        .collect();
    let paths: Vec<String> = old.iter().map(|o| o.path.clone()).collect();
    crate::log::record_deletions(repo, coop, coop_formats::tlog::Event::Delete, &paths)?;
    for obj in old {
        repo.delete(Kind::Keyring, &ring.tenant_tag, &obj.name)?;
    }
    Ok(())
}

/// Changes who can read a member's tenant: re-wraps its keyring; no data is re-encrypted.
pub fn set_recipients(
    repo: &Repo,
    access: &Access,
    name: &str,
    add: &[String],
    remove: &[String],
) -> Result<Member> {
    check_recipients(add)?;
    let (coop, ids) = admin(repo, access)?;
    let mut loaded = load_for_change(repo, &coop)?;
    let recovery = loaded.registry.recovery.clone();
    let Some(m) = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == name && m.removed.is_none())
    else {
        return Err(Error::NotFound {
            what: format!("member {name:?}"),
        });
    };
    m.recipients.retain(|r| !remove.contains(r));
    for r in add {
        if !m.recipients.contains(r) {
            m.recipients.push(r.clone());
        }
    }
    if m.recipients.is_empty() {
        return Err(Error::invalid("a member must keep at least one recipient"));
    }
    let updated = m.clone();
    rewrap(repo, &coop, &ids, &updated, &recovery)?;
    save(repo, &coop, &mut loaded)?;
    Ok(updated)
}

/// The registry entry of a member tenant (`member/NAME`), if any, read with coop keys.
pub fn member_of(repo: &Repo, access: &Access, tenant: &str) -> Result<Option<Member>> {
    let Some(name) = tenant.strip_prefix("member/") else {
        return Ok(None);
    };
    let coop = crate::tenant::keys(repo, access, "coop")?;
    Ok(load(repo, &coop)?.registry.member(name).cloned())
}
