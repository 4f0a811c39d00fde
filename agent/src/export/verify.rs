//! `coop verify`: an export against its signed manifest, offline, with no secret.
//!
//! Every listed file must be present where the manifest's layout puts it, with the listed
//! size and BLAKE3; nothing else may be there; the signature must hold (and, with `trust`,
//! be by the expected key); with `member` and `max_age` the export must be that member's and
//! recent enough. Tars are read with the strict reader of [`super::tarx`]. `extract` writes
//! the files while checking them, into a temporary directory beside the destination that is
//! renamed into place only when everything matched, so what a member keeps is what was
//! verified.

use super::seal::{check_seal, remember};
use super::tarx;
use super::{ExportFile, EXPORT_FORMAT};
use crate::error::{Error, Result};
use crate::fsx;
use coop_formats::manifest::{fingerprint, Manifest};
use serde::Serialize;
use std::collections::HashMap;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What to require of an export.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// The signing key (hex public key or fingerprint).
    pub trust: Option<String>,
    /// The member whose export it must be.
    pub member: Option<String>,
    /// How old the snapshot may be.
    pub max_age: Option<std::time::Duration>,
    /// Extract the verified files into this directory (which must not exist yet).
    pub extract: Option<PathBuf>,
    /// Where this verifier remembers, per tenant, the log entries and witnesses it saw in
    /// earlier exports (`None`: nothing is remembered or compared).
    pub memory: Option<PathBuf>,
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
    /// The key that sealed the export's log part (the tenant's signer, SPEC 16.3).
    pub seal_signer: String,
    /// The admin key that signed the writer list the witnesses and the quorum come from.
    pub admin_key: String,
    pub files_ok: u64,
    /// The other snapshots the export holds (the newest of each other job): ID and time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<(String, String)>,
    /// Where the verified files were extracted, if they were.
    pub extracted: Option<String>,
    /// The access log entries about this tenant the export carries, each proven.
    pub log: Vec<LogLine>,
    /// Every mismatch: changed, missing or extra files, signature or trust problems.
    pub problems: Vec<String>,
    /// What differs from earlier exports of this tenant verified here: log entries seen then
    /// and missing now, a log whose key changed, a changed witness list. An export made from a
    /// replica that lags behind also lacks newer entries; a log that lost entries it showed
    /// before is the sign of a hidden access.
    pub warnings: Vec<String>,
}

/// One proven access log entry, as `verify` shows it.
#[derive(Debug, Default, Serialize)]
pub struct LogLine {
    pub time: String,
    pub event: String,
    pub actor: String,
    pub actor_key: String,
    /// The admin person whose signature the entry carries (hex person key), if it verifies
    /// (SPEC 24.11): which admin caused it, where the log's own key is shared by all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    pub reason: Option<String>,
    pub log: String,
    pub index: u64,
    /// Witnesses whose cosignature on the proving checkpoint verifies.
    pub cosigned_by: Vec<String>,
}

/// BLAKE3 and length of everything `r` yields.
pub(super) fn hash_reader(r: &mut dyn Read) -> std::io::Result<(u64, String)> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, h.finalize().to_hex().to_string()))
}

/// The content of an export: `manifest.json` and (size, BLAKE3) per file under `files/`.
struct Found {
    manifest: Vec<u8>,
    files: HashMap<Vec<u8>, (u64, String)>,
    extra: Vec<String>,
}

/// Where extracted files go while they are checked.
struct Extractor {
    root: std::os::fd::OwnedFd,
    tmp: PathBuf,
}

impl Extractor {
    fn write(&self, rel: &[u8], r: &mut dyn Read) -> std::io::Result<(u64, String)> {
        let rel = Path::new(std::ffi::OsStr::from_bytes(rel));
        let mut dir = fsx::open_beneath(
            self.root.as_fd(),
            Path::new(""),
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
            0,
        )?;
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            match c {
                std::path::Component::Normal(n) => dir = fsx::make_dir_at(dir.as_fd(), n)?,
                _ => return Err(std::io::Error::other("a path that leaves the export")),
            }
        }
        let name = rel
            .file_name()
            .ok_or_else(|| std::io::Error::other("an entry without a file name"))?;
        let mut f = std::fs::File::from(fsx::create_file_at(dir.as_fd(), name)?);
        let mut tee = Tee { r, w: &mut f };
        hash_reader(&mut tee)
    }
}

