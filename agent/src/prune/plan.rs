//! Phase 1 of prune: which packs to condemn, copying out what snapshots need, and the plan.

use super::{PruneOptions, PruneReport, Used, View};
use crate::error::{Error, Result};
use crate::index::spill::{Sorted, Sorter, RUN_BYTES};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::progress::Progress;
use crate::read::BlobReader;
use crate::repo::Repo;
use coop_formats::blob::Compression;
use coop_formats::control::PrunePlan;
use coop_formats::id::{BlobType, Id};
use coop_formats::index::{IndexEntry, IndexFile, IndexPack};
use coop_formats::pack::PackBuilder;
use std::collections::{HashMap, HashSet};

/// Packs that look unused or mostly unused by what the index objects claim.
pub(super) struct Candidates {
    pub unused: Vec<Id>,
    pub repack: Vec<Id>,
}

/// Every needed blob must be claimed by some index object in a present pack whose size is
/// what the index says; otherwise the repository is damaged and prune stops.
///
/// The merged index puts a blob in a present pack whenever some index object claims it in
/// one (present packs rank first), so its one location answers "claimed in a present pack".
pub(super) fn check_needed_present(view: &View, index: &Index, used: &Used) -> Result<()> {
    let stored_size = &view.claims.stored_size;
    used.for_each(|b| {
        let loc = index.get(b)?;
        if let Some(loc) = loc {
            let pid = index.pack_id(&loc);
            if let (Some((listed, _)), Some(expected)) =
                (view.packs.get(&pid), stored_size.get(&pid))
            {
                if listed != expected {
                    return Err(Error::damaged(
                        pid.to_hex(),
                        format!(
                            "prune refuses to run: this pack holds data snapshots need, and is {listed} bytes \
                             in the store where the index says {expected} (truncated or replaced). \
                             Run `coop check --read-data`."
                        ),
                    ));
                }
            }
        }
        let present = loc.is_some_and(|l| view.packs.contains_key(&index.pack_id(&l)));
        if !present {
            return Err(Error::damaged(
                b.to_hex(),
                "prune refuses to run: a snapshot needs this blob and no pack in the store holds it. Run `coop check`.",
            ));
        }
        Ok(())
    })
}

