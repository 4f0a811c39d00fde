//! External sorting of fixed-size records, and a sorted set of IDs on disk.
//!
//! `check` and `prune` go over every index entry and every blob the snapshots need. Held in
//! hash maps these cost tens of bytes per blob; here they go through [`Sorter`]: records are
//! gathered in a buffer of fixed size, each full buffer is sorted and written to an unnamed
//! temporary file (a *run*), and the runs are merged in one pass at the end. Memory is the
//! buffer plus one small read buffer per run, whatever the number of records. Nothing here
//! outlives the process: the files are unlinked temporary files.
//!
//! [`IdSet`] is a sorted, de-duplicated list of IDs in such a file with a fan-out by their
//! first two bytes (512 KiB in memory); a membership test is one positioned read.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use coop_formats::id::Id;

/// Bytes of records a [`Sorter`] holds before it writes a run.
pub const RUN_BYTES: usize = 16 << 20;
/// Read buffer per run while merging.
const MERGE_BUF: usize = 64 << 10;

/// Sorts fixed-size records by their bytes, spilling sorted runs to temporary files.
pub struct Sorter {
    dir: PathBuf,
    rec: usize,
    cap: usize,
    buf: Vec<u8>,
    runs: Vec<File>,
    len: u64,
}

impl Sorter {
    /// A sorter of `rec`-byte records whose runs go to `dir`, holding at most `mem` bytes of
    /// records (at least one record).
    pub fn new(dir: &Path, rec: usize, mem: usize) -> Self {
        assert!(rec > 0);
        let cap = (mem / rec).max(1) * rec;
        Self {
            dir: dir.to_path_buf(),
            rec,
            cap,
            buf: Vec::new(),
            runs: Vec::new(),
            len: 0,
        }
    }

    /// Records pushed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds one record (`rec` bytes).
    pub fn push(&mut self, r: &[u8]) -> std::io::Result<()> {
        assert_eq!(r.len(), self.rec, "record size");
        if self.buf.len() + self.rec > self.cap {
            self.spill()?;
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.cap);
        }
        self.buf.extend_from_slice(r);
        self.len += 1;
        Ok(())
    }

    /// Sorts the buffer in place: no second copy of the run (the sorter's memory is the
    /// buffer). Record sizes in use are sorted as arrays; others through a permutation of
    /// 4-byte positions applied in place.
    fn sort_buf(&mut self) {
        match self.rec {
            32 => sort_records::<32>(&mut self.buf),
            64 => sort_records::<64>(&mut self.buf),
            80 => sort_records::<80>(&mut self.buf),
            rec => sort_permuted(&mut self.buf, rec),
        }
    }

    fn spill(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.sort_buf();
        let f = tempfile::tempfile_in(&self.dir)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        w.write_all(&self.buf)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        self.runs.push(f);
        self.buf.clear();
        Ok(())
    }

    /// The records in sorted order (duplicates kept).
    pub fn finish(mut self) -> std::io::Result<Sorted> {
        if self.runs.is_empty() {
            self.sort_buf();
            return Ok(Sorted {
                rec: self.rec,
                src: Source::Memory {
                    buf: std::mem::take(&mut self.buf),
                    at: 0,
                },
                cur: vec![0; self.rec],
            });
        }
        self.spill()?;
        self.buf = Vec::new();
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::new();
        for (i, f) in self.runs.into_iter().enumerate() {
            let mut r = Run {
                r: BufReader::with_capacity(MERGE_BUF, ReadAt { f, at: 0 }),
                head: vec![0; self.rec],
            };
            if r.advance()? {
                heap.push(Head {
                    key: r.head.clone(),
                    run: i,
                });
            }
            runs.push(r);
        }
        Ok(Sorted {
            rec: self.rec,
            src: Source::Runs { runs, heap },
            cur: vec![0; self.rec],
        })
    }
}

fn sort_records<const N: usize>(buf: &mut [u8]) {
    let (recs, rest) = buf.as_chunks_mut::<N>();
    debug_assert!(rest.is_empty());
    recs.sort_unstable();
}

/// Sorts `rec`-byte records: their positions are sorted (4 bytes each), then the records are
/// moved along the permutation's cycles with one record of scratch.
fn sort_permuted(buf: &mut [u8], rec: usize) {
    let n = buf.len() / rec;
    let mut perm: Vec<u32> = (0..n as u32).collect();
    perm.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize * rec, b as usize * rec);
        buf[a..a + rec].cmp(&buf[b..b + rec])
    });
    // perm[i] = the record that goes to position i.
    let mut tmp = vec![0u8; rec];
    for start in 0..n {
        if perm[start] as usize == start {
            continue;
        }
        tmp.copy_from_slice(&buf[start * rec..(start + 1) * rec]);
        let mut i = start;
        loop {
            let from = perm[i] as usize;
            perm[i] = i as u32;
            if from == start {
                buf[i * rec..(i + 1) * rec].copy_from_slice(&tmp);
                break;
            }
            buf.copy_within(from * rec..(from + 1) * rec, i * rec);
            i = from;
        }
    }
}

