//! The on-disk index table: a tenant's merged index as a sorted file in the cache directory.
//!
//! Loading every index object into a hash map costs memory in proportion to the repository
//! (about 66 bytes per blob). Instead, each client keeps in its cache directory one file per
//! tenant, `<repo id>/<tenant tag>.index` (format in SPEC.md, "Local index cache"):
//!
//! - the names of the index objects it was built from,
//! - the pack table (48 bytes per pack, kept in memory: one entry per 16 MiB of data),
//! - the blob records, 52 bytes each, sorted by blob ID, read with one positioned read
//!   per lookup (never loaded),
//! - a fan-out table by the first two bytes of the ID (65 537 offsets, 512 KiB),
//! - a BLAKE3 checksum over all of it, checked on every open.
//!
//! A run lists the index objects. If the table's objects are all still listed, nothing
//! new supersedes them and every pack that was present at build time still is, the new
//! objects go into an in-memory overlay. Otherwise, or when the overlay grows past
//! [`MAX_OVERLAY_OBJECTS`] objects or [`MAX_OVERLAY_BLOBS`] blobs, the table is rebuilt
//! by an external sort: records are spread over 256 temporary files by their first byte,
//! and each is sorted alone. Building costs one pass over the index objects and about
//! 1/256 of the table in memory.
//!
//! This file reads a table (open, checked, and looked up); building and writing one is in
//! `table/write.rs`.
//!
//! The table is a cache: a file that fails its checksum, has another version or another
//! tenant is rebuilt, and a cache directory that cannot be written falls back to the
//! in-memory merge.

use crate::error::Result;
use crate::index::Loc;
use coop_formats::id::{BlobType, Id};
use coop_formats::index::IndexPack;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

mod write;
pub use write::build;
pub(crate) use write::TableWriter;

const MAGIC: &[u8; 8] = b"COOPIXC\0";
const VERSION: u32 = 1;
const HEADER: u64 = 32;
const FOOTER: u64 = 32;
const CHECKSUM: u64 = 32;
const PACK_REC: usize = 48;
const BLOB_REC: usize = 52;
const FANOUT: usize = 65_537;
/// Index objects read into the overlay before the table is rebuilt.
pub const MAX_OVERLAY_OBJECTS: usize = 256;
/// Blobs held in the overlay before the table is rebuilt.
pub const MAX_OVERLAY_BLOBS: usize = 250_000;

/// Errors of the index cache file itself (a damaged or foreign cache is rebuilt).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("index cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index cache {path} is not usable: {reason}")]
    Invalid { path: PathBuf, reason: &'static str },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An open index table.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    file: File,
    names: Vec<Id>,
    packs: Vec<IndexPack>,
    /// Per pack: whether the store listed it when the table was built.
    pub(super) present: Vec<bool>,
    fanout: Vec<u64>,
    records_at: u64,
}

impl Table {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn packs(&self) -> &[IndexPack] {
        &self.packs
    }

    /// Moves the pack table out (the index that owns this table keeps it).
    pub fn take_packs(&mut self) -> Vec<IndexPack> {
        self.present = Vec::new();
        std::mem::take(&mut self.packs)
    }

    /// The index objects the table was built from.
    pub fn names(&self) -> &[Id] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.fanout[FANOUT - 1] as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks one blob up: one positioned read of the blobs sharing its first two bytes.
    pub fn lookup(&self, id: &Id) -> std::io::Result<Option<Loc>> {
        let b = u16::from_be_bytes([id.0[0], id.0[1]]) as usize;
        let (lo, hi) = (self.fanout[b], self.fanout[b + 1]);
        if lo == hi {
            return Ok(None);
        }
        let n = (hi - lo) as usize;
        let mut buf = vec![0u8; n * BLOB_REC];
        self.file
            .read_exact_at(&mut buf, self.records_at + lo * BLOB_REC as u64)?;
        let (mut a, mut z) = (0usize, n);
        while a < z {
            let m = (a + z) / 2;
            let rec = &buf[m * BLOB_REC..(m + 1) * BLOB_REC];
            match rec[..32].cmp(&id.0[..]) {
                std::cmp::Ordering::Less => a = m + 1,
                std::cmp::Ordering::Greater => z = m,
                std::cmp::Ordering::Equal => return decode_blob(rec).map(Some),
            }
        }
        Ok(None)
    }

    /// Every record in ID order, read sequentially (never loaded).
    pub fn for_each(&self, mut f: impl FnMut(&Id, &Loc)) -> std::io::Result<()> {
        let mut at = self.records_at;
        let mut left = self.len();
        let per = (1 << 20) / BLOB_REC;
        let mut buf = vec![0u8; per * BLOB_REC];
        while left > 0 {
            let n = left.min(per);
            self.file.read_exact_at(&mut buf[..n * BLOB_REC], at)?;
            for rec in buf[..n * BLOB_REC].chunks_exact(BLOB_REC) {
                let id = Id(rec[..32].try_into().expect("32"));
                f(&id, &decode_blob(rec)?);
            }
            at += (n * BLOB_REC) as u64;
            left -= n;
        }
        Ok(())
    }