struct Tee<'a> {
    r: &'a mut dyn Read,
    w: &'a mut std::fs::File,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let n = self.r.read(buf)?;
        self.w.write_all(&buf[..n])?;
        Ok(n)
    }
}

fn read_tar(path: &Path, ex: Option<&Extractor>) -> Result<Found> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut found = Found {
        manifest: Vec::new(),
        files: HashMap::new(),
        extra: Vec::new(),
    };
    let mut manifest = None;
    tarx::read_strict(std::io::BufReader::new(f), |e, r| {
        if e.name == b"manifest.json" {
            let mut b = Vec::new();
            r.take(16 << 20).read_to_end(&mut b)?;
            manifest = Some(b);
        } else if let Some(rel) = e.name.strip_prefix(b"files/") {
            let got = match ex {
                Some(x) => x.write(rel, r)?,
                None => hash_reader(r)?,
            };
            found.files.insert(rel.to_vec(), got);
        } else {
            found.extra.push(format!(
                "extra entry outside files/: {}",
                String::from_utf8_lossy(&e.name)
            ));
        }
        Ok(())
    })
    .map_err(|e| match e {
        tarx::TarError::Io(io) => Error::io(path, io),
        tarx::TarError::Refused(why) => Error::NotCoopExport {
            path: path.display().to_string(),
            why,
        },
    })?;
    found.manifest = manifest.ok_or_else(|| {
        Error::invalid(format!(
            "{} has no manifest.json: not a coop export",
            path.display()
        ))
    })?;
    Ok(found)
}

fn read_dir(path: &Path, ex: Option<&Extractor>) -> Result<Found> {
    let root = fsx::open_absolute(
        &std::path::absolute(path).map_err(|e| Error::io(path, e))?,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
    )
    .map_err(|e| Error::io(path, e))?;
    let mut found = Found {
        manifest: Vec::new(),
        files: HashMap::new(),
        extra: Vec::new(),
    };
    let mf = fsx::open_file_at(root.as_fd(), std::ffi::OsStr::new("manifest.json"))
        .map_err(|e| Error::io(path.join("manifest.json"), e))?;
    std::fs::File::from(mf)
        .take(16 << 20)
        .read_to_end(&mut found.manifest)
        .map_err(|e| Error::io(path.join("manifest.json"), e))?;
    for name in fsx::read_dir_names(root.as_fd()).map_err(|e| Error::io(path, e))? {
        if name != "manifest.json" && name != "files" && name != super::OWN_RECORD {
            found.extra.push(format!(
                "extra file outside files/: {}",
                path.join(&name).display()
            ));
        }
    }
    if let Ok(files) = fsx::open_dir_at(root.as_fd(), std::ffi::OsStr::new("files")) {
        walk(files.as_fd(), Vec::new(), &mut found, ex)
            .map_err(|e| Error::io(path.join("files"), e))?;
    }
    Ok(found)
}

fn walk(
    dir: std::os::fd::BorrowedFd<'_>,
    prefix: Vec<u8>,
    found: &mut Found,
    ex: Option<&Extractor>,
) -> std::io::Result<()> {
    for name in fsx::read_dir_names(dir)? {
        let mut rel = prefix.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let st = fsx::lstat_at(dir, &name)?;
        if st.is_dir() {
            let sub = fsx::open_dir_at(dir, &name)?;
            walk(sub.as_fd(), rel, found, ex)?;
        } else if st.is_file() {
            let mut f = std::fs::File::from(fsx::open_file_at(dir, &name)?);
            let got = match ex {
                Some(x) => x.write(&rel, &mut f)?,
                None => hash_reader(&mut f)?,
            };
            found.files.insert(rel, got);
        } else {
            found.extra.push(format!(
                "not a regular file: files/{}",
                String::from_utf8_lossy(&rel)
            ));
        }
    }
    Ok(())
}

