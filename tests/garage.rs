//! coop on a real three-node Garage cluster (scripts/garage.sh starts it): the store
//! conformance suite, backup, restore, check --read-data, prune and replicate both ways; with
//! one node down everything still works, with two down coop fails clearly and writes nothing
//! half, and it works again once a node is back.

use crate::common;

use common::*;
use coop_agent::store::Store;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

struct Garage {
    endpoint: String,
    key: String,
    secret: String,
    bucket: String,
    dir: PathBuf,
    bin: String,
}

fn garage() -> Option<Garage> {
    let v = |k: &str| std::env::var(k).ok();
    match v("COOP_TEST_GARAGE_ENDPOINT") {
        Some(endpoint) => Some(Garage {
            endpoint,
            key: v("COOP_TEST_GARAGE_KEY_ID").unwrap(),
            secret: v("COOP_TEST_GARAGE_SECRET").unwrap(),
            bucket: v("COOP_TEST_GARAGE_BUCKET").unwrap(),
            dir: PathBuf::from(v("COOP_TEST_GARAGE_DIR").unwrap()),
            bin: v("COOP_TEST_GARAGE_BIN").unwrap(),
        }),
        None => {
            eprintln!("no Garage cluster (scripts/test.sh starts one; COOP_TEST_GARAGE=0 skips it): skipped");
            None
        }
    }
}

