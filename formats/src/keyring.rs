//! Tenant key material, wrapped (age) to the tenant's recipients.
//!
//! Stored bytes: `header || age(recipients, header || json || mac)` where
//! `mac = BLAKE3-keyed(derive_key(KEYRING_MAC, id_key), header || json)`.
//! Someone who only knows a recipient can write an age file, but cannot produce the MAC of
//! the existing tenant's ID key; a forged keyring with a *new* ID key disagrees with the
//! genuine one and readers refuse the tenant (see SPEC.md, "Keyrings").

use crate::crypt::{self, CryptError, Identity, Recipient};
use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::{kdf, Id};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The largest decrypted keyring a reader accepts.
pub const MAX_KEYRING_LEN: usize = 1 << 20;

/// A writer allowed to sign snapshots for this tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Writer {
    pub name: String,
    #[serde(with = "crate::hexser")]
    pub public_key: [u8; 32],
    pub added: String,
}

/// The secret and public material of one tenant.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct Keyring {
    /// The tenant's name: `coop`, or `member/<name>`.
    #[zeroize(skip)]
    pub tenant: String,
    #[serde(with = "crate::hexser")]
    #[zeroize(skip)]
    pub tenant_tag: TenantTag,
    #[zeroize(skip)]
    pub repo_id: Id,
    /// Increases by one with each re-wrap or writer change.
    #[zeroize(skip)]
    pub generation: u64,
    #[zeroize(skip)]
    pub created: String,
    /// BLAKE3 of the repository's config object.
    #[zeroize(skip)]
    pub config_hash: Id,
    /// Key of the keyed BLAKE3 blob IDs.
    #[serde(with = "crate::hexser")]
    pub id_key: [u8; 32],
    /// XChaCha20-Poly1305 key of the index objects.
    #[serde(with = "crate::hexser")]
    pub index_key: [u8; 32],
    /// Who can open this keyring (the tenant's readers): age or SSH recipients.
    #[zeroize(skip)]
    pub recipients: Vec<String>,
    /// The tenant's data identity (`AGE-SECRET-KEY-1…`). Packs and snapshots are encrypted to
    /// its public key only, so adding or removing a reader re-wraps this keyring and never
    /// re-encrypts data.
    pub data_identity: String,
    /// Earlier data identities, newest last: a recovery replaces the data identity (so that
    /// what it released opens nothing written afterwards) and the tenant's readers keep
    /// reading what was written before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub old_data_identities: Vec<String>,
    /// Public keys whose snapshot signatures readers accept.
    #[zeroize(skip)]
    pub writers: Vec<Writer>,
    /// ed25519 seed of the tenant's signer, held by its readers: the default writer, and the
    /// tenant's *authority* (prune plans, supersession, protections, forget records count
    /// only when it signed them). For the coop tenant it is also the admin key.
    #[serde(with = "crate::hexser")]
    pub signer: [u8; 32],
    /// Admin public keys this tenant's readers trust for the writer list (the site keys).
    /// Empty for the coop tenant, whose own signer is the admin key.
    #[serde(default, with = "crate::hexvec", skip_serializing_if = "Vec::is_empty")]
    #[zeroize(skip)]
    pub admins: Vec<[u8; 32]>,
    /// A member tenant's own recipients (the member's keys, as the registry records them),
    /// among `recipients`: a reader holding one of them is the member, and reads unlogged;
    /// any other reader's read of the tenant's files is logged first (SPEC section 24.7).
    /// Empty for the coop tenant and in keyrings written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[zeroize(skip)]
    pub owners: Vec<String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("tenant", &self.tenant)
            .field("generation", &self.generation)
            .field("writers", &self.writers.len())
            .finish_non_exhaustive()
    }
}

/// Errors from opening a keyring.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("keyring does not start with a copy of its header (damaged or forged)")]
    HeaderMismatch,
    #[error("keyring is not valid JSON: {reason}")]
    Invalid { reason: String },
    #[error("keyring MAC does not verify: forged or damaged")]
    BadMac,
    #[error("keyring's tenant tag differs from its header (moved or forged)")]
    TagMismatch,
}

