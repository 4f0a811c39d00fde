//! Every claim of every index object, sorted on disk: what prune decides from.
//!
//! An index object *claims* that a blob is at a place in a pack; several objects may claim
//! the same blob (in the same pack or others, truthfully or not). Prune needs every claim,
//! not only the one a merged index keeps: the copies it may rely on, the packs an admin must
//! keep, and the consolidated index it writes. Held in memory these cost the size of every
//! index object; here they go once through the external [`Sorter`] into an unnamed temporary
//! file, sorted by blob ID and then listing order, with a fan-out by the first two bytes of
//! the ID (512 KiB): a lookup is one positioned read, a pass over every blob one sequential
//! read. What stays in memory is per index object and per pack, not per blob.

use super::spill::{Sorter, RUN_BYTES};
use super::table::{Table, TableWriter};
use super::Loc;
use crate::error::{Error, Result};
use coop_formats::id::{BlobType, Id};
use coop_formats::index::{IndexFile, IndexPack};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Blob ID, listing order (big-endian, so that bytes sort by it), object, location.
const REC: usize = 64;
const FANOUT: usize = 65_537;

/// One claim: which index object (its position in [`Claims::names`]) puts the blob where.
/// `loc.pack` is a position in [`Claims::packs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    pub object: u32,
    pub loc: Loc,
}

/// Every claim of a set of index objects, and what is known per object and per pack.
pub struct Claims {
    dir: PathBuf,
    file: File,
    fanout: Vec<u64>,
    /// The index objects, in listing order.
    pub names: Vec<Id>,
    /// Objects that a read object supersedes (as read: supersession only from the authority).
    pub superseded: HashSet<Id>,
    /// Per object: whether its supersession was signed (by the authority, as read).
    pub signed: Vec<bool>,
    /// Every pack an object lists, in first-listed order (the `stored_size` first listed).
    pub packs: Vec<IndexPack>,
    pack_ix: HashMap<Id, u32>,
    /// Per pack: the `stored_size` recorded by the last object, in listing order, to list it.
    pub stored_size: HashMap<Id, u64>,
    /// Packs some object claims a blob in.
    claimed: HashSet<Id>,
}

impl std::fmt::Debug for Claims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Claims({} objects, {} packs, {} claims)",
            self.names.len(),
            self.packs.len(),
            self.len()
        )
    }
}

