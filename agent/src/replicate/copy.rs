//! Copying objects: in parallel at one pace for all (the upload limit), each verified by its
//! name and the keyless checks `scrub` makes before it is written, with counts and the
//! refused and failed paths kept for the report.

use super::*;

/// Copies objects in parallel, at one pace for all, and keeps count.
pub(super) struct Copier<'a> {
    from: &'a Store,
    to: &'a Store,
    parallel: usize,
    progress: &'a dyn Progress,
    /// One limit for all parallel copies: the rate the line gets.
    pace: Option<Pace>,
    copied_objects: AtomicU64,
    copied_bytes: AtomicU64,
    pub(super) refused: Mutex<Vec<String>>,
    pub(super) failed: Mutex<Vec<String>>,
    /// Objects that are on the target after their copy (or were already).
    pub(super) landed: Mutex<HashSet<String>>,
    /// Objects refused as junk: no reader needs them, so they hold no snapshot back.
    pub(super) junk: Mutex<HashSet<String>>,
}

impl<'a> Copier<'a> {
    pub(super) fn new(
        from: &'a Store,
        to: &'a Store,
        opts: &ReplicateOptions,
        progress: &'a dyn Progress,
    ) -> Self {
        Self {
            from,
            to,
            parallel: opts.parallel,
            progress,
            pace: opts.limit.map(Pace::new),
            copied_objects: AtomicU64::new(0),
            copied_bytes: AtomicU64::new(0),
            refused: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            landed: Mutex::new(HashSet::new()),
            junk: Mutex::new(HashSet::new()),
        }
    }

    pub(super) fn copy_all(&self, list: &[String]) {
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..self.parallel.max(1) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = list.get(i) else { break };
                    self.copy(path);
                    crate::fault::point("replicate:after-copy");
                });
            }
        });
    }

    fn copy(&self, path: &str) {
        match copy_one(self.from, self.to, path, self.pace.as_ref()) {
            Ok(CopyResult::Copied(n)) => {
                self.copied_objects.fetch_add(1, Ordering::Relaxed);
                self.copied_bytes.fetch_add(n, Ordering::Relaxed);
                self.landed.lock().expect("lock").insert(path.to_string());
                self.progress.add_bytes(n);
            }
            Ok(CopyResult::Refused(why)) => self
                .refused
                .lock()
                .expect("lock")
                .push(format!("{path}: {why}")),
            Ok(CopyResult::Junk(why)) => {
                self.refused
                    .lock()
                    .expect("lock")
                    .push(format!("{path}: {why}"));
                self.junk.lock().expect("lock").insert(path.to_string());
            }
            Ok(CopyResult::Vanished) => {}
            Err(e) => self
                .failed
                .lock()
                .expect("lock")
                .push(format!("{path}: {e}")),
        }
    }

    /// The snapshots, with their inventories, read from the source and checked against
    /// their names.
    pub(super) fn read_snapshots(&self, paths: &[(&String, u64)]) -> Vec<Pending> {
        let mut pending = Vec::new();
        for (path, _) in paths {
            match self.from.get(path) {
                Ok(bytes) => {
                    let op = ObjectPath::parse(path);
                    if op.as_ref().map(|o| o.name) != Some(Id::of_stored(&bytes)) {
                        self.refused.lock().expect("lock").push(format!(
                            "{path}: bytes do not match the name (corrupt at the source); not copied"
                        ));
                        continue;
                    }
                    // The keyless checks every other object gets (magic, header, kind,
                    // tenant): a snapshot of another tenant's header is junk here, and its
                    // inventory must not count for what this target keeps.
                    if let Some(Err(why)) = op.map(|o| crate::check::scrub::object_ok(&o, &bytes)) {
                        self.refused.lock().expect("lock").push(format!(
                            "{path}: not a coop object ({why}); not copied: delete it at the source"
                        ));
                        continue;
                    }
                    match needs(&bytes) {
                        Ok(needs) => pending.push(Pending {
                            path: (*path).clone(),
                            bytes,
                            needs,
                        }),
                        Err(why) => self
                            .refused
                            .lock()
                            .expect("lock")
                            .push(format!("{path}: unreadable inventory ({why}); not copied")),
                    }
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => self
                    .failed
                    .lock()
                    .expect("lock")
                    .push(format!("{path}: {e}")),
            }
        }
        pending
    }

    /// Inventory objects the source's listing did not show: fetched by name. Returns them.
    pub(super) fn fetch_unlisted(
        &self,
        src: &HashMap<String, u64>,
        dst: &HashMap<String, u64>,
        pending: &[Pending],
        rep: &mut ReplicateReport,
    ) -> Vec<String> {
        let unlisted: BTreeSet<String> = pending
            .iter()
            .flat_map(|p| p.needs.iter())
            .filter(|n| !dst.contains_key(*n) && !src.contains_key(*n))
            .cloned()
            .collect();
        let unlisted: Vec<String> = unlisted.into_iter().collect();
        let before = self.landed.lock().expect("lock").len();
        self.copy_all(&unlisted);
        rep.unlisted_found = (self.landed.lock().expect("lock").len() - before) as u64;
        if rep.unlisted_found > 0 {
            rep.warnings.push(format!(
                "the source's listing left out {} object(s) that its snapshots need; they were \
                 fetched by name and copied (a store whose listings are incomplete is unreliable: \
                 check it)",
                rep.unlisted_found
            ));
        }
        unlisted
    }

    /// The counts and lists into the report.
    pub(super) fn into_report(self, rep: &mut ReplicateReport) {
        rep.copied_objects += self.copied_objects.into_inner();
        rep.copied_bytes += self.copied_bytes.into_inner();
        rep.refused.extend(self.refused.into_inner().expect("lock"));
        rep.failed = self.failed.into_inner().expect("lock");
    }
}

enum CopyResult {
    Copied(u64),
    Refused(String),
    /// Stored as named, but no coop object (junk): refused, and holds nothing back.
    Junk(String),
    /// Deleted at the source since the listing (a prune): nothing to copy.
    Vanished,
}

fn copy_one(from: &Store, to: &Store, path: &str, pace: Option<&Pace>) -> Result<CopyResult> {
    let Some(op) = ObjectPath::parse(path) else {
        return Ok(CopyResult::Refused("not a coop object name".into()));
    };
    let bytes = match from.get(path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(CopyResult::Vanished),
        Err(e) => return Err(e.into()),
    };
    if Id::of_stored(&bytes) != op.name {
        return Ok(CopyResult::Refused(
            "bytes do not match the name (corrupt at the source); not copied".into(),
        ));
    }
    // The keyless checks `scrub` makes (magic, header, kind, tenant): junk is not spread.
    if let Err(why) = crate::check::scrub::object_ok(&op, &bytes) {
        return Ok(CopyResult::Junk(format!(
            "not a coop object ({why}); not copied: delete it at the source"
        )));
    }
    let n = bytes.len() as u64;
    let slot = pace.map(|p| p.reserve(n));
    if let Some((start, _)) = slot {
        sleep_until(start);
    }
    to.put(path, bytes)?;
    if let Some((_, end)) = slot {
        sleep_until(end);
    }
    Ok(CopyResult::Copied(n))
}
