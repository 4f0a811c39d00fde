//! Restore: recreate a snapshot (or part of it) under a target directory.
//!
//! Plan first (walk the trees, check every file's parts against the index), then read
//! each needed pack once, in parallel, writing blobs at their offsets; then hard links,
//! symlinks, special files, and metadata (directories last, deepest first).
//!
//! Safety: every name was validated when its tree was decoded (no `/`, `..`, NUL), so
//! every path is `target/<validated components>`. Entries already in the target are
//! replaced, never followed: files are created with `O_EXCL | O_NOFOLLOW`, and symlinks
//! from the snapshot are created only after all file data is written.

use crate::error::{Error, Result};
use crate::index::Loc;
use crate::progress::Progress;
use crate::read::BlobReader;
use coop_formats::id::{BlobType, Id};
use coop_formats::tree::{Node, NodeKind, Part};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Restore only paths matching one of these globs (and what is below them).
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
    /// Restore ownership (default: when running as root).
    pub owner: bool,
    pub workers: usize,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Files that could not be restored, with the reason. They are not left behind.
    pub failed: Vec<(String, String)>,
    pub warnings: Vec<String>,
}

struct Item {
    rel: PathBuf,
    node: Node,
}

fn globset(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        let p = p.trim_end_matches('/');
        let pat = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("**/{p}")
        };
        b.add(
            globset::GlobBuilder::new(&pat)
                .literal_separator(true)
                .build()
                .map_err(|e| Error::Usage {
                    what: format!("bad pattern {p:?}: {e}"),
                })?,
        );
    }
    b.build().map_err(|e| Error::Usage {
        what: e.to_string(),
    })
}

