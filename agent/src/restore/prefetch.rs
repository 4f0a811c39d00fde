//! The first packs of a batch fetched from a remote store while the batch's files are
//! created: for many small files, creating them takes as long as fetching a few packs over
//! a fast line, and the line used to stand idle meanwhile.
//!
//! A prefetched pack is only its stored bytes: the worker that reads the pack checks and
//! decrypts them exactly as if it had fetched them itself, and a fetch that failed counts as
//! that worker's own failed fetch (the blobs go to the retry from other locations; a stalled
//! site is not waited for twice).

use super::entries::group_by_pack;
use super::plan::Item;
use super::write::{pack_size, reads_whole};
use crate::error::Result;
use crate::read::BlobReader;
use coop_formats::id::Id;
use coop_formats::pack::MAX_STORED_PACK_LEN;
use coop_formats::tree::{NodeKind, Part};
use crossbeam_channel::{bounded, Receiver};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::thread::Scope;

/// Packs being (or done being) fetched ahead, each with where its bytes arrive.
#[derive(Default)]
pub(super) struct Prefetched {
    slots: Mutex<HashMap<Id, Receiver<Result<Vec<u8>>>>>,
}

impl Prefetched {
    /// Starts fetching, on threads of `s`, the first `n` packs (in the order the workers take
    /// them) that the files of `items` read whole from a remote store, leaving out the files
    /// `skip` names (hard links to a file of an earlier batch); none from a local store.
    ///
    /// The batch's plan is only known once its files are created, so a pack may turn out
    /// not to be needed (a file failed, or its pack is read by ranges after all): see
    /// [`Self::keep_only`]. A batch that fails before its packs are read (rare: most problems
    /// fail single files) waits for these fetches to end, one pack each, bounded by the
    /// store's time limit per request.
    pub fn start<'s>(
        s: &'s Scope<'s, '_>,
        reader: &'s BlobReader<'s>,
        items: &[Item],
        skip: impl Fn(&Item) -> bool,
        n: usize,
    ) -> Self {
        if reader.repo.store.is_local() {
            return Self::default();
        }
        let ids: HashSet<Id> = items
            .iter()
            .filter(|it| it.node.kind == NodeKind::File && !skip(it))
            .flat_map(|it| &it.node.content)
            .filter_map(|p| match p {
                Part::Blob(id) => Some(*id),
                Part::Hole { .. } => None,
            })
            .collect();
        // An index that cannot be read here fails the batch in `by_pack` a moment later.
        let packs = group_by_pack(reader, ids.iter(), false).unwrap_or_default();
        let mut slots = HashMap::new();
        for (pack_id, blobs) in packs
            .into_iter()
            .filter(|(_, blobs)| reads_whole(reader, blobs))
            .take(n)
        {
            // Allocated here, not in the short-lived thread: a pack-sized buffer allocated
            // there would stay cached in that thread's malloc arena once freed (see the
            // I/O runtime's blocking threads in `store::retry`).
            let size = pack_size(reader, &blobs).min(MAX_STORED_PACK_LEN as u64);
            let mut stored = Vec::with_capacity(size as usize);
            let (tx, rx) = bounded(1);
            let spawned = std::thread::Builder::new()
                .name("coop-prefetch".into())
                .spawn_scoped(s, move || {
                    let got = reader.fetch_stored_into(&pack_id, &mut stored);
                    // Nobody waits any more if the batch no longer needs the pack.
                    let _ = tx.send(got.map(|()| stored));
                });
            if spawned.is_ok() {
                slots.insert(pack_id, rx);
            }
        }
        Self {
            slots: Mutex::new(slots),
        }
    }

    /// Forgets the packs `keep` refuses: their bytes are dropped as they arrive, not held
    /// until the batch ends.
    pub fn keep_only(&self, keep: impl Fn(&Id) -> bool) {
        self.slots.lock().expect("lock").retain(|id, _| keep(id));
    }

    /// The outcome of fetching `pack_id` ahead (waiting for it if it is still coming): its
    /// stored bytes, or the error the fetch ended with; `None` if it was not fetched ahead
    /// (or is handed out already).
    pub fn take(&self, pack_id: &Id) -> Option<Result<Vec<u8>>> {
        let rx = self.slots.lock().expect("lock").remove(pack_id)?;
        // A thread that ended without sending (a panic) leaves the pack to the worker.
        rx.recv().ok()
    }
}
