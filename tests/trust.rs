//! Trust boundaries, tried as each role's attacker would (SPEC section 1).
//!
//! The writer here is a stolen agent: everything it uses is in its writer key file (the
//! tenant's ID and index keys, its signing key, the data recipient, the pinned admin keys)
//! plus write access to the store. The objects it forges are built with `coop_formats` from
//! that file alone, as an attacker would build them. The admin runs coop's ordinary commands.

use crate::common;

use common::*;
use coop_formats::envelope::TenantTag;
use coop_formats::id::BlobType;
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use coop_formats::registry::Registry;
use coop_formats::writerkey::WriterKey;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn writer_key(env: &Env, name: &str) -> (PathBuf, WriterKey) {
    let p = env.p(&format!("{name}.key"));
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        name,
        "--out",
        p.to_str().unwrap(),
    ]);
    let wk = WriterKey::decode(&fs::read_to_string(&p).unwrap()).unwrap();
    (p, wk)
}

/// Writes an object into the local repository under its proper name (as a writer with
/// store access can).
fn plant(env: &Env, dir: &str, tag: &TenantTag, bytes: &[u8]) -> Id {
    let name = Id::of_stored(bytes);
    let d = env.repo().join(dir).join(hex::encode(tag));
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name.to_hex()), bytes).unwrap();
    name
}

fn objects_in(env: &Env, dir: &str, tag: &TenantTag) -> Vec<(Id, Vec<u8>)> {
    let d = env.repo().join(dir).join(hex::encode(tag));
    let mut v: Vec<(Id, Vec<u8>)> = walk_files(&d)
        .into_iter()
        .map(|p| {
            let name: Id = p.file_name().unwrap().to_str().unwrap().parse().unwrap();
            (name, fs::read(&p).unwrap())
        })
        .collect();
    v.sort_by_key(|(n, _)| *n);
    v
}

