//! Gossip between copies of one repository (SPEC section 24.10).
//!
//! A storage site can show two parties two branches of one log, each consistent on its own
//! (a split view). Whoever reaches two copies of a repository compares every trusted log
//! there: every checkpoint that verifies under the log's key, on either side, must be a prefix
//! of the longer side's tree. One that is not proves that the log's key signed two histories:
//! a **fork**. The comparer raises the alarm, keeps both signed checkpoints in its cache (for a
//! human to show), and writes into each copy a `fork/` object that proves the fork to anyone
//! who holds that copy's entries: its witnesses stop cosigning, its `log verify` reports it.
//! Where the copies agree, what one lacks is carried from the other, both ways: entries,
//! checkpoints, cosignatures that verify for a trusted witness, and fork objects that verify
//! under the log's key. A cosignature made at one site thus reaches another without passing
//! through the source, and survivors of a lost site carry each other's entries.

use super::fork::{keep_evidence, ForkEvidence, Prefix, FORK_TYPE};
use super::{leaves, newest_verified, prefix, stored, Stored, Trusted};
use crate::error::{Error, Result};
use crate::repo::Repo;
use coop_formats::tlog::{self, Checkpoint, Hash, Levels};
use std::collections::BTreeMap;

/// What [`gossip`] did between two copies.
#[derive(Debug, Default, serde::Serialize)]
pub struct GossipReport {
    /// Forks found (the log's key signed two histories): the alarm, with where the
    /// evidence was kept.
    pub forks: Vec<String>,
    /// The log ids of those forks.
    pub forked: Vec<String>,
    /// Log objects copied (either way).
    pub copied: u64,
    /// Of them, cosignatures.
    pub cosignatures: u64,
    /// What could not be compared (a damaged copy), or was ignored.
    pub notes: Vec<String>,
}

/// One copy of one log, as far as it verifies.
struct Side<'a> {
    repo: &'a Repo,
    s: Stored,
    /// Entries `0..head` (the newest checkpoint that verifies covers them).
    entries: Vec<Vec<u8>>,
    /// Every checkpoint up to the head that verifies under the owner's key: size → (note,
    /// checkpoint).
    signed: BTreeMap<u64, (Vec<u8>, Checkpoint)>,
}

impl Side<'_> {
    fn size(&self) -> u64 {
        self.entries.len() as u64
    }
    fn url(&self) -> &str {
        self.repo.store.url()
    }
    /// The checkpoint of `size` with its cosignature lines, as a human reads it.
    fn note_with_cosignatures(&self, size: u64) -> Vec<u8> {
        let mut n = self
            .signed
            .get(&size)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        for l in self
            .s
            .cosignatures
            .get(&size)
            .into_iter()
            .flat_map(|m| m.values())
        {
            n.extend_from_slice(l);
        }
        n
    }
}

fn side<'a>(
    repo: &'a Repo,
    id: &str,
    origin: &str,
    key: &[u8; 32],
) -> Result<std::result::Result<Side<'a>, String>> {
    let s = stored(repo, id)?;
    let Some(head) = newest_verified(&s, key, origin) else {
        return Ok(Ok(Side {
            repo,
            s,
            entries: Vec::new(),
            signed: BTreeMap::new(),
        }));
    };
    let entries = match super::entries_for(repo, &s, head.size, &head.root) {
        Ok(e) => e,
        Err(e) => return Ok(Err(crate::error::chain(&e))),
    };
    if tlog::root(&leaves(&entries)) != head.root {
        return Ok(Err(format!(
            "{}/checkpoint/{}: the entries do not hash to it",
            prefix(id),
            head.size
        )));
    }
    let signed = s
        .checkpoints
        .range(..=head.size)
        .filter_map(|(&sz, note)| {
            let cp = tlog::open_checkpoint(note, key).ok()?;
            (cp.origin == origin && cp.size == sz).then(|| (sz, (note.clone(), cp)))
        })
        .collect();
    Ok(Ok(Side {
        repo,
        s,
        entries,
        signed,
    }))
}

