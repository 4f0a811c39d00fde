//! Writer keys as an admin makes and revokes them (SPEC section 18): a new writer's key file
//! and its place in the writer list, and revocation after a theft. Here, above `tenant`,
//! because both need the admin's keys to the service tenant; the writer list itself, which
//! every reader checks, is `writers`.

use crate::error::{Error, Result};
use crate::keys::{self, Access, TenantKeys};
use crate::layout::Kind;
use crate::repo::Repo;
use crate::writers::{load, save};
use coop_formats::id::Id;
use coop_formats::writerkey::{WriterKey, FORMAT};
use coop_formats::writers::{Revocation, SiteWriter};
use std::path::Path;

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
