//! Admins as persons (SPEC 15, issue 25 finding 8): each admin is named in the registry with
//! their own recipient (the service tenant's keyring is wrapped to it) and their own person
//! key (derived from their identity file, `keys::person_key`), which signs every log entry
//! they cause. `add` and `remove` re-wrap the service tenant; `remove` also replaces its data
//! identity, so that a retired admin reads nothing of the service tenant written afterwards.

use crate::error::{Error, Result};
use crate::keys::{Access, TenantKeys};
use crate::repo::Repo;
use coop_formats::keyring::Keyring;
use coop_formats::registry::{check_member_name, Admin};
use coop_formats::tlog::Event;

/// How an admin is given to `coop admin add`: `coop-admin:<person key hex>:<recipient>`, as
/// `coop admin whoami` prints it.
pub const TOKEN_PREFIX: &str = "coop-admin:";

/// The token naming the holder of an identity file as an admin.
pub fn token(person: &ed25519_dalek::SigningKey, recipient: &str) -> String {
    format!(
        "{TOKEN_PREFIX}{}:{recipient}",
        hex::encode(person.verifying_key().to_bytes())
    )
}

/// Parses a token: (person key, recipient).
pub fn parse_token(t: &str) -> Result<([u8; 32], String)> {
    let bad = || {
        Error::invalid(format!(
            "{t:?} is no admin key: give what `coop admin whoami` prints on the new admin's \
             machine ({TOKEN_PREFIX}<64 hex>:<age recipient>)"
        ))
    };
    let rest = t.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
    let (k, r) = rest.split_once(':').ok_or_else(bad)?;
    let key: [u8; 32] = hex::decode(k)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(bad)?;
    ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
    coop_formats::crypt::parse_recipient(r).map_err(|e| Error::invalid(format!("{t:?}: {e}")))?;
    Ok((key, r.to_string()))
}

fn coop_ring(repo: &Repo, access: &Access) -> Result<(TenantKeys, Keyring)> {
    let (coop, ids) = crate::members::admin(repo, access)?;
    let ring = repo
        .keyrings(&ids)?
        .rings
        .into_iter()
        .find(|k| k.tenant == "coop")
        .ok_or_else(|| Error::NotRecipient {
            tenant: "coop".into(),
        })?;
    Ok((coop, ring))
}

/// Writes the next generation of the service tenant's keyring and deletes the older ones
/// with a logged deletion (replicas follow), then logs who reads it now.
fn rewrap_coop(repo: &Repo, coop: &TenantKeys, mut ring: Keyring, what: &str) -> Result<()> {
    crate::members::replace_keyring(repo, coop, &mut ring)?;
    let actor = crate::log::Actor::of(coop);
    let mut e = crate::log::entry(&actor, Event::KeyChange, Some(coop), None, None);
    e.object = Some("admins".into());
    e.data.insert("change".into(), what.into());
    e.data
        .insert("readers".into(), ring.recipients.len().into());
    crate::log::append(repo, &actor, &[e])?;
    Ok(())
}

/// `coop admin add NAME KEY`: names a person as an admin and wraps the service tenant to
/// them. `token` defaults to the caller's own (registering themselves).
pub fn add(repo: &Repo, access: &Access, name: &str, token: &str) -> Result<Admin> {
    check_member_name(name).map_err(|e| Error::invalid(e.replace("member name", "admin name")))?;
    let (key, recipient) = parse_token(token)?;
    let (coop, mut ring) = coop_ring(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    if let Some(a) = loaded.registry.admins.iter().find(|a| a.name == name) {
        return Err(Error::invalid(format!(
            "an admin named {name:?} exists already{} (names stay with their old entries)",
            if a.removed.is_some() { ", retired" } else { "" }
        )));
    }
    if let Some(a) = loaded.registry.admin_by_key(&key) {
        return Err(Error::invalid(format!(
            "that person key is admin {:?}'s already",
            a.name
        )));
    }
    let admin = Admin {
        name: name.to_string(),
        recipient: recipient.clone(),
        key,
        added: crate::now_rfc3339(),
        removed: None,
    };
    if !ring.recipients.contains(&recipient) {
        ring.recipients.push(recipient);
        rewrap_coop(repo, &coop, ring, &format!("admin {name} added"))?;
    }
    loaded.registry.admins.push(admin.clone());
    crate::registry::save(repo, &coop, &mut loaded)?;
    Ok(admin)
}

/// What [`remove`] did and what it could not undo.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Removed {
    pub admin: Admin,
    /// The recovery split names the retired admin as a share holder: their shares of every
    /// member's recovery identity stay valid (SPEC 25) until a member's next recovery.
    pub holds_shares: bool,
}

