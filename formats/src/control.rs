//! Control objects: locks, prune plans, snapshot protections, forget records, and the
//! signed envelope they share with the member registry.
//!
//! ```text
//! stored    = header(type, tenant) || nonce:24 || XChaCha20-Poly1305(index_key, nonce, aad = header, plaintext)
//! plaintext = json_len:u32le || json || signer:32 || signature:64
//! signature = Ed25519(signer, "coop-control-v1\0" || header || json)
//! ```
//! They are sealed with the tenant's index key, like index objects, so storage sites can
//! neither read nor forge them. Writers hold the index key too, so the AEAD alone would let a
//! stolen writer key forge a prune plan; the signature says who made each object, and
//! readers decide by the signer: locks may come from any writer, prune plans, protections
//! and forget records only from the tenant's authority (its keyring signer, held by the
//! tenant's readers), the registry only from an admin.

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
    #[error("object signature does not verify (forged or damaged)")]
    BadSignature,
}

/// Domain separation of control-object signatures.
pub const SIG_DOMAIN: &[u8] = b"coop-control-v1\0";

fn signed_message(header: &[u8], json: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIG_DOMAIN.len() + header.len() + json.len());
    m.extend_from_slice(SIG_DOMAIN);
    m.extend_from_slice(header);
    m.extend_from_slice(json);
    m
}

/// Seals a signed control object: AEAD under the index key around the JSON, the signer's
/// public key and its signature over the header and the JSON.
pub fn seal_signed(
    key: &[u8; 32],
    header: &Header,
    json: &[u8],
    signer: &ed25519_dalek::SigningKey,
) -> Vec<u8> {
    seal_signed_with_nonce(key, header, json, signer, crate::random_bytes())
}

/// [`seal_signed`] with a given nonce (test vectors; a nonce must never repeat under a key).
pub(crate) fn seal_signed_with_nonce(
    key: &[u8; 32],
    header: &Header,
    json: &[u8],
    signer: &ed25519_dalek::SigningKey,
    nonce: [u8; 24],
) -> Vec<u8> {
    use ed25519_dalek::Signer;
    let sig = signer.sign(&signed_message(&header.encode(), json));
    let mut plain = Vec::with_capacity(4 + json.len() + 96);
    plain.extend_from_slice(&(json.len() as u32).to_le_bytes());
    plain.extend_from_slice(json);
    plain.extend_from_slice(&signer.verifying_key().to_bytes());
    plain.extend_from_slice(&sig.to_bytes());
    aead_seal_with_nonce(key, header, &plain, nonce)
}

/// Opens a signed control object of the expected type: returns the header, the JSON and the
/// signer's public key (the signature is verified; whether the signer may sign this is the
/// caller's decision).
pub fn open_signed(
    key: &[u8; 32],
    expected: ObjectType,
    stored: &[u8],
    limit: usize,
) -> Result<(Header, Vec<u8>, [u8; 32]), ControlError> {
    use ed25519_dalek::Verifier;
    let (h, plain) = aead_open(key, expected, stored, limit)?;
    let bad = |r: &str| ControlError::Invalid { reason: r.into() };
    if plain.len() < 4 + 96 {
        return Err(bad("truncated"));
    }
    let n = u32::from_le_bytes(plain[..4].try_into().expect("4")) as usize;
    if n.checked_add(4 + 96) != Some(plain.len()) {
        return Err(bad("lengths do not add up"));
    }
    let json = &plain[4..4 + n];
    let signer: [u8; 32] = plain[4 + n..4 + n + 32].try_into().expect("32");
    let sig = ed25519_dalek::Signature::from_bytes(plain[4 + n + 32..].try_into().expect("64"));
    let vk =
        ed25519_dalek::VerifyingKey::from_bytes(&signer).map_err(|_| ControlError::BadSignature)?;
    vk.verify(&signed_message(&stored[..HEADER_LEN], json), &sig)
        .map_err(|_| ControlError::BadSignature)?;
    Ok((h, json.to_vec(), signer))
}

/// AEAD-seals `plain` under `key` with the header as associated data.
pub fn aead_seal(key: &[u8; 32], header: &Header, plain: &[u8]) -> Vec<u8> {
    aead_seal_with_nonce(key, header, plain, crate::random_bytes())
}

