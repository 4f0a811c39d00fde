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
}

/// The deal and combination entries of the re-split to `plan`, signed by counted persons,
/// the first per name. A deal counts only by an old holder; a combination only by the person
/// the registry names with that holder's identity.
fn logged(
    repo: &Repo,
    trusted: &log::Trusted,
    reg: &Registry,
    from: &RecoverySetup,
    plan: &Reshare,
) -> Result<(Vec<Logged>, Vec<Logged>)> {
    let persons = trusted.activation.clone().unwrap_or_default();
    let epoch = plan.setup.epoch.as_str();
    let found = log::admin_entries(repo, trusted, |e| {
        e.event == Event::KeyChange
            && matches!(e.object.as_deref(), Some(DEAL | COMBINED))
            && e.data.get("epoch").and_then(|v| v.as_str()) == Some(epoch)
    })?;
    let (mut deals, mut combined) = (Vec::<Logged>::new(), Vec::<Logged>::new());
    for f in found {
        let PersonCheck::Signed(by) = f.entry.person() else {
            continue;
        };
        // Only witnessed entries of counted persons: every admin sees the same dealers, and
        // the old shares go only once every combination is in the witnessed log.
        if !f.witnessed || !persons.person_counts(&by) {
            continue;
        }
        let name = text(&f.entry, "holder");
        let digests: BTreeMap<String, String> = f
            .entry
            .data
            .get("digests")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
            .unwrap_or_default();
        // Who signed, by the identity the log names for them (the registry's only where the
        // log names none: a split made before persons' identities were logged).
        let signer = persons
            .recipient_of(&by)
            .or_else(|| reg.admin_by_key(&by).map(|a| a.recipient.as_str()));
        if f.entry.object.as_deref() == Some(DEAL) {
            let holds = from
                .holders
                .iter()
                .any(|h| h.name == name && Some(h.recipient.as_str()) == signer);
            if holds && text(&f.entry, "from") == plan.from && !deals.iter().any(|d| d.name == name)
            {
                deals.push(Logged { name, digests });
            }
        } else {
            let holds = plan
                .setup
                .holders
                .iter()
                .any(|h| h.name == name && Some(h.recipient.as_str()) == signer);
            if holds && !combined.iter().any(|d| d.name == name) {
                combined.push(Logged { name, digests });
            }
        }
    }
    deals.truncate(from.threshold as usize);
    Ok((deals, combined))
}

