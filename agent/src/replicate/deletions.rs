//! Following the source's logged deletions (SPEC section 24.9).

use super::*;

/// The deletions and prune replacements the source's admins logged, from its verified logs
/// (see [`crate::log::recorded_deletions`]); grace periods count from when this client first
/// saw each entry, remembered in `cache`.
pub(super) fn logged_deletions(
    from: &Store,
    admin_keys: &[[u8; 32]],
    cache: Option<&std::path::Path>,
) -> Result<crate::log::Deletions> {
    let mut source = crate::repo::Repo::open_store(from.clone())?;
    // With this client's memory of the source's logs: a log the source rolled back or forked
    // since it was last verified here is unsound, and none of its deletions is followed.
    source.cache_dir = cache.map(std::path::Path::to_path_buf);
    let trusted = crate::writers::log_trust(&source, admin_keys)?;
    let (_, contents) = crate::log::verify(&source, &trusted)?;
    let mut seen = crate::log::FirstSeen::load(cache, &source.config.repo_id);
    let d = crate::log::recorded_deletions(&contents, &trusted, &mut seen);
    seen.save()?;
    Ok(d)
}

/// Removes from `to` what the source deleted and an admin logged (see [`DeletionPolicy`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn follow_deletions(
    from: &Store,
    to: &Store,
    src: &HashMap<String, u64>,
    dst_before: &HashMap<String, u64>,
    admin_keys: &[[u8; 32]],
    deletions: Option<crate::log::Deletions>,
    pol: &DeletionPolicy,
    cache: Option<&std::path::Path>,
    rep: &mut ReplicateReport,
) -> Result<()> {
    let kind_of = |p: &str| ObjectPath::parse(p).map(|o| o.kind);
    // What this run copied the source has, so the candidates come from the listing before it.
    let mut gone: Vec<&String> = dst_before
        .keys()
        .filter(|p| !src.contains_key(*p))
        .filter(|p| {
            matches!(
                kind_of(p),
                Some(Kind::Pack | Kind::Index | Kind::Snapshot | Kind::Keyring)
            )
        })
        .collect();
    // Recovery shares of an epoch a re-split retired (SPEC 25.5): a replica that kept them
    // would keep them in force for whoever holds K old admin identities.
    let shares = shares_gone(from, to)?;
    gone.extend(shares.iter());
    if gone.is_empty() {
        return Ok(());
    }
    // Listed again: the snapshots this run copied count among those the target keeps.
    let dst = listing(to)?;
    let recorded = match deletions {
        Some(d) => d,
        None => logged_deletions(from, admin_keys, cache)?,
    };
    let now = crate::now_unix();
    let (mut unrecorded, mut young) = (0u64, 0u64);
    let mut eligible: std::collections::HashSet<&String> = Default::default();
    for p in &gone {
        match recorded.get(p) {
            None => unrecorded += 1,
            Some(t) if now - t < pol.grace.as_secs() as i64 => young += 1,
            Some(_) => {
                eligible.insert(*p);
            }
        }
    }
    let needed = kept_needs(to, &dst, src, &recorded, &eligible)?;
    let mut order: Vec<&String> = eligible.into_iter().collect();
    // Snapshots first, then index objects, then packs: a stop halfway leaves no snapshot
    // without its data.
    order.sort_by_key(|p| match kind_of(p) {
        Some(Kind::Snapshot) => 0,
        Some(Kind::Index) => 1,
        _ => 2,
    });
    let last_keyrings = last_keyrings(&dst, &order);
    let mut still_needed = 0u64;
    for p in order {
        if needed.contains(p.as_str()) {
            still_needed += 1;
            continue;
        }
        if last_keyrings.contains(p.as_str()) {
            continue;
        }
        to.delete(p)?;
        rep.deleted_at_target += 1;
    }
    if unrecorded > 0 {
        rep.kept_at_target.push(format!(
            "{unrecorded} object(s) are gone at the source without an admin's logged deletion (kept: a store that lost or hides objects must not shrink its replicas)"
        ));
    }
    if young > 0 {
        rep.kept_at_target.push(format!(
            "{young} deletion(s) are younger than the {} grace period (kept for now)",
            humantime::format_duration(pol.grace)
        ));
    }
    if still_needed > 0 {
        rep.kept_at_target.push(format!(
            "{still_needed} deleted object(s) are still named by snapshots this replica keeps (kept)"
        ));
    }
    if !last_keyrings.is_empty() {
        rep.kept_at_target.push(format!(
            "{} keyring object(s) are the last of their tenant here (kept: a logged deletion \
             never leaves a tenant without the keyring its data is read with)",
            last_keyrings.len()
        ));
    }
    Ok(())
}

