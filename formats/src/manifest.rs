//! Signed per-file manifests: what a member's export must contain.
//!
//! The agent builds the manifest while it backs up a member tenant (a BLAKE3 of every file's
//! content, computed as the data streams through) and signs it with its ed25519 key, so a
//! later export cannot forge it. An export carries it as `manifest.json`; `coop verify` checks
//! the export against it with no secret at all.
//!
//! ```text
//! SignedManifest { payload: <JSON text of Manifest>, signer: <hex ed25519 public key>, signature: <hex> }
//! signature = ed25519(signer, "coop-manifest-v1\0" || payload)
//! ```

use crate::id::Id;
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};

pub const SIG_DOMAIN: &[u8] = b"coop-manifest-v1\0";
pub const FORMAT: &str = "coop-manifest";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Path relative to the snapshot root, `/`-separated (UTF-8; else `path_hex`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub size: u64,
    pub mode: u32,
    pub mtime_ns: i64,
    /// BLAKE3 of the file's content, hex.
    pub blake3: String,
}

impl ManifestFile {
    pub fn path_bytes(&self) -> Vec<u8> {
        match &self.path_hex {
            Some(h) => hex::decode(h).unwrap_or_default(),
            None => self.path.as_bytes().to_vec(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub repo_id: Id,
    pub tenant: String,
    /// The site (writer) that made the snapshot.
    pub site: String,
    /// RFC 3339.
    pub time: String,
    /// Root tree of the snapshot.
    pub tree: Id,
    /// The snapshot's source paths, relative to its root (`srv/nextcloud/data/alice/files`):
    /// an export names each file after the last component of its source, so a member gets
    /// their own tree, not the server's layout.
    #[serde(default)]
    pub sources: Vec<String>,
    pub files: Vec<ManifestFile>,
}

impl Manifest {
    /// Where each file goes in an export (relative path bytes, in the order of `files`):
    /// below the export root of the longest source that holds it. A source may mark its
    /// export root with a `.` component (`var/lib/prosody/HOST/./accounts/alice.dat`, as
    /// rsync's `--relative` does): the file keeps its path below the mark
    /// (`accounts/alice.dat`). A source without a mark is named after its last component
    /// (`/srv/mail/alice` → `alice/…`). A file under no source, or whose source's name another
    /// source shares, keeps its full path, and so does every file whose export path another
    /// file would get too. Deterministic from the signed manifest alone, so an export's
    /// layout cannot be rearranged without `verify` noticing (SPEC 16.2).
    pub fn export_paths(&self) -> Vec<Vec<u8>> {
        self.export_paths_among(&self.sources)
    }

    /// [`Self::export_paths`] with another list of sources: an export of several snapshots
    /// (one per job of a member) lays each out among the sources of all of them (SPEC 16.2).
    pub fn export_paths_among(&self, sources: &[String]) -> Vec<Vec<u8>> {
        // (the path the source matches files by, the name it gives them)
        let sources: Vec<(Vec<u8>, Vec<u8>)> = sources
            .iter()
            .map(|s| s.trim_matches('/').as_bytes())
            .filter(|s| !s.is_empty())
            .map(source_root)
            .collect();
        // Counted once, not source by source: a hostile manifest may name millions.
        let mut names = std::collections::HashMap::new();
        for (_, n) in &sources {
            *names.entry(n.as_slice()).or_insert(0usize) += 1;
        }
        let unique: Vec<bool> = sources
            .iter()
            .map(|(_, n)| names[n.as_slice()] == 1)
            .collect();
        // Source path → the source that matches files by it (the last of equal ones).
        let by_path: std::collections::HashMap<&[u8], usize> = sources
            .iter()
            .enumerate()
            .map(|(i, (s, _))| (s.as_slice(), i))
            .collect();
        let mut out: Vec<Vec<u8>> = self
            .files
            .iter()
            .map(|f| {
                let p = f.path_bytes();
                // The longest source that is the path or one of its parent directories:
                // looked up at each `/`, from the whole path down.
                let best = std::iter::once(p.len())
                    .chain(
                        p.iter()
                            .enumerate()
                            .rev()
                            .filter(|(_, b)| **b == b'/')
                            .map(|(i, _)| i),
                    )
                    .find_map(|end| by_path.get(&p[..end]).map(|&i| (i, &sources[i])));
                match best {
                    Some((i, (s, name))) if unique[i] => {
                        let mut out = name.clone();
                        out.extend_from_slice(&p[s.len()..]);
                        out
                    }
                    _ => p,
                }
            })
            .collect();
        // Two files at one export path: each keeps its full path; if even that collides,
        // every file does (full paths are distinct).
        let mut count = std::collections::HashMap::new();
        for p in &out {
            *count.entry(p.clone()).or_insert(0usize) += 1;
        }
        if count.values().any(|n| *n > 1) {
            for (o, f) in out.iter_mut().zip(&self.files) {
                if count[o] > 1 {
                    *o = f.path_bytes();
                }
            }
            let distinct: std::collections::HashSet<&Vec<u8>> = out.iter().collect();
            if distinct.len() < out.len() {
                out = self.files.iter().map(|f| f.path_bytes()).collect();
            }
        }
        out
    }
}

/// A source (without leading or trailing `/`) as (the path it matches files by, the name it
/// gives them): with a `.` component (the export root, the first one counts), the path
/// without it and what follows it; else the source and its last component. A mark with
/// nothing after it is no mark.
fn source_root(s: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let parts: Vec<&[u8]> = s.split(|b| *b == b'/').collect();
    match parts.iter().position(|c| *c == b".") {
        Some(i) if i + 1 < parts.len() => {
            let kept: Vec<&[u8]> = parts[i + 1..]
                .iter()
                .copied()
                .filter(|c| *c != b".")
                .collect();
            let full: Vec<&[u8]> = parts[..i].iter().copied().chain(kept.clone()).collect();
            (full.join(&b'/'), kept.join(&b'/'))
        }
        _ => {
            let full: Vec<&[u8]> = parts.iter().copied().filter(|c| *c != b".").collect();
            let last = full.last().copied().unwrap_or(s).to_vec();
            (full.join(&b'/'), last)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedManifest {
    pub payload: String,
    pub signer: String,
    pub signature: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is malformed: {reason}")]
    Malformed { reason: String },
    #[error("manifest signature does not verify: the manifest was changed or re-signed")]
    BadSignature,
}

impl SignedManifest {
    pub fn sign(m: &Manifest, key: &ed25519_dalek::SigningKey) -> Self {
        let payload = serde_json::to_string(m).expect("serializes");
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(payload.as_bytes());
        Self {
            signer: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(key.sign(&msg).to_bytes()),
            payload,
        }
    }

    /// Checks the signature; returns the manifest and the signer's public key.
    pub fn verify(&self) -> Result<(Manifest, [u8; 32]), ManifestError> {
        let pk: [u8; 32] = crate::hex_array(&self.signer).ok_or(ManifestError::Malformed {
            reason: "bad signer".into(),
        })?;
        let sig: [u8; 64] = crate::hex_array(&self.signature).ok_or(ManifestError::Malformed {
            reason: "bad signature".into(),
        })?;
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&pk)
            .map_err(|_| ManifestError::BadSignature)?;
        let mut msg = SIG_DOMAIN.to_vec();
        msg.extend_from_slice(self.payload.as_bytes());
        vk.verify(&msg, &ed25519_dalek::Signature::from_bytes(&sig))
            .map_err(|_| ManifestError::BadSignature)?;
        let m: Manifest =
            serde_json::from_str(&self.payload).map_err(|e| ManifestError::Malformed {
                reason: e.to_string(),
            })?;
        if m.format != FORMAT || m.version != 1 {
            return Err(ManifestError::Malformed {
                reason: format!("unsupported manifest {} v{}", m.format, m.version),
            });
        }
        Ok((m, pk))
    }
}

/// A short, human-comparable fingerprint of a signing key (BLAKE3, 16 hex digits in groups).
pub fn fingerprint(public_key: &[u8; 32]) -> String {
    let h = blake3::hash(public_key).to_hex();
    let h = &h.as_str()[..16];
    format!("{}:{}:{}:{}", &h[0..4], &h[4..8], &h[8..12], &h[12..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(files: Vec<ManifestFile>) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: 1,
            repo_id: Id([1; 32]),
            tenant: "member/a".into(),
            site: "s".into(),
            time: "t".into(),
            tree: Id([2; 32]),
            sources: vec![],
            files,
        }
    }

    #[test]
    fn export_paths_follow_the_sources() {
        let f = |p: &str| ManifestFile {
            path: p.into(),
            path_hex: None,
            size: 0,
            mode: 0,
            mtime_ns: 0,
            blake3: String::new(),
        };
        let mut man = m(vec![
            f("srv/nextcloud/data/alice/files/a.txt"),
            f("srv/nextcloud/data/alice/files/sub/b.txt"),
            f("notes.csv"),
            f("srv/other/x"),
        ]);
        man.sources = vec![
            "/srv/nextcloud/data/alice/files".into(),
            "/notes.csv".into(),
        ];
        let got: Vec<String> = man
            .export_paths()
            .into_iter()
            .map(|p| String::from_utf8(p).unwrap())
            .collect();
        assert_eq!(
            got,
            ["files/a.txt", "files/sub/b.txt", "notes.csv", "srv/other/x"]
        );
        // Two sources with the same last name keep their full paths.
        man.sources.push("/home/alice/files".into());
        assert_eq!(
            man.export_paths()[0],
            b"srv/nextcloud/data/alice/files/a.txt"
        );
        // One source directory: named after it, like every other.
        man.sources = vec!["/srv/nextcloud/data/alice/files".into()];
        assert_eq!(man.export_paths()[1], b"files/sub/b.txt");
    }

    #[test]
    fn a_marked_export_root_keeps_the_path_below_it() {
        let f = |p: &str| ManifestFile {
            path: p.into(),
            path_hex: None,
            size: 0,
            mode: 0,
            mtime_ns: 0,
            blake3: String::new(),
        };
        let got = |man: &Manifest| -> Vec<String> {
            man.export_paths()
                .into_iter()
                .map(|p| String::from_utf8(p).unwrap())
                .collect()
        };
        let h = "var/lib/prosody/example%2ecoop";
        let mut man = m(vec![
            f(&format!("{h}/accounts/alice.dat")),
            f(&format!("{h}/archive/alice.list")),
            f(&format!("{h}/roster/alice.dat")),
            f("notes.csv"),
        ]);
        man.sources = vec![
            format!("/{h}/./accounts/alice.dat"),
            format!("/{h}/./archive/alice.list"),
            format!("/{h}/./roster/alice.dat"),
            "/notes.csv".into(),
        ];
        assert_eq!(
            got(&man),
            [
                "accounts/alice.dat",
                "archive/alice.list",
                "roster/alice.dat",
                "notes.csv"
            ]
        );
        // Without the marks the same names collide: full paths (as before marks existed).
        man.sources = man.sources.iter().map(|s| s.replace("/./", "/")).collect();
        assert_eq!(got(&man)[0], format!("{h}/accounts/alice.dat"));
        assert_eq!(got(&man)[2], format!("{h}/roster/alice.dat"));
        // A mark higher up, and one with nothing after it (no mark).
        man.sources = vec!["var/./lib".into(), "notes.csv/.".into()];
        assert_eq!(got(&man)[0], format!("{}/accounts/alice.dat", &h[4..]));
        assert_eq!(got(&man)[3], "notes.csv");
        // The same marked name twice (alice on two hosts): both keep their full paths.
        let mut two = m(vec![
            f("d/a.org/./accounts/alice.dat".replace("/./", "/").as_str()),
            f("d/b.org/accounts/alice.dat"),
        ]);
        two.sources = vec![
            "d/a.org/./accounts/alice.dat".into(),
            "d/b.org/./accounts/alice.dat".into(),
        ];
        assert_eq!(
            got(&two),
            ["d/a.org/accounts/alice.dat", "d/b.org/accounts/alice.dat"]
        );
        // Two sources whose names differ but whose files meet: each keeps its full path.
        let mut meet = m(vec![f("x/accounts/alice.dat"), f("y/accounts/alice.dat")]);
        meet.sources = vec!["x/accounts".into(), "y/./accounts/alice.dat".into()];
        assert_eq!(got(&meet), ["x/accounts/alice.dat", "y/accounts/alice.dat"]);
    }

    proptest! {
        #[test]
        fn roundtrip(paths in proptest::collection::vec("[a-z/]{1,20}", 0..10), size in any::<u64>()) {
            let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
            let files = paths.into_iter().map(|p| ManifestFile { path: p, path_hex: None, size, mode: 0o644, mtime_ns: -1, blake3: "00".into() }).collect();
            let man = m(files);
            let s = SignedManifest::sign(&man, &key);
            let (back, pk) = s.verify().unwrap();
            prop_assert_eq!(back, man);
            prop_assert_eq!(pk, key.verifying_key().to_bytes());
        }
    }

    #[test]
    fn tampering_is_detected() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let s = SignedManifest::sign(&m(vec![]), &key);
        let mut edited = s.clone();
        edited.payload = edited.payload.replace("member/a", "member/b");
        assert!(matches!(edited.verify(), Err(ManifestError::BadSignature)));
        // Re-signed with a foreign key: verifies, but under another key (verify --trust catches it).
        let resigned =
            SignedManifest::sign(&edited.verify().err().map(|_| m(vec![])).unwrap(), &other);
        assert_ne!(resigned.verify().unwrap().1, key.verifying_key().to_bytes());
        assert_eq!(fingerprint(&[0; 32]).len(), 19);
    }
}
