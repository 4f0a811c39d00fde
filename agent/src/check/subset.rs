//! Which packs `check --read-data` reads: all, group i of n, or a reproducible percentage.

use crate::error::{Error, Result};
use coop_formats::id::Id;

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Subset {
    All,
    /// Group `i` of `n` (1-based): every pack falls in exactly one group.
    Part {
        i: u32,
        n: u32,
    },
    /// A fraction of the packs, chosen reproducibly from `seed`.
    Percent {
        pct: f64,
        seed: u64,
    },
}

impl Subset {
    /// Parses `i/n` or `x%`.
    pub fn parse(s: &str, seed: u64) -> Result<Self> {
        let bad = || {
            Error::invalid(format!(
                "read-data subset {s:?}: use i/n (e.g. 2/5) or a percentage (e.g. 5%)"
            ))
        };
        if let Some(p) = s.strip_suffix('%') {
            let pct: f64 = p.trim().parse().map_err(|_| bad())?;
            if !(0.0..=100.0).contains(&pct) || pct == 0.0 {
                return Err(bad());
            }
            return Ok(Subset::Percent { pct, seed });
        }
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || i == 0 || i > n {
            return Err(bad());
        }
        Ok(Subset::Part { i, n })
    }

    pub fn select(&self, packs: &[Id]) -> Vec<Id> {
        match *self {
            Subset::All => packs.to_vec(),
            Subset::Part { i, n } => packs
                .iter()
                .filter(|p| {
                    u64::from_le_bytes(p.0[..8].try_into().expect("8")) % n as u64 == (i - 1) as u64
                })
                .copied()
                .collect(),
            Subset::Percent { pct, seed } => {
                let mut keyed: Vec<(blake3::Hash, Id)> = packs
                    .iter()
                    .map(|p| {
                        let mut h = blake3::Hasher::new();
                        h.update(&seed.to_le_bytes());
                        h.update(&p.0);
                        (h.finalize(), *p)
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                let k = ((packs.len() as f64) * pct / 100.0).ceil() as usize;
                keyed.into_iter().take(k).map(|(_, p)| p).collect()
            }
        }
    }
}
