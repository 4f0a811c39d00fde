//! An old holder's deal and a new holder's combination (SPEC 25.5).

use super::*;
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::DealFile;
use zeroize::Zeroize;

/// An old holder's deal: its share of every identity split again for the new holders, one
/// file per new holder (encrypted to it), their digests logged. `false`: this admin holds no
/// old share, or dealt already.
pub(super) fn deal(
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
    log_step(
        repo,
        coop,
        DEAL,
        [
            ("epoch", plan.setup.epoch.clone().into()),
            ("from", plan.from.clone().into()),
            ("holder", dealer.into()),
            ("digests", digests.into()),
        ],
    )?;
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
pub(super) fn combine(
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
    check_direct(repo, plan, ids)?;
    let dealt = dealer_files(repo, ids, &me, from, plan, dealers)?;
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
    let mut digests = serde_json::Map::new();
    digests.insert(me.name.clone(), digest.into());
    log_step(
        repo,
        coop,
        COMBINED,
        [
            ("epoch", epoch.clone().into()),
            ("holder", me.name.clone().into()),
            ("digests", digests.into()),
        ],
    )?;
    Ok(true)
}

/// Each identity split straight into the new setup: this holder's share of it must match the
/// commitment the plan gives (the registry's, which one admin can rewrite): a forged one
/// would make the new shares fail their check at the next recovery.
fn check_direct(repo: &Repo, plan: &Reshare, ids: &[Identity]) -> Result<()> {
    let epoch = &plan.setup.epoch;
    for (slot, commitments) in &plan.direct {
        let r = rec::MemberRecovery {
            epoch: epoch.clone(),
            slot: slot.clone(),
            recipient: String::new(),
            commitments: commitments.clone(),
        };
        match own_share(repo, &plan.setup, &r, ids)? {
            Some((_, mut share)) => share.zeroize(),
            None => {
                return Err(Error::NotFound {
                    what: format!(
                        "your share of the identity split straight into re-split {epoch} at slot \
                         {slot}; nothing was combined"
                    ),
                })
            }
        }
    }
    Ok(())
}

/// The deal files the counted `dealers` addressed to `me`, each checked against the digest
/// its dealer logged, with the dealer's index in the old setup.
fn dealer_files(
    repo: &Repo,
    ids: &[Identity],
    me: &rec::ShareHolder,
    from: &RecoverySetup,
    plan: &Reshare,
    dealers: &[&Logged],
) -> Result<Vec<(u8, DealFile)>> {
    let epoch = &plan.setup.epoch;
    let mut dealt = Vec::new();
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
    Ok(dealt)
}
