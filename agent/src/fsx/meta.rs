//! Metadata of restored entries: owner, extended attributes, mode and times, set through the
//! open descriptor, or for symlinks and special files with the `*at` calls and
//! `AT_SYMLINK_NOFOLLOW`, never through a path resolved from the top.

use super::*;

/// Metadata to apply to a restored entry.
pub struct Meta<'a> {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
    pub xattrs: &'a [coop_formats::tree::Xattr],
    pub owner: bool,
}

impl<'a> Meta<'a> {
    /// The metadata a tree node records.
    pub fn of(n: &'a coop_formats::tree::Node, owner: bool) -> Self {
        Self {
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            mtime_ns: n.mtime_ns,
            xattrs: &n.xattrs,
            owner,
        }
    }
}

fn timespec(ns: i64) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// Sets owner, extended attributes, mode and times through an open descriptor, in that
/// order (ownership changes clear set-id bits and file capabilities, so the xattrs and the
/// mode come after it; the time last). Each is tried whatever happened to the others: an
/// xattr the file system or privileges refuse (too big for ext4, a namespace the caller
/// may not write) never keeps the owner, mode or times from being set. What was not set is
/// returned as one error naming each part (and each xattr by name). When the owner could
/// not be set, the set-id bits are not set either.
pub fn set_meta_fd(fd: BorrowedFd<'_>, m: &Meta) -> io::Result<()> {
    use xattr::FileExt;
    let mut missed: Vec<String> = Vec::new();
    let mut mode = m.mode & 0o7777;
    if m.owner {
        if let Err(e) = nix::unistd::fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(m.uid)),
            Some(nix::unistd::Gid::from_raw(m.gid)),
        ) {
            missed.push(format!("owner {}:{} not set ({})", m.uid, m.gid, errno(e)));
            mode &= !0o6000;
        }
    }
    if !m.xattrs.is_empty() {
        match fd.try_clone_to_owned() {
            Ok(dup) => {
                let f = std::fs::File::from(dup);
                for x in m.xattrs {
                    if let Err(e) = f.set_xattr(&x.name, &x.value) {
                        missed.push(format!(
                            "xattr {:?} ({} bytes) not set ({e})",
                            x.name,
                            x.value.len()
                        ));
                    }
                }
            }
            Err(e) => missed.push(format!("xattrs not set ({e})")),
        }
    }
    if let Err(e) = nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode)) {
        missed.push(format!("mode {:o} not set ({})", mode, errno(e)));
    }
    let t = timespec(m.mtime_ns);
    if let Err(e) = nix::sys::stat::futimens(fd, &t, &t) {
        missed.push(format!("times not set ({})", errno(e)));
    }
    if missed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(missed.join("; ")))
    }
}

/// Sets owner and times of a symlink (its mode means nothing) without following it.
pub fn set_meta_symlink_at(dir: BorrowedFd<'_>, name: &OsStr, m: &Meta) -> io::Result<()> {
    if m.owner {
        nix::unistd::fchownat(
            dir,
            name,
            Some(nix::unistd::Uid::from_raw(m.uid)),
            Some(nix::unistd::Gid::from_raw(m.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(errno)?;
    }
    let t = timespec(m.mtime_ns);
    nix::sys::stat::utimensat(
        dir,
        name,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(errno)
}

/// Sets metadata of a FIFO or device node (they are never opened for I/O): the entry is
/// opened with `O_PATH | O_NOFOLLOW`, checked not to be a symlink, and changed through
/// `/proc/self/fd/N`, which names exactly that inode whatever happens to the name.
pub fn set_meta_special_at(dir: BorrowedFd<'_>, name: &OsStr, m: &Meta) -> io::Result<()> {
    let fd = open_at(dir, name, OFlag::O_PATH, 0)?;
    let st = fstat(fd.as_fd())?;
    if st.is_symlink() || st.is_dir() || st.is_file() {
        return Err(io::Error::other("replaced while being restored"));
    }
    let p = Path::new("/proc/self/fd").join(fd.as_raw_fd().to_string());
    if m.owner {
        nix::unistd::fchownat(
            fd.as_fd(),
            "",
            Some(nix::unistd::Uid::from_raw(m.uid)),
            Some(nix::unistd::Gid::from_raw(m.gid)),
            AtFlags::AT_EMPTY_PATH,
        )
        .map_err(errno)?;
    }
    nix::sys::stat::fchmodat(
        nix::fcntl::AT_FDCWD,
        &p,
        Mode::from_bits_truncate(m.mode & 0o7777),
        nix::sys::stat::FchmodatFlags::FollowSymlink,
    )
    .map_err(errno)?;
    let t = timespec(m.mtime_ns);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &p,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::FollowSymlink,
    )
    .map_err(errno)
}
