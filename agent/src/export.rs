//! `coop export` and `coop verify`: a member's own data, portable and checkable offline.
//!
//! An export is a tar file or a directory with `manifest.json` and the files under `files/`.
//! `manifest.json` carries the manifest the agent signed at backup time; `verify` checks the
//! export against it with no secret: every file present with the right size and BLAKE3, none
//! missing, none extra, and the signature valid (and, with `--trust`, by the expected key).

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::id::BlobType;
use coop_formats::manifest::{fingerprint, Manifest, ManifestFile, SignedManifest};
use coop_formats::tree::{NodeKind, Part};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
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
    pub files: u64,
    pub bytes: u64,
    pub written: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub signer_fingerprint: String,
}

/// Reads and checks the signed manifest of a snapshot.
pub fn snapshot_manifest(
    reader: &BlobReader,
    snap: &coop_formats::snapshot::Snapshot,
) -> Result<(SignedManifest, Manifest)> {
    let id = snap.manifest.ok_or_else(|| Error::NotFound {
        what: "a signed manifest in this snapshot".into(),
        hint: " (only member snapshots made by coop with members support have one)".into(),
    })?;
    let mut buf = Vec::new();
    reader.blob(&id, BlobType::Data, &mut buf)?;
    let signed: SignedManifest =
        serde_json::from_slice(&buf).map_err(|e| Error::corrupt(id.to_hex(), e))?;
    let (m, signer) = signed
        .verify()
        .map_err(|e| Error::corrupt(id.to_hex(), e))?;
    let keyring = &reader.keys.reader()?.keyring;
    if !keyring.is_writer(&signer) {
        return Err(Error::corrupt(
            id.to_hex(),
            "manifest signed by a key that is not a writer of this tenant",
        ));
    }
    if m.tree != snap.tree || m.tenant != keyring.tenant {
        return Err(Error::corrupt(
            id.to_hex(),
            "manifest belongs to another snapshot or tenant",
        ));
    }
    Ok((signed, m))
}

fn rel_path(f: &ManifestFile) -> Result<PathBuf> {
    let bytes = f.path_bytes();
    for c in bytes.split(|b| *b == b'/') {
        coop_formats::tree::check_name(c)
            .map_err(|r| Error::corrupt("manifest", format!("bad path component ({r})")))?;
    }
    Ok(PathBuf::from(OsStr::from_bytes(&bytes)))
}

