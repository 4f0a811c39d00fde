//! Snapshots: the signed, encrypted record of one backup.
//!
//! ```text
//! stored    = header(snapshot, tenant) || inventory_len:u32le || inventory || age(recipients, plaintext)
//! inventory = count:u32le || (kind:u8 || name:32) × count        kind 3 = pack, 4 = index object
//! plaintext = header || json_len:u32le || json || signature:64
//! signature = ed25519(writer key, "coop-snapshot-v1\0" || header || json)
//! ```
//! A reader accepts a snapshot only if the signature verifies against the `writer` public
//! key in the JSON, that key may write the tenant, and the JSON's `inventory` is the BLAKE3
//! of the inventory stored in front of it.
//!
//! The inventory is in the clear: the packs and index objects the snapshot needs. A site
//! with no keys reads it to replicate a snapshot only once everything it needs is there (a
//! source whose listing hides objects cannot hand an honest replica a snapshot without its
//! data), and to know what a replica must keep. It shows storage sites which stored objects
//! belong together, nothing of their content.

use crate::crypt::{self, CryptError, Identity, Recipient};
use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::Id;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

/// The objects a snapshot needs: its packs and the index objects that locate its blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub packs: Vec<Id>,
    pub index: Vec<Id>,
}

/// The most entries an inventory may have.
pub const MAX_INVENTORY: usize = 4 << 20;

impl Inventory {
    /// The encoded form (sorted, without duplicates).
    pub fn encode(&self) -> Vec<u8> {
        let mut items: Vec<(u8, Id)> = self
            .packs
            .iter()
            .map(|p| (ObjectType::Pack as u8, *p))
            .chain(self.index.iter().map(|i| (ObjectType::Index as u8, *i)))
            .collect();
        items.sort();
        items.dedup();
        let mut b = Vec::with_capacity(4 + items.len() * 33);
        b.extend_from_slice(&(items.len() as u32).to_le_bytes());
        for (k, id) in items {
            b.push(k);
            b.extend_from_slice(&id.0);
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, SnapshotError> {
        let mal = |r: &str| SnapshotError::Malformed {
            reason: r.to_string(),
        };
        if b.len() < 4 {
            return Err(mal("truncated inventory"));
        }
        let n = u32::from_le_bytes(b[..4].try_into().expect("4")) as usize;
        if n > MAX_INVENTORY || 4 + n * 33 != b.len() {
            return Err(mal("inventory length does not match its count"));
        }
        let mut inv = Inventory::default();
        for c in b[4..].chunks_exact(33) {
            let id = Id(c[1..].try_into().expect("32"));
            match ObjectType::from_u8(c[0]) {
                Some(ObjectType::Pack) => inv.packs.push(id),
                Some(ObjectType::Index) => inv.index.push(id),
                _ => return Err(mal("unknown kind in the inventory")),
            }
        }
        Ok(inv)
    }
}

/// Reads the inventory of a stored snapshot (no keys needed); returns it, its encoded form
/// and where the age part starts.
pub fn read_inventory(stored: &[u8]) -> Result<(Header, Inventory, usize), SnapshotError> {
    let header = Header::decode_expect(stored, ObjectType::Snapshot)?;
    let mal = |r: &str| SnapshotError::Malformed {
        reason: r.to_string(),
    };
    let n = stored
        .get(HEADER_LEN..HEADER_LEN + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4")) as usize)
        .ok_or_else(|| mal("truncated"))?;
    let end = (HEADER_LEN + 4)
        .checked_add(n)
        .filter(|e| *e <= stored.len())
        .ok_or_else(|| mal("inventory longer than the object"))?;
    let inv = Inventory::decode(&stored[HEADER_LEN + 4..end])?;
    Ok((header, inv, end))
}

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
    /// BLAKE3 of the inventory stored in clear in front of the encrypted snapshot.
    pub inventory: Id,
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

    /// Signs and encrypts. `self.writer` and `self.inventory` are set from the signing key
    /// and the inventory.
    pub fn seal(
        &mut self,
        signer: &ed25519_dalek::SigningKey,
        recipients: &[Recipient],
        tenant: TenantTag,
        inventory: &Inventory,
    ) -> Result<Vec<u8>, SnapshotError> {
        self.writer = signer.verifying_key().to_bytes();
        let inv = inventory.encode();
        self.inventory = Id::of_stored(&inv);
        let header = Header::new(ObjectType::Snapshot, tenant).encode();
        let json = serde_json::to_vec(self).expect("snapshot serializes");
        let sig = signer.sign(&Self::signed_message(&header, &json));
        let mut plain = Vec::with_capacity(HEADER_LEN + 4 + json.len() + 64);
        plain.extend_from_slice(&header);
        plain.extend_from_slice(&(json.len() as u32).to_le_bytes());
        plain.extend_from_slice(&json);
        plain.extend_from_slice(&sig.to_bytes());
        let mut out = header.to_vec();
        out.extend_from_slice(&(inv.len() as u32).to_le_bytes());
        out.extend_from_slice(&inv);
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
        let (header, _, age_at) = read_inventory(stored)?;
        if header.tenant != expect.1 {
            return Err(SnapshotError::Misplaced);
        }
        let plain = crypt::decrypt(identities, &stored[age_at..], MAX_SNAPSHOT_LEN)?;
        let s = Self::verify_plain(&stored[..HEADER_LEN], &plain, expect.0, is_writer)?;
        if s.inventory != Id::of_stored(&stored[HEADER_LEN + 4..age_at]) {
            return Err(SnapshotError::Malformed {
                reason: "the inventory in front of the snapshot is not the one it was signed with"
                    .into(),
            });
        }
        Ok(s)
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
            inventory: Id([0; 32]),
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
        let inv = Inventory {
            packs: vec![Id([5; 32])],
            index: vec![Id([6; 32])],
        };
        let sealed = s.seal(&good, &r, [3; 16], &inv).unwrap();
        assert_eq!(read_inventory(&sealed).unwrap().1, inv);
        let back =
            Snapshot::open(&ids, &sealed, (Id([1; 32]), [3; 16]), |k| k == &good_pk).unwrap();
        assert_eq!(back, s);
        // A valid signature by a key that is not a writer.
        let forged = sample().seal(&evil, &r, [3; 16], &inv).unwrap();
        // A storage site that swaps the inventory in front is caught by the hash.
        let mut swapped = sealed.clone();
        let at = HEADER_LEN + 4 + 4 + 1;
        swapped[at] ^= 1;
        assert!(Snapshot::open(&ids, &swapped, (Id([1; 32]), [3; 16]), |k| k == &good_pk).is_err());
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
