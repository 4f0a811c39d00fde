//! Prune's tests: planning (which packs go, which are repacked, what the plan keeps) and
//! the two phases end to end on an in-memory repository.

use super::*;
use crate::progress::NoProgress;
use std::sync::Arc;

fn repo() -> (Repo, TenantKeys) {
    let (identity, public) = coop_formats::crypt::generate_identity();
    let (r, keyring) = Repo::init("memory:", vec![public], crate::now_rfc3339()).unwrap();
    let ids = coop_formats::crypt::parse_identities(identity.as_bytes()).unwrap();
    let keys = TenantKeys::from_keyring(keyring, Arc::new(ids)).unwrap();
    (r, keys)
}

fn backup(r: &Repo, keys: &TenantKeys, paths: Vec<std::path::PathBuf>) -> Id {
    let opts = crate::backup::BackupOptions {
        paths,
        host: "test".into(),
        ..Default::default()
    };
    crate::backup::backup(r, keys, &opts, &NoProgress)
        .unwrap()
        .id
}

/// Every blob the snapshot needs, by walking it.
fn needed(r: &Repo, keys: &TenantKeys, index: &Index, tree: Id) -> Vec<Id> {
    let reader = BlobReader::for_maintenance(r, keys, index).unwrap();
    let mut out = Vec::new();
    reader
        .walk(&tree, |_, n| {
            for p in &n.content {
                if let Part::Blob(id) = p {
                    out.push(*id);
                }
            }
            Ok(true)
        })
        .unwrap();
    out
}

/// A prune whose consolidated index is larger than one part writes several parts and
/// one plan per part; only the last condemns packs and names the objects to delete.
/// Afterwards the old index objects are gone, the parts hold every blob the kept
/// snapshot needs (each once), and the data reads back.
#[test]
fn a_large_consolidated_index_is_written_in_parts_each_with_its_plan() {
    let src = tempfile::tempdir().unwrap();
    for d in 0..2 {
        let dir = src.path().join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for i in 0..150 {
            std::fs::write(
                dir.join(format!("f{i}")),
                format!("file {d}/{i}\n").repeat(1 + i % 7),
            )
            .unwrap();
        }
    }
    let (r, keys) = repo();
    backup(&r, &keys, vec![src.path().to_path_buf()]);
    std::fs::remove_dir_all(src.path().join("d1")).unwrap();
    backup(&r, &keys, vec![src.path().to_path_buf()]);
    let policy = crate::forget::Policy {
        last: Some(1),
        ..Default::default()
    };
    crate::forget::forget(&r, &keys, &policy, Default::default(), false).unwrap();
    let before: Vec<Id> = r
        .list(Kind::Index, &keys.tag)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    let opts = PruneOptions {
        max_unused: 0.0,
        ..Default::default()
    };
    let rep = prune(&r, &keys, &opts, &NoProgress).unwrap();
    assert!(rep.plans_written > 1, "{rep:?}");
    assert_eq!(rep.plans_completed, rep.plans_written);
    assert!(rep.packs_deleted > 0, "{rep:?}");
    assert_eq!(rep.index_objects_deleted, before.len());
    assert!(r.list(Kind::Plan, &keys.tag).unwrap().is_empty());
    let after = crate::index::files(&r, &keys).unwrap();
    assert_eq!(after.len(), rep.plans_written);
    assert!(after.iter().all(|(n, f)| !before.contains(n)
        && f.entries.len() <= plan::PART_ENTRIES
        && f.signer.is_some()
        && f.superseded == before));
    let mut ids: Vec<Id> = after
        .iter()
        .flat_map(|(_, f)| f.entries.iter().map(|e| e.id))
        .collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a blob in two parts");
    let index = crate::index::load(&r, &keys).unwrap();
    let snaps = crate::snapshots::list(&r, &keys).unwrap();
    assert_eq!(snaps.entries.len(), 1);
    let tree = snaps.entries[0].snapshot.tree;
    let need = needed(&r, &keys, &index, tree);
    assert_eq!(need.len(), 150);
    let reader = BlobReader::for_maintenance(&r, &keys, &index).unwrap();
    let mut buf = Vec::new();
    for b in &need {
        assert!(ids.binary_search(b).is_ok());
        buf.clear();
        reader
            .blob(b, coop_formats::id::BlobType::Data, &mut buf)
            .unwrap();
    }
    // Nothing more to do.
    let again = prune(&r, &keys, &opts, &NoProgress).unwrap();
    assert_eq!(
        (again.plans_written, again.packs_deleted),
        (0, 0),
        "{again:?}"
    );
}

