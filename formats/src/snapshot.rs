//! Snapshots: the signed, encrypted record of one backup.
//!
//! ```text
//! stored    = header(snapshot, tenant) || age(recipients, plaintext)
//! plaintext = header || json_len:u32le || json || signature:64
//! signature = ed25519(writer key, "coop-snapshot-v1\0" || header || json)
//! ```
//! A reader accepts a snapshot only if the signature verifies against the `writer` public
//! key in the JSON *and* that key is listed as a writer in the tenant's keyring.

use crate::crypt::{self, CryptError, Identity, Recipient};
use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::Id;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

/// Domain separation for snapshot signatures.
pub const SIG_DOMAIN: &[u8] = b"coop-snapshot-v1\0";
/// The largest decrypted snapshot a reader accepts.
pub const MAX_SNAPSHOT_LEN: usize = 4 << 20;

/// Counters recorded with a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub dirs: u64,
    pub total_files: u64,
    pub total_bytes: u64,
    pub bytes_read: u64,
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub bytes_stored: u64,
    pub duration_ms: u64,
}

/// The content of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub version: u32,
    pub repo_id: Id,
    pub tenant: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
    pub host: String,
    #[serde(default)]
    pub username: String,
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Root tree blob.
    pub tree: Id,
    /// ed25519 public key of the writer that signed it.
    #[serde(with = "crate::hexser")]
    pub writer: [u8; 32],
    #[serde(default)]
    pub writer_name: String,
    pub program: String,
    #[serde(default)]
    pub summary: Summary,
    /// Data blob holding the signed per-file manifest (member tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Id>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error(transparent)]
    Crypt(#[from] CryptError),
    #[error("snapshot plaintext is malformed: {reason}")]
    Malformed { reason: String },
    #[error("snapshot signature does not verify (forged or damaged)")]
    BadSignature,
    #[error("snapshot is signed by {key}, which is not a writer of this tenant (forged?)")]
    UnknownWriter { key: String },
    #[error("snapshot belongs to another repository or tenant (moved or forged)")]
    Misplaced,
}

impl Snapshot {
    fn signed_message(header: &[u8], json: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(SIG_DOMAIN.len() + header.len() + json.len());
        m.extend_from_slice(SIG_DOMAIN);
        m.extend_from_slice(header);
        m.extend_from_slice(json);
        m
    }

    /// Signs and encrypts. `self.writer` is set from the signing key.
    pub fn seal(
        &mut self,
        signer: &ed25519_dalek::SigningKey,
        recipients: &[Recipient],
        tenant: TenantTag,
    ) -> Result<Vec<u8>, SnapshotError> {
        self.writer = signer.verifying_key().to_bytes();
        let header = Header::new(ObjectType::Snapshot, tenant).encode();
        let json = serde_json::to_vec(self).expect("snapshot serializes");
        let sig = signer.sign(&Self::signed_message(&header, &json));
        let mut plain = Vec::with_capacity(HEADER_LEN + 4 + json.len() + 64);
        plain.extend_from_slice(&header);
        plain.extend_from_slice(&(json.len() as u32).to_le_bytes());
        plain.extend_from_slice(&json);
        plain.extend_from_slice(&sig.to_bytes());
        let mut out = header.to_vec();
        crypt::encrypt_to(recipients, &[&plain], &mut out)?;
        Ok(out)
    }

