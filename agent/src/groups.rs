//! Groups of members (issue 30): one member pays for several (a family, a club). A group's
//! quota is shared by its members and enforced at ingest like a member's own; the report
//! shows the group as one cost line with its members' parts. Groups live in the admin-signed
//! registry, so every change is a `registry-change` entry in the access log.

use crate::error::{Error, Result};
use crate::keys::Access;
use crate::repo::Repo;
use coop_formats::envelope::TenantTag;
use coop_formats::registry::{check_member_name, Group, Registry};

/// What a backup into a group member's tenant must stay within: the group's quota, over
/// every member tenant of the group together.
#[derive(Debug, Clone)]
pub struct GroupLimit {
    pub group: String,
    pub quota: u64,
    /// The tenant tags of every member of the group (the one backed up among them).
    pub tags: Vec<TenantTag>,
}

/// The group limit a backup into member `name`'s tenant must keep, if any.
pub fn limit(reg: &Registry, name: &str) -> Option<GroupLimit> {
    let g = reg.group_of(name)?;
    let quota = g.quota?;
    Some(GroupLimit {
        group: g.name.clone(),
        quota,
        tags: g
            .members
            .iter()
            .filter_map(|m| reg.members.iter().find(|x| &x.name == m))
            .map(|m| m.tenant_tag)
            .collect(),
    })
}

/// [`limit`] for a backup by `access` (an admin or a writer key): from the registry.
pub fn limit_of(repo: &Repo, access: &Access, member: &str) -> Result<Option<GroupLimit>> {
    let coop = crate::tenant::keys(repo, access, "coop")?;
    Ok(limit(&crate::registry::load(repo, &coop)?.registry, member))
}

/// Stored bytes of every member tenant of a limit's group (its packs, as listed).
pub fn used(repo: &Repo, limit: &GroupLimit) -> Result<u64> {
    let mut sum = 0u64;
    for t in &limit.tags {
        sum += repo
            .list(crate::layout::Kind::Pack, t)?
            .iter()
            .map(|o| o.size)
            .sum::<u64>();
    }
    Ok(sum)
}

/// Refuses when the group is over its quota (`used` bytes, this backup's included).
pub fn check(limit: &GroupLimit, used: u64, strict: bool) -> Result<()> {
    if used > limit.quota || (!strict && used >= limit.quota) {
        return Err(Error::GroupQuota {
            group: limit.group.clone(),
            used,
            quota: limit.quota,
        });
    }
    Ok(())
}

fn change(
    repo: &Repo,
    access: &Access,
    name: &str,
    f: impl FnOnce(&mut Registry) -> Result<()>,
) -> Result<Group> {
    let (coop, _) = crate::members::admin(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    f(&mut loaded.registry)?;
    let g = loaded.registry.group(name).cloned();
    crate::registry::save(repo, &coop, &mut loaded)?;
    g.ok_or_else(|| Error::NotFound {
        what: format!("group {name:?}"),
    })
}

fn active_member(reg: &Registry, name: &str) -> Result<()> {
    if reg.member(name).is_none() {
        return Err(Error::NotFound {
            what: format!("member {name:?} (`coop member list` shows them)"),
        });
    }
    if let Some(g) = reg.group_of(name) {
        return Err(Error::invalid(format!(
            "member {name} is in group {} already (a member is in one group at most)",
            g.name
        )));
    }
    Ok(())
}

/// `coop group add NAME --payer MEMBER [--quota SIZE]`.
pub fn add(
    repo: &Repo,
    access: &Access,
    name: &str,
    payer: &str,
    quota: Option<u64>,
) -> Result<Group> {
    check_member_name(name).map_err(|e| Error::invalid(e.replace("member name", "group name")))?;
    change(repo, access, name, |reg| {
        if reg.group(name).is_some() {
            return Err(Error::invalid(format!("group {name:?} exists already")));
        }
        active_member(reg, payer)?;
        reg.groups.push(Group {
            name: name.to_string(),
            payer: payer.to_string(),
            members: vec![payer.to_string()],
            quota,
            added: crate::now_rfc3339(),
        });
        Ok(())
    })
}

/// `coop group members NAME --add MEMBER --remove MEMBER`.
pub fn set_members(
    repo: &Repo,
    access: &Access,
    name: &str,
    add: &[String],
    remove: &[String],
) -> Result<Group> {
    change(repo, access, name, |reg| {
        let payer = reg
            .group(name)
            .ok_or_else(|| Error::NotFound {
                what: format!("group {name:?} (`coop group list` shows them)"),
            })?
            .payer
            .clone();
        if remove.contains(&payer) {
            return Err(Error::invalid(format!(
                "{payer} pays for group {name} and stays in it (remove the group instead)"
            )));
        }
        for m in add {
            active_member(reg, m)?;
        }
        let g = reg
            .groups
            .iter_mut()
            .find(|g| g.name == name)
            .expect("found");
        for m in remove {
            if !g.members.contains(m) {
                return Err(Error::NotFound {
                    what: format!("member {m:?} in group {name}"),
                });
            }
        }
        g.members.retain(|m| !remove.contains(m));
        for m in add {
            if !g.members.contains(m) {
                g.members.push(m.clone());
            }
        }
        Ok(())
    })
}

/// `coop group quota NAME SIZE|none`.
pub fn set_quota(repo: &Repo, access: &Access, name: &str, quota: Option<u64>) -> Result<Group> {
    change(repo, access, name, |reg| {
        let g = reg
            .groups
            .iter_mut()
            .find(|g| g.name == name)
            .ok_or_else(|| Error::NotFound {
                what: format!("group {name:?}"),
            })?;
        g.quota = quota;
        Ok(())
    })
}

/// `coop group remove NAME`: the members stay members, each on their own again.
pub fn remove(repo: &Repo, access: &Access, name: &str) -> Result<()> {
    let (coop, _) = crate::members::admin(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    let before = loaded.registry.groups.len();
    loaded.registry.groups.retain(|g| g.name != name);
    if loaded.registry.groups.len() == before {
        return Err(Error::NotFound {
            what: format!("group {name:?}"),
        });
    }
    crate::registry::save(repo, &coop, &mut loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_quota_counts_every_member_and_refuses_at_the_limit() {
        let l = GroupLimit {
            group: "family".into(),
            quota: 100,
            tags: vec![],
        };
        assert!(check(&l, 99, false).is_ok());
        assert!(check(&l, 100, false).is_err());
        assert!(check(&l, 100, true).is_ok());
        match check(&l, 101, true) {
            Err(Error::GroupQuota { group, used, quota }) => {
                assert_eq!((group.as_str(), used, quota), ("family", 101, 100))
            }
            other => panic!("{other:?}"),
        }
    }
}
