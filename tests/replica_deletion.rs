//! Replicas follow the source's deletions: only what an admin of the source logged as deleted,
//! once older than the grace period, and never what a snapshot the replica keeps needs.

use crate::common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::Path;

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Two backups of changing data, the replica made, then the older snapshot forgotten and
/// pruned at the source.
fn pruned_source(env: &Env) -> (std::path::PathBuf, std::path::PathBuf) {
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("old"), pseudo_random(3 << 20, 1)).unwrap();
    env.backup(&src);
    fs::remove_file(src.join("old")).unwrap();
    fs::write(src.join("new"), pseudo_random(3 << 20, 2)).unwrap();
    env.backup(&src);
    let replica = env.p("replica");
    let r = replica.to_str().unwrap();
    env.ok(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
    ]);
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune"]);
    (src, replica)
}

fn packs(repo: &Path) -> usize {
    walk_files(&repo.join("packs")).len()
}

#[test]
fn a_replica_shrinks_when_the_source_prunes_and_still_restores() {
    let env = Env::new();
    let (src, replica) = pruned_source(&env);
    let r = replica.to_str().unwrap();
    assert!(packs(&replica) > packs(&env.repo()));
    // Within the grace period nothing goes.
    let o = env.coop(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("younger than"), "{}", text(&o));
    assert!(packs(&replica) > packs(&env.repo()));
    // After it, the replica follows.
    let v: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
        "--deletion-grace",
        "0s",
    ]))
    .unwrap();
    assert!(v["deleted_at_target"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(packs(&replica), packs(&env.repo()));
    assert_eq!(walk_files(&replica.join("snapshots")).len(), 1);
    env.ok(&["--repo", r, "check", "--read-data"]);
    let out = env.p("out");
    env.ok(&[
        "--repo",
        r,
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out", &src));
}

#[test]
fn objects_gone_without_an_admins_logged_deletion_stay_on_the_replica() {
    let env = Env::new();
    let key = env.p("agent.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "agent",
        "--out",
        key.to_str().unwrap(),
    ]);
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(1 << 20, 3)).unwrap();
    env.backup(&src);
    let replica = env.p("replica");
    let r = replica.to_str().unwrap();
    env.ok(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
    ]);
    // A hostile source (or a stolen agent with delete rights) removes a pack, and the agent's
    // own log claims the deletion.
    let pack = walk_files(&env.repo().join("packs"))[0].clone();
    let rel = pack
        .strip_prefix(env.repo())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    fs::remove_file(&pack).unwrap();
    let repo = coop_agent::repo::Repo::open(env.repo().to_str().unwrap()).unwrap();
    let wk =
        coop_formats::writerkey::WriterKey::decode(&fs::read_to_string(&key).unwrap()).unwrap();
    let actor = coop_agent::log::Actor::from_writer_key(&wk);
    let mut e = coop_agent::log::entry(&actor, coop_formats::tlog::Event::Delete, None, None, None);
    e.data.insert("paths".into(), serde_json::json!([rel]));
    coop_agent::log::append(&repo, &actor, &[e]).unwrap();
    let o = env.coop(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
        "--deletion-grace",
        "0s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("without an admin's logged deletion"),
        "{}",
        text(&o)
    );
    assert!(
        replica.join(&rel).exists(),
        "the replica lost a pack on a writer's word"
    );
    env.ok(&["--repo", r, "check", "--read-data"]);
    // Even an admin's logged deletion of a pack that a snapshot the replica keeps still
    // names is not followed.
    let ids = coop_agent::keys::load_identities(&env.p("config/coop/identity.txt")).unwrap();
    let access = coop_agent::keys::Access::Identity(std::sync::Arc::new(ids), None);
    let keys = coop_agent::tenant::keys(&repo, &access, "coop").unwrap();
    coop_agent::log::record_deletions(
        &repo,
        &keys,
        coop_formats::tlog::Event::Delete,
        std::slice::from_ref(&rel),
    )
    .unwrap();
    let o = env.coop(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
        "--deletion-grace",
        "0s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("still named by snapshots"),
        "{}",
        text(&o)
    );
    assert!(replica.join(&rel).exists());
    assert_eq!(code(&env.coop(&["--repo", r, "check", "--read-data"])), 0);
}

