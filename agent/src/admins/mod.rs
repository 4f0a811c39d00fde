//! Admins as persons (SPEC 15, issue 25 finding 8): each admin is named in the registry with
//! their own recipient (the service tenant's keyring is wrapped to it) and their own person
//! key (derived from their identity file, `keys::person_key`), which signs every log entry
//! they cause. `add` and `remove` re-wrap the service tenant; `remove` also replaces its data
//! identity, so that a retired admin reads nothing of the service tenant written afterwards.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
pub use crate::log::persons::{Op, Persons, Proposal};
use crate::repo::Repo;
use coop_formats::keyring::Keyring;
use coop_formats::registry::{check_member_name, Admin};
use coop_formats::tlog::Event;

/// How an admin is given to `coop admin add`: `coop-admin:<person key hex>:<recipient>`, as
/// `coop admin whoami` prints it.
pub const TOKEN_PREFIX: &str = "coop-admin:";

/// The token naming the holder of an identity file as an admin.
pub fn token(person: &ed25519_dalek::SigningKey, recipient: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}:{recipient}",
        hex::encode(person.verifying_key().to_bytes())
    )
}

/// Parses a token: (person key, recipient).
pub fn parse_token(t: &str) -> Result<([u8; 32], String)> {
    let bad = || {
        Error::invalid(format!(
            "{t:?} is no admin key: give what `coop admin whoami` prints on the new admin's \
             machine ({TOKEN_PREFIX}<64 hex>:<age recipient>)"
        ))
    };
    let rest = t.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (k, r) = rest.split_once(':').ok_or_else(bad)?;
    let key: [u8; 32] = hex::decode(k)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
    coop_formats::crypt::parse_recipient(r).map_err(|e| Error::invalid(format!("{t:?}: {e}")))?;
    // One form per key (an `ssh-ed25519` key as the X25519 recipient coop encrypts to), so
    // that every later comparison (retiring her, the split's holders) finds her.
    Ok((key, same_key_form(r)))
}

/// The one form coop compares admin recipients in: see [`coop_formats::crypt::canonical_recipient`].
fn same_key_form(r: &str) -> String {
    coop_formats::crypt::canonical_recipient(r)
}

fn coop_ring(repo: &Repo, access: &Access) -> Result<(TenantKeys, Keyring)> {
    let (coop, ids) = crate::members::admin(repo, access)?;
    let ring = repo
        .keyrings(&ids)?
        .rings
        .into_iter()
        .find(|k| k.tenant == "coop")
        .ok_or_else(|| Error::NotRecipient {
            tenant: "coop".into(),
        })?;
    Ok((coop, ring))
}

/// Writes the next generation of the service tenant's keyring and deletes the older ones
/// with a logged deletion (replicas follow), then logs who reads it now.
fn rewrap_coop(repo: &Repo, coop: &TenantKeys, mut ring: Keyring, what: &str) -> Result<()> {
    crate::members::replace_keyring(repo, coop, &mut ring)?;
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(&actor, Event::KeyChange, Some(coop), None, None);
    e.object = Some("admins".into());
    e.data.insert("change".into(), what.into());
    e.data
        .insert("readers".into(), ring.recipients.len().into());
    crate::log::append(repo, &actor, &[e])?;
    Ok(())
}

/// What an admin change did: done, or (after the recovery split) proposed or approved and
/// waiting for more approvals.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Added(Admin),
    Removed(Removed),
    /// A K-of-N change that takes `needed` approvals by other admins and has `approvals`.
    Pending {
        op: Op,
        name: String,
        approvals: usize,
        needed: usize,
    },
}

