//! Object storage through `object_store`: a local directory (plain path or `file://`)
//! or an in-memory store (`memory:`, for tests).
//!
//! All operations are synchronous wrappers over one shared tokio runtime. Listings are
//! complete or fail: a listing error is never read as "empty".

use futures::TryStreamExt;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

type Bytes = Vec<u8>;

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open store {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("object {path} not found in {url}")]
    NotFound { url: String, path: String },
    #[error("object {path} already exists in {url}")]
    Exists { url: String, path: String },
    #[error("store {url} does not support {op}")]
    Unsupported { url: String, op: &'static str },
    #[error("store {url}: {op} {path} failed: {reason}")]
    Op {
        url: String,
        op: &'static str,
        path: String,
        reason: String,
        no_space: bool,
    },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// Whether an error was caused by a full disk (ENOSPC), found by walking its sources.
fn is_no_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.raw_os_error())
            == Some(28)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            // Few blocking threads: each one that allocates gets its own malloc arena, and
            // pack-sized buffers freed elsewhere stay cached there (restore grew by 16 MiB
            // per extra thread).
            .max_blocking_threads(2)
            .thread_name("coop-io")
            .enable_all()
            .build()
            .expect("cannot start the I/O runtime")
    })
}

/// An object in a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub size: u64,
}

/// A store of immutable objects.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    url: String,
    local_root: Option<PathBuf>,
    /// Cleared when the server rejects create-only PUTs: names are content hashes, so an
    /// overwrite writes the same bytes.
    create_only: Arc<std::sync::atomic::AtomicBool>,
}

/// S3 settings from a config file (the environment is read too; these win).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub allow_http: bool,
}