/// Reads a file from its start, by position (the run files were written through a cursor).
struct ReadAt {
    f: File,
    at: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.f.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

struct Run {
    r: BufReader<ReadAt>,
    head: Vec<u8>,
}

impl Run {
    /// Reads the next record into `head`; false at the end.
    fn advance(&mut self) -> std::io::Result<bool> {
        match self.r.read_exact(&mut self.head) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[derive(PartialEq, Eq)]
struct Head {
    key: Vec<u8>,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, o: &Self) -> Ordering {
        // A min-heap on (record, run).
        o.key.cmp(&self.key).then(o.run.cmp(&self.run))
    }
}

impl PartialOrd for Head {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

enum Source {
    Memory {
        buf: Vec<u8>,
        at: usize,
    },
    Runs {
        runs: Vec<Run>,
        heap: BinaryHeap<Head>,
    },
}

/// The records of a [`Sorter`], in order.
pub struct Sorted {
    rec: usize,
    src: Source,
    cur: Vec<u8>,
}

impl Sorted {
    /// The next record, or `None` at the end.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> std::io::Result<Option<&[u8]>> {
        match &mut self.src {
            Source::Memory { buf, at } => {
                if *at >= buf.len() {
                    return Ok(None);
                }
                let r = &buf[*at..*at + self.rec];
                *at += self.rec;
                Ok(Some(r))
            }
            Source::Runs { runs, heap } => {
                let Some(mut h) = heap.pop() else {
                    return Ok(None);
                };
                std::mem::swap(&mut self.cur, &mut h.key);
                let run = &mut runs[h.run];
                if run.advance()? {
                    h.key.copy_from_slice(&run.head);
                    heap.push(h);
                }
                Ok(Some(&self.cur))
            }
        }
    }
}

/// A temporary directory for spill files: in the cache directory if there is one (beside
/// the index table, on a disk sized for it), else in the system's temporary directory. Its
/// name carries the process ID; directories of this `prefix` left by processes that are gone
/// (killed) are removed first.
pub fn scratch_dir(
    repo: &crate::repo::Repo,
    prefix: &str,
) -> crate::error::Result<tempfile::TempDir> {
    let base = match repo.cache_dir() {
        Some(d) => {
            let d = d.join(repo.config.repo_id.to_hex());
            match std::fs::create_dir_all(&d) {
                Ok(()) => d,
                Err(_) => std::env::temp_dir(),
            }
        }
        None => std::env::temp_dir(),
    };
    sweep(&base, prefix);
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| crate::error::Error::io(&base, e))
}

/// Removes `prefix<pid>-*` directories in `base` whose process is gone.
fn sweep(base: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

const FANOUT: usize = 65_537;

/// A sorted set of IDs in a temporary file, queried with one positioned read per lookup.
pub struct IdSet {
    file: File,
    fanout: Vec<u64>,
}

impl std::fmt::Debug for IdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdSet({} IDs)", self.len())
    }
}

impl IdSet {
    /// The distinct IDs of a sorter of 32-byte records, written to a file in `dir`.
    pub fn from_sorter(s: Sorter, dir: &Path) -> std::io::Result<Self> {
        assert_eq!(s.rec, 32, "an IdSet is built from 32-byte records");
        let mut sorted = s.finish()?;
        let mut w = BufWriter::with_capacity(1 << 20, tempfile::tempfile_in(dir)?);
        let mut fanout = vec![0u64; FANOUT];
        let mut last: Option<[u8; 32]> = None;
        while let Some(r) = sorted.next()? {
            if last.as_ref().is_some_and(|l| l[..] == r[..]) {
                continue;
            }
            w.write_all(r)?;
            fanout[u16::from_be_bytes([r[0], r[1]]) as usize + 1] += 1;
            last = Some(r.try_into().expect("32"));
        }
        for i in 1..FANOUT {
            fanout[i] += fanout[i - 1];
        }
        let file = w.into_inner().map_err(|e| e.into_error())?;
        Ok(Self { file, fanout })
    }

