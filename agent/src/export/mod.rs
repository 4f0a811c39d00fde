//! `coop export` and `coop verify`: a member's own data, portable and checkable offline.
//!
//! - [`tarx`]: the tar format written, and the strict reader `verify` uses.
//! - [`verify`]: checking an export against its signed manifest, and extracting it.
//!
//! An export is a tar file or a directory with `manifest.json` and the files under `files/`,
//! each named after its source (see `Manifest::export_paths`). `manifest.json` carries the
//! manifest the agent signed at backup time. File contents stream from the repository into
//! the export one blob at a time (never a whole file in memory), each blob verified by its
//! keyed ID and each file by the manifest's BLAKE3. Directory exports are written through
//! descriptors (see [`crate::fsx`]): nothing outside the export directory is touched even if
//! someone swaps parts of it for symlinks meanwhile.

pub mod tarx;
pub mod verify;

pub use verify::{verify, VerifyOptions, VerifyReport};

use crate::error::{Error, Result};
use crate::fsx;
use crate::keys::TenantKeys;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::id::BlobType;
use coop_formats::manifest::{fingerprint, Manifest, ManifestFile, SignedManifest};
use coop_formats::tree::{Node, NodeKind, Part};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const EXPORT_FORMAT: &str = "coop-export";

/// `manifest.json` of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportFile {
    pub format: String,
    pub version: u32,
    /// The snapshot exported (its full ID).
    pub snapshot: String,
    /// Where it was exported from.
    pub source: String,
    pub exported: String,
    /// The manifest as the agent signed it at backup time.
    pub signed_manifest: SignedManifest,
    /// The newest snapshot of each other job (path set) of the member, newest first: a
    /// member with two jobs gets both in one export (SPEC 16.3). Omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<MoreSnapshot>,
    /// Every access log entry about this tenant, each with its inclusion proof to a signed
    /// (and, where witnessed, cosigned) checkpoint (SPEC section 24.7).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<crate::log::ProvenEntry>,
    /// The witnesses the repository's writer list named at export time (name, key hex).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<(String, String)>,
    /// The writer list's `log_quorum` at export time.
    #[serde(default)]
    pub quorum: u32,
    /// The admin-signed writer list (SPEC 18) the witnesses, the quorum and the logs' keys
    /// come from, base64 of the stored object: a verifier checks them against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer_list: Option<String>,
    /// The exporter's signature over everything above (SPEC 16.3): the log part, the
    /// witnesses, the quorum and the writer list cannot be changed, cut or dropped without
    /// `coop verify` noticing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<Seal>,
}

/// The signature that covers an export's `manifest.json` (everything but itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seal {
    /// The Ed25519 public key (hex): the exported tenant's signer (its authority key).
    pub key: String,
    /// Base64 Ed25519 signature of [`SEAL_CONTEXT`] ‖ the compact JSON of `manifest.json`
    /// without `seal`.
    pub signature: String,
}

/// What an export's seal signs before the manifest's JSON.
pub const SEAL_CONTEXT: &[u8] = b"coop-export-seal-v1\0";

impl ExportFile {
    /// The bytes the seal signs.
    pub fn seal_message(&self) -> Vec<u8> {
        let mut c = self.clone();
        c.seal = None;
        let mut m = SEAL_CONTEXT.to_vec();
        m.extend_from_slice(&serde_json::to_vec(&c).expect("serializes"));
        m
    }

    /// Signs the export with `key` (the tenant's signer).
    pub fn sign(&mut self, key: &ed25519_dalek::SigningKey) {
        use base64::Engine;
        use ed25519_dalek::Signer;
        let sig = key.sign(&self.seal_message());
        self.seal = Some(Seal {
            key: hex::encode(key.verifying_key().to_bytes()),
            signature: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        });
    }
}

/// Another snapshot in an export (`more` in `manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoreSnapshot {
    /// Its full ID.
    pub snapshot: String,
    /// Its manifest as the agent signed it.
    pub signed_manifest: SignedManifest,
}