/// A backup of `dir` by one worker: one data pack and one tree pack.
fn one_pack_each(r: &Repo, keys: &TenantKeys, dir: &std::path::Path) {
    let opts = crate::backup::BackupOptions {
        paths: vec![dir.to_path_buf()],
        host: "test".into(),
        workers: 1,
        ..Default::default()
    };
    crate::backup::backup(r, keys, &opts, &NoProgress).unwrap();
}

/// Three backups of one directory (each one data pack and one tree pack), then all but the
/// last forgotten:
/// 1. files only it has: its packs end up wholly unused;
/// 2. a large, incompressible file only it has, and `keep.txt`: its data pack ends up
///    mostly unused;
/// 3. `keep.txt` again (deduplicated: its blob stays in the second backup's pack) and
///    `new.txt`.
struct Scenario {
    r: Repo,
    keys: TenantKeys,
    /// The packs each backup wrote.
    rounds: [HashSet<Id>; 3],
    keep: Vec<u8>,
    new: Vec<u8>,
    _src: tempfile::TempDir,
}

impl Scenario {
    fn new() -> Self {
        let src = tempfile::tempdir().unwrap();
        let dir = src.path().join("src");
        std::fs::create_dir(&dir).unwrap();
        let (r, keys) = repo();
        let packs = |r: &Repo| -> HashSet<Id> {
            r.list(Kind::Pack, &keys.tag)
                .unwrap()
                .into_iter()
                .map(|o| o.name)
                .collect()
        };
        for i in 0..3 {
            std::fs::write(
                dir.join(format!("gone{i}")),
                format!("only in the first {i}\n"),
            )
            .unwrap();
        }
        one_pack_each(&r, &keys, &dir);
        let first = packs(&r);
        for i in 0..3 {
            std::fs::remove_file(dir.join(format!("gone{i}"))).unwrap();
        }
        let mut big = vec![0u8; 256 << 10];
        blake3::Hasher::new()
            .update(b"incompressible")
            .finalize_xof()
            .fill(&mut big);
        std::fs::write(dir.join("big.bin"), &big).unwrap();
        let keep = b"kept by the last snapshot\n".repeat(20);
        std::fs::write(dir.join("keep.txt"), &keep).unwrap();
        one_pack_each(&r, &keys, &dir);
        let second: HashSet<Id> = packs(&r).difference(&first).copied().collect();
        std::fs::remove_file(dir.join("big.bin")).unwrap();
        let new = b"new in the last snapshot\n".repeat(10);
        std::fs::write(dir.join("new.txt"), &new).unwrap();
        one_pack_each(&r, &keys, &dir);
        let third: HashSet<Id> = packs(&r)
            .into_iter()
            .filter(|p| !first.contains(p) && !second.contains(p))
            .collect();
        let policy = crate::forget::Policy {
            last: Some(1),
            ..Default::default()
        };
        crate::forget::forget(&r, &keys, &policy, Default::default(), false).unwrap();
        assert!([&first, &second, &third].iter().all(|r| r.len() == 2));
        Self {
            r,
            keys,
            rounds: [first, second, third],
            keep,
            new,
            _src: src,
        }
    }

    /// The one snapshot left.
    fn tree(&self) -> Id {
        let snaps = crate::snapshots::list(&self.r, &self.keys).unwrap();
        assert_eq!(snaps.entries.len(), 1);
        snaps.entries[0].snapshot.tree
    }

    /// Every blob the snapshot left needs, trees included, with the data blob of each file
    /// by name.
    fn needs(&self, index: &Index) -> (Vec<Id>, HashMap<String, Id>) {
        let reader = BlobReader::for_maintenance(&self.r, &self.keys, index).unwrap();
        let root = self.tree();
        let mut all = vec![root];
        let mut files = HashMap::new();
        reader
            .walk(&root, |_, n| {
                all.extend(n.subtree);
                for p in &n.content {
                    if let Part::Blob(id) = p {
                        all.push(*id);
                        files.insert(n.display_name(), *id);
                    }
                }
                Ok(true)
            })
            .unwrap();
        (all, files)
    }

