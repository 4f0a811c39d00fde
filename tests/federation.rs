//! Federation: S3 stores (a real moto server on loopback), replication, the agent daemon,
//! network faults, PostgreSQL dump streaming, and restore after losing a site.
//!
//! `scripts/test.sh` starts moto and PostgreSQL and exports their addresses. Without them
//! these tests fail (set COOP_SKIP_SERVERS=1 to skip them on a machine that has neither).

use crate::common;

use common::s3::*;
use common::*;
use coop_agent::store::Store;
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

fn conformance(s: &Store) {
    let name = s.url().to_string();
    assert!(s.list("packs").unwrap().is_empty(), "{name}: empty listing");
    assert!(
        s.get("nope/x").unwrap_err().is_not_found(),
        "{name}: missing is NotFound"
    );
    assert!(!s.exists("nope/x").unwrap());
    assert_eq!(s.size("nope/x").unwrap(), None);
    s.delete("nope/x").unwrap(); // deleting nothing succeeds everywhere
    let big = pseudo_random(20 << 20, 5);
    s.put("packs/ab/big", big.clone()).unwrap();
    s.put("packs/ab/big", big.clone()).unwrap(); // idempotent (same bytes)
    assert!(
        s.get("packs/ab/big").unwrap() == big,
        "{name}: 20 MiB round trip"
    );
    assert_eq!(s.size("packs/ab/big").unwrap(), Some(20 << 20));
    // More than one page of a listing (S3 pages at 1000).
    for i in 0..1100 {
        s.put(&format!("index/t/{i:05}"), vec![i as u8; 3]).unwrap();
    }
    let l = s.list("index").unwrap();
    assert_eq!(l.len(), 1100, "{name}: complete listing across pages");
    assert!(l.iter().all(|o| o.size == 3));
    assert_eq!(s.list("index/t").unwrap().len(), 1100);
    assert_eq!(s.list("packs").unwrap().len(), 1);
    assert!(s.list("ind").unwrap().len() <= 1100); // prefix is a path, not a string prefix
    s.delete("packs/ab/big").unwrap();
    assert!(!s.exists("packs/ab/big").unwrap());
    for i in 0..1100 {
        s.delete(&format!("index/t/{i:05}")).unwrap();
    }
    assert!(s.list("index").unwrap().is_empty());
}

#[test]
fn backend_conformance_memory_local_s3() {
    let Some(ep) = s3() else { return };
    set_s3_env_here(&ep);
    let dir = tempfile::tempdir().unwrap();
    conformance(&Store::open("memory:", true).unwrap());
    conformance(&Store::open(dir.path().join("local").to_str().unwrap(), true).unwrap());
    let b = bucket(&ep, "conformance");
    conformance(&Store::open(&format!("s3://{b}/some/prefix"), true).unwrap());
}

fn sample_source(env: &Env) -> std::path::PathBuf {
    let src = env.p("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..6u64 {
        fs::write(src.join(format!("f{i}")), pseudo_random(700_000, i)).unwrap();
    }
    fs::write(src.join("sub/text"), "hello coop\n".repeat(20_000)).unwrap();
    src
}