/// Verifies an export (tar file or directory) offline.
pub fn verify(path: &Path, opts: &VerifyOptions) -> Result<VerifyReport> {
    let extractor = match &opts.extract {
        Some(dest) => {
            if dest.exists() {
                return Err(Error::invalid(format!(
                    "{} exists already; extract into a new directory",
                    dest.display()
                )));
            }
            let name = dest
                .file_name()
                .ok_or_else(|| Error::invalid("extract into a named directory"))?;
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(".coop-verify-{}", std::process::id()));
            let tmp = dest.with_file_name(tmp_name);
            let root = fsx::open_or_create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
            Some(Extractor { root, tmp })
        }
        None => None,
    };
    let res = verify_into(path, opts, extractor.as_ref());
    if let Some(x) = &extractor {
        let dest = opts.extract.as_ref().expect("set");
        match &res {
            Ok(rep) if rep.problems.is_empty() => {
                std::fs::rename(&x.tmp, dest).map_err(|e| Error::io(dest, e))?;
            }
            _ => {
                let _ = std::fs::remove_dir_all(&x.tmp);
            }
        }
    }
    let mut rep = res?;
    if rep.problems.is_empty() {
        rep.extracted = opts.extract.as_ref().map(|d| d.display().to_string());
    }
    Ok(rep)
}

fn verify_into(path: &Path, opts: &VerifyOptions, ex: Option<&Extractor>) -> Result<VerifyReport> {
    let mut rep = VerifyReport::default();
    let is_dir = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(path, e))?
        .is_dir();
    let found = if is_dir {
        read_dir(path, ex)?
    } else {
        read_tar(path, ex)?
    };
    rep.problems.extend(found.extra.iter().cloned());
    let ef: ExportFile = serde_json::from_slice(&found.manifest)
        .map_err(|e| Error::invalid(format!("manifest.json is not a coop export manifest: {e}")))?;
    if ef.format != EXPORT_FORMAT || ef.version != 1 {
        return Err(Error::invalid(format!(
            "unsupported export format {} v{}",
            ef.format, ef.version
        )));
    }
    rep.snapshot = ef.snapshot.clone();
    check_seal(&ef, &mut rep);
    check_log(&ef, &mut rep);
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
    check_required(opts, &m, &mut rep);
    if let Some(dir) = &opts.memory {
        remember(dir, &m.tenant, &ef, &mut rep);
    }
    let Some(manifests) = more_manifests(&ef, opts, m, &mut rep) else {
        return Ok(rep);
    };
    compare_files(&manifests, &found, &mut rep);
    Ok(rep)
}

/// Each log entry the export carries, with its proof against the witnesses' keys.
fn check_log(ef: &ExportFile, rep: &mut VerifyReport) {
    let witnesses: Vec<(String, [u8; 32])> = ef
        .witnesses
        .iter()
        .filter_map(|(n, k)| {
            let k: [u8; 32] = hex::decode(k).ok()?.try_into().ok()?;
            Some((n.clone(), k))
        })
        .collect();
    for p in &ef.log {
        match crate::log::verify_proven(p, &witnesses) {
            Ok(cosigned_by) => {
                let s = |k: &str| p.entry[k].as_str().map(str::to_string);
                // The leaf is the entry's exact bytes (checked above): its person signature.
                let person =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &p.leaf)
                        .ok()
                        .and_then(|b| coop_formats::tlog::Entry::decode(&b).ok())
                        .and_then(|e| match e.person() {
                            coop_formats::tlog::PersonCheck::Signed(k) => Some(hex::encode(k)),
                            _ => None,
                        });
                rep.log.push(LogLine {
                    person,
                    time: s("time").unwrap_or_default(),
                    event: s("event").unwrap_or_default(),
                    actor: s("actor_name").unwrap_or_default(),
                    actor_key: s("actor").unwrap_or_default(),
                    reason: s("reason"),
                    log: p.origin.clone(),
                    index: p.index,
                    cosigned_by,
                })
            }
            Err(e) => rep.problems.push(format!(
                "log entry {} of {}: its proof does not verify ({e})",
                p.index, p.origin
            )),
        }
    }
}