/// `coop admin add NAME KEY`: names a person as an admin and wraps the service tenant to
/// them. `token` defaults to the caller's own (registering themselves). After the recovery
/// split this is a proposal that K other admins approve (SPEC 24.11).
pub fn add(repo: &Repo, access: &Access, name: &str, token: &str) -> Result<Outcome> {
    check_member_name(name).map_err(|e| Error::invalid(e.replace("member name", "admin name")))?;
    let (key, recipient) = parse_token(token)?;
    let (coop, _) = coop_ring(repo, access)?;
    let loaded = crate::registry::load_for_change(repo, &coop)?;
    check_new(&loaded.registry, name, &key, &recipient)?;
    let persons = persons(repo, &coop)?;
    if persons.person_approvals().is_none() {
        return Ok(Outcome::Added(add_now(
            repo, access, name, &key, &recipient,
        )?));
    }
    propose(repo, &coop, &persons, Op::Add, name, &key, &recipient)
}

fn check_new(
    reg: &coop_formats::registry::Registry,
    name: &str,
    key: &[u8; 32],
    recipient: &str,
) -> Result<()> {
    if let Some(a) = reg.admins.iter().find(|a| a.name == name) {
        return Err(Error::invalid(format!(
            "an admin named {name:?} exists already{} (names stay with their old entries)",
            if a.removed.is_some() { ", retired" } else { "" }
        )));
    }
    if let Some(a) = reg.admin_by_key(key) {
        return Err(Error::invalid(format!(
            "that person key is admin {:?}'s already",
            a.name
        )));
    }
    // One person per identity: a second person key under someone's recipient would be a
    // person nobody can tell from them (SPEC 24.11).
    if let Some(a) = reg
        .admins
        .iter()
        .find(|a| a.removed.is_none() && same_key_form(&a.recipient) == same_key_form(recipient))
    {
        return Err(Error::invalid(format!(
            "that identity is admin {:?}'s already (one person per identity; compare the \
             tokens with `coop admin list`)",
            a.name
        )));
    }
    Ok(())
}

/// Who counts as an admin person, from the admin log (SPEC 24.11).
fn persons(repo: &Repo, coop: &TenantKeys) -> Result<crate::log::Activation> {
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    Ok(trusted.activation.unwrap_or_default())
}

/// The caller's person key, which must count (after the split only counted persons propose
/// and approve).
fn counted_caller(coop: &TenantKeys, persons: &crate::log::Activation) -> Result<[u8; 32]> {
    let me = coop
        .person
        .as_ref()
        .map(|k| k.verifying_key().to_bytes())
        .ok_or_else(|| Error::AccessDenied {
            what: "after the recovery split admin changes are proposed and approved by admins \
             as persons: this identity file gives no person key"
                .into(),
        })?;
    if !persons.person_counts(&me) {
        return Err(Error::AccessDenied {
            what: format!(
                "person key {} is not an admin person of this cooperative (not named at the \
                 recovery split, nor added with the other admins' approval since)",
                &hex::encode(me)[..16]
            ),
        });
    }
    Ok(me)
}

/// Logs a proposal (signed by the caller's person key).
fn propose(
    repo: &Repo,
    coop: &TenantKeys,
    persons: &crate::log::Activation,
    op: Op,
    name: &str,
    key: &[u8; 32],
    recipient: &str,
) -> Result<Outcome> {
    counted_caller(coop, persons)?;
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(&actor, Event::KeyChange, Some(coop), None, None);
    e.object = Some(op.object().into());
    e.data.extend(Persons::proposal_data(name, key, recipient));
    crate::log::append(repo, &actor, &[e])?;
    Ok(Outcome::Pending {
        op,
        name: name.to_string(),
        approvals: 0,
        needed: persons.person_approvals().unwrap_or(1),
    })
}

