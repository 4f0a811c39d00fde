//! What an export's log part proves, and what the member's verifier remembers: the seal
//! over the log part, witnesses and quorum (SPEC 16.3), checked against the admin-signed
//! writer list the export carries, and the per-member memory (`verify-<tenant>.json`) that
//! pins keys and witnesses on first use and warns when an entry vanishes.

use super::verify::VerifyReport;
use super::ExportFile;
use coop_formats::manifest::fingerprint;
use serde::Serialize;
use std::path::Path;

/// Checks the export's seal (SPEC 16.3) and that its witnesses, quorum and log keys are the
/// ones the admin-signed writer list it carries names: a log part cut, an entry removed or a
/// witness invented after sealing is a problem.
pub(super) fn check_seal(ef: &ExportFile, rep: &mut VerifyReport) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    check_signature(ef, rep);
    let Some(list) = ef.writer_list.as_ref() else {
        // A repository without a writer list (no site writer yet) has no witnesses.
        if !ef.witnesses.is_empty() || ef.quorum != 0 {
            rep.problems.push(
                "the export names witnesses or a quorum but carries no writer list: they are \
                 unanchored"
                    .into(),
            );
        }
        return;
    };
    let opened = b64
        .decode(list)
        .ok()
        .and_then(|b| coop_formats::writers::WriterList::open(&b, |_| true).ok());
    let Some((list, admin)) = opened else {
        rep.problems
            .push("the export's writer list does not open (not signed, or damaged)".into());
        return;
    };
    rep.admin_key = hex::encode(admin);
    let mut expected: Vec<(String, String)> = list
        .writers
        .iter()
        .filter(|w| w.revoked.is_none())
        .map(|w| (w.name.clone(), w.public_key))
        .chain(
            list.witnesses
                .iter()
                .map(|w| (w.name.clone(), w.public_key)),
        )
        .map(|(n, k)| (crate::log::witness_name(&n, &k), hex::encode(k)))
        .collect();
    expected.sort();
    let mut listed = ef.witnesses.clone();
    listed.sort();
    if listed != expected {
        let invented: Vec<&str> = listed
            .iter()
            .filter(|w| !expected.contains(w))
            .map(|w| w.0.as_str())
            .collect();
        rep.problems.push(format!(
            "the witnesses listed are not the ones the admin-signed writer list names{}",
            if invented.is_empty() {
                String::new()
            } else {
                format!(" (not in it: {})", invented.join(", "))
            }
        ));
    }
    if ef.quorum != list.log_quorum {
        rep.problems.push(format!(
            "the export says the quorum is {}, the admin-signed writer list {}",
            ef.quorum, list.log_quorum
        ));
    }
    let keys: Vec<String> = list
        .writers
        .iter()
        .map(|w| hex::encode(w.public_key))
        .chain([hex::encode(admin)])
        .collect();
    for p in &ef.log {
        if !keys.contains(&p.log_key) {
            rep.problems.push(format!(
                "log entry {} of {}: the log's key {} is neither the admin key nor a writer \
                 of the writer list",
                p.index,
                p.origin,
                p.log_key.chars().take(16).collect::<String>()
            ));
        }
    }
}

/// The seal's signature over the export's log part, witnesses, quorum and writer list, by
/// the key the seal names (the report's seal signer when it verifies).
fn check_signature(ef: &ExportFile, rep: &mut VerifyReport) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    match &ef.seal {
        None => rep.problems.push(
            "the export is not sealed: its log part, witnesses and quorum are covered by no \
             signature (removed, or an export by an older coop)"
                .into(),
        ),
        Some(seal) => {
            let key: Option<[u8; 32]> = hex::decode(&seal.key).ok().and_then(|k| k.try_into().ok());
            let sig: Option<[u8; 64]> = b64
                .decode(&seal.signature)
                .ok()
                .and_then(|s| s.try_into().ok());
            let ok = match (key, sig) {
                (Some(k), Some(sig)) => ed25519_dalek::VerifyingKey::from_bytes(&k)
                    .and_then(|vk| {
                        vk.verify_strict(
                            &ef.seal_message(),
                            &ed25519_dalek::Signature::from_bytes(&sig),
                        )
                    })
                    .is_ok(),
                _ => false,
            };
            if ok {
                rep.seal_signer = seal.key.clone();
            } else {
                rep.problems.push(
                    "the export's seal does not verify: manifest.json (its log part, \
                     witnesses, quorum or writer list) was changed after it was exported"
                        .into(),
                );
            }
        }
    }
}