/// Exports a member snapshot.
pub fn export(
    repo: &Repo,
    keys: &TenantKeys,
    snapshot: &str,
    target: Target,
    source: &str,
    progress: &dyn Progress,
) -> Result<ExportReport> {
    let (sid, snap) = repo.find_snapshot(keys, snapshot)?;
    let index = repo.load_index(keys)?;
    let reader = BlobReader::new(repo, keys, &index)?;
    let (signed, manifest) = snapshot_manifest(&reader, &snap)?;
    // File nodes by path, to read content from the snapshot itself.
    let mut nodes: HashMap<Vec<u8>, coop_formats::tree::Node> = HashMap::new();
    reader.walk(&snap.tree, |p, n| {
        if n.kind == NodeKind::File {
            nodes.insert(p.to_vec(), n.clone());
        }
        Ok(true)
    })?;
    let total: u64 = manifest.files.iter().map(|f| f.size).sum();
    let file = ExportFile {
        format: EXPORT_FORMAT.into(),
        version: 1,
        snapshot: sid.to_hex(),
        source: source.into(),
        exported: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        signed_manifest: signed.clone(),
    };
    let manifest_json = serde_json::to_vec_pretty(&file).expect("serializes");
    let mut rep = ExportReport {
        snapshot: sid.to_hex(),
        signer_fingerprint: fingerprint(
            &signed
                .verify()
                .map_err(|e| Error::corrupt("manifest", e))?
                .1,
        ),
        ..Default::default()
    };
    progress.phase("export", Some(total));
    // Streams one file's content, verifying every blob (keyed ID) and the whole (manifest hash).
    let stream = |f: &ManifestFile, out: &mut dyn Write| -> Result<()> {
        let node = nodes.get(&f.path_bytes()).ok_or_else(|| {
            Error::corrupt("manifest", format!("{} is not in the snapshot", f.path))
        })?;
        let mut h = blake3::Hasher::new();
        let mut buf = Vec::new();
        let zeros = [0u8; 65536];
        for p in &node.content {
            match p {
                Part::Blob(id) => {
                    reader.blob(id, BlobType::Data, &mut buf)?;
                    h.update(&buf);
                    out.write_all(&buf)?;
                    progress.add_bytes(buf.len() as u64);
                }
                Part::Hole { hole } => {
                    let mut left = *hole;
                    while left > 0 {
                        let k = left.min(zeros.len() as u64) as usize;
                        h.update(&zeros[..k]);
                        out.write_all(&zeros[..k])?;
                        left -= k as u64;
                    }
                }
            }
        }
        if h.finalize().to_hex().as_str() != f.blake3 {
            return Err(Error::corrupt(
                "manifest",
                format!("{}: content does not match the signed manifest", f.path),
            ));
        }
        Ok(())
    };
    match target {
        Target::Tar(path) => {
            let tmp = path.with_extension("tar.partial");
            let out = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            let mut tar = tar::Builder::new(std::io::BufWriter::new(out));
            let mut h = tar::Header::new_gnu();
            h.set_size(manifest_json.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(chrono::Utc::now().timestamp() as u64);
            h.set_cksum();
            tar.append_data(&mut h, "manifest.json", &manifest_json[..])
                .map_err(|e| Error::io(&tmp, e))?;
            for f in &manifest.files {
                let rel = rel_path(f)?;
                let mut data = Vec::with_capacity(f.size as usize);
                stream(f, &mut data)?;
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(f.mode & 0o7777);
                h.set_mtime(f.mtime_ns.div_euclid(1_000_000_000).max(0) as u64);
                h.set_cksum();
                tar.append_data(&mut h, Path::new("files").join(&rel), &data[..])
                    .map_err(|e| Error::io(&tmp, e))?;
                rep.files += 1;
                rep.written += 1;
                rep.bytes += f.size;
            }
            tar.into_inner()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        }
        Target::Dir(dir) | Target::Into(dir) => {
            let files_dir = dir.join("files");
            std::fs::create_dir_all(&files_dir).map_err(|e| Error::io(&files_dir, e))?;
            let mut keep: HashSet<PathBuf> = HashSet::new();
            for f in &manifest.files {
                let rel = rel_path(f)?;
                let p = files_dir.join(&rel);
                keep.insert(rel.clone());
                rep.files += 1;
                rep.bytes += f.size;
                if same_content(&p, f) {
                    rep.unchanged += 1;
                    progress.add_bytes(f.size);
                    continue;
                }
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                let tmp = p.with_file_name(format!(
                    ".{}.coop-partial",
                    p.file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default()
                ));
                {
                    let mut out = std::io::BufWriter::new(
                        std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?,
                    );
                    stream(f, &mut out)?;
                    out.flush().map_err(|e| Error::io(&tmp, e))?;
                }
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(f.mode & 0o7777))
                    .map_err(|e| Error::io(&tmp, e))?;
                let t = filetime::FileTime::from_unix_time(
                    f.mtime_ns.div_euclid(1_000_000_000),
                    f.mtime_ns.rem_euclid(1_000_000_000) as u32,
                );
                filetime::set_file_times(&tmp, t, t).map_err(|e| Error::io(&tmp, e))?;
                std::fs::rename(&tmp, &p).map_err(|e| Error::io(&p, e))?;
                rep.written += 1;
            }
            // Remove what the snapshot no longer has.
            for existing in list_files(&files_dir) {
                let rel = existing
                    .strip_prefix(&files_dir)
                    .expect("below")
                    .to_path_buf();
                if !keep.contains(&rel) {
                    std::fs::remove_file(&existing).map_err(|e| Error::io(&existing, e))?;
                    rep.removed += 1;
                }
            }
            let mpath = dir.join("manifest.json");
            std::fs::write(dir.join(".manifest.json.partial"), &manifest_json)
                .map_err(|e| Error::io(&mpath, e))?;
            std::fs::rename(dir.join(".manifest.json.partial"), &mpath)
                .map_err(|e| Error::io(&mpath, e))?;
        }
    }
    progress.finish();
    Ok(rep)
}

fn same_content(p: &Path, f: &ManifestFile) -> bool {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return false;
    };
    if !m.is_file() || m.len() != f.size {
        return false;
    }
    hash_file(p).is_ok_and(|h| h == f.blake3)
}

fn hash_file(p: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out
}

/// What `verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub snapshot: String,
    pub site: String,
    pub tenant: String,
    pub time: String,
    pub signer: String,
    pub signer_fingerprint: String,
    pub files_ok: u64,
    /// Every mismatch: changed, missing or extra files, signature or trust problems.
    pub problems: Vec<String>,
}

