//! The in-memory view of a tenant's index: blob ID → pack and position.

use coop_formats::id::{BlobType, Id};
use coop_formats::index::{IndexFile, IndexPack};
use std::collections::HashMap;

/// Where one blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub pack: u32,
    pub ty: BlobType,
    pub compression: u8,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// All index objects of a tenant, merged.
#[derive(Debug, Default)]
pub struct Index {
    pub packs: Vec<IndexPack>,
    pack_ix: HashMap<Id, u32>,
    blobs: HashMap<Id, Loc>,
    /// Names of the index objects loaded.
    pub files: Vec<Id>,
    /// Index objects that loaded ones say they replace.
    pub superseded: std::collections::HashSet<Id>,
}

impl Index {
    /// Adds the content of one index object.
    pub fn add(&mut self, name: Id, f: &IndexFile) {
        self.files.push(name);
        self.superseded.extend(f.superseded.iter().copied());
        let mut map = Vec::with_capacity(f.packs.len());
        for p in &f.packs {
            let ix = *self.pack_ix.entry(p.id).or_insert_with(|| {
                self.packs.push(*p);
                (self.packs.len() - 1) as u32
            });
            map.push(ix);
        }
        self.blobs.reserve(f.entries.len());
        for e in &f.entries {
            self.blobs.entry(e.id).or_insert(Loc {
                pack: map[e.pack as usize],
                ty: e.ty,
                compression: e.compression,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
            });
        }
    }

    /// Forgets every blob stored in one of `packs` (condemned by a prune plan).
    pub fn remove_packs(&mut self, packs: &std::collections::HashSet<Id>) {
        if packs.is_empty() {
            return;
        }
        let gone: std::collections::HashSet<u32> = self
            .packs
            .iter()
            .enumerate()
            .filter(|(_, p)| packs.contains(&p.id))
            .map(|(i, _)| i as u32)
            .collect();
        self.blobs.retain(|_, l| !gone.contains(&l.pack));
    }

    pub fn get(&self, id: &Id) -> Option<&Loc> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn pack_id(&self, loc: &Loc) -> Id {
        self.packs[loc.pack as usize].id
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Id, &Loc)> {
        self.blobs.iter()
    }
}
