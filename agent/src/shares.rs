//! Recovery shares (SPEC section 25.2): a member's recovery identity made and split among the
//! holders from their public keys alone, where the shares and a request's ephemeral key live,
//! and how one admin's own share is found. Below `members`, which gives each member
//! added after the split an identity; `recovery` runs the requests.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::{self as rec, MemberRecovery, RecoverySetup, ShareFile, ShareHolder};
use coop_formats::registry::Member;
use std::path::PathBuf;
use zeroize::Zeroize;

pub(crate) fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub(crate) fn share_path(epoch: &str, slot: &str, holder: &str) -> String {
    format!("recovery/{epoch}/{slot}/{}", clean(holder))
}

/// Creates a recovery identity for one member tenant, splits it among `setup`'s holders and
/// stores each share encrypted to its holder. Only public keys are needed: an admin adding a
/// member after the split reads nothing. While a re-split runs (`next`, SPEC 25.5), the
/// identity is split into its new setup too, so that the re-split covers it without a deal.
/// Returns what the member's registry entry records.
pub(crate) fn new_member_identity(
    repo: &Repo,
    coop: &TenantKeys,
    setup: &RecoverySetup,
    next: Option<&mut rec::Reshare>,
    tag: &str,
) -> Result<MemberRecovery> {
    let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
        .activation
        .unwrap_or_default();
    vouched(&persons, setup)?;
    // A re-split the log does not vouch for gets no share of a new identity.
    let next = next.filter(|p| p.from == setup.epoch && persons.setup_running(&p.setup));
    make_identity(repo, setup, next, Some((coop, tag)))
}

/// Logs that `slot` (and `next`, in a running re-split) will hold member `tag`'s new identity:
/// before its shares are in the store, so that nobody who sees them there can bind the slot to
/// another member first.
fn reserve(
    repo: &Repo,
    coop: &TenantKeys,
    tag: &str,
    epoch: &str,
    slot: &str,
    next: Option<(&str, &str)>,
) -> Result<()> {
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(
        &actor,
        coop_formats::tlog::Event::KeyChange,
        None,
        None,
        Some(crate::log::RESERVE.into()),
    );
    e.tenant = Some(tag.to_string());
    e.data.insert("epoch".into(), epoch.into());
    e.data.insert("slot".into(), slot.into());
    if let Some((epoch, slot)) = next {
        e.data.insert(
            "next".into(),
            serde_json::json!({ "epoch": epoch, "slot": slot }),
        );
    }
    crate::log::append(repo, &actor, &[e])?;
    Ok(())
}

/// Refuses a setup the admins' log does not vouch for (SPEC 25.5): one admin who writes a
/// registry naming identities of her own as holders, or one from before a re-split, gets no
/// share of anything from it.
pub(crate) fn vouched(persons: &crate::log::Activation, setup: &RecoverySetup) -> Result<()> {
    // The registry has a split, so the admins' log has one too (every split names the admin
    // persons): a log that shows none here is missing, hidden or does not verify at this store,
    // or the split stopped before logging it. Nothing is checked against an absent log.
    if persons.person_approvals().is_none() {
        return Err(Error::damaged(
            "log",
            format!(
                "the admins' access log shows no recovery split, though the registry has one \
                 (epoch {}): if `coop recovery init` stopped, run it again; otherwise the log \
                 is missing, hidden or does not verify at this store (`coop log verify`), and \
                 nothing about recovery is done until it is back",
                setup.epoch
            ),
        ));
    }
    if persons.setup_in_force(setup) {
        return Ok(());
    }
    Err(Error::AccessDenied {
        what: format!(
            "the registry's recovery setup (epoch {}) is not the one the admins' log has in \
             force (the split's, or the newest finished re-split's): one admin rewrote it, or it \
             is from before a re-split. Nothing is split into it and no share of it is \
             released. Look at `coop log show` and `coop recovery status` with the other admins",
            setup.epoch
        ),
    })
}

