//! Directory exports, and `--into`: updating an earlier export in place, rewriting only what
//! changed, through descriptors below the export's root, never following what someone else
//! put there.

use super::*;

/// What a directory export found in place before it wrote anything.
#[derive(Default)]
pub(super) struct Existing {
    /// Our files and directories: path below `files/` -> (device, inode).
    files: Vec<(PathBuf, (u64, u64))>,
    dirs: HashMap<PathBuf, (u64, u64)>,
    /// What is not ours, with why.
    foreign: Vec<String>,
}

/// What the previous export in `root` says is ours: the recorded (device, inode) pairs, and
/// the paths of the previous manifest (files, and the directories above them).
pub(super) fn previous_export(
    root: BorrowedFd<'_>,
    dev: u64,
) -> (HashSet<(u64, u64)>, HashSet<PathBuf>, HashSet<PathBuf>) {
    let euid = nix::unistd::geteuid().as_raw();
    let read = |name: &str| -> Option<Vec<u8>> {
        let fd = fsx::open_file_at(root, OsStr::new(name)).ok()?;
        let st = fsx::fstat(fd.as_fd()).ok()?;
        if !st.is_file() || st.uid != euid || st.dev != dev || st.nlink != 1 {
            return None;
        }
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(64 << 20)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    };
    let mut own = HashSet::new();
    if let Some(b) = read(OWN_RECORD) {
        for line in b.split(|c| *c == b'\n') {
            let mut it = std::str::from_utf8(line).unwrap_or("").split_whitespace();
            if let (Some(d), Some(i)) = (it.next(), it.next()) {
                if let (Ok(d), Ok(i)) = (d.parse(), i.parse()) {
                    own.insert((d, i));
                }
            }
        }
    }
    let (mut files, mut dirs) = (HashSet::new(), HashSet::new());
    // Every file the previous export's manifests (its snapshot and the other jobs') placed.
    let prev = read("manifest.json")
        .and_then(|b| serde_json::from_slice::<ExportFile>(&b).ok())
        .and_then(|f| {
            let mut ms = vec![f.signed_manifest.verify().ok()?.0];
            for x in &f.more {
                ms.push(x.signed_manifest.verify().ok()?.0);
            }
            export_layout(&ms)
                .into_iter()
                .flatten()
                .map(|(_, p)| export_path(&p).ok())
                .collect::<Option<Vec<PathBuf>>>()
        });
    for p in prev.unwrap_or_default() {
        let mut a = p.parent();
        while let Some(d) = a.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            a = d.parent();
        }
        files.insert(p);
    }
    (own, files, dirs)
}

/// Looks at what is below `files/` (never following a link, never leaving the file system,
/// never entering a directory that is not ours) and sorts it into ours and not ours.
#[allow(clippy::too_many_arguments)]
pub(super) fn scan_existing(
    dir: BorrowedFd<'_>,
    prefix: &Path,
    dev: u64,
    own: &HashSet<(u64, u64)>,
    prev_files: &HashSet<PathBuf>,
    prev_dirs: &HashSet<PathBuf>,
    shown: &Path,
    out: &mut Existing,
) -> std::io::Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    for name in fsx::read_dir_names(dir)? {
        let rel = prefix.join(&name);
        let st = match fsx::lstat_at(dir, &name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let key = (st.dev, st.ino);
        let why = if st.dev != dev {
            Some("on another file system (a mount)")
        } else if st.is_dir() {
            if own.contains(&key) || (st.uid == euid && prev_dirs.contains(&rel)) {
                None
            } else {
                Some("a directory this export did not create")
            }
        } else if own.contains(&key)
            || (st.is_file() && st.uid == euid && prev_files.contains(&rel))
            || (st.is_file()
                && st.uid == euid
                && st.nlink == 1
                && name.as_bytes().ends_with(b".coop-partial"))
        {
            None
        } else {
            Some("not written by this export")
        };
        match why {
            Some(why) => out
                .foreign
                .push(format!("{} ({why})", shown.join(&rel).display())),
            None if st.is_dir() => {
                let sub = fsx::open_dir_at(dir, &name)?;
                if !fsx::fstat(sub.as_fd())?.same_entry(&st) {
                    out.foreign.push(format!(
                        "{} (replaced while looked at)",
                        shown.join(&rel).display()
                    ));
                    continue;
                }
                out.dirs.insert(rel.clone(), key);
                scan_existing(
                    sub.as_fd(),
                    &rel,
                    dev,
                    own,
                    prev_files,
                    prev_dirs,
                    shown,
                    out,
                )?;
            }
            None => out.files.push((rel, key)),
        }
    }
    Ok(())
}

