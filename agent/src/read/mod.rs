//! Reading a snapshot: blobs (verified), trees, walking, `ls`, `dump` and `diff`.
//!
//! Every blob read is checked against its keyed, typed ID. Index objects can be written by
//! any writer, so a location may lie; where a blob fails verification at the location the
//! index gives, the other locations any index object lists are tried before giving up.

mod diff;
mod packs;
pub use diff::{diff, Change, ChangeKind};
pub(crate) use packs::read_next_blob;

use crate::error::{Error, Result};
use crate::index::claims::Claims;
use crate::index::{Index, Loc};
use crate::keys::TenantKeys;
use crate::repo::Repo;
use coop_formats::blob;
use coop_formats::id::{BlobType, Id};
use coop_formats::tree::{Node, NodeKind, Part, Tree};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};

/// Decrypted packs kept in memory for tree reads: as many bytes as this many full packs of
/// the repository's pack size (64 MiB by default), however many packs that is. Not fewer: a
/// snapshot's trees lie in the tree packs of every backup that wrote one of them, and a walk
/// goes from one to the other (two packs: 661 pack reads instead of 159 for a restore of the
/// scale 1.0 benchmark's third snapshot, a third more time; PERFORMANCE.md, "Memory at 10 M
/// blobs"). Counted in bytes, the small tree packs of daily incremental backups, a few hundred
/// KiB each, are many at once in the cache.
const PACK_CACHE: usize = 4;
/// At most this many packs in the cache (it is searched linearly).
const PACK_CACHE_ENTRIES: usize = 1024;

/// Drops the oldest packs until `room` more bytes fit in `budget` (and an entry is free).
fn make_room(c: &mut Vec<(Id, Arc<Vec<u8>>)>, room: usize, budget: usize) {
    let mut held: usize = c.iter().map(|(_, p)| p.len()).sum();
    while !c.is_empty() && (held + room > budget || c.len() >= PACK_CACHE_ENTRIES) {
        held -= c.remove(0).1.len();
    }
}

/// Reads and verifies blobs of one tenant.
pub struct BlobReader<'a> {
    pub repo: &'a Repo,
    pub keys: &'a TenantKeys,
    pub index: &'a Index,
    cache: Mutex<Vec<(Id, Arc<Vec<u8>>)>>,
    /// The stored bytes of the last pack read into the cache, kept for the next one.
    stored: Mutex<Vec<u8>>,
    /// Every location of every blob (every claim of every index object, sorted on disk),
    /// read the first time a blob fails at its first location.
    alternatives: OnceLock<Claims>,
}

/// Another place where an index object says a blob is.
#[derive(Debug, Clone, Copy)]
pub struct Alt {
    pub pack: Id,
    pub loc: Loc,
}

impl<'a> BlobReader<'a> {
    /// A reader of the tenant's files: refused for a member tenant opened by a key that is not
    /// the member's own until the read was logged (`access::authorize_read`).
    pub fn new(repo: &'a Repo, keys: &'a TenantKeys, index: &'a Index) -> Result<Self> {
        keys.content_reader()?;
        Self::for_maintenance(repo, keys, index)
    }

    /// A reader for the engine's own maintenance (check, prune): it walks trees to find what
    /// is used and verifies blobs, and shows nobody their content.
    pub(crate) fn for_maintenance(
        repo: &'a Repo,
        keys: &'a TenantKeys,
        index: &'a Index,
    ) -> Result<Self> {
        keys.reader()?;
        Ok(Self {
            repo,
            keys,
            index,
            cache: Mutex::new(Vec::new()),
            stored: Mutex::new(Vec::new()),
            alternatives: OnceLock::new(),
        })
    }

    /// A decrypted pack, from a small cache. The oldest packs leave the cache before a new
    /// one is fetched, and a cached pack holds no spare capacity: the cache's memory is
    /// [`PACK_CACHE`] packs' worth of bytes, however many packs are read.
    pub fn pack(&self, pack_id: &Id) -> Result<Arc<Vec<u8>>> {
        let full = self.repo.config.pack_size as usize;
        let budget = PACK_CACHE * full;
        {
            let mut c = self.cache.lock().expect("lock");
            if let Some(pos) = c.iter().position(|(id, _)| id == pack_id) {
                let e = c.remove(pos);
                let p = Arc::clone(&e.1);
                c.push(e);
                return Ok(p);
            }
            make_room(&mut c, full, budget);
        }
        // Another thread fetching at the same time takes a buffer of its own.
        let mut stored = std::mem::take(&mut *self.stored.lock().expect("lock"));
        let mut plain = Vec::new();
        let res = self.fetch_pack_into(pack_id, &mut stored, &mut plain);
        *self.stored.lock().expect("lock") = stored;
        res?;
        plain.shrink_to_fit();
        let p = Arc::new(plain);
        let mut c = self.cache.lock().expect("lock");
        make_room(&mut c, p.len(), budget);
        c.push((*pack_id, Arc::clone(&p)));
        Ok(p)
    }

