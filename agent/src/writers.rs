//! Writers (site keys): the signed writer list every tenant's readers check snapshots
//! against, and whose logs and witnesses count. Creating a writer key file and revoking one
//! are admins' operations (`admins::writer_keys`).
//!
//! The writer list (`writers/<zero tag>/<name>`, SPEC section 18) is signed by an admin (the
//! coop keyring's signer) and readable without keys, so members verify their snapshots
//! against it although they hold no coop key. A writer key file pins the admin keys, so its
//! holder can neither forge the list nor the member registry.

use crate::error::Result;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::id::Id;
use coop_formats::writers::WriterList;

/// The writer list's tag (it belongs to no tenant).
pub const TAG: [u8; 16] = [0; 16];

/// The current writer list and the problems met reading it (a forged or damaged generation
/// is named and skipped; the newest genuine one is in force).
#[derive(Debug, Default)]
pub struct Loaded {
    pub list: WriterList,
    /// Every writer list object listed when it was loaded (a new generation replaces these).
    pub objects: Vec<Id>,
    /// The admin keys it was read with (a change written meanwhile counts if one signed it).
    pub admin_keys: Vec<[u8; 32]>,
    /// Name of the object holding `list` (`None`: no list yet).
    pub name: Option<Id>,
    pub problems: Vec<crate::damage::Problem>,
    /// The generation went backwards at this location: (seen before, now). Readers then
    /// refuse `latest` (the newest list may have revoked the writer of the newest snapshot).
    pub rollback: Option<(u64, u64)>,
}

/// The writer list as signed, generation-numbered state (SPEC 18).
const KIND: crate::control::StateKind = crate::control::StateKind {
    kind: Kind::Writers,
    tag: TAG,
    state_key: "writers",
    label: "the writer list",
};

/// Reads every writer list object and keeps the newest one signed by an admin key. A store
/// that serves an older list (which would un-revoke a stolen writer) is a possible rollback.
pub fn load(repo: &Repo, admin_keys: &[[u8; 32]]) -> Result<Loaded> {
    let g = KIND.load(repo, |bytes| open(repo, admin_keys, bytes))?;
    let (mut list, name) = match g.newest {
        Some((l, n)) => (l, Some(n)),
        None => (
            WriterList {
                repo_id: repo.config.repo_id,
                ..Default::default()
            },
            None,
        ),
    };
    for w in &mut list.writers {
        if let Some(r) = &mut w.revoked {
            r.snapshots.sort();
        }
    }
    Ok(Loaded {
        list,
        objects: g.objects,
        admin_keys: admin_keys.to_vec(),
        name,
        problems: g.problems,
        rollback: g.rollback,
    })
}

