//! Backup: walk → chunk → keyed hash → dedup → compress → pack → encrypt → store,
//! then index objects, then the signed snapshot.
//!
//! - [`walker`]: reading the sources through directory descriptors, the catalog, trees.
//! - [`pipeline`]: the sink (what is new) and the workers (compress, pack, encrypt, store).
//! - [`source_command`]: commands whose output is backed up.
//! - [`commit`]: the checks before the snapshot is written, and the snapshot itself.
//!
//! # Pipeline
//! The calling thread walks the sources, reads files, chunks them (FastCDC) and hashes
//! every chunk (keyed BLAKE3). Those three are fast (GB/s) and need the chunk order, so
//! they stay on one thread. New blobs go over a bounded channel to one worker per core,
//! which compresses into its own pack and encrypts it with age as blobs arrive; a full
//! pack is stored on a thread of its own while the worker fills the next (as many at once as
//! half the workers; beyond that a worker stores its pack itself).
//! Buffers travel back to the walker through a pool, so steady state allocates nothing.
//!
//! # Crash safety
//! Order is packs → index objects → snapshot. An index object is written after every
//! few packs, so an interrupted backup leaves indexed packs that the next run reuses, and
//! no snapshot. A snapshot is written only after every pack and index it needs is stored.

mod commit;
mod idset;
mod pipeline;
mod source_command;
mod walker;

pub use source_command::{DirCommand, SourceCommand};

use crate::catalog::Catalog;
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::fsx;
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::patterns::Patterns;
use crate::progress::Progress;
use crate::repo::Repo;
use coop_formats::id::Id;
use coop_formats::snapshot::{Snapshot, Summary};
use coop_formats::tree::check_name;
use pipeline::Pipeline;
use std::collections::{HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;
use walker::{Trie, WalkOptions, Walker};

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub one_file_system: bool,
    /// Skip the contents of directories that hold a valid CACHEDIR.TAG.
    pub exclude_caches: bool,
    /// Directories at or below which a CACHEDIR.TAG is not honoured (anyone who can write
    /// there could otherwise hide everyone's files from the backup).
    pub ignore_cachedir_tag_below: Vec<PathBuf>,
    /// Commands whose standard output is stored as a file at the snapshot root.
    pub commands: Vec<SourceCommand>,
    /// Commands that write a directory, stored at the snapshot root.
    pub dir_commands: Vec<DirCommand>,
    pub tags: Vec<String>,
    pub host: String,
    /// Where the catalog lives; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Build and sign a per-file manifest (member tenants, for `coop export`/`verify`).
    pub manifest: bool,
    /// Refuse to commit if the tenant's stored bytes would exceed this.
    pub quota: Option<u64>,
    /// Refuse to commit if the stored bytes of the member's group would exceed its quota.
    pub group: Option<crate::groups::GroupLimit>,
}

/// The result of a backup.
#[derive(Debug)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    pub warnings: Vec<String>,
    /// Every directory whose contents were left out because it holds a CACHEDIR.TAG.
    pub excluded_caches: Vec<String>,
    /// The snapshot is written, but its access log entry could not be (the store failed
    /// then): reported, not a reason to fail the backup.
    pub log_warning: Option<String>,
    pub packs_written: u64,
    pub index_objects_written: u64,
}

/// The outcome as `coop backup --json` shows it: the snapshot's ID (and short ID), tenant,
/// time and summary, the left-out caches counted, and the rest as it is.
impl serde::Serialize for BackupOutcome {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Caches<'a> {
            count: usize,
            paths: &'a [String],
        }
        #[derive(serde::Serialize)]
        struct Shown<'a> {
            snapshot_id: String,
            short_id: String,
            tenant: &'a str,
            time: &'a str,
            summary: &'a coop_formats::snapshot::Summary,
            warnings: &'a [String],
            excluded_caches: Caches<'a>,
            log_warning: &'a Option<String>,
            packs_written: u64,
            index_objects_written: u64,
        }
        Shown {
            snapshot_id: self.id.to_hex(),
            short_id: self.id.short(),
            tenant: &self.snapshot.tenant,
            time: &self.snapshot.time,
            summary: &self.snapshot.summary,
            warnings: &self.warnings,
            excluded_caches: Caches {
                count: self.excluded_caches.len(),
                paths: &self.excluded_caches,
            },
            log_warning: &self.log_warning,
            packs_written: self.packs_written,
            index_objects_written: self.index_objects_written,
        }
        .serialize(ser)
    }
}

