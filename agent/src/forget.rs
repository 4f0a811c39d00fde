//! `forget`: apply a retention policy to the snapshots of a tenant.
//!
//! Snapshots are grouped (by host and paths by default; tags optional), sorted newest first,
//! and kept if any rule keeps them. The newest snapshot of every group and every protected
//! snapshot are always kept. Buckets use UTC.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::{self, Repo};
use chrono::{DateTime, Datelike, Utc};
use coop_formats::control::Protection;
use coop_formats::id::Id;
use coop_formats::snapshot::Snapshot;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Which rules keep snapshots.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<Duration>,
    pub tags: Vec<String>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
            && self.hourly.is_none()
            && self.daily.is_none()
            && self.weekly.is_none()
            && self.monthly.is_none()
            && self.yearly.is_none()
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// What snapshots are grouped by (the tenant always separates groups).
#[derive(Debug, Clone, Copy)]
pub struct GroupBy {
    pub host: bool,
    pub paths: bool,
    pub tags: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        Self {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses `host,paths,tags` (any subset; empty = one group).
    pub fn parse(s: &str) -> Result<Self> {
        let mut g = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "host" => g.host = true,
                "paths" => g.paths = true,
                "tags" => g.tags = true,
                other => {
                    return Err(Error::Usage {
                        what: format!("--group-by: unknown key {other:?} (use host, paths, tags)"),
                    })
                }
            }
        }
        Ok(g)
    }

    fn key(&self, s: &Snapshot) -> String {
        let mut k = vec![format!("tenant={}", s.tenant)];
        if self.host {
            k.push(format!("host={}", s.host));
        }
        if self.paths {
            let mut p = s.paths.clone();
            p.sort();
            k.push(format!("paths={}", p.join(",")));
        }
        if self.tags {
            let mut t = s.tags.clone();
            t.sort();
            k.push(format!("tags={}", t.join(",")));
        }
        k.join(" ")
    }
}

/// The decision for one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub host: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub group: String,
    pub keep: bool,
    pub reasons: Vec<String>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::corrupt("snapshot", format!("bad time {s:?}: {e}")))
}

/// Decides, without touching the repository.
pub fn decide(
    snaps: &[(Id, Snapshot)],
    protected: &HashSet<Id>,
    policy: &Policy,
    group_by: GroupBy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>> {
    type Dated<'a> = (Id, &'a Snapshot, DateTime<Utc>);
    let mut groups: BTreeMap<String, Vec<Dated>> = BTreeMap::new();
    for (id, s) in snaps {
        groups
            .entry(group_by.key(s))
            .or_default()
            .push((*id, s, parse_time(&s.time)?));
    }
    type Bucket = fn(&DateTime<Utc>) -> String;
    let rules: Vec<(&str, Option<u32>, Bucket)> = vec![
        ("hourly", policy.hourly, |t| {
            t.format("%Y-%m-%d %H").to_string()
        }),
        ("daily", policy.daily, |t| t.format("%Y-%m-%d").to_string()),
        ("weekly", policy.weekly, |t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t| t.format("%Y-%m").to_string()),
        ("yearly", policy.yearly, |t| t.format("%Y").to_string()),
    ];
    let mut out = Vec::new();
    for (group, mut list) in groups {
        list.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(&a.0)));
        let mut counts = vec![0u32; rules.len()];
        let mut last_bucket: Vec<Option<String>> = vec![None; rules.len()];
        for (i, (id, s, t)) in list.iter().enumerate() {
            let mut reasons = Vec::new();
            if i == 0 {
                reasons.push("newest in group".to_string());
            }
            if protected.contains(id) {
                reasons.push("protected".to_string());
            }
            if let Some(n) = policy.last {
                if (i as u32) < n {
                    reasons.push(format!("last {n}"));
                }
            }
            for (r, (name, n, bucket)) in rules.iter().enumerate() {
                let Some(n) = n else { continue };
                let b = bucket(t);
                if counts[r] < *n && last_bucket[r].as_ref() != Some(&b) {
                    counts[r] += 1;
                    last_bucket[r] = Some(b);
                    reasons.push(format!("{name} {}", counts[r]));
                }
            }
            if let Some(d) = policy.within {
                if now
                    .signed_duration_since(*t)
                    .to_std()
                    .map(|age| age <= d)
                    .unwrap_or(true)
                {
                    reasons.push(format!("within {}", humantime::format_duration(d)));
                }
            }
            for tag in &policy.tags {
                if s.tags.contains(tag) {
                    reasons.push(format!("tag {tag}"));
                }
            }
            out.push(Decision {
                id: id.to_hex(),
                short_id: id.short(),
                time: s.time.clone(),
                host: s.host.clone(),
                paths: s.paths.clone(),
                tags: s.tags.clone(),
                group: group.clone(),
                keep: !reasons.is_empty(),
                reasons,
            });
        }
    }
    Ok(out)
}