/// One writer list object, if an admin signed it for this repository, with its generation.
fn open(
    repo: &Repo,
    admin_keys: &[[u8; 32]],
    bytes: &[u8],
) -> std::result::Result<(WriterList, u64), String> {
    match WriterList::open(bytes, |k| admin_keys.contains(k)) {
        Ok((l, _)) if l.repo_id != repo.config.repo_id => {
            Err("a writer list of another repository".to_string())
        }
        Ok((l, _)) => {
            let generation = l.generation;
            Ok((l, generation))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Writes a new generation of the list (signed by `admin`) and removes the older ones.
/// Refused on a list older than this client saw here (a replayed list could un-revoke a
/// writer or drop a witness).
pub fn save(repo: &Repo, admin: &ed25519_dalek::SigningKey, loaded: &mut Loaded) -> Result<Id> {
    KIND.refuse_rollback(loaded.rollback)?;
    loaded.list.generation += 1;
    loaded.list.updated = crate::now_rfc3339();
    loaded.list.repo_id = repo.config.repo_id;
    let name = KIND.replace(repo, loaded.list.seal(admin), &loaded.objects, |b| {
        open(repo, &loaded.admin_keys, b)
    })?;
    loaded.objects = vec![name];
    loaded.name = Some(name);
    Ok(name)
}

/// What a reader makes of a snapshot's signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The tenant's own signer or a listed, unrevoked site writer.
    Valid,
    /// A revoked writer that signed it before its revocation (the snapshot was known then).
    RevokedBefore(String),
    /// A revoked writer; the snapshot was not in the repository when it was revoked.
    RevokedAfter(String),
    /// Not a writer of this tenant at all.
    Unknown,
}

/// Whether `key` may sign snapshots and manifests of the keyring's tenant at all: the
/// tenant's own writers, the admin keys it trusts, or a site in the writer list.
pub fn may_sign(
    keyring: &coop_formats::keyring::Keyring,
    list: &WriterList,
    key: &[u8; 32],
) -> bool {
    keyring.is_writer(key) || keyring.admin_keys().contains(key) || list.get(key).is_some()
}

/// Decides on a snapshot's signer from the tenant keyring and the writer list.
pub fn judge(
    keyring: &coop_formats::keyring::Keyring,
    list: &WriterList,
    writer: &[u8; 32],
    snapshot: &Id,
) -> Signer {
    judge_key(
        keyring.is_writer(writer) || keyring.admin_keys().contains(writer),
        list,
        writer,
        snapshot,
    )
}

/// Decides on a snapshot's signer: `tenant_key` says whether it is one of the tenant's own
/// keys (its writers or the admin keys it trusts, from its keyring, or for an admin keeping a
/// member tenant up without its keyring, the registry's authority and the admin keys).
pub fn judge_key(tenant_key: bool, list: &WriterList, writer: &[u8; 32], snapshot: &Id) -> Signer {
    if tenant_key {
        return Signer::Valid;
    }
    match list.get(writer) {
        None => Signer::Unknown,
        Some(w) => match &w.revoked {
            None => Signer::Valid,
            Some(r) if r.snapshots.binary_search(snapshot).is_ok() => {
                Signer::RevokedBefore(w.name.clone())
            }
            Some(_) => Signer::RevokedAfter(w.name.clone()),
        },
    }
}

/// The keys whose access logs and cosignatures count (SPEC section 24.1, 24.5): every
/// writer's log (revoked ones too), the admins' logs by key, the witnesses (writers not
/// revoked, revoked ones until their revocation, and the external witnesses), the quorum.
/// Built here, from the admin-signed writer list, so that the log itself depends on no list.
pub fn log_trust(repo: &Repo, admin_keys: &[[u8; 32]]) -> Result<crate::log::Trusted> {
    let list = load(repo, admin_keys)?.list;
    let mut t = crate::log::Trusted {
        quorum: list.log_quorum,
        ..Default::default()
    };
    for w in &list.writers {
        // A revoked writer's log stays readable (its entries happened).
        t.logs.insert(
            crate::log::origin(repo, &w.name, &w.public_key),
            crate::log::LogOwner {
                key: w.public_key,
                name: w.name.clone(),
                admin: false,
            },
        );
        let name = crate::log::witness_name(&w.name, &w.public_key);
        match &w.revoked {
            None => t.witnesses.push((name, w.public_key)),
            Some(r) => {
                let at = chrono::DateTime::parse_from_rfc3339(&r.time)
                    .map(|t| t.timestamp().max(0) as u64)
                    .unwrap_or(0);
                t.revoked_witnesses.push((name, w.public_key, at));
            }
        }
    }
    for w in &list.witnesses {
        t.witnesses.push((
            crate::log::witness_name(&w.name, &w.public_key),
            w.public_key,
        ));
    }
    for k in admin_keys {
        // An admin key is an admin whatever a writer entry of the same key says.
        t.logs.insert(
            crate::log::origin(repo, "admin", k),
            crate::log::LogOwner {
                key: *k,
                name: "admin".to_string(),
                admin: true,
            },
        );
    }
    crate::log::activate(repo, &mut t)?;
    Ok(t)
}
