//! The blob pipeline: the sink that decides what is new, and the workers that compress,
//! pack, encrypt and store it (one pack per worker filling, encrypted as blobs arrive; full
//! packs stored on threads of their own while the workers go on, up to half the workers' count).

use crate::error::{Error, Result};
use crate::index::Index;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::blob::Compressor;
use coop_formats::crypt::Recipient;
use coop_formats::envelope::TenantTag;
use coop_formats::id::{blob_id, BlobType, Id};
use coop_formats::index::IndexFile;
use coop_formats::pack::PackBuilder;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Packs written between two index objects.
const PACKS_PER_INDEX: usize = 4;
/// Entries after which a pack is closed even below its size: a pack of tiny blobs (a million
/// small files) would otherwise list 150 000 of them, and its table, the copy of the pack
/// buffer the table no longer fits into, and four such packs' index object held at once
/// were most of such a backup's memory. 20 000 entries make a table of 840 KB, which fits
/// the room a pack buffer keeps beyond the pack size.
const MAX_ENTRIES_PER_PACK: usize = 20_000;
/// Entries after which the pending index object is written even before `PACKS_PER_INDEX`.
const ENTRIES_PER_INDEX: usize = 4 * MAX_ENTRIES_PER_PACK;

struct Job {
    ty: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// State the workers share.
struct Shared {
    repo: Repo,
    tag: TenantTag,
    index_key: [u8; 32],
    recipients: Arc<Vec<Recipient>>,
    pending: Mutex<IndexFile>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    bytes_stored: AtomicU64,
    /// Packs and index objects this backup wrote.
    written: Mutex<Written>,
    /// Pack buffers stored and free for the next pack.
    spare: Mutex<Vec<Vec<u8>>>,
    /// Packs that may be stored on their own threads at once (see `store`).
    upload_slots: AtomicUsize,
}

/// What a backup stored.
#[derive(Debug, Default)]
pub(super) struct Written {
    pub packs: Vec<Id>,
    pub index: Vec<Id>,
    pub bytes_stored: u64,
}

impl Shared {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().expect("lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Finishes and stores a pack. Returns its buffer for the next pack when the store has
    /// let go of it, so that a backup touches the same memory for every pack.
    fn write_pack(&self, builder: PackBuilder) -> Result<Vec<u8>> {
        let (out, entries, id) = builder
            .finish()
            .map_err(|e| Error::crypto("encrypting a pack", e))?;
        let size = out.len() as u64;
        let stored = bytes::Bytes::from(out);
        self.repo
            .store
            .put_shared(&Kind::Pack.path(&self.tag, &id), stored.clone())?;
        let reuse = stored.try_into_mut().map(Vec::from).unwrap_or_default();
        self.bytes_stored.fetch_add(size, Ordering::Relaxed);
        self.written.lock().expect("lock").packs.push(id);
        let to_write = {
            let mut p = self.pending.lock().expect("lock");
            p.add_pack(id, size, &entries);
            if p.packs.len() >= PACKS_PER_INDEX || p.entries.len() >= ENTRIES_PER_INDEX {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        if let Some(f) = to_write {
            self.write_index(&f)?;
        }
        Ok(reuse)
    }

    /// [`Self::write_pack`], its buffer kept for the next pack, its error recorded.
    fn store_and_recycle(&self, pack: PackBuilder) {
        match self.write_pack(pack) {
            Ok(buf) => self.spare.lock().expect("lock").push(buf),
            Err(e) => self.fail(e),
        }
    }

    fn write_index(&self, f: &IndexFile) -> Result<()> {
        if f.packs.is_empty() {
            return Ok(());
        }
        let name = self.repo.put(
            Kind::Index,
            &self.tag,
            f.seal(&self.index_key, self.tag, None),
        )?;
        self.written.lock().expect("lock").index.push(name);
        Ok(())
    }
}

fn worker(
    rx: Receiver<Job>,
    pool: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    pack_size: usize,
    level: i32,
) {
    let mut comp = Compressor::new(level);
    let mut data: Option<PackBuilder> = None;
    let mut trees: Option<PackBuilder> = None;
    // Upload threads are scoped to the loop: all have stored their packs (and named them in
    // the pending index) before the last packs below and `Pipeline::finish`; a panic in one
    // reaches the worker's join there.
    std::thread::scope(|s| {
        for job in &rx {
            if shared.failed.load(Ordering::Relaxed) {
                continue;
            }
            let slot = if job.ty == BlobType::Tree {
                &mut trees
            } else {
                &mut data
            };
            if slot.is_none() {
                // Reused for every pack: fresh memory costs page faults (and on VMs that hand
                // free memory back to the host, far more), reused memory does not.
                let buf = shared
                    .spare
                    .lock()
                    .expect("lock")
                    .pop()
                    .unwrap_or_else(|| Vec::with_capacity(pack_size + (1 << 20)));
                match PackBuilder::new(shared.tag, &shared.recipients, buf) {
                    Ok(b) => *slot = Some(b),
                    Err(e) => {
                        shared.fail(Error::crypto("encrypting a pack", e));
                        continue;
                    }
                }
            }
            let b = slot.as_mut().expect("set above");
            let added = b.add(&mut comp, job.ty, job.id, &job.data);
            let _ = pool.try_send(job.data);
            if let Err(e) = added {
                shared.fail(Error::crypto("encrypting a pack", e));
                continue;
            }
            if b.len() >= pack_size || b.entries().len() >= MAX_ENTRIES_PER_PACK {
                store(s, &shared, slot.take().expect("builder"));
            }
        }
    });
    for b in [data, trees].into_iter().flatten() {
        if shared.failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = shared.write_pack(b) {
            shared.fail(e);
        }
    }
}

/// Stores a full pack: on a thread of its own when an upload slot is free (the worker
/// compresses on meanwhile instead of waiting for the write, a local disk's fsync or the
/// upload), else in the worker's thread as before. The slots bound the pack buffers a backup
/// holds beyond one per worker; the buffer goes back to the shared spares once stored.
fn store<'s>(s: &'s std::thread::Scope<'s, '_>, shared: &'s Shared, pack: PackBuilder) {
    let took = shared
        .upload_slots
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    // Handed to the thread through a cell it takes from, so that a thread that cannot be
    // started leaves the pack here to be stored in this thread.
    let cell = Arc::new(Mutex::new(Some(pack)));
    if took {
        let taken = Arc::clone(&cell);
        let spawned = std::thread::Builder::new()
            .name("coop-put".into())
            .spawn_scoped(s, move || {
                if let Some(pack) = taken.lock().expect("lock").take() {
                    shared.store_and_recycle(pack);
                }
                shared.upload_slots.fetch_add(1, Ordering::SeqCst);
            });
        if spawned.is_ok() {
            return;
        }
        shared.upload_slots.fetch_add(1, Ordering::SeqCst);
    }
    let left = cell.lock().expect("lock").take();
    if let Some(pack) = left {
        shared.store_and_recycle(pack);
    }
}

/// The blob sink: dedup decisions and hand-off to the workers.
pub(super) struct Sink<'a> {
    id_key: [u8; 32],
    index: &'a Index,
    sent: super::idset::IdSet,
    tx: Option<Sender<Job>>,
    pool: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    pub blobs_added: u64,
    pub bytes_added: u64,
    /// Packs of the existing index this backup references.
    pub reused: HashSet<u32>,
}

impl Sink<'_> {
    /// Whether a blob is stored already: `Some(Some(pack))` in a pack of the index,
    /// `Some(None)` sent by this backup, `None` not stored.
    pub fn lookup(&self, id: &Id) -> Result<Option<Option<u32>>> {
        if let Some(loc) = self.index.get(id)? {
            return Ok(Some(Some(loc.pack)));
        }
        Ok(self.sent.contains(id).then_some(None))
    }

