//! Writing file contents: each needed pack is read once, front to back, by one of the
//! workers, and its blobs are written at their offsets. A file whose last blob is written
//! gets its metadata through the descriptor that wrote it. Blobs that fail verification are
//! retried afterwards from any other location an index object lists.

use super::plan::Item;
use super::prefetch::Prefetched;
use crate::error::{Error, Result};
use crate::fsx;
use crate::index::Loc;
use crate::progress::Progress;
use crate::read::BlobReader;
use coop_formats::id::{BlobType, Id};
use nix::fcntl::OFlag;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The content plan: where each needed blob goes, and per file how many placements are
/// still to be written.
pub(super) struct Placements {
    pub wanted: HashMap<Id, Vec<(usize, u64)>>,
    pub remaining: Vec<AtomicU32>,
    /// Per item, the descriptor it was created with, kept open for the workers (as many as
    /// the descriptor limit allows; the rest are reopened beneath the target by path).
    pub open: Vec<Mutex<Option<Arc<std::fs::File>>>>,
    /// Per item, the (device, inode) this restore created for it: a reopened file must be
    /// that one, not whatever a member put at its name meanwhile.
    pub created: Vec<(u64, u64)>,
}

/// What the write phase shares.
pub(super) struct Writer<'a> {
    pub reader: &'a BlobReader<'a>,
    pub target: BorrowedFd<'a>,
    pub items: &'a [Item],
    pub plan: &'a Placements,
    pub owner: bool,
    pub progress: &'a dyn Progress,
    pub failed: Mutex<HashMap<usize, String>>,
    /// Messages for the report (metadata that could not be set).
    pub warnings: Mutex<Vec<String>>,
    pub bytes: AtomicU64,
    /// Bytes fetched from the store (whole packs, or the ranges of a few blobs).
    pub fetched: AtomicU64,
    /// Blobs that failed where the index put them: retried from other locations.
    retry: Mutex<Vec<(Id, String)>>,
}

/// The stored size of the pack `blobs` (one pack's, as `by_pack` groups them) are in, as the
/// index gives it; 0 for none.
pub(super) fn pack_size(reader: &BlobReader, blobs: &[(Id, Loc)]) -> u64 {
    blobs.first().map_or(0, |(_, loc)| {
        reader.index.packs[loc.pack as usize].stored_size
    })
}

/// Whether a pack is read whole (from a local store always; from a remote one unless the
/// blobs needed of it are under a quarter of it, which are read by their byte ranges).
pub(super) fn reads_whole(reader: &BlobReader, blobs: &[(Id, Loc)]) -> bool {
    let needed: u64 = blobs.iter().map(|(_, l)| l.stored_len as u64).sum();
    blobs.is_empty() || reader.repo.store.is_local() || needed >= pack_size(reader, blobs) / 4
}

impl<'a> Writer<'a> {
    pub fn new(
        reader: &'a BlobReader<'a>,
        target: BorrowedFd<'a>,
        items: &'a [Item],
        plan: &'a Placements,
        owner: bool,
        progress: &'a dyn Progress,
        failed: HashMap<usize, String>,
    ) -> Self {
        Self {
            reader,
            target,
            items,
            plan,
            owner,
            progress,
            failed: Mutex::new(failed),
            warnings: Mutex::new(Vec::new()),
            bytes: AtomicU64::new(0),
            fetched: AtomicU64::new(0),
            retry: Mutex::new(Vec::new()),
        }
    }

    fn fail(&self, ix: usize, why: String) {
        self.failed.lock().expect("lock").entry(ix).or_insert(why);
    }

    fn is_failed(&self, ix: usize) -> bool {
        self.failed.lock().expect("lock").contains_key(&ix)
    }

