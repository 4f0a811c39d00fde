//! Who is in the repository, the facts every section of the report starts from: the tenants'
//! usage (as `coop usage`), the registry, the keys the caller holds, the active members and
//! the admin keys; and the warnings gathered on the way.

use super::*;
use crate::usage::TenantUsage;
use coop_formats::registry::Registry;

/// What every section of the report starts from.
pub(super) struct Tenants {
    pub(super) usage: Vec<TenantUsage>,
    pub(super) registry: Option<Registry>,
    /// The tenants whose keys the caller holds (or the registry names a writer key for).
    pub(super) known: BTreeMap<String, Known>,
    /// Active members: from the registry, else the member tenants the caller reads.
    pub(super) member_names: Vec<String>,
    pub(super) admin_keys: Vec<[u8; 32]>,
    /// [`Options::member`].
    pub(super) member: Option<String>,
}

/// The warnings of the report and whether any of them is an integrity problem.
#[derive(Default)]
pub(super) struct Notes {
    pub(super) warnings: Vec<String>,
    pub(super) integrity_problem: bool,
}

impl Notes {
    /// Problems found loading a signed list: warnings and an integrity problem.
    pub(super) fn problems(&mut self, problems: &[crate::damage::Problem]) {
        for p in problems {
            self.warnings.push(p.to_string());
            self.integrity_problem = true;
        }
    }
}

impl Tenants {
    /// Whether the member-specific parts cover member `name`.
    pub(super) fn in_scope(&self, name: &str) -> bool {
        self.member.as_deref().is_none_or(|m| m == name)
    }

    /// Whether a tenant is reported on: any but other members'.
    pub(super) fn scoped_tenant(&self, tenant: &str) -> bool {
        match tenant.strip_prefix("member/") {
            Some(n) => self.in_scope(n),
            None => true,
        }
    }

    /// The usage of a tenant.
    pub(super) fn usage_of(&self, tenant: &str) -> Option<&TenantUsage> {
        self.usage.iter().rfind(|u| u.tenant == tenant)
    }
}

pub(super) fn gather(src: &Sources, opts: &Options, notes: &mut Notes) -> Result<Tenants> {
    let repo = src.repo;
    let usage = crate::usage::usage(repo, src.access)?;
    let coop = crate::tenant::keys(repo, src.access, "coop").ok();
    let registry = match &coop {
        Some(c) => {
            let l = crate::members::load(repo, c)?;
            notes.problems(&l.problems);
            Some(l.registry)
        }
        None => None,
    };
    let known = known(src, coop.as_ref(), registry.as_ref())?;
    let member_names: Vec<String> = match &registry {
        Some(r) => r.active().map(|m| m.name.clone()).collect(),
        None => usage
            .iter()
            .filter_map(|u| u.tenant.strip_prefix("member/").map(String::from))
            .collect(),
    };
    if let Some(m) = &opts.member {
        if !member_names.contains(m) {
            return Err(Error::NotFound {
                what: format!(
                    "member {m:?} (the report knows: {})",
                    member_names.join(", ")
                ),
            });
        }
    }
    let admin_keys: Vec<[u8; 32]> = coop
        .as_ref()
        .map(|c| c.admin_keys.clone())
        .or_else(|| known.values().next().map(|k| k.keys.admin_keys.clone()))
        .unwrap_or_default();
    let t = Tenants {
        usage,
        registry,
        known,
        member_names,
        admin_keys,
        member: opts.member.clone(),
    };
    for u in &t.usage {
        if u.rollback {
            notes.integrity_problem = true;
        }
        if t.scoped_tenant(&u.tenant) {
            notes
                .warnings
                .extend(u.warnings.iter().map(|w| format!("{}: {w}", u.tenant)));
        }
    }
    Ok(t)
}

/// The tenants whose keyrings the caller's identity opens, and the active members whose
/// writer keys the registry gives.
fn known(
    src: &Sources,
    coop: Option<&TenantKeys>,
    registry: Option<&Registry>,
) -> Result<BTreeMap<String, Known>> {
    let mut known: BTreeMap<String, Known> = BTreeMap::new();
    if let Access::Identity(ids, _) = src.access {
        let found = src.repo.keyrings(ids)?;
        for ring in found.rings {
            let name = ring.tenant.clone();
            if let Ok(keys) = TenantKeys::from_keyring(ring.clone(), std::sync::Arc::clone(ids)) {
                known.insert(
                    name,
                    Known {
                        keys,
                        ring: Some(ring),
                    },
                );
            }
        }
    }
    if let (Some(c), Some(reg)) = (coop, registry) {
        for m in reg.active() {
            if let std::collections::btree_map::Entry::Vacant(slot) = known.entry(m.tenant()) {
                if let Ok(keys) = crate::members::writer_keys_for_member(src.repo, c, &m.name) {
                    slot.insert(Known { keys, ring: None });
                }
            }
        }
    }
    Ok(known)
}
