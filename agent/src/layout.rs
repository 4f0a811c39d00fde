//! The repository layout: every kind of stored object, where it lives, and which commands
//! handle it. This is the one list of object kinds; scrub, replicate, check and usage use it.
//!
//! ```text
//! config                                  fixed name (SPEC section 4)
//! <kind dir>/<tenant tag hex>/<name>      every other object; name = BLAKE3 of its bytes
//! packs/<tenant tag hex>/<name[..2]>/<name>
//! ```

use coop_formats::envelope::{ObjectType, TenantTag};
use coop_formats::id::Id;

/// The fixed name of the repository config.
pub const CONFIG: &str = "config";

/// A kind of content-addressed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Keyring,
    Pack,
    Index,
    Registry,
    Writers,
    Protection,
    Forgotten,
    Snapshot,
    Lock,
    Plan,
}

impl Kind {
    /// Every kind, in replication order (snapshots after everything they may need).
    pub const ALL: [Kind; 10] = [
        Kind::Keyring,
        Kind::Writers,
        Kind::Registry,
        Kind::Pack,
        Kind::Index,
        Kind::Protection,
        Kind::Forgotten,
        Kind::Snapshot,
        Kind::Lock,
        Kind::Plan,
    ];

    /// The top-level directory.
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Keyring => "keys",
            Kind::Pack => "packs",
            Kind::Index => "index",
            Kind::Registry => "registry",
            Kind::Writers => "writers",
            Kind::Protection => "protected",
            Kind::Forgotten => "forgotten",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
            Kind::Plan => "plans",
        }
    }

    /// The header type objects of this kind carry.
    pub fn object_type(self) -> ObjectType {
        match self {
            Kind::Keyring => ObjectType::Keyring,
            Kind::Pack => ObjectType::Pack,
            Kind::Index => ObjectType::Index,
            Kind::Registry => ObjectType::Registry,
            Kind::Writers => ObjectType::Writers,
            Kind::Protection => ObjectType::Protection,
            Kind::Forgotten => ObjectType::Forgotten,
            Kind::Snapshot => ObjectType::Snapshot,
            Kind::Lock => ObjectType::Lock,
            Kind::Plan => ObjectType::PrunePlan,
        }
    }

    /// The largest stored object of this kind a reader fetches: its format's limit with room
    /// for the envelope and encryption (`slack`). A larger object cannot be valid and is
    /// refused by its size before it is read, so a lying site cannot make a reader allocate
    /// whatever it serves.
    pub fn max_stored(self) -> usize {
        use coop_formats::{control, index, keyring, pack, snapshot, writers};
        // age adds a 16-byte tag per 64 KiB chunk; 1 MiB covers headers and stanzas.
        let slack = |l: usize| l + l / 4096 + (1 << 20);
        match self {
            Kind::Keyring => slack(keyring::MAX_KEYRING_LEN),
            Kind::Pack => pack::MAX_STORED_PACK_LEN,
            Kind::Index => index::MAX_INDEX_LEN,
            Kind::Writers => slack(writers::MAX_LEN),
            // The inventory (a count and 33 bytes per pack) is stored in front of the snapshot.
            Kind::Snapshot => 4 + snapshot::MAX_INVENTORY * 33 + slack(snapshot::MAX_SNAPSHOT_LEN),
            Kind::Registry | Kind::Protection | Kind::Forgotten | Kind::Lock | Kind::Plan => {
                slack(control::MAX_CONTROL_LEN)
            }
        }
    }

    /// Whether replication copies this kind. Locks and prune plans belong to one site.
    pub fn replicated(self) -> bool {
        !matches!(self, Kind::Lock | Kind::Plan)
    }

    /// Every kind that is replicated, in copy order.
    pub fn replicated_kinds() -> impl Iterator<Item = Kind> {
        Self::ALL.into_iter().filter(|k| k.replicated())
    }

    /// `<dir>/<tag>`: the prefix under which one tenant's objects of this kind are listed.
    pub fn prefix(self, tag: &TenantTag) -> String {
        format!("{}/{}", self.dir(), hex::encode(tag))
    }

    /// The store path of one object.
    pub fn path(self, tag: &TenantTag, name: &Id) -> String {
        let h = name.to_hex();
        match self {
            Kind::Pack => format!("{}/{}/{}", self.prefix(tag), &h[..2], h),
            _ => format!("{}/{}", self.prefix(tag), h),
        }
    }

    /// The kind of a top-level directory name.
    pub fn of_dir(dir: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.dir() == dir)
    }
}

