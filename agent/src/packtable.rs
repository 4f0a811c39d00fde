//! A pack's own table, read from the pack itself with ranged reads, and cached.
//!
//! Index objects can be written by any writer, so nothing that deletes or judges data takes
//! their word for what a pack holds: prune and check read the table inside the pack (only
//! its first and last 64 KiB chunks, authenticated by age; a pack's name is the hash of its
//! bytes, so a table read once holds for ever and is cached by pack name).

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use crate::store::Store;
use coop_formats::id::{BlobType, Id};
use coop_formats::pack::PackEntry;
use rusqlite::{params, Connection, OptionalExtension};
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::Path;

/// How much a ranged reader fetches at once: one age chunk (64 KiB + tag) and the header.
const FETCH: u64 = 160 << 10;

/// `Read + BufRead + Seek` over one stored object, fetching byte ranges as they are needed.
pub struct RangedReader<'s> {
    store: &'s Store,
    path: String,
    size: u64,
    pos: u64,
    /// Where position 0 is in the object.
    base: u64,
    buf: Vec<u8>,
    buf_at: u64,
    /// Bytes fetched, for the figures.
    pub fetched: u64,
    /// The store error that stopped a read (age sees only an I/O error).
    pub failed: Option<crate::store::StoreError>,
}

impl<'s> RangedReader<'s> {
    pub fn new(store: &'s Store, path: String, size: u64) -> Self {
        Self {
            store,
            path,
            size,
            pos: 0,
            base: 0,
            buf: Vec::new(),
            buf_at: 0,
            fetched: 0,
            failed: None,
        }
    }

    /// The reader's position 0 is byte `base` of the object (an age file after a header).
    pub fn starting_at(mut self, base: u64) -> Self {
        self.base = base;
        self
    }
}

impl Read for RangedReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = {
            let b = self.fill_buf()?;
            let n = b.len().min(out.len());
            out[..n].copy_from_slice(&b[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for RangedReader<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.base + self.pos >= self.size {
            return Ok(&[]);
        }
        let in_buf = self.pos >= self.buf_at && self.pos < self.buf_at + self.buf.len() as u64;
        if !in_buf {
            let at = self.base + self.pos;
            let end = (at + FETCH).min(self.size);
            tracing::debug!("{}: reading bytes {at}..{end}", self.path);
            match self.store.get_range(&self.path, at..end) {
                Ok(b) => self.buf = b,
                Err(e) => {
                    let io = std::io::Error::other(e.to_string());
                    self.failed = Some(e);
                    return Err(io);
                }
            }
            self.fetched += self.buf.len() as u64;
            self.buf_at = self.pos;
            if self.buf.is_empty() {
                return Ok(&[]);
            }
        }
        Ok(&self.buf[(self.pos - self.buf_at) as usize..])
    }

    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
    }
}

impl Seek for RangedReader<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let p = match to {
            SeekFrom::Start(p) => p as i128,
            SeekFrom::End(d) => (self.size - self.base.min(self.size)) as i128 + d as i128,
            SeekFrom::Current(d) => self.pos as i128 + d as i128,
        };
        if p < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        self.pos = p as u64;
        Ok(self.pos)
    }
}

/// Verified pack tables by pack name, in `<cache>/<repo id>/catalog.sqlite`.
pub struct TableCache {
    conn: Connection,
}

impl TableCache {
    pub fn open(cache_dir: &Path, repo_id: &Id) -> Result<Self> {
        let dir = cache_dir.join(repo_id.to_hex());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        crate::catalog::retry_busy(|| {
            let conn = Connection::open(dir.join("catalog.sqlite"))?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS pack_tables (pack BLOB PRIMARY KEY, entries BLOB NOT NULL);",
            )?;
            Ok(Self { conn })
        })
    }

    pub fn get(&self, pack: &Id) -> Option<Vec<PackEntry>> {
        let b: Vec<u8> = self
            .conn
            .query_row(
                "SELECT entries FROM pack_tables WHERE pack = ?1",
                params![&pack.0[..]],
                |r| r.get(0),
            )
            .optional()
            .ok()??;
        decode(&b)
    }

    pub fn put(&self, pack: &Id, entries: &[PackEntry]) {
        let _ = self.conn.execute(
            "INSERT OR REPLACE INTO pack_tables (pack, entries) VALUES (?1, ?2)",
            params![&pack.0[..], encode(entries)],
        );
    }
}

fn encode(entries: &[PackEntry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(entries.len() * 46);
    for e in entries {
        b.push(e.ty as u8);
        b.push(e.compression);
        b.extend_from_slice(&e.id.0);
        b.extend_from_slice(&e.offset.to_le_bytes());
        b.extend_from_slice(&e.stored_len.to_le_bytes());
        b.extend_from_slice(&e.raw_len.to_le_bytes());
    }
    b
}

fn decode(b: &[u8]) -> Option<Vec<PackEntry>> {
    if !b.len().is_multiple_of(46) {
        return None;
    }
    b.chunks_exact(46)
        .map(|c| {
            let u = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().expect("4"));
            Some(PackEntry {
                ty: BlobType::from_u8(c[0])?,
                compression: c[1],
                id: Id(c[2..34].try_into().expect("32")),
                offset: u(34),
                stored_len: u(38),
                raw_len: u(42),
            })
        })
        .collect()
}

/// Reads the tables of packs, through the cache where there is one.
pub struct Tables<'a> {
    repo: &'a Repo,
    keys: &'a TenantKeys,
    cache: Option<TableCache>,
    /// Bytes fetched from the store.
    pub fetched: std::sync::atomic::AtomicU64,
}

impl<'a> Tables<'a> {
    pub fn new(repo: &'a Repo, keys: &'a TenantKeys) -> Result<Self> {
        keys.reader()?;
        let cache = match repo.cache_dir() {
            Some(d) => TableCache::open(d, &repo.config.repo_id)
                .map_err(|e| tracing::warn!("pack table cache not usable: {e}"))
                .ok(),
            None => None,
        };
        Ok(Self {
            repo,
            keys,
            cache,
            fetched: Default::default(),
        })
    }

    /// The table of pack `id` (`size` bytes in the store).
    pub fn get(&self, id: &Id, size: u64) -> Result<Vec<PackEntry>> {
        if let Some(t) = self.cache.as_ref().and_then(|c| c.get(id)) {
            return Ok(t);
        }
        let path = Kind::Pack.path(&self.keys.tag, id);
        let mut r = RangedReader::new(&self.repo.store, path.clone(), size);
        let ids = &self.keys.reader()?.identities;
        let res = coop_formats::pack::read_table(ids, &mut r);
        self.fetched
            .fetch_add(r.fetched, std::sync::atomic::Ordering::Relaxed);
        let (h, entries) = match (res, r.failed) {
            (Ok(t), _) => t,
            (Err(_), Some(store)) => return Err(store.into()),
            (Err(e), None) => return Err(Error::damaged(&path, e)),
        };
        if h.tenant != self.keys.tag {
            return Err(Error::damaged(&path, "pack belongs to another tenant"));
        }
        if let Some(c) = &self.cache {
            c.put(id, &entries);
        }
        Ok(entries)
    }

    /// Records a table read some other way (a whole pack decrypted).
    pub fn remember(&self, id: &Id, entries: &[PackEntry]) {
        if let Some(c) = &self.cache {
            c.put(id, entries);
        }
    }
}
