//! `coop-primitives DIR [--level N] [--cores N] [--verbose] [--read-side DIR]`: the CPU time of an initial backup's
//! primitives over a real tree, on one thread, without writing anything: for every regular
//! file (holes of sparse files skipped, as the backup does), read it through the chunker,
//! hash every chunk to its keyed blob ID, and, for chunks not seen before, compress them
//! (with the incompressibility probe, at the repository's default level unless `--level`)
//! and encrypt them into 16 MiB packs with age, naming each pack by BLAKE3 of its bytes.
//! The engine's own code does each step (`Chunker`, `blob_id`, `Compressor`, `PackBuilder`);
//! what is left out is everything else a backup does: trees, the catalog, the index, writing
//! and syncing the packs (measured apart with `--read-side`).
//!
//! It prints each stage's CPU seconds (thread CPU clock) and two bounds for a backup on
//! `--cores` cores (default: all): the primitives divided by the cores, and the same with one
//! walking thread that reads, chunks and hashes each file while the others compress and
//! encrypt (per file, the larger of the walker's time and the total divided by the cores).
//! `benches/compare.sh` prints the first next to the measured backup.
//!
//! With `--read-side DIR` it then measures storing the packs it built (each written to a file
//! under `DIR`, synced and dropped from the page cache, as a local repository stores them:
//! the CPU time of that, which no backup can skip, is printed apart and as a second backup
//! bound), and the primitives of the
//! two steps that read the packs back, on one thread:
//! for each pack it times reading the file (from the page cache), decrypting it with age and
//! naming it by BLAKE3 in the same pass (as every reader does), and, for every blob in its
//! table, decompressing it and verifying its keyed ID. That is `check --read-data`'s work.
//! `restore`'s is the same plus writing every file of the tree under `DIR/tree` from the
//! verified blobs: creating the directories and the file, setting its length, writing each
//! chunk at its offset, then its owner, mode and times (as the restore does, with the same
//! system calls). `DIR` should be new or empty, on the file system the restore writes to, and
//! nothing should have been deleted there in the last five minutes (ext4 then creates files
//! more slowly); it is left in place. The last line is `key=value` pairs for scripts.