#[test]
fn replication_local_s3_local_kill_resume_and_corruption() {
    let Some(ep) = s3() else { return };
    let env = Env::new();
    let src = sample_source(&env);
    env.backup(&src);
    let b = bucket(&ep, "repl");
    let s3url = format!("s3://{b}/site-a");
    let repo = env.repo();
    // local → S3, killed after a few objects, then resumed.
    let mut c = env.cmd();
    s3_env(&mut c, &ep);
    let o = c
        .env("COOP_FAULT_POINT", "replicate:after-copy#3")
        .args([
            "replicate",
            "--from",
            repo.to_str().unwrap(),
            "--to",
            &s3url,
            "--parallel",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success(), "killed mid-copy");
    // A target that lacks objects makes `replicate --check` fail (10), for monitoring.
    let chk: Value = serde_json::from_str(&out_s3(
        &env,
        &ep,
        &[
            "--json",
            "replicate",
            "--check",
            "--from",
            repo.to_str().unwrap(),
            "--to",
            &s3url,
        ],
        &[10],
    ))
    .unwrap();
    assert!(chk["missing_objects"].as_u64().unwrap() > 0, "{chk}");
    // No snapshot can be visible at the target yet: snapshots are copied last.
    let snaps_at_target = coop_s3(&env, &ep, &["--json", "snapshots", "--repo", &s3url]);
    if snaps_at_target.status.success() {
        let v: Value = serde_json::from_slice(&snaps_at_target.stdout).unwrap();
        assert_eq!(
            v.as_array().unwrap().len(),
            0,
            "a snapshot reached the target before its data"
        );
    }
    let r: Value = serde_json::from_str(&ok_s3(
        &env,
        &ep,
        &[
            "--json",
            "replicate",
            "--from",
            repo.to_str().unwrap(),
            "--to",
            &s3url,
        ],
    ))
    .unwrap();
    assert!(r["copied_objects"].as_u64().unwrap() > 0);
    let again: Value = serde_json::from_str(&ok_s3(
        &env,
        &ep,
        &[
            "--json",
            "replicate",
            "--from",
            repo.to_str().unwrap(),
            "--to",
            &s3url,
        ],
    ))
    .unwrap();
    assert_eq!(again["copied_objects"], 0, "idempotent");
    // S3 → another local directory, then restore from there.
    let local2 = env.p("site-c");
    ok_s3(
        &env,
        &ep,
        &[
            "replicate",
            "--from",
            &s3url,
            "--to",
            local2.to_str().unwrap(),
        ],
    );
    ok_s3(&env, &ep, &["scrub", "--repo", local2.to_str().unwrap()]);
    env.ok(&[
        "--repo",
        local2.to_str().unwrap(),
        "restore",
        "latest",
        "--target",
        env.p("out").to_str().unwrap(),
    ]);
    assert_same_tree(&src, &restored(&env, "out", &src));

    // A corrupt object at the source is refused and reported, not spread.
    fs::write(src.join("new"), pseudo_random(900_000, 77)).unwrap();
    env.backup(&src);
    let newest = walk_files(&repo.join("packs"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    let mut bytes = fs::read(&newest).unwrap();
    bytes[100] ^= 0xff;
    fs::write(&newest, bytes).unwrap();
    let o = coop_s3(
        &env,
        &ep,
        &[
            "--json",
            "replicate",
            "--from",
            repo.to_str().unwrap(),
            "--to",
            &s3url,
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        v["refused"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str().unwrap().contains(name)),
        "{v}"
    );
    assert!(v["snapshots_held_back"].as_u64().unwrap() >= 1);
    let mut c = env.cmd();
    s3_env(&mut c, &ep);
    let scrub = c
        .args(["--json", "scrub", "--repo", &s3url])
        .output()
        .unwrap();
    assert!(
        scrub.status.success(),
        "the replica holds no corrupt object"
    );
}

#[test]
fn network_faults_are_retried_or_fail_clearly() {
    let env = Env::new();
    let src = sample_source(&env);
    let mut results = (0, 0);
    for seed in 0..6 {
        fs::write(
            src.join(format!("n{seed}")),
            pseudo_random(500_000, 900 + seed),
        )
        .unwrap();
        let before = env.count("snapshots");
        let o = env
            .cmd()
            .env(
                "COOP_FAULT_STORE",
                format!("put-error=0.3,get-error=0.3,get-stall=0.1,stall-secs=3,seed={seed}"),
            )
            .env("COOP_STORE_TIMEOUT_SECS", "1")
            .args(["backup", "-q", src.to_str().unwrap()])
            .output()
            .unwrap();
        if o.status.success() {
            results.0 += 1;
            assert_eq!(env.count("snapshots"), before + 1);
        } else {
            results.1 += 1;
            assert_eq!(
                o.status.code(),
                Some(10),
                "a store failure, clearly: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(env.count("snapshots"), before, "nothing half-written");
        }
        // A restore through the same faults gets the right bytes or fails clearly.
        let out = env.p(&format!("out{seed}"));
        let r = env
            .cmd()
            .env(
                "COOP_FAULT_STORE",
                format!("get-error=0.3,get-stall=0.1,stall-secs=3,seed={seed}"),
            )
            .env("COOP_STORE_TIMEOUT_SECS", "1")
            .args(["restore", "-q", "latest", "--target", out.to_str().unwrap()])
            .output()
            .unwrap();
        if r.status.success() {
            for f in walk_files(&restored(&env, &format!("out{seed}"), &src)) {
                let rel = f
                    .strip_prefix(restored(&env, &format!("out{seed}"), &src))
                    .unwrap();
                assert!(fs::read(&f).unwrap() == fs::read(src.join(rel)).unwrap());
            }
        } else {
            assert!(
                matches!(r.status.code(), Some(7) | Some(10)),
                "{}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
    }
    assert!(
        results.0 > 0,
        "retries let some backups through: {results:?}"
    );
    let v = env.json(&["check", "--read-data"]);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0);
}

fn psql(sql: &str, db: &str) -> String {
    let (host, port) = (
        std::env::var("COOP_TEST_PG_HOST").unwrap(),
        std::env::var("COOP_TEST_PG_PORT").unwrap(),
    );
    let o = std::process::Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn postgres_dump_streams_into_a_snapshot_and_restores_row_for_row() {
    let Ok(port) = std::env::var("COOP_TEST_PG_PORT") else {
        if std::env::var("COOP_SKIP_SERVERS").is_ok() {
            return;
        }
        panic!("COOP_TEST_PG_PORT is not set: run the tests through scripts/test.sh, which starts PostgreSQL");
    };
    let host = std::env::var("COOP_TEST_PG_HOST").unwrap();
    let db = format!("coop_src_{}", std::process::id());
    let db2 = format!("coop_dst_{}", std::process::id());
    psql(&format!("CREATE DATABASE {db}"), "postgres");
    psql(
        "CREATE TABLE events (id bigint PRIMARY KEY, room text, body text, ts timestamptz);
         INSERT INTO events SELECT g, '!room' || (g % 97), repeat('message ' || g, 1 + g % 7), '2026-01-01'::timestamptz + g * interval '1 minute'
         FROM generate_series(1, 50000) g;
         CREATE TABLE users (name text PRIMARY KEY, avatar bytea);
         INSERT INTO users SELECT 'user' || g, decode(md5(g::text), 'hex') FROM generate_series(1, 2000) g;",
        &db,
    );
    let env = Env::new();
    let dump = format!("pg_dump -Fc -h {host} -p {port} -U postgres {db}");
    env.ok(&[
        "backup",
        "--stdin-from-command",
        &dump,
        "--stdin-filename",
        "synapse.dump",
        "--tag",
        "postgres",
    ]);
    // A failing pg_dump (no such database) writes no snapshot.
    let bad = env.coop(&[
        "backup",
        "--stdin-from-command",
        &format!("pg_dump -Fc -h {host} -p {port} -U postgres no_such_db"),
        "--stdin-filename",
        "x.dump",
    ]);
    assert_eq!(bad.status.code(), Some(9));
    assert_eq!(env.snapshots().len(), 1);
    // Restore the dump file and pg_restore it into a fresh database.
    env.ok(&[
        "restore",
        "latest:/synapse.dump",
        "--target",
        env.p("r").to_str().unwrap(),
    ]);
    psql(&format!("CREATE DATABASE {db2}"), "postgres");
    let o = std::process::Command::new("pg_restore")
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            &db2,
            "--no-owner",
            env.p("r/synapse.dump").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pg_restore: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for q in [
        "SELECT * FROM events ORDER BY id",
        "SELECT name, encode(avatar, 'hex') FROM users ORDER BY name",
    ] {
        let a = psql(q, &db);
        let b = psql(q, &db2);
        assert!(a.lines().count() >= 2000);
        assert!(a == b, "rows differ for {q}");
    }

    // Per-member SQL: each member's rows only; the name reaches psql as a variable.
    psql("CREATE TABLE notes (owner text, body text); INSERT INTO notes VALUES ('alice', 'a1'), ('alice', 'a2'), ('bob', 'b1');", &db);
    for m in ["alice", "bob"] {
        let (_, r) = coop_formats::crypt::generate_identity();
        env.ok(&["member", "add", m, "--recipient", &r]);
    }
    let config = env.p("agent.toml");
    fs::write(
        &config,
        format!(
            "[site]\nname = \"s\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n[[job]]\nname = \"notes\"\nschedule = \"0 3 * * *\"\nmembers = \"all\"\nsql = [{{ database = \"{db}\", psql_args = \"-h {host} -p {port} -U postgres\", filename = \"notes.txt\", query = \"SELECT body FROM notes WHERE owner = :'member' ORDER BY body\" }}]\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            env.p("agent-cache").display(),
        ),
    )
    .unwrap();
    env.ok(&[
        "agent",
        "--config",
        config.to_str().unwrap(),
        "--once",
        "notes",
    ]);
    let dump = |m: &str| {
        String::from_utf8(
            env.cmd()
                .args([
                    "--tenant",
                    &format!("member/{m}"),
                    "dump",
                    "latest",
                    "notes.txt",
                    "--reason",
                    "maintenance",
                ])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert_eq!(dump("alice"), "a1\na2\n");
    assert_eq!(dump("bob"), "b1\n");
    psql(&format!("DROP DATABASE {db}"), "postgres");
    psql(&format!("DROP DATABASE {db2}"), "postgres");
}

fn spawn_agent(env: &Env, ep: &str, config: &Path) -> Child {
    let mut c = env.cmd();
    s3_env(&mut c, ep);
    c.args(["agent", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn stop(mut c: Child) -> String {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if c.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `status --json` (exit 3 when something needs attention: a failed run, a peer not reached).
fn status(env: &Env, ep: &str, config: &Path) -> Value {
    serde_json::from_str(&out_s3(
        env,
        ep,
        &["--json", "status", "--config", config.to_str().unwrap()],
        &[3],
    ))
    .unwrap()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn agent_runs_replicates_catches_up_and_reports() {
    let Some(ep) = s3() else { return };
    let env = Env::new();
    let src = sample_source(&env);
    let b = bucket(&ep, "agent");
    let identity = env.p("config/coop/identity.txt");
    let hc = env.p("hc");
    fs::create_dir_all(&hc).unwrap();
    // A healthchecks-style endpoint on loopback that records the paths it is pinged on.
    let pings = env.p("pings.log");
    let hc_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hc_script = env.p("hc.py");
    fs::write(
        &hc_script,
        r#"import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        with open(sys.argv[2], 'a') as f:
            f.write(self.path + '\n')
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
"#,
    )
    .unwrap();
    let mut hc_server = std::process::Command::new("python3")
        .args([
            hc_script.to_str().unwrap(),
            &hc_port.to_string(),
            pings.to_str().unwrap(),
        ])
        .spawn()
        .unwrap();
    wait_until("the healthcheck server", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", hc_port)).is_ok()
    });
    let config = env.p("agent.toml");
    fs::write(
        &config,
        format!(
            r#"[site]
name = "hackspace"
repo = "{repo}"
identity_file = "{identity}"
cache_dir = "{cache}"
metrics_file = "{metrics}"
healthcheck_url = "http://127.0.0.1:{hc_port}/ping/abc"

[[peer]]
name = "vm"
repo = "s3://{b}/hackspace"
s3 = {{ endpoint = "{ep}", region = "us-east-1", access_key_id = "test", secret_access_key = "test", allow_http = true }}
retry_max = "2s"

[[job]]
name = "files"
schedule = "*/2 * * * * *"
paths = ["{src}"]
commands = [{{ command = "echo db-dump; date +%N", filename = "db.dump" }}]
before = ["touch {hc}/before"]
after = ["touch {hc}/after"]
retention = {{ keep_last = 3 }}
"#,
            repo = env.repo().display(),
            identity = identity.display(),
            cache = env.p("agent-cache").display(),
            metrics = env.p("coop.prom").display(),
            hc_port = hc_port,
            src = src.display(),
            hc = hc.display(),
        ),
    )
    .unwrap();
    let checked = ok_s3(&env, &ep, &["config", "check", config.to_str().unwrap()]);
    assert!(
        checked.contains("create-only PUT: supported"),
        "the S3 server's abilities are reported: {checked}"
    );
    let agent = spawn_agent(&env, &ep, &config);
    wait_until("two successful runs", 60, || {
        status(&env, &ep, &config)["jobs"][0]["successful_runs"]
            .as_u64()
            .unwrap()
            >= 2
    });
    wait_until("the peer to catch up", 60, || {
        status(&env, &ep, &config)["peers"][0]["lag_objects"] == 0
    });
    let log = stop(agent);
    let s = status(&env, &ep, &config);
    assert_eq!(s["jobs"][0]["last_run"]["status"], "ok", "{s} {log}");
    assert!(
        hc.join("before").exists() && hc.join("after").exists(),
        "hooks ran"
    );
    assert!(fs::read_to_string(env.p("coop.prom"))
        .unwrap()
        .contains("coop_job_last_success{site=\"hackspace\",job=\"files\"} 1"));
    assert!(env.snapshots().len() <= 4, "retention applied");
    // The replica restores.
    let replica = format!("s3://{b}/hackspace");
    ok_s3(
        &env,
        &ep,
        &[
            "--repo",
            &replica,
            "restore",
            "latest",
            "--target",
            env.p("from-peer").to_str().unwrap(),
        ],
    );
    assert_same_tree(
        &src.join("sub"),
        &restored(&env, "from-peer", &src).join("sub"),
    );

    // A failing hook fails the job, says why, and writes no snapshot.
    let text = fs::read_to_string(&config).unwrap().replace(
        &format!("before = [\"touch {}/before\"]", hc.display()),
        "before = [\"exit 3\"]",
    );
    let bad_config = env.p("bad.toml");
    fs::write(&bad_config, text.replace("*/2 * * * * *", "0 0 1 1 *")).unwrap();
    let n = env.snapshots().len();
    let o = coop_s3(
        &env,
        &ep,
        &[
            "agent",
            "--config",
            bad_config.to_str().unwrap(),
            "--once",
            "files",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("before hook"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(env.snapshots().len(), n);
    // Healthchecks were pinged: /start and success for good runs, /fail for the failed one.
    let log = fs::read_to_string(&pings).unwrap_or_default();
    assert!(log.lines().any(|l| l == "/ping/abc/start"), "{log}");
    assert!(log.lines().any(|l| l == "/ping/abc"), "{log}");
    assert!(log.lines().any(|l| l == "/ping/abc/fail"), "{log}");
    let _ = hc_server.kill();
    let _ = hc_server.wait();
}

#[test]
fn agent_retries_a_down_peer_and_catches_up() {
    let Some(_) = s3() else { return };
    let moto = std::env::var("COOP_TEST_MOTO_BIN").expect("COOP_TEST_MOTO_BIN");
    let env = Env::new();
    let src = sample_source(&env);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ep = format!("http://127.0.0.1:{port}");
    let config = env.p("agent.toml");
    fs::write(
        &config,
        format!(
            r#"[site]
name = "pi"
repo = "{repo}"
identity_file = "{identity}"
cache_dir = "{cache}"

[[peer]]
name = "down-then-up"
repo = "s3://late/pi"
s3 = {{ endpoint = "{ep}", access_key_id = "t", secret_access_key = "t", allow_http = true }}
retry_max = "2s"

[[job]]
name = "files"
schedule = "*/3 * * * * *"
paths = ["{src}"]
"#,
            repo = env.repo().display(),
            identity = env.p("config/coop/identity.txt").display(),
            cache = env.p("agent-cache").display(),
            src = src.display(),
        ),
    )
    .unwrap();
    let agent = spawn_agent(&env, &ep, &config);
    // The peer is down: backups go on, the peer accumulates failures.
    wait_until("a backup while the peer is down", 60, || {
        status(&env, &ep, &config)["jobs"][0]["successful_runs"]
            .as_u64()
            .unwrap()
            >= 1
    });
    wait_until("a failed attempt to reach the peer", 60, || {
        status(&env, &ep, &config)["peers"][0]["failures"]
            .as_u64()
            .unwrap()
            >= 1
    });
    let s = status(&env, &ep, &config);
    assert_eq!(s["peers"][0]["reachable"], false, "{s}");
    // The peer comes back (a new moto on that port, with its bucket): the agent catches up.
    let mut server = std::process::Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("moto", 30, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    std::thread::sleep(Duration::from_millis(500));
    make_bucket(&ep, "late");
    wait_until("the peer to catch up", 90, || {
        let s = status(&env, &ep, &config);
        s["peers"][0]["reachable"] == true
            && s["peers"][0]["lag_objects"] == 0
            && s["peers"][0]["failures"] == 0
    });
    stop(agent);
    let s = status(&env, &ep, &config);
    assert!(s["peers"][0]["last_ok"].is_string(), "{s}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn restore_on_a_new_machine_after_losing_a_site() {
    let Some(ep) = s3() else { return };
    let env = Env::new();
    let src = sample_source(&env);
    let b = bucket(&ep, "outage");
    let config = env.p("agent.toml");
    fs::write(
        &config,
        format!(
            "[site]\nname = \"a\"\nrepo = \"{}\"\nidentity_file = \"{}\"\n\n[[peer]]\nname = \"b\"\nrepo = \"s3://{b}/a\"\n\n[[job]]\nname = \"all\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            src.display()
        ),
    )
    .unwrap();
    ok_s3(
        &env,
        &ep,
        &[
            "agent",
            "--config",
            config.to_str().unwrap(),
            "--once",
            "all",
        ],
    );
    // Site A's store is lost entirely.
    fs::remove_dir_all(env.repo()).unwrap();
    // A new machine: no catalog, no config, only the identity file.
    let machine = tempfile::tempdir().unwrap();
    let id = machine.path().join("identity.txt");
    fs::copy(env.p("config/coop/identity.txt"), &id).unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_coop"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", machine.path())
        .env("XDG_CONFIG_HOME", machine.path().join("config"))
        .env("XDG_CACHE_HOME", machine.path().join("cache"));
    s3_env(&mut c, &ep);
    let target = machine.path().join("restored");
    let o = c
        .args([
            "restore",
            "--repo",
            &format!("s3://{b}/a"),
            "--identity-file",
            id.to_str().unwrap(),
            "latest",
            "--target",
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same_tree(&src, &target.join(src.strip_prefix("/").unwrap()));
}

/// Restoring one small file from an S3 repository reads only the byte ranges of its blobs,
/// not the whole 16 MiB pack it sits in; the bytes are the same.
#[test]
fn restoring_one_file_from_s3_reads_ranges_not_packs() {
    let Some(ep) = s3() else { return };
    let env = Env::new();
    let url = format!("s3://{}/ranged", bucket(&ep, "ranged"));
    ok_s3(&env, &ep, &["init", "--repo", &url]);
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..12u64 {
        fs::write(src.join(format!("big{i}")), pseudo_random(1 << 20, 100 + i)).unwrap();
    }
    fs::write(src.join("small"), pseudo_random(1 << 20, 7)).unwrap();
    ok_s3(
        &env,
        &ep,
        &["backup", "--repo", &url, src.to_str().unwrap()],
    );
    let out = env.p("out");
    let v: Value = serde_json::from_str(&ok_s3(
        &env,
        &ep,
        &[
            "--json",
            "restore",
            "--repo",
            &url,
            &format!("latest:{}/small", src.display()),
            "--target",
            out.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let fetched = v["fetched_bytes"].as_u64().unwrap();
    // The file's one to three blobs sit in one or two packs: a pack of which the restore
    // needs a quarter or more (a worker's last, small pack) is read whole, any other by
    // ranges (160 KiB reads of 64 KiB age chunks, plus the pack's first read). The whole
    // packs are about 13 MiB.
    assert!(
        fetched < 5 << 20,
        "restoring a 1 MiB file fetched {fetched} bytes (the pack is about 13 MiB)"
    );
    assert!(fs::read(out.join("small")).unwrap() == fs::read(src.join("small")).unwrap());
    eprintln!("ranged restore of a 1 MiB file: {fetched} bytes fetched");
}