    /// Opens a table and checks its checksum, version and tenant.
    pub fn open(path: &Path, tag: &[u8; 16]) -> Result<Self, CacheError> {
        let invalid = |reason| CacheError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut file = File::open(path).map_err(io_err(path))?;
        let size = file.metadata().map_err(io_err(path))?.len();
        if size < HEADER + FOOTER + CHECKSUM {
            return Err(invalid("too short"));
        }
        let mut head = [0u8; HEADER as usize];
        file.read_exact_at(&mut head, 0).map_err(io_err(path))?;
        if &head[..8] != MAGIC {
            return Err(invalid("not an index cache"));
        }
        if u32::from_le_bytes(head[8..12].try_into().expect("4")) != VERSION {
            return Err(invalid("another version"));
        }
        if &head[12..28] != tag {
            return Err(invalid("another tenant"));
        }
        let mut foot = [0u8; FOOTER as usize];
        file.read_exact_at(&mut foot, size - CHECKSUM - FOOTER)
            .map_err(io_err(path))?;
        let word = |i: usize| u64::from_le_bytes(foot[i * 8..i * 8 + 8].try_into().expect("8"));
        let (nnames, npacks, nblobs) = (word(0), word(1), word(2));
        let expect = HEADER
            .checked_add(nnames.checked_mul(32).ok_or(invalid("size"))?)
            .and_then(|v| v.checked_add(npacks.checked_mul(PACK_REC as u64)?))
            .and_then(|v| v.checked_add(nblobs.checked_mul(BLOB_REC as u64)?))
            .and_then(|v| v.checked_add(FANOUT as u64 * 8 + FOOTER + CHECKSUM))
            .ok_or(invalid("size"))?;
        if expect != size {
            return Err(invalid("size does not match its counts"));
        }
        // One sequential pass: hash everything, keep the names, packs and fan-out.
        file.seek(SeekFrom::Start(0)).map_err(io_err(path))?;
        let mut r = BufReader::with_capacity(1 << 20, &mut file);
        let mut hasher = blake3::Hasher::new();
        let mut take = |n: u64, keep: bool| -> Result<Vec<u8>, CacheError> {
            let mut left = n;
            let mut kept = Vec::new();
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let k = left.min(buf.len() as u64) as usize;
                r.read_exact(&mut buf[..k]).map_err(io_err(path))?;
                hasher.update(&buf[..k]);
                if keep {
                    kept.extend_from_slice(&buf[..k]);
                }
                left -= k as u64;
            }
            Ok(kept)
        };
        take(HEADER, false)?;
        let names: Vec<Id> = take(nnames * 32, true)?
            .chunks_exact(32)
            .map(|c| Id(c.try_into().expect("32")))
            .collect();
        let pack_bytes = take(npacks * PACK_REC as u64, true)?;
        let records_at = HEADER + nnames * 32 + npacks * PACK_REC as u64;
        take(nblobs * BLOB_REC as u64, false)?;
        let fanout: Vec<u64> = take(FANOUT as u64 * 8, true)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect();
        take(FOOTER, false)?;
        let mut sum = [0u8; 32];
        r.read_exact(&mut sum).map_err(io_err(path))?;
        drop(r);
        if hasher.finalize().as_bytes() != &sum {
            return Err(invalid("checksum mismatch (damaged)"));
        }
        if fanout[0] != 0 || fanout.windows(2).any(|w| w[0] > w[1]) || fanout[FANOUT - 1] != nblobs
        {
            return Err(invalid("bad fan-out"));
        }
        let mut packs = Vec::with_capacity(npacks as usize);
        let mut present = Vec::with_capacity(npacks as usize);
        for c in pack_bytes.chunks_exact(PACK_REC) {
            packs.push(IndexPack {
                id: Id(c[..32].try_into().expect("32")),
                stored_size: u64::from_le_bytes(c[32..40].try_into().expect("8")),
            });
            present.push(c[40] & 1 == 1);
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            names,
            packs,
            present,
            fanout,
            records_at,
        })
    }
}

fn decode_blob(rec: &[u8]) -> std::io::Result<Loc> {
    let u = |i: usize| u32::from_le_bytes(rec[i..i + 4].try_into().expect("4"));
    let ty = BlobType::from_u8(rec[48]).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "bad blob type in cache")
    })?;
    Ok(Loc {
        pack: u(32),
        offset: u(36),
        stored_len: u(40),
        raw_len: u(44),
        ty,
        compression: rec[49],
    })
}