/// [`new_member_identity`] without asking the log; `reserve` (the admin's keys and the
/// member's log tag) logs the slots before the shares are written. `None` for the split
/// itself, which binds every slot in its own entry (nothing before it counts).
pub(crate) fn make_identity(
    repo: &Repo,
    setup: &RecoverySetup,
    next: Option<&mut rec::Reshare>,
    reserved_for: Option<(&TenantKeys, &str)>,
) -> Result<MemberRecovery> {
    setup.check().map_err(|e| Error::invalid(e.to_string()))?;
    let slot = hex::encode(coop_formats::random_bytes::<8>());
    let new_slot = hex::encode(coop_formats::random_bytes::<8>());
    if let Some((coop, tag)) = reserved_for {
        let n = next
            .as_ref()
            .map(|p| (p.setup.epoch.as_str(), new_slot.as_str()));
        reserve(repo, coop, tag, &setup.epoch, &slot, n)?;
        // No share is written under a slot the log does not hold for her: the reservation
        // may not count (a re-split ended in between, or the caller is no person who
        // counts), and a slot nobody holds is the first binding's to take.
        let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
            .activation
            .unwrap_or_default();
        let held = persons.reserved_for(tag, &(setup.epoch.clone(), slot.clone()))
            && n.is_none_or(|(e, s)| persons.reserved_for(tag, &(e.to_string(), s.to_string())));
        if !held {
            return Err(Error::AccessDenied {
                what: "the admins' log did not count this admin's reservation of the new recovery \
                     slots (the recovery setup or the re-split changed meanwhile, or this admin \
                     is no person who counts); no share was written. Run the command again, \
                     and look at `coop recovery status`"
                    .into(),
            });
        }
    }
    let (mut text, recipient) = crypt::generate_identity();
    let split = split_into(repo, setup, &slot, text.as_bytes());
    let direct = match (&split, next) {
        (Ok(_), Some(plan)) => Some((
            split_into(repo, &plan.setup, &new_slot, text.as_bytes()),
            plan,
        )),
        _ => None,
    };
    text.zeroize();
    let (slot, commitments) = split?;
    if let Some((new, plan)) = direct {
        let (new_slot, new_commitments) = new?;
        plan.slots.insert(slot.clone(), new_slot.clone());
        plan.direct.insert(new_slot, new_commitments);
    }
    Ok(MemberRecovery {
        epoch: setup.epoch.clone(),
        slot,
        recipient,
        commitments,
    })
}

/// Splits `secret` among `setup`'s holders under `slot`, each share stored encrypted to its
/// holder; returns the slot and the shares' commitments.
fn split_into(
    repo: &Repo,
    setup: &RecoverySetup,
    slot: &str,
    secret: &[u8],
) -> Result<(String, Vec<String>)> {
    let mut shares = rec::split_for(setup, secret).map_err(|e| Error::invalid(e.to_string()))?;
    let slot = slot.to_string();
    let mut commitments = Vec::new();
    let mut stored = Ok(());
    for (h, share) in setup.holders.iter().zip(&shares) {
        stored = put_share(repo, setup, &slot, h, share);
        if stored.is_err() {
            break;
        }
        commitments.push(rec::commitment(share));
    }
    for s in &mut shares {
        s.zeroize();
    }
    stored.map(|_| (slot, commitments))
}

/// Stores `share` of the identity at `slot` for holder `h`, encrypted to them.
pub(crate) fn put_share(
    repo: &Repo,
    setup: &RecoverySetup,
    slot: &str,
    h: &ShareHolder,
    share: &[u8],
) -> Result<()> {
    let file = ShareFile {
        epoch: setup.epoch.clone(),
        slot: slot.to_string(),
        holder: h.name.clone(),
        share: hex::encode(share),
    };
    let mut json = serde_json::to_vec(&file).expect("serializes");
    drop(file);
    let to = crypt::parse_recipient(&h.recipient)
        .map_err(|e| Error::invalid(format!("admin {}: {e}", h.name)));
    let mut ct = Vec::new();
    let r = to.and_then(|to| {
        crypt::encrypt_to(&[to], &[&json], &mut ct)
            .map_err(|e| Error::crypto("encrypting a share", e))
    });
    json.zeroize();
    r?;
    repo.store
        .put_replace(&share_path(&setup.epoch, slot, &h.name), ct)?;
    Ok(())
}

