//! Replicas follow the source's deletions: only what an admin of the source logged as deleted,
//! once older than the grace period, and never what a snapshot the replica keeps needs.

mod common;

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
    let access = coop_agent::keys::Access::Identity(std::sync::Arc::new(ids));
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
