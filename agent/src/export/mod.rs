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

mod dir;
mod log_part;
mod seal;
pub mod tarx;
pub mod verify;

pub use verify::{verify, VerifyOptions, VerifyReport};

use dir::write_dir;

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
    /// What was wrong with the access log at this store (a log that does not verify, a fork
    /// or rollback against what this client saw): the export is whole, but the entries it
    /// carries may not be all there are. Callers report it as an integrity problem.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log_problems: Vec<String>,
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
    let (verified, contents) = crate::log::verify(repo, &trusted)?;
    let log = crate::log::entries_about(&contents, &trusted, &crate::log::tenant_tag(keys));
    let log_problems = log_part::log_problems(&verified, &contents);
    let writer_list = log_part::stored_writer_list(repo, keys)?;
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
        log_problems,
        ..Default::default()
    };
    let paths = placed(&manifests)?;
    let files = files_of(&manifests, &nodes, &paths)?;
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

/// Where each file of the manifests goes in the export: (manifest, file, path).
fn placed(manifests: &[Manifest]) -> Result<Vec<(usize, usize, PathBuf)>> {
    let layout = export_layout(manifests);
    let mut paths: Vec<(usize, usize, PathBuf)> = Vec::new();
    for (m, files) in layout.iter().enumerate() {
        for (i, p) in files {
            paths.push((m, *i, export_path(p)?));
        }
    }
    Ok(paths)
}

/// Each placed file with its node in its snapshot (to read the content from).
#[allow(clippy::type_complexity)]
fn files_of<'a>(
    manifests: &'a [Manifest],
    nodes: &'a [HashMap<Vec<u8>, Node>],
    paths: &'a [(usize, usize, PathBuf)],
) -> Result<Vec<(&'a ManifestFile, &'a Node, &'a PathBuf)>> {
    paths
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
        .collect()
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
