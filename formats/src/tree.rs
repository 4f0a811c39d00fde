//! Trees: one directory's entries, stored as a JSON blob of type `tree`.
//!
//! Names and symlink targets are byte strings on Unix. They are stored as `name` when they
//! are valid UTF-8 and as `name_hex` otherwise (likewise `target`/`target_hex`), so every
//! name round-trips exactly. Decoding validates every name: no empty name, no `.` or `..`,
//! no `/` or NUL, and names strictly increasing (so no duplicates).

use crate::id::Id;
use serde::{Deserialize, Serialize};

/// Longest accepted name (bytes).
pub const MAX_NAME_LEN: usize = 4096;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    Chardev,
    Blockdev,
}

/// One piece of a file's content: a data blob, or a hole of zeros that is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Part {
    Blob(Id),
    Hole { hole: u64 },
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Xattr {
    pub name: String,
    #[serde(with = "hex_vec")]
    pub value: Vec<u8>,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawNode", into = "RawNode")]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission and special bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// File size in bytes (files only).
    pub size: u64,
    pub content: Vec<Part>,
    pub subtree: Option<Id>,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<Xattr>,
    /// Hard-link group within this snapshot: nodes with the same group are one inode.
    pub link_group: Option<u64>,
    pub rdev: Option<u64>,
}

impl Node {
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Self {
        Self {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime_ns: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            xattrs: Vec::new(),
            link_group: None,
            rdev: None,
        }
    }

    /// The name for display (lossy for non-UTF-8 names).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name_hex: Option<String>,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    mtime_ns: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    content: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subtree: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<Xattr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link_group: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rdev: Option<u64>,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

fn bytes_field(
    text: Option<String>,
    hexed: Option<String>,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (text, hexed) {
        (Some(_), Some(_)) => Err(format!("both {what} and {what}_hex are set")),
        (Some(t), None) => Ok(Some(t.into_bytes())),
        (None, Some(h)) => hex::decode(h)
            .map(Some)
            .map_err(|e| format!("bad {what}_hex: {e}")),
        (None, None) => Ok(None),
    }
}

fn split_bytes(b: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(b) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(hex::encode(e.into_bytes()))),
    }
}

impl TryFrom<RawNode> for Node {
    type Error = String;
    fn try_from(r: RawNode) -> Result<Self, String> {
        let name = bytes_field(r.name, r.name_hex, "name")?.ok_or("node has no name")?;
        let target = bytes_field(r.target, r.target_hex, "target")?;
        Ok(Node {
            name,
            kind: r.kind,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            user: r.user,
            group: r.group,
            mtime_ns: r.mtime_ns,
            size: r.size,
            content: r.content,
            subtree: r.subtree,
            target,
            xattrs: r.xattrs,
            link_group: r.link_group,
            rdev: r.rdev,
        })
    }
}

impl From<Node> for RawNode {
    fn from(n: Node) -> Self {
        let (name, name_hex) = split_bytes(n.name);
        let (target, target_hex) = match n.target {
            Some(t) => split_bytes(t),
            None => (None, None),
        };
        RawNode {
            name,
            name_hex,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: n.user,
            group: n.group,
            mtime_ns: n.mtime_ns,
            size: n.size,
            content: n.content,
            subtree: n.subtree,
            target,
            target_hex,
            xattrs: n.xattrs,
            link_group: n.link_group,
            rdev: n.rdev,
        }
    }
}

/// Listings whose encoding is longer than this are split into parts (section 8.5): half
/// the blob limit, so a part never comes near it.
pub const MAX_TREE_PART: usize = (crate::blob::MAX_BLOB_LEN as usize) / 2;

/// A directory listing.
///
/// A listing too big for one blob is stored as a *split tree*: a blob with no `nodes` and
/// the IDs of its `parts`, each a tree blob of plain nodes; the directory's entries are the
/// parts' nodes in order. Readers merge them, and keep `parts` so that
/// reachability (prune, check) counts the part blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Split trees only: the tree blobs holding the nodes, in name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Id>,
}

/// Errors from decoding a tree.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TreeError {
    #[error("tree is not valid JSON: {reason}")]
    Json { reason: String },
    #[error("tree entry name {name:?} is not allowed ({reason})")]
    BadName { name: String, reason: &'static str },
    #[error("tree entries are not sorted or contain a duplicate: {name:?}")]
    Order { name: String },
    #[error("tree entry {name:?} is inconsistent: {reason}")]
    Inconsistent { name: String, reason: &'static str },
    #[error("split tree is malformed: {reason}")]
    Split { reason: &'static str },
}

/// Checks one path component. Returns the reason it is refused.
pub fn check_name(name: &[u8]) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("empty");
    }
    if name == b"." || name == b".." {
        return Err("dot or dot-dot");
    }
    if name.contains(&b'/') {
        return Err("contains '/'");
    }
    if name.contains(&0) {
        return Err("contains NUL");
    }
    if name.len() > MAX_NAME_LEN {
        return Err("too long");
    }
    Ok(())
}