    /// Distinct IDs in the set.
    pub fn len(&self) -> u64 {
        self.fanout[FANOUT - 1]
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, id: &Id) -> std::io::Result<bool> {
        let b = u16::from_be_bytes([id.0[0], id.0[1]]) as usize;
        let (lo, hi) = (self.fanout[b], self.fanout[b + 1]);
        if lo == hi {
            return Ok(false);
        }
        let mut buf = vec![0u8; ((hi - lo) * 32) as usize];
        self.file.read_exact_at(&mut buf, lo * 32)?;
        let (mut a, mut z) = (0usize, buf.len() / 32);
        while a < z {
            let m = (a + z) / 2;
            match buf[m * 32..(m + 1) * 32].cmp(&id.0[..]) {
                Ordering::Less => a = m + 1,
                Ordering::Greater => z = m,
                Ordering::Equal => return Ok(true),
            }
        }
        Ok(false)
    }

    /// Every ID, in order.
    pub fn for_each(&self, mut f: impl FnMut(&Id)) -> std::io::Result<()> {
        let mut r = BufReader::with_capacity(
            1 << 20,
            ReadAt {
                f: self.file.try_clone()?,
                at: 0,
            },
        );
        let mut b = [0u8; 32];
        for _ in 0..self.len() {
            r.read_exact(&mut b)?;
            f(&Id(b));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> Id {
        Id(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    fn drain(mut s: Sorted) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(r) = s.next().unwrap() {
            out.push(r.to_vec());
        }
        out
    }

    #[test]
    fn sorts_in_memory_and_across_runs_alike() {
        let dir = tempfile::tempdir().unwrap();
        let recs: Vec<Vec<u8>> = (0..5000u32)
            .map(|n| {
                let mut r = id(n % 3000).0[..8].to_vec();
                r.extend_from_slice(&n.to_le_bytes());
                r
            })
            .collect();
        let mut want = recs.clone();
        want.sort();
        // One run in memory; many runs of 7 records; runs of exactly one record (12-byte
        // records: sorted through a permutation).
        for mem in [1 << 20, 7 * 12, 12] {
            let mut s = Sorter::new(dir.path(), 12, mem);
            for r in &recs {
                s.push(r).unwrap();
            }
            assert_eq!(s.len(), 5000);
            assert_eq!(drain(s.finish().unwrap()), want, "mem {mem}");
        }
        let empty = Sorter::new(dir.path(), 12, 100);
        assert!(drain(empty.finish().unwrap()).is_empty());
    }

    /// Records of the sizes sorted as arrays come out as those sorted through a permutation.
    #[test]
    fn in_place_sorts_agree() {
        for rec in [32usize, 64, 80, 40] {
            let mut buf: Vec<u8> = (0..3000u32)
                .flat_map(|n| {
                    let mut r = id(n % 1700).0.repeat(3);
                    r.truncate(rec - 4);
                    r.extend_from_slice(&n.to_be_bytes());
                    r
                })
                .collect();
            let mut want: Vec<Vec<u8>> = buf.chunks(rec).map(|c| c.to_vec()).collect();
            want.sort();
            let mut b2 = buf.clone();
            let mut s = Sorter::new(Path::new("/nonexistent"), rec, 1 << 30);
            std::mem::swap(&mut s.buf, &mut buf);
            s.sort_buf();
            let got: Vec<Vec<u8>> = s.buf.chunks(rec).map(|c| c.to_vec()).collect();
            assert_eq!(got, want, "rec {rec}");
            sort_permuted(&mut b2, rec);
            assert_eq!(b2, s.buf, "rec {rec}");
        }
    }

    #[test]
    fn id_set_answers_like_a_hash_set() {
        let dir = tempfile::tempdir().unwrap();
        for mem in [1 << 20, 32 * 100] {
            let mut s = Sorter::new(dir.path(), 32, mem);
            // Every even number, most of them twice.
            for n in (0..20_000u32).step_by(2).chain((0..15_000).step_by(2)) {
                s.push(&id(n).0).unwrap();
            }
            let set = IdSet::from_sorter(s, dir.path()).unwrap();
            assert_eq!(set.len(), 10_000);
            for n in 0..20_500u32 {
                assert_eq!(
                    set.contains(&id(n)).unwrap(),
                    n % 2 == 0 && n < 20_000,
                    "{n}"
                );
            }
            let mut all = Vec::new();
            set.for_each(|i| all.push(*i)).unwrap();
            assert_eq!(all.len(), 10_000);
            assert!(all.windows(2).all(|w| w[0] < w[1]));
        }
        let empty = IdSet::from_sorter(Sorter::new(dir.path(), 32, 64), dir.path()).unwrap();
        assert!(empty.is_empty() && !empty.contains(&id(1)).unwrap());
    }
}