/// Removes whatever is at `path` unless it is a real directory. Never follows links.
fn clear_non_dir(path: &Path) -> std::io::Result<bool> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => std::fs::remove_file(path).map(|_| false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Restores `root` (a tree ID, or a single file node) into `opts.target`.
pub fn restore(
    reader: &BlobReader,
    root: RestoreRoot,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let includes = globset(&opts.includes)?;
    let excludes = globset(&opts.excludes)?;
    let mut report = RestoreReport::default();

    // 1. Plan.
    let mut items: Vec<Item> = Vec::new();
    match root {
        RestoreRoot::Node(node) => items.push(Item {
            rel: PathBuf::from(OsStr::from_bytes(&node.name)),
            node: *node,
        }),
        RestoreRoot::Tree(id) => {
            let mut included_dirs: Vec<PathBuf> = Vec::new();
            reader.walk(&id, |path, node| {
                let rel = PathBuf::from(OsStr::from_bytes(path));
                let shown = Path::new("/").join(&rel);
                if excludes.is_match(&shown) {
                    return Ok(false);
                }
                let under_included = included_dirs.iter().any(|d| rel.starts_with(d));
                let included =
                    opts.includes.is_empty() || under_included || includes.is_match(&shown);
                if included && node.kind == NodeKind::Dir && !opts.includes.is_empty() {
                    included_dirs.push(rel.clone());
                }
                if included || node.kind == NodeKind::Dir {
                    items.push(Item {
                        rel,
                        node: node.clone(),
                    });
                }
                Ok(true)
            })?;
            if !opts.includes.is_empty() {
                // Keep directories only if included or needed as a parent.
                let mut needed: HashSet<PathBuf> = HashSet::new();
                for it in &items {
                    let inc = included_dirs.iter().any(|d| it.rel.starts_with(d))
                        || it.node.kind != NodeKind::Dir;
                    if inc {
                        let mut p = it.rel.parent();
                        while let Some(pp) = p.filter(|pp| !pp.as_os_str().is_empty()) {
                            needed.insert(pp.to_path_buf());
                            p = pp.parent();
                        }
                        needed.insert(it.rel.clone());
                    }
                }
                items.retain(|it| needed.contains(&it.rel));
            }
        }
    }
    let target = &opts.target;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;

    // 2. Directories.
    for it in items.iter().filter(|i| i.node.kind == NodeKind::Dir) {
        let p = target.join(&it.rel);
        let is_dir = clear_non_dir(&p).map_err(|e| Error::io(&p, e))?;
        if !is_dir {
            std::fs::create_dir(&p).map_err(|e| Error::io(&p, e))?;
        }
        report.dirs += 1;
    }

    // 3. Files: create, size, and map every blob to where it goes.
    let mut failed: HashMap<usize, String> = HashMap::new();
    let mut links: Vec<(usize, usize)> = Vec::new();
    let mut first_of_group: HashMap<u64, usize> = HashMap::new();
    let mut wanted: HashMap<Id, Vec<(usize, u64)>> = HashMap::new();
    let mut total = 0u64;
    for (ix, it) in items.iter().enumerate() {
        if it.node.kind != NodeKind::File {
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
            problem = Some(format!("the snapshot says {} bytes but its content adds up to {off} (damaged or forged tree)", it.node.size));
        }
        let p = target.join(&it.rel);
        if problem.is_none() {
            let created = clear_non_dir(&p)
                .and_then(|is_dir| {
                    if is_dir {
                        Err(std::io::Error::other("a directory is in the way"))
                    } else {
                        Ok(())
                    }
                })
                .and_then(|_| {
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .custom_flags(nix::libc::O_NOFOLLOW)
                        .mode(0o600)
                        .open(&p)
                })
                .and_then(|f| f.set_len(it.node.size));
            if let Err(e) = created {
                problem = Some(format!("cannot create: {e}"));
            }
        }
        if let Some(why) = problem {
            failed.insert(ix, why);
            continue;
        }
        total += it.node.size;
        for (id, off) in blobs {
            wanted.entry(id).or_default().push((ix, off));
        }
    }

    // 4. Read each pack once, in parallel, and write its blobs where they go.
    let mut by_pack: HashMap<Id, Vec<(Id, Loc)>> = HashMap::new();
    for id in wanted.keys() {
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
    progress.phase("restore", Some(total));
    let failed = Mutex::new(failed);
    let bytes = std::sync::atomic::AtomicU64::new(0);
    let next = AtomicUsize::new(0);
    let workers = crate::workers(opts.workers);
    std::thread::scope(|s| {
        for _ in 0..workers.min(packs.len().max(1)) {
            s.spawn(|| {
                // Reused for every pack and blob: one blob's stored bytes, its decompressed
                // form, and the file being written (blobs of one pack mostly fill one file).
                // The pack is decrypted as it is read, never held whole.
                let mut stored_blob = Vec::new();
                let mut scratch = Vec::new();
                let mut open: Option<(usize, std::fs::File)> = None;
                let fail = |ix: usize, why: String| {
                    failed.lock().expect("lock").entry(ix).or_insert(why);
                };
                while let Some((pack_id, blobs)) = packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let fail_from = |n: usize, e: &Error| {
                        for (id, _) in &blobs[n..] {
                            for (ix, _) in &wanted[id] {
                                fail(*ix, e.to_string());
                            }
                        }
                    };
                    let stored = match reader.fetch_stored(pack_id) {
                        Ok(s) => s,
                        Err(e) => {
                            fail_from(0, &e);
                            continue;
                        }
                    };
                    let mut r = match reader.open_stream(pack_id, &stored) {
                        Ok(r) => r,
                        Err(e) => {
                            fail_from(0, &e);
                            continue;
                        }
                    };
                    let mut pos = coop_formats::envelope::HEADER_LEN as u64;
                    for (n, (id, loc)) in blobs.iter().enumerate() {
                        if let Err(e) = read_next_blob(&mut r, &mut pos, loc, &mut stored_blob) {
                            // The stream cannot go on past damage.
                            let e = Error::corrupt(
                                pack_id.to_hex(),
                                format!("pack is damaged or truncated at blob {id}: {e}"),
                            );
                            fail_from(n, &e);
                            break;
                        }
                        let data = match reader.verify_stored(&stored_blob, id, loc, &mut scratch) {
                            Ok(d) => d,
                            Err(e) => {
                                for (ix, _) in &wanted[id] {
                                    fail(*ix, e.to_string());
                                }
                                continue;
                            }
                        };
                        for (ix, off) in &wanted[id] {
                            if failed.lock().expect("lock").contains_key(ix) {
                                continue;
                            }
                            let rel = &items[*ix].rel;
                            match write_at(&mut open, *ix, || target.join(rel), data, *off) {
                                Ok(()) => {
                                    bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                                    progress.add_bytes(data.len() as u64);
                                }
                                Err(e) => fail(*ix, format!("write failed: {e}")),
                            }
                        }
                    }
                }
            });
        }
    });
    progress.finish();
    report.bytes = bytes.load(Ordering::Relaxed);
    let mut failed = failed.into_inner().expect("lock");

    // 5. Hard links to files restored in this run.
    for &(ix, first) in &links {
        let p = target.join(&items[ix].rel);
        if let Some(why) = failed.get(&first).cloned() {
            failed.insert(ix, format!("hard link target failed: {why}"));
            continue;
        }
        let res =
            clear_non_dir(&p).and_then(|_| std::fs::hard_link(target.join(&items[first].rel), &p));
        if let Err(e) = res {
            failed.insert(ix, format!("cannot create hard link: {e}"));
        }
    }

    // 6. Failed files are removed: never leave a file that looks restored but is not.
    let mut failed_list: Vec<(usize, String)> = failed.into_iter().collect();
    failed_list.sort();
    for (ix, why) in &failed_list {
        let p = target.join(&items[*ix].rel);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
            let _ = std::fs::remove_file(&p);
        }
        report.failed.push((
            Path::new("/").join(&items[*ix].rel).display().to_string(),
            why.clone(),
        ));
    }
    let failed_ix: HashSet<usize> = failed_list.iter().map(|(i, _)| *i).collect();

    // 7. Symlinks, special files, and metadata of files.
    for (ix, it) in items.iter().enumerate() {
        if failed_ix.contains(&ix) || it.node.kind == NodeKind::Dir {
            continue;
        }
        let p = target.join(&it.rel);
        let res = match it.node.kind {
            NodeKind::Symlink => {
                let t = it.node.target.as_deref().unwrap_or_default();
                clear_non_dir(&p)
                    .and_then(|_| std::os::unix::fs::symlink(OsStr::from_bytes(t), &p))
                    .map(|_| {
                        report.symlinks += 1;
                    })
            }
            NodeKind::Fifo => clear_non_dir(&p).and_then(|_| {
                nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(Into::into)
            }),
            NodeKind::File => {
                report.files += 1;
                Ok(())
            }
            _ => {
                report.warnings.push(format!(
                    "{}: {:?} not restored",
                    it.rel.display(),
                    it.node.kind
                ));
                continue;
            }
        };
        if let Err(e) = res {
            report.failed.push((
                Path::new("/").join(&it.rel).display().to_string(),
                e.to_string(),
            ));
            continue;
        }
        if let Err(e) = set_meta(&p, &it.node, opts.owner) {
            report.warnings.push(format!(
                "{}: metadata not fully restored: {e}",
                it.rel.display()
            ));
        }
    }
    // 8. Directory metadata, deepest first.
    for it in items.iter().rev().filter(|i| i.node.kind == NodeKind::Dir) {
        let p = target.join(&it.rel);
        if let Err(e) = set_meta(&p, &it.node, opts.owner) {
            report.warnings.push(format!(
                "{}: metadata not fully restored: {e}",
                it.rel.display()
            ));
        }
    }
    Ok(report)
}

