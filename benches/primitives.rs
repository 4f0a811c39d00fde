//! `coop-primitives DIR [--level N] [--cores N] [--verbose]`: the CPU time of an initial backup's
//! primitives over a real tree, on one thread, without writing anything: for every regular
//! file (holes of sparse files skipped, as the backup does), read it through the chunker,
//! hash every chunk to its keyed blob ID, and, for chunks not seen before, compress them
//! (with the incompressibility probe, at the repository's default level unless `--level`)
//! and encrypt them into 16 MiB packs with age, naming each pack by BLAKE3 of its bytes.
//! The engine's own code does each step (`Chunker`, `blob_id`, `Compressor`, `PackBuilder`);
//! what is left out is everything else a backup does: trees, the catalog, the index, writing
//! and syncing the packs.
//!
//! It prints each stage's CPU seconds (thread CPU clock) and two bounds for a backup on
//! `--cores` cores (default: all): the primitives divided by the cores, and the same with one
//! walking thread that reads, chunks and hashes each file while the others compress and
//! encrypt (per file, the larger of the walker's time and the total divided by the cores).
//! `benches/compare.sh` prints the first next to the measured backup. The last line is
//! `key=value` pairs for scripts.

use coop_agent::chunker::Chunker;
use coop_formats::blob::{Compression, Compressor};
use coop_formats::config::ChunkerParams;
use coop_formats::crypt;
use coop_formats::id::{blob_id, chunker_seed, BlobType, Id};
use coop_formats::pack::PackBuilder;
use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const PACK_SIZE: usize = 16 << 20;

fn cpu() -> f64 {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    t.tv_sec() as f64 + t.tv_nsec() as f64 * 1e-9
}

fn kernel_s() -> f64 {
    let u = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let t = u.system_time();
    t.tv_sec() as f64 + t.tv_usec() as f64 * 1e-6
}