/// Member `name`'s registry entry and recovery identity, with the setup.
pub(crate) fn member_recovery(
    repo: &Repo,
    coop: &TenantKeys,
    name: &str,
) -> Result<(RecoverySetup, Member, MemberRecovery)> {
    let reg = crate::registry::load(repo, coop)?.registry;
    let setup = reg.recovery_setup.clone().ok_or_else(|| Error::NotFound {
        what: "a recovery setup (run `coop recovery init` first)".into(),
    })?;
    let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
        .activation
        .unwrap_or_default();
    vouched(&persons, &setup)?;
    let m = reg.member(name).cloned().ok_or_else(|| Error::NotFound {
        what: format!("member {name:?} in the registry"),
    })?;
    let r = m
        .recovery
        .clone()
        .filter(|r| r.epoch == setup.epoch && r.commitments.len() == setup.holders.len())
        .ok_or_else(|| Error::NotFound {
            what: format!(
                "a recovery identity of member {name} in epoch {}",
                setup.epoch
            ),
        })?;
    // The slot must be the one the log binds to this member (SPEC 25.6): a registry that
    // points her at another member's slot would have approvals release that member.
    let tag = crate::registry::log_tag(&m);
    if !persons.slot_bound(&tag, &(r.epoch.clone(), r.slot.clone())) {
        return Err(Error::AccessDenied {
            what: format!(
                "the registry gives member {name} recovery slot {} of epoch {}, which the \
                 admins' log does not bind to {name} (one admin rewrote the registry, or it is \
                 from before the log's last change of her recovery). No share of it is \
                 requested or released. Look at `coop log show` with the other admins",
                r.slot, r.epoch
            ),
        });
    }
    Ok((setup, m, r))
}

/// The holder whose share of member identity `r` the identities `ids` decrypt, with the
/// share's bytes.
pub(crate) fn own_share(
    repo: &Repo,
    setup: &RecoverySetup,
    r: &MemberRecovery,
    ids: &[Identity],
) -> Result<Option<(ShareHolder, Vec<u8>)>> {
    for (i, h) in setup.holders.iter().enumerate() {
        let path = share_path(&setup.epoch, &r.slot, &h.name);
        let ct = match repo.store.get(&path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let Ok(mut plain) = crypt::decrypt(ids, &ct, 1 << 16) else {
            continue;
        };
        let file: std::result::Result<ShareFile, _> = serde_json::from_slice(&plain);
        plain.zeroize();
        let file = file.map_err(|e| Error::damaged(&path, e.to_string()))?;
        let share = hex::decode(&file.share).map_err(|_| Error::damaged(&path, "not hex"))?;
        if file.epoch != setup.epoch
            || file.slot != r.slot
            || file.holder != h.name
            || share.first() != Some(&h.index)
            || r.commitments.get(i) != Some(&rec::commitment(&share))
        {
            return Err(Error::damaged(
                &path,
                "the share does not match the registry's commitment (forged, moved or of \
                 another epoch)",
            ));
        }
        return Ok(Some((h.clone(), share)));
    }
    Ok(None)
}

pub(crate) fn key_path(repo: &Repo, id: &str) -> Result<PathBuf> {
    let cache = repo
        .cache_dir()
        .ok_or_else(|| Error::invalid("a recovery request needs a cache directory for its key"))?;
    Ok(cache
        .join(repo.config.repo_id.to_hex())
        .join(format!("recovery-{id}.key")))
}

/// Forgets a used request's ephemeral key.
pub fn finish(repo: &Repo, id: &str) {
    if let Ok(p) = key_path(repo, id) {
        if let Ok(mut b) = std::fs::read(&p) {
            b.zeroize();
            let _ = std::fs::write(&p, vec![0u8; b.len()]);
        }
        let _ = std::fs::remove_file(&p);
    }
}
