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
use coop_formats::recovery::{self as rec, RecoverySetup, Reshare};
use coop_formats::registry::Registry;
use coop_formats::tlog::{Entry, Event, PersonCheck};
use std::collections::BTreeMap;

mod end;
mod steps;
use end::{clean_old, commitments, finish, switch};
use steps::{combine, deal};

/// `object`s of the entries that start a re-split, hold a new holder's combination and end
/// it: the admins' log reads them (`log::setups`).
pub use crate::log::{COMBINED, RESHARE as START, RESHARED as DONE};
/// `object` of an old holder's deal.
pub const DEAL: &str = "recovery-deal";

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
    log_step(
        repo,
        coop,
        START,
        [
            ("from", from.epoch.into()),
            ("setup", serde_json::to_value(&setup).expect("serializes")),
            // The new slot of each old one: the log moves each member's binding with it
            // (SPEC 25.6), and dealers deal only along it.
            (
                "slots",
                serde_json::to_value(&plan.slots).expect("serializes"),
            ),
        ],
    )?;
    reg.recovery_next = Some(plan);
    Ok(Some(setup.epoch))
}

/// Logs one step of a re-split: a `key-change` entry with `object` and `data`, by the caller
/// (signed by her person key).
pub(crate) fn log_step<const N: usize>(
    repo: &Repo,
    coop: &TenantKeys,
    object: &str,
    data: [(&str, serde_json::Value); N],
) -> Result<()> {
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(coop),
        None,
        Some(object.into()),
    );
    e.data
        .extend(data.into_iter().map(|(k, v)| (k.to_string(), v)));
    log::append(repo, &actor, &[e])?;
    Ok(())
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
    // Each old slot moves only to the new slot the start named for it, and a direct split
    // only into a slot the log has (SPEC 25.6): dealing along another map would put one
    // member's identity into the slot the log binds to another.
    let moves = plan
        .slots
        .iter()
        .all(|(old, new)| persons.resplit_moves(old, new, plan.direct.contains_key(new)));
    if plan.from != from.epoch || !persons.setup_running(&plan.setup) || !moves {
        return Err(Error::AccessDenied {
            what: format!(
                "the re-split of the recovery shares in the registry (epoch {}) is not the one \
                 the admins' log runs (the newest started by an admin person, giving shares to \
                 exactly the admin persons' identities then, moving each slot where the log \
                 does); this admin deals and combines nothing for it. If a member add or a \
                 recovery's end is under way, its split into the re-split may be saved in the \
                 registry and not logged yet: let it finish (`coop export --recovery ID` again \
                 for a recovery) and run this again. Otherwise look at `coop log show` and \
                 `coop admin list` with the other admins",
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
            let by_holder = commitments(repo, plan, &combined)?;
            switch(repo, &coop, &persons, loaded, &from, plan, by_holder)?;
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