/// [`aead_seal`] with a given nonce (test vectors; a nonce must never repeat under a key).
pub(crate) fn aead_seal_with_nonce(
    key: &[u8; 32],
    header: &Header,
    plain: &[u8],
    nonce: [u8; 24],
) -> Vec<u8> {
    let h = header.encode();
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

/// A control object body: sealed with the tenant's index key and signed.
pub trait Control: Serialize + DeserializeOwned {
    const TYPE: ObjectType;

    fn seal(
        &self,
        index_key: &[u8; 32],
        tenant: TenantTag,
        signer: &ed25519_dalek::SigningKey,
    ) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("serializes");
        seal_signed(index_key, &Header::new(Self::TYPE, tenant), &json, signer)
    }

    /// Opens, authenticates and verifies the signature; returns the body and the signer.
    fn open(
        index_key: &[u8; 32],
        tenant: TenantTag,
        stored: &[u8],
    ) -> Result<(Self, [u8; 32]), ControlError> {
        let (h, json, signer) = open_signed(index_key, Self::TYPE, stored, MAX_CONTROL_LEN)?;
        if h.tenant != tenant {
            return Err(ControlError::Auth);
        }
        let body = serde_json::from_slice(&json).map_err(|e| ControlError::Invalid {
            reason: e.to_string(),
        })?;
        Ok((body, signer))
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

/// Who holds a lock: enough to tell, on the holder's own machine, whether the holder is
/// still alive, and never to mistake another machine that shares the host name for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    /// The host name (for people; never used to decide).
    pub host: String,
    /// `/etc/machine-id` (empty if unreadable).
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id` (empty if unreadable).
    pub boot_id: String,
    /// Inode of `/proc/self/ns/pid`: the pid namespace the pid is valid in (0 if unknown).
    pub pid_ns: u64,
    pub pid: u32,
    /// The process start time in clock ticks since boot (`/proc/PID/stat` field 22), so a
    /// reused pid is not taken for the holder.
    pub start: u64,
    /// Random per process.
    pub token: String,
}

/// A lock held by a running operation, refreshed while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub kind: LockKind,
    pub holder: Holder,
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
    /// Packs this prune wrote: the blobs it copied out of condemned packs, verified. Only
    /// these count as another copy when a condemned pack is finally deleted.
    #[serde(default)]
    pub new_packs: Vec<Id>,
    /// Needed blobs of condemned packs that this prune found, verified, in packs it keeps
    /// (blob, pack): the other copies a deletion may rely on.
    #[serde(default)]
    pub verified: Vec<(Id, Id)>,
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

/// Snapshots an authority removed (`forget`), so that clients which saw them can tell a
/// deliberate removal from a store that hides snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRecord {
    /// Unix seconds.
    pub created: i64,
    pub snapshots: Vec<Id>,
}
impl Control for ForgetRecord {
    const TYPE: ObjectType = ObjectType::Forgotten;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(packs in proptest::collection::vec(any::<[u8; 32]>(), 0..10), created in any::<i64>(), host in ".{0,20}") {
            let key = [5u8; 32];
            let p = PrunePlan { created, packs: packs.into_iter().map(Id).collect(), index: vec![], replacement: None, new_packs: vec![], verified: vec![] };
            let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
            let pk = sk.verifying_key().to_bytes();
            prop_assert_eq!(PrunePlan::open(&key, [1; 16], &p.seal(&key, [1; 16], &sk)).unwrap(), (p, pk));
            let l = Lock { kind: LockKind::Backup, holder: Holder { host, pid: 7, ..Default::default() }, created, refreshed: created, nonce: "n".into() };
            prop_assert_eq!(Lock::open(&key, [1; 16], &l.seal(&key, [1; 16], &sk)).unwrap(), (l, pk));
        }
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Lock::open(&[0; 32], [0; 16], &b);
        }
    }

    #[test]
    fn type_and_tenant_are_bound() {
        let key = [5u8; 32];
        let sk = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let pr = Protection {
            snapshot: Id([1; 32]),
            created: 0,
            note: String::new(),
        }
        .seal(&key, [1; 16], &sk);
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

    #[test]
    fn a_signature_by_another_key_is_named_and_a_changed_one_refused() {
        let key = [5u8; 32];
        let a = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let b = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let plan = PrunePlan {
            created: 1,
            packs: vec![Id([7; 32])],
            index: vec![],
            replacement: None,
            new_packs: vec![],
            verified: vec![],
        };
        let (_, signer) = PrunePlan::open(&key, [1; 16], &plan.seal(&key, [1; 16], &b)).unwrap();
        assert_eq!(signer, b.verifying_key().to_bytes());
        assert_ne!(signer, a.verifying_key().to_bytes());
        // Someone with the index key rewrites the JSON but cannot re-sign as `a`.
        let header = Header::new(ObjectType::PrunePlan, [1; 16]);
        let sealed = seal_signed(&key, &header, br#"{"created":1,"packs":[],"index":[],"replacement":null,"new_packs":[],"verified":[]}"#, &a);
        let (_, json, _) =
            open_signed(&key, ObjectType::PrunePlan, &sealed, MAX_CONTROL_LEN).unwrap();
        let (h, mut plain) =
            aead_open(&key, ObjectType::PrunePlan, &sealed, MAX_CONTROL_LEN).unwrap();
        plain[4 + json.len() - 2] ^= 1;
        let resealed = aead_seal(&key, &h, &plain);
        assert!(matches!(
            open_signed(&key, ObjectType::PrunePlan, &resealed, MAX_CONTROL_LEN),
            Err(ControlError::BadSignature)
        ));
    }
}