/// A source whose prune repacked a pack the kept snapshot needs (and consolidated the index
/// objects its inventory names): the kept snapshot's inventory names objects that are gone.
/// With `replica_before`, that replica is made before the forget and the prune.
fn repacked_source(env: &Env, replica_before: Option<&Path>) -> std::path::PathBuf {
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    // One pack holding a file that stays and one that goes.
    fs::write(src.join("keep"), pseudo_random(1 << 20, 11)).unwrap();
    fs::write(src.join("old"), pseudo_random(3 << 20, 12)).unwrap();
    env.backup(&src);
    fs::remove_file(src.join("old")).unwrap();
    fs::write(src.join("new"), pseudo_random(1 << 20, 13)).unwrap();
    env.backup(&src);
    if let Some(r) = replica_before {
        let from = env.repo();
        env.ok(&[
            "replicate",
            "--from",
            from.to_str().unwrap(),
            "--to",
            r.to_str().unwrap(),
        ]);
    }
    env.ok(&["forget", "--keep-last", "1"]);
    let v: Value = serde_json::from_str(&env.ok(&["--json", "prune"])).unwrap();
    assert!(v["packs_deleted"].as_u64().unwrap() > 0, "{v}");
    src
}

/// A replica made only after the prune still gets the kept snapshot: the admin's logged
/// deletion names what the prune wrote in place of what it deleted, and the replica
/// needs those instead. It restores, and check --read-data there is clean.
#[test]
fn a_new_replica_after_a_repacking_prune_gets_the_kept_snapshot() {
    let env = Env::new();
    let src = repacked_source(&env, None);
    let replica = env.p("replica");
    let r = replica.to_str().unwrap();
    let v: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
    ]))
    .unwrap();
    assert_eq!(v["snapshots_held_back"], 0, "{v}");
    env.ok(&["--repo", r, "check", "--read-data"]);
    let out = env.p("out");
    env.ok(&[
        "--repo",
        r,
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out", &src));
    // And --check finds the replica complete.
    let v: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "replicate",
        "--check",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        r,
    ]))
    .unwrap();
    assert_eq!(v["incomplete_at_target"], serde_json::json!([]), "{v}");
}