/// The sources, checked before anything is written.
struct Sources {
    trie: Trie,
    /// Absolute paths as recorded in the snapshot.
    paths: Vec<String>,
    /// The same, with the export root a path marks (`/./`) kept: the manifest's `sources`.
    marked: Vec<String>,
    excludes: Patterns,
}

/// `abs` (the normalized form of `p`) with the export root `p` marks: the first `.`
/// component that is not `p`'s first (`/var/lib/prosody/HOST/./accounts/alice.dat`, as
/// rsync's `--relative` reads it) becomes `/./` at the same place in `abs`. A path with
/// `..` in it, or a mark with nothing after it, marks nothing.
fn mark_export_root(p: &Path, abs: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let plain = abs.to_string_lossy().into_owned();
    let raw: Vec<&[u8]> = p.as_os_str().as_bytes().split(|b| *b == b'/').collect();
    let Some(at) = raw.iter().skip(1).position(|c| *c == b".").map(|i| i + 1) else {
        return plain;
    };
    if raw.contains(&&b".."[..]) {
        return plain;
    }
    let after = raw[at + 1..]
        .iter()
        .filter(|c| !c.is_empty() && **c != b".")
        .count();
    let normal: Vec<String> = abs
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    if after == 0 || after > normal.len() {
        return plain;
    }
    let (root, kept) = normal.split_at(normal.len() - after);
    let mut out = String::from("/");
    for c in root {
        out.push_str(c);
        out.push('/');
    }
    out.push_str("./");
    out.push_str(&kept.join("/"));
    out
}

impl Sources {
    fn resolve(opts: &BackupOptions) -> Result<Self> {
        if opts.paths.is_empty() && opts.commands.is_empty() && opts.dir_commands.is_empty() {
            return Err(Error::NothingToBackUp);
        }
        let root_names = opts
            .commands
            .iter()
            .map(|c| &c.filename)
            .chain(opts.dir_commands.iter().map(|c| &c.dirname));
        for name in root_names {
            check_name(name.as_bytes()).map_err(|r| {
                Error::invalid(format!(
                    "command output name {name:?} is not a valid file name ({r})"
                ))
            })?;
        }
        // A missing path is an error before anything is written.
        let mut trie = Trie::default();
        let mut paths = Vec::new();
        let mut marked = Vec::new();
        for p in &opts.paths {
            let abs = walker::absolute(p)?;
            marked.push(mark_export_root(p, &abs));
            let rel = abs.strip_prefix("/").unwrap_or(&abs);
            if !rel.as_os_str().is_empty() {
                let root = fsx::open_root().map_err(|e| Error::io("/", e))?;
                let (parent, name) =
                    fsx::open_parent(root.as_fd(), rel).map_err(|e| Error::io(&abs, e))?;
                fsx::lstat_at(parent.as_fd(), name).map_err(|e| Error::io(&abs, e))?;
            }
            paths.push(abs.to_string_lossy().into_owned());
            let mut t = &mut trie;
            for c in abs.components() {
                if let Component::Normal(n) = c {
                    t = t.children.entry(n.to_os_string()).or_default();
                }
            }
            t.target = true;
        }
        if trie.target && !(opts.commands.is_empty() && opts.dir_commands.is_empty()) {
            return Err(Error::invalid(
                "command output cannot be combined with backing up / itself",
            ));
        }
        let mut patterns = opts.excludes.clone();
        patterns.extend(crate::patterns::read_files(&opts.exclude_files)?);
        Ok(Self {
            trie,
            paths,
            marked,
            excludes: Patterns::new(&patterns)?,
        })
    }
}

