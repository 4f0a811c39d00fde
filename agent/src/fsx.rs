//! File system access that someone who can write into the tree cannot redirect.
//!
//! coop runs as root over directories members can write to (home directories, Nextcloud
//! data, maildirs), and restores into them. A member can swap a directory for a symlink
//! while coop works (`renameat2(RENAME_EXCHANGE)` in a loop). So nothing here resolves a
//! path from the top while following symlinks:
//!
//! - paths are opened beneath a directory descriptor with `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS)`, or, where the kernel lacks it, one `openat(O_NOFOLLOW)` per
//!   component;
//! - metadata is set through the open descriptor (`fchmod`, `fchown`, `futimens`,
//!   `fsetxattr`), or for symlinks with the `*at` calls and `AT_SYMLINK_NOFOLLOW`;
//! - what is opened is compared (device, inode, type) with what was looked at.

mod meta;
pub use meta::{set_meta_fd, set_meta_special_at, set_meta_symlink_at, Meta};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicU8, Ordering};

/// What `fstat`/`fstatat` said about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blocks: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Stat {
    fn from(s: nix::sys::stat::FileStat) -> Self {
        let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
        Self {
            dev: s.st_dev,
            ino: s.st_ino,
            mode: s.st_mode,
            nlink: s.st_nlink,
            uid: s.st_uid,
            gid: s.st_gid,
            rdev: s.st_rdev,
            size: s.st_size.max(0) as u64,
            blocks: s.st_blocks.max(0) as u64,
            mtime_ns: ns(s.st_mtime, s.st_mtime_nsec),
            ctime_ns: ns(s.st_ctime, s.st_ctime_nsec),
        }
    }

    pub fn file_type(&self) -> u32 {
        self.mode & nix::libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == nix::libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.file_type() == nix::libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.file_type() == nix::libc::S_IFLNK
    }
    /// The same inode of the same type (what was looked at is what was opened).
    pub fn same_entry(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino && self.file_type() == other.file_type()
    }
}

fn errno(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `fstat` of an open descriptor.
pub fn fstat(fd: impl AsFd) -> io::Result<Stat> {
    nix::sys::stat::fstat(fd).map(Stat::from).map_err(errno)
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Stat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(Stat::from)
        .map_err(errno)
}

/// Opens `name` in `dir` without following a symlink there (`O_NOFOLLOW | O_CLOEXEC` added).
pub fn open_at(dir: BorrowedFd<'_>, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(errno)
}

/// Opens a directory entry for reading its content: regular files are opened non-blocking
/// (so a FIFO swapped in cannot hang the open) and without becoming a controlling terminal.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    open_at(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        0,
    )
}

/// Opens a subdirectory (never through a symlink).
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    open_at(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
}

/// 0 unknown, 1 `openat2` works, 2 it does not.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// The normal components of a relative path (`.` dropped); `..`, absolute paths and empty
/// paths are refused.
fn components(rel: &Path) -> io::Result<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", rel.display()),
                ))
            }
        }
    }
    Ok(out)
}

/// Opens `rel` beneath `root` with no symlink in any component: `openat2` with
/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or one `openat(O_NOFOLLOW)` per component.
/// An empty `rel` opens `root` itself again.
pub fn open_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlag,
    mode: u32,
) -> io::Result<OwnedFd> {
    let comps = components(rel)?;
    if comps.is_empty() {
        return open_at(root, OsStr::new("."), flags, mode);
    }
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        use nix::fcntl::{OpenHow, ResolveFlag};
        let joined: std::path::PathBuf = comps.iter().collect();
        let how = OpenHow::new()
            .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(mode))
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        match nix::fcntl::openat2(root, &joined, how) {
            Err(Errno::ENOSYS) | Err(Errno::EPERM) if OPENAT2.load(Ordering::Relaxed) == 0 => {
                OPENAT2.store(2, Ordering::Relaxed);
            }
            // EAGAIN: a rename raced the lookup; the fallback below is as safe.
            Err(Errno::EAGAIN) => {}
            r => {
                OPENAT2.store(1, Ordering::Relaxed);
                return r.map_err(errno);
            }
        }
    }
    let (last, parents) = comps.split_last().expect("not empty");
    let mut cur: Option<OwnedFd> = None;
    for c in parents {
        let next = open_dir_at(cur.as_ref().map_or(root, |f| f.as_fd()), c)?;
        cur = Some(next);
    }
    open_at(cur.as_ref().map_or(root, |f| f.as_fd()), last, flags, mode)
}

/// The parent directory of `rel` beneath `root`, opened, and the last component.
pub fn open_parent<'p>(root: BorrowedFd<'_>, rel: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a file name"))?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    Ok((
        open_beneath(root, parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?,
        name,
    ))
}

/// Opens `/`.
pub fn open_root() -> io::Result<OwnedFd> {
    nix::fcntl::open(
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno)
}

