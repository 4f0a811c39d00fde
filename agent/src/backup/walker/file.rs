//! Files: opened relative to their directory and checked to be the entry looked at, read
//! (holes of sparse files skipped, a file that changed while read read once more), chunked
//! and hashed; an unchanged file's record comes from the catalog.

use super::*;

impl Walker<'_, '_> {
    /// Reads a file's content from its open descriptor, skipping holes of sparse files.
    fn read_file(&mut self, path: &Path, f: std::fs::File, st: &Stat) -> Result<(Vec<Part>, u64)> {
        let mut f = f;
        let with_path = |e: ChunkError| match e {
            ChunkError::Read(io) => Error::io(path, io),
            ChunkError::Sink(e) => e,
        };
        let mut parts = Vec::new();
        let sparse = st.size > 0 && st.blocks.saturating_mul(512) < st.size;
        if !sparse {
            let n = self.chunk_stream(&mut f, &mut parts).map_err(with_path)?;
            self.summary.bytes_read += n;
            return Ok((parts, n));
        }
        let mut pos = 0u64;
        let size = st.size;
        loop {
            use nix::unistd::{lseek, Whence};
            let data = match lseek(&f, pos as i64, Whence::SeekData) {
                Ok(d) => d as u64,
                Err(nix::errno::Errno::ENXIO) => size, // no data after pos
                Err(e) => return Err(Error::io(path, e.into())),
            };
            if data >= size {
                break;
            }
            let hole_end = match lseek(&f, data as i64, Whence::SeekHole) {
                Ok(h) => (h as u64).min(size),
                Err(e) => return Err(Error::io(path, e.into())),
            };
            if data > pos {
                parts.push(Part::Hole { hole: data - pos });
                self.hash_zeros(data - pos);
            }
            f.seek(SeekFrom::Start(data))
                .map_err(|e| Error::io(path, e))?;
            let n = self
                .chunk_stream((&mut f).take(hole_end - data), &mut parts)
                .map_err(with_path)?;
            self.summary.bytes_read += n;
            pos = data + n;
            if n < hole_end - data {
                break; // file shrank while we read it
            }
        }
        if pos < size {
            parts.push(Part::Hole { hole: size - pos });
            self.hash_zeros(size - pos);
            pos = size;
        }
        Ok((parts, pos))
    }

    fn hash_zeros(&mut self, mut n: u64) {
        // Static, not on the stack: the walk must use little stack per directory level.
        static ZEROS: [u8; 65536] = [0; 65536];
        if let Some(h) = self.file_hasher.as_mut() {
            while n > 0 {
                let k = n.min(ZEROS.len() as u64) as usize;
                h.update(&ZEROS[..k]);
                n -= k as u64;
            }
        }
    }