impl Garage {
    fn env(&self, c: &mut Command) {
        c.env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "garage")
            .env("COOP_STORE_TIMEOUT_SECS", "5");
    }
    fn coop(&self, env: &Env, args: &[&str]) -> Output {
        let mut c = env.cmd();
        self.env(&mut c);
        c.args(args).output().unwrap()
    }
    fn ok(&self, env: &Env, args: &[&str]) -> String {
        let o = self.coop(env, args);
        assert!(
            o.status.success(),
            "coop {args:?} ({:?}): {}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }
    fn stop(&self, n: u32) {
        let pid = fs::read_to_string(self.dir.join(format!("n{n}.pid"))).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        std::thread::sleep(Duration::from_millis(500));
    }
    fn start(&self, n: u32) {
        let log = fs::File::create(self.dir.join(format!("n{n}.restart.log"))).unwrap();
        let mut child = Command::new(&self.bin)
            .args([
                "-c",
                self.dir.join(format!("n{n}.toml")).to_str().unwrap(),
                "server",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        fs::write(self.dir.join(format!("n{n}.pid")), child.id().to_string()).unwrap();
        // Reap the node when it is stopped again (by pid, from the file).
        std::thread::spawn(move || child.wait());
        // Connect it again from node 1 and wait until node 1 counts it healthy.
        let garage = |cfg: &str, args: &[&str]| {
            Command::new(&self.bin)
                .arg("-c")
                .arg(self.dir.join(cfg))
                .args(args)
                .output()
                .unwrap()
        };
        let me = format!("n{n}.toml");
        let id = String::from_utf8(garage(&me, &["node", "id", "-q"]).stdout).unwrap();
        let id = id.trim().to_string();
        let short: String = id.chars().take(16).collect();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let connected = garage("n1.toml", &["node", "connect", &id])
                .status
                .success();
            let status = String::from_utf8(garage("n1.toml", &["status"]).stdout).unwrap();
            let healthy = status
                .split("====")
                .skip_while(|part| !part.contains("HEALTHY NODES"))
                .nth(1)
                .is_some_and(|table| table.contains(&short));
            if connected && healthy {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "node {n} did not rejoin: {status}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn garage_three_nodes_backup_restore_check_prune_replicate_and_node_failures() {
    let Some(g) = garage() else { return };
    let env = Env::new();
    let url = format!("s3://{}/coop-{}", g.bucket, std::process::id());

    // The store conformance basics, on Garage itself.
    // Given explicitly, not through this process's environment, which the S3 tests that
    // share this test binary set to moto's.
    let opts = coop_agent::store::S3Options {
        endpoint: Some(g.endpoint.clone()),
        region: Some("garage".into()),
        access_key_id: Some(g.key.clone()),
        secret_access_key: Some(g.secret.clone()),
        allow_http: true,
    };
    let s = Store::open_with(&format!("{url}-conformance"), true, &opts).unwrap();
    let big = pseudo_random(20 << 20, 5);
    s.put("packs/ab/big", big.clone()).unwrap();
    s.put("packs/ab/big", big.clone()).unwrap();
    assert!(s.get("packs/ab/big").unwrap() == big);
    assert_eq!(s.get_range("packs/ab/big", 5..9).unwrap()[..], big[5..9]);
    for i in 0..1100 {
        s.put(&format!("index/t/{i:05}"), vec![1; 3]).unwrap();
    }
    assert_eq!(s.list("index").unwrap().len(), 1100, "listing across pages");
    assert!(s.get("nope").unwrap_err().is_not_found());
    s.delete("packs/ab/big").unwrap();
    s.delete("packs/ab/big").unwrap();
    assert!(!s.exists("packs/ab/big").unwrap());

    // Backup, restore, check, prune, replicate.
    g.ok(&env, &["init", "--repo", &url]);
    let src = env.p("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/a"), pseudo_random(3 << 20, 1)).unwrap();
    fs::write(src.join("b"), b"hello garage\n").unwrap();
    g.ok(&env, &["backup", "--repo", &url, src.to_str().unwrap()]);
    fs::write(src.join("d/a"), pseudo_random(3 << 20, 2)).unwrap();
    g.ok(&env, &["backup", "--repo", &url, src.to_str().unwrap()]);
    let out = env.p("out");
    g.ok(
        &env,
        &[
            "restore",
            "--repo",
            &url,
            "latest",
            "--target",
            out.to_str().unwrap(),
        ],
    );
    assert_same_tree(&src, &restored(&env, "out", &src));
    g.ok(&env, &["check", "--repo", &url, "--read-data"]);
    g.ok(&env, &["forget", "--repo", &url, "--keep-last", "1"]);
    g.ok(&env, &["prune", "--repo", &url]);
    g.ok(&env, &["check", "--repo", &url, "--read-data"]);
    let local = env.p("local");
    g.ok(
        &env,
        &["replicate", "--from", &url, "--to", local.to_str().unwrap()],
    );
    env.ok(&["--repo", local.to_str().unwrap(), "check", "--read-data"]);
    let back = format!("{url}-back");
    g.ok(
        &env,
        &[
            "replicate",
            "--from",
            local.to_str().unwrap(),
            "--to",
            &back,
        ],
    );
    g.ok(&env, &["check", "--repo", &back, "--read-data"]);

    // One node down: everything still works.
    g.stop(3);
    fs::write(src.join("c"), b"one node down\n").unwrap();
    g.ok(&env, &["backup", "--repo", &url, src.to_str().unwrap()]);
    let out2 = env.p("out2");
    g.ok(
        &env,
        &[
            "restore",
            "--repo",
            &url,
            "latest",
            "--target",
            out2.to_str().unwrap(),
        ],
    );
    assert_same_tree(&src, &restored(&env, "out2", &src));

    // Two down: a clear store error, and no snapshot half-written.
    let count = |env: &Env| -> usize {
        serde_json::from_str::<serde_json::Value>(
            &g.ok(env, &["--json", "snapshots", "--repo", &url]),
        )
        .unwrap()
        .as_array()
        .unwrap()
        .len()
    };
    let n = count(&env);
    g.stop(2);
    fs::write(src.join("e"), b"two nodes down\n").unwrap();
    let o = g.coop(&env, &["backup", "--repo", &url, src.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Back up: a node returns, the backup goes through, and the failed one left nothing.
    g.start(2);
    assert_eq!(
        count(&env),
        n,
        "a snapshot half-written while two nodes were down"
    );
    g.ok(&env, &["backup", "--repo", &url, src.to_str().unwrap()]);
    assert_eq!(count(&env), n + 1);
    g.ok(&env, &["check", "--repo", &url]);
    g.start(3);
}