/// Per-operation time limit (`COOP_STORE_TIMEOUT_SECS`, default 120 s): a stalled
/// request is cut off and retried.
fn op_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(
        std::env::var("COOP_STORE_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    )
}

/// Attempts per operation for transient errors (5xx, resets, timeouts).
const ATTEMPTS: u32 = 4;

fn is_permanent(e: &object_store::Error) -> bool {
    use object_store::Error as E;
    matches!(
        e,
        E::NotFound { .. }
            | E::AlreadyExists { .. }
            | E::Precondition { .. }
            | E::NotModified { .. }
            | E::NotImplemented { .. }
            | E::InvalidPath { .. }
            | E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::NotSupported { .. }
    ) || is_no_space(e)
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens a store by URL with settings from the environment. A local directory is
    /// created if `create` is set.
    pub fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        Self::open_with(url, create, &S3Options::default())
    }

    /// Opens a store by URL: a path, `file://PATH`, `s3://BUCKET/PREFIX` or `memory:`.
    pub fn open_with(url: &str, create: bool, s3: &S3Options) -> Result<Self, StoreError> {
        if url == "memory:" {
            return Ok(Self::from_object_store(
                Arc::new(object_store::memory::InMemory::new()),
                url,
            ));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            return Self::open_s3(url, rest, s3);
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "unsupported URL scheme (use a path, file://PATH or s3://BUCKET/PREFIX)"
                    .into(),
            });
        } else {
            PathBuf::from(url)
        };
        let path = std::path::absolute(&path).map_err(|e| StoreError::Open {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if create {
            std::fs::create_dir_all(&path).map_err(|e| StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            })?;
        } else if !path.is_dir() {
            return Err(StoreError::NotFound {
                url: url.into(),
                path: String::new(),
            });
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| {
            StoreError::Open {
                url: url.into(),
                reason: e.to_string(),
            }
        })?;
        let mut s = Self::wrap(Arc::new(fs), url)?;
        s.local_root = Some(path);
        Ok(s)
    }

    fn open_s3(url: &str, rest: &str, o: &S3Options) -> Result<Self, StoreError> {
        use object_store::aws::AmazonS3Builder;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "no bucket in the URL (s3://BUCKET/PREFIX)".into(),
            });
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_virtual_hosted_style_request(false);
        let allow_http =
            std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1") || o.allow_http;
        let endpoint = o
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT").ok());
        if endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"))
            && !allow_http
        {
            return Err(StoreError::Open {
                url: url.into(),
                reason: format!(
                    "the endpoint {} is plain http; allow it with allow_http = true in the config or \
                     AWS_ALLOW_HTTP=true (only on loopback or a trusted LAN: credentials travel unencrypted)",
                    endpoint.unwrap_or_default()
                ),
            });
        }
        if std::env::var("AWS_REGION").is_err()
            && std::env::var("AWS_DEFAULT_REGION").is_err()
            && o.region.is_none()
        {
            b = b.with_region("us-east-1");
        }
        if let Some(v) = &o.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &o.region {
            b = b.with_region(v);
        }
        if let Some(v) = &o.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &o.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        let timeout = op_timeout();
        b = b
            .with_client_options(
                object_store::ClientOptions::new()
                    .with_allow_http(allow_http)
                    .with_timeout(timeout)
                    .with_connect_timeout(std::time::Duration::from_secs(10)),
            )
            .with_retry(object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(60),
                ..Default::default()
            });
        let s3 = b.build().map_err(|e| StoreError::Open {
            url: url.into(),
            reason: e.to_string(),
        })?;
        let inner: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                prefix.trim_matches('/'),
            ))
        };
        Self::wrap(inner, url)
    }

    /// Applies the test-only fault wrapper when `COOP_FAULT_STORE` is set.
    fn wrap(inner: Arc<dyn ObjectStore>, url: &str) -> Result<Self, StoreError> {
        let mut inner = inner;
        if let Some(spec) = std::env::var("COOP_FAULT_STORE")
            .ok()
            .filter(|s| !s.is_empty())
        {
            let cfg =
                crate::fault::FaultConfig::parse(&spec).map_err(|reason| StoreError::Open {
                    url: url.into(),
                    reason,
                })?;
            inner = Arc::new(crate::fault::FaultStore::new(inner, cfg));
        }
        Ok(Self::from_object_store(inner, url))
    }

    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Wraps any `object_store` implementation (tests use this for fault injection).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: &str) -> Self {
        Self {
            inner,
            url: url.to_string(),
            local_root: None,
            create_only: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, op: &'static str, path: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => {
                return StoreError::NotFound {
                    url: self.url.clone(),
                    path: path.into(),
                }
            }
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => {
                return StoreError::Exists {
                    url: self.url.clone(),
                    path: path.into(),
                }
            }
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => {
                return StoreError::Unsupported {
                    url: self.url.clone(),
                    op,
                }
            }
            _ => {}
        }
        let no_space = is_no_space(&e);
        StoreError::Op {
            url: self.url.clone(),
            op,
            path: path.into(),
            reason: e.to_string(),
            no_space,
        }
    }

    /// Runs one operation with a time limit and bounded retries of transient errors.
    fn run<T, F, Fut>(&self, op: &'static str, path: &str, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = object_store::Result<T>>,
    {
        let timeout = op_timeout();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let res = runtime().block_on(async { tokio::time::timeout(timeout, f()).await });
            let last = attempt >= ATTEMPTS;
            match res {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if last || is_permanent(&e) => return Err(self.err(op, path, e)),
                Err(_) if last => {
                    return Err(StoreError::Op {
                        url: self.url.clone(),
                        op,
                        path: path.into(),
                        reason: format!(
                            "no answer within {} s, {ATTEMPTS} attempts (stalled)",
                            timeout.as_secs()
                        ),
                        no_space: false,
                    })
                }
                Ok(Err(e)) => tracing::info!("{op} {path}: {e}; retrying ({attempt}/{ATTEMPTS})"),
                Err(_) => tracing::info!("{op} {path}: timed out; retrying ({attempt}/{ATTEMPTS})"),
            }
            std::thread::sleep(std::time::Duration::from_millis(100 << attempt.min(6)));
        }
    }

    /// Writes an immutable object. If an object of that name exists already it is left
    /// alone (names are content hashes). Local writes are fsynced before returning.
    pub fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        self.put_shared(path, bytes::Bytes::from(data))
    }

    /// [`Self::put`] for a shared buffer: once this returns, the store holds no reference
    /// to it, so the caller can take it back (`Bytes::try_into_mut`) and reuse it.
    pub fn put_shared(&self, path: &str, data: bytes::Bytes) -> Result<(), StoreError> {
        self.put_inner(path, data, true)
    }

    /// [`Self::put`] without the fsync, for objects that need not survive a crash of this
    /// machine: locks (the process holding one dies with it).
    pub fn put_transient(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        self.put_inner(path, bytes::Bytes::from(data), false)
    }

    fn put_inner(&self, path: &str, data: bytes::Bytes, durable: bool) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let p = OPath::from(path);
        let payload = PutPayload::from(data);
        let res = self.run("put", path, || {
            let mode = if self.create_only.load(Ordering::Relaxed) {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let (p, payload) = (p.clone(), payload.clone());
            async move {
                self.inner
                    .put_opts(
                        &p,
                        payload,
                        PutOptions {
                            mode,
                            ..Default::default()
                        },
                    )
                    .await
            }
        });
        match res {
            Ok(_) => {}
            // Names are content hashes: an existing object holds the same bytes.
            Err(StoreError::Exists { .. }) => return Ok(()),
            Err(StoreError::Unsupported { .. }) if self.create_only.load(Ordering::Relaxed) => {
                // A server without create-only PUT: a plain overwrite writes the same bytes.
                tracing::warn!(
                    "{}: the server does not support create-only PUT; using plain PUT",
                    self.url
                );
                self.create_only.store(false, Ordering::Relaxed);
                return self.put(path, payload.into_iter().flat_map(|b| b.to_vec()).collect());
            }
            Err(e) => return Err(e),
        }
        crate::fault::point("store:after-put");
        if let Some(root) = &self.local_root {
            let full = root.join(path);
            let sync = |p: &std::path::Path| {
                let f = std::fs::File::open(p)?;
                f.sync_all()?;
                // The data is on disk: drop it from the page cache. Nobody reads a pack back
                // soon, the services' cache stays warm, and the next write reuses these pages
                // instead of taking fresh memory (costly on VMs that return free memory).
                let _ = nix::fcntl::posix_fadvise(
                    &f,
                    0,
                    0,
                    nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                );
                Ok::<_, std::io::Error>(())
            };
            if !full.exists() {
                // A wrapping store (fault injection) reported success without writing.
                return Err(StoreError::Op {
                    url: self.url.clone(),
                    op: "put",
                    path: path.into(),
                    reason: "object missing after write".into(),
                    no_space: false,
                });
            }
            if !durable {
                return Ok(());
            }
            if let Err(e) = sync(&full).and_then(|_| sync(full.parent().unwrap_or(root))) {
                return Err(StoreError::Op {
                    url: self.url.clone(),
                    op: "fsync",
                    path: path.into(),
                    reason: e.to_string(),
                    no_space: e.raw_os_error() == Some(28),
                });
            }
        }
        Ok(())
    }

    /// Probes what the server supports and says what it lacks (for `coop config check`).
    /// Writes and removes two small objects under `probe/`.
    pub fn probe(&self) -> Result<Vec<String>, StoreError> {
        let mut notes = Vec::new();
        let name = format!("probe/{}", hex::encode(coop_formats::random_bytes::<8>()));
        let p = OPath::from(name.as_str());
        self.run("put", &name, || {
            self.inner.put(&p, PutPayload::from(b"a".to_vec()))
        })?;
        let second = runtime().block_on(self.inner.put_opts(
            &p,
            PutPayload::from(b"b".to_vec()),
            PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            },
        ));
        notes.push(match second {
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                "create-only PUT: supported".to_string()
            }
            Err(object_store::Error::NotImplemented { .. }) | Err(object_store::Error::NotSupported { .. }) => {
                "create-only PUT: not supported (coop falls back to plain PUT; names are content hashes, so this is safe)".to_string()
            }
            Ok(_) => "create-only PUT: ignored, the object was overwritten (Garage does this; coop does not rely on it)".to_string(),
            Err(e) => format!("create-only PUT: unclear ({e})"),
        });
        let listed = self.list("probe")?.iter().any(|o| o.path == name);
        notes.push(if listed { "listing: complete and immediate".into() } else { "listing: a new object was not listed at once (eventual consistency: prune with --grace)".into() });
        self.delete(&name)?;
        notes.push(if self.exists(&name)? {
            "delete: the object is still there after delete".into()
        } else {
            "delete: ok".into()
        });
        notes.push("versioning and object lock: not needed (objects are immutable and content-addressed), not checked".into());
        Ok(notes)
    }

    /// Reads a whole object.
    pub fn get(&self, path: &str) -> Result<Bytes, StoreError> {
        let p = OPath::from(path);
        self.run("get", path, || async {
            let r = self.inner.get(&p).await?;
            r.bytes().await
        })
        // Takes the buffer over without a copy when the store's Bytes owns it alone.
        .map(Vec::from)
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool, StoreError> {
        let p = OPath::from(path);
        match self.run("head", path, || self.inner.head(&p)) {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Size of an object, or `None` if it does not exist.
    pub fn size(&self, path: &str) -> Result<Option<u64>, StoreError> {
        let p = OPath::from(path);
        match self.run("head", path, || self.inner.head(&p)) {
            Ok(m) => Ok(Some(m.size)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists every object under `prefix` (recursively). Either complete, or an error.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let p = OPath::from(prefix);
        let res = self.run("list", prefix, || {
            let p = p.clone();
            async move { self.inner.list(Some(&p)).try_collect::<Vec<_>>().await }
        });
        match res {
            Ok(v) => Ok(v
                .into_iter()
                .map(|m| Listed {
                    path: m.location.to_string(),
                    size: m.size,
                })
                .collect()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes an object; deleting one that is not there succeeds (S3 semantics everywhere).
    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        let p = OPath::from(path);
        match self.run("delete", path, || self.inner.delete(&p)) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_and_memory_basics() {
        let dir = tempfile::tempdir().unwrap();
        for s in [
            Store::open(dir.path().join("r").to_str().unwrap(), true).unwrap(),
            Store::open("memory:", true).unwrap(),
        ] {
            assert!(s.list("packs").unwrap().is_empty());
            s.put("packs/ab/abc", b"hello".to_vec()).unwrap();
            s.put("packs/ab/abc", b"hello".to_vec()).unwrap(); // idempotent
            assert_eq!(s.get("packs/ab/abc").unwrap(), b"hello");
            assert!(s.exists("packs/ab/abc").unwrap());
            assert!(s.get("nope").unwrap_err().is_not_found());
            let l = s.list("packs").unwrap();
            assert_eq!(l.len(), 1);
            assert_eq!(l[0].size, 5);
            s.delete("packs/ab/abc").unwrap();
            assert!(!s.exists("packs/ab/abc").unwrap());
        }
        assert!(Store::open(dir.path().join("missing").to_str().unwrap(), false).is_err());
        assert!(Store::open("ftp://host/x", false).is_err());
        assert!(Store::open("s3://", false).is_err());
    }
}
