//! Object storage through `object_store`: a local directory (plain path or `file://`)
//! or an in-memory store (`memory:`, for tests).
//!
//! All operations are synchronous wrappers over one shared tokio runtime. Listings are
//! complete or fail: a listing error is never read as "empty".

mod open;
mod probe;
mod retry;

pub use open::S3Options;
pub use retry::runtime;

use futures::TryStreamExt;
use object_store::path::Path as OPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use std::path::PathBuf;
use std::sync::Arc;

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
    #[error("object {path} in {url} is {size} bytes, more than the {limit} any object of its kind may be")]
    TooLarge {
        url: String,
        path: String,
        size: u64,
        limit: usize,
    },
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

    /// An object larger than its kind allows: damage or a lying store, not an I/O error.
    pub fn is_too_large(&self) -> bool {
        matches!(self, StoreError::TooLarge { .. })
    }
}

/// An object in a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    /// When the store says the object was written (Unix seconds).
    pub modified: i64,
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

/// How [`Store::put_mode`] treats an object that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Content-addressed: an existing object holds the same bytes; keep it.
    Immutable,
    /// Overwrite it.
    Replace,
    /// Keep it and report that the name was taken.
    Claim,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
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

    /// The wrapped store (tests wrap it once more to watch or falsify what a site serves).
    #[cfg(test)]
    pub(crate) fn object_store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.inner)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// A stable name of this location for client state: the absolute directory of a local
    /// store, else the URL as given.
    pub fn location(&self) -> String {
        match &self.local_root {
            Some(p) => p.display().to_string(),
            None => self.url.clone(),
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

    /// Writes an object whose name is *not* a hash of its bytes, replacing what is there:
    /// only for the access log's objects past a log's verified head (SPEC section 24.2),
    /// which authenticate nothing and must not stop the next append.
    pub fn put_replace(&self, path: &str, data: Bytes) -> Result<(), StoreError> {
        self.put_mode(path, bytes::Bytes::from(data), true, Mode::Replace)
            .map(|_| ())
    }

    /// Writes an object whose name is *not* a hash of its bytes only if no object of that
    /// name exists: `Ok(false)` when one does (another writer claimed the name first). On a
    /// server without create-only PUT this is a plain overwrite that returns `Ok(true)`;
    /// callers read the name back to learn who won.
    pub fn put_claim(&self, path: &str, data: Bytes) -> Result<bool, StoreError> {
        self.put_mode(path, bytes::Bytes::from(data), true, Mode::Claim)
    }

    fn put_inner(&self, path: &str, data: bytes::Bytes, durable: bool) -> Result<(), StoreError> {
        self.put_mode(path, data, durable, Mode::Immutable)
            .map(|_| ())
    }

    fn put_mode(
        &self,
        path: &str,
        data: bytes::Bytes,
        durable: bool,
        how: Mode,
    ) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        let p = OPath::from(path);
        let payload = PutPayload::from(data);
        let res = self.run("put", path, || {
            let mode = if self.create_only.load(Ordering::Relaxed) && how != Mode::Replace {
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
            Err(StoreError::Exists { .. }) if how == Mode::Claim => return Ok(false),
            // Names are content hashes: an existing object holds the same bytes.
            Err(StoreError::Exists { .. }) => return Ok(true),
            Err(StoreError::Unsupported { .. }) if self.create_only.load(Ordering::Relaxed) => {
                // A server without create-only PUT: a plain overwrite writes the same bytes.
                tracing::warn!(
                    "{}: the server does not support create-only PUT; using plain PUT",
                    self.url
                );
                self.create_only.store(false, Ordering::Relaxed);
                let data: Bytes = payload.into_iter().flat_map(|b| b.to_vec()).collect();
                return self.put_mode(path, data.into(), durable, how);
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
                return Ok(true);
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
        Ok(true)
    }

    /// Reads a whole object.
    /// No object coop writes is larger than an index object may be (512 MiB), so none is read
    /// past that; [`crate::layout::Kind::max_stored`] bounds each kind more tightly.
    pub fn get(&self, path: &str) -> Result<Bytes, StoreError> {
        let mut buf = Vec::new();
        self.get_into(path, &mut buf, coop_formats::index::MAX_INDEX_LEN)?;
        Ok(buf)
    }

    /// Reads a whole object into `buf` (cleared first; its capacity is reused, and grown to
    /// the object's size exactly), refusing an object larger than `limit` bytes before
    /// reading it. Readers of many packs keep one buffer each instead of allocating a
    /// pack-sized one per read, which glibc's allocator would keep around in per-thread
    /// arenas once freed. A local store is read in the calling thread.
    pub fn get_into(&self, path: &str, buf: &mut Vec<u8>, limit: usize) -> Result<(), StoreError> {
        let too_large = |size: u64| StoreError::TooLarge {
            url: self.url.clone(),
            path: path.into(),
            size,
            limit,
        };
        if let Some((f, size)) = self.open_local(path, limit)? {
            use std::io::Read;
            buf.clear();
            buf.reserve_exact(size as usize);
            // Never more than the limit, even if the file grows while it is read.
            f.take((limit as u64).saturating_add(1))
                .read_to_end(buf)
                .map_err(|e| self.local_error(path, e))?;
            if buf.len() > limit {
                return Err(too_large(buf.len() as u64));
            }
            return Ok(());
        }
        let p = OPath::from(path);
        let cell = std::cell::RefCell::new(buf);
        self.run("get", path, || async {
            let r = self.inner.get(&p).await?;
            let size = r.meta.size;
            if size > limit as u64 {
                return Ok(Err(size));
            }
            {
                let mut b = cell.borrow_mut();
                b.clear();
                b.reserve_exact(size as usize);
            }
            let mut s = r.into_stream();
            while let Some(chunk) = s.try_next().await? {
                let mut b = cell.borrow_mut();
                if b.len() + chunk.len() > limit {
                    return Ok(Err((b.len() + chunk.len()) as u64));
                }
                b.extend_from_slice(&chunk);
            }
            Ok(Ok(()))
        })?
        .map_err(too_large)
    }

    /// Opens an object of a local store for reading as a stream, with its size (`None` for
    /// other stores); refused as too large, before anything is read, above `limit` bytes.
    pub fn open_local(
        &self,
        path: &str,
        limit: usize,
    ) -> Result<Option<(std::fs::File, u64)>, StoreError> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        use nix::fcntl::OFlag;
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: a FIFO planted in the store must not hang the reader in `open`.
        // Regular files ignore the flag.
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
            .open(root.join(path))
            .map_err(|e| self.local_error(path, e))?;
        let meta = f.metadata().map_err(|e| self.local_error(path, e))?;
        if !meta.is_file() {
            return Err(StoreError::Op {
                url: self.url.clone(),
                op: "get",
                path: path.into(),
                reason:
                    "not a regular file (a directory, FIFO or device where an object should be)"
                        .into(),
                no_space: false,
            });
        }
        let size = meta.len();
        if size > limit as u64 {
            return Err(StoreError::TooLarge {
                url: self.url.clone(),
                path: path.into(),
                size,
                limit,
            });
        }
        Ok(Some((f, size)))
    }

    fn local_error(&self, path: &str, e: std::io::Error) -> StoreError {
        if e.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                url: self.url.clone(),
                path: path.into(),
            }
        } else {
            StoreError::Op {
                url: self.url.clone(),
                op: "get",
                path: path.into(),
                reason: e.to_string(),
                no_space: false,
            }
        }
    }

    /// Reads a byte range of an object (ranged GET); the end is clipped to the object.
    pub fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        let p = OPath::from(path);
        self.run("get", path, || async {
            let opts = object_store::GetOptions {
                range: Some(object_store::GetRange::Bounded(range.clone())),
                ..Default::default()
            };
            let r = self.inner.get_opts(&p, opts).await?;
            r.bytes().await
        })
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
            Ok(v) => {
                let mut v: Vec<Listed> = v
                    .into_iter()
                    .map(|m| Listed {
                        path: m.location.to_string(),
                        size: m.size,
                        modified: m.last_modified.timestamp(),
                    })
                    .collect();
                // One listing order everywhere (S3's): ties between equal generations or
                // index claims are decided the same way on every site (SPEC section 7.4).
                v.sort_by(|a, b| a.path.cmp(&b.path));
                Ok(v)
            }
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
    }

    #[test]
    fn get_into_reuses_the_buffer_and_refuses_what_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        for s in [
            Store::open(dir.path().join("r").to_str().unwrap(), true).unwrap(),
            Store::open("memory:", true).unwrap(),
        ] {
            s.put("packs/ab/big", vec![7u8; 1000]).unwrap();
            s.put("packs/ab/small", vec![9u8; 10]).unwrap();
            let mut buf = Vec::new();
            s.get_into("packs/ab/big", &mut buf, 1000).unwrap();
            assert_eq!(buf, vec![7u8; 1000]);
            let (cap, ptr) = (buf.capacity(), buf.as_ptr());
            // A smaller object lands in the same allocation, replacing what was there.
            s.get_into("packs/ab/small", &mut buf, 1000).unwrap();
            assert_eq!(buf, vec![9u8; 10]);
            assert_eq!((buf.capacity(), buf.as_ptr()), (cap, ptr));
            // One byte over the limit is refused, as too large (not as an I/O error).
            let e = s.get_into("packs/ab/big", &mut buf, 999).unwrap_err();
            assert!(e.is_too_large(), "{e}");
            assert!(e.to_string().contains("1000 bytes"), "{e}");
            let e = s.get_into("packs/ab/none", &mut buf, 1000).unwrap_err();
            assert!(e.is_not_found(), "{e}");
        }
        // A FIFO where an object should be (a hostile local store) is refused at once instead
        // of blocking the reader; so is a directory.
        let s = Store::open(dir.path().join("r").to_str().unwrap(), true).unwrap();
        let fifo = dir.path().join("r/packs/ab/fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut buf = Vec::new();
        let e = s.get_into("packs/ab/fifo", &mut buf, 1000).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = s.get_into("packs/ab", &mut buf, 1000).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // A plain `get` (objects outside the kinds, such as the access log's) is bounded by the
        // largest object coop writes: a 1 GiB object (sparse) is refused by its size.
        let big = std::fs::File::create(dir.path().join("r/log-huge")).unwrap();
        big.set_len(1 << 30).unwrap();
        assert!(s.get("log-huge").unwrap_err().is_too_large());
        assert!(Store::open("ftp://host/x", false).is_err());
        assert!(Store::open("s3://", false).is_err());
    }
}