fn copy_tree(from: &Path, to: &Path) {
    for f in walk_files(from) {
        let dst = to.join(f.strip_prefix(from).unwrap());
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(&f, &dst).unwrap();
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn with_writer(env: &Env, key: &Path, args: &[&str]) -> Output {
    let mut c = env.cmd();
    c.arg("--writer-key").arg(key).args(args);
    c.output().unwrap()
}

fn source(env: &Env, name: &str, seed: u64) -> PathBuf {
    let d = env.p(name);
    fs::create_dir_all(d.join("sub")).unwrap();
    fs::write(d.join("big"), pseudo_random(3 << 20, seed)).unwrap();
    fs::write(d.join("sub/small"), format!("small file {seed}\n")).unwrap();
    d
}

fn restore_matches(env: &Env, snapshot: &str, src: &Path, target: &str) {
    env.ok(&[
        "restore",
        snapshot,
        "--target",
        env.p(target).to_str().unwrap(),
    ]);
    assert_same_tree(src, &restored(env, target, src));
}

/// Finding 1: a writer key writes an index object that supersedes every genuine one and
/// places every data blob inside a tree pack. The admin's routine prune deletes nothing
/// the snapshots need, check names the forged object, and restore is byte-identical.
#[test]
fn forged_index_cannot_make_prune_delete_data() {
    let env = Env::new();
    let (key, wk) = writer_key(&env, "agent");
    let src = source(&env, "src", 1);
    let o = with_writer(&env, &key, &["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let packs_before = env.count("packs");
    assert!(packs_before >= 2, "data and tree packs");

    // The forgery, from the writer key file alone.
    let genuine = objects_in(&env, "index", &wk.tenant_tag);
    let mut files = Vec::new();
    for (_, bytes) in &genuine {
        files.push(IndexFile::open(&wk.index_key, bytes).unwrap().1);
    }
    let tree_pack = files
        .iter()
        .flat_map(|f| f.entries.iter().map(move |e| (f, e)))
        .find(|(_, e)| e.ty == BlobType::Tree)
        .map(|(f, e)| f.packs[e.pack as usize])
        .expect("a tree pack");
    let mut forged = IndexFile {
        superseded: genuine.iter().map(|(n, _)| *n).collect(),
        ..Default::default()
    };
    for f in &files {
        for e in &f.entries {
            let mut e = *e;
            if e.ty == BlobType::Data {
                e.offset = 0;
            }
            let pack = if e.ty == BlobType::Data {
                tree_pack
            } else {
                f.packs[e.pack as usize]
            };
            forged.push(pack, &e);
        }
    }
    let signer = ed25519_dalek::SigningKey::from_bytes(&wk.signing_key);
    let bytes = forged.seal(&wk.index_key, wk.tenant_tag, Some(&signer));
    let forged_name = plant(&env, "index", &wk.tenant_tag, &bytes);

    // check names the lying index object.
    let o = env.coop(&["check"]);
    assert_eq!(
        code(&o),
        6,
        "check must report the lying index: {}",
        text(&o)
    );
    assert!(
        text(&o).contains(&forged_name.to_hex()[..8]),
        "check names the forged index object: {}",
        text(&o)
    );
    // The admin's ordinary maintenance: prune finds the blobs in the packs' own tables and
    // copies those the lie would have lost before it deletes any pack.
    let o = env.coop(&["prune", "--unindexed-grace", "0s"]);
    assert!(o.status.success(), "prune: {}", text(&o));
    env.ok(&["check", "--read-data"]);
    restore_matches(&env, "latest", &src, "out");
    // The thief's key decrypts nothing.
    let o = with_writer(&env, &key, &["restore", "latest", "--target", "/tmp/x"]);
    assert_eq!(code(&o), 5, "{}", text(&o));
}

/// Finding 2: a writer key forges the member registry to read a member's future backups.
/// The forgery is named and ignored; the member's backups stay readable by her alone.
#[test]
fn writer_cannot_forge_the_member_registry() {
    let env = Env::new();
    // Exported before the member exists: it still backs up her tenant later.
    let (key, wk) = writer_key(&env, "agent");
    let (alice_id, alice) = age_identity(&env, "alice");
    let (thief_id, thief) = age_identity(&env, "thief");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let data = source(&env, "alice-files", 2);

    // The forgery: alice's data recipient and the recovery list now name the thief.
    let (_, current) = objects_in(&env, "registry", &wk.tenant_tag)
        .into_iter()
        .map(|(n, b)| {
            let (h, plain, _) = coop_formats::control::open_signed(
                &wk.index_key,
                coop_formats::envelope::ObjectType::Registry,
                &b,
                16 << 20,
            )
            .unwrap();
            assert_eq!(h.tenant, wk.tenant_tag);
            (n, serde_json::from_slice::<Registry>(&plain).unwrap())
        })
        .max_by_key(|(_, r)| r.generation)
        .unwrap();
    let mut evil = current.clone();
    evil.generation += 10;
    evil.recovery.push(thief.clone());
    for m in &mut evil.members {
        m.data_recipient = thief.clone();
        m.recipients = vec![thief.clone()];
    }
    let signer = ed25519_dalek::SigningKey::from_bytes(&wk.signing_key);
    let forged = plant(
        &env,
        "registry",
        &wk.tenant_tag,
        &evil.seal(&wk.index_key, wk.tenant_tag, &signer),
    );

    // The agent's next member backup ignores it (and says so).
    let o = with_writer(
        &env,
        &key,
        &["backup", "--tenant", "member/alice", data.to_str().unwrap()],
    );
    assert!(o.status.success(), "member backup: {}", text(&o));
    assert!(
        text(&o).contains(&forged.to_hex()[..8]),
        "the backup names the forged registry: {}",
        text(&o)
    );
    // The admin sees it named; alice is listed with her own key.
    let o = env.coop(&["--json", "member", "list"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains(&forged.to_hex()[..8]), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(&thief));
    // An ordinary admin change builds on the genuine generation.
    let (_, other) = age_identity(&env, "alice-laptop");
    let o = env.coop(&["member", "recipients", "alice", "--add", &other]);
    assert!(code(&o) == 0 || code(&o) == 6, "{}", text(&o));

    // The thief reads nothing of alice's; alice exports her backup.
    let thief_tar = env.p("thief.tar");
    for args in [
        vec!["snapshots", "--tenant", "member/alice"],
        vec![
            "export",
            "--member",
            "alice",
            "--out",
            thief_tar.to_str().unwrap(),
        ],
    ] {
        let mut c = env.cmd();
        c.arg("--identity-file").arg(&thief_id).args(&args);
        let o = c.output().unwrap();
        assert_eq!(code(&o), 5, "thief {args:?}: {}", text(&o));
    }
    assert!(!thief_tar.exists());
    let out = env.p("alice.tar");
    let mut c = env.cmd();
    c.arg("--identity-file").arg(&alice_id).args([
        "export",
        "--member",
        "alice",
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "alice's export: {}", text(&o));
    assert!(fs::metadata(&out).unwrap().len() > 3 << 20);
}

/// Finding 3: snapshots a writer dates in the future fill no retention bucket and never
/// become `latest`.
#[test]
fn future_dated_snapshots_do_not_rewrite_retention() {
    if Command::new("faketime").arg("--version").output().is_err() {
        panic!("faketime is not installed (scripts/test.sh installs it from Debian's packages)");
    }
    let env = Env::new();
    let (key, _) = writer_key(&env, "agent");
    let src = source(&env, "src", 3);
    let genuine = fs::read(src.join("big")).unwrap();
    let o = with_writer(&env, &key, &["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    // The thief backs up other content under the same host and path, dated 2090 to 2099.
    fs::write(src.join("big"), b"not the genuine data").unwrap();
    for year in 2090..2100 {
        let mut c = Command::new("faketime");
        c.arg(format!("{year}-06-01 12:00:00"))
            .arg(env!("CARGO_BIN_EXE_coop"))
            .env_clear()
            .envs(env.cmd().get_envs().filter_map(|(k, v)| Some((k, v?))))
            .arg("--writer-key")
            .arg(&key)
            .args(["backup", src.to_str().unwrap()]);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{year}: {}", text(&o));
    }
    let o = env.coop(&["snapshots"]);
    assert!(text(&o).matches("FLAGGED").count() >= 10, "{}", text(&o));
    let o = env.coop(&[
        "forget",
        "--keep-daily",
        "7",
        "--keep-weekly",
        "5",
        "--keep-monthly",
        "12",
    ]);
    assert!(o.status.success(), "forget: {}", text(&o));
    env.ok(&["prune"]);
    let snaps = env.snapshots();
    assert!(
        snaps
            .iter()
            .any(|s| s["time"].as_str().unwrap() < "2030"
                && s["flags"].as_array().unwrap().is_empty()),
        "the genuine snapshot was forgotten: {snaps:?}"
    );
    let out = env.p("out");
    env.ok(&["restore", "latest", "--target", out.to_str().unwrap()]);
    assert!(
        fs::read(restored(&env, "out", &src).join("big")).unwrap() == genuine,
        "latest is not the genuine snapshot"
    );
}

/// Finding 4: a backup in another pid namespace on a host of the same name holds a lock
/// that prune respects, though its pid means nothing here.
#[test]
fn same_hostname_lock_in_another_pid_namespace_is_respected() {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        eprintln!("skipping: unshare --pid needs root (CAP_SYS_ADMIN) here");
        return;
    }
    let env = Env::new();
    let src = source(&env, "src", 5);
    env.backup(&src);
    let src2 = source(&env, "src2", 6);
    let go = env.p("go");
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--mount-proc"])
        .arg(env!("CARGO_BIN_EXE_coop"))
        .envs(env.cmd().get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env(
            "COOP_PAUSE",
            format!("backup:before-index={}", go.display()),
        )
        .args(["backup", src2.to_str().unwrap()]);
    let mut child = c.spawn().unwrap();
    // Wait until the paused backup has written its packs (and holds its lock).
    let t0 = std::time::Instant::now();
    while env.count("locks") == 0 || env.count("packs") < 3 {
        assert!(t0.elapsed().as_secs() < 60, "the backup did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let packs = env.count("packs");
    let o = env.coop(&["prune", "--unindexed-grace", "0s"]);
    assert!(o.status.success(), "prune: {}", text(&o));
    assert!(!text(&o).contains("stale lock"), "{}", text(&o));
    assert_eq!(
        env.count("packs"),
        packs,
        "prune deleted the running backup's packs"
    );
    fs::write(&go, b"").unwrap();
    assert!(child.wait().unwrap().success());
    env.ok(&["check", "--read-data"]);
    restore_matches(&env, "latest", &src2, "out");
}

/// Finding 5: damaged objects are named and skipped; everything else keeps working.
#[test]
fn a_bad_object_is_named_and_skipped() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let src = source(&env, "src", 7);
    env.backup(&src);
    let tag = fs::read_dir(env.repo().join("snapshots"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let tag: TenantTag = hex::decode(tag.to_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let junk = b"not a coop object at all".to_vec();
    let bad_snap = plant(&env, "snapshots", &tag, &junk);
    let bad_reg = plant(&env, "registry", &tag, b"junk registry");

    let o = env.coop(&["snapshots"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains(&bad_snap.to_hex()[..8]), "{}", text(&o));
    assert!(text(&o).contains("1 snapshot"), "{}", text(&o));
    let o = env.coop(&["member", "list"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains("alice"), "{}", text(&o));
    assert!(text(&o).contains(&bad_reg.to_hex()[..8]), "{}", text(&o));
    let o = env.coop(&["scrub"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains(&bad_snap.to_hex()[..8]), "{}", text(&o));
    assert!(text(&o).contains(&bad_reg.to_hex()[..8]), "{}", text(&o));
    // Backups and restores go on.
    let src2 = source(&env, "src2", 8);
    let o = env.coop(&["backup", src2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    restore_matches(&env, "latest", &src2, "out");
}

/// Finding 6: a revoked writer's later snapshots are flagged; the other writers go on.
#[test]
fn revoked_writer_is_flagged_and_others_keep_working() {
    let env = Env::new();
    let (stolen, _) = writer_key(&env, "pi");
    let (other, _) = writer_key(&env, "vm");
    let src = source(&env, "src", 9);
    assert!(
        with_writer(&env, &stolen, &["backup", src.to_str().unwrap()])
            .status
            .success()
    );
    env.ok(&["snapshots"]); // this client has seen the writer list before the revocation
    let writers_dir = env.repo().join("writers");
    let before_revocation = env.p("writers-before");
    copy_tree(&writers_dir, &before_revocation);
    env.ok(&["key", "revoke", "pi"]);
    let list = env.ok(&["key", "list"]);
    assert!(list.contains("pi") && list.contains("REVOKED"), "{list}");
    // The thief backs up after the revocation: flagged, never latest.
    let evil = source(&env, "evil", 10);
    let o = with_writer(&env, &stolen, &["backup", evil.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let src2 = source(&env, "src2", 11);
    let o = with_writer(&env, &other, &["backup", src2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let snaps = env.snapshots();
    let flagged: Vec<_> = snaps
        .iter()
        .filter(|s| !s["flags"].as_array().unwrap().is_empty())
        .collect();
    assert!(
        flagged
            .iter()
            .all(|s| s["paths"][0].as_str().unwrap().ends_with("evil")),
        "{snaps:?}"
    );
    // The snapshot it made before its revocation stays trusted.
    assert!(snaps
        .iter()
        .any(|s| s["paths"][0].as_str().unwrap().ends_with("/src")
            && s["flags"].as_array().unwrap().is_empty()));
    // A site that serves the list from before the revocation un-revokes nothing: the client
    // saw the newer one.
    let after = env.p("writers-after");
    fs::rename(&writers_dir, &after).unwrap();
    copy_tree(&before_revocation, &writers_dir);
    let o = env.coop(&["snapshots"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains("writer list"), "{}", text(&o));
    // Issue 27 finding 3: every reading command of this client refuses `latest` on the
    // replayed list (the thief's snapshot would be it), and gives the damage code.
    for args in [
        vec!["restore", "latest", "--target", "/tmp/coop-never-written"],
        vec!["dump", "latest", "/x"],
        vec!["ls", "latest"],
    ] {
        let o = env.coop(&args);
        assert_eq!(code(&o), 6, "{args:?}: {}", text(&o));
        assert!(text(&o).contains("not resolved"), "{args:?}: {}", text(&o));
    }
    assert!(!Path::new("/tmp/coop-never-written").exists());
    fs::remove_dir_all(&writers_dir).unwrap();
    fs::rename(&after, &writers_dir).unwrap();
    let o = env.coop(&["ls", "latest", "--path", evil.to_str().unwrap()]);
    assert_ne!(
        code(&o),
        0,
        "a flagged snapshot resolved as latest: {}",
        text(&o)
    );
    restore_matches(&env, "latest", &src2, "out");
}

/// Finding 7: nothing stored links a member tenant to the member's public SSH key.
#[test]
fn ssh_recipient_is_not_linkable() {
    let env = Env::new();
    let (_, bob) = ssh_key(&env, "bob_ed25519");
    env.ok(&["member", "add", "bob", "--recipient", &bob]);
    let src = source(&env, "bob-files", 12);
    env.ok(&["backup", "--tenant", "member/bob", src.to_str().unwrap()]);
    let tag = &ssh_tag(bob.split_whitespace().nth(1).unwrap());
    for f in walk_files(&env.repo()) {
        let b = fs::read(&f).unwrap();
        let s = String::from_utf8_lossy(&b);
        assert!(
            !s.contains("ssh-ed25519"),
            "{} names ssh-ed25519",
            f.display()
        );
        assert!(
            !s.contains(tag.as_str()),
            "{} carries the SSH key's tag",
            f.display()
        );
    }
}

/// The 4-byte tag age's ssh-ed25519 stanza carries: SHA-256 of the key's wire form,
/// base64 without padding (computed by Python, independently of coop).
fn ssh_tag(key_b64: &str) -> String {
    let o = Command::new("python3")
        .args([
            "-c",
            "import base64,hashlib,sys; w=base64.b64decode(sys.argv[1]); \
             print(base64.b64encode(hashlib.sha256(w).digest()[:4]).decode().rstrip('='))",
            key_b64,
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// The tenant tag of the first tenant directory under `dir` of the local repository.
fn first_tag(env: &Env, dir: &str) -> String {
    fs::read_dir(env.repo().join(dir))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .to_str()
        .unwrap()
        .to_string()
}

/// Issue 27 finding 2: random bytes stored under their own BLAKE3 (what create-only
/// credentials to one store can write) under `index/`, `snapshots/`, `packs/`, `keys/` and
/// `registry/` neither stop `restore latest` nor are copied by `replicate`; restore names
/// the junk index object, and check says to delete it rather than restore it from a replica.
#[test]
fn junk_objects_neither_stop_a_restore_nor_replicate() {
    let env = Env::new();
    let src = source(&env, "src", 11);
    env.backup(&src);
    let tag = first_tag(&env, "snapshots");
    let mut junk = Vec::new();
    for (i, dir) in ["index", "snapshots", "packs", "keys", "registry"]
        .into_iter()
        .enumerate()
    {
        let bytes = pseudo_random(224, 1001 + 2 * i as u64);
        let name = Id::of_stored(&bytes).to_hex();
        let t = if dir == "keys" {
            first_tag(&env, "keys")
        } else {
            tag.clone()
        };
        let rel = if dir == "packs" {
            format!("{dir}/{t}/{}/{name}", &name[..2])
        } else {
            format!("{dir}/{t}/{name}")
        };
        let p = env.repo().join(&rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &bytes).unwrap();
        junk.push((rel, name));
    }
    let index_junk = &junk[0].1;

    // Restores go on, naming the junk index object.
    let o = env.coop(&[
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains(index_junk.as_str()), "{}", text(&o));
    assert_same_tree(&src, &restored(&env, "out", &src));
    // A second restore, through the index table the first one cached.
    let o = env.coop(&[
        "restore",
        "latest",
        "--target",
        env.p("out2").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_same_tree(&src, &restored(&env, "out2", &src));

    // check names the junk and says to delete it.
    let o = env.coop(&["check"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    let t = text(&o);
    let line = t
        .lines()
        .find(|l| l.contains(index_junk.as_str()))
        .unwrap_or_else(|| panic!("check does not name the junk index object: {t}"));
    assert!(
        line.contains("not a coop object") && line.contains("delete it"),
        "{t}"
    );

    // replicate copies none of it, says so, and the replica restores.
    let replica = env.p("replica");
    let o = env.coop(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        replica.to_str().unwrap(),
    ]);
    let t = text(&o);
    assert_ne!(code(&o), 0, "refused objects are reported: {t}");
    for (rel, name) in &junk {
        assert!(!replica.join(rel).exists(), "{rel} was replicated: {t}");
        assert!(t.contains(name.as_str()), "{rel} is not reported: {t}");
    }
    let o = env
        .cmd()
        .env("COOP_REPO", &replica)
        .args([
            "restore",
            "latest",
            "--target",
            env.p("from-replica").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_same_tree(&src, &restored(&env, "from-replica", &src));
}

/// Issue 27 finding 5: the client remembers only snapshots that verified, so once an admin
/// deletes a junk snapshot the client skipped, nothing looks like a rollback.
#[test]
fn deleting_a_skipped_junk_snapshot_is_no_rollback() {
    let env = Env::new();
    let src = source(&env, "src", 12);
    env.backup(&src);
    let tag: TenantTag = hex::decode(first_tag(&env, "snapshots"))
        .unwrap()
        .try_into()
        .unwrap();
    let bad = plant(&env, "snapshots", &tag, &pseudo_random(224, 5));
    let o = env.coop(&["snapshots"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains(&bad.to_hex()[..8]), "{}", text(&o));
    restore_matches(&env, "latest", &src, "out");

    // The admin deletes the junk.
    fs::remove_file(
        env.repo()
            .join("snapshots")
            .join(hex::encode(tag))
            .join(bad.to_hex()),
    )
    .unwrap();
    let o = env.coop(&["snapshots"]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(!text(&o).contains("ROLLBACK"), "{}", text(&o));
    restore_matches(&env, "latest", &src, "out2");
}

/// Issue 27 finding 2, the other half: when every index object is unreadable (here the
/// genuine ones overwritten in place), restore finds the blobs in the packs' own tables.
#[test]
fn unreadable_index_objects_fall_back_to_the_pack_tables() {
    let env = Env::new();
    let src = source(&env, "src", 13);
    env.backup(&src);
    let tag = first_tag(&env, "index");
    let index = walk_files(&env.repo().join("index").join(&tag));
    assert!(!index.is_empty());
    for f in &index {
        fs::write(f, pseudo_random(224, 77)).unwrap();
    }
    fs::remove_dir_all(env.p("cache")).unwrap();
    fs::create_dir_all(env.p("cache")).unwrap();
    let o = env.coop(&[
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("packs' own tables"), "{}", text(&o));
    assert_same_tree(&src, &restored(&env, "out", &src));
}

/// Issue 27 finding 4: a writer key writes a decoy pack whose own (authenticated) table lists
/// every data blob with junk bytes, and an index object pointing there. `check --read-data`
/// finds each blob intact at its genuine location, says nothing is lost and advises forgetting
/// nothing; restore (which tries the other locations) is byte-identical.
#[test]
fn a_decoy_pack_does_not_make_check_call_restorable_data_damaged() {
    use coop_formats::blob::Compression;
    use coop_formats::index::IndexPack;
    use coop_formats::pack::PackBuilder;
    let env = Env::new();
    let (key, wk) = writer_key(&env, "agent");
    let src = source(&env, "src", 4);
    let o = with_writer(&env, &key, &["backup", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let genuine = objects_in(&env, "index", &wk.tenant_tag);
    let files: Vec<IndexFile> = genuine
        .iter()
        .map(|(_, b)| IndexFile::open(&wk.index_key, b).unwrap().1)
        .collect();
    let recipients: Vec<_> = wk
        .recipients
        .iter()
        .map(|r| coop_formats::crypt::parse_recipient(r).unwrap())
        .collect();
    let mut decoy = PackBuilder::new(wk.tenant_tag, &recipients, Vec::new()).unwrap();
    let data: Vec<_> = files
        .iter()
        .flat_map(|f| f.entries.iter())
        .filter(|e| e.ty == BlobType::Data)
        .copied()
        .collect();
    assert!(!data.is_empty());
    for e in &data {
        let junk = vec![0x5a; e.stored_len as usize];
        decoy
            .add_stored(BlobType::Data, e.id, Compression::None, e.raw_len, &junk)
            .unwrap();
    }
    let (bytes, entries, name) = decoy.finish().unwrap();
    let d = env
        .repo()
        .join("packs")
        .join(hex::encode(wk.tenant_tag))
        .join(&name.to_hex()[..2]);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name.to_hex()), &bytes).unwrap();
    // Where several index objects list a blob, the first one a reader loads wins; the
    // forgery comes first by claiming to supersede the genuine ones (a claim that only puts
    // them behind it: their locations stay, as alternatives).
    let mut forged = IndexFile {
        superseded: genuine.iter().map(|(n, _)| *n).collect(),
        ..Default::default()
    };
    let pack = IndexPack {
        id: name,
        stored_size: bytes.len() as u64,
    };
    for e in &entries {
        forged.push(
            pack,
            &coop_formats::index::IndexEntry {
                id: e.id,
                pack: 0,
                ty: e.ty,
                compression: e.compression,
                offset: e.offset,
                stored_len: e.stored_len,
                raw_len: e.raw_len,
            },
        );
    }
    let signer = ed25519_dalek::SigningKey::from_bytes(&wk.signing_key);
    // Readers load index objects in name order: the thief seals until its object comes first.
    let first = genuine.iter().map(|(n, _)| n.to_hex()).min().unwrap();
    let sealed = loop {
        let b = forged.seal(&wk.index_key, wk.tenant_tag, Some(&signer));
        if Id::of_stored(&b).to_hex() < first {
            break b;
        }
    };
    plant(&env, "index", &wk.tenant_tag, &sealed);
    let o = env.coop(&["check", "--read-data"]);
    let t = text(&o);
    assert!(t.contains("intact at another location"), "{t}");
    assert!(!t.contains("forget the affected snapshots"), "{t}");
    assert!(!t.contains("affects file"), "{t}");
    restore_matches(&env, "latest", &src, "out");
}
