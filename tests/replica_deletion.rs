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
