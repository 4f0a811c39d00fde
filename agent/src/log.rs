//! The access log in the store: one append-only Merkle log per signing key (each site's
//! agent, each admin), witnessed by the other sites (SPEC section 24).
//!
//! - [`append`] adds entries to the caller's own log and signs a new checkpoint. Only one
//!   process appends to a log at a time (a lock file in the cache directory); a checkpoint
//!   name that already holds other bytes is a fork and refused.
//! - [`witness`] checks every other log of a repository against what this witness saw
//!   before (never smaller, never a different history), records the new state, and only
//!   then writes its cosignature.
//! - [`verify`] checks every log: checkpoints signed by a known key, entries hashing to every
//!   checkpoint's root, cosignatures, and consistency with what this client verified before.
//! - [`wait_for_quorum`] blocks an access until a checkpoint that includes its entry carries
//!   the cosignatures the writer list's `log_quorum` asks for.

use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::tlog::{self, Checkpoint, Entry, Event, Hash, Reason};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

/// Who writes a log: a name and a signing key.
#[derive(Clone)]
pub struct Actor {
    pub name: String,
    pub key: ed25519_dalek::SigningKey,
}

impl Actor {
    /// The caller behind tenant keys: an admin (the coop signer) or a site writer.
    pub fn of(keys: &TenantKeys) -> Actor {
        let public = keys.signer.verifying_key().to_bytes();
        let name = if keys.admin_keys.contains(&public) {
            "admin".to_string()
        } else {
            keys.writer_name.clone()
        };
        Actor {
            name,
            key: keys.signer.clone(),
        }
    }

    /// Who logs an action done with these keys: an admin, or a site's writer key. `None` for a
    /// member acting on their own tenant with their own key (as with their own reads, nobody
    /// else is involved, and their key writes no log).
    pub fn logging(keys: &TenantKeys) -> Option<Actor> {
        let a = Actor::of(keys);
        (a.name == "admin" || keys.reader.is_none()).then_some(a)
    }

    /// A site's writer key (of this repository or another one), as a witness.
    pub fn from_writer_key(wk: &coop_formats::writerkey::WriterKey) -> Actor {
        Actor {
            name: wk.name.clone(),
            key: ed25519_dalek::SigningKey::from_bytes(&wk.signing_key),
        }
    }

    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    pub fn origin(&self, repo: &Repo) -> String {
        origin(repo, &self.name, &self.public())
    }

    /// The name this key cosigns under as a witness.
    pub fn witness_name(&self) -> String {
        witness_name(&self.name, &self.public())
    }
}

/// A valid note key name: no spaces, no `+`.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_whitespace() || c == '+' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `coop/<repo id, 16 hex>/<name>/<key, 8 hex>`: the log of one key in one repository.
pub fn origin(repo: &Repo, name: &str, key: &[u8; 32]) -> String {
    format!(
        "coop/{}/{}/{}",
        &repo.config.repo_id.to_hex()[..16],
        clean(name),
        &hex::encode(key)[..8]
    )
}

pub fn witness_name(name: &str, key: &[u8; 32]) -> String {
    format!("coop-witness/{}/{}", clean(name), &hex::encode(key)[..8])
}

/// The keyed tag a log entry names a tenant by: the tenant's readers and writers can
/// recompute it (they hold its ID key); a storage site cannot link entries to tenants.
pub fn tenant_tag(keys: &TenantKeys) -> String {
    let k = blake3::derive_key("coop log tenant v1", &keys.id_key);
    hex::encode(&blake3::keyed_hash(&k, &keys.tag).as_bytes()[..16])
}

fn prefix(id: &str) -> String {
    format!("log/{id}")
}

/// What the store holds of one log.
#[derive(Debug, Default)]
pub struct Stored {
    pub id: String,
    /// Size → the checkpoint note's bytes.
    pub checkpoints: BTreeMap<u64, Vec<u8>>,
    /// Size → witness key id (hex) → cosignature line.
    pub cosignatures: BTreeMap<u64, BTreeMap<String, Vec<u8>>>,
    /// Bundle paths present (below `log/<id>/`).
    pub bundles: std::collections::BTreeSet<String>,
    /// Paths below `log/<id>/` that are none of the above.
    pub strays: Vec<String>,
}