/// A replica made before the prune drops the repacked pack and the consolidated index
/// objects after the grace period (its snapshot needs the replacements now, which it has),
/// and still restores.
#[test]
fn an_old_replica_drops_what_a_prune_replaced() {
    let env = Env::new();
    let replica = env.p("replica");
    let src = repacked_source(&env, Some(&replica));
    let r = replica.to_str().unwrap();
    let repo = env.repo();
    let from = repo.to_str().unwrap();
    env.ok(&[
        "replicate",
        "--from",
        from,
        "--to",
        r,
        "--deletion-grace",
        "0s",
    ]);
    let names = |p: &Path, dir: &str| -> std::collections::BTreeSet<String> {
        walk_files(&p.join(dir))
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names(&replica, "packs"), names(&repo, "packs"));
    assert_eq!(names(&replica, "index"), names(&repo, "index"));
    let out = env.p("out");
    env.ok(&[
        "--repo",
        r,
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out", &src));
}

/// As a hostile source: after the prune it also drops one of the packs the prune wrote in
/// place of the old ones. The replica must not take the snapshot (it would lack data), and
/// says why.
#[test]
fn a_source_that_lost_a_replacement_gets_the_snapshot_held_back() {
    let env = Env::new();
    repacked_source(&env, None);
    let repo = env.repo();
    // The newest pack file at the source is one the prune wrote (the repack).
    let mut packs: Vec<_> = walk_files(&repo.join("packs"));
    packs.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    fs::remove_file(packs.last().unwrap()).unwrap();
    let replica = env.p("replica");
    let o = env.coop(&[
        "--json",
        "replicate",
        "--from",
        repo.to_str().unwrap(),
        "--to",
        replica.to_str().unwrap(),
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert_eq!(v["snapshots_held_back"], 1, "{}", text(&o));
    assert!(walk_files(&replica.join("snapshots")).is_empty());
}

/// The admin's log in a local repository: (its directory, the newest checkpoint's size and
/// origin).
fn admin_log(repo: &Path) -> (std::path::PathBuf, u64, String) {
    for d in fs::read_dir(repo.join("log")).unwrap() {
        let d = d.unwrap().path();
        let Some(size) = fs::read_dir(d.join("checkpoint"))
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
            .max()
        else {
            continue;
        };
        let note = fs::read_to_string(d.join(format!("checkpoint/{size}"))).unwrap();
        let origin = note.lines().next().unwrap().to_string();
        if origin.contains("/admin/") {
            return (d, size, origin);
        }
    }
    panic!("no admin log in {}", repo.display())
}

/// SPEC 24.9, as a keyless storage site: it appends to the admin's log a deletion of every
/// object, under a checkpoint whose signature is zeros and a time long past, then deletes
/// the objects. A replica follows none of it, and still restores.
#[test]
fn a_site_cannot_make_replicas_delete_by_forging_the_admins_log() {
    use coop_formats::tlog;
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), pseudo_random(2 << 20, 7)).unwrap();
    env.backup(&src);
    let replica = env.p("replica");
    let (repo, r) = (env.repo(), replica.to_str().unwrap().to_string());
    env.ok(&["replicate", "--from", repo.to_str().unwrap(), "--to", &r]);
    let victims: Vec<String> = ["snapshots", "index", "packs"]
        .iter()
        .flat_map(|k| walk_files(&repo.join(k)))
        .map(|p| p.strip_prefix(&repo).unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(victims.len() >= 3, "{victims:?}");
    // The forgery: one more entry in the admin's log, under a zero signature.
    let (dir, size, origin) = admin_log(&repo);
    let n = size / 256;
    let old = dir.join(tlog::bundle_path(n, size % 256));
    let mut entries = if size % 256 > 0 {
        tlog::decode_bundle(&fs::read(&old).unwrap()).unwrap()
    } else {
        Vec::new()
    };
    let entry = serde_json::json!({
        "type": tlog::ENTRY_TYPE, "time": "2000-01-01T00:00:00Z", "event": "delete",
        "actor": "00".repeat(32), "actor_name": "admin", "data": { "paths": victims },
    });
    entries.push(serde_json::to_vec(&entry).unwrap());
    let new_size = size + 1;
    let path = dir.join(tlog::bundle_path(n, new_size - n * 256));
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, tlog::encode_bundle(&entries)).unwrap();
    use base64::Engine;
    let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 68]);
    let root = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    fs::write(
        dir.join(format!("checkpoint/{new_size}")),
        format!("{origin}\n{new_size}\n{root}\n\n\u{2014} {origin} {zeros}\n"),
    )
    .unwrap();
    for v in &victims {
        fs::remove_file(repo.join(v)).unwrap();
    }
    let o = env.coop(&[
        "--json",
        "replicate",
        "--from",
        repo.to_str().unwrap(),
        "--to",
        &r,
        "--deletion-grace",
        "0s",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v["deleted_at_target"].as_u64(), Some(0), "{}", text(&o));
    for victim in &victims {
        assert!(
            replica.join(victim).exists(),
            "{victim} was deleted at the replica"
        );
    }
    let target = env.p("restored");
    env.ok(&[
        "--repo",
        &r,
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "restored", &src));
    // The source's own check names the forgery.
    let o = env.coop(&["log", "verify"]);
    assert_eq!(code(&o), 6, "{}", text(&o));
    assert!(text(&o).contains("forged"), "{}", text(&o));
}

/// A crash at every fault point of an append (after its pending object, after claiming its
/// checkpoint before the bundles, after the bundles, and after the append before the caller
/// goes on) leaves a log the next append continues: later backups are logged, with no
/// warning.
#[test]
fn a_crash_inside_a_log_append_does_not_wedge_the_log() {
    for point in [
        "log:after-pending",
        "log:after-claim",
        "log:after-bundles",
        "log:after-checkpoint",
    ] {
        let env = Env::new();
        let src = env.p("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a"), b"one").unwrap();
        env.backup(&src);
        fs::write(src.join("a"), b"two").unwrap();
        let mut c = env.cmd();
        c.env("COOP_FAULT_POINT", point)
            .args(["backup", src.to_str().unwrap()]);
        let o = c.output().unwrap();
        assert!(
            !o.status.success(),
            "the fault point {point} did not fire: {}",
            text(&o)
        );
        let (_, before, _) = admin_log(&env.repo());
        for i in 0..3 {
            fs::write(src.join("a"), format!("three {i}")).unwrap();
            let o = env.coop(&["backup", src.to_str().unwrap()]);
            assert!(o.status.success(), "{point}: {}", text(&o));
            assert!(
                !text(&o).contains("could not be written"),
                "{point}: {}",
                text(&o)
            );
        }
        let (_, after, _) = admin_log(&env.repo());
        assert_eq!(after, before + 3, "{point}");
        env.ok(&["log", "verify"]);
    }
}

