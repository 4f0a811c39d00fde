//! Restore: recreate a snapshot (or part of it) under a target directory.
//!
//! - [`plan`]: which entries, after includes and excludes.
//! - [`write`]: reading each needed pack once and writing blobs at their offsets.
//! - [`prefetch`]: from a remote store, the first packs fetched while the files are created.
//!
//! Order: directories, then files (created sparse at their size), then contents (each pack
//! once, in parallel; a finished file gets its metadata through the descriptor that wrote
//! it), then hard links, symlinks and special files, then directory metadata, deepest first.
//!
//! Safety against someone who can write into the target while root restores: the target is
//! opened without following symlinks in any component, and every entry below it is reached
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or one `O_NOFOLLOW` open per
//! component) and changed through a descriptor (see [`crate::fsx`]). Whatever is swapped in
//! fails that entry; nothing outside the target is written or changed. Names were validated
//! when their tree was decoded (no `/`, `..`, NUL). FIFOs and device nodes are made with
//! `mknodat` and never opened.

mod entries;
mod plan;
mod prefetch;
mod write;

use crate::error::{Error, Result};
use crate::fsx;
use crate::index::Loc;
use crate::patterns::Patterns;
use crate::progress::Progress;
use crate::read::BlobReader;
use coop_formats::id::{BlobType, Id};
use coop_formats::tree::{NodeKind, Part};
use entries::{
    by_pack, create_files, dir_metadata, finish_entries, hard_links, make_dirs, remove_failed,
};
use nix::fcntl::OFlag;
use prefetch::Prefetched;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only paths matching one of these patterns (and what is below them).
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Restore ownership, and device nodes (default: when running as root).
    pub owner: bool,
    pub workers: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Bytes read from the store for the data (whole packs, or ranges of them).
    pub fetched_bytes: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// FIFOs and device nodes created.
    pub special: u64,
    pub bytes: u64,
    /// Files that could not be restored, with the reason. They are not left behind.
    #[serde(serialize_with = "failures")]
    pub failed: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

/// The failed files as `{"path", "error"}` objects.
fn failures<S: serde::Serializer>(
    failed: &[(String, String)],
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Failure<'a> {
        path: &'a str,
        error: &'a str,
    }
    s.collect_seq(failed.iter().map(|(path, error)| Failure { path, error }))
}

/// What to restore: a tree, or a single node.
pub use crate::read::Found as RestoreRoot;

/// How many packs are read at once: one per core from a local store; from a remote one at
/// least `REMOTE_PACK_READERS`, so that the line stays busy while packs are decrypted and
/// written (each holds one pack's stored bytes, at most 16 MiB by default).
fn pack_readers(reader: &BlobReader, requested: usize) -> usize {
    let n = crate::workers(requested);
    if requested == 0 && !reader.repo.store.is_local() {
        n.max(REMOTE_PACK_READERS)
    } else {
        n
    }
}

const REMOTE_PACK_READERS: usize = 4;

/// Entries restored per batch. A restore holds the plan of one batch (its entries, where
/// each blob goes, the blobs grouped by pack), plus one record per directory (its metadata
/// is set at the end, deepest first) and per hard-linked file: not one per file.
#[cfg(not(test))]
const BATCH: usize = 1 << 15;
/// Small in unit tests: a snapshot of a few files spans batches.
#[cfg(test)]
const BATCH: usize = 5;
/// Content parts (blobs and holes) per batch: a batch also ends before its files' parts pass
/// this, so that its plan stays bounded when files have many blobs each (about 300 bytes per
/// blob while a batch is written). A single file with more parts is a batch of its own.
#[cfg(not(test))]
const BATCH_PARTS: usize = 1 << 16;
#[cfg(test)]
const BATCH_PARTS: usize = 12;

/// Entries gathered into batches of at most [`BATCH`] entries and [`BATCH_PARTS`] parts.
#[derive(Default)]
struct Batch {
    items: Vec<plan::Item>,
    parts: usize,
}

impl Batch {
    /// Whether `it` still fits (an empty batch takes anything).
    fn fits(&self, it: &plan::Item) -> bool {
        self.items.is_empty()
            || (self.items.len() < BATCH && self.parts + it.node.content.len() <= BATCH_PARTS)
    }

    fn push(&mut self, it: plan::Item) {
        self.parts += it.node.content.len();
        self.items.push(it);
    }
}

/// What outlives a batch.
#[derive(Default)]
struct Run {
    report: RestoreReport,
    /// Directories that could not be created: what is below them fails with them.
    failed_dirs: HashSet<PathBuf>,
    /// Directories created, in walk order, for their metadata at the end.
    dirs: Vec<(PathBuf, coop_formats::tree::Node, (u64, u64))>,
    /// Per hard-link group, the file the others link to.
    groups: HashMap<u64, First>,
}

/// The first file of a hard-link group.
enum First {
    /// In the batch being restored (its position there).
    Here(usize),
    /// In an earlier batch: its path, what this restore created for it, or why it failed.
    Done {
        rel: PathBuf,
        created: (u64, u64),
        failed: Option<String>,
    },
}

