//! `check --read-data`: every blob of the selected packs read, decrypted and verified
//! against the index and the packs' own tables, in parallel.

use super::*;
use crate::index::Loc;

impl Checker<'_> {
    /// The packs `--read-data` reads (indexed and present, `subset` of them), with their
    /// stored sizes.
    pub(super) fn to_read(&self, index: &Index, subset: Subset) -> Vec<(Id, u64)> {
        let indexed: HashSet<Id> = index.packs.iter().map(|p| p.id).collect();
        let mut all: Vec<Id> = indexed
            .iter()
            .filter(|p| self.packs.contains_key(p))
            .copied()
            .collect();
        all.sort();
        subset
            .select(&all)
            .into_iter()
            .map(|p| (p, self.packs[&p]))
            .collect()
    }
}

/// What `--read-data` found: the packs' problems and the number of blobs read.
pub(super) struct DataRead {
    pub problems: Vec<Problem>,
    pub blobs_read: usize,
}

/// `--read-data`: decrypts and verifies every blob of `packs`, the packs spread over the
/// workers. Needs only the reader and the index, so it runs while the structural checks do.
pub(super) fn read_packs(
    reader: &BlobReader,
    index: &Index,
    packs: &[(Id, u64)],
    progress: &dyn Progress,
) -> DataRead {
    let total: u64 = packs.iter().map(|p| p.1).sum();
    progress.phase("read-data", Some(total));
    let next = AtomicUsize::new(0);
    let found: Mutex<Vec<Problem>> = Mutex::new(Vec::new());
    let blobs_read = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..crate::workers(0) {
            s.spawn(|| {
                let mut bufs = Buffers::default();
                while let Some((pid, size)) = packs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let problems = read_pack(reader, index, pid, &mut bufs, &blobs_read);
                    progress.add_bytes(*size);
                    found.lock().expect("lock").extend(problems);
                }
            });
        }
    });
    progress.finish();
    DataRead {
        problems: found.into_inner().expect("lock"),
        blobs_read: blobs_read.into_inner(),
    }
}

/// Reused for every pack a worker reads: the stored pack (decrypted as it is read, never
/// held whole in plaintext), one blob's stored bytes and decompressed blobs (kept, not freed
/// per pack, so that glibc's arenas do not keep freed copies).
#[derive(Default)]
struct Buffers {
    stored: Vec<u8>,
    blob: Vec<u8>,
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
    let res = reader
        .fetch_stored_into(pid, &mut bufs.stored)
        .and_then(|()| {
            let (table, mut r) = reader.open_with_table(pid, &bufs.stored)?;
            let mut pos = coop_formats::envelope::HEADER_LEN as u64;
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
                // The stream cannot go on past damage: the pack fails from here.
                crate::read::read_next_blob(&mut r, &mut pos, loc, &mut bufs.blob).map_err(
                    |err| {
                        Error::damaged(
                            pid.to_hex(),
                            format!("pack is damaged or truncated at blob {bid}: {err}"),
                        )
                    },
                )?;
                match reader.verify_stored(&bufs.blob, bid, loc, &mut bufs.scratch) {
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
