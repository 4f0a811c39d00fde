//! Reading the authority-signed control objects (SPEC section 13) in one place: prune plans
//! and forget records count only when the tenant's authority signed them, and whatever
//! else is found is named, never obeyed. Writers of these objects (prune, forget) and their
//! readers (backup, snapshot listing, prune) all come here, so none of them depends on
//! another for it.

use crate::damage::Problem;
use crate::error::Result;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::control::{ForgetRecord, PrunePlan};
use coop_formats::id::Id;
use std::collections::HashSet;

/// The prune plans the tenant's authority signed; others are named in `warnings`.
pub fn signed_plans(
    repo: &Repo,
    keys: &TenantKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Id, PrunePlan)>> {
    let mut out = Vec::new();
    for (name, r) in repo.list_control::<PrunePlan>(keys, Kind::Plan)? {
        match r {
            Ok((plan, signer)) if keys.is_authority(&signer) => out.push((name, plan)),
            // An admin's per-pack prune of a member tenant (SPEC 13.7) only condemns packs:
            // it copies nothing, so a plan of its that vouches for copies (which would let a
            // prune with the member's key delete the only copy of a blob) is ignored.
            Ok((plan, signer))
                if keys.is_maintainer(&signer)
                    && plan.replacement.is_none()
                    && plan.new_packs.is_empty()
                    && plan.verified.is_empty()
                    && plan.index.is_empty() =>
            {
                out.push((name, plan))
            }
            Ok(_) => warnings.push(format!(
                "prune plan {name} is not signed by this tenant's authority; ignored (forged with a writer key?)"
            )),
            Err(e) => warnings.push(format!("prune plan {name} does not open; ignored: {e}")),
        }
    }
    Ok(out)
}

/// Packs condemned by prune plans the tenant's authority signed: backups must not
/// deduplicate against them. Plans signed by anyone else are ignored (a writer key could
/// otherwise make every backup upload everything again).
pub fn condemned_packs(repo: &Repo, keys: &TenantKeys) -> Result<HashSet<Id>> {
    Ok(signed_plans(repo, keys, &mut Vec::new())?
        .into_iter()
        .flat_map(|(_, p)| p.packs)
        .collect())
}

/// The snapshots forget records (signed by the tenant's authority) say were removed.
pub fn forget_records(repo: &Repo, keys: &TenantKeys) -> Result<(HashSet<Id>, Vec<Problem>)> {
    let mut set = HashSet::new();
    let mut problems = Vec::new();
    for (name, r) in repo.list_control::<ForgetRecord>(keys, Kind::Forgotten)? {
        let path = Kind::Forgotten.path(&keys.tag, &name);
        match r {
            // The tenant's authority, or (member tenants) an admin's retention (13.7).
            Ok((rec, signer)) if keys.is_maintainer(&signer) => set.extend(rec.snapshots),
            Ok(_) => problems.push(Problem::forged(
                &path,
                "forget record not signed by this tenant's authority (or, for a member tenant, an admin)",
            )),
            Err(e) => problems.push(Problem::forged(&path, e)),
        }
    }
    Ok((set, problems))
}