/// Opens the directory `rel` below `files` through directories that are still the ones
/// [`scan_existing`] found to be ours.
pub(super) fn open_ours(
    files: BorrowedFd<'_>,
    rel: &Path,
    dirs: &HashMap<PathBuf, (u64, u64)>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    let mut cur = fsx::open_beneath(
        files,
        Path::new(""),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        0,
    )?;
    let mut at = PathBuf::new();
    for c in rel.components() {
        at.push(c);
        let next = fsx::open_dir_at(cur.as_fd(), c.as_os_str())?;
        let st = fsx::fstat(next.as_fd())?;
        if dirs.get(&at) != Some(&(st.dev, st.ino)) {
            return Err(std::io::Error::other("replaced while the export ran"));
        }
        cur = next;
    }
    Ok(cur)
}

/// Writes a directory export (or updates one in place), rewriting only what changed.
///
/// Before anything is written, what is already below `files/` is looked at: anything the
/// export did not make (a folder moved in, another user's file, a mount) makes it refuse
/// with the paths named, and nothing is changed. Afterwards only the export's own files that
/// the new manifest no longer lists are removed, and its own directories left empty.
pub(super) fn write_dir(
    reader: &BlobReader,
    files: &[(&ManifestFile, &Node, &PathBuf)],
    manifest_json: &[u8],
    dir: &Path,
    progress: &dyn Progress,
    rep: &mut ExportReport,
) -> Result<()> {
    let root = fsx::open_or_create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let dev = fsx::fstat(root.as_fd()).map_err(|e| Error::io(dir, e))?.dev;
    let shown = dir.join("files");
    let existing = look(root.as_fd(), dev, dir, &shown)?;
    let files_dir =
        fsx::make_dir_at(root.as_fd(), OsStr::new("files")).map_err(|e| Error::io(&shown, e))?;
    let mut record: HashSet<(u64, u64)> = HashSet::new();
    let stat_key = |fd: BorrowedFd<'_>| fsx::fstat(fd).map(|s| (s.dev, s.ino));
    record.insert(stat_key(files_dir.as_fd()).map_err(|e| Error::io(&shown, e))?);
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for (f, node, rel) in files {
        keep.insert((*rel).clone());
        rep.files += 1;
        rep.bytes += f.size;
        let shown = shown.join(rel);
        let parent =
            make_parents(files_dir.as_fd(), rel, &mut record).map_err(|e| Error::io(&shown, e))?;
        let name = rel.file_name().expect("checked components");
        if let Some(key) = same_content(parent.as_fd(), name, f) {
            record.insert(key);
            rep.unchanged += 1;
        } else {
            record.insert(write_file(
                reader,
                parent.as_fd(),
                name,
                f,
                node,
                &shown,
                rep.files,
            )?);
            rep.written += 1;
        }
        progress.add_bytes(f.size);
    }
    remove_stale(files_dir.as_fd(), &existing, &keep, &record, &shown, rep)?;
    let mut text = String::new();
    let mut keys: Vec<_> = record.into_iter().collect();
    keys.sort_unstable();
    for (d, i) in keys {
        text.push_str(&format!("{d} {i}\n"));
    }
    replace_in(root.as_fd(), OsStr::new(OWN_RECORD), text.as_bytes(), dir)?;
    replace_in(
        root.as_fd(),
        OsStr::new("manifest.json"),
        manifest_json,
        dir,
    )?;
    Ok(())
}

/// What is below `files/` before anything is written: a refusal, with the paths named, if
/// anything there is not the export's own.
fn look(root: BorrowedFd<'_>, dev: u64, dir: &Path, shown: &Path) -> Result<Existing> {
    let (own, prev_files, prev_dirs) = previous_export(root, dev);
    let mut existing = Existing::default();
    let euid = nix::unistd::geteuid().as_raw();
    match fsx::lstat_at(root, OsStr::new("files")) {
        Ok(st) if st.is_dir() => {
            let ours = st.dev == dev
                && (own.contains(&(st.dev, st.ino)) || (st.uid == euid && !prev_files.is_empty()));
            let sub =
                fsx::open_dir_at(root, OsStr::new("files")).map_err(|e| Error::io(shown, e))?;
            let empty = fsx::read_dir_names(sub.as_fd())
                .map_err(|e| Error::io(shown, e))?
                .is_empty();
            if !ours && !empty {
                existing.foreign.push(format!(
                    "{} (a directory this export did not create{})",
                    shown.display(),
                    if st.dev != dev {
                        ", on another file system"
                    } else {
                        ""
                    }
                ));
            } else if ours {
                scan_existing(
                    sub.as_fd(),
                    Path::new(""),
                    dev,
                    &own,
                    &prev_files,
                    &prev_dirs,
                    shown,
                    &mut existing,
                )
                .map_err(|e| Error::io(shown, e))?;
            }
        }
        Ok(_) => existing.foreign.push(format!(
            "{} (not a directory, and not written by this export)",
            shown.display()
        )),
        Err(_) => {}
    }
    if !existing.foreign.is_empty() {
        let n = existing.foreign.len();
        let mut list: Vec<String> = existing.foreign.iter().take(10).cloned().collect();
        if n > 10 {
            list.push(format!("and {} more", n - 10));
        }
        return Err(Error::Invalid {
            what: format!(
                "{} holds what this export did not write, which it neither removes nor writes over: {}; \
                 move that out of the export directory or export into a new one (nothing was changed)",
                dir.display(),
                list.join(", ")
            ),
        });
    }
    Ok(existing)
}

