//! Re-splitting the recovery shares when an admin person joins or leaves after the split
//! (SPEC 25.5), without anyone reading member data and without any identity being whole.
//!
//! Each member's recovery identity stays; its shares change. Every old holder who counts
//! splits its own share of each identity again with the same threshold, one sub-share per new
//! holder ([`coop_formats::recovery::deal`]). Once `threshold` old holders have dealt (the
//! first ones in the admins' log), each new holder combines the sub-shares addressed to it
//! into its new share ([`coop_formats::recovery::combine_dealt`]); when every new holder has,
//! the registry switches to the new setup and the old epoch's shares are deleted. The old and
//! the new shares lie on different polynomials: a retired admin's old share combines with no
//! new one.
//!
//! What constrains whom: a dealer deals only to the holders the admins' log vouches for (the
//! persons who count now, by the identity the split or a completed addition names), so one
//! admin who writes a plan naming a second identity of hers gets no honest admin's deal. Deal
//! and combination files are checked against digests in entries signed by counted persons,
//! so a storage site that swaps one is caught. A dealer who deals garbage makes the new shares
//! useless (a denial, not a read); the member's own keys still read her data.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
use crate::log::{self, Activation};
use crate::repo::Repo;
use crate::shares::{clean, own_share};
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::{self as rec, DealFile, RecoverySetup, Reshare};
use coop_formats::registry::Registry;
use coop_formats::tlog::{Entry, Event, PersonCheck};
use std::collections::BTreeMap;
use zeroize::Zeroize;

/// `object` of the entry that starts a re-split.
pub const START: &str = "recovery-reshare";
/// `object` of an old holder's deal.
pub const DEAL: &str = "recovery-deal";
/// `object` of a new holder's combination.
pub const COMBINED: &str = "recovery-combined";
/// `object` of the entry that ends a re-split.
pub const DONE: &str = "recovery-reshared";

/// The largest deal or combination file read (a sub-share per member: a few hundred bytes
/// each).
const MAX_FILE: usize = 64 << 20;

fn deal_path(epoch: &str, dealer: &str, holder: &str) -> String {
    format!("reshare/{epoch}/deal/{}/{}", clean(dealer), clean(holder))
}

fn combined_path(epoch: &str, holder: &str) -> String {
    format!("reshare/{epoch}/combined/{}", clean(holder))
}

/// What a new holder's combination file holds (in the clear: commitments only).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Combined {
    epoch: String,
    holder: String,
    /// New slot to the BLAKE3 commitment of this holder's new share.
    commitments: BTreeMap<String, String>,
}

/// Starts a re-split of the shares to the admin persons who count now (after the change of
/// admins the caller is carrying out in `reg`), replacing one that was running. Returns the
/// new epoch, or `None` when there is no split, or when the persons left are fewer than the
/// shares a recovery combines (the old shares then stay in force).
pub(crate) fn start(
    repo: &Repo,
    coop: &TenantKeys,
    reg: &mut Registry,
    persons: &Activation,
) -> Result<Option<String>> {
    let Some(from) = reg.recovery_setup.clone() else {
        return Ok(None);
    };
    // Only a person who counts starts one the log runs.
    let me = coop.person.as_ref().map(|k| k.verifying_key().to_bytes());
    if !me.is_some_and(|k| persons.person_counts(&k)) {
        return Ok(None);
    }
    // The admin persons who count now, each under the identity the log names for them (or,
    // for a split that named none, one it vouches for).
    let vouched = persons.share_recipients();
    let admins: Vec<&coop_formats::registry::Admin> = reg
        .admins
        .iter()
        .filter(|a| a.removed.is_none() && persons.person_counts(&a.key))
        .filter(|a| match persons.recipient_of(&a.key) {
            Some(r) => r == a.recipient,
            None => vouched.contains(&a.recipient),
        })
        .collect();
    if admins.len() < from.threshold as usize || admins.len() > 255 {
        return Ok(None);
    }
    let holders: Vec<rec::ShareHolder> = admins
        .iter()
        .enumerate()
        .map(|(i, a)| rec::ShareHolder {
            name: a.name.clone(),
            recipient: a.recipient.clone(),
            index: i as u8 + 1,
        })
        .collect();
    let setup = RecoverySetup {
        epoch: hex::encode(coop_formats::random_bytes::<8>()),
        threshold: from.threshold,
        holders,
        created: crate::now_rfc3339(),
    };
    let slots = reg
        .members
        .iter()
        .filter_map(|m| m.recovery.as_ref())
        .filter(|r| r.epoch == from.epoch)
        .map(|r| {
            (
                r.slot.clone(),
                hex::encode(coop_formats::random_bytes::<8>()),
            )
        })
        .collect();
    let plan = Reshare {
        from: from.epoch.clone(),
        setup: setup.clone(),
        slots,
        direct: BTreeMap::new(),
    };
    plan.check().map_err(|e| Error::invalid(e.to_string()))?;
    if !persons.vouches(&setup) {
        // The registry's admins and the log's persons disagree: no re-split the log would
        // vouch for can be made from this registry.
        return Ok(None);
    }
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(START.into()),
    );
    e.data.insert("from".into(), from.epoch.into());
    e.data.insert(
        "setup".into(),
        serde_json::to_value(&setup).expect("serializes"),
    );
    log::append(repo, &actor, &[e])?;
    reg.recovery_next = Some(plan);
    Ok(Some(setup.epoch))
}