/// The tenant's index as a backup may deduplicate against: without packs a prune plan
/// condemned and without packs the store does not have (an index object written by a
/// backup that lost a race with prune can list one).
fn dedup_index(repo: &Repo, keys: &TenantKeys) -> Result<Index> {
    let (mut index, stored) = crate::index::load_with_packs(repo, keys)?;
    index.remove_packs(&crate::control::condemned_packs(repo, keys)?);
    let vanished: HashSet<Id> = index
        .packs
        .iter()
        .map(|p| p.id)
        .filter(|p| !stored.contains(p))
        .collect();
    index.remove_packs(&vanished);
    Ok(index)
}

/// Runs one backup into the tenant of `keys`.
pub fn backup(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    let sources = Sources::resolve(opts)?;
    // The lock first, then the plans: a prune that condemns packs after this point sees
    // our lock and waits; packs condemned before it are not used for deduplication.
    let lock = crate::lock::acquire(repo, keys, coop_formats::control::LockKind::Backup)?;
    check_quotas(repo, keys, opts)?;
    progress.phase("index", None);
    let index = dedup_index(repo, keys)?;
    progress.finish();
    crate::fault::pause("backup:after-index-load");
    let catalog = match &opts.cache_dir {
        Some(d) => Some(Catalog::open(d, &repo.config.repo_id, &keys.tenant)?),
        None => None,
    };
    let (pipeline, sink) = Pipeline::start(repo, keys, &index, crate::workers(opts.workers));
    let mut walker = new_walker(repo, keys, opts, &sources, catalog, sink, progress)?;
    // The total is what the last backups of these paths read (unknown the first time).
    let estimate = walker.catalog.as_ref().and_then(|c| {
        let paths: Vec<Vec<u8>> = sources
            .paths
            .iter()
            .map(|p| p.as_bytes().to_vec())
            .collect();
        c.estimate(&paths).ok().filter(|n| *n > 0)
    });
    progress.phase("backup", estimate);
    let walked = walk(&mut walker, &sources, opts);
    let outputs: Vec<String> = opts
        .commands
        .iter()
        .map(|c| format!("/{}", c.filename))
        .chain(opts.dir_commands.iter().map(|c| format!("/{}", c.dirname)))
        .collect();
    let mut paths = sources.paths.clone();
    paths.extend(outputs.iter().cloned());
    // The manifest's sources keep the export roots the paths mark (SPEC 16.2).
    let mut marked = sources.marked.clone();
    marked.extend(outputs);
    let manifest = match &walked {
        Ok(root) => commit::manifest_blob(&mut walker, repo, keys, &opts.host, root, &marked),
        Err(_) => Ok(None),
    };
    let written = pipeline.finish(&mut walker.sink, walked.is_ok() && manifest.is_ok());
    progress.finish();
    let written = written?;
    let root = walked?;
    let manifest = manifest?;
    check_commit(repo, keys, opts, &index, &walker.sink.reused, &written)?;
    crate::fault::point("backup:before-snapshot");
    let mut summary = std::mem::take(&mut walker.summary);
    summary.blobs_added = walker.sink.blobs_added;
    summary.bytes_added = walker.sink.bytes_added;
    summary.bytes_stored = written.bytes_stored;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let inv = commit::inventory(&index, &walker.sink.reused, &written);
    let (id, snapshot) =
        commit::write_snapshot(repo, keys, opts, paths, root, summary, manifest, &inv)?;
    drop(lock);
    let log_warning = log_backup(repo, keys, &id);
    if let Some(c) = &mut walker.catalog {
        if let Err(e) = c.commit() {
            walker.warnings.push(format!(
                "catalog not updated (next run will re-read files): {e}"
            ));
        }
    }
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings: walker.warnings,
        excluded_caches: walker.excluded_caches,
        log_warning,
        packs_written: written.packs.len() as u64,
        index_objects_written: written.index.len() as u64,
    })
}