/// Restores `root` (a tree ID, or a single file node) into `opts.target`, in batches of
/// [`BATCH`] entries in walk order: each batch is created, written (each pack it needs read
/// once), linked and finished before the walk goes on.
pub fn restore(
    reader: &BlobReader,
    root: RestoreRoot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let includes = Patterns::new(&opts.includes)?;
    let excludes = Patterns::new(&opts.excludes)?;
    let open_target =
        || fsx::open_or_create_dir(&opts.target).map_err(|e| Error::io(&opts.target, e));
    // The first walk sums the bytes to write (for progress) and keeps the entries while they
    // fit in one batch: a restore of up to a batch walks the snapshot once, a larger one twice
    // (the second time restoring batch by batch).
    let id = match root {
        RestoreRoot::Tree(id) => id,
        RestoreRoot::Node(n) => {
            progress.phase("restore", Some(n.size));
            let mut run = Run::default();
            let item = plan::Item {
                rel: PathBuf::from(OsStr::from_bytes(&n.name)),
                node: *n,
            };
            let target = open_target()?;
            restore_batch(reader, target.as_fd(), vec![item], opts, progress, &mut run)?;
            progress.finish();
            return Ok(run.report);
        }
    };
    let mut total = 0u64;
    let mut seen_groups: HashSet<u64> = HashSet::new();
    let mut first = Batch::default();
    let mut fits = true;
    plan::walk(reader, RestoreRoot::Tree(id), &includes, &excludes, |it| {
        if it.node.kind == NodeKind::File
            && it.node.link_group.is_none_or(|g| seen_groups.insert(g))
        {
            total = total.saturating_add(it.node.size);
        }
        if fits {
            if first.fits(&it) {
                first.push(it);
            } else {
                fits = false;
                first = Batch::default();
            }
        }
        Ok(())
    })?;
    drop(seen_groups);
    let target = open_target()?;
    progress.phase("restore", Some(total));
    let mut run = Run::default();
    let restore_items = |b: Batch, run: &mut Run| {
        restore_batch(reader, target.as_fd(), b.items, opts, progress, run)
    };
    if fits {
        restore_items(first, &mut run)?;
    } else {
        let mut batch = Batch::default();
        plan::walk(reader, RestoreRoot::Tree(id), &includes, &excludes, |it| {
            if !batch.fits(&it) {
                restore_items(std::mem::take(&mut batch), &mut run)?;
            }
            batch.push(it);
            Ok(())
        })?;
        restore_items(batch, &mut run)?;
    }
    progress.finish();
    dir_metadata(target.as_fd(), &run.dirs, opts.owner, &mut run.report);
    Ok(run.report)
}

/// Restores one batch of entries (walk order: the directories above each entry are created
/// in this batch or an earlier one).
fn restore_batch(
    reader: &BlobReader,
    target: std::os::fd::BorrowedFd<'_>,
    items: Vec<plan::Item>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
    run: &mut Run,
) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let readers = pack_readers(reader, opts.workers);
    let report = &mut run.report;
    let mut new_groups = Vec::new();
    // The first packs are fetched while the directories and files are made.
    let (placements, links, mut failed) = std::thread::scope(|s| -> Result<_> {
        let groups = &run.groups;
        let linked = |it: &plan::Item| it.node.link_group.is_some_and(|g| groups.contains_key(&g));
        let prefetched = Prefetched::start(s, reader, &items, linked, readers);
        let (failed, created) = make_dirs(target, &items, &mut run.failed_dirs, report);
        let (placements, failed, links, warnings) = create_files(
            reader,
            target,
            &items,
            opts.owner,
            failed,
            created,
            &mut run.groups,
            &mut new_groups,
        )?;
        let packs = by_pack(reader, &placements)?;
        prefetched.keep_only(|id| {
            packs
                .binary_search_by_key(id, |(p, _)| *p)
                .is_ok_and(|i| write::reads_whole(reader, &packs[i].1))
        });
        let w = write::Writer::new(
            reader,
            target,
            &items,
            &placements,
            opts.owner,
            progress,
            failed,
        );
        w.run(&packs, readers, &prefetched);
        w.retry();
        drop(packs);
        report.bytes += w.bytes.into_inner();
        report.fetched_bytes += w.fetched.into_inner();
        report.warnings.extend(warnings);
        report
            .warnings
            .extend(w.warnings.into_inner().expect("lock"));
        let failed = w.failed.into_inner().expect("lock");
        Ok((placements, links, failed))
    })?;
    hard_links(
        target,
        &items,
        &links,
        &run.groups,
        &placements.created,
        &mut failed,
    );
    // Groups whose first file is in this batch: later batches link to it by path.
    for g in new_groups {
        if let Some(First::Here(ix)) = run.groups.get(&g) {
            let ix = *ix;
            run.groups.insert(
                g,
                First::Done {
                    rel: items[ix].rel.clone(),
                    created: placements.created[ix],
                    failed: failed.get(&ix).cloned(),
                },
            );
        }
    }
    let failed_ix = remove_failed(target, &items, failed, &placements.created, report);
    finish_entries(target, &items, &failed_ix, opts.owner, report);
    let created = placements.created;
    for (ix, it) in items.into_iter().enumerate() {
        if it.node.kind == NodeKind::Dir && !failed_ix.contains(&ix) {
            run.dirs.push((it.rel, it.node, created[ix]));
        }
    }
    Ok(())
}

/// The longest path below the target that is restored: every entry is reached again by its
/// path (beneath the target, one `openat2`), which the kernel refuses from `PATH_MAX` on.
const PATH_MAX: usize = nix::libc::PATH_MAX as usize;

#[cfg(test)]
mod tests;