/// Where a re-split stands, and what one run of [`run`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Progress {
    pub from: String,
    pub epoch: String,
    pub holders: Vec<String>,
    /// Old holders whose deals count, in log order (the first `threshold`).
    pub dealt: Vec<String>,
    pub dealers_needed: usize,
    /// New holders who combined their shares.
    pub combined: Vec<String>,
    /// What this run did: `dealt`, `combined`, `finished`.
    pub did: Vec<String>,
    /// The registry now names the new setup and the old shares are gone.
    pub finished: bool,
}

/// A deal or combination entry, as the log has it.
struct Logged {
    /// The old holder who dealt, or the new holder who combined.
    name: String,
    /// New holder name to file digest (deal), or the one digest under the holder's name.
    digests: BTreeMap<String, String>,
    /// A quorum of witnesses cosigned it.
    witnessed: bool,
}

/// The steps of one re-split the log holds, each the first per holder name, signed by a
/// counted person whose identity (as the log names it; the registry's only for a split that
/// named none) is that holder's recipient: deals by old holders, combinations by new ones.
struct Steps {
    deals: Vec<Logged>,
    combined: Vec<Logged>,
}

impl Steps {
    /// The dealers: the first `threshold` witnessed deals in log order (witnessed entries are
    /// a prefix of the log, so every admin sees the same ones).
    fn dealers(&self, threshold: u8) -> Vec<&Logged> {
        self.deals
            .iter()
            .filter(|d| d.witnessed)
            .take(threshold as usize)
            .collect()
    }

    fn witnessed_combined(&self) -> Vec<&Logged> {
        self.combined.iter().filter(|c| c.witnessed).collect()
    }
}

fn logged(
    repo: &Repo,
    trusted: &log::Trusted,
    reg: &Registry,
    from: &RecoverySetup,
    plan: &Reshare,
) -> Result<Steps> {
    let persons = trusted.activation.clone().unwrap_or_default();
    let epoch = plan.setup.epoch.as_str();
    let found = log::admin_entries(repo, trusted, |e| {
        e.event == Event::KeyChange
            && matches!(e.object.as_deref(), Some(DEAL | COMBINED))
            && e.data.get("epoch").and_then(|v| v.as_str()) == Some(epoch)
    })?;
    let mut steps = Steps {
        deals: Vec::new(),
        combined: Vec::new(),
    };
    for f in found {
        let PersonCheck::Signed(by) = f.entry.person() else {
            continue;
        };
        if !persons.person_counts(&by) {
            continue;
        }
        let name = text(&f.entry, "holder");
        let digests: BTreeMap<String, String> = f
            .entry
            .data
            .get("digests")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default();
        let signer = persons
            .recipient_of(&by)
            .or_else(|| reg.admin_by_key(&by).map(|a| a.recipient.as_str()));
        let (holders, list) = if f.entry.object.as_deref() == Some(DEAL) {
            if text(&f.entry, "from") != plan.from {
                continue;
            }
            (&from.holders, &mut steps.deals)
        } else {
            (&plan.setup.holders, &mut steps.combined)
        };
        let holds = holders
            .iter()
            .any(|h| h.name == name && Some(h.recipient.as_str()) == signer);
        if holds && !list.iter().any(|d| d.name == name) {
            list.push(Logged {
                name,
                digests,
                witnessed: f.witnessed,
            });
        }
    }
    Ok(steps)
}