impl Keyring {
    /// A fresh tenant with random keys, the given recipients and a default signer.
    pub fn generate(
        tenant: &str,
        repo_id: Id,
        config_hash: Id,
        recipients: Vec<String>,
        now: String,
    ) -> Self {
        let signer: [u8; 32] = crate::random_bytes();
        let data_identity = {
            use age::secrecy::ExposeSecret;
            age::x25519::Identity::generate()
                .to_string()
                .expose_secret()
                .to_string()
        };
        let public = ed25519_dalek::SigningKey::from_bytes(&signer)
            .verifying_key()
            .to_bytes();
        Self {
            tenant: tenant.to_string(),
            tenant_tag: crate::random_bytes(),
            repo_id,
            generation: 1,
            created: now.clone(),
            config_hash,
            id_key: crate::random_bytes(),
            index_key: crate::random_bytes(),
            recipients,
            data_identity,
            old_data_identities: Vec::new(),
            writers: vec![Writer {
                name: "default".into(),
                public_key: public,
                added: now,
            }],
            signer,
            admins: Vec::new(),
            owners: Vec::new(),
        }
    }

    fn mac(&self, header_and_json: &[u8]) -> [u8; 32] {
        let k = blake3::derive_key(kdf::KEYRING_MAC, &self.id_key);
        *blake3::keyed_hash(&k, header_and_json).as_bytes()
    }

    /// Encrypts the keyring to its recipients.
    pub fn seal(&self) -> Result<Vec<u8>, KeyringError> {
        let recipients: Vec<Recipient> = self
            .recipients
            .iter()
            .map(|r| crypt::parse_recipient(r))
            .collect::<Result<_, _>>()?;
        let header = Header::new(ObjectType::Keyring, self.tenant_tag).encode();
        let mut plain = header.to_vec();
        serde_json::to_writer(&mut plain, self).expect("keyring serializes");
        let mac = self.mac(&plain);
        plain.extend_from_slice(&mac);
        let mut out = header.to_vec();
        crypt::encrypt_to(&recipients, &[&plain], &mut out)?;
        plain.zeroize();
        Ok(out)
    }

    /// Decrypts and authenticates a keyring.
    pub fn open(identities: &[Identity], stored: &[u8]) -> Result<Self, KeyringError> {
        let header = Header::decode_expect(stored, ObjectType::Keyring)?;
        let mut plain = crypt::decrypt(identities, &stored[HEADER_LEN..], MAX_KEYRING_LEN)?;
        let res = Self::from_plain(&header, &stored[..HEADER_LEN], &plain);
        plain.zeroize();
        res
    }

    fn from_plain(
        header: &Header,
        header_bytes: &[u8],
        plain: &[u8],
    ) -> Result<Self, KeyringError> {
        if plain.len() < HEADER_LEN + 32 || &plain[..HEADER_LEN] != header_bytes {
            return Err(KeyringError::HeaderMismatch);
        }
        let (body, mac) = plain.split_at(plain.len() - 32);
        let k: Keyring =
            serde_json::from_slice(&body[HEADER_LEN..]).map_err(|e| KeyringError::Invalid {
                reason: e.to_string(),
            })?;
        if k.mac(body).as_slice() != mac {
            return Err(KeyringError::BadMac);
        }
        if k.tenant_tag != header.tenant {
            return Err(KeyringError::TagMismatch);
        }
        Ok(k)
    }

    /// The data identities (the current one first), for decrypting packs and snapshots.
    pub fn data_identities(&self) -> Result<Vec<crypt::Identity>, KeyringError> {
        let mut text = self.data_identity.clone();
        for old in self.old_data_identities.iter().rev() {
            text.push('\n');
            text.push_str(old);
        }
        let ids = crypt::parse_identities(text.as_bytes());
        text.zeroize();
        Ok(ids?)
    }

    /// Replaces the data identity with a new one, keeping the old one for reading. Returns
    /// the new data recipient.
    pub fn rotate_data_identity(&mut self) -> Result<String, KeyringError> {
        use age::secrecy::ExposeSecret;
        let fresh = age::x25519::Identity::generate()
            .to_string()
            .expose_secret()
            .to_string();
        let old = std::mem::replace(&mut self.data_identity, fresh);
        self.old_data_identities.push(old);
        self.data_recipient()
    }

    /// The data recipient (public key) that packs and snapshots are encrypted to.
    pub fn data_recipient(&self) -> Result<String, KeyringError> {
        use std::str::FromStr;
        let id = age::x25519::Identity::from_str(&self.data_identity).map_err(|e| {
            KeyringError::Invalid {
                reason: format!("bad data identity: {e}"),
            }
        })?;
        Ok(id.to_public().to_string())
    }