/// `coop admin approve NAME`: approves the pending addition or removal of admin `name`. The
/// approval that makes K carries the change out (the registry and the service tenant's
/// keyring); run again after an interruption, it finishes a change the log has in force.
pub fn approve(repo: &Repo, access: &Access, name: &str) -> Result<Outcome> {
    let (coop, _) = coop_ring(repo, access)?;
    let persons = persons(repo, &coop)?;
    let Some(needed) = persons.person_approvals() else {
        return Err(Error::invalid(
            "before the recovery split admin changes need no approval",
        ));
    };
    let registry = crate::registry::load_for_change(repo, &coop)?.registry;
    let pending = persons.pending_persons();
    let Some(x) = pending.iter().find(|x| x.name == name) else {
        return finish(repo, access, &persons, &registry, name);
    };
    let me = counted_caller(&coop, &persons)?;
    if me == x.by || me == x.key {
        return Err(Error::AccessDenied {
            what: format!(
                "the {} of admin {name:?} needs the approval of admins other than the one who \
                 proposed it and the one it is about",
                x.op.object()
            ),
        });
    }
    if x.approvals.contains(&me) {
        return Err(Error::invalid(format!(
            "you approved the {} of admin {name:?} already ({} of {needed})",
            x.op.object(),
            x.approvals.len()
        )));
    }
    if x.op == Op::Remove {
        retire::leaves_recovery(&persons, &registry, name, &x.recipient)?;
    }
    let actor = crate::log::Actor::of(&coop);
    let mut e = crate::log::entry(&actor, Event::KeyChange, Some(&coop), None, None);
    e.object = Some(crate::log::persons::APPROVE.into());
    e.data
        .extend(Persons::approval_data(x.op, &x.key, &x.recipient));
    crate::log::append(repo, &actor, &[e])?;
    if x.approvals.len() + 1 < needed {
        return Ok(Outcome::Pending {
            op: x.op,
            name: name.to_string(),
            approvals: x.approvals.len() + 1,
            needed,
        });
    }
    let persons = self::persons(repo, &coop)?;
    finish(repo, access, &persons, &registry, name)
}

/// Carries out the change of admin `name` the log has in force and the registry does not
/// show yet.
fn finish(
    repo: &Repo,
    access: &Access,
    persons: &crate::log::Activation,
    registry: &coop_formats::registry::Registry,
    name: &str,
) -> Result<Outcome> {
    let listed = registry.admins.iter().find(|a| a.name == name);
    if let Some(a) = listed.filter(|a| a.removed.is_none()) {
        if !persons.person_counts(&a.key) {
            return Ok(Outcome::Removed(remove_now(repo, access, name)?));
        }
    }
    if listed.is_none() {
        if let Some((key, recipient)) = persons.added(name) {
            if persons.person_counts(&key) {
                return Ok(Outcome::Added(add_now(
                    repo, access, name, &key, &recipient,
                )?));
            }
        }
    }
    Err(Error::NotFound {
        what: format!(
            "a pending addition or removal of admin {name:?} (`coop admin list` shows them)"
        ),
    })
}

/// Names person `key` an admin and wraps the service tenant to `recipient`, now.
fn add_now(
    repo: &Repo,
    access: &Access,
    name: &str,
    key: &[u8; 32],
    recipient: &str,
) -> Result<Admin> {
    let (coop, mut ring) = coop_ring(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    check_new(&loaded.registry, name, key, recipient)?;
    let (key, recipient) = (*key, recipient.to_string());
    let admin = Admin {
        name: name.to_string(),
        recipient: recipient.clone(),
        key,
        added: crate::now_rfc3339(),
        removed: None,
    };
    if !ring
        .recipients
        .iter()
        .any(|r| same_key_form(r) == same_key_form(&recipient))
    {
        ring.recipients.push(recipient);
        rewrap_coop(repo, &coop, ring, &format!("admin {name} added"))?;
    }
    loaded.registry.admins.push(admin.clone());
    let persons = persons(repo, &coop)?;
    crate::reshare::start(repo, &coop, &mut loaded.registry, &persons)?;
    crate::registry::save(repo, &coop, &mut loaded)?;
    Ok(admin)
}

/// What [`remove`] did and what it could not undo.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub admin: Admin,
    /// The recovery split names the retired admin as a share holder: their shares of every
    /// member's recovery identity stay valid (SPEC 25) until the re-split `reshare` ends.
    pub holds_shares: bool,
    /// The epoch of the re-split of the shares this retirement started (SPEC 25.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshare: Option<String>,
}

