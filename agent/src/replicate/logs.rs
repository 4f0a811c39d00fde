//! The access logs and the admins' recovery shares: objects whose names are not hashes,
//! copied verbatim under their own keyless checks.

use super::*;

/// Compares the two sides' access logs as copies of one repository (with the source's admin
/// keys: whose logs count) and carries what one side lacks to the other, both ways, checked:
/// a log whose key signed two histories (one copy holding one, the other another) is a fork,
/// reported and not copied; fork evidence goes into both copies (SPEC 24.10). Returns the log
/// ids that forked. Without admin keys, or on a target that holds no repository yet, only
/// the keyless comparison of [`logs`] runs.
pub(super) fn compare_logs(
    from: &Store,
    to: &Store,
    opts: &ReplicateOptions,
    rep: &mut ReplicateReport,
) -> Result<HashSet<String>> {
    let Some(admin_keys) = &opts.admin_keys else {
        return Ok(HashSet::new());
    };
    let open = |s: &Store| {
        crate::repo::Repo::open_store(s.clone()).map(|mut r| {
            r.cache_dir = opts.cache_dir.clone();
            r
        })
    };
    let (source, target) = match (open(from), open(to)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok(HashSet::new()),
    };
    // A comparison that cannot run (a store error, no writer list to say whose logs count)
    // leaves the keyless copy below to do its part, with a warning.
    let g = match crate::writers::log_trust(&source, admin_keys)
        .and_then(|t| crate::log::gossip(&source, &target, &t, !opts.check_only))
    {
        Ok(g) => g,
        Err(e) => {
            rep.warnings.push(format!(
                "the access logs of the two sides could not be compared ({}); copied by name only",
                crate::error::chain(&e)
            ));
            return Ok(HashSet::new());
        }
    };
    rep.log_forks.extend(g.forks);
    rep.warnings.extend(g.notes);
    rep.log_objects += g.copied;
    rep.copied_objects += g.copied;
    Ok(g.forked.into_iter().collect())
}

/// The access logs: copied verbatim (their objects are named by position, not by hash, and
/// never rewritten), a name holding other bytes on the other side is fork evidence and left
/// alone, and witnesses' cosignatures found on the target come back to the source, where the
/// log's writer waits for them.
pub(super) fn logs(
    from: &Store,
    to: &Store,
    check_only: bool,
    forked: &HashSet<String>,
    rep: &mut ReplicateReport,
) -> Result<()> {
    let (src, dst) = log_listings(from, to, rep)?;
    let is_checkpoint = |p: &str| p.split('/').nth(2) == Some("checkpoint");
    let is_cosig = |p: &str| p.split('/').nth(2) == Some("cosignature");
    // Each log's newest checkpoint at the target: entry bundles past it authenticate nothing
    // there (a crashed append's leftovers), and the source's newer ones replace them.
    let mut dst_head: HashMap<&str, u64> = HashMap::new();
    for p in dst.keys().filter(|p| is_checkpoint(p)) {
        let (Some(id), Some(n)) = (p.split('/').nth(1), p.rsplit('/').next()) else {
            continue;
        };
        let n = n.parse::<u64>().unwrap_or(0);
        let h = dst_head.entry(id).or_default();
        *h = (*h).max(n);
    }
    let past_head = |p: &str| {
        let id = p.split('/').nth(1).unwrap_or_default();
        crate::log::bundle_end(p).is_some_and(|end| end > dst_head.get(id).copied().unwrap_or(0))
    };
    // Entries before the checkpoints that cover them, cosignatures last: a stop halfway
    // leaves no checkpoint without its entries.
    let of_forked = |p: &str| p.split('/').nth(1).is_some_and(|id| forked.contains(id));
    let is_fork = |p: &str| p.split('/').nth(2) == Some("fork");
    // A pending append goes only where its source still lacks its bundle (SPEC 24.2).
    let needed = |p: &str| crate::log::pending_bundle(p).is_none_or(|b| !src.contains_key(&b));
    let mut paths: Vec<&String> = src
        .keys()
        .filter(|p| (!of_forked(p) || is_fork(p)) && needed(p))
        .collect();
    paths.sort_by_key(|p| {
        (
            p.split('/').nth(1),
            !p.contains("/entries/"),
            is_cosig(p),
            *p,
        )
    });
    for p in paths {
        match dst.get(p) {
            Some(_) if past_head(p) && !check_only && from.get(p)? != to.get(p)? => {
                to.put_replace(p, from.get(p)?.to_vec())?;
                rep.log_objects += 1;
                rep.copied_objects += 1;
                rep.copied_bytes += src[p];
            }
            Some(size) if *size != src[p] => rep
                .log_forks
                .push(format!("{p}: {} bytes here, {size} there", src[p])),
            Some(_) if is_checkpoint(p) => {
                if from.get(p)? != to.get(p)? {
                    rep.log_forks
                        .push(format!("{p}: two different checkpoints of one size"));
                }
            }
            Some(_) => {}
            None => {
                rep.missing_objects += 1;
                rep.missing_bytes += src[p];
                if !check_only {
                    let b = match from.get(p) {
                        Ok(b) => b,
                        Err(e) if e.is_not_found() => continue,
                        Err(e) => return Err(e.into()),
                    };
                    to.put(p, b)?;
                    rep.log_objects += 1;
                    rep.copied_objects += 1;
                    rep.copied_bytes += src[p];
                }
            }
        }
    }
    if check_only {
        return Ok(());
    }
    let back: Vec<&String> = dst
        .keys()
        .filter(|p| (is_cosig(p) && !of_forked(p) || is_fork(p)) && !src.contains_key(*p))
        .collect();
    return_cosignatures(from, to, back, rep)?;
    Ok(())
}