/// Snapshots marked with `coop protect`.
pub fn protected(repo: &Repo, keys: &TenantKeys) -> Result<HashSet<Id>> {
    let mut set = HashSet::new();
    for (_, p) in repo.list_control::<Protection>(keys, "protected")? {
        set.insert(p?.snapshot);
    }
    Ok(set)
}

/// Applies the policy: deletes the snapshots it does not keep (unless `dry_run`).
pub fn forget(
    repo: &Repo,
    keys: &TenantKeys,
    policy: &Policy,
    group_by: GroupBy,
    dry_run: bool,
) -> Result<Vec<Decision>> {
    if policy.is_empty() {
        return Err(Error::Usage {
            what: "no --keep-* option given; refusing to forget every snapshot (give e.g. --keep-daily 7)".into(),
        });
    }
    // Complete listings only: any error aborts before anything is deleted.
    let snaps = repo.snapshots(keys)?;
    let prot = protected(repo, keys)?;
    let decisions = decide(&snaps, &prot, policy, group_by, Utc::now())?;
    if !dry_run {
        for d in decisions.iter().filter(|d| !d.keep) {
            let id: Id = d.id.parse().map_err(|_| Error::corrupt(&d.id, "bad id"))?;
            repo.store.delete(&repo::snapshot_path(&keys.tag, &id))?;
        }
    }
    Ok(decisions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(time: &str, host: &str) -> Snapshot {
        Snapshot {
            version: 1,
            repo_id: Id([0; 32]),
            tenant: "coop".into(),
            time: time.into(),
            host: host.into(),
            username: String::new(),
            paths: vec!["/srv".into()],
            tags: vec![],
            tree: Id([0; 32]),
            writer: [0; 32],
            writer_name: String::new(),
            program: String::new(),
            summary: Default::default(),
            manifest: None,
        }
    }

    #[test]
    fn daily_keeps_one_per_day_and_newest_always() {
        let snaps: Vec<(Id, Snapshot)> = (0..10u8)
            .map(|i| {
                (
                    Id([i; 32]),
                    snap(
                        &format!("2026-11-{:02}T{:02}:00:00Z", 10 + i / 3, i % 3 * 5),
                        "a",
                    ),
                )
            })
            .collect();
        let p = Policy {
            daily: Some(2),
            ..Default::default()
        };
        let d = decide(&snaps, &HashSet::new(), &p, GroupBy::default(), Utc::now()).unwrap();
        let kept: Vec<_> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| d.time.clone())
            .collect();
        // Newest (day 13) is kept by "newest" and "daily 1"; day 12's newest by "daily 2".
        assert_eq!(kept, vec!["2026-11-13T00:00:00Z", "2026-11-12T10:00:00Z"]);
        // Protection wins.
        let prot: HashSet<Id> = [Id([0; 32])].into();
        let d = decide(&snaps, &prot, &p, GroupBy::default(), Utc::now()).unwrap();
        assert!(
            d.iter()
                .find(|x| x.id == Id([0; 32]).to_hex())
                .unwrap()
                .keep
        );
    }

    #[test]
    fn groups_are_separate() {
        let snaps = vec![
            (Id([1; 32]), snap("2026-01-01T00:00:00Z", "a")),
            (Id([2; 32]), snap("2026-01-02T00:00:00Z", "b")),
        ];
        let p = Policy {
            last: Some(1),
            ..Default::default()
        };
        let d = decide(&snaps, &HashSet::new(), &p, GroupBy::default(), Utc::now()).unwrap();
        assert!(d.iter().all(|d| d.keep), "each host's newest is kept");
        let one = decide(
            &snaps,
            &HashSet::new(),
            &p,
            GroupBy::parse("").unwrap(),
            Utc::now(),
        )
        .unwrap();
        assert_eq!(one.iter().filter(|d| d.keep).count(), 1);
    }
}