/// Each manifest's files with their export paths, laid out among the sources of all of them:
/// a path two manifests give goes once, from the first (the newest snapshot). With one
/// manifest this is [`Manifest::export_paths`] (SPEC 16.2).
pub fn export_layout(manifests: &[Manifest]) -> Vec<Vec<(usize, Vec<u8>)>> {
    let sources: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.sources.iter().cloned())
        .collect();
    let mut taken = HashSet::new();
    manifests
        .iter()
        .map(|m| {
            m.export_paths_among(&sources)
                .into_iter()
                .enumerate()
                .filter(|(_, p)| taken.insert(p.clone()))
                .collect()
        })
        .collect()
}

pub enum Target {
    Tar(PathBuf),
    Dir(PathBuf),
    /// Update an earlier directory export in place, rewriting only what changed.
    Into(PathBuf),
}

#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
    pub snapshot: String,
    pub tenant: String,
    pub time: String,
    pub files: u64,
    pub bytes: u64,
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub signer_fingerprint: String,
    /// The other snapshots exported with it (the newest of each other job), with their times.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<(String, String)>,
}

/// Reads and checks the signed manifest of a snapshot.
pub fn snapshot_manifest(
    reader: &BlobReader,
    snap: &coop_formats::snapshot::Snapshot,
) -> Result<(SignedManifest, Manifest)> {
    let id = snap.manifest.ok_or_else(|| Error::NotFound {
        what: "a signed manifest in this snapshot (only member snapshots have one)".into(),
    })?;
    let mut buf = Vec::new();
    reader.blob(&id, BlobType::Data, &mut buf)?;
    let signed: SignedManifest =
        serde_json::from_slice(&buf).map_err(|e| Error::damaged(id.to_hex(), e))?;
    let (m, signer) = signed
        .verify()
        .map_err(|e| Error::damaged(id.to_hex(), e))?;
    let keyring = &reader.keys.reader()?.keyring;
    let list = crate::writers::load(reader.repo, &reader.keys.admin_keys)?.list;
    if !crate::writers::may_sign(keyring, &list, &signer) {
        return Err(Error::damaged(
            id.to_hex(),
            "manifest signed by a key that is not a writer of this tenant",
        ));
    }
    if m.tree != snap.tree || m.tenant != keyring.tenant {
        return Err(Error::damaged(
            id.to_hex(),
            "manifest belongs to another snapshot or tenant",
        ));
    }
    Ok((signed, m))
}

/// An export path, each component checked.
fn export_path(bytes: &[u8]) -> Result<PathBuf> {
    for c in bytes.split(|b| *b == b'/') {
        coop_formats::tree::check_name(c)
            .map_err(|r| Error::damaged("manifest", format!("bad path component ({r})")))?;
    }
    Ok(PathBuf::from(OsStr::from_bytes(bytes)))
}

/// A file's content as a reader: blobs one at a time (each verified by its keyed ID),
/// holes as zeros, the whole checked against the manifest's BLAKE3 at the end.
struct Content<'r, 'a> {
    reader: &'r BlobReader<'a>,
    parts: std::slice::Iter<'r, Part>,
    buf: Vec<u8>,
    pos: usize,
    hole: u64,
    hasher: blake3::Hasher,
    expect: &'r str,
    path: &'r str,
    done: bool,
}

impl<'r, 'a> Content<'r, 'a> {
    fn new(reader: &'r BlobReader<'a>, node: &'r Node, f: &'r ManifestFile) -> Self {
        Self {
            reader,
            parts: node.content.iter(),
            buf: Vec::new(),
            pos: 0,
            hole: 0,
            hasher: blake3::Hasher::new(),
            expect: &f.blake3,
            path: &f.path,
            done: false,
        }
    }
}

