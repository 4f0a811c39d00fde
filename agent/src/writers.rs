//! Writers (site keys): creating a writer key file, the signed writer list every tenant's
//! readers check snapshots against, and revocation after a theft.
//!
//! The writer list (`writers/<zero tag>/<name>`, SPEC section 18) is signed by an admin (the
//! coop keyring's signer) and readable without keys, so members verify their snapshots
//! against it although they hold no coop key. A writer key file pins the admin keys, so its
//! holder can neither forge the list nor the member registry.

use crate::error::{Error, Result};
use crate::keys::{self, Access, TenantKeys};
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::id::Id;
use coop_formats::writerkey::{WriterKey, FORMAT};
use coop_formats::writers::{Revocation, SiteWriter, WriterList};
use std::path::Path;

/// The writer list's tag (it belongs to no tenant).
pub const TAG: [u8; 16] = [0; 16];

/// The current writer list and the problems met reading it (a forged or damaged generation
/// is named and skipped; the newest genuine one is in force).
#[derive(Debug, Default)]
pub struct Loaded {
    pub list: WriterList,
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
    let g = KIND.load(repo, |bytes| {
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
    })?;
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
        name,
        problems: g.problems,
        rollback: g.rollback,
    })
}

/// Writes a new generation of the list (signed by `admin`) and removes the older ones.
/// Refused on a list older than this client saw here (a replayed list could un-revoke a
/// writer or drop a witness).
pub fn save(repo: &Repo, admin: &ed25519_dalek::SigningKey, loaded: &mut Loaded) -> Result<Id> {
    KIND.refuse_rollback(loaded.rollback)?;
    loaded.list.generation += 1;
    loaded.list.updated = crate::now_rfc3339();
    loaded.list.repo_id = repo.config.repo_id;
    let name = KIND.replace(repo, loaded.list.seal(admin))?;
    loaded.name = Some(name);
    Ok(name)
}

/// The coop tenant's keys for an admin: managing writers needs an identity of the coop tenant.
fn admin(repo: &Repo, access: &Access) -> Result<TenantKeys> {
    if !matches!(access, Access::Identity(..)) {
        return Err(Error::AccessDenied {
            what: "managing writers needs an admin identity (of tenant coop), not a writer key"
                .into(),
        });
    }
    crate::tenant::keys(repo, access, "coop")
}

/// Creates a writer for the coop tenant (and so every member tenant): adds its key to the
/// writer list and writes the key file (mode 0600, refusing to overwrite).
pub fn export(repo: &Repo, access: &Access, name: &str, out: &Path) -> Result<WriterKey> {
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(format!("bad writer name {name:?}")));
    }
    // Authority comes from keys, never names (SPEC section 24.1); a site named like the
    // admins' log would still mislead people reading `coop log show`.
    if name.eq_ignore_ascii_case("admin") {
        return Err(Error::invalid(
            "a site writer cannot be named \"admin\" (the admins' log is named so); choose the site's name",
        ));
    }
    let coop = admin(repo, access)?;
    let ring = &coop.reader()?.keyring;
    let mut loaded = load(repo, &coop.admin_keys)?;
    if loaded.list.writers.iter().any(|w| w.name == name) {
        return Err(Error::invalid(format!(
            "a writer named {name:?} exists already (see the writer list); choose another name"
        )));
    }
    if out.exists() {
        return Err(Error::invalid(format!(
            "{} exists already; choose another file",
            out.display()
        )));
    }
    let seed: [u8; 32] = coop_formats::random_bytes();
    let public = coop_formats::keyring::public_key_of(&seed);
    let wk = WriterKey {
        format: FORMAT.into(),
        version: 1,
        name: name.into(),
        repo_id: repo.config.repo_id,
        tenant: ring.tenant.clone(),
        tenant_tag: ring.tenant_tag,
        config_hash: repo.config_hash,
        id_key: ring.id_key,
        index_key: ring.index_key,
        recipients: coop.recipient_strings.clone(),
        signing_key: seed,
        admin_keys: coop.admin_keys.clone(),
    };
    loaded.list.writers.push(SiteWriter {
        name: name.into(),
        public_key: public,
        added: crate::now_rfc3339(),
        revoked: None,
    });
    // The list first: a key file whose writer is not listed would sign snapshots nobody accepts.
    save(repo, &coop.authority_signer()?, &mut loaded)?;
    // The adoption is the log entry: the new key witnesses only once this entry is witnessed
    // (SPEC 24.5).
    if let Err(e) = crate::log::record_witness(repo, &coop, name, &public) {
        tracing::warn!(
            "the new writer key could not be logged, so it witnesses nothing until it is \
             (run `coop log policy --witness {name}=<key>`): {}",
            crate::error::chain(&e)
        );
    }
    keys::write_secret_file(out, &wk.encode())?;
    Ok(wk)
}

/// Revokes a writer: snapshots it signs from now on (or backdates) are flagged in every
/// tenant. Every snapshot object in the repository now is recorded as known, so a backdated
/// forgery cannot pass as older.
pub fn revoke(repo: &Repo, access: &Access, name: &str) -> Result<SiteWriter> {
    let coop = admin(repo, access)?;
    let mut loaded = load(repo, &coop.admin_keys)?;
    let mut snapshots: Vec<Id> = repo
        .store
        .list(Kind::Snapshot.dir())?
        .iter()
        .filter_map(|o| crate::layout::ObjectPath::parse(&o.path))
        .filter(|p| p.kind == Kind::Snapshot)
        .map(|p| p.name)
        .collect();
    snapshots.sort();
    // Another site's key named as a witness of this repository's logs (`log policy --witness`,
    // OPERATOR.md section 7): revoked the same forward-only way, as a revoked entry of the
    // writer list. Its cosignatures made before now keep counting, later ones count for
    // nothing, and it signed no snapshot here, so any snapshot it signs is flagged.
    if !loaded.list.writers.iter().any(|w| w.name == name) {
        if let Some(i) = loaded.list.witnesses.iter().position(|w| w.name == name) {
            let x = loaded.list.witnesses.remove(i);
            loaded.list.writers.push(SiteWriter {
                name: x.name,
                public_key: x.public_key,
                added: crate::now_rfc3339(),
                revoked: None,
            });
        }
    }
    let w = loaded
        .list
        .writers
        .iter_mut()
        .find(|w| w.name == name)
        .ok_or_else(|| Error::NotFound {
            what: format!("writer or witness {name:?}"),
        })?;
    if w.revoked.is_some() {
        return Err(Error::invalid(format!(
            "writer {name:?} is revoked already"
        )));
    }
    w.revoked = Some(Revocation {
        time: crate::now_rfc3339(),
        snapshots,
    });
    let revoked = w.clone();
    save(repo, &coop.authority_signer()?, &mut loaded)?;
    if let Err(e) = crate::log::record(
        repo,
        &coop,
        coop_formats::tlog::Event::Revoke,
        None,
        Some(name.to_string()),
    ) {
        tracing::warn!(
            "the revocation could not be logged: {}",
            crate::error::chain(&e)
        );
    }
    Ok(revoked)
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
