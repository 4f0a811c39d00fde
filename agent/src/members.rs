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
    let Access::Identity(ids, _) = access else {
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
    if let Some(m) = finish_stopped_add(repo, &coop, &loaded, name, &recipients, quota)? {
        return Ok(m);
    }
    if loaded.registry.member(name).is_some() {
        return Err(Error::invalid(format!(
            "member {name:?} exists already (change its keys with `member recipients`, its quota with `member quota`)"
        )));
    }
    let split = loaded.registry.recovery_setup.clone();
    if split.is_some() {
        name_free(repo, &coop, name)?;
    }
    if loaded.registry.recovery.is_empty() && split.is_none() {
        loaded.registry.recovery = coop_ring.recipients.clone();
    }
    if loaded.registry.members.iter().any(|m| m.name == name) {
        // A tombstone: bring the old tenant back.
        return bring_back(repo, &coop, &ids, &mut loaded, name, recipients, quota);
    }
    let mut all = recipients.clone();
    if split.is_none() {
        let extra = loaded.registry.recovery.clone();
        all.extend(extra.into_iter().filter(|r| !recipients.contains(r)));
    }
    let mut ring = Keyring::generate(
        &format!("member/{name}"),
        repo.config.repo_id,
        repo.config_hash,
        all,
        crate::now_rfc3339(),
    );
    // After the split a new member gets a recovery identity of their own, split among the
    // holders like everyone's (its slots logged for her tag first, SPEC 25.6), and her keyring
    // is wrapped to it too; before the split, the admins read every member.
    let member_recovery = match &split {
        Some(setup) => {
            let tag = crate::log::tenant_tag_of(&ring.id_key, &ring.tenant_tag);
            let r = crate::shares::new_member_identity(
                repo,
                &coop,
                setup,
                loaded.registry.recovery_next.as_mut(),
                &tag,
            )?;
            if !recipients.contains(&r.recipient) {
                ring.recipients.push(r.recipient.clone());
            }
            Some(r)
        }
        None => None,
    };
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
        recovery: member_recovery,
        material: None,
    };
    let mut m = m;
    sign_material(repo, &mut m, &ring)?;
    loaded.registry.members.push(m.clone());
    save(repo, &coop, &mut loaded)?;
    crate::fault::point("member-add:after-registry");
    if split.is_some() {
        // After the split writers take a member's keys only as the admins' log names them
        // (SPEC 15.4); a new member's first material is hers.
        log_first_material(repo, &coop, &m)?;
    }
    log_readers(repo, &coop, &m, &ring.recipients)?;
    Ok(m)
}

/// After the split the log binds each name to one tenant, once: a name bound already (by an
/// entry of someone's, before this member exists) would leave her refused by every writer, or
/// bound to a tenant that is not hers. Refused before anything is written.
fn name_free(repo: &Repo, coop: &TenantKeys, name: &str) -> Result<()> {
    if crate::registry::material::name_taken(repo, coop, name)? {
        return Err(Error::damaged(
            "log",
            format!(
                "the admins' log binds the name {name:?} to a member tenant already, though the \
                 registry has no such member: `coop log show` names the entry and the person \
                 who logged it. A name is bound once; nothing was added"
            ),
        ));
    }
    Ok(())
}

/// Logs a member's first material after the split (SPEC 15.4), then checks that the log
/// binds her name to her tenant: someone may have bound it between [`name_free`] and now.
fn log_first_material(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<()> {
    use crate::registry::material::{self, Verdict};
    material::log(repo, coop, m, None)?;
    if let Verdict::Refused(why) = material::check(repo, coop, m)? {
        return Err(Error::damaged(
            "log",
            format!(
                "member {:?} was added, but writers will refuse her: {why}",
                m.name
            ),
        ));
    }
    Ok(())
}

/// Finishes an addition of `name` after the split that stopped between the registry and the
/// log (a crash), when it is the addition asked for now: the log names no keys for her yet,
/// so writers refuse her and her recovery slot is bound to nobody.
fn finish_stopped_add(
    repo: &Repo,
    coop: &TenantKeys,
    loaded: &Loaded,
    name: &str,
    recipients: &[String],
    quota: Option<u64>,
) -> Result<Option<Member>> {
    let Some(m) = loaded.registry.member(name).filter(|m| m.removed.is_none()) else {
        return Ok(None);
    };
    // An addition after the split that stopped between the registry and the log (a
    // crash): the log names no keys for her yet, so writers refuse her and her recovery
    // slot is bound to nobody. Finish it.
    let stopped = loaded.registry.recovery_setup.is_some()
        && m.recovery.is_some()
        && crate::registry::material::unnamed(repo, coop, m)?;
    // Only the addition asked for now, of an identity whose slot the log holds reserved
    // for her: an entry someone else put in the registry (with keys of theirs) is not
    // logged under this admin's name.
    let ours = stopped && m.recipients == *recipients && m.quota == quota && {
        let tag = crate::registry::log_tag(m);
        let r = m.recovery.as_ref().expect("checked");
        crate::writers::log_trust(repo, &coop.admin_keys)?
            .activation
            .unwrap_or_default()
            .reserved_unbound(&tag, &(r.epoch.clone(), r.slot.clone()))
    };
    if ours {
        let m = m.clone();
        crate::registry::material::log(repo, coop, &m, None)?;
        let mut readers = m.recipients.clone();
        readers.extend(m.recovery.as_ref().map(|r| r.recipient.clone()));
        log_readers(repo, coop, &m, &readers)?;
        return Ok(Some(m));
    }
    Ok(None)
}

/// Brings a removed member back with her old tenant and data, re-wrapped to `recipients`.
fn bring_back(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[coop_formats::crypt::Identity],
    loaded: &mut Loaded,
    name: &str,
    recipients: Vec<String>,
    quota: Option<u64>,
) -> Result<Member> {
    let registry = loaded.registry.clone();
    let m = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == name)
        .expect("checked");
    m.removed = None;
    m.quota = quota;
    let old = m.recipients.clone();
    m.recipients = recipients.clone();
    if old != recipients {
        let back = m.clone();
        let recovery = recovery_readers(&registry, &back);
        rewrap(repo, coop, ids, &back, &recovery)?;
    }
    if let Ok(ring) = open_ring(repo, ids, m) {
        sign_material(repo, m, &ring)?;
    }
    let back = m.clone();
    save(repo, coop, loaded)?;
    Ok(back)
}

