//! The first packs of a batch fetched from a remote store while the batch's files are
//! created: for many small files, creating them takes as long as fetching a few packs over
//! a fast line, and the line used to stand idle meanwhile.
//!
//! A prefetched pack is only its stored bytes: the worker that reads the pack checks and
//! decrypts them exactly as if it had fetched them itself, and one that failed to arrive is
//! fetched again by that worker (whose error, if it fails again, is what the restore reports).

use super::entries::group_by_pack;
use super::plan::Item;
use super::write::reads_whole;
use crate::error::Result;
use crate::read::BlobReader;
use coop_formats::id::Id;
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
    /// them) that a batch of `items` reads whole from a remote store; none from a local one.
    pub fn start<'s>(
        s: &'s Scope<'s, '_>,
        reader: &'s BlobReader<'s>,
        items: &[Item],
        n: usize,
    ) -> Self {
        let mut slots = HashMap::new();
        if reader.repo.store.is_local() {
            return Self::default();
        }
        let ids: HashSet<Id> = items
            .iter()
            .filter(|it| it.node.kind == NodeKind::File)
            .flat_map(|it| &it.node.content)
            .filter_map(|p| match p {
                Part::Blob(id) => Some(*id),
                Part::Hole { .. } => None,
            })
            .collect();
        let packs = group_by_pack(reader, ids.iter(), false).unwrap_or_default();
        for (pack_id, _) in packs
            .into_iter()
            .filter(|(_, blobs)| reads_whole(reader, blobs))
            .take(n)
        {
            let (tx, rx) = bounded(1);
            let spawned = std::thread::Builder::new()
                .name("coop-prefetch".into())
                .spawn_scoped(s, move || {
                    let mut stored = Vec::new();
                    let _ = tx.send(
                        reader
                            .fetch_stored_into(&pack_id, &mut stored)
                            .map(|()| stored),
                    );
                });
            if spawned.is_ok() {
                slots.insert(pack_id, rx);
            }
        }
        Self {
            slots: Mutex::new(slots),
        }
    }

    /// The stored bytes of `pack_id` if it was prefetched and arrived (waiting for it if it
    /// is still coming); `None`: fetch it as usual.
    pub fn take(&self, pack_id: &Id) -> Option<Vec<u8>> {
        let rx = self.slots.lock().expect("lock").remove(pack_id)?;
        rx.recv().ok()?.ok()
    }
}
