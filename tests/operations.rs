//! Operations: the admin's and the member's daily path, step by step as the docs give it,
//! and every failure says so (issue "Operations").

use crate::common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

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

fn touch(root: &Path, rel: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, rel.as_bytes()).unwrap();
}

/// The files a snapshot holds, as `coop ls` prints them.
fn listing(env: &Env, id: &str) -> String {
    env.ok(&["ls", id])
}

/// Each job of the shipped example configs, run against a tree shaped like its service's
/// data: what the excludes are meant to leave out is left out, the rest is kept.
#[test]
fn example_configs_exclude_what_they_say_from_service_shaped_trees() {
    // (job, [(path under the job's roots, kept?)])
    let shapes: &[(&str, &[(&str, bool)])] = &[
        (
            "forgejo",
            &[
                ("var/lib/forgejo/data/gitea-repositories/alice/site.git/HEAD", true),
                ("var/lib/forgejo/data/indexers/issues.bleve/index_meta.json", false),
                ("var/lib/forgejo/data/queues/common/000001.log", false),
                ("var/lib/forgejo/data/tmp/package-upload/x", false),
                ("var/lib/forgejo/log/forgejo.log", false),
                ("etc/forgejo/app.ini", true),
            ],
        ),
        (
            "synapse",
            &[
                ("var/lib/matrix-synapse/media/local_content/ab/cd/efghij", true),
                ("var/lib/matrix-synapse/media/local_thumbnails/ab/cd/efghij/32-32-image-png-crop", true),
                ("var/lib/matrix-synapse/media/remote_content/matrix.org/ab/cd/x", false),
                ("var/lib/matrix-synapse/media/remote_thumbnail/matrix.org/ab/cd/x", false),
                ("var/lib/matrix-synapse/media/url_cache/2026-12-01/x", false),
                ("var/lib/matrix-synapse/media/url_cache_thumbnails/2026-12-01/x", false),
                ("etc/matrix-synapse/homeserver.yaml", true),
            ],
        ),
        ("hedgedoc", &[("var/lib/hedgedoc/uploads/upload_abc.png", true)]),
        (
            "nextcloud",
            &[
                ("var/www/nextcloud/config/config.php", true),
                ("srv/nextcloud/data/alice/files/Photos/cat.jpg", true),
                ("srv/nextcloud/data/appdata_oc1x2y/css/core/server.css", true),
                ("srv/nextcloud/data/appdata_oc1x2y/preview/1/2/3/4000-3000-max.png", false),
                ("srv/nextcloud/data/nextcloud.log", false),
                ("srv/nextcloud/data/updater-oc1x2y/backups/x", false),
            ],
        ),
        ("home-assistant", &[("var/lib/homeassistant/configuration.yaml", true)]),
    ];
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging/examples");
    let mut tried = 0;
    for f in fs::read_dir(examples).unwrap() {
        let f = f.unwrap().path();
        if f.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let config: toml::Table = toml::from_str(&fs::read_to_string(&f).unwrap()).unwrap();
        for job in config["job"].as_array().unwrap() {
            let job = job.as_table().unwrap();
            let name = job["name"].as_str().unwrap();
            if job.contains_key("members") {
                continue; // member jobs: tests/members.rs
            }
            if job.contains_key("report") || job.contains_key("drill") {
                continue; // they back up nothing: report_archive_and_restore_drills
            }
            let shape = shapes
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{}: no service shape for job {name}", f.display()))
                .1;
            let env = Env::new();
            let root = env.p("root");
            for (rel, _) in shape {
                touch(&root, rel);
            }
            // The job as shipped, with its paths under `root` and without its commands and
            // hooks (the services are not installed here).
            let mut j = toml::Table::new();
            j.insert("name".into(), name.into());
            j.insert("schedule".into(), job["schedule"].clone());
            let paths: Vec<toml::Value> = job["paths"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    root.join(p.as_str().unwrap().trim_start_matches('/'))
                        .display()
                        .to_string()
                        .into()
                })
                .collect();
            j.insert("paths".into(), paths.into());
            if let Some(x) = job.get("exclude") {
                j.insert("exclude".into(), x.clone());
            }
            let mut site = toml::Table::new();
            site.insert("name".into(), "test".into());
            site.insert("repo".into(), env.repo().display().to_string().into());
            site.insert(
                "identity_file".into(),
                env.p("config/coop/identity.txt")
                    .display()
                    .to_string()
                    .into(),
            );
            site.insert(
                "cache_dir".into(),
                env.p("agent-cache").display().to_string().into(),
            );
            let mut cfg = toml::Table::new();
            cfg.insert("site".into(), site.into());
            cfg.insert("job".into(), vec![toml::Value::Table(j)].into());
            let path = env.p("agent.toml");
            fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
            let o = env.coop(&["agent", "--config", path.to_str().unwrap(), "--once", name]);
            assert!(o.status.success(), "{name}: {}", text(&o));
            let ls = listing(&env, "latest");
            for (rel, kept) in shape {
                let full = root.join(rel).display().to_string();
                assert_eq!(
                    ls.lines().any(|l| l == full),
                    *kept,
                    "{} job {name}: {rel} should be {}",
                    f.display(),
                    if *kept { "backed up" } else { "excluded" }
                );
            }
            tried += 1;
        }
    }
    assert!(tried >= 5, "only {tried} example jobs tried");
}

