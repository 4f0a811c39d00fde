//! The writer list: the site keys allowed to sign snapshots and manifests in every tenant,
//! and their revocations. Signed by an admin; readable without any key.
//!
//! ```text
//! stored    = header(writers, zero tag) || json_len:u32le || json || signer:32 || signature:64
//! signature = Ed25519(signer, "coop-writers-v1\0" || header || json)
//! ```
//! It is not encrypted: members verify snapshots of their own tenant against it (they hold
//! no coop key), and the site names and keys it lists are what a cooperative publishes
//! anyway. It names no member. The highest `generation` is current; readers check the
//! signer against the admin keys they trust (the coop keyring's signer, a member keyring's
//! `admins`, a writer key's pinned `admin_keys`).

use crate::envelope::{Header, HeaderError, ObjectType, HEADER_LEN};
use crate::id::Id;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

pub const SIG_DOMAIN: &[u8] = b"coop-writers-v1\0";
/// The largest writer list a reader accepts.
pub const MAX_LEN: usize = 16 << 20;

/// When and how a writer was revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// RFC 3339.
    pub time: String,
    /// Every snapshot object (name) in the repository when the writer was revoked. A
    /// snapshot the revoked writer signed that is not listed here was made (or backdated)
    /// after the revocation, and readers flag it.
    pub snapshots: Vec<Id>,
}

/// A site (agent) key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteWriter {
    pub name: String,
    #[serde(with = "crate::hexser")]
    pub public_key: [u8; 32],
    pub added: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriterList {
    pub repo_id: Id,
    pub generation: u64,
    pub updated: String,
    pub writers: Vec<SiteWriter>,
    /// How many witnesses (other sites' writers) must cosign an access log checkpoint before
    /// an access it records may happen (SPEC section 24). 0: logged, not witnessed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_quorum: u32,
    /// Witnesses from outside this repository (another site's writer key), trusted to
    /// cosign this repository's access logs, besides this repository's own writers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<ExternalWitness>,
}

/// A witness key named by an admin (SPEC section 24.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalWitness {
    pub name: String,
    #[serde(with = "crate::hexser")]
    pub public_key: [u8; 32],
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum WritersError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("writer list is malformed: {reason}")]
    Malformed { reason: String },
    #[error("writer list signature does not verify (forged or damaged)")]
    BadSignature,
    #[error("writer list is signed by {key}, which is not an admin key of this repository")]
    UnknownSigner { key: String },
}

fn message(header: &[u8], json: &[u8]) -> Vec<u8> {
    let mut m = SIG_DOMAIN.to_vec();
    m.extend_from_slice(header);
    m.extend_from_slice(json);
    m
}

impl WriterList {
    /// The entry for a public key, if listed.
    pub fn get(&self, public_key: &[u8; 32]) -> Option<&SiteWriter> {
        self.writers.iter().find(|w| &w.public_key == public_key)
    }

    pub fn seal(&self, admin: &ed25519_dalek::SigningKey) -> Vec<u8> {
        let header = Header::new(ObjectType::Writers, [0; 16]).encode();
        let json = serde_json::to_vec(self).expect("serializes");
        let sig = admin.sign(&message(&header, &json));
        let mut out = header.to_vec();
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&admin.verifying_key().to_bytes());
        out.extend_from_slice(&sig.to_bytes());
        out
    }

    /// Decodes and verifies; `is_admin` decides whether the signer may sign it.
    pub fn open(
        stored: &[u8],
        is_admin: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<(Self, [u8; 32]), WritersError> {
        Header::decode_expect(stored, ObjectType::Writers)?;
        let mal = |r: &str| WritersError::Malformed { reason: r.into() };
        if stored.len() > MAX_LEN {
            return Err(mal("too large"));
        }
        if stored.len() < HEADER_LEN + 4 + 96 {
            return Err(mal("truncated"));
        }
        let n =
            u32::from_le_bytes(stored[HEADER_LEN..HEADER_LEN + 4].try_into().expect("4")) as usize;
        if HEADER_LEN
            .checked_add(4 + 96)
            .and_then(|x| x.checked_add(n))
            != Some(stored.len())
        {
            return Err(mal("lengths do not add up"));
        }
        let json = &stored[HEADER_LEN + 4..HEADER_LEN + 4 + n];
        let signer: [u8; 32] = stored[HEADER_LEN + 4 + n..HEADER_LEN + 4 + n + 32]
            .try_into()
            .expect("32");
        let sig = ed25519_dalek::Signature::from_bytes(
            stored[HEADER_LEN + 4 + n + 32..].try_into().expect("64"),
        );
        ed25519_dalek::VerifyingKey::from_bytes(&signer)
            .and_then(|vk| vk.verify(&message(&stored[..HEADER_LEN], json), &sig))
            .map_err(|_| WritersError::BadSignature)?;
        if !is_admin(&signer) {
            return Err(WritersError::UnknownSigner {
                key: hex::encode(signer),
            });
        }
        let list: WriterList = serde_json::from_slice(json).map_err(|e| mal(&e.to_string()))?;
        Ok((list, signer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> WriterList {
        WriterList {
            repo_id: Id([1; 32]),
            generation: 3,
            updated: "2026-12-01T00:00:00Z".into(),
            writers: vec![SiteWriter {
                name: "hackspace".into(),
                public_key: [2; 32],
                added: "2026-11-01T00:00:00Z".into(),
                revoked: Some(Revocation {
                    time: "2026-12-01T00:00:00Z".into(),
                    snapshots: vec![Id([3; 32])],
                }),
            }],
            log_quorum: 0,
            witnesses: vec![],
        }
    }

    #[test]
    fn seal_open_and_forgery() {
        let admin = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        let pk = admin.verifying_key().to_bytes();
        let sealed = sample().seal(&admin);
        assert_eq!(
            WriterList::open(&sealed, |k| k == &pk).unwrap(),
            (sample(), pk)
        );
        let thief = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        assert!(matches!(
            WriterList::open(&sample().seal(&thief), |k| k == &pk),
            Err(WritersError::UnknownSigner { .. })
        ));
    }

    proptest! {
        #[test]
        fn mutated_is_rejected(pos in any::<prop::sample::Index>(), x in 1u8..) {
            let admin = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
            let mut sealed = sample().seal(&admin);
            let i = pos.index(sealed.len());
            sealed[i] ^= x;
            prop_assert!(WriterList::open(&sealed, |_| true).is_err());
        }
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = WriterList::open(&b, |_| true);
        }
    }
}
