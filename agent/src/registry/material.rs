//! Which writer material of a member the admins' log authorizes after the recovery split
//! (SPEC 15.4).
//!
//! A member tenant's signer (its authority) signs the member's writer material (15.3), and
//! every admin who could open the member's keyring before the split, and whoever recovered
//! the member, holds that signer. So after the split a signature alone is not enough: the
//! material writers encrypt to must also be the one the admins' log, append-only and
//! witnessed, authorizes for the member, which is the newest (by signed generation) of
//!
//! - the material the split itself named for the member (`recovery-init`, `data.materials`),
//! - for a member added after the split, the first material logged for it
//!   (`key-change`, `object` = `material`, no request),
//! - the material that ends a recovery of the member (`key-change`, `object` = `material`,
//!   `data.request` = the request): counted only for a request about that member by a counted
//!   person with K witnessed releases by K other counted persons, and only the first such
//!   entry for one request.
//!
//! One admin alone (with a signer kept from before the split) can log none of these: her own
//! material entries for a member who has one count for nothing, and she cannot make the K
//! releases a recovery needs.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::registry::Member;
use coop_formats::tlog::{Entry, Event, PersonCheck};
use std::collections::BTreeSet;

/// The `object` of an entry that names a member's writer material.
pub(crate) const OBJECT: &str = crate::log::MATERIAL;

/// The public digest a log entry names member material by: a hash over every part of the
/// material and its signed generation (nothing in it can be read back).
pub(crate) fn digest(m: &Member) -> String {
    let mut h = blake3::Hasher::new_derive_key("coop member material log v1");
    h.update(&m.tenant_tag);
    h.update(&m.authority);
    h.update(&(m.data_recipient.len() as u64).to_le_bytes());
    h.update(m.data_recipient.as_bytes());
    h.update(&m.id_key);
    h.update(&m.index_key);
    h.update(&generation(m).to_le_bytes());
    hex::encode(h.finalize().as_bytes())
}

/// The tag a log entry names a member's *name* by (SPEC 15.4): a hash keyed with the coop
/// tenant's ID key, so admins and site writers can compute it and nobody else learns the
/// name. The log binds each name to one member tenant once (at the split, or at the first
/// material of a member added after it): a registry one admin rewrote, with a new tenant of
/// hers under a member's name, matches no binding.
pub(crate) fn name_tag(coop: &TenantKeys, name: &str) -> String {
    let mut h = blake3::Hasher::new_derive_key("coop member name log v1");
    h.update(&coop.id_key);
    h.update(name.as_bytes());
    hex::encode(&h.finalize().as_bytes()[..16])
}

fn generation(m: &Member) -> u64 {
    m.material.as_ref().map_or(0, |s| s.generation)
}

/// What a log entry says of one member's material: `{"digest", "generation"}`.
pub(crate) fn named(m: &Member) -> serde_json::Value {
    serde_json::json!({ "digest": digest(m), "generation": generation(m) })
}

/// Logs member `m`'s writer material as the one writers take from now on: at `member add`
/// after the split (`request` `None`) and at the end of a recovery (`request` = its ID). With
/// it the slot holding the member's recovery identity (SPEC 25.6), and, while a re-split runs,
/// the slot of the identity split straight into its setup (from the registry's plan, saved
/// before this is logged).
pub(crate) fn log(repo: &Repo, coop: &TenantKeys, m: &Member, request: Option<&str>) -> Result<()> {
    let keys = super::member_writer_keys(coop, m)?;
    let recovery = match &m.recovery {
        Some(r) => {
            let mut v = serde_json::json!({ "epoch": r.epoch, "slot": r.slot });
            let plan = super::load(repo, coop)?.registry.recovery_next;
            if let Some(plan) = plan.filter(|p| p.from == r.epoch) {
                if let Some(new) = plan
                    .slots
                    .get(&r.slot)
                    .filter(|s| plan.direct.contains_key(*s))
                {
                    v["next"] = serde_json::json!({ "epoch": plan.setup.epoch, "slot": new });
                }
            }
            Some(v)
        }
        None => None,
    };
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(
        &actor,
        Event::KeyChange,
        Some(&keys),
        None,
        Some(OBJECT.into()),
    );
    e.data.insert("material".into(), named(m));
    e.data.insert("name".into(), name_tag(coop, &m.name).into());
    if let Some(r) = recovery {
        e.data.insert("recovery".into(), r);
    }
    if let Some(r) = request {
        e.data.insert("request".into(), r.into());
    }
    crate::log::append(repo, &actor, &[e])?;
    Ok(())
}

