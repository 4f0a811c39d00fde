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

pub(crate) mod material;

/// The current registry, the names of every registry object, and what was wrong with any.
#[derive(Debug, Default)]
pub struct Loaded {
    pub registry: Registry,
    pub objects: Vec<coop_formats::id::Id>,
    pub problems: Vec<Problem>,
    /// The generation went backwards at this location: (seen before, now).
    pub rollback: Option<(u64, u64)>,
}

/// The registry as signed, generation-numbered state (SPEC 15).
fn kind(coop: &TenantKeys) -> crate::control::StateKind {
    crate::control::StateKind {
        kind: Kind::Registry,
        tag: coop.tag,
        state_key: "registry",
        label: "the member registry",
    }
}

/// The current registry: the highest generation signed by an admin. A forged or damaged
/// object is named and skipped; a generation lower than this client saw is reported.
pub fn load(repo: &Repo, coop: &TenantKeys) -> Result<Loaded> {
    let g = kind(coop).load(repo, |bytes| open(coop, bytes))?;
    Ok(Loaded {
        registry: g.newest.map(|(r, _)| r).unwrap_or_default(),
        objects: g.objects,
        problems: g.problems,
        rollback: g.rollback,
    })
}

/// One registry object, if an admin signed it for this tenant, with its generation.
fn open(coop: &TenantKeys, bytes: &[u8]) -> std::result::Result<(Registry, u64), String> {
    Registry::open(&coop.index_key, coop.tag, bytes, |k| {
        coop.admin_keys.contains(k)
    })
    .map(|(r, _)| {
        let generation = r.generation;
        (r, generation)
    })
    .map_err(|e| e.to_string())
}

/// The registry as the base of a change: refused when it is older than this client saw here
/// (a replayed registry), before anything depending on it is written.
pub(crate) fn load_for_change(repo: &Repo, coop: &TenantKeys) -> Result<Loaded> {
    let loaded = load(repo, coop)?;
    kind(coop).refuse_rollback(loaded.rollback)?;
    Ok(loaded)
}

/// Writes a new generation of the registry (signed with the admin key) and removes the
/// older objects.
///
/// Refused on a registry older than this client saw here: a replayed registry (from before a
/// recovery split, say) must not become the base of a new generation.
pub(crate) fn save(repo: &Repo, coop: &TenantKeys, loaded: &mut Loaded) -> Result<()> {
    kind(coop).refuse_rollback(loaded.rollback)?;
    let reg = &mut loaded.registry;
    reg.generation += 1;
    reg.updated = crate::now_rfc3339();
    let sealed = reg.seal(&coop.index_key, coop.tag, &coop.authority_signer()?);
    let name = kind(coop).replace(repo, sealed, &loaded.objects, |b| open(coop, b))?;
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
    let moved = check_material(repo, coop_writer, m)?;
    let keys = member_writer_keys(coop_writer, m)?;
    if let Some(generation) = moved {
        // Any party's client that follows a member's new keys says so where the member reads.
        log_followed(repo, coop_writer, &keys, generation);
    }
    Ok(keys)
}

