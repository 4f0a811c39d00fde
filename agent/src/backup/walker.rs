//! The walker: reads the sources in name order, chunks and hashes file contents, and builds
//! the trees. Unchanged files come from the catalog.
//!
//! Everything is reached through directory descriptors (see [`crate::fsx`]): an entry is
//! looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`, opened relative to its directory with
//! `O_NOFOLLOW`, and the open file is compared (device, inode, type) with what was looked at.
//! Someone who swaps a file for a symlink while the backup runs gets a warning, never the
//! other file's content into the snapshot.

use super::pipeline::Sink;
use crate::catalog::{self, Catalog};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::fsx::{self, Stat};
use crate::patterns::Patterns;
use crate::progress::Progress;
use coop_formats::id::{BlobType, Id};
use coop_formats::snapshot::Summary;
use coop_formats::tree::{Node, NodeKind, Part, Tree, Xattr, MAX_TREE_PART};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

mod file;

/// The signature a valid CACHEDIR.TAG starts with.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// The sources as a tree of path components; `target` marks a source path.
#[derive(Default)]
pub(super) struct Trie {
    pub children: BTreeMap<OsString, Trie>,
    pub target: bool,
}

/// What the walker needs to know of the options.
pub(super) struct WalkOptions {
    pub excludes: Patterns,
    pub one_file_system: bool,
    pub exclude_caches: bool,
    /// CACHEDIR.TAG is not honoured at or below these (absolute, normalised) paths.
    pub cachedir_tag_ignored_below: Vec<PathBuf>,
}

pub(super) struct Walker<'a, 'p> {
    pub chunker: Chunker,
    pub sink: Sink<'a>,
    pub catalog: Option<Catalog>,
    pub opts: WalkOptions,
    pub progress: &'p dyn Progress,
    pub summary: Summary,
    pub warnings: Vec<String>,
    /// Directories whose contents were left out for their CACHEDIR.TAG.
    pub excluded_caches: Vec<String>,
    pub link_groups: HashMap<(u64, u64), u64>,
    pub users: HashMap<u32, Option<String>>,
    pub groups: HashMap<u32, Option<String>>,
    /// Hash of the file being read (when building a manifest).
    pub file_hasher: Option<blake3::Hasher>,
    /// Manifest entries (when building a manifest).
    pub manifest: Option<Vec<coop_formats::manifest::ManifestFile>>,
}

fn kind_of(st: &Stat) -> NodeKind {
    use nix::libc::{S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK};
    match st.file_type() {
        S_IFREG => NodeKind::File,
        S_IFDIR => NodeKind::Dir,
        S_IFLNK => NodeKind::Symlink,
        S_IFIFO => NodeKind::Fifo,
        S_IFSOCK => NodeKind::Socket,
        S_IFCHR => NodeKind::Chardev,
        S_IFBLK => NodeKind::Blockdev,
        _ => NodeKind::Socket,
    }
}

impl Walker<'_, '_> {
    pub fn warn(&mut self, msg: String) {
        self.progress.warn(&msg);
        self.warnings.push(msg);
    }

