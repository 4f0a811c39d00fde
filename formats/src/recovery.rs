//! k-of-n recovery: one recovery identity per member tenant, split with Shamir's scheme
//! (GF(256), the `blahaj` crate) among the admins (SPEC section 25).
//!
//! Each member's identity opens that member's keyring and nothing else, so a recovery opens
//! one member. A recovery needs `threshold` distinct shares, which is one more than the
//! approvals asked for: the person who asks holds a share too, and their own share never
//! counts as an approval (with `--threshold K`, K admins *other* than the requester approve).
//!
//! Each share is stored age-encrypted to its admin (`recovery/<epoch>/<slot>/<admin>`); who
//! holds a share and the threshold are in the admin-signed registry's setup, each member's
//! recovery recipient and a BLAKE3 commitment per share in its registry entry, and both in
//! the access log. A share is only ever released re-encrypted to a recovery request's
//! ephemeral key, as a log entry.

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
    /// The admin's own age or SSH recipient, which the shares are encrypted to.
    pub recipient: String,
    /// The x coordinate of this admin's shares (1..=255), the same for every member.
    pub index: u8,
}

/// A recovery setup (an epoch): who holds shares and how many a recovery needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySetup {
    /// 16 hex characters, random.
    pub epoch: String,
    /// Distinct shares a recovery needs: the approvals asked for plus the requester's own.
    pub threshold: u8,
    pub holders: Vec<ShareHolder>,
    pub created: String,
}

impl RecoverySetup {
    /// Approvals by admins other than the requester that a recovery needs.
    pub fn approvals(&self) -> u8 {
        self.threshold.saturating_sub(1)
    }

