//! The repository config: stored in clear at the fixed name `config`.
//!
//! It holds only public parameters. Its BLAKE3 hash is recorded in every tenant keyring,
//! so a reader with keys detects a swapped config.

use crate::envelope::{Header, HeaderError, ObjectType, HEADER_LEN};
use crate::id::Id;
use serde::{Deserialize, Serialize};

/// The largest config a reader accepts.
pub const MAX_CONFIG_LEN: usize = 64 << 10;

/// FastCDC v2020 parameters, fixed for the life of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub algorithm: ChunkerAlgorithm,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkerAlgorithm {
    #[serde(rename = "fastcdc-v2020")]
    FastCdc2020,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self {
            algorithm: ChunkerAlgorithm::FastCdc2020,
            min_size: 512 << 10,
            avg_size: 1 << 20,
            max_size: 8 << 20,
        }
    }
}

impl ChunkerParams {
    /// Checks the sizes against what readers accept (SPEC: the config).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        let ok = (64..=(1 << 20)).contains(&c.min_size)
            && (256..=(4 << 20)).contains(&c.avg_size)
            && (1024..=(16 << 20)).contains(&c.max_size)
            && c.min_size <= c.avg_size
            && c.avg_size <= c.max_size
            && c.min_size.is_multiple_of(2)
            && c.avg_size.is_multiple_of(2)
            && c.max_size.is_multiple_of(2);
        if !ok {
            let reason = format!(
                "chunk sizes min {}, avg {}, max {} are out of range: min 64 B to 1 MiB, avg \
                 256 B to 4 MiB, max 1 KiB to 16 MiB, min <= avg <= max, each an even number \
                 of bytes",
                c.min_size, c.avg_size, c.max_size
            );
            return Err(ConfigError::Invalid { reason });
        }
        Ok(())
    }
}

/// The repository config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Always 1 for this format.
    pub version: u32,
    /// Random repository ID.
    pub repo_id: Id,
    /// RFC 3339 creation time.
    pub created: String,
    pub chunker: ChunkerParams,
    /// zstd level for compressible blobs (0 disables compression).
    pub compression_level: i32,
    /// Target plaintext size of a pack in bytes.
    pub pack_size: u32,
}

/// Errors from decoding a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("config is {len} bytes, over the {MAX_CONFIG_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("config is not valid: {reason}")]
    Invalid { reason: String },
}

impl Config {
    pub fn new(repo_id: Id, created: String) -> Self {
        Self {
            version: 1,
            repo_id,
            created,
            chunker: ChunkerParams::default(),
            compression_level: 3,
            pack_size: 16 << 20,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Header::new(ObjectType::Config, [0; 16]).encode().to_vec();
        serde_json::to_writer_pretty(&mut out, self).expect("config serializes");
        out.push(b'\n');
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ConfigError> {
        Header::decode_expect(bytes, ObjectType::Config)?;
        if bytes.len() > MAX_CONFIG_LEN {
            return Err(ConfigError::TooLarge { len: bytes.len() });
        }
        let c: Config =
            serde_json::from_slice(&bytes[HEADER_LEN..]).map_err(|e| ConfigError::Invalid {
                reason: e.to_string(),
            })?;
        c.validate()?;
        Ok(c)
    }

    /// Checks the parameters against what the chunker and packer support.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |reason: String| Err(ConfigError::Invalid { reason });
        if self.version != 1 {
            return bad(format!("config version {} is not supported", self.version));
        }
        self.chunker.validate()?;
        if !(0..=19).contains(&self.compression_level) {
            return bad(format!(
                "compression level {} is out of range 0..=19",
                self.compression_level
            ));
        }
        if !((1 << 20)..=(128 << 20)).contains(&self.pack_size) {
            return bad(format!(
                "pack size {} is out of range 1 MiB..=128 MiB",
                self.pack_size
            ));
        }
        Ok(())
    }

    /// BLAKE3 of the encoded config, as bound into keyrings.
    pub fn hash(bytes: &[u8]) -> Id {
        Id::of_stored(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_reject() {
        let c = Config::new(Id([1; 32]), "2026-11-23T00:00:00Z".into());
        let b = c.encode();
        assert_eq!(Config::decode(&b).unwrap(), c);
        let mut bad = c.clone();
        bad.chunker.max_size = 1 << 30;
        assert!(Config::decode(&bad.encode()).is_err());
        let mut b2 = b.clone();
        b2[4] = 2;
        assert!(matches!(
            Config::decode(&b2),
            Err(ConfigError::Header(HeaderError::UnknownVersion {
                found: 2
            }))
        ));
    }

    proptest! {
        #[test]
        fn mutated_never_panics(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut b = Config::new(Id([1; 32]), "t".into()).encode();
            let i = pos.index(b.len());
            b[i] = byte;
            let _ = Config::decode(&b);
        }
    }
}
