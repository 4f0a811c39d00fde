//! The view of a tenant's index: blob ID → pack and position.
//!
//! - [`load`]: reading every index object and merging them (in memory, or through the table).
//! - [`table`]: the on-disk table in the cache directory (read and looked up; built and
//!   written in `table/write.rs`).
//! - [`claims`]: every claim of every index object, sorted on disk (for prune).
//! - [`spill`]: external sorting and on-disk ID sets.
//!
//! Two parts answer a lookup. The *base* is an on-disk table (see [`table`]):
//! sorted fixed-size records read with one positioned read per lookup, so its memory does
//! not grow with the repository. The *overlay* is an in-memory map of the index objects
//! written since the base was built (or, without a cache directory, of every index object).
//! The pack table (one entry per 16 MiB pack) is kept in memory for both.

pub mod claims;
pub mod load;
pub mod spill;
pub mod table;

pub use load::{files, load, load_with_packs, merge, merge_into, readable_files};

use coop_formats::id::{BlobType, Id};
use coop_formats::index::{IndexFile, IndexPack};
use std::collections::{HashMap, HashSet};
use table::Table;

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
    /// Every pack the index knows: the base table's first, then the overlay's.
    pub packs: Vec<IndexPack>,
    pack_ix: HashMap<Id, u32>,
    blobs: HashMap<Id, Loc>,
    /// Names of the index objects loaded into the overlay.
    pub files: Vec<Id>,
    /// Index objects that loaded ones say they replace.
    pub superseded: HashSet<Id>,
    base: Option<Table>,
    /// Packs removed from use (condemned or vanished); applies to base lookups.
    dead: HashSet<u32>,
    /// Packs the store did not list when the index was loaded.
    missing: HashSet<u32>,
    /// Index objects left out because they were damaged or malformed (named in warnings).
    pub skipped: usize,
}

impl Index {
    /// An index whose lookups fall back to an on-disk table.
    pub fn with_base(mut base: Table) -> Self {
        let packs = base.take_packs();
        let pack_ix = packs
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id, i as u32))
            .collect();
        Self {
            packs,
            pack_ix,
            base: Some(base),
            ..Self::default()
        }
    }

    /// Notes which packs the store lists, so that lookups prefer present locations.
    pub fn set_present(&mut self, present: &HashSet<Id>) {
        self.missing = self
            .packs
            .iter()
            .enumerate()
            .filter(|(_, p)| !present.contains(&p.id))
            .map(|(i, _)| i as u32)
            .collect();
    }

    /// Adds a pack's own table (read from the pack) to the overlay, for blobs no index
    /// object lists; a location already known stays.
    pub fn add_pack_table(&mut self, pack: IndexPack, entries: &[coop_formats::pack::PackEntry]) {
        let ix = *self.pack_ix.entry(pack.id).or_insert_with(|| {
            self.packs.push(pack);
            (self.packs.len() - 1) as u32
        });
        for e in entries {
            let known = self.blobs.contains_key(&e.id)
                || self
                    .base
                    .as_ref()
                    .is_some_and(|b| b.lookup(&e.id).ok().flatten().is_some());
            if !known {
                self.blobs.insert(
                    e.id,
                    Loc {
                        pack: ix,
                        ty: e.ty,
                        compression: e.compression,
                        offset: e.offset,
                        stored_len: e.stored_len,
                        raw_len: e.raw_len,
                    },
                );
            }
        }
    }

    /// Adds the content of one index object to the overlay. Where a blob is already in
    /// the overlay, the first location stays.
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
    pub fn remove_packs(&mut self, packs: &HashSet<Id>) {
        if packs.is_empty() {
            return;
        }
        let gone: HashSet<u32> = self
            .packs
            .iter()
            .enumerate()
            .filter(|(_, p)| packs.contains(&p.id))
            .map(|(i, _)| i as u32)
            .collect();
        self.blobs.retain(|_, l| !gone.contains(&l.pack));
        self.dead.extend(gone);
    }

    /// Where a blob is stored. Prefers a location in a pack the store has; an error is a
    /// failed read of the on-disk table.
    pub fn get(&self, id: &Id) -> crate::error::Result<Option<Loc>> {
        let over = self.blobs.get(id).copied();
        if let Some(l) = over {
            if !self.missing.contains(&l.pack) {
                return Ok(Some(l));
            }
        }
        if let Some(base) = &self.base {
            let found = base
                .lookup(id)
                .map_err(|e| crate::error::Error::io(base.path(), e))?;
            if let Some(l) = found {
                if !self.dead.contains(&l.pack) {
                    return Ok(Some(l));
                }
            }
        }
        Ok(over)
    }

    pub fn contains(&self, id: &Id) -> crate::error::Result<bool> {
        Ok(self.get(id)?.is_some())
    }

    pub fn pack_id(&self, loc: &Loc) -> Id {
        self.packs[loc.pack as usize].id
    }

    /// Blobs known (the base table's count plus the overlay's; a blob in both counts twice).
    pub fn len(&self) -> usize {
        self.blobs.len() + self.base.as_ref().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every index object this index was built from (the table's and the overlay's).
    pub fn object_names(&self) -> Vec<Id> {
        let mut v: Vec<Id> = self
            .base
            .as_ref()
            .map(|b| b.names().to_vec())
            .unwrap_or_default();
        v.extend(self.files.iter().copied());
        v.sort();
        v.dedup();
        v
    }

    /// Every blob with its location, the base table's in ID order first, then the overlay's
    /// (those the base does not have), reading the table sequentially: no memory per blob.
    /// Locations in packs removed from use are left out, as lookups leave them out.
    pub fn for_each(&self, mut f: impl FnMut(&Id, &Loc)) -> crate::error::Result<()> {
        if let Some(base) = &self.base {
            base.for_each(|id, loc| {
                if !self.dead.contains(&loc.pack) {
                    f(id, loc)
                }
            })
            .map_err(|e| crate::error::Error::io(base.path(), e))?;
        }
        for (id, loc) in &self.blobs {
            let in_base = match &self.base {
                Some(b) => b
                    .lookup(id)
                    .map_err(|e| crate::error::Error::io(b.path(), e))?
                    .is_some_and(|l| !self.dead.contains(&l.pack)),
                None => false,
            };
            if !in_base {
                f(id, loc);
            }
        }
        Ok(())
    }

    /// Whether lookups read an on-disk table.
    pub fn has_base(&self) -> bool {
        self.base.is_some()
    }

    /// The overlay's blobs. An index with an on-disk base (see [`Self::has_base`]) lists only
    /// its overlay here; `check` and `prune` merge index objects in memory and never have one.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &Loc)> {
        debug_assert!(
            self.base.is_none(),
            "iter() on an index with an on-disk base"
        );
        self.blobs.iter()
    }
}