impl Claims {
    /// Reads the objects one at a time (each is dropped once its claims are in the sorter);
    /// temporary files go to `dir`.
    pub fn build(
        dir: &Path,
        objects: impl Iterator<Item = Result<(Id, IndexFile)>>,
    ) -> Result<Self> {
        let io = |e| Error::io(dir, e);
        let mut sorter = Sorter::new(dir, REC, RUN_BYTES);
        let mut names = Vec::new();
        let mut superseded = HashSet::new();
        let mut signed = Vec::new();
        let mut packs: Vec<IndexPack> = Vec::new();
        let mut pack_ix: HashMap<Id, u32> = HashMap::new();
        let mut stored_size = HashMap::new();
        let mut claimed_ix: HashSet<u32> = HashSet::new();
        let mut seq = 0u64;
        let mut rec = [0u8; REC];
        for obj in objects {
            let (name, f) = obj?;
            let object = names.len() as u32;
            names.push(name);
            signed.push(f.signer.is_some());
            superseded.extend(f.superseded.iter().copied());
            let map: Vec<u32> = f
                .packs
                .iter()
                .map(|p| {
                    stored_size.insert(p.id, p.stored_size);
                    *pack_ix.entry(p.id).or_insert_with(|| {
                        packs.push(*p);
                        (packs.len() - 1) as u32
                    })
                })
                .collect();
            for e in &f.entries {
                let Some(&pack) = map.get(e.pack as usize) else {
                    continue; // IndexFile::open checked this; never trust it twice
                };
                claimed_ix.insert(pack);
                rec[..32].copy_from_slice(&e.id.0);
                rec[32..40].copy_from_slice(&seq.to_be_bytes());
                rec[40..44].copy_from_slice(&object.to_le_bytes());
                rec[44..48].copy_from_slice(&pack.to_le_bytes());
                rec[48..52].copy_from_slice(&e.offset.to_le_bytes());
                rec[52..56].copy_from_slice(&e.stored_len.to_le_bytes());
                rec[56..60].copy_from_slice(&e.raw_len.to_le_bytes());
                rec[60] = e.ty as u8;
                rec[61] = e.compression;
                sorter.push(&rec).map_err(io)?;
                seq += 1;
            }
        }
        let mut sorted = sorter.finish().map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(dir).map_err(io)?);
        let mut fanout = vec![0u64; FANOUT];
        while let Some(r) = sorted.next().map_err(io)? {
            w.write_all(r).map_err(io)?;
            fanout[u16::from_be_bytes([r[0], r[1]]) as usize + 1] += 1;
        }
        for i in 1..FANOUT {
            fanout[i] += fanout[i - 1];
        }
        let file = w.into_inner().map_err(|e| io(e.into_error()))?;
        let claimed = claimed_ix.iter().map(|&p| packs[p as usize].id).collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            file,
            fanout,
            names,
            superseded,
            signed,
            packs,
            pack_ix,
            stored_size,
            claimed,
        })
    }

    /// Claims of objects held in memory (tests, small tools).
    pub fn from_files(dir: &Path, files: Vec<(Id, IndexFile)>) -> Result<Self> {
        Self::build(dir, files.into_iter().map(Ok))
    }

    /// Claims in all.
    pub fn len(&self) -> u64 {
        self.fanout[FANOUT - 1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether no read object supersedes the object at `object`.
    pub fn is_active(&self, object: u32) -> bool {
        !self.superseded.contains(&self.names[object as usize])
    }

    pub fn pack_id(&self, loc: &Loc) -> Id {
        self.packs[loc.pack as usize].id
    }

    /// The pack with its `stored_size` as last listed.
    pub fn pack(&self, loc: &Loc) -> IndexPack {
        self.pack_at(loc.pack)
    }

    /// The pack at a position of [`Self::packs`], with its `stored_size` as last listed.
    pub fn pack_at(&self, ix: u32) -> IndexPack {
        let id = self.packs[ix as usize].id;
        IndexPack {
            id,
            stored_size: self.stored_size.get(&id).copied().unwrap_or(0),
        }
    }

    /// Whether some object lists the pack.
    pub fn lists_pack(&self, pack: &Id) -> bool {
        self.pack_ix.contains_key(pack)
    }

    /// Whether some object claims a blob in the pack.
    pub fn claims_in(&self, pack: &Id) -> bool {
        self.claimed.contains(pack)
    }

    /// Per pack: the `stored_len` of its entries in objects nothing supersedes (one
    /// sequential pass over the claims).
    pub fn active_bytes(&self) -> Result<HashMap<Id, u64>> {
        let active: Vec<bool> = (0..self.names.len() as u32)
            .map(|o| self.is_active(o))
            .collect();
        let mut by_ix: HashMap<u32, u64> = HashMap::new();
        self.for_each_blob(|_, claims| {
            for c in claims.iter().filter(|c| active[c.object as usize]) {
                *by_ix.entry(c.loc.pack).or_default() += c.loc.stored_len as u64;
            }
            Ok(())
        })?;
        Ok(by_ix
            .into_iter()
            .map(|(p, n)| (self.packs[p as usize].id, n))
            .collect())
    }

    /// Every claim of one blob, in listing order.
    pub fn lookup(&self, id: &Id) -> Result<Vec<Claim>> {
        let b = u16::from_be_bytes([id.0[0], id.0[1]]) as usize;
        let (lo, hi) = (self.fanout[b], self.fanout[b + 1]);
        if lo == hi {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; ((hi - lo) as usize) * REC];
        self.file
            .read_exact_at(&mut buf, lo * REC as u64)
            .map_err(|e| Error::io(&self.dir, e))?;
        buf.chunks_exact(REC)
            .filter(|r| r[..32] == id.0)
            .map(decode)
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::io(&self.dir, e))
    }

    /// Every blob with all its claims (in listing order), in ID order, read sequentially.
    pub fn for_each_blob(&self, mut f: impl FnMut(&Id, &[Claim]) -> Result<()>) -> Result<()> {
        let io = |e| Error::io(&self.dir, e);
        let mut r = BufReader::with_capacity(
            1 << 20,
            ReadAt {
                f: &self.file,
                at: 0,
            },
        );
        let mut rec = [0u8; REC];
        let mut cur: Option<Id> = None;
        let mut group: Vec<Claim> = Vec::new();
        for _ in 0..self.len() {
            r.read_exact(&mut rec).map_err(io)?;
            let id = Id(rec[..32].try_into().expect("32"));
            if cur.is_some_and(|c| c != id) {
                f(&cur.expect("set"), &group)?;
                group.clear();
            }
            cur = Some(id);
            group.push(decode(&rec).map_err(io)?);
        }
        if let Some(c) = cur {
            f(&c, &group)?;
        }
        Ok(())
    }

    /// The merged index of these objects as a table at `path` (the rule of
    /// [`super::merge`]: a present pack listed by an active object, then a present pack
    /// listed by a superseded one, then any; the first in listing order among equals).
    pub fn table(&self, path: &Path, tag: &[u8; 16], present: &HashSet<Id>) -> Result<Table> {
        let here: Vec<bool> = self.packs.iter().map(|p| present.contains(&p.id)).collect();
        let mut w = TableWriter::new(path, tag, &self.names, &self.packs, &here)?;
        self.for_each_blob(|id, claims| {
            let rank = |c: &Claim| match (here[c.loc.pack as usize], self.is_active(c.object)) {
                (true, true) => 0u8,
                (true, false) => 1,
                (false, _) => 2,
            };
            // min_by_key keeps the first of equals: listing order.
            let best = claims.iter().min_by_key(|c| rank(c)).expect("a group");
            w.push(id, &best.loc)
        })?;
        w.finish()
    }
}