/// `coop admin remove NAME`: retires an admin. The service tenant's keyring is re-wrapped
/// without their recipient and gets a new data identity, so that they read nothing of it
/// written afterwards; their name stays for their old entries. After the recovery split
/// this is a proposal that K other admins approve (SPEC 24.11).
pub fn remove(repo: &Repo, access: &Access, name: &str) -> Result<Outcome> {
    let (coop, _) = coop_ring(repo, access)?;
    let persons = persons(repo, &coop)?;
    if persons.person_approvals().is_none() {
        return Ok(Outcome::Removed(remove_now(repo, access, name)?));
    }
    let registry = crate::registry::load_for_change(repo, &coop)?.registry;
    let a = registry
        .admins
        .iter()
        .find(|a| a.name == name && a.removed.is_none())
        .ok_or_else(|| Error::NotFound {
            what: format!("admin {name:?} (`coop admin list` shows them)"),
        })?;
    retire::leaves_recovery(&persons, &registry, name, &a.recipient)?;
    propose(
        repo,
        &coop,
        &persons,
        Op::Remove,
        name,
        &a.key,
        &a.recipient,
    )
}

fn remove_now(repo: &Repo, access: &Access, name: &str) -> Result<Removed> {
    let (coop, mut ring) = coop_ring(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    let active = loaded
        .registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .count();
    let Some(a) = loaded
        .registry
        .admins
        .iter_mut()
        .find(|a| a.name == name && a.removed.is_none())
    else {
        return Err(Error::NotFound {
            what: format!("admin {name:?} (`coop admin list` shows them)"),
        });
    };
    if active <= 1 {
        return Err(Error::invalid(
            "the last admin cannot be retired: add another first",
        ));
    }
    let recipient = a.recipient.clone();
    a.removed = Some(crate::now_rfc3339());
    let admin = a.clone();
    // Every form of her key goes (`coop init --recipient "ssh-ed25519 …"` stored the SSH
    // form; her registration the X25519 one): either would keep her reading.
    ring.recipients
        .retain(|r| same_key_form(r) != same_key_form(&recipient));
    if ring.recipients.is_empty() {
        return Err(Error::invalid(
            "the service tenant would have no reader left",
        ));
    }
    let fresh = ring
        .rotate_data_identity()
        .map_err(|e| Error::damaged("keyring of coop", e))?;
    loaded.registry.coop_data_recipient = Some(fresh);
    rewrap_coop(repo, &coop, ring, &format!("admin {name} retired"))?;
    let holds_shares = loaded.registry.recovery_setup.as_ref().is_some_and(|s| {
        s.holders
            .iter()
            .any(|h| same_key_form(&h.recipient) == same_key_form(&recipient))
    });
    let persons = persons(repo, &coop)?;
    let reshare = crate::reshare::start(repo, &coop, &mut loaded.registry, &persons)?;
    crate::registry::save(repo, &coop, &mut loaded)?;
    Ok(Removed {
        admin,
        holds_shares,
        reshare,
    })
}

/// What `coop log policy` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Policy {
    /// The quorum of witness cosignatures accesses wait for now.
    pub log_quorum: u32,
    /// A lowering after the recovery split that waits for approvals: (approvals, needed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<(usize, usize)>,
    /// Unrevoked site writers plus external witnesses.
    pub sites: u32,
    /// Witnesses named whose adoption could not be logged: (name, why). They witness nothing
    /// until it is.
    pub unlogged: Vec<(String, String)>,
}