impl Read for Content<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.buf.len() {
                let n = (self.buf.len() - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.hasher.update(&out[..n]);
                self.pos += n;
                return Ok(n);
            }
            if self.hole > 0 {
                let n = (self.hole.min(out.len() as u64)) as usize;
                out[..n].fill(0);
                self.hasher.update(&out[..n]);
                self.hole -= n as u64;
                return Ok(n);
            }
            match self.parts.next() {
                Some(Part::Blob(id)) => {
                    self.reader
                        .blob(id, BlobType::Data, &mut self.buf)
                        .map_err(std::io::Error::other)?;
                    self.pos = 0;
                }
                Some(Part::Hole { hole }) => self.hole = *hole,
                None => {
                    if !self.done {
                        self.done = true;
                        if self.hasher.finalize().to_hex().as_str() != self.expect {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                format!(
                                    "{}: content does not match the signed manifest",
                                    self.path
                                ),
                            ));
                        }
                    }
                    return Ok(0);
                }
            }
        }
    }
}

/// Writes a file's content into `out` as the snapshot has it: blobs written (each verified
/// by its keyed ID), holes skipped over so the file stays sparse, the whole checked against
/// the manifest's BLAKE3.
fn write_content(
    reader: &BlobReader,
    node: &Node,
    f: &ManifestFile,
    out: &std::fs::File,
) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    static ZEROS: [u8; 65536] = [0; 65536];
    let mut hasher = blake3::Hasher::new();
    let mut buf = Vec::new();
    let mut pos = 0u64;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    for part in &node.content {
        match part {
            Part::Blob(id) => {
                reader
                    .blob(id, BlobType::Data, &mut buf)
                    .map_err(std::io::Error::other)?;
                hasher.update(&buf);
                w.write_all(&buf)?;
                pos += buf.len() as u64;
            }
            Part::Hole { hole } => {
                let mut n = *hole;
                while n > 0 {
                    let k = n.min(ZEROS.len() as u64) as usize;
                    hasher.update(&ZEROS[..k]);
                    n -= k as u64;
                }
                pos += hole;
                w.seek(SeekFrom::Start(pos))?;
            }
        }
    }
    w.flush()?;
    drop(w);
    // A hole at the end: the size comes from the length.
    out.set_len(pos)?;
    if hasher.finalize().to_hex().as_str() != f.blake3 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: content does not match the signed manifest", f.path),
        ));
    }
    Ok(())
}

/// The snapshots `coop export` writes for `latest`: the newest trusted snapshot with a signed
/// manifest of every job (path set) of the member, the newest first. `first` (the one asked
/// for) leads; the others are the newest of each other path set.
pub fn newest_per_job<'v>(
    entries: &'v [crate::snapshots::Entry],
    first: &'v crate::snapshots::Entry,
) -> Vec<&'v crate::snapshots::Entry> {
    let key = |e: &crate::snapshots::Entry| {
        let mut p = e.snapshot.paths.clone();
        p.sort();
        p.dedup();
        p
    };
    let mut seen = HashSet::from([key(first)]);
    let mut out = vec![first];
    let mut newest_first: Vec<&crate::snapshots::Entry> = entries
        .iter()
        .filter(|e| e.trusted() && e.snapshot.manifest.is_some())
        .collect();
    newest_first.sort_by(|a, b| b.snapshot.time.cmp(&a.snapshot.time));
    for e in newest_first {
        if seen.insert(key(e)) {
            out.push(e);
        }
    }
    out
}

