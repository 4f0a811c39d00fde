//! End-to-end tests: the real `coop` binary against a local directory repository.

use crate::common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

#[test]
fn roundtrip_of_a_hard_tree() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    fs::write(src.join("empty-file"), b"").unwrap();
    fs::write(src.join("with space and ünïcødé ✓"), b"unicode").unwrap();
    fs::write(src.join("new\nline"), b"newline name").unwrap();
    fs::write(src.join("x".repeat(255)), b"long name").unwrap();
    let mut deep = src.join("deep");
    for i in 0..60 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("bottom"), b"deep file").unwrap();
    fs::write(src.join("big"), pseudo_random(3 << 20, 7)).unwrap();
    fs::write(
        src.join("text"),
        "INSERT INTO t VALUES (1, 'abc');\n".repeat(50_000),
    )
    .unwrap();
    std::os::unix::fs::symlink("big", src.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", src.join("dangling")).unwrap();
    fs::hard_link(src.join("text"), src.join("text-hardlink")).unwrap();
    // A 1 GiB sparse file with a little data in the middle.
    {
        let f = fs::File::create(src.join("sparse.img")).unwrap();
        f.set_len(1 << 30).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&pseudo_random(1 << 20, 3), 512 << 20)
            .unwrap();
    }
    fs::write(src.join("odd-mode"), b"mode").unwrap();
    fs::set_permissions(src.join("odd-mode"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::write(src.join("no-perms"), b"none").unwrap();
    fs::set_permissions(src.join("no-perms"), fs::Permissions::from_mode(0o000)).unwrap();
    let xattrs_ok = xattr::set(src.join("text"), "user.coop.test", b"\x00\x01value").is_ok();
    if !xattrs_ok {
        eprintln!(
            "note: this file system does not support user xattrs; xattr round trip not exercised"
        );
    }
    filetime::set_file_mtime(
        src.join("text"),
        filetime::FileTime::from_unix_time(1_600_000_000, 123_456_789),
    )
    .unwrap();

    let out = env.backup(&src);
    assert_eq!(out["warnings"].as_array().unwrap().len(), 0, "{out}");
    let r = env.coop(&[
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let dst = restored(&env, "out", &src);
    assert_same_tree(&src, &dst);
    // Hard links are restored as hard links.
    assert_eq!(
        fs::metadata(dst.join("text")).unwrap().ino(),
        fs::metadata(dst.join("text-hardlink")).unwrap().ino()
    );
    // The sparse file stays sparse: far fewer blocks than its size.
    let m = fs::metadata(dst.join("sparse.img")).unwrap();
    assert_eq!(m.len(), 1 << 30);
    assert!(
        m.blocks() * 512 < 64 << 20,
        "restored sparse file uses {} bytes",
        m.blocks() * 512
    );
    // Holes are not stored as data: the repository is far smaller than a GiB.
    let repo_size: u64 = walk_files(&env.repo())
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(repo_size < 32 << 20, "repository is {repo_size} bytes");
    // dump, ls and a sub-path restore agree.
    let dumped = env
        .cmd()
        .args(["dump", "latest", &format!("{}/text", src.display())])
        .output()
        .unwrap();
    assert_eq!(dumped.stdout, fs::read(src.join("text")).unwrap());
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("/sparse.img") && ls.contains("/d59/bottom"));
    let sub = format!("latest:{}/deep", src.display());
    env.ok(&["restore", &sub, "--target", env.p("sub").to_str().unwrap()]);
    let mut bottom = env.p("sub");
    for i in 0..60 {
        bottom = bottom.join(format!("d{i}"));
    }
    assert_eq!(fs::read(bottom.join("bottom")).unwrap(), b"deep file");
}

#[test]
fn unchanged_rebackup_adds_nothing_and_catalog_is_only_a_cache() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..50 {
        fs::write(
            src.join(format!("d/f{i}")),
            pseudo_random(20_000 + i * 100, i as u64),
        )
        .unwrap();
    }
    let first = env.backup(&src);
    let packs = env.count("packs");
    let second = env.backup(&src);
    assert_eq!(
        second["summary"]["bytes_read"], 0,
        "unchanged files must not be read: {second}"
    );
    assert_eq!(second["summary"]["bytes_added"], 0);
    assert_eq!(second["summary"]["files_unchanged"], 50);
    // The trees of the source's parents record their metadata, and other tests running at
    // the same time change /tmp's mtime: at most those trees are new, in at most one pack.
    let parents = src.components().count() as u64;
    let trees = second["summary"]["blobs_added"].as_u64().unwrap();
    assert!(
        trees <= parents,
        "{trees} blobs added for an unchanged tree"
    );
    let grown = env.count("packs") - packs;
    assert!(
        grown <= usize::from(trees > 0),
        "{grown} new packs for an unchanged tree"
    );
    // Delete the catalog: everything is read again, nothing is uploaded, same tree.
    fs::remove_dir_all(env.p("cache/coop")).unwrap();
    let third = env.backup(&src);
    assert!(third["summary"]["bytes_read"].as_u64().unwrap() > 0);
    assert_eq!(third["summary"]["bytes_added"], 0, "{third}");
    let trees3 = third["summary"]["blobs_added"].as_u64().unwrap();
    assert!(
        trees3 <= parents,
        "{trees3} blobs added without the catalog"
    );
    assert!(env.count("packs") - packs <= grown + usize::from(trees3 > 0));
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 3);
    // Same content without the catalog: nothing below the source differs.
    let diff = env.ok(&[
        "diff",
        snaps[0]["id"].as_str().unwrap(),
        snaps[2]["id"].as_str().unwrap(),
    ]);
    assert!(
        !diff.contains(&format!("{}/", src.display())),
        "the source differs without the catalog: {diff}"
    );
    assert_eq!(first["summary"]["files_new"], 50);
    // A changed file is detected and only it is read.
    fs::write(src.join("d/f3"), b"changed").unwrap();
    let fourth = env.backup(&src);
    assert_eq!(fourth["summary"]["files_changed"], 1);
    assert_eq!(fourth["summary"]["bytes_read"], 7);
    let diff = env.ok(&["diff", snaps[2]["id"].as_str().unwrap(), "latest"]);
    assert!(diff.contains("M    ") && diff.contains("/d/f3"), "{diff}");
}