/// Lists one log's objects (no key needed).
pub fn stored(repo: &Repo, id: &str) -> Result<Stored> {
    let mut s = Stored {
        id: id.to_string(),
        ..Default::default()
    };
    let pre = format!("{}/", prefix(id));
    for o in repo.store.list(&prefix(id))? {
        let Some(rel) = o.path.strip_prefix(&pre) else {
            continue;
        };
        if let Some(n) = rel.strip_prefix("checkpoint/") {
            match n.parse::<u64>() {
                Ok(size) if size.to_string() == n => {
                    s.checkpoints
                        .insert(size, repo.store.get(&o.path)?.to_vec());
                }
                _ => s.strays.push(o.path.clone()),
            }
        } else if let Some(rest) = rel.strip_prefix("cosignature/") {
            match rest.split_once('/') {
                Some((size, kid)) if size.parse::<u64>().is_ok() && kid.len() == 8 => {
                    s.cosignatures
                        .entry(size.parse().expect("checked"))
                        .or_default()
                        .insert(kid.to_string(), repo.store.get(&o.path)?.to_vec());
                }
                _ => s.strays.push(o.path.clone()),
            }
        } else if rel.starts_with("entries/") {
            s.bundles.insert(rel.to_string());
        } else {
            s.strays.push(o.path.clone());
        }
    }
    Ok(s)
}

/// Every log id in the repository.
pub fn log_ids(repo: &Repo) -> Result<Vec<String>> {
    let mut ids: Vec<String> = repo
        .store
        .list("log")?
        .into_iter()
        .filter_map(|o| o.path.split('/').nth(1).map(str::to_string))
        .collect();
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Reads entries `0..size` from the bundles.
pub fn read_entries(repo: &Repo, id: &str, size: u64) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(size.min(1 << 20) as usize);
    let mut n = 0;
    while n * tlog::BUNDLE < size {
        let width = (size - n * tlog::BUNDLE).min(tlog::BUNDLE);
        let path = format!("{}/{}", prefix(id), tlog::bundle_path(n, width));
        let b = match repo.store.get(&path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::damaged(
                    &path,
                    format!(
                        "the log's entries {}..{} are missing",
                        n * 256,
                        n * 256 + width
                    ),
                ))
            }
            Err(e) => return Err(e.into()),
        };
        let es = tlog::decode_bundle(&b).map_err(|e| Error::damaged(&path, e))?;
        if es.len() as u64 != width {
            return Err(Error::damaged(
                &path,
                format!("holds {} entries where {width} belong", es.len()),
            ));
        }
        out.extend(es);
        n += 1;
    }
    Ok(out)
}

/// The keys whose logs and cosignatures count, and the quorum (from the admin-signed writer
/// list, and the admin keys).
#[derive(Debug, Clone, Default)]
pub struct Trusted {
    /// Origin → (log key, actor name).
    pub logs: HashMap<String, ([u8; 32], String)>,
    /// Witness name → key (the sites' writers that are not revoked).
    pub witnesses: Vec<(String, [u8; 32])>,
    pub quorum: u32,
}

pub fn trusted(repo: &Repo, admin_keys: &[[u8; 32]]) -> Result<Trusted> {
    let list = crate::writers::load(repo, admin_keys)?.list;
    let mut t = Trusted {
        quorum: list.log_quorum,
        ..Default::default()
    };
    for w in &list.writers {
        // A revoked writer's log stays readable (its entries happened), but it witnesses
        // nothing any more.
        t.logs.insert(
            origin(repo, &w.name, &w.public_key),
            (w.public_key, w.name.clone()),
        );
        if w.revoked.is_none() {
            t.witnesses
                .push((witness_name(&w.name, &w.public_key), w.public_key));
        }
    }
    for w in &list.witnesses {
        t.witnesses
            .push((witness_name(&w.name, &w.public_key), w.public_key));
    }
    for k in admin_keys {
        t.logs
            .insert(origin(repo, "admin", k), (*k, "admin".to_string()));
    }
    Ok(t)
}

