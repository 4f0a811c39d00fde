//! The member registry (SPEC section 15): the admin-signed, generation-numbered list of
//! members, quotas, recovery recipients and each member tenant's writer material. Reading it
//! (with the rollback check against client state), writing a new generation (logged), and the
//! write-only keys of a member tenant it yields for a coop writer. The operations that change
//! members (add, remove, quota, recipients) are in `members`, above `tenant`.

use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::registry::{Member, Registry};
use std::sync::Arc;

/// The current registry, the names of every registry object, and what was wrong with any.
#[derive(Debug, Default)]
pub struct Loaded {
    pub registry: Registry,
    pub objects: Vec<coop_formats::id::Id>,
    pub problems: Vec<Problem>,
    /// The generation went backwards at this location: (seen before, now).
    pub rollback: Option<(u64, u64)>,
}

/// The current registry: the highest generation signed by an admin. A forged or damaged
/// object is named and skipped; a generation lower than this client saw is reported.
pub fn load(repo: &Repo, coop: &TenantKeys) -> Result<Loaded> {
    let mut out = Loaded::default();
    let mut best: Option<Registry> = None;
    for obj in repo.list(Kind::Registry, &coop.tag)? {
        out.objects.push(obj.name);
        let bytes = match repo.get_opt(Kind::Registry, &coop.tag, &obj.name) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(e @ Error::Damaged { .. }) => {
                out.problems.push(Problem::damaged(&obj.path, &e));
                continue;
            }
            Err(e) => return Err(e),
        };
        match Registry::open(&coop.index_key, coop.tag, &bytes, |k| {
            coop.admin_keys.contains(k)
        }) {
            Ok((r, _)) => {
                if best.as_ref().is_none_or(|b| r.generation > b.generation) {
                    best = Some(r);
                }
            }
            Err(e) => out.problems.push(Problem::forged(&obj.path, e)),
        }
    }
    out.registry = best.unwrap_or_default();
    if let Some((before, now)) = crate::state::observe_generation(
        repo.cache_dir(),
        &repo.config.repo_id,
        &repo.store.location(),
        "registry",
        out.registry.generation,
    ) {
        out.rollback = Some((before, now));
        out.problems.push(Problem::damaged(
            Kind::Registry.dir(),
            format!(
                "POSSIBLE ROLLBACK: the member registry is at generation {now}, but this client saw \
                 generation {before} here; the newest one was removed or the store serves an old state"
            ),
        ));
    }
    Ok(out)
}

/// The registry as the base of a change: refused when it is older than this client saw here
/// (a replayed registry), before anything depending on it is written.
pub(crate) fn load_for_change(repo: &Repo, coop: &TenantKeys) -> Result<Loaded> {
    let loaded = load(repo, coop)?;
    refuse_rollback(&loaded)?;
    Ok(loaded)
}

fn refuse_rollback(loaded: &Loaded) -> Result<()> {
    if let Some((before, now)) = loaded.rollback {
        return Err(Error::damaged(
            Kind::Registry.dir(),
            format!(
                "POSSIBLE ROLLBACK: the member registry is at generation {now}, but this client saw \
                 generation {before} here; nothing is changed on an old registry. Compare with another \
                 site's replica and restore the newest registry there"
            ),
        ));
    }
    Ok(())
}

/// Writes a new generation of the registry (signed with the admin key) and removes the
/// older objects.
///
/// Refused on a registry older than this client saw here: a replayed registry (from before a
/// recovery split, say) must not become the base of a new generation.
pub(crate) fn save(repo: &Repo, coop: &TenantKeys, loaded: &mut Loaded) -> Result<()> {
    refuse_rollback(loaded)?;
    let reg = &mut loaded.registry;
    reg.generation += 1;
    reg.updated = crate::now_rfc3339();
    let sealed = reg.seal(&coop.index_key, coop.tag, &coop.authority_signer()?);
    let name = repo.put(Kind::Registry, &coop.tag, sealed)?;
    for old in loaded.objects.iter().filter(|o| **o != name) {
        repo.delete(Kind::Registry, &coop.tag, old)?;
    }
    loaded.objects = vec![name];
    if let Err(e) = crate::log::record(
        repo,
        coop,
        coop_formats::tlog::Event::RegistryChange,
        None,
        Some(format!("generation {}", loaded.registry.generation)),
    ) {
        tracing::warn!(
            "the registry change could not be logged: {}",
            crate::error::chain(&e)
        );
    }
    Ok(())
}

/// Keys for a member tenant from a coop writer key: write-only, from the registry.
pub fn writer_keys_for_member(
    repo: &Repo,
    coop_writer: &TenantKeys,
    name: &str,
) -> Result<TenantKeys> {
    let loaded = load(repo, coop_writer)?;
    for p in &loaded.problems {
        tracing::warn!("{p}");
    }
    let m = loaded
        .registry
        .member(name)
        .ok_or_else(|| Error::NotFound {
            what: format!("member {name:?} in the registry"),
        })?;
    member_writer_keys(coop_writer, m)
}

/// Write-only keys for member `m`'s tenant, from its registry entry.
pub fn member_writer_keys(coop_writer: &TenantKeys, m: &Member) -> Result<TenantKeys> {
    let recipients = vec![coop_formats::crypt::parse_recipient(&m.data_recipient)
        .map_err(|e| Error::damaged(Kind::Registry.dir(), e))?];
    Ok(TenantKeys {
        tenant: m.tenant(),
        tag: m.tenant_tag,
        id_key: m.id_key,
        index_key: m.index_key,
        recipient_strings: vec![m.data_recipient.clone()],
        recipients: Arc::new(recipients),
        signer: coop_writer.signer.clone(),
        writer_name: coop_writer.writer_name.clone(),
        authorities: vec![m.authority],
        admin_keys: coop_writer.admin_keys.clone(),
        reader: None,
        person: None,
        // The service tenant's data recipient (a writer key's, or the coop keyring's): the
        // admins see the member's snapshot metadata, never its files.
        snapshot_recipients: coop_writer.recipient_strings.clone(),
        upkeep: None,
        content: crate::keys::ContentAccess::Open,
    })
}
