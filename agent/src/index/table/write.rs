//! Building an index table: the index objects' blob records spread over 256 temporary files
//! by their first byte and each sorted alone (an external sort in about 1/256 of the table
//! in memory), then written in the table's format and opened.

use super::{Table, BLOB_REC, FANOUT, FOOTER, HEADER, MAGIC, PACK_REC, VERSION};
use crate::error::{Error, Result};
use crate::index::Loc;
use coop_formats::id::Id;
use coop_formats::index::{IndexFile, IndexPack};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Records of the temporary spill files: blob ID, sequence, object, pack, location.
const SPILL_REC: usize = 64;

fn encode_blob(id: &[u8], l: &Loc, out: &mut Vec<u8>) {
    out.extend_from_slice(id);
    for v in [l.pack, l.offset, l.stored_len, l.raw_len] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&[l.ty as u8, l.compression, 0, 0]);
}

/// Builds a table from index objects, one at a time, in at most 1/256 of its size in memory.
///
/// Where a blob has several locations, the same rule as [`crate::index::merge`] picks one: a
/// present pack listed by an object nothing supersedes, then a present pack listed by a
/// superseded object, then any; among equals, the first in listing order.
pub fn build(
    path: &Path,
    tag: &[u8; 16],
    objects: impl Iterator<Item = Result<(Id, IndexFile)>>,
    present: &HashSet<Id>,
) -> Result<Table> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let Spilled {
        spills,
        names,
        superseded,
        packs,
    } = spill(dir, objects)?;
    let active: Vec<bool> = names.iter().map(|n| !superseded.contains(n)).collect();
    let here: Vec<bool> = packs.iter().map(|p| present.contains(&p.id)).collect();

    let mut w = TableWriter::new(path, tag, &names, &packs, &here)?;
    merge_spills(spills, &here, &active, &mut w, dir)?;
    w.finish()
}

/// The blob records of every index object, spilled into 256 files by the blob ID's first
/// byte, and what the table's other sections need.
struct Spilled {
    spills: Vec<BufWriter<File>>,
    /// The index objects' names, in listing order.
    names: Vec<Id>,
    /// The index objects something supersedes.
    superseded: HashSet<Id>,
    packs: Vec<IndexPack>,
}

fn spill(dir: &Path, objects: impl Iterator<Item = Result<(Id, IndexFile)>>) -> Result<Spilled> {
    let mut spills: Vec<BufWriter<File>> = (0..256)
        .map(|_| {
            tempfile::tempfile_in(dir)
                .map(|f| BufWriter::with_capacity(16 << 10, f))
                .map_err(|e| Error::io(dir, e))
        })
        .collect::<Result<_>>()?;
    let mut names = Vec::new();
    let mut superseded = HashSet::new();
    let mut packs: Vec<IndexPack> = Vec::new();
    let mut pack_ix: std::collections::HashMap<Id, u32> = Default::default();
    let mut seq = 0u64;
    let mut rec = Vec::with_capacity(SPILL_REC);
    for obj in objects {
        let (name, f) = obj?;
        let file_ix = names.len() as u32;
        names.push(name);
        superseded.extend(f.superseded.iter().copied());
        let map: Vec<u32> = f
            .packs
            .iter()
            .map(|p| {
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
            rec.clear();
            rec.extend_from_slice(&e.id.0);
            rec.extend_from_slice(&seq.to_le_bytes());
            rec.extend_from_slice(&file_ix.to_le_bytes());
            let loc = Loc {
                pack,
                ty: e.ty,
                compression: e.compression,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
            };
            encode_blob(&[], &loc, &mut rec);
            rec.resize(SPILL_REC, 0);
            spills[e.id.0[0] as usize]
                .write_all(&rec)
                .map_err(|e| Error::io(dir, e))?;
            seq += 1;
        }
    }
    Ok(Spilled {
        spills,
        names,
        superseded,
        packs,
    })
}

/// Each spill file sorted and written as the table's blob records: one per blob, its
/// location by the rule of [`build`].
fn merge_spills(
    spills: Vec<BufWriter<File>>,
    here: &[bool],
    active: &[bool],
    w: &mut TableWriter,
    dir: &Path,
) -> Result<()> {
    for spill in spills {
        let mut f = spill
            .into_inner()
            .map_err(|e| Error::io(dir, e.into_error()))?;
        let len = f.stream_position().map_err(|e| Error::io(dir, e))? as usize;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, 0)
            .map_err(|e| Error::io(dir, e))?;
        drop(f);
        let mut recs: Vec<&[u8]> = buf.chunks_exact(SPILL_REC).collect();
        let rank = |r: &[u8]| {
            let file = u32::from_le_bytes(r[40..44].try_into().expect("4")) as usize;
            let pack = u32::from_le_bytes(r[44..48].try_into().expect("4")) as usize;
            let pass = match (here[pack], active[file]) {
                (true, true) => 0u8,
                (true, false) => 1,
                (false, _) => 2,
            };
            let seq = u64::from_le_bytes(r[32..40].try_into().expect("8"));
            (pass, seq)
        };
        recs.sort_unstable_by(|a, b| a[..32].cmp(&b[..32]).then(rank(a).cmp(&rank(b))));
        let mut last: Option<&[u8]> = None;
        for r in recs {
            if last == Some(&r[..32]) {
                continue;
            }
            last = Some(&r[..32]);
            w.push_raw(&r[..32], &r[44..64])?;
        }
    }
    Ok(())
}