/// Exports member snapshots: the first is the export's `snapshot`, the others (the newest of
/// each other job, see [`newest_per_job`]) go into `more`.
pub fn export(
    repo: &Repo,
    keys: &TenantKeys,
    entries: &[&crate::snapshots::Entry],
    target: Target,
    source: &str,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let entry = *entries
        .first()
        .ok_or_else(|| Error::internal("an export of no snapshot"))?;
    let sid = entry.id;
    let index = crate::index::load(repo, keys)?;
    let reader = BlobReader::new(repo, keys, &index)?;
    let mut signed_all = Vec::new();
    let mut manifests = Vec::new();
    // File nodes by path, per snapshot, to read content from the snapshot itself.
    let mut nodes: Vec<HashMap<Vec<u8>, Node>> = Vec::new();
    for e in entries {
        let (signed, manifest) = snapshot_manifest(&reader, &e.snapshot)?;
        let mut n = HashMap::new();
        reader.walk(&e.snapshot.tree, |p, node| {
            if node.kind == NodeKind::File {
                n.insert(p.to_vec(), node.clone());
            }
            Ok(true)
        })?;
        signed_all.push(signed);
        manifests.push(manifest);
        nodes.push(n);
    }
    let (signed, manifest) = (signed_all[0].clone(), manifests[0].clone());
    // What the access log says about this tenant, with proofs the member checks offline.
    let trusted = crate::writers::log_trust(repo, &keys.admin_keys)?;
    let (_, contents) = crate::log::verify(repo, &trusted)?;
    let log = crate::log::entries_about(&contents, &trusted, &crate::log::tenant_tag(keys));
    // The admin-signed writer list the witnesses and the quorum come from, as stored.
    let writer_list = crate::writers::load(repo, &keys.admin_keys)?
        .name
        .and_then(|n| {
            repo.get_opt(crate::layout::Kind::Writers, &crate::writers::TAG, &n)
                .ok()
                .flatten()
        })
        .map(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        });
    let mut file = ExportFile {
        format: EXPORT_FORMAT.into(),
        version: 1,
        snapshot: sid.to_hex(),
        source: source.into(),
        exported: crate::now_rfc3339(),
        signed_manifest: signed.clone(),
        more: entries[1..]
            .iter()
            .zip(&signed_all[1..])
            .map(|(e, s)| MoreSnapshot {
                snapshot: e.id.to_hex(),
                signed_manifest: s.clone(),
            })
            .collect(),
        log,
        witnesses: trusted
            .witnesses
            .iter()
            .map(|(n, k)| (n.clone(), hex::encode(k)))
            .collect(),
        quorum: trusted.quorum,
        writer_list,
        seal: None,
    };
    file.sign(&keys.signer);
    let manifest_json = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::internal(format!("manifest.json does not serialize: {e}")))?;
    let signer = signed
        .verify()
        .map_err(|e| Error::damaged("manifest", e))?
        .1;
    let mut rep = ExportReport {
        snapshot: sid.to_hex(),
        tenant: manifest.tenant.clone(),
        time: manifest.time.clone(),
        signer_fingerprint: fingerprint(&signer),
        more: manifests[1..]
            .iter()
            .zip(&entries[1..])
            .map(|(m, e)| (e.id.to_hex(), m.time.clone()))
            .collect(),
        ..Default::default()
    };
    let layout = export_layout(&manifests);
    let mut paths: Vec<(usize, usize, PathBuf)> = Vec::new();
    for (m, files) in layout.iter().enumerate() {
        for (i, p) in files {
            paths.push((m, *i, export_path(p)?));
        }
    }
    let files: Vec<(&ManifestFile, &Node, &PathBuf)> = paths
        .iter()
        .map(|(m, i, p)| {
            let f = &manifests[*m].files[*i];
            nodes[*m]
                .get(&f.path_bytes())
                .map(|n| (f, n, p))
                .ok_or_else(|| {
                    Error::damaged("manifest", format!("{} is not in the snapshot", f.path))
                })
        })
        .collect::<Result<_>>()?;
    progress.phase("export", Some(files.iter().map(|(f, _, _)| f.size).sum()));
    match target {
        Target::Tar(path) => write_tar(&reader, &files, &manifest_json, &path, progress, &mut rep)?,
        Target::Dir(dir) | Target::Into(dir) => {
            write_dir(&reader, &files, &manifest_json, &dir, progress, &mut rep)?
        }
    }
    progress.finish();
    Ok(rep)
}