    /// The ed25519 key holders of an identity sign snapshots with.
    pub fn default_signer(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.signer)
    }

    /// The public key of the tenant's signer: its authority.
    pub fn authority(&self) -> [u8; 32] {
        public_key_of(&self.signer)
    }

    /// The admin keys this tenant's readers trust: its own signer for the coop tenant.
    pub fn admin_keys(&self) -> Vec<[u8; 32]> {
        if self.admins.is_empty() {
            vec![self.authority()]
        } else {
            self.admins.clone()
        }
    }

    /// Whether `public_key` may sign snapshots of this tenant.
    pub fn is_writer(&self, public_key: &[u8; 32]) -> bool {
        self.writers.iter().any(|w| &w.public_key == public_key)
    }

    /// True if two keyrings describe the same tenant secrets (they may differ in
    /// generation, recipients and writers).
    pub fn same_tenant(&self, other: &Keyring) -> bool {
        self.tenant == other.tenant
            && self.tenant_tag == other.tenant_tag
            && self.repo_id == other.repo_id
            && self.id_key == other.id_key
            && self.index_key == other.index_key
            && self.signer == other.signer
            && self.data_lineage(other)
    }

    /// Whether one keyring's data identities are the other's, or a rotation of them (the
    /// newer generation holds every identity of the older).
    ///
    /// Two keyrings of one generation must hold the same data identities: coop never writes
    /// two, and someone who kept an old generation's secrets could otherwise write one whose
    /// data identity is a retired one (which the genuine keyring lists among its old ones) and,
    /// listed first, be taken for it.
    fn data_lineage(&self, other: &Keyring) -> bool {
        if self.generation == other.generation {
            return self.data_identity == other.data_identity
                && self.old_data_identities == other.old_data_identities;
        }
        let (old, new) = if self.generation <= other.generation {
            (self, other)
        } else {
            (other, self)
        };
        let has =
            |k: &Keyring, id: &String| &k.data_identity == id || k.old_data_identities.contains(id);
        has(new, &old.data_identity) && old.old_data_identities.iter().all(|id| has(new, id))
    }
}

/// The ed25519 public key of a signing seed.
pub fn public_key_of(seed: &[u8; 32]) -> [u8; 32] {
    ed25519_dalek::SigningKey::from_bytes(seed)
        .verifying_key()
        .to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyring at the genuine one's generation whose data identity is one the genuine one
    /// retired (written by someone who kept the old secrets) is not the same tenant, in
    /// either order: readers refuse both rather than take whichever is listed first.
    #[test]
    fn a_same_generation_keyring_with_a_retired_data_identity_conflicts() {
        let (_, rcpt) = crypt::generate_identity();
        let mut genuine = Keyring::generate(
            "member/alice",
            Id([1; 32]),
            Id([2; 32]),
            vec![rcpt],
            "t".into(),
        );
        let kept = genuine.clone();
        genuine.rotate_data_identity().unwrap();
        genuine.generation += 1;
        let mut forged = kept.clone();
        forged.generation = genuine.generation;
        assert!(!genuine.same_tenant(&forged));
        assert!(!forged.same_tenant(&genuine));
        // A true later generation is the same tenant, in either order.
        assert!(kept.same_tenant(&genuine) && genuine.same_tenant(&kept));
    }

    #[test]
    fn seal_open_and_forgery() {
        let (id, rcpt) = crypt::generate_identity();
        let ids = crypt::parse_identities(id.as_bytes()).unwrap();
        let k = Keyring::generate(
            "coop",
            Id([1; 32]),
            Id([2; 32]),
            vec![rcpt.clone()],
            "t".into(),
        );
        let sealed = k.seal().unwrap();
        let back = Keyring::open(&ids, &sealed).unwrap();
        assert!(back == k);

        // Someone with only the recipient writes a keyring with a guessed MAC.
        let header = Header::new(ObjectType::Keyring, k.tenant_tag).encode();
        let mut forged_plain = header.to_vec();
        let mut evil = k.clone();
        evil.writers.push(Writer {
            name: "evil".into(),
            public_key: [9; 32],
            added: "t".into(),
        });
        serde_json::to_writer(&mut forged_plain, &evil).unwrap();
        forged_plain.extend_from_slice(&[0u8; 32]);
        let mut forged = header.to_vec();
        crypt::encrypt_to(
            &[crypt::parse_recipient(&rcpt).unwrap()],
            &[&forged_plain],
            &mut forged,
        )
        .unwrap();
        assert!(matches!(
            Keyring::open(&ids, &forged),
            Err(KeyringError::BadMac)
        ));

        // A keyring moved under another tenant tag is refused.
        let mut moved = sealed.clone();
        moved[8] ^= 1;
        assert!(Keyring::open(&ids, &moved).is_err());
    }
}
