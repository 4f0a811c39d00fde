//! `forget`: apply a retention policy to the snapshots of a tenant, or remove named ones.
//!
//! Snapshots are grouped (by host and paths by default; tags optional; always by the writer
//! that signed them), sorted newest first, and kept if any rule keeps them. The newest
//! snapshot of every group and every protected snapshot are always kept. Buckets use UTC.
//! Because each writer's snapshots fill their own buckets, a writer key that adds backdated
//! snapshots (a stolen agent) removes none of another writer's: the policy keeps for every
//! writer what it promises.
//!
//! Flagged snapshots (dated in the future, or signed by a revoked writer after its
//! revocation) are never counted: they fill no bucket and are not "newest in group", so
//! forged ones cannot push genuine snapshots out; they are kept for inspection until removed
//! by ID. Before deleting, forget writes a *forget record* signed by the tenant's authority,
//! so clients that saw the removed snapshots know they were removed on purpose.

use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use crate::snapshots::Entry;
use chrono::{DateTime, Datelike, Utc};
use coop_formats::control::{ForgetRecord, Protection};
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
                    return Err(Error::invalid(format!(
                        "group-by: unknown key {other:?} (use host, paths, tags)"
                    )))
                }
            }
        }
        Ok(g)
    }

    /// The group of a snapshot. The writer that signed it always separates groups: one
    /// writer's snapshots (a stolen agent key's backdated flood) fill only that writer's
    /// buckets and can never push another writer's snapshots out.
    fn key(&self, s: &Snapshot) -> String {
        let mut k = vec![format!("tenant={}", s.tenant)];
        k.push(format!(
            "writer={}:{}",
            s.writer_name,
            &hex::encode(s.writer)[..8]
        ));
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

fn parse_time(id: &Id, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::damaged(id.to_hex(), format!("bad snapshot time {s:?}: {e}")))
}

fn decision(id: &Id, s: &Snapshot, group: &str, reasons: Vec<String>) -> Decision {
    Decision {
        id: id.to_hex(),
        short_id: id.short(),
        time: s.time.clone(),
        host: s.host.clone(),
        paths: s.paths.clone(),
        tags: s.tags.clone(),
        group: group.to_string(),
        keep: !reasons.is_empty(),
        reasons,
    }
}

/// Decides, without touching the repository.
pub fn decide(
    snaps: &[Entry],
    protected: &HashSet<Id>,
    policy: &Policy,
    group_by: GroupBy,
    now: DateTime<Utc>,
) -> Result<Vec<Decision>> {
    type Dated<'a> = (Id, &'a Snapshot, DateTime<Utc>);
    let mut groups: BTreeMap<String, Vec<Dated>> = BTreeMap::new();
    let mut out = Vec::new();
    for e in snaps {
        let (id, s) = (&e.id, &e.snapshot);
        if !e.trusted() {
            let why = e
                .flags
                .iter()
                .map(|f| format!("flagged: {f}; not counted, remove it by ID"))
                .collect();
            out.push(decision(id, s, &group_by.key(s), why));
            continue;
        }
        groups
            .entry(group_by.key(s))
            .or_default()
            .push((*id, s, parse_time(id, &s.time)?));
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
            out.push(decision(id, s, &group, reasons));
        }
    }
    Ok(out)
}

/// Snapshots marked with `coop protect` by the tenant's authority. A protection signed by
/// anyone else is ignored and named in `warnings` (it would otherwise let a writer key stop
/// retention, or keep its own garbage for ever).
pub fn protected(
    repo: &Repo,
    keys: &TenantKeys,
    warnings: &mut Vec<String>,
) -> Result<HashSet<Id>> {
    let mut set = HashSet::new();
    for (name, p) in repo.list_control::<Protection>(keys, Kind::Protection)? {
        match p {
            Ok((p, signer)) if keys.is_authority(&signer) => {
                set.insert(p.snapshot);
            }
            Ok(_) => warnings.push(format!(
                "protection {name} is not signed by this tenant's authority; ignored"
            )),
            Err(e) => warnings.push(format!("protection {name} does not open; ignored: {e}")),
        }
    }
    Ok(set)
}

