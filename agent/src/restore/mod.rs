//! Restore: recreate a snapshot (or part of it) under a target directory.
//!
//! - [`plan`]: which entries, after includes and excludes.
//! - [`write`]: reading each needed pack once and writing blobs at their offsets.
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

mod plan;
mod write;

use crate::error::{Error, Result};
use crate::fsx;
use crate::index::Loc;
use crate::patterns::Patterns;
use crate::progress::Progress;
use crate::read::BlobReader;
use coop_formats::id::{BlobType, Id};
use coop_formats::tree::{NodeKind, Part};
use nix::fcntl::OFlag;
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

/// Restores `root` (a tree ID, or a single file node) into `opts.target`.
pub fn restore(
    reader: &BlobReader,
    root: RestoreRoot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let includes = Patterns::new(&opts.includes)?;
    let excludes = Patterns::new(&opts.excludes)?;
    let items = plan::items(reader, root, &includes, &excludes)?;
    let target = fsx::open_or_create_dir(&opts.target).map_err(|e| Error::io(&opts.target, e))?;
    let mut report = RestoreReport::default();
    let (failed, created) = make_dirs(target.as_fd(), &items, &mut report);
    let (placements, failed, links, total, warnings) =
        create_files(reader, target.as_fd(), &items, opts.owner, failed, created)?;
    progress.phase("restore", Some(total));
    let packs = by_pack(reader, &placements)?;
    let w = write::Writer::new(
        reader,
        target.as_fd(),
        &items,
        &placements,
        opts.owner,
        progress,
        failed,
    );
    w.run(&packs, pack_readers(reader, opts.workers));
    w.retry();
    progress.finish();
    report.bytes = w.bytes.load(std::sync::atomic::Ordering::Relaxed);
    report.fetched_bytes = w.fetched.load(std::sync::atomic::Ordering::Relaxed);
    let mut failed = w.failed.into_inner().expect("lock");
    report.warnings = warnings;
    report
        .warnings
        .extend(w.warnings.into_inner().expect("lock"));
    hard_links(
        target.as_fd(),
        &items,
        &links,
        &placements.created,
        &mut failed,
    );
    let failed_ix = remove_failed(
        target.as_fd(),
        &items,
        failed,
        &placements.created,
        &mut report,
    );
    finish_entries(
        target.as_fd(),
        &items,
        &failed_ix,
        &placements.created,
        opts.owner,
        &mut report,
    );
    Ok(report)
}

/// The longest path below the target that is restored: every entry is reached again by its
/// path (beneath the target, one `openat2`), which the kernel refuses from `PATH_MAX` on.
const PATH_MAX: usize = nix::libc::PATH_MAX as usize;

/// Creates every directory (parents come first in walk order). A directory that cannot be
/// created (its path too long, something undeletable in its way) fails alone, with what is
/// below it; the rest of the snapshot is restored. Returns the entries that failed, with why,
/// and per entry the (device, inode) of the directory created for it.
fn make_dirs(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    report: &mut RestoreReport,
) -> (HashMap<usize, String>, Vec<(u64, u64)>) {
    let mut failed: HashMap<usize, String> = HashMap::new();
    let mut created = vec![(0, 0); items.len()];
    // The directories that failed: what is below them fails with them.
    let mut failed_dirs: HashSet<&Path> = HashSet::new();
    let mut parents = write::Parents::new(target);
    for (ix, it) in items.iter().enumerate() {
        let why = if let Some(d) = failed_ancestor(&failed_dirs, &it.rel) {
            Some(format!(
                "not restored: its directory {} could not be",
                Path::new("/").join(d).display()
            ))
        } else if it.rel.as_os_str().len() >= PATH_MAX {
            Some(format!(
                "not restored: its path below the target is {} bytes, longer than PATH_MAX ({PATH_MAX})",
                it.rel.as_os_str().len()
            ))
        } else if it.node.kind == NodeKind::Dir {
            match parents
                .of(&it.rel)
                .and_then(|(parent, name)| fsx::make_dir_at(parent, name))
                .and_then(fsx::fstat)
            {
                Ok(st) => {
                    created[ix] = (st.dev, st.ino);
                    report.dirs += 1;
                    None
                }
                Err(e) => Some(format!("cannot create directory: {e}")),
            }
        } else {
            None
        };
        if let Some(why) = why {
            if it.node.kind == NodeKind::Dir {
                failed_dirs.insert(&it.rel);
            }
            failed.insert(ix, why);
        }
    }
    (failed, created)
}

/// The nearest directory above `rel` that failed, if any.
fn failed_ancestor<'a>(failed_dirs: &HashSet<&'a Path>, rel: &Path) -> Option<&'a Path> {
    if failed_dirs.is_empty() {
        return None;
    }
    rel.ancestors()
        .skip(1)
        .find_map(|a| failed_dirs.get(a).copied())
}

type Created = (
    write::Placements,
    HashMap<usize, String>,
    Vec<(usize, usize)>,
    u64,
    Vec<String>,
);

