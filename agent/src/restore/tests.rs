//! Restore's unit tests: batches, hard links across batches, and the packs fetched ahead
//! from a remote store (also as a lying site).

use super::*;
use crate::keys::TenantKeys;
use crate::progress::NoProgress;
use crate::repo::Repo;
use std::os::unix::fs::MetadataExt;

fn repo() -> (Repo, TenantKeys) {
    repo_with(coop_formats::config::ChunkerParams::default())
}

fn repo_with(chunker: coop_formats::config::ChunkerParams) -> (Repo, TenantKeys) {
    let (identity, public) = coop_formats::crypt::generate_identity();
    let (r, keyring) =
        Repo::init_with("memory:", vec![public], crate::now_rfc3339(), chunker).unwrap();
    let ids = coop_formats::crypt::parse_identities(identity.as_bytes()).unwrap();
    let keys = TenantKeys::from_keyring(keyring, std::sync::Arc::new(ids)).unwrap();
    (r, keys)
}

/// Backs `root` up; the index and the snapshot's tree.
fn backed_up(r: &Repo, keys: &TenantKeys, root: &Path) -> (crate::index::Index, Id) {
    let opts = crate::backup::BackupOptions {
        paths: vec![root.to_path_buf()],
        host: "test".into(),
        ..Default::default()
    };
    crate::backup::backup(r, keys, &opts, &NoProgress).unwrap();
    let index = crate::index::load(r, keys).unwrap();
    let tree = crate::snapshots::list(r, keys).unwrap().entries[0]
        .snapshot
        .tree;
    (index, tree)
}

fn tree_of(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
                out.push((rel, None));
            } else if m.is_symlink() {
                out.push((
                    rel,
                    Some(
                        std::fs::read_link(&p)
                            .unwrap()
                            .as_os_str()
                            .as_bytes()
                            .to_vec(),
                    ),
                ));
            } else {
                out.push((rel, Some(std::fs::read(&p).unwrap())));
            }
        }
    }
    out.sort();
    out
}

/// Restores the tree `tree` into `target` with the default options.
fn restore_tree(reader: &BlobReader, tree: Id, target: &Path) -> RestoreReport {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        ..Default::default()
    };
    restore(reader, RestoreRoot::Tree(tree), &opts, &NoProgress).unwrap()
}

/// Two directories backed up one after the other (so their data is in two packs): the
/// repository, the index, and the trees of the two snapshots.
fn two_snapshots(src: &Path) -> (Repo, TenantKeys, crate::index::Index, Id, Id) {
    let (r, keys) = repo();
    let mut trees = Vec::new();
    for (name, seed) in [("a", 3u64), ("b", 7)] {
        let dir = src.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        // Incompressible, so that each pack holds what its snapshot wrote.
        let mut x = seed;
        let bytes: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        std::fs::write(dir.join("f"), bytes).unwrap();
        backed_up(&r, &keys, &dir);
        let listed = crate::snapshots::list(&r, &keys).unwrap().entries;
        let new = listed
            .iter()
            .map(|e| e.snapshot.tree)
            .find(|t| !trees.contains(t));
        trees.push(new.unwrap());
    }
    let index = crate::index::load(&r, &keys).unwrap();
    (r, keys, index, trees[0], trees[1])
}

/// The pack holding the first blob of the one file below `tree`, and its stored bytes.
fn pack_of_file(
    r: &Repo,
    keys: &TenantKeys,
    reader: &BlobReader,
    tree: &Id,
) -> (Id, String, Vec<u8>) {
    let mut file = None;
    plan::walk(
        reader,
        RestoreRoot::Tree(*tree),
        &Patterns::new(&[]).unwrap(),
        &Patterns::new(&[]).unwrap(),
        |it| {
            if it.node.kind == NodeKind::File {
                file = Some(it.node);
            }
            Ok(())
        },
    )
    .unwrap();
    let Part::Blob(id) = file.unwrap().content[0] else {
        panic!("a file of data")
    };
    let loc = reader.index.get(&id).unwrap().unwrap();
    let pack = reader.index.pack_id(&loc);
    let path = crate::layout::Kind::Pack.path(&keys.tag, &pack);
    let bytes = r.store.get(&path).unwrap().to_vec();
    (pack, path, bytes)
}