/// The log objects of both sides: only well-formed log objects of a size their kind may have
/// travel, either way; junk under `log/` (or a huge "cosignature") stays where it was put.
#[allow(clippy::type_complexity)]
fn log_listings(
    from: &Store,
    to: &Store,
    rep: &mut ReplicateReport,
) -> Result<(HashMap<String, u64>, HashMap<String, u64>)> {
    let mut junk = 0u64;
    let mut wanted = |l: crate::store::Listed| {
        if crate::log::is_log_object(&l.path, l.size) {
            Some((l.path, l.size))
        } else {
            junk += 1;
            None
        }
    };
    let src: HashMap<String, u64> = from
        .list("log")?
        .into_iter()
        .filter_map(&mut wanted)
        .collect();
    let dst: HashMap<String, u64> = to
        .list("log")?
        .into_iter()
        .filter_map(&mut wanted)
        .collect();
    if junk > 0 {
        rep.warnings.push(format!(
            "{junk} object(s) under log/ are no log object (wrong name or size): not copied"
        ));
    }
    Ok((src, dst))
}

/// Brings the witnesses' cosignatures (and fork objects) the target holds back to the
/// source, where the log's writer waits for them.
fn return_cosignatures(
    from: &Store,
    to: &Store,
    mut back: Vec<&String>,
    rep: &mut ReplicateReport,
) -> Result<()> {
    back.sort();
    for p in back {
        let b = to.get(p)?;
        match from.put(p, b) {
            Ok(()) => rep.cosignatures_returned += 1,
            Err(e) => {
                rep.warnings.push(format!(
                    "cannot bring the witnesses' cosignatures back to {} ({e}); the log's writer \
                     will not see them there",
                    from.url()
                ));
                break;
            }
        }
    }
    Ok(())
}

/// The largest recovery share replicate copies (a share file is a few hundred bytes; recovery
/// reads at most 64 KiB of one).
const MAX_SHARE: u64 = 1 << 16;

/// Whether `path` has the shape of a recovery share (`recovery/<epoch>/<slot>/<admin>`, epoch
/// and slot 16 hex digits each, SPEC 25) and a share's size: the keyless checks a share can
/// get, since its name is no hash and its content is encrypted to its admin.
pub(super) fn is_recovery_share(path: &str, size: u64) -> bool {
    let mut parts = path.split('/');
    let (Some("recovery"), Some(epoch), Some(slot), Some(admin), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    coop_formats::recovery::is_hex16(epoch)
        && coop_formats::recovery::is_hex16(slot)
        && !admin.is_empty()
        && admin.len() <= 255
        && admin
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && admin != "."
        && admin != ".."
        && size > 0
        && size <= MAX_SHARE
}

/// The admins' recovery shares (SPEC 25): a recovery on a replica needs them. Copied verbatim
/// and never overwritten; each must look like an age file. A name holding other bytes at the
/// target is refused and reported (someone wrote a share there that the source does not have).
pub(super) fn recovery_shares(
    from: &Store,
    to: &Store,
    check_only: bool,
    rep: &mut ReplicateReport,
) -> Result<()> {
    let mut junk = 0u64;
    let mut wanted = |l: crate::store::Listed| {
        if is_recovery_share(&l.path, l.size) {
            Some((l.path, l.size))
        } else {
            junk += 1;
            None
        }
    };
    let src: HashMap<String, u64> = from
        .list("recovery")?
        .into_iter()
        .filter_map(&mut wanted)
        .collect();
    let dst: HashMap<String, u64> = to
        .list("recovery")?
        .into_iter()
        .filter_map(&mut wanted)
        .collect();
    if junk > 0 {
        rep.warnings.push(format!(
            "{junk} object(s) under recovery/ are no recovery share (wrong name or size): not \
             copied"
        ));
    }
    let mut paths: Vec<&String> = src.keys().collect();
    paths.sort();
    for p in paths {
        match dst.get(p) {
            Some(size) if *size != src[p] => rep.refused.push(format!(
                "{p}: {} bytes at the source, another share of {size} bytes at the target; \
                 not overwritten",
                src[p]
            )),
            Some(_) => {}
            None => {
                rep.missing_objects += 1;
                rep.missing_bytes += src[p];
                if check_only {
                    continue;
                }
                let b = match from.get(p) {
                    Ok(b) => b,
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                if !b.starts_with(b"age-encryption.org/v1\n") {
                    rep.refused.push(format!(
                        "{p}: not an age file; not copied: delete it at the source"
                    ));
                    continue;
                }
                let n = b.len() as u64;
                to.put(p, b)?;
                rep.recovery_objects += 1;
                rep.copied_objects += 1;
                rep.copied_bytes += n;
            }
        }
    }
    Ok(())
}