/// `coop log policy`: sets the writer list's quorum and external witnesses, and logs each
/// change (SPEC 24.5). After the recovery split a quorum below the floor is a proposal (or an
/// approval of the same proposal) that K other admins approve (SPEC 24.11); until then the
/// floor stays in force.
pub fn log_policy(
    repo: &Repo,
    coop: &TenantKeys,
    quorum: u32,
    witnesses: &[(String, [u8; 32])],
) -> Result<Policy> {
    let admin = coop.authority_signer()?;
    let act = persons(repo, coop)?;
    let floor = act.persons.values().filter_map(|p| p.quorum_floor).max();
    let lowering = floor.is_some_and(|f| quorum < f);
    let me = if lowering {
        Some(counted_caller(coop, &act)?)
    } else {
        None
    };
    let mut loaded = crate::writers::load(repo, &coop.admin_keys)?;
    for (name, public_key) in witnesses {
        loaded.list.witnesses.retain(|x| &x.name != name);
        loaded
            .list
            .witnesses
            .push(coop_formats::writers::ExternalWitness {
                name: name.clone(),
                public_key: *public_key,
            });
    }
    loaded.list.log_quorum = quorum;
    crate::writers::save(repo, &admin, &mut loaded)?;
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(&actor, Event::KeyChange, None, None, None);
    let mut pending = None;
    match (me, lowering) {
        (Some(me), true) => {
            let needed = act.person_approvals().unwrap_or(1);
            let open = act
                .pending_persons()
                .into_iter()
                .find(|x| x.op == Op::LowerQuorum && x.quorum == Some(quorum));
            e.data.extend(Persons::quorum_data(quorum));
            match open {
                None => {
                    e.object = Some(Op::LowerQuorum.object().into());
                    pending = Some((0, needed));
                }
                Some(x) if x.by == me || x.approvals.contains(&me) => {
                    return Err(Error::invalid(format!(
                        "lowering the quorum to {quorum} waits for other admins' approval \
                         ({} of {needed}); yours is in already",
                        x.approvals.len()
                    )));
                }
                Some(x) => {
                    e.object = Some(crate::log::persons::APPROVE.into());
                    pending =
                        (x.approvals.len() + 1 < needed).then_some((x.approvals.len() + 1, needed));
                }
            }
        }
        _ => e.object = Some(format!("log_quorum={quorum}")),
    }
    crate::log::append(repo, &actor, &[e])?;
    // Each witness named here is adopted by a log entry, and counts only once that entry is
    // witnessed (SPEC 24.5).
    let mut unlogged = Vec::new();
    for (name, key) in witnesses {
        if let Err(e) = crate::log::record_witness(repo, coop, name, key) {
            unlogged.push((name.clone(), crate::error::chain(&e)));
        }
    }
    let sites = (loaded
        .list
        .writers
        .iter()
        .filter(|w| w.revoked.is_none())
        .count()
        + loaded.list.witnesses.len()) as u32;
    let in_force = crate::writers::log_trust(repo, &coop.admin_keys)?.quorum;
    Ok(Policy {
        log_quorum: in_force,
        pending,
        sites,
        unlogged,
    })
}

/// The registered admins, retired ones included.
pub fn list(repo: &Repo, coop: &TenantKeys) -> Result<Vec<Admin>> {
    Ok(crate::registry::load(repo, coop)?.registry.admins)
}

/// The admins with whether each counts as a person (SPEC 24.11), and the pending changes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listing {
    pub admins: Vec<Listed>,
    pub pending: Vec<Proposal>,
    /// K: approvals by other admins a change takes (`None`: before the recovery split, none).
    pub approvals_needed: Option<usize>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub admin: Admin,
    /// Whether the log counts this person (always, before the split).
    pub counts: bool,
}

/// `coop admin list`: the admins, who counts, and what waits for approval.
pub fn listing(repo: &Repo, coop: &TenantKeys) -> Result<Listing> {
    let persons = persons(repo, coop)?;
    let admins = list(repo, coop)?
        .into_iter()
        .map(|a| Listed {
            counts: a.removed.is_none() && persons.person_counts(&a.key),
            admin: a,
        })
        .collect();
    Ok(Listing {
        admins,
        pending: persons.pending_persons(),
        approvals_needed: persons.person_approvals(),
    })
}

mod retire;
mod who;
pub use who::{who, who_at};

pub mod writer_keys;

#[cfg(test)]
mod tests;