/// One pattern language: backup, restore and the agent read `repos/alice` the same way (any
/// depth without a leading `/`, anchored with one).
#[test]
fn backup_and_restore_read_patterns_alike() {
    let env = Env::new();
    let src = env.p("forgejo");
    for rel in [
        "repos/alice/a.git/HEAD",
        "repos/bob/b.git/HEAD",
        "tmp/x",
        "data/tmp/y",
    ] {
        touch(&src, rel);
    }
    let s = src.display().to_string();
    env.ok(&[
        "backup",
        &s,
        "--exclude",
        "repos/alice",
        "--exclude",
        &format!("{s}/tmp"),
    ]);
    let ls = listing(&env, "latest");
    assert!(!ls.contains("repos/alice"), "{ls}");
    assert!(ls.contains("repos/bob/b.git/HEAD"), "{ls}");
    assert!(
        !ls.contains(&format!("{s}/tmp/x")),
        "anchored pattern: {ls}"
    );
    assert!(
        ls.contains("data/tmp/y"),
        "an anchored pattern matches only there: {ls}"
    );
    env.ok(&["backup", &s]);
    let out = env.p("out");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        out.to_str().unwrap(),
        "--exclude",
        "repos/alice",
    ]);
    let r = restored(&env, "out", &src);
    assert!(!r.join("repos/alice").exists());
    assert!(r.join("repos/bob/b.git/HEAD").exists());
    assert!(r.join("tmp/x").exists());
}

/// Items 1 and 8: removing and re-adding a member keeps every tenant working, quotas change
/// in place, and check and prune cover member tenants.
#[test]
fn readding_a_member_and_changing_quota_keep_every_tenant_working() {
    let env = Env::new();
    let (bob_id, bob) = age_identity(&env, "bob");
    env.ok(&[
        "member",
        "add",
        "bob",
        "--recipient",
        &bob,
        "--quota",
        "1GiB",
    ]);
    let src = env.p("bob-files");
    touch(&src, "notes.md");
    env.ok(&["backup", "--tenant", "member/bob", src.to_str().unwrap()]);
    env.ok(&["member", "remove", "bob"]);
    let o = env.coop(&["member", "add", "bob", "--recipient", &bob]);
    assert!(o.status.success(), "re-adding bob: {}", text(&o));
    env.ok(&["member", "quota", "bob", "5GiB"]);
    let list = env.ok(&["member", "list"]);
    assert!(list.contains("bob") && list.contains("5.00 GiB"), "{list}");
    touch(&env.p("src"), "x");
    env.ok(&["backup", env.p("src").to_str().unwrap()]);
    env.ok(&["backup", "--tenant", "member/bob", src.to_str().unwrap()]);
    // Every tenant by default, and bob reads his own.
    let check = env.ok(&["check"]);
    assert!(
        check.contains("member/bob") && check.contains("coop"),
        "{check}"
    );
    let prune = env.ok(&["prune"]);
    assert!(prune.contains("member/bob"), "{prune}");
    let mut c = env.cmd();
    c.arg("--identity-file")
        .arg(&bob_id)
        .args(["--json", "snapshots", "--tenant", "member/bob"]);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    // A member that does not exist is named as such.
    let o = env.coop(&["snapshots", "--tenant", "member/nobody"]);
    assert_eq!(code(&o), 8, "{}", text(&o));
    assert!(text(&o).contains("nobody"), "{}", text(&o));
}

/// Items 2 and 11: config check passes a valid config whose peer is down (a warning), and
/// fails what would fail later, naming the line or the field.
#[test]
fn config_check_warns_on_a_down_peer_and_refuses_what_fails_later() {
    let env = Env::new();
    let data = env.p("data");
    touch(&data, "f");
    let site = format!(
        "[site]\nname = \"s\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n",
        env.repo().display(),
        env.p("config/coop/identity.txt").display(),
        env.p("agent-cache").display()
    );
    let job = |extra: &str| {
        format!(
            "\n[[job]]\nname = \"j\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\n{extra}",
            data.display()
        )
    };
    let peer = "\n[[peer]]\nname = \"pi\"\nrepo = \"s3://coop/pi\"\ns3 = { endpoint = \"http://127.0.0.1:9\", region = \"x\", access_key_id = \"a\", secret_access_key = \"b\", allow_http = true }\n";
    let check = |name: &str, text_: String| {
        let p = env.p(name);
        fs::write(&p, text_).unwrap();
        env.coop(&["config", "check", p.to_str().unwrap()])
    };
    let o = check("down.toml", format!("{site}{peer}{}", job("")));
    assert_eq!(code(&o), 0, "a down peer is a warning: {}", text(&o));
    assert!(text(&o).contains("pi"), "{}", text(&o));
    let o = check(
        "missing.toml",
        format!(
            "{site}{}",
            job("").replace(&data.display().to_string(), "/nonexistent/path")
        ),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("/nonexistent/path"), "{}", text(&o));
    let o = check(
        "size.toml",
        format!("{site}{peer}{}", job("")).replace(
            "allow_http = true }",
            "allow_http = true }\nupload_limit = \"500kb\"",
        ),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("500kb") && text(&o).contains("line"),
        "{}",
        text(&o)
    );
    let o = check(
        "cron.toml",
        format!("{site}{}", job("")).replace("0 3 * * *", "0 25 * * *"),
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        text(&o).contains("hour"),
        "the bad cron field is named: {}",
        text(&o)
    );
}

