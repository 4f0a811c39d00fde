//! Backup: walk → chunk → keyed hash → dedup → compress → pack → encrypt → store,
//! then index objects, then the signed snapshot.
//!
//! # Pipeline
//! The calling thread walks the sources, reads files, chunks them (FastCDC) and hashes
//! every chunk (keyed BLAKE3). Those three are fast (GB/s) and need the chunk order, so
//! they stay on one thread. New blobs go over a bounded channel to one worker per core,
//! which compresses into its own pack, encrypts it with age when full and uploads it.
//! Buffers travel back to the walker through a pool, so steady state allocates nothing.
//!
//! # Crash safety
//! Order is packs → index objects → snapshot. An index object is written after every
//! few packs, so an interrupted backup leaves indexed packs that the next run reuses, and
//! no snapshot. A snapshot is written only after every pack and index it needs is stored.

use crate::catalog::{self, Catalog};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::progress::Progress;
use crate::repo::{self, Repo};
use coop_formats::blob::Compressor;
use coop_formats::crypt::Recipient;
use coop_formats::envelope::TenantTag;
use coop_formats::id::{blob_id, BlobType, Id};
use coop_formats::index::IndexFile;
use coop_formats::pack::PackBuilder;
use coop_formats::snapshot::{Snapshot, Summary};
use coop_formats::tree::{check_name, Node, NodeKind, Part, Tree, Xattr};
use crossbeam_channel::{bounded, Receiver, Sender};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fs::Metadata;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Packs written between two index objects.
const PACKS_PER_INDEX: usize = 4;
/// The signature a valid CACHEDIR.TAG starts with.
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// What to back up and how.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub excludes: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub one_file_system: bool,
    /// Skip the contents of directories that hold a valid CACHEDIR.TAG.
    pub exclude_caches: bool,
    /// Commands whose standard output is stored as a file at the snapshot root.
    pub commands: Vec<SourceCommand>,
    pub tags: Vec<String>,
    pub host: String,
    /// Where the catalog lives; `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// Build and sign a per-file manifest (member tenants, for `coop export`/`verify`).
    pub manifest: bool,
    /// Refuse to commit if the tenant's stored bytes would exceed this.
    pub quota: Option<u64>,
}

/// A command whose standard output is backed up as one file, without a temp file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceCommand {
    /// Run with `sh -c`.
    pub command: String,
    /// Name of the file in the snapshot (at its root).
    pub filename: String,
    /// Text fed to the command's standard input (e.g. an SQL query for psql).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// Extra environment variables (e.g. COOP_MEMBER).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub env: std::collections::BTreeMap<String, String>,
}

/// The result of a backup.
#[derive(Debug)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    pub warnings: Vec<String>,
    pub packs_written: u64,
    pub index_objects_written: u64,
}

struct Job {
    ty: BlobType,
    id: Id,
    data: Vec<u8>,
}

/// State the workers share.
struct Shared {
    repo: Repo,
    tag: TenantTag,
    index_key: [u8; 32],
    recipients: Arc<Vec<Recipient>>,
    pending: Mutex<IndexFile>,
    failed: AtomicBool,
    error: Mutex<Option<Error>>,
    bytes_stored: AtomicU64,
    packs: AtomicU64,
    index_objects: AtomicU64,
}

impl Shared {
    fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        let mut slot = self.error.lock().expect("lock");
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    /// Finishes and stores a pack. Returns its buffer for the next pack when the store has
    /// let go of it, so that a backup touches the same memory for every pack.
    fn write_pack(&self, builder: PackBuilder) -> Result<Vec<u8>> {
        let (out, entries, id) = builder.finish().map_err(|e| Error::Usage {
            what: format!("cannot encrypt pack: {e}"),
        })?;
        let size = out.len() as u64;
        let stored = bytes::Bytes::from(out);
        self.repo
            .store
            .put_shared(&repo::pack_path(&self.tag, &id), stored.clone())?;
        let reuse = stored.try_into_mut().map(Vec::from).unwrap_or_default();
        self.bytes_stored.fetch_add(size, Ordering::Relaxed);
        self.packs.fetch_add(1, Ordering::Relaxed);
        let to_write = {
            let mut p = self.pending.lock().expect("lock");
            p.add_pack(id, size, &entries);
            if p.packs.len() >= PACKS_PER_INDEX {
                Some(std::mem::take(&mut *p))
            } else {
                None
            }
        };
        if let Some(f) = to_write {
            self.write_index(&f)?;
        }
        Ok(reuse)
    }

