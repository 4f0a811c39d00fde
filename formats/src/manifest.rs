//! Signed per-file manifests: what a member's export must contain.
//!
//! The agent builds the manifest while it backs up a member tenant (a BLAKE3 of every file's
//! content, computed as the data streams through) and signs it with its ed25519 key, so a
//! later export cannot forge it. An export carries it as `manifest.json`; `coop verify` checks
//! the export against it with no secret at all.
//!
//! ```text
//! SignedManifest { payload: <JSON text of Manifest>, signer: <hex ed25519 public key>, signature: <hex> }
//! signature = ed25519(signer, "coop-manifest-v1\0" || payload)
//! ```

use crate::id::Id;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

pub const SIG_DOMAIN: &[u8] = b"coop-manifest-v1\0";
pub const FORMAT: &str = "coop-manifest";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path relative to the snapshot root, `/`-separated (UTF-8; else `path_hex`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    /// BLAKE3 of the file's content, hex.
    pub blake3: String,
}

impl ManifestFile {
    pub fn path_bytes(&self) -> Vec<u8> {
        match &self.path_hex {
            Some(h) => hex::decode(h).unwrap_or_default(),
            None => self.path.as_bytes().to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub repo_id: Id,
    pub tenant: String,
    /// The site (writer) that made the snapshot.
    pub site: String,
    /// RFC 3339.
    pub time: String,
    /// Root tree of the snapshot.
    pub tree: Id,
    pub files: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub payload: String,
    pub signer: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is malformed: {reason}")]
    Malformed { reason: String },
    #[error("manifest signature does not verify: the manifest was changed or re-signed")]
    BadSignature,
}

impl SignedManifest {
    pub fn sign(m: &Manifest, key: &ed25519_dalek::SigningKey) -> Self {
        let payload = serde_json::to_string(m).expect("serializes");
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(payload.as_bytes());
        Self {
            signer: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&msg).to_bytes()),
            payload,
        }
    }

    /// Checks the signature; returns the manifest and the signer's public key.
    pub fn verify(&self) -> Result<(Manifest, [u8; 32]), ManifestError> {
        let pk: [u8; 32] = crate::hex_array(&self.signer).ok_or(ManifestError::Malformed {
            reason: "bad signer".into(),
        })?;
        let sig: [u8; 64] = crate::hex_array(&self.signature).ok_or(ManifestError::Malformed {
            reason: "bad signature".into(),
        })?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .map_err(|_| ManifestError::BadSignature)?;
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(self.payload.as_bytes());
        vk.verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| ManifestError::BadSignature)?;
        let m: Manifest =
            serde_json::from_str(&self.payload).map_err(|e| ManifestError::Malformed {
                reason: e.to_string(),
            })?;
        if m.format != FORMAT || m.version != 1 {
            return Err(ManifestError::Malformed {
                reason: format!("unsupported manifest {} v{}", m.format, m.version),
            });
        }
        Ok((m, pk))
    }
}

/// A short, human-comparable fingerprint of a signing key (BLAKE3, 16 hex digits in groups).
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    let h = blake3::hash(public_key).to_hex();
    let h = &h.as_str()[..16];
    format!("{}:{}:{}:{}", &h[0..4], &h[4..8], &h[8..12], &h[12..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(files: Vec<ManifestFile>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: 1,
            repo_id: Id([1; 32]),
            tenant: "member/a".into(),
            site: "s".into(),
            time: "t".into(),
            tree: Id([2; 32]),
            files,
        }
    }

    proptest! {
        #[test]
        fn roundtrip(paths in proptest::collection::vec("[a-z/]{1,20}", 0..10), size in any::<u64>()) {
            let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
            let files = paths.into_iter().map(|p| ManifestFile { path: p, path_hex: None, size, mode: 0o644, mtime_ns: -1, blake3: "00".into() }).collect();
            let man = m(files);
            let s = SignedManifest::sign(&man, &key);
            let (back, pk) = s.verify().unwrap();
            prop_assert_eq!(back, man);
            prop_assert_eq!(pk, key.verifying_key().to_bytes());
        }
    }

    #[test]
    fn tampering_is_detected() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let s = SignedManifest::sign(&m(vec![]), &key);
        let mut edited = s.clone();
        edited.payload = edited.payload.replace("member/a", "member/b");
        assert!(matches!(edited.verify(), Err(ManifestError::BadSignature)));
        // Re-signed with a foreign key: verifies, but under another key (verify --trust catches it).
        let resigned =
            SignedManifest::sign(&edited.verify().err().map(|_| m(vec![])).unwrap(), &other);
        assert_ne!(resigned.verify().unwrap().1, key.verifying_key().to_bytes());
        assert_eq!(fingerprint(&[0; 32]).len(), 19);
    }
}
