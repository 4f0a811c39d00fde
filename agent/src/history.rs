//! Job and replication history, in the SQLite catalog of the site's repository.

use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

pub struct History {
    conn: Connection,
}

/// The time the agent records runs, peers and usage at: now, or for tests that simulate days
/// of history, `COOP_TEST_NOW` (RFC 3339 or Unix seconds; never set it in production: the
/// scheduler would stand still).
pub fn now() -> i64 {
    if let Some(t) = std::env::var("COOP_TEST_NOW")
        .ok()
        .and_then(|v| parse_time(v.trim()))
    {
        return t;
    }
    chrono::Utc::now().timestamp()
}

/// Unix seconds from RFC 3339 or a plain number.
fn parse_time(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(v)
            .ok()
            .map(|t| t.timestamp())
    })
}

/// Times are kept as Unix seconds and shown (in `status --json`) as RFC 3339, like every
/// other time coop prints.
mod time {
    use serde::Serializer;

    pub fn one<S: Serializer>(t: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::unix_rfc3339(*t))
    }

    pub fn opt<S: Serializer>(t: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&crate::unix_rfc3339(*t)),
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

/// How a run's energy was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnergyMethod {
    /// From the processor's RAPL counters, attributed by the run's share of CPU time.
    Measured,
    /// CPU-seconds times the configured watts per busy core.
    Estimate,
}

impl EnergyMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergyMethod::Measured => "measured",
            EnergyMethod::Estimate => "estimate",
        }
    }
}

/// What one run used.
#[derive(Debug, Clone, Serialize)]
pub struct Energy {
    /// CPU time of coop and the commands it ran (hooks, dumps), user + system.
    pub cpu_seconds: f64,
    /// `None`: an estimate without a configured wattage (only the CPU time is known).
    pub joules: Option<f64>,
    pub method: EnergyMethod,
}