    fn write_index(&self, f: &IndexFile) -> Result<()> {
        if f.packs.is_empty() {
            return Ok(());
        }
        let sealed = f.seal(&self.index_key, self.tag);
        let id = Id::of_stored(&sealed);
        self.repo
            .store
            .put(&repo::index_path(&self.tag, &id), sealed)?;
        self.index_objects.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn worker(
    rx: Receiver<Job>,
    pool: Sender<Vec<u8>>,
    shared: Arc<Shared>,
    pack_size: usize,
    level: i32,
) {
    let mut comp = Compressor::new(level);
    let mut data: Option<PackBuilder> = None;
    let mut trees: Option<PackBuilder> = None;
    // Reused for every pack this worker writes: fresh memory costs page faults (and on
    // VMs that hand free memory back to the host, far more), reused memory does not.
    let mut spare: Vec<Vec<u8>> = Vec::new();
    for job in rx {
        if shared.failed.load(Ordering::Relaxed) {
            continue;
        }
        let slot = if job.ty == BlobType::Tree {
            &mut trees
        } else {
            &mut data
        };
        if slot.is_none() {
            let buf = spare
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(pack_size + (1 << 20)));
            match PackBuilder::new(shared.tag, &shared.recipients, buf) {
                Ok(b) => *slot = Some(b),
                Err(e) => {
                    shared.fail(Error::Usage {
                        what: format!("cannot encrypt pack: {e}"),
                    });
                    continue;
                }
            }
        }
        let b = slot.as_mut().expect("set above");
        let added = b.add(&mut comp, job.ty, job.id, &job.data);
        let _ = pool.try_send(job.data);
        if let Err(e) = added {
            shared.fail(Error::Usage {
                what: format!("cannot encrypt pack: {e}"),
            });
            continue;
        }
        if b.len() >= pack_size {
            match shared.write_pack(slot.take().expect("builder")) {
                Ok(buf) => spare.push(buf),
                Err(e) => shared.fail(e),
            }
        }
    }
    for b in [data, trees].into_iter().flatten() {
        if shared.failed.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = shared.write_pack(b) {
            shared.fail(e);
        }
    }
}

/// Glob excludes: patterns with a `/` match the absolute path, others the file name.
struct Excludes {
    path: globset::GlobSet,
    name: globset::GlobSet,
}

impl Excludes {
    fn new(patterns: &[String]) -> Result<Self> {
        let mut path = globset::GlobSetBuilder::new();
        let mut name = globset::GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            let g = globset::GlobBuilder::new(p)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::Usage {
                    what: format!("bad exclude pattern {p:?}: {e}"),
                })?;
            if p.contains('/') {
                path.add(g);
            } else {
                name.add(g);
            }
        }
        let build = |b: globset::GlobSetBuilder| {
            b.build().map_err(|e| Error::Usage {
                what: e.to_string(),
            })
        };
        Ok(Self {
            path: build(path)?,
            name: build(name)?,
        })
    }

    fn excluded(&self, path: &Path) -> bool {
        self.path.is_match(path) || path.file_name().is_some_and(|n| self.name.is_match(n))
    }
}

/// Reads exclude patterns from files: one per line, `#` comments and blank lines skipped.
fn read_exclude_files(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?;
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(String::from),
        );
    }
    Ok(out)
}

#[derive(Default)]
struct Trie {
    children: BTreeMap<OsString, Trie>,
    target: bool,
}

/// The blob sink: dedup decisions and hand-off to the workers.
struct Sink<'a> {
    id_key: [u8; 32],
    index: &'a Index,
    sent: HashSet<Id>,
    tx: Option<Sender<Job>>,
    pool: Receiver<Vec<u8>>,
    shared: Arc<Shared>,
    blobs_added: u64,
    bytes_added: u64,
    /// Packs of the existing index this backup references.
    reused: HashSet<u32>,
}

