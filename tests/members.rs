//! Members: per-member tenants and jobs, quotas, export, offline verify, isolation.

use crate::common;

use common::*;
use serde_json::Value;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

struct Coop {
    env: Env,
    alice_id: PathBuf,
    bob_key: PathBuf,
    data: PathBuf,
}

/// A repository with members alice (age key, no quota) and bob (SSH key, quota), data for
/// both, and an agent config with a per-member job.
fn setup(bob_quota: &str) -> Coop {
    let env = Env::new();
    let (alice_id, alice_rcpt) = age_identity(&env, "alice");
    let (bob_key, bob_rcpt) = ssh_key(&env, "bob_ed25519");
    env.ok(&["member", "add", "alice", "--recipient", &alice_rcpt]);
    env.ok(&[
        "member",
        "add",
        "bob",
        "--recipient",
        &bob_rcpt,
        "--quota",
        bob_quota,
    ]);
    let data = env.p("nextcloud");
    for (m, seed) in [("alice", 1u64), ("bob", 2)] {
        let d = data.join(m).join("files");
        fs::create_dir_all(d.join("photos")).unwrap();
        fs::write(d.join("notes.md"), format!("# notes of {m}\n").repeat(1000)).unwrap();
        fs::write(d.join("photos/cat.jpg"), pseudo_random(300_000, seed)).unwrap();
        fs::write(d.join("empty.txt"), b"").unwrap();
    }
    fs::write(
        env.p("agent.toml"),
        format!(
            "[site]\nname = \"hackspace\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n[[job]]\nname = \"nextcloud-members\"\nschedule = \"0 3 * * *\"\nmembers = \"all\"\npaths = [\"{}/{{member}}/files\"]\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            env.p("agent-cache").display(),
            data.display()
        ),
    )
    .unwrap();
    Coop {
        env,
        alice_id,
        bob_key,
        data,
    }
}

fn run_job(c: &Coop) -> std::process::Output {
    c.env.coop(&[
        "--json",
        "agent",
        "--config",
        c.env.p("agent.toml").to_str().unwrap(),
        "--once",
        "nextcloud-members",
    ])
}

fn verify(env: &Env, path: &Path, trust: Option<&str>) -> (Option<i32>, Value) {
    let mut args = vec!["--json", "verify", path.to_str().unwrap()];
    if let Some(t) = trust {
        args.extend(["--trust", t]);
    }
    let o = env.coop(&args);
    (
        o.status.code(),
        serde_json::from_slice(&o.stdout).unwrap_or(Value::Null),
    )
}

#[test]
fn members_export_verify_and_isolation() {
    let c = setup("1GiB");
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let env = &c.env;
    // Alice: tar export with her age identity.
    let alice_tar = env.p("alice.tar");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--out",
        alice_tar.to_str().unwrap(),
    ]);
    let (code, v) = verify(env, &alice_tar, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["files_ok"], 3);
    let fp = v["signer_fingerprint"].as_str().unwrap().to_string();
    // The tar is readable with standard tools.
    let t = std::process::Command::new("tar")
        .args(["tf", alice_tar.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&t.stdout);
    assert!(
        listing.contains("manifest.json") && listing.contains("photos/cat.jpg"),
        "{listing}"
    );
    // Bob: directory export with his SSH key.
    let bob_dir = env.p("bob-export");
    env.ok(&[
        "export",
        "--member",
        "bob",
        "--identity-file",
        c.bob_key.to_str().unwrap(),
        "--out",
        &format!("{}/", bob_dir.display()),
    ]);
    let (code, v) = verify(env, &bob_dir, Some(&fp));
    assert_eq!(code, Some(0), "{v}");
    // The export holds the member's own tree, named after the job's source directory
    // (`…/bob/files`), not the server's layout.
    let bob_cat = bob_dir.join("files/files/photos/cat.jpg");
    assert_eq!(fs::read(&bob_cat).unwrap(), pseudo_random(300_000, 2));
    // Each is refused the other's data, and nothing is written.
    for (id, member) in [(&c.alice_id, "bob"), (&c.bob_key, "alice")] {
        let out = env.p(&format!("stolen-{member}.tar"));
        let o = env.coop(&[
            "export",
            "--member",
            member,
            "--identity-file",
            id.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(
            o.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("not a recipient of tenant"));
        assert!(!out.exists() && !out.with_extension("tar.partial").exists());
    }
    // Before a k-of-n split the admins are recovery recipients: an admin exports any member,
    // with a reason, which is logged first.
    env.ok(&[
        "export",
        "--member",
        "bob",
        "--out",
        env.p("admin-bob.tar").to_str().unwrap(),
        "--reason",
        "member-request",
    ]);
    // usage shows both tenants.
    let u = env.json(&["usage"]);
    let tenants: Vec<&str> = u
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert!(
        tenants.contains(&"member/alice") && tenants.contains(&"member/bob"),
        "{u}"
    );
    let bob = u
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "member/bob")
        .unwrap();
    assert!(bob["quota_used_percent"].as_f64().unwrap() < 1.0);
    // Members are not deduplicated against each other: same file, two tenants, stored twice.
    assert!(bob["stored_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn tampered_exports_are_caught_and_named() {
    let c = setup("1GiB");
    assert!(run_job(&c).status.success());
    let env = &c.env;
    let base = env.p("base");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--out",
        &format!("{}/", base.display()),
    ]);
    let (_, v) = verify(env, &base, None);
    let fp = v["signer_fingerprint"].as_str().unwrap().to_string();
    let files = base.join("files/files");
    let fresh = |name: &str| {
        let d = env.p(name);
        copy_tree(&base, &d);
        (d.clone(), d.join("files/files"))
    };
    let _ = files;
    let mut caught = 0;
    // 1. One changed byte.
    let (d, f) = fresh("t1");
    let mut b = fs::read(f.join("photos/cat.jpg")).unwrap();
    b[1000] ^= 1;
    fs::write(f.join("photos/cat.jpg"), b).unwrap();
    let (code, v) = verify(env, &d, None);
    assert_eq!(code, Some(6));
    assert!(
        v["problems"].to_string().contains("changed")
            && v["problems"].to_string().contains("cat.jpg"),
        "{v}"
    );
    caught += 1;
    // 2. A deleted file.
    let (d, f) = fresh("t2");
    fs::remove_file(f.join("notes.md")).unwrap();
    let (code, v) = verify(env, &d, None);
    assert_eq!(code, Some(6));
    assert!(
        v["problems"].to_string().contains("missing")
            && v["problems"].to_string().contains("notes.md"),
        "{v}"
    );
    caught += 1;
    // 3. An added file.
    let (d, f) = fresh("t3");
    fs::write(f.join("planted.txt"), b"x").unwrap();
    let (code, v) = verify(env, &d, None);
    assert_eq!(code, Some(6));
    assert!(
        v["problems"].to_string().contains("extra")
            && v["problems"].to_string().contains("planted.txt"),
        "{v}"
    );
    caught += 1;
    // 4. An edited manifest (a file's hash changed to match a replaced file).
    let (d, _) = fresh("t4");
    let mut m: Value = serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    let payload = m["signed_manifest"]["payload"]
        .as_str()
        .unwrap()
        .replace("\"size\":0", "\"size\":1");
    m["signed_manifest"]["payload"] = Value::String(payload);
    fs::write(d.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let (code, v) = verify(env, &d, None);
    assert_eq!(code, Some(6));
    assert!(v["problems"].to_string().contains("signature"), "{v}");
    caught += 1;
    // 5. A manifest re-signed with a foreign key: valid signature, wrong key.
    let (d, _) = fresh("t5");
    let mut m: Value = serde_json::from_slice(&fs::read(d.join("manifest.json")).unwrap()).unwrap();
    let signed: coop_formats::manifest::SignedManifest =
        serde_json::from_value(m["signed_manifest"].clone()).unwrap();
    let (man, _) = signed.verify().unwrap();
    let foreign = ed25519_dalek::SigningKey::from_bytes(&[13; 32]);
    m["signed_manifest"] =
        serde_json::to_value(coop_formats::manifest::SignedManifest::sign(&man, &foreign)).unwrap();
    fs::write(d.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let (code, v) = verify(env, &d, Some(&fp));
    assert_eq!(code, Some(6));
    assert!(
        v["problems"].to_string().contains("not by the trusted key"),
        "{v}"
    );
    assert_ne!(v["signer_fingerprint"].as_str().unwrap(), fp);
    caught += 1;
    // And a tampered tar.
    let tar = env.p("a.tar");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--out",
        tar.to_str().unwrap(),
    ]);
    let mut bytes = fs::read(&tar).unwrap();
    let pos = bytes.windows(8).position(|w| w == b"# notes ").unwrap();
    bytes[pos + 2] = b'N';
    fs::write(&tar, bytes).unwrap();
    let (code, v) = verify(env, &tar, None);
    assert_eq!(code, Some(6), "{v}");
    caught += 1;
    assert_eq!(caught, 6);
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &t);
        } else {
            fs::copy(e.path(), &t).unwrap();
        }
    }
}