    /// Empties the pack cache (a caller done walking trees gives its memory back).
    pub fn clear_cache(&self) {
        self.cache.lock().expect("lock").clear();
        *self.stored.lock().expect("lock") = Vec::new();
    }

    /// Locates a blob and checks it is of the expected type.
    pub fn locate(&self, id: &Id, ty: BlobType) -> Result<Loc> {
        let loc = self.index.get(id)?.ok_or(Error::MissingBlob { id: *id })?;
        if loc.ty != ty {
            return Err(Error::damaged(
                id.to_hex(),
                format!(
                    "blob is a {:?} blob where a {:?} blob is expected",
                    loc.ty, ty
                ),
            ));
        }
        Ok(loc)
    }

    /// Decodes one blob's stored bytes and verifies its keyed ID.
    pub fn verify_stored<'b>(
        &self,
        stored: &'b [u8],
        id: &Id,
        loc: &Loc,
        scratch: &'b mut Vec<u8>,
    ) -> Result<&'b [u8]> {
        blob::decode_ref(
            &self.keys.id_key,
            *id,
            loc.ty,
            loc.compression,
            loc.raw_len,
            stored,
            scratch,
        )
        .map_err(|e| Error::damaged(self.index.pack_id(loc).to_hex(), e))
    }

    /// Reads and verifies one blob; where it fails at its first location, every other
    /// location an index object gives is tried.
    pub fn blob(&self, id: &Id, ty: BlobType, out: &mut Vec<u8>) -> Result<()> {
        let loc = self.locate(id, ty)?;
        let first = self.index.pack_id(&loc);
        let err = match self.blob_in(&first, id, &loc, out) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == crate::ErrorKind::Integrity => e,
            Err(e) => return Err(e),
        };
        for alt in self.alternatives(id)? {
            if alt.pack == first && alt.loc.offset == loc.offset || alt.loc.ty != ty {
                continue;
            }
            if self.blob_in(&alt.pack, id, &alt.loc, out).is_ok() {
                tracing::warn!(
                    "blob {id} failed in pack {first} and was read from pack {} instead",
                    alt.pack
                );
                return Ok(());
            }
        }
        Err(err)
    }

    /// Reads and verifies blob `id` at `loc` in pack `pack_id` (whatever the index says).
    pub fn blob_in(&self, pack_id: &Id, id: &Id, loc: &Loc, out: &mut Vec<u8>) -> Result<()> {
        let p = self.pack(pack_id)?;
        blob::decode(
            &self.keys.id_key,
            *id,
            loc.ty,
            loc.compression,
            loc.raw_len,
            (loc.offset as usize)
                .checked_add(loc.stored_len as usize)
                .filter(|&e| e <= p.len())
                .map(|end| &p[loc.offset as usize..end])
                .ok_or_else(|| {
                    Error::damaged(pack_id.to_hex(), format!("blob {id} lies outside the pack"))
                })?,
            out,
        )
        .map_err(|e| Error::damaged(pack_id.to_hex(), e))
    }

    /// Every location of `id` that any index object lists (read once, on first need).
    pub fn alternatives(&self, id: &Id) -> Result<Vec<Alt>> {
        if self.alternatives.get().is_none() {
            // Every claim of every readable index object, sorted on disk (the files are
            // unnamed: the directory goes at once).
            let dir = crate::index::spill::scratch_dir(self.repo, ".alternatives-")?;
            let claims = Claims::build(
                dir.path(),
                crate::index::load::each_readable_file(self.repo, self.keys)?,
            )?;
            let _ = self.alternatives.set(claims);
        }
        let claims = self.alternatives.get().expect("set above");
        Ok(claims
            .lookup(id)?
            .into_iter()
            .map(|c| Alt {
                pack: claims.pack_id(&c.loc),
                loc: Loc { pack: 0, ..c.loc },
            })
            .collect())
    }

    /// A directory listing. A split tree (SPEC section 8.5) comes back with its parts'
    /// nodes merged, and its `parts` kept so reachability counts those blobs.
    pub fn tree(&self, id: &Id) -> Result<Tree> {
        let mut buf = Vec::new();
        self.blob(id, BlobType::Tree, &mut buf)?;
        let t = Tree::decode(&buf).map_err(|e| Error::damaged(id.to_hex(), e))?;
        if t.parts.is_empty() {
            return Ok(t);
        }
        let mut parts = Vec::with_capacity(t.parts.len());
        for p in &t.parts {
            buf.clear();
            self.blob(p, BlobType::Tree, &mut buf)?;
            parts.push(Tree::decode(&buf).map_err(|e| Error::damaged(p.to_hex(), e))?);
        }
        Tree::merge_parts(&t, parts).map_err(|e| Error::damaged(id.to_hex(), e))
    }

    /// Visits every node below `root` depth-first in name order. `visit` gets the path
    /// (components joined by `/`, no leading slash) and returns whether to descend.
    pub fn walk(
        &self,
        root: &Id,
        mut visit: impl FnMut(&[u8], &Node) -> Result<bool>,
    ) -> Result<()> {
        let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Node>)> =
            vec![(Vec::new(), self.tree(root)?.nodes.into_iter())];
        while let Some((prefix, iter)) = stack.last_mut() {
            let Some(node) = iter.next() else {
                stack.pop();
                continue;
            };
            let mut path = prefix.clone();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&node.name);
            if visit(&path, &node)? {
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    let t = self.tree(&sub)?;
                    stack.push((path, t.nodes.into_iter()));
                }
            }
        }
        Ok(())
    }

    /// What is at `path` below `root`: the root itself for an empty path, a directory's
    /// tree, or a single node; `None` if nothing is there.
    pub fn at(&self, root: &Id, path: &str) -> Result<Option<Found>> {
        if path.trim_matches('/').is_empty() {
            return Ok(Some(Found::Tree(*root)));
        }
        Ok(self.find(root, path)?.map(|n| match (n.kind, n.subtree) {
            (NodeKind::Dir, Some(t)) => Found::Tree(t),
            _ => Found::Node(Box::new(n)),
        }))
    }

    /// Finds the node at `path` (components separated by `/`) below `root`.
    pub fn find(&self, root: &Id, path: &str) -> Result<Option<Node>> {
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let mut tree = *root;
        let mut found = None;
        for (i, c) in comps.iter().enumerate() {
            let t = self.tree(&tree)?;
            let Some(n) = t.nodes.into_iter().find(|n| n.name == c.as_bytes()) else {
                return Ok(None);
            };
            if i + 1 < comps.len() {
                match (n.kind, n.subtree) {
                    (NodeKind::Dir, Some(s)) => tree = s,
                    _ => return Ok(None),
                }
            }
            found = Some(n);
        }
        Ok(found)
    }

    /// Writes a file's content (holes as zeros) to `out`; a write error is returned as
    /// `Err(Ok(io))`, a read error as `Err(Err(e))`.
    pub fn dump(&self, node: &Node, out: &mut dyn Write) -> std::result::Result<u64, DumpError> {
        let mut buf = Vec::new();
        let mut total = 0u64;
        let zeros = vec![0u8; 1 << 16];
        for p in &node.content {
            match p {
                Part::Blob(id) => {
                    self.blob(id, BlobType::Data, &mut buf)
                        .map_err(DumpError::Read)?;
                    out.write_all(&buf).map_err(DumpError::Write)?;
                    total += buf.len() as u64;
                }
                Part::Hole { hole } => {
                    let mut left = *hole;
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        out.write_all(&zeros[..n]).map_err(DumpError::Write)?;
                        left -= n as u64;
                    }
                    total += hole;
                }
            }
        }
        Ok(total)
    }
}