    /// Checks the setup's own consistency: a threshold of at least two and at most the
    /// number of holders, distinct names and distinct, non-zero indices.
    pub fn check(&self) -> Result<(), RecoveryError> {
        let bad = |reason: String| Err(RecoveryError::Setup { reason });
        if self.threshold < 2 || self.threshold as usize > self.holders.len() {
            return bad(format!(
                "a threshold of {} shares with {} holders",
                self.threshold,
                self.holders.len()
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        let mut xs = std::collections::BTreeSet::new();
        for h in &self.holders {
            // Names become store path segments (`recovery/<epoch>/<slot>/<name>`, with every
            // character outside `A-Za-z0-9-_.` replaced by `_`): two names that map to one
            // segment, or `.` and `..`, are refused.
            let segment: String = h
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if h.index == 0
                || !xs.insert(h.index)
                || matches!(segment.as_str(), "" | "." | "..")
                || !names.insert(segment)
            {
                return bad(format!(
                    "holder {:?} is given twice, has index 0 or is no usable name",
                    h.name
                ));
            }
        }
        if !is_hex16(&self.epoch) {
            return bad("the epoch is not 16 hex digits".into());
        }
        Ok(())
    }
}

/// One member tenant's recovery identity: its public key (the member's keyring is wrapped
/// to it) and the commitments of its shares, one per holder of the setup, in the setup's
/// order. Kept in the member's registry entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberRecovery {
    /// The setup's epoch this identity was split in.
    pub epoch: String,
    /// 16 random hex digits naming this identity's shares (`recovery/<epoch>/<slot>/…`):
    /// unlinkable to the member for whoever sees only the store.
    pub slot: String,
    /// The identity's public key.
    pub recipient: String,
    /// BLAKE3 (hex) of each share's bytes (index byte then the y values), in holder order.
    pub commitments: Vec<String>,
}

/// What `recovery/<epoch>/<slot>/<admin>` decrypts to.
#[derive(Debug, Clone, Serialize, Deserialize, Zeroize)]
#[serde(deny_unknown_fields)]
#[zeroize(drop)]
pub struct ShareFile {
    pub epoch: String,
    pub slot: String,
    pub holder: String,
    /// The share's bytes, hex.
    pub share: String,
}

/// Whether `s` is 16 lowercase hex digits (an epoch or a slot).
pub fn is_hex16(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn commitment(share: &[u8]) -> String {
    blake3::hash(share).to_hex().to_string()
}

/// Splits `secret` into one share per holder of `setup` (at the holder's index), any
/// `setup.threshold` of which recover it.
pub fn split_for(setup: &RecoverySetup, secret: &[u8]) -> Result<Vec<Vec<u8>>, RecoveryError> {
    setup.check()?;
    // Shares up to the largest index only, and every one not handed out wiped.
    let n = setup.holders.iter().map(|h| h.index).max().unwrap_or(1);
    let mut all = split(secret, setup.threshold, n.max(setup.threshold))?;
    let out = setup
        .holders
        .iter()
        .map(|h| all[h.index as usize - 1].clone())
        .collect();
    for s in &mut all {
        s.zeroize();
    }
    Ok(out)
}

/// Splits `secret` into `n` shares (x = 1..=n), any `k` of which recover it.
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

/// Combines at least `setup.threshold` distinct shares of one member's identity (each
/// checked against that member's commitments).
pub fn combine(
    setup: &RecoverySetup,
    member: &MemberRecovery,
    shares: &[Vec<u8>],
) -> Result<Vec<u8>, RecoveryError> {
    if member.commitments.len() != setup.holders.len() || member.epoch != setup.epoch {
        return Err(RecoveryError::Setup {
            reason: "the member's recovery is of another epoch or holder list".into(),
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut parsed = Vec::new();
    for s in shares {
        let i = setup
            .holders
            .iter()
            .position(|h| s.first() == Some(&h.index))
            .ok_or(RecoveryError::Commitment)?;
        if commitment(s) != member.commitments[i] {
            return Err(RecoveryError::Commitment);
        }
        if seen.insert(setup.holders[i].index) {
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

/// A re-split of every member's recovery identity to a new holder list (SPEC 25.5), kept in
/// the registry while it runs: the identities stay the same, their shares change, and no
/// identity is ever whole. Started when an admin person joins or leaves after the split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reshare {
    /// The epoch whose shares are re-split (the registry's `recovery_setup`).
    pub from: String,
    /// The new setup: the admin persons who count now, the same threshold.
    pub setup: RecoverySetup,
    /// Old slot to new slot, for each identity re-split from the old shares.
    pub slots: std::collections::BTreeMap<String, String>,
    /// New slot to its shares' commitments (in the new holders' order), for identities split
    /// straight into the new setup while the re-split runs (a member added or recovered).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub direct: std::collections::BTreeMap<String, Vec<String>>,
}

impl Reshare {
    pub fn check(&self) -> Result<(), RecoveryError> {
        self.setup.check()?;
        let bad = |reason: &str| {
            Err(RecoveryError::Setup {
                reason: reason.into(),
            })
        };
        if !is_hex16(&self.from) || self.from == self.setup.epoch {
            return bad("a re-split's epochs must be two different 16-hex-digit epochs");
        }
        let mut seen = std::collections::BTreeSet::new();
        for s in self.slots.iter().flat_map(|(a, b)| [a, b]) {
            if !is_hex16(s) {
                return bad("a slot is not 16 hex digits");
            }
        }
        for new in self.slots.values() {
            if !seen.insert(new) {
                return bad("two identities share a new slot");
            }
        }
        for (slot, c) in &self.direct {
            if !is_hex16(slot) || c.len() != self.setup.holders.len() {
                return bad("a directly split identity does not match the new holders");
            }
        }
        Ok(())
    }
}

/// What `reshare/<new epoch>/deal/<dealer>/<holder>` decrypts to: one old holder's share of
/// every identity, split again for one new holder.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealFile {
    /// The new epoch.
    pub epoch: String,
    /// The old epoch.
    pub from: String,
    /// The old holder who dealt.
    pub dealer: String,
    /// The new holder it is for.
    pub holder: String,
    /// New slot to sub-share (hex: the new holder's index, then one byte per secret byte).
    pub subshares: std::collections::BTreeMap<String, String>,
}

impl Drop for DealFile {
    fn drop(&mut self) {
        for v in self.subshares.values_mut() {
            v.zeroize();
        }
    }
}

/// An old holder's part of a re-split: its share's values split again with `next`'s
/// threshold, one sub-share per new holder (in `next`'s order, at their indices).
pub fn deal(share: &[u8], next: &RecoverySetup) -> Result<Vec<Vec<u8>>, RecoveryError> {
    if share.len() < 2 || share[0] == 0 {
        return Err(RecoveryError::Combine);
    }
    split_for(next, &share[1..])
}

/// A new holder's share (at `index`) from the sub-shares of exactly `threshold` old holders,
/// each given as (the old holder's index, its sub-share for this new holder). The same old
/// holders must be used for every new holder: the new shares lie on one polynomial only
/// for one set of dealers (SPEC 25.5).
pub fn combine_dealt(
    threshold: u8,
    index: u8,
    dealt: &[(u8, Vec<u8>)],
) -> Result<Vec<u8>, RecoveryError> {
    let mut xs = std::collections::BTreeSet::new();
    let mut points = Vec::new();
    for (x, sub) in dealt {
        if *x == 0 || !xs.insert(*x) || sub.len() < 2 || sub[0] != index {
            return Err(RecoveryError::Combine);
        }
        let mut bytes = Vec::with_capacity(sub.len());
        bytes.push(*x);
        bytes.extend_from_slice(&sub[1..]);
        let share = blahaj::Share::try_from(bytes.as_slice()).map_err(|_| RecoveryError::Combine);
        bytes.zeroize();
        points.push(share?);
    }
    if points.len() != threshold as usize {
        return Err(RecoveryError::TooFew {
            have: points.len(),
            need: threshold as usize,
        });
    }
    let mut y = blahaj::Sharks(threshold)
        .recover(points.iter())
        .map_err(|_| RecoveryError::Combine)?;
    let mut share = Vec::with_capacity(y.len() + 1);
    share.push(index);
    share.extend_from_slice(&y);
    y.zeroize();
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(k: u8, n: u8) -> RecoverySetup {
        RecoverySetup {
            epoch: "00112233445566aa".into(),
            threshold: k,
            holders: (1..=n)
                .map(|i| ShareHolder {
                    name: format!("a{i}"),
                    recipient: String::new(),
                    index: i,
                })
                .collect(),
            created: String::new(),
        }
    }

    fn member(s: &RecoverySetup, shares: &[Vec<u8>]) -> MemberRecovery {
        MemberRecovery {
            epoch: s.epoch.clone(),
            slot: "0123456789abcdef".into(),
            recipient: "age1x".into(),
            commitments: shares.iter().map(|s| commitment(s)).collect(),
        }
    }

    #[test]
    fn k_of_n_recovers_and_k_minus_one_does_not() {
        let secret = b"AGE-SECRET-KEY-1EXAMPLEEXAMPLEEXAMPLE".to_vec();
        let s = setup(2, 3);
        let shares = split_for(&s, &secret).unwrap();
        let m = member(&s, &shares);
        assert_eq!(combine(&s, &m, &shares[..2]).unwrap(), secret);
        assert_eq!(combine(&s, &m, &shares[1..]).unwrap(), secret);
        assert_eq!(
            combine(&s, &m, &shares[..1]),
            Err(RecoveryError::TooFew { have: 1, need: 2 })
        );
        // The same share twice is one share.
        assert_eq!(
            combine(&s, &m, &[shares[0].clone(), shares[0].clone()]),
            Err(RecoveryError::TooFew { have: 1, need: 2 })
        );
        let mut bad = shares[1].clone();
        bad[3] ^= 1;
        assert_eq!(
            combine(&s, &m, &[shares[0].clone(), bad]),
            Err(RecoveryError::Commitment)
        );
        assert!(split(&secret, 1, 3).is_err() && split(&secret, 4, 3).is_err());
    }

    /// The requester's own share plus K-1 approvals is one share short (threshold K+1).
    #[test]
    fn the_requesters_share_never_counts_as_an_approval() {
        let secret = b"AGE-SECRET-KEY-1EXAMPLEEXAMPLEEXAMPLE".to_vec();
        let s = setup(3, 3); // --threshold 2: two approvals besides the requester
        assert_eq!(s.approvals(), 2);
        let shares = split_for(&s, &secret).unwrap();
        let m = member(&s, &shares);
        assert!(matches!(
            combine(&s, &m, &shares[..2]),
            Err(RecoveryError::TooFew { have: 2, need: 3 })
        ));
        assert_eq!(combine(&s, &m, &shares).unwrap(), secret);
    }

    /// One member's shares do not open another's identity, nor pass its commitments.
    #[test]
    fn shares_of_one_member_never_combine_for_another() {
        let s = setup(2, 3);
        let a = split_for(&s, b"AGE-SECRET-KEY-1ALICE").unwrap();
        let b = split_for(&s, b"AGE-SECRET-KEY-1BOBBB").unwrap();
        let mb = member(&s, &b);
        assert_eq!(
            combine(&s, &mb, &[a[0].clone(), b[1].clone()]),
            Err(RecoveryError::Commitment)
        );
    }

    /// Holder names are path segments: `..`, an empty name, and two names that clean to one
    /// segment are refused.
    #[test]
    fn holder_names_that_are_no_path_segment_are_refused() {
        for (a, b) in [("..", "b"), ("", "b"), ("a b", "a_b"), ("a/b", "a_b")] {
            let mut s = setup(2, 2);
            s.holders[0].name = a.into();
            s.holders[1].name = b.into();
            assert!(s.check().is_err(), "{a:?} {b:?}");
        }
    }

    #[test]
    fn holders_may_be_at_any_index() {
        let mut s = setup(2, 3);
        s.holders[1].index = 200;
        let shares = split_for(&s, b"secret").unwrap();
        assert_eq!(shares[1][0], 200);
        let m = member(&s, &shares);
        assert_eq!(combine(&s, &m, &shares[1..]).unwrap(), b"secret");
        s.holders[2].index = 200;
        assert!(s.check().is_err());
    }

    fn reshared(
        old: &RecoverySetup,
        next: &RecoverySetup,
        dealers: &[usize],
        shares: &[Vec<u8>],
    ) -> Vec<Vec<u8>> {
        let subs: Vec<Vec<Vec<u8>>> = dealers
            .iter()
            .map(|&d| deal(&shares[d], next).unwrap())
            .collect();
        (0..next.holders.len())
            .map(|j| {
                let dealt: Vec<(u8, Vec<u8>)> = dealers
                    .iter()
                    .zip(&subs)
                    .map(|(&d, s)| (old.holders[d].index, s[j].clone()))
                    .collect();
                combine_dealt(old.threshold, next.holders[j].index, &dealt).unwrap()
            })
            .collect()
    }

    /// A re-split to other holders gives shares of the same secret on a new polynomial:
    /// any `threshold` new shares recover it, and an old share mixed with new ones does not.
    #[test]
    fn a_reshare_keeps_the_secret_and_retires_the_old_shares() {
        let secret = b"AGE-SECRET-KEY-1EXAMPLEEXAMPLEEXAMPLE".to_vec();
        let old = setup(2, 3);
        let shares = split_for(&old, &secret).unwrap();
        let mut next = setup(2, 4);
        next.epoch = "ffeeddccbbaa9988".into();
        next.holders[3].index = 77;
        let new = reshared(&old, &next, &[2, 0], &shares);
        let m = member(&next, &new);
        assert_eq!(combine(&next, &m, &new[..2]).unwrap(), secret);
        assert_eq!(combine(&next, &m, &new[2..]).unwrap(), secret);
        // The retired holder's old share with a new one: not the secret.
        let mixed = blahaj::Sharks(2)
            .recover(
                [&shares[1], &new[0]]
                    .iter()
                    .map(|s| blahaj::Share::try_from(s.as_slice()).unwrap())
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .unwrap();
        assert_ne!(mixed, secret);
        // One dealer too few, a dealer twice, or a sub-share for another holder: refused.
        let subs = deal(&shares[0], &next).unwrap();
        assert!(combine_dealt(2, 1, &[(1, subs[0].clone())]).is_err());
        assert!(combine_dealt(2, 1, &[(1, subs[0].clone()), (1, subs[0].clone())]).is_err());
        assert!(combine_dealt(2, 2, &[(1, subs[0].clone()), (3, subs[0].clone())]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_dealers_and_any_new_holders_recover_the_secret(
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..80),
            k in 2u8..4, n_extra in 0u8..3, k2 in 2u8..4, n2_extra in 0u8..3, rot in 0usize..5,
        ) {
            let old = setup(k, k + n_extra);
            let shares = split_for(&old, &secret).unwrap();
            let mut next = setup(k2, k2 + n2_extra);
            next.epoch = "ffeeddccbbaa9988".into();
            let n = old.holders.len();
            let dealers: Vec<usize> = (0..k as usize).map(|i| (i + rot) % n).collect();
            let new = reshared(&old, &next, &dealers, &shares);
            let m = member(&next, &new);
            let tail = new.len() - k2 as usize;
            proptest::prop_assert_eq!(combine(&next, &m, &new[tail..]).unwrap(), secret);
        }
    }
}
