//! k-of-n recovery: the recovery identity of member tenants, split with Shamir's scheme
//! (GF(256), the `blahaj` crate) among the admins (SPEC section 25).
//!
//! Each share is stored age-encrypted to its admin (`recovery/<epoch>/<admin>`); the setup
//! (who holds a share, the threshold, a BLAKE3 commitment per share) is in the admin-signed
//! registry and in the access log. A share is only ever released re-encrypted to a
//! recovery request's ephemeral key, as a log entry.

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryError {
    #[error("invalid recovery setup: {reason}")]
    Setup { reason: String },
    #[error("only {have} distinct share(s) of the {need} needed")]
    TooFew { have: usize, need: usize },
    #[error("a share does not match its commitment (damaged or forged)")]
    Commitment,
    #[error("the shares do not combine into an identity (damaged or of another epoch)")]
    Combine,
}

/// One admin's place in a setup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareHolder {
    pub name: String,
    /// The admin's own age or SSH recipient, which the share is encrypted to.
    pub recipient: String,
    /// The share's x coordinate (1..=255).
    pub index: u8,
    /// BLAKE3 (hex) of the share's bytes (index byte then the y values).
    pub commitment: String,
}

/// A recovery setup (an epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySetup {
    /// 16 hex characters, random.
    pub epoch: String,
    pub threshold: u8,
    /// The recovery identity's public key: member tenants' keyrings are wrapped to it.
    pub recipient: String,
    pub holders: Vec<ShareHolder>,
    pub created: String,
}

/// What `recovery/<epoch>/<admin>` decrypts to.
#[derive(Debug, Clone, Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
#[zeroize(drop)]
pub struct ShareFile {
    pub epoch: String,
    pub holder: String,
    /// The share's bytes, hex.
    pub share: String,
}

pub fn commitment(share: &[u8]) -> String {
    blake3::hash(share).to_hex().to_string()
}

/// Splits `secret` into `n` shares, any `k` of which recover it.
pub fn split(secret: &[u8], k: u8, n: u8) -> Result<Vec<Vec<u8>>, RecoveryError> {
    if k < 2 || k > n {
        return Err(RecoveryError::Setup {
            reason: format!(
                "a threshold of {k} of {n}: it must be at least 2 and at most the number of admins"
            ),
        });
    }
    let sharks = blahaj::Sharks(k);
    Ok(sharks
        .dealer(secret)
        .take(n as usize)
        .map(|s| Vec::from(&s))
        .collect())
}

/// Combines at least `k` distinct shares (checked against the setup's commitments).
pub fn combine(setup: &RecoverySetup, shares: &[Vec<u8>]) -> Result<Vec<u8>, RecoveryError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut parsed = Vec::new();
    for s in shares {
        let holder = setup
            .holders
            .iter()
            .find(|h| s.first() == Some(&h.index))
            .ok_or(RecoveryError::Commitment)?;
        if commitment(s) != holder.commitment {
            return Err(RecoveryError::Commitment);
        }
        if seen.insert(holder.index) {
            parsed.push(blahaj::Share::try_from(s.as_slice()).map_err(|_| RecoveryError::Combine)?);
        }
    }
    let need = setup.threshold as usize;
    if parsed.len() < need {
        return Err(RecoveryError::TooFew {
            have: parsed.len(),
            need,
        });
    }
    blahaj::Sharks(setup.threshold)
        .recover(parsed.iter())
        .map_err(|_| RecoveryError::Combine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k_of_n_recovers_and_k_minus_one_does_not() {
        let secret = b"AGE-SECRET-KEY-1EXAMPLEEXAMPLEEXAMPLE".to_vec();
        let shares = split(&secret, 2, 3).unwrap();
        let setup = RecoverySetup {
            epoch: "00".into(),
            threshold: 2,
            recipient: "age1x".into(),
            holders: shares
                .iter()
                .enumerate()
                .map(|(i, s)| ShareHolder {
                    name: format!("a{i}"),
                    recipient: String::new(),
                    index: s[0],
                    commitment: commitment(s),
                })
                .collect(),
            created: String::new(),
        };
        assert_eq!(combine(&setup, &shares[..2]).unwrap(), secret);
        assert_eq!(combine(&setup, &shares[1..]).unwrap(), secret);
        assert_eq!(
            combine(&setup, &shares[..1]),
            Err(RecoveryError::TooFew { have: 1, need: 2 })
        );
        // The same share twice is one share.
        assert_eq!(
            combine(&setup, &[shares[0].clone(), shares[0].clone()]),
            Err(RecoveryError::TooFew { have: 1, need: 2 })
        );
        let mut bad = shares[1].clone();
        bad[3] ^= 1;
        assert_eq!(
            combine(&setup, &[shares[0].clone(), bad]),
            Err(RecoveryError::Commitment)
        );
        assert!(split(&secret, 1, 3).is_err() && split(&secret, 4, 3).is_err());
    }
}