impl Trusted {
    /// Valid cosignatures (distinct witnesses, never the log's own key) on a checkpoint.
    pub fn cosigners(
        &self,
        cp: &Checkpoint,
        lines: Option<&BTreeMap<String, Vec<u8>>>,
        log_key: &[u8; 32],
    ) -> Vec<String> {
        let mut out = Vec::new();
        let Some(lines) = lines else { return out };
        for (name, key) in &self.witnesses {
            if key == log_key {
                continue;
            }
            let kid = format!("{:08x}", tlog::key_id(name, key, true));
            if let Some(line) = lines.get(&kid) {
                if tlog::verify_cosignature(cp, line, name, key).is_ok() {
                    out.push(name.clone());
                }
            }
        }
        out
    }
}

fn leaves(entries: &[Vec<u8>]) -> Vec<Hash> {
    entries.iter().map(|e| tlog::leaf_hash(e)).collect()
}

/// What [`append`] did.
#[derive(Debug, Clone)]
pub struct Appended {
    pub origin: String,
    pub id: String,
    /// Index of the first new entry.
    pub first: u64,
    /// The new tree size.
    pub size: u64,
}

/// Holds this process's right to append to one log (a lock file in the cache directory).
struct AppendLock(#[allow(dead_code)] Option<nix::fcntl::Flock<std::fs::File>>);

fn append_lock(repo: &Repo, id: &str) -> Result<AppendLock> {
    let Some(cache) = repo.cache_dir() else {
        return Ok(AppendLock(None));
    };
    let dir = cache.join(repo.config.repo_id.to_hex());
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let p = dir.join(format!("log-{id}.lock"));
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, e))?;
    let l = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io(&p, std::io::Error::from(e)))?;
    Ok(AppendLock(Some(l)))
}

/// Appends entries to the actor's log in `repo` and signs the new checkpoint.
pub fn append(repo: &Repo, actor: &Actor, entries: &[Entry]) -> Result<Appended> {
    let origin = actor.origin(repo);
    let id = tlog::log_id(&origin);
    let _lock = append_lock(repo, &id)?;
    let s = stored(repo, &id)?;
    let size = s.checkpoints.keys().next_back().copied().unwrap_or(0);
    let mut all = if size > 0 {
        let note = &s.checkpoints[&size];
        let cp = tlog::open_checkpoint(note, &actor.public()).map_err(|e| {
            Error::damaged(
                format!("{}/checkpoint/{size}", prefix(&id)),
                format!("{e}; this log cannot be appended to"),
            )
        })?;
        let es = read_entries(repo, &id, size)?;
        if cp.origin != origin || tlog::root(&leaves(&es)) != cp.root {
            return Err(Error::damaged(
                format!("{}/checkpoint/{size}", prefix(&id)),
                "the log's entries do not hash to its newest checkpoint (tampered); this log cannot be appended to",
            ));
        }
        es
    } else {
        Vec::new()
    };
    for e in entries {
        let b = e.encode();
        if b.len() > tlog::MAX_ENTRY {
            return Err(Error::invalid("a log entry is longer than 65535 bytes"));
        }
        all.push(b);
    }
    let new_size = all.len() as u64;
    // Every bundle the new entries touch, under its new width.
    let mut n = size / tlog::BUNDLE;
    while n * tlog::BUNDLE < new_size {
        let start = n * tlog::BUNDLE;
        let width = (new_size - start).min(tlog::BUNDLE);
        let bytes = tlog::encode_bundle(&all[start as usize..(start + width) as usize]);
        put_new(
            repo,
            &format!("{}/{}", prefix(&id), tlog::bundle_path(n, width)),
            bytes,
        )?;
        n += 1;
    }
    let cp = Checkpoint {
        origin: origin.clone(),
        size: new_size,
        root: tlog::root(&leaves(&all)),
    };
    put_new(
        repo,
        &format!("{}/checkpoint/{new_size}", prefix(&id)),
        tlog::sign_checkpoint(&cp, &actor.key),
    )?;
    crate::fault::point("log:after-checkpoint");
    Ok(Appended {
        origin,
        id,
        first: size,
        size: new_size,
    })
}