/// Opens an absolute directory path given by the operator, creating missing directories,
/// with no symlink in any component (so nobody who can write to a parent can redirect it).
pub fn open_or_create_dir(path: &Path) -> io::Result<OwnedFd> {
    let abs = std::path::absolute(path)?;
    let rel = abs.strip_prefix("/").unwrap_or(&abs);
    let mut cur = open_root()?;
    for c in components(rel)? {
        match nix::sys::stat::mkdirat(cur.as_fd(), c, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(errno(e)),
        }
        cur = open_dir_at(cur.as_fd(), c).map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) || e.raw_os_error() == Some(nix::libc::ENOTDIR) {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: the component {:?} is a symlink or not a directory; give a path without symlinks",
                        path.display(),
                        c
                    ),
                )
            } else {
                e
            }
        })?;
    }
    Ok(cur)
}

/// Opens an absolute path for reading with no symlink in any component but the last, which
/// is not followed either: `O_PATH`-like access to what is really there.
pub fn open_absolute(path: &Path, flags: OFlag) -> io::Result<OwnedFd> {
    let root = open_root()?;
    let rel = path.strip_prefix("/").unwrap_or(path);
    open_beneath(root.as_fd(), rel, flags, 0)
}

/// An output file made in a directory given by the operator, through that directory's
/// descriptor: the directory is opened once (no symlink in any component), the content goes
/// to a new temporary file there (`O_EXCL | O_NOFOLLOW`), and [`OutFile::commit`] renames it
/// to its name with `renameat2(RENAME_NOREPLACE)`. Someone who swaps the directory (or a
/// parent) for a symlink meanwhile cannot redirect the file, and nothing of that name is ever
/// replaced. Dropped without a commit, the temporary file is removed.
pub struct OutFile {
    dir: OwnedFd,
    tmp: std::ffi::OsString,
    name: std::ffi::OsString,
    committed: bool,
}

impl OutFile {
    /// Opens the parent of the absolute or relative `path` and creates the temporary file.
    pub fn create(path: &Path) -> io::Result<(Self, std::fs::File)> {
        let abs = std::path::absolute(path)?;
        let name = abs
            .file_name()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "a path without a file name")
            })?
            .to_os_string();
        let parent = abs.parent().unwrap_or(Path::new("/"));
        let dir = open_absolute(parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(|e| {
            if matches!(
                e.raw_os_error(),
                Some(nix::libc::ELOOP) | Some(nix::libc::ENOTDIR)
            ) {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{}: a symlink or not a directory on the way; give a path without symlinks",
                        parent.display()
                    ),
                )
            } else {
                e
            }
        })?;
        for i in 0..16u32 {
            let mut tmp = std::ffi::OsString::from(".");
            tmp.push(&name);
            tmp.push(format!(".{}-{i}.coop-partial", std::process::id()));
            match open_at(
                dir.as_fd(),
                &tmp,
                OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                0o600,
            ) {
                Ok(fd) => {
                    return Ok((
                        Self {
                            dir,
                            tmp,
                            name,
                            committed: false,
                        },
                        std::fs::File::from(fd),
                    ))
                }
                Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "{}: no temporary name is free beside it",
            path.display()
        )))
    }

    /// Gives the temporary file its name; an entry of that name already there is an error
    /// (`EEXIST`), never replaced.
    pub fn commit(mut self) -> io::Result<()> {
        use nix::fcntl::{renameat2, RenameFlags};
        renameat2(
            self.dir.as_fd(),
            self.tmp.as_os_str(),
            self.dir.as_fd(),
            self.name.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(errno)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = remove_at(self.dir.as_fd(), &self.tmp, false);
        }
    }
}

/// Creates a directory `name` in `dir` (an existing directory is fine; anything else in
/// the way is removed first) and opens it.
pub fn make_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    for _ in 0..3 {
        match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                let st = lstat_at(dir, name)?;
                if !st.is_dir() {
                    remove_at(dir, name, false)?;
                    continue;
                }
            }
            Err(e) => return Err(errno(e)),
        }
        match open_dir_at(dir, name) {
            // Swapped for something else between the two calls: clear it and try again.
            Err(e)
                if e.raw_os_error() == Some(nix::libc::ELOOP)
                    || e.raw_os_error() == Some(nix::libc::ENOTDIR) =>
            {
                remove_at(dir, name, false)?;
            }
            r => return r,
        }
    }
    Err(io::Error::other(format!(
        "{name:?} keeps being replaced while it is created"
    )))
}

/// Creates a new regular file `name` in `dir` (`O_EXCL`; whatever else is there is
/// removed first, a directory refused), open for writing.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    for _ in 0..3 {
        match open_at(
            dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
            0o600,
        ) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EEXIST) => {
                let st = lstat_at(dir, name)?;
                if st.is_dir() {
                    return Err(io::Error::other("a directory is in the way"));
                }
                remove_at(dir, name, false)?;
            }
            r => return r,
        }
    }
    Err(io::Error::other(format!(
        "{name:?} keeps being replaced while it is created"
    )))
}

