//! Pure encode/decode of every object in a coop repository. No I/O happens here.
//!
//! A coop repository stores immutable objects whose store name is the BLAKE3 hash of
//! their stored bytes. Every stored object starts with a 24-byte [`envelope::Header`]
//! (magic, format version, object type, tenant tag). What follows depends on the type:
//!
//! | object | body | authenticity |
//! |---|---|---|
//! | [`config`] | cleartext JSON | its hash is bound into every keyring |
//! | [`keyring`] | age to the tenant's recipients | keyed BLAKE3 MAC under the tenant ID key |
//! | [`pack`] | age to the tenant's recipients | every blob's keyed, typed ID is recomputed |
//! | [`index`] | XChaCha20-Poly1305 under the index key | AEAD, header as associated data |
//! | [`snapshot`] | age to the tenant's recipients | ed25519 signature of an authorised writer |
//! | [`control`] (locks, plans, protections, forget records), [`registry`] | XChaCha20-Poly1305 under the index key | AEAD, and an ed25519 signature whose signer the reader checks |
//! | [`writers`] | cleartext | ed25519 signature of an admin |
//!
//! `formats/SPEC.md` is the normative description; the code and the spec are kept in step
//! by the test vectors in each module.
//!
//! ```
//! use coop_formats::id::{blob_id, BlobType};
//! let key = [7u8; 32];
//! let a = blob_id(&key, BlobType::Data, b"hello");
//! let b = blob_id(&key, BlobType::Tree, b"hello");
//! assert_ne!(a, b); // the type is part of the ID
//! ```

pub mod blob;
pub mod config;
pub mod control;
pub mod crypt;
pub mod envelope;
pub mod id;
pub mod index;
pub mod keyring;
pub mod manifest;
pub mod pack;
pub mod recovery;
pub mod registry;
pub mod snapshot;
pub mod tlog;
pub mod tree;
pub mod writerkey;
pub mod writers;

#[cfg(test)]
mod vectors;

/// Fills a buffer from the operating system's CSPRNG.
///
/// # Panics
/// Only if the operating system has no randomness source, which no supported platform lacks.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random number generator failed");
    b
}

/// Parses a fixed-size lowercase or uppercase hex string.
pub(crate) fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// serde helpers for lists of 32-byte keys as hex strings.
pub(crate) mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| crate::hex_array(s).ok_or_else(|| serde::de::Error::custom("bad hex key")))
            .collect()
    }
}

/// serde helpers for fixed-size byte arrays as hex strings.
pub(crate) mod hexser {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::hex_array(&s).ok_or_else(|| serde::de::Error::custom("bad hex length or digit"))
    }
}