/// Where a tenant's table lives in a cache directory.
pub fn path(cache: &Path, repo_id: &Id, tag: &[u8; 16]) -> PathBuf {
    cache
        .join(repo_id.to_hex())
        .join(format!("{}.index", hex::encode(tag)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coop_formats::index::{IndexEntry, IndexFile};
    use std::collections::HashSet;

    fn id(n: u32) -> Id {
        Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn file(pack: Id, blobs: std::ops::Range<u32>, superseded: Vec<Id>) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: pack,
                stored_size: 1000,
            }],
            superseded,
            signer: None,
            entries: blobs
                .map(|b| IndexEntry {
                    id: id(b),
                    pack: 0,
                    ty: BlobType::Data,
                    compression: 1,
                    offset: b,
                    stored_len: 10 + b,
                    raw_len: 20 + b,
                })
                .collect(),
        }
    }

    use crate::index::Index;

    #[test]
    fn table_answers_like_the_in_memory_merge() {
        let dir = tempfile::tempdir().unwrap();
        let tag = [7u8; 16];
        let (p1, p2, p3) = (id(1_000_001), id(1_000_002), id(1_000_003));
        // Object b supersedes a; blobs 50..100 are in both; c lists blobs in a missing pack.
        let a = (id(900_001), file(p1, 0..100, vec![]));
        let b = (id(900_002), file(p2, 50..3000, vec![a.0]));
        let c = (id(900_003), file(p3, 2900..3100, vec![]));
        let present: HashSet<Id> = [p1, p2].into_iter().collect();
        let files = vec![a, b, c];
        let mem = super::super::merge(files.clone(), Some(&present));
        let path = dir.path().join("t.index");
        let t = build(&path, &tag, files.into_iter().map(Ok), &present).unwrap();
        assert_eq!(t.len(), 3100);
        let disk = Index::with_base(t);
        for n in 0..3200 {
            let m = mem.get(&id(n)).unwrap();
            let d = disk.get(&id(n)).unwrap();
            assert_eq!(
                m.map(|l| (mem.pack_id(&l), l.offset, l.stored_len, l.raw_len)),
                d.map(|l| (disk.pack_id(&l), l.offset, l.stored_len, l.raw_len)),
                "blob {n}"
            );
        }
        // Blobs 50..100 come from the superseding object's pack; 2900..3000 from the present one.
        assert_eq!(disk.pack_id(&disk.get(&id(60)).unwrap().unwrap()), p2);
        assert_eq!(disk.pack_id(&disk.get(&id(2950)).unwrap().unwrap()), p2);
        assert_eq!(disk.pack_id(&disk.get(&id(3050)).unwrap().unwrap()), p3);
    }

    #[test]
    fn for_each_streams_every_record_in_id_order_as_lookups_answer() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (id(1_000_001), id(1_000_002));
        let a = (id(900_001), file(p1, 0..2000, vec![]));
        let b = (id(900_002), file(p2, 1500..4000, vec![a.0]));
        let present: HashSet<Id> = [p1, p2].into_iter().collect();
        let path = dir.path().join("t.index");
        let t = build(&path, &[1; 16], vec![a, b].into_iter().map(Ok), &present).unwrap();
        let mut seen = Vec::new();
        t.for_each(|i, l| seen.push((*i, *l))).unwrap();
        assert_eq!(seen.len(), 4000);
        assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
        for (i, l) in &seen {
            assert_eq!(t.lookup(i).unwrap(), Some(*l));
        }
        // Through an index, packs removed from use are left out, as lookups leave them out.
        let mut index = Index::with_base(t);
        index.remove_packs(&[p1].into_iter().collect());
        let mut n = 0;
        index
            .for_each(|i, l| {
                assert_eq!(index.pack_id(l), p2);
                assert_eq!(index.get(i).unwrap(), Some(*l));
                n += 1;
            })
            .unwrap();
        assert_eq!(n, 2500);
    }

    #[test]
    fn damaged_foreign_or_truncated_tables_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tag = [7u8; 16];
        let path = dir.path().join("t.index");
        let f = (id(1), file(id(2), 0..500, vec![]));
        build(&path, &tag, std::iter::once(Ok(f)), &HashSet::new()).unwrap();
        assert!(Table::open(&path, &[8u8; 16]).is_err());
        let good = std::fs::read(&path).unwrap();
        for at in [
            0usize,
            9,
            40,
            good.len() / 2,
            good.len() - 40,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(Table::open(&path, &tag), Err(CacheError::Invalid { .. })),
                "flip at {at}"
            );
        }
        for len in [0usize, 31, good.len() - 1] {
            std::fs::write(&path, &good[..len]).unwrap();
            assert!(Table::open(&path, &tag).is_err(), "truncated to {len}");
        }
    }

    #[test]
    fn empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.index");
        let t = build(&path, &[0; 16], std::iter::empty(), &HashSet::new()).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(&id(1)).unwrap(), None);
    }
}