    /// Writes one verified blob to every place it goes: through the descriptor the file
    /// was created with, or else one opened again beneath the target (kept for the next
    /// blob, which is usually the same file's).
    fn place(&self, open: &mut Option<(usize, std::fs::File)>, id: &Id, data: &[u8]) {
        for (ix, off) in &self.plan.wanted[id] {
            if self.is_failed(*ix) {
                continue;
            }
            let kept = self.plan.open[*ix].lock().expect("lock").clone();
            let f: &std::fs::File = match (&kept, &*open) {
                (Some(f), _) => f,
                (None, Some((o, _))) if *o == *ix => &open.as_ref().expect("checked").1,
                (None, _) => match self.reopen(*ix) {
                    Ok(f) => &open.insert((*ix, f)).1,
                    Err(e) => {
                        self.fail(*ix, format!("cannot open for writing: {e}"));
                        continue;
                    }
                },
            };
            if let Err(e) = f.write_all_at(data, *off) {
                self.fail(*ix, format!("write failed: {e}"));
                continue;
            }
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.progress.add_bytes(data.len() as u64);
            if self.plan.remaining[*ix].fetch_sub(1, Ordering::AcqRel) == 1 {
                // The file is complete: its metadata now, through the same descriptor, which
                // is then closed (when the last worker holding it lets go).
                let meta = fsx::Meta::of(&self.items[*ix].node, self.owner);
                if let Err(e) = fsx::set_meta_fd(f.as_fd(), &meta) {
                    self.warnings.lock().expect("lock").push(format!(
                        "{}: metadata not fully restored: {e}",
                        self.items[*ix].rel.display()
                    ));
                }
                if kept.is_some() {
                    self.plan.open[*ix].lock().expect("lock").take();
                } else {
                    *open = None;
                }
            }
        }
    }

    /// Opens again a file this restore created and closed (more files than descriptors):
    /// beneath the target without following any symlink, non-blocking (a FIFO swapped in
    /// cannot hang it), and only if it is the very inode created — never one a member linked
    /// or renamed in its place, which would get someone else's content and owner.
    fn reopen(&self, ix: usize) -> std::io::Result<std::fs::File> {
        let fd = fsx::open_beneath(
            self.target,
            &self.items[ix].rel,
            OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
            0,
        )?;
        let st = fsx::fstat(&fd)?;
        if !st.is_file() || (st.dev, st.ino) != self.plan.created[ix] {
            return Err(std::io::Error::other(
                "replaced by another file while being restored (a link or rename race?); not written",
            ));
        }
        let _ = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
        Ok(std::fs::File::from(fd))
    }

    /// Reads the packs (`packs`: each with its needed blobs in offset order) with `workers`
    /// threads; those in `ahead` were fetched while the files were created.
    pub fn run(&self, packs: &[(Id, Vec<(Id, Loc)>)], workers: usize, ahead: &Prefetched) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..workers.min(packs.len().max(1)) {
                s.spawn(|| {
                    let mut bufs = Buffers::default();
                    let mut open: Option<(usize, std::fs::File)> = None;
                    while let Some((pack_id, blobs)) =
                        packs.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        self.read_pack(pack_id, blobs, &mut open, &mut bufs, ahead);
                    }
                });
            }
        });
    }

    fn read_pack(
        &self,
        pack_id: &Id,
        blobs: &[(Id, Loc)],
        open: &mut Option<(usize, std::fs::File)>,
        bufs: &mut Buffers,
        ahead: &Prefetched,
    ) {
        let Buffers {
            stored,
            stored_blob,
            scratch,
        } = bufs;
        let retry_from = |n: usize, e: &Error| {
            let mut r = self.retry.lock().expect("lock");
            for (id, _) in &blobs[n..] {
                r.push((*id, e.to_string()));
            }
        };
        // From a remote store, a pack of which a restore needs little is read by ranges:
        // only the 64 KiB chunks its blobs are in.
        if !reads_whole(self.reader, blobs) {
            let size = pack_size(self.reader, blobs);
            let ranges: Vec<(u32, u32)> = blobs
                .iter()
                .map(|(_, l)| (l.offset, l.stored_len))
                .collect();
            let mut bad: Option<(usize, Error)> = None;
            let res = self.reader.read_ranges(pack_id, size, &ranges, |n, b| {
                if bad.is_some() {
                    return;
                }
                let (id, loc) = &blobs[n];
                match b {
                    Ok(b) => match self.reader.verify_stored(b, id, loc, scratch) {
                        Ok(data) => self.place(open, id, data),
                        Err(e) => self.retry.lock().expect("lock").push((*id, e.to_string())),
                    },
                    Err(e) => {
                        bad = Some((
                            n,
                            Error::damaged(
                                pack_id.to_hex(),
                                format!("pack is damaged or truncated at blob {id}: {e}"),
                            ),
                        ))
                    }
                }
            });
            match (res, bad) {
                (Ok(n), None) => {
                    self.fetched.fetch_add(n, Ordering::Relaxed);
                }
                (Ok(_), Some((n, e))) => retry_from(n, &e),
                (Err(e), _) => retry_from(0, &e),
            }
            return;
        }
        // From a local store the pack file is read as it is decrypted; else it is fetched
        // into `stored` first.
        // (Or it was fetched while the batch's files were created.)
        let src = match ahead.take(pack_id) {
            Some(Ok(bytes)) => {
                *stored = bytes;
                Ok((
                    Box::new(&stored[..]) as Box<dyn std::io::BufRead>,
                    stored.len() as u64,
                ))
            }
            // Failed as this worker's own fetch would have: not tried a second time here.
            Some(Err(e)) => Err(e),
            None => self.reader.stored_reader(pack_id, stored),
        };
        let opened = src.and_then(|(src, size)| {
            self.fetched.fetch_add(size, Ordering::Relaxed);
            self.reader.open_stream_read(pack_id, src)
        });
        let mut r = match opened {
            Ok(r) => r,
            Err(e) => return retry_from(0, &e),
        };
        let mut pos = coop_formats::envelope::HEADER_LEN as u64;
        for (n, (id, loc)) in blobs.iter().enumerate() {
            if let Err(e) = crate::read::read_next_blob(&mut r, &mut pos, loc, stored_blob) {
                // The stream cannot go on past damage.
                let e = Error::damaged(
                    pack_id.to_hex(),
                    format!("pack is damaged or truncated at blob {id}: {e}"),
                );
                return retry_from(n, &e);
            }
            match self.reader.verify_stored(stored_blob, id, loc, scratch) {
                Ok(data) => self.place(open, id, data),
                Err(e) => self.retry.lock().expect("lock").push((*id, e.to_string())),
            }
        }
    }

    /// Retries the blobs that failed, from any other location; files whose blobs cannot be
    /// found anywhere fail with the first reason.
    pub fn retry(&self) {
        let retry = std::mem::take(&mut *self.retry.lock().expect("lock"));
        let mut open = None;
        let mut buf = Vec::new();
        for (id, why) in retry {
            match self.reader.blob(&id, BlobType::Data, &mut buf) {
                Ok(()) => self.place(&mut open, &id, &buf),
                Err(_) => {
                    for (ix, _) in &self.plan.wanted[&id] {
                        self.fail(*ix, why.clone());
                    }
                }
            }
        }
    }
}

