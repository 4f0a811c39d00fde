//! A hostile storage site: the admin's own commands, run against a store that lies, never
//! delete data there, never restore the wrong thing with exit 0, and never give an honest
//! replica a snapshot whose data it lacks.
//!
//! The site is `tests/tools/hostile_proxy.py` in front of the moto S3 server `scripts/test.sh`
//! starts: it hides keys from listings, truncates listings while claiming they are complete,
//! serves one object's bytes under another's name, or serves an older copy of the bucket.

use crate::common;

use common::s3::*;
use common::*;
use coop_agent::store::Store;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Every object key in the bucket, read from the real server (not through the proxy).
fn objects(moto: &str, url: &str) -> BTreeSet<String> {
    set_s3_env_here(moto);
    let s = Store::open(url, false).unwrap();
    [
        "keys",
        "packs",
        "index",
        "snapshots",
        "registry",
        "writers",
        "protected",
        "forgotten",
    ]
    .iter()
    .flat_map(|d| s.list(d).unwrap())
    .map(|l| l.path)
    .collect()
}

fn snapshot_paths(moto: &str, url: &str) -> Vec<String> {
    objects(moto, url)
        .into_iter()
        .filter(|p| p.starts_with("snapshots/"))
        .collect()
}

/// The snapshot IDs, oldest first, as the client lists them.
fn snapshot_ids(env: &Env, ep: &str, url: &str) -> Vec<String> {
    let v: Value =
        serde_json::from_str(&ok_s3(env, ep, &["--json", "snapshots", "--repo", url])).unwrap();
    let mut s: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["time"].as_str().unwrap().to_string(),
                s["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    s.sort();
    s.into_iter().map(|(_, id)| id).collect()
}

fn path_of(paths: &[String], id: &str) -> String {
    paths
        .iter()
        .find(|p| p.ends_with(id))
        .unwrap_or_else(|| panic!("no object for snapshot {id} in {paths:?}"))
        .clone()
}

fn code(o: &std::process::Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Site {
    env: Env,
    moto: String,
    proxy: Proxy,
    bucket: String,
    url: String,
}

impl Site {
    fn new(name: &str) -> Option<Site> {
        let moto = s3()?;
        let env = Env::new();
        let bucket = bucket(&moto, name);
        let proxy = Proxy::start(&moto, env.dir.path());
        let url = format!("s3://{bucket}/repo");
        let site = Site {
            env,
            moto,
            proxy,
            bucket,
            url,
        };
        site.ok(&["init", "--repo", &site.url]);
        Some(site)
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut a: Vec<&str> = args.to_vec();
        if !a.contains(&"--repo") && !a.contains(&"--from") {
            a.extend(["--repo", &self.url]);
        }
        coop_s3(&self.env, &self.proxy.endpoint, &a)
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "coop {args:?} ({}): {}",
            code(&o),
            stderr(&o)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    /// Runs a command that must fail, and returns its stderr.
    fn refused(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "coop {args:?} succeeded against a lying site: {}{}",
            String::from_utf8_lossy(&o.stdout),
            stderr(&o)
        );
        stderr(&o)
    }
    fn backup(&self, src: &Path, version: u8) {
        fs::create_dir_all(src).unwrap();
        fs::write(src.join("data"), pseudo_random(300_000, version as u64)).unwrap();
        fs::write(src.join("version"), format!("v{version}\n")).unwrap();
        self.ok(&["backup", src.to_str().unwrap()]);
    }
    fn objects(&self) -> BTreeSet<String> {
        objects(&self.moto, &self.url)
    }
    fn ids(&self) -> Vec<String> {
        snapshot_ids(&self.env, &self.proxy.endpoint, &self.url)
    }
    fn snapshot_paths(&self) -> Vec<String> {
        snapshot_paths(&self.moto, &self.url)
    }
}

/// Finding 1: the newest snapshot's name serves an older snapshot's bytes.
#[test]
fn replayed_snapshot_under_the_newest_name_is_refused_and_nothing_is_deleted() {
    let Some(site) = Site::new("hostile-swap") else {
        return;
    };
    let src = site.env.p("src");
    site.backup(&src, 1);
    site.backup(&src, 2);
    let ids = site.ids();
    let paths = site.snapshot_paths();
    let (old, new) = (path_of(&paths, &ids[0]), path_of(&paths, &ids[1]));
    let before = site.objects();
    site.proxy.set(json!({
        "swap": { format!("{}/{}", site.bucket, site.url_key(&new)): format!("{}/{}", site.bucket, site.url_key(&old)) }
    }));

    let e = site.refused(&["snapshots"]);
    assert!(
        e.contains(&ids[1][..8]) || e.contains("do not match"),
        "{e}"
    );
    site.refused(&["forget", "--keep-last", "1"]);
    site.refused(&["prune"]);
    let target = site.env.p("restored-swap");
    site.refused(&["restore", &ids[1], "--target", target.to_str().unwrap()]);
    assert!(
        !target.join("version").exists()
            || fs::read_to_string(target.join("version")).unwrap() != "v1\n",
        "the older content was restored under the newer snapshot's name"
    );
    assert_eq!(
        site.objects(),
        before,
        "the lying site made the admin delete data"
    );

    site.proxy.set(json!({}));
    site.ok(&["check"]);
    assert_eq!(site.ids(), ids);
}

/// Finding 2: a snapshot the client saw is hidden from listings, or the listing is cut short.
#[test]
fn hidden_or_truncated_snapshot_listing_stops_forget_and_prune() {
    let Some(site) = Site::new("hostile-hide") else {
        return;
    };
    let src = site.env.p("src");
    site.backup(&src, 1);
    site.backup(&src, 2);
    site.backup(&src, 3);
    let ids = site.ids(); // the client has now seen all three
    let paths = site.snapshot_paths();
    let newest = path_of(&paths, &ids[2]);
    let before = site.objects();

    for attack in [
        json!({ "hide": [format!("{}$", ids[2])] }),
        json!({ "hide": [format!("{}$", ids[0])] }),
        json!({ "truncate": { "prefix": "snapshots", "keep": 1 } }),
    ] {
        site.proxy.set(attack.clone());
        let e = site.refused(&["check"]);
        assert!(
            e.to_lowercase().contains("rollback") || e.contains("gone"),
            "{attack}: {e}"
        );
        site.refused(&["forget", "--keep-last", "1"]);
        site.refused(&["forget", "--keep-last", "1", "--dry-run"]);
        site.refused(&["prune"]);
        site.refused(&["prune", "--dry-run"]);
        assert_eq!(
            site.objects(),
            before,
            "{attack}: data deleted at the lying site"
        );
    }
    assert!(before.contains(&newest));

    site.proxy.set(json!({}));
    site.ok(&["check"]);
    assert_eq!(site.ids(), ids);
}

/// Finding 3: the source's pack listing shows only some packs and claims to be complete.
#[test]
fn truncated_pack_listing_never_gives_a_replica_snapshots_without_their_data() {
    let Some(site) = Site::new("hostile-trunc") else {
        return;
    };
    for v in 1..=5 {
        // A fresh directory per backup: every snapshot has packs of its own.
        site.backup(&site.env.p(&format!("src{v}")), v);
    }
    let packs = site
        .objects()
        .into_iter()
        .filter(|p| p.starts_with("packs/"))
        .count();
    assert!(packs >= 5, "{packs} packs");

    // Listed: 2 packs. Fetched by name: the rest. The replica is complete.
    site.proxy
        .set(json!({ "truncate": { "prefix": "packs", "keep": 2 } }));
    let a = site.env.p("replica-a");
    let out = site.ok(&[
        "--json",
        "replicate",
        "--from",
        &site.url,
        "--to",
        a.to_str().unwrap(),
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert!(r["unlisted_found"].as_u64().unwrap() >= 3, "{r}");
    assert!(!r["warnings"].as_array().unwrap().is_empty(), "{r}");
    site.env
        .ok(&["check", "--repo", a.to_str().unwrap(), "--read-data"]);
    assert_eq!(
        walk_files(&a.join("snapshots")).len(),
        5,
        "every snapshot is at the replica, with its data"
    );

    // The packs the listing leaves out are refused by name too (the site withholds them):
    // the snapshots that need them are held back, the others are copied.
    let unlisted: Vec<String> = {
        let all: Vec<String> = site
            .objects()
            .into_iter()
            .filter(|p| p.starts_with("packs/"))
            .collect();
        all[2..].to_vec()
    };
    let deny: Vec<String> = unlisted
        .iter()
        .map(|p| format!("{}$", p.rsplit('/').next().unwrap()))
        .collect();
    site.proxy.set(json!({
        "truncate": { "prefix": "packs", "keep": 2 },
        "deny": deny,
    }));
    let b = site.env.p("replica-b");
    let o = site.run(&[
        "--json",
        "replicate",
        "--from",
        &site.url,
        "--to",
        b.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 10, "held-back snapshots: {}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["snapshots_held_back"].as_u64().unwrap() >= 3, "{r}");
    // Whatever the replica lists, it can restore: check reads every snapshot's data.
    site.env
        .ok(&["check", "--repo", b.to_str().unwrap(), "--read-data"]);
    let copied = walk_files(&b.join("snapshots")).len();
    assert!(copied < 5, "{copied} snapshots copied without their packs");

    // A replica that lost a pack: --check says which snapshot is incomplete (exit 10).
    site.proxy.set(json!({}));
    let pack = walk_files(&a.join("packs"))[0].clone();
    fs::remove_file(&pack).unwrap();
    let o = site.run(&[
        "replicate",
        "--check",
        "--from",
        &site.url,
        "--to",
        a.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 10, "{}", stderr(&o));
    assert!(stderr(&o).contains("INCOMPLETE"), "{}", stderr(&o));
}

/// Finding 4: the whole bucket is replaced by yesterday's copy.
#[test]
fn older_copy_of_the_store_is_refused_by_destructive_commands_and_named_by_readers() {
    let Some(site) = Site::new("hostile-old") else {
        return;
    };
    let src = site.env.p("src");
    site.backup(&src, 1);
    // Yesterday's copy of the bucket.
    let old_bucket = bucket(&site.moto, "hostile-old-copy");
    let old_url = format!("s3://{old_bucket}/repo");
    ok_s3(
        &site.env,
        &site.moto,
        &["replicate", "--from", &site.url, "--to", &old_url],
    );
    // A replica that keeps up.
    let replica = site.env.p("replica");
    site.ok(&[
        "replicate",
        "--from",
        &site.url,
        "--to",
        replica.to_str().unwrap(),
    ]);
    site.backup(&src, 2);
    site.ok(&[
        "replicate",
        "--from",
        &site.url,
        "--to",
        replica.to_str().unwrap(),
    ]);
    let ids = site.ids();
    assert_eq!(ids.len(), 2);
    let before = site.objects();

    site.proxy
        .set(json!({ "bucket_map": { site.bucket.clone(): old_bucket.clone() } }));
    let e = site.refused(&["snapshots"]);
    assert!(e.to_lowercase().contains("rollback"), "{e}");
    site.refused(&["ls", "latest"]);
    let target = site.env.p("restored-old");
    site.refused(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(
        !target.join("version").exists(),
        "yesterday's data restored as latest"
    );
    site.refused(&["forget", "--keep-last", "1", "--dry-run"]);
    site.refused(&["forget", "--keep-last", "1"]);
    site.refused(&["prune", "--dry-run"]);
    site.refused(&["prune"]);
    let e = site.refused(&["usage"]);
    assert!(e.to_lowercase().contains("rollback"), "{e}");
    // Keyless: the replica holds a snapshot the source no longer lists.
    let o = site.run(&[
        "replicate",
        "--from",
        &site.url,
        "--to",
        replica.to_str().unwrap(),
    ]);
    assert!(
        stderr(&o).contains("not listed at the source"),
        "{}",
        stderr(&o)
    );
    assert_eq!(walk_files(&replica.join("snapshots")).len(), 2);

    site.proxy.set(json!({}));
    assert_eq!(site.objects(), before);
    site.ok(&["check"]);
    assert_eq!(site.ids(), ids);
}

impl Site {
    /// The key of an object under the repository prefix, as the S3 server sees it.
    fn url_key(&self, path: &str) -> String {
        format!("repo/{path}")
    }
}

/// A source whose listing hides packs cannot make a replica delete them: a replica only
/// deletes what the source's admin logged as deleted.
#[test]
fn a_truncated_listing_makes_no_replica_delete_anything() {
    let Some(site) = Site::new("hostile-shrink") else {
        return;
    };
    let src = site.env.p("src");
    site.backup(&src, 1);
    site.backup(&src, 2);
    let replica = site.env.p("replica");
    let r = replica.to_str().unwrap();
    site.ok(&["replicate", "--from", &site.url, "--to", r]);
    site.ok(&["forget", "--keep-last", "1"]);
    site.ok(&["prune"]);
    // What the source still has and the replica holds (the honest replication before).
    let live: Vec<String> = site
        .objects()
        .into_iter()
        .filter(|p| p.starts_with("packs/") || p.starts_with("index/"))
        .filter(|p| replica.join(p).exists())
        .collect();
    assert!(!live.is_empty());
    site.proxy.set(json!({
        "truncate": { "prefix": "packs", "keep": 0 },
        "hide": ["index/"],
    }));
    let o = site.run(&[
        "replicate",
        "--from",
        &site.url,
        "--to",
        r,
        "--deletion-grace",
        "0s",
    ]);
    assert!(o.status.code().is_some(), "{}", stderr(&o));
    for p in &live {
        assert!(
            replica.join(p).exists(),
            "the replica deleted {p}, which the source still has"
        );
    }
    site.proxy.set(json!({}));
    site.env.ok(&["--repo", r, "check", "--read-data"]);
}
