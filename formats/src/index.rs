//! Index objects: where each blob of a tenant lives.
//!
//! ```text
//! stored    = header(index, tenant) || nonce:24 || XChaCha20-Poly1305(index_key, nonce, aad=header, plaintext)
//! plaintext = body || [signer:32 || signature:64]      (the signature iff superseded_count > 0)
//! body      = "CIDX" || pack_count:u32le || pack*pack_count
//!                    || superseded_count:u32le || index_id:32*superseded_count
//!                    || entry_count:u32le || entry*entry_count
//! signature = Ed25519(signer, "coop-index-v1\0" || header || body)
//! pack      = id:32 || stored_size:u64le                                           (40 bytes)
//! entry     = blob_id:32 || pack_ix:u32le || type:u8 || compression:u8
//!             || offset:u32le || stored_len:u32le || raw_len:u32le                 (50 bytes)
//! ```
//! Writers hold the index key, so they can read the index to deduplicate; the index
//! reveals blob IDs (keyed) and sizes, never content. The AEAD authenticates the index
//! to holders of the index key, so a store cannot make a writer skip uploading data.
//!
//! A writer can still write an index object that lies about where blobs are; readers verify
//! every blob they read, and nobody deletes on an index object's word. Supersession (an
//! index object saying that others are replaced, written by prune) would make readers
//! ignore data, so it is signed, and readers honour it only from the tenant's authority.