    pub fn note_manifest(&mut self, path: &[u8], node: &Node, hash: Option<[u8; 32]>) {
        let (Some(m), Some(hash)) = (self.manifest.as_mut(), hash) else {
            return;
        };
        let rel = path.strip_prefix(b"/").unwrap_or(path);
        let (p, p_hex) = match std::str::from_utf8(rel) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (String::new(), Some(hex::encode(rel))),
        };
        m.push(coop_formats::manifest::ManifestFile {
            path: p,
            path_hex: p_hex,
            size: node.size,
            mode: node.mode,
            mtime_ns: node.mtime_ns,
            blake3: hex::encode(hash),
        });
    }

    /// The catalog's record of `key` if it still describes the file and all its blobs are
    /// stored (one index lookup per blob, noting which packs this snapshot reuses).
    fn unchanged(&mut self, st: &Stat, cached: &catalog::Entry) -> Result<bool> {
        let same = cached.size == st.size
            && cached.mtime_ns == st.mtime_ns
            && cached.ctime_ns == st.ctime_ns
            && cached.ino == st.ino;
        let hashed = self.manifest.is_none() || cached.hash.is_some();
        if !same || !hashed {
            return Ok(false);
        }
        let mut packs = Vec::with_capacity(cached.content.len());
        for p in &cached.content {
            if let Part::Blob(id) = p {
                match self.sink.lookup(id)? {
                    Some(Some(pack)) => packs.push(pack),
                    Some(None) => {}
                    None => return Ok(false),
                }
            }
        }
        self.sink.reused.extend(packs);
        Ok(true)
    }

    pub(super) fn file_node(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &Stat,
    ) -> Result<Option<Node>> {
        let mut node = self.bare_node(st, name.as_bytes().to_vec(), NodeKind::File);
        if st.nlink > 1 {
            let next = self.link_groups.len() as u64 + 1;
            node.link_group = Some(*self.link_groups.entry((st.dev, st.ino)).or_insert(next));
        }
        self.summary.total_files += 1;
        self.progress.add_file();
        let key = path.as_os_str().as_bytes();
        let cached = match &mut self.catalog {
            Some(c) => c.lookup(key)?,
            None => None,
        };
        // Extended attributes change the ctime: with the same ctime, the recorded ones hold.
        let cached_xattrs = cached.as_ref().and_then(|e| {
            (e.ctime_ns == st.ctime_ns)
                .then_some(e.xattrs.clone())
                .flatten()
        });
        if let Some(e) = &cached {
            if let Some(x) = &cached_xattrs {
                if self.unchanged(st, e)? {
                    node.xattrs.clone_from(x);
                    node.size = e.size;
                    node.content = e.content.clone();
                    self.summary.files_unchanged += 1;
                    self.summary.total_bytes += e.size;
                    self.progress.add_bytes(e.size);
                    self.progress.item("unchanged", path);
                    self.note_manifest(key, &node, e.hash);
                    return Ok(Some(node));
                }
            }
        }
        let Some(fd) = self.open_same(dir, name, path, st) else {
            return Ok(None);
        };
        match cached_xattrs {
            Some(x) => node.xattrs = x,
            None => self.read_xattrs_fd(path, fd.as_fd(), &mut node),
        }
        let Some(ReadFile {
            parts,
            size,
            hash,
            stable,
            before,
            attempt,
        }) = self.read_stable(std::fs::File::from(fd), path, st)?
        else {
            return Ok(None);
        };
        if attempt == 2 {
            node.mode = before.mode & 0o7777;
            node.mtime_ns = before.mtime_ns;
        }
        if cached.is_some() {
            self.summary.files_changed += 1;
            self.progress.item("changed", path);
        } else {
            self.summary.files_new += 1;
            self.progress.item("new", path);
        }
        node.size = size;
        node.content = parts;
        self.summary.total_bytes += size;
        if let Some(c) = &mut self.catalog {
            // Only remember what we read if the file did not change while we read it.
            if stable {
                c.record(
                    key.to_vec(),
                    catalog::Entry {
                        size,
                        mtime_ns: before.mtime_ns,
                        ctime_ns: before.ctime_ns,
                        ino: st.ino,
                        content: node.content.clone(),
                        hash,
                        xattrs: Some(node.xattrs.clone()),
                    },
                )?;
            }
        }
        self.note_manifest(key, &node, hash);
        Ok(Some(node))
    }

    /// Opens a file and checks it is still the entry `st` describes (a symlink or rename
    /// race); `None` with a warning if not, or if it cannot be read.
    fn open_same(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        path: &Path,
        st: &Stat,
    ) -> Option<std::os::fd::OwnedFd> {
        let fd = match fsx::open_file_at(dir, name) {
            Ok(fd) => fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.warn(vanished(path));
                return None;
            }
            Err(e) => {
                self.warn(format!("{}: cannot read, skipped: {e}", path.display()));
                return None;
            }
        };
        match fsx::fstat(fd.as_fd()) {
            Ok(now) if now.same_entry(st) => {}
            Ok(_) => {
                self.warn(format!(
                    "{}: replaced by another file while being backed up (a symlink or rename race?); skipped",
                    path.display()
                ));
                return None;
            }
            Err(e) => {
                self.warn(format!("{}: cannot read, skipped: {e}", path.display()));
                return None;
            }
        }
        // Regular files ignore O_NONBLOCK; clearing it keeps reads plain all the same.
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        );
        Some(fd)
    }

    /// Reads a file, then compares size, mtime and ctime with what they were before: a file
    /// written while it was read is read once more, and if it changed again what was read is
    /// kept (it may mix versions) and named in a warning. `None`: it could not be read
    /// (warned).
    fn read_stable(
        &mut self,
        file: std::fs::File,
        path: &Path,
        st: &Stat,
    ) -> Result<Option<ReadFile>> {
        let mut before = *st;
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.file_hasher = self.manifest.as_ref().map(|_| blake3::Hasher::new());
            let read = (&file)
                .seek(SeekFrom::Start(0))
                .map_err(|e| Error::io(path, e))
                .and_then(|_| {
                    self.read_file(
                        path,
                        file.try_clone().map_err(|e| Error::io(path, e))?,
                        &before,
                    )
                });
            let hash = self.file_hasher.take().map(|h| *h.finalize().as_bytes());
            let (parts, size) = match read {
                Ok(r) => r,
                Err(Error::Io { path: p, source }) => {
                    self.warn(format!("{}: cannot read, skipped: {source}", p.display()));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let after = fsx::fstat(file.as_fd()).map_err(|e| Error::io(path, e))?;
            let stable = after.size == size
                && after.size == before.size
                && after.mtime_ns == before.mtime_ns
                && after.ctime_ns == before.ctime_ns;
            if stable || attempt == 2 {
                if !stable {
                    self.warn(format!(
                        "{}: changed while it was read (twice); stored as read, which may mix old and new content",
                        path.display()
                    ));
                }
                return Ok(Some(ReadFile {
                    parts,
                    size,
                    hash,
                    stable,
                    before,
                    attempt,
                }));
            }
            before = after;
        }
    }
}

/// A file as [`Walker::read_stable`] read it.
struct ReadFile {
    parts: Vec<Part>,
    size: u64,
    /// Its BLAKE3, for the manifest.
    hash: Option<[u8; 32]>,
    /// It did not change while it was read.
    stable: bool,
    /// Its attributes before the last read.
    before: Stat,
    /// How often it was read.
    attempt: u32,
}