fn write_tar(
    reader: &BlobReader,
    files: &[(&ManifestFile, &Node, &PathBuf)],
    manifest_json: &[u8],
    path: &Path,
    progress: &dyn Progress,
    rep: &mut ExportReport,
) -> Result<()> {
    // Through the parent's descriptor: a member who swaps the folder for a symlink cannot
    // send the export elsewhere, and an existing file of that name is never replaced.
    let (outfile, out) = fsx::OutFile::create(path).map_err(|e| Error::io(path, e))?;
    let tmp = path;
    let res = (|| -> Result<()> {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
        let mut h = tar::Header::new_gnu();
        h.set_size(manifest_json.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(crate::now_unix().max(0) as u64);
        h.set_cksum();
        tar.append_data(&mut h, "manifest.json", manifest_json)
            .map_err(|e| Error::io(tmp, e))?;
        for (f, node, rel) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(f.size);
            h.set_mode(f.mode & 0o7777);
            h.set_mtime(f.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
            h.set_cksum();
            let content = Content::new(reader, node, f);
            tar.append_data(&mut h, Path::new("files").join(rel), content)
                .map_err(|e| content_error(tmp, e))?;
            rep.files += 1;
            rep.written += 1;
            rep.bytes += f.size;
            progress.add_bytes(f.size);
        }
        tar.into_inner()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(tmp, e))
    })();
    res?;
    outfile.commit().map_err(|e| {
        if e.raw_os_error() == Some(nix::libc::EEXIST) {
            Error::Invalid {
                what: format!(
                    "{} appeared while the export was written; it was left alone and nothing was exported",
                    path.display()
                ),
            }
        } else {
            Error::io(path, e)
        }
    })
}

/// An I/O error while streaming content: the repository's (damage) or the output's.
fn content_error(path: &Path, e: std::io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<Error>()) {
        Some(_) => {
            let inner = e
                .into_inner()
                .expect("checked")
                .downcast::<Error>()
                .expect("checked");
            *inner
        }
        None if e.kind() == std::io::ErrorKind::InvalidData => Error::damaged("manifest", e),
        None => Error::io(path, e),
    }
}

/// The file in a directory export where the export records, by (device, inode), the files
/// and directories it made; root's (the exporting user's), mode 0600, never read if anyone
/// else owns it. Only what is recorded there (or, for exports made before it existed, what
/// the previous manifest lists and the export's user owns) is ever removed or written into.
pub const OWN_RECORD: &str = ".coop-export-own";

/// What a directory export found in place before it wrote anything.
#[derive(Default)]
struct Existing {
    /// Our files and directories: path below `files/` -> (device, inode).
    files: Vec<(PathBuf, (u64, u64))>,
    dirs: HashMap<PathBuf, (u64, u64)>,
    /// What is not ours, with why.
    foreign: Vec<String>,
}

/// What the previous export in `root` says is ours: the recorded (device, inode) pairs, and
/// the paths of the previous manifest (files, and the directories above them).
fn previous_export(
    root: BorrowedFd<'_>,
    dev: u64,
) -> (HashSet<(u64, u64)>, HashSet<PathBuf>, HashSet<PathBuf>) {
    let euid = nix::unistd::geteuid().as_raw();
    let read = |name: &str| -> Option<Vec<u8>> {
        let fd = fsx::open_file_at(root, OsStr::new(name)).ok()?;
        let st = fsx::fstat(fd.as_fd()).ok()?;
        if !st.is_file() || st.uid != euid || st.dev != dev || st.nlink != 1 {
            return None;
        }
        let mut buf = Vec::new();
        std::fs::File::from(fd)
            .take(64 << 20)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
    };
    let mut own = HashSet::new();
    if let Some(b) = read(OWN_RECORD) {
        for line in b.split(|c| *c == b'\n') {
            let mut it = std::str::from_utf8(line).unwrap_or("").split_whitespace();
            if let (Some(d), Some(i)) = (it.next(), it.next()) {
                if let (Ok(d), Ok(i)) = (d.parse(), i.parse()) {
                    own.insert((d, i));
                }
            }
        }
    }
    let (mut files, mut dirs) = (HashSet::new(), HashSet::new());
    // Every file the previous export's manifests (its snapshot and the other jobs') placed.
    let prev = read("manifest.json")
        .and_then(|b| serde_json::from_slice::<ExportFile>(&b).ok())
        .and_then(|f| {
            let mut ms = vec![f.signed_manifest.verify().ok()?.0];
            for x in &f.more {
                ms.push(x.signed_manifest.verify().ok()?.0);
            }
            export_layout(&ms)
                .into_iter()
                .flatten()
                .map(|(_, p)| export_path(&p).ok())
                .collect::<Option<Vec<PathBuf>>>()
        });
    for p in prev.unwrap_or_default() {
        let mut a = p.parent();
        while let Some(d) = a.filter(|d| !d.as_os_str().is_empty()) {
            dirs.insert(d.to_path_buf());
            a = d.parent();
        }
        files.insert(p);
    }
    (own, files, dirs)
}

