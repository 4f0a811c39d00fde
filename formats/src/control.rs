//! Control objects: locks, prune plans and snapshot protections.
//!
//! ```text
//! stored = header(type, tenant) || nonce:24 || XChaCha20-Poly1305(index_key, nonce, aad = header, json)
//! ```
//! They are sealed with the tenant's index key, like index objects: writers (who must take
//! locks and honour prune plans) can read and write them; storage sites can neither read nor
//! forge them.

use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::Id;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The largest control object a reader accepts.
pub const MAX_CONTROL_LEN: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("object is {len} bytes, over the limit")]
    TooLarge { len: usize },
    #[error("object does not authenticate: damaged, forged, or another tenant's")]
    Auth,
    #[error("object content is invalid: {reason}")]
    Invalid { reason: String },
}

/// AEAD-seals `plain` under `key` with the header as associated data.
pub fn aead_seal(key: &[u8; 32], header: &Header, plain: &[u8]) -> Vec<u8> {
    let h = header.encode();
    let nonce: [u8; 24] = crate::random_bytes();
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &h,
            },
        )
        .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
    let mut out = Vec::with_capacity(HEADER_LEN + 24 + ct.len());
    out.extend_from_slice(&h);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens an AEAD-sealed object of the expected type.
pub fn aead_open(
    key: &[u8; 32],
    expected: ObjectType,
    stored: &[u8],
    limit: usize,
) -> Result<(Header, Vec<u8>), ControlError> {
    let header = Header::decode_expect(stored, expected)?;
    if stored.len() > limit {
        return Err(ControlError::TooLarge { len: stored.len() });
    }
    if stored.len() < HEADER_LEN + 24 + 16 {
        return Err(ControlError::Invalid {
            reason: "truncated".into(),
        });
    }
    let plain = XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(&stored[HEADER_LEN..HEADER_LEN + 24]),
            Payload {
                msg: &stored[HEADER_LEN + 24..],
                aad: &stored[..HEADER_LEN],
            },
        )
        .map_err(|_| ControlError::Auth)?;
    Ok((header, plain))
}

/// A control object body.
pub trait Control: Serialize + DeserializeOwned {
    const TYPE: ObjectType;

    fn seal(&self, index_key: &[u8; 32], tenant: TenantTag) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("serializes");
        aead_seal(index_key, &Header::new(Self::TYPE, tenant), &json)
    }

    fn open(index_key: &[u8; 32], tenant: TenantTag, stored: &[u8]) -> Result<Self, ControlError> {
        let (h, plain) = aead_open(index_key, Self::TYPE, stored, MAX_CONTROL_LEN)?;
        if h.tenant != tenant {
            return Err(ControlError::Auth);
        }
        serde_json::from_slice(&plain).map_err(|e| ControlError::Invalid {
            reason: e.to_string(),
        })
    }
}

/// What a lock protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// A backup: prune must not delete anything while it is live.
    Backup,
    /// A prune.
    Prune,
}

/// A lock held by a running operation, refreshed while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub kind: LockKind,
    pub host: String,
    pub pid: u32,
    /// Unix seconds when the operation started.
    pub created: i64,
    /// Unix seconds of the last refresh.
    pub refreshed: i64,
    /// Random, so each refresh has a new name.
    pub nonce: String,
}
impl Control for Lock {
    const TYPE: ObjectType = ObjectType::Lock;
}

/// Packs (and index objects) a prune condemned. They are deleted by a later step only if
/// they are still unreferenced by a fresh, complete view and no backup is live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrunePlan {
    /// Unix seconds.
    pub created: i64,
    pub packs: Vec<Id>,
    /// Index objects replaced by `replacement`.
    pub index: Vec<Id>,
    /// The consolidated index object that supersedes `index` (if any).
    pub replacement: Option<Id>,
}
impl Control for PrunePlan {
    const TYPE: ObjectType = ObjectType::PrunePlan;
}

/// Marks a snapshot that `forget` must keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protection {
    pub snapshot: Id,
    pub created: i64,
    #[serde(default)]
    pub note: String,
}
impl Control for Protection {
    const TYPE: ObjectType = ObjectType::Protection;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(packs in proptest::collection::vec(any::<[u8; 32]>(), 0..10), created in any::<i64>(), host in ".{0,20}") {
            let key = [5u8; 32];
            let p = PrunePlan { created, packs: packs.into_iter().map(Id).collect(), index: vec![], replacement: None };
            prop_assert_eq!(PrunePlan::open(&key, [1; 16], &p.seal(&key, [1; 16])).unwrap(), p);
            let l = Lock { kind: LockKind::Backup, host, pid: 7, created, refreshed: created, nonce: "n".into() };
            prop_assert_eq!(Lock::open(&key, [1; 16], &l.seal(&key, [1; 16])).unwrap(), l);
        }
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Lock::open(&[0; 32], [0; 16], &b);
        }
    }

    #[test]
    fn type_and_tenant_are_bound() {
        let key = [5u8; 32];
        let pr = Protection {
            snapshot: Id([1; 32]),
            created: 0,
            note: String::new(),
        }
        .seal(&key, [1; 16]);
        assert!(Lock::open(&key, [1; 16], &pr).is_err());
        assert!(Protection::open(&key, [2; 16], &pr).is_err());
        assert!(Protection::open(&[6; 32], [1; 16], &pr).is_err());
        // Changing the type byte in the header breaks the AEAD even if the reader asks for it.
        let mut moved = pr.clone();
        moved[5] = ObjectType::Lock as u8;
        assert!(matches!(
            Lock::open(&key, [1; 16], &moved),
            Err(ControlError::Auth)
        ));
    }
}