#[test]
fn quota_and_empty_selectors_fail_only_that_member() {
    let c = setup("1KiB");
    // carol is registered but has no data directory: reported, not silently skipped.
    let (_, carol) = age_identity(&c.env, "carol");
    c.env.ok(&["member", "add", "carol", "--recipient", &carol]);
    let o = run_job(&c);
    assert!(!o.status.success(), "the job reports its failed members");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let msg = v["message"].as_str().unwrap();
    assert!(msg.contains("bob") && msg.contains("quota"), "{msg}");
    assert!(
        msg.contains("carol") && msg.contains("nothing to back up"),
        "{msg}"
    );
    assert!(!msg.contains("alice:"), "{msg}");
    // Alice has her snapshot; bob has none.
    let snaps = |m: &str| {
        c.env
            .json(&["--tenant", &format!("member/{m}"), "snapshots"])
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(snaps("alice"), 1);
    assert_eq!(snaps("bob"), 0);
}

#[test]
fn export_into_rewrites_only_what_changed() {
    let c = setup("1GiB");
    assert!(run_job(&c).status.success());
    let env = &c.env;
    let dir = env.p("mine");
    let export = |env: &Env| -> Value {
        env.json(&[
            "export",
            "--member",
            "alice",
            "--identity-file",
            c.alice_id.to_str().unwrap(),
            "--into",
            dir.to_str().unwrap(),
        ])
    };
    let first = export(env);
    assert_eq!(first["written"], 3);
    let files = dir.join("files/files");
    let before: Vec<(i64, u64)> = ["notes.md", "photos/cat.jpg"]
        .iter()
        .map(|f| {
            let m = fs::metadata(files.join(f)).unwrap();
            (m.ctime_nsec() + m.ctime() * 1_000_000_000, m.ino())
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(c.data.join("alice/files/notes.md"), b"changed notes\n").unwrap();
    assert!(run_job(&c).status.success());
    let second = export(env);
    assert_eq!(second["written"], 1, "{second}");
    assert_eq!(second["unchanged"], 2, "{second}");
    let cat = fs::metadata(files.join("photos/cat.jpg")).unwrap();
    assert_eq!(
        (cat.ctime_nsec() + cat.ctime() * 1_000_000_000, cat.ino()),
        before[1],
        "an unchanged file was rewritten"
    );
    assert_eq!(
        fs::read(files.join("notes.md")).unwrap(),
        b"changed notes\n"
    );
    let (code, v) = verify(env, &dir, None);
    assert_eq!(code, Some(0), "{v}");
}

#[test]
fn rewrap_adds_and_removes_member_keys_without_reencrypting() {
    let c = setup("1GiB");
    assert!(run_job(&c).status.success());
    let env = &c.env;
    let packs_before = walk_files(&env.repo().join("packs"));
    let (laptop, laptop_rcpt) = age_identity(env, "alice-laptop");
    env.ok(&["member", "recipients", "alice", "--add", &laptop_rcpt]);
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        laptop.to_str().unwrap(),
        "--out",
        env.p("from-laptop.tar").to_str().unwrap(),
    ]);
    assert_eq!(
        walk_files(&env.repo().join("packs")),
        packs_before,
        "no data re-encrypted"
    );
    let old = fs::read_to_string(&c.alice_id).unwrap();
    let old_rcpt = old
        .lines()
        .find(|l| l.starts_with("# public key: "))
        .unwrap()
        .trim_start_matches("# public key: ")
        .to_string();
    env.ok(&["member", "recipients", "alice", "--remove", &old_rcpt]);
    let o = env.coop(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--out",
        env.p("old.tar").to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "the removed key no longer opens the tenant"
    );
}

#[test]
fn export_from_a_read_only_s3_replica() {
    let Ok(ep) = std::env::var("COOP_TEST_S3_ENDPOINT") else {
        assert!(
            std::env::var("COOP_SKIP_SERVERS").is_ok(),
            "COOP_TEST_S3_ENDPOINT is not set: run through scripts/test.sh"
        );
        return;
    };
    let c = setup("1GiB");
    assert!(run_job(&c).status.success());
    let env = &c.env;
    let bucket = format!("members-{}", std::process::id());
    let o = std::process::Command::new("python3")
        .args(["-c", "import sys,urllib.request; urllib.request.urlopen(urllib.request.Request(sys.argv[1], method='PUT'))", &format!("{ep}/{bucket}")])
        .output()
        .unwrap();
    assert!(o.status.success());
    let s3 = |args: &[&str]| {
        let mut cmd = env.cmd();
        cmd.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_ENDPOINT_URL", &ep)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "us-east-1");
        cmd.args(args).output().unwrap()
    };
    let url = format!("s3://{bucket}/site");
    assert!(s3(&[
        "replicate",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        &url
    ])
    .status
    .success());
    let objects = |out: std::process::Output| String::from_utf8(out.stdout).unwrap();
    let before = objects(s3(&[
        "--json",
        "replicate",
        "--check",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        &url,
    ]));
    // A member on their own machine: only their identity, a fresh cache.
    let tar = env.p("from-s3.tar");
    let o = s3(&[
        "--cache-dir",
        env.p("member-cache").to_str().unwrap(),
        "export",
        "--repo",
        &url,
        "--member",
        "bob",
        "--identity-file",
        c.bob_key.to_str().unwrap(),
        "--out",
        tar.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, v) = verify(env, &tar, None);
    assert_eq!(code, Some(0), "{v}");
    let after = objects(s3(&[
        "--json",
        "replicate",
        "--check",
        "--from",
        env.repo().to_str().unwrap(),
        "--to",
        &url,
    ]));
    let extra = |s: &str| serde_json::from_str::<Value>(s).unwrap()["extra_objects"].clone();
    assert_eq!(
        extra(&before),
        extra(&after),
        "export wrote nothing to the store"
    );
}

/// A snapshot's manifest (the signed file list) is data prune keeps: after forget and a
/// prune that repacks everything it can, the member's export still verifies.
#[test]
fn export_survives_forget_and_repacking_prune() {
    let env = Env::new();
    let (id, rcpt) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &rcpt]);
    let data = env.p("alice-files");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("old"), pseudo_random(200_000, 1)).unwrap();
    env.ok(&["backup", "--tenant", "member/alice", data.to_str().unwrap()]);
    fs::remove_file(data.join("old")).unwrap();
    fs::write(data.join("new"), pseudo_random(200_000, 2)).unwrap();
    env.ok(&["backup", "--tenant", "member/alice", data.to_str().unwrap()]);
    env.ok(&["forget", "--tenant", "member/alice", "--keep-last", "1"]);
    env.ok(&["prune", "--max-unused", "0%"]);
    env.ok(&["check", "--read-data"]);
    let tar = env.p("alice.tar");
    let mut c = env.cmd();
    c.arg("--identity-file").arg(&id).args([
        "export",
        "--member",
        "alice",
        "--out",
        tar.to_str().unwrap(),
    ]);
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "export after prune: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    env.ok(&["verify", tar.to_str().unwrap(), "--member", "alice"]);
}

