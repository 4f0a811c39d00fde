//! Proof that nothing committed is lost: crash, corruption, damaged objects, concurrency
//! and full-disk scenarios against the real `coop` binary.
//!
//! Each scenario appends a line with its counts (trials, faults detected, snapshots lost)
//! to `target/tmp/integrity-report.txt`, which `scripts/test.sh` prints. The number of
//! trials scales with `COOP_TRIALS_SCALE` (scripts/fault-loops.sh runs long loops).

use crate::common;

use common::*;
use serde_json::Value;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn scale() -> usize {
    std::env::var("COOP_TRIALS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn report(line: &str) {
    println!("{line}");
    let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("integrity-report.txt");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

/// A small deterministic RNG for choosing fault positions.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 64);
    let mut i = seed;
    while out.len() < n {
        out.extend_from_slice(
            format!(
                "INSERT INTO events VALUES ({i}, 'user{}', 'message number {i}');\n",
                i % 977
            )
            .as_bytes(),
        );
        i += 1;
    }
    out.truncate(n);
    out
}

/// Checks that every file a restored snapshot holds equals the source file of that name
/// (source files are never modified once written), and that the count matches.
fn restore_and_compare(env: &Env, snap: &Value, src: &Path, target: &str) {
    let id = snap["id"].as_str().unwrap();
    let o = env.coop(&[
        "restore",
        "-q",
        id,
        "--target",
        env.p(target).to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "restore {id}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dst = restored(env, target, src);
    let files = walk_files(&dst);
    assert_eq!(
        files.len() as u64,
        snap["summary"]["total_files"].as_u64().unwrap(),
        "file count of {id}"
    );
    for f in files {
        let rel = f.strip_prefix(&dst).unwrap();
        assert!(
            fs::read(&f).unwrap() == fs::read(src.join(rel)).unwrap(),
            "{id}: {} differs",
            rel.display()
        );
    }
    fs::remove_dir_all(env.p(target)).unwrap();
}

fn check_ok(env: &Env) -> Value {
    let o = env.coop(&["--json", "check"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert!(
        o.status.success(),
        "check failed: {v} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    v
}

#[test]
fn kill9_during_backup_loses_nothing() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        fs::write(
            src.join(format!("base-{i}")),
            if i % 2 == 0 {
                pseudo_random(1 << 20, i)
            } else {
                text(1 << 20, i)
            },
        )
        .unwrap();
    }
    env.backup(&src);
    // How long does a backup of fresh data take here?
    let t = Instant::now();
    fs::write(src.join("probe"), pseudo_random(4 << 20, 99)).unwrap();
    fs::remove_dir_all(env.p("cache/coop")).unwrap();
    env.backup(&src);
    let typical = t.elapsed().max(Duration::from_millis(200));

    let trials = 30 * scale();
    let mut rng = Rng(0x5eed_1234);
    let (mut killed, mut finished, mut reused_trials) = (0, 0, 0);
    let mut lost = 0;
    for trial in 0..trials {
        let before = env.snapshots();
        let new_bytes = 2_000_000 + rng.below(3_000_000) as usize;
        let data = if trial % 2 == 0 {
            pseudo_random(new_bytes, trial as u64 + 1000)
        } else {
            text(new_bytes, trial as u64 * 7)
        };
        fs::write(src.join(format!("trial-{trial}")), &data).unwrap();
        if trial % 3 == 0 {
            let _ = fs::remove_dir_all(env.p("cache/coop")); // full re-read: a longer window
        }
        let mut child = env
            .cmd()
            .args(["backup", "-q", src.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(
            rng.below(typical.as_micros() as u64 * 3 / 2),
        ));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        } else {
            killed += 1;
        }
        // The repository is consistent (leftovers allowed) and nothing earlier is gone.
        check_ok(&env);
        let after = env.snapshots();
        for s in &before {
            if !after.iter().any(|a| a["id"] == s["id"]) {
                lost += 1;
            }
        }
        // The next backup succeeds and does not upload more than the new file.
        let next = env.backup(&src);
        let added = next["summary"]["bytes_added"].as_u64().unwrap();
        assert!(
            added <= new_bytes as u64,
            "trial {trial}: next backup uploaded {added} > {new_bytes}"
        );
        if !status.success() && added < new_bytes as u64 {
            reused_trials += 1;
        }
    }
    assert_eq!(lost, 0);
    // Every snapshot restores byte-identical.
    let snaps = env.snapshots();
    for s in &snaps {
        restore_and_compare(&env, s, &src, "verify");
    }
    let v = env.json(&["check", "--read-data"]);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    report(&format!(
        "kill -9 during backup: {trials} trials ({killed} killed mid-run, {finished} finished first); \
         {reused_trials} follow-up backups reused uploaded data; {} snapshots restored byte-identical; snapshots lost: {lost}",
        snaps.len()
    ));
}

/// A repository with forgotten snapshots and partly used packs, ready for prune.
fn prune_fixture() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..12 {
        fs::write(src.join(format!("a{i}")), pseudo_random(300_000, i)).unwrap();
    }
    env.backup(&src);
    for i in 0..6 {
        fs::remove_file(src.join(format!("a{i}"))).unwrap();
    }
    for i in 0..6 {
        fs::write(src.join(format!("b{i}")), text(300_000, i)).unwrap();
    }
    env.backup(&src);
    fs::write(src.join("c"), pseudo_random(200_000, 77)).unwrap();
    env.backup(&src);
    env.ok(&["forget", "--keep-last", "2"]);
    (env, src)
}

#[test]
fn kill9_at_every_prune_phase_loses_nothing() {
    let phases = [
        "store:after-put#1",
        "prune:after-repack-pack",
        "prune:after-index",
        "prune:after-plan",
        "prune:mid-delete",
        "prune:after-delete-packs",
        "prune:before-plan-delete",
    ];
    let mut crashed = 0;
    for phase in phases {
        // Which blobs share a pack depends on the backup's worker threads; repacking needs a
        // pack that holds used and unused blobs, so that phase gets a fixture that has one.
        let mut tries = 0;
        let (env, src) = loop {
            let f = prune_fixture();
            if phase != "prune:after-repack-pack" {
                break f;
            }
            let v = f.0.json(&["prune", "--dry-run", "--max-unused", "0%"]);
            if v.get("coop").unwrap_or(&v)["packs_to_repack"]
                .as_u64()
                .unwrap_or(0)
                > 0
            {
                break f;
            }
            tries += 1;
            assert!(
                tries < 10,
                "no fixture with a partly used pack in 10 tries: {v}"
            );
        };
        let packs_before = env.count("packs");
        let o = env
            .cmd()
            .env("COOP_FAULT_POINT", phase)
            .args(["prune", "--max-unused", "0%"])
            .output()
            .unwrap();
        assert!(
            !o.status.success(),
            "{phase}: prune should have been killed"
        );
        crashed += 1;
        // Usable after the crash: check passes, every snapshot restores.
        check_ok(&env);
        for s in env.snapshots() {
            restore_and_compare(&env, &s, &src, "r1");
        }
        // Running prune again finishes the job. (The packs the killed prune wrote before its
        // index are unindexed and young: a default prune keeps them, as they could belong to
        // a running backup; with no backup running they may go at once.)
        env.ok(&["prune", "--max-unused", "0%", "--unindexed-grace", "0s"]);
        let v = check_ok(&env);
        assert!(
            v["unreferenced_packs"].as_array().unwrap().is_empty(),
            "{phase}: leftovers remain: {v}"
        );
        for s in env.snapshots() {
            restore_and_compare(&env, &s, &src, "r2");
        }
        assert!(
            env.count("packs") < packs_before,
            "{phase}: space was reclaimed"
        );
        let v = env.json(&["check", "--read-data"]);
        assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    }
    report(&format!("kill -9 during prune: {crashed} phases crashed, each then checked, restored and finished by a second prune; snapshots lost: 0"));
}

#[test]
fn flipped_byte_in_a_pack_is_found_and_named() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for round in 0..5u64 {
        for i in 0..4u64 {
            fs::write(
                src.join(format!("f{round}-{i}")),
                pseudo_random(400_000, round * 10 + i),
            )
            .unwrap();
        }
        env.backup(&src);
    }
    let pristine = env.p("pristine");
    copy_dir(&env.repo(), &pristine);
    let packs: Vec<PathBuf> = walk_files(&pristine.join("packs"));
    let trials = 50 * scale();
    let mut rng = Rng(0xf11b);
    let (mut detected, mut partial_restores) = (0, 0);
    for _ in 0..trials {
        let _ = fs::remove_dir_all(env.repo());
        copy_dir(&pristine, &env.repo());
        let victim = &packs[rng.below(packs.len() as u64) as usize];
        let rel = victim.strip_prefix(&pristine).unwrap();
        let target = env.repo().join(rel);
        let mut bytes = fs::read(&target).unwrap();
        let pos = rng.below(bytes.len() as u64) as usize;
        bytes[pos] ^= 1 << rng.below(8);
        fs::write(&target, bytes).unwrap();
        let name = target.file_name().unwrap().to_str().unwrap().to_string();

        let o = env.coop(&["--json", "check", "--read-data"]);
        assert_eq!(o.status.code(), Some(6), "check must fail");
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let errors = v["errors"].as_array().unwrap();
        let hit = errors
            .iter()
            .find(|e| e["object"].as_str().unwrap().contains(&name))
            .expect("the damaged pack is named");
        let files: Vec<String> = hit["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap().to_string())
            .collect();
        assert!(!files.is_empty(), "affected files are named: {hit}");
        assert!(!hit["snapshots"].as_array().unwrap().is_empty());
        detected += 1;

        // Restore a snapshot the damage affects.
        let affected_snap = hit["snapshots"][0].as_str().unwrap().to_string();
        let out = env.p("out");
        let _ = fs::remove_dir_all(&out);
        let o = env.coop(&[
            "restore",
            "-q",
            &affected_snap,
            "--target",
            out.to_str().unwrap(),
        ]);
        match o.status.code() {
            Some(7) => {
                // Data pack: named files fail and are absent; all others are identical.
                partial_restores += 1;
                let dst = restored(&env, "out", &src);
                let snap = env
                    .snapshots()
                    .into_iter()
                    .find(|s| s["id"] == affected_snap.as_str())
                    .unwrap();
                let mut restored_files = 0;
                let mut affected_total = 0;
                for f in fs::read_dir(&src).unwrap() {
                    let f = f.unwrap().path();
                    let fname = f.file_name().unwrap().to_str().unwrap().to_string();
                    let affected = files.iter().any(|a| a.ends_with(&format!("/{fname}")));
                    let r = dst.join(&fname);
                    // Restore decrypts a pack as a stream and verifies every blob: blobs before
                    // the damaged 64 KiB chunk still restore, so a file in the damaged pack may
                    // come back, but only byte-identical; the count below shows nothing is left out.
                    if affected {
                        affected_total += 1;
                    }
                    if r.exists() {
                        restored_files += 1;
                        assert!(
                            fs::read(&r).unwrap() == fs::read(&f).unwrap(),
                            "{fname} restored wrong"
                        );
                    }
                }
                let failed = String::from_utf8_lossy(&o.stderr).matches("FAILED").count() as u64;
                assert!(
                    failed >= 1 && failed <= affected_total,
                    "{failed} failed of {affected_total} affected"
                );
                assert_eq!(
                    restored_files + failed,
                    snap["summary"]["total_files"].as_u64().unwrap(),
                    "every file is restored or reported"
                );
            }
            Some(6) => {
                // A tree pack: the damaged trees are named, nothing is restored silently.
                assert!(String::from_utf8_lossy(&o.stderr).contains(&name));
            }
            other => panic!("restore of a damaged repository exited {other:?}"),
        }
    }
    report(&format!("flipped byte in a pack: {trials} trials, {detected} detected and named by check --read-data, {partial_restores} partial restores with all unaffected files intact; silent corruption: 0"));
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
            fs::set_permissions(&t, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

#[test]
fn truncated_empty_and_missing_objects_give_specific_errors() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(300_000, 1)).unwrap();
    env.backup(&src);
    fs::write(src.join("b"), text(300_000, 2)).unwrap();
    env.backup(&src);
    // Remember the newest snapshot (rollback detection) and which object it is.
    let newest_snapshot = env.snapshots().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let pristine = env.p("pristine");
    copy_dir(&env.repo(), &pristine);
    let kinds = ["config", "keys", "packs", "index", "snapshots"];
    let mut cases = 0;
    for kind in kinds {
        for damage in ["truncate", "empty", "missing", "oversized"] {
            if damage == "oversized" && kind == "config" {
                continue;
            }
            let _ = fs::remove_dir_all(env.repo());
            copy_dir(&pristine, &env.repo());
            let target = if kind == "config" {
                env.repo().join("config")
            } else if kind == "snapshots" {
                walk_files(&env.repo().join(kind))
                    .into_iter()
                    .find(|p| p.ends_with(&newest_snapshot))
                    .unwrap()
            } else {
                let mut all = walk_files(&env.repo().join(kind));
                all.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
                all.pop().unwrap() // the newest object of that kind
            };
            match damage {
                "truncate" => {
                    let b = fs::read(&target).unwrap();
                    fs::write(&target, &b[..b.len() / 2]).unwrap();
                }
                "empty" => fs::write(&target, b"").unwrap(),
                // A lying site serves an object larger than any of its kind can be (1 GiB,
                // sparse here): it is refused by its size, before it is read into memory.
                "oversized" => fs::OpenOptions::new()
                    .write(true)
                    .open(&target)
                    .unwrap()
                    .set_len(1 << 30)
                    .unwrap(),
                _ => fs::remove_file(&target).unwrap(),
            }
            let files_before = walk_files(&env.repo()).len();
            let o = env.coop(&["check", "--read-data"]);
            let err = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!err.contains("panicked"), "{kind}/{damage}: panic: {err}");
            let code = o.status.code();
            let expect_ok_with_warning = kind == "snapshots" && damage == "missing";
            if expect_ok_with_warning {
                assert!(
                    err.contains("POSSIBLE ROLLBACK"),
                    "{kind}/{damage}: missing newest snapshot must warn: {err}"
                );
            } else {
                let expected = match (kind, damage) {
                    ("config", "missing") => 4,
                    ("keys", "missing") => 5,
                    _ => 6,
                };
                assert_eq!(code, Some(expected), "{kind}/{damage}: {err}");
                if damage == "oversized" {
                    assert!(
                        err.contains("bytes, more than the"),
                        "{kind}/{damage}: {err}"
                    );
                }
                // Prune refuses and deletes nothing.
                let p = env.coop(&["prune"]);
                assert!(
                    !p.status.success(),
                    "{kind}/{damage}: prune must refuse: {}",
                    String::from_utf8_lossy(&p.stdout)
                );
                assert!(!String::from_utf8_lossy(&p.stderr).contains("panicked"));
                assert_eq!(
                    walk_files(&env.repo()).len(),
                    files_before,
                    "{kind}/{damage}: prune deleted something"
                );
            }
            cases += 1;
        }
    }
    report(&format!("truncated / empty / missing / oversized objects: {cases} cases over 5 object types, each a specific error (or a rollback warning) and no panic, an oversized object refused by its size; prune refused in every damaged case"));
}

#[test]
fn four_concurrent_backups() {
    let env = Env::new();
    let mut children = Vec::new();
    for w in 0..4u64 {
        let src = env.p(&format!("src{w}"));
        fs::create_dir_all(&src).unwrap();
        for i in 0..6u64 {
            fs::write(
                src.join(format!("f{i}")),
                pseudo_random(500_000, w * 100 + i),
            )
            .unwrap();
        }
        // A file shared by all four: concurrent dedup of the same blob.
        fs::write(src.join("shared"), pseudo_random(700_000, 4242)).unwrap();
        children.push((
            src.clone(),
            env.cmd()
                .args(["backup", "-q", src.to_str().unwrap()])
                .spawn()
                .unwrap(),
        ));
    }
    for (_, c) in &mut children {
        assert!(c.wait().unwrap().success());
    }
    let snaps = env.snapshots();
    assert_eq!(snaps.len(), 4);
    for (src, _) in &children {
        let s = snaps
            .iter()
            .find(|s| s["paths"][0] == src.to_str().unwrap())
            .unwrap();
        restore_and_compare(&env, s, src, "r");
    }
    let v = env.json(&["check", "--read-data"]);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    report("concurrency: 4 simultaneous backups, 4 snapshots restored, check --read-data clean; snapshots lost: 0");
}

#[test]
fn prune_racing_a_backup_that_reuses_unused_blobs() {
    // x is stored by snapshot 1, then forgotten: its blobs are unused.
    let setup = || {
        let env = Env::new();
        let src = env.p("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("keep"), pseudo_random(300_000, 1)).unwrap();
        let x = pseudo_random(2_000_000, 2);
        fs::write(src.join("x"), &x).unwrap();
        env.backup(&src);
        fs::remove_file(src.join("x")).unwrap();
        env.backup(&src);
        env.ok(&["forget", "--keep-last", "1"]);
        fs::write(src.join("x"), &x).unwrap();
        (env, src)
    };
    let wait_for_lock = |env: &Env| {
        let t = Instant::now();
        while walk_files(&env.repo().join("locks")).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "backup never took its lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200)); // past index load
    };

    // A: the backup loaded the index before prune condemned x's pack.
    let (env, src) = setup();
    let go = env.p("go");
    let mut b = env
        .cmd()
        .env(
            "COOP_PAUSE",
            format!("backup:before-index={}", go.display()),
        )
        .args(["backup", "-q", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_for_lock(&env);
    let p: Value = env.json(&["prune"]);
    assert!(
        !p["postponed"].as_array().unwrap().is_empty(),
        "prune must wait for the live backup: {p}"
    );
    fs::write(&go, b"").unwrap();
    assert!(b.wait().unwrap().success());
    let p2: Value = env.json(&["prune"]);
    assert!(p2["packs_rescued"].as_u64().unwrap() >= 1, "{p2}");
    restore_and_compare(&env, &env.snapshots().last().unwrap().clone(), &src, "ra");
    check_ok(&env);

    // B: prune condemned x's pack (crashed before deleting); a new backup must re-upload x.
    let (env, src) = setup();
    let o = env
        .cmd()
        .env("COOP_FAULT_POINT", "prune:after-plan")
        .args(["prune"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let v = env.backup(&src);
    assert!(
        v["summary"]["bytes_added"].as_u64().unwrap() >= 2_000_000,
        "x re-uploaded, not deduplicated against a condemned pack: {v}"
    );
    env.ok(&["prune"]);
    restore_and_compare(&env, &env.snapshots().last().unwrap().clone(), &src, "rb");
    check_ok(&env);

    // C: a backup whose lock went stale (deleted here) loses the race: it notices the
    // vanished pack and writes no snapshot; the next backup succeeds.
    let (env, src) = setup();
    let go = env.p("go");
    let b = env
        .cmd()
        .env(
            "COOP_PAUSE",
            format!("backup:before-index={}", go.display()),
        )
        .args(["backup", "-q", src.to_str().unwrap()])
        .spawn()
        .unwrap();
    wait_for_lock(&env);
    for l in walk_files(&env.repo().join("locks")) {
        fs::remove_file(l).unwrap();
    }
    let n_snaps = env.snapshots().len();
    env.ok(&["prune"]);
    fs::write(&go, b"").unwrap();
    let st = b.wait_with_output().unwrap();
    assert!(
        !st.status.success(),
        "the backup must notice the vanished pack"
    );
    assert_eq!(env.snapshots().len(), n_snaps, "no snapshot with holes");
    env.backup(&src);
    restore_and_compare(&env, &env.snapshots().last().unwrap().clone(), &src, "rc");
    check_ok(&env);
    report("prune vs backup: 3 races (backup first: prune waited then rescued; plan first: backup re-uploaded; stale lock: backup refused to commit); snapshots lost: 0");
}

#[test]
fn disk_full_leaves_no_half_snapshot() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..10 {
        fs::write(src.join(format!("f{i}")), pseudo_random(400_000, i)).unwrap();
    }
    env.backup(&src);
    let trials = 10 * scale();
    let mut failed = 0;
    for seed in 0..trials {
        fs::write(
            src.join(format!("new-{seed}")),
            pseudo_random(900_000, 500 + seed as u64),
        )
        .unwrap();
        let before = env.count("snapshots");
        let o = env
            .cmd()
            .env("COOP_FAULT_STORE", format!("put-enospc=0.5,seed={seed}"))
            .args(["backup", "-q", src.to_str().unwrap()])
            .output()
            .unwrap();
        if !o.status.success() {
            failed += 1;
            assert_eq!(
                o.status.code(),
                Some(10),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("No space left"),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(env.count("snapshots"), before, "no half snapshot");
        }
        check_ok(&env);
    }
    assert!(failed > 0, "faults were injected");
    env.backup(&src);
    restore_and_compare(&env, &env.snapshots().last().unwrap().clone(), &src, "r");
    report(&format!("disk full (ENOSPC injected in the object_store layer): {trials} backups, {failed} failed cleanly, no half snapshot; then check and backup succeeded; snapshots lost: 0"));
}