/// What to restore.
pub enum RestoreRoot {
    Tree(Id),
    Node(Box<Node>),
}

fn set_meta(p: &Path, n: &Node, owner: bool) -> std::io::Result<()> {
    let link = n.kind == NodeKind::Symlink;
    if !link {
        for x in &n.xattrs {
            if let Err(e) = xattr::set(p, &x.name, &x.value) {
                if e.raw_os_error() != Some(nix::libc::EPERM)
                    && e.raw_os_error() != Some(nix::libc::ENOTSUP)
                {
                    return Err(e);
                }
            }
        }
    }
    if owner {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            p,
            Some(nix::unistd::Uid::from_raw(n.uid)),
            Some(nix::unistd::Gid::from_raw(n.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)?;
    }
    let t = filetime::FileTime::from_unix_time(
        n.mtime_ns.div_euclid(1_000_000_000),
        n.mtime_ns.rem_euclid(1_000_000_000) as u32,
    );
    if link {
        filetime::set_symlink_file_times(p, t, t)?;
    } else {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(n.mode & 0o7777))?;
        filetime::set_file_times(p, t, t)?;
    }
    Ok(())
}

/// Reads the blob at `loc` from a pack stream that is at offset `*pos`: blobs are taken in
/// offset order, skipping the ones not needed.
fn read_next_blob(
    r: &mut impl Read,
    pos: &mut u64,
    loc: &Loc,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    let skip = (loc.offset as u64).checked_sub(*pos).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the blob overlaps the one before it",
        )
    })?;
    std::io::copy(&mut r.take(skip), &mut std::io::sink())?;
    buf.resize(loc.stored_len as usize, 0);
    r.read_exact(buf)?;
    *pos = loc.offset as u64 + loc.stored_len as u64;
    Ok(())
}

/// Writes `data` at `off` in file `ix`, keeping the last file written open (never following
/// a symlink when opening it).
fn write_at(
    open: &mut Option<(usize, std::fs::File)>,
    ix: usize,
    path: impl FnOnce() -> PathBuf,
    data: &[u8],
    off: u64,
) -> std::io::Result<()> {
    let f = match open {
        Some((o, f)) if *o == ix => f,
        _ => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(path())?;
            &mut open.insert((ix, f)).1
        }
    };
    f.write_all_at(data, off)
}
