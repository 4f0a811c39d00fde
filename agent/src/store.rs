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

pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
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
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens a store by URL. A local directory is created if `create` is set.
    pub fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        if url == "memory:" {
            return Ok(Self::from_object_store(
                Arc::new(object_store::memory::InMemory::new()),
                url,
            ));
        }
        let path = if let Some(rest) = url.strip_prefix("file://") {
            PathBuf::from(rest)
        } else if url.contains("://") {
            return Err(StoreError::Open {
                url: url.into(),
                reason: "unsupported URL scheme (this build supports local paths and file://)"
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
        let mut inner: Arc<dyn ObjectStore> = Arc::new(fs);
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
        Ok(Self {
            inner,
            url: url.to_string(),
            local_root: Some(path),
        })
    }

    /// Wraps any `object_store` implementation (tests use this for fault injection).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, url: &str) -> Self {
        Self {
            inner,
            url: url.to_string(),
            local_root: None,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, op: &'static str, path: &str, e: object_store::Error) -> StoreError {
        if matches!(e, object_store::Error::NotFound { .. }) {
            return StoreError::NotFound {
                url: self.url.clone(),
                path: path.into(),
            };
        }
        let reason = e.to_string();
        let no_space = is_no_space(&e);
        StoreError::Op {
            url: self.url.clone(),
            op,
            path: path.into(),
            reason,
            no_space,
        }
    }

    /// Writes an immutable object. If an object of that name exists already it is left
    /// alone (names are content hashes). Local writes are fsynced before returning.
    pub fn put(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        let p = OPath::from(path);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload = PutPayload::from(data);
        match runtime().block_on(self.inner.put_opts(&p, payload, opts)) {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(()),
            Err(object_store::Error::NotImplemented { .. }) => {
                return Err(StoreError::Op {
                    url: self.url.clone(),
                    op: "put",
                    path: path.into(),
                    reason: "store does not support create-only writes".into(),
                    no_space: false,
                })
            }
            Err(e) => return Err(self.err("put", path, e)),
        }
        crate::fault::point("store:after-put");
        if let Some(root) = &self.local_root {
            let full = root.join(path);
            let sync = |p: &std::path::Path| std::fs::File::open(p).and_then(|f| f.sync_all());
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

    /// Reads a whole object.
    pub fn get(&self, path: &str) -> Result<Bytes, StoreError> {
        let p = OPath::from(path);
        runtime()
            .block_on(async {
                let r = self.inner.get(&p).await?;
                r.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(|e| self.err("get", path, e))
    }

    /// Whether an object exists.
    pub fn exists(&self, path: &str) -> Result<bool, StoreError> {
        match runtime().block_on(self.inner.head(&OPath::from(path))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.err("head", path, e)),
        }
    }

    /// Lists every object under `prefix` (recursively). Either complete, or an error.
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>, StoreError> {
        let p = OPath::from(prefix);
        let res: Result<Vec<_>, _> = runtime().block_on(self.inner.list(Some(&p)).try_collect());
        match res {
            Ok(v) => Ok(v
                .into_iter()
                .map(|m| Listed {
                    path: m.location.to_string(),
                    size: m.size,
                })
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(self.err("list", prefix, e)),
        }
    }

    pub fn delete(&self, path: &str) -> Result<(), StoreError> {
        runtime()
            .block_on(self.inner.delete(&OPath::from(path)))
            .map_err(|e| self.err("delete", path, e))
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
        assert!(Store::open("s3://bucket", false).is_err());
    }
}
