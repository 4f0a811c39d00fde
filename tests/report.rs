//! The transparency report (`coop report`): a repository with two members and two sites, a
//! week of job history (the agent's runs, dated with `COOP_TEST_NOW`), an admin's export.
//! The figures are checked against `coop usage`, the configured costs, the keyrings, and
//! `--member alice` against everything of bob's. tests/report_browser.sh loads the page in
//! a real browser.

use crate::common;

use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

const DAY: i64 = 86_400;

struct Coop {
    env: Env,
    config: PathBuf,
    alice_id: PathBuf,
    bob_pub: String,
}

fn config_text(env: &Env, language: &str) -> String {
    format!(
        r#"[site]
name = "hackspace"
repo = "{repo}"
identity_file = "{id}"
cache_dir = "{cache}"

[[peer]]
name = "rented-vm"
repo = "{replica}"

[[job]]
name = "services"
schedule = "0 3 * * *"
paths = ["{svc}"]

[[job]]
name = "members"
schedule = "30 3 * * *"
members = "all"
paths = ["{data}/{{member}}/files"]

[cooperative]
name = "Hackspace <Kollektiv> & Co eG"
legal_form = "eingetragene Genossenschaft"
language = "{language}"
currency = "EUR"
balance = 1234.56
balance_date = "2026-03-31"
fixed_share_percent = 20

[[cooperative.site]]
name = "hackspace"
provider = "Hackspace Leipzig e.V., own hardware"
location = "Leipzig, DE"
energy_source = "Polarstern (hydro)"
renewable = true
cpu_watts = 12
costs = {{ hardware = 8.50, power = 6.20, internet = 0.00 }}

[[cooperative.site]]
name = "rented-vm"
provider = "Hetzner Online GmbH, CX22"
location = "Falkenstein, DE"
energy_source = "Hetzner (hydro and wind)"
renewable = true
costs = {{ hosting = 4.51, storage-box = 3.81, domain = 1.00 }}
"#,
        repo = env.repo().display(),
        id = env.p("config/coop/identity.txt").display(),
        cache = env.p("agent-cache").display(),
        replica = env.p("replica").display(),
        svc = env.p("services").display(),
        data = env.p("data").display(),
    )
}

/// The configured costs, summed by hand.
const COSTS: f64 = 8.50 + 6.20 + 0.00 + 4.51 + 3.81 + 1.00;

