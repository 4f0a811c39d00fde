//! Making the entries of a batch in the target: directories, files (sparse, at their size),
//! hard links, the removal of what failed, and metadata once the contents are written, each
//! through descriptors below the target (see [`crate::fsx`]).

use super::*;

/// Creates every directory (parents come first in walk order). A directory that cannot be
/// created (its path too long, something undeletable in its way) fails alone, with what is
/// below it; the rest of the snapshot is restored. Returns the entries that failed, with why,
/// and per entry the (device, inode) of the directory created for it.
pub(super) fn make_dirs(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    failed_dirs: &mut HashSet<PathBuf>,
    report: &mut RestoreReport,
) -> (HashMap<usize, String>, Vec<(u64, u64)>) {
    let mut failed: HashMap<usize, String> = HashMap::new();
    let mut created = vec![(0, 0); items.len()];
    let mut parents = write::Parents::new(target);
    for (ix, it) in items.iter().enumerate() {
        let why = if let Some(d) = failed_ancestor(failed_dirs, &it.rel) {
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
                failed_dirs.insert(it.rel.clone());
            }
            failed.insert(ix, why);
        }
    }
    (failed, created)
}

/// The nearest directory above `rel` that failed, if any.
fn failed_ancestor<'a>(failed_dirs: &'a HashSet<PathBuf>, rel: &Path) -> Option<&'a Path> {
    if failed_dirs.is_empty() {
        return None;
    }
    rel.ancestors()
        .skip(1)
        .find_map(|a| failed_dirs.get(a).map(|p| p.as_path()))
}

type Created = (
    write::Placements,
    HashMap<usize, String>,
    Vec<(usize, u64)>,
    Vec<String>,
);

/// Creates every file of the batch at its size and maps each blob to where it goes. Returns
/// the placements, the files that failed already, the hard links to make (entry, group), and
/// warnings. The first file of a group met in this batch goes into `groups` (and its group
/// into `new_groups`).
#[allow(clippy::too_many_arguments)]
pub(super) fn create_files(
    reader: &BlobReader,
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    owner: bool,
    mut failed: HashMap<usize, String>,
    mut created: Vec<(u64, u64)>,
    groups: &mut HashMap<u64, First>,
    new_groups: &mut Vec<u64>,
) -> Result<Created> {
    let mut links: Vec<(usize, u64)> = Vec::new();
    let mut wanted: HashMap<Id, Vec<(usize, u64)>> = HashMap::new();
    let mut remaining: Vec<AtomicU32> = (0..items.len()).map(|_| AtomicU32::new(0)).collect();
    let mut open: Vec<Mutex<Option<Arc<std::fs::File>>>> =
        (0..items.len()).map(|_| Mutex::new(None)).collect();
    let mut budget = write::open_file_budget();
    let mut warnings = Vec::new();
    let mut parents = write::Parents::new(target);
    for (ix, it) in items.iter().enumerate() {
        if it.node.kind != NodeKind::File || failed.contains_key(&ix) {
            continue;
        }
        if let Some(g) = it.node.link_group {
            if groups.contains_key(&g) {
                links.push((ix, g));
                continue;
            }
            groups.insert(g, First::Here(ix));
            new_groups.push(g);
        }
        let (blobs, mut problem) = match placed_blobs(reader, it) {
            Ok(b) => (b, None),
            Err(why) => (Vec::new(), Some(why)),
        };
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
        warnings,
    ))
}

/// Where in the file each of its blobs goes (blob, offset), holes skipped; why not, when a
/// blob is not indexed or the content does not add up to the file's size.
fn placed_blobs(
    reader: &BlobReader,
    it: &plan::Item,
) -> std::result::Result<Vec<(Id, u64)>, String> {
    let mut off = 0u64;
    let mut blobs = Vec::new();
    for p in &it.node.content {
        match p {
            Part::Blob(id) => match reader.locate(id, BlobType::Data) {
                Ok(loc) => {
                    blobs.push((*id, off));
                    off = off.saturating_add(loc.raw_len as u64);
                }
                Err(e) => return Err(e.to_string()),
            },
            Part::Hole { hole } => off = off.saturating_add(*hole),
        }
    }
    if off != it.node.size {
        return Err(format!(
            "the snapshot says {} bytes but its content adds up to {off} (damaged or forged tree)",
            it.node.size
        ));
    }
    Ok(blobs)
}

