//! Object and blob identifiers.
//!
//! * A **blob ID** is `BLAKE3-keyed(id_key, type_byte || plaintext)`: keyed per tenant so a
//!   store cannot confirm a known file, typed so a data blob can never pass as a tree.
//! * An **object name** is the unkeyed `BLAKE3(stored bytes)`, so any site can scrub
//!   without keys.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A 32-byte identifier, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The first 8 hex digits, for display.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The object name of some stored bytes.
    pub fn of_stored(bytes: &[u8]) -> Self {
        Id(*blake3::hash(bytes).as_bytes())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// The string is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("not a 64-digit hex ID: {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for Id {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::hex_array(s)
            .map(Id)
            .ok_or_else(|| ParseIdError(s.chars().take(80).collect()))
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a blob holds. The type is hashed into its ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum BlobType {
    Data = 1,
    Tree = 2,
}

impl BlobType {
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Data),
            2 => Some(Self::Tree),
            _ => None,
        }
    }
}

/// Computes the keyed, typed ID of a blob's plaintext.
pub fn blob_id(id_key: &[u8; 32], ty: BlobType, plaintext: &[u8]) -> Id {
    let mut h = blake3::Hasher::new_keyed(id_key);
    h.update(&[ty as u8]);
    h.update(plaintext);
    Id(*h.finalize().as_bytes())
}

/// Key-derivation contexts (BLAKE3 `derive_key`). Each key has one purpose.
pub mod kdf {
    pub const KEYRING_MAC: &str = "coop 2026-11 v1 keyring mac";
    pub const CHUNKER_SEED: &str = "coop 2026-11 v1 chunker seed";
}

/// The FastCDC gear seed for a tenant, derived from its ID key so that chunk boundaries
/// do not reveal file contents to someone who knows the chunker parameters.
pub fn chunker_seed(id_key: &[u8; 32]) -> u64 {
    let k = blake3::derive_key(kdf::CHUNKER_SEED, id_key);
    u64::from_le_bytes(k[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test vector (SPEC.md): key = 0x42 * 32, type data, plaintext "coop".
    const VECTOR_DATA_COOP: &str =
        "590a9ce3c877cb297c51262f2f67f170af85c9edad62152436897cfee23b945b";

    #[test]
    fn vectors() {
        let key = [0x42u8; 32];
        // Test vectors also listed in SPEC.md.
        assert_eq!(
            blob_id(&key, BlobType::Data, b"").to_hex(),
            hex::encode(blake3::keyed_hash(&key, &[1]).as_bytes())
        );
        assert_eq!(
            blob_id(&key, BlobType::Data, b"coop").to_hex(),
            VECTOR_DATA_COOP
        );
        assert_ne!(
            blob_id(&key, BlobType::Data, b"x"),
            blob_id(&key, BlobType::Tree, b"x")
        );
        assert_ne!(
            blob_id(&key, BlobType::Data, b"x"),
            blob_id(&[0; 32], BlobType::Data, b"x")
        );
    }

    #[test]
    fn parse() {
        let id = Id([0xcd; 32]);
        assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
        assert!("zz".parse::<Id>().is_err());
        assert_eq!(id.short(), "cdcdcdcd");
    }
}
