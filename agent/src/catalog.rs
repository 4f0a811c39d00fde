//! The SQLite catalog: a cache of what each file looked like when it was last read.
//!
//! Keyed on (tenant, path) with size, mtime, ctime and inode. A hit means the file is
//! not read again. The catalog is only a cache: if it is missing or damaged it is
//! rebuilt, and every hit is checked against the repository index before it is trusted.

use crate::error::{Error, Result};
use coop_formats::id::Id;
use coop_formats::tree::{Part, Xattr};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// What a file looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub content: Vec<Part>,
    /// BLAKE3 of the content, where it was computed (member tenants' manifests need it).
    pub hash: Option<[u8; 32]>,
    /// Extended attributes as read with this ctime (changing one changes the ctime), so an
    /// unchanged file needs no xattr system calls. `None`: not recorded.
    pub xattrs: Option<Vec<Xattr>>,
}

/// Entries written per transaction while a backup runs (bounds the memory of a first
/// backup of many files; an entry written for a backup that then fails is harmless, as
/// every hit is checked against the index).
const BATCH: usize = 4096;

pub struct Catalog {
    /// Writes, in batches.
    conn: Connection,
    /// Lookups, inside one read transaction held for the whole walk: per-statement
    /// transactions cost two lock system calls each.
    reader: Connection,
    reading: bool,
    tenant: String,
    pending: Vec<(Vec<u8>, Entry)>,
}

/// Retries `f` while SQLite reports the database busy. Creating a database and switching
/// it to WAL take locks that do not wait for the busy timeout, so two processes opening a new
/// catalog at once (the agent and `coop status`) can see "database is locked" once.
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match f() {
            Err(Error::Catalog(rusqlite::Error::SqliteFailure(e, _)))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// `$COOP_CACHE_DIR`, else `$XDG_CACHE_HOME/coop`, else `~/.cache/coop`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("COOP_CACHE_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("coop"))
}

fn encode_parts(parts: &[Part]) -> Vec<u8> {
    let mut b = Vec::with_capacity(parts.len() * 33);
    for p in parts {
        match p {
            Part::Blob(id) => {
                b.push(0);
                b.extend_from_slice(&id.0);
            }
            Part::Hole { hole } => {
                b.push(1);
                b.extend_from_slice(&hole.to_le_bytes());
            }
        }
    }
    b
}

fn encode_xattrs(x: &[Xattr]) -> Vec<u8> {
    let mut b = Vec::new();
    for a in x {
        b.extend_from_slice(&(a.name.len() as u32).to_le_bytes());
        b.extend_from_slice(a.name.as_bytes());
        b.extend_from_slice(&(a.value.len() as u32).to_le_bytes());
        b.extend_from_slice(&a.value);
    }
    b
}

fn decode_xattrs(mut b: &[u8]) -> Option<Vec<Xattr>> {
    let mut out = Vec::new();
    let take = |b: &mut &[u8]| -> Option<Vec<u8>> {
        let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
        let v = b.get(4..4 + n)?.to_vec();
        *b = &b[4 + n..];
        Some(v)
    };
    while !b.is_empty() {
        let name = String::from_utf8(take(&mut b)?).ok()?;
        let value = take(&mut b)?;
        out.push(Xattr { name, value });
    }
    Some(out)
}

fn decode_parts(mut b: &[u8]) -> Option<Vec<Part>> {
    let mut out = Vec::new();
    while let Some((&t, rest)) = b.split_first() {
        match t {
            0 if rest.len() >= 32 => {
                out.push(Part::Blob(Id(rest[..32].try_into().ok()?)));
                b = &rest[32..];
            }
            1 if rest.len() >= 8 => {
                out.push(Part::Hole {
                    hole: u64::from_le_bytes(rest[..8].try_into().ok()?),
                });
                b = &rest[8..];
            }
            _ => return None,
        }
    }
    Some(out)
}