/// The keyring objects among `deleting` whose deletion would leave their tenant with no
/// keyring at the target (`dst`): one admin's logged deletion of a member's current keyring
/// must not make her data unreadable at every replica. Deleting an old generation, with a
/// newer one already copied here, goes ahead.
fn last_keyrings<'a>(dst: &HashMap<String, u64>, deleting: &[&'a String]) -> HashSet<&'a str> {
    let tenant = |p: &str| -> Option<String> {
        ObjectPath::parse(p)
            .filter(|o| o.kind == Kind::Keyring)
            .map(|o| hex::encode(o.tag))
    };
    let going: HashSet<&str> = deleting.iter().map(|p| p.as_str()).collect();
    let mut staying: HashSet<String> = HashSet::new();
    for p in dst.keys().filter(|p| !going.contains(p.as_str())) {
        staying.extend(tenant(p));
    }
    deleting
        .iter()
        .filter(|p| tenant(p).is_some_and(|t| !staying.contains(&t)))
        .map(|p| p.as_str())
        .collect()
}

/// Recovery shares at `to` that `from` no longer has.
fn shares_gone(from: &Store, to: &Store) -> Result<Vec<String>> {
    let shares = |s: &Store| -> Result<HashSet<String>> {
        Ok(s.list("recovery")?
            .into_iter()
            .filter(|l| super::logs::is_recovery_share(&l.path, l.size))
            .map(|l| l.path)
            .collect())
    };
    let src = shares(from)?;
    Ok(shares(to)?
        .into_iter()
        .filter(|p| !src.contains(p))
        .collect())
}

/// What the snapshots the target keeps (those in `dst` not `eligible` for deletion) still
/// need, and so stays: what their inventories name, or, where a prune replaced some of it,
/// the replacements, once all of those are here.
fn kept_needs(
    to: &Store,
    dst: &HashMap<String, u64>,
    src: &HashMap<String, u64>,
    recorded: &crate::log::Deletions,
    eligible: &HashSet<&String>,
) -> Result<HashSet<String>> {
    let mut needed: HashSet<String> = HashSet::new();
    for p in dst
        .keys()
        .filter(|p| p.starts_with("snapshots/") && !eligible.contains(p))
    {
        match to.get(p) {
            Ok(b) => {
                if let Ok(n) = needs(&b) {
                    let now_needed = recorded.resolve(p, &n, |x| src.contains_key(x));
                    if now_needed.iter().all(|x| dst.contains_key(x)) {
                        needed.extend(now_needed);
                    } else {
                        needed.extend(n);
                    }
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One admin deletes a member's current keyring at her site and logs it: a replica keeps
    /// it (the last of its tenant), while an old generation beside a newer one goes.
    #[test]
    fn the_last_keyring_of_a_tenant_is_never_deleted() {
        let (alice, bob) = ([1u8; 16], [2u8; 16]);
        let ring = |tag: &[u8; 16], n: u8| Kind::Keyring.path(tag, &Id([n; 32]));
        let (a_old, a_new, b_only) = (ring(&alice, 1), ring(&alice, 2), ring(&bob, 3));
        let dst: HashMap<String, u64> = [&a_old, &a_new, &b_only]
            .into_iter()
            .map(|p| (p.clone(), 100))
            .collect();
        let kept = last_keyrings(&dst, &[&a_old, &b_only]);
        assert_eq!(kept, HashSet::from([b_only.as_str()]));
        let kept = last_keyrings(&dst, &[&a_old, &a_new]);
        assert_eq!(kept, HashSet::from([a_old.as_str(), a_new.as_str()]));
    }
}