/// Protects a snapshot (or removes its protections); returns how many objects changed.
pub fn protect(
    repo: &Repo,
    keys: &TenantKeys,
    snapshot: Id,
    note: &str,
    remove: bool,
) -> Result<usize> {
    let authority = keys.authority_signer()?;
    if remove {
        let mut n = 0;
        for (name, p) in repo.list_control::<Protection>(keys, Kind::Protection)? {
            if p.is_ok_and(|(p, _)| p.snapshot == snapshot) {
                repo.delete(Kind::Protection, &keys.tag, &name)?;
                n += 1;
            }
        }
        return Ok(n);
    }
    let body = Protection {
        snapshot,
        created: crate::now_unix(),
        note: note.into(),
    };
    repo.write_control(keys, Kind::Protection, &body, &authority)?;
    Ok(1)
}

/// The snapshots forget records (signed by the tenant's authority) say were removed.
pub fn records(repo: &Repo, keys: &TenantKeys) -> Result<(HashSet<Id>, Vec<Problem>)> {
    crate::control::forget_records(repo, keys)
}

/// Deletes snapshots: first a signed forget record naming them, then the objects.
pub fn remove(repo: &Repo, keys: &TenantKeys, ids: &[Id]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rec = ForgetRecord {
        created: crate::now_unix(),
        snapshots: ids.to_vec(),
    };
    repo.write_control(keys, Kind::Forgotten, &rec, &keys.maintainer_signer()?)?;
    // Logged before the snapshots go: replicas follow only deletions an admin logged.
    let paths: Vec<String> = ids
        .iter()
        .map(|i| Kind::Snapshot.path(&keys.tag, i))
        .collect();
    crate::log::record_deletions(repo, keys, coop_formats::tlog::Event::Forget, &paths)?;
    for id in ids {
        repo.delete(Kind::Snapshot, &keys.tag, id)?;
    }
    Ok(())
}

/// What forget decided, and what it met on the way.
#[derive(Debug, Default, serde::Serialize)]
pub struct ForgetReport {
    pub decisions: Vec<Decision>,
    pub warnings: Vec<String>,
}