/// Writes a table file: the header, names and packs first, then the blob records (pushed in
/// ID order, one per blob), then the fan-out, footer and checksum; renamed into place and
/// opened by [`TableWriter::finish`].
pub(crate) struct TableWriter {
    path: PathBuf,
    tmp: PathBuf,
    tag: [u8; 16],
    w: HashingWriter<BufWriter<File>>,
    fanout: Vec<u64>,
    count: u64,
    names: u64,
    packs: u64,
    last: Option<[u8; 32]>,
}

impl TableWriter {
    pub(crate) fn new(
        path: &Path,
        tag: &[u8; 16],
        names: &[Id],
        packs: &[IndexPack],
        here: &[bool],
    ) -> Result<Self> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("index"),
            std::process::id()
        ));
        let out = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = HashingWriter {
            inner: BufWriter::with_capacity(1 << 20, out),
            hasher: blake3::Hasher::new(),
        };
        let werr = |e| Error::io(&tmp, e);
        let mut head = [0u8; HEADER as usize];
        head[..8].copy_from_slice(MAGIC);
        head[8..12].copy_from_slice(&VERSION.to_le_bytes());
        head[12..28].copy_from_slice(tag);
        w.write_all(&head).map_err(werr)?;
        for n in names {
            w.write_all(&n.0).map_err(werr)?;
        }
        for (p, h) in packs.iter().zip(here) {
            let mut b = [0u8; PACK_REC];
            b[..32].copy_from_slice(&p.id.0);
            b[32..40].copy_from_slice(&p.stored_size.to_le_bytes());
            b[40] = u8::from(*h);
            w.write_all(&b).map_err(werr)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            tag: *tag,
            w,
            fanout: vec![0u64; FANOUT],
            count: 0,
            names: names.len() as u64,
            packs: packs.len() as u64,
            last: None,
        })
    }

    /// Adds one blob's record; blobs come in strictly increasing ID order.
    pub(crate) fn push(&mut self, id: &Id, loc: &Loc) -> Result<()> {
        let mut rec = Vec::with_capacity(BLOB_REC);
        encode_blob(&[], loc, &mut rec);
        self.push_raw(&id.0, &rec)
    }

    /// `loc`: the 20 bytes of an encoded location.
    fn push_raw(&mut self, id: &[u8], loc: &[u8]) -> Result<()> {
        let id: [u8; 32] = id.try_into().expect("32");
        if self.last.is_some_and(|l| l >= id) {
            return Err(Error::internal("index table records out of order"));
        }
        self.last = Some(id);
        let werr = |e| Error::io(&self.tmp, e);
        self.w.write_all(&id).map_err(werr)?;
        self.w.write_all(loc).map_err(werr)?;
        self.fanout[u16::from_be_bytes([id[0], id[1]]) as usize + 1] += 1;
        self.count += 1;
        Ok(())
    }

    pub(crate) fn finish(mut self) -> Result<Table> {
        let tmp = self.tmp.clone();
        let werr = |e| Error::io(&tmp, e);
        for i in 1..FANOUT {
            self.fanout[i] += self.fanout[i - 1];
        }
        for v in &self.fanout {
            self.w.write_all(&v.to_le_bytes()).map_err(werr)?;
        }
        let mut foot = [0u8; FOOTER as usize];
        foot[..8].copy_from_slice(&self.names.to_le_bytes());
        foot[8..16].copy_from_slice(&self.packs.to_le_bytes());
        foot[16..24].copy_from_slice(&self.count.to_le_bytes());
        self.w.write_all(&foot).map_err(werr)?;
        let sum = *self.w.hasher.finalize().as_bytes();
        let mut inner = self.w.inner;
        inner.write_all(&sum).map_err(werr)?;
        inner.flush().map_err(werr)?;
        drop(inner);
        std::fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Table::open(&self.path, &self.tag).map_err(|e| {
            Error::internal(format!(
                "the index cache just written does not read back: {e}"
            ))
        })
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(b)?;
        self.hasher.update(&b[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
