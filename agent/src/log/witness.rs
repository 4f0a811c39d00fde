//! Witnessing other logs: a witness cosigns a log's newest checkpoint only after checking it
//! against what it cosigned before (never smaller, never another history).

use super::{b64, leaves, newest_verified, prefix, stored, Actor, Stored, Trusted};
use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog;
use std::collections::BTreeMap;

/// What a witness run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct WitnessReport {
    /// (origin, size) cosigned now.
    pub cosigned: Vec<(String, u64)>,
    /// Logs already cosigned at their newest size.
    pub unchanged: u64,
    /// Rollbacks, forks, tampered entries: never cosigned.
    pub alarms: Vec<String>,
    /// What was ignored without harm: objects under `log/` of no known log, checkpoints
    /// that do not verify above a log's newest valid one.
    pub notes: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WitnessState {
    /// Origin → (size, base64 root) last cosigned.
    logs: BTreeMap<String, (u64, String)>,
}

fn witness_state_path(repo: &Repo, witness: &Actor) -> Option<std::path::PathBuf> {
    repo.cache_dir().map(|c| {
        c.join(repo.config.repo_id.to_hex()).join(format!(
            "witness-{}.json",
            &hex::encode(witness.public())[..16]
        ))
    })
}

/// Saves the witness state durably before any cosignature depends on it.
fn save_witness_state(p: &std::path::Path, s: &WitnessState) -> Result<()> {
    use std::io::Write;
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let tmp = p.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(&serde_json::to_vec(s).expect("serializes"))
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
    if let Some(d) = p.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Witnesses every other log in `repo`: a log that shrank, or whose history differs from
/// what this witness saw, raises an alarm and is not cosigned.
pub fn witness(repo: &Repo, me: &Actor, trusted: &Trusted) -> Result<WitnessReport> {
    let mut rep = WitnessReport::default();
    let state_path = witness_state_path(repo, me).ok_or_else(|| {
        Error::invalid("a witness needs a cache directory to remember what it saw (--cache-dir)")
    })?;
    let mut state: WitnessState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let my_name = me.witness_name();
    let my_kid = format!("{:08x}", tlog::key_id(&my_name, &me.public(), true));
    let by_id = trusted.by_id();
    for id in super::log_ids(repo)? {
        let Some((origin, owner)) = by_id.get(&id) else {
            rep.notes.push(format!(
                "log/{id}: the log of no known writer or admin of this repository (ignored)"
            ));
            continue;
        };
        if owner.key == me.public() {
            continue;
        }
        witness_log(
            repo,
            me,
            (&my_name, &my_kid),
            &id,
            (origin, owner),
            (&state_path, &mut state),
            &mut rep,
        )?;
    }
    Ok(rep)
}

/// Witnesses one log (see [`witness`]): cosigns its newest checkpoint unless it forked,
/// shrank, or no longer holds what this witness cosigned before.
fn witness_log(
    repo: &Repo,
    me: &Actor,
    (my_name, my_kid): (&str, &str),
    id: &str,
    (origin, owner): (&String, &super::trust::LogOwner),
    (state_path, state): (&std::path::Path, &mut WitnessState),
    rep: &mut WitnessReport,
) -> Result<()> {
    let s = stored(repo, id)?;
    let Some(cp) = newest_verified(&s, &owner.key, origin) else {
        if !s.checkpoints.is_empty() {
            rep.notes.push(format!(
                "log/{id}: no checkpoint verifies under the key of {origin} (ignored)"
            ));
        }
        return Ok(());
    };
    let size = cp.size;
    let above = s.checkpoints.range(size + 1..).count();
    if above > 0 {
        rep.notes.push(format!(
            "{}: {above} checkpoint(s) above size {size} do not verify (ignored)",
            prefix(id)
        ));
    }
    let entries = match super::entries_for(repo, &s, size, &cp.root) {
        Ok(e) => e,
        Err(e) => {
            rep.alarms.push(crate::error::chain(&e));
            return Ok(());
        }
    };
    let hashes = leaves(&entries);
    if tlog::root(&hashes) != cp.root {
        rep.alarms.push(format!(
            "log/{id}/checkpoint/{size}: the entries do not hash to the signed root (tampered)"
        ));
        return Ok(());
    }
    let tree = tlog::Levels::new(&hashes);
    let forked = forks(repo, &s, id, origin, &owner.key, &cp, &tree, rep);
    if !forked.is_empty() {
        rep.alarms.extend(forked);
        return Ok(());
    }
    if let Some((seen, seen_root)) = state.logs.get(&cp.origin) {
        if size < *seen {
            rep.alarms.push(format!(
                "ROLLBACK: the log {} shows {size} entries; this witness cosigned {seen}",
                cp.origin
            ));
            return Ok(());
        }
        if b64(&tlog::root(&hashes[..*seen as usize])) != *seen_root {
            rep.alarms.push(format!(
                "FORK: the log {} no longer holds the {seen} entries this witness cosigned",
                cp.origin
            ));
            return Ok(());
        }
    }
    if s.cosignatures
        .get(&size)
        .and_then(|c| c.get(my_kid))
        .is_some_and(|line| tlog::verify_cosignature(&cp, line, my_name, &me.public()).is_ok())
    {
        rep.unchanged += 1;
        return Ok(());
    }
    state.logs.insert(cp.origin.clone(), (size, b64(&cp.root)));
    save_witness_state(state_path, state)?;
    let line = tlog::cosign(&cp, my_name, &me.key, crate::now_unix().max(0) as u64);
    // Whatever is under this witness's name for this size (junk) does not verify: replace it.
    repo.store
        .put_replace(&format!("{}/cosignature/{size}/{my_kid}", prefix(id)), line)?;
    rep.cosigned.push((cp.origin, size));
    Ok(())
}

/// The forks of a log: every other checkpoint the log's key signed here, with the
/// cosignatures other witnesses made of it, and every fork object gossip brought from
/// another copy, must be the history of `cp`; two histories signed by one key are a fork,
/// never cosigned.
#[allow(clippy::too_many_arguments)]
fn forks(
    repo: &Repo,
    s: &Stored,
    id: &str,
    origin: &str,
    key: &[u8; 32],
    cp: &tlog::Checkpoint,
    tree: &tlog::Levels,
    rep: &mut WitnessReport,
) -> Vec<String> {
    let size = cp.size;
    let mut forked = Vec::new();
    for (&sz, note) in s.checkpoints.range(..size) {
        if let Ok(other) = tlog::open_checkpoint(note, key) {
            if other.origin == cp.origin && other.size == sz && tree.root(sz as usize) != other.root
            {
                forked.push(format!(
                    "FORK: the log {} holds two histories its key signed: checkpoint/{sz} is \
                     not a prefix of checkpoint/{size}",
                    cp.origin
                ));
            }
        }
    }
    let (proven, notes) = super::check_forks(s, key, origin, tree);
    rep.notes.extend(notes);
    for (path, why) in proven {
        let kept = super::fork::keep_evidence(
            repo,
            id,
            (&path, &s.forks[&path]),
            (
                &format!("{}/checkpoint/{size}", prefix(id)),
                &s.checkpoints[&size],
            ),
        );
        forked.push(format!(
            "{why}: {path}{}",
            kept.map(|p| format!(" (kept in {})", p.display()))
                .unwrap_or_default()
        ));
    }
    forked
}