/// Removes `name` from `dir` (a directory only if `dir_too` and it is empty). Missing is fine.
pub fn remove_at(dir: BorrowedFd<'_>, name: &OsStr, dir_too: bool) -> io::Result<()> {
    use nix::unistd::{unlinkat, UnlinkatFlags};
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) if dir_too => match unlinkat(dir, name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(errno(e)),
        },
        Err(e) => Err(errno(e)),
    }
}

/// Clears whatever non-directory is at `name`; `true` if a directory is there.
pub fn clear_non_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<bool> {
    match lstat_at(dir, name) {
        Ok(st) if st.is_dir() => Ok(true),
        Ok(_) => remove_at(dir, name, false).map(|_| false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// `symlinkat`, replacing a non-directory in the way.
pub fn symlink_at(dir: BorrowedFd<'_>, name: &OsStr, target: &OsStr) -> io::Result<()> {
    if clear_non_dir_at(dir, name)? {
        return Err(io::Error::other("a directory is in the way"));
    }
    nix::unistd::symlinkat(target, dir, name).map_err(errno)
}

/// `linkat` from `(from_dir, from)` to `(dir, name)`, never following symlinks.
pub fn hard_link_at(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    if clear_non_dir_at(dir, name)? {
        return Err(io::Error::other("a directory is in the way"));
    }
    nix::unistd::linkat(from_dir, from, dir, name, AtFlags::empty()).map_err(errno)
}

/// Creates a FIFO or device node with `mknodat` (never opened).
pub fn mknod_at(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    kind: nix::sys::stat::SFlag,
    rdev: u64,
) -> io::Result<()> {
    if clear_non_dir_at(dir, name)? {
        return Err(io::Error::other("a directory is in the way"));
    }
    nix::sys::stat::mknodat(dir, name, kind, Mode::from_bits_truncate(0o600), rdev).map_err(errno)
}

/// Reads a symlink's target.
pub fn read_link_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    nix::fcntl::readlinkat(dir, name)
        .map(|t| t.as_bytes().to_vec())
        .map_err(errno)
}

/// The names in an open directory (without `.` and `..`), unsorted.
pub fn read_dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let dup = open_at(
        dir,
        OsStr::new("."),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        0,
    )?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(errno)?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e.map_err(errno)?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(std::ffi::OsStr::from_bytes(n).to_os_string());
        }
    }
    Ok(out)
}

/// A path that names the entry `name` of the open directory `dir` through `/proc`, for the
/// few calls that have no descriptor form (`lgetxattr` on a symlink). The kernel resolves
/// `/proc/self/fd/N` to the directory itself, so a swapped parent cannot redirect it.
pub fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> std::path::PathBuf {
    Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_beneath_refuses_symlinks_and_escapes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("a")).unwrap();
        std::fs::write(d.path().join("a/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("a/l")).unwrap();
        let root = open_or_create_dir(d.path()).unwrap();
        assert!(open_beneath(root.as_fd(), Path::new("a/f"), OFlag::O_RDONLY, 0).is_ok());
        assert!(open_beneath(root.as_fd(), Path::new("a/l/passwd"), OFlag::O_RDONLY, 0).is_err());
        assert!(open_beneath(root.as_fd(), Path::new("a/l"), OFlag::O_RDONLY, 0).is_err());
        assert!(open_beneath(root.as_fd(), Path::new("../x"), OFlag::O_RDONLY, 0).is_err());
        assert!(open_beneath(root.as_fd(), Path::new("/etc/passwd"), OFlag::O_RDONLY, 0).is_err());
        // The fallback walk refuses the same.
        OPENAT2.store(2, Ordering::Relaxed);
        assert!(open_beneath(root.as_fd(), Path::new("a/l/passwd"), OFlag::O_RDONLY, 0).is_err());
        assert!(open_beneath(root.as_fd(), Path::new("a/f"), OFlag::O_RDONLY, 0).is_ok());
        OPENAT2.store(0, Ordering::Relaxed);
        // A target path through a symlink is refused.
        assert!(open_or_create_dir(&d.path().join("a/l/x")).is_err());
        assert!(!Path::new("/etc/x").exists());
    }

    #[test]
    fn create_replaces_what_is_in_the_way_without_following() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, b"keep").unwrap();
        std::fs::create_dir(d.path().join("t")).unwrap();
        std::os::unix::fs::symlink(&outside, d.path().join("t/f")).unwrap();
        let t = open_or_create_dir(&d.path().join("t")).unwrap();
        let f = create_file_at(t.as_fd(), OsStr::new("f")).unwrap();
        nix::unistd::write(&f, b"new").unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"keep");
        assert_eq!(std::fs::read(d.path().join("t/f")).unwrap(), b"new");
    }
}