/// What the options require: the trusted signer, the member, the age.
fn check_required(opts: &VerifyOptions, m: &Manifest, rep: &mut VerifyReport) {
    if let Some(t) = &opts.trust {
        let t = t.trim().to_ascii_lowercase();
        if t != rep.signer && t != rep.signer_fingerprint {
            rep.problems.push(format!(
                "manifest is signed by {} ({}), not by the trusted key {t}",
                rep.signer_fingerprint, rep.signer
            ));
        }
    }
    if let Some(member) = &opts.member {
        if m.tenant != format!("member/{member}") {
            rep.problems.push(format!(
                "this is an export of {}, not of member/{member}",
                m.tenant
            ));
        }
    }
    if let Some(max) = opts.max_age {
        match chrono::DateTime::parse_from_rfc3339(&m.time) {
            Ok(t) => {
                let age = chrono::Utc::now().signed_duration_since(t);
                if age.to_std().is_ok_and(|a| a > max) {
                    rep.problems.push(format!(
                        "the snapshot was taken {} ago, more than the {} allowed",
                        humantime::format_duration(std::time::Duration::from_secs(
                            age.num_seconds().max(0) as u64
                        )),
                        humantime::format_duration(max)
                    ));
                }
            }
            Err(e) => rep.problems.push(format!(
                "the manifest's time {:?} is not a time: {e}",
                m.time
            )),
        }
    }
}

/// The manifests of the export: its snapshot's and the other jobs' snapshots', each signed
/// by a writer of the same tenant (and, with `trust`, by the trusted key). `None`: one of
/// them does not verify (a problem in `rep`).
fn more_manifests(
    ef: &ExportFile,
    opts: &VerifyOptions,
    m: Manifest,
    rep: &mut VerifyReport,
) -> Option<Vec<Manifest>> {
    let mut manifests = vec![m];
    for x in &ef.more {
        match x.signed_manifest.verify() {
            Ok((mm, s)) => {
                let fp = fingerprint(&s);
                if mm.tenant != manifests[0].tenant {
                    rep.problems.push(format!(
                        "snapshot {}: a manifest of {}, not of {}",
                        x.snapshot, mm.tenant, manifests[0].tenant
                    ));
                }
                if let Some(t) = &opts.trust {
                    let t = t.trim().to_ascii_lowercase();
                    if t != hex::encode(s) && t != fp {
                        rep.problems.push(format!(
                            "snapshot {}: manifest signed by {fp}, not by the trusted key {t}",
                            x.snapshot
                        ));
                    }
                }
                rep.more.push((x.snapshot.clone(), mm.time.clone()));
                manifests.push(mm);
            }
            Err(e) => {
                rep.problems
                    .push(format!("manifest of snapshot {}: {e}", x.snapshot));
                return None;
            }
        }
    }
    Some(manifests)
}

/// Every file the manifests' layout puts somewhere must be there, as listed; nothing else may.
fn compare_files(manifests: &[Manifest], found: &Found, rep: &mut VerifyReport) {
    let mut listed = std::collections::HashSet::new();
    let layout = super::export_layout(manifests);
    let expected = layout
        .iter()
        .enumerate()
        .flat_map(|(i, files)| files.iter().map(move |(j, p)| (i, *j, p)));
    for (i, j, p) in expected {
        let f = &manifests[i].files[j];
        listed.insert(p.clone());
        match found.files.get(p) {
            None => rep
                .problems
                .push(format!("missing: {}", String::from_utf8_lossy(p))),
            Some((size, h)) if *size != f.size || *h != f.blake3 => rep.problems.push(format!(
                "changed: {} (size {size}, manifest says {})",
                String::from_utf8_lossy(p),
                f.size
            )),
            Some(_) => rep.files_ok += 1,
        }
    }
    let mut extra: Vec<_> = found
        .files
        .keys()
        .filter(|k| !listed.contains(*k))
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    extra.sort();
    rep.problems
        .extend(extra.into_iter().map(|e| format!("extra: {e}")));
}