fn text(e: &Entry, field: &str) -> String {
    e.data
        .get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Refuses a plan the admins' log does not run: it must re-split the setup the log has in
/// force, and its setup must be the log's running re-split (the newest one a counted person
/// started, giving shares to exactly the identities the log vouched for then).
fn vouch(plan: &Reshare, from: &RecoverySetup, persons: &Activation) -> Result<()> {
    plan.check()
        .and_then(|_| from.check())
        .map_err(|e| Error::damaged("the registry's recovery setup", e.to_string()))?;
    crate::shares::vouched(persons, from)?;
    if plan.from != from.epoch || !persons.setup_running(&plan.setup) {
        return Err(Error::AccessDenied {
            what: format!(
                "the re-split of the recovery shares in the registry (epoch {}) is not the one \
                 the admins' log runs (the newest started by an admin person, giving shares to \
                 exactly the admin persons' identities then); this admin deals and combines \
                 nothing for it. Look at `coop log show` and `coop admin list` with the other \
                 admins",
                plan.setup.epoch
            ),
        });
    }
    Ok(())
}

/// Where the running re-split stands (`None`: none runs), read only.
pub fn status(repo: &Repo, coop: &TenantKeys) -> Result<Option<Progress>> {
    let reg = crate::registry::load(repo, coop)?.registry;
    let (Some(from), Some(plan)) = (reg.recovery_setup.as_ref(), reg.recovery_next.as_ref()) else {
        return Ok(None);
    };
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let steps = logged(repo, &trusted, &reg, from, plan)?;
    Ok(Some(progress(from, plan, &steps, &[], false)))
}

fn progress(
    from: &RecoverySetup,
    plan: &Reshare,
    steps: &Steps,
    did: &[String],
    finished: bool,
) -> Progress {
    Progress {
        from: plan.from.clone(),
        epoch: plan.setup.epoch.clone(),
        holders: plan.setup.holders.iter().map(|h| h.name.clone()).collect(),
        dealt: steps
            .dealers(from.threshold)
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        dealers_needed: from.threshold as usize,
        combined: steps
            .witnessed_combined()
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        did: did.to_vec(),
        finished,
    }
}

/// Whether the admin persons' identities the log vouches for are not the holders of the
/// setup in force (an admin change completed and no re-split started, or it was replaced).
fn needs_reshare(from: &RecoverySetup, persons: &Activation) -> bool {
    let holders: std::collections::BTreeSet<String> =
        from.holders.iter().map(|h| h.recipient.clone()).collect();
    persons.person_approvals().is_some() && holders != persons.share_recipients()
}

/// `coop recovery reshare`: does this admin's part of the running re-split (deal as an old
/// holder, combine as a new one) and ends it once every new holder has combined. Where an
/// admin change completed and no re-split the log runs is in the registry, it starts one.
pub fn run(repo: &Repo, access: &Access) -> Result<Progress> {
    let Access::Identity(ids, _) = access else {
        return Err(Error::AccessDenied {
            what: "a re-split of the recovery shares needs an admin identity, not a writer key"
                .into(),
        });
    };
    let coop = crate::tenant::keys(repo, access, "coop")?;
    let mut did: Vec<String> = Vec::new();
    loop {
        let mut loaded = crate::registry::load_for_change(repo, &coop)?;
        let Some(from) = loaded.registry.recovery_setup.clone() else {
            return Err(Error::NotFound {
                what: "a recovery split (`coop recovery init`)".into(),
            });
        };
        let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
        let persons = trusted.activation.clone().unwrap_or_default();
        let plan = loaded.registry.recovery_next.clone();
        // The log ended this re-split, the registry did not follow yet (a crash between).
        if let Some(plan) = plan
            .as_ref()
            .filter(|p| p.from == from.epoch && persons.setup_in_force(&p.setup))
        {
            let steps = logged(repo, &trusted, &loaded.registry, &from, plan)?;
            let combined: Vec<&Logged> = steps.combined.iter().collect();
            switch(repo, &coop, loaded, &from, plan, &combined)?;
            did.push("finished".into());
            let mut p = progress(&from, plan, &steps, &did, true);
            p.combined = p.holders.clone();
            return Ok(p);
        }
        let runs = plan
            .as_ref()
            .is_some_and(|p| p.from == from.epoch && persons.setup_running(&p.setup));
        if !runs {
            // None runs, or the registry's is not the log's: a counted person starts one where
            // the persons changed.
            let startable = persons.setup_in_force(&from) && needs_reshare(&from, &persons);
            if startable
                && !did.iter().any(|d| d == "started")
                && start(repo, &coop, &mut loaded.registry, &persons)?.is_some()
            {
                crate::registry::save(repo, &coop, &mut loaded)?;
                did.push("started".into());
                continue;
            }
            if let Some(plan) = &plan {
                vouch(plan, &from, &persons)?;
            }
            // Old shares go only where the registry's setup is the log's.
            crate::shares::vouched(&persons, &from)?;
            clean_old(repo, &coop, &loaded.registry)?;
            return Err(Error::NotFound {
                what: "a re-split of the recovery shares (one starts when an admin person joins \
                       or leaves after the split)"
                    .into(),
            });
        }
        let plan = plan.expect("runs");
        vouch(&plan, &from, &persons)?;
        let reg = &loaded.registry;
        let steps = logged(repo, &trusted, reg, &from, &plan)?;
        let progress = |did: &[String], finished| progress(&from, &plan, &steps, did, finished);
        // Identities to re-split from old shares; with none (no member yet, or every one
        // split straight into the new setup) nothing is dealt, and the holders combine nothing.
        let dealing = reg
            .members
            .iter()
            .filter_map(|m| m.recovery.as_ref())
            .filter(|r| r.epoch == from.epoch)
            .any(|r| {
                plan.slots
                    .get(&r.slot)
                    .is_none_or(|s| !plan.direct.contains_key(s))
            });
        let dealers = steps.dealers(from.threshold);
        if dealing && dealers.len() < from.threshold as usize {
            if did.iter().any(|d| d == "dealt")
                || !deal(repo, &coop, ids, reg, &from, &plan, &steps.deals)?
            {
                return Ok(progress(&did, false));
            }
            did.push("dealt".into());
            continue;
        }
        if steps.witnessed_combined().len() < plan.setup.holders.len() {
            let me = me(&coop, &persons, reg, &plan);
            if did.iter().any(|d| d == "combined")
                || !combine(
                    repo,
                    &coop,
                    ids,
                    me,
                    &from,
                    &plan,
                    &dealers,
                    &steps.combined,
                )?
            {
                return Ok(progress(&did, false));
            }
            did.push("combined".into());
            continue;
        }
        finish(
            repo,
            &coop,
            loaded,
            &from,
            &plan,
            &steps.witnessed_combined(),
        )?;
        did.push("finished".into());
        let mut p = progress(&did, true);
        p.combined = p.holders.clone();
        return Ok(p);
    }
}

/// The new holder this admin is: the one whose recipient is the identity the log names for
/// her person key (the registry's, for a split that named none).
fn me<'a>(
    coop: &TenantKeys,
    persons: &Activation,
    reg: &Registry,
    plan: &'a Reshare,
) -> Option<&'a rec::ShareHolder> {
    let key = coop.person.as_ref()?.verifying_key().to_bytes();
    let recipient = persons
        .recipient_of(&key)
        .or_else(|| reg.admin_by_key(&key).map(|a| a.recipient.as_str()))?;
    plan.setup.holders.iter().find(|h| h.recipient == recipient)
}