/// Decides from the index claims which packs look unused (nothing needed in them) or
/// partly used beyond `max_unused`. Unindexed packs younger than the unindexed grace are
/// left alone (a running backup may be about to index them).
///
/// A needed blob counts once, in the pack the merged index puts it in: a present pack
/// listed by an active index object first, then one listed by a superseded object.
pub(super) fn decide(
    view: &View,
    index: &Index,
    used: &Used,
    opts: &PruneOptions,
    rep: &mut PruneReport,
) -> Result<Candidates> {
    let mut pack_used: HashMap<Id, u64> = HashMap::new();
    let pack_stored = view.claims.active_bytes()?;
    let mut failed = None;
    index.for_each(|b, l| {
        let p = index.pack_id(l);
        if failed.is_some() || !view.packs.contains_key(&p) {
            return;
        }
        match used.contains(b) {
            Ok(true) => *pack_used.entry(p).or_default() += l.stored_len as u64,
            Ok(false) => {}
            Err(e) => failed = Some(e),
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    rep.bytes_used = pack_used.values().sum();
    let already: HashSet<Id> = view
        .plans
        .iter()
        .flat_map(|(_, p)| p.packs.iter().copied())
        .collect();
    let young = crate::now_unix() - opts.unindexed_grace.as_secs() as i64;
    let mut c = Candidates {
        unused: Vec::new(),
        repack: Vec::new(),
    };
    for (p, (size, modified)) in &view.packs {
        if already.contains(p) {
            continue;
        }
        if !view.claims.claims_in(p) && *modified > young {
            rep.packs_too_young += 1;
            continue;
        }
        let u = pack_used.get(p).copied().unwrap_or(0);
        if u == 0 {
            c.unused.push(*p);
            rep.bytes_to_free += size;
        } else {
            let stored = pack_stored.get(p).copied().unwrap_or(*size).max(1);
            if (stored.saturating_sub(u)) as f64 / stored as f64 > opts.max_unused {
                c.repack.push(*p);
                rep.bytes_to_free += size.saturating_sub(u);
            }
        }
    }
    c.unused.sort();
    c.repack.sort();
    rep.packs_unused = c.unused.len();
    rep.packs_to_repack = c.repack.len();
    Ok(c)
}

/// Phase 1: reads every candidate pack, copies the blobs snapshots need out of it (from the
/// pack's own table, verifying each), writes the consolidated index (in parts) and the
/// signed plans (one per part). Returns the plans written.
#[allow(clippy::too_many_arguments)]
pub(super) fn write(
    repo: &Repo,
    keys: &TenantKeys,
    reader: &BlobReader,
    view: &View,
    used: &Used,
    c: Candidates,
    authority: &ed25519_dalek::SigningKey,
    progress: &dyn Progress,
    rep: &mut PruneReport,
) -> Result<Vec<(Id, PrunePlan)>> {
    if c.unused.is_empty() && c.repack.is_empty() {
        return Ok(Vec::new());
    }
    let condemned = condemned(view, &c);
    let mut r = Repacker::new(repo, keys, reader, view, used, &condemned)?;
    progress.phase(
        "repacking",
        Some(
            c.unused
                .iter()
                .chain(&c.repack)
                .map(|p| view.packs[p].0)
                .sum(),
        ),
    );
    copy_needed(&mut r, &c, progress, rep)?;
    rep.packs_written += r.new_packs.len();
    progress.finish();
    let Repacker {
        index: new_index,
        new_packs,
        verified,
        ..
    } = r;
    let parts = Parts {
        repo,
        keys,
        authority,
        superseded: view.claims.names.clone(),
        cur: IndexFile::default(),
        pack_ix: HashMap::new(),
        written: Vec::new(),
    };
    let replacements = write_index(parts, view, used.dir(), &condemned, new_index)?;
    crate::fault::point("prune:after-index");
    let last = PrunePlan {
        created: crate::now_unix(),
        packs: c.unused.iter().chain(&c.repack).copied().collect(),
        index: view.claims.names.clone(),
        replacement: None,
        new_packs,
        verified,
    };
    let written = write_plans(repo, keys, authority, &replacements, last, rep)?;
    crate::fault::point("prune:after-plan");
    Ok(written)
}

/// Every pack condemned, by this prune (`c`) or by a plan written before: a copy of a blob
/// in one of them does not count, and the consolidated index lists none of them.
fn condemned(view: &View, c: &Candidates) -> HashSet<Id> {
    c.unused
        .iter()
        .chain(&c.repack)
        .chain(view.plans.iter().flat_map(|(_, p)| p.packs.iter()))
        .copied()
        .collect()
}

/// Step 1: reads every candidate pack and copies out of it the blobs snapshots need (see
/// [`Repacker::copy_out_of`]), then writes the last, partly filled new packs. A pack that
/// looked unused but held needed blobs is named in a warning: an index object lied.
fn copy_needed(
    r: &mut Repacker,
    c: &Candidates,
    progress: &dyn Progress,
    rep: &mut PruneReport,
) -> Result<()> {
    let looked_unused: HashSet<&Id> = c.unused.iter().collect();
    for p in c.unused.iter().chain(&c.repack) {
        let found = r.copy_out_of(p)?;
        if found > 0 && looked_unused.contains(p) {
            rep.warnings.push(format!(
                "pack {p} holds {found} blob(s) snapshots need that the index objects put elsewhere, where they \
                 are not (an index object lies: forged with a writer key?); they were copied before the pack was condemned"
            ));
        }
        progress.add_bytes(r.view.packs[p].0);
    }
    for slot in 0..2 {
        if let Some(b) = r.builders[slot].take() {
            r.flush(b)?;
        }
    }
    Ok(())
}

/// Copies blobs, verified, into new packs of the tenant.
struct Repacker<'a> {
    repo: &'a Repo,
    keys: &'a TenantKeys,
    reader: &'a BlobReader<'a>,
    view: &'a View,
    used: &'a Used,
    /// The packs' own tables, read by range and cached.
    tables: crate::packtable::Tables<'a>,
    /// See [`condemned`].
    condemned: &'a HashSet<Id>,
    builders: [Option<PackBuilder>; 2],
    /// The new packs' entries.
    index: IndexFile,
    /// Needed blobs already copied or found elsewhere (each is handled once).
    moved: HashSet<Id>,
    new_packs: Vec<Id>,
    /// Needed blobs of condemned packs found, verified, in packs that stay (blob, pack):
    /// not copied; the plan names them.
    verified: Vec<(Id, Id)>,
    scratch: Vec<u8>,
    /// Reused for every condemned pack: its stored and decrypted bytes.
    pack_stored: Vec<u8>,
    pack_plain: Vec<u8>,
}

impl<'a> Repacker<'a> {
    fn new(
        repo: &'a Repo,
        keys: &'a TenantKeys,
        reader: &'a BlobReader<'a>,
        view: &'a View,
        used: &'a Used,
        condemned: &'a HashSet<Id>,
    ) -> Result<Self> {
        Ok(Self {
            repo,
            keys,
            reader,
            view,
            used,
            tables: crate::packtable::Tables::new(repo, keys)?,
            condemned,
            builders: [None, None],
            index: IndexFile::default(),
            moved: HashSet::new(),
            new_packs: Vec::new(),
            verified: Vec::new(),
            scratch: Vec::new(),
            pack_stored: Vec::new(),
            pack_plain: Vec::new(),
        })
    }

    /// Reads condemned pack `p` and, for each needed blob its own table lists that was not
    /// handled yet, either notes a verified copy in a pack that stays or copies the blob
    /// (verified first: never spread a damaged blob) into a new pack. Returns how many
    /// blobs were copied.
    fn copy_out_of(&mut self, p: &Id) -> Result<usize> {
        let mut stored = std::mem::take(&mut self.pack_stored);
        let mut plain = std::mem::take(&mut self.pack_plain);
        let res = self
            .reader
            .fetch_pack_into(p, &mut stored, &mut plain)
            .and_then(|()| self.copy_blobs(p, &plain));
        self.pack_stored = stored;
        self.pack_plain = plain;
        res
    }

    /// [`Self::copy_out_of`] once the pack is read and decrypted into `plain`.
    fn copy_blobs(&mut self, p: &Id, plain: &[u8]) -> Result<usize> {
        let table =
            coop_formats::pack::parse_table(plain).map_err(|e| Error::damaged(p.to_hex(), e))?;
        self.tables.remember(p, &table);
        let mut found = 0usize;
        for e in &table {
            if !self.used.contains(&e.id)? || !self.moved.insert(e.id) {
                continue;
            }
            if let Some(q) = self.verified_copy(&e.id)? {
                self.verified.push((e.id, q));
                continue;
            }
            found += 1;
            let stored = &plain[e.offset as usize..(e.offset + e.stored_len) as usize];
            // Verify before copying: never spread a damaged blob.
            coop_formats::blob::decode(
                &self.keys.id_key,
                e.id,
                e.ty,
                e.compression,
                e.raw_len,
                stored,
                &mut self.scratch,
            )
            .map_err(|err| Error::damaged(p.to_hex(), err))?;
            self.add(e, stored)?;
        }
        Ok(found)
    }

    /// A pack that stays and holds blob `b`, verified. Where the index objects say each blob
    /// is (`view.claims`) is only a hint: a copy counts only if the pack's own table lists
    /// it there and its bytes verify against its keyed ID.
    fn verified_copy(&mut self, b: &Id) -> Result<Option<Id>> {
        let view = self.view;
        for claim in view.claims.lookup(b)? {
            let (q, loc) = (view.claims.pack_id(&claim.loc), claim.loc);
            if self.condemned.contains(&q) || !view.packs.contains_key(&q) {
                continue;
            }
            let table = self.tables.get(&q, view.packs[&q].0)?;
            let listed = table
                .iter()
                .any(|t| t.id == *b && t.offset == loc.offset && t.stored_len == loc.stored_len);
            if listed && self.reader.blob_in(&q, b, &loc, &mut self.scratch).is_ok() {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }

    fn flush(&mut self, b: PackBuilder) -> Result<()> {
        let (stored, entries, id) = b
            .finish()
            .map_err(|e| Error::crypto("encrypting a pack", e))?;
        let size = stored.len() as u64;
        self.repo
            .store
            .put(&Kind::Pack.path(&self.keys.tag, &id), stored)?;
        self.index.add_pack(id, size, &entries);
        self.new_packs.push(id);
        crate::fault::point("prune:after-repack-pack");
        Ok(())
    }

    /// Adds one verified blob (its stored bytes) to the right new pack.
    fn add(&mut self, e: &coop_formats::pack::PackEntry, stored: &[u8]) -> Result<()> {
        let slot = (e.ty == BlobType::Tree) as usize;
        if self.builders[slot].is_none() {
            self.builders[slot] = Some(
                PackBuilder::new(self.keys.tag, &self.keys.recipients, Vec::new())
                    .map_err(|e| Error::crypto("encrypting a pack", e))?,
            );
        }
        let b = self.builders[slot].as_mut().expect("set above");
        let comp = Compression::from_u8(e.compression).unwrap_or(Compression::None);
        b.add_stored(e.ty, e.id, comp, e.raw_len, stored)
            .map_err(|e| Error::crypto("encrypting a pack", e))?;
        if b.len() >= self.repo.config.pack_size as usize {
            let full = self.builders[slot].take().expect("builder");
            self.flush(full)?;
        }
        Ok(())
    }
}

/// Step 2: the consolidated index: the new packs (`new_index`), plus everything claimed in
/// the packs that stay, split into parts of at most [`PART_ENTRIES`] entries (each
/// superseding every object read), so that neither this prune nor a reader holds all of it
/// at once. Returns the parts' names.
fn write_index(
    mut parts: Parts,
    view: &View,
    dir: &std::path::Path,
    condemned: &HashSet<Id>,
    new_index: IndexFile,
) -> Result<Vec<Id>> {
    let copied: HashSet<Id> = new_index.entries.iter().map(|e| e.id).collect();
    for e in &new_index.entries {
        parts.push(new_index.packs[e.pack as usize], e)?;
    }
    drop(new_index);
    let io = |e| Error::io(dir, e);
    let mut kept = sort_kept(view, dir, condemned, &copied)?;
    while let Some(r) = kept.next().map_err(io)? {
        let (pack, e) = decode_kept(r)?;
        parts.push(view.claims.pack_at(pack), &e)?;
    }
    parts.finish()
}

/// The first claim of each blob (not in `copied`) in a pack that stays, sorted again by pack
/// (then blob) on disk in `dir`, so that each part lists few packs, as the objects backups
/// write do.
fn sort_kept(
    view: &View,
    dir: &std::path::Path,
    condemned: &HashSet<Id>,
    copied: &HashSet<Id>,
) -> Result<Sorted> {
    let io = |e| Error::io(dir, e);
    let mut kept = Sorter::new(dir, KEPT_REC, RUN_BYTES);
    let mut rec = [0u8; KEPT_REC];
    view.claims.for_each_blob(|id, claims| {
        if copied.contains(id) {
            return Ok(());
        }
        for cl in claims {
            let p = view.claims.pack_id(&cl.loc);
            if condemned.contains(&p) || !view.packs.contains_key(&p) {
                continue;
            }
            let l = cl.loc;
            rec[..4].copy_from_slice(&l.pack.to_be_bytes());
            rec[4..36].copy_from_slice(&id.0);
            rec[36..40].copy_from_slice(&l.offset.to_le_bytes());
            rec[40..44].copy_from_slice(&l.stored_len.to_le_bytes());
            rec[44..48].copy_from_slice(&l.raw_len.to_le_bytes());
            rec[48] = l.ty as u8;
            rec[49] = l.compression;
            return kept.push(&rec).map_err(io);
        }
        Ok(())
    })?;
    kept.finish().map_err(io)
}

/// One record of [`sort_kept`]: the claims' pack number and the entry (its pack number is
/// the part's to set).
fn decode_kept(r: &[u8]) -> Result<(u32, IndexEntry)> {
    let u = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().expect("4"));
    let pack = u32::from_be_bytes(r[..4].try_into().expect("4"));
    let e = IndexEntry {
        id: Id(r[4..36].try_into().expect("32")),
        pack: 0,
        ty: BlobType::from_u8(r[48])
            .ok_or_else(|| Error::internal("bad blob type in a prune's sort"))?,
        compression: r[49],
        offset: u(36),
        stored_len: u(40),
        raw_len: u(44),
    };
    Ok((pack, e))
}

/// Step 3: one signed plan per part of the consolidated index. Only the last, `last` with
/// the last part as its replacement, condemns the packs, names the objects to delete and
/// the copies verified; it is written last, so that a plan that condemns exists only once
/// every part does. The others carry their part and the new packs.
fn write_plans(
    repo: &Repo,
    keys: &TenantKeys,
    authority: &ed25519_dalek::SigningKey,
    replacements: &[Id],
    last: PrunePlan,
    rep: &mut PruneReport,
) -> Result<Vec<(Id, PrunePlan)>> {
    let Some((&final_part, earlier)) = replacements.split_last() else {
        return Ok(Vec::new());
    };
    let mut plans: Vec<PrunePlan> = earlier
        .iter()
        .map(|r| PrunePlan {
            created: last.created,
            packs: Vec::new(),
            index: Vec::new(),
            replacement: Some(*r),
            new_packs: last.new_packs.clone(),
            verified: Vec::new(),
        })
        .collect();
    plans.push(PrunePlan {
        replacement: Some(final_part),
        ..last
    });
    let mut written = Vec::with_capacity(plans.len());
    for plan in plans {
        let name = repo.put(
            Kind::Plan,
            &keys.tag,
            coop_formats::control::Control::seal(&plan, &keys.index_key, keys.tag, authority),
        )?;
        rep.plans_written += 1;
        written.push((name, plan));
    }
    Ok(written)
}

/// Records of the kept claims sorted by pack: pack (big-endian), blob, location.
const KEPT_REC: usize = 64;

/// Entries per part of the consolidated index (about 13 MiB sealed).
#[cfg(not(test))]
pub(super) const PART_ENTRIES: usize = 1 << 18;
/// Small in unit tests, so that they see several parts and plans.
#[cfg(test)]
pub(super) const PART_ENTRIES: usize = 40;

/// The parts of the consolidated index being written, one at a time.
struct Parts<'a> {
    repo: &'a Repo,
    keys: &'a TenantKeys,
    authority: &'a ed25519_dalek::SigningKey,
    superseded: Vec<Id>,
    cur: IndexFile,
    pack_ix: HashMap<Id, u32>,
    written: Vec<Id>,
}

impl Parts<'_> {
    fn push(&mut self, pack: IndexPack, e: &IndexEntry) -> Result<()> {
        let packs = &mut self.cur.packs;
        let ix = *self.pack_ix.entry(pack.id).or_insert_with(|| {
            packs.push(pack);
            (packs.len() - 1) as u32
        });
        self.cur.entries.push(IndexEntry { pack: ix, ..*e });
        if self.cur.entries.len() >= PART_ENTRIES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut part = std::mem::take(&mut self.cur);
        self.pack_ix.clear();
        part.superseded = self.superseded.clone();
        let name = self.repo.put(
            Kind::Index,
            &self.keys.tag,
            part.seal(&self.keys.index_key, self.keys.tag, Some(self.authority)),
        )?;
        self.written.push(name);
        Ok(())
    }

    /// Writes the last part (an empty one if nothing else was written: a plan always names
    /// a replacement that supersedes the objects it deletes) and returns every part's name.
    fn finish(mut self) -> Result<Vec<Id>> {
        if !self.cur.entries.is_empty() || self.written.is_empty() {
            self.flush()?;
        }
        Ok(self.written)
    }
}
