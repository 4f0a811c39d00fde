//! Rollback detection: each client remembers the newest repository state it has seen.
//!
//! Stored in the cache directory as `<repo id>/<tenant tag>.state.json`. If a repository later
//! presents an older state — the newest snapshot this client saw is gone and nothing newer is
//! there, or index objects it saw are gone without a prune having superseded them — coop
//! warns loudly. `forget` never removes the newest snapshot of a group, so the newest snapshot
//! overall is never legitimately removed.

use coop_formats::id::Id;
use coop_formats::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    newest_snapshot: Option<(Id, String)>,
    index: Vec<Id>,
}

fn path(cache: &Path, repo_id: &Id, tag: &[u8; 16]) -> PathBuf {
    cache
        .join(repo_id.to_hex())
        .join(format!("{}.state.json", hex::encode(tag)))
}

/// Compares what the repository shows now with what this client saw before; returns
/// warnings, and records the new state.
pub fn check_and_update(
    cache: Option<&Path>,
    repo_id: &Id,
    tag: &[u8; 16],
    snapshots: Option<&[(Id, Snapshot)]>,
    index: Option<(&[Id], &HashSet<Id>)>,
) -> Vec<String> {
    let Some(cache) = cache else {
        return Vec::new();
    };
    let p = path(cache, repo_id, tag);
    let old: State = std::fs::read(&p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let mut new = State {
        newest_snapshot: old.newest_snapshot.clone(),
        index: old.index.clone(),
    };
    if let Some((index_names, superseded)) = index {
        let present: HashSet<Id> = index_names.iter().copied().collect();
        let missing: Vec<&Id> = old
            .index
            .iter()
            .filter(|i| !present.contains(i) && !superseded.contains(i))
            .collect();
        new.index = index_names.to_vec();
        if !missing.is_empty() {
            warnings.push(format!(
            "POSSIBLE ROLLBACK: {} index object(s) this client saw before are gone and no prune replaced them \
             (first: {}). The store may be serving an old state of the repository.",
            missing.len(),
            missing[0]
        ));
        }
    }
    if let Some(snaps) = snapshots {
        let newest = snaps
            .iter()
            .max_by(|a, b| a.1.time.cmp(&b.1.time))
            .map(|(id, s)| (*id, s.time.clone()));
        if let Some((oid, otime)) = &old.newest_snapshot {
            let still_there = snaps.iter().any(|(id, _)| id == oid);
            let newer = newest.as_ref().is_some_and(|(_, t)| t > otime);
            if !still_there && !newer {
                warnings.push(format!(
                    "POSSIBLE ROLLBACK: snapshot {} ({otime}), the newest this client saw, is gone and nothing newer \
                     is there. The store may be serving an old state of the repository.",
                    oid.short()
                ));
            }
        }
        if newest.as_ref().map(|n| &n.1) >= old.newest_snapshot.as_ref().map(|o| &o.1) {
            new.newest_snapshot = newest;
        }
    }
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let tmp = p.with_extension("tmp");
    if std::fs::write(&tmp, serde_json::to_vec(&new).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, &p);
    }
    warnings
}