/// A run with its energy (`None` for runs recorded before energy was).
#[derive(Debug, Clone)]
pub struct RunEnergy {
    pub job: String,
    pub started: i64,
    pub finished: Option<i64>,
    pub status: String,
    pub bytes_added: u64,
    pub energy: Option<Energy>,
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
                lag_bytes INTEGER NOT NULL DEFAULT 0, message TEXT NOT NULL DEFAULT '', dirty INTEGER NOT NULL DEFAULT 1);
             CREATE TABLE IF NOT EXISTS usage_samples (tenant TEXT NOT NULL, time INTEGER NOT NULL,
                stored_bytes INTEGER NOT NULL, PRIMARY KEY (tenant, time));",
        )?;
        // Energy per run (added for the transparency report): histories written before have
        // no such columns, and gain them here.
        for (col, ty) in [
            ("cpu_seconds", "REAL"),
            ("energy_joules", "REAL"),
            ("energy_method", "TEXT"),
        ] {
            if !Self::has_column(&conn, "job_runs", col)? {
                if let Err(e) =
                    conn.execute_batch(&format!("ALTER TABLE job_runs ADD COLUMN {col} {ty}"))
                {
                    // Another process may have added it at the same moment.
                    if !Self::has_column(&conn, "job_runs", col)? {
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(Self { conn })
    }

    fn has_column(conn: &Connection, table: &str, col: &str) -> Result<bool> {
        let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
        let names = st.query_map([], |r| r.get::<_, String>(1))?;
        for n in names {
            if n? == col {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Opens the history only if this cache directory has one (the report reads, and
    /// creates nothing where no agent ran).
    pub fn open_existing(cache_dir: &Path, repo_id: &coop_formats::id::Id) -> Result<Option<Self>> {
        let path = cache_dir.join(repo_id.to_hex()).join("catalog.sqlite");
        if !path.exists() {
            return Ok(None);
        }
        Self::open(cache_dir, repo_id).map(Some)
    }

    /// Records what one run used: CPU time and energy (see `daemon::energy`).
    pub fn record_energy(&self, id: i64, e: &Energy) -> Result<()> {
        self.conn.execute(
            "UPDATE job_runs SET cpu_seconds = ?2, energy_joules = ?3, energy_method = ?4 WHERE id = ?1",
            params![id, e.cpu_seconds, e.joules, e.method.as_str()],
        )?;
        Ok(())
    }

    /// Every run that started in `[since, until]`, oldest first, with its energy.
    pub fn runs_between(&self, since: i64, until: i64) -> Result<Vec<RunEnergy>> {
        let mut st = self.conn.prepare(
            "SELECT job, started, finished, status, bytes_added, cpu_seconds, energy_joules, energy_method
             FROM job_runs WHERE started >= ?1 AND started <= ?2 ORDER BY started, id",
        )?;
        let rows = st.query_map(params![since, until], |r| {
            Ok(RunEnergy {
                job: r.get(0)?,
                started: r.get(1)?,
                finished: r.get(2)?,
                status: r.get(3)?,
                bytes_added: r.get::<_, i64>(4)? as u64,
                energy: match r.get::<_, Option<f64>>(5)? {
                    None => None,
                    Some(cpu_seconds) => Some(Energy {
                        cpu_seconds,
                        joules: r.get(6)?,
                        method: match r.get::<_, Option<String>>(7)?.as_deref() {
                            Some("measured") => EnergyMethod::Measured,
                            _ => EnergyMethod::Estimate,
                        },
                    }),
                },
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Records a tenant's stored bytes at a time (after a job wrote to it).
    pub fn sample_usage(&self, time: i64, tenant: &str, stored_bytes: u64) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO usage_samples (tenant, time, stored_bytes) VALUES (?1, ?2, ?3)",
            params![tenant, time, stored_bytes as i64],
        )?;
        Ok(())
    }

    /// Every usage sample up to `until`: (time, tenant, stored bytes), oldest first.
    pub fn usage_samples(&self, until: i64) -> Result<Vec<(i64, String, u64)>> {
        let mut st = self.conn.prepare(
            "SELECT time, tenant, stored_bytes FROM usage_samples WHERE time <= ?1 ORDER BY time, tenant",
        )?;
        let rows = st.query_map(params![until], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_history_gains_energy_columns_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        let id = coop_formats::id::Id([7; 32]);
        let db = dir.path().join(id.to_hex());
        std::fs::create_dir_all(&db).unwrap();
        // The schema before energy was recorded.
        let old = Connection::open(db.join("catalog.sqlite")).unwrap();
        old.execute_batch(
            "CREATE TABLE job_runs (id INTEGER PRIMARY KEY, job TEXT NOT NULL, started INTEGER NOT NULL,
                finished INTEGER, status TEXT NOT NULL, snapshot TEXT, message TEXT NOT NULL DEFAULT '',
                bytes_added INTEGER NOT NULL DEFAULT 0);
             INSERT INTO job_runs (job, started, finished, status) VALUES ('old', 100, 110, 'ok');",
        )
        .unwrap();
        drop(old);
        let h = History::open(dir.path(), &id).unwrap();
        let runs = h.runs_between(0, 1000).unwrap();
        assert_eq!(runs.len(), 1);
        assert!(runs[0].energy.is_none());
        let run = h.start_job("new", 200).unwrap();
        h.finish_job(run, 210, true, None, "", 5).unwrap();
        h.record_energy(
            run,
            &Energy {
                cpu_seconds: 1.5,
                joules: Some(30.0),
                method: EnergyMethod::Measured,
            },
        )
        .unwrap();
        // Opening again (a second process) changes nothing.
        let h = History::open(dir.path(), &id).unwrap();
        let runs = h.runs_between(150, 1000).unwrap();
        assert_eq!(runs.len(), 1);
        let e = runs[0].energy.as_ref().unwrap();
        assert_eq!(
            (e.cpu_seconds, e.joules, e.method),
            (1.5, Some(30.0), EnergyMethod::Measured)
        );
        h.sample_usage(200, "coop", 10).unwrap();
        h.sample_usage(300, "coop", 20).unwrap();
        assert_eq!(
            h.usage_samples(250).unwrap(),
            vec![(200, "coop".to_string(), 10)]
        );
    }
}