#[test]
fn wrong_identity_is_a_clear_error() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"secret").unwrap();
    env.backup(&src);
    let other = env.p("other.txt");
    let (text, _) = coop_formats::crypt::generate_identity();
    fs::write(&other, text).unwrap();
    let o = env.coop(&[
        "--identity-file",
        other.to_str().unwrap(),
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a recipient"), "{err}");
    assert!(!env.p("out").exists(), "nothing written");
    // No repository at all: exit 4.
    let o = env
        .cmd()
        .env("COOP_REPO", env.p("nowhere"))
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("coop init"));
}

#[test]
fn writer_key_backs_up_and_dedups_but_cannot_read() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(500_000, 1)).unwrap();
    env.backup(&src);
    let wk = env.p("writer.key");
    env.ok(&[
        "key",
        "export-writer",
        "--out",
        wk.to_str().unwrap(),
        "--name",
        "site-a",
    ]);
    assert_eq!(fs::metadata(&wk).unwrap().mode() & 0o777, 0o600);
    let text = fs::read_to_string(&wk).unwrap();
    assert!(
        !text.contains("AGE-SECRET-KEY"),
        "writer key must not hold an identity"
    );
    // An agent with only the writer key (no identity anywhere) backs up and dedups.
    let agent = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("XDG_CONFIG_HOME", env.p("agent-config"))
            .env("XDG_CACHE_HOME", env.p("agent-cache"));
        c.args(args).output().unwrap()
    };
    fs::write(src.join("b"), b"new data from the agent").unwrap();
    let o = agent(&[
        "--json",
        "--writer-key",
        wk.to_str().unwrap(),
        "backup",
        src.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["summary"]["bytes_added"], 23,
        "only the new file is uploaded: {v}"
    );
    // It cannot list, restore or dump anything.
    for args in [
        vec!["snapshots"],
        vec!["restore", "latest", "--target", "/tmp/never"],
        vec!["ls", "latest"],
    ] {
        let mut a = vec!["--writer-key", wk.to_str().unwrap()];
        a.extend(args.iter());
        let o = agent(&a);
        assert_eq!(
            o.status.code(),
            Some(5),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // Using the writer key file as an identity does not work either.
    let o = agent(&["--identity-file", wk.to_str().unwrap(), "snapshots"]);
    assert!(!o.status.success());
    // The admin sees both snapshots; the agent's is signed by writer "site-a".
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 2);
    assert_eq!(snaps[1]["writer_name"], "site-a");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read(restored(&env, "out", &src).join("b")).unwrap(),
        b"new data from the agent"
    );
}