/// What a verifier remembers of one tenant's exports.
#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct Memory {
    /// Origin → log key (hex) and entries seen: index → leaf (base64) and a label.
    logs: std::collections::BTreeMap<String, SeenLog>,
    /// The witness list of the last export.
    witnesses: Vec<(String, String)>,
    /// The key that sealed the first export verified here (the tenant's signer): pinned, an
    /// export sealed by another key is refused.
    #[serde(default)]
    seal_key: String,
    /// The admin key of the writer list, pinned on first use.
    #[serde(default)]
    admin_key: String,
    /// The quorum of the last export.
    #[serde(default)]
    quorum: Option<u32>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize)]
struct SeenLog {
    key: String,
    entries: std::collections::BTreeMap<u64, (String, String)>,
}

/// A file name for `tenant`'s memory that no other tenant shares: letters, digits and `-`
/// as they are, every other byte as `_` and two hex digits (`member/a.b` → `member_2fa_2eb`).
fn memory_name(tenant: &str) -> String {
    let mut out = String::new();
    for b in tenant.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

fn fingerprint_hex(k: &str) -> String {
    hex::decode(k)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(|k| fingerprint(&k))
        .unwrap_or_else(|| k.to_string())
}

/// Compares an export's log part with what earlier exports of `tenant` showed this verifier,
/// warns about what vanished or changed, and remembers the union.
pub(super) fn remember(dir: &Path, tenant: &str, ef: &ExportFile, rep: &mut VerifyReport) {
    let path = dir.join(format!("verify-{}.json", memory_name(tenant)));
    // Written under the older, lossy name before (`.`, `/` and `_` were all `_` there).
    let legacy: String = tenant
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let legacy = dir.join(format!("verify-{legacy}.json"));
    let from = if path.exists() { &path } else { &legacy };
    let mut mem: Memory = std::fs::read(from)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let proven: std::collections::HashSet<(String, u64)> =
        rep.log.iter().map(|l| (l.log.clone(), l.index)).collect();
    vanished(&mem, ef, &proven, rep);
    pin_keys(&mut mem, tenant, rep);
    witnesses_changed(&mem, ef, rep);
    mem.quorum = Some(ef.quorum);
    for p in &ef.log {
        if !proven.contains(&(p.origin.clone(), p.index)) {
            continue;
        }
        let seen = mem.logs.entry(p.origin.clone()).or_default();
        if seen.key.is_empty() {
            seen.key = p.log_key.clone();
        }
        let label = format!(
            "{} {}",
            p.entry["event"].as_str().unwrap_or("?"),
            p.entry["time"].as_str().unwrap_or("?")
        );
        seen.entries.insert(p.index, (p.leaf.clone(), label));
    }
    mem.witnesses = ef.witnesses.clone();
    if std::fs::create_dir_all(dir).is_ok() {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&mem).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
}

/// Warns about the entries earlier exports showed that this one lacks, and about a log
/// signed by another key than before.
fn vanished(
    mem: &Memory,
    ef: &ExportFile,
    proven: &std::collections::HashSet<(String, u64)>,
    rep: &mut VerifyReport,
) {
    for (origin, seen) in &mem.logs {
        let now: Vec<&crate::log::ProvenEntry> =
            ef.log.iter().filter(|p| p.origin == *origin).collect();
        if let Some(p) = now.first() {
            if p.log_key != seen.key {
                rep.warnings.push(format!(
                    "the log {origin} is signed by another key than in earlier exports ({} before, {} now)",
                    seen.key.chars().take(16).collect::<String>(),
                    p.log_key.chars().take(16).collect::<String>()
                ));
            }
        }
        let missing: Vec<String> = seen
            .entries
            .iter()
            .filter(|(i, _)| !proven.contains(&(origin.clone(), **i)))
            .map(|(i, (_, label))| format!("#{i} {label}"))
            .collect();
        if !missing.is_empty() {
            rep.warnings.push(format!(
                "{} entr{} of the log {origin} shown in an earlier export {} missing from this one \
                 ({}): the export comes from a replica that lags behind, or an entry was hidden; \
                 verify an export from another site",
                missing.len(),
                if missing.len() == 1 { "y" } else { "ies" },
                if missing.len() == 1 { "is" } else { "are" },
                missing.join(", ")
            ));
        }
    }
}

/// The sealing key and the writer list's admin key, pinned on first use.
fn pin_keys(mem: &mut Memory, tenant: &str, rep: &mut VerifyReport) {
    if !rep.seal_signer.is_empty() {
        if mem.seal_key.is_empty() {
            mem.seal_key = rep.seal_signer.clone();
        } else if mem.seal_key != rep.seal_signer {
            rep.problems.push(format!(
                "the export is sealed by {}, but earlier exports of {tenant} verified here by {}: \
                 someone else made (or re-sealed) this one",
                fingerprint_hex(&rep.seal_signer),
                fingerprint_hex(&mem.seal_key)
            ));
        }
    }
    if !rep.admin_key.is_empty() {
        if mem.admin_key.is_empty() {
            mem.admin_key = rep.admin_key.clone();
        } else if mem.admin_key != rep.admin_key {
            rep.warnings.push(format!(
                "the writer list (witnesses, quorum) is signed by admin key {}, not by {} as in \
                 earlier exports",
                fingerprint_hex(&rep.admin_key),
                fingerprint_hex(&mem.admin_key)
            ));
        }
    }
}

/// Warns about a changed quorum and changed witnesses, naming what a new witness cosigned
/// about the member.
fn witnesses_changed(mem: &Memory, ef: &ExportFile, rep: &mut VerifyReport) {
    if let Some(q) = mem.quorum.filter(|q| *q != ef.quorum) {
        rep.warnings.push(format!(
            "the quorum of witnesses changed since an earlier export: {q} then, {} now",
            ef.quorum
        ));
    }
    if !mem.witnesses.is_empty() && mem.witnesses != ef.witnesses {
        let before: std::collections::BTreeSet<&(String, String)> = mem.witnesses.iter().collect();
        let now: std::collections::BTreeSet<&(String, String)> = ef.witnesses.iter().collect();
        let added: Vec<&str> = now.difference(&before).map(|w| w.0.as_str()).collect();
        let removed: Vec<&str> = before.difference(&now).map(|w| w.0.as_str()).collect();
        rep.warnings.push(format!(
            "the witnesses changed since an earlier export: added [{}], removed [{}]",
            added.join(", "),
            removed.join(", ")
        ));
        // A new witness vouching for entries about this member is the one to ask about: an
        // admin who adopted witnesses of her own could have them cosign her own access.
        for w in &added {
            let about: Vec<String> = rep
                .log
                .iter()
                .filter(|l| l.cosigned_by.iter().any(|c| c == w))
                .map(|l| format!("{} {} ({}#{})", l.event, l.time, l.log, l.index))
                .collect();
            if !about.is_empty() {
                rep.warnings.push(format!(
                    "the new witness {w} cosigned {} about you: {}; ask the cooperative who \
                     runs it",
                    if about.len() == 1 {
                        "an entry".to_string()
                    } else {
                        format!("{} entries", about.len())
                    },
                    about.join(", ")
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Two members whose names differ only in `.` and `_` keep memories of their own.
    #[test]
    fn memory_names_never_collide() {
        let names = [
            "member/a.b",
            "member/a_b",
            "member/a/b",
            "member/a-b",
            "member_2fa.b",
        ];
        let mapped: std::collections::BTreeSet<String> =
            names.iter().map(|n| super::memory_name(n)).collect();
        assert_eq!(mapped.len(), names.len(), "{mapped:?}");
        assert_eq!(super::memory_name("member/a.b"), "member_2fa_2eb");
    }
}