    /// Phase 1's decision, as [`prune`] makes it.
    fn decide(&self, opts: &PruneOptions) -> (plan::Candidates, PruneReport) {
        let mut rep = PruneReport::default();
        let mut used = Used::new(&self.r).unwrap();
        let view = View::read(&self.r, &self.keys, used.dir(), &mut rep.warnings).unwrap();
        let index = view.index(&self.keys, used.dir()).unwrap();
        let reader = BlobReader::for_maintenance(&self.r, &self.keys, &index).unwrap();
        walk_used(
            &reader,
            view.snapshots.iter().map(|e| &e.snapshot),
            &mut used,
        )
        .unwrap();
        plan::check_needed_present(&view, &index, &used).unwrap();
        let c = plan::decide(&view, &index, &used, opts, &mut rep).unwrap();
        (c, rep)
    }
}

/// The first backup's packs hold nothing the snapshot left needs: they are unused. The
/// second's data pack holds `keep.txt` (small) beside a large file nobody needs: it is
/// repacked. The last backup's packs are left alone. With a threshold of 1.0 nothing is
/// repacked, and the unused packs still go.
#[test]
fn a_plan_drops_unused_packs_and_repacks_mostly_unused_ones() {
    let s = Scenario::new();
    let [first, second, third] = &s.rounds;
    let index = crate::index::load(&s.r, &s.keys).unwrap();
    let (_, files) = s.needs(&index);
    let keep_pack = index.pack_id(&index.get(&files["keep.txt"]).unwrap().unwrap());
    assert!(second.contains(&keep_pack));

    let (c, rep) = s.decide(&PruneOptions::default());
    assert_eq!(c.repack, vec![keep_pack]);
    let unused: HashSet<Id> = c.unused.iter().copied().collect();
    let second_rest: HashSet<Id> = second
        .iter()
        .filter(|p| **p != keep_pack)
        .copied()
        .collect();
    let expected: HashSet<Id> = first.union(&second_rest).copied().collect();
    assert_eq!(unused, expected);
    assert!(third
        .iter()
        .all(|p| !unused.contains(p) && !c.repack.contains(p)));
    assert_eq!((rep.packs_unused, rep.packs_to_repack), (expected.len(), 1));
    // The large file's bytes are among those to free; what the snapshot needs is used.
    assert!(rep.bytes_to_free > 256 << 10, "{rep:?}");
    assert!(rep.bytes_used > 0, "{rep:?}");

    let (c, rep) = s.decide(&PruneOptions {
        max_unused: 1.0,
        ..Default::default()
    });
    assert!(c.repack.is_empty(), "{rep:?}");
    assert_eq!(c.unused.iter().copied().collect::<HashSet<Id>>(), expected);
}