/// An old holder's deal: its share of every identity split again for the new holders, one
/// file per new holder (encrypted to it), their digests logged. `false`: this admin holds no
/// old share, or dealt already.
fn deal(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    reg: &Registry,
    from: &RecoverySetup,
    plan: &Reshare,
    deals: &[Logged],
) -> Result<bool> {
    let mut files: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); plan.setup.holders.len()];
    let mut me: Option<String> = None;
    for m in &reg.members {
        let Some(r) = m.recovery.as_ref().filter(|r| r.epoch == from.epoch) else {
            continue;
        };
        let new_slot = plan.slots.get(&r.slot).ok_or_else(|| {
            Error::invalid(format!(
                "member {} is not in the re-split (epoch {}); an admin change that completes \
                 starts a new one",
                m.name, plan.setup.epoch
            ))
        })?;
        if plan.direct.contains_key(new_slot) {
            continue;
        }
        let Some((h, mut share)) = own_share(repo, from, r, ids)? else {
            if me.is_some() {
                return Err(Error::NotFound {
                    what: format!("your share of {}'s recovery identity", m.name),
                });
            }
            return Ok(false);
        };
        if deals.iter().any(|d| d.name == h.name) {
            share.zeroize();
            return Ok(false);
        }
        me = Some(h.name.clone());
        let subs = rec::deal(&share, &plan.setup);
        share.zeroize();
        let mut subs = subs.map_err(|e| Error::invalid(e.to_string()))?;
        for (file, sub) in files.iter_mut().zip(&mut subs) {
            file.insert(new_slot.clone(), hex::encode(&*sub));
            sub.zeroize();
        }
    }
    let Some(dealer) = me else {
        return Ok(false);
    };
    let mut digests = serde_json::Map::new();
    for (h, subshares) in plan.setup.holders.iter().zip(files) {
        let file = DealFile {
            epoch: plan.setup.epoch.clone(),
            from: plan.from.clone(),
            dealer: dealer.clone(),
            holder: h.name.clone(),
            subshares,
        };
        let mut json = serde_json::to_vec(&file).expect("serializes");
        drop(file);
        digests.insert(
            h.name.clone(),
            blake3::hash(&json).to_hex().to_string().into(),
        );
        let ct = seal(&h.recipient, &h.name, &json);
        json.zeroize();
        repo.store
            .put_replace(&deal_path(&plan.setup.epoch, &dealer, &h.name), ct?)?;
    }
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(DEAL.into()),
    );
    e.data
        .insert("epoch".into(), plan.setup.epoch.clone().into());
    e.data.insert("from".into(), plan.from.clone().into());
    e.data.insert("holder".into(), dealer.into());
    e.data.insert("digests".into(), digests.into());
    log::append(repo, &actor, &[e])?;
    Ok(true)
}

