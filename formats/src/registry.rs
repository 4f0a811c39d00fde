//! The member registry: who the members are, their keys and quotas, the recovery
//! recipients, and each member tenant's writer material. (The site keys that sign backups
//! are in the writer list, [`crate::writers`].)
//!
//! A signed control object (see [`crate::control`]) of type 9 under the coop tenant's tag:
//! sealed with the coop tenant's index key (so a storage site can neither read nor forge it)
//! and signed by an admin, whose key readers check against the coop keyring and writers
//! against the admin keys pinned in their writer key file. A writer key, which holds the
//! index key, therefore cannot forge it. The highest `generation` is current.

use crate::control::{open_signed, seal_signed, ControlError};
use crate::envelope::{Header, ObjectType, TenantTag};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: String,
    /// The member's own age or SSH recipients.
    pub recipients: Vec<String>,
    /// Stored bytes allowed (after dedup and compression), if limited.
    pub quota: Option<u64>,
    #[serde(with = "crate::hexser")]
    pub tenant_tag: TenantTag,
    pub added: String,
    /// Writer material of the member tenant, so that the coop tenant's writers (agents) can
    /// back up into it without being able to read it.
    #[serde(with = "crate::hexser")]
    pub id_key: [u8; 32],
    #[serde(with = "crate::hexser")]
    pub index_key: [u8; 32],
    /// The member tenant's data recipient (public).
    pub data_recipient: String,
    /// The member tenant's authority (the public key of its keyring signer): prune plans
    /// and supersessions in the member tenant count only when it signed them.
    #[serde(with = "crate::hexser")]
    pub authority: [u8; 32],
    /// Set when the member was removed: the tenant and its data stay (so the name is not
    /// reused for a new tenant, which would conflict with the old one's keyring).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
    /// The member's own recovery identity once the admins split recovery (SPEC section 25):
    /// its public key and share commitments. The member's keyring is wrapped to the member's
    /// recipients and this key alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<crate::recovery::MemberRecovery>,
    /// The member tenant's own signature over its writer material (SPEC 15.3): made with the
    /// tenant's authority key, which only a reader of the member's keyring holds. Writers
    /// encrypt a member's data only to material so signed, so an admin who does not read
    /// the member cannot point the member's future backups at a key of her own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub material: Option<MaterialSignature>,
}

/// A member tenant's signature over its writer material, at one keyring generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialSignature {
    /// The keyring generation the material was signed at; it never goes down for a member.
    pub generation: u64,
    /// Ed25519 signature by the member tenant's authority over [`Member::material_message`].
    #[serde(with = "crate::hexser")]
    pub sig: [u8; 64],
}

/// Why a member's material signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterialError {
    #[error("member {member:?} has no signature over its keys (written before coop signed them, or by an admin without the member's keyring)")]
    Unsigned { member: String },
    #[error("the signature over member {member:?}'s keys does not verify (forged: the registry's keys for this member are not the member tenant's own)")]
    BadSignature { member: String },
}

impl Member {
    pub fn tenant(&self) -> String {
        format!("member/{}", self.name)
    }

    /// The bytes the member tenant's authority signs: a domain string, the repository ID,
    /// the member's name and every part of the writer material (SPEC 15.3).
    pub fn material_message(&self, repo_id: &crate::id::Id, generation: u64) -> Vec<u8> {
        let mut m = b"coop member material v1\0".to_vec();
        m.extend_from_slice(&repo_id.0);
        for part in [self.name.as_bytes(), self.data_recipient.as_bytes()] {
            m.extend_from_slice(&(part.len() as u32).to_le_bytes());
            m.extend_from_slice(part);
        }
        m.extend_from_slice(&self.tenant_tag);
        m.extend_from_slice(&self.id_key);
        m.extend_from_slice(&self.index_key);
        m.extend_from_slice(&self.authority);
        m.extend_from_slice(&generation.to_le_bytes());
        m
    }

    /// Signs the writer material with the member tenant's authority (its keyring signer).
    pub fn sign_material(
        &mut self,
        repo_id: &crate::id::Id,
        generation: u64,
        authority: &ed25519_dalek::SigningKey,
    ) {
        use ed25519_dalek::Signer;
        let sig = authority.sign(&self.material_message(repo_id, generation));
        self.material = Some(MaterialSignature {
            generation,
            sig: sig.to_bytes(),
        });
    }