/// An object path taken apart: kind, tenant tag and name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectPath {
    pub kind: Kind,
    pub tag: TenantTag,
    pub name: Id,
}

impl ObjectPath {
    /// Parses a store path; `None` for anything that is not exactly a well-formed object path
    /// (a temporary file, a stray file, a pack outside its fan-out directory, …).
    pub fn parse(path: &str) -> Option<Self> {
        let mut parts = path.split('/');
        let kind = Kind::of_dir(parts.next()?)?;
        let mut tag = [0u8; 16];
        hex::decode_to_slice(parts.next()?, &mut tag).ok()?;
        let name: Id = match kind {
            Kind::Pack => {
                let fan = parts.next()?;
                let name: Id = parts.next()?.parse().ok()?;
                if fan != &name.to_hex()[..2] {
                    return None;
                }
                name
            }
            _ => parts.next()?.parse().ok()?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self { kind, tag, name })
    }

    pub fn to_path(&self) -> String {
        self.kind.path(&self.tag, &self.name)
    }
}

/// The object name (last path component) of a listed object.
pub fn name_of(path: &str) -> Option<Id> {
    path.rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_bounded_above_its_formats_limit() {
        use coop_formats::{control, index, keyring, pack, snapshot, writers};
        for k in Kind::ALL {
            let format = match k {
                Kind::Keyring => keyring::MAX_KEYRING_LEN,
                Kind::Pack => pack::MAX_PACK_LEN,
                Kind::Index => index::MAX_INDEX_LEN,
                Kind::Writers => writers::MAX_LEN,
                Kind::Snapshot => snapshot::MAX_SNAPSHOT_LEN + snapshot::MAX_INVENTORY * 33,
                _ => control::MAX_CONTROL_LEN,
            };
            // A valid object is never refused, and no bound lets a reader take more than
            // an index object may be (the largest kind).
            assert!(k.max_stored() >= format, "{k:?}");
            assert!(k.max_stored() <= index::MAX_INDEX_LEN, "{k:?}");
        }
    }

    #[test]
    fn paths_round_trip_and_strays_are_refused() {
        let tag = [0xab; 16];
        let name = Id([0x3c; 32]);
        for k in Kind::ALL {
            let p = k.path(&tag, &name);
            assert_eq!(
                ObjectPath::parse(&p),
                Some(ObjectPath { kind: k, tag, name }),
                "{p}"
            );
            assert!(p.starts_with(&k.prefix(&tag)));
        }
        assert_eq!(
            Kind::Pack.path(&tag, &name),
            format!("packs/{}/3c/{}", hex::encode(tag), name)
        );
        let h = name.to_hex();
        for stray in [
            format!("packs/{}/{h}", hex::encode(tag)),
            format!("packs/{}/00/{h}", hex::encode(tag)),
            format!("index/{}/{h}.tmp", hex::encode(tag)),
            format!("index/{}/{h}/x", hex::encode(tag)),
            format!("nothing/{}/{h}", hex::encode(tag)),
            "config".to_string(),
        ] {
            assert_eq!(ObjectPath::parse(&stray), None, "{stray}");
        }
    }

    #[test]
    fn site_local_kinds_are_not_replicated() {
        let r: Vec<Kind> = Kind::replicated_kinds().collect();
        assert!(!r.contains(&Kind::Lock) && !r.contains(&Kind::Plan));
        assert_eq!(r.last(), Some(&Kind::Snapshot), "snapshots are copied last");
        assert!(r.contains(&Kind::Registry));
    }
}
