//! Rollback and hiding detection: each client remembers what it saw at each location.
//!
//! Stored in the cache directory as `<repo id>/state.json` (SPEC section 19). Per location
//! (store URL) and tenant it keeps the name of every snapshot that verified there (never one
//! it skipped as damaged or forged: junk an admin deletes later must not look like a
//! rollback), the index objects last read there, and the highest registry and writer-list
//! generations seen. When a location later shows less:
//!
//! - a snapshot seen there is gone and no signed forget record names it: the store is
//!   serving an old state, or hiding snapshots (**rollback**). Reading commands warn and
//!   refuse to resolve `latest`; forget and prune refuse to run.
//! - an index object seen there is gone and no present index object supersedes it: likewise.
//! - a registry or writer list generation went backwards: likewise.
//!
//! Snapshots seen at *another* location but not at this one only mean that this copy lags
//! (a replica that is behind): a warning, never an alarm.

use coop_formats::id::Id;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    #[serde(default)]
    locations: BTreeMap<String, Location>,
    /// Member name → the member tenant's keys this client first saw, and the newest material
    /// signature it accepted (SPEC 15.3). Per repository, not per location: every copy must
    /// show the same member tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    members: BTreeMap<String, MemberPin>,
}

/// What a client pins of a member tenant: the tenant and its authority never change for a
/// name; the writer material changes only with a newer signature of that authority.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPin {
    #[serde(with = "hex_bytes")]
    pub tenant_tag: [u8; 16],
    #[serde(with = "hex_bytes")]
    pub authority: [u8; 32],
    /// BLAKE3 of the writer material (data recipient, ID and index keys).
    #[serde(with = "hex_bytes")]
    pub material: [u8; 32],
    /// The material signature's generation; `None` while the material was unsigned.
    pub signed: Option<u64>,
}

/// Fixed-size byte arrays as hex strings.
mod hex_bytes {
    pub fn serialize<S: serde::Serializer, const N: usize>(
        v: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        let v = hex::decode(s).map_err(serde::de::Error::custom)?;
        v.try_into()
            .map_err(|_| serde::de::Error::custom("bad length"))
    }
}

/// The pin this client keeps for member `name`, if any.
pub fn member_pin(cache: Option<&Path>, repo_id: &Id, name: &str) -> Option<MemberPin> {
    load(&path(cache?, repo_id)).members.get(name).cloned()
}

/// Records `pin` for member `name` (after the caller accepted it).
pub fn set_member_pin(cache: Option<&Path>, repo_id: &Id, name: &str, pin: MemberPin) {
    let Some(cache) = cache else { return };
    let p = path(cache, repo_id);
    let mut state = load(&p);
    state.members.insert(name.to_string(), pin);
    save(&p, &state);
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Location {
    /// Access log origin → the largest (size, base64 root) this client verified there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    logs: BTreeMap<String, (u64, String)>,
    /// Tenant tag (hex) → every snapshot that verified there and was not forgotten since.
    #[serde(default)]
    snapshots: BTreeMap<String, BTreeSet<Id>>,
    /// Tenant tag (hex) → the index objects seen there last time.
    #[serde(default)]
    index: BTreeMap<String, BTreeSet<Id>>,
    /// "registry", "writers" → highest generation seen.
    #[serde(default)]
    generations: BTreeMap<String, u64>,
}

/// What one observation found.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Snapshots this client saw at this location that are gone without a forget record.
    pub vanished: Vec<Id>,
    /// Index objects this client saw that are gone and that nothing present supersedes.
    pub vanished_index: Vec<Id>,
    /// Snapshots seen at other locations and missing here (this copy lags behind).
    pub lagging: Vec<(String, usize)>,
    /// A generation that went backwards: (what, seen before, now).
    pub older_generation: Option<(String, u64, u64)>,
    /// The store's newest witness cosignature is older than the freshness bound (or there is
    /// none while witnesses are required): it may show an old state. A warning.
    pub stale: Option<String>,
}

impl Verdict {
    /// Whether the location shows less than it showed before (a rollback or hidden objects).
    pub fn rollback(&self) -> bool {
        !self.vanished.is_empty()
            || !self.vanished_index.is_empty()
            || self.older_generation.is_some()
    }

    /// Warnings for people.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if !self.vanished.is_empty() {
            w.push(format!(
                "POSSIBLE ROLLBACK: {} snapshot(s) this client saw in this store are gone and no forget record \
                 explains it (first: {}). The store may be serving an old state, or hiding snapshots. \
                 Compare with another site before deleting anything.",
                self.vanished.len(),
                self.vanished[0].short()
            ));
        }
        if !self.vanished_index.is_empty() {
            w.push(format!(
                "POSSIBLE ROLLBACK: {} index object(s) this client saw are gone and no prune replaced them \
                 (first: {}). The store may be serving an old state of the repository.",
                self.vanished_index.len(),
                self.vanished_index[0]
            ));
        }
        if let Some((what, before, now)) = &self.older_generation {
            w.push(format!(
                "POSSIBLE ROLLBACK: the {what} is at generation {now}, but this client saw generation {before} \
                 in this store. The newest one was removed or the store serves an old state."
            ));
        }
        if let Some(s) = &self.stale {
            w.push(s.clone());
        }
        for (other, n) in &self.lagging {
            w.push(format!(
                "this copy lacks {n} snapshot(s) that {other} had when this client last read it \
                 (a replica that is behind; replication catches it up)"
            ));
        }
        w
    }
}