/// Phase 1 (plans written, their grace not over) condemns the first two backups' packs and
/// copies `keep.txt` out: the consolidated index puts every blob the snapshot left needs in
/// a pack that stays. Phase 2 deletes exactly the condemned packs; the data reads back and
/// `check --read-data` finds nothing wrong.
#[test]
fn a_plan_keeps_every_blob_the_kept_snapshot_needs() {
    let s = Scenario::new();
    let [first, second, third] = &s.rounds;
    let waiting = PruneOptions {
        grace: Duration::from_secs(3600),
        ..Default::default()
    };
    let rep = prune(&s.r, &s.keys, &waiting, &NoProgress).unwrap();
    assert!(rep.plans_written >= 1, "{rep:?}");
    assert_eq!((rep.packs_written, rep.packs_deleted), (1, 0), "{rep:?}");
    let plans = signed_plans(&s.r, &s.keys, &mut Vec::new()).unwrap();
    assert_eq!(plans.len(), rep.plans_written);
    let condemned: HashSet<Id> = plans.iter().flat_map(|(_, p)| p.packs.clone()).collect();
    let expected: HashSet<Id> = first.union(second).copied().collect();
    assert_eq!(condemned, expected);
    let new_packs: HashSet<Id> = plans
        .iter()
        .flat_map(|(_, p)| p.new_packs.clone())
        .collect();
    assert_eq!(new_packs.len(), 1);
    assert!(new_packs.iter().all(|p| !condemned.contains(p)));

    // The index readers load now (the plan's parts supersede every older object).
    let index = crate::index::load(&s.r, &s.keys).unwrap();
    let (needs, files) = s.needs(&index);
    for b in &needs {
        let loc = index.get(b).unwrap().expect("indexed");
        let p = index.pack_id(&loc);
        assert!(!condemned.contains(&p), "blob {b} only in a condemned pack");
        assert!(third.contains(&p) || new_packs.contains(&p));
    }
    let keep_loc = index.get(&files["keep.txt"]).unwrap().unwrap();
    assert!(new_packs.contains(&index.pack_id(&keep_loc)));

    let rep = prune(&s.r, &s.keys, &PruneOptions::default(), &NoProgress).unwrap();
    assert_eq!(rep.plans_completed, plans.len(), "{rep:?}");
    assert_eq!(rep.packs_deleted, condemned.len(), "{rep:?}");
    assert_eq!(rep.packs_rescued, 0);
    let left: HashSet<Id> =
        s.r.list(Kind::Pack, &s.keys.tag)
            .unwrap()
            .into_iter()
            .map(|o| o.name)
            .collect();
    let expected_left: HashSet<Id> = third.union(&new_packs).copied().collect();
    assert_eq!(left, expected_left);

    let index = crate::index::load(&s.r, &s.keys).unwrap();
    let reader = BlobReader::for_maintenance(&s.r, &s.keys, &index).unwrap();
    for (name, want) in [("keep.txt", &s.keep), ("new.txt", &s.new)] {
        let mut got = Vec::new();
        reader
            .blob(&files[name], coop_formats::id::BlobType::Data, &mut got)
            .unwrap();
        assert_eq!(&got, want, "{name}");
    }
    let check =
        crate::check::check(&s.r, &s.keys, Some(crate::check::Subset::All), &NoProgress).unwrap();
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    assert!(check.unreferenced_packs.is_empty(), "{check:?}");
}

/// A keyring from before the tenant's data key changed: the snapshot written after the change
/// does not open with it. It is reported as unreadable (not forged), and neither forget nor
/// prune acts on a view that may be missing it: its data stays.
#[test]
fn forget_and_prune_refuse_while_a_snapshot_does_not_open_with_the_keys() {
    let (identity, public) = coop_formats::crypt::generate_identity();
    let (r, keyring) = Repo::init("memory:", vec![public], crate::now_rfc3339()).unwrap();
    let ids = Arc::new(coop_formats::crypt::parse_identities(identity.as_bytes()).unwrap());
    let mut newer = keyring.clone();
    let old = TenantKeys::from_keyring(keyring, ids.clone()).unwrap();
    newer.rotate_data_identity().unwrap();
    let new = TenantKeys::from_keyring(newer, ids).unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a"), b"before the change").unwrap();
    backup(&r, &old, vec![src.path().to_path_buf()]);
    std::fs::write(src.path().join("a"), b"after the change").unwrap();
    let after = backup(&r, &new, vec![src.path().to_path_buf()]);
    let view = crate::snapshots::view(&r, &old).unwrap();
    assert_eq!(view.listing.entries.len(), 1);
    let p = &view.listing.problems;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].kind, crate::damage::ProblemKind::Unreadable);
    assert!(p[0]
        .to_string()
        .contains("cannot be read with the keys given"));
    let policy = crate::forget::Policy {
        last: Some(1),
        ..Default::default()
    };
    let e = crate::forget::forget(&r, &old, &policy, Default::default(), false).unwrap_err();
    assert!(e.to_string().contains("forget refuses"), "{e}");
    let e = prune(&r, &old, &PruneOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("prune refuses"), "{e}");
    // With the current keys both snapshots open, and the newer one is whole.
    let view = crate::snapshots::view(&r, &new).unwrap();
    assert!(view.listing.problems.is_empty());
    assert!(view.listing.entries.iter().any(|e| e.id == after));
}
