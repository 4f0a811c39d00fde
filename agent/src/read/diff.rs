//! Comparing two snapshots' trees: what was added, removed or changed (`coop diff`).

use super::BlobReader;
use crate::error::Result;
use coop_formats::id::Id;
use coop_formats::tree::{Node, NodeKind};

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Removed,
    /// Content (or type) changed.
    Modified,
    /// Only metadata (mode, owner, times, xattrs) changed.
    Metadata,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub path: String,
    pub change: ChangeKind,
}

fn meta_eq(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime_ns == b.mtime_ns
        && a.xattrs == b.xattrs
}

/// Lists what differs between two trees, skipping identical subtrees.
pub fn diff(reader: &BlobReader, a: &Id, b: &Id) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_rec(reader, Some(a), Some(b), "", &mut out)?;
    Ok(out)
}

fn diff_rec(
    r: &BlobReader,
    a: Option<&Id>,
    b: Option<&Id>,
    prefix: &str,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = match a {
        Some(id) => r.tree(id)?.nodes,
        None => Vec::new(),
    };
    let tb = match b {
        Some(id) => r.tree(id)?.nodes,
        None => Vec::new(),
    };
    let (mut i, mut j) = (0, 0);
    while i < ta.len() || j < tb.len() {
        let ord = match (ta.get(i), tb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (na, nb) = match ord {
            std::cmp::Ordering::Less => (ta.get(i), None),
            std::cmp::Ordering::Greater => (None, tb.get(j)),
            std::cmp::Ordering::Equal => (ta.get(i), tb.get(j)),
        };
        let name = String::from_utf8_lossy(&na.or(nb).expect("one side").name).into_owned();
        let path = format!("{prefix}/{name}");
        let sub = |n: Option<&Node>| {
            n.filter(|n| n.kind == NodeKind::Dir)
                .and_then(|n| n.subtree)
        };
        match (na, nb) {
            (Some(_), None) => out.push(Change {
                path: path.clone(),
                change: ChangeKind::Removed,
            }),
            (None, Some(_)) => out.push(Change {
                path: path.clone(),
                change: ChangeKind::Added,
            }),
            (Some(x), Some(y)) => {
                if x.kind != y.kind
                    || x.content != y.content
                    || x.size != y.size
                    || x.target != y.target
                {
                    if x.kind != NodeKind::Dir || y.kind != NodeKind::Dir {
                        out.push(Change {
                            path: path.clone(),
                            change: ChangeKind::Modified,
                        });
                    }
                } else if !meta_eq(x, y) {
                    out.push(Change {
                        path: path.clone(),
                        change: ChangeKind::Metadata,
                    });
                }
            }
            (None, None) => unreachable!("one side is present"),
        }
        let (sa, sb) = (sub(na), sub(nb));
        if sa.is_some() || sb.is_some() {
            diff_rec(r, sa.as_ref(), sb.as_ref(), &path, out)?;
        }
        match ord {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}