/// What a path in a snapshot names.
pub enum Found {
    /// A directory: its tree.
    Tree(Id),
    /// Anything else.
    Node(Box<Node>),
}

/// Why a dump stopped.
#[derive(Debug)]
pub enum DumpError {
    /// Reading from the repository failed.
    Read(Error),
    /// Writing the output failed (a closed pipe, a full disk).
    Write(std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache holds packs up to a byte budget: many small ones, few full ones, and the
    /// oldest leave first.
    #[test]
    fn the_pack_cache_is_bounded_in_bytes_not_packs() {
        let pack = |n: u8, len: usize| (Id([n; 32]), Arc::new(vec![0u8; len]));
        let mut c = Vec::new();
        for n in 0..100 {
            make_room(&mut c, 10, 1000);
            c.push(pack(n, 10));
        }
        assert_eq!(c.len(), 100, "a hundred small packs fit");
        make_room(&mut c, 400, 1000);
        assert_eq!(c.len(), 60);
        assert_eq!(c[0].0, Id([40; 32]), "the oldest left first");
        make_room(&mut c, 1000, 1000);
        assert!(c.is_empty());
        for n in 0..PACK_CACHE_ENTRIES + 5 {
            make_room(&mut c, 0, usize::MAX);
            c.push(pack(n as u8, 0));
        }
        make_room(&mut c, 0, usize::MAX);
        assert!(c.len() < PACK_CACHE_ENTRIES);
    }
}
