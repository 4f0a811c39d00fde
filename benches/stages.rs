//! Micro-benchmarks of each stage, on this machine: `cargo bench -p coop-benches`.
//! Figures go to docs/PERFORMANCE.md, never into tests.

use coop_agent::catalog::{Catalog, Entry};
use coop_agent::chunker::Chunker;
use coop_agent::index::table as index_cache;
use coop_agent::index::Index;
use coop_formats::blob::{self, Compressor};
use coop_formats::config::ChunkerParams;
use coop_formats::crypt;
use coop_formats::id::{blob_id, BlobType, Id};
use coop_formats::index::{IndexEntry, IndexFile, IndexPack};
use coop_formats::pack::PackBuilder;
use coop_formats::tree::Part;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::collections::HashSet;
use std::hint::black_box;
use std::time::Duration;

fn random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// SQL-dump-like text (the make-corpus shape: tab-separated rows with words).
fn sql(n: usize) -> Vec<u8> {
    let words = [
        "alice", "bob", "room", "message", "hello", "the", "of", "coop", "matrix", "event",
    ];
    let mut v = Vec::with_capacity(n + 200);
    let mut i = 0u64;
    while v.len() < n {
        let w = |k: u64| words[((i * 7 + k * 13) % words.len() as u64) as usize];
        v.extend_from_slice(
            format!(
                "{i}\t!{:05x}:example.org\t@{}:example.org\t{}\t{{\"body\":\"{} {} {}\"}}\n",
                i % 5000,
                w(1),
                1700000000000u64 + i * 37,
                w(2),
                w(3),
                w(4)
            )
            .as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v
}

fn chunking(c: &mut Criterion) {
    let data = random(64 << 20, 1);
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut ch = Chunker::new(&ChunkerParams::default(), 42);
    g.bench_function("fastcdc-1MiB-avg", |b| {
        b.iter(|| {
            ch.chunk::<std::io::Error>(
                &data[..],
                |e| e,
                |c| {
                    black_box(c.len());
                    Ok(())
                },
            )
        })
    });
    g.finish();
}

fn hashing(c: &mut Criterion) {
    let data = random(1 << 20, 2);
    let mut g = c.benchmark_group("keyed-hash");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("blake3-keyed-1MiB", |b| {
        b.iter(|| blob_id(&[7; 32], BlobType::Data, black_box(&data)))
    });
    g.finish();
}

fn compression(c: &mut Criterion) {
    let text = sql(1 << 20);
    let noise = random(1 << 20, 3);
    let mut g = c.benchmark_group("compression");
    g.throughput(Throughput::Bytes(1 << 20)).sample_size(20);
    for level in [1, 3, 6] {
        let mut comp = Compressor::new(level);
        let mut out = Vec::with_capacity(2 << 20);
        g.bench_with_input(BenchmarkId::new("sql-text", level), &text, |b, d| {
            b.iter(|| {
                out.clear();
                comp.compress_into(d, &mut out)
            })
        });
    }
    let mut comp = Compressor::new(3);
    let mut out = Vec::with_capacity(2 << 20);
    g.bench_function("incompressible-detected", |b| {
        b.iter(|| {
            out.clear();
            comp.compress_into(&noise, &mut out)
        })
    });
    g.finish();
}

fn encryption(c: &mut Criterion) {
    let (_, rcpt) = crypt::generate_identity();
    let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
    let data = random(16 << 20, 4);
    let mut g = c.benchmark_group("encryption");
    g.throughput(Throughput::Bytes(data.len() as u64))
        .sample_size(10);
    let mut out = Vec::with_capacity(17 << 20);
    g.bench_function("age-16MiB-pack", |b| {
        b.iter(|| {
            out.clear();
            crypt::encrypt_to(&r, &[&data], &mut out).unwrap()
        })
    });
    g.finish();
}

fn pack_writing(c: &mut Criterion) {
    let (_, rcpt) = crypt::generate_identity();
    let r = vec![crypt::parse_recipient(&rcpt).unwrap()];
    let chunks: Vec<Vec<u8>> = (0..16)
        .map(|i| {
            if i % 2 == 0 {
                sql(1 << 20)
            } else {
                random(1 << 20, i)
            }
        })
        .collect();
    let mut g = c.benchmark_group("pack-writing");
    g.throughput(Throughput::Bytes(16 << 20)).sample_size(10);
    let mut comp = Compressor::new(3);
    g.bench_function("16x1MiB-half-text", |b| {
        b.iter(|| {
            let mut p = PackBuilder::new([0; 16], &r, Vec::with_capacity(17 << 20)).unwrap();
            for (i, ch) in chunks.iter().enumerate() {
                p.add(&mut comp, BlobType::Data, Id([i as u8; 32]), ch)
                    .unwrap();
            }
            p.finish().unwrap()
        })
    });
    g.finish();
}

fn index_file(n: usize) -> (IndexFile, Vec<Id>) {
    let mut f = IndexFile::default();
    let packs = (n / 16).max(1);
    for p in 0..packs {
        f.packs.push(IndexPack {
            id: Id(*blake3::hash(&(p as u64).to_le_bytes()).as_bytes()),
            stored_size: 16 << 20,
        });
    }
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let id = Id(*blake3::hash(&(i as u64).to_be_bytes()).as_bytes());
        ids.push(id);
        f.entries.push(IndexEntry {
            id,
            pack: (i / 16) as u32 % packs as u32,
            ty: BlobType::Data,
            compression: 1,
            offset: 0,
            stored_len: 1,
            raw_len: 1,
        });
    }
    (f, ids)
}

/// Lookups in the in-memory overlay ("mem") and in the on-disk table ("disk"), which is what
/// a client with a cache directory uses.
fn index_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("index-lookup");
    let sizes: Vec<usize> = if std::env::var("COOP_BENCH_SMALL").is_ok() {
        vec![100_000]
    } else {
        vec![1_000_000, 10_000_000]
    };
    let dir = tempfile::tempdir().unwrap();
    for n in sizes {
        let (f, ids) = index_file(n);
        let present: HashSet<Id> = f.packs.iter().map(|p| p.id).collect();
        let mem = {
            let mut idx = Index::default();
            idx.add(Id([0; 32]), &f);
            idx
        };
        let path = dir.path().join(format!("{n}.index"));
        let table = index_cache::build(
            &path,
            &[1; 16],
            std::iter::once(Ok((Id([0; 32]), f))),
            &present,
        )
        .unwrap();
        let disk = Index::with_base(table);
        for (kind, idx) in [("mem", &mem), ("disk", &disk)] {
            let mut i = 0usize;
            g.bench_function(BenchmarkId::new(format!("{kind}-hit"), n), |b| {
                b.iter(|| {
                    i = (i + 7919) % ids.len();
                    black_box(idx.get(&ids[i]).unwrap())
                })
            });
            let misses: Vec<Id> = (0..4096u64)
                .map(|m| Id(*blake3::hash(&m.to_le_bytes()).as_bytes()))
                .collect();
            let mut m = 0usize;
            g.bench_function(BenchmarkId::new(format!("{kind}-miss"), n), |b| {
                b.iter(|| {
                    m = (m + 1) % misses.len();
                    black_box(idx.get(&misses[m]).unwrap())
                })
            });
        }
    }
    g.finish();
}

