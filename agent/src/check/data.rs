//! `check --read-data`: every blob of the selected packs read, decrypted and verified
//! against the index and the packs' own tables, in parallel.

use super::*;
use crate::index::Loc;

impl Checker<'_> {
    /// `--read-data`: decrypt and verify every blob of the selected packs.
    pub(super) fn read_data(
        &mut self,
        reader: &BlobReader,
        index: &Index,
        subset: Subset,
        progress: &dyn Progress,
    ) -> Result<()> {
        let indexed: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
        let mut all: Vec<Id> = indexed
            .iter()
            .filter(|p| self.packs.contains_key(p))
            .copied()
            .collect();
        all.sort();
        let selected = subset.select(&all);
        let packs = &self.packs;
        let total: u64 = selected
            .iter()
            .map(|p| packs.get(p).copied().unwrap_or(0))
            .sum();
        progress.phase("read-data", Some(total));
        let next = AtomicUsize::new(0);
        let found: Mutex<Vec<Problem>> = Mutex::new(Vec::new());
        let blobs_read = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..crate::workers(0) {
                s.spawn(|| {
                    let mut bufs = Buffers::default();
                    while let Some(pid) = selected.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let problems = read_pack(reader, index, pid, &mut bufs, &blobs_read);
                        progress.add_bytes(packs.get(pid).copied().unwrap_or(0));
                        found.lock().expect("lock").extend(problems);
                    }
                });
            }
        });
        progress.finish();
        self.r.packs_read = selected.len();
        self.r.blobs_read = blobs_read.into_inner();
        self.r.errors.extend(found.into_inner().expect("lock"));
        Ok(())
    }
}

/// Reused for every pack a worker reads: the decrypted pack and decompressed blobs.
#[derive(Default)]
struct Buffers {
    plain: Vec<u8>,
    scratch: Vec<u8>,
    other: Vec<u8>,
}

/// Reads pack `pid` and verifies the blobs the index puts in it, where the pack's own table
/// has them too (a lying claim is `check_claims`' to report); counts them in `blobs_read`.
/// Returns the pack's problems: copies that fail but verify elsewhere, and the pack that
/// does not read or whose blobs fail.
fn read_pack(
    reader: &BlobReader,
    index: &Index,
    pid: &Id,
    bufs: &mut Buffers,
    blobs_read: &AtomicUsize,
) -> Vec<Problem> {
    let mut bad_blobs = Vec::new();
    let mut intact = 0usize;
    let res = reader.fetch_pack_into(pid, &mut bufs.plain).and_then(|()| {
        let table = coop_formats::pack::parse_table(&bufs.plain)
            .map_err(|e| Error::damaged(pid.to_hex(), e))?;
        let mut done: HashSet<Id> = HashSet::new();
        for e in &table {
            let Some(loc) = index.get(&e.id)? else {
                continue;
            };
            if index.pack_id(&loc) != *pid
                || loc.offset != e.offset
                || loc.stored_len != e.stored_len
                || !done.insert(e.id)
            {
                continue;
            }
            let (bid, loc) = (&e.id, &loc);
            match reader.decode_ref(&bufs.plain, bid, loc, &mut bufs.scratch) {
                Ok(_) => {
                    blobs_read.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if intact_elsewhere(reader, pid, bid, loc, &mut bufs.other) {
                        intact += 1;
                    } else {
                        bad_blobs.push((*bid, e.to_string()))
                    }
                }
            }
        }
        Ok(())
    });
    let mut problems = Vec::new();
    if intact > 0 {
        problems.push(Problem {
            intact_elsewhere: true,
            ..Problem::new(
                format!("pack {pid}"),
                format!(
                    "{intact} blob copie(s) in this pack fail verification, but each \
                     verifies at another location: nothing is lost (a damaged or \
                     forged copy; no snapshot is affected)"
                ),
            )
        });
    }
    if let Err(e) = res {
        problems.push(Problem::new(format!("pack {pid}"), e.to_string()));
    } else if !bad_blobs.is_empty() {
        problems.push(Problem::new(
            format!("pack {pid}"),
            format!(
                "{} blob(s) fail verification, first {}: {}",
                bad_blobs.len(),
                bad_blobs[0].0,
                bad_blobs[0].1
            ),
        ));
    }
    problems
}

/// Before a blob is called damaged, every other location an index object gives is tried, as
/// readers do: whether blob `bid` (at `loc` in pack `pid`) verifies at one of them.
fn intact_elsewhere(
    reader: &BlobReader,
    pid: &Id,
    bid: &Id,
    loc: &Loc,
    other: &mut Vec<u8>,
) -> bool {
    reader
        .alternatives(bid)
        .unwrap_or_default()
        .into_iter()
        .any(|alt| {
            (alt.pack != *pid || alt.loc.offset != loc.offset)
                && alt.loc.ty == loc.ty
                && reader.blob_in(&alt.pack, bid, &alt.loc, other).is_ok()
        })
}
