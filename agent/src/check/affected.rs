//! Which snapshots and files each problem concerns: damaged packs, trees and blobs traced
//! through the damage graph ([`super::graph`]) to the snapshots and paths that need them.

use super::*;

impl Checker<'_> {
    /// Attaches affected snapshots and files to the problems from `from` on.
    ///
    /// The first walk links only trees to their parents; the blobs the problems concern are
    /// linked to the trees that name them by a second walk, done only when there are such
    /// problems (so the graph's memory follows the trees and the damage, not the blobs).
    pub(super) fn attach(&mut self, reader: &BlobReader, index: &Index, from: usize) -> Result<()> {
        let target = |p: &Problem| -> Option<(bool, Id)> {
            if p.intact_elsewhere {
                return None;
            }
            let (kind, id) = p.object.split_once(' ')?;
            let id = id.parse::<Id>().ok()?;
            match kind {
                "pack" => Some((true, id)),
                "blob" | "tree" => Some((false, id)),
                _ => None,
            }
        };
        // The blobs in each damaged pack, from one pass over the index.
        let mut in_pack: HashMap<Id, Vec<Id>> = self.r.errors[from..]
            .iter()
            .filter_map(target)
            .filter(|(pack, _)| *pack)
            .map(|(_, id)| (id, Vec::new()))
            .collect();
        if !in_pack.is_empty() {
            index.for_each(|b, l| {
                if let Some(v) = in_pack.get_mut(&index.pack_id(l)) {
                    v.push(*b);
                }
            })?;
        }
        let mut wanted: HashSet<Id> = HashSet::new();
        for (pack, id) in self.r.errors[from..].iter().filter_map(target) {
            if pack {
                wanted.extend(in_pack[&id].iter().copied());
            } else {
                wanted.insert(id);
            }
        }
        self.link_blobs(reader, &wanted);
        let (graph, snaps) = (&self.graph, &self.snaps);
        for prob in self.r.errors[from..].iter_mut() {
            let Some((pack, id)) = target(prob) else {
                continue;
            };
            let affected: &[Id] = if pack {
                &in_pack[&id]
            } else {
                std::slice::from_ref(&id)
            };
            let mut snapset = std::collections::BTreeSet::new();
            let mut files = Vec::new();
            for b in affected {
                snapset.extend(graph.snapshots_of(b));
                for si in graph.roots.get(b).into_iter().flatten() {
                    files.push(format!(
                        "{}: / (the root tree: the whole snapshot)",
                        snaps[*si].id.short()
                    ));
                }
                for (parent, name) in graph.up.get(b).into_iter().flatten() {
                    if files.len() < 200 {
                        let (si, dir) = graph.path_of(parent);
                        let snap = si.map(|i| snaps[i].id.short()).unwrap_or_default();
                        files.push(format!("{snap}: {dir}/{name}"));
                    }
                }
            }
            files.sort();
            files.dedup();
            prob.snapshots
                .extend(snapset.into_iter().map(|i| snaps[i].id.to_hex()));
            prob.snapshots.sort();
            prob.snapshots.dedup();
            if prob.files.is_empty() {
                prob.files = files;
            }
        }
        Ok(())
    }

    /// Links each of `wanted` (data blobs) to every tree that names it, walking the trees
    /// again in the first walk's order; trees that do not read are skipped (the first walk
    /// reported them).
    fn link_blobs(&mut self, reader: &BlobReader, wanted: &HashSet<Id>) {
        if wanted.is_empty() {
            return;
        }
        let mut seen: HashSet<Id> = HashSet::new();
        for si in 0..self.snaps.len() {
            let mut stack = vec![self.snaps[si].snapshot.tree];
            while let Some(tid) = stack.pop() {
                if !seen.insert(tid) {
                    continue;
                }
                let Ok(tree) = reader.tree(&tid) else {
                    continue;
                };
                seen.extend(tree.parts.iter().copied());
                for n in tree.nodes {
                    if let (NodeKind::Dir, Some(sub)) = (n.kind, n.subtree) {
                        stack.push(sub);
                        continue;
                    }
                    let mut name = None;
                    for p in &n.content {
                        let Part::Blob(id) = p else { continue };
                        if wanted.contains(id) {
                            let name = name.get_or_insert_with(|| n.display_name());
                            self.graph.link(*id, tid, name);
                        }
                    }
                }
            }
        }
    }
}