/// Writes a log object that must not exist with other bytes (a fork otherwise).
fn put_new(repo: &Repo, path: &str, bytes: Vec<u8>) -> Result<()> {
    match repo.store.get(path) {
        Ok(old) if old[..] == bytes[..] => return Ok(()),
        Ok(_) => {
            return Err(Error::Conflict {
                what: format!(
                    "{path} already holds other bytes: another process appended to this log at the same time, \
                     or its history was rewritten; run `coop log verify`"
                ),
            })
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    repo.store.put(path, bytes)?;
    Ok(())
}

/// A new entry about `tenant` (if any), by `actor`, now.
pub fn entry(
    actor: &Actor,
    event: Event,
    tenant: Option<&TenantKeys>,
    reason: Option<Reason>,
    object: Option<String>,
) -> Entry {
    Entry {
        ty: tlog::ENTRY_TYPE.into(),
        time: crate::now_rfc3339(),
        event,
        actor: hex::encode(actor.public()),
        actor_name: actor.name.clone(),
        tenant: tenant.map(tenant_tag),
        reason,
        object,
        data: Default::default(),
        detail: None,
    }
}

/// Records one event in the caller's log; a failure is returned for the caller to report
/// (a backup that succeeded stays done).
pub fn record(
    repo: &Repo,
    keys: &TenantKeys,
    event: Event,
    reason: Option<Reason>,
    object: Option<String>,
) -> Result<Option<Appended>> {
    let Some(actor) = Actor::logging(keys) else {
        return Ok(None);
    };
    append(
        repo,
        &actor,
        &[entry(&actor, event, Some(keys), reason, object)],
    )
    .map(Some)
}

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
    record_deletions_replaced(repo, keys, event, paths, &[])
}

/// Like [`record_deletions`], for a prune that wrote `replaced_by` (the packs it repacked the
/// deleted packs' live blobs into, and the index objects that replace the deleted ones) before
/// deleting: a snapshot whose inventory names a deleted object needs these instead (replicas
/// resolve inventories through them, SPEC section 24.9). The entries of one run share a `run`
/// value; the replacements have entries of their own.
pub fn record_deletions_replaced(
    repo: &Repo,
    keys: &TenantKeys,
    event: Event,
    paths: &[String],
    replaced_by: &[String],
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
    let entries: Vec<Entry> = replaced_by
        .chunks(PATHS_PER_ENTRY)
        .map(|chunk| make(" written in their place", chunk, "replaced_by"))
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
    /// Store path → the earliest entry time (Unix seconds).
    pub at: HashMap<String, i64>,
    /// Store path → the runs that deleted it.
    runs: HashMap<String, Vec<String>>,
    /// Run → what it wrote in place of what it deleted.
    replaced_by: HashMap<String, Vec<String>>,
}

impl Deletions {
    pub fn get(&self, path: &str) -> Option<&i64> {
        self.at.get(path)
    }

    /// What a snapshot whose inventory names `needs` needs now: each object that is not
    /// `present` and that an admin logged as deleted stands for what that deletion's run wrote
    /// in its place (again resolved, for a later prune), and an object nobody logged stays
    /// needed as it is.
    pub fn resolve(&self, needs: &[String], present: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut todo: Vec<String> = needs.to_vec();
        while let Some(p) = todo.pop() {
            if !seen.insert(p.clone()) {
                continue;
            }
            match self.runs.get(&p) {
                Some(runs) if !present(&p) => {
                    for r in runs {
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

/// Deletions an admin recorded in the verified logs of `contents`.
pub fn recorded_deletions(contents: &[LogContent], trusted: &Trusted) -> Deletions {
    let mut out = Deletions::default();
    for c in contents {
        // Only admin logs: a writer key cannot make replicas delete anything.
        if trusted
            .logs
            .get(&c.origin)
            .is_none_or(|(_, name)| name != "admin")
        {
            continue;
        }
        for b in &c.entries {
            let Ok(e) = Entry::decode(b) else { continue };
            if !matches!(e.event, Event::Delete | Event::Forget) {
                continue;
            }
            let Ok(t) = chrono::DateTime::parse_from_rfc3339(&e.time) else {
                continue;
            };
            let t = t.timestamp();
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

/// Waits until a checkpoint of at least `min_size` entries of log `id` carries `quorum`
/// valid cosignatures of other sites. Returns the cosigners.
pub fn wait_for_quorum(
    repo: &Repo,
    appended: &Appended,
    log_key: &[u8; 32],
    trusted: &Trusted,
    timeout: Duration,
) -> Result<Vec<String>> {
    if trusted.quorum == 0 {
        return Ok(Vec::new());
    }
    let started = Instant::now();
    loop {
        let s = stored(repo, &appended.id)?;
        let mut best = Vec::new();
        for (size, note) in s.checkpoints.range(appended.size..) {
            let Ok(cp) = tlog::open_checkpoint(note, log_key) else {
                continue;
            };
            let c = trusted.cosigners(&cp, s.cosignatures.get(size), log_key);
            if c.len() as u32 >= trusted.quorum {
                return Ok(c);
            }
            if c.len() > best.len() {
                best = c;
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::LogQuorum {
                have: best.len() as u32,
                need: trusted.quorum,
                waited_secs: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500).min(timeout));
    }
}

/// What a witness run did.
#[derive(Debug, Default, serde::Serialize)]
pub struct WitnessReport {
    /// (origin, size) cosigned now.
    pub cosigned: Vec<(String, u64)>,
    /// Logs already cosigned at their newest size.
    pub unchanged: u64,
    /// Rollbacks, forks, bad signatures: never cosigned.
    pub alarms: Vec<String>,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WitnessState {
    /// Origin → (size, base64 root) last cosigned.
    logs: BTreeMap<String, (u64, String)>,
}

/// The admin keys of a repository this client holds no key of (a witness, a replicator
/// following deletions): pinned the first time (the signer of its newest writer list then),
/// in `<cache>/<repo id>/admin-pins.json`, and required ever after.
pub fn pinned_admin_keys(repo: &Repo) -> Result<Vec<[u8; 32]>> {
    let path = repo
        .cache_dir()
        .map(|c| c.join(repo.config.repo_id.to_hex()).join("admin-pins.json"))
        .ok_or_else(|| {
            Error::invalid("pinning a repository's admin key needs a cache directory (--cache-dir)")
        })?;
    if let Ok(b) = std::fs::read(&path) {
        let keys: Vec<String> = serde_json::from_slice(&b)
            .map_err(|e| Error::damaged(path.display().to_string(), e.to_string()))?;
        return keys
            .iter()
            .map(|k| {
                hex::decode(k)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        Error::damaged(path.display().to_string(), "a pinned key is not hex")
                    })
            })
            .collect();
    }
    let mut best: Option<(u64, [u8; 32])> = None;
    for obj in repo.list(crate::layout::Kind::Writers, &[0; 16])? {
        let Ok(Some(b)) = repo.get_opt(crate::layout::Kind::Writers, &[0; 16], &obj.name) else {
            continue;
        };
        if let Ok((l, signer)) = coop_formats::writers::WriterList::open(&b, |_| true) {
            if l.repo_id == repo.config.repo_id && best.is_none_or(|(g, _)| l.generation > g) {
                best = Some((l.generation, signer));
            }
        }
    }
    let (_, admin) = best.ok_or_else(|| Error::NotFound {
        what:
            "a writer list in this repository (nothing says whose logs to trust; give --admin KEY)"
                .into(),
    })?;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    std::fs::write(
        &path,
        serde_json::to_vec(&[hex::encode(admin)]).expect("serializes"),
    )
    .map_err(|e| Error::io(&path, e))?;
    Ok(vec![admin])
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

fn b64(h: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
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
    for id in log_ids(repo)? {
        let s = stored(repo, &id)?;
        let Some((&size, note)) = s.checkpoints.iter().next_back() else {
            continue;
        };
        let body = match signed_body(note) {
            Ok(b) => b,
            Err(e) => {
                rep.alarms.push(format!("log/{id}/checkpoint/{size}: {e}"));
                continue;
            }
        };
        let Some((key, _)) = trusted.logs.get(&body.origin) else {
            rep.alarms.push(format!(
                "log/{id}: origin {} is no known writer or admin of this repository",
                body.origin
            ));
            continue;
        };
        if *key == me.public() || tlog::log_id(&body.origin) != id {
            if *key != me.public() {
                rep.alarms
                    .push(format!("log/{id}: holds the checkpoints of another log"));
            }
            continue;
        }
        let cp = match tlog::open_checkpoint(note, key) {
            Ok(cp) => cp,
            Err(e) => {
                rep.alarms.push(format!("log/{id}/checkpoint/{size}: {e}"));
                continue;
            }
        };
        let entries = match read_entries(repo, &id, size) {
            Ok(e) => e,
            Err(e) => {
                rep.alarms.push(crate::error::chain(&e));
                continue;
            }
        };
        let hashes = leaves(&entries);
        if tlog::root(&hashes) != cp.root {
            rep.alarms.push(format!(
                "log/{id}/checkpoint/{size}: the entries do not hash to the signed root (tampered)"
            ));
            continue;
        }
        if let Some((seen, seen_root)) = state.logs.get(&cp.origin) {
            if size < *seen {
                rep.alarms.push(format!(
                    "ROLLBACK: the log {} shows {size} entries; this witness cosigned {seen}",
                    cp.origin
                ));
                continue;
            }
            if b64(&tlog::root(&hashes[..*seen as usize])) != *seen_root {
                rep.alarms.push(format!(
                    "FORK: the log {} no longer holds the {seen} entries this witness cosigned",
                    cp.origin
                ));
                continue;
            }
        }
        if s.cosignatures
            .get(&size)
            .is_some_and(|c| c.contains_key(&my_kid))
        {
            rep.unchanged += 1;
            continue;
        }
        state.logs.insert(cp.origin.clone(), (size, b64(&cp.root)));
        save_witness_state(&state_path, &state)?;
        let line = tlog::cosign(&cp, &my_name, &me.key, crate::now_unix().max(0) as u64);
        repo.store.put(
            &format!("{}/cosignature/{size}/{my_kid}", prefix(&id)),
            line,
        )?;
        rep.cosigned.push((cp.origin, size));
    }
    Ok(rep)
}

/// The body of a signed note, without checking the signature (to find the origin).
fn signed_body(note: &[u8]) -> std::result::Result<Checkpoint, tlog::LogError> {
    let text_end =
        note.windows(2)
            .rposition(|w| w == b"\n\n")
            .ok_or(tlog::LogError::Checkpoint {
                reason: "not a signed note".into(),
            })?;
    Checkpoint::parse_body(&note[..text_end + 1])
}

/// One log as [`verify`] saw it.
#[derive(Debug, serde::Serialize)]
pub struct LogSummary {
    pub origin: String,
    pub actor: String,
    pub size: u64,
    pub checkpoints: usize,
    /// Witnesses whose cosignature on the newest cosigned checkpoint verifies.
    pub cosigned_by: Vec<String>,
    /// The largest size carrying the quorum (None: none does).
    pub witnessed_size: Option<u64>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct VerifyReport {
    pub logs: Vec<LogSummary>,
    pub entries: u64,
    pub quorum: u32,
    pub problems: Vec<Problem>,
}

/// Decoded entries of one log, with what proves them.
pub struct LogContent {
    pub id: String,
    pub origin: String,
    pub entries: Vec<Vec<u8>>,
    pub stored: Stored,
    pub key: [u8; 32],
}

/// Checks every log of the repository (see the module docs).
pub fn verify(repo: &Repo, trusted: &Trusted) -> Result<(VerifyReport, Vec<LogContent>)> {
    let mut rep = VerifyReport {
        quorum: trusted.quorum,
        ..Default::default()
    };
    let mut contents = Vec::new();
    for id in log_ids(repo)? {
        let s = stored(repo, &id)?;
        for p in &s.strays {
            rep.problems.push(Problem::damaged(
                p,
                "not a log object (stray or damaged name)",
            ));
        }
        let Some((&size, note)) = s.checkpoints.iter().next_back() else {
            if !s.bundles.is_empty() {
                rep.problems.push(Problem::damaged(
                    &prefix(&id),
                    "entries without any checkpoint (checkpoints deleted?)",
                ));
            }
            continue;
        };
        let body = match signed_body(note) {
            Ok(b) => b,
            Err(e) => {
                rep.problems.push(Problem::damaged(
                    &format!("{}/checkpoint/{size}", prefix(&id)),
                    e,
                ));
                continue;
            }
        };
        let Some((key, actor)) = trusted.logs.get(&body.origin).cloned() else {
            rep.problems.push(Problem::forged(
                &format!("{}/checkpoint/{size}", prefix(&id)),
                format!(
                    "origin {} is no known writer or admin of this repository",
                    body.origin
                ),
            ));
            continue;
        };
        if tlog::log_id(&body.origin) != id {
            rep.problems.push(Problem::forged(
                &format!("{}/checkpoint/{size}", prefix(&id)),
                "a checkpoint of another log",
            ));
            continue;
        }
        let entries = match read_entries(repo, &id, size) {
            Ok(e) => e,
            Err(e) => {
                rep.problems
                    .push(Problem::damaged(&prefix(&id), crate::error::chain(&e)));
                continue;
            }
        };
        let hashes = leaves(&entries);
        let mut ok = true;
        let mut witnessed = None;
        let mut cosigned_by = Vec::new();
        for (sz, note) in &s.checkpoints {
            let path = format!("{}/checkpoint/{sz}", prefix(&id));
            match tlog::open_checkpoint(note, &key) {
                Ok(cp) if cp.origin != body.origin || cp.size != *sz => {
                    rep.problems
                        .push(Problem::forged(&path, "names another log or size"));
                    ok = false;
                }
                Ok(cp) if *sz > size || tlog::root(&hashes[..*sz as usize]) != cp.root => {
                    rep.problems.push(Problem::damaged(
                        &path,
                        "the entries do not hash to this checkpoint's root (changed, deleted or reordered entries, or a fork)",
                    ));
                    ok = false;
                }
                Ok(cp) => {
                    let c = trusted.cosigners(&cp, s.cosignatures.get(sz), &key);
                    if c.len() as u32 >= trusted.quorum.max(1) {
                        witnessed = Some(*sz);
                        cosigned_by = c;
                    } else if !c.is_empty() && witnessed.is_none() {
                        cosigned_by = c;
                    }
                }
                Err(e) => {
                    rep.problems.push(Problem::forged(&path, e));
                    ok = false;
                }
            }
        }
        for (sz, lines) in &s.cosignatures {
            if !s.checkpoints.contains_key(sz) {
                rep.problems.push(Problem::damaged(
                    &format!("{}/cosignature/{sz}", prefix(&id)),
                    "cosignatures of a checkpoint that is not there (deleted?)",
                ));
                continue;
            }
            if let Ok(cp) = tlog::open_checkpoint(&s.checkpoints[sz], &key) {
                let valid = trusted.cosigners(&cp, Some(lines), &key);
                if valid.len() < lines.len() {
                    rep.problems.push(Problem::forged(
                        &format!("{}/cosignature/{sz}", prefix(&id)),
                        format!(
                            "{} of {} cosignatures do not verify against a known witness",
                            lines.len() - valid.len(),
                            lines.len()
                        ),
                    ));
                }
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if let Err(err) = Entry::decode(e) {
                rep.problems
                    .push(Problem::damaged(&format!("{} entry {i}", prefix(&id)), err));
                ok = false;
            }
        }
        if ok {
            let alarm = crate::state::observe_log(
                repo.cache_dir(),
                &repo.config.repo_id,
                &repo.store.location(),
                &body.origin,
                size,
                &b64(&tlog::root(&hashes)),
                |old, old_root| {
                    old <= size && b64(&tlog::root(&hashes[..old as usize])) == old_root
                },
            );
            if let Some(a) = alarm {
                rep.problems.push(Problem::damaged(&prefix(&id), a));
            }
        }
        rep.entries += size;
        rep.logs.push(LogSummary {
            origin: body.origin.clone(),
            actor,
            size,
            checkpoints: s.checkpoints.len(),
            cosigned_by,
            witnessed_size: witnessed,
        });
        contents.push(LogContent {
            id,
            origin: body.origin,
            entries,
            stored: s,
            key,
        });
    }
    Ok((rep, contents))
}

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

/// Every entry about `tenant_tag` (a keyed tag, see [`tenant_tag`]), each proven against
/// the newest checkpoint of its log that carries the most cosignatures.
pub fn entries_about(
    contents: &[LogContent],
    trusted: &Trusted,
    tenant_tag: &str,
) -> Vec<ProvenEntry> {
    use base64::Engine;
    let b64e = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = Vec::new();
    for c in contents {
        let hashes = leaves(&c.entries);
        // The checkpoint to prove against: the newest one with the most cosignatures.
        let mut best: Option<(u64, usize)> = None;
        for (sz, note) in &c.stored.checkpoints {
            if let Ok(cp) = tlog::open_checkpoint(note, &c.key) {
                let n = trusted
                    .cosigners(&cp, c.stored.cosignatures.get(sz), &c.key)
                    .len();
                if best.is_none_or(|(_, m)| n >= m) {
                    best = Some((*sz, n));
                }
            }
        }
        let Some((size, _)) = best else { continue };
        let mut note = c.stored.checkpoints[&size].clone();
        if let Some(lines) = c.stored.cosignatures.get(&size) {
            for l in lines.values() {
                note.extend_from_slice(l);
            }
        }
        let note = String::from_utf8_lossy(&note).into_owned();
        for (i, e) in c.entries.iter().enumerate().take(size as usize) {
            let Ok(entry) = Entry::decode(e) else {
                continue;
            };
            if entry.tenant.as_deref() != Some(tenant_tag) {
                continue;
            }
            out.push(ProvenEntry {
                origin: c.origin.clone(),
                log_key: hex::encode(c.key),
                index: i as u64,
                entry: serde_json::to_value(&entry).expect("serializes"),
                leaf: b64e(e),
                proof: tlog::inclusion_proof(&hashes[..size as usize], i)
                    .iter()
                    .map(|h| b64e(h))
                    .collect(),
                checkpoint: note.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repo, Actor) {
        let d = tempfile::tempdir().unwrap();
        let (_, r) = coop_formats::crypt::generate_identity();
        let (mut repo, _) = Repo::init(
            d.path().join("r").to_str().unwrap(),
            vec![r],
            crate::now_rfc3339(),
        )
        .unwrap();
        repo.cache_dir = Some(d.path().join("cache"));
        let actor = Actor {
            name: "admin".into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        };
        (d, repo, actor)
    }

    fn e(actor: &Actor, i: usize) -> Entry {
        let mut x = entry(actor, Event::Backup, None, None, Some(format!("{i:064x}")));
        x.tenant = Some(hex::encode([i as u8; 16]));
        x
    }

    #[test]
    fn appends_across_bundles_verify_and_prove() {
        let (_d, repo, actor) = repo();
        for batch in [1usize, 254, 3, 300] {
            let es: Vec<Entry> = (0..batch).map(|i| e(&actor, i)).collect();
            append(&repo, &actor, &es).unwrap();
        }
        let t = trusted(&repo, &[actor.public()]).unwrap();
        let (rep, contents) = verify(&repo, &t).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        assert_eq!(rep.entries, 558);
        let proven = entries_about(&contents, &t, &hex::encode([7u8; 16]));
        assert!(!proven.is_empty());
        for p in &proven {
            assert_eq!(verify_proven(p, &t.witnesses), Ok(vec![]));
        }
    }

    /// Figures for the note: `cargo test -p coop-agent --release log::tests::figures -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn figures() {
        let (d, repo, actor) = repo();
        let n = 100_000;
        let t0 = std::time::Instant::now();
        for b in 0..100 {
            let es: Vec<Entry> = (0..n / 100).map(|i| e(&actor, b * 1000 + i)).collect();
            append(&repo, &actor, &es).unwrap();
        }
        let appended = t0.elapsed();
        let bytes: u64 = walk(&d.path().join("r/log"));
        let t = trusted(&repo, &[actor.public()]).unwrap();
        let t1 = std::time::Instant::now();
        let (rep, _) = verify(&repo, &t).unwrap();
        assert!(rep.problems.is_empty());
        println!(
            "{n} entries in 100 appends: {:.1} s; {} bytes stored ({:.0} bytes per entry, all partial bundles and checkpoints included); verify {:.2} s",
            appended.as_secs_f64(),
            bytes,
            bytes as f64 / n as f64,
            t1.elapsed().as_secs_f64()
        );
    }

    fn walk(p: &std::path::Path) -> u64 {
        let mut n = 0;
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            n += if m.is_dir() { walk(&e.path()) } else { m.len() };
        }
        n
    }
}