/// `plain` age-encrypted to holder `name`'s `recipient`.
fn seal(recipient: &str, name: &str, plain: &[u8]) -> Result<Vec<u8>> {
    let to = [crypt::parse_recipient(recipient)
        .map_err(|e| Error::invalid(format!("admin {name}: {e}")))?];
    let mut ct = Vec::new();
    crypt::encrypt_to(&to, &[plain], &mut ct)
        .map_err(|e| Error::crypto("encrypting a share", e))?;
    Ok(ct)
}

/// A new holder's combination: the sub-shares the counted dealers addressed to it, each file
/// checked against its logged digest, combined into its new share of every identity; the
/// shares stored for it, their commitments published and their digest logged. `false`: this
/// admin is no new holder, or combined already.
#[allow(clippy::too_many_arguments)]
fn combine(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    me: Option<&rec::ShareHolder>,
    from: &RecoverySetup,
    plan: &Reshare,
    dealers: &[&Logged],
    combined: &[Logged],
) -> Result<bool> {
    let epoch = &plan.setup.epoch;
    let Some(me) = me.cloned() else {
        return Ok(false);
    };
    // Logged already (witnessed or not): a combination is the same every time, once is enough.
    if combined.iter().any(|c| c.name == me.name) {
        return Ok(false);
    }
    let mut dealt: Vec<(u8, DealFile)> = Vec::new();
    for d in dealers {
        let path = deal_path(epoch, &d.name, &me.name);
        let ct = repo.store.get(&path).map_err(|e| {
            if e.is_not_found() {
                Error::NotFound {
                    what: format!("{path}, {}'s deal for you", d.name),
                }
            } else {
                e.into()
            }
        })?;
        let mut plain =
            crypt::decrypt(ids, &ct, MAX_FILE).map_err(|e| Error::damaged(&path, e.to_string()))?;
        let digest = blake3::hash(&plain).to_hex().to_string();
        let file: std::result::Result<DealFile, _> = serde_json::from_slice(&plain);
        plain.zeroize();
        if d.digests.get(&me.name) != Some(&digest) {
            return Err(Error::damaged(
                &path,
                format!(
                    "{}'s deal for you is not the one {} logged (swapped or damaged at this \
                     site); nothing was combined",
                    d.name, d.name
                ),
            ));
        }
        let file = file.map_err(|e| Error::damaged(&path, e.to_string()))?;
        if file.epoch != *epoch
            || file.from != plan.from
            || file.dealer != d.name
            || file.holder != me.name
        {
            return Err(Error::damaged(
                &path,
                "the deal names another re-split or holder",
            ));
        }
        let x = from
            .holders
            .iter()
            .find(|h| h.name == d.name)
            .map(|h| h.index)
            .ok_or_else(|| Error::damaged(&path, "the dealer holds no share"))?;
        dealt.push((x, file));
    }
    let mut commitments = BTreeMap::new();
    let dealing = !dealt.is_empty();
    for new_slot in plan
        .slots
        .values()
        .filter(|s| dealing && !plan.direct.contains_key(*s))
    {
        let mut subs = Vec::new();
        for (x, f) in &dealt {
            let Some(sub) = f.subshares.get(new_slot).and_then(|s| hex::decode(s).ok()) else {
                break;
            };
            subs.push((*x, sub));
        }
        if subs.len() < dealt.len() {
            continue;
        }
        let share = rec::combine_dealt(from.threshold, me.index, &subs);
        for (_, s) in &mut subs {
            s.zeroize();
        }
        let mut share =
            share.map_err(|e| Error::damaged(format!("re-split {epoch}"), e.to_string()))?;
        let stored = crate::shares::put_share(repo, &plan.setup, new_slot, &me, &share);
        if stored.is_err() {
            share.zeroize();
        }
        stored?;
        commitments.insert(new_slot.clone(), rec::commitment(&share));
        share.zeroize();
    }
    let body = serde_json::to_vec(&Combined {
        epoch: epoch.clone(),
        holder: me.name.clone(),
        commitments,
    })
    .expect("serializes");
    let digest = blake3::hash(&body).to_hex().to_string();
    repo.store
        .put_replace(&combined_path(epoch, &me.name), body)?;
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(COMBINED.into()),
    );
    e.data.insert("epoch".into(), epoch.clone().into());
    e.data.insert("holder".into(), me.name.clone().into());
    let mut digests = serde_json::Map::new();
    digests.insert(me.name.clone(), digest.into());
    e.data.insert("digests".into(), digests.into());
    log::append(repo, &actor, &[e])?;
    Ok(true)
}

