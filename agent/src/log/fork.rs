//! Fork objects (SPEC section 24.10): the evidence that a log's key signed two histories,
//! as gossip writes it into each copy (`log/<id>/fork/…`) and as witnesses and `log verify`
//! check it, and the copy of both conflicting checkpoints kept in the cache for a human.

use super::{prefix, Stored};
use crate::repo::Repo;
use coop_formats::tlog::{self, Hash, Levels};

/// The `type` of a fork object.
pub const FORK_TYPE: &str = "coop-log-fork/1";

/// A fork object's content (`log/<id>/fork/<SHA-256 of these bytes>`, JSON, closed): a
/// checkpoint the log's key signed, as another copy holds it, that the copy holding this object
/// does not contain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkEvidence {
    #[serde(rename = "type")]
    pub ty: String,
    /// The signed checkpoint note, with the cosignature lines the other copy held for it.
    pub checkpoint: String,
    /// For a checkpoint larger than the copy's tree: the root of its first `size` entries and
    /// the consistency proof from there to it, so that a holder of `size` entries can check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prefix {
    pub size: u64,
    /// base64.
    pub root: String,
    /// RFC 9162 section 2.1.4 consistency proof from (`size`, `root`) to the checkpoint, base64.
    pub proof: Vec<String>,
}

fn b64d(s: &str) -> Option<Hash> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()?
        .try_into()
        .ok()
}

impl ForkEvidence {
    pub fn decode(b: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(b)
            .ok()
            .filter(|e| e.ty == FORK_TYPE)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    /// Its store path in log `id`.
    pub fn path(id: &str, bytes: &[u8]) -> String {
        format!(
            "{}/fork/{}",
            prefix(id),
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
        )
    }

    /// Checks this evidence against a copy of the log whose verified entries make `tree`.
    /// `Err`: it does not verify under the log's key (or its proof does not), so it proves
    /// nothing. `Ok(Some(why))`: the log's key signed a tree this copy's entries disagree
    /// with, a fork. `Ok(None)`: consistent with this copy, or beyond what it can check.
    pub fn check(
        &self,
        key: &[u8; 32],
        origin: &str,
        tree: &Levels,
    ) -> std::result::Result<Option<String>, String> {
        let cp = tlog::open_checkpoint(self.checkpoint.as_bytes(), key)
            .map_err(|e| format!("its checkpoint does not verify under the log's key ({e})"))?;
        if cp.origin != origin {
            return Err("its checkpoint is of another log".into());
        }
        let held = tree.len() as u64;
        if cp.size <= held {
            return Ok((tree.root(cp.size as usize) != cp.root).then(|| {
                format!(
                    "FORK: the log {origin}'s key signed a tree of {} entries that this copy's \
                     entries do not make (two histories)",
                    cp.size
                )
            }));
        }
        let Some(p) = &self.prefix else {
            return Ok(None);
        };
        let root = b64d(&p.root).ok_or("a bad prefix root")?;
        let proof: Vec<Hash> = p
            .proof
            .iter()
            .map(|h| b64d(h))
            .collect::<Option<_>>()
            .ok_or("a bad proof hash")?;
        tlog::verify_consistency(p.size, cp.size, &proof, &root, &cp.root)
            .map_err(|_| "its consistency proof does not verify")?;
        if p.size > held {
            return Ok(None);
        }
        Ok((tree.root(p.size as usize) != root).then(|| {
            format!(
                "FORK: the log {origin}'s key signed a tree of {} entries whose first {} are not \
                 this copy's (two histories)",
                cp.size, p.size
            )
        }))
    }
}

/// Keeps the two conflicting signed checkpoints of a fork in the cache directory, for a
/// human to show: `<cache>/<repo id>/log-forks/<log id>-<hash of both>.txt`. Returns the
/// file, if there is a cache.
pub(super) fn keep_evidence(
    repo: &Repo,
    id: &str,
    a: (&str, &[u8]),
    b: (&str, &[u8]),
) -> Option<std::path::PathBuf> {
    use sha2::Digest;
    let dir = repo
        .cache_dir()?
        .join(repo.config.repo_id.to_hex())
        .join("log-forks");
    let mut h = sha2::Sha256::new();
    h.update(a.1);
    h.update(b.1);
    let p = dir.join(format!("{id}-{}.txt", &hex::encode(h.finalize())[..16]));
    if !p.exists() {
        let text = format!(
            "Two checkpoints of the access log {id}, both signed by the log's key, that are not \
             one history (a fork). Each is a C2SP signed note; check them with the log's public \
             key.\n\n== at {}\n{}\n== at {}\n{}",
            a.0,
            String::from_utf8_lossy(a.1),
            b.0,
            String::from_utf8_lossy(b.1)
        );
        let _ = std::fs::create_dir_all(&dir);
        if std::fs::write(&p, text).is_err() {
            return None;
        }
    }
    Some(p)
}

/// The fork objects in a copy whose entries make `tree`, checked (used by the witness and
/// `log verify`): the forks they prove, and the notes on those that prove nothing.
pub fn check_forks(
    s: &Stored,
    key: &[u8; 32],
    origin: &str,
    tree: &Levels,
) -> (Vec<(String, String)>, Vec<String>) {
    let (mut forks, mut notes) = (Vec::new(), Vec::new());
    for (path, b) in &s.forks {
        match ForkEvidence::decode(b).ok_or_else(|| "not a fork object".to_string()) {
            Ok(e) => match e.check(key, origin, tree) {
                Ok(Some(why)) => forks.push((path.clone(), why)),
                Ok(None) => {}
                Err(why) => notes.push(format!("{path}: proves nothing: {why} (ignored)")),
            },
            Err(why) => notes.push(format!("{path}: {why} (ignored)")),
        }
    }
    (forks, notes)
}
