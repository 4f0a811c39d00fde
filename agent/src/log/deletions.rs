//! Deletions admins logged, which replicas follow (SPEC section 24.9).
//!
//! A deletion counts only from an admin's log (by key), from an entry that a verified
//! checkpoint covers and, where the writer list asks for witnesses, that the quorum
//! cosigned, in a log with no fork or rollback. Its grace period counts from the first time
//! this client saw the entry ([`FirstSeen`]), never from the entry's own `time`, which
//! whoever wrote it chose.

use super::{append, entry, Actor, LogContent, Trusted};
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::tlog::{Entry, Event};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Paths per deletion entry (an entry stays well under 64 KiB).
const PATHS_PER_ENTRY: usize = 400;

/// Records, before it happens, that the store objects at `paths` are deleted: replicas follow
/// a deletion only when such an entry, by an admin, names the object (SPEC section 24.9).
pub fn record_deletions(
    repo: &Repo,
    keys: &TenantKeys,
    event: Event,
    paths: &[String],
) -> Result<()> {
    record_deletions_replaced(repo, keys, event, paths, &[], &[])
}

/// Like [`record_deletions`], for a prune that wrote `replaced_by` (the packs it repacked the
/// deleted packs' live blobs into, and the index objects that replace the deleted ones) before
/// deleting: a snapshot whose inventory names a deleted object needs these instead (replicas
/// resolve inventories through them, SPEC section 24.9). The entries of one run share a `run`
/// value; the replacements have entries of their own, and so do the names of the snapshots
/// the run walked (`covered`): only their inventories resolve through it, so that a snapshot
/// a store hid from the prune keeps needing what it names at every replica.
pub fn record_deletions_replaced(
    repo: &Repo,
    keys: &TenantKeys,
    event: Event,
    paths: &[String],
    replaced_by: &[String],
    covered: &[String],
) -> Result<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let Some(actor) = Actor::logging(keys) else {
        return Ok(());
    };
    let run = {
        let mut h = blake3::Hasher::new();
        h.update(crate::now_rfc3339().as_bytes());
        for p in paths.iter().chain(replaced_by) {
            h.update(p.as_bytes());
            h.update(b"\n");
        }
        hex::encode(&h.finalize().as_bytes()[..16])
    };
    let make = |what: &str, chunk: &[String], field: &str| {
        let mut e = entry(
            &actor,
            event,
            Some(keys),
            None,
            Some(format!("{} object(s){what}", chunk.len())),
        );
        // Without replacements the deletion stands for nothing: a snapshot that names a
        // deleted object keeps needing it.
        if !replaced_by.is_empty() {
            e.data
                .insert("run".into(), serde_json::Value::String(run.clone()));
        }
        e.data.insert(
            field.into(),
            serde_json::to_value(chunk).expect("serializes"),
        );
        e
    };
    // At least one entry, if empty: a run that names no snapshot walked counts as an older
    // coop's, which covered every snapshot.
    let none: [String; 0] = [];
    let chunks: Vec<&[String]> = if covered.is_empty() {
        vec![&none[..]]
    } else {
        covered.chunks(PATHS_PER_ENTRY).collect()
    };
    let walked = chunks.into_iter().map(|chunk| {
        let mut e = make(" walked (snapshots)", chunk, "covered");
        e.object = Some(format!("{} snapshot(s) walked", chunk.len()));
        e
    });
    let entries: Vec<Entry> = replaced_by
        .chunks(PATHS_PER_ENTRY)
        .map(|chunk| make(" written in their place", chunk, "replaced_by"))
        .chain(walked.filter(|_| !replaced_by.is_empty()))
        .chain(
            paths
                .chunks(PATHS_PER_ENTRY)
                .map(|chunk| make("", chunk, "paths")),
        )
        .collect();
    append(repo, &actor, &entries)?;
    Ok(())
}

/// What admins logged as deleted, from verified logs (see [`recorded_deletions`]).
#[derive(Debug, Default)]
pub struct Deletions {
    /// Store path → when this client first saw an admin's entry naming it (Unix seconds).
    pub at: HashMap<String, i64>,
    /// Store path → the runs that deleted it.
    runs: HashMap<String, Vec<String>>,
    /// Run → what it wrote in place of what it deleted.
    replaced_by: HashMap<String, Vec<String>>,
    /// Run → the names (hex) of the snapshots it walked: only their inventories resolve
    /// through it (a run with no such entries: every snapshot).
    covered: HashMap<String, HashSet<String>>,
}

impl Deletions {
    pub fn get(&self, path: &str) -> Option<&i64> {
        self.at.get(path)
    }

    /// What snapshot `snapshot` (its store path), whose inventory names `needs`, needs now:
    /// each object that is not `present` and that an admin logged as deleted, by a run that
    /// walked this snapshot, stands for what that run wrote in its place (again resolved, for
    /// a later prune); an object nobody logged, or only a run that did not walk this snapshot
    /// (hidden from it), stays needed as it is.
    pub fn resolve(
        &self,
        snapshot: &str,
        needs: &[String],
        present: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let name = snapshot.rsplit('/').next().unwrap_or(snapshot);
        // A run that names no snapshot walked was logged by an older coop, which walked
        // them all (only admins write these entries; a site cannot add one).
        let walked = |run: &String| self.covered.get(run).is_none_or(|c| c.contains(name));
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = needs.to_vec();
        while let Some(p) = todo.pop() {
            if !seen.insert(p.clone()) {
                continue;
            }
            match self.runs.get(&p) {
                Some(runs) if !present(&p) && runs.iter().any(walked) => {
                    for r in runs.iter().filter(|r| walked(r)) {
                        todo.extend(self.replaced_by.get(r).into_iter().flatten().cloned());
                    }
                }
                _ => out.push(p),
            }
        }
        out.sort();
        out
    }
}