use coop_agent::chunker::Chunker;
use coop_formats::blob::{Compression, Compressor};
use coop_formats::config::ChunkerParams;
use coop_formats::crypt;
use coop_formats::id::{blob_id, chunker_seed, BlobType, Id};
use coop_formats::pack::PackBuilder;
use nix::sys::resource::{getrusage, UsageWho};
use nix::time::{clock_gettime, ClockId};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
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
    let mut read_side: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--level" => level = args.next().and_then(|v| v.parse().ok()).expect("--level N"),
            "--read-side" => read_side = Some(PathBuf::from(args.next().expect("--read-side DIR"))),
            "--verbose" => verbose = true,
            "--cores" => cores = args.next().and_then(|v| v.parse().ok()).expect("--cores N"),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => panic!(
                "usage: coop-primitives DIR [--level N] [--cores N] [--verbose] [--read-side DIR]"
            ),
        }
    }
    let dir = dir
        .expect("usage: coop-primitives DIR [--level N] [--cores N] [--verbose] [--read-side DIR]");
    if cores == 0 {
        cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    let mut list = Vec::new();
    files(&dir, &mut list).expect("listing the corpus");

    let id_key = [7u8; 32];
    let (identity, rcpt) = crypt::generate_identity();
    let recipients = vec![crypt::parse_recipient(&rcpt).expect("recipient")];
    let mut chunker = Chunker::new(&ChunkerParams::default(), chunker_seed(&id_key));
    let mut comp = Compressor::new(level);
    let mut pack: Option<PackBuilder> = None;
    let mut seen: HashSet<Id> = HashSet::new();
    let mut s = Stages::default();
    let (mut read, mut chunks, mut new_chunks, mut new_bytes, mut stored, mut packs) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let kernel0 = kernel_s();
    // Kernel time of the read side's copies, left out of `kernel`.
    let mut k_keep = 0.0;

    // Reused buffers, as the backup reuses its job and pack buffers: fresh memory would add
    // page faults that the backup does not have.
    let mut copy: Vec<u8> = Vec::with_capacity(16 << 20);
    let mut pack_buf: Vec<u8> = Vec::with_capacity(PACK_SIZE + (1 << 20));
    // For the read side: every finished pack, and each file's size and chunks (ID, offset).
    let keep = read_side.is_some();
    let mut built: Vec<Vec<u8>> = Vec::new();
    let mut layout: Vec<(u64, Vec<(Id, u64)>)> = Vec::new();
    for path in &list {
        let mut file_chunks: Vec<(Id, u64)> = Vec::new();
        let mut f = std::fs::File::open(path).expect("open");
        let ext = extents(&f).expect("extents");
        // Per chunk: copy it (the backup copies each new chunk into a job buffer for the
        // workers), hash it, and if it is new compress and encrypt it. What the chunker
        // call takes beyond those is reading and cutting.
        let (mut t_hash, mut t_comp, mut t_enc, mut t_keep) = (0.0, 0.0, 0.0, 0.0);
        let size = f.metadata().expect("metadata").len();
        let t_all = cpu();
        for (start, end) in ext {
            f.seek(SeekFrom::Start(start)).expect("seek");
            let mut at = start;
            read += chunker
                .chunk::<std::io::Error>(
                    (&mut f).take(end - start),
                    |e| e,
                    |c| {
                        let t = cpu();
                        let id = blob_id(&id_key, BlobType::Data, c);
                        t_hash += cpu() - t;
                        chunks += 1;
                        if keep {
                            file_chunks.push((id, at));
                        }
                        at += c.len() as u64;
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
                            if keep {
                                // A copy, not timed, so that the next pack reuses the
                                // buffer as it does without the read side.
                                let (t, k) = (cpu(), kernel_s());
                                built.push(bytes.clone());
                                t_keep += cpu() - t;
                                k_keep += kernel_s() - k;
                            }
                            pack_buf = bytes;
                        }
                        t_enc += cpu() - t2;
                        Ok(())
                    },
                )
                .expect("read");
        }
        t_enc -= t_keep;
        let t_chunk = cpu() - t_all - t_hash - t_comp - t_enc - t_keep;
        layout.push((size, file_chunks));
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
        built.push(bytes);
    }
    let kernel = kernel_s() - kernel0 - k_keep;
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
    let mut kv = format!(
        "primitives_cpu_s={total:.3} kernel_s={kernel:.3} cores={cores} bound_s={:.3} one_walker_bound_s={:.3} read_chunk_s={:.3} hash_s={:.3} compress_s={:.3} encrypt_s={:.3}",
        total / cores as f64,
        s.one_walker,
        s.read_chunk,
        s.hash,
        s.compress,
        s.encrypt
    );
    if let Some(work) = read_side {
        let ids = crypt::parse_identities(identity.as_bytes()).expect("identity");
        let r = read_back(&work, &built, &ids, &id_key, &dir, &list, &layout);
        let stored_bound = (total + r.store) / cores as f64;
        println!(
            "storing the packs (each written, synced and dropped from the page cache): {:.2} CPU-s; backup bound with it: {stored_bound:.2} s",
            r.store
        );
        let check = r.read + r.decrypt + r.decode;
        let restore = check + r.write;
        println!(
            "read side, CPU s: read packs {:.2}, decrypt+name {:.2}, decompress+verify {:.2} ({} blobs); write the tree {:.2} ({} files, {:.2} GB)",
            r.read, r.decrypt, r.decode, r.blobs, r.write, r.files, gb(r.written)
        );
        println!(
            "check --read-data bound on {cores} cores: {check:.2} CPU-s / {cores} = {:.2} s; restore bound: {restore:.2} CPU-s / {cores} = {:.2} s",
            check / cores as f64,
            restore / cores as f64
        );
        kv.push_str(&format!(
            " store_s={:.3} stored_bound_s={stored_bound:.3} read_s={:.3} decrypt_s={:.3} decode_s={:.3} write_s={:.3} check_cpu_s={check:.3} check_bound_s={:.3} restore_cpu_s={restore:.3} restore_bound_s={:.3}",
            r.store,
            r.read,
            r.decrypt,
            r.decode,
            r.write,
            check / cores as f64,
            restore / cores as f64
        ));
    }
    println!("{kv}");
}