    /// Decrypts and checks the signature. `is_writer` decides whether the signing key is
    /// authorised; `expect` is the (repo_id, tenant tag) the snapshot must belong to.
    pub fn open(
        identities: &[Identity],
        stored: &[u8],
        expect: (Id, TenantTag),
        is_writer: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<Self, SnapshotError> {
        let header = Header::decode_expect(stored, ObjectType::Snapshot)?;
        if header.tenant != expect.1 {
            return Err(SnapshotError::Misplaced);
        }
        let plain = crypt::decrypt(identities, &stored[HEADER_LEN..], MAX_SNAPSHOT_LEN)?;
        Self::verify_plain(&stored[..HEADER_LEN], &plain, expect.0, is_writer)
    }

    fn verify_plain(
        header: &[u8],
        plain: &[u8],
        repo_id: Id,
        is_writer: impl Fn(&[u8; 32]) -> bool,
    ) -> Result<Self, SnapshotError> {
        let mal = |r: &str| SnapshotError::Malformed {
            reason: r.to_string(),
        };
        if plain.len() < HEADER_LEN + 4 + 64 || &plain[..HEADER_LEN] != header {
            return Err(mal("missing header copy"));
        }
        let n =
            u32::from_le_bytes(plain[HEADER_LEN..HEADER_LEN + 4].try_into().expect("4")) as usize;
        if HEADER_LEN + 4 + n + 64 != plain.len() {
            return Err(mal("length fields do not match"));
        }
        let json = &plain[HEADER_LEN + 4..HEADER_LEN + 4 + n];
        let sig =
            ed25519_dalek::Signature::from_bytes(plain[plain.len() - 64..].try_into().expect("64"));
        let s: Snapshot = serde_json::from_slice(json).map_err(|e| mal(&e.to_string()))?;
        if s.version != 1 {
            return Err(mal(&format!(
                "snapshot version {} is not supported",
                s.version
            )));
        }
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&s.writer)
            .map_err(|_| SnapshotError::BadSignature)?;
        vk.verify(&Self::signed_message(header, json), &sig)
            .map_err(|_| SnapshotError::BadSignature)?;
        if !is_writer(&s.writer) {
            return Err(SnapshotError::UnknownWriter {
                key: hex::encode(s.writer),
            });
        }
        if s.repo_id != repo_id {
            return Err(SnapshotError::Misplaced);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Snapshot {
        Snapshot {
            version: 1,
            repo_id: Id([1; 32]),
            tenant: "coop".into(),
            time: "2026-11-23T18:00:00.123456789Z".into(),
            host: "box".into(),
            username: "root".into(),
            paths: vec!["/srv".into()],
            tags: vec!["daily".into()],
            tree: Id([2; 32]),
            writer: [0; 32],
            writer_name: "default".into(),
            program: "coop test".into(),
            summary: Summary::default(),
            manifest: None,
        }
    }

    #[test]
    fn seal_open_forge() {
        let (id_text, rcpt) = crypt::generate_identity();
        let ids = crypt::parse_identities(id_text.as_bytes()).unwrap();
        let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
        let good = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let evil = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let good_pk = good.verifying_key().to_bytes();
        let mut s = sample();
        let sealed = s.seal(&good, &r, [3; 16]).unwrap();
        let back =
            Snapshot::open(&ids, &sealed, (Id([1; 32]), [3; 16]), |k| k == &good_pk).unwrap();
        assert_eq!(back, s);
        // A valid signature by a key that is not a writer.
        let forged = sample().seal(&evil, &r, [3; 16]).unwrap();
        assert!(matches!(
            Snapshot::open(&ids, &forged, (Id([1; 32]), [3; 16]), |k| k == &good_pk),
            Err(SnapshotError::UnknownWriter { .. })
        ));
        // Wrong tenant.
        assert!(matches!(
            Snapshot::open(&ids, &sealed, (Id([1; 32]), [4; 16]), |_| true),
            Err(SnapshotError::Misplaced)
        ));
    }

    proptest! {
        #[test]
        fn plain_roundtrip_and_mutation(host in ".{0,30}", tags in proptest::collection::vec("[a-z]{1,8}", 0..4), pos in any::<prop::sample::Index>(), x in 1u8..) {
            let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
            let mut s = sample();
            s.host = host; s.tags = tags;
            s.writer = key.verifying_key().to_bytes();
            let header = Header::new(ObjectType::Snapshot, [3; 16]).encode();
            let json = serde_json::to_vec(&s).unwrap();
            let sig = key.sign(&Snapshot::signed_message(&header, &json));
            let mut plain = header.to_vec();
            plain.extend_from_slice(&(json.len() as u32).to_le_bytes());
            plain.extend_from_slice(&json);
            plain.extend_from_slice(&sig.to_bytes());
            prop_assert_eq!(Snapshot::verify_plain(&header, &plain, Id([1; 32]), |_| true).unwrap(), s);
            let i = pos.index(plain.len());
            plain[i] ^= x;
            prop_assert!(Snapshot::verify_plain(&header, &plain, Id([1; 32]), |_| true).is_err());
        }
    }
}