fn text(e: &Entry, field: &str) -> String {
    e.data
        .get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Refuses a plan the admins' log does not vouch for: its setup must be one a counted
/// person logged when it gave shares to exactly the identities the log vouched for then (at
/// the split's threshold), and it must re-split the setup in force, itself vouched for and
/// not retired.
fn vouch(plan: &Reshare, from: &RecoverySetup, persons: &Activation) -> Result<()> {
    plan.check()
        .and_then(|_| from.check())
        .map_err(|e| Error::damaged("the registry's recovery setup", e.to_string()))?;
    let refuse = |why: String| {
        Err(Error::AccessDenied {
            what: format!(
                "the re-split of the recovery shares in the registry (epoch {}) {why}; this \
                 admin deals and combines nothing for it. Look at `coop log show` and `coop \
                 admin list` with the other admins",
                plan.setup.epoch
            ),
        })
    };
    if plan.from != from.epoch {
        return refuse(format!(
            "re-splits epoch {}, not the current {}",
            plan.from, from.epoch
        ));
    }
    if !persons.vouched_setup(from) {
        return refuse(format!(
            "re-splits epoch {}, which the admins' log does not vouch for or retired",
            from.epoch
        ));
    }
    if !persons.vouched_setup(&plan.setup) {
        return refuse(
            "is not one the admins' log vouches for: its holders must be exactly the identities \
             of the admin persons who counted when it was logged, at the split's threshold"
                .into(),
        );
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
    let (deals, combined) = logged(repo, &trusted, &reg, from, plan)?;
    Ok(Some(progress(from, plan, &deals, &combined, &[], false)))
}

fn progress(
    from: &RecoverySetup,
    plan: &Reshare,
    deals: &[Logged],
    combined: &[Logged],
    did: &[String],
    finished: bool,
) -> Progress {
    let names = |l: &[Logged]| l.iter().map(|d| d.name.clone()).collect();
    Progress {
        from: plan.from.clone(),
        epoch: plan.setup.epoch.clone(),
        holders: plan.setup.holders.iter().map(|h| h.name.clone()).collect(),
        dealt: names(deals),
        dealers_needed: from.threshold as usize,
        combined: names(combined),
        did: did.to_vec(),
        finished,
    }
}

/// `coop recovery reshare`: does this admin's part of the running re-split (deal as an old
/// holder, combine as a new one) and finishes it once every new holder has combined.
pub fn run(repo: &Repo, access: &Access) -> Result<Progress> {
    let Access::Identity(ids, _) = access else {
        return Err(Error::AccessDenied {
            what: "a re-split of the recovery shares needs an admin identity, not a writer key"
                .into(),
        });
    };
    let coop = crate::tenant::keys(repo, access, "coop")?;
    let mut did = Vec::new();
    loop {
        let loaded = crate::registry::load_for_change(repo, &coop)?;
        let reg = &loaded.registry;
        let (Some(from), Some(plan)) = (reg.recovery_setup.clone(), reg.recovery_next.clone())
        else {
            clean_old(repo, &coop, reg)?;
            return Err(Error::NotFound {
                what: "a re-split of the recovery shares (one starts when an admin person joins \
                       or leaves after the split)"
                    .into(),
            });
        };
        let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
        let persons = trusted.activation.clone().unwrap_or_default();
        vouch(&plan, &from, &persons)?;
        let (deals, combined) = logged(repo, &trusted, reg, &from, &plan)?;
        let progress =
            |did: &[String], finished| progress(&from, &plan, &deals, &combined, did, finished);
        // Identities to re-split from old shares; with none (no member yet, or every one
        // split straight into the new setup) the re-split ends at once.
        let dealing = plan.slots.values().any(|s| !plan.direct.contains_key(s));
        if dealing && deals.len() < from.threshold as usize {
            if !did.is_empty() || !deal(repo, &coop, ids, reg, &from, &plan, &deals)? {
                return Ok(progress(&did, false));
            }
            did.push("dealt".into());
            continue;
        }
        if dealing && combined.len() < plan.setup.holders.len() {
            if did.iter().any(|d| d == "combined")
                || !combine(repo, &coop, ids, &from, &plan, &deals, &combined)?
            {
                return Ok(progress(&did, false));
            }
            did.push("combined".into());
            continue;
        }
        finish(repo, &coop, loaded, &from, &plan, &combined)?;
        did.push("finished".into());
        let mut p = progress(&did, true);
        p.combined = p.holders.clone();
        return Ok(p);
    }
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
fn combine(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    from: &RecoverySetup,
    plan: &Reshare,
    deals: &[Logged],
    combined: &[Logged],
) -> Result<bool> {
    let epoch = &plan.setup.epoch;
    let first = &deals[0].name;
    // Which new holder this admin is: the one whose file from the first dealer it opens.
    let mut me = None;
    for h in &plan.setup.holders {
        let Ok(ct) = repo.store.get(&deal_path(epoch, first, &h.name)) else {
            continue;
        };
        if crypt::decrypt(ids, &ct, MAX_FILE).is_ok() {
            me = Some(h.clone());
            break;
        }
    }
    let Some(me) = me else {
        return Ok(false);
    };
    if combined.iter().any(|c| c.name == me.name) {
        return Ok(false);
    }
    let mut dealt: Vec<(u8, DealFile)> = Vec::new();
    for d in deals {
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
    for new_slot in plan
        .slots
        .values()
        .filter(|s| !plan.direct.contains_key(*s))
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

/// Every new holder combined: the registry names the new setup and each member's new slot and
/// commitments; the end is logged; the old epoch's shares and the re-split's files go (a
/// logged deletion).
fn finish(
    repo: &Repo,
    coop: &TenantKeys,
    mut loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    combined: &[Logged],
) -> Result<()> {
    let epoch = &plan.setup.epoch;
    let mut by_holder = Vec::new();
    for h in &plan.setup.holders {
        // Every holder combined, or nothing was dealt (no identity needed it).
        let Some(c) = combined.iter().find(|c| c.name == h.name) else {
            continue;
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
    for m in loaded.registry.members.iter_mut() {
        let Some(r) = m.recovery.as_mut().filter(|r| r.epoch == from.epoch) else {
            continue;
        };
        let new_slot = plan
            .slots
            .get(&r.slot)
            .ok_or_else(|| Error::invalid(format!("member {} is not in the re-split", m.name)))?;
        let complete = by_holder.len() == plan.setup.holders.len();
        let commitments = match plan.direct.get(new_slot) {
            Some(c) => c.clone(),
            None => by_holder
                .iter()
                .map(|c| c.get(new_slot).cloned())
                .collect::<Option<Vec<_>>>()
                .filter(|_| complete)
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
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(DONE.into()),
    );
    e.data.insert("from".into(), from.epoch.clone().into());
    e.data.insert("epoch".into(), epoch.clone().into());
    log::append(repo, &actor, &[e])?;
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