    /// Checks the material signature against the entry's own authority; returns the
    /// keyring generation it was made at.
    pub fn verify_material(&self, repo_id: &crate::id::Id) -> Result<u64, MaterialError> {
        let Some(s) = &self.material else {
            return Err(MaterialError::Unsigned {
                member: self.name.clone(),
            });
        };
        let bad = || MaterialError::BadSignature {
            member: self.name.clone(),
        };
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&self.authority).map_err(|_| bad())?;
        vk.verify_strict(
            &self.material_message(repo_id, s.generation),
            &ed25519_dalek::Signature::from_bytes(&s.sig),
        )
        .map_err(|_| bad())?;
        Ok(s.generation)
    }
}

/// A group of members whose storage one member pays for (a family, a club): the group's
/// quota is shared by its members, and the report shows it as one cost line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    /// The member who pays: they see the group's usage and costs, never a member's data.
    pub payer: String,
    /// The members (the payer among them), by name.
    pub members: Vec<String>,
    /// Stored bytes the members may use together (after dedup and compression), if limited.
    pub quota: Option<u64>,
    pub added: String,
}

/// An admin as a person (issue 25 finding 8): who reads the service tenant, named, with the
/// key that signs the log entries they cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub name: String,
    /// The admin's own age or SSH recipient: the service tenant's keyring is wrapped to it.
    pub recipient: String,
    /// The admin's person key (Ed25519 public key), derived from their own identity.
    #[serde(with = "crate::hexser")]
    pub key: [u8; 32],
    pub added: String,
    /// Set when the admin was retired: they no longer read the service tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub generation: u64,
    pub updated: String,
    /// Recipients added to every member tenant before the admins split recovery (the
    /// admins' own keys); empty once `recovery_setup` exists, when each member has its own
    /// recovery identity (`Member::recovery`).
    pub recovery: Vec<String>,
    /// Who holds recovery shares and how many a recovery needs, once split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_setup: Option<crate::recovery::RecoverySetup>,
    /// A re-split of the recovery shares to the admin persons who count now, while it runs
    /// (SPEC 25.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_next: Option<crate::recovery::Reshare>,
    pub members: Vec<Member>,
    /// The admins as persons, retired ones kept (so that their old entries keep a name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admins: Vec<Admin>,
    /// Groups of members with one payer and a shared quota.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
    /// The service tenant's data recipient, once an admin's retirement replaced it: writers
    /// encrypt to it instead of the one in their writer key file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coop_data_recipient: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("member registry is malformed: {reason}")]
    Malformed { reason: String },
    #[error("member registry signature does not verify (forged or damaged)")]
    BadSignature,
    #[error("member registry is signed by {key}, which is not an admin key of this repository (forged by a writer key?)")]
    UnknownSigner { key: String },
}

/// Checks a member name: 1–64 of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn check_member_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!("member name {name:?} must be 1-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit"))
    }
}

impl Registry {
    /// The admin (active or retired) whose person key is `key`.
    pub fn admin_by_key(&self, key: &[u8; 32]) -> Option<&Admin> {
        self.admins.iter().find(|a| &a.key == key)
    }

    /// An active (not retired) admin by name.
    pub fn admin(&self, name: &str) -> Option<&Admin> {
        self.admins
            .iter()
            .find(|a| a.name == name && a.removed.is_none())
    }