impl Sink<'_> {
    /// Whether a blob is stored already: `Some(Some(pack))` in a pack of the index,
    /// `Some(None)` sent by this backup, `None` not stored.
    fn lookup(&self, id: &Id) -> Result<Option<Option<u32>>> {
        if let Some(loc) = self.index.get(id)? {
            return Ok(Some(Some(loc.pack)));
        }
        Ok(self.sent.contains(id).then_some(None))
    }

    fn submit(&mut self, ty: BlobType, data: &[u8]) -> Result<Id> {
        let id = blob_id(&self.id_key, ty, data);
        if let Some(loc) = self.index.get(&id)? {
            self.reused.insert(loc.pack);
            return Ok(id);
        }
        if !self.sent.insert(id) {
            return Ok(id);
        }
        if self.shared.failed.load(Ordering::Relaxed) {
            return Err(Error::Aborted {
                reason: "a worker failed".into(),
            });
        }
        let mut buf = self.pool.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.blobs_added += 1;
        if ty == BlobType::Data {
            self.bytes_added += data.len() as u64;
        }
        self.tx
            .as_ref()
            .expect("sink open")
            .send(Job { ty, id, data: buf })
            .map_err(|_| Error::Aborted {
                reason: "workers stopped".into(),
            })?;
        Ok(id)
    }
}

struct Walker<'a, 'p> {
    chunker: Chunker,
    sink: Sink<'a>,
    catalog: Option<Catalog>,
    excludes: Excludes,
    opts: &'a BackupOptions,
    progress: &'p dyn Progress,
    summary: Summary,
    warnings: Vec<String>,
    link_groups: HashMap<(u64, u64), u64>,
    users: HashMap<u32, Option<String>>,
    groups: HashMap<u32, Option<String>>,
    /// Hash of the file being read (when building a manifest).
    file_hasher: Option<blake3::Hasher>,
    /// Manifest entries (when building a manifest).
    manifest: Option<Vec<coop_formats::manifest::ManifestFile>>,
}

fn mtime_ns(m: &Metadata) -> i64 {
    m.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.mtime_nsec())
}
fn ctime_ns(m: &Metadata) -> i64 {
    m.ctime()
        .saturating_mul(1_000_000_000)
        .saturating_add(m.ctime_nsec())
}

impl Walker<'_, '_> {
    fn warn(&mut self, msg: String) {
        self.progress.warn(&msg);
        self.warnings.push(msg);
    }

