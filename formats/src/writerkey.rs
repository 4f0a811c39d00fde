//! The writer key file: everything an agent needs to back up, and nothing that decrypts
//! what is stored.
//!
//! It is a JSON document (mode 0600 on disk) holding the tenant's ID key and index key,
//! the tenant's data recipient (public), the writer's own ed25519 signing key, and the admin
//! public keys it trusts: a registry or writer list not signed by one of them is refused, so
//! the holder of this file cannot forge either. A `coop` writer key also backs up every
//! member tenant in the registry, now and later (their writer material comes from it).

use crate::envelope::TenantTag;
use crate::id::Id;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// The value of the `format` field.
pub const FORMAT: &str = "coop-writer-key";

#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(deny_unknown_fields)]
pub struct WriterKey {
    #[zeroize(skip)]
    pub format: String,
    #[zeroize(skip)]
    pub version: u32,
    #[zeroize(skip)]
    pub name: String,
    #[zeroize(skip)]
    pub repo_id: Id,
    #[zeroize(skip)]
    pub tenant: String,
    #[serde(with = "crate::hexser")]
    #[zeroize(skip)]
    pub tenant_tag: TenantTag,
    #[zeroize(skip)]
    pub config_hash: Id,
    #[serde(with = "crate::hexser")]
    pub id_key: [u8; 32],
    #[serde(with = "crate::hexser")]
    pub index_key: [u8; 32],
    #[zeroize(skip)]
    pub recipients: Vec<String>,
    #[serde(with = "crate::hexser")]
    pub signing_key: [u8; 32],
    /// Admin public keys (the coop keyring's signer): the only keys whose registry and
    /// writer list this writer accepts.
    #[serde(with = "crate::hexvec")]
    pub admin_keys: Vec<[u8; 32]>,
}

/// Errors from reading a writer key file.
#[derive(Debug, thiserror::Error)]
pub enum WriterKeyError {
    #[error("not a coop writer key file: {reason}")]
    Invalid { reason: String },
    #[error("writer key file version {found} is not supported by this coop")]
    UnknownVersion { found: u32 },
}

impl WriterKey {
    pub fn encode(&self) -> String {
        let what = if self.tenant == "coop" {
            "tenant coop and every member tenant registered now or later".to_string()
        } else {
            format!("tenant {}", self.tenant)
        };
        let mut s = format!(
            "# coop writer key {:?}: lets its holder back up into {what} of repository {}.\n\
             # It cannot decrypt anything stored. Keep it secret all the same: it can add snapshots;\n\
             # if it is stolen, revoke it with `coop key revoke {}` (see docs/OPERATOR.md).\n",
            self.name,
            self.repo_id.short(),
            self.name
        );
        s.push_str(&serde_json::to_string_pretty(self).expect("serializes"));
        s.push('\n');
        s
    }

    pub fn decode(text: &str) -> Result<Self, WriterKeyError> {
        let json: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let v: serde_json::Value =
            serde_json::from_str(&json).map_err(|e| WriterKeyError::Invalid {
                reason: e.to_string(),
            })?;
        if v.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(WriterKeyError::Invalid {
                reason: "missing format \"coop-writer-key\"".into(),
            });
        }
        let version = v.get("version").and_then(|f| f.as_u64()).unwrap_or(0);
        if version != 1 {
            return Err(WriterKeyError::UnknownVersion {
                found: version as u32,
            });
        }
        serde_json::from_value(v).map_err(|e| WriterKeyError::Invalid {
            reason: e.to_string(),
        })
    }

    pub fn signing_key(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.signing_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let k = WriterKey {
            format: FORMAT.into(),
            version: 1,
            name: "site-a".into(),
            repo_id: Id([1; 32]),
            tenant: "coop".into(),
            tenant_tag: [2; 16],
            config_hash: Id([3; 32]),
            id_key: [4; 32],
            index_key: [5; 32],
            recipients: vec!["age1x".into()],
            signing_key: [6; 32],
            admin_keys: vec![[7; 32]],
        };
        let back = WriterKey::decode(&k.encode()).unwrap();
        assert_eq!(back.id_key, k.id_key);
        assert_eq!(back.name, "site-a");
        assert_eq!(back.admin_keys, vec![[7; 32]]);
        assert!(WriterKey::decode("{}").is_err());
        assert!(matches!(
            WriterKey::decode(&k.encode().replace("\"version\": 1", "\"version\": 7")),
            Err(WriterKeyError::UnknownVersion { found: 7 })
        ));
    }
}