impl Tree {
    /// Sorts nodes by name bytes (the canonical order) and encodes.
    pub fn encode(&mut self) -> Vec<u8> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        serde_json::to_vec(self).expect("tree serializes")
    }

    /// Sorts nodes and encodes them as one blob if that stays within `max` bytes;
    /// otherwise as several part blobs (plain trees, in name order), each within `max`
    /// unless a single node alone is bigger. The caller stores the parts and then the split
    /// tree `Tree { nodes: vec![], parts: ids }`.
    pub fn encode_parts(&mut self, max: usize) -> Vec<Vec<u8>> {
        if !self.parts.is_empty() {
            // Already a split tree: encoded as it is.
            return vec![self.encode()];
        }
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        const HEAD: &[u8] = b"{\"nodes\":[";
        const TAIL: &[u8] = b"]}";
        let mut parts = Vec::new();
        let mut cur = HEAD.to_vec();
        let mut in_cur = 0usize;
        for n in &self.nodes {
            let enc = serde_json::to_vec(n).expect("node serializes");
            if in_cur > 0 && cur.len() + 1 + enc.len() + TAIL.len() > max {
                cur.extend_from_slice(TAIL);
                parts.push(std::mem::replace(&mut cur, HEAD.to_vec()));
                in_cur = 0;
            }
            if in_cur > 0 {
                cur.push(b',');
            }
            cur.extend_from_slice(&enc);
            in_cur += 1;
        }
        cur.extend_from_slice(TAIL);
        parts.push(cur);
        parts
    }

    /// Merges the decoded parts of a split tree (each from [`Tree::decode`]) into its
    /// listing, checking that they hold plain nodes and that names keep increasing across
    /// part boundaries. `parts` of the result are the split tree's.
    pub fn merge_parts(
        split: &Tree,
        parts: impl IntoIterator<Item = Tree>,
    ) -> Result<Tree, TreeError> {
        let mut nodes: Vec<Node> = Vec::new();
        for p in parts {
            if !p.parts.is_empty() {
                return Err(TreeError::Split {
                    reason: "a part is itself split",
                });
            }
            if let (Some(last), Some(first)) = (nodes.last(), p.nodes.first()) {
                if last.name >= first.name {
                    return Err(TreeError::Order {
                        name: first.display_name().chars().take(200).collect(),
                    });
                }
            }
            nodes.extend(p.nodes);
        }
        Ok(Tree {
            nodes,
            parts: split.parts.clone(),
        })
    }

    /// Decodes and validates a tree. Memory stays proportional to the input size.
    pub fn decode(bytes: &[u8]) -> Result<Self, TreeError> {
        let t: Tree = serde_json::from_slice(bytes).map_err(|e| TreeError::Json {
            reason: e.to_string(),
        })?;
        if !t.parts.is_empty() && !t.nodes.is_empty() {
            return Err(TreeError::Split {
                reason: "both nodes and parts",
            });
        }
        let mut prev: Option<&[u8]> = None;
        for n in &t.nodes {
            let shown = || {
                String::from_utf8_lossy(&n.name)
                    .chars()
                    .take(200)
                    .collect::<String>()
            };
            check_name(&n.name).map_err(|reason| TreeError::BadName {
                name: shown(),
                reason,
            })?;
            if prev.is_some_and(|p| p >= n.name.as_slice()) {
                return Err(TreeError::Order { name: shown() });
            }
            prev = Some(&n.name);
            let incons = |reason| {
                Err(TreeError::Inconsistent {
                    name: shown(),
                    reason,
                })
            };
            match n.kind {
                NodeKind::Dir if n.subtree.is_none() => return incons("directory without subtree"),
                NodeKind::Symlink if n.target.is_none() => return incons("symlink without target"),
                NodeKind::File => {}
                _ if !n.content.is_empty() => return incons("content on a non-file"),
                _ => {}
            }
            if n.kind != NodeKind::Dir && n.subtree.is_some() {
                return incons("subtree on a non-directory");
            }
        }
        Ok(t)
    }
}

