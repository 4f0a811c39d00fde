//! What to restore: the entries of a tree after includes and excludes, parents first.

use super::RestoreRoot;
use crate::error::Result;
use crate::patterns::Patterns;
use crate::read::BlobReader;
use coop_formats::tree::{Node, NodeKind};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One entry to restore: its path below the target (validated components) and its node.
pub struct Item {
    pub rel: PathBuf,
    pub node: Node,
}

/// Gives `emit` the entries to restore, in walk order (every directory before what it
/// holds), one at a time: nothing per entry is kept here. With include patterns, a directory
/// that is not included itself is held back until something below it is (it is then given
/// first, as a parent), and dropped if nothing is; only the directories above the entry the
/// walk is at are held.
pub fn walk(
    reader: &BlobReader,
    root: RestoreRoot,
    includes: &Patterns,
    excludes: &Patterns,
    mut emit: impl FnMut(Item) -> Result<()>,
) -> Result<()> {
    let id = match root {
        RestoreRoot::Node(node) => {
            return emit(Item {
                rel: PathBuf::from(OsStr::from_bytes(&node.name)),
                node: *node,
            })
        }
        RestoreRoot::Tree(id) => id,
    };
    // Included directories above the current entry (all below them is included).
    let mut included_dirs: Vec<PathBuf> = Vec::new();
    // Directories above the current entry not given yet.
    let mut pending: Vec<Item> = Vec::new();
    reader.walk(&id, |path, node| {
        let rel = PathBuf::from(OsStr::from_bytes(path));
        let shown = Path::new("/").join(&rel);
        if excludes.is_match(&shown) {
            return Ok(false);
        }
        if includes.is_empty() {
            emit(Item {
                rel,
                node: node.clone(),
            })?;
            return Ok(true);
        }
        while pending.last().is_some_and(|p| !rel.starts_with(&p.rel)) {
            pending.pop();
        }
        while included_dirs.last().is_some_and(|d| !rel.starts_with(d)) {
            included_dirs.pop();
        }
        let included = !included_dirs.is_empty() || includes.is_match(&shown);
        if included {
            for p in pending.drain(..) {
                emit(p)?;
            }
            if node.kind == NodeKind::Dir {
                included_dirs.push(rel.clone());
            }
            emit(Item {
                rel,
                node: node.clone(),
            })?;
        } else if node.kind == NodeKind::Dir {
            pending.push(Item {
                rel,
                node: node.clone(),
            });
        }
        Ok(true)
    })
}