/// Every new holder combined: the end is logged (the log then has the new setup in force and
/// retires the old one), then the registry follows ([`switch`]).
fn finish(
    repo: &Repo,
    coop: &TenantKeys,
    loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    combined: &[&Logged],
) -> Result<()> {
    // Every combination checked before the log says the re-split ended.
    commitments(repo, plan, combined)?;
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(DONE.into()),
    );
    e.data.insert("from".into(), from.epoch.clone().into());
    e.data
        .insert("epoch".into(), plan.setup.epoch.clone().into());
    log::append(repo, &actor, &[e])?;
    crate::fault::point("reshare:after-log");
    // The registry follows only what the log now has in force.
    let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
        .activation
        .unwrap_or_default();
    if !persons.setup_in_force(&plan.setup) {
        return Err(Error::AccessDenied {
            what: format!(
                "the admins' log does not count the end of re-split {} (a combination or its \
                 start is not the one it counts); the registry keeps the setup in force. Look \
                 at `coop log show` with the other admins",
                plan.setup.epoch
            ),
        });
    }
    switch(repo, coop, loaded, from, plan, combined)
}

/// Each new holder's commitments, in the new holders' order, each file checked against the
/// digest its holder logged (empty when nothing was dealt).
fn commitments(
    repo: &Repo,
    plan: &Reshare,
    combined: &[&Logged],
) -> Result<Vec<BTreeMap<String, String>>> {
    let epoch = &plan.setup.epoch;
    let mut by_holder = Vec::new();
    for h in &plan.setup.holders {
        let Some(c) = combined.iter().find(|c| c.name == h.name) else {
            return Err(Error::NotFound {
                what: format!("{}'s combination in re-split {epoch}", h.name),
            });
        };
        let path = combined_path(epoch, &h.name);
        let body = repo.store.get(&path)?;
        if c.digests.get(&h.name) != Some(&blake3::hash(&body).to_hex().to_string()) {
            return Err(Error::damaged(
                &path,
                format!(
                    "{}'s commitments are not the ones logged (swapped or damaged)",
                    h.name
                ),
            ));
        }
        let file: Combined =
            serde_json::from_slice(&body).map_err(|e| Error::damaged(&path, e.to_string()))?;
        by_holder.push(file.commitments);
    }
    Ok(by_holder)
}