/// What the read side measured: CPU seconds per stage, and counts.
#[derive(Default)]
struct ReadSide {
    /// Writing and syncing the packs (the backup's last step, not in its primitives).
    store: f64,
    read: f64,
    decrypt: f64,
    decode: f64,
    write: f64,
    blobs: u64,
    files: u64,
    written: u64,
}

/// The read side (module docs): the packs written under `work/packs`, read back, decrypted,
/// named and every blob verified; then the tree written under `work/tree`. Both are left for
/// the caller to remove: ext4 makes the next few minutes' file creations slower after a mass
/// delete (PERFORMANCE.md), which would slow the restore measured after this.
fn read_back(
    work: &Path,
    built: &[Vec<u8>],
    ids: &[crypt::Identity],
    id_key: &[u8; 32],
    corpus: &Path,
    list: &[PathBuf],
    layout: &[(u64, Vec<(Id, u64)>)],
) -> ReadSide {
    use coop_formats::{blob, pack};
    let packs_dir = work.join("packs");
    let tree = work.join("tree");
    std::fs::create_dir_all(&packs_dir).expect("create the pack directory");
    let mut paths = Vec::new();
    let mut r = ReadSide::default();
    // Storing the packs as a local repository does: each written, synced to disk and dropped
    // from the page cache (so the next write reuses those pages instead of taking fresh ones).
    let t = cpu();
    for (i, p) in built.iter().enumerate() {
        let path = packs_dir.join(format!("{i:05}"));
        std::fs::File::create(&path)
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, p)?;
                f.sync_all()?;
                nix::fcntl::posix_fadvise(
                    &f,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                )
                .map_err(std::io::Error::from)
            })
            .expect("write a pack");
        paths.push(path);
    }
    r.store = cpu() - t;
    // Read back once, not timed: the read side below reads the packs from the page cache.
    for path in &paths {
        std::fs::read(path).expect("read a pack");
    }
    let (mut stored, mut plain, mut scratch) = (Vec::new(), Vec::new(), Vec::new());
    // Every verified blob, kept (not timed) for the tree.
    let mut blobs: HashMap<Id, Vec<u8>> = HashMap::new();
    for path in &paths {
        let t = cpu();
        stored.clear();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut stored))
            .expect("read a pack");
        let t1 = cpu();
        pack::open_into_named(ids, &stored, &mut plain).expect("decrypt a pack");
        let table = pack::parse_table(&plain).expect("pack table");
        let t2 = cpu();
        r.read += t1 - t;
        r.decrypt += t2 - t1;
        for e in &table {
            let t = cpu();
            let start = e.offset as usize;
            let data = blob::decode_ref(
                id_key,
                e.id,
                e.ty,
                e.compression,
                e.raw_len,
                &plain[start..start + e.stored_len as usize],
                &mut scratch,
            )
            .expect("blob verifies");
            r.decode += cpu() - t;
            r.blobs += 1;
            blobs.insert(e.id, data.to_vec());
        }
    }
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let t = cpu();
    for (path, (size, chunks)) in list.iter().zip(layout) {
        let rel = path.strip_prefix(corpus).expect("under the corpus");
        let to = tree.join(rel);
        std::fs::create_dir_all(to.parent().expect("a parent")).expect("create directories");
        let f = std::fs::File::create(&to).expect("create a file");
        f.set_len(*size).expect("set the length");
        for (id, at) in chunks {
            f.write_all_at(&blobs[id], *at).expect("write");
            r.written += blobs[id].len() as u64;
        }
        nix::unistd::fchown(&f, Some(uid), Some(gid)).expect("owner");
        nix::sys::stat::fchmod(&f, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mode");
        let ts = nix::sys::time::TimeSpec::new(1_700_000_000, 0);
        nix::sys::stat::futimens(&f, &ts, &ts).expect("times");
        r.files += 1;
    }
    r.write = cpu() - t;
    r
}
