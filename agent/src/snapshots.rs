//! Listing, opening and resolving snapshots (`latest`, an ID or a unique prefix).
//!
//! A snapshot object that is damaged (its bytes do not match its name) or forged (it does
//! not decrypt to a snapshot signed by a writer of the tenant) is named, skipped and
//! reported; the others keep working. A genuine-looking snapshot can still be *flagged*:
//! dated in the future (beyond [`MAX_CLOCK_SKEW_SECS`]), or signed by a revoked writer after
//! its revocation. Flagged snapshots are listed but never resolve as `latest` and never fill
//! a retention bucket.

use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use crate::writers::{self, Signer};
use coop_formats::id::Id;
use coop_formats::snapshot::{Snapshot, SnapshotError};
use serde::Serialize;

/// How far ahead of this machine's clock a snapshot may be dated before it is flagged.
pub const MAX_CLOCK_SKEW_SECS: i64 = 900;

/// Why a readable snapshot is not trusted for `latest` and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "flag", rename_all = "kebab-case")]
pub enum Flag {
    /// Dated this many seconds ahead of now.
    Future { seconds_ahead: i64 },
    /// Signed by this writer after it was revoked.
    RevokedWriter { writer: String },
    /// Its time is not an RFC 3339 time (forged: coop never writes one).
    BadTime { time: String },
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Flag::Future { seconds_ahead } => write!(
                f,
                "dated {} in the future (forged, or a clock far off)",
                humantime::format_duration(std::time::Duration::from_secs(
                    (*seconds_ahead).max(0) as u64
                ))
            ),
            Flag::BadTime { time } => write!(f, "dated {time:?}, which is not a time (forged)"),
            Flag::RevokedWriter { writer } => {
                write!(f, "signed by writer {writer:?} after it was revoked")
            }
        }
    }
}

/// One readable snapshot.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Id,
    pub snapshot: Snapshot,
    pub flags: Vec<Flag>,
}

impl Entry {
    pub fn trusted(&self) -> bool {
        self.flags.is_empty()
    }
}

/// An entry as `coop snapshots --json` lists it: the snapshot's fields (its host also as
/// `hostname`, its tree and writer as hex, without the repository ID, manifest and inventory)
/// with the snapshot's ID, short ID and flags.
impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Listed<'a> {
            id: String,
            short_id: String,
            time: &'a str,
            hostname: &'a str,
            host: &'a str,
            username: &'a str,
            paths: &'a [String],
            tags: &'a [String],
            tenant: &'a str,
            tree: String,
            writer: String,
            writer_name: &'a str,
            program: &'a str,
            summary: &'a coop_formats::snapshot::Summary,
            flags: &'a [Flag],
        }
        let s = &self.snapshot;
        Listed {
            id: self.id.to_hex(),
            short_id: self.id.short(),
            time: &s.time,
            hostname: &s.host,
            host: &s.host,
            username: &s.username,
            paths: &s.paths,
            tags: &s.tags,
            tenant: &s.tenant,
            tree: s.tree.to_hex(),
            writer: hex::encode(s.writer),
            writer_name: &s.writer_name,
            program: &s.program,
            summary: &s.summary,
            flags: &self.flags,
        }
        .serialize(ser)
    }
}

/// Every readable snapshot of a tenant (oldest first) and the objects that were not.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    /// Every snapshot object listed and served (readable or not); one listed and then not
    /// served is left out (so the rollback memory misses it) and named in `problems`.
    pub names: Vec<Id>,
    /// The writer list went backwards here: (generation seen before, now).
    pub writers_rollback: Option<(u64, u64)>,
    /// How many witnesses the writer list asks for (0: the freshness check has nothing to read).
    pub log_quorum: u32,
    /// Listed for an admin keeping a member tenant up without reading it (`TenantKeys::is_upkeep`):
    /// snapshots whose metadata is not encrypted to the service tenant (the member's own
    /// backups, or ones written before coop did that). Never forgotten by the cooperative's
    /// retention; their inventories still count for prune.
    pub opaque: Vec<Id>,
    /// With upkeep keys: the clear inventory (SPEC 9.2) of every entry and every opaque
    /// snapshot (forged ones, reported in `problems`, count for nothing).
    pub inventories: Vec<(Id, coop_formats::snapshot::Inventory)>,
}