/// Refuses before uploading anything when the tenant (or its group) is at its quota already.
fn check_quotas(repo: &Repo, keys: &TenantKeys, opts: &BackupOptions) -> Result<()> {
    if let Some(quota) = opts.quota {
        // Refuse before uploading anything when the tenant is at its quota already.
        let used: u64 = repo
            .list(crate::layout::Kind::Pack, &keys.tag)?
            .iter()
            .map(|o| o.size)
            .sum();
        if used >= quota {
            return Err(Error::Quota {
                tenant: keys.tenant.clone(),
                used,
                quota,
            });
        }
    }
    if let Some(g) = &opts.group {
        crate::groups::check(g, crate::groups::used(repo, g)?, false)?;
    }
    Ok(())
}

/// The walker of this backup, writing into `sink`.
fn new_walker<'a, 'p>(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &BackupOptions,
    sources: &Sources,
    catalog: Option<Catalog>,
    sink: pipeline::Sink<'a>,
    progress: &'p dyn Progress,
) -> Result<Walker<'a, 'p>> {
    Ok(Walker {
        chunker: Chunker::new(&repo.config.chunker, keys.chunker_seed()),
        sink,
        catalog,
        opts: WalkOptions {
            excludes: sources.excludes.clone(),
            one_file_system: opts.one_file_system,
            exclude_caches: opts.exclude_caches,
            cachedir_tag_ignored_below: opts
                .ignore_cachedir_tag_below
                .iter()
                .map(|p| walker::absolute(p))
                .collect::<Result<_>>()?,
        },
        progress,
        summary: Summary::default(),
        warnings: Vec::new(),
        excluded_caches: Vec::new(),
        link_groups: HashMap::new(),
        users: HashMap::new(),
        groups: HashMap::new(),
        file_hasher: None,
        manifest: opts.manifest.then(Vec::new),
    })
}

/// What this backup wrote must still fit the quotas (and the packs it reuses still be there)
/// before its snapshot is written; refused for its quota, what it stored is removed (it
/// would only count against the tenant).
fn check_commit(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &BackupOptions,
    index: &Index,
    reused: &HashSet<u32>,
    written: &pipeline::Written,
) -> Result<()> {
    if let Err(e) = commit::check_before_commit(repo, keys, index, reused, written, opts.quota)
        .and_then(|()| match &opts.group {
            Some(g) => crate::groups::check(g, crate::groups::used(repo, g)?, true),
            None => Ok(()),
        })
    {
        if matches!(e, Error::Quota { .. } | Error::GroupQuota { .. }) {
            // Refused for its quota: what this backup stored would only count against it.
            commit::remove_written(repo, keys, written);
        }
        return Err(e);
    }
    Ok(())
}

/// Logs the backup; a warning if the entry could not be written.
fn log_backup(repo: &Repo, keys: &TenantKeys, id: &Id) -> Option<String> {
    crate::log::record(
        repo,
        keys,
        coop_formats::tlog::Event::Backup,
        None,
        Some(id.to_hex()),
    )
    .err()
    .map(|e| {
        format!(
            "the backup is done, but its access log entry could not be written: {}",
            crate::error::chain(&e)
        )
    })
}

/// Walks every source into the root tree.
fn walk(walker: &mut Walker, sources: &Sources, opts: &BackupOptions) -> Result<Id> {
    let root = fsx::open_root().map_err(|e| Error::io("/", e))?;
    if sources.trie.target {
        // "/" itself is a source.
        let dev = fsx::fstat(root.as_fd()).map_err(|e| Error::io("/", e))?.dev;
        return walker.walk_dir(root, Path::new("/"), dev);
    }
    let mut extra = Vec::new();
    for c in &opts.commands {
        extra.push(walker.stdin_node(c)?);
    }
    for c in &opts.dir_commands {
        extra.push(walker.dir_command_node(c)?);
    }
    walker.virtual_dir(root.as_fd(), Path::new("/"), &sources.trie, extra)
}
