//! What to restore: the entries of a tree after includes and excludes, parents first.

use super::RestoreRoot;
use crate::error::Result;
use crate::patterns::Patterns;
use crate::read::BlobReader;
use coop_formats::tree::{Node, NodeKind};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One entry to restore: its path below the target (validated components) and its node.
pub struct Item {
    pub rel: PathBuf,
    pub node: Node,
}

/// The entries to restore, in walk order (every directory before what it holds).
pub fn items(
    reader: &BlobReader,
    root: RestoreRoot,
    includes: &Patterns,
    excludes: &Patterns,
) -> Result<Vec<Item>> {
    let id = match root {
        RestoreRoot::Node(node) => {
            return Ok(vec![Item {
                rel: PathBuf::from(OsStr::from_bytes(&node.name)),
                node: *node,
            }])
        }
        RestoreRoot::Tree(id) => id,
    };
    let mut items: Vec<Item> = Vec::new();
    let mut included_dirs: Vec<PathBuf> = Vec::new();
    reader.walk(&id, |path, node| {
        let rel = PathBuf::from(OsStr::from_bytes(path));
        let shown = Path::new("/").join(&rel);
        if excludes.is_match(&shown) {
            return Ok(false);
        }
        let under_included = included_dirs.iter().any(|d| rel.starts_with(d));
        let included = includes.is_empty() || under_included || includes.is_match(&shown);
        if included && node.kind == NodeKind::Dir && !includes.is_empty() {
            included_dirs.push(rel.clone());
        }
        if included || node.kind == NodeKind::Dir {
            items.push(Item {
                rel,
                node: node.clone(),
            });
        }
        Ok(true)
    })?;
    if !includes.is_empty() {
        // Keep directories only if included or needed as a parent.
        let mut needed: HashSet<PathBuf> = HashSet::new();
        for it in &items {
            let inc = included_dirs.iter().any(|d| it.rel.starts_with(d))
                || it.node.kind != NodeKind::Dir;
            if inc {
                let mut p = it.rel.parent();
                while let Some(pp) = p.filter(|pp| !pp.as_os_str().is_empty()) {
                    needed.insert(pp.to_path_buf());
                    p = pp.parent();
                }
                needed.insert(it.rel.clone());
            }
        }
        items.retain(|it| needed.contains(&it.rel));
    }
    Ok(items)
}