/// Applies the policy: deletes the snapshots it does not keep (unless `dry_run`). Refuses to
/// delete from a view with damaged snapshots or signs of a rollback.
pub fn forget(
    repo: &Repo,
    keys: &TenantKeys,
    policy: &Policy,
    group_by: GroupBy,
    dry_run: bool,
) -> Result<ForgetReport> {
    if policy.is_empty() {
        return Err(Error::invalid(
            "no keep rule given; refusing to forget every snapshot",
        ));
    }
    // The tenant's authority, or an admin keeping a member tenant up from its snapshots'
    // metadata (SPEC 13.7); never a writer key.
    keys.maintainer_signer()?;
    // Complete listings only: any error aborts before anything is deleted.
    let view = crate::snapshots::view(repo, keys)?;
    let mut rep = ForgetReport {
        warnings: view.warnings(),
        ..Default::default()
    };
    // A dry run refuses too: what it would show is decided from a view that is wrong.
    {
        view.refuse_if_rollback("forget")?;
        if let Some(p) = view.listing.problems.iter().find(|p| p.may_be_needed()) {
            return Err(Error::damaged(
                &p.object,
                format!(
                    "forget refuses to run: {p}; copy the object from another site (or open the \
                     tenant with its current keys), or remove it by ID"
                ),
            ));
        }
    }
    let prot = protected(repo, keys, &mut rep.warnings)?;
    rep.decisions = decide(&view.listing.entries, &prot, policy, group_by, Utc::now())?;
    // What the service tenant's key does not open (the member's own backups) is the
    // member's: the cooperative's retention never removes a snapshot it cannot see.
    rep.decisions
        .extend(view.listing.opaque.iter().map(|id| Decision {
            id: id.to_hex(),
            short_id: id.short(),
            time: String::new(),
            host: String::new(),
            paths: vec![],
            tags: vec![],
            group: "not readable with the service tenant's key".into(),
            keep: true,
            reasons: vec![
                "the member's own (its metadata is not encrypted to the service tenant); only the member forgets it"
                    .into(),
            ],
        }));
    if !dry_run {
        let gone: Vec<Id> = rep
            .decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| {
                d.id.parse()
                    .map_err(|_| Error::internal("a decision without a valid id"))
            })
            .collect::<Result<_>>()?;
        remove(repo, keys, &gone)?;
    }
    Ok(rep)
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
            inventory: Id::default(),
        }
    }

    fn entry(id: Id, s: Snapshot) -> Entry {
        Entry {
            id,
            snapshot: s,
            flags: vec![],
        }
    }

    #[test]
    fn flagged_snapshots_fill_no_bucket_and_evict_nothing() {
        // Twenty forgeries from the future in the same group as two genuine snapshots.
        let mut snaps: Vec<Entry> = (0..20u8)
            .map(|i| Entry {
                id: Id([100 + i; 32]),
                snapshot: snap(&format!("{}-01-01T00:00:00Z", 2090 + i as u32), "a"),
                flags: vec![crate::snapshots::Flag::Future {
                    seconds_ahead: 1 << 31,
                }],
            })
            .collect();
        snaps.push(entry(Id([1; 32]), snap("2026-11-10T03:00:00Z", "a")));
        snaps.push(entry(Id([2; 32]), snap("2026-11-11T03:00:00Z", "a")));
        let p = Policy {
            daily: Some(7),
            weekly: Some(5),
            monthly: Some(12),
            ..Default::default()
        };
        let d = decide(&snaps, &HashSet::new(), &p, GroupBy::default(), Utc::now()).unwrap();
        assert!(
            d.iter().all(|d| d.keep),
            "nothing genuine goes, forgeries wait for inspection"
        );
        let newest = d.iter().find(|d| d.id == Id([2; 32]).to_hex()).unwrap();
        assert!(
            newest.reasons.iter().any(|r| r == "newest in group"),
            "{:?}",
            newest.reasons
        );
    }

    #[test]
    fn daily_keeps_one_per_day_and_newest_always() {
        let snaps: Vec<Entry> = (0..10u8)
            .map(|i| {
                entry(
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
            entry(Id([1; 32]), snap("2026-01-01T00:00:00Z", "a")),
            entry(Id([2; 32]), snap("2026-01-02T00:00:00Z", "b")),
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

    /// Issue 27 finding 1: a stolen writer key adds one snapshot at 23:59 on each of the last
    /// 30 days and one now (same host and paths); the shipped recipe policy still keeps what
    /// it promises of the genuine writer's 31 daily snapshots, the newest included.
    #[test]
    fn a_writers_backdated_flood_evicts_no_other_writers_snapshots() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut snaps = Vec::new();
        for d in 0..31u8 {
            let t = now - chrono::Duration::days(d as i64) - chrono::Duration::hours(9);
            let mut genuine = snap(&t.to_rfc3339(), "db");
            genuine.writer = [1; 32];
            genuine.writer_name = "hackspace".into();
            snaps.push(entry(Id([d; 32]), genuine));
            let t = (now - chrono::Duration::days(d as i64))
                .date_naive()
                .and_hms_opt(23, 59, 0)
                .unwrap()
                .and_utc()
                .min(now);
            let mut forged = snap(&t.to_rfc3339(), "db");
            forged.writer = [2; 32];
            forged.writer_name = "hackspace".into();
            snaps.push(entry(Id([100 + d; 32]), forged));
        }
        let p = Policy {
            daily: Some(7),
            weekly: Some(5),
            monthly: Some(12),
            ..Default::default()
        };
        let d = decide(&snaps, &HashSet::new(), &p, GroupBy::default(), now).unwrap();
        let kept_genuine: Vec<&Decision> = d
            .iter()
            .filter(|x| x.keep && x.group.contains("writer=hackspace:01010101"))
            .collect();
        // 7 daily, then weekly and monthly ones from the rest of the 31 days.
        assert!(kept_genuine.len() >= 7 + 3, "{kept_genuine:#?}");
        assert!(
            kept_genuine.iter().any(|x| x.id == Id([0; 32]).to_hex()),
            "the newest genuine snapshot is kept"
        );
    }
}