/// Issue 24 finding 11: two appenders of one admin key on two machines (two cache
/// directories: no shared lock) append at the same time; every append lands, and the log
/// verifies. Every write waits 25 ms, so that both look at a checkpoint's name before either
/// writes it (the race the create-only claim of SPEC 24.2 settles).
#[test]
fn two_machines_appending_to_one_log_at_once_leave_a_sound_log() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"zero").unwrap();
    env.backup(&src);
    let (_, before, _) = admin_log(&env.repo());
    let rounds = 6;
    let handles: Vec<_> = (0..2)
        .map(|m| {
            let mut cmds = Vec::new();
            for i in 0..rounds {
                let mut c = env.cmd();
                c.env("COOP_CACHE_DIR", env.p(&format!("machine{m}-cache")))
                    .env("COOP_FAULT_STORE", "put-delay-ms=25")
                    .args(["backup", "--stdin-filename", &format!("m{m}-{i}")])
                    .args(["--stdin-from-command", &format!("echo {m} {i}")]);
                cmds.push(c);
            }
            std::thread::spawn(move || {
                cmds.into_iter()
                    .map(|mut c| c.output().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for o in h.join().unwrap() {
            assert!(o.status.success(), "{}", text(&o));
            assert!(!text(&o).contains("could not be written"), "{}", text(&o));
        }
    }
    let (_, after, _) = admin_log(&env.repo());
    assert_eq!(after, before + 2 * rounds as u64, "every append landed");
    env.ok(&["log", "verify"]);
}

/// As a lying site: the source hides a snapshot from an admin's prune (one whose client never
/// saw it, so no rollback alarm), the prune repacks what the visible snapshot needs and
/// deletes the old pack, and the site shows the snapshot again. The prune logged which
/// snapshots it walked: a replica that keeps the hidden one does not resolve its inventory
/// through that prune, keeps the old pack, and still restores it.
#[test]
fn a_snapshot_hidden_from_a_prune_keeps_its_packs_at_replicas() {
    let env = Env::new();
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("keep"), pseudo_random(1 << 20, 21)).unwrap();
    fs::write(src.join("old"), pseudo_random(3 << 20, 22)).unwrap();
    env.backup(&src);
    let hidden = env.snapshots()[0]["id"].as_str().unwrap().to_string();
    fs::remove_file(src.join("old")).unwrap();
    env.backup(&src);
    let replica = env.p("replica");
    let (from, r) = (env.repo(), replica.to_str().unwrap().to_string());
    let from = from.to_str().unwrap().to_string();
    env.ok(&["replicate", "--from", &from, "--to", &r]);
    let packs_before: Vec<_> = walk_files(&replica.join("packs"));
    // The site hides the first snapshot; an admin on a new machine prunes.
    let snap = walk_files(&env.repo().join("snapshots"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&hidden))
        .unwrap();
    let aside = env.p("aside");
    fs::rename(&snap, &aside).unwrap();
    let o = env
        .cmd()
        .env("XDG_CACHE_HOME", env.p("fresh-cache"))
        .args(["--json", "prune"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["packs_deleted"].as_u64().unwrap() > 0, "{v}");
    fs::rename(&aside, &snap).unwrap();
    env.ok(&[
        "replicate",
        "--from",
        &from,
        "--to",
        &r,
        "--deletion-grace",
        "0s",
    ]);
    for p in &packs_before {
        assert!(p.exists(), "{} was deleted at the replica", p.display());
    }
    let out = env.p("out");
    env.ok(&[
        "--repo",
        &r,
        "restore",
        &hidden,
        "--target",
        out.to_str().unwrap(),
    ]);
    let got = restored(&env, "out", &src);
    assert!(fs::read(got.join("old")).unwrap() == pseudo_random(3 << 20, 22));
    assert!(fs::read(got.join("keep")).unwrap() == pseudo_random(1 << 20, 21));
}