use crate::envelope::{Header, HeaderError, ObjectType, TenantTag, HEADER_LEN};
use crate::id::{BlobType, Id};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const PLAIN_MAGIC: [u8; 4] = *b"CIDX";
/// Domain separation of the supersession signature.
pub const SIG_DOMAIN: &[u8] = b"coop-index-v1\0";
pub const PACK_LEN: usize = 40;
pub const ENTRY_LEN: usize = 50;
/// The largest index object a reader accepts.
pub const MAX_INDEX_LEN: usize = 512 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexPack {
    pub id: Id,
    pub stored_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: Id,
    pub pack: u32,
    pub ty: BlobType,
    pub compression: u8,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// The decoded content of one index object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    /// Index objects this one replaces (written by prune when it consolidates). Written
    /// only with a signature; see `signer`.
    pub superseded: Vec<Id>,
    pub entries: Vec<IndexEntry>,
    /// Who signed `superseded` (set by [`IndexFile::open`]; `None` when nothing is
    /// superseded). Readers honour `superseded` only if this is the tenant's authority.
    pub signer: Option<[u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("index object is {len} bytes, over the limit")]
    TooLarge { len: usize },
    #[error("index does not authenticate: damaged, forged, or another tenant's")]
    Auth,
    #[error("index content is damaged: {reason}")]
    Malformed { reason: &'static str },
    #[error("index supersession signature does not verify (forged or damaged)")]
    BadSignature,
}

impl IndexFile {
    /// Adds a pack and the entries of its table.
    pub fn add_pack(&mut self, id: Id, stored_size: u64, entries: &[crate::pack::PackEntry]) {
        let ix = self.packs.len() as u32;
        self.packs.push(IndexPack { id, stored_size });
        self.entries.extend(entries.iter().map(|e| IndexEntry {
            id: e.id,
            pack: ix,
            ty: e.ty,
            compression: e.compression,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        }));
    }

    /// Adds one entry that lives in `pack` (listing the pack once).
    pub fn push(&mut self, pack: IndexPack, e: &IndexEntry) {
        let ix = match self.packs.iter().position(|q| q.id == pack.id) {
            Some(i) => i as u32,
            None => {
                self.packs.push(pack);
                (self.packs.len() - 1) as u32
            }
        };
        self.entries.push(IndexEntry { pack: ix, ..*e });
    }

    /// The body (see the module docs); `superseded` is written only if `with_superseded`.
    fn encode_body(&self, with_superseded: bool) -> Vec<u8> {
        let mut b =
            Vec::with_capacity(16 + self.packs.len() * PACK_LEN + self.entries.len() * ENTRY_LEN);
        b.extend_from_slice(&PLAIN_MAGIC);
        b.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            b.extend_from_slice(&p.id.0);
            b.extend_from_slice(&p.stored_size.to_le_bytes());
        }
        let sup: &[Id] = if with_superseded {
            &self.superseded
        } else {
            &[]
        };
        b.extend_from_slice(&(sup.len() as u32).to_le_bytes());
        for s in sup {
            b.extend_from_slice(&s.0);
        }
        b.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            b.extend_from_slice(&e.id.0);
            b.extend_from_slice(&e.pack.to_le_bytes());
            b.push(e.ty as u8);
            b.push(e.compression);
            b.extend_from_slice(&e.offset.to_le_bytes());
            b.extend_from_slice(&e.stored_len.to_le_bytes());
            b.extend_from_slice(&e.raw_len.to_le_bytes());
        }
        b
    }

    /// The plaintext: the body, signed when it supersedes anything. Without a signer the
    /// `superseded` list is left out (an unsigned supersession would be ignored anyway).
    pub fn encode_plain(
        &self,
        header: &[u8],
        signer: Option<&ed25519_dalek::SigningKey>,
    ) -> Vec<u8> {
        use ed25519_dalek::Signer;
        match signer {
            Some(sk) if !self.superseded.is_empty() => {
                let mut b = self.encode_body(true);
                let mut msg = SIG_DOMAIN.to_vec();
                msg.extend_from_slice(header);
                msg.extend_from_slice(&b);
                let sig = sk.sign(&msg);
                b.extend_from_slice(&sk.verifying_key().to_bytes());
                b.extend_from_slice(&sig.to_bytes());
                b
            }
            _ => self.encode_body(false),
        }
    }

    /// Decodes a plaintext and verifies a supersession signature against `header`.
    pub fn decode_plain(b: &[u8], header: &[u8]) -> Result<Self, IndexError> {
        let mal = |reason| IndexError::Malformed { reason };
        let mut r = Reader { b, pos: 0 };
        if r.take(4).ok_or(mal("truncated"))? != PLAIN_MAGIC {
            return Err(mal("bad magic"));
        }
        let np = r.u32().ok_or(mal("truncated"))? as usize;
        if np.checked_mul(PACK_LEN).is_none_or(|n| n > r.left()) {
            return Err(mal("pack count exceeds the data"));
        }
        let mut packs = Vec::with_capacity(np);
        for _ in 0..np {
            let id = Id(r.take(32).ok_or(mal("truncated"))?.try_into().expect("32"));
            let stored_size =
                u64::from_le_bytes(r.take(8).ok_or(mal("truncated"))?.try_into().expect("8"));
            packs.push(IndexPack { id, stored_size });
        }
        let ns = r.u32().ok_or(mal("truncated"))? as usize;
        if ns.checked_mul(32).is_none_or(|n| n > r.left()) {
            return Err(mal("superseded count exceeds the data"));
        }
        let mut superseded = Vec::with_capacity(ns);
        for _ in 0..ns {
            superseded.push(Id(r
                .take(32)
                .ok_or(mal("truncated"))?
                .try_into()
                .expect("32")));
        }
        let ne = r.u32().ok_or(mal("truncated"))? as usize;
        let sig_len = if ns > 0 { 96 } else { 0 };
        if ne
            .checked_mul(ENTRY_LEN)
            .and_then(|n| n.checked_add(sig_len))
            != Some(r.left())
        {
            return Err(mal("entry count does not match the data"));
        }
        let mut entries = Vec::with_capacity(ne);
        for _ in 0..ne {
            let e = r.take(ENTRY_LEN).ok_or(mal("truncated"))?;
            let pack = u32::from_le_bytes(e[32..36].try_into().expect("4"));
            if pack as usize >= packs.len() {
                return Err(mal("entry names a pack that is not listed"));
            }
            entries.push(IndexEntry {
                id: Id(e[..32].try_into().expect("32")),
                pack,
                ty: BlobType::from_u8(e[36]).ok_or(mal("unknown blob type"))?,
                compression: e[37],
                offset: u32::from_le_bytes(e[38..42].try_into().expect("4")),
                stored_len: u32::from_le_bytes(e[42..46].try_into().expect("4")),
                raw_len: u32::from_le_bytes(e[46..50].try_into().expect("4")),
            });
        }
        let signer = if ns > 0 {
            use ed25519_dalek::Verifier;
            let body_len = b.len() - 96;
            let signer: [u8; 32] = b[body_len..body_len + 32].try_into().expect("32");
            let sig =
                ed25519_dalek::Signature::from_bytes(b[body_len + 32..].try_into().expect("64"));
            let mut msg = SIG_DOMAIN.to_vec();
            msg.extend_from_slice(header);
            msg.extend_from_slice(&b[..body_len]);
            ed25519_dalek::VerifyingKey::from_bytes(&signer)
                .and_then(|vk| vk.verify(&msg, &sig))
                .map_err(|_| IndexError::BadSignature)?;
            Some(signer)
        } else {
            None
        };
        Ok(Self {
            packs,
            superseded,
            entries,
            signer,
        })
    }

    /// Encrypts the index under the tenant's index key; `signer` signs the supersession
    /// (prune's consolidated index; without one nothing is superseded).
    pub fn seal(
        &self,
        index_key: &[u8; 32],
        tenant: TenantTag,
        signer: Option<&ed25519_dalek::SigningKey>,
    ) -> Vec<u8> {
        self.seal_with_nonce(index_key, tenant, signer, crate::random_bytes())
    }

    /// [`Self::seal`] with a given nonce (test vectors; a nonce must never repeat under a key).
    pub(crate) fn seal_with_nonce(
        &self,
        index_key: &[u8; 32],
        tenant: TenantTag,
        signer: Option<&ed25519_dalek::SigningKey>,
        nonce: [u8; 24],
    ) -> Vec<u8> {
        let header = Header::new(ObjectType::Index, tenant).encode();
        let cipher = XChaCha20Poly1305::new(index_key.into());
        let plain = self.encode_plain(&header, signer);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &header,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory data");
        let mut out = Vec::with_capacity(HEADER_LEN + 24 + ct.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Authenticates and decodes an index object.
    pub fn open(index_key: &[u8; 32], stored: &[u8]) -> Result<(Header, Self), IndexError> {
        let header = Header::decode_expect(stored, ObjectType::Index)?;
        if stored.len() > MAX_INDEX_LEN {
            return Err(IndexError::TooLarge { len: stored.len() });
        }
        if stored.len() < HEADER_LEN + 24 + 16 {
            return Err(IndexError::Malformed {
                reason: "truncated",
            });
        }
        let cipher = XChaCha20Poly1305::new(index_key.into());
        let nonce = XNonce::from_slice(&stored[HEADER_LEN..HEADER_LEN + 24]);
        let plain = cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &stored[HEADER_LEN + 24..],
                    aad: &stored[..HEADER_LEN],
                },
            )
            .map_err(|_| IndexError::Auth)?;
        Ok((header, Self::decode_plain(&plain, &stored[..HEADER_LEN])?))
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}
impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|s| u32::from_le_bytes(s.try_into().expect("4")))
    }
    fn left(&self) -> usize {
        self.b.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_index() -> impl Strategy<Value = IndexFile> {
        (
            1usize..5,
            proptest::collection::vec(
                (
                    any::<[u8; 32]>(),
                    any::<u32>(),
                    1u8..=2,
                    0u8..=1,
                    any::<u32>(),
                    any::<u32>(),
                    any::<u32>(),
                ),
                0..30,
            ),
            proptest::collection::vec(any::<[u8; 32]>(), 0..3),
        )
            .prop_map(|(np, es, sup)| IndexFile {
                packs: (0..np)
                    .map(|i| IndexPack {
                        id: Id([i as u8; 32]),
                        stored_size: i as u64 * 1000,
                    })
                    .collect(),
                superseded: sup.into_iter().map(Id).collect(),
                signer: None,
                entries: es
                    .into_iter()
                    .map(|(id, p, t, c, o, s, r)| IndexEntry {
                        id: Id(id),
                        pack: p % np as u32,
                        ty: BlobType::from_u8(t).unwrap(),
                        compression: c,
                        offset: o,
                        stored_len: s,
                        raw_len: r,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn roundtrip(idx in arb_index()) {
            let key = [9u8; 32];
            let sk = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
            let sealed = idx.seal(&key, [4; 16], Some(&sk));
            let (h, back) = IndexFile::open(&key, &sealed).unwrap();
            prop_assert_eq!(h.tenant, [4; 16]);
            let mut want = idx.clone();
            want.signer = (!idx.superseded.is_empty()).then(|| sk.verifying_key().to_bytes());
            prop_assert_eq!(back, want);
            // Without a signer, nothing is superseded.
            let (_, unsigned) = IndexFile::open(&key, &idx.seal(&key, [4; 16], None)).unwrap();
            prop_assert!(unsigned.superseded.is_empty() && unsigned.signer.is_none());
            prop_assert_eq!(unsigned.entries, idx.entries);
        }
        #[test]
        fn plain_garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = IndexFile::decode_plain(&b, &[0; HEADER_LEN]);
            let mut c = PLAIN_MAGIC.to_vec(); c.extend_from_slice(&b);
            let _ = IndexFile::decode_plain(&c, &[0; HEADER_LEN]);
        }
        #[test]
        fn mutated_is_rejected(idx in arb_index(), pos in any::<prop::sample::Index>(), x in 1u8..) {
            let key = [9u8; 32];
            let sk = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
            let mut sealed = idx.seal(&key, [4; 16], Some(&sk));
            let i = pos.index(sealed.len());
            sealed[i] ^= x;
            prop_assert!(IndexFile::open(&key, &sealed).is_err());
        }
    }

    #[test]
    fn wrong_key() {
        let sealed = IndexFile::default().seal(&[1; 32], [0; 16], None);
        assert!(matches!(
            IndexFile::open(&[2; 32], &sealed),
            Err(IndexError::Auth)
        ));
    }
}
