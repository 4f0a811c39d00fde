//! A member's entries with inclusion proofs, for exports, and their offline check.

use super::{leaves, LogContent, Trusted};
use coop_formats::tlog::{self, Hash};

/// An entry with its proof of inclusion in a (cosigned) checkpoint, for a member's export.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProvenEntry {
    pub origin: String,
    /// The log's public key (hex): the checkpoint is signed with it.
    pub log_key: String,
    pub index: u64,
    /// The entry (its JSON, as logged).
    pub entry: serde_json::Value,
    /// The entry's exact bytes, base64 (the leaf data).
    pub leaf: String,
    /// Inclusion proof hashes, base64.
    pub proof: Vec<String>,
    /// The signed checkpoint note, with the cosignature lines appended.
    pub checkpoint: String,
}

/// Every accepted entry about `tenant_tag` (a keyed tag, see [`super::tenant_tag`]) up to
/// its log's newest verified checkpoint: an entry the quorum cosigned is proven against the
/// newest checkpoint carrying the quorum, a newer one against the log's head (its
/// cosignatures, if any, come along, and the member's `coop verify` shows it as not yet
/// witnessed). Nothing a log's head covers is left out.
pub fn entries_about(
    contents: &[LogContent],
    trusted: &Trusted,
    tenant_tag: &str,
) -> Vec<ProvenEntry> {
    use base64::Engine;
    let b64e = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = Vec::new();
    for c in contents {
        let tree = tlog::Levels::new(&leaves(&c.entries));
        let head = c.entries.len() as u64;
        let note_of = |size: u64| {
            let mut note = c.stored.checkpoints.get(&size).cloned().unwrap_or_default();
            if let Some(lines) = c.stored.cosignatures.get(&size) {
                for l in lines.values() {
                    note.extend_from_slice(l);
                }
            }
            String::from_utf8_lossy(&note).into_owned()
        };
        let witnessed = c.witnessed.filter(|_| trusted.quorum > 0);
        let (wnote, hnote) = (witnessed.map(note_of), note_of(head));
        for (i, entry) in c.accepted() {
            if entry.tenant.as_deref() != Some(tenant_tag) {
                continue;
            }
            let (size, note) = match (witnessed, &wnote) {
                (Some(w), Some(n)) if (i as u64) < w => (w, n.clone()),
                _ => (head, hnote.clone()),
            };
            out.push(ProvenEntry {
                origin: c.origin.clone(),
                log_key: hex::encode(c.key),
                index: i as u64,
                entry: serde_json::to_value(&entry).expect("serializes"),
                leaf: b64e(&c.entries[i]),
                proof: tree
                    .inclusion_proof(i, size as usize)
                    .iter()
                    .map(|h| b64e(h))
                    .collect(),
                checkpoint: note,
            });
        }
    }
    out.sort_by(|a, b| {
        a.entry["time"]
            .as_str()
            .cmp(&b.entry["time"].as_str())
            .then(a.origin.cmp(&b.origin))
            .then(a.index.cmp(&b.index))
    });
    out
}

/// Checks a proven entry offline: the checkpoint's signature by `log_key`, the inclusion
/// proof, and which of `witnesses` cosigned it. Returns the cosigners.
pub fn verify_proven(
    p: &ProvenEntry,
    witnesses: &[(String, [u8; 32])],
) -> std::result::Result<Vec<String>, String> {
    use base64::Engine;
    let dec = |s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| "bad base64".to_string())
    };
    let key: [u8; 32] = hex::decode(&p.log_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or("bad log key")?;
    let note = p.checkpoint.as_bytes();
    // The log's own note: up to and including its first signature line.
    let body_end = note
        .windows(2)
        .position(|w| w == b"\n\n")
        .ok_or("not a signed note")?
        + 2;
    let mut lines: Vec<&[u8]> = note[body_end..].split_inclusive(|b| *b == b'\n').collect();
    if lines.is_empty() {
        return Err("the checkpoint has no signature".into());
    }
    let own = lines.remove(0);
    let mut signed = note[..body_end].to_vec();
    signed.extend_from_slice(own);
    let cp = tlog::open_checkpoint(&signed, &key).map_err(|e| e.to_string())?;
    if cp.origin != p.origin {
        return Err("the checkpoint is of another log".into());
    }
    let leaf = dec(&p.leaf)?;
    if serde_json::from_slice::<serde_json::Value>(&leaf)
        .ok()
        .as_ref()
        != Some(&p.entry)
    {
        return Err("the entry shown is not the entry proven".into());
    }
    let proof: Vec<Hash> = p
        .proof
        .iter()
        .map(|s| dec(s).and_then(|b| b.try_into().map_err(|_| "bad hash".to_string())))
        .collect::<std::result::Result<_, _>>()?;
    tlog::verify_inclusion(p.index, cp.size, &tlog::leaf_hash(&leaf), &proof, &cp.root)
        .map_err(|e| e.to_string())?;
    let mut cosigners = Vec::new();
    for line in lines {
        for (name, wkey) in witnesses {
            if *wkey != key && tlog::verify_cosignature(&cp, line, name, wkey).is_ok() {
                cosigners.push(name.clone());
            }
        }
    }
    cosigners.sort();
    cosigners.dedup();
    Ok(cosigners)
}