fn path(cache: &Path, repo_id: &Id) -> PathBuf {
    cache.join(repo_id.to_hex()).join("state.json")
}

fn load(p: &Path) -> State {
    std::fs::read(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save(p: &Path, s: &State) {
    if let Some(d) = p.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let tmp = p.with_extension(format!("tmp-{}", std::process::id()));
    if std::fs::write(&tmp, serde_json::to_vec(s).unwrap_or_default()).is_ok() {
        let _ = std::fs::rename(&tmp, p);
    }
}

/// What a client read from one location for one tenant.
pub struct Seen<'a> {
    /// The location, as a stable string (see [`crate::store::Store::location`]).
    pub location: &'a str,
    pub tag: &'a [u8; 16],
    /// Every snapshot name listed now (`None`: not looked at).
    pub snapshots: Option<&'a [Id]>,
    /// The listed snapshots that verified (signature, writer): only these are remembered.
    pub verified: &'a [Id],
    /// Snapshots forget records (authority-signed) say were removed on purpose.
    pub forgotten: &'a HashSet<Id>,
    /// The index objects listed now and the ones present objects supersede.
    pub index: Option<(&'a [Id], &'a HashSet<Id>)>,
}

/// Compares what a location shows now with what this client saw before, records the new
/// state, and says what it found. Without a cache directory nothing is remembered.
pub fn observe(cache: Option<&Path>, repo_id: &Id, seen: &Seen) -> Verdict {
    let Some(cache) = cache else {
        return Verdict::default();
    };
    let p = path(cache, repo_id);
    let mut state = load(&p);
    let tag = hex::encode(seen.tag);
    let mut v = Verdict::default();
    let here = state
        .locations
        .entry(seen.location.to_string())
        .or_default()
        .clone();
    let mut new_here = here.clone();
    if let Some(now) = seen.snapshots {
        let now: HashSet<Id> = now.iter().copied().collect();
        let before = here.snapshots.get(&tag).cloned().unwrap_or_default();
        v.vanished = before
            .iter()
            .filter(|s| !now.contains(s) && !seen.forgotten.contains(s))
            .copied()
            .collect();
        // Keep remembering what vanished (the alarm stays until a forget record explains it),
        // and add what verified now; a listed name that did not verify is not remembered.
        let mut keep: BTreeSet<Id> = before
            .into_iter()
            .filter(|s| !seen.forgotten.contains(s))
            .collect();
        keep.extend(
            seen.verified
                .iter()
                .filter(|s| now.contains(s) && !seen.forgotten.contains(s)),
        );
        for (loc, other) in &state.locations {
            if loc == seen.location {
                continue;
            }
            let missing = other
                .snapshots
                .get(&tag)
                .into_iter()
                .flatten()
                .filter(|s| !now.contains(s) && !seen.forgotten.contains(s))
                .count();
            if missing > 0 {
                v.lagging.push((loc.clone(), missing));
            }
        }
        new_here.snapshots.insert(tag.clone(), keep);
    }
    if let Some((names, superseded)) = seen.index {
        let present: HashSet<Id> = names.iter().copied().collect();
        v.vanished_index = here
            .index
            .get(&tag)
            .into_iter()
            .flatten()
            .filter(|i| !present.contains(i) && !superseded.contains(i))
            .copied()
            .collect();
        new_here
            .index
            .insert(tag.clone(), names.iter().copied().collect());
    }
    state.locations.insert(seen.location.to_string(), new_here);
    save(&p, &state);
    v
}

/// Checks that a generation (registry, writer list) did not go backwards at a location, and
/// records the highest seen. Returns (seen before, now) if it did.
pub fn observe_generation(
    cache: Option<&Path>,
    repo_id: &Id,
    location: &str,
    what: &str,
    generation: u64,
) -> Option<(u64, u64)> {
    let cache = cache?;
    let p = path(cache, repo_id);
    let mut state = load(&p);
    let loc = state.locations.entry(location.to_string()).or_default();
    let before = loc.generations.get(what).copied().unwrap_or(0);
    if generation < before {
        return Some((before, generation));
    }
    loc.generations.insert(what.to_string(), generation);
    save(&p, &state);
    None
}

/// Compares a verified log state with the one this client last verified at this location,
/// and with those it verified at every other copy of the repository that were not larger:
/// `consistent(old_size, old_root)` says whether the log now holds that older tree as its
/// prefix. Two copies whose trees disagree are a fork (a split view: a site showing
/// different parties different branches). Returns the alarm (a rollback or a fork), or
/// records the new state.
pub fn observe_log(
    cache: Option<&Path>,
    repo_id: &Id,
    location: &str,
    origin: &str,
    size: u64,
    root: &str,
    consistent: impl Fn(u64, &str) -> bool,
) -> Option<String> {
    let cache = cache?;
    let p = path(cache, repo_id);
    let mut state = load(&p);
    for (other, l) in &state.locations {
        if other == location {
            continue;
        }
        if let Some((before, old_root)) = l.logs.get(origin) {
            if *before <= size && !consistent(*before, old_root) {
                return Some(format!(
                    "FORK: the log {origin} here does not contain the tree of {before} entries \
                     this client verified at {other} (two copies of the repository show two \
                     histories)"
                ));
            }
        }
    }
    let loc = state.locations.entry(location.to_string()).or_default();
    if let Some((before, old_root)) = loc.logs.get(origin).cloned() {
        if size < before {
            return Some(format!(
                "POSSIBLE ROLLBACK: the log {origin} has {size} entries, but this client verified \
                 {before} here"
            ));
        }
        if !consistent(before, &old_root) {
            return Some(format!(
                "FORK: the log {origin} does not contain the tree of {before} entries this \
                 client verified here (its history was rewritten)"
            ));
        }
    }
    loc.logs
        .insert(origin.to_string(), (size, root.to_string()));
    save(&p, &state);
    None
}

/// The logs (origin → size) this client verified at `location` before: one of them that is
/// gone now is a rollback the store cannot pass off as "no log".
pub fn remembered_logs(cache: Option<&Path>, repo_id: &Id, location: &str) -> Vec<(String, u64)> {
    let Some(cache) = cache else {
        return Vec::new();
    };
    load(&path(cache, repo_id))
        .locations
        .get(location)
        .map(|l| l.logs.iter().map(|(o, (n, _))| (o.clone(), *n)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vanished_snapshots_alarm_until_a_forget_record_explains_them() {
        let d = tempfile::tempdir().unwrap();
        let repo = Id([1; 32]);
        let tag = [2u8; 16];
        let none = HashSet::new();
        let seen = |snaps: &[Id], forgotten: &HashSet<Id>, loc: &str| {
            observe(
                Some(d.path()),
                &repo,
                &Seen {
                    location: loc,
                    tag: &tag,
                    snapshots: Some(snaps),
                    verified: snaps,
                    forgotten,
                    index: None,
                },
            )
        };
        let (a, b, c) = (Id([10; 32]), Id([11; 32]), Id([12; 32]));
        assert!(!seen(&[a, b], &none, "s3://x").rollback());
        // b hidden: an alarm, and it stays.
        assert_eq!(seen(&[a], &none, "s3://x").vanished, vec![b]);
        assert_eq!(seen(&[a, c], &none, "s3://x").vanished, vec![b]);
        // A forget record for b: explained.
        let f: HashSet<Id> = [b].into();
        assert!(!seen(&[a, c], &f, "s3://x").rollback());
        assert!(!seen(&[a, c], &none, "s3://x").rollback());
        // Another location that lacks c lags; it is not a rollback.
        let v = seen(&[a], &none, "/srv/replica");
        assert!(!v.rollback());
        assert_eq!(v.lagging, vec![("s3://x".to_string(), 1)]);
    }

    #[test]
    fn a_listed_snapshot_that_did_not_verify_is_not_remembered() {
        let d = tempfile::tempdir().unwrap();
        let repo = Id([1; 32]);
        let tag = [2u8; 16];
        let none = HashSet::new();
        let seen = |listed: &[Id], verified: &[Id]| {
            observe(
                Some(d.path()),
                &repo,
                &Seen {
                    location: "/srv/repo",
                    tag: &tag,
                    snapshots: Some(listed),
                    verified,
                    forgotten: &none,
                    index: None,
                },
            )
        };
        let (good, junk) = (Id([10; 32]), Id([11; 32]));
        assert!(!seen(&[good, junk], &[good]).rollback());
        assert!(!seen(&[good, junk], &[good]).rollback());
        // An admin deletes the junk: nothing this client trusted is gone.
        assert!(!seen(&[good], &[good]).rollback());
        // The genuine one going is still an alarm.
        assert_eq!(seen(&[], &[]).vanished, vec![good]);
    }

    #[test]
    fn generations_do_not_go_backwards() {
        let d = tempfile::tempdir().unwrap();
        let r = Id([1; 32]);
        assert_eq!(
            observe_generation(Some(d.path()), &r, "x", "registry", 3),
            None
        );
        assert_eq!(
            observe_generation(Some(d.path()), &r, "x", "registry", 4),
            None
        );
        assert_eq!(
            observe_generation(Some(d.path()), &r, "x", "registry", 2),
            Some((4, 2))
        );
        assert_eq!(
            observe_generation(Some(d.path()), &r, "y", "registry", 2),
            None
        );
    }
}
