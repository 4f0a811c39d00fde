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
    let Some(best) = authorized(repo, coop, m)? else {
        return Ok(Verdict::NoRule);
    };
    let mine = digest(m);
    Ok(match best {
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
    Ok(matches!(authorized(repo, coop, m)?, Some(None)))
}

/// The newest (generation, digest) the admins' log authorizes for member `m`: `None` when no
/// split names materials (no rule), `Some(None)` when it names none for her.
#[allow(clippy::type_complexity)]
fn authorized(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<Option<Option<(u64, String)>>> {
    let tag = crate::log::tenant_tag(&super::member_writer_keys(coop, m)?);
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
            .filter(|(i, _)| c.is_witnessed(*i as usize, trusted.quorum))
            .map(|(i, _)| *i)
            .collect();
        if let Some(found) = newest(&entries, &witnessed, &tag) {
            rule = true;
            if let Some(f) = found {
                if best.as_ref().is_none_or(|b| f.0 > b.0) {
                    best = Some(f);
                }
            }
        }
    }
    Ok(rule.then_some(best))
}

/// In one admin log (entries in order, `witnessed` the indexes the quorum cosigned): `None`
/// when no split there names materials; else the newest (generation, digest) it authorizes
/// for tenant `tag`, if any.
fn newest(
    entries: &[(u64, Entry)],
    witnessed: &BTreeSet<u64>,
    tag: &str,
) -> Option<Option<(u64, String)>> {
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
    let mut best = materials.get(tag).and_then(parse);
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
            // A member added after the split: her first material.
            None => best.is_none(),
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
    Some(best)
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
