//! The set of blob IDs one backup has sent to its workers: exact, and compact for runs that
//! add millions of blobs (a million small files).
//!
//! A `HashSet<Id>` costs 33 bytes per bucket at a load of at most 7/8, and while it grows it
//! holds its old and new tables at once: 103 MiB at a million IDs, the largest single part of
//! such a backup's memory. Here the IDs sit once in a vector (which grows in place by
//! `mremap`), and a table of 4-byte positions, hashed by the IDs' own first bytes (they are
//! keyed BLAKE3 output), finds them: about 37 bytes per ID, and a growth that copies only
//! the positions.

use coop_formats::id::Id;
use hashbrown::HashTable;

#[derive(Default)]
pub(super) struct IdSet {
    ids: Vec<Id>,
    table: HashTable<u32>,
}

fn hash(id: &Id) -> u64 {
    u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes"))
}

impl IdSet {
    pub fn contains(&self, id: &Id) -> bool {
        self.table
            .find(hash(id), |&i| self.ids[i as usize] == *id)
            .is_some()
    }

    /// Adds `id`; false if it was there already.
    pub fn insert(&mut self, id: Id) -> bool {
        let ids = &self.ids;
        match self.table.entry(
            hash(&id),
            |&i| ids[i as usize] == id,
            |&i| hash(&ids[i as usize]),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                let pos = u32::try_from(self.ids.len()).expect("fewer than 2^32 blobs in one run");
                v.insert(pos);
                self.ids.push(id);
                true
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The same answers as a HashSet, including IDs that share their first 8 bytes.
        #[test]
        fn behaves_like_a_hash_set(ops in proptest::collection::vec((0u8..40, 0u8..3), 0..400)) {
            let mut mine = IdSet::default();
            let mut theirs = std::collections::HashSet::new();
            for (n, prefix) in ops {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&u64::from(prefix).to_le_bytes());
                b[31] = n;
                let id = Id(b);
                prop_assert_eq!(mine.contains(&id), theirs.contains(&id));
                prop_assert_eq!(mine.insert(id), theirs.insert(id));
                prop_assert!(mine.contains(&id));
            }
            prop_assert_eq!(mine.len(), theirs.len());
        }
    }
}