/// The registry follows a re-split the log ended: it names the new setup and each member's
/// new slot and commitments; the old epoch's shares and the re-split's files go (a logged
/// deletion).
fn switch(
    repo: &Repo,
    coop: &TenantKeys,
    mut loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    combined: &[&Logged],
) -> Result<()> {
    let epoch = &plan.setup.epoch;
    let by_holder = commitments(repo, plan, combined)?;
    for m in loaded.registry.members.iter_mut() {
        let Some(r) = m.recovery.as_mut().filter(|r| r.epoch == from.epoch) else {
            continue;
        };
        let new_slot = plan
            .slots
            .get(&r.slot)
            .ok_or_else(|| Error::invalid(format!("member {} is not in the re-split", m.name)))?;
        let commitments = match plan.direct.get(new_slot) {
            Some(c) => c.clone(),
            None => by_holder
                .iter()
                .map(|c| c.get(new_slot).cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Error::NotFound {
                    what: format!(
                        "every new holder's share of {}'s recovery identity (a dealer left it \
                         out); an admin change that completes starts a new re-split",
                        m.name
                    ),
                })?,
        };
        r.epoch = epoch.clone();
        r.slot = new_slot.clone();
        r.commitments = commitments;
    }
    loaded.registry.recovery_setup = Some(plan.setup.clone());
    loaded.registry.recovery_next = None;
    crate::registry::save(repo, coop, &mut loaded)?;
    clean_old(repo, coop, &loaded.registry)
}

/// Deletes the shares of every epoch but the registry's current one and a running re-split's,
/// and the files of finished re-splits, with a logged deletion.
fn clean_old(repo: &Repo, coop: &TenantKeys, reg: &Registry) -> Result<()> {
    let Some(current) = reg.recovery_setup.as_ref().map(|s| s.epoch.as_str()) else {
        return Ok(());
    };
    let running = reg.recovery_next.as_ref().map(|p| p.setup.epoch.as_str());
    let mut paths = Vec::new();
    for prefix in ["recovery", "reshare"] {
        for l in repo.store.list(prefix)? {
            let epoch = l.path.split('/').nth(1).unwrap_or_default();
            // Shares of the current setup and of a running re-split stay; a re-split's
            // files only while it runs.
            let keep = Some(epoch) == running || (prefix == "recovery" && epoch == current);
            if !keep && rec::is_hex16(epoch) {
                paths.push(l.path);
            }
        }
    }
    if paths.is_empty() {
        return Ok(());
    }
    log::record_deletions(repo, coop, Event::Delete, &paths)?;
    for p in &paths {
        repo.store.delete(p)?;
    }
    Ok(())
}
