//! The child→parent graph of trees and blobs, so damage is traced to every snapshot and file.

use coop_formats::id::Id;
use std::collections::{HashMap, HashSet};

/// Parents of trees and blobs (capped per child), and the snapshots each root tree starts.
#[derive(Default)]
pub(super) struct Graph {
    pub up: HashMap<Id, Vec<(Id, String)>>,
    pub roots: HashMap<Id, Vec<usize>>,
}

const MAX_PARENTS: usize = 64;

impl Graph {
    pub fn link(&mut self, child: Id, parent: Id, name: &str) {
        let v = self.up.entry(child).or_default();
        if v.len() < MAX_PARENTS && !v.iter().any(|(p, n)| *p == parent && n == name) {
            v.push((parent, name.to_string()));
        }
    }

    /// Every snapshot that reaches `id`.
    pub fn snapshots_of(&self, id: &Id) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![*id];
        while let Some(x) = stack.pop() {
            if !seen.insert(x) {
                continue;
            }
            if let Some(r) = self.roots.get(&x) {
                out.extend(r);
            }
            for (p, _) in self.up.get(&x).into_iter().flatten() {
                stack.push(*p);
            }
        }
        out
    }

    /// A path of a tree (following first parents; a split tree's part links with an empty
    /// name, its directory's path) and the snapshot whose root it reaches.
    pub fn path_of(&self, tree: &Id) -> (Option<usize>, String) {
        let mut names: Vec<String> = Vec::new();
        let mut cur = *tree;
        for _ in 0..10_000 {
            if let Some(r) = self.roots.get(&cur) {
                names.reverse();
                return (
                    r.first().copied(),
                    names
                        .iter()
                        .filter(|n| !n.is_empty())
                        .map(|n| format!("/{n}"))
                        .collect(),
                );
            }
            match self.up.get(&cur).and_then(|v| v.first()) {
                Some((p, n)) => {
                    names.push(n.clone());
                    cur = *p;
                }
                None => break,
            }
        }
        names.reverse();
        (
            None,
            names
                .iter()
                .filter(|n| !n.is_empty())
                .map(|n| format!("/{n}"))
                .collect(),
        )
    }
}