/// Creates every file at its size and maps each blob to where it goes. Returns the
/// placements, the files that failed already, the hard links to make, the bytes to write, and
/// warnings.
fn create_files(
    reader: &BlobReader,
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    owner: bool,
    mut failed: HashMap<usize, String>,
    mut created: Vec<(u64, u64)>,
) -> Result<Created> {
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut first_of_group: HashMap<u64, usize> = HashMap::new();
    let mut wanted: HashMap<Id, Vec<(usize, u64)>> = HashMap::new();
    let mut remaining: Vec<AtomicU32> = (0..items.len()).map(|_| AtomicU32::new(0)).collect();
    let mut open: Vec<Mutex<Option<Arc<std::fs::File>>>> =
        (0..items.len()).map(|_| Mutex::new(None)).collect();
    let mut budget = write::open_file_budget();
    let mut warnings = Vec::new();
    let mut parents = write::Parents::new(target);
    let mut total = 0u64;
    for (ix, it) in items.iter().enumerate() {
        if it.node.kind != NodeKind::File || failed.contains_key(&ix) {
            continue;
        }
        if let Some(g) = it.node.link_group {
            if let Some(&first) = first_of_group.get(&g) {
                links.push((ix, first));
                continue;
            }
            first_of_group.insert(g, ix);
        }
        let mut off = 0u64;
        let mut blobs = Vec::new();
        let mut problem = None;
        for p in &it.node.content {
            match p {
                Part::Blob(id) => match reader.locate(id, BlobType::Data) {
                    Ok(loc) => {
                        blobs.push((*id, off));
                        off = off.saturating_add(loc.raw_len as u64);
                    }
                    Err(e) => {
                        problem = Some(e.to_string());
                        break;
                    }
                },
                Part::Hole { hole } => off = off.saturating_add(*hole),
            }
        }
        if problem.is_none() && off != it.node.size {
            problem = Some(format!(
                "the snapshot says {} bytes but its content adds up to {off} (damaged or forged tree)",
                it.node.size
            ));
        }
        if problem.is_none() {
            let file = parents
                .of(&it.rel)
                .map_err(|e| Error::io(&it.rel, e))
                .and_then(|(dir, name)| write::create_file(dir, name, it));
            if let Ok(st) = file.as_ref().map(|f| fsx::fstat(f.as_fd())) {
                match st {
                    Ok(st) => created[ix] = (st.dev, st.ino),
                    Err(e) => problem = Some(format!("cannot create: {e}")),
                }
            }
            match file {
                Ok(_) if problem.is_some() => {}
                Ok(f) if blobs.is_empty() => {
                    // Nothing to write (empty, or only holes): its metadata now.
                    if let Err(e) = fsx::set_meta_fd(f.as_fd(), &fsx::Meta::of(&it.node, owner)) {
                        warnings.push(format!(
                            "{}: metadata not fully restored: {e}",
                            it.rel.display()
                        ));
                    }
                }
                Ok(f) if budget > 0 => {
                    budget -= 1;
                    *open[ix].get_mut().expect("lock") = Some(Arc::new(f));
                }
                Ok(_) => {}
                Err(Error::Io { source, .. }) => problem = Some(format!("cannot create: {source}")),
                Err(e) => return Err(e),
            }
        }
        if let Some(why) = problem {
            failed.insert(ix, why);
            continue;
        }
        total += it.node.size;
        *remaining[ix].get_mut() = blobs.len() as u32;
        for (id, off) in blobs {
            wanted.entry(id).or_default().push((ix, off));
        }
    }
    Ok((
        write::Placements {
            wanted,
            remaining,
            open,
            created,
        },
        failed,
        links,
        total,
        warnings,
    ))
}

/// The needed blobs grouped by the pack the index puts them in, each in offset order.
/// The blobs to read from one pack, in offset order.
type PackBlobs = (Id, Vec<(Id, Loc)>);

fn by_pack(reader: &BlobReader, p: &write::Placements) -> Result<Vec<PackBlobs>> {
    let mut by_pack: HashMap<Id, Vec<(Id, Loc)>> = HashMap::new();
    for id in p.wanted.keys() {
        let Some(loc) = reader.index.get(id)? else {
            return Err(Error::MissingBlob { id: *id });
        };
        by_pack
            .entry(reader.index.pack_id(&loc))
            .or_default()
            .push((*id, loc));
    }
    let mut packs: Vec<(Id, Vec<(Id, Loc)>)> = by_pack.into_iter().collect();
    packs.sort_by_key(|(id, _)| *id);
    for (_, blobs) in &mut packs {
        blobs.sort_by_key(|(_, loc)| loc.offset);
    }
    Ok(packs)
}