/// A reader thread's buffers, reused for every pack and blob: a pack's stored bytes from a
/// remote store (a local store's pack file is read as it is decrypted; no pack is ever held
/// whole in plaintext), one blob's stored bytes and its decompressed form. Kept, not freed per pack: glibc keeps freed pack-sized buffers in
/// per-thread arenas, which raised restore's peak RSS far above its live heap.
#[derive(Default)]
struct Buffers {
    stored: Vec<u8>,
    stored_blob: Vec<u8>,
    scratch: Vec<u8>,
}

/// Creates a file of `size` bytes (sparse) in the directory `parent`, replacing whatever
/// non-directory is there.
pub(super) fn create_file(
    parent: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    it: &Item,
) -> Result<std::fs::File> {
    let fd = fsx::create_file_at(parent, name).map_err(|e| Error::io(&it.rel, e))?;
    let f = std::fs::File::from(fd);
    f.set_len(it.node.size).map_err(|e| Error::io(&it.rel, e))?;
    Ok(f)
}

/// The directory of the entry last asked for, kept open: entries come in walk order, so
/// siblings share one descriptor instead of a path walk each.
pub(super) struct Parents<'a> {
    target: BorrowedFd<'a>,
    last: Option<(std::path::PathBuf, std::os::fd::OwnedFd)>,
}

impl<'a> Parents<'a> {
    pub fn new(target: BorrowedFd<'a>) -> Self {
        Self { target, last: None }
    }

    /// The open parent directory of `rel` (reached beneath the target without following
    /// any symlink) and the entry's name in it.
    pub fn of<'p>(
        &mut self,
        rel: &'p std::path::Path,
    ) -> std::io::Result<(BorrowedFd<'_>, &'p std::ffi::OsStr)> {
        let name = rel.file_name().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a path without a file name",
            )
        })?;
        let parent = rel.parent().unwrap_or(std::path::Path::new(""));
        if self.last.as_ref().map(|(p, _)| p.as_path()) != Some(parent) {
            self.last = None;
            let fd =
                fsx::open_beneath(self.target, parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
            self.last = Some((parent.to_path_buf(), fd));
        }
        Ok((self.last.as_ref().expect("just set").1.as_fd(), name))
    }
}

/// How many created files may stay open for the workers: the soft descriptor limit, raised
/// to the hard one, less room for the store, the caches and the workers.
pub(super) fn open_file_budget() -> usize {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 0;
    };
    let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    (soft.min(1 << 20) as usize).saturating_sub(512)
}