/// The blobs to read from one pack, in offset order.
type PackBlobs = (Id, Vec<(Id, Loc)>);

/// The needed blobs grouped by the pack the index puts them in, each in offset order.
pub(super) fn by_pack(reader: &BlobReader, p: &write::Placements) -> Result<Vec<PackBlobs>> {
    group_by_pack(reader, p.wanted.keys(), true)
}

/// `ids` grouped by the pack the index puts them in, packs by name and blobs in offset order
/// (the order restore's workers take them in). A blob not in the index is an error if
/// `strict`, else left out.
pub(super) fn group_by_pack<'i>(
    reader: &BlobReader,
    ids: impl Iterator<Item = &'i Id>,
    strict: bool,
) -> Result<Vec<PackBlobs>> {
    let mut by_pack: HashMap<Id, Vec<(Id, Loc)>> = HashMap::new();
    for id in ids {
        let Some(loc) = reader.index.get(id)? else {
            if strict {
                return Err(Error::MissingBlob { id: *id });
            }
            continue;
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
pub(super) fn hard_links(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    links: &[(usize, u64)],
    groups: &HashMap<u64, First>,
    created: &[(u64, u64)],
    failed: &mut HashMap<usize, String>,
) {
    for &(ix, g) in links {
        let (first_rel, first_created, first_failed) = match groups.get(&g) {
            Some(First::Here(first)) => (
                &items[*first].rel,
                created[*first],
                failed.get(first).cloned(),
            ),
            Some(First::Done {
                rel,
                created,
                failed,
            }) => (rel, *created, failed.clone()),
            None => continue, // never: create_files put every group it linked in
        };
        if let Some(why) = first_failed {
            failed.insert(ix, format!("hard link target failed: {why}"));
            continue;
        }
        // Linked by name, so checked after: the new link must be the file this restore
        // created, not one swapped in at the first name (it is removed again if not).
        let res = fsx::open_parent(target, first_rel).and_then(|(from_dir, from)| {
            let (dir, name) = fsx::open_parent(target, &items[ix].rel)?;
            fsx::hard_link_at(from_dir.as_fd(), from, dir.as_fd(), name)?;
            match fsx::lstat_at(dir.as_fd(), name) {
                Ok(st) if st.is_file() && (st.dev, st.ino) == first_created => Ok(()),
                _ => {
                    let _ = fsx::remove_at(dir.as_fd(), name, false);
                    Err(std::io::Error::other(format!(
                        "{} was replaced while being restored; not linked",
                        Path::new("/").join(first_rel).display()
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
pub(super) fn remove_failed(
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

/// Symlinks, FIFOs and device nodes (directory metadata comes at the end: [`dir_metadata`]).
pub(super) fn finish_entries(
    target: std::os::fd::BorrowedFd<'_>,
    items: &[plan::Item],
    failed: &HashSet<usize>,
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
}

/// Directory metadata, deepest first (after everything below them was written).
pub(super) fn dir_metadata(
    target: std::os::fd::BorrowedFd<'_>,
    dirs: &[(PathBuf, coop_formats::tree::Node, (u64, u64))],
    owner: bool,
    report: &mut RestoreReport,
) {
    for (rel, node, created) in dirs.iter().rev() {
        // Reopened by path: only the directory this restore made gets its owner and mode.
        let res = fsx::open_beneath(target, rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0).and_then(
            |fd| {
                let st = fsx::fstat(fd.as_fd())?;
                if (st.dev, st.ino) != *created {
                    return Err(std::io::Error::other(
                        "replaced by another directory while being restored; left as it is",
                    ));
                }
                fsx::set_meta_fd(fd.as_fd(), &fsx::Meta::of(node, owner))
            },
        );
        if let Err(e) = res {
            report.warnings.push(format!(
                "{}: metadata not fully restored: {e}",
                rel.display()
            ));
        }
    }
}