/// Looks at what is below `files/` (never following a link, never leaving the file system,
/// never entering a directory that is not ours) and sorts it into ours and not ours.
#[allow(clippy::too_many_arguments)]
fn scan_existing(
    dir: BorrowedFd<'_>,
    prefix: &Path,
    dev: u64,
    own: &HashSet<(u64, u64)>,
    prev_files: &HashSet<PathBuf>,
    prev_dirs: &HashSet<PathBuf>,
    shown: &Path,
    out: &mut Existing,
) -> std::io::Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    for name in fsx::read_dir_names(dir)? {
        let rel = prefix.join(&name);
        let st = match fsx::lstat_at(dir, &name) {
            Ok(st) => st,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let key = (st.dev, st.ino);
        let why = if st.dev != dev {
            Some("on another file system (a mount)")
        } else if st.is_dir() {
            if own.contains(&key) || (st.uid == euid && prev_dirs.contains(&rel)) {
                None
            } else {
                Some("a directory this export did not create")
            }
        } else if own.contains(&key)
            || (st.is_file() && st.uid == euid && prev_files.contains(&rel))
            || (st.is_file()
                && st.uid == euid
                && st.nlink == 1
                && name.as_bytes().ends_with(b".coop-partial"))
        {
            None
        } else {
            Some("not written by this export")
        };
        match why {
            Some(why) => out
                .foreign
                .push(format!("{} ({why})", shown.join(&rel).display())),
            None if st.is_dir() => {
                let sub = fsx::open_dir_at(dir, &name)?;
                if !fsx::fstat(sub.as_fd())?.same_entry(&st) {
                    out.foreign.push(format!(
                        "{} (replaced while looked at)",
                        shown.join(&rel).display()
                    ));
                    continue;
                }
                out.dirs.insert(rel.clone(), key);
                scan_existing(
                    sub.as_fd(),
                    &rel,
                    dev,
                    own,
                    prev_files,
                    prev_dirs,
                    shown,
                    out,
                )?;
            }
            None => out.files.push((rel, key)),
        }
    }
    Ok(())
}

/// Opens the directory `rel` below `files` through directories that are still the ones
/// [`scan_existing`] found to be ours.
fn open_ours(
    files: BorrowedFd<'_>,
    rel: &Path,
    dirs: &HashMap<PathBuf, (u64, u64)>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    let mut cur = fsx::open_beneath(
        files,
        Path::new(""),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        0,
    )?;
    let mut at = PathBuf::new();
    for c in rel.components() {
        at.push(c);
        let next = fsx::open_dir_at(cur.as_fd(), c.as_os_str())?;
        let st = fsx::fstat(next.as_fd())?;
        if dirs.get(&at) != Some(&(st.dev, st.ino)) {
            return Err(std::io::Error::other("replaced while the export ran"));
        }
        cur = next;
    }
    Ok(cur)
}