mod hex_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(
                any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0),
                1..40,
            ),
            0usize..4,
            any::<u32>(),
            any::<i64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            proptest::option::of(any::<u64>()),
            proptest::collection::vec(any::<u8>(), 0..20),
        )
            .prop_filter("not . or ..", |(n, ..)| n != b"." && n != b"..")
            .prop_map(|(name, k, mode, mtime, blobs, lg, tgt)| {
                let kind = [
                    NodeKind::File,
                    NodeKind::Dir,
                    NodeKind::Symlink,
                    NodeKind::Fifo,
                ][k];
                let mut n = Node::new(name, kind);
                n.mode = mode & 0o7777;
                n.mtime_ns = mtime;
                n.link_group = lg;
                match kind {
                    NodeKind::File => {
                        n.content = blobs.into_iter().map(|b| Part::Blob(Id(b))).collect();
                        n.content.push(Part::Hole { hole: 4096 });
                        n.size = 7;
                    }
                    NodeKind::Dir => n.subtree = Some(Id([1; 32])),
                    NodeKind::Symlink => n.target = Some(tgt),
                    _ => {}
                }
                n.xattrs = vec![Xattr {
                    name: "user.k".into(),
                    value: vec![0, 255],
                }];
                n
            })
    }

    proptest! {
        #[test]
        fn roundtrip(nodes in proptest::collection::vec(arb_node(), 0..20)) {
            let mut t = Tree { nodes, parts: vec![] };
            t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
            t.nodes.dedup_by(|a, b| a.name == b.name);
            let enc = t.encode();
            prop_assert_eq!(Tree::decode(&enc).unwrap(), t);
        }

        #[test]
        fn split_roundtrip(
            nodes in proptest::collection::vec(arb_node(), 0..40),
            max in 20usize..2000,
        ) {
            let mut t = Tree { nodes, parts: vec![] };
            t.nodes.sort_by(|a, b| a.name.cmp(&b.name));
            t.nodes.dedup_by(|a, b| a.name == b.name);
            let whole = t.clone().encode();
            let parts = t.encode_parts(max);
            if whole.len() <= max {
                prop_assert_eq!(&parts, &vec![whole]);
            }
            for p in &parts {
                // Within the limit unless one node alone is over it.
                let one = Tree::decode(p).unwrap();
                prop_assert!(p.len() <= max || one.nodes.len() == 1);
            }
            let ids: Vec<Id> = (0..parts.len()).map(|i| Id([i as u8; 32])).collect();
            let mut split = Tree { nodes: vec![], parts: ids.clone() };
            let split = Tree::decode(&split.encode()).unwrap();
            let merged = Tree::merge_parts(
                &split,
                parts.iter().map(|p| Tree::decode(p).unwrap()),
            )
            .unwrap();
            prop_assert_eq!(&merged.nodes, &t.nodes);
            prop_assert_eq!(merged.parts, ids);
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&b);
        }
    }

    #[test]
    fn hostile_names_rejected() {
        for bad in [
            r#"{"nodes":[{"name":"..","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"a/b","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"/etc","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name_hex":"6100","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"b","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0},{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0},{"name":"a","type":"dir","subtree":"0000000000000000000000000000000000000000000000000000000000000000","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
            r#"{"nodes":[{"name":"d","type":"dir","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}"#,
        ] {
            assert!(Tree::decode(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn split_trees_refuse_mixing_and_disorder() {
        let id = "0000000000000000000000000000000000000000000000000000000000000000";
        let both = format!(
            r#"{{"nodes":[{{"name":"a","type":"fifo","mode":0,"uid":0,"gid":0,"mtime_ns":0}}],"parts":["{id}"]}}"#
        );
        assert!(Tree::decode(both.as_bytes()).is_err());
        let split = Tree::decode(format!(r#"{{"nodes":[],"parts":["{id}"]}}"#).as_bytes()).unwrap();
        let part = |n: &[u8]| Tree {
            nodes: vec![Node::new(n.to_vec(), NodeKind::Fifo)],
            parts: vec![],
        };
        assert!(Tree::merge_parts(&split, [part(b"b"), part(b"a")]).is_err());
        assert!(Tree::merge_parts(&split, [part(b"a"), part(b"a")]).is_err());
        assert!(Tree::merge_parts(&split, [part(b"a"), split.clone()]).is_err());
        assert_eq!(
            Tree::merge_parts(&split, [part(b"a"), part(b"b")])
                .unwrap()
                .nodes
                .len(),
            2
        );
    }

    #[test]
    fn non_utf8_names_roundtrip() {
        let mut t = Tree {
            nodes: vec![Node::new(vec![0xff, b'a', b'\n'], NodeKind::Fifo)],
            parts: vec![],
        };
        let enc = t.encode();
        assert!(String::from_utf8_lossy(&enc).contains("name_hex"));
        assert_eq!(Tree::decode(&enc).unwrap(), t);
    }
}