/// The writer material of member `m` a writer may encrypt to (SPEC 15.3): signed by the
/// member tenant's authority, for the tenant and authority this client first saw under that
/// name, and never older than the material it accepted before. Returns the signature's
/// generation when this client now follows new material.
///
/// An admin signs the registry but, after the recovery split, cannot open a member's keyring
/// and so cannot sign for its authority: a registry in which one admin put a key of her own
/// as a member's data recipient (or a whole new tenant under the member's name) is refused
/// here, before anything is encrypted to it.
///
/// New material (and any material a client sees first) must also be what the admins' log
/// authorizes for the member once the log holds a split ([`material::check`]): the member
/// tenant's signer alone, which admins held before the split, no longer re-keys a member.
/// Whether there was a split is read from the log, not from the registry, which one admin
/// signs and could write without its recovery setup.
pub(crate) fn check_material(repo: &Repo, coop: &TenantKeys, m: &Member) -> Result<Option<u64>> {
    use coop_formats::registry::MaterialError;
    let cache = repo.cache_dir();
    let repo_id = &repo.config.repo_id;
    let refuse = |what: String| Error::MemberKeysChanged {
        member: m.name.clone(),
        what,
    };
    let signed = match m.verify_material(repo_id) {
        Ok(g) => Some(g),
        Err(MaterialError::Unsigned { .. }) => None,
        Err(e @ MaterialError::BadSignature { .. }) => return Err(refuse(e.to_string())),
    };
    let authorize = || -> Result<()> {
        match material::check(repo, coop, m)? {
            material::Verdict::Refused(why) => Err(refuse(why)),
            material::Verdict::NoRule | material::Verdict::Authorized => Ok(()),
        }
    };
    let material = material_hash(m);
    let pin = crate::state::MemberPin {
        tenant_tag: m.tenant_tag,
        authority: m.authority,
        material,
        signed,
    };
    let Some(before) = crate::state::member_pin(cache, repo_id, &m.name) else {
        authorize()?;
        if signed.is_none() {
            tracing::warn!(
                "member {:?}'s keys in the registry are not signed by the member tenant (a \
                 registry from before coop signed them); this client pins them as they are. An \
                 admin who reads the member signs them with `coop member recipients` or `coop \
                 recovery init`",
                m.name
            );
        }
        crate::state::set_member_pin(cache, repo_id, &m.name, pin);
        return Ok(None);
    };
    if before.tenant_tag != m.tenant_tag || before.authority != m.authority {
        return Err(refuse(format!(
            "the registry names another tenant for this member than this client saw before \
             (tenant {} with authority {}, now {} with {}): a registry signed by an admin cannot \
             replace a member's tenant. If the member confirms the change, remove {:?} from the members of this client's state file ({}/state.json)",
            hex::encode(before.tenant_tag),
            hex::encode(&before.authority[..8]),
            hex::encode(m.tenant_tag),
            hex::encode(&m.authority[..8]),
            m.name,
            cache
                .map(|c| c.join(repo_id.to_hex()).display().to_string())
                .unwrap_or_default(),
        )));
    }
    match (before.signed, signed) {
        (b, Some(g)) if material == before.material => {
            if b.is_none_or(|b| g > b) {
                crate::state::set_member_pin(cache, repo_id, &m.name, pin);
            }
            Ok(None)
        }
        (Some(b), Some(g)) if g <= b => Err(refuse(format!(
            "the registry names keys the member tenant signed at generation {g}, older than \
             generation {b} this client accepted (a replayed statement, perhaps with a key a \
             past recovery released)"
        ))),
        (_, Some(g)) => {
            authorize()?;
            crate::state::set_member_pin(cache, repo_id, &m.name, pin);
            Ok(Some(g))
        }
        (Some(b), None) => Err(refuse(format!(
            "the registry's keys for this member carry no signature of the member tenant, \
             while this client accepted signed keys (generation {b}) before"
        ))),
        (None, None) if material == before.material => Ok(None),
        (None, None) => Err(refuse(
            "the registry's keys for this member changed without a signature of the member \
             tenant (an admin alone cannot re-key a member)"
                .into(),
        )),
    }
}

/// Pins member `m`'s material as this client just signed and saved it (the split, the end of
/// a recovery): the client that made the new keys does not "follow" them, and refuses their
/// predecessors from now on like every writer that followed. Call only after the registry
/// naming them is saved.
pub(crate) fn pin_signed(repo: &Repo, m: &Member) {
    if let Ok(g) = m.verify_material(&repo.config.repo_id) {
        let pin = crate::state::MemberPin {
            tenant_tag: m.tenant_tag,
            authority: m.authority,
            material: material_hash(m),
            signed: Some(g),
        };
        crate::state::set_member_pin(repo.cache_dir(), &repo.config.repo_id, &m.name, pin);
    }
}

fn material_hash(m: &Member) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("coop member material pin v1");
    h.update(&(m.data_recipient.len() as u64).to_le_bytes());
    h.update(m.data_recipient.as_bytes());
    h.update(&m.id_key);
    h.update(&m.index_key);
    *h.finalize().as_bytes()
}

/// Logs that this client now encrypts member `keys`' data to new, member-signed keys: an
/// entry about the member, in their export (a re-keying by anyone is seen).
fn log_followed(repo: &Repo, coop: &TenantKeys, keys: &TenantKeys, generation: u64) {
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(
        &actor,
        coop_formats::tlog::Event::KeyChange,
        Some(keys),
        None,
        Some(crate::log::FOLLOWING.into()),
    );
    // The member's new keys, signed by her tenant at this generation.
    e.data.insert("generation".into(), generation.into());
    if let Err(e) = crate::log::append(repo, &actor, &[e]) {
        tracing::warn!(
            "following a member's new keys could not be logged: {}",
            crate::error::chain(&e)
        );
    }
}

/// The keyed tag the access log names member `m`'s tenant by (see
/// [`crate::log::tenant_tag`]), from her registry entry.
pub fn log_tag(m: &Member) -> String {
    crate::log::tenant_tag_of(&m.id_key, &m.tenant_tag)
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