/// The authorization the admins' log gives member material.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// No split that names materials in the log (before the split, or a split by an older
    /// coop): the signature and this client's pins decide alone.
    NoRule,
    /// The log authorizes this material: the newest it names for the member.
    Authorized,
    /// The log authorizes other material (or none) for the member.
    Refused(String),
}

/// Checks member `m`'s material against the admins' log.
pub(crate) fn check(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<Verdict> {
    let Some(found) = authorized(repo, coop, m)? else {
        return Ok(Verdict::NoRule);
    };
    if found.name_bound == Some(false) && found.best.is_some() {
        return Ok(Verdict::Refused(format!(
            "the admins' log binds this member's tenant under another name than {:?} (the \
             registry renamed a member, by one admin or a replayed object): a member's name \
             never changes",
            m.name
        )));
    }
    if found.name_elsewhere {
        return Ok(Verdict::Refused(format!(
            "the admins' log binds the name {:?} to another member tenant than the registry's \
             (the registry was rewritten with a new tenant under this name, by one admin or a \
             replayed object): a member's tenant is never replaced",
            m.name
        )));
    }
    let mine = digest(m);
    Ok(match found.best {
        Some((_, d)) if d == mine => Verdict::Authorized,
        Some((g, _)) => Verdict::Refused(format!(
            "the admins' log authorizes other keys for this member (signed at generation {g}; \
             the registry's are at generation {}): after the recovery split a member's keys \
             change only by the split, a recovery K admins approved, or being added. If a \
             recovery of this member stopped before logging its end, the admin who asked \
             finishes it by running `coop export --recovery ID` again on her machine",
            generation(m)
        )),
        None => Verdict::Refused(
            "the admins' log authorizes no keys for this member after the recovery split".into(),
        ),
    })
}

/// Whether the log names no material at all for member `m` after the split: her addition
/// stopped between the registry and the log.
pub(crate) fn unnamed(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<bool> {
    Ok(authorized(repo, coop, m)?.is_some_and(|f| f.best.is_none() && !f.name_elsewhere))
}

/// Whether the admins' log binds member `m`'s registry name to her tenant: `false` when it
/// binds the name to another tenant, or binds her tenant under no name (a registry one admin
/// rewrote, swapping or renaming members); `true` when it does, or when no split names names.
pub(crate) fn name_bound(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<bool> {
    Ok(authorized(repo, coop, m)?.is_none_or(|f| f.name_bound != Some(false)))
}

/// What the admins' log authorizes for one member.
struct Found {
    /// The newest (generation, digest) of her material, if any.
    best: Option<(u64, String)>,
    /// The log binds her name to another tenant.
    name_elsewhere: bool,
    /// Whether the log binds her name to her tenant (`None`: it binds no names).
    name_bound: Option<bool>,
}

/// What the admins' log authorizes for member `m`: `None` when no split names materials (no
/// rule).
fn authorized(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<Option<Found>> {
    let tag = super::log_tag(m);
    authorized_for(repo, coop, &tag, &name_tag(coop, &m.name))
}

/// Whether the admins' log binds member name `name` to a tenant already: a new member under
/// it would be refused by every writer, so `member add` refuses it first and says why.
pub(crate) fn name_taken(repo: &Repo, coop: &TenantKeys, name: &str) -> Result<bool> {
    Ok(authorized_for(repo, coop, "", &name_tag(coop, name))?.is_some_and(|f| f.name_elsewhere))
}

/// [`authorized`] for the tenant whose log tag is `tag` under the name tagged `name`.
fn authorized_for(repo: &Repo, coop: &TenantKeys, tag: &str, name: &str) -> Result<Option<Found>> {
    let (tag, name) = (tag.to_string(), name.to_string());
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let (rep, contents) = crate::log::verify(repo, &trusted)?;
    // An admin log that does not verify (a deleted checkpoint or bundle, a hidden log) is
    // left out of `contents`: were it ignored, the split it holds would be too, and one
    // admin's material would pass as "no rule". Fail closed.
    let admin_ids: Vec<String> = trusted
        .logs
        .iter()
        .filter(|(_, o)| o.admin)
        .map(|(origin, _)| format!("log/{}", coop_formats::tlog::log_id(origin)))
        .collect();
    if let Some(p) = rep.problems.iter().find(|p| {
        p.kind == crate::damage::ProblemKind::Damaged
            && admin_ids.iter().any(|id| p.object.starts_with(id.as_str()))
    }) {
        return Err(Error::damaged(
            p.object.clone(),
            format!(
                "the admins' access log does not verify ({}), so no member's new keys are \
                 taken until it does: run `coop log verify`, and copy the log from another \
                 site's replica",
                p.message
            ),
        ));
    }
    if !contents.iter().any(|c| c.admin) {
        // Every member add and key change is logged there: a registry with members and no
        // admin log is a log someone removed.
        return Err(Error::damaged(
            admin_ids.first().cloned().unwrap_or_else(|| "log".into()),
            "the admins' access log is missing, so no member's new keys are taken until it is \
             back: copy it from another site's replica",
        ));
    }
    let mut best: Option<(u64, String)> = None;
    let mut rule = false;
    let mut name_elsewhere = false;
    let mut name_bound: Option<bool> = None;
    for c in contents.iter().filter(|c| c.admin) {
        if !c.sound {
            return Err(Error::damaged(
                format!("log/{}", c.id),
                "the admins' access log is not sound (a fork or rollback), so no member's new \
                 keys can be checked against it",
            ));
        }
        let entries: Vec<(u64, Entry)> = c.accepted().map(|(i, e)| (i as u64, e)).collect();
        let witnessed: BTreeSet<u64> = entries
            .iter()
            .filter(|(i, e)| {
                let person = match e.person() {
                    PersonCheck::Signed(by) => Some(by),
                    _ => None,
                };
                c.is_witnessed_by(*i as usize, &trusted, person.as_ref())
            })
            .map(|(i, _)| *i)
            .collect();
        if let Some(found) = newest(&entries, &witnessed, &tag, &name) {
            rule = true;
            name_elsewhere |= found.name_elsewhere;
            if let Some(b) = found.name_bound {
                name_bound = Some(name_bound.unwrap_or(true) && b);
            }
            if let Some(f) = found.best {
                if best.as_ref().is_none_or(|b| f.0 > b.0) {
                    best = Some(f);
                }
            }
        }
    }
    Ok(rule.then_some(Found {
        best,
        name_elsewhere,
        name_bound,
    }))
}

/// In one admin log (entries in order, `witnessed` the indexes the quorum cosigned): `None`
/// when no split there names materials; else the newest material it authorizes for tenant
/// `tag` under the member name whose tag is `name`.
fn newest(
    entries: &[(u64, Entry)],
    witnessed: &BTreeSet<u64>,
    tag: &str,
    name: &str,
) -> Option<Found> {
    let persons = crate::log::persons::Persons::from_entries(entries.iter().map(|(i, e)| (*i, e)));
    let split_at = persons.restricted_from?;
    let (_, split) = entries.iter().find(|(i, _)| *i == split_at)?;
    let materials = split.data.get("materials")?.as_object()?;
    let approvals = split
        .data
        .get("setup")
        .and_then(|s| {
            serde_json::from_value::<coop_formats::recovery::RecoverySetup>(s.clone()).ok()
        })
        .map(|s| s.approvals() as usize)
        .filter(|a| *a > 0)?;
    let counted = |e: &Entry, i: u64| match e.person() {
        PersonCheck::Signed(by) if persons.counts(&by, i) => Some(by),
        _ => None,
    };
    // Which tenant the log binds the name to; a split that names no names (an older coop)
    // binds none, and then the material alone decides.
    let names = split
        .data
        .get("names")
        .and_then(|v| v.as_object())
        .map(|at_split| names(entries, split_at, materials, at_split, &counted));
    let name_bound = names
        .as_ref()
        .map(|n| n.get(name).map(String::as_str) == Some(tag));
    if names
        .as_ref()
        .and_then(|n| n.get(name))
        .is_some_and(|bound| bound != tag)
    {
        return Some(Found {
            best: None,
            name_elsewhere: true,
            name_bound,
        });
    }
    let mut best = materials.get(tag).and_then(parse);
    if names.as_ref().is_some_and(|n| n.get(name).is_none()) {
        best = None;
    }
    let mut used = BTreeSet::new();
    for (i, e) in entries.iter().filter(|(i, _)| *i > split_at) {
        if e.event != Event::KeyChange
            || e.object.as_deref() != Some(OBJECT)
            || e.tenant.as_deref() != Some(tag)
            || counted(e, *i).is_none()
        {
            continue;
        }
        let Some(found) = e.data.get("material").and_then(parse) else {
            continue;
        };
        let ok = match e.data.get("request").and_then(|v| v.as_str()) {
            // A member added after the split: her first material, under her name.
            None => {
                best.is_none()
                    && (names.is_none()
                        || e.data.get("name").and_then(|v| v.as_str()) == Some(name))
            }
            // The end of a recovery: by the person who asked, once it was approved, once.
            Some(r) => {
                approved(entries, witnessed, &counted, tag, r, *i, approvals)
                    .is_some_and(|asker| counted(e, *i) == Some(asker))
                    && used.insert(r.to_string())
            }
        };
        if ok && best.as_ref().is_none_or(|b| found.0 > b.0) {
            best = Some(found);
        }
    }
    Some(Found {
        best,
        name_elsewhere: false,
        name_bound,
    })
}

/// Member name tag → the tenant (keyed tag) one admin log binds it to: the split's
/// `data.names`, then the first material logged for each tenant added after the split, by a
/// counted person. A name is bound once: a later tenant under a bound name gets no binding.
fn names(
    entries: &[(u64, Entry)],
    split_at: u64,
    materials: &serde_json::Map<String, serde_json::Value>,
    at_split: &serde_json::Map<String, serde_json::Value>,
    counted: &impl Fn(&Entry, u64) -> Option<[u8; 32]>,
) -> std::collections::BTreeMap<String, String> {
    let mut by_name = std::collections::BTreeMap::new();
    let mut bound: BTreeSet<&str> = materials.keys().map(String::as_str).collect();
    for (tag, n) in at_split {
        if let Some(n) = n.as_str() {
            by_name.entry(n.to_string()).or_insert_with(|| tag.clone());
        }
    }
    for (i, e) in entries.iter().filter(|(i, _)| *i > split_at) {
        let Some(tag) = e.tenant.as_deref() else {
            continue;
        };
        if e.event != Event::KeyChange
            || e.object.as_deref() != Some(OBJECT)
            || e.data.get("request").is_some()
            || e.data.get("material").and_then(parse).is_none()
            || counted(e, *i).is_none()
            || !bound.insert(tag)
        {
            continue;
        }
        if let Some(n) = e.data.get("name").and_then(|v| v.as_str()) {
            by_name
                .entry(n.to_string())
                .or_insert_with(|| tag.to_string());
        }
    }
    by_name
}

fn parse(v: &serde_json::Value) -> Option<(u64, String)> {
    Some((
        v.get("generation")?.as_u64()?,
        v.get("digest")?.as_str()?.to_string(),
    ))
}

/// The person who asked, when request `id` (before entry `before`) asked for tenant `tag`
/// by a counted person and has `approvals` witnessed releases (before `before`) by distinct
/// counted persons other than the asker.
fn approved(
    entries: &[(u64, Entry)],
    witnessed: &BTreeSet<u64>,
    counted: &impl Fn(&Entry, u64) -> Option<[u8; 32]>,
    tag: &str,
    id: &str,
    before: u64,
    approvals: usize,
) -> Option<[u8; 32]> {
    let about = |e: &Entry, ev: Event| {
        e.event == ev && e.object.as_deref() == Some(id) && e.tenant.as_deref() == Some(tag)
    };
    let asker = entries
        .iter()
        .filter(|(i, _)| *i < before)
        .find(|(_, e)| about(e, Event::RecoveryRequest))
        .and_then(|(i, e)| counted(e, *i))?;
    let by: BTreeSet<[u8; 32]> = entries
        .iter()
        .filter(|(i, e)| *i < before && witnessed.contains(i) && about(e, Event::RecoveryRelease))
        .filter_map(|(i, e)| counted(e, *i))
        .filter(|p| *p != asker)
        .collect();
    (by.len() >= approvals).then_some(asker)
}