/// Verifies an export (tar file or directory) offline. `trust` pins the signing key (hex
/// public key or fingerprint).
pub fn verify(path: &Path, trust: Option<&str>) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    // Gather the manifest and (size, BLAKE3) of every file in the export.
    let mut found: HashMap<Vec<u8>, (u64, String)> = HashMap::new();
    let manifest_bytes: Vec<u8>;
    if path.is_dir() {
        manifest_bytes = std::fs::read(path.join("manifest.json"))
            .map_err(|e| Error::io(path.join("manifest.json"), e))?;
        let files_dir = path.join("files");
        for p in list_files(&files_dir) {
            let rel = p
                .strip_prefix(&files_dir)
                .expect("below")
                .as_os_str()
                .as_bytes()
                .to_vec();
            let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            found.insert(rel, (size, hash_file(&p).map_err(|e| Error::io(&p, e))?));
        }
        for p in list_files(path) {
            if !p.starts_with(&files_dir) && p != path.join("manifest.json") {
                rep.problems
                    .push(format!("extra file outside files/: {}", p.display()));
            }
        }
    } else {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut ar = tar::Archive::new(f);
        let mut m = None;
        for e in ar.entries().map_err(|e| Error::io(path, e))? {
            let mut e = e.map_err(|e| Error::io(path, e))?;
            let name = e.path_bytes().to_vec();
            if name == b"manifest.json" {
                let mut b = Vec::new();
                e.read_to_end(&mut b).map_err(|err| Error::io(path, err))?;
                m = Some(b);
            } else if let Some(rel) = name.strip_prefix(b"files/") {
                if e.header().entry_type().is_dir() {
                    continue;
                }
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut size = 0u64;
                loop {
                    let n = e.read(&mut buf).map_err(|err| Error::io(path, err))?;
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    h.update(&buf[..n]);
                }
                found.insert(rel.to_vec(), (size, h.finalize().to_hex().to_string()));
            } else if !e.header().entry_type().is_dir() {
                rep.problems.push(format!(
                    "extra entry outside files/: {}",
                    String::from_utf8_lossy(&name)
                ));
            }
        }
        manifest_bytes = m.ok_or_else(|| Error::Usage {
            what: format!("{} has no manifest.json: not a coop export", path.display()),
        })?;
    }
    let ef: ExportFile = serde_json::from_slice(&manifest_bytes).map_err(|e| Error::Usage {
        what: format!("manifest.json is not a coop export manifest: {e}"),
    })?;
    if ef.format != EXPORT_FORMAT || ef.version != 1 {
        return Err(Error::Usage {
            what: format!("unsupported export format {} v{}", ef.format, ef.version),
        });
    }
    rep.snapshot = ef.snapshot.clone();
    let (m, signer) = match ef.signed_manifest.verify() {
        Ok(x) => x,
        Err(e) => {
            rep.problems.push(format!("manifest: {e}"));
            return Ok(rep);
        }
    };
    rep.signer = hex::encode(signer);
    rep.signer_fingerprint = fingerprint(&signer);
    rep.site = m.site.clone();
    rep.tenant = m.tenant.clone();
    rep.time = m.time.clone();
    if let Some(t) = trust {
        let t = t.trim().to_ascii_lowercase();
        if t != rep.signer && t != rep.signer_fingerprint {
            rep.problems.push(format!(
                "manifest is signed by {} ({}), not by the trusted key {t}",
                rep.signer_fingerprint, rep.signer
            ));
        }
    }
    let mut expected: HashSet<Vec<u8>> = HashSet::new();
    for f in &m.files {
        let p = f.path_bytes();
        expected.insert(p.clone());
        match found.get(&p) {
            None => rep
                .problems
                .push(format!("missing: {}", String::from_utf8_lossy(&p))),
            Some((size, h)) if *size != f.size || *h != f.blake3 => rep.problems.push(format!(
                "changed: {} (size {size}, manifest says {})",
                String::from_utf8_lossy(&p),
                f.size
            )),
            Some(_) => rep.files_ok += 1,
        }
    }
    let mut extra: Vec<_> = found
        .keys()
        .filter(|k| !expected.contains(*k))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    extra.sort();
    rep.problems
        .extend(extra.into_iter().map(|e| format!("extra: {e}")));
    Ok(rep)
}