/// Writes a directory export (or updates one in place), rewriting only what changed.
///
/// Before anything is written, what is already below `files/` is looked at: anything the
/// export did not make (a folder moved in, another user's file, a mount) makes it refuse
/// with the paths named, and nothing is changed. Afterwards only the export's own files that
/// the new manifest no longer lists are removed, and its own directories left empty.
fn write_dir(
    reader: &BlobReader,
    files: &[(&ManifestFile, &Node, &PathBuf)],
    manifest_json: &[u8],
    dir: &Path,
    progress: &dyn Progress,
    rep: &mut ExportReport,
) -> Result<()> {
    let root = fsx::open_or_create_dir(dir).map_err(|e| Error::io(dir, e))?;
    let dev = fsx::fstat(root.as_fd()).map_err(|e| Error::io(dir, e))?.dev;
    let (own, prev_files, prev_dirs) = previous_export(root.as_fd(), dev);
    let shown = dir.join("files");
    let mut existing = Existing::default();
    let euid = nix::unistd::geteuid().as_raw();
    match fsx::lstat_at(root.as_fd(), OsStr::new("files")) {
        Ok(st) if st.is_dir() => {
            let ours = st.dev == dev
                && (own.contains(&(st.dev, st.ino)) || (st.uid == euid && !prev_files.is_empty()));
            let sub = fsx::open_dir_at(root.as_fd(), OsStr::new("files"))
                .map_err(|e| Error::io(&shown, e))?;
            let empty = fsx::read_dir_names(sub.as_fd())
                .map_err(|e| Error::io(&shown, e))?
                .is_empty();
            if !ours && !empty {
                existing.foreign.push(format!(
                    "{} (a directory this export did not create{})",
                    shown.display(),
                    if st.dev != dev {
                        ", on another file system"
                    } else {
                        ""
                    }
                ));
            } else if ours {
                scan_existing(
                    sub.as_fd(),
                    Path::new(""),
                    dev,
                    &own,
                    &prev_files,
                    &prev_dirs,
                    &shown,
                    &mut existing,
                )
                .map_err(|e| Error::io(&shown, e))?;
            }
        }
        Ok(_) => existing.foreign.push(format!(
            "{} (not a directory, and not written by this export)",
            shown.display()
        )),
        Err(_) => {}
    }
    if !existing.foreign.is_empty() {
        let n = existing.foreign.len();
        let mut list: Vec<String> = existing.foreign.iter().take(10).cloned().collect();
        if n > 10 {
            list.push(format!("and {} more", n - 10));
        }
        return Err(Error::Invalid {
            what: format!(
                "{} holds what this export did not write, which it neither removes nor writes over: {}; \
                 move that out of the export directory or export into a new one (nothing was changed)",
                dir.display(),
                list.join(", ")
            ),
        });
    }
    let files_dir =
        fsx::make_dir_at(root.as_fd(), OsStr::new("files")).map_err(|e| Error::io(&shown, e))?;
    let mut record: HashSet<(u64, u64)> = HashSet::new();
    let stat_key = |fd: BorrowedFd<'_>| fsx::fstat(fd).map(|s| (s.dev, s.ino));
    record.insert(stat_key(files_dir.as_fd()).map_err(|e| Error::io(&shown, e))?);
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for (f, node, rel) in files {
        keep.insert((*rel).clone());
        rep.files += 1;
        rep.bytes += f.size;
        let shown = shown.join(rel);
        let parent =
            make_parents(files_dir.as_fd(), rel, &mut record).map_err(|e| Error::io(&shown, e))?;
        let name = rel.file_name().expect("checked components");
        if let Some(key) = same_content(parent.as_fd(), name, f) {
            record.insert(key);
            rep.unchanged += 1;
            progress.add_bytes(f.size);
            continue;
        }
        // A short temporary name: the file's own may be up to 255 bytes already.
        let tmp_name = OsString::from(format!(".{}.coop-partial", rep.files));
        let fd =
            fsx::create_file_at(parent.as_fd(), &tmp_name).map_err(|e| Error::io(&shown, e))?;
        let written = std::fs::File::from(fd);
        if let Err(e) =
            write_content(reader, node, f, &written).map_err(|e| content_error(&shown, e))
        {
            let _ = fsx::remove_at(parent.as_fd(), &tmp_name, false);
            return Err(e);
        }
        let meta = fsx::Meta {
            mode: f.mode,
            uid: 0,
            gid: 0,
            mtime_ns: f.mtime_ns,
            xattrs: &[],
            owner: false,
        };
        fsx::set_meta_fd(written.as_fd(), &meta).map_err(|e| Error::io(&shown, e))?;
        record.insert(stat_key(written.as_fd()).map_err(|e| Error::io(&shown, e))?);
        nix::fcntl::renameat(parent.as_fd(), tmp_name.as_os_str(), parent.as_fd(), name)
            .map_err(|e| Error::io(&shown, e.into()))?;
        rep.written += 1;
        progress.add_bytes(f.size);
    }
    // Our files the new manifest does not list, then our directories left empty (deepest
    // first), each removed only if it is still the entry looked at.
    for (rel, key) in &existing.files {
        if keep.contains(rel) {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().expect("a name");
        let Ok(pfd) = open_ours(files_dir.as_fd(), parent, &existing.dirs) else {
            continue;
        };
        match fsx::lstat_at(pfd.as_fd(), name) {
            Ok(st) if (st.dev, st.ino) == *key && !st.is_dir() => {
                fsx::remove_at(pfd.as_fd(), name, false)
                    .map_err(|e| Error::io(shown.join(rel), e))?;
                if !name.as_bytes().ends_with(b".coop-partial") {
                    rep.removed += 1;
                }
            }
            _ => {}
        }
    }
    let mut dirs: Vec<(&PathBuf, &(u64, u64))> = existing.dirs.iter().collect();
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (rel, key) in dirs {
        if record.contains(key) {
            continue;
        }
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel.file_name().expect("a name");
        let Ok(pfd) = open_ours(files_dir.as_fd(), parent, &existing.dirs) else {
            continue;
        };
        if let Ok(st) = fsx::lstat_at(pfd.as_fd(), name) {
            if st.is_dir() && (st.dev, st.ino) == *key {
                // Not empty (something appeared): left as it is.
                let _ =
                    nix::unistd::unlinkat(pfd.as_fd(), name, nix::unistd::UnlinkatFlags::RemoveDir);
            }
        }
    }
    let mut text = String::new();
    let mut keys: Vec<_> = record.into_iter().collect();
    keys.sort_unstable();
    for (d, i) in keys {
        text.push_str(&format!("{d} {i}\n"));
    }
    replace_in(root.as_fd(), OsStr::new(OWN_RECORD), text.as_bytes(), dir)?;
    replace_in(
        root.as_fd(),
        OsStr::new("manifest.json"),
        manifest_json,
        dir,
    )?;
    Ok(())
}

/// Writes `name` in `dir` whole: a new temporary file, synced, renamed over it.
fn replace_in(dir: BorrowedFd<'_>, name: &OsStr, content: &[u8], shown: &Path) -> Result<()> {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(".partial");
    let shown = shown.join(name);
    let fd = fsx::create_file_at(dir, &tmp).map_err(|e| Error::io(&shown, e))?;
    let mut f = std::fs::File::from(fd);
    f.write_all(content)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&shown, e))?;
    nix::fcntl::renameat(dir, tmp.as_os_str(), dir, name).map_err(|e| Error::io(&shown, e.into()))
}