impl Catalog {
    /// Opens (or creates) the catalog of a repository. A damaged catalog is replaced.
    pub fn open(cache_dir: &Path, repo_id: &Id, tenant: &str) -> Result<Self> {
        let dir = cache_dir.join(repo_id.to_hex());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join("catalog.sqlite");
        let conn = match Self::connect(&path) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "catalog {} is damaged ({e}); starting a new one",
                    path.display()
                );
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Self::connect(&path)?
            }
        };
        let reader = Connection::open(&path)?;
        reader.busy_timeout(std::time::Duration::from_secs(30))?;
        reader.pragma_update(None, "cache_size", -4096)?; // 4 MiB of pages
        Ok(Self {
            conn,
            reader,
            reading: false,
            tenant: tenant.to_string(),
            pending: Vec::new(),
        })
    }

    fn connect(path: &Path) -> Result<Connection> {
        retry_busy(|| Self::connect_once(path))
    }

    fn connect_once(path: &Path) -> Result<Connection> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Setting the journal mode takes a lock without waiting: only do it once.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // `files` replaced the `entries` table of coop 0.1 (which had no xattrs column).
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS files (
                tenant TEXT NOT NULL, path BLOB NOT NULL, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, ino INTEGER NOT NULL,
                content BLOB NOT NULL, hash BLOB, xattrs BLOB,
                PRIMARY KEY (tenant, path)) WITHOUT ROWID;
             DROP TABLE IF EXISTS entries;",
        )?;
        conn.query_row("SELECT count(*) FROM files LIMIT 1", [], |_| Ok(()))?;
        Ok(conn)
    }

    pub fn lookup(&mut self, path: &[u8]) -> Result<Option<Entry>> {
        if !self.reading {
            self.reader.execute_batch("BEGIN")?;
            self.reading = true;
        }
        let mut st = self.reader.prepare_cached(
            "SELECT size, mtime_ns, ctime_ns, ino, content, hash, xattrs FROM files WHERE tenant = ?1 AND path = ?2",
        )?;
        let row = st
            .query_row(params![self.tenant, path], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Option<Vec<u8>>>(5)?,
                    r.get::<_, Option<Vec<u8>>>(6)?,
                ))
            })
            .optional()?;
        Ok(
            row.and_then(|(size, mtime_ns, ctime_ns, ino, content, hash, xattrs)| {
                Some(Entry {
                    size: size as u64,
                    mtime_ns,
                    ctime_ns,
                    ino: ino as u64,
                    content: decode_parts(&content)?,
                    hash: hash.and_then(|h| h.try_into().ok()),
                    xattrs: xattrs.and_then(|x| decode_xattrs(&x)),
                })
            }),
        )
    }

    /// The bytes the last backups saw under these paths: an estimate of this backup's total
    /// for its progress bar (files deleted since are still counted).
    pub fn estimate(&self, paths: &[Vec<u8>]) -> Result<u64> {
        let mut st = self.reader.prepare_cached(
            "SELECT coalesce(sum(size), 0) FROM files WHERE tenant = ?1 AND (path = ?2 OR (path > ?3 AND path < ?4))",
        )?;
        let mut total = 0u64;
        for p in paths {
            let p = p.strip_suffix(b"/").unwrap_or(p);
            let mut below = p.to_vec();
            below.push(b'/');
            // '0' follows '/': every path below `p/` sorts before `p0`.
            let mut after = p.to_vec();
            after.push(b'0');
            let n: i64 = st.query_row(params![self.tenant, p, below, after], |r| r.get(0))?;
            total += n.max(0) as u64;
        }
        Ok(total)
    }

    /// Remembers an entry; written in batches, and by [`Catalog::commit`].
    pub fn record(&mut self, path: Vec<u8>, e: Entry) -> Result<()> {
        self.pending.push((path, e));
        if self.pending.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR REPLACE INTO files (tenant, path, size, mtime_ns, ctime_ns, ino, content, hash, xattrs)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (p, e) in self.pending.drain(..) {
                st.execute(params![
                    self.tenant,
                    p,
                    e.size as i64,
                    e.mtime_ns,
                    e.ctime_ns,
                    e.ino as i64,
                    encode_parts(&e.content),
                    e.hash.map(|h| h.to_vec()),
                    e.xattrs.as_deref().map(encode_xattrs),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ends the walk's read transaction and writes every entry still pending.
    pub fn commit(&mut self) -> Result<()> {
        if self.reading {
            self.reader.execute_batch("COMMIT")?;
            self.reading = false;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lookup_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let id = Id([1; 32]);
        let mut c = Catalog::open(dir.path(), &id, "coop").unwrap();
        let e = Entry {
            size: 5,
            mtime_ns: -3,
            ctime_ns: 4,
            ino: 9,
            content: vec![Part::Blob(Id([2; 32])), Part::Hole { hole: 7 }],
            hash: Some([5; 32]),
            xattrs: Some(vec![Xattr {
                name: "user.a".into(),
                value: vec![0, 1, 2],
            }]),
        };
        c.record(b"/a".to_vec(), e.clone()).unwrap();
        c.commit().unwrap();
        assert_eq!(c.lookup(b"/a").unwrap(), Some(e));
        assert_eq!(c.lookup(b"/b").unwrap(), None);
        drop(c);
        // Other tenants do not see it.
        assert_eq!(
            Catalog::open(dir.path(), &id, "member/x")
                .unwrap()
                .lookup(b"/a")
                .unwrap(),
            None
        );
        // A damaged catalog is replaced, not fatal.
        std::fs::write(
            dir.path().join(id.to_hex()).join("catalog.sqlite"),
            b"garbage garbage garbage",
        )
        .unwrap();
        let _ = std::fs::remove_file(dir.path().join(id.to_hex()).join("catalog.sqlite-wal"));
        let mut c = Catalog::open(dir.path(), &id, "coop").unwrap();
        assert_eq!(c.lookup(b"/a").unwrap(), None);
    }
}