/// Regular files below `dir`, in name order.
fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type()?;
        if t.is_dir() {
            files(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// The data extents of a file, as the backup reads them (holes skipped when the file is
/// sparse).
fn extents(f: &std::fs::File) -> std::io::Result<Vec<(u64, u64)>> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    let size = m.size();
    if size == 0 || m.blocks().saturating_mul(512) >= size {
        return Ok(vec![(0, size)]);
    }
    use nix::unistd::{lseek, Whence};
    let (mut out, mut pos) = (Vec::new(), 0u64);
    while pos < size {
        let data = match lseek(f, pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let end = (lseek(f, data as i64, Whence::SeekHole)? as u64).min(size);
        out.push((data, end));
        pos = end;
    }
    Ok(out)
}

#[derive(Default)]
struct Stages {
    read_chunk: f64,
    hash: f64,
    compress: f64,
    encrypt: f64,
    /// Per file: the larger of the walker's part (read, chunk, hash) and everything divided
    /// by the cores.
    one_walker: f64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut level, mut cores, mut verbose) = (None, 3i32, 0usize, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--level" => level = args.next().and_then(|v| v.parse().ok()).expect("--level N"),
            "--verbose" => verbose = true,
            "--cores" => cores = args.next().and_then(|v| v.parse().ok()).expect("--cores N"),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => panic!("usage: coop-primitives DIR [--level N] [--cores N] [--verbose]"),
        }
    }
    let dir = dir.expect("usage: coop-primitives DIR [--level N] [--cores N] [--verbose]");
    if cores == 0 {
        cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    let mut list = Vec::new();
    files(&dir, &mut list).expect("listing the corpus");

    let id_key = [7u8; 32];
    let (_, rcpt) = crypt::generate_identity();
    let recipients = vec![crypt::parse_recipient(&rcpt).expect("recipient")];
    let mut chunker = Chunker::new(&ChunkerParams::default(), chunker_seed(&id_key));
    let mut comp = Compressor::new(level);
    let mut pack: Option<PackBuilder> = None;
    let mut seen: HashSet<Id> = HashSet::new();
    let mut s = Stages::default();
    let (mut read, mut chunks, mut new_chunks, mut new_bytes, mut stored, mut packs) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let kernel0 = kernel_s();

    // Reused buffers, as the backup reuses its job and pack buffers: fresh memory would add
    // page faults that the backup does not have.
    let mut copy: Vec<u8> = Vec::with_capacity(16 << 20);
    let mut pack_buf: Vec<u8> = Vec::with_capacity(PACK_SIZE + (1 << 20));
    for path in &list {
        let mut f = std::fs::File::open(path).expect("open");
        let ext = extents(&f).expect("extents");
        // Per chunk: copy it (the backup copies each new chunk into a job buffer for the
        // workers), hash it, and if it is new compress and encrypt it. What the chunker
        // call takes beyond those is reading and cutting.
        let (mut t_hash, mut t_comp, mut t_enc) = (0.0, 0.0, 0.0);
        let t_all = cpu();
        for (start, end) in ext {
            f.seek(SeekFrom::Start(start)).expect("seek");
            read += chunker
                .chunk::<std::io::Error>(
                    (&mut f).take(end - start),
                    |e| e,
                    |c| {
                        let t = cpu();
                        let id = blob_id(&id_key, BlobType::Data, c);
                        t_hash += cpu() - t;
                        chunks += 1;
                        if !seen.insert(id) {
                            return Ok(());
                        }
                        copy.clear();
                        copy.extend_from_slice(c);
                        new_chunks += 1;
                        new_bytes += c.len() as u64;
                        let t = cpu();
                        let how = comp.compress(&copy);
                        let out: &[u8] = match how {
                            Compression::Zstd => comp.output(),
                            Compression::None => &copy,
                        };
                        let t2 = cpu();
                        t_comp += t2 - t;
                        let b = pack.get_or_insert_with(|| {
                            PackBuilder::new([1; 16], &recipients, std::mem::take(&mut pack_buf))
                                .expect("pack")
                        });
                        b.add_stored(BlobType::Data, id, how, copy.len() as u32, out)
                            .expect("encrypt");
                        if b.len() >= PACK_SIZE {
                            let (bytes, _, _) =
                                pack.take().expect("pack").finish().expect("finish");
                            stored += bytes.len() as u64;
                            packs += 1;
                            pack_buf = bytes;
                        }
                        t_enc += cpu() - t2;
                        Ok(())
                    },
                )
                .expect("read");
        }
        let t_chunk = cpu() - t_all - t_hash - t_comp - t_enc;
        s.read_chunk += t_chunk;
        s.hash += t_hash;
        s.compress += t_comp;
        s.encrypt += t_enc;
        let all = t_chunk + t_hash + t_comp + t_enc;
        s.one_walker += (t_chunk + t_hash).max(all / cores as f64);
        if verbose && all > 0.05 {
            println!(
                "{}: read+chunk {t_chunk:.3}, hash {t_hash:.3}, zstd {t_comp:.3}, encrypt {t_enc:.3}",
                path.display()
            );
        }
    }
    if let Some(b) = pack.take() {
        let t = cpu();
        let (bytes, _, _) = b.finish().expect("finish");
        s.encrypt += cpu() - t;
        stored += bytes.len() as u64;
        packs += 1;
    }
    let kernel = kernel_s() - kernel0;
    let total = s.read_chunk + s.hash + s.compress + s.encrypt;
    let gb = |b: u64| b as f64 / 1e9;
    println!(
        "corpus {}: {} files, {:.2} GB read, {} chunks, {} new ({:.2} GB), {} packs ({:.2} GB)",
        dir.display(),
        list.len(),
        gb(read),
        chunks,
        new_chunks,
        gb(new_bytes),
        packs,
        gb(stored)
    );
    println!(
        "CPU s: read+chunk {:.2} (of which kernel {:.2}), hash {:.2}, zstd {level} {:.2}, encrypt+name {:.2}; total {:.2}",
        s.read_chunk, kernel, s.hash, s.compress, s.encrypt, total
    );
    println!(
        "bound on {cores} cores: {:.2} s; with one walking thread (read+chunk+hash) per file: {:.2} s",
        total / cores as f64,
        s.one_walker
    );
    println!(
        "primitives_cpu_s={total:.3} kernel_s={kernel:.3} cores={cores} bound_s={:.3} one_walker_bound_s={:.3} read_chunk_s={:.3} hash_s={:.3} compress_s={:.3} encrypt_s={:.3}",
        total / cores as f64,
        s.one_walker,
        s.read_chunk,
        s.hash,
        s.compress,
        s.encrypt
    );
}