/// Opens (creating) the parent directories of `rel` below `dir`, one component at a time.
fn make_parents(
    dir: BorrowedFd<'_>,
    rel: &Path,
    record: &mut HashSet<(u64, u64)>,
) -> std::io::Result<std::os::fd::OwnedFd> {
    let mut cur = fsx::open_beneath(
        dir,
        Path::new(""),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        0,
    )?;
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur = fsx::make_dir_at(cur.as_fd(), c.as_os_str())?;
            let st = fsx::fstat(cur.as_fd())?;
            record.insert((st.dev, st.ino));
        }
    }
    Ok(cur)
}

/// The (device, inode) of the file `name` if it holds `f`'s content already.
fn same_content(dir: BorrowedFd<'_>, name: &OsStr, f: &ManifestFile) -> Option<(u64, u64)> {
    let st = fsx::lstat_at(dir, name).ok()?;
    if !st.is_file() || st.size != f.size {
        return None;
    }
    let fd = fsx::open_file_at(dir, name).ok()?;
    let fst = fsx::fstat(fd.as_fd()).ok()?;
    if !fst.same_entry(&st) {
        return None;
    }
    verify::hash_reader(&mut std::fs::File::from(fd))
        .ok()
        .filter(|(_, h)| *h == f.blake3)
        .map(|_| (st.dev, st.ino))
}