/// `paths_from_command`: a script's output lines are the paths of the job, per member with
/// `$COOP_MEMBER` set (BigBlueButton's recordings of the rooms a member owns). Each member's
/// snapshot holds exactly their paths; a failing script or a relative line fails the job
/// clearly and writes no snapshot.
#[test]
fn paths_from_command_selects_each_members_paths() {
    let c = setup("1GB");
    let rec = c.env.p("recordings");
    for (id, owner) in [("r1", "alice"), ("r2", "bob"), ("r3", "alice")] {
        fs::create_dir_all(rec.join(id)).unwrap();
        fs::write(
            rec.join(id).join(format!("{owner}.webm")),
            pseudo_random(50_000, 7),
        )
        .unwrap();
    }
    fs::write(rec.join("owners"), "r1 alice\nr2 bob\nr3 alice\n").unwrap();
    let config = |script: &str| {
        format!(
            "[site]\nname = \"hackspace\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n[[job]]\nname = \"recordings-members\"\nschedule = \"0 3 * * *\"\nmembers = \"all\"\npaths_from_command = ['''{script}''']\n",
            c.env.repo().display(),
            c.env.p("config/coop/identity.txt").display(),
            c.env.p("agent-cache").display(),
        )
    };
    let run = |script: &str| {
        fs::write(c.env.p("rec.toml"), config(script)).unwrap();
        c.env.coop(&[
            "--json",
            "agent",
            "--config",
            c.env.p("rec.toml").to_str().unwrap(),
            "--once",
            "recordings-members",
        ])
    };
    let dir = rec.display().to_string();
    let o = run(&format!(
        "awk -v m=\"$COOP_MEMBER\" '$2 == m {{ print \"{dir}/\" $1 }}' {dir}/owners"
    ));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let paths = |member: &str| -> Vec<String> {
        let v: Value = serde_json::from_str(&c.env.ok(&[
            "--json",
            "snapshots",
            "--tenant",
            &format!("member/{member}"),
        ]))
        .unwrap();
        let last = v.as_array().unwrap().last().unwrap().clone();
        last["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        paths("alice"),
        vec![format!("{dir}/r1"), format!("{dir}/r3")]
    );
    assert_eq!(paths("bob"), vec![format!("{dir}/r2")]);

    // A failing script fails the job for that member and writes no snapshot.
    let count = |member: &str| {
        serde_json::from_str::<Value>(&c.env.ok(&[
            "--json",
            "snapshots",
            "--tenant",
            &format!("member/{member}"),
        ]))
        .unwrap()
        .as_array()
        .unwrap()
        .len()
    };
    let before = (count("alice"), count("bob"));
    let o = run("echo /etc; exit 3");
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("exit status: 3"), "{text}");
    // A relative path is refused, naming the line.
    let o = run("echo relative/path");
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(text.contains("not an absolute path"), "{text}");
    assert_eq!((count("alice"), count("bob")), before);
}

