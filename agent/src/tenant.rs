//! A tenant's keys from what the caller holds: an identity opens the tenant's keyring; a
//! writer key holds the coop tenant's writer material and reaches member tenants through the
//! member registry.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
use crate::repo::Repo;
use std::sync::Arc;

/// The keys for `tenant` from what the caller holds.
pub fn keys(repo: &Repo, access: &Access, tenant: &str) -> Result<TenantKeys> {
    match access {
        Access::Writer(wk) => writer_keys(repo, wk, tenant),
        Access::Identity(ids, person) => identity_keys(repo, ids, person.as_deref(), tenant),
    }
}

/// A writer key's keys for `tenant`: its own tenant, or (for a coop writer) a member's
/// write-only keys from the registry.
fn writer_keys(
    repo: &Repo,
    wk: &coop_formats::writerkey::WriterKey,
    tenant: &str,
) -> Result<TenantKeys> {
    if wk.repo_id != repo.config.repo_id {
        return Err(Error::AccessDenied {
            what: format!(
                "the writer key is for repository {}, not this one ({})",
                wk.repo_id.short(),
                repo.config.repo_id.short()
            ),
        });
    }
    if wk.config_hash != repo.config_hash {
        return Err(Error::damaged(
            crate::layout::CONFIG,
            "the config differs from the one the writer key was made for (tampering?)",
        ));
    }
    if wk.tenant == "coop" && tenant.starts_with("member/") {
        let mut coop = TenantKeys::from_writer_key(wk)?;
        // Member snapshots' metadata goes to the service tenant's current data key.
        follow_coop_recipient(repo, &mut coop);
        return crate::registry::writer_keys_for_member(repo, &coop, &tenant["member/".len()..]);
    }
    if wk.tenant != tenant {
        return Err(Error::AccessDenied {
            what: format!(
                "the writer key is for tenant {:?}, not {:?}",
                wk.tenant, tenant
            ),
        });
    }
    let mut keys = TenantKeys::from_writer_key(wk)?;
    if tenant == "coop" {
        follow_coop_recipient(repo, &mut keys);
    }
    Ok(keys)
}

/// An identity's keys for `tenant`, from the keyring it opens. A member tenant read by
/// anyone but the member needs a logged read first; an admin's entries name the person.
fn identity_keys(
    repo: &Repo,
    ids: &Arc<Vec<coop_formats::crypt::Identity>>,
    person: Option<&ed25519_dalek::SigningKey>,
    tenant: &str,
) -> Result<TenantKeys> {
    let found = repo.keyrings(ids)?;
    if found.conflicted.iter().any(|t| t == tenant) {
        return Err(Error::damaged(
            crate::layout::Kind::Keyring.dir(),
            format!("two different keyrings claim tenant {tenant:?} (tampering?); the other tenants are not affected"),
        ));
    }
    for p in &found.problems {
        tracing::warn!("{p}");
    }
    let coop_ring = found.rings.iter().find(|r| r.tenant == "coop").cloned();
    let Some(k) = found.rings.iter().find(|k| k.tenant == tenant).cloned() else {
        return Err(no_keyring(repo, ids, tenant, coop_ring, &found.problems));
    };
    let member = tenant.starts_with("member/");
    // A member's files are the member's: any other reader (an admin's recovery key, a
    // recovery identity, a spare key) has them only after logging the read.
    let own = match member {
        false => true,
        true if !k.owners.is_empty() => holds_one_of(ids, &k.owners),
        // A keyring from before owners were recorded: whoever opens tenant coop is an
        // admin, anyone else the member.
        true => coop_ring.is_none(),
    };
    let mut keys = TenantKeys::from_keyring(k, Arc::clone(ids))?;
    // An admin's entries name the person (SPEC 24.3).
    if coop_ring.is_some() {
        keys.person = person.cloned();
    }
    if !own {
        keys.content = crate::keys::ContentAccess::NeedsLog;
    }
    // An admin (or agent with an identity) backing up a member signs as the site, with the
    // coop tenant's signer (the admin key, which member keyrings trust), and encrypts the
    // snapshots' metadata to the service tenant too.
    if let (true, Some(ring)) = (member, coop_ring) {
        let signer = ring.default_signer();
        let coop = TenantKeys::from_keyring(ring, Arc::clone(ids))?;
        keys.snapshot_recipients = coop.recipient_strings.clone();
        if keys.admin_keys.contains(&signer.verifying_key().to_bytes()) {
            keys.signer = signer;
        }
    }
    Ok(keys)
}