    /// The group member `name` belongs to (a member is in at most one group).
    pub fn group_of(&self, name: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.members.iter().any(|m| m == name))
    }

    /// A group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// An active (not removed) member.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.name == name && m.removed.is_none())
    }

    /// Active members.
    pub fn active(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.removed.is_none())
    }

    pub fn seal(
        &self,
        index_key: &[u8; 32],
        tenant: TenantTag,
        admin: &ed25519_dalek::SigningKey,
    ) -> Vec<u8> {
        let header = Header::new(ObjectType::Registry, tenant);
        let json = serde_json::to_vec(self).expect("serializes");
        seal_signed(index_key, &header, &json, admin)
    }

    /// Opens and checks a registry; `is_admin` decides whether its signer may sign it.
    /// Returns it and its signer's public key.
    pub fn open(
        index_key: &[u8; 32],
        tenant: TenantTag,
        stored: &[u8],
        is_admin: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<(Self, [u8; 32]), RegistryError> {
        let (h, json, signer) = open_signed(
            index_key,
            ObjectType::Registry,
            stored,
            crate::control::MAX_CONTROL_LEN,
        )
        .map_err(|e| match e {
            ControlError::BadSignature => RegistryError::BadSignature,
            e => RegistryError::Control(e),
        })?;
        if h.tenant != tenant {
            return Err(RegistryError::Control(ControlError::Auth));
        }
        if !is_admin(&signer) {
            return Err(RegistryError::UnknownSigner {
                key: hex::encode(signer),
            });
        }
        let mal = |r: &str| RegistryError::Malformed { reason: r.into() };
        let r: Registry = serde_json::from_slice(&json).map_err(|e| mal(&e.to_string()))?;
        for m in &r.members {
            check_member_name(&m.name).map_err(|e| mal(&e))?;
        }
        Ok((r, signer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Registry {
        Registry {
            generation: 2,
            updated: "t".into(),
            recovery: vec!["age1x".into()],
            recovery_setup: None,
            recovery_next: None,
            members: vec![Member {
                name: "alice".into(),
                recipients: vec!["age1y".into()],
                quota: Some(5 << 30),
                tenant_tag: [1; 16],
                added: "t".into(),
                id_key: [5; 32],
                index_key: [6; 32],
                data_recipient: "age1z".into(),
                authority: [7; 32],
                removed: None,
                recovery: None,
                material: None,
            }],
            admins: vec![],
            groups: vec![],
            coop_data_recipient: None,
        }
    }

    #[test]
    fn material_signature_binds_every_key_and_the_generation() {
        let repo = crate::id::Id([8; 32]);
        let member_authority = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
        let mut m = sample().members[0].clone();
        m.authority = member_authority.verifying_key().to_bytes();
        assert!(matches!(
            m.verify_material(&repo),
            Err(MaterialError::Unsigned { .. })
        ));
        m.sign_material(&repo, 3, &member_authority);
        assert_eq!(m.verify_material(&repo), Ok(3));
        // Sealed in a registry and opened again, it still verifies.
        let signer = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let mut reg = sample();
        reg.members = vec![m.clone()];
        let sealed = reg.seal(&[3; 32], [9; 16], &signer);
        let (back, _) = Registry::open(&[3; 32], [9; 16], &sealed, |_| true).unwrap();
        assert_eq!(back.members[0].verify_material(&repo), Ok(3));
        // An admin (who signs registries, not the member tenant) swaps one part: refused.
        let admin = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        type Swap = Box<dyn Fn(&mut Member)>;
        let swaps: Vec<Swap> = vec![
            Box::new(|m| m.data_recipient = "age1admin".into()),
            Box::new(|m| m.id_key[0] ^= 1),
            Box::new(|m| m.index_key[0] ^= 1),
            Box::new(|m| m.tenant_tag[0] ^= 1),
            Box::new(|m| m.name = "bob".into()),
            Box::new(|m| m.material.as_mut().unwrap().generation += 1),
            Box::new(move |m| m.authority = admin.verifying_key().to_bytes()),
        ];
        for swap in swaps {
            let mut forged = m.clone();
            swap(&mut forged);
            assert!(matches!(
                forged.verify_material(&repo),
                Err(MaterialError::BadSignature { .. })
            ));
        }
        // Another repository's signature does not carry over.
        assert!(m.verify_material(&crate::id::Id([9; 32])).is_err());
    }

    #[test]
    fn seal_open_and_forgery() {
        let key = [3u8; 32];
        let signer = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
        let pk = signer.verifying_key().to_bytes();
        let sealed = sample().seal(&key, [9; 16], &signer);
        let (r, s) = Registry::open(&key, [9; 16], &sealed, |k| k == &pk).unwrap();
        assert_eq!(r, sample());
        assert_eq!(s, pk);
        assert!(matches!(
            Registry::open(&key, [9; 16], &sealed, |_| false),
            Err(RegistryError::UnknownSigner { .. })
        ));
        assert!(
            Registry::open(&[5; 32], [9; 16], &sealed, |_| true).is_err(),
            "a storage site without the key"
        );
        assert!(check_member_name("../etc").is_err());
        assert!(check_member_name("alice.b-2").is_ok());
    }

    proptest! {
        #[test]
        fn mutated_is_rejected(pos in any::<prop::sample::Index>(), x in 1u8..) {
            let key = [3u8; 32];
            let signer = ed25519_dalek::SigningKey::from_bytes(&[4; 32]);
            let mut sealed = sample().seal(&key, [9; 16], &signer);
            let i = pos.index(sealed.len());
            sealed[i] ^= x;
            prop_assert!(Registry::open(&key, [9; 16], &sealed, |_| true).is_err());
        }
    }
}
