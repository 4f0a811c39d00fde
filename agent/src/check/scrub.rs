//! `scrub`: every object's name against its bytes, with no key at all.

use crate::error::{Error, Result};
use crate::layout::{self, Kind, ObjectPath};
use crate::progress::Progress;
use coop_formats::id::Id;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default, Serialize)]
pub struct ScrubReport {
    pub objects: usize,
    pub bytes: u64,
    /// Full store paths of objects whose bytes do not hash to their name.
    pub bad: Vec<String>,
    /// Paths that are not well-formed object paths (leftover temporary files, strays).
    pub unexpected: Vec<String>,
}

/// Whether stored bytes are a well-formed object of their path's kind and tenant: the name
/// is their BLAKE3 and the header carries the kind's type and the path's tenant tag. These
/// checks need no key; `replicate` copies nothing that fails them.
pub fn object_ok(p: &ObjectPath, bytes: &[u8]) -> Result<(), String> {
    if Id::of_stored(bytes) != p.name {
        return Err("its bytes do not match its name".into());
    }
    let h = coop_formats::envelope::Header::decode_expect(bytes, p.kind.object_type())
        .map_err(|e| e.to_string())?;
    if h.tenant != p.tag {
        return Err("its header names another tenant than its path".into());
    }
    Ok(())
}

/// Checks, without any key, that every object's name is the BLAKE3 of its bytes.
pub fn scrub(store: &crate::store::Store, progress: &dyn Progress) -> Result<ScrubReport> {
    let mut objects = Vec::new();
    for kind in Kind::ALL {
        objects.extend(store.list(kind.dir())?);
    }
    let total: u64 = objects.iter().map(|o| o.size).sum();
    progress.phase("scrub", Some(total));
    let next = AtomicUsize::new(0);
    let report = Mutex::new(ScrubReport {
        objects: objects.len(),
        bytes: total,
        ..Default::default()
    });
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(o) = objects.get(i) else { break };
                let Some(p) = ObjectPath::parse(&o.path) else {
                    report.lock().expect("lock").unexpected.push(o.path.clone());
                    continue;
                };
                let mut b = Vec::new();
                match store.get_into(&o.path, &mut b, p.kind.max_stored()) {
                    Ok(()) => {
                        if let Err(why) = object_ok(&p, &b) {
                            report
                                .lock()
                                .expect("lock")
                                .bad
                                .push(format!("{} ({why})", o.path));
                        }
                    }
                    Err(e) if e.is_not_found() => {} // removed meanwhile (a lock)
                    Err(e) if e.is_too_large() => {
                        report
                            .lock()
                            .expect("lock")
                            .bad
                            .push(format!("{} ({e})", o.path));
                    }
                    Err(e) => {
                        failure.lock().expect("lock").get_or_insert(e.into());
                    }
                }
                progress.add_bytes(o.size);
            });
        }
    });
    progress.finish();
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let mut r = report.into_inner().expect("lock");
    r.bad.sort();
    r.unexpected.sort();
    // The config has a fixed name: check that it at least decodes.
    if let Err(e) = store
        .get(layout::CONFIG)
        .map_err(Error::from)
        .and_then(|b| {
            coop_formats::config::Config::decode(&b).map_err(|e| Error::damaged(layout::CONFIG, e))
        })
    {
        r.bad.push(format!("config ({e})"));
    }
    Ok(r)
}