#[test]
fn corrupt_pack_is_named_and_only_its_files_fail() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("good"), pseudo_random(400_000, 11)).unwrap();
    env.backup(&src);
    let before: Vec<PathBuf> = walk_files(&env.repo().join("packs"));
    fs::write(src.join("bad"), pseudo_random(2 << 20, 12)).unwrap();
    env.backup(&src);
    // The largest new pack holds the data of "bad".
    let pack = walk_files(&env.repo().join("packs"))
        .into_iter()
        .filter(|p| !before.contains(p))
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = fs::read(&pack).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x40;
    fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&pack, bytes).unwrap();
    let o = env.coop(&[
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(7), "partial restore exit code");
    let err = String::from_utf8_lossy(&o.stderr);
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(pack_name), "names the pack: {err}");
    assert!(err.contains("/bad"), "names the file: {err}");
    let dst = restored(&env, "out", &src);
    assert_eq!(
        fs::read(dst.join("good")).unwrap(),
        fs::read(src.join("good")).unwrap()
    );
    assert!(
        !dst.join("bad").exists(),
        "a failed file is not left behind as zeros"
    );
    // dump of the bad file fails loudly too.
    let o = env.coop(&["dump", "latest", &format!("{}/bad", src.display())]);
    assert_eq!(o.status.code(), Some(6));
}

#[test]
fn failing_source_command_writes_no_snapshot() {
    let env = Env::new();
    let o = env.coop(&[
        "backup",
        "--stdin-from-command",
        "echo partial output; exit 3",
        "--stdin-filename",
        "db.dump",
    ]);
    assert_eq!(
        o.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("no snapshot was written"));
    assert_eq!(env.count("snapshots"), 0);
    // A working command is streamed without a temp file and restores exactly.
    env.ok(&[
        "backup",
        "--stdin-from-command",
        "seq 1 300000",
        "--stdin-filename",
        "db.dump",
        "--tag",
        "db",
    ]);
    let o = env
        .cmd()
        .args(["dump", "latest", "db.dump"])
        .output()
        .unwrap();
    let expected = std::process::Command::new("seq")
        .args(["1", "300000"])
        .output()
        .unwrap()
        .stdout;
    assert!(o.stdout == expected);
    let snaps = env.snapshots();
    assert_eq!(snaps[0]["tags"][0], "db");
    for k in ["id", "short_id", "time", "host", "paths", "tags", "tenant"] {
        assert!(!snaps[0][k].is_null(), "snapshots --json has {k}");
    }
}

