//! Members: the registry, per-member tenants, and key re-wrapping.
//!
//! A member `NAME` gets the tenant `member/NAME`: its own ID key, index key and data
//! identity, in a keyring wrapped to the member's recipients plus the cooperative's recovery
//! recipients. Dedup never crosses tenants. The registry (sealed with the coop tenant's index
//! key, signed by a coop writer) lists members, quotas, the recovery recipients and the site
//! signing keys, and carries each member tenant's *writer* material, so agents holding only a
//! coop writer key can back members up without being able to read them.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
use crate::repo::{self, Repo};
use coop_formats::keyring::{Keyring, Writer};
use coop_formats::registry::{check_member_name, Member, Registry, SiteKey};
use std::sync::Arc;

pub const DIR: &str = "registry";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The current registry (highest generation), with the paths of every registry object.
pub fn load(repo: &Repo, coop: &TenantKeys) -> Result<(Registry, Vec<String>)> {
    let mut best: Option<Registry> = None;
    let mut paths = Vec::new();
    for obj in repo
        .store
        .list(&format!("{DIR}/{}", repo::tag_hex(&coop.tag)))?
    {
        let bytes = match repo.store.get(&obj.path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let (r, _) = Registry::open(&coop.index_key, coop.tag, &bytes, |k| match &coop.reader {
            Some(rk) => rk.keyring.is_writer(k),
            None => true, // a writer cannot read the writers list; the AEAD already proves a coop writer made it
        })
        .map_err(|e| Error::corrupt(&obj.path, e))?;
        paths.push(obj.path);
        if best.as_ref().is_none_or(|b| r.generation > b.generation) {
            best = Some(r);
        }
    }
    Ok((best.unwrap_or_default(), paths))
}

/// Writes a new generation of the registry and removes the older objects.
pub fn save(repo: &Repo, coop: &TenantKeys, reg: &mut Registry, old: &[String]) -> Result<()> {
    reg.generation += 1;
    reg.updated = now();
    let sealed = reg.seal(&coop.index_key, coop.tag, &coop.signer);
    let id = coop_formats::id::Id::of_stored(&sealed);
    let path = format!("{DIR}/{}/{id}", repo::tag_hex(&coop.tag));
    repo.store.put(&path, sealed)?;
    for p in old.iter().filter(|p| **p != path) {
        repo.store.delete(p)?;
    }
    Ok(())
}

fn admin(
    repo: &Repo,
    access: &Access,
) -> Result<(TenantKeys, Arc<Vec<coop_formats::crypt::Identity>>)> {
    let Access::Identity(ids) = access else {
        return Err(Error::AccessDenied {
            what: "managing members needs an admin identity, not a writer key".into(),
        });
    };
    Ok((repo.tenant_keys(access, "coop")?, Arc::clone(ids)))
}

/// Adds a member: creates its tenant and registers it.
pub fn add(
    repo: &Repo,
    access: &Access,
    name: &str,
    recipients: Vec<String>,
    quota: Option<u64>,
) -> Result<Member> {
    check_member_name(name).map_err(|what| Error::Usage { what })?;
    if recipients.is_empty() {
        return Err(Error::Usage {
            what: "a member needs at least one --recipient (their age or SSH public key)".into(),
        });
    }
    for r in &recipients {
        coop_formats::crypt::parse_recipient(r).map_err(|e| Error::Usage {
            what: e.to_string(),
        })?;
    }
    let (coop, _) = admin(repo, access)?;
    let coop_ring = &coop.reader()?.keyring;
    let (mut reg, old) = load(repo, &coop)?;
    if reg.member(name).is_some() {
        return Err(Error::Usage {
            what: format!("member {name:?} exists already (see `coop member list`)"),
        });
    }
    if reg.recovery.is_empty() {
        reg.recovery = coop_ring.recipients.clone();
    }
    reg.sites = coop_ring
        .writers
        .iter()
        .map(|w| SiteKey {
            name: w.name.clone(),
            public_key: w.public_key,
        })
        .collect();
    let mut all = recipients.clone();
    all.extend(
        reg.recovery
            .iter()
            .filter(|r| !recipients.contains(r))
            .cloned(),
    );
    let mut ring = Keyring::generate(
        &format!("member/{name}"),
        repo.config.repo_id,
        repo.config_hash,
        all,
        now(),
    );
    for w in &coop_ring.writers {
        if !ring.is_writer(&w.public_key) {
            ring.writers.push(w.clone());
        }
    }
    repo.write_keyring(&ring)?;
    let m = Member {
        name: name.into(),
        recipients,
        quota,
        tenant_tag: ring.tenant_tag,
        added: now(),
        id_key: ring.id_key,
        index_key: ring.index_key,
        data_recipient: ring
            .data_recipient()
            .map_err(|e| Error::corrupt("keyring", e))?,
    };
    reg.members.push(m.clone());
    save(repo, &coop, &mut reg, &old)?;
    Ok(m)
}

/// Removes a member from the registry. Its stored data is kept (forget and prune it with
/// `--tenant member/NAME` to delete it).
pub fn remove(repo: &Repo, access: &Access, name: &str) -> Result<()> {
    let (coop, _) = admin(repo, access)?;
    let (mut reg, old) = load(repo, &coop)?;
    let before = reg.members.len();
    reg.members.retain(|m| m.name != name);
    if reg.members.len() == before {
        return Err(Error::NotFound {
            what: format!("member {name:?}"),
            hint: " (see `coop member list`)".into(),
        });
    }
    save(repo, &coop, &mut reg, &old)
}

/// Changes who can read a member's tenant: re-wraps its keyring; no data is re-encrypted.
pub fn set_recipients(
    repo: &Repo,
    access: &Access,
    name: &str,
    add: &[String],
    remove: &[String],
) -> Result<Member> {
    for r in add {
        coop_formats::crypt::parse_recipient(r).map_err(|e| Error::Usage {
            what: e.to_string(),
        })?;
    }
    let (coop, ids) = admin(repo, access)?;
    let (mut reg, old) = load(repo, &coop)?;
    let recovery = reg.recovery.clone();
    let Some(m) = reg.members.iter_mut().find(|m| m.name == name) else {
        return Err(Error::NotFound {
            what: format!("member {name:?}"),
            hint: String::new(),
        });
    };
    m.recipients.retain(|r| !remove.contains(r));
    for r in add {
        if !m.recipients.contains(r) {
            m.recipients.push(r.clone());
        }
    }
    if m.recipients.is_empty() {
        return Err(Error::Usage {
            what: "a member must keep at least one recipient".into(),
        });
    }
    let rings = repo.keyrings(&ids)?;
    let mut ring = rings.into_iter().find(|k| k.tenant == m.tenant()).ok_or_else(|| Error::AccessDenied {
        what: format!("your identity cannot open the keyring of member/{name} (not a recovery recipient?)"),
    })?;
    ring.recipients = m.recipients.clone();
    ring.recipients.extend(
        recovery
            .iter()
            .filter(|r| !m.recipients.contains(r))
            .cloned(),
    );
    ring.generation += 1;
    let updated = m.clone();
    let new_id = repo.write_keyring(&ring)?;
    // Older generations were wrapped to the old recipients: remove them.
    for obj in repo
        .store
        .list(&format!("keys/{}", repo::tag_hex(&ring.tenant_tag)))?
    {
        if repo::name_of(&obj.path) != Some(new_id) {
            repo.store.delete(&obj.path)?;
        }
    }
    save(repo, &coop, &mut reg, &old)?;
    Ok(updated)
}

/// Adds a new writer (site) key to the registry's site list and to every member keyring the
/// identity can open, so the snapshots it signs verify for members.
pub fn add_writer_everywhere(repo: &Repo, access: &Access, w: &Writer) -> Result<()> {
    let (coop, ids) = admin(repo, access)?;
    let (mut reg, old) = load(repo, &coop)?;
    if reg.members.is_empty() && old.is_empty() {
        return Ok(());
    }
    for mut ring in repo
        .keyrings(&ids)?
        .into_iter()
        .filter(|k| k.tenant.starts_with("member/"))
    {
        if !ring.is_writer(&w.public_key) {
            ring.writers.push(w.clone());
            ring.generation += 1;
            repo.write_keyring(&ring)?;
        }
    }
    if !reg.sites.iter().any(|s| s.public_key == w.public_key) {
        reg.sites.push(SiteKey {
            name: w.name.clone(),
            public_key: w.public_key,
        });
    }
    save(repo, &coop, &mut reg, &old)
}

/// Keys for a member tenant from a coop writer key: write-only, from the registry.
pub fn writer_keys_for_member(
    repo: &Repo,
    coop_writer: &TenantKeys,
    name: &str,
) -> Result<TenantKeys> {
    let (reg, _) = load(repo, coop_writer)?;
    let m = reg.member(name).ok_or_else(|| Error::NotFound {
        what: format!("member {name:?} in the registry"),
        hint: " (an admin adds members with `coop member add`)".into(),
    })?;
    let recipients = vec![coop_formats::crypt::parse_recipient(&m.data_recipient)
        .map_err(|e| Error::corrupt("registry", e))?];
    Ok(TenantKeys {
        tenant: m.tenant(),
        tag: m.tenant_tag,
        id_key: m.id_key,
        index_key: m.index_key,
        recipient_strings: vec![m.data_recipient.clone()],
        recipients: Arc::new(recipients),
        signer: coop_writer.signer.clone(),
        writer_name: coop_writer.writer_name.clone(),
        reader: None,
    })
}

/// The registry entry of a member tenant (`member/NAME`), if any, read with coop keys.
pub fn member_of(repo: &Repo, access: &Access, tenant: &str) -> Result<Option<Member>> {
    let Some(name) = tenant.strip_prefix("member/") else {
        return Ok(None);
    };
    let coop = repo.tenant_keys(access, "coop")?;
    Ok(load(repo, &coop)?.0.member(name).cloned())
}