fn catalog_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut cat = Catalog::open(dir.path(), &Id([1; 32]), "coop").unwrap();
    let n: u64 = if std::env::var("COOP_BENCH_SMALL").is_ok() {
        100_000
    } else {
        1_000_000
    };
    for i in 0..n {
        cat.record(
            format!("/srv/data/dir{}/file{i}", i % 100).into_bytes(),
            Entry {
                size: i,
                mtime_ns: i as i64,
                ctime_ns: i as i64,
                ino: i,
                content: vec![Part::Blob(Id([3; 32]))],
                hash: None,
                xattrs: Some(Vec::new()),
            },
        )
        .unwrap();
    }
    cat.commit().unwrap();
    let mut g = c.benchmark_group("catalog-lookup");
    let mut i = 0u64;
    g.bench_function(BenchmarkId::new("hit", n), |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(
                cat.lookup(format!("/srv/data/dir{}/file{i}", i % 100).as_bytes())
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn restore_decoding(c: &mut Criterion) {
    let key = [9u8; 32];
    let text = sql(1 << 20);
    let id = blob_id(&key, BlobType::Data, &text);
    let mut stored = Vec::new();
    let comp = Compressor::new(3).compress_into(&text, &mut stored);
    let mut g = c.benchmark_group("restore-decoding");
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut out = Vec::with_capacity(2 << 20);
    g.bench_function("zstd-decode-and-verify-1MiB", |b| {
        b.iter(|| {
            blob::decode(
                &key,
                id,
                BlobType::Data,
                comp as u8,
                text.len() as u32,
                &stored,
                &mut out,
            )
            .unwrap()
        })
    });
    let (idt, rcpt) = crypt::generate_identity();
    let ids = crypt::parse_identities(idt.as_bytes()).unwrap();
    let mut sealed = Vec::new();
    crypt::encrypt_to(
        &[crypt::parse_recipient(&rcpt).unwrap()],
        &[&random(16 << 20, 5)],
        &mut sealed,
    )
    .unwrap();
    g.throughput(Throughput::Bytes(16 << 20)).sample_size(10);
    g.bench_function("age-decrypt-16MiB-pack", |b| {
        b.iter(|| crypt::decrypt(&ids, &sealed, 32 << 20).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = stages;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
    targets = chunking, hashing, compression, encryption, pack_writing, index_lookup, catalog_lookup, restore_decoding
}
criterion_main!(stages);