/// What opens a tenant's snapshots: its data identity (a reader), or for an admin keeping a
/// member tenant up after the recovery split, the service tenant's data identity, to which
/// coop writers also encrypt member snapshots (their metadata only: trees and files are in
/// packs encrypted to the member alone).
enum Opener<'a> {
    Reader(&'a crate::keys::ReaderKeys),
    Upkeep(&'a [coop_formats::crypt::Identity]),
}

impl Opener<'_> {
    fn of(keys: &TenantKeys) -> Result<Opener<'_>> {
        match (&keys.reader, &keys.upkeep) {
            (Some(r), _) => Ok(Opener::Reader(r)),
            (None, Some(ids)) => Ok(Opener::Upkeep(ids)),
            (None, None) => Err(Error::WriterCannotRead {
                tenant: keys.tenant.clone(),
            }),
        }
    }

    fn identities(&self) -> &[coop_formats::crypt::Identity] {
        match self {
            Opener::Reader(r) => &r.identities,
            Opener::Upkeep(ids) => ids,
        }
    }

    /// One of the tenant's own keys: its writers and the admin keys it trusts (without the
    /// keyring: the registry's authority of the member tenant and the pinned admin keys).
    fn tenant_key(&self, keys: &TenantKeys, k: &[u8; 32]) -> bool {
        match self {
            Opener::Reader(r) => r.keyring.is_writer(k) || r.keyring.admin_keys().contains(k),
            Opener::Upkeep(_) => keys.is_authority(k) || keys.admin_keys.contains(k),
        }
    }
}

/// Which snapshots a command means (`--host`, `--path`, `--tag`): all must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub host: Option<String>,
    /// Each must be one of the snapshot's paths.
    pub paths: Vec<String>,
    /// Each must be one of the snapshot's tags.
    pub tags: Vec<String>,
    /// The snapshot must hold this path: one of its paths is it or a parent of it (what
    /// `latest:/srv/forgejo` and `dump latest /db.dump` need).
    pub within: Option<String>,
}

/// Whether `path` is `base` or below it.
fn is_under(path: &str, base: &str) -> bool {
    let (p, b) = (path.trim_end_matches('/'), base.trim_end_matches('/'));
    b.is_empty() || p == b || p.strip_prefix(b).is_some_and(|r| r.starts_with('/'))
}

impl Filter {
    pub fn matches(&self, s: &Snapshot) -> bool {
        self.within
            .as_ref()
            .is_none_or(|w| s.paths.iter().any(|q| is_under(w, q)))
            && self.host.as_ref().is_none_or(|h| &s.host == h)
            && self.paths.iter().all(|p| {
                s.paths
                    .iter()
                    .any(|q| q.trim_end_matches('/') == p.trim_end_matches('/'))
            })
            && self.tags.iter().all(|t| s.tags.contains(t))
    }

    pub fn is_empty(&self) -> bool {
        self.host.is_none()
            && self.paths.is_empty()
            && self.tags.is_empty()
            && self.within.is_none()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host {h}"));
        }
        for p in &self.paths {
            parts.push(format!("path {p}"));
        }
        for t in &self.tags {
            parts.push(format!("tag {t}"));
        }
        if let Some(w) = &self.within {
            parts.push(format!("holding {w}"));
        }
        parts.join(", ")
    }
}

/// What a snapshot's `time` says against `now`: too far in the future, or no time at all.
/// What a snapshot that does not open is: encrypted to keys this reader does not hold (a
/// keyring kept from before the tenant's data key changed: maybe genuine, never called
/// forged), signed by nobody entitled to, or (its bytes match its name, so it was stored like
/// this) no genuine snapshot at all.
fn open_problem(path: &str, e: SnapshotError) -> Problem {
    match e {
        SnapshotError::Crypt(coop_formats::crypt::CryptError::NotRecipient) => Problem::unreadable(
            path,
            "it is encrypted to none of the keys this reader holds (written after the tenant's \
             keys changed, to keys a newer keyring has); nothing of it was read",
        ),
        e @ (SnapshotError::BadSignature
        | SnapshotError::UnknownWriter { .. }
        | SnapshotError::Misplaced) => Problem::forged(path, e),
        e => Problem::forged(path, format!("not a valid snapshot: {e}")),
    }
}

