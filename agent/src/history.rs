//! Job and replication history, in the SQLite catalog of the site's repository.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

pub struct History {
    conn: Connection,
}

/// Times are kept as Unix seconds and shown (in `status --json`) as RFC 3339, like every
/// other time coop prints.
mod time {
    use serde::Serializer;

    pub fn one<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::daemon::rfc3339(*t))
    }

    pub fn opt<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&crate::daemon::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub job: String,
    #[serde(serialize_with = "time::one")]
    pub started: i64,
    #[serde(serialize_with = "time::opt")]
    pub finished: Option<i64>,
    pub status: String,
    pub snapshot: Option<String>,
    pub message: String,
    pub bytes_added: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerState {
    pub peer: String,
    #[serde(serialize_with = "time::opt")]
    pub last_ok: Option<i64>,
    #[serde(serialize_with = "time::opt")]
    pub last_attempt: Option<i64>,
    pub failures: u32,
    #[serde(serialize_with = "time::opt")]
    pub next_retry: Option<i64>,
    /// Objects and bytes the peer lacked after the last attempt (`None`: unknown, the peer
    /// could not be reached).
    pub lag_objects: Option<u64>,
    pub lag_bytes: Option<u64>,
    pub message: String,
    /// Set when the site changed since the last successful replication.
    pub dirty: bool,
}

impl History {
    /// Opens (creating) the history tables in `<cache>/<repo id>/catalog.sqlite`.
    pub fn open(cache_dir: &Path, repo_id: &coop_formats::id::Id) -> Result<Self> {
        let dir = cache_dir.join(repo_id.to_hex());
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        crate::catalog::retry_busy(|| Self::connect(&dir.join("catalog.sqlite")))
    }

    fn connect(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Setting the journal mode takes a lock without waiting: only do it once.
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS job_runs (id INTEGER PRIMARY KEY, job TEXT NOT NULL, started INTEGER NOT NULL,
                finished INTEGER, status TEXT NOT NULL, snapshot TEXT, message TEXT NOT NULL DEFAULT '',
                bytes_added INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS job_runs_job ON job_runs (job, started);
             CREATE TABLE IF NOT EXISTS peer_state (peer TEXT PRIMARY KEY, last_ok INTEGER, last_attempt INTEGER,
                failures INTEGER NOT NULL DEFAULT 0, next_retry INTEGER, lag_objects INTEGER NOT NULL DEFAULT 0,
                lag_bytes INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', dirty INTEGER NOT NULL DEFAULT 1);",
        )?;
        Ok(Self { conn })
    }

    pub fn start_job(&self, job: &str, now: i64) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO job_runs (job, started, status) VALUES (?1, ?2, 'running')",
            params![job, now],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn finish_job(
        &self,
        id: i64,
        now: i64,
        ok: bool,
        snapshot: Option<&str>,
        message: &str,
        bytes_added: u64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE job_runs SET finished = ?2, status = ?3, snapshot = ?4, message = ?5, bytes_added = ?6 WHERE id = ?1",
            params![id, now, if ok { "ok" } else { "failed" }, snapshot, message, bytes_added as i64],
        )?;
        Ok(())
    }

    pub fn last_run(&self, job: &str) -> Result<Option<JobRun>> {
        Ok(self
            .conn
            .query_row(
                "SELECT job, started, finished, status, snapshot, message, bytes_added FROM job_runs
                 WHERE job = ?1 ORDER BY started DESC, id DESC LIMIT 1",
                params![job],
                |r| {
                    Ok(JobRun {
                        job: r.get(0)?,
                        started: r.get(1)?,
                        finished: r.get(2)?,
                        status: r.get(3)?,
                        snapshot: r.get(4)?,
                        message: r.get(5)?,
                        bytes_added: r.get::<_, i64>(6)? as u64,
                    })
                },
            )
            .optional()?)
    }

    pub fn runs(&self, job: &str) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM job_runs WHERE job = ?1 AND status = 'ok'",
            params![job],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    pub fn peer(&self, peer: &str) -> Result<PeerState> {
        Ok(self
            .conn
            .query_row(
                "SELECT peer, last_ok, last_attempt, failures, next_retry, lag_objects, lag_bytes, message, dirty
                 FROM peer_state WHERE peer = ?1",
                params![peer],
                |r| {
                    Ok(PeerState {
                        peer: r.get(0)?,
                        last_ok: r.get(1)?,
                        last_attempt: r.get(2)?,
                        failures: r.get::<_, i64>(3)? as u32,
                        next_retry: r.get(4)?,
                        lag_objects: u64::try_from(r.get::<_, i64>(5)?).ok(),
                        lag_bytes: u64::try_from(r.get::<_, i64>(6)?).ok(),
                        message: r.get(7)?,
                        dirty: r.get::<_, i64>(8)? != 0,
                    })
                },
            )
            .optional()?
            .unwrap_or(PeerState { peer: peer.into(), dirty: true, ..Default::default() }))
    }

    pub fn save_peer(&self, s: &PeerState) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO peer_state (peer, last_ok, last_attempt, failures, next_retry, lag_objects, lag_bytes, message, dirty)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                s.peer,
                s.last_ok,
                s.last_attempt,
                s.failures as i64,
                s.next_retry,
                s.lag_objects.map_or(-1, |v| v as i64),
                s.lag_bytes.map_or(-1, |v| v as i64),
                s.message,
                s.dirty as i64
            ],
        )?;
        Ok(())
    }

    /// Marks every peer as needing replication.
    pub fn mark_dirty(&self, peers: &[String]) -> Result<()> {
        for p in peers {
            let mut s = self.peer(p)?;
            s.dirty = true;
            s.next_retry = None;
            s.failures = 0;
            self.save_peer(&s)?;
        }
        Ok(())
    }
}
