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
    // Every combination checked before the log says the re-split ended.
    let by_holder = commitments(repo, plan, combined)?;
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
    switch(repo, coop, loaded, from, plan, by_holder)
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
    mut loaded: crate::registry::Loaded,
    from: &RecoverySetup,
    plan: &Reshare,
    by_holder: Vec<BTreeMap<String, String>>,
) -> Result<()> {
    let epoch = &plan.setup.epoch;
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