fn time_flags(time: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<Flag> {
    match seconds_ahead(time, now) {
        Some(ahead) if ahead > MAX_CLOCK_SKEW_SECS => vec![Flag::Future {
            seconds_ahead: ahead,
        }],
        Some(_) => Vec::new(),
        None => vec![Flag::BadTime {
            time: time.chars().take(64).collect(),
        }],
    }
}

fn seconds_ahead(time: &str, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(time).ok()?;
    Some((t.with_timezone(&chrono::Utc) - now).num_seconds())
}

/// Every snapshot of the tenant, oldest first. Needs an identity (a reader of the tenant, or
/// an admin keeping a member tenant up: see [`Listing::opaque`]).
pub fn list(repo: &Repo, keys: &TenantKeys) -> Result<Listing> {
    let opener = Opener::of(keys)?;
    let upkeep = matches!(opener, Opener::Upkeep(_));
    let writer_list = writers::load(repo, &keys.admin_keys)?;
    let mut out = Listing {
        problems: writer_list.problems.clone(),
        writers_rollback: writer_list.rollback,
        log_quorum: writer_list.list.log_quorum,
        ..Default::default()
    };
    let list = &writer_list.list;
    let now = chrono::Utc::now();
    let objects = repo.list(Kind::Snapshot, &keys.tag)?;
    let names: Vec<Id> = objects.iter().map(|o| o.name).collect();
    let fetched = repo.get_many(Kind::Snapshot, &keys.tag, &names);
    let mut forgotten: Option<std::collections::HashSet<Id>> = None;
    for (obj, got) in objects.into_iter().zip(fetched) {
        let bytes = match got {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                // Forgotten meanwhile (a signed forget record names it), or listed and then
                // not served: a store hiding it must not pass it off as never there, so it
                // is no name this client saw (the rollback memory then misses it) and a
                // problem that stops whatever deletes.
                let forgotten = match &mut forgotten {
                    Some(f) => f,
                    None => forgotten.insert(crate::control::forget_records(repo, keys)?.0),
                };
                if !forgotten.contains(&obj.name) {
                    out.problems.push(Problem::damaged(
                        &obj.path,
                        "listed by the store but not served, and no forget record names it \
                         (hidden by the store, or deleted by hand)",
                    ));
                }
                continue;
            }
            Err(e @ Error::Damaged { .. }) => {
                out.names.push(obj.name);
                out.problems.push(Problem::damaged(&obj.path, &e));
                continue;
            }
            Err(e) => return Err(e),
        };
        out.names.push(obj.name);
        let mut inventory = None;
        if upkeep {
            match coop_formats::snapshot::read_inventory(&bytes) {
                Ok((_, inv, _)) => inventory = Some(inv),
                Err(e) => {
                    out.problems.push(Problem::forged(
                        &obj.path,
                        format!("not a valid snapshot: {e}"),
                    ));
                    continue;
                }
            }
        }
        let opened = Snapshot::open(
            opener.identities(),
            &bytes,
            (repo.config.repo_id, keys.tag),
            |k| opener.tenant_key(keys, k) || list.get(k).is_some(),
        );
        let s = match opened {
            Ok(s) => s,
            // Not encrypted to the service tenant: the member's own, kept and counted as such.
            Err(SnapshotError::Crypt(coop_formats::crypt::CryptError::NotRecipient)) if upkeep => {
                out.opaque.push(obj.name);
                out.inventories.extend(inventory.map(|i| (obj.name, i)));
                continue;
            }
            Err(e) => {
                out.problems.push(open_problem(&obj.path, e));
                continue;
            }
        };
        let mut flags = time_flags(&s.time, now);
        match writers::judge_key(
            opener.tenant_key(keys, &s.writer),
            list,
            &s.writer,
            &obj.name,
        ) {
            Signer::RevokedAfter(writer) => flags.push(Flag::RevokedWriter { writer }),
            Signer::Unknown => {
                out.problems
                    .push(Problem::forged(&obj.path, "signed by an unknown writer"));
                continue;
            }
            Signer::Valid | Signer::RevokedBefore(_) => {}
        }
        out.inventories.extend(inventory.map(|i| (obj.name, i)));
        out.entries.push(Entry {
            id: obj.name,
            snapshot: s,
            flags,
        });
    }
    out.entries
        .sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
    Ok(out)
}

impl Listing {
    /// Resolves `latest` (the newest trusted snapshot matching `filter`), a full ID or a
    /// unique prefix.
    pub fn find(&self, tenant: &str, spec: &str, filter: &Filter) -> Result<&Entry> {
        if spec == "latest" {
            return self
                .entries
                .iter()
                .rev()
                .find(|e| e.trusted() && filter.matches(&e.snapshot))
                .ok_or_else(|| Error::NotFound {
                    what: if filter.is_empty() {
                        format!("a snapshot in tenant {tenant:?}")
                    } else {
                        format!("a snapshot in tenant {tenant:?} with {}", filter.describe())
                    },
                });
        }
        let spec_l = spec.to_ascii_lowercase();
        let hits: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.id.to_hex().starts_with(&spec_l))
            .collect();
        match hits.len() {
            1 => Ok(hits[0]),
            0 => Err(Error::NotFound {
                what: format!("snapshot {spec:?} in tenant {tenant:?}"),
            }),
            n => Err(Error::AmbiguousSnapshot {
                prefix: spec.into(),
                matches: n,
            }),
        }
    }
}