/// From a remote store the first packs are fetched while the files are created: what
/// arrives is the stored object, handed out once; a pack not fetched ahead is not there.
#[test]
fn prefetched_packs_are_the_stored_bytes_handed_out_once() {
    let src = tempfile::tempdir().unwrap();
    let (r, keys, index, a, b) = two_snapshots(src.path());
    assert!(
        !r.store.is_local(),
        "memory: is a remote store to the restore"
    );
    let reader = BlobReader::new(&r, &keys, &index).unwrap();
    let mut items = Vec::new();
    let none = Patterns::new(&[]).unwrap();
    plan::walk(&reader, RestoreRoot::Tree(a), &none, &none, |it| {
        items.push(it);
        Ok(())
    })
    .unwrap();
    let (pack_a, _, bytes_a) = pack_of_file(&r, &keys, &reader, &a);
    let (pack_b, _, _) = pack_of_file(&r, &keys, &reader, &b);
    assert_ne!(pack_a, pack_b);
    std::thread::scope(|s| {
        let ahead = prefetch::Prefetched::start(s, &reader, &items, |_| false, 4);
        assert!(ahead.take(&pack_b).is_none(), "not a pack of this batch");
        assert_eq!(ahead.take(&pack_a).unwrap().unwrap(), bytes_a);
        assert!(ahead.take(&pack_a).is_none(), "handed out once");
    });
}

/// A storage site that serves other bytes for a pack (another valid pack of the same
/// tenant, or the pack with one bit flipped) gets nothing into the target through the
/// packs fetched ahead: they are checked as any fetched pack is, the file fails and is
/// not left behind, and the other snapshot still restores.
#[test]
fn a_lying_site_gets_no_bytes_in_through_prefetched_packs() {
    let src = tempfile::tempdir().unwrap();
    let (r, keys, index, a, b) = two_snapshots(src.path());
    let reader = BlobReader::new(&r, &keys, &index).unwrap();
    let (_, path_a, bytes_a) = pack_of_file(&r, &keys, &reader, &a);
    let (_, _, bytes_b) = pack_of_file(&r, &keys, &reader, &b);
    let mut flipped = bytes_a.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    for (what, served) in [
        ("another pack", bytes_b.clone()),
        ("a flipped bit", flipped),
    ] {
        r.store.put_replace(&path_a, served).unwrap();
        let out = tempfile::tempdir().unwrap();
        let rep = restore_tree(&reader, a, out.path());
        assert_eq!(rep.failed.len(), 1, "{what}: {:?}", rep.failed);
        let restored = out.path().join(src.path().strip_prefix("/").unwrap());
        assert!(
            !restored.join("a/f").exists(),
            "{what}: the damaged file is not left"
        );
        let rep = restore_tree(&reader, b, &out.path().join("b"));
        assert!(rep.failed.is_empty(), "{what}: {:?}", rep.failed);
        let got = out
            .path()
            .join("b")
            .join(src.path().strip_prefix("/").unwrap());
        assert_eq!(
            std::fs::read(got.join("b/f")).unwrap(),
            std::fs::read(src.path().join("b/f")).unwrap()
        );
    }
}

/// A store that records which thread asked for each object, and can serve another
/// object's bytes for the next read of one (a lying site).
#[derive(Debug)]
struct Spy {
    inner: Arc<dyn object_store::ObjectStore>,
    gets: Mutex<Vec<(String, String)>>,
    lie_once: Mutex<Option<(String, String)>>,
}

impl std::fmt::Display for Spy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Spy({})", self.inner)
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for Spy {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.gets
            .lock()
            .unwrap()
            .push((location.to_string(), thread));
        let other = {
            let mut lie = self.lie_once.lock().unwrap();
            match lie.take() {
                Some((of, served)) if of == location.as_ref() => Some(served),
                kept => {
                    *lie = kept;
                    None
                }
            }
        };
        match other {
            Some(p) => self.inner.get_opts(&p.into(), options).await,
            None => self.inner.get_opts(location, options).await,
        }
    }
    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Through a store that watches its reads: a restore reads the pack its file needs once,
/// on a prefetch thread; and when the site lies to that prefetch (another valid pack of
/// the tenant served under the name), nothing of the other pack lands in the file.
#[test]
fn the_prefetch_reads_a_pack_once_and_its_lies_are_caught() {
    let src = tempfile::tempdir().unwrap();
    let (r, keys, index, a, b) = two_snapshots(src.path());
    let spy = Arc::new(Spy {
        inner: r.store.object_store(),
        gets: Mutex::new(Vec::new()),
        lie_once: Mutex::new(None),
    });
    let store = crate::store::Store::from_object_store(spy.clone(), "memory:spy");
    let repo = Repo::open_store(store).unwrap();
    let reader = BlobReader::new(&repo, &keys, &index).unwrap();
    let (_, path_a, _) = pack_of_file(&repo, &keys, &reader, &a);
    let (_, path_b, _) = pack_of_file(&repo, &keys, &reader, &b);
    let want = std::fs::read(src.path().join("a/f")).unwrap();
    let restore_a = |to: &Path| {
        spy.gets.lock().unwrap().clear();
        let rep = restore_tree(&reader, a, to);
        let reads: Vec<String> = spy
            .gets
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| *p == path_a)
            .map(|(_, thread)| thread.clone())
            .collect();
        (
            rep,
            to.join(src.path().strip_prefix("/").unwrap()).join("a/f"),
            reads,
        )
    };
    let out = tempfile::tempdir().unwrap();
    let (rep, file, reads) = restore_a(&out.path().join("honest"));
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(std::fs::read(&file).unwrap(), want);
    assert_eq!(reads, vec!["coop-prefetch".to_string()], "read once, ahead");

    *spy.lie_once.lock().unwrap() = Some((path_a.clone(), path_b.clone()));
    let (rep, file, reads) = restore_a(&out.path().join("lied-to"));
    assert_eq!(reads.first().map(String::as_str), Some("coop-prefetch"));
    assert!(spy.lie_once.lock().unwrap().is_none(), "the lie was served");
    // Either retried from the store (which told the truth the second time) or failed
    // and removed: never the other pack's bytes.
    match std::fs::read(&file) {
        Ok(got) => assert_eq!(got, want),
        Err(_) => assert_eq!(rep.failed.len(), 1, "{:?}", rep.failed),
    }
}