/// Why no keyring of `tenant` opens: no such member (for an admin), a damaged keyring that
/// may be the one, an admin who does not read members after the split, or not a recipient.
fn no_keyring(
    repo: &Repo,
    ids: &Arc<Vec<coop_formats::crypt::Identity>>,
    tenant: &str,
    coop_ring: Option<coop_formats::keyring::Keyring>,
    problems: &[crate::damage::Problem],
) -> Error {
    let mut admin_of_member = false;
    if let (Some(name), Some(ring)) = (tenant.strip_prefix("member/"), coop_ring) {
        let reg = TenantKeys::from_keyring(ring, Arc::clone(ids))
            .and_then(|coop| crate::registry::load(repo, &coop));
        match reg {
            Err(e) => return e,
            Ok(l) if !l.registry.members.iter().any(|m| m.name == name) => {
                return Error::NotFound {
                    what: format!(
                        "member {name:?} (no such member in the registry; `coop member list` shows them)"
                    ),
                }
            }
            Ok(_) => admin_of_member = true,
        }
    }
    // A damaged keyring may be the one this identity would have opened.
    if let Some(p) = problems
        .iter()
        .find(|p| p.kind == crate::damage::ProblemKind::Damaged)
    {
        return Error::damaged(
            &p.object,
            format!(
                "no keyring of tenant {tenant:?} opens with your identity, and this keyring object may be the one: its bytes do not match its name"
            ),
        );
    }
    if admin_of_member {
        return Error::AdminNotMemberReader {
            tenant: tenant.into(),
        };
    }
    Error::NotRecipient {
        tenant: tenant.into(),
    }
}

/// A writer of the service tenant encrypts to the data recipient the admin-signed registry
/// names, once an admin's retirement replaced the one in its key file (SPEC 15). A registry
/// that cannot be read leaves the key file's, with a warning.
fn follow_coop_recipient(repo: &Repo, keys: &mut TenantKeys) {
    match crate::registry::load(repo, keys) {
        Ok(l) => {
            if let Some(r) = l.registry.coop_data_recipient {
                match coop_formats::crypt::parse_recipient(&r) {
                    Ok(parsed) => {
                        keys.recipients = Arc::new(vec![parsed]);
                        keys.recipient_strings = vec![r];
                    }
                    Err(e) => tracing::warn!("the registry's service data recipient: {e}"),
                }
            }
        }
        Err(e) => tracing::warn!(
            "the member registry could not be read ({}); encrypting to the service tenant's \
             data key in the writer key file, which a retired admin may still hold",
            crate::error::chain(&e)
        ),
    }
}

/// The keys an admin keeps a member tenant up with (`forget`, `prune`, `check`, and the
/// agent's member backups): the member's keyring where the caller opens it (before the
/// recovery split, or the member herself), else, for a holder of the service tenant's keyring
/// (an admin after the split), the member's write material from the admin-signed registry,
/// signed with the admin key, plus the service tenant's data identity, which opens the
/// member's snapshot metadata and nothing else (SPEC 1.2, 13.7). A writer key gets its
/// write-only keys: it backs members up, and keeps nothing up.
pub fn upkeep_keys(repo: &Repo, access: &Access, tenant: &str) -> Result<TenantKeys> {
    let Some(name) = tenant.strip_prefix("member/") else {
        return keys(repo, access, tenant);
    };
    match keys(repo, access, tenant) {
        Err(Error::AdminNotMemberReader { .. }) => {}
        other => return other,
    }
    if !matches!(access, Access::Identity(..)) {
        return keys(repo, access, tenant);
    }
    let coop = keys(repo, access, "coop")?;
    let mut member = crate::registry::writer_keys_for_member(repo, &coop, name)?;
    member.upkeep = Some(Arc::clone(&coop.reader()?.identities));
    Ok(member)
}

/// Whether `ids` hold a key of `recipients`: a probe encrypted to exactly those recipients
/// opens with one of them (age exposes no public key of an identity; this asks the same
/// question with age's own operations).
fn holds_one_of(ids: &[coop_formats::crypt::Identity], recipients: &[String]) -> bool {
    let Ok(to) = crate::keys::parse_recipients(recipients) else {
        return false;
    };
    let probe: [u8; 16] = coop_formats::random_bytes();
    let mut ct = Vec::new();
    if coop_formats::crypt::encrypt_to(&to, &[&probe], &mut ct).is_err() {
        return false;
    }
    coop_formats::crypt::decrypt(ids, &ct, 64).is_ok_and(|p| p[..] == probe[..])
}

/// A log entry's free-text detail, age-encrypted to the tenant's data recipients and base64
/// encoded (the `detail` field of SPEC section 24's entries): only the tenant's readers read it.
pub fn encrypt_detail(keys: &TenantKeys, text: &str) -> Result<String> {
    use base64::Engine;
    let mut ct = Vec::new();
    coop_formats::crypt::encrypt_to(&keys.recipients, &[text.as_bytes()], &mut ct)
        .map_err(|e| Error::crypto("encrypting the log detail", e))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(ct))
}

/// The text of a log entry's detail, if `keys` can read the tenant it is encrypted to.
pub fn read_detail(keys: &TenantKeys, detail: &str) -> Option<String> {
    use base64::Engine;
    let reader = keys.reader.as_ref()?;
    let ct = base64::engine::general_purpose::STANDARD
        .decode(detail)
        .ok()?;
    let pt = coop_formats::crypt::decrypt(&reader.identities, &ct, 64 << 10).ok()?;
    String::from_utf8(pt).ok()
}