/// A tenant's snapshots as a command sees them: the listing, what this client remembers
/// of this location (rollback detection), and the snapshots forget records explain.
#[derive(Debug)]
pub struct View {
    pub tenant: String,
    pub listing: Listing,
    pub verdict: crate::state::Verdict,
    pub forgotten: std::collections::HashSet<Id>,
}

/// Lists the snapshots, reads the forget records and checks this location against what the
/// client saw before (and records what it sees now).
pub fn view(repo: &Repo, keys: &TenantKeys) -> Result<View> {
    let mut listing = list(repo, keys)?;
    let (forgotten, problems) = crate::control::forget_records(repo, keys)?;
    listing.problems.extend(problems);
    let verified: Vec<Id> = listing.entries.iter().map(|e| e.id).collect();
    let mut verdict = crate::state::observe(
        repo.cache_dir(),
        &repo.config.repo_id,
        &crate::state::Seen {
            location: &repo.store.location(),
            tag: &keys.tag,
            snapshots: Some(&listing.names),
            verified: &verified,
            forgotten: &forgotten,
            index: None,
        },
    );
    if let Some((before, now)) = listing.writers_rollback {
        verdict.older_generation = Some(("writer list".into(), before, now));
    }
    // Only where the writer list the listing read asks for witnesses: the common case of
    // none reads nothing more.
    if listing.log_quorum > 0 {
        verdict.stale = staleness(repo, keys);
    }
    Ok(View {
        tenant: keys.tenant.clone(),
        listing,
        verdict,
        forgotten,
    })
}

/// A fresh client cannot tell an old state of a store from the current one by itself: where
/// the writer list asks for witnesses, the newest cosignature in the store must be younger
/// than the repository's freshness bound (SPEC section 19).
fn staleness(repo: &Repo, keys: &TenantKeys) -> Option<String> {
    let bound = repo.freshness?;
    let trusted = crate::writers::log_trust(repo, &keys.admin_keys).ok()?;
    if trusted.quorum == 0 {
        return None;
    }
    let newest = crate::log::newest_cosignature(repo, &trusted).ok()?;
    let now = crate::now_unix().max(0) as u64;
    let stale = |what: String| {
        Some(format!(
            "POSSIBLY OLD STATE: {what}; this store may be showing an old state of the repository \
             (a rollback a fresh client cannot see). Compare with another site (`coop snapshots --repo OTHER`) \
             or run the witnesses (`coop log witness`) before trusting `latest`"
        ))
    };
    match newest {
        None => stale("no witness has cosigned any of this store's access logs".into()),
        Some(t) if now.saturating_sub(t) > bound.as_secs() => stale(format!(
            "the newest witness cosignature here is {} old (the bound is {})",
            humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(t))),
            humantime::format_duration(bound)
        )),
        Some(_) => None,
    }
}

impl View {
    /// Every warning a command should show: damaged and forged objects, rollback, lag.
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .listing
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect();
        w.extend(self.verdict.warnings());
        w
    }

    /// Whether anything damaged or forged was met, or a rollback (commands that list exit
    /// with the damage code).
    pub fn has_problems(&self) -> bool {
        self.verdict.rollback() || self.verdict.stale.is_some() || !self.listing.problems.is_empty()
    }

    /// Destructive commands decide only from a view that is not rolled back.
    pub fn refuse_if_rollback(&self, what: &str) -> Result<()> {
        if self.verdict.rollback() {
            return Err(Error::damaged(
                Kind::Snapshot.dir(),
                format!(
                    "{what} refuses to run: {} Run it against another site, or find out who changed this store.",
                    self.verdict.warnings().join(" ")
                ),
            ));
        }
        Ok(())
    }

    /// Resolves a snapshot. `latest` is refused while snapshots this client saw here are
    /// missing: the newest one may be among them, and an older one would be restored.
    pub fn find(&self, spec: &str, filter: &Filter) -> Result<&Entry> {
        if spec == "latest"
            && (!self.verdict.vanished.is_empty() || self.verdict.older_generation.is_some())
        {
            return Err(Error::damaged(
                Kind::Snapshot.dir(),
                format!(
                    "`latest` is not resolved: {} Give a snapshot ID to read an older one knowingly.",
                    self.verdict.warnings().join(" ")
                ),
            ));
        }
        self.listing.find(&self.tenant, spec, filter)
    }
}

#[cfg(test)]
mod tests;