/// Files of many blobs (chunks of about 300 bytes) end batches by their parts: files of
/// fewer parts than a batch holds share batches, a file of more is a batch of its own,
/// and the restore is the whole snapshot.
#[test]
fn batches_end_by_the_parts_of_their_files() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("src");
    std::fs::create_dir_all(&root).unwrap();
    for (i, len) in [600usize, 900, 8_000, 300, 20_000, 1_200]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..len).map(|j| (j * 7 + i * 131 + j / 97) as u8).collect();
        std::fs::write(root.join(format!("f{i}")), bytes).unwrap();
    }
    let (r, keys) = repo_with(coop_formats::config::ChunkerParams {
        min_size: 64,
        avg_size: 256,
        max_size: 1024,
        ..Default::default()
    });
    let (index, tree) = backed_up(&r, &keys, &root);
    let reader = BlobReader::new(&r, &keys, &index).unwrap();
    let dir = reader.find(&tree, root.to_str().unwrap()).unwrap().unwrap();
    let parts: Vec<usize> = reader
        .tree(&dir.subtree.unwrap())
        .unwrap()
        .nodes
        .iter()
        .map(|n| n.content.len())
        .collect();
    assert!(parts.iter().any(|p| *p > BATCH_PARTS), "{parts:?}");
    let out = tempfile::tempdir().unwrap();
    let rep = restore_tree(&reader, tree, out.path());
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(rep.files, 6);
    let restored = out.path().join(root.strip_prefix("/").unwrap());
    assert_eq!(tree_of(&restored), tree_of(&root));
}

/// A snapshot larger than a batch restores as one: every file, directory, symlink and
/// hard link (the first file of a group in an earlier batch than its links), directory
/// modes set at the end; with an include pattern only what matches and its parents.
#[test]
fn a_restore_in_batches_is_the_whole_snapshot() {
    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("src");
    for d in 0..4 {
        let dir = root.join(format!("d{d}")).join("sub");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..6 {
            std::fs::write(
                dir.join(format!("f{i}")),
                format!("{d}/{i}\n").repeat(1 + i * 100),
            )
            .unwrap();
        }
    }
    std::fs::hard_link(root.join("d0/sub/f1"), root.join("d3/sub/link")).unwrap();
    std::os::unix::fs::symlink("../d0/sub/f2", root.join("d2/sym")).unwrap();
    std::fs::set_permissions(
        root.join("d1"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let (r, keys) = repo();
    let (index, tree) = backed_up(&r, &keys, &root);
    let reader = BlobReader::new(&r, &keys, &index).unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("all");
    let rep = restore_tree(&reader, tree, &target);
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    // The snapshot holds the source directory below its root.
    let restored = target.join(root.strip_prefix("/").unwrap());
    assert_eq!(tree_of(&restored), tree_of(&root));
    let (a, b) = (
        std::fs::metadata(restored.join("d0/sub/f1")).unwrap(),
        std::fs::metadata(restored.join("d3/sub/link")).unwrap(),
    );
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "hard link across batches"
    );
    assert_eq!(
        std::fs::metadata(restored.join("d1")).unwrap().mode() & 0o777,
        0o555
    );
    // Only what an include matches, with its parents.
    let only = out.path().join("only");
    let rep = restore(
        &reader,
        RestoreRoot::Tree(tree),
        &RestoreOptions {
            target: only.clone(),
            includes: vec!["**/d2/sub/f3".into()],
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    let got: Vec<String> = tree_of(&only.join(root.strip_prefix("/").unwrap()))
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(got, vec!["d2", "d2/sub", "d2/sub/f3"]);
    std::fs::set_permissions(
        restored.join("d1"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("d1"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
}