    pub fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    pub fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }

    /// A node with ownership, mode and mtime, but no extended attributes yet.
    fn bare_node(&mut self, st: &Stat, name: Vec<u8>, kind: NodeKind) -> Node {
        let mut n = Node::new(name, kind);
        n.mode = st.mode & 0o7777;
        n.uid = st.uid;
        n.gid = st.gid;
        n.user = self.user(st.uid);
        n.group = self.group(st.gid);
        n.mtime_ns = st.mtime_ns;
        n
    }

    /// Extended attributes of an open file or directory.
    fn read_xattrs_fd(&mut self, path: &Path, fd: BorrowedFd<'_>, n: &mut Node) {
        use xattr::FileExt;
        let Ok(owned) = fd.try_clone_to_owned() else {
            return;
        };
        let f = std::fs::File::from(owned);
        let Ok(names) = f.list_xattr() else { return };
        for an in names {
            let Some(s) = an.to_str() else {
                self.warn(format!(
                    "{}: skipping xattr with a non-UTF-8 name",
                    path.display()
                ));
                continue;
            };
            if let Ok(Some(v)) = f.get_xattr(&an) {
                n.xattrs.push(Xattr {
                    name: s.to_string(),
                    value: v,
                });
            }
        }
        n.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Extended attributes of an entry that is not opened (symlinks, special files), read
    /// through `/proc/self/fd` of its directory without following it.
    fn read_xattrs_at(&mut self, dir: BorrowedFd<'_>, name: &OsStr, n: &mut Node) {
        let p = fsx::proc_path(dir, name);
        if let Ok(names) = xattr::list(&p) {
            for an in names {
                if let (Some(s), Ok(Some(v))) = (an.to_str(), xattr::get(&p, &an)) {
                    n.xattrs.push(Xattr {
                        name: s.to_string(),
                        value: v,
                    });
                }
            }
            n.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// Chunks everything from `r` as data blobs. A read error comes back as `Err(Ok(io))`.
    pub(super) fn chunk_stream(
        &mut self,
        r: impl Read,
        parts: &mut Vec<Part>,
    ) -> std::result::Result<u64, ChunkError> {
        let sink = &mut self.sink;
        let progress = self.progress;
        let hasher = &mut self.file_hasher;
        self.chunker.chunk(r, ChunkError::Read, |c: &[u8]| {
            if let Some(h) = hasher.as_mut() {
                h.update(c);
            }
            parts.push(Part::Blob(
                sink.submit(BlobType::Data, c).map_err(ChunkError::Sink)?,
            ));
            progress.add_bytes(c.len() as u64);
            Ok(())
        })
    }

    /// A node for any directory entry (walking the directories below it); `None` if it was
    /// skipped with a warning.
    pub fn entry_node(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &Stat,
        root_dev: u64,
    ) -> Result<Option<Node>> {
        match self.entry(dir, name, path, st, root_dev)? {
            Entry::Done(n) => Ok(n),
            Entry::Descend(mut n, fd) => {
                n.subtree = Some(self.walk_dir(fd, path, root_dev)?);
                Ok(Some(n))
            }
        }
    }

    /// One directory entry, without walking below it: a finished node, or an opened
    /// directory whose node waits for its subtree.
    fn entry(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &Stat,
        root_dev: u64,
    ) -> Result<Entry> {
        let kind = kind_of(st);
        let node = match kind {
            NodeKind::File => return self.file_node(dir, name, path, st).map(Entry::Done),
            NodeKind::Dir => {
                let fd = match fsx::open_dir_at(dir, name) {
                    Ok(fd) => fd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.warn(vanished(path));
                        return Ok(Entry::Done(None));
                    }
                    Err(e) => {
                        self.warn(format!(
                            "{}: cannot open directory, skipped: {e}",
                            path.display()
                        ));
                        return Ok(Entry::Done(None));
                    }
                };
                match fsx::fstat(fd.as_fd()) {
                    Ok(now) if now.same_entry(st) => {}
                    _ => {
                        self.warn(format!(
                            "{}: replaced while being backed up; skipped",
                            path.display()
                        ));
                        return Ok(Entry::Done(None));
                    }
                }
                let mut n = self.bare_node(st, name.as_bytes().to_vec(), NodeKind::Dir);
                self.read_xattrs_fd(path, fd.as_fd(), &mut n);
                self.summary.dirs += 1;
                if self.opts.one_file_system && st.dev != root_dev {
                    n.subtree = Some(self.empty_tree()?);
                    n
                } else {
                    return Ok(Entry::Descend(n, fd));
                }
            }
            NodeKind::Symlink => {
                let target = match fsx::read_link_at(dir, name) {
                    Ok(t) => t,
                    Err(e) => {
                        self.warn(format!(
                            "{}: cannot read link, skipped: {e}",
                            path.display()
                        ));
                        return Ok(Entry::Done(None));
                    }
                };
                let mut n = self.bare_node(st, name.as_bytes().to_vec(), NodeKind::Symlink);
                self.read_xattrs_at(dir, name, &mut n);
                n.target = Some(target);
                n
            }
            _ => {
                let mut n = self.bare_node(st, name.as_bytes().to_vec(), kind);
                self.read_xattrs_at(dir, name, &mut n);
                if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
                    n.rdev = Some(st.rdev);
                }
                n
            }
        };
        Ok(Entry::Done(Some(node)))
    }

    pub fn empty_tree(&mut self) -> Result<Id> {
        self.store_tree(Tree::default())
    }

    /// Stores a directory listing: one tree blob, or, when its encoding is over
    /// [`MAX_TREE_PART`], its parts and a split tree naming them (SPEC section 8.5), so
    /// every tree written is one a reader reads.
    pub fn store_tree(&mut self, mut t: Tree) -> Result<Id> {
        let mut parts = t.encode_parts(MAX_TREE_PART);
        if parts.len() == 1 {
            let bytes = parts.pop().expect("one part");
            return self.sink.submit(BlobType::Tree, &bytes);
        }
        let mut ids = Vec::with_capacity(parts.len());
        for p in parts {
            if p.len() > MAX_TREE_PART {
                // One entry alone too big for a blob (not possible with Linux's xattr
                // and name limits): refuse rather than write a tree no reader reads.
                return Err(Error::Invalid {
                    what: format!(
                        "a directory entry's metadata takes {} bytes, over the {MAX_TREE_PART}-byte tree limit",
                        p.len()
                    ),
                });
            }
            ids.push(self.sink.submit(BlobType::Tree, &p)?);
        }
        let mut split = Tree {
            nodes: vec![],
            parts: ids,
        };
        self.sink.submit(BlobType::Tree, &split.encode())
    }

    fn is_cache_dir(dir: BorrowedFd<'_>) -> bool {
        let mut buf = [0u8; 43];
        fsx::open_file_at(dir, OsStr::new("CACHEDIR.TAG"))
            .map(std::fs::File::from)
            .and_then(|mut f| f.read_exact(&mut buf))
            .is_ok_and(|_| buf == CACHEDIR_SIGNATURE)
    }

    /// The sorted names of an open directory, for walking it (after `CACHEDIR.TAG`); none,
    /// with a warning, if it cannot be listed.
    fn dir_names(&mut self, dir: BorrowedFd<'_>, path: &Path) -> Vec<OsString> {
        let mut names = match fsx::read_dir_names(dir) {
            Ok(n) => n,
            Err(e) => {
                self.warn(format!(
                    "{}: cannot list directory, stored empty: {e}",
                    path.display()
                ));
                return Vec::new();
            }
        };
        if self.opts.exclude_caches
            && names.iter().any(|n| n == "CACHEDIR.TAG")
            && !self
                .opts
                .cachedir_tag_ignored_below
                .iter()
                .any(|b| path.starts_with(b))
            && Self::is_cache_dir(dir)
        {
            names.retain(|n| n == "CACHEDIR.TAG");
            self.excluded_caches
                .push(path.as_os_str().to_string_lossy().into_owned());
            self.progress.item("excluded (CACHEDIR.TAG)", path);
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        crate::fault::pause("backup:after-list");
        names
    }

    /// Walks an open directory and everything below it. The walk keeps its own stack of open
    /// directories (one small frame each, on the heap), so its use of the thread's stack does
    /// not grow with the depth of the tree: a member's directories nested thousands deep
    /// cannot overflow it (the daemon's job threads have 2 MiB).
    pub fn walk_dir(&mut self, dir: OwnedFd, path: &Path, root_dev: u64) -> Result<Id> {
        let names = self.dir_names(dir.as_fd(), path);
        let mut stack = vec![Frame {
            names: names.into_iter(),
            dir,
            path: path.to_path_buf(),
            tree: Tree::default(),
            node: None,
        }];
        loop {
            let top = stack.last_mut().expect("the walk's stack is not empty");
            let Some(name) = top.names.next() else {
                let done = stack.pop().expect("not empty");
                let id = self.store_tree(done.tree)?;
                match (done.node, stack.last_mut()) {
                    (Some(mut n), Some(parent)) => {
                        n.subtree = Some(id);
                        parent.tree.nodes.push(n);
                        continue;
                    }
                    _ => return Ok(id),
                }
            };
            let p = top.path.join(&name);
            if self.opts.excludes.is_match(&p) {
                continue;
            }
            let st = match fsx::lstat_at(top.dir.as_fd(), &name) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Listed, then gone: moved or deleted while the backup ran.
                    self.warn(vanished(&p));
                    continue;
                }
                Err(e) => {
                    self.warn(format!("{}: cannot stat, skipped: {e}", p.display()));
                    continue;
                }
            };
            match self.entry(top.dir.as_fd(), &name, &p, &st, root_dev)? {
                Entry::Done(Some(n)) => top.tree.nodes.push(n),
                Entry::Done(None) => {}
                Entry::Descend(n, fd) => {
                    let names = self.dir_names(fd.as_fd(), &p);
                    stack.push(Frame {
                        names: names.into_iter(),
                        dir: fd,
                        path: p,
                        tree: Tree::default(),
                        node: Some(n),
                    });
                }
            }
        }
    }

    /// The tree of the parents of the given targets, down to the targets themselves. The
    /// parents are opened one component at a time without following symlinks.
    pub fn virtual_dir(
        &mut self,
        dir: BorrowedFd<'_>,
        prefix: &Path,
        trie: &Trie,
        extra: Vec<Node>,
    ) -> Result<Id> {
        let mut tree = Tree {
            nodes: extra,
            parts: vec![],
        };
        for (name, child) in &trie.children {
            let path = prefix.join(name);
            let st = fsx::lstat_at(dir, name).map_err(|e| Error::io(&path, e))?;
            let node = if child.target {
                self.entry_node(dir, name, &path, &st, st.dev)?
            } else {
                let fd = fsx::open_dir_at(dir, name).map_err(|e| {
                    Error::io(
                        &path,
                        std::io::Error::new(
                            e.kind(),
                            format!("{e} (a source path must not pass through a symlink)"),
                        ),
                    )
                })?;
                let mut n = self.bare_node(&st, name.clone().into_vec(), NodeKind::Dir);
                self.read_xattrs_fd(&path, fd.as_fd(), &mut n);
                n.subtree = Some(self.virtual_dir(fd.as_fd(), &path, child, Vec::new())?);
                Some(n)
            };
            tree.nodes.extend(node);
        }
        let mut seen = HashSet::new();
        for n in &tree.nodes {
            if !seen.insert(&n.name) {
                return Err(Error::invalid(format!(
                    "two sources would both be stored as /{}",
                    n.display_name()
                )));
            }
        }
        self.store_tree(tree)
    }
}

/// The warning for an entry listed in its directory and gone when it was looked at.
fn vanished(path: &Path) -> String {
    format!(
        "{}: vanished during the backup (moved or deleted after its directory was listed); not in this snapshot",
        path.display()
    )
}

/// One directory entry as [`Walker::entry`] leaves it.
enum Entry {
    /// A finished node, or `None` if the entry was skipped with a warning.
    Done(Option<Node>),
    /// A directory, opened and checked, whose node gets its subtree once it is walked.
    Descend(Node, OwnedFd),
}

/// A directory being walked: its remaining names, its tree so far, and its own node (which
/// goes into the parent's tree when it is done; `None` for where the walk started).
struct Frame {
    names: std::vec::IntoIter<OsString>,
    dir: OwnedFd,
    path: PathBuf,
    tree: Tree,
    node: Option<Node>,
}

/// Why chunking a stream stopped.
pub(super) enum ChunkError {
    Read(std::io::Error),
    Sink(Error),
}

/// Normalises a source path to an absolute path without `.` or `..` components.
pub(super) fn absolute(p: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}