    fn user(&mut self, uid: u32) -> Option<String> {
        self.users
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map(|u| u.name)
            })
            .clone()
    }

    fn group(&mut self, gid: u32) -> Option<String> {
        self.groups
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            })
            .clone()
    }

    fn base_node(&mut self, path: &Path, meta: &Metadata, name: Vec<u8>, kind: NodeKind) -> Node {
        let mut n = self.bare_node(meta, name, kind);
        self.read_xattrs(path, &mut n);
        n
    }

    /// A node with ownership, mode and mtime, but no extended attributes yet.
    fn bare_node(&mut self, meta: &Metadata, name: Vec<u8>, kind: NodeKind) -> Node {
        let mut n = Node::new(name, kind);
        n.mode = meta.mode() & 0o7777;
        n.uid = meta.uid();
        n.gid = meta.gid();
        n.user = self.user(meta.uid());
        n.group = self.group(meta.gid());
        n.mtime_ns = mtime_ns(meta);
        n
    }

    fn read_xattrs(&mut self, path: &Path, n: &mut Node) {
        if let Ok(names) = xattr::list(path) {
            for an in names {
                let Some(s) = an.to_str() else {
                    self.warn(format!(
                        "{}: skipping xattr with a non-UTF-8 name",
                        path.display()
                    ));
                    continue;
                };
                if let Ok(Some(v)) = xattr::get(path, &an) {
                    n.xattrs.push(Xattr {
                        name: s.to_string(),
                        value: v,
                    });
                }
            }
            n.xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// Chunks everything from `r` as data blobs.
    fn chunk_stream(&mut self, r: impl Read, parts: &mut Vec<Part>) -> Result<u64> {
        let sink = &mut self.sink;
        let progress = self.progress;
        let hasher = &mut self.file_hasher;
        let n = self.chunker.chunk(r, |c: &[u8]| -> Result<()> {
            if let Some(h) = hasher.as_mut() {
                h.update(c);
            }
            parts.push(Part::Blob(sink.submit(BlobType::Data, c)?));
            progress.add_bytes(c.len() as u64);
            Ok(())
        });
        n.map_err(|e| match e {
            Error::Io { source, .. } => Error::Io {
                path: PathBuf::new(),
                source,
            },
            e => e,
        })
    }

    /// Reads a file's content, skipping holes of sparse files.
    fn read_file(&mut self, path: &Path, meta: &Metadata) -> Result<(Vec<Part>, u64)> {
        let with_path = |e: Error| match e {
            Error::Io { source, path: p } if p.as_os_str().is_empty() => Error::io(path, source),
            e => e,
        };
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut parts = Vec::new();
        let sparse = meta.len() > 0 && meta.blocks().saturating_mul(512) < meta.len();
        if !sparse {
            let n = self.chunk_stream(&mut f, &mut parts).map_err(with_path)?;
            self.summary.bytes_read += n;
            return Ok((parts, n));
        }
        let mut pos = 0u64;
        let size = meta.len();
        loop {
            use nix::unistd::{lseek, Whence};
            let data = match lseek(&f, pos as i64, Whence::SeekData) {
                Ok(d) => d as u64,
                Err(nix::errno::Errno::ENXIO) => size, // no data after pos
                Err(e) => return Err(Error::io(path, e.into())),
            };
            if data >= size {
                break;
            }
            let hole_end = match lseek(&f, data as i64, Whence::SeekHole) {
                Ok(h) => (h as u64).min(size),
                Err(e) => return Err(Error::io(path, e.into())),
            };
            if data > pos {
                parts.push(Part::Hole { hole: data - pos });
                self.hash_zeros(data - pos);
            }
            f.seek(SeekFrom::Start(data))
                .map_err(|e| Error::io(path, e))?;
            let n = self
                .chunk_stream((&mut f).take(hole_end - data), &mut parts)
                .map_err(with_path)?;
            self.summary.bytes_read += n;
            pos = data + n;
            if n < hole_end - data {
                break; // file shrank while we read it
            }
        }
        if pos < size {
            parts.push(Part::Hole { hole: size - pos });
            self.hash_zeros(size - pos);
            pos = size;
        }
        Ok((parts, pos))
    }

    fn hash_zeros(&mut self, mut n: u64) {
        if let Some(h) = self.file_hasher.as_mut() {
            let zeros = [0u8; 65536];
            while n > 0 {
                let k = n.min(zeros.len() as u64) as usize;
                h.update(&zeros[..k]);
                n -= k as u64;
            }
        }
    }

    fn note_manifest(&mut self, path: &[u8], node: &Node, hash: Option<[u8; 32]>) {
        let (Some(m), Some(hash)) = (self.manifest.as_mut(), hash) else {
            return;
        };
        let rel = path.strip_prefix(b"/").unwrap_or(path);
        let (p, p_hex) = match std::str::from_utf8(rel) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (String::new(), Some(hex::encode(rel))),
        };
        m.push(coop_formats::manifest::ManifestFile {
            path: p,
            path_hex: p_hex,
            size: node.size,
            mode: node.mode,
            mtime_ns: node.mtime_ns,
            blake3: hex::encode(hash),
        });
    }

    fn file_node(&mut self, path: &Path, meta: &Metadata, name: Vec<u8>) -> Result<Node> {
        let mut node = self.bare_node(meta, name, NodeKind::File);
        if meta.nlink() > 1 {
            let next = self.link_groups.len() as u64 + 1;
            node.link_group = Some(
                *self
                    .link_groups
                    .entry((meta.dev(), meta.ino()))
                    .or_insert(next),
            );
        }
        self.summary.total_files += 1;
        self.progress.add_file();
        let key = path.as_os_str().as_bytes();
        let cached = match &mut self.catalog {
            Some(c) => c.lookup(key)?,
            None => None,
        };
        // Extended attributes change the ctime: with the same ctime, the recorded ones hold.
        match cached.as_ref().and_then(|e| {
            (e.ctime_ns == ctime_ns(meta))
                .then_some(e.xattrs.as_ref())
                .flatten()
        }) {
            Some(x) => node.xattrs.clone_from(x),
            None => self.read_xattrs(path, &mut node),
        }
        if let Some(e) = &cached {
            let same = e.size == meta.len()
                && e.mtime_ns == mtime_ns(meta)
                && e.ctime_ns == ctime_ns(meta)
                && e.ino == meta.ino();
            let hashed = self.manifest.is_none() || e.hash.is_some();
            // One index lookup per blob: is it stored, and in which pack.
            let mut packs = Vec::with_capacity(e.content.len());
            let mut present = same && hashed;
            for p in &e.content {
                if !present {
                    break;
                }
                if let Part::Blob(id) = p {
                    match self.sink.lookup(id)? {
                        Some(Some(pack)) => packs.push(pack),
                        Some(None) => {}
                        None => present = false,
                    }
                }
            }
            if present {
                self.sink.reused.extend(packs);
                node.size = e.size;
                node.content = e.content.clone();
                self.summary.files_unchanged += 1;
                self.summary.total_bytes += e.size;
                self.progress.add_bytes(e.size);
                self.note_manifest(key, &node, e.hash);
                return Ok(node);
            }
        }
        self.file_hasher = self.manifest.as_ref().map(|_| blake3::Hasher::new());
        let read = self.read_file(path, meta);
        let hash = self.file_hasher.take().map(|h| *h.finalize().as_bytes());
        let (parts, size) = read?;
        if cached.is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        node.size = size;
        node.content = parts;
        self.summary.total_bytes += size;
        if let Some(c) = &mut self.catalog {
            // Only remember what we read if the file did not change while we read it.
            if let Ok(after) = std::fs::symlink_metadata(path) {
                if after.len() == size
                    && mtime_ns(&after) == mtime_ns(meta)
                    && ctime_ns(&after) == ctime_ns(meta)
                {
                    c.record(
                        key.to_vec(),
                        catalog::Entry {
                            size,
                            mtime_ns: mtime_ns(meta),
                            ctime_ns: ctime_ns(meta),
                            ino: meta.ino(),
                            content: node.content.clone(),
                            hash,
                            xattrs: Some(node.xattrs.clone()),
                        },
                    )?;
                }
            }
        }
        self.note_manifest(key, &node, hash);
        Ok(node)
    }

    /// A node for any filesystem entry (recursing into directories).
    fn entry_node(
        &mut self,
        path: &Path,
        meta: &Metadata,
        name: Vec<u8>,
        root_dev: u64,
    ) -> Result<Option<Node>> {
        let ft = meta.file_type();
        let node = if ft.is_file() {
            match self.file_node(path, meta, name) {
                Ok(n) => n,
                Err(Error::Io { path: p, source }) => {
                    self.warn(format!("{}: cannot read, skipped: {source}", p.display()));
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        } else if ft.is_dir() {
            let mut n = self.base_node(path, meta, name, NodeKind::Dir);
            self.summary.dirs += 1;
            let cross = self.opts.one_file_system && meta.dev() != root_dev;
            n.subtree = Some(if cross {
                self.empty_tree()?
            } else {
                self.walk_dir(path, root_dev)?
            });
            n
        } else if ft.is_symlink() {
            let target = match std::fs::read_link(path) {
                Ok(t) => t,
                Err(e) => {
                    self.warn(format!(
                        "{}: cannot read link, skipped: {e}",
                        path.display()
                    ));
                    return Ok(None);
                }
            };
            let mut n = self.base_node(path, meta, name, NodeKind::Symlink);
            n.target = Some(target.into_os_string().into_vec());
            n
        } else {
            let kind = if ft.is_fifo() {
                NodeKind::Fifo
            } else if ft.is_socket() {
                NodeKind::Socket
            } else if ft.is_char_device() {
                NodeKind::Chardev
            } else {
                NodeKind::Blockdev
            };
            let mut n = self.base_node(path, meta, name, kind);
            if matches!(kind, NodeKind::Chardev | NodeKind::Blockdev) {
                n.rdev = Some(meta.rdev());
            }
            n
        };
        Ok(Some(node))
    }

    fn empty_tree(&mut self) -> Result<Id> {
        self.store_tree(Tree::default())
    }

    fn store_tree(&mut self, mut t: Tree) -> Result<Id> {
        let bytes = t.encode();
        self.sink.submit(BlobType::Tree, &bytes)
    }

    fn is_cache_dir(dir: &Path) -> bool {
        let mut buf = [0u8; 43];
        std::fs::File::open(dir.join("CACHEDIR.TAG"))
            .and_then(|mut f| f.read_exact(&mut buf))
            .is_ok_and(|_| buf == CACHEDIR_SIGNATURE)
    }

    fn walk_dir(&mut self, dir: &Path, root_dev: u64) -> Result<Id> {
        let mut names: Vec<(OsString, std::fs::DirEntry)> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| (e.file_name(), e)))
                .collect(),
            Err(e) => {
                self.warn(format!(
                    "{}: cannot list directory, stored empty: {e}",
                    dir.display()
                ));
                return self.empty_tree();
            }
        };
        if self.opts.exclude_caches
            && names.iter().any(|(n, _)| n == "CACHEDIR.TAG")
            && Self::is_cache_dir(dir)
        {
            names.retain(|(n, _)| n == "CACHEDIR.TAG");
        }
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut tree = Tree::default();
        for (name, entry) in names {
            let path = dir.join(&name);
            if self.excludes.excluded(&path) {
                continue;
            }
            // Relative to the open directory (no walk of the whole path); never follows.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) => {
                    self.warn(format!("{}: cannot stat, skipped: {e}", path.display()));
                    continue;
                }
            };
            if let Some(n) = self.entry_node(&path, &meta, name.into_vec(), root_dev)? {
                tree.nodes.push(n);
            }
        }
        self.store_tree(tree)
    }

    /// The tree of the parents of the given targets, down to the targets themselves.
    fn virtual_dir(&mut self, prefix: &Path, trie: &Trie, extra: Vec<Node>) -> Result<Id> {
        let mut tree = Tree { nodes: extra };
        for (name, child) in &trie.children {
            let path = prefix.join(name);
            let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
            let node = if child.target {
                self.entry_node(&path, &meta, name.clone().into_vec(), meta.dev())?
            } else {
                let mut n = self.base_node(&path, &meta, name.clone().into_vec(), NodeKind::Dir);
                n.subtree = Some(self.virtual_dir(&path, child, Vec::new())?);
                Some(n)
            };
            tree.nodes.extend(node);
        }
        let mut seen = HashSet::new();
        for n in &tree.nodes {
            if !seen.insert(&n.name) {
                return Err(Error::Usage {
                    what: format!("two sources would both be stored as /{}", n.display_name()),
                });
            }
        }
        self.store_tree(tree)
    }

    fn stdin_node(&mut self, source: &SourceCommand) -> Result<Node> {
        use std::process::{Command, Stdio};
        let (command, name) = (source.command.as_str(), source.filename.as_str());
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .envs(&source.env)
            .stdin(if source.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::SourceFailed {
                command: command.into(),
                status: format!("cannot start: {e}"),
            })?;
        let feeder = match (child.stdin.take(), &source.stdin) {
            (Some(mut input), Some(text)) => {
                let text = text.clone();
                Some(std::thread::spawn(move || {
                    use std::io::Write;
                    let _ = input.write_all(text.as_bytes());
                }))
            }
            _ => None,
        };
        let mut out = child.stdout.take().expect("piped stdout");
        let mut parts = Vec::new();
        self.file_hasher = self.manifest.as_ref().map(|_| blake3::Hasher::new());
        let res = self.chunk_stream(&mut out, &mut parts);
        let hash = self.file_hasher.take().map(|h| *h.finalize().as_bytes());
        drop(out);
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let status = child.wait().map_err(|e| Error::SourceFailed {
            command: command.into(),
            status: e.to_string(),
        })?;
        let n = match res {
            Ok(n) => n,
            Err(Error::Io { source, .. }) => {
                return Err(Error::SourceFailed {
                    command: command.into(),
                    status: format!("reading its output failed: {source}"),
                })
            }
            Err(e) => return Err(e),
        };
        if !status.success() {
            return Err(Error::SourceFailed {
                command: command.into(),
                status: status.to_string(),
            });
        }
        self.summary.bytes_read += n;
        self.summary.total_bytes += n;
        self.summary.total_files += 1;
        self.summary.files_new += 1;
        let mut node = Node::new(name.as_bytes().to_vec(), NodeKind::File);
        node.mode = 0o600;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        node.user = self.user(node.uid);
        node.group = self.group(node.gid);
        node.mtime_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        node.size = n;
        node.content = parts;
        self.note_manifest(name.as_bytes(), &node, hash);
        Ok(node)
    }
}