/// Whether the listings of one log are the same on both sides and the newest checkpoints hold
/// the same bytes: nothing to carry, and each side's own check covers the rest.
fn same(a: &Repo, b: &Repo, id: &str) -> Result<bool> {
    let names = |r: &Repo| -> Result<BTreeMap<String, u64>> {
        Ok(r.store
            .list(&prefix(id))?
            .into_iter()
            .filter(|o| super::is_log_object(&o.path, o.size))
            .map(|o| (o.path, o.size))
            .collect())
    };
    let (na, nb) = (names(a)?, names(b)?);
    if na != nb {
        return Ok(false);
    }
    let newest = na
        .keys()
        .filter_map(|p| {
            p.strip_prefix(&format!("{}/checkpoint/", prefix(id)))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .max();
    let Some(n) = newest else { return Ok(true) };
    let p = format!("{}/checkpoint/{n}", prefix(id));
    Ok(a.store.get(&p)? == b.store.get(&p)?)
}

/// Compares every trusted log of two copies of one repository and, with `write`, carries
/// what one lacks to the other (see the module docs). Fork objects are written only with
/// `write`; the alarm and the evidence in the cache are raised either way.
pub fn gossip(a: &Repo, b: &Repo, trusted: &Trusted, write: bool) -> Result<GossipReport> {
    if a.config.repo_id != b.config.repo_id {
        return Err(Error::invalid(format!(
            "{} and {} hold different repositories",
            a.store.url(),
            b.store.url()
        )));
    }
    let mut rep = GossipReport::default();
    let by_id = trusted.by_id();
    let mut ids = super::log_ids(a)?;
    ids.extend(super::log_ids(b)?);
    ids.sort();
    ids.dedup();
    for id in ids {
        let Some((origin, owner)) = by_id.get(&id) else {
            continue;
        };
        gossip_log(a, b, trusted, write, &id, (origin, owner), &mut rep)?;
    }
    Ok(rep)
}

/// Compares one log's two copies and carries what one lacks to the other (see [`gossip`]).
fn gossip_log(
    a: &Repo,
    b: &Repo,
    trusted: &Trusted,
    write: bool,
    id: &str,
    (origin, owner): (&String, &super::trust::LogOwner),
    rep: &mut GossipReport,
) -> Result<()> {
    if same(a, b, id)? {
        return Ok(());
    }
    let key = owner.key;
    let (sa, sb) = (side(a, id, origin, &key)?, side(b, id, origin, &key)?);
    let (sa, sb) = match (sa, sb) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => {
            rep.notes.push(format!(
                "the log {origin} is damaged at one copy, not compared: {e}"
            ));
            return Ok(());
        }
    };
    let (long, short) = if sa.size() >= sb.size() {
        (&sa, &sb)
    } else {
        (&sb, &sa)
    };
    let hashes = leaves(&long.entries);
    let tree = Levels::new(&hashes);
    // Every checkpoint either side's key signed must be a prefix of the longer tree.
    let conflict = short
        .signed
        .values()
        .map(|c| (short, c))
        .chain(long.signed.values().map(|c| (long, c)))
        .find(|(_, (_, cp))| tree.root(cp.size as usize) != cp.root);
    // Fork objects either side holds, checked against the longer tree.
    let proven = long
        .s
        .forks
        .values()
        .chain(short.s.forks.values())
        .filter_map(|b| ForkEvidence::decode(b))
        .find_map(|e| e.check(&key, origin, &tree).ok().flatten().map(|w| (e, w)));
    if let Some((at, (note, cp))) = conflict {
        // `at` signed `cp`; the longer side's entries (under its head) say otherwise.
        let here = short.note_with_cosignatures(short.size());
        let there = long.note_with_cosignatures(long.size());
        let kept = keep_evidence(a, id, (short.url(), &here), (long.url(), &there));
        rep.forked.push(id.to_string());
        rep.forks.push(format!(
            "FORK: the log {origin}: {} holds a checkpoint of {} entries that the {} entries \
             at {} do not contain; the log's key signed two histories{}",
            at.url(),
            cp.size,
            long.size(),
            long.url(),
            kept.map(|p| format!(" (both kept in {})", p.display()))
                .unwrap_or_default()
        ));
        if write {
            write_evidence(long, short, id, at, note, cp, &there, &hashes, &tree, rep);
        }
        return Ok(());
    }
    if let Some((_, why)) = proven {
        rep.forked.push(id.to_string());
        rep.forks.push(format!(
            "{why} (a fork object at {} or {})",
            a.store.url(),
            b.store.url()
        ));
    }
    if !write {
        return Ok(());
    }
    carry_both(&sa, &sb, trusted, &key, id, origin, rep);
    Ok(())
}

/// Writes the evidence of a fork into both copies: into the longer one the conflicting
/// checkpoint `at` signed (its size is within it), into the shorter one the longer head with
/// a consistency proof from the shorter copy's size, so that its holders can check it.
#[allow(clippy::too_many_arguments)]
fn write_evidence(
    long: &Side,
    short: &Side,
    id: &str,
    at: &Side,
    note: &[u8],
    cp: &Checkpoint,
    there: &[u8],
    hashes: &[Hash],
    tree: &Levels,
    rep: &mut GossipReport,
) {
    let mut put = |r: &Repo, e: ForkEvidence| {
        if let Err(err) = put_evidence(r, id, &e) {
            rep.notes.push(format!(
                "cannot write the fork evidence to {}: {}",
                r.store.url(),
                crate::error::chain(&err)
            ));
        }
    };
    // Into the longer copy: the conflicting checkpoint (its size is within it).
    let mut to_long = note.to_vec();
    if let Some(l) = at.s.cosignatures.get(&cp.size) {
        l.values().for_each(|x| to_long.extend_from_slice(x));
    }
    put(
        long.repo,
        ForkEvidence {
            ty: FORK_TYPE.into(),
            checkpoint: String::from_utf8_lossy(&to_long).into_owned(),
            prefix: None,
        },
    );
    // Into the shorter copy: the longer head, with a consistency proof from the
    // shorter copy's size, so that its holders can check it.
    let m = short.size();
    put(
        short.repo,
        ForkEvidence {
            ty: FORK_TYPE.into(),
            checkpoint: String::from_utf8_lossy(there).into_owned(),
            prefix: (m < long.size()).then(|| Prefix {
                size: m,
                root: super::b64(&tree.root(m as usize)),
                proof: tlog::consistency_proof(hashes, m as usize)
                    .iter()
                    .map(super::b64)
                    .collect(),
            }),
        },
    );
}

/// Carries the entries the shorter copy lacks, then the checkpoints and cosignatures each
/// lacks. A copy this client may not write (a read-only source) gets nothing; the other still
/// gets what it lacks.
#[allow(clippy::too_many_arguments)]
fn carry_both(
    sa: &Side,
    sb: &Side,
    trusted: &Trusted,
    key: &[u8; 32],
    id: &str,
    origin: &str,
    rep: &mut GossipReport,
) {
    let (long, short) = if sa.size() >= sb.size() {
        (sa, sb)
    } else {
        (sb, sa)
    };
    let cant = |r: &Repo, e: Error| {
        format!(
            "cannot carry the log {origin} to {}: {}",
            r.store.url(),
            crate::error::chain(&e)
        )
    };
    match carry(long, short, id) {
        Ok(n) => rep.copied += n,
        Err(e) => {
            rep.notes.push(cant(short.repo, e));
            return;
        }
    }
    for (from, to) in [(sa, sb), (sb, sa)] {
        match carry_signed(from, to, trusted, key, id) {
            Ok((objects, cosignatures)) => {
                rep.copied += objects;
                rep.cosignatures += cosignatures;
            }
            Err(e) => rep.notes.push(cant(to.repo, e)),
        }
    }
}

fn put_evidence(repo: &Repo, id: &str, e: &ForkEvidence) -> Result<()> {
    let b = e.encode();
    repo.store.put(&ForkEvidence::path(id, &b), b)?;
    Ok(())
}

/// The longer side's entry bundles the shorter lacks (or holds past its head with other
/// bytes: leftovers that cover nothing there).
fn carry(long: &Side, short: &Side, id: &str) -> Result<u64> {
    let mut copied = 0;
    let size = long.size();
    let mut n = 0;
    while n * tlog::BUNDLE < size {
        let width = (size - n * tlog::BUNDLE).min(tlog::BUNDLE);
        let rel = tlog::bundle_path(n, width);
        let path = format!("{}/{rel}", prefix(id));
        let past_head = (n * tlog::BUNDLE + width) > short.size();
        let bytes = tlog::encode_bundle(
            &long.entries[(n * tlog::BUNDLE) as usize..(n * tlog::BUNDLE + width) as usize],
        );
        match short.s.bundles.contains_key(&rel) {
            false => {
                short.repo.store.put(&path, bytes)?;
                copied += 1;
            }
            true if past_head && short.repo.store.get(&path)?[..] != bytes[..] => {
                short.repo.store.put_replace(&path, bytes)?;
                copied += 1;
            }
            true => {}
        }
        n += 1;
    }
    Ok(copied)
}

/// Checkpoints `from` signed that `to` lacks (both sides agree, so each is within the longer
/// tree; one the shorter side lacks comes after the entries above), then the cosignatures of
/// trusted witnesses on them, then fork objects that verify under the log's key.
fn carry_signed(
    from: &Side,
    to: &Side,
    trusted: &Trusted,
    key: &[u8; 32],
    id: &str,
) -> Result<(u64, u64)> {
    let (mut objects, mut cosignatures) = (0, 0);
    for (sz, (note, _)) in &from.signed {
        if to.signed.contains_key(sz) {
            continue;
        }
        let path = format!("{}/checkpoint/{sz}", prefix(id));
        // A name holding bytes that do not verify there covers nothing: replace it.
        if to.s.checkpoints.contains_key(sz) {
            to.repo.store.put_replace(&path, note.clone())?;
        } else {
            to.repo.store.put(&path, note.clone())?;
        }
        objects += 1;
    }
    for (sz, lines) in &from.s.cosignatures {
        let Some((_, cp)) = from.signed.get(sz) else {
            continue;
        };
        for (kid, line) in lines {
            let there = to.s.cosignatures.get(sz).and_then(|l| l.get(kid));
            // A genuine one there already: nothing to do. Junk squatting the name (copied in
            // by a keyless replication, or put there by a site) must not keep the genuine
            // cosignature out: it is replaced.
            if there.is_some_and(|t| trusted.cosignature_by(cp, kid, t, key).is_some()) {
                continue;
            }
            if trusted.cosignature_by(cp, kid, line, key).is_none() {
                continue;
            }
            let path = format!("{}/cosignature/{sz}/{kid}", prefix(id));
            if there.is_some() {
                to.repo.store.put_replace(&path, line.clone())?;
            } else {
                to.repo.store.put(&path, line.clone())?;
            }
            objects += 1;
            cosignatures += 1;
        }
    }
    for (path, b) in &from.s.forks {
        if to.s.forks.contains_key(path) {
            continue;
        }
        let verifies = ForkEvidence::decode(b)
            .is_some_and(|e| tlog::open_checkpoint(e.checkpoint.as_bytes(), key).is_ok());
        if verifies {
            to.repo.store.put(path, b.clone())?;
            objects += 1;
        }
    }
    Ok((objects, cosignatures))
}
