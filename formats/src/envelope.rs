//! The 24-byte header that starts every stored object.
//!
//! ```text
//! 0..4   magic "COOP"
//! 4      format version (1)
//! 5      object type (1 config, 2 keyring, 3 pack, 4 index, 5 snapshot, 6 lock,
//!        7 prune plan, 8 protection, 9 member registry, 10 writer list, 11 forget record)
//! 6..8   reserved, must be zero
//! 8..24  tenant tag (16 random bytes chosen when the tenant is created; zero for config)
//! ```
//! Readers check the magic, then reject an unknown version before anything else.

/// Magic bytes at the start of every object.
pub const MAGIC: [u8; 4] = *b"COOP";
/// The only format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Length of the header.
pub const HEADER_LEN: usize = 24;

/// A tenant's 16-byte tag. It groups a tenant's objects in the store without naming it.
pub type TenantTag = [u8; 16];

/// The kind of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ObjectType {
    Config = 1,
    Keyring = 2,
    Pack = 3,
    Index = 4,
    Snapshot = 5,
    Lock = 6,
    PrunePlan = 7,
    Protection = 8,
    Registry = 9,
    Writers = 10,
    Forgotten = 11,
}

impl ObjectType {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Config,
            2 => Self::Keyring,
            3 => Self::Pack,
            4 => Self::Index,
            5 => Self::Snapshot,
            6 => Self::Lock,
            7 => Self::PrunePlan,
            8 => Self::Protection,
            9 => Self::Registry,
            10 => Self::Writers,
            11 => Self::Forgotten,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Keyring => "keyring",
            Self::Pack => "pack",
            Self::Index => "index",
            Self::Snapshot => "snapshot",
            Self::Lock => "lock",
            Self::PrunePlan => "prune plan",
            Self::Protection => "protection",
            Self::Registry => "member registry",
            Self::Writers => "writer list",
            Self::Forgotten => "forget record",
        }
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors from reading a header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("object is {len} bytes, shorter than the {HEADER_LEN}-byte coop header")]
    Truncated { len: usize },
    #[error("object does not start with the coop magic bytes")]
    BadMagic,
    #[error("object has format version {found}; this coop reads version {VERSION} (upgrade coop)")]
    UnknownVersion { found: u8 },
    #[error("object has unknown object type {found}")]
    UnknownType { found: u8 },
    #[error("expected a {expected} object, found a {found} object")]
    WrongType {
        expected: ObjectType,
        found: ObjectType,
    },
    #[error("reserved header bytes are not zero")]
    Reserved,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub object_type: ObjectType,
    pub tenant: TenantTag,
}

impl Header {
    pub fn new(object_type: ObjectType, tenant: TenantTag) -> Self {
        Self {
            object_type,
            tenant,
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.object_type as u8;
        b[8..24].copy_from_slice(&self.tenant);
        b
    }

    /// Decodes the header at the start of `bytes`, whatever its type.
    pub fn decode(bytes: &[u8]) -> Result<Self, HeaderError> {
        if bytes.len() < 5 {
            return Err(HeaderError::Truncated { len: bytes.len() });
        }
        if bytes[0..4] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        if bytes[4] != VERSION {
            return Err(HeaderError::UnknownVersion { found: bytes[4] });
        }
        if bytes.len() < HEADER_LEN {
            return Err(HeaderError::Truncated { len: bytes.len() });
        }
        let object_type =
            ObjectType::from_u8(bytes[5]).ok_or(HeaderError::UnknownType { found: bytes[5] })?;
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(HeaderError::Reserved);
        }
        let mut tenant = [0u8; 16];
        tenant.copy_from_slice(&bytes[8..24]);
        Ok(Self {
            object_type,
            tenant,
        })
    }

    /// Decodes a header and checks that it is of the expected type.
    pub fn decode_expect(bytes: &[u8], expected: ObjectType) -> Result<Self, HeaderError> {
        let h = Self::decode(bytes)?;
        if h.object_type != expected {
            return Err(HeaderError::WrongType {
                expected,
                found: h.object_type,
            });
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn vector() {
        let h = Header::new(ObjectType::Pack, [0xab; 16]);
        assert_eq!(
            hex::encode(h.encode()),
            "434f4f5001030000abababababababababababababababab"
        );
    }

    #[test]
    fn version_checked_before_type() {
        let mut b = Header::new(ObjectType::Pack, [0; 16]).encode();
        b[4] = 9;
        b[5] = 200;
        assert_eq!(
            Header::decode(&b),
            Err(HeaderError::UnknownVersion { found: 9 })
        );
        // even a truncated object with a future version says "unknown version"
        assert_eq!(
            Header::decode(&b[..6]),
            Err(HeaderError::UnknownVersion { found: 9 })
        );
    }

    #[test]
    fn wrong_type() {
        let b = Header::new(ObjectType::Pack, [0; 16]).encode();
        assert!(matches!(
            Header::decode_expect(&b, ObjectType::Snapshot),
            Err(HeaderError::WrongType { .. })
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(t in 1u8..=11, tag in any::<[u8; 16]>()) {
            let h = Header::new(ObjectType::from_u8(t).unwrap(), tag);
            prop_assert_eq!(Header::decode(&h.encode()).unwrap(), h);
        }
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Header::decode(&b);
        }
    }
}