/// When this client first saw each trusted deletion entry (Unix seconds), kept in the cache
/// directory (`<cache>/<repo id>/deletions-seen.json`). Without a cache directory everything
/// is seen for the first time now, so only a grace of 0 follows deletions.
#[derive(Debug, Default)]
pub struct FirstSeen {
    path: Option<std::path::PathBuf>,
    /// `<origin>#<index>` → first seen.
    seen: BTreeMap<String, i64>,
    changed: bool,
}

impl FirstSeen {
    pub fn load(cache: Option<&std::path::Path>, repo_id: &coop_formats::id::Id) -> FirstSeen {
        let path = cache.map(|c| c.join(repo_id.to_hex()).join("deletions-seen.json"));
        let seen = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FirstSeen {
            path,
            seen,
            changed: false,
        }
    }

    fn at(&mut self, origin: &str, index: usize, now: i64) -> i64 {
        *self
            .seen
            .entry(format!("{origin}#{index}"))
            .or_insert_with(|| {
                self.changed = true;
                now
            })
    }

    /// Writes what was seen for the first time (a failure only delays deletions).
    pub fn save(&mut self) -> Result<()> {
        let Some(p) = &self.path else { return Ok(()) };
        if !self.changed {
            return Ok(());
        }
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.seen).expect("serializes"))
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, p).map_err(|e| Error::io(p, e))?;
        self.changed = false;
        Ok(())
    }
}

/// Deletions an admin recorded in the verified logs of `contents` (see the module docs);
/// each path's time is when `seen` first saw an entry naming it.
pub fn recorded_deletions(
    contents: &[LogContent],
    trusted: &Trusted,
    seen: &mut FirstSeen,
) -> Deletions {
    let now = crate::now_unix();
    let mut out = Deletions::default();
    for c in contents {
        // Only admins' logs, by key: a writer key (whatever its name) or a site cannot make
        // replicas delete anything; a log with a fork or rollback counts for nothing.
        if !c.admin || !c.sound {
            continue;
        }
        // After the recovery split only the admin persons who count delete (SPEC 24.11): a
        // retired admin who kept the service tenant's signer logs no deletion replicas follow.
        let persons = trusted
            .activation
            .as_ref()
            .and_then(|a| a.persons.get(&c.origin));
        for (i, e) in c.accepted() {
            if !matches!(e.event, Event::Delete | Event::Forget) {
                continue;
            }
            if !c.is_witnessed(i, trusted.quorum) {
                continue;
            }
            if let Some(p) = persons.filter(|p| p.restricted_from.is_some_and(|f| (i as u64) > f)) {
                let counted = matches!(
                    e.person(),
                    coop_formats::tlog::PersonCheck::Signed(by) if p.counts(&by, i as u64)
                );
                if !counted {
                    continue;
                }
            }
            let t = seen.at(&c.origin, i, now);
            let strings = |field: &str| -> Vec<String> {
                e.data
                    .get(field)
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p.as_str().map(str::to_string))
                    .collect()
            };
            let run = e
                .data
                .get("run")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            if let Some(run) = &run {
                out.replaced_by
                    .entry(run.clone())
                    .or_default()
                    .extend(strings("replaced_by"));
                if e.data.contains_key("covered") {
                    out.covered
                        .entry(run.clone())
                        .or_default()
                        .extend(strings("covered"));
                }
            }
            for p in strings("paths") {
                let at = out.at.entry(p.clone()).or_insert(t);
                *at = (*at).min(t);
                // An entry without a run (written before runs were logged) names no
                // replacement: a snapshot that needs the object stays held back.
                if let Some(run) = &run {
                    out.runs.entry(p).or_default().push(run.clone());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prune run's replacements stand for what it deleted only in the inventories of the
    /// snapshots it walked: one a store hid from the prune keeps needing what it names, so no
    /// replica that keeps it deletes its data.
    #[test]
    fn only_the_snapshots_a_run_walked_resolve_through_it() {
        let mut d = Deletions::default();
        d.runs.insert("packs/t/old".into(), vec!["r".into()]);
        d.replaced_by.insert("r".into(), vec!["packs/t/new".into()]);
        d.covered.insert("r".into(), ["aa".to_string()].into());
        let needs = vec!["packs/t/old".to_string()];
        assert_eq!(
            d.resolve("snapshots/t/aa", &needs, |_| false),
            vec!["packs/t/new".to_string()]
        );
        assert_eq!(d.resolve("snapshots/t/bb", &needs, |_| false), needs);
        // Still there: needed as it is.
        assert_eq!(d.resolve("snapshots/t/aa", &needs, |_| true), needs);
        // A run that names no snapshots (logged by an older coop, which walked them all)
        // resolves every snapshot's inventory.
        d.covered.clear();
        assert_eq!(
            d.resolve("snapshots/t/bb", &needs, |_| false),
            vec!["packs/t/new".to_string()]
        );
    }
}