/// Signs member `m`'s writer material with its tenant's authority from the open `ring`
/// (SPEC 15.3), unless a valid signature is there already. A new signature's generation is
/// above the old one's, so clients that accepted the old material take the new one and
/// refuse the old one ever after.
pub(crate) fn sign_material(repo: &Repo, m: &mut Member, ring: &Keyring) -> Result<()> {
    if ring.tenant_tag != m.tenant_tag || ring.authority() != m.authority {
        return Err(Error::internal(format!(
            "the keyring opened for {} is not the registry's tenant",
            m.tenant()
        )));
    }
    let repo_id = &repo.config.repo_id;
    if m.verify_material(repo_id).is_ok() {
        return Ok(());
    }
    let next = m
        .material
        .as_ref()
        .map_or(ring.generation, |s| s.generation.max(ring.generation) + 1);
    m.sign_material(repo_id, next, &ring.default_signer());
    Ok(())
}

/// Who besides the member reads member `m`'s tenant: the admins before the recovery split,
/// the member's own recovery identity after it.
pub(crate) fn recovery_readers(reg: &coop_formats::registry::Registry, m: &Member) -> Vec<String> {
    match (&reg.recovery_setup, &m.recovery) {
        (Some(_), Some(r)) => vec![r.recipient.clone()],
        (Some(_), None) => Vec::new(),
        (None, _) => reg.recovery.clone(),
    }
}

/// Logs who can read member `m`'s tenant now: an entry about that member (so it is in their
/// export and `log show --member`), the list itself encrypted to the tenant.
pub(crate) fn log_readers(
    repo: &Repo,
    coop: &TenantKeys,
    m: &Member,
    readers: &[String],
) -> Result<()> {
    let keys = crate::registry::member_writer_keys(coop, m)?;
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(
        &actor,
        coop_formats::tlog::Event::KeyChange,
        Some(&keys),
        None,
        Some("readers".into()),
    );
    e.data.insert("readers".into(), readers.len().into());
    let text = readers
        .iter()
        .map(|r| {
            let kind = if m.recipients.contains(r) {
                "the member's own key"
            } else if m.recovery.as_ref().is_some_and(|x| &x.recipient == r) {
                "the member's recovery key (split among the admins)"
            } else {
                "another key (an admin's or a spare)"
            };
            format!("{r}: {kind}")
        })
        .collect::<Vec<_>>()
        .join("\n");
    e.detail = Some(crate::tenant::encrypt_detail(
        &keys,
        &format!("who can read this tenant now:\n{text}"),
    )?);
    crate::log::append(repo, &actor, &[e])?;
    Ok(())
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
    let ring = open_ring(repo, ids, m)?;
    rewrap_ring(repo, coop, ring, m, recovery)
}

/// Member `m`'s newest keyring, opened with `ids`.
pub(crate) fn open_ring(
    repo: &Repo,
    ids: &[coop_formats::crypt::Identity],
    m: &Member,
) -> Result<Keyring> {
    repo.keyrings(ids)?
        .rings
        .into_iter()
        .find(|k| k.tenant == m.tenant())
        .ok_or_else(|| Error::NotRecipient { tenant: m.tenant() })
}

/// [`rewrap`] of a keyring already open (its data identity possibly rotated).
pub(crate) fn rewrap_ring(
    repo: &Repo,
    coop: &TenantKeys,
    mut ring: Keyring,
    m: &Member,
    recovery: &[String],
) -> Result<()> {
    ring.recipients = m.recipients.clone();
    ring.owners = m.recipients.clone();
    ring.recipients.extend(
        recovery
            .iter()
            .filter(|r| !m.recipients.contains(r))
            .cloned(),
    );
    replace_keyring(repo, coop, &mut ring)?;
    log_readers(repo, coop, m, &ring.recipients)
}

/// Writes the next generation of a keyring and deletes the older ones, the deletion logged
/// first (by the admin) so that replicas follow it: no copy keeps a keyring wrapped to keys
/// that no longer read the tenant (SPEC section 24.9).
/// Returns the name of the generation written.
pub(crate) fn replace_keyring(
    repo: &Repo,
    coop: &TenantKeys,
    ring: &mut Keyring,
) -> Result<coop_formats::id::Id> {
    ring.generation += 1;
    let new_id = repo.write_keyring(ring)?;
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
    Ok(new_id)
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
    let registry = loaded.registry.clone();
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
    if let Ok(ring) = open_ring(repo, &ids, m) {
        sign_material(repo, m, &ring)?;
    }
    let updated = m.clone();
    let recovery = recovery_readers(&registry, &updated);
    rewrap(repo, &coop, &ids, &updated, &recovery).map_err(|e| match e {
        Error::NotRecipient { tenant } if registry.recovery_setup.is_some() => {
            Error::AccessDenied {
                what: format!(
                    "since the recovery split no admin key opens {tenant}: its readers change \
                     with an identity file that holds both an admin key and one of the \
                     member's own keys, or after a recovery"
                ),
            }
        }
        e => e,
    })?;
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