/// `coop admin remove NAME`: retires an admin. The service tenant's keyring is re-wrapped
/// without their recipient and gets a new data identity, so that they read nothing of it
/// written afterwards; their name stays for their old entries.
pub fn remove(repo: &Repo, access: &Access, name: &str) -> Result<Removed> {
    let (coop, mut ring) = coop_ring(repo, access)?;
    let mut loaded = crate::registry::load_for_change(repo, &coop)?;
    let active = loaded
        .registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .count();
    let Some(a) = loaded
        .registry
        .admins
        .iter_mut()
        .find(|a| a.name == name && a.removed.is_none())
    else {
        return Err(Error::NotFound {
            what: format!("admin {name:?} (`coop admin list` shows them)"),
        });
    };
    if active <= 1 {
        return Err(Error::invalid(
            "the last admin cannot be retired: add another first",
        ));
    }
    let recipient = a.recipient.clone();
    a.removed = Some(crate::now_rfc3339());
    let admin = a.clone();
    ring.recipients.retain(|r| r != &recipient);
    if ring.recipients.is_empty() {
        return Err(Error::invalid(
            "the service tenant would have no reader left",
        ));
    }
    let fresh = ring
        .rotate_data_identity()
        .map_err(|e| Error::damaged("keyring of coop", e))?;
    loaded.registry.coop_data_recipient = Some(fresh);
    rewrap_coop(repo, &coop, ring, &format!("admin {name} retired"))?;
    let holds_shares = loaded
        .registry
        .recovery_setup
        .as_ref()
        .is_some_and(|s| s.holders.iter().any(|h| h.recipient == recipient));
    crate::registry::save(repo, &coop, &mut loaded)?;
    Ok(Removed {
        admin,
        holds_shares,
    })
}

/// The registered admins, retired ones included.
pub fn list(repo: &Repo, coop: &TenantKeys) -> Result<Vec<Admin>> {
    Ok(crate::registry::load(repo, coop)?.registry.admins)
}

/// Who caused a log entry, for people to read: the admin the person signature names (from
/// `registry`), or the entry's actor name (a site, or an admin entry made before persons
/// existed). A person key the registry does not list is shown as such.
pub fn who(
    e: &coop_formats::tlog::Entry,
    registry: Option<&coop_formats::registry::Registry>,
) -> String {
    use coop_formats::tlog::PersonCheck;
    match e.person() {
        PersonCheck::Unsigned => e.actor_name.clone(),
        PersonCheck::Forged => format!("{} (FORGED person signature)", e.actor_name),
        PersonCheck::Signed(k) => match registry.and_then(|r| r.admin_by_key(&k)) {
            Some(a) => format!("admin {}", a.name),
            None => format!("admin with unregistered key {}", &hex::encode(k)[..8]),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coop_formats::registry::Registry;
    use coop_formats::tlog::{Entry, ENTRY_TYPE};

    fn entry() -> Entry {
        Entry {
            ty: ENTRY_TYPE.into(),
            time: "2026-12-06T00:00:00Z".into(),
            event: Event::Restore,
            actor: hex::encode([1u8; 32]),
            actor_name: "admin".into(),
            tenant: None,
            reason: None,
            object: None,
            data: Default::default(),
            detail: None,
        }
    }

    #[test]
    fn entries_name_the_registered_person_and_nobody_else() {
        let anna = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let ben = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let reg = Registry {
            admins: vec![Admin {
                name: "anna".into(),
                recipient: "age1x".into(),
                key: anna.verifying_key().to_bytes(),
                added: String::new(),
                removed: None,
            }],
            ..Default::default()
        };
        let mut e = entry();
        assert_eq!(who(&e, Some(&reg)), "admin");
        e.sign_person(&anna);
        assert_eq!(who(&e, Some(&reg)), "admin anna");
        let mut b = entry();
        b.sign_person(&ben);
        assert!(who(&b, Some(&reg)).contains("unregistered"));
        // Ben's signature relabelled as anna's.
        b.data.insert(
            "person_key".into(),
            hex::encode(anna.verifying_key().to_bytes()).into(),
        );
        assert!(who(&b, Some(&reg)).contains("FORGED"));
    }

    #[test]
    fn tokens_round_trip_and_junk_is_refused() {
        let k = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let (_, r) = coop_formats::crypt::generate_identity();
        let t = token(&k, &r);
        assert_eq!(parse_token(&t).unwrap(), (k.verifying_key().to_bytes(), r));
        for bad in [
            "",
            "coop-admin:",
            "coop-admin:zz:age1x",
            "age1abc",
            "coop-admin:00:age1",
        ] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}
