//! The member registry: who the members are, their keys and quotas, the recovery
//! recipients, and the site signing keys members use to verify their exports.
//!
//! ```text
//! stored    = header(registry, coop tenant tag) || nonce:24 || XChaCha20-Poly1305(index_key, nonce, aad = header, plaintext)
//! plaintext = json_len:u32le || json || signer:32 || signature:64
//! signature = ed25519(signer, "coop-registry-v1\0" || header || json)
//! ```
//! Sealed with the coop tenant's index key (so a storage site can neither read nor forge
//! it) and signed by a writer of the coop tenant (an admin or an agent), whose key readers
//! check against the coop keyring. The highest `generation` is current.

use crate::control::{aead_open, aead_seal, ControlError};
use crate::envelope::{Header, ObjectType, TenantTag, HEADER_LEN};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

pub const SIG_DOMAIN: &[u8] = b"coop-registry-v1\0";

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
}

impl Member {
    pub fn tenant(&self) -> String {
        format!("member/{}", self.name)
    }
}

/// A site's signing key: manifests it signs verify against this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteKey {
    pub name: String,
    #[serde(with = "crate::hexser")]
    pub public_key: [u8; 32],
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    pub generation: u64,
    pub updated: String,
    /// Recipients added to every member tenant (the cooperative's recovery keys).
    pub recovery: Vec<String>,
    pub members: Vec<Member>,
    pub sites: Vec<SiteKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("member registry is malformed: {reason}")]
    Malformed { reason: String },
    #[error("member registry signature does not verify (forged or damaged)")]
    BadSignature,
    #[error("member registry is signed by {key}, which is not a writer of this repository")]
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
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    pub fn seal(
        &self,
        index_key: &[u8; 32],
        tenant: TenantTag,
        signer: &ed25519_dalek::SigningKey,
    ) -> Vec<u8> {
        let header = Header::new(ObjectType::Registry, tenant);
        let json = serde_json::to_vec(self).expect("serializes");
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(&header.encode());
        msg.extend_from_slice(&json);
        let sig = signer.sign(&msg);
        let mut plain = (json.len() as u32).to_le_bytes().to_vec();
        plain.extend_from_slice(&json);
        plain.extend_from_slice(&signer.verifying_key().to_bytes());
        plain.extend_from_slice(&sig.to_bytes());
        aead_seal(index_key, &header, &plain)
    }

    /// Opens and checks a registry; returns it and its signer's public key.
    pub fn open(
        index_key: &[u8; 32],
        tenant: TenantTag,
        stored: &[u8],
        is_writer: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<(Self, [u8; 32]), RegistryError> {
        let (h, plain) = aead_open(
            index_key,
            ObjectType::Registry,
            stored,
            crate::control::MAX_CONTROL_LEN,
        )?;
        if h.tenant != tenant {
            return Err(RegistryError::Control(ControlError::Auth));
        }
        let mal = |r: &str| RegistryError::Malformed { reason: r.into() };
        if plain.len() < 4 + 96 {
            return Err(mal("truncated"));
        }
        let n = u32::from_le_bytes(plain[..4].try_into().expect("4")) as usize;
        if 4 + n + 96 != plain.len() {
            return Err(mal("lengths do not add up"));
        }
        let json = &plain[4..4 + n];
        let signer: [u8; 32] = plain[4 + n..4 + n + 32].try_into().expect("32");
        let sig = ed25519_dalek::Signature::from_bytes(plain[4 + n + 32..].try_into().expect("64"));
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(&stored[..HEADER_LEN]);
        msg.extend_from_slice(json);
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&signer)
            .map_err(|_| RegistryError::BadSignature)?;
        vk.verify(&msg, &sig)
            .map_err(|_| RegistryError::BadSignature)?;
        if !is_writer(&signer) {
            return Err(RegistryError::UnknownSigner {
                key: hex::encode(signer),
            });
        }
        let r: Registry = serde_json::from_slice(json).map_err(|e| mal(&e.to_string()))?;
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
            members: vec![Member {
                name: "alice".into(),
                recipients: vec!["age1y".into()],
                quota: Some(5 << 30),
                tenant_tag: [1; 16],
                added: "t".into(),
                id_key: [5; 32],
                index_key: [6; 32],
                data_recipient: "age1z".into(),
            }],
            sites: vec![SiteKey {
                name: "hackspace".into(),
                public_key: [2; 32],
            }],
        }
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