fn decode(r: &[u8]) -> std::io::Result<Claim> {
    let u = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().expect("4"));
    let ty = BlobType::from_u8(r[60]).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "bad blob type in claims")
    })?;
    Ok(Claim {
        object: u(40),
        loc: Loc {
            pack: u(44),
            offset: u(48),
            stored_len: u(52),
            raw_len: u(56),
            ty,
            compression: r[61],
        },
    })
}

struct ReadAt<'a> {
    f: &'a File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.f.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coop_formats::index::IndexEntry;

    fn id(n: u32) -> Id {
        Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn file(pack: Id, blobs: std::ops::Range<u32>, superseded: Vec<Id>) -> IndexFile {
        IndexFile {
            packs: vec![IndexPack {
                id: pack,
                stored_size: 1 << 20,
            }],
            superseded,
            signer: None,
            entries: blobs
                .map(|n| IndexEntry {
                    id: id(n),
                    pack: 0,
                    ty: BlobType::Data,
                    compression: 0,
                    offset: n * 10,
                    stored_len: 10,
                    raw_len: 10,
                })
                .collect(),
        }
    }

    /// Every claim is kept, in listing order; the table built from the claims answers like
    /// the in-memory merge; lookups and the sequential pass agree.
    #[test]
    fn claims_keep_every_claim_and_merge_like_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2, p3) = (id(1_000_001), id(1_000_002), id(1_000_003));
        let a = (id(900_001), file(p1, 0..3000, vec![]));
        let b = (id(900_002), file(p2, 50..2950, vec![a.0]));
        let c = (id(900_003), file(p3, 2900..4000, vec![]));
        let files = vec![a, b, c];
        let present: HashSet<Id> = [p1, p3].into_iter().collect();
        let claims = Claims::from_files(dir.path(), files.clone()).unwrap();
        assert_eq!(claims.len(), 3000 + 2900 + 1100);
        assert!(!claims.is_active(0) && claims.is_active(1) && claims.is_active(2));
        let both = claims.lookup(&id(100)).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(claims.pack_id(&both[0].loc), p1);
        assert_eq!(claims.pack_id(&both[1].loc), p2);
        assert_eq!(both[1].loc.offset, 1000);
        assert!(claims.lookup(&id(5000)).unwrap().is_empty());
        let mut blobs = 0;
        let mut last = None;
        claims
            .for_each_blob(|i, cs| {
                assert!(last.is_none_or(|l| l < *i));
                last = Some(*i);
                assert_eq!(cs, &claims.lookup(i).unwrap()[..]);
                blobs += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(blobs, 4000);
        let bytes = claims.active_bytes().unwrap();
        assert_eq!(bytes.get(&p1), None, "a is superseded");
        assert_eq!(bytes[&p2], 2900 * 10);
        let mem = crate::index::merge(files, Some(&present));
        let t = claims
            .table(&dir.path().join("t.index"), &[3; 16], &present)
            .unwrap();
        let disk = crate::index::Index::with_base(t);
        for n in 0..4100 {
            let (m, d) = (mem.get(&id(n)).unwrap(), disk.get(&id(n)).unwrap());
            assert_eq!(
                m.map(|l| (mem.pack_id(&l), l.offset)),
                d.map(|l| (disk.pack_id(&l), l.offset)),
                "blob {n}"
            );
        }
        // Several objects claiming the same blob in several packs.
        let small = {
            let mut v = Vec::new();
            for n in 0..3 {
                v.push((
                    id(800_000 + n),
                    file(id(700_000 + n), n * 100..n * 100 + 5000, vec![]),
                ));
            }
            v
        };
        let c2 = Claims::from_files(dir.path(), small).unwrap();
        assert_eq!(c2.lookup(&id(250)).unwrap().len(), 3);
    }
}