    pub fn submit(&mut self, ty: BlobType, data: &[u8]) -> Result<Id> {
        let id = blob_id(&self.id_key, ty, data);
        if let Some(loc) = self.index.get(&id)? {
            self.reused.insert(loc.pack);
            return Ok(id);
        }
        if !self.sent.insert(id) {
            return Ok(id);
        }
        if self.shared.failed.load(Ordering::Relaxed) {
            // The worker's own error is what the backup reports (see Pipeline::finish).
            return Err(Error::internal("a pack worker failed"));
        }
        let mut buf = self.pool.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.blobs_added += 1;
        if ty == BlobType::Data {
            self.bytes_added += data.len() as u64;
        }
        self.tx
            .as_ref()
            .expect("sink open")
            .send(Job { ty, id, data: buf })
            .map_err(|_| Error::internal("the pack workers stopped"))?;
        Ok(id)
    }
}

/// The running workers of one backup.
pub(super) struct Pipeline {
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Pipeline {
    /// Starts `workers` pack workers for the tenant; returns them and the sink that feeds them.
    pub fn start<'a>(
        repo: &Repo,
        keys: &crate::keys::TenantKeys,
        index: &'a Index,
        workers: usize,
    ) -> (Self, Sink<'a>) {
        let shared = Arc::new(Shared {
            repo: repo.clone(),
            tag: keys.tag,
            index_key: keys.index_key,
            recipients: Arc::clone(&keys.recipients),
            pending: Mutex::new(IndexFile::default()),
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            bytes_stored: AtomicU64::new(0),
            written: Mutex::new(Written::default()),
            spare: Mutex::new(Vec::new()),
            // Half the workers (at least one): on two cores one more pack buffer than
            // before, 17 MiB, for most of the overlap (PERFORMANCE.md).
            upload_slots: AtomicUsize::new((workers / 2).max(1)),
        });
        let (tx, rx) = bounded::<Job>(workers * 4);
        let (pool_tx, pool_rx) = bounded::<Vec<u8>>(workers * 6);
        let pack_size = repo.config.pack_size as usize;
        let level = repo.config.compression_level;
        let handles = (0..workers)
            .map(|i| {
                let (rx, pool_tx, shared) = (rx.clone(), pool_tx.clone(), Arc::clone(&shared));
                std::thread::Builder::new()
                    .name(format!("coop-pack-{i}"))
                    .spawn(move || worker(rx, pool_tx, shared, pack_size, level))
                    .expect("cannot start worker thread")
            })
            .collect();
        let sink = Sink {
            id_key: keys.id_key,
            index,
            sent: Default::default(),
            tx: Some(tx),
            pool: pool_rx,
            shared: Arc::clone(&shared),
            blobs_added: 0,
            bytes_added: 0,
            reused: HashSet::new(),
        };
        (Self { shared, handles }, sink)
    }

    /// Closes the sink, waits for every worker, writes the last index object (if `index`:
    /// the walk succeeded), and returns what was stored. A worker's error wins over
    /// whatever the walk reported.
    pub fn finish(self, sink: &mut Sink, index: bool) -> Result<Written> {
        sink.tx = None;
        for h in self.handles {
            if h.join().is_err() {
                self.shared
                    .fail(Error::internal("a pack worker thread panicked"));
            }
        }
        if let Some(e) = self.shared.error.lock().expect("lock").take() {
            return Err(e);
        }
        if index {
            crate::fault::pause("backup:before-index");
            crate::fault::point("backup:before-index");
            let rest = std::mem::take(&mut *self.shared.pending.lock().expect("lock"));
            self.shared.write_index(&rest)?;
        }
        let mut w = std::mem::take(&mut *self.shared.written.lock().expect("lock"));
        w.bytes_stored = self.shared.bytes_stored.load(Ordering::Relaxed);
        Ok(w)
    }
}