/// Normalises a source path to an absolute path without `.` components.
fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

/// Runs one backup into the tenant of `keys`.
pub fn backup(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupOutcome> {
    let started = Instant::now();
    if opts.paths.is_empty() && opts.commands.is_empty() {
        return Err(Error::Usage {
            what: "nothing to back up: give paths or --stdin-from-command".into(),
        });
    }
    for c in &opts.commands {
        check_name(c.filename.as_bytes()).map_err(|r| Error::Usage {
            what: format!(
                "command output file name {:?} is not a valid file name ({r})",
                c.filename
            ),
        })?;
    }
    // Resolve sources first: a missing path is an error before anything is written.
    let mut trie = Trie::default();
    let mut abs_paths = Vec::new();
    for p in &opts.paths {
        let abs = absolute(p)?;
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        abs_paths.push(abs.to_string_lossy().into_owned());
        let mut t = &mut trie;
        for c in abs.components() {
            if let Component::Normal(n) = c {
                t = t.children.entry(n.to_os_string()).or_default();
            }
        }
        t.target = true;
    }
    let mut patterns = opts.excludes.clone();
    patterns.extend(read_exclude_files(&opts.exclude_files)?);
    let excludes = Excludes::new(&patterns)?;

    // The lock first, then the plans: a prune that condemns packs after this point sees
    // our lock and waits; packs condemned before it are not used for deduplication.
    let lock = crate::lock::acquire(repo, keys, coop_formats::control::LockKind::Backup)?;
    progress.phase("index", None);
    let (mut index, stored) = repo.load_index_and_packs(keys)?;
    index.remove_packs(&repo.condemned_packs(keys)?);
    // Never deduplicate against a pack the store does not have (an index object written
    // by a backup that lost a race with prune can list one).
    let vanished: HashSet<Id> = index
        .packs
        .iter()
        .map(|p| p.id)
        .filter(|p| !stored.contains(p))
        .collect();
    index.remove_packs(&vanished);
    progress.finish();
    crate::fault::pause("backup:after-index-load");
    let catalog = match &opts.cache_dir {
        Some(d) => Some(Catalog::open(d, &repo.config.repo_id, &keys.tenant)?),
        None => None,
    };

    let shared = Arc::new(Shared {
        repo: repo.clone(),
        tag: keys.tag,
        index_key: keys.index_key,
        recipients: Arc::clone(&keys.recipients),
        pending: Mutex::new(IndexFile::default()),
        failed: AtomicBool::new(false),
        error: Mutex::new(None),
        bytes_stored: AtomicU64::new(0),
        packs: AtomicU64::new(0),
        index_objects: AtomicU64::new(0),
    });
    let workers = crate::workers(opts.workers);
    let (tx, rx) = bounded::<Job>(workers * 4);
    let (pool_tx, pool_rx) = bounded::<Vec<u8>>(workers * 6);
    let pack_size = repo.config.pack_size as usize;
    let level = repo.config.compression_level;
    let handles: Vec<_> = (0..workers)
        .map(|i| {
            let (rx, pool_tx, shared) = (rx.clone(), pool_tx.clone(), Arc::clone(&shared));
            std::thread::Builder::new()
                .name(format!("coop-pack-{i}"))
                .spawn(move || worker(rx, pool_tx, shared, pack_size, level))
                .expect("cannot start worker thread")
        })
        .collect();
    drop(rx);

    let mut walker = Walker {
        chunker: Chunker::new(&repo.config.chunker, keys.chunker_seed()),
        sink: Sink {
            id_key: keys.id_key,
            index: &index,
            sent: HashSet::new(),
            tx: Some(tx),
            pool: pool_rx,
            shared: Arc::clone(&shared),
            blobs_added: 0,
            bytes_added: 0,
            reused: HashSet::new(),
        },
        catalog,
        excludes,
        opts,
        progress,
        summary: Summary::default(),
        warnings: Vec::new(),
        link_groups: HashMap::new(),
        users: HashMap::new(),
        groups: HashMap::new(),
        file_hasher: None,
        manifest: opts.manifest.then(Vec::new),
    };
    progress.phase("backup", None);
    let walked = (|| -> Result<Id> {
        let mut extra = Vec::new();
        for c in &opts.commands {
            extra.push(walker.stdin_node(c)?);
        }
        if trie.target {
            // "/" itself is a source.
            let mut tree = Tree::default();
            let root = walker.walk_dir(
                Path::new("/"),
                std::fs::symlink_metadata("/")
                    .map_err(|e| Error::io("/", e))?
                    .dev(),
            )?;
            let _ = &mut tree;
            if !extra.is_empty() {
                return Err(Error::Usage {
                    what: "--stdin-from-command cannot be combined with backing up /".into(),
                });
            }
            return Ok(root);
        }
        walker.virtual_dir(Path::new("/"), &trie, extra)
    })();
    // The signed manifest (member tenants): every file's path, size, mode, mtime and BLAKE3,
    // signed now by this writer so that no later export can forge it.
    let manifest_blob: Result<Option<Id>> = match (&walked, walker.manifest.take()) {
        (Ok(root), Some(mut files)) => {
            use coop_formats::manifest::{Manifest, SignedManifest, FORMAT};
            files.sort_by_key(|f| f.path_bytes());
            let m = Manifest {
                format: FORMAT.into(),
                version: 1,
                repo_id: repo.config.repo_id,
                tenant: keys.tenant.clone(),
                site: opts.host.clone(),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                tree: *root,
                files,
            };
            let json =
                serde_json::to_vec(&SignedManifest::sign(&m, &keys.signer)).expect("serializes");
            walker.sink.submit(BlobType::Data, &json).map(Some)
        }
        _ => Ok(None),
    };
    // Close the channel and wait for the workers whatever happened.
    walker.sink.tx = None;
    for h in handles {
        if h.join().is_err() {
            shared.fail(Error::Aborted {
                reason: "a worker thread panicked".into(),
            });
        }
    }
    progress.finish();
    if let Some(e) = shared.error.lock().expect("lock").take() {
        return Err(e);
    }
    let root = walked?;
    let manifest_blob = manifest_blob?;
    crate::fault::pause("backup:before-index");
    crate::fault::point("backup:before-index");
    let rest = std::mem::take(&mut *shared.pending.lock().expect("lock"));
    shared.write_index(&rest)?;
    // Every pack this snapshot reuses must still exist (a prune that ignored a stale lock,
    // or a store that lost data, must not produce a snapshot with holes).
    if !walker.sink.reused.is_empty() {
        let present: HashSet<Id> = repo
            .store
            .list(&format!("packs/{}", repo::tag_hex(&keys.tag)))?
            .iter()
            .filter_map(|o| repo::name_of(&o.path))
            .collect();
        for ix in &walker.sink.reused {
            let pid = index.packs[*ix as usize].id;
            if !present.contains(&pid) {
                return Err(Error::Aborted {
                    reason: format!(
                        "pack {pid}, which this backup reuses, disappeared from the store (a concurrent prune?); \
                         no snapshot was written. Run the backup again."
                    ),
                });
            }
        }
    }
    if let Some(quota) = opts.quota {
        let used: u64 = repo
            .store
            .list(&format!("packs/{}", repo::tag_hex(&keys.tag)))?
            .iter()
            .map(|o| o.size)
            .sum();
        if used > quota {
            return Err(Error::Quota {
                tenant: keys.tenant.clone(),
                used,
                quota,
            });
        }
    }
    crate::fault::point("backup:before-snapshot");

    let mut summary = std::mem::take(&mut walker.summary);
    summary.blobs_added = walker.sink.blobs_added;
    summary.bytes_added = walker.sink.bytes_added;
    summary.bytes_stored = shared.bytes_stored.load(Ordering::Relaxed);
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let mut paths = abs_paths;
    paths.extend(opts.commands.iter().map(|c| format!("/{}", c.filename)));
    let mut snapshot = Snapshot {
        version: 1,
        repo_id: repo.config.repo_id,
        tenant: keys.tenant.clone(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host: opts.host.clone(),
        username: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        paths,
        tags: opts.tags.clone(),
        tree: root,
        writer: [0; 32],
        writer_name: keys.writer_name.clone(),
        program: crate::PROGRAM.into(),
        summary,
        manifest: manifest_blob,
    };
    let sealed = snapshot
        .seal(&keys.signer, &keys.recipients, keys.tag)
        .map_err(|e| Error::Usage {
            what: format!("cannot seal snapshot: {e}"),
        })?;
    let id = Id::of_stored(&sealed);
    repo.store
        .put(&repo::snapshot_path(&keys.tag, &id), sealed)?;
    drop(lock);
    if let Some(c) = &mut walker.catalog {
        if let Err(e) = c.commit() {
            walker.warnings.push(format!(
                "catalog not updated (next run will re-read files): {e}"
            ));
        }
    }
    Ok(BackupOutcome {
        id,
        snapshot,
        warnings: walker.warnings,
        packs_written: shared.packs.load(Ordering::Relaxed),
        index_objects_written: shared.index_objects.load(Ordering::Relaxed),
    })
}