/// Items 4 and 9: a replica that is merely behind is "behind", not a rollback; a failed
/// job makes `status` exit 3; `replicate --check` exits 10 when the target lacks objects.
#[test]
fn a_lagging_replica_is_not_a_rollback_and_status_tells_monitoring() {
    let env = Env::new();
    let src = env.p("src");
    touch(&src, "a");
    env.ok(&["backup", src.to_str().unwrap()]);
    let replica = env.p("replica");
    env.ok(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        replica.to_str().unwrap(),
    ]);
    env.ok(&["snapshots", "--repo", replica.to_str().unwrap()]);
    touch(&src, "b");
    env.ok(&["backup", src.to_str().unwrap()]);
    env.ok(&["snapshots"]);
    let o = env.coop(&["snapshots", "--repo", replica.to_str().unwrap()]);
    assert!(
        o.status.success(),
        "a lagging replica is not an error: {}",
        text(&o)
    );
    assert!(!text(&o).contains("ROLLBACK"), "{}", text(&o));
    let o = env.coop(&[
        "replicate",
        "--check",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        replica.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 10, "{}", text(&o));

    // A job whose dump command fails: the run fails with backup's own code (9), and
    // status says so with exit 3.
    let cfg = env.p("agent.toml");
    let write_cfg = |command: &str| {
        fs::write(
            &cfg,
            format!(
                "[site]\nname = \"s\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n[[job]]\nname = \"j\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\nbefore = [\"echo HOOK-SAYS-HI\"]\ncommands = [{{ command = \"{command}\", filename = \"db.dump\" }}]\n",
                env.repo().display(),
                env.p("config/coop/identity.txt").display(),
                env.p("agent-cache").display(),
                src.display()
            ),
        )
        .unwrap()
    };
    write_cfg("echo dump");
    let c = cfg.to_str().unwrap();
    // Hook output never reaches stdout: --json stays JSON.
    let o = env.coop(&["--json", "agent", "--config", c, "--once", "j"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(!out.contains("HOOK-SAYS-HI"), "{out}");
    serde_json::from_str::<Value>(&out).unwrap();
    assert_eq!(code(&env.coop(&["status", "--config", c, "--offline"])), 0);
    write_cfg("exit 3");
    let o = env.coop(&["agent", "--config", c, "--once", "j"]);
    assert_eq!(
        code(&o),
        9,
        "a failing dump under the agent is 9, as for backup: {}",
        text(&o)
    );
    let o = env.coop(&["status", "--config", c, "--offline"]);
    assert_eq!(code(&o), 3, "{}", text(&o));
    let o = env.coop(&["--json", "status", "--config", c, "--offline"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["jobs"][0]["last_run"]["started"].is_string(), "{v}");
}

/// Items 12 and 13: help and output a newcomer reads.
#[test]
fn help_and_output_say_the_right_thing() {
    let env = Env::new();
    let help = env.ok(&["help", "backup"]);
    assert!(help.contains("s3://"), "--repo help names s3://");
    let forget = env.ok(&["forget", "--help"]);
    for flag in [
        "--keep-daily",
        "--keep-weekly",
        "--keep-monthly",
        "--keep-last",
    ] {
        let line = forget.lines().find(|l| l.contains(flag)).unwrap();
        assert!(
            line.trim().len() > flag.len() + 10,
            "{flag} has help: {line:?}"
        );
    }
    // A missing S3 credential names the variable.
    let o = env
        .cmd()
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .args(["snapshots", "--repo", "s3://bucket/x"])
        .output()
        .unwrap();
    assert_ne!(code(&o), 0);
    assert!(text(&o).contains("AWS_ACCESS_KEY_ID"), "{}", text(&o));
    // Tiny input: sane statistics, singular nouns, no colours in a pipe.
    let src = env.p("src");
    touch(&src, "one");
    let o = env.coop(&["backup", src.to_str().unwrap()]);
    let t = text(&o);
    assert!(
        t.split_whitespace()
            .filter(|w| w.contains('%'))
            .all(|w| !w.starts_with('-')
                && w.trim_end_matches(['%', ',', ')'])
                    .parse::<f64>()
                    .map_or(true, |v| v <= 100.0)),
        "statistics on a tiny input: {t}"
    );
    assert!(!t.contains("1 files"), "{t}");
    assert!(!t.contains('\u{1b}'), "ANSI colours in a pipe: {t:?}");
    let ls = env.ok(&["ls", "-l", "latest"]);
    assert!(ls.lines().any(|l| l.starts_with("-rw")), "{ls}");
    let v: Value =
        serde_json::from_str(&env.ok(&["--json", "protect", "latest", "--note", "x"])).unwrap();
    assert_eq!(v["protected"], true);
}

/// A repository with member alice and the recovery key split between its admin (this
/// environment's identity) and a second admin: alice's identity.
fn split_with_alice(env: &Env) -> std::path::PathBuf {
    let (alice_id, alice) = age_identity(env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let (ben_id, ben) = age_identity(env, "ben");
    let anna = public_of(&env.p("config/coop/identity.txt"));
    let (anna, ben) = (format!("anna={anna}"), format!("ben={ben}"));
    let init = [
        "recovery",
        "init",
        "--threshold",
        "1",
        "--admin",
        &anna,
        "--admin",
        &ben,
    ];
    // Not before both are admin persons (SPEC 24.11).
    let o = env.coop(&init);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("not an admin person"), "{}", text(&o));
    env.add_admin_persons(None, "anna", &[("ben", &ben_id)]);
    env.ok(&init);
    alice_id
}

/// Issue 26 finding 8: on a site whose agent holds a writer key, a job's `retention` is
/// skipped with a note (and a `config check` warning); the run exits 0, not 3.
#[test]
fn writer_key_site_skips_retention_with_a_note_not_exit_3() {
    let env = Env::new();
    let data = env.p("data");
    touch(&data, "f");
    let key = env.p("writer.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "agent",
        "--out",
        key.to_str().unwrap(),
    ]);
    let cfg = env.p("agent.toml");
    fs::write(
        &cfg,
        format!(
            "[site]\nname = \"s\"\nrepo = \"{}\"\nwriter_key = \"{}\"\ncache_dir = \"{}\"\n\n\
             [[job]]\nname = \"files\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\n\
             retention = {{ keep_daily = 7, keep_weekly = 5 }}\n",
            env.repo().display(),
            key.display(),
            env.p("agent-cache").display(),
            data.display()
        ),
    )
    .unwrap();
    let o = env.coop(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("retention is skipped with a writer key"),
        "config check warns: {}",
        text(&o)
    );
    for _ in 0..2 {
        let o = env.coop(&[
            "agent",
            "--config",
            cfg.to_str().unwrap(),
            "--once",
            "files",
        ]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(text(&o).contains("retention skipped"), "{}", text(&o));
    }
    assert_eq!(env.snapshots().len(), 2);
}

/// Issue 26 finding 9: `coop --help` lists exit code 13; `coop recovery request --detail`
/// stores its note in the request's log entry, encrypted to the member's tenant, and
/// `coop log show` shows it to the tenant's readers (and marks it for others).
#[test]
fn help_lists_exit_13_and_recovery_request_takes_a_detail() {
    let env = Env::new();
    let help = env
        .ok(&["--help"])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("12 quota exceeded, 13 an access was logged but not cosigned"),
        "{help}"
    );
    let alice_id = split_with_alice(&env);
    let detail = "alice lost her laptop; ticket 4711";
    env.ok(&[
        "recovery",
        "request",
        "--member",
        "alice",
        "--reason",
        "member-request",
        "--detail",
        detail,
    ]);
    // The admins no longer read alice's tenant: they see that there is a detail.
    let shown = env.ok(&["log", "show", "--member", "alice"]);
    assert!(shown.contains("recovery"), "{shown}");
    assert!(
        shown.contains("detail: (encrypted to the tenant's readers)"),
        "{shown}"
    );
    assert!(!shown.contains(detail), "{shown}");
    // Alice reads it.
    let o = env
        .cmd()
        .arg("--identity-file")
        .arg(&alice_id)
        .args(["--tenant", "member/alice", "log", "show"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains(&format!("detail: {detail}")),
        "{}",
        text(&o)
    );
    let o = env
        .cmd()
        .arg("--identity-file")
        .arg(&alice_id)
        .args(["--json", "--tenant", "member/alice", "log", "show"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["detail"] == detail && e["event"] == "recovery-request"),
        "{v}"
    );
}

/// Issue 26 finding 10: an admin backing up into a member's tenant after the recovery split
/// is told to use the agent's writer key (and that works), not to add a key with
/// `coop member recipients`.
#[test]
fn admin_backing_up_a_member_after_the_split_is_pointed_to_the_writer_key() {
    let env = Env::new();
    split_with_alice(&env);
    let data = env.p("data");
    touch(&data, "mail/inbox");
    let o = env.coop(&["backup", "--tenant", "member/alice", data.to_str().unwrap()]);
    assert_eq!(code(&o), 5, "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("--writer-key"), "{t}");
    assert!(!t.contains("member recipients"), "{t}");
    let key = env.p("writer.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "agent",
        "--out",
        key.to_str().unwrap(),
    ]);
    let o = env
        .cmd()
        .arg("--writer-key")
        .arg(&key)
        .args(["backup", "--tenant", "member/alice", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", text(&o));
}

/// Issue 26 finding 12: `--limit-upload` is the rate of all parallel copies together. Packs
/// of 5, 1, 1 and 1 MiB at 2 MiB/s with four copies at once take about four seconds (with a
/// quarter of the limit per copy, the 5 MiB pack alone took ten).
#[test]
fn an_upload_limit_is_the_rate_of_all_parallel_copies_together() {
    let env = Env::new();
    for (i, mib) in [5usize, 1, 1, 1].into_iter().enumerate() {
        let d = env.p(&format!("src{i}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f"), pseudo_random(mib << 20, 1000 + 2 * i as u64)).unwrap();
        env.backup(&d);
    }
    let to = env.p("replica");
    let t0 = std::time::Instant::now();
    let r = env.json(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
        "--limit-upload",
        "2MiB",
        "--parallel",
        "4",
    ]);
    let secs = t0.elapsed().as_secs_f64();
    let bytes = r["copied_bytes"].as_u64().unwrap();
    assert!((8 << 20..9 << 20).contains(&bytes), "{r}");
    assert!(
        (3.5..6.0).contains(&secs),
        "{bytes} bytes at 2 MiB/s took {secs:.2} s"
    );
}

/// Issue 25 finding 8: admins are persons. Each registers with their own key, the entries
/// they cause name them (signed with their person key), the report names them among the
/// service tenant's readers, and a retired admin reads nothing of the service tenant written
/// afterwards, even holding a copy of the keyring they used to open (a replica that kept it),
/// whether the new backup came from an admin or from an agent's older writer key.
#[test]
fn admins_are_persons_and_a_retired_one_reads_nothing_written_afterwards() {
    let env = Env::new();
    let (ben_id, _) = age_identity(&env, "ben");
    let ben = |args: &[&str]| {
        let mut c = env.cmd();
        c.arg("--identity-file").arg(&ben_id).args(args);
        c.output().unwrap()
    };
    let agent_key = env.p("agent.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "agent",
        "--out",
        agent_key.to_str().unwrap(),
    ]);
    env.ok(&["admin", "add", "anna"]);
    let o = ben(&["admin", "whoami"]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(token.starts_with("coop-admin:"), "{token}");
    env.ok(&["admin", "add", "ben", &token]);
    let o = env.coop(&["admin", "add", "ben2", &token]);
    assert_eq!(code(&o), 2, "one person, two names: {}", text(&o));

    // Ben reads the service tenant now and acts as himself.
    let (_, carol) = age_identity(&env, "carol");
    let o = ben(&["member", "add", "carol", "--recipient", &carol]);
    assert!(o.status.success(), "{}", text(&o));
    let rows: Value = serde_json::from_str(&env.ok(&["--json", "log", "show"])).unwrap();
    let who = |ev: &str| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["event"] == ev)
            .map(|r| r["who"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        who("registry-change").contains(&"admin ben".to_string()),
        "{rows}"
    );
    assert!(
        who("registry-change").contains(&"admin anna".to_string()),
        "{rows}"
    );
    let report: Value = serde_json::from_str(&env.ok(&["--json", "report"])).unwrap();
    let coop_readers = report["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "coop")
        .unwrap()["readers"]
        .to_string();
    assert!(
        coop_readers.contains("\"anna\"") && coop_readers.contains("\"ben\""),
        "{coop_readers}"
    );

    // A backup ben may read; then ben keeps a copy of the keyring he opens and is retired.
    let old = env.p("before");
    fs::create_dir_all(&old).unwrap();
    fs::write(old.join("old.txt"), b"written before\n").unwrap();
    env.backup(&old);
    let keys_before: Vec<PathBuf> = walk_files(&env.repo().join("keys"));
    let kept: Vec<(PathBuf, Vec<u8>)> = keys_before
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    env.ok(&["admin", "remove", "ben"]);
    let o = ben(&["snapshots"]);
    assert_eq!(
        code(&o),
        5,
        "a retired admin still opens coop: {}",
        text(&o)
    );
    let o = env.coop(&["admin", "remove", "anna"]);
    assert_eq!(code(&o), 2, "the last admin retired: {}", text(&o));

    // New backups: one by an admin, one by the agent's writer key made before the change.
    let src = env.p("after");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("secret.txt"), b"written after ben left\n").unwrap();
    env.backup(&src);
    let o = env
        .cmd()
        .arg("--writer-key")
        .arg(&agent_key)
        .args(["backup", src.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // A replica that kept the old keyring: ben opens coop with it again, and reads none of
    // the snapshots written after he left.
    for (p, b) in &kept {
        if !p.exists() {
            fs::write(p, b).unwrap();
        }
    }
    let o = ben(&["--json", "snapshots"]);
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        listed.contains("before"),
        "ben does not open the kept keyring: {}",
        text(&o)
    );
    assert!(
        !listed.contains("after"),
        "ben lists a snapshot written after he left: {listed}"
    );
    let o = ben(&[
        "restore",
        "latest",
        "--target",
        env.p("ben-restore").to_str().unwrap(),
    ]);
    // His "latest" is the last snapshot he can open: the one from before.
    let got: Vec<Vec<u8>> = walk_files(&env.p("ben-restore"))
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    assert!(
        got.iter().all(|b| b != b"written after ben left\n"),
        "ben restored new data: {}",
        text(&o)
    );
    assert!(got.is_empty() || got.iter().any(|b| b == b"written before\n"));
    // Anna reads both new snapshots.
    let snaps = env.snapshots();
    assert!(snaps.len() >= 2, "{snaps:?}");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        env.p("anna-restore").to_str().unwrap(),
    ]);
}

/// Issue 30 items 4 and 5: a report job keeps one dated copy per run and an index linking
/// them newest first, each saying when the next is due; a drill job restores a sample of the
/// service job's latest snapshot and checks it, the published setup says when, and a drill of
/// a broken snapshot fails and is reported.
#[test]
fn report_archive_and_restore_drills() {
    let env = Env::new();
    let data = env.p("services");
    for i in 0..30 {
        fs::create_dir_all(data.join(format!("d{}", i % 4))).unwrap();
        fs::write(
            data.join(format!("d{}/f{i}", i % 4)),
            pseudo_random(2000 + i * 997, i as u64 * 2 + 2),
        )
        .unwrap();
    }
    let archive = env.p("archive");
    let cfg = env.p("agent.toml");
    fs::write(
        &cfg,
        format!(
            "[site]\nname = \"hackspace\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n\
             [[job]]\nname = \"services\"\nschedule = \"0 3 * * *\"\npaths = [\"{}\"]\n\n\
             [[job]]\nname = \"drill\"\nschedule = \"0 5 * * 0\"\ndrill = {{ jobs = [\"services\"], sample = 5 }}\n\n\
             [[job]]\nname = \"quarterly\"\nschedule = \"0 6 1 1,4,7,10 *\"\nreport = {{ dir = \"{}\" }}\n\n\
             [cooperative]\nname = \"Coop\"\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            env.p("agent-cache").display(),
            data.display(),
            archive.display()
        ),
    )
    .unwrap();
    let o = env.coop(&["config", "check", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let once = |job: &str, now: &str| {
        let mut c = env.cmd();
        c.env("COOP_TEST_NOW", now).args([
            "agent",
            "--config",
            cfg.to_str().unwrap(),
            "--once",
            job,
        ]);
        c.output().unwrap()
    };
    let o = once("services", "2026-10-01T03:00:00Z");
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = once("drill", "2026-10-04T05:00:00Z");
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("5 file(s)"), "{}", text(&o));
    let setup = env.json(&["report", "--config", cfg.to_str().unwrap(), "--setup"]);
    let jobs = setup["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "only backup jobs are described: {setup}");
    assert!(
        jobs[0]["last_test_restore"]
            .as_str()
            .is_some_and(|s| s.starts_with("2026-10-04") && s.contains("restored and checked")),
        "{setup}"
    );

    // Three quarterly runs: three dated copies, an index newest first.
    for day in ["2026-10-01", "2027-01-01", "2027-04-01"] {
        let o = once("quarterly", &format!("{day}T06:00:00Z"));
        assert_eq!(code(&o), 0, "{}", text(&o));
    }
    let copies: Vec<String> = {
        let mut v: Vec<String> = fs::read_dir(&archive)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(copies.len(), 3, "{copies:?}");
    let index = fs::read_to_string(archive.join("index.html")).unwrap();
    let pos: Vec<usize> = copies
        .iter()
        .map(|c| index.find(c.as_str()).unwrap())
        .collect();
    assert!(
        pos[2] < pos[1] && pos[1] < pos[0],
        "not newest first: {index}"
    );
    for c in &copies {
        let page = fs::read_to_string(archive.join(c).join("index.html")).unwrap();
        assert!(page.contains("Next report due"), "{c}");
        let json: Value =
            serde_json::from_slice(&fs::read(archive.join(c).join("report.json")).unwrap())
                .unwrap();
        assert!(json["next_due"].is_string(), "{c}: {json}");
        assert!(archive.join(c).join("setup.html").is_file());
    }

    // A broken pack: the drill fails, says so, and the setup shows it.
    for p in walk_files(&env.repo().join("packs")) {
        let mut b = fs::read(&p).unwrap();
        let n = b.len();
        b[n / 2] ^= 0xff;
        fs::write(&p, b).unwrap();
    }
    let o = once("drill", "2026-10-11T05:00:00Z");
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(text(&o).contains("could not restore"), "{}", text(&o));
    let setup = env.json(&["report", "--config", cfg.to_str().unwrap(), "--setup"]);
    assert!(
        setup["jobs"][0]["last_test_restore"]
            .as_str()
            .is_some_and(|s| s.contains("FAILED")),
        "{setup}"
    );
}

/// Issue 26 finding 9: each subcommand's help shows the options it uses, not the repository,
/// key and tenant options of every other; they still work before the subcommand and after
/// it (where the subcommand uses them), and from the environment.
#[test]
fn each_command_shows_the_options_it_uses() {
    let env = Env::new();
    let help = |args: &[&str]| -> String {
        let mut a = args.to_vec();
        a.push("--help");
        env.ok(&a)
    };
    let has = |h: &str, flag: &str| {
        h.lines().any(|l| {
            l.contains(&format!("--{flag} ")) || l.trim_end().ends_with(&format!("--{flag}"))
        })
    };
    let h = help(&["recovery", "approve"]);
    assert!(!has(&h, "tenant") && !has(&h, "writer-key"), "{h}");
    assert!(
        has(&h, "repo") && has(&h, "identity-file") && has(&h, "json"),
        "{h}"
    );
    let h = help(&["log", "show"]);
    assert!(!has(&h, "writer-key"), "{h}");
    assert!(has(&h, "tenant") && has(&h, "repo"), "{h}");
    let h = help(&["backup"]);
    for f in [
        "repo",
        "tenant",
        "writer-key",
        "identity-file",
        "cache-dir",
        "json",
    ] {
        assert!(has(&h, f), "backup --help lacks --{f}: {h}");
    }
    let h = help(&["log", "witness"]);
    assert!(
        has(&h, "writer-key") && !has(&h, "identity-file") && !has(&h, "tenant"),
        "{h}"
    );
    for cmd in [
        &["recipe", "show"][..],
        &["verify"],
        &["config", "check"],
        &["agent"],
    ] {
        let h = help(cmd);
        for f in ["repo", "identity-file", "writer-key", "tenant", "freshness"] {
            assert!(!has(&h, f), "{cmd:?} --help shows --{f}: {h}");
        }
        assert!(has(&h, "json") && has(&h, "quiet"), "{h}");
    }
    // The top level lists them all, for any subcommand after it.
    let h = help(&[]);
    for f in ["repo", "identity-file", "writer-key", "tenant"] {
        assert!(has(&h, f), "coop --help lacks --{f}: {h}");
    }

    // Before the subcommand, after it, on its group, and over each other and the environment.
    let src = env.p("src");
    touch(&src, "a.txt");
    env.ok(&["backup", src.to_str().unwrap()]);
    let repo = env.repo().display().to_string();
    let run = |args: &[&str]| {
        env.cmd()
            .env("COOP_REPO", env.p("nowhere"))
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &["--repo", &repo, "snapshots"][..],
        &["snapshots", "--repo", &repo],
        &["-r", "/nowhere", "snapshots", "-r", &repo],
        &["log", "--repo", &repo, "show"],
        &["log", "show", "--repo", &repo],
    ] {
        let o = run(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", text(&o));
    }
    assert_eq!(code(&run(&["snapshots"])), 4, "COOP_REPO is still read");
    let o = env
        .cmd()
        .env("COOP_TENANT", "member/nobody")
        .args(["snapshots"])
        .output()
        .unwrap();
    assert_ne!(code(&o), 0, "COOP_TENANT is still read: {}", text(&o));
    assert!(text(&o).contains("\"nobody\""), "{}", text(&o));
    // An option a subcommand does not use is refused after it (a usage error).
    let o = env.coop(&["recovery", "approve", "--tenant", "x", "0123"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let o = env.coop(&["log", "show", "--writer-key", "/k"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
}

/// Issue 30 item 3: a job names its caretaker; `config check` refuses a malformed one;
/// `coop status` and the report show them; a failing job's notifications go to its
/// caretaker: the healthcheck's `/fail` ping names them and the `notify_command` hook runs
/// with their name and contact (a job's own hook over the site's), and a job that succeeds
/// notifies no one.
#[test]
fn a_failing_job_notifies_its_caretaker() {
    use std::io::{Read, Write};
    let env = Env::new();
    let src = env.p("src");
    touch(&src, "a.txt");
    // A healthchecks stand-in: records each request's first line and body.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = pings.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = vec![0u8; 65536];
            let mut got = Vec::new();
            s.set_read_timeout(Some(std::time::Duration::from_millis(500)))
                .unwrap();
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                let t = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = t.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        break;
                    }
                }
            }
            let t = String::from_utf8_lossy(&got).to_string();
            let first = t.lines().next().unwrap_or("").to_string();
            let body = t.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
            seen.lock().unwrap().push(format!("{first}\n{body}"));
            let _ =
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    let notes = env.p("notes");
    fs::create_dir_all(&notes).unwrap();
    let site_hook = format!(
        "printf '%s|%s|%s|%s|%s\\n' \"$COOP_JOB\" \"$COOP_CARETAKER_NAME\" \"$COOP_CARETAKER_CONTACT\" \"$COOP_SITE\" \"$COOP_MESSAGE\" >> {}/site",
        notes.display()
    );
    let own_hook = format!("echo \"$COOP_CARETAKER\" >> {}/own", notes.display());
    let config = |caretaker: &str| {
        format!(
            "[site]\nname = \"hackspace\"\nrepo = \"{repo}\"\nidentity_file = \"{id}\"\ncache_dir = \"{cache}\"\nhealthcheck_url = \"http://127.0.0.1:{port}/ping\"\nnotify_command = '''{site_hook}'''\n\n\
             [[job]]\nname = \"forgejo\"\nschedule = \"0 3 * * *\"\ncaretaker = \"{caretaker}\"\nbefore = [\"echo the service did not stop >&2; exit 7\"]\npaths = [\"{src}\"]\n\n\
             [[job]]\nname = \"wiki\"\nschedule = \"0 4 * * *\"\ncaretaker = \"Ben <@ben:example.org>\"\nnotify_command = '''{own_hook}'''\nbefore = [\"exit 1\"]\npaths = [\"{src}\"]\n\n\
             [[job]]\nname = \"files\"\nschedule = \"0 5 * * *\"\ncaretaker = \"Cleo <cleo@example.org>\"\npaths = [\"{src}\"]\n",
            repo = env.repo().display(),
            id = env.p("config/coop/identity.txt").display(),
            cache = env.p("agent-cache").display(),
            src = src.display(),
        )
    };
    let path = env.p("agent.toml");
    let c = path.to_str().unwrap();
    // A caretaker that is not "Name <contact>" is refused, naming its line.
    fs::write(&path, config("anna@example.org")).unwrap();
    let o = env.coop(&["config", "check", c, "--offline"]);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("Name <contact>") && text(&o).contains("line 12"),
        "{}",
        text(&o)
    );
    fs::write(&path, config("Anna <anna@example.org>")).unwrap();
    let o = env.coop(&["config", "check", c, "--offline"]);
    assert_eq!(code(&o), 0, "{}", text(&o));

    let once = |job: &str| env.coop(&["agent", "--config", c, "--once", job]);
    assert_ne!(code(&once("forgejo")), 0);
    let site = fs::read_to_string(notes.join("site")).unwrap();
    assert!(
        site.starts_with("forgejo|Anna|anna@example.org|hackspace|"),
        "{site}"
    );
    assert!(site.contains("exit status: 7"), "{site}");
    let fails: Vec<String> = pings
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.contains("/ping/fail"))
        .cloned()
        .collect();
    assert_eq!(fails.len(), 1, "{fails:?}");
    assert!(
        fails[0].contains("caretaker: Anna <anna@example.org>"),
        "{fails:?}"
    );
    // The job's own hook, not the site's.
    assert_ne!(code(&once("wiki")), 0);
    assert_eq!(
        fs::read_to_string(notes.join("own")).unwrap(),
        "Ben <@ben:example.org>\n"
    );
    assert_eq!(fs::read_to_string(notes.join("site")).unwrap(), site);
    // Success notifies no one.
    assert_eq!(code(&once("files")), 0);
    assert_eq!(fs::read_to_string(notes.join("site")).unwrap(), site);

    // Shown by status and the report.
    let o = env.coop(&["--json", "status", "--config", c, "--offline"]);
    let s: Value = serde_json::from_slice(&o.stdout).unwrap();
    let jobs = s["jobs"].as_array().unwrap();
    assert_eq!(jobs[0]["caretaker"], "Anna <anna@example.org>", "{s}");
    assert_eq!(jobs[2]["caretaker"], "Cleo <cleo@example.org>", "{s}");
    let o = env.coop(&["status", "--config", c, "--offline"]);
    assert!(
        text(&o).contains("caretaker: Ben <@ben:example.org>"),
        "{}",
        text(&o)
    );
    let o = env.coop(&["--json", "report", "--config", c]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    assert_eq!(
        r["caretakers"][1]["caretaker"],
        "Ben <@ben:example.org>",
        "{}",
        text(&o)
    );
    let html = env.p("page");
    env.coop(&["report", "--config", c, "--html", html.to_str().unwrap()]);
    let page = fs::read_to_string(html.join("index.html")).unwrap();
    assert!(page.contains("Cleo &lt;cleo@example.org&gt;"), "{page}");
}

/// Issue 30 item 3's last part: an admin's access names the caretaker who asked for it, in
/// the entry, in `log show` and in the report's accesses.
#[test]
fn an_access_names_the_caretaker_who_asked() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let data = env.p("d");
    touch(&data, "notes.md");
    env.ok(&["backup", "--tenant", "member/alice", data.to_str().unwrap()]);
    let o = env.coop(&[
        "dump",
        "--tenant",
        "member/alice",
        "latest",
        "/notes.md",
        "--requested-by",
        "Kim",
    ]);
    assert_eq!(code(&o), 2, "--requested-by needs --reason: {}", text(&o));
    env.ok(&[
        "dump",
        "--tenant",
        "member/alice",
        "latest",
        &format!("{}/notes.md", data.display()),
        "--reason",
        "member-request",
        "--requested-by",
        "Kim",
    ]);
    let rows: Value =
        serde_json::from_str(&env.ok(&["--json", "log", "show", "--member", "alice"])).unwrap();
    let dump = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["event"] == "dump")
        .expect("the dump's entry")
        .clone();
    assert_eq!(dump["data"]["requested_by"], "Kim", "{dump}");
    assert!(env
        .ok(&["log", "show", "--member", "alice"])
        .contains("for Kim"));
    let r = env.json(&["report"]);
    assert!(r.to_string().contains("\"requested_by\":\"Kim\""), "{r}");
}

/// After the recovery split, adding or retiring an admin takes K other admins: anna alone
/// makes a second person of herself (another identity file of hers) and tries to approve it
/// as herself and as it, and proposes to retire ben; nothing changes until ben and cleo
/// approve (SPEC 24.11).
#[test]
fn after_the_split_one_admin_alone_adds_and_retires_no_admin() {
    let env = Env::new();
    let as_ = |id: &PathBuf, args: &[&str]| {
        let mut c = env.cmd();
        c.arg("--identity-file").arg(id).args(args);
        c.output().unwrap()
    };
    let token_of = |id: &PathBuf| {
        let o = as_(id, &["admin", "whoami"]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let (ben, _) = age_identity(&env, "ben");
    let (cleo, _) = age_identity(&env, "cleo");
    let (puppet, _) = age_identity(&env, "anna-second");
    let (dave, _) = age_identity(&env, "dave");
    env.ok(&["admin", "add", "anna"]);
    env.ok(&["admin", "add", "ben", &token_of(&ben)]);
    env.ok(&["admin", "add", "cleo", &token_of(&cleo)]);
    let recipient = |t: &str| t.rsplit(':').next().unwrap().to_string();
    let anna_token = String::from_utf8_lossy(&env.coop(&["admin", "whoami"]).stdout)
        .trim()
        .to_string();
    let holders = [
        format!("anna={}", recipient(&anna_token)),
        format!("ben={}", recipient(&token_of(&ben))),
        format!("cleo={}", recipient(&token_of(&cleo))),
    ];
    // Alice, whose recovery identity the later re-splits carry over.
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let mut init = vec!["recovery", "init", "--threshold", "2"];
    for h in &holders {
        init.extend(["--admin", h.as_str()]);
    }
    let o = env.coop(&init);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("adding or retiring one takes 2"),
        "{}",
        text(&o)
    );

    // Anna alone: her second person is only proposed; her approvals do not count.
    let o = env.coop(&["admin", "add", "second", &token_of(&puppet)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("0 of 2"), "{}", text(&o));
    let o = env.coop(&["admin", "approve", "second"]);
    assert_eq!(code(&o), 5, "the proposer approved herself: {}", text(&o));
    let o = as_(&puppet, &["admin", "approve", "second"]);
    assert_ne!(code(&o), 0, "the puppet approved itself: {}", text(&o));
    // Retiring ben would leave two holders of the three shares a recovery combines.
    let o = env.coop(&["admin", "remove", "ben"]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("Add an admin first"), "{}", text(&o));
    let list: Value = serde_json::from_str(&env.ok(&["--json", "admin", "list"])).unwrap();
    let counts = |list: &Value, name: &str| {
        list["admins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == name)
            .map(|a| a["counts"] == true)
    };
    assert_eq!(counts(&list, "second"), None, "{list}");
    assert_eq!(counts(&list, "ben"), Some(true), "{list}");
    assert_eq!(list["pending"].as_array().unwrap().len(), 1, "{list}");
    // Ben still reads the service tenant.
    let o = as_(&ben, &["snapshots"]);
    assert!(o.status.success(), "{}", text(&o));

    // Dave, proposed by anna and approved by ben and cleo, is added; the shares are re-split
    // to the four of them, each doing their part (cleo's approval dealt hers).
    env.ok(&["admin", "add", "dave", &token_of(&dave)]);
    let o = as_(&ben, &["admin", "approve", "dave"]);
    assert!(text(&o).contains("1 of 2"), "{}", text(&o));
    let o = as_(&dave, &["snapshots"]);
    assert_eq!(code(&o), 5, "dave reads before the approvals: {}", text(&o));
    let o = as_(&cleo, &["admin", "approve", "dave"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("admin dave added"), "{}", text(&o));
    assert!(text(&o).contains("you dealt"), "{}", text(&o));
    let o = as_(&dave, &["snapshots"]);
    assert!(o.status.success(), "{}", text(&o));
    // `None`: anna, the admin of the test's own identity file.
    let reshare_all = |order: &[Option<&PathBuf>]| -> String {
        let mut last = String::new();
        for id in order {
            let o = match id {
                Some(id) => as_(id, &["recovery", "reshare"]),
                None => env.coop(&["recovery", "reshare"]),
            };
            assert!(o.status.success(), "{}", text(&o));
            last = text(&o);
        }
        last
    };
    let last = reshare_all(&[None, Some(&ben), None, Some(&cleo), Some(&dave)]);
    assert!(last.contains("the re-split ended"), "{last}");
    let status: Value = serde_json::from_str(&env.ok(&["--json", "recovery", "status"])).unwrap();
    assert_eq!(status["holders"].as_array().unwrap().len(), 4, "{status}");
    assert!(status.get("reshare").is_none(), "{status}");

    // Now ben can be retired: proposed by anna, approved by cleo and dave.
    env.ok(&["admin", "remove", "ben"]);
    as_(&cleo, &["admin", "approve", "ben"]);
    let o = as_(&dave, &["admin", "approve", "ben"]);
    assert!(text(&o).contains("admin ben retired"), "{}", text(&o));
    let o = as_(&ben, &["recovery", "reshare"]);
    assert_eq!(code(&o), 5, "a retired admin takes part: {}", text(&o));
    let last = reshare_all(&[None, Some(&cleo), None, Some(&dave)]);
    assert!(last.contains("the re-split ended"), "{last}");
    let status: Value = serde_json::from_str(&env.ok(&["--json", "recovery", "status"])).unwrap();
    let holders = status["holders"].to_string();
    assert!(!holders.contains("\"ben\""), "{holders}");

    // Alice's data written after ben left: dave asks, anna and cleo approve, dave reads it;
    // ben, retired, has no share to approve with.
    let data = env.p("alice-data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("late.txt"), b"written after ben left\n").unwrap();
    let agent = env.writer_key("agent");
    let o = env
        .cmd()
        .arg("--writer-key")
        .arg(&agent)
        .args(["backup", "--tenant", "member/alice", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = as_(
        &dave,
        &[
            "--json",
            "recovery",
            "request",
            "--member",
            "alice",
            "--reason",
            "member-request",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let id = serde_json::from_slice::<Value>(&o.stdout).unwrap()["request"]
        .as_str()
        .unwrap()
        .to_string();
    let o = as_(&ben, &["recovery", "approve", &id]);
    assert_eq!(code(&o), 5, "a retired admin approved: {}", text(&o));
    for o in [
        env.coop(&["recovery", "approve", &id]),
        as_(&cleo, &["recovery", "approve", &id]),
    ] {
        assert!(o.status.success(), "{}", text(&o));
    }
    let out = env.p("alice-export");
    let o = as_(
        &dave,
        &[
            "export",
            "--member",
            "alice",
            "--recovery",
            &id,
            "--reason",
            "member-request",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // The snapshot of the one file written after ben left (23 bytes) is exported.
    assert!(
        text(&o).contains("1 file, 23 B"),
        "the re-split shares did not open alice: {}",
        text(&o)
    );
}