/// Writes one file of the export under a temporary name and renames it into place; its
/// (device, inode).
fn write_file(
    reader: &BlobReader,
    parent: BorrowedFd<'_>,
    name: &OsStr,
    f: &ManifestFile,
    node: &Node,
    shown: &Path,
    n: u64,
) -> Result<(u64, u64)> {
    // A short temporary name: the file's own may be up to 255 bytes already.
    let tmp_name = OsString::from(format!(".{n}.coop-partial"));
    let fd = fsx::create_file_at(parent, &tmp_name).map_err(|e| Error::io(shown, e))?;
    let written = std::fs::File::from(fd);
    if let Err(e) = write_content(reader, node, f, &written).map_err(|e| content_error(shown, e)) {
        let _ = fsx::remove_at(parent, &tmp_name, false);
        return Err(e);
    }
    let meta = fsx::Meta {
        mode: f.mode,
        uid: 0,
        gid: 0,
        mtime_ns: f.mtime_ns,
        xattrs: &[],
        owner: false,
    };
    fsx::set_meta_fd(written.as_fd(), &meta).map_err(|e| Error::io(shown, e))?;
    let key = fsx::fstat(written.as_fd())
        .map(|s| (s.dev, s.ino))
        .map_err(|e| Error::io(shown, e))?;
    nix::fcntl::renameat(parent, tmp_name.as_os_str(), parent, name)
        .map_err(|e| Error::io(shown, e.into()))?;
    Ok(key)
}

/// Removes our files the new manifest does not list, then our directories left empty
/// (deepest first), each only if it is still the entry looked at.
fn remove_stale(
    files: BorrowedFd<'_>,
    existing: &Existing,
    keep: &HashSet<PathBuf>,
    record: &HashSet<(u64, u64)>,
    shown: &Path,
    rep: &mut ExportReport,
) -> Result<()> {
    for (rel, key) in &existing.files {
        if keep.contains(rel) {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().expect("a name");
        let Ok(pfd) = open_ours(files, parent, &existing.dirs) else {
            continue;
        };
        match fsx::lstat_at(pfd.as_fd(), name) {
            Ok(st) if (st.dev, st.ino) == *key && !st.is_dir() => {
                fsx::remove_at(pfd.as_fd(), name, false)
                    .map_err(|e| Error::io(shown.join(rel), e))?;
                if !name.as_bytes().ends_with(b".coop-partial") {
                    rep.removed += 1;
                }
            }
            _ => {}
        }
    }
    let mut dirs: Vec<(&PathBuf, &(u64, u64))> = existing.dirs.iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (rel, key) in dirs {
        if record.contains(key) {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().expect("a name");
        let Ok(pfd) = open_ours(files, parent, &existing.dirs) else {
            continue;
        };
        if let Ok(st) = fsx::lstat_at(pfd.as_fd(), name) {
            if st.is_dir() && (st.dev, st.ino) == *key {
                // Not empty (something appeared): left as it is.
                let _ =
                    nix::unistd::unlinkat(pfd.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir);
            }
        }
    }
    Ok(())
}

/// Writes `name` in `dir` whole: a new temporary file, synced, renamed over it.
pub(super) fn replace_in(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    content: &[u8],
    shown: &Path,
) -> Result<()> {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".partial");
    let shown = shown.join(name);
    let fd = fsx::create_file_at(dir, &tmp).map_err(|e| Error::io(&shown, e))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&shown, e))?;
    nix::fcntl::renameat(dir, tmp.as_os_str(), dir, name).map_err(|e| Error::io(&shown, e.into()))
}

/// Opens (creating) the parent directories of `rel` below `dir`, one component at a time.
pub(super) fn make_parents(
    dir: BorrowedFd<'_>,
    rel: &Path,
    record: &mut HashSet<(u64, u64)>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    let mut cur = fsx::open_beneath(
        dir,
        Path::new(""),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        0,
    )?;
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur = fsx::make_dir_at(cur.as_fd(), c.as_os_str())?;
            let st = fsx::fstat(cur.as_fd())?;
            record.insert((st.dev, st.ino));
        }
    }
    Ok(cur)
}

/// The (device, inode) of the file `name` if it holds `f`'s content already.
pub(super) fn same_content(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    f: &ManifestFile,
) -> Option<(u64, u64)> {
    let st = fsx::lstat_at(dir, name).ok()?;
    if !st.is_file() || st.size != f.size {
        return None;
    }
    let fd = fsx::open_file_at(dir, name).ok()?;
    let fst = fsx::fstat(fd.as_fd()).ok()?;
    if !fst.same_entry(&st) {
        return None;
    }
    verify::hash_reader(&mut std::fs::File::from(fd))
        .ok()
        .filter(|(_, h)| *h == f.blake3)
        .map(|_| (st.dev, st.ino))
}