/// Hard links to files restored in this run.
fn hard_links(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    links: &[(usize, usize)],
    created: &[(u64, u64)],
    failed: &mut HashMap<usize, String>,
) {
    for &(ix, first) in links {
        if let Some(why) = failed.get(&first).cloned() {
            failed.insert(ix, format!("hard link target failed: {why}"));
            continue;
        }
        // Linked by name, so checked after: the new link must be the file this restore
        // created, not one swapped in at the first name (it is removed again if not).
        let res = fsx::open_parent(target, &items[first].rel).and_then(|(from_dir, from)| {
            let (dir, name) = fsx::open_parent(target, &items[ix].rel)?;
            fsx::hard_link_at(from_dir.as_fd(), from, dir.as_fd(), name)?;
            match fsx::lstat_at(dir.as_fd(), name) {
                Ok(st) if st.is_file() && (st.dev, st.ino) == created[first] => Ok(()),
                _ => {
                    let _ = fsx::remove_at(dir.as_fd(), name, false);
                    Err(std::io::Error::other(format!(
                        "{} was replaced while being restored; not linked",
                        Path::new("/").join(&items[first].rel).display()
                    )))
                }
            }
        });
        if let Err(e) = res {
            failed.insert(ix, format!("cannot create hard link: {e}"));
        }
    }
}

/// Removes failed files (never leave a file that looks restored but is not) and lists them.
/// Only the file this restore created is removed, not one someone put at its name.
fn remove_failed(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    failed: HashMap<usize, String>,
    created: &[(u64, u64)],
    report: &mut RestoreReport,
) -> HashSet<usize> {
    let mut list: Vec<(usize, String)> = failed.into_iter().collect();
    list.sort();
    for (ix, why) in &list {
        if items[*ix].node.kind != NodeKind::File {
            // Directories and what is below a failed one: nothing of them was created.
        } else if let Ok((dir, name)) = fsx::open_parent(target, &items[*ix].rel) {
            if fsx::lstat_at(dir.as_fd(), name)
                .is_ok_and(|s| s.is_file() && (s.dev, s.ino) == created[*ix])
            {
                let _ = fsx::remove_at(dir.as_fd(), name, false);
            }
        }
        report.failed.push((
            Path::new("/").join(&items[*ix].rel).display().to_string(),
            why.clone(),
        ));
    }
    list.into_iter().map(|(i, _)| i).collect()
}

/// Symlinks, FIFOs and device nodes, then directory metadata, deepest first.
fn finish_entries(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    failed: &HashSet<usize>,
    created: &[(u64, u64)],
    owner: bool,
    report: &mut RestoreReport,
) {
    use nix::sys::stat::SFlag;
    for (ix, it) in items.iter().enumerate() {
        if failed.contains(&ix) {
            continue;
        }
        let meta = fsx::Meta::of(&it.node, owner);
        let res = match it.node.kind {
            NodeKind::File => {
                report.files += 1;
                continue;
            }
            NodeKind::Dir => continue,
            NodeKind::Socket => {
                report.warnings.push(format!(
                    "{}: sockets are not restored (the program that owns it makes a new one)",
                    it.rel.display()
                ));
                continue;
            }
            NodeKind::Chardev | NodeKind::Blockdev if !owner => {
                report.warnings.push(format!(
                    "{}: device node not created (only root can; run the restore as root)",
                    it.rel.display()
                ));
                continue;
            }
            NodeKind::Symlink => fsx::open_parent(target, &it.rel).and_then(|(dir, name)| {
                let t = it.node.target.as_deref().unwrap_or_default();
                fsx::symlink_at(dir.as_fd(), name, OsStr::from_bytes(t))?;
                report.symlinks += 1;
                fsx::set_meta_symlink_at(dir.as_fd(), name, &meta)
            }),
            NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev => {
                let kind = match it.node.kind {
                    NodeKind::Fifo => SFlag::S_IFIFO,
                    NodeKind::Chardev => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                fsx::open_parent(target, &it.rel).and_then(|(dir, name)| {
                    fsx::mknod_at(dir.as_fd(), name, kind, it.node.rdev.unwrap_or(0))?;
                    report.special += 1;
                    fsx::set_meta_special_at(dir.as_fd(), name, &meta)
                })
            }
        };
        if let Err(e) = res {
            report.failed.push((
                Path::new("/").join(&it.rel).display().to_string(),
                e.to_string(),
            ));
        }
    }
    for (ix, it) in items
        .iter()
        .enumerate()
        .rev()
        .filter(|(ix, i)| i.node.kind == NodeKind::Dir && !failed.contains(ix))
    {
        // Reopened by path: only the directory this restore made gets its owner and mode.
        let res = fsx::open_beneath(target, &it.rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
            .and_then(|fd| {
                let st = fsx::fstat(fd.as_fd())?;
                if (st.dev, st.ino) != created[ix] {
                    return Err(std::io::Error::other(
                        "replaced by another directory while being restored; left as it is",
                    ));
                }
                fsx::set_meta_fd(fd.as_fd(), &fsx::Meta::of(&it.node, owner))
            });
        if let Err(e) = res {
            report.warnings.push(format!(
                "{}: metadata not fully restored: {e}",
                it.rel.display()
            ));
        }
    }
}