fn run_job(c: &Coop, job: &str, at: i64) {
    let o = c
        .env
        .cmd()
        .env("COOP_TEST_NOW", at.to_string())
        .args([
            "agent",
            "--config",
            c.config.to_str().unwrap(),
            "--once",
            job,
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "agent --once {job}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Two members (alice with an age key and a quota, bob with an SSH key), two sites, a week
/// of daily runs of a services job and a per-member job, and an admin's export of alice.
fn setup() -> Coop {
    let env = Env::new();
    let (alice_id, alice_rcpt) = age_identity(&env, "alice");
    let (_bob_key, bob_pub) = ssh_key(&env, "bob_ed25519");
    env.ok(&[
        "member",
        "add",
        "alice",
        "--recipient",
        &alice_rcpt,
        "--quota",
        "2GB",
    ]);
    env.ok(&["member", "add", "bob", "--recipient", &bob_pub]);
    fs::create_dir_all(env.p("services")).unwrap();
    for m in ["alice", "bob"] {
        fs::create_dir_all(env.p(&format!("data/{m}/files"))).unwrap();
    }
    let config = env.p("agent.toml");
    fs::write(&config, config_text(&env, "en")).unwrap();
    let c = Coop {
        env,
        config,
        alice_id,
        bob_pub,
    };
    let now = chrono::Utc::now().timestamp();
    for day in 0..7u64 {
        let at = now - (6 - day as i64) * DAY - 3600;
        let e = &c.env;
        fs::write(
            e.p(&format!("services/dump-{day}.sql")),
            pseudo_random(40_000, 10 + day),
        )
        .unwrap();
        fs::write(
            e.p(&format!("data/alice/files/photo-{day}.jpg")),
            pseudo_random(120_000, 100 + day),
        )
        .unwrap();
        if day % 2 == 0 {
            fs::write(
                e.p(&format!("data/bob/files/note-{day}.md")),
                pseudo_random(30_000, 200 + day),
            )
            .unwrap();
        }
        run_job(&c, "services", at);
        run_job(&c, "members", at + 1800);
    }
    // An admin reads alice's data: a logged access.
    c.env.ok(&[
        "export",
        "--member",
        "alice",
        "--out",
        c.env.p("alice.tar").to_str().unwrap(),
        "--reason",
        "member-request",
    ]);
    c
}

fn report(c: &Coop, extra: &[&str]) -> Value {
    let mut args = vec!["report", "--config", c.config.to_str().unwrap()];
    args.extend_from_slice(extra);
    c.env.json(&args)
}

/// tenant → recipients of its keyring, as the identity opens it.
fn keyrings(c: &Coop, identity: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let repo = coop_agent::repo::Repo::open(c.env.repo().to_str().unwrap()).unwrap();
    let ids = coop_agent::keys::load_identities(identity).unwrap();
    repo.keyrings(&ids)
        .unwrap()
        .rings
        .into_iter()
        .map(|r| (r.tenant.clone(), r.recipients.clone()))
        .collect()
}

fn recipients(tenant: &Value) -> Vec<String> {
    tenant["readers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recipient"].as_str().unwrap().to_string())
        .collect()
}

fn tenant<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["readers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == name)
        .unwrap_or_else(|| panic!("no readers of {name}: {}", r["readers"]))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn report_figures_match_usage_costs_keyrings_and_the_log() {
    let c = setup();
    let env = &c.env;
    let r = report(&c, &[]);
    assert_eq!(r["format"], "coop-report/1");
    assert_eq!(r["missing"], serde_json::json!([]), "{}", r["missing"]);

    // Per member stored bytes are `coop usage`'s.
    let usage = env.json(&["usage"]);
    let stored_by_usage: BTreeMap<String, u64> = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_string(),
                t["stored_bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    let members = r["members"].as_array().unwrap();
    assert_eq!(members.len(), 2);
    for m in members {
        let tenant = m["tenant"].as_str().unwrap();
        assert_eq!(
            m["stored_bytes"].as_u64(),
            stored_by_usage.get(tenant).copied(),
            "{tenant}"
        );
        assert!(m["stored_bytes"].as_u64().unwrap() > 0);
        assert_eq!(m["snapshots"], 7, "{m}");
        assert_eq!(m["replicas"][0]["site"], "rented-vm");
        assert_eq!(m["replicas"][0]["lag_objects"], 0, "{m}");
    }
    assert_eq!(
        r["totals"]["stored_bytes"].as_u64().unwrap(),
        stored_by_usage.values().sum::<u64>(),
        "every pack belongs to a tenant usage lists"
    );

    // The cost shares add up to the configured costs, to the cent.
    let k = &r["costs"];
    assert!(close(k["monthly_total"].as_f64().unwrap(), COSTS), "{k}");
    let site_costs: f64 = r["sites"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["monthly_costs"].as_f64())
        .sum();
    assert!(close(site_costs, COSTS), "{}", r["sites"]);
    let shares: f64 = k["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["monthly"].as_f64().unwrap())
        .sum();
    assert!(
        close(shares, COSTS),
        "shares {shares} != costs {COSTS}: {k}"
    );
    assert_eq!(k["unallocated"].as_f64(), Some(0.0));
    let price = k["price_per_gb_month"].as_f64().unwrap();
    let expected_price = COSTS * 0.8 / (k["stored_bytes"].as_f64().unwrap() / 1e9);
    assert!(
        (price - expected_price).abs() / expected_price < 1e-3,
        "{price} {expected_price}"
    );
    let alice_share = &k["shares"][0];
    assert_eq!(alice_share["member"], "alice");
    assert!(alice_share["at_quota"].as_f64().unwrap() > alice_share["monthly"].as_f64().unwrap());
    assert!(
        close(k["runway_months"].as_f64().unwrap(), 1234.56 / COSTS),
        "{k}"
    );

    // Energy: fourteen runs, each labelled.
    let e = &r["energy"];
    assert_eq!(e["runs"], 14, "{e}");
    assert_eq!(e["runs_without_energy"], 0);
    for run in e["per_run"].as_array().unwrap() {
        let m = run["method"].as_str().unwrap();
        assert!(m == "measured" || m == "estimate", "{run}");
        if m == "estimate" {
            let want = run["cpu_seconds"].as_f64().unwrap() * 12.0 / 3600.0;
            assert!((run["wh"].as_f64().unwrap() - want).abs() < 1e-5, "{run}");
        }
    }
    for j in e["by_job"].as_array().unwrap() {
        assert_eq!(j["runs"], 7, "{j}");
        assert!(["measured", "estimate", "mixed"].contains(&j["method"].as_str().unwrap()));
    }
    assert!(["measured", "estimate", "mixed"].contains(&e["method"].as_str().unwrap()));
    assert!(!e["by_month"].as_array().unwrap().is_empty());
    assert_eq!(e["sites"][0]["site"], "hackspace");
    assert_eq!(e["sites"][0]["renewable"], true);

    // Stored over time: a point per day at least, growing, ending at the store as it is.
    let line = r["stored_over_time"][0]["points"].as_array().unwrap();
    assert!(line.len() >= 7, "{line:?}");
    let bytes: Vec<u64> = line.iter().map(|p| p["bytes"].as_u64().unwrap()).collect();
    assert!(bytes.windows(2).all(|w| w[0] <= w[1]), "{bytes:?}");
    assert_eq!(
        *bytes.last().unwrap(),
        r["totals"]["stored_bytes"].as_u64().unwrap()
    );

    // Readers are exactly the keyrings' recipients.
    let rings = keyrings(&c, &env.p("config/coop/identity.txt"));
    assert_eq!(
        rings.keys().collect::<Vec<_>>(),
        ["coop", "member/alice", "member/bob"]
    );
    for (t, rcpts) in &rings {
        let x = tenant(&r, t);
        assert_eq!(&recipients(x), rcpts, "{t}");
        assert_eq!(x["source"], "keyring");
        assert_eq!(x["storage_sites"], serde_json::json!(["rented-vm"]));
    }
    let bob = tenant(&r, "member/bob");
    assert_eq!(bob["readers"][0]["kind"], "member");
    assert_eq!(bob["readers"][1]["kind"], "admin");
    // The fingerprint is ssh-keygen's.
    let fp = std::process::Command::new("ssh-keygen")
        .args(["-l", "-f", env.p("bob_ed25519.pub").to_str().unwrap()])
        .output()
        .unwrap();
    let fp = String::from_utf8(fp.stdout).unwrap();
    assert_eq!(
        Some(bob["readers"][0]["fingerprint"].as_str().unwrap()),
        fp.split_whitespace().nth(1),
        "{fp}"
    );

    // Accesses: alice's export, by reason, in a verified log; none of bob's.
    let a = &r["accesses"];
    assert_eq!(a["verified"], true, "{a}");
    let alice = &a["members"][0];
    assert_eq!(alice["member"], "alice");
    assert_eq!(alice["total"], 1, "{alice}");
    assert_eq!(alice["by_reason"]["member-request"], 1);
    assert_eq!(alice["entries"][0]["event"], "export");
    assert_eq!(a["members"][1]["total"], 0);

    // --member alice: nothing of bob's, in the JSON or the page.
    let bob_key = c.bob_pub.split_whitespace().nth(1).unwrap().to_string();
    let bob_fp = bob["readers"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let page = env.p("page-alice");
    let o = env.ok(&[
        "--json",
        "report",
        "--config",
        c.config.to_str().unwrap(),
        "--member",
        "alice",
        "--html",
        page.to_str().unwrap(),
    ]);
    let only: Value = serde_json::from_str(&o).unwrap();
    let html = fs::read_to_string(page.join("index.html")).unwrap();
    for (what, text) in [("JSON", &o), ("HTML", &html)] {
        for bad in ["bob", &bob_key, &bob_fp] {
            assert!(!text.contains(bad), "the {what} for alice contains {bad:?}");
        }
        assert!(text.contains("alice"), "{what}");
    }
    assert_eq!(only["members"].as_array().unwrap().len(), 1);
    assert_eq!(only["costs"]["shares"].as_array().unwrap().len(), 1);
    // Cooperative-wide parts stay.
    assert_eq!(only["totals"], r["totals"]);
    assert_eq!(only["costs"]["monthly_total"], r["costs"]["monthly_total"]);
    assert_eq!(only["costs"]["shares"][0], r["costs"]["shares"][0]);
    assert_eq!(only["sites"], r["sites"]);
    assert_eq!(only["stored_over_time"].as_array().unwrap().len(), 2);

    // The page: self-contained, escaped, for phones and print.
    let full = env.p("page");
    env.ok(&[
        "report",
        "--config",
        c.config.to_str().unwrap(),
        "--html",
        full.to_str().unwrap(),
    ]);
    let html = fs::read_to_string(full.join("index.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("name=\"viewport\"") && html.contains("@media print"));
    assert!(html.contains("Hackspace &lt;Kollektiv&gt; &amp; Co eG"));
    assert!(!html.contains("<Kollektiv>"));
    for bad in [
        "<script", "src=", "url(", "@import", "<link", "http://", "https://",
    ] {
        assert!(!html.contains(bad), "the page contains {bad:?}");
    }
    assert!(html.matches("href=\"").count() == html.matches("href=\"#").count());
    assert!(html.matches("<svg").count() >= 4, "charts");
    for name in ["alice", "bob", "hackspace", "rented-vm"] {
        assert!(html.contains(name), "{name}");
    }
    assert!(html.contains("lang=\"en\"") && html.contains("Transparency report"));

    // The same page in German.
    fs::write(&c.config, config_text(env, "de")).unwrap();
    env.ok(&[
        "report",
        "--config",
        c.config.to_str().unwrap(),
        "--html",
        full.to_str().unwrap(),
    ]);
    let html = fs::read_to_string(full.join("index.html")).unwrap();
    assert!(html.contains("lang=\"de\"") && html.contains("Transparenzbericht"));
    assert!(html.contains("Wer was lesen kann"));

    // After a recovery split, a member's readers are their own keys and 2 of 3 admins.
    let others: Vec<(std::path::PathBuf, String)> = ["ben", "cleo"]
        .iter()
        .map(|n| age_identity(env, n))
        .collect();
    env.add_admin_persons(
        None,
        "anna",
        &[("ben", &others[0].0), ("cleo", &others[1].0)],
    );
    let own = public_of(&env.p("config/coop/identity.txt"));
    let admins: Vec<String> = [
        format!("anna={own}"),
        format!("ben={}", others[0].1),
        format!("cleo={}", others[1].1),
    ]
    .to_vec();
    let mut init = vec!["recovery", "init", "--threshold", "2"];
    for a in &admins {
        init.extend(["--admin", a.as_str()]);
    }
    env.ok(&init);
    let r = report(&c, &[]);
    let alice = tenant(&r, "member/alice");
    assert_eq!(alice["source"], "registry", "{alice}");
    assert_eq!(
        alice["recovery"]["description"],
        "one admin asks and 2 approve, of 3 admins: anna, ben, cleo"
    );
    let own = keyrings(&c, &c.alice_id);
    assert_eq!(recipients(alice), own["member/alice"]);
    assert_eq!(alice["readers"][1]["kind"], "recovery-split");
}

#[test]
fn without_a_config_the_report_says_what_is_missing() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    let src = env.p("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(10_000, 3)).unwrap();
    env.ok(&["backup", "--tenant", "member/alice", src.to_str().unwrap()]);
    let r = env.json(&["report"]);
    let missing: Vec<&str> = r["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["section"].as_str().unwrap())
        .collect();
    for s in [
        "config",
        "cooperative",
        "sites",
        "costs",
        "runway",
        "energy",
    ] {
        assert!(missing.contains(&s), "{s} not in {missing:?}");
    }
    let costs = r["missing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["section"] == "costs")
        .unwrap();
    assert!(costs["keys"]
        .to_string()
        .contains("[[cooperative.site]] costs"));
    assert!(r["costs"].is_null() && r["energy"].is_null());
    // What the repository alone tells is there.
    let usage = env.json(&["usage"]);
    let alice_usage = usage
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tenant"] == "member/alice")
        .unwrap();
    assert_eq!(r["members"][0]["name"], "alice");
    assert_eq!(r["members"][0]["stored_bytes"], alice_usage["stored_bytes"]);
    assert_eq!(tenant(&r, "member/alice")["readers"][0]["recipient"], alice);
    assert_eq!(r["accesses"]["verified"], true);
    // The text form names the keys too; an unknown member is "not found".
    let text = env.ok(&["report"]);
    assert!(text.contains("[cooperative] currency"), "{text}");
    let o = env.coop(&["report", "--member", "zoe"]);
    assert_eq!(
        o.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Issue 26 finding 7: on a site whose agent holds a writer key (OPERATOR.md section 1), the
/// report run with that key shows each member's last backup from the snapshots it can list
/// and the backup entries of the log, "never" only for a member with no snapshot at all.
#[test]
fn a_writer_key_report_shows_last_backups_not_never() {
    let env = Env::new();
    for m in ["alice", "bob", "carol"] {
        let (_, r) = age_identity(&env, m);
        env.ok(&["member", "add", m, "--recipient", &r]);
    }
    let key = env.p("agent.key");
    env.ok(&[
        "key",
        "export-writer",
        "--name",
        "hackspace",
        "--out",
        key.to_str().unwrap(),
    ]);
    let k = key.to_str().unwrap();
    let before = chrono::Utc::now() - chrono::Duration::seconds(2);
    for (m, runs) in [("alice", 2), ("bob", 1)] {
        let d = env.p(&format!("data/{m}"));
        fs::create_dir_all(&d).unwrap();
        for i in 0..runs {
            fs::write(d.join(format!("f{i}")), pseudo_random(10_000, i)).unwrap();
            env.ok(&[
                "--writer-key",
                k,
                "backup",
                "--tenant",
                &format!("member/{m}"),
                d.to_str().unwrap(),
            ]);
        }
    }
    let r = env.json(&["--writer-key", k, "report"]);
    let member = |n: &str| {
        r["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == n)
            .unwrap_or_else(|| panic!("no {n}: {r}"))
            .clone()
    };
    for n in ["alice", "bob"] {
        let m = member(n);
        let t = m["last_backup"]
            .as_str()
            .unwrap_or_else(|| panic!("{n} has backups: {m}"));
        let t = chrono::DateTime::parse_from_rfc3339(t).unwrap();
        assert!(t >= before && t <= chrono::Utc::now(), "{n}: {m}");
    }
    let carol = member("carol");
    assert!(carol["last_backup"].is_null(), "{carol}");
    assert_eq!(carol["snapshots"], 0, "{carol}");
    // The renderers: a time for alice and bob, "never" only for carol.
    let text = env.ok(&["--writer-key", k, "report"]);
    for line in text.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        match name {
            "alice" | "bob" => assert!(
                line.split_whitespace().any(|t| {
                    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").is_ok()
                }),
                "{line}"
            ),
            "carol" => assert!(line.contains("never"), "{line}"),
            _ => {}
        }
    }
    let dir = env.p("page");
    env.ok(&["--writer-key", k, "report", "--html", dir.to_str().unwrap()]);
    let html = fs::read_to_string(dir.join("index.html")).unwrap();
    assert_eq!(html.matches(">never<").count(), 1, "only carol: {html}");
}

/// Issue 30 item 2: the published setup, generated from the example config of the
/// hackspace site (its paths pointed at this test's repository): every job and site is on the
/// page, with what it backs up, leaves out and keeps, and no secret, address, command, key
/// path or member name is.
#[test]
fn the_setup_page_shows_every_job_and_site_and_no_secret() {
    let env = Env::new();
    let (_, alice) = age_identity(&env, "alice");
    env.ok(&["member", "add", "alice", "--recipient", &alice]);
    env.ok(&["admin", "add", "anna"]);
    let example = fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../packaging/examples/hackspace.toml"),
    )
    .unwrap();
    let id = env.p("config/coop/identity.txt");
    let text = example
        .replace(
            "\"/srv/coop/repo\"",
            &format!("\"{}\"", env.repo().display()),
        )
        .replace(
            "\"/etc/coop/identity.txt\"",
            &format!("\"{}\"", id.display()),
        )
        .replace(
            "\"/var/cache/coop\"",
            &format!("\"{}\"", env.p("agent-cache").display()),
        )
        .replace(
            "\"/var/lib/prometheus/node-exporter/coop.prom\"",
            &format!("\"{}\"", env.p("coop.prom").display()),
        );
    let cfg = env.p("agent.toml");
    fs::write(&cfg, &text).unwrap();
    let dir = env.p("setup");
    let v = env.json(&[
        "report",
        "--config",
        cfg.to_str().unwrap(),
        "--setup",
        "--html",
        dir.to_str().unwrap(),
    ]);
    let page = fs::read_to_string(dir.join("index.html")).unwrap();
    for job in ["forgejo", "synapse", "hedgedoc", "members"] {
        assert!(
            page.contains(&format!("<h3>{job}</h3>")),
            "job {job} missing"
        );
    }
    for site in [
        "hackspace",
        "rented-vm",
        "annas-pi",
        "Polarstern",
        "Falkenstein",
    ] {
        assert!(page.contains(site), "{site} missing");
    }
    for shown in [
        "/var/lib/forgejo",
        "forgejo.dump",
        "remote_content",
        "keep 7 daily, 5 weekly, 12 monthly",
        "/srv/nextcloud/data/{member}/files",
        "anna",
        "age (X25519",
        "Caretaker: Ben &lt;ben@kollektiv.example&gt;",
    ] {
        assert!(page.contains(shown), "{shown:?} missing from the page");
    }
    assert_eq!(v["jobs"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(
        v["jobs"][0]["caretaker"], "Anna <anna@kollektiv.example>",
        "{v}"
    );
    assert_eq!(v["jobs"][3]["tenant"], "each member");
    // Nothing secret or internal: credentials, endpoints, repository addresses, commands,
    // the healthcheck URL, key and cache paths, member names.
    let repo_path = env.repo();
    let secrets = [
        "secret_access_key",
        "GK…",
        "garage.example.coop",
        "pi.example.coop",
        "s3://",
        "hc-ping.com",
        "runuser -u postgres -- pg_dump -Fc forgejo",
        "runuser -u www-data",
        "systemctl stop forgejo",
        "occ user:export",
        "identity.txt",
        "agent-cache",
        "coop.prom",
        repo_path.to_str().unwrap(),
        "alice",
        "@example.coop",
    ];
    let json = v.to_string();
    for s in secrets {
        assert!(!page.contains(s), "the page shows {s:?}");
        assert!(!json.contains(s), "the JSON shows {s:?}");
    }
    // The page fetches nothing.
    for tag in ["<script", "<link", "<img", "src=", "http://", "https://"] {
        assert!(!page.contains(tag), "the page holds {tag}");
    }
}
