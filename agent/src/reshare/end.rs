//! The end of a re-split: logged first, then the registry follows, then the old shares go
//! (SPEC 25.5).

use super::*;

/// Every new holder combined: the end is logged (the log then has the new setup in force and
/// retires the old one), then the registry follows ([`switch`]).
pub(super) fn finish(
    repo: &Repo,
    coop: &TenantKeys,
    loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    combined: &[&Logged],
) -> Result<()> {
    // Every combination checked, and every member's move worked out, before the log says the
    // re-split ended: an end the registry cannot follow would retire the old setup and leave
    // none in force.
    let by_holder = commitments(repo, plan, combined)?;
    let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
        .activation
        .unwrap_or_default();
    for (i, new_slot, _) in moves(&loaded.registry, from, plan, &by_holder)? {
        // The log must move each member where the registry will: otherwise its end would
        // leave her bound to nothing (a member add or a recovery's end saved in the registry
        // and not logged yet, or a plan one admin rewrote). Nothing is logged; run again.
        let m = &loaded.registry.members[i];
        let tag = crate::registry::log_tag(m);
        if persons.resplit_target(&tag, &new_slot).as_deref() != Some(new_slot.as_str()) {
            return Err(Error::AccessDenied {
                what: format!(
                    "the admins' log does not move {} to the slot the registry's re-split \
                     gives her ({new_slot}), so its end is not logged and the setup in force \
                     stays. If her addition or a recovery of her is under way, let it finish \
                     (`coop export --recovery ID` again for a recovery) and run `coop recovery \
                     reshare` again; otherwise look at `coop log show` with the other admins",
                    m.name
                ),
            });
        }
    }
    // Nor may it leave a member the log binds (one the registry no longer shows, say) with
    // no slot in the new setup.
    let unmoved = persons.resplit_unmoved();
    if unmoved > 0 {
        return Err(Error::AccessDenied {
            what: format!(
                "the admins' log binds {unmoved} member(s) whose recovery the re-split would \
                 move nowhere (not in the registry's plan: one admin hid them, or the plan is \
                 older than them), so its end is not logged and the setup in force stays. \
                 Look at `coop log show` and `coop recovery status` with the other admins"
            ),
        });
    }
    log_step(
        repo,
        coop,
        DONE,
        [
            ("from", from.epoch.clone().into()),
            ("epoch", plan.setup.epoch.clone().into()),
        ],
    )?;
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
    switch(repo, coop, &persons, loaded, from, plan, by_holder)
}

/// Each new holder's commitments, in the new holders' order, each file checked against the
/// digest its holder logged (empty when nothing was dealt).
pub(super) fn commitments(
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
/// new slot and commitments (`by_holder`, from [`commitments`]); the old epoch's shares and the
/// re-split's files go (a logged deletion).
pub(super) fn switch(
    repo: &Repo,
    coop: &TenantKeys,
    persons: &Activation,
    mut loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    by_holder: Vec<BTreeMap<String, String>>,
) -> Result<()> {
    let epoch = &plan.setup.epoch;
    for (i, new_slot, commitments) in moves(&loaded.registry, from, plan, &by_holder)? {
        let m = &mut loaded.registry.members[i];
        // Only to the slot the log moved the member to (SPEC 25.6).
        let tag = crate::registry::log_tag(m);
        // coop logs no end that moves a member elsewhere than the log does; one logged by
        // someone else may. The registry still follows the end (the log has retired the old
        // setup: staying would leave none in force for anyone), and her requests and
        // approvals are refused until she is bound again.
        if !persons.slot_bound(&tag, &(epoch.clone(), new_slot.clone())) {
            tracing::warn!(
                member = %m.name,
                slot = %new_slot,
                "the admins' log does not bind this member to her new recovery slot: her \
                 recovery is refused (look at `coop log show` with the other admins)"
            );
        }
        let r = m
            .recovery
            .as_mut()
            .expect("moves only members with a recovery");
        r.epoch = epoch.clone();
        r.slot = new_slot;
        r.commitments = commitments;
    }
    loaded.registry.recovery_setup = Some(plan.setup.clone());
    loaded.registry.recovery_next = None;
    crate::registry::save(repo, coop, &mut loaded)?;
    clean_old(repo, coop, &loaded.registry)
}

/// Where each member of the old setup moves: (index in the registry, new slot, new
/// commitments). Fails where one would be left without a share at some new holder (a dealer
/// left it out) or outside the plan.
fn moves(
    reg: &Registry,
    from: &RecoverySetup,
    plan: &Reshare,
    by_holder: &[BTreeMap<String, String>],
) -> Result<Vec<(usize, String, Vec<String>)>> {
    let mut out = Vec::new();
    for (i, m) in reg.members.iter().enumerate() {
        let Some(r) = m.recovery.as_ref().filter(|r| r.epoch == from.epoch) else {
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
                         out); the end is not logged and the setup in force stays. An admin \
                         change that completes starts a new re-split",
                        m.name
                    ),
                })?,
        };
        out.push((i, new_slot.clone(), commitments));
    }
    Ok(out)
}

/// Deletes the shares of every epoch but the registry's current one and a running re-split's,
/// and the files of finished re-splits, with a logged deletion.
pub(super) fn clean_old(repo: &Repo, coop: &TenantKeys, reg: &Registry) -> Result<()> {
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