#[test]
fn excludes_caches_and_missing_paths() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(src.join("keep")).unwrap();
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::create_dir_all(src.join("node_modules/x")).unwrap();
    fs::write(src.join("keep/a.txt"), b"a").unwrap();
    fs::write(src.join("keep/b.tmp"), b"b").unwrap();
    fs::write(src.join("node_modules/x/y"), b"y").unwrap();
    fs::write(
        src.join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55\n",
    )
    .unwrap();
    fs::write(src.join("cache/blob"), b"cached").unwrap();
    let ex = env.p("excludes");
    fs::write(&ex, "# comment\nnode_modules\n").unwrap();
    env.ok(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude",
        "*.tmp",
        "--exclude-file",
        ex.to_str().unwrap(),
    ]);
    let ls = env.ok(&["ls", "latest"]);
    assert!(ls.contains("keep/a.txt"));
    assert!(
        !ls.contains("b.tmp") && !ls.contains("node_modules") && !ls.contains("cache/blob"),
        "{ls}"
    );
    assert!(ls.contains("cache/CACHEDIR.TAG"));
    let o = env.coop(&["backup", env.p("does-not-exist").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does-not-exist"));
}

/// Forges snapshots with hostile trees using real keys (as a compromised writer could).
mod malicious {
    use super::*;
    use coop_agent::keys::Access;
    use coop_agent::repo::Repo;
    use coop_formats::id::{blob_id, BlobType, Id};
    use coop_formats::index::{IndexEntry, IndexFile, IndexPack};
    use coop_formats::pack::PackBuilder;
    use coop_formats::snapshot::{Snapshot, Summary};
    use std::sync::Arc;

    /// Stores raw blobs and a snapshot whose root tree is `root_json`.
    fn forge(env: &Env, blobs: &[(BlobType, Vec<u8>)], root: usize) {
        let repo = Repo::open(env.repo().to_str().unwrap()).unwrap();
        let ids = coop_agent::keys::load_identities(&env.p("config/coop/identity.txt")).unwrap();
        let keys = coop_agent::tenant::keys(&repo, &Access::Identity(Arc::new(ids), None), "coop")
            .unwrap();
        let mut b = PackBuilder::new(keys.tag, &keys.recipients, Vec::new()).unwrap();
        let mut c = coop_formats::blob::Compressor::new(3);
        let mut blob_ids = Vec::new();
        for (ty, data) in blobs {
            let id = blob_id(&keys.id_key, *ty, data);
            b.add(&mut c, *ty, id, data).unwrap();
            blob_ids.push(id);
        }
        let (stored, entries, pid) = b.finish().unwrap();
        let size = stored.len() as u64;
        repo.store
            .put(
                &coop_agent::layout::Kind::Pack.path(&keys.tag, &pid),
                stored,
            )
            .unwrap();
        let idx = IndexFile {
            packs: vec![IndexPack {
                id: pid,
                stored_size: size,
            }],
            superseded: vec![],
            signer: None,
            entries: entries
                .iter()
                .map(|e| IndexEntry {
                    id: e.id,
                    pack: 0,
                    ty: e.ty,
                    compression: e.compression,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                })
                .collect(),
        };
        repo.put(
            coop_agent::layout::Kind::Index,
            &keys.tag,
            idx.seal(&keys.index_key, keys.tag, None),
        )
        .unwrap();
        let mut s = Snapshot {
            version: 1,
            repo_id: repo.config.repo_id,
            tenant: "coop".into(),
            time: chrono_now(),
            host: "evil".into(),
            username: String::new(),
            paths: vec!["/".into()],
            tags: vec![],
            tree: blob_ids[root],
            writer: [0; 32],
            writer_name: "default".into(),
            program: "forger".into(),
            summary: Summary::default(),
            manifest: None,
            inventory: Id::default(),
        };
        let inv = coop_formats::snapshot::Inventory {
            packs: vec![pid],
            index: vec![],
        };
        let sealed = s
            .seal(&keys.signer, &keys.recipients, keys.tag, &inv)
            .unwrap();
        repo.store
            .put(
                &coop_agent::layout::Kind::Snapshot.path(&keys.tag, &Id::of_stored(&sealed)),
                sealed,
            )
            .unwrap();
    }

    fn chrono_now() -> String {
        // Strictly increasing, and later than any real backup (but not so far in the future
        // that the snapshot is flagged): each forgery is `latest`.
        static N: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        (chrono::Utc::now() + chrono::Duration::seconds(60) + chrono::Duration::milliseconds(n))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    }

    fn node(name: &str, extra: &str) -> String {
        format!(
            r#"{{"name":{},"mode":420,"uid":0,"gid":0,"mtime_ns":0{extra}}}"#,
            serde_json::to_string(name).unwrap()
        )
    }

    #[test]
    fn hostile_names_cannot_escape_the_target() {
        let env = Env::new();
        let outside = env.p("outside-marker");
        let data = b"pwned".to_vec();
        let data_id_hex = |env: &Env| {
            let repo = Repo::open(env.repo().to_str().unwrap()).unwrap();
            let ids =
                coop_agent::keys::load_identities(&env.p("config/coop/identity.txt")).unwrap();
            let keys =
                coop_agent::tenant::keys(&repo, &Access::Identity(Arc::new(ids), None), "coop")
                    .unwrap();
            blob_id(&keys.id_key, BlobType::Data, b"pwned").to_hex()
        };
        let d = data_id_hex(&env);
        let file = |name: &str| {
            node(
                name,
                &format!(r#","type":"file","size":5,"content":["{d}"]"#),
            )
        };
        for bad in [
            "..",
            "../outside-marker",
            "/tmp/outside-marker",
            "a/b",
            "a\u{0}b",
            "",
        ] {
            let tree = format!(r#"{{"nodes":[{}]}}"#, file(bad));
            forge(
                &env,
                &[
                    (BlobType::Data, data.clone()),
                    (BlobType::Tree, tree.into_bytes()),
                ],
                1,
            );
            let target = env.p("target");
            let o = env.coop(&["restore", "latest", "--target", target.to_str().unwrap()]);
            assert_eq!(
                o.status.code(),
                Some(6),
                "{bad:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!outside.exists());
            assert!(
                walk_files(&target).is_empty(),
                "{bad:?} wrote {:?}",
                walk_files(&target)
            );
        }
        // Absurd size: the tree claims far more than its content.
        let tree = format!(
            r#"{{"nodes":[{}]}}"#,
            node(
                "huge",
                &format!(r#","type":"file","size":1000000000000000,"content":["{d}"]"#)
            )
        );
        forge(
            &env,
            &[
                (BlobType::Data, data.clone()),
                (BlobType::Tree, tree.into_bytes()),
            ],
            1,
        );
        let o = env.coop(&[
            "restore",
            "latest",
            "--target",
            env.p("t2").to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(7),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(walk_files(&env.p("t2")).is_empty());
        // A data blob where a tree is expected is rejected.
        forge(&env, &[(BlobType::Data, br#"{"nodes":[]}"#.to_vec())], 0);
        let o = env.coop(&["ls", "latest"]);
        assert_eq!(
            o.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A symlink in the target does not redirect writes.
        let tree = format!(r#"{{"nodes":[{}]}}"#, file("victim"));
        forge(
            &env,
            &[
                (BlobType::Data, data.clone()),
                (BlobType::Tree, tree.into_bytes()),
            ],
            1,
        );
        let t3 = env.p("t3");
        fs::create_dir_all(&t3).unwrap();
        std::os::unix::fs::symlink(&outside, t3.join("victim")).unwrap();
        env.ok(&["restore", "latest", "--target", t3.to_str().unwrap()]);
        assert!(
            !outside.exists(),
            "write went through a pre-existing symlink"
        );
        assert_eq!(fs::read(t3.join("victim")).unwrap(), b"pwned");
    }

    #[test]
    fn forged_snapshot_from_a_recipient_only_attacker_is_rejected() {
        let env = Env::new();
        let src = env.p("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a"), b"real").unwrap();
        let genuine = env.backup(&src)["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string();
        let repo = Repo::open(env.repo().to_str().unwrap()).unwrap();
        let ids = coop_agent::keys::load_identities(&env.p("config/coop/identity.txt")).unwrap();
        let keys = coop_agent::tenant::keys(&repo, &Access::Identity(Arc::new(ids), None), "coop")
            .unwrap();
        // The attacker knows the recipient (public) key and the tenant tag (from paths),
        // but has no writer secret: they sign with their own key.
        let evil = ed25519_dalek::SigningKey::from_bytes(&[66; 32]);
        let mut s = coop_agent::snapshots::list(&repo, &keys).unwrap().entries[0]
            .snapshot
            .clone();
        s.host = "forged".into();
        let sealed = s
            .seal(&evil, &keys.recipients, keys.tag, &Default::default())
            .unwrap();
        repo.store
            .put(
                &coop_agent::layout::Kind::Snapshot.path(&keys.tag, &Id::of_stored(&sealed)),
                sealed,
            )
            .unwrap();
        let o = env.coop(&["snapshots"]);
        assert_eq!(o.status.code(), Some(6));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("not a writer"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // A valid age file written under an existing pack's name is caught by the name check.
        let pack = walk_files(&env.repo().join("packs"))[0].clone();
        let mut fake = Vec::new();
        coop_formats::crypt::encrypt_to(&keys.recipients, &[b"fake"], &mut fake).unwrap();
        fs::set_permissions(&pack, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&pack, fake).unwrap();
        let snap_files = walk_files(&env.repo().join("snapshots"));
        for f in snap_files {
            if coop_agent::layout::name_of(f.to_str().unwrap()).is_some() {
                let b = fs::read(&f).unwrap();
                if coop_formats::snapshot::Snapshot::open(
                    &keys.reader().unwrap().identities,
                    &b,
                    (repo.config.repo_id, keys.tag),
                    |k| keys.reader().unwrap().keyring.is_writer(k),
                )
                .is_err()
                {
                    fs::remove_file(f).unwrap();
                }
            }
        }
        // Tree pack: the whole restore stops (6); data pack: its files fail (7). (By ID: the
        // forged snapshot was removed by hand, so this client refuses to resolve `latest`.)
        let o = env.coop(&[
            "restore",
            &genuine,
            "--target",
            env.p("out").to_str().unwrap(),
        ]);
        assert!(
            matches!(o.status.code(), Some(6) | Some(7)),
            "{:?}",
            o.status.code()
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("do not match its name"));
    }
}

#[test]
fn a_job_never_runs_twice_at_once() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let config = env.p("agent.toml");
    fs::write(
        &config,
        format!(
            "[site]\nname = \"s\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n[[job]]\nname = \"slow\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\nbefore = [\"sleep 3\"]\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            env.p("agent-cache").display(),
            src.display()
        ),
    )
    .unwrap();
    let mut first = env
        .cmd()
        .args([
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--once",
            "slow",
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let second = env.coop(&[
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--once",
        "slow",
    ]);
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(first.wait().unwrap().success());
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn restore_include_and_exclude() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::create_dir_all(src.join("cache")).unwrap();
    fs::write(src.join("docs/a.md"), b"a").unwrap();
    fs::write(src.join("docs/b.tmp"), b"b").unwrap();
    fs::write(src.join("cache/c"), b"c").unwrap();
    env.backup(&src);
    let out = env.p("out");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--include",
        "docs",
        "--exclude",
        "*.tmp",
    ]);
    let dst = restored(&env, "out", &src);
    assert_eq!(fs::read(dst.join("docs/a.md")).unwrap(), b"a");
    assert!(!dst.join("docs/b.tmp").exists());
    assert!(!dst.join("cache").exists());
}

/// The on-disk index table in the cache directory.
fn index_tables(env: &Env) -> Vec<PathBuf> {
    walk_files(&env.p("cache"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect()
}

#[test]
fn index_cache_is_only_a_cache() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..40 {
        fs::write(
            src.join(format!("f{i}")),
            pseudo_random(30_000 + i * 10, 100 + i as u64),
        )
        .unwrap();
    }
    env.backup(&src);
    fs::write(src.join("f0"), b"second version").unwrap();
    env.backup(&src);
    let tables = index_tables(&env);
    assert_eq!(tables.len(), 1, "one table per tenant: {tables:?}");

    // A damaged table is rebuilt: dedup still works without the catalog.
    let mut bytes = fs::read(&tables[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    fs::write(&tables[0], &bytes).unwrap();
    fs::remove_file(
        env.p("cache/coop")
            .join(tables[0].parent().unwrap().file_name().unwrap())
            .join("catalog.sqlite"),
    )
    .ok();
    let again = env.backup(&src);
    assert!(again["summary"]["bytes_read"].as_u64().unwrap() > 0);
    assert_eq!(again["summary"]["bytes_added"], 0, "{again}");
    // Garbage and an empty file in its place are rebuilt too.
    for junk in [&b""[..], &b"not an index table"[..]] {
        fs::write(&tables[0], junk).unwrap();
        fs::write(src.join("f1"), junk.len().to_string()).unwrap();
        env.backup(&src);
    }

    // After forget and prune, index objects the table was built from are gone: the next
    // backup rebuilds it, and restore and check see exactly the store.
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune", "--max-unused", "0%"]);
    fs::write(src.join("f2"), b"after prune").unwrap();
    let after = env.backup(&src);
    assert_eq!(after["summary"]["files_changed"], 1, "{after}");
    assert_eq!(
        after["summary"]["bytes_added"], 11,
        "only the changed file is new: {after}"
    );
    env.ok(&["check", "--read-data"]);
    let target = env.p("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&env, "out", &src));

    // Without a cache directory the index is merged in memory, with the same answers.
    let target2 = env.p("out2");
    env.ok(&[
        "--no-cache",
        "restore",
        "latest",
        "--target",
        target2.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out2", &src));
}

#[test]
fn changed_xattrs_are_seen_though_the_content_is_unchanged() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"same content").unwrap();
    if xattr::set(src.join("f"), "user.coop.v", b"one").is_err() {
        eprintln!("note: no user xattrs on this file system; test skipped");
        return;
    }
    env.backup(&src);
    // Changing an xattr changes the ctime: the catalog's recorded xattrs are not used.
    xattr::set(src.join("f"), "user.coop.v", b"two").unwrap();
    let second = env.backup(&src);
    assert_eq!(
        second["summary"]["bytes_added"], 0,
        "content is unchanged: {second}"
    );
    let third = env.backup(&src); // a catalog hit with the recorded xattrs
    assert_eq!(third["summary"]["files_unchanged"], 1);
    let target = env.p("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let got = xattr::get(restored(&env, "out", &src).join("f"), "user.coop.v").unwrap();
    assert_eq!(got.as_deref(), Some(&b"two"[..]));
    // Nothing below the source differs between reading the xattrs and the recorded ones
    // (the whole trees may: the source's parent directories change as the test runs).
    let snaps = env.snapshots();
    let diff = env.ok(&[
        "diff",
        snaps[1]["id"].as_str().unwrap(),
        snaps[2]["id"].as_str().unwrap(),
    ]);
    assert!(
        !diff.contains(&format!("{}/", src.display())),
        "recorded xattrs give the same tree as reading them: {diff}"
    );
    // And diff does see an xattr change (the first snapshot has "one").
    let diff = env.ok(&[
        "diff",
        snaps[0]["id"].as_str().unwrap(),
        snaps[1]["id"].as_str().unwrap(),
    ]);
    assert!(diff.contains(&format!("{}/f", src.display())), "{diff}");
}

#[test]
fn boolean_environment_variables_take_1_and_0() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    env.backup(&src);
    for (v, json) in [
        ("1", true),
        ("yes", true),
        ("true", true),
        ("0", false),
        ("false", false),
    ] {
        let o = env
            .cmd()
            .env("COOP_JSON", v)
            .args(["snapshots"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "COOP_JSON={v}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let parsed = serde_json::from_slice::<Value>(&o.stdout).is_ok();
        assert_eq!(parsed, json, "COOP_JSON={v}");
    }
    let o = env
        .cmd()
        .env("COOP_NO_CACHE", "1")
        .args(["backup", "-q", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A restore keeps each created file's descriptor for writing it, as many as the descriptor
/// limit allows; past that it reopens files beneath the target. Under a limit of 600 (room for
/// about 90 open files) a tree of 400 files, some spanning several blobs, restores exactly.
#[test]
fn restore_under_a_low_descriptor_limit_reopens_the_files_it_cannot_keep() {
    let env = Env::new();
    let src = env.p("src");
    for d in 0..8 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..50u64 {
            let len = if f % 10 == 0 {
                3 << 20
            } else {
                700 + f as usize * 13
            };
            fs::write(dir.join(format!("f{f}")), pseudo_random(len, d * 100 + f)).unwrap();
        }
    }
    env.ok(&["backup", src.to_str().unwrap()]);
    let target = env.p("out");
    let o = std::process::Command::new("prlimit")
        .arg("--nofile=600:600")
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_coop"))
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .envs(env.cmd().get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&src, &restored(&env, "out", &src));
}

/// `coop init --chunker-params`: the sizes are the repository's (a 256 KiB file in chunks of
/// about 256 bytes is about a thousand blobs, and restores whole); sizes out of range or
/// malformed are usage errors that write nothing: no repository, and no identity.
#[test]
fn chunker_params_are_chosen_at_init_and_checked() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), pseudo_random(256 << 10, 7)).unwrap();
    let small = env.p("small");
    let small = small.to_str().unwrap();
    env.ok(&["init", "--repo", small, "--chunker-params", "64,256,1KiB"]);
    let b = env.json(&["backup", "--repo", small, src.to_str().unwrap()]);
    let blobs = b["summary"]["blobs_added"].as_u64().unwrap();
    assert!((300..=4096).contains(&blobs), "{blobs} blobs: {b}");
    let default = env.backup(&src);
    assert!(
        default["summary"]["blobs_added"].as_u64().unwrap() < 10,
        "{default}"
    );
    env.ok(&["check", "--repo", small, "--read-data"]);
    let out = env.p("out");
    env.ok(&[
        "restore",
        "--repo",
        small,
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out", &src));
    for bad in [
        "32,256,1KiB",
        "65,256,1KiB",
        "64,256",
        "1KiB,256,64",
        "64,256,1GiB",
        "1MiB,8MiB,16MiB",
    ] {
        // A first init, with no identity yet: refused, it must not create one either.
        let (repo, config) = (env.p("bad"), env.p("fresh-config"));
        let out = env
            .cmd()
            .env("XDG_CONFIG_HOME", &config)
            .args(["init", "--repo", repo.to_str().unwrap()])
            .args(["--chunker-params", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        assert!(
            !repo.exists(),
            "{bad}: a refused init wrote {}",
            repo.display()
        );
        assert!(
            !config.exists(),
            "{bad}: a refused init wrote {}",
            config.display()
        );
    }
}
