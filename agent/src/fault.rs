//! Fault injection for tests: an `object_store` wrapper that fails writes (ENOSPC),
//! reads (500s, resets) or stalls, and named crash points.
//!
//! Enabled only through environment variables, which tests set:
//! * `COOP_FAULT_STORE="put-enospc=0.2,put-error=0.1,get-error=0.1,get-stall=0.05,stall-secs=5,seed=7"`:
//!   wrap the store (`put-delay-ms=N`: every write waits N ms first, for race tests).
//! * `COOP_FAULT_POINT=prune:after-plan`: abort the process (like `kill -9`) when the
//!   named point is reached; `name#N` aborts at the N-th time it is reached.
//! * `COOP_PAUSE=backup:after-index-load=/tmp/go`: wait at that point until the file exists.

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Aborts the process if `COOP_FAULT_POINT` names this point (a crash test hook).
pub fn point(name: &str) {
    static COUNTS: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
    let Ok(spec) = std::env::var("COOP_FAULT_POINT") else {
        return;
    };
    let (want, nth) = match spec.split_once('#') {
        Some((w, n)) => (w.to_string(), n.parse::<u64>().unwrap_or(1)),
        None => (spec.clone(), 1),
    };
    if want != name {
        return;
    }
    let mut c = COUNTS.lock().expect("lock");
    let n = match c.iter_mut().find(|(k, _)| k == name) {
        Some((_, n)) => {
            *n += 1;
            *n
        }
        None => {
            c.push((name.to_string(), 1));
            1
        }
    };
    if n == nth {
        eprintln!("coop: fault point {name} reached: aborting (test)");
        std::process::abort();
    }
}

/// Blocks while `COOP_PAUSE=name=FILE` names this point, until FILE exists (a test hook to
/// hold an operation at a known place while another one runs).
pub fn pause(name: &str) {
    let Ok(spec) = std::env::var("COOP_PAUSE") else {
        return;
    };
    let Some((want, file)) = spec.split_once('=') else {
        return;
    };
    if want != name {
        return;
    }
    eprintln!("coop: paused at {name} until {file} exists (test)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !std::path::Path::new(file).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Probabilities of injected faults.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    pub put_enospc: f64,
    /// Transient write failures (a 500 or a reset connection).
    pub put_error: f64,
    pub get_error: f64,
    /// Reads that stall for `stall_secs` before answering.
    pub get_stall: f64,
    pub stall_secs: u64,
    /// Every write waits this long before it starts: widens the window between an
    /// appender's look at a name and its write, for race tests.
    pub put_delay_ms: u64,
    pub seed: u64,
}

impl FaultConfig {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut c = FaultConfig::default();
        for part in spec.split(',') {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("bad COOP_FAULT_STORE entry {part:?}"))?;
            let bad = || format!("bad COOP_FAULT_STORE value {v:?}");
            match k.trim() {
                "put-enospc" => c.put_enospc = v.parse().map_err(|_| bad())?,
                "get-error" => c.get_error = v.parse().map_err(|_| bad())?,
                "put-error" => c.put_error = v.parse().map_err(|_| bad())?,
                "get-stall" => c.get_stall = v.parse().map_err(|_| bad())?,
                "stall-secs" => c.stall_secs = v.parse().map_err(|_| bad())?,
                "put-delay-ms" => c.put_delay_ms = v.parse().map_err(|_| bad())?,
                "seed" => c.seed = v.parse().map_err(|_| bad())?,
                other => return Err(format!("unknown COOP_FAULT_STORE key {other:?}")),
            }
        }
        Ok(c)
    }
}

/// Wraps a store and fails some operations.
#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    cfg: FaultConfig,
    state: AtomicU64,
    pub injected: AtomicU64,
}

impl FaultStore {
    pub fn new(inner: Arc<dyn ObjectStore>, cfg: FaultConfig) -> Self {
        let seed = cfg.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        Self {
            inner,
            cfg,
            state: AtomicU64::new(seed),
            injected: AtomicU64::new(0),
        }
    }

    fn roll(&self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        let hit = (x >> 11) as f64 / (1u64 << 53) as f64 <= p;
        if hit {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn enospc() -> object_store::Error {
        object_store::Error::Generic {
            store: "fault",
            source: Box::new(std::io::Error::from_raw_os_error(28)),
        }
    }
}

impl std::fmt::Display for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if self.cfg.put_delay_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(self.cfg.put_delay_ms)).await;
        }
        if self.roll(self.cfg.put_enospc) {
            return Err(Self::enospc());
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        if self.roll(self.cfg.put_enospc) {
            return Err(Self::enospc());
        }
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if self.roll(self.cfg.get_stall) {
            tokio::time::sleep(std::time::Duration::from_secs(self.cfg.stall_secs.max(1))).await;
        }
        if self.roll(self.cfg.get_error) {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected 500 / connection reset",
                )),
            });
        }
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