/// Issue 25 finding 4: the log gate is the engine's. An admin's key opens alice's tenant
/// (as her recovery reader) but lists, compares or reads none of her files unless the read
/// is logged first; a copy of the store without the service tenant's keyring (nowhere to
/// log) reads nothing even with a reason; alice herself reads with no entry.
#[test]
fn an_admins_key_reads_a_members_files_only_through_the_logged_gate() {
    let c = setup("1GiB");
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let env = &c.env;
    let entries = |repo: &Path| -> usize {
        let o = env.coop(&["--json", "--repo", repo.to_str().unwrap(), "log", "show"]);
        serde_json::from_slice::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v.as_array().map(|a| a.len()))
            .unwrap_or(0)
    };
    let before = entries(&env.repo());
    for args in [
        vec!["ls", "latest", "--tenant", "member/alice"],
        vec!["diff", "latest", "latest", "--tenant", "member/alice"],
    ] {
        let o = env.coop(&args);
        assert_eq!(
            o.status.code(),
            Some(5),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stderr).contains("not yours"));
        assert!(
            o.stdout.is_empty(),
            "{args:?} showed {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eq!(
        entries(&env.repo()),
        before,
        "a refused read wrote to the log"
    );
    // The same admin key on a copy whose coop keyring was removed: nowhere to log, no read.
    let copy = env.p("copy");
    copy_tree(&env.repo(), &copy);
    fs::create_dir_all(env.p("aside")).unwrap();
    let copy_s = copy.to_str().unwrap();
    let mut removed = false;
    let dirs: Vec<std::path::PathBuf> = fs::read_dir(copy.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for d in dirs {
        let aside = env.p("aside").join(d.file_name().unwrap());
        fs::rename(&d, &aside).unwrap();
        let o = env.coop(&["--repo", copy_s, "snapshots", "--tenant", "coop"]);
        if !o.status.success() {
            removed = true;
            break;
        }
        fs::rename(&aside, &d).unwrap();
    }
    assert!(removed, "the service tenant's keyring was not found");
    let target = env.p("stolen");
    let o = env.coop(&[
        "--repo",
        copy_s,
        "restore",
        "latest",
        "--tenant",
        "member/alice",
        "--target",
        target.to_str().unwrap(),
        "--reason",
        "legal-request",
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("cannot open tenant coop"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(walk_files(&target).is_empty(), "files were restored");
    // Alice lists her own files, unlogged.
    let o = env.coop(&[
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "ls",
        "latest",
        "--tenant",
        "member/alice",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("notes.md"));
    assert_eq!(entries(&env.repo()), before);
}

/// Issue 25 finding 5: a replica made before `recovery init` follows the split: the keyring
/// generations wrapped to the admins are deleted at the source only after a logged deletion,
/// and the replica drops them too, so one admin's key opens the member nowhere.
#[test]
fn the_recovery_split_reaches_replicas() {
    let c = setup("1GiB");
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let env = &c.env;
    let replica = env.p("replica");
    let (src, r) = (env.repo(), replica.to_str().unwrap().to_string());
    env.ok(&["replicate", "--from", src.to_str().unwrap(), "--to", &r]);
    env.ok(&["--repo", &r, "snapshots", "--tenant", "member/alice"]);
    let own = public_of(&env.p("config/coop/identity.txt"));
    let (b_id, b) = age_identity(env, "admin-b");
    let (c_id, c2) = age_identity(env, "admin-c");
    env.add_admin_persons(None, "anna", &[("ben", &b_id), ("cleo", &c_id)]);
    env.ok(&[
        "recovery",
        "init",
        "--threshold",
        "2",
        "--admin",
        &format!("anna={own}"),
        "--admin",
        &format!("ben={b}"),
        "--admin",
        &format!("cleo={c2}"),
    ]);
    let o = env.coop(&["snapshots", "--tenant", "member/alice"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // What a replica site that ignores logged deletions keeps: the keyrings from before.
    let kept = env.p("kept-keys");
    copy_tree(&replica.join("keys"), &kept);
    env.ok(&[
        "replicate",
        "--from",
        src.to_str().unwrap(),
        "--to",
        &r,
        "--deletion-grace",
        "0s",
    ]);
    let o = env.coop(&["--repo", &r, "snapshots", "--tenant", "member/alice"]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "one admin still opens alice at the replica: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Alice still reads her data at the replica.
    let o = env.coop(&[
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--repo",
        &r,
        "ls",
        "latest",
        "--tenant",
        "member/alice",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Alice backs up after the split; the replica gets it, and puts back the keyrings from
    // before the split it kept. With them one admin reads what was written before the split
    // (she could then), and nothing written after it: the split gave alice a new data key.
    let later = env.p("later");
    fs::create_dir_all(&later).unwrap();
    fs::write(later.join("after-split.txt"), "written after the split\n").unwrap();
    let key = env.writer_key("agent");
    env.ok(&[
        "--writer-key",
        key.to_str().unwrap(),
        "backup",
        "--tenant",
        "member/alice",
        later.to_str().unwrap(),
    ]);
    env.ok(&["replicate", "--from", src.to_str().unwrap(), "--to", &r]);
    copy_tree(&kept, &replica.join("keys"));
    let restore = |what: &str, to: &str| {
        env.coop(&[
            "--repo",
            &r,
            "restore",
            what,
            "--tenant",
            "member/alice",
            "--target",
            env.p(to).to_str().unwrap(),
            "--reason",
            "legal-request",
        ])
    };
    // The newest snapshot she can open is the one from before the split: the one after it
    // does not open (skipped, with a warning), and nothing of it is restored.
    let o = restore("latest", "r-after");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = walk_files(&env.p("r-after"));
    assert!(
        got.iter().any(|f| f.ends_with("notes.md")),
        "the kept keyring should still open what was written before the split: {got:?}"
    );
    assert!(
        got.iter()
            .all(|f| !f.to_string_lossy().contains("after-split")),
        "a keyring kept from before the split read a backup made after it: {got:?}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot be read with the keys given") && !err.contains("forged"),
        "a genuine snapshot these keys do not open is not called forged: {err}"
    );
}

/// Issue 25 finding 7: a registry replayed from an older generation (by anyone who may
/// delete and create objects) is refused as the base of a change by a client that saw the
/// newer one: `member add` writes no keyring and no registry.
#[test]
fn a_replayed_registry_is_refused_for_changes() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let reg = env.repo().join("registry");
    let old = env.p("old-registry");
    copy_tree(&reg, &old);
    let (_, bob) = age_identity(&env, "bob");
    env.ok(&["member", "add", "bob", "--recipient", &bob]);
    env.ok(&["member", "list"]);
    fs::remove_dir_all(&reg).unwrap();
    copy_tree(&old, &reg);
    let keyrings = walk_files(&env.repo().join("keys")).len();
    let (_, carol) = age_identity(&env, "carol");
    let o = env.coop(&["member", "add", "carol", "--recipient", &carol]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("POSSIBLE ROLLBACK"));
    assert_eq!(
        walk_files(&env.repo().join("keys")).len(),
        keyrings,
        "a keyring was written on the replayed registry"
    );
}

/// Issue 24 finding 8: a member's verifier remembers the log entries it saw; an export whose
/// log part lost one (stripped from the manifest, which the writer's signature does not
/// cover) is named, with what went missing.
#[test]
fn a_members_verifier_notices_a_vanished_log_entry() {
    let c = setup("1GiB");
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let env = &c.env;
    // An admin's logged read of alice, then alice's own export, verified: remembered.
    let adm = env.p("admin-copy");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--out",
        &format!("{}/", adm.display()),
        "--reason",
        "legal-request",
    ]);
    // Issue 24 finding 10: the entry names no snapshot of the store in clear (snapshot names
    // sit under their tenant's public tag, so a member with a store copy could link it).
    let log: Value = serde_json::from_str(&env.ok(&["--json", "log", "show"])).unwrap();
    let access = log
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "export")
        .unwrap()
        .clone();
    let object = access["object"].as_str().unwrap().to_string();
    let names: Vec<String> = walk_files(&env.repo().join("snapshots"))
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(!names.is_empty());
    assert!(
        names
            .iter()
            .all(|n| !n.starts_with(&object) && !object.starts_with(&n[..16])),
        "the access entry names a stored snapshot: {object}"
    );
    let first = env.p("first");
    let export = |dir: &Path| {
        env.ok(&[
            "export",
            "--member",
            "alice",
            "--identity-file",
            c.alice_id.to_str().unwrap(),
            "--out",
            &format!("{}/", dir.display()),
        ])
    };
    export(&first);
    let (code, v) = verify(env, &first, None);
    assert_eq!(code, Some(0), "{v}");
    assert!(
        v["log"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["event"] == "export"),
        "{v}"
    );
    assert!(v["warnings"].as_array().unwrap().is_empty(), "{v}");
    // The next export, with its log part stripped.
    let second = env.p("second");
    export(&second);
    let m = second.join("manifest.json");
    let mut j: Value = serde_json::from_slice(&fs::read(&m).unwrap()).unwrap();
    j["log"] = Value::Array(vec![]);
    fs::write(&m, serde_json::to_vec_pretty(&j).unwrap()).unwrap();
    let (_, v) = verify(env, &second, None);
    let w = v["warnings"].to_string();
    assert!(
        w.contains("missing from this one") && w.contains("export"),
        "{v}"
    );
}

/// Issue 26 finding 5: with two per-member jobs (different path sets) a member's export holds
/// the newest snapshot of each, names both in its manifest, and verifies; an export of one
/// snapshot by ID holds that one alone.
#[test]
fn an_export_holds_the_newest_snapshot_of_every_job_of_the_member() {
    let c = setup("1GiB");
    let env = &c.env;
    let mail = env.p("mail");
    for m in ["alice", "bob"] {
        fs::create_dir_all(mail.join(m).join("inbox")).unwrap();
        fs::write(mail.join(m).join("inbox/1.eml"), format!("mail of {m}\n")).unwrap();
    }
    let mut cfg = fs::read_to_string(env.p("agent.toml")).unwrap();
    cfg.push_str(&format!(
        "\n[[job]]\nname = \"mail-members\"\nschedule = \"0 4 * * *\"\nmembers = \"all\"\npaths = [\"{}/{{member}}\"]\n",
        mail.display()
    ));
    fs::write(env.p("agent.toml"), cfg).unwrap();
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.coop(&[
        "agent",
        "--config",
        env.p("agent.toml").to_str().unwrap(),
        "--once",
        "mail-members",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let export = |name: &str, extra: &[&str]| -> (PathBuf, Value) {
        let out = env.p(name);
        let mut args = vec![
            "--json",
            "export",
            "--member",
            "alice",
            "--identity-file",
            c.alice_id.to_str().unwrap(),
            "--out",
        ];
        let o = format!("{}/", out.display());
        args.push(&o);
        args.extend_from_slice(extra);
        let r: Value = serde_json::from_str(&env.ok(&args)).unwrap();
        (out, r)
    };
    let (out, r) = export("alice-all", &[]);
    assert_eq!(r["more"].as_array().unwrap().len(), 1, "{r}");
    let (code, v) = verify(env, &out, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["files_ok"], 4, "{v}");
    assert_eq!(v["more"].as_array().unwrap().len(), 1, "{v}");
    let m: Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let ids: Vec<&str> = std::iter::once(m["snapshot"].as_str().unwrap())
        .chain(
            m["more"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["snapshot"].as_str().unwrap()),
        )
        .collect();
    assert_eq!(ids.len(), 2);
    // Both jobs' files, each below its job's root.
    assert_eq!(
        fs::read(out.join("files/files/photos/cat.jpg")).unwrap(),
        pseudo_random(300_000, 1)
    );
    assert_eq!(
        fs::read_to_string(out.join("files/alice/inbox/1.eml")).unwrap(),
        "mail of alice\n"
    );
    // A file of the other job missing from the export is named.
    fs::remove_file(out.join("files/alice/inbox/1.eml")).unwrap();
    let (code, v) = verify(env, &out, None);
    assert_eq!(code, Some(6), "{v}");
    assert!(v["problems"].to_string().contains("missing"), "{v}");

    // A newer backup of the first job: still both jobs, the newest of each.
    fs::write(
        c.data.join("alice/files/notes.md"),
        "# newer notes\n".repeat(10),
    )
    .unwrap();
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (out, r) = export("alice-newer", &[]);
    assert_eq!(r["more"].as_array().unwrap().len(), 1, "{r}");
    let (code, v) = verify(env, &out, None);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        fs::read_to_string(out.join("files/files/notes.md")).unwrap(),
        "# newer notes\n".repeat(10)
    );
    assert!(out.join("files/alice/inbox/1.eml").exists());

    // One snapshot by ID: that one alone, in the format of before.
    let (out, r) = export("alice-one", &["--snapshot", ids[1]]);
    assert!(r.get("more").is_none(), "{r}");
    let m: Value = serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert!(m.get("more").is_none(), "{m}");
    let (code, v) = verify(env, &out, None);
    assert_eq!(code, Some(0), "{v}");
}

/// Issue 25 finding 9: after `recovery init` (three admins, K = 2) no admin reads alice, yet
/// the agent, with one admin key (K − 1), keeps her tenant up: `forget` decides from the
/// snapshots' signed metadata (encrypted to the service tenant too, never their files),
/// `prune` deletes whole packs no remaining inventory needs, and the agent's retention does
/// both on schedule. The newest N stay, space is freed, and alice still restores and
/// exports what is kept. A storage site that edits a
/// snapshot's clear inventory stops both; a writer key forgets nothing.
#[test]
fn admins_keep_member_tenants_up_after_the_split_without_reading_them() {
    let c = setup("1GiB");
    let env = &c.env;
    let own = public_of(&env.p("config/coop/identity.txt"));
    let (b_id, b) = age_identity(env, "admin-b");
    let (c_id, c2) = age_identity(env, "admin-c");
    env.add_admin_persons(None, "anna", &[("ben", &b_id), ("cleo", &c_id)]);
    env.ok(&[
        "recovery",
        "init",
        "--threshold",
        "2",
        "--admin",
        &format!("anna={own}"),
        "--admin",
        &format!("ben={b}"),
        "--admin",
        &format!("cleo={c2}"),
    ]);
    let alice = c.alice_id.to_str().unwrap();
    let as_alice = |args: &[&str]| {
        let mut a = vec!["--identity-file", alice];
        a.extend_from_slice(args);
        env.coop(&a)
    };
    // Five nightly runs of the member job (the agent holds one admin's identity), each with
    // a new photo: after the first (whose pack also holds the notes every snapshot shares),
    // each snapshot has a pack of its own.
    let photo = |i: usize| pseudo_random(300_000, 101 + 2 * i as u64);
    let mut ids = Vec::new();
    for i in 0..5 {
        fs::write(c.data.join("alice/files/photos/cat.jpg"), photo(i)).unwrap();
        let o = run_job(&c);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let m = v["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["member"] == "alice")
            .unwrap();
        ids.push(m["snapshot"].as_str().unwrap().to_string());
    }
    let o = as_alice(&["--json", "snapshots", "--tenant", "member/alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5, "{listed}");
    // The admin still reads none of her files.
    let o = env.coop(&["ls", "latest", "--tenant", "member/alice"]);
    assert_eq!(o.status.code(), Some(5));

    // A writer key (a stolen agent) forgets nothing.
    let pi = env.p("pi.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "pi",
        "--out",
        pi.to_str().unwrap(),
    ]);
    let o = env.coop(&[
        "--writer-key",
        pi.to_str().unwrap(),
        "forget",
        "--tenant",
        "member/alice",
        "--keep-last",
        "1",
    ]);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let snaps_dir = |repo: &Path| -> PathBuf {
        let d = walk_files(&repo.join("snapshots"));
        d.iter()
            .find(|p| p.file_name().unwrap().to_str() == Some(&ids[0]))
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf()
    };
    let alice_snaps = snaps_dir(&env.repo());
    assert_eq!(walk_files(&alice_snaps).len(), 5);

    // A storage site edits the clear inventory of the newest snapshot (it drops a pack from
    // it by changing the name): forget and prune refuse, nothing is deleted.
    let newest = alice_snaps.join(&ids[4]);
    let genuine = fs::read(&newest).unwrap();
    let mut edited = genuine.clone();
    edited[24 + 4 + 4 + 1] ^= 1;
    fs::write(&newest, &edited).unwrap();
    let packs_before = walk_files(&env.repo().join("packs")).len();
    for args in [
        vec!["forget", "--tenant", "member/alice", "--keep-last", "2"],
        vec!["prune", "--tenant", "member/alice"],
    ] {
        let o = env.coop(&args);
        assert!(!o.status.success(), "{args:?} ran on an edited snapshot");
    }
    assert_eq!(walk_files(&alice_snaps).len(), 5);
    assert_eq!(walk_files(&env.repo().join("packs")).len(), packs_before);
    fs::write(&newest, &genuine).unwrap();

    // The admin's retention: the newest two of the agent's snapshots stay, alice's own too.
    let v = env.json(&["forget", "--tenant", "member/alice", "--keep-last", "2"]);
    let removed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["keep"] == false)
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed.len(), 3, "{v}");
    assert!(
        ids[..3].iter().all(|i| removed.contains(&i.as_str())),
        "{v}"
    );
    assert_eq!(walk_files(&alice_snaps).len(), 2);

    // Prune (every tenant, as plain `coop prune` runs) frees the forgotten snapshots' packs.
    let size = |p: &Path| -> u64 {
        walk_files(p)
            .iter()
            .map(|f| f.metadata().unwrap().len())
            .sum()
    };
    let bytes_before = size(&env.repo().join("packs"));
    let v = env.json(&["prune"]);
    let r = &v["member/alice"];
    assert_eq!(r["snapshots"], 2, "{v}");
    // The packs of snapshots 1 and 2 go; the first one's stays (the kept ones share it).
    assert!(r["packs_deleted"].as_u64().unwrap() >= 2, "{v}");
    let bytes_after = size(&env.repo().join("packs"));
    assert!(
        bytes_before - bytes_after >= 2 * 290_000,
        "freed {} bytes: {v}",
        bytes_before - bytes_after
    );
    assert!(v.get("member/bob").is_some(), "bob was skipped: {v}");
    // The admin checks the member tenants per inventory (nothing missing), reads no data.
    let v = env.json(&["check", "--tenant", "member/alice"]);
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["snapshots"], 2, "{v}");
    let v = env.json(&["check"]);
    assert!(v["tenants"].to_string().contains("member/bob"), "{v}");
    let o = env.coop(&["check", "--read-data", "--tenant", "member/alice"]);
    assert_eq!(o.status.code(), Some(5));

    // Alice: her client accepts the admin's forget records (no rollback), her data is whole,
    // and what is kept restores and exports.
    let o = as_alice(&["--json", "snapshots", "--tenant", "member/alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let o = as_alice(&["check", "--read-data", "--tenant", "member/alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (i, id) in ids.iter().enumerate().skip(3) {
        let target = env.p(&format!("restored-{i}"));
        let o = as_alice(&[
            "restore",
            &id[..12],
            "--tenant",
            "member/alice",
            "--target",
            target.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let cat = walk_files(&target)
            .into_iter()
            .find(|p| p.ends_with("photos/cat.jpg"))
            .unwrap();
        assert_eq!(fs::read(cat).unwrap(), photo(i));
    }
    let tar = env.p("alice.tar");
    let o = as_alice(&[
        "export",
        "--member",
        "alice",
        "--out",
        tar.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (code, v) = verify(env, &tar, None);
    assert_eq!(code, Some(0), "{v}");

    // The agent's own retention on schedule: keep the newest one, prune.
    let mut cfg = fs::read_to_string(env.p("agent.toml")).unwrap();
    cfg.push_str("retention = { keep_last = 1, prune = true }\n");
    fs::write(env.p("agent.toml"), cfg).unwrap();
    fs::write(c.data.join("alice/files/photos/cat.jpg"), photo(9)).unwrap();
    let bytes_before = size(&env.repo().join("packs"));
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["forgotten"].as_u64().unwrap() >= 2, "{v}");
    // Alice's tenant: the agent's newest.
    let o = as_alice(&["--json", "snapshots", "--tenant", "member/alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert!(
        size(&env.repo().join("packs")) < bytes_before,
        "the agent's prune freed nothing"
    );
    let o = as_alice(&["check", "--read-data", "--tenant", "member/alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Issue 30 item 1: groups. A family's quota is shared by its members and refused at ingest
/// with the group named; `usage` and `group list` show the group; the report makes it one
/// cost line with its members' parts, and the payer's own report shows it; a member outside
/// the group is not limited by it.
#[test]
fn a_group_shares_one_quota_and_is_one_cost_line() {
    let env = Env::new();
    let mut names = Vec::new();
    for n in ["alice", "bob", "carol"] {
        let (_, r) = age_identity(&env, n);
        env.ok(&["member", "add", n, "--recipient", &r]);
        names.push(n);
    }
    env.ok(&[
        "group", "add", "family", "--payer", "alice", "--quota", "600KiB",
    ]);
    env.ok(&["group", "members", "family", "--add", "bob"]);
    let o = env.coop(&["group", "members", "family", "--remove", "alice"]);
    assert_eq!(o.status.code(), Some(2), "the payer left her group");
    let o = env.coop(&["group", "add", "other", "--payer", "bob"]);
    assert_eq!(o.status.code(), Some(2), "bob in two groups");
    let key = env.p("agent.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "agent",
        "--out",
        key.to_str().unwrap(),
    ]);
    let backup = |member: &str, seed: u64| {
        let d = env.p(&format!("data-{member}-{seed}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f.bin"), pseudo_random(400 << 10, seed)).unwrap();
        env.cmd()
            .arg("--writer-key")
            .arg(&key)
            .args([
                "backup",
                "--tenant",
                &format!("member/{member}"),
                d.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = backup("alice", 11);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = backup("bob", 13);
    assert_eq!(
        o.status.code(),
        Some(12),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("group family") && err.contains("coop group quota family"),
        "{err}"
    );
    // What the refused backup stored was removed: bob stores nothing.
    let usage = env.json(&["usage"]);
    let row = |t: &str| {
        usage
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["tenant"] == t)
            .unwrap()
            .clone()
    };
    assert_eq!(row("member/bob")["stored_bytes"], 0, "{usage}");
    assert_eq!(row("member/bob")["group"], "family");
    assert!(row("member/carol").get("group").is_none());
    // Carol is not in the group: not limited by it.
    let o = backup("carol", 17);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = env.json(&["group", "list"]);
    assert_eq!(g[0]["group"], "family", "{g}");
    assert_eq!(g[0]["payer"], "alice");
    assert_eq!(g[0]["members"][1][0], "bob");
    assert!(g[0]["stored_bytes"].as_u64().unwrap() > 400 << 10);
    // A raised quota lets bob in.
    env.ok(&["group", "quota", "family", "2MiB"]);
    let o = backup("bob", 13);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The report: one cost line for the family, its parts adding up to it.
    let cfg = env.p("agent.toml");
    fs::write(
        &cfg,
        format!(
            "[site]\nname = \"hackspace\"\nrepo = \"{}\"\nidentity_file = \"{}\"\ncache_dir = \"{}\"\n\n\
             [cooperative]\nname = \"Coop\"\ncurrency = \"EUR\"\nfixed_share_percent = 0\n\n\
             [[cooperative.site]]\nname = \"hackspace\"\ncosts = {{ power = 9.00 }}\n",
            env.repo().display(),
            env.p("config/coop/identity.txt").display(),
            env.p("agent-cache").display()
        ),
    )
    .unwrap();
    let r = env.json(&["report", "--config", cfg.to_str().unwrap()]);
    let groups = r["costs"]["groups"]
        .as_array()
        .expect("groups in the costs");
    assert_eq!(groups.len(), 1, "{r}");
    let fam = &groups[0];
    let parts: f64 = fam["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[2].as_f64().unwrap())
        .sum();
    assert!(
        (parts - fam["monthly"].as_f64().unwrap()).abs() < 0.011,
        "{fam}"
    );
    assert!(fam["monthly"].as_f64().unwrap() > 0.0);
    // Alice pays: her report shows the family; bob's and carol's do not.
    for (m, sees) in [("alice", true), ("bob", false), ("carol", false)] {
        let r = env.json(&["report", "--config", cfg.to_str().unwrap(), "--member", m]);
        assert_eq!(
            r["costs"].get("groups").is_some(),
            sees,
            "{m}: {}",
            r["costs"]
        );
    }
}

/// Issue 24 finding 8's remainder, played by whoever carries an export to its member: the
/// export's `manifest.json` is sealed by the tenant's signer over its log part, its
/// witnesses, its quorum and the admin-signed writer list those come from. Removing an
/// access entry, removing the whole log part, or adding an invented witness (with a
/// cosignature of its own) fails `coop verify`; so does re-sealing with another key once the
/// member's verifier pinned the genuine one, and a witness list that the writer list does not
/// name, however sealed.
#[test]
fn the_export_seal_covers_the_log_part_the_witnesses_and_the_quorum() {
    use coop_agent::export::ExportFile;
    let c = setup("1GiB");
    let o = run_job(&c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let env = &c.env;
    // A site writer: the repository has a writer list naming it as a witness.
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "pi",
        "--out",
        env.p("pi.key").to_str().unwrap(),
    ]);
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--out",
        &format!("{}/", env.p("adm").display()),
        "--reason",
        "legal-request",
    ]);
    let dir = env.p("mine");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        c.alice_id.to_str().unwrap(),
        "--out",
        &format!("{}/", dir.display()),
    ]);
    let mf = dir.join("manifest.json");
    let genuine = fs::read(&mf).unwrap();
    let (code, v) = verify(env, &dir, None);
    assert_eq!(code, Some(0), "{v}");
    assert!(!v["seal_signer"].as_str().unwrap().is_empty(), "{v}");
    assert!(!v["admin_key"].as_str().unwrap().is_empty(), "{v}");
    let ef: ExportFile = serde_json::from_slice(&genuine).unwrap();
    assert!(ef.log.iter().any(|p| p.entry["event"] == "export"));
    assert!(ef.writer_list.is_some() && ef.witnesses.len() == 1, "{v}");
    let tampered = |what: &str, f: &dyn Fn(&mut ExportFile), reseal: bool, want: &str| {
        let mut x: ExportFile = serde_json::from_slice(&genuine).unwrap();
        f(&mut x);
        if reseal {
            x.sign(&ed25519_dalek::SigningKey::from_bytes(&[0x66; 32]));
        }
        fs::write(&mf, serde_json::to_vec_pretty(&x).unwrap()).unwrap();
        let (code, v) = verify(env, &dir, None);
        assert_eq!(code, Some(6), "{what} passed: {v}");
        assert!(v["problems"].to_string().contains(want), "{what}: {v}");
    };
    let drop_access = |x: &mut ExportFile| x.log.retain(|p| p.entry["event"] != "export");
    tampered(
        "an access entry removed",
        &drop_access,
        false,
        "seal does not verify",
    );
    tampered(
        "the log part removed",
        &|x| x.log.clear(),
        false,
        "seal does not verify",
    );
    tampered(
        "log part and seal removed",
        &|x| {
            x.log.clear();
            x.seal = None;
        },
        false,
        "not sealed",
    );
    let invent = |x: &mut ExportFile| {
        let k = ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]);
        let name = coop_agent::log::witness_name("friend", &k.verifying_key().to_bytes());
        x.witnesses
            .push((name, hex_of(&k.verifying_key().to_bytes())));
        x.quorum = 1;
    };
    tampered(
        "an invented witness",
        &invent,
        false,
        "seal does not verify",
    );
    // Re-sealed by someone else: the member's verifier pinned the tenant's own seal key.
    tampered(
        "an access entry removed, re-sealed",
        &drop_access,
        true,
        "someone else",
    );
    tampered(
        "an invented witness, re-sealed",
        &invent,
        true,
        "writer list names",
    );
    fs::write(&mf, &genuine).unwrap();
    let (code, v) = verify(env, &dir, None);
    assert_eq!(code, Some(0), "the genuine export again: {v}");
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Backs up a service-shaped tree through a recipe's member job as `coop recipe show` renders
/// it (with `sets` for its variables) and returns the paths below `files/` in alice's export
/// (which `coop verify` accepts).
fn recipe_member_export(
    recipe: &str,
    job: &str,
    sets: &[String],
    tree: &[&str],
    root: &str,
) -> Vec<String> {
    let env = Env::new();
    let (alice_id, alice_rcpt) = age_identity(&env, "alice");
    let (_, bob_rcpt) = age_identity(&env, "bob");
    env.ok(&["member", "add", "alice", "--recipient", &alice_rcpt]);
    env.ok(&["member", "add", "bob", "--recipient", &bob_rcpt]);
    let root = env.p(root);
    for rel in tree {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, format!("{rel}\n")).unwrap();
    }
    let mut args = vec!["recipe", "show", recipe];
    let sets: Vec<String> = sets
        .iter()
        .map(|s| s.replace("ROOT", &root.display().to_string()))
        .collect();
    for s in &sets {
        args.extend(["--set", s]);
    }
    let rendered: toml::Table = toml::from_str(&env.ok(&args)).unwrap();
    let j = rendered["job"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"].as_str() == Some(job))
        .unwrap_or_else(|| panic!("recipe {recipe} has no job {job}"))
        .clone();
    let mut site = toml::Table::new();
    site.insert("name".into(), "hackspace".into());
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
    cfg.insert("job".into(), vec![j].into());
    let path = env.p("agent.toml");
    fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let o = env.coop(&["agent", "--config", path.to_str().unwrap(), "--once", job]);
    assert!(
        o.status.success(),
        "{recipe}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = env.p("alice-export");
    let dir = format!("{}/", out.display());
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        alice_id.to_str().unwrap(),
        "--out",
        &dir,
    ]);
    let (code, v) = verify(&env, &out, None);
    assert_eq!(code, Some(0), "{recipe}: {v}");
    // The tar export lays the files out the same way.
    let tar = env.p("alice.tar");
    env.ok(&[
        "export",
        "--member",
        "alice",
        "--identity-file",
        alice_id.to_str().unwrap(),
        "--out",
        tar.to_str().unwrap(),
    ]);
    let (code, v) = verify(&env, &tar, None);
    assert_eq!(code, Some(0), "{recipe}: {v}");
    let files = out.join("files");
    let mut got: Vec<String> = walk_files(&files)
        .iter()
        .map(|p| p.strip_prefix(&files).unwrap().display().to_string())
        .collect();
    got.sort();
    for rel in &got {
        let content = fs::read_to_string(files.join(rel)).unwrap();
        assert!(
            content.trim_end().ends_with(rel.as_str()),
            "{recipe}: {rel} holds {content:?}"
        );
    }
    got
}

/// Issue 26 finding 6: a member's export keeps each file's path below the job's root, as the
/// recipes document it, not the server's absolute paths and not without its folder.
#[test]
fn recipe_member_exports_hold_the_documented_layout() {
    // docs/recipes/prosody.md: `accounts/alice.dat`, `roster/alice.dat`, `offline/alice.list`,
    // `archive/alice.list`, and whatever else the server stores for her.
    let got = recipe_member_export(
        "prosody",
        "prosody-members",
        &["DATA_DIR=ROOT/var/lib/prosody".into()],
        &[
            "var/lib/prosody/example%2ecoop/accounts/alice.dat",
            "var/lib/prosody/example%2ecoop/roster/alice.dat",
            "var/lib/prosody/example%2ecoop/offline/alice.list",
            "var/lib/prosody/example%2ecoop/archive/alice.list",
            "var/lib/prosody/example%2ecoop/vcard/alice.dat",
            "var/lib/prosody/example%2ecoop/accounts/bob.dat",
            "var/lib/prosody/example%2ecoop/roster/bob.dat",
            "var/lib/prosody/example%2ecoop/archive/bob.list",
            "var/lib/prosody/example%2ecoop/accounts/alicia.dat",
            "var/lib/prosody/conference%2eexample%2ecoop/persistent/room.dat",
            "var/lib/prosody/prosody.sock",
        ],
        "root",
    );
    assert_eq!(
        got,
        [
            "accounts/alice.dat",
            "archive/alice.list",
            "offline/alice.list",
            "roster/alice.dat",
            "vcard/alice.dat"
        ]
    );
    // docs/recipes/bigbluebutton.md: `presentation/RECORD_ID/…`, `video/RECORD_ID/…` (the
    // record IDs of her rooms come from Greenlight's database, here a stand-in for psql).
    let got = recipe_member_export(
        "bigbluebutton",
        "bigbluebutton-members",
        &[
            "PUBLISHED_DIR=ROOT/published".into(),
            "EMAIL_DOMAIN=example.coop".into(),
            "GREENLIGHT_PSQL=sh -c 'cat >/dev/null; case \"$*\" in *member=alice*) echo 11aa-1600000000;; *) echo 22bb-1600000001;; esac' psql".into(),
        ],
        &[
            "published/presentation/11aa-1600000000/metadata.xml",
            "published/presentation/11aa-1600000000/video/webcams.webm",
            "published/video/11aa-1600000000/video-0.m4v",
            "published/presentation/22bb-1600000001/metadata.xml",
        ],
        "root",
    );
    assert_eq!(
        got,
        [
            "presentation/11aa-1600000000/metadata.xml",
            "presentation/11aa-1600000000/video/webcams.webm",
            "video/11aa-1600000000/video-0.m4v"
        ]
    );
}

/// Issue 25: a `member add` after the split that stops (a crash) between the registry and the
/// log leaves a member whose keys the log names nowhere: writers refuse her (exit 6). Running
/// the same `member add` again finishes it instead of saying she exists; her backups then go.
#[test]
fn a_member_add_stopped_before_the_log_is_finished_by_running_it_again() {
    let env = Env::new();
    let init = alice_and_three_admins(&env);
    env.ok(&init.iter().map(String::as_str).collect::<Vec<_>>());
    let (_, carol) = age_identity(&env, "carol");
    let add = ["member", "add", "carol", "--recipient", &carol];
    let o = env
        .cmd()
        .args(add)
        .env("COOP_FAULT_POINT", "member-add:after-registry")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the fault point did not fire");
    let data = env.p("carol-data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("f"), b"carol's file").unwrap();
    let key = env.writer_key("pi");
    let backup = || {
        env.coop(&[
            "--writer-key",
            key.to_str().unwrap(),
            "backup",
            "--tenant",
            "member/carol",
            data.to_str().unwrap(),
        ])
    };
    let o = backup();
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Run again with other keys, it is not the addition that stopped: refused.
    let (_, other) = age_identity(&env, "other");
    env.fails(&["member", "add", "carol", "--recipient", &other], 2);
    env.ok(&add);
    let o = backup();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Once finished, a third run says she exists.
    env.fails(&add, 2);
}

/// Issue 25: `recovery init` that stops (a crash) after the registry names the split and
/// before the admins' log does: nothing about recovery is done against a log that shows no
/// split (a request is refused, exit 6), and running `recovery init` again logs the split;
/// a request then goes.
#[test]
fn a_recovery_init_stopped_before_the_log_is_finished_by_running_it_again() {
    let env = Env::new();
    let init = alice_and_three_admins(&env);
    let init: Vec<&str> = init.iter().map(String::as_str).collect();
    let o = env
        .cmd()
        .args(&init)
        .env("COOP_FAULT_POINT", "recovery-init:after-registry")
        .output()
        .unwrap();
    assert!(!o.status.success(), "the fault point did not fire");
    let request = [
        "recovery",
        "request",
        "--member",
        "alice",
        "--reason",
        "member-request",
    ];
    let err = env.fails(&request, 6);
    assert!(err.contains("shows no recovery split"), "{err}");
    env.ok(&init);
    env.ok(&request);
}

/// Member alice, and admins anna (this environment's identity), ben and cleo registered as
/// persons; returns the `recovery init` arguments that split among the three with K = 2.
fn alice_and_three_admins(env: &Env) -> Vec<String> {
    let own = public_of(&env.p("config/coop/identity.txt"));
    let (b_id, b) = age_identity(env, "admin-b");
    let (c_id, c2) = age_identity(env, "admin-c");
    let (_, alice) = age_identity(env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    env.add_admin_persons(None, "anna", &[("ben", &b_id), ("cleo", &c_id)]);
    split_args(&own, &b, &c2)
}

/// `recovery init` with K = 2 among anna, ben and cleo (their recipients).
fn split_args(anna: &str, ben: &str, cleo: &str) -> Vec<String> {
    ["recovery", "init", "--threshold", "2"]
        .into_iter()
        .map(String::from)
        .chain(
            [
                format!("anna={anna}"),
                format!("ben={ben}"),
                format!("cleo={cleo}"),
            ]
            .into_iter()
            .flat_map(|a| ["--admin".to_string(), a]),
        )
        .collect()
}

/// Runs `args` paused at fault point `at` (a `COOP_PAUSE` hook) until the returned file
/// exists; returns once it is paused there, with the file its messages go to.
fn paused(env: &Env, at: &str, args: &[&str]) -> (std::process::Child, PathBuf, PathBuf) {
    let tag = at.replace(':', "-");
    let (go, err) = (env.p(&format!("go-{tag}")), env.p(&format!("{tag}.err")));
    let child = env
        .cmd()
        .env("COOP_PAUSE", format!("{at}={}", go.display()))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("paused at")
    {
        assert!(t0.elapsed().as_secs() < 60, "{args:?} did not get to {at}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, go, err)
}

/// Lets a paused command go on; its exit code and messages.
fn resume(child: std::process::Child, go: &Path, err: &Path) -> (Option<i32>, String) {
    fs::write(go, b"").unwrap();
    let o = child.wait_with_output().unwrap();
    (o.status.code(), fs::read_to_string(err).unwrap())
}

/// Two admins change the registry at the same time (the store has no compare-and-swap):
/// the change that finds the other's withdraws its own object and says so, no object is
/// deleted unread, and nothing either made is lost without a word.
#[test]
fn two_registry_changes_at_once_lose_nothing_silently() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    let (_, bob) = age_identity(&env, "bob");
    let (_, carol) = age_identity(&env, "carol");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    assert_eq!(env.count("registry"), 1);
    // Carol's addition reads generation 1 and stops before storing; bob's is made meanwhile.
    let args = ["member", "add", "carol", "--recipient", &carol];
    let (child, go, err) = paused(&env, "state:before-put", &args);
    env.ok(&["member", "add", "bob", "--recipient", &bob]);
    let (code, err) = resume(child, &go, &err);
    assert_eq!(code, Some(10), "{err}");
    assert!(
        err.contains("changed by someone else at the same time"),
        "{err}"
    );
    assert!(!err.contains("credentials"), "no misleading hint: {err}");
    let list = env.ok(&["member", "list"]);
    assert!(list.contains("bob") && !list.contains("carol"), "{list}");
    assert_eq!(env.count("registry"), 1, "carol's object was withdrawn");
    // Run again, it is made on top of bob's.
    env.ok(&["member", "add", "carol", "--recipient", &carol]);
    let list = env.ok(&["member", "list"]);
    assert!(list.contains("bob") && list.contains("carol"), "{list}");

    // A quota change stored and paused before it deletes what it read: bob's removal reads
    // it (the newest) and builds on it, so the quota stands although its command says it
    // met another change.
    let args = ["member", "quota", "alice", "5GiB"];
    let (child, go, err) = paused(&env, "state:after-put", &args);
    assert_eq!(env.count("registry"), 2);
    env.ok(&["member", "remove", "bob"]);
    let (code, err) = resume(child, &go, &err);
    assert_eq!(code, Some(10), "{err}");
    assert!(err.contains("took effect anyway"), "{err}");
    let list = env.ok(&["member", "list"]);
    assert!(list.contains("5"), "alice's quota stands: {list}");
    assert_eq!(env.count("registry"), 1);
    env.ok(&["check"]);
}

/// Admins and a member who hold SSH keys, as many do: `admin whoami` with an OpenSSH
/// ed25519 identity gives a token, `recovery init --admin NAME=ssh-ed25519 …` takes the same
/// key, and the member reads her own entries with `log show --member` and her own key, each
/// naming the admin person who caused it (she cannot read the registry; the log names them).
#[test]
fn ssh_admins_split_and_a_member_reads_who_did_what() {
    let env = Env::new();
    let own = public_of(&env.p("config/coop/identity.txt"));
    let (alice_key, alice_pub) = ssh_key(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", alice_pub.trim()]);
    let (ben_key, ben_pub) = ssh_key(&env, "ben");
    let (cleo_key, cleo_pub) = ssh_key(&env, "cleo");
    env.add_admin_persons(None, "anna", &[("ben", &ben_key), ("cleo", &cleo_key)]);
    let init = split_args(&own, ben_pub.trim(), cleo_pub.trim());
    env.ok(&init.iter().map(String::as_str).collect::<Vec<_>>());
    let her_log = || {
        env.ok(&[
            "--identity-file",
            alice_key.to_str().unwrap(),
            "log",
            "show",
            "--member",
            "alice",
        ])
    };
    let shown = her_log();
    assert!(shown.contains("admin anna"), "{shown}");
    assert!(!shown.contains("unregistered"), "{shown}");
    // Ben approves a request for alice under his SSH identity.
    let o = env.ok(&[
        "recovery",
        "request",
        "--member",
        "alice",
        "--reason",
        "member-request",
    ]);
    let id = o.split_whitespace().nth(1).expect("request ID").to_string();
    env.ok(&[
        "--identity-file",
        ben_key.to_str().unwrap(),
        "recovery",
        "approve",
        &id,
        "--member",
        "alice",
    ]);
    let shown = her_log();
    assert!(shown.contains("admin ben"), "{shown}");
}

/// As a lying site: the store drops the whole access log after a member's export verified
/// it. Her next export still writes all her data, names the problem and exits 6, instead of
/// carrying no entries as if nobody had ever read her data.
#[test]
fn an_export_names_a_log_the_store_dropped() {
    let env = Env::new();
    let (alice_id, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("diary"), b"dear diary").unwrap();
    env.ok(&["backup", "--tenant", "member/alice", src.to_str().unwrap()]);
    let as_alice = |out: &str| {
        env.cmd()
            .args(["--identity-file", alice_id.to_str().unwrap()])
            .args(["export", "--member", "alice", "--out"])
            .arg(env.p(out))
            .output()
            .unwrap()
    };
    let o = as_alice("first.tar");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::remove_dir_all(env.repo().join("log")).unwrap();
    let o = as_alice("second.tar");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{err}");
    assert!(err.contains("POSSIBLE ROLLBACK"), "{err}");
    assert!(err.contains("the export is whole"), "{err}");
    assert!(env.p("second.tar").metadata().unwrap().len() > 0);
}
