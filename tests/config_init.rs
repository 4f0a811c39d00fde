//! `coop config init`: the config it writes passes `coop config check` once the commands it
//! prints have run; it never overwrites a config, except the packaged example while that is
//! unchanged; the packaged example (`coop __package-assets`) passes the check once its
//! repository and identity exist.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

struct T {
    dir: tempfile::TempDir,
}

impl T {
    fn new() -> Self {
        let t = T {
            dir: tempfile::tempdir().unwrap(),
        };
        fs::create_dir_all(t.p("home")).unwrap();
        t
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn s(&self, rel: &str) -> String {
        self.p(rel).display().to_string()
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_coop"));
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.p("home"))
            .env("XDG_CONFIG_HOME", self.p("config"))
            .env("XDG_CACHE_HOME", self.p("cache"))
            // An S3 peer fails at once (nothing listens on port 9), never waits on a network.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_REGION", "x")
            .env("AWS_ACCESS_KEY_ID", "a")
            .env("AWS_SECRET_ACCESS_KEY", "b")
            .current_dir(self.dir.path());
        c
    }
    fn coop(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }
    /// Runs a `coop …` line that `config init` printed (paths here have no spaces).
    fn run_printed(&self, line: &str) -> Output {
        let cmd = line.split("    #").next().unwrap().trim();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(words[0], "coop", "{line}");
        self.coop(&words[1..])
    }
    /// The packaged /etc/coop/agent.toml, as scripts/package.sh gets it.
    fn packaged_example(&self) -> String {
        let o = self.coop(&["__package-assets", &self.s("assets")]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert!(self.p("assets/man/coop-config-init.1").exists());
        assert!(self.p("assets/completions/coop").exists());
        fs::read_to_string(self.p("assets/agent.toml")).unwrap()
    }
}

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

fn stdout_lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.to_string())
        .collect()
}

/// The errors (not warnings) `config check` listed.
fn errors(o: &Output) -> Vec<String> {
    stdout_lines(o)
        .into_iter()
        .filter(|l| l.contains(":line ") && !l.contains("warning:"))
        .collect()
}

#[test]
fn init_writes_a_config_that_passes_check_after_the_printed_commands() {
    let t = T::new();
    let out = t.s("etc/agent.toml");
    let o = t.coop(&[
        "config",
        "init",
        "--site",
        "hackspace",
        "--repo",
        "repo", // relative: written absolute
        "--identity-file",
        &t.s("identity.txt"),
        "--peer",
        &format!("pi={}", t.s("pi-store")),
        "--peer",
        "s3://coop-replicas/hackspace",
        "--out",
        &out,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let next = stdout_lines(&o);
    assert_eq!(next.len(), 3, "three next commands: {}", text(&o));
    assert!(
        next[0].starts_with(&format!(
            "  coop init --repo {} --identity-file {}",
            t.s("repo"),
            t.s("identity.txt")
        )),
        "{}",
        next[0]
    );
    assert!(next[1].starts_with(&format!("  coop config check {out}")));
    assert!(next[2].starts_with(&format!("  coop agent --config {out} --once etc")));
    let cfg = fs::read_to_string(&out).unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600,
        "a config may hold credentials"
    );
    assert!(cfg.contains("name = \"hackspace\""), "{cfg}");
    assert!(
        cfg.contains(&format!("repo = \"{}\"", t.s("repo"))),
        "{cfg}"
    );
    assert!(cfg.contains("name = \"pi\""), "{cfg}");
    assert!(cfg.contains("name = \"coop-replicas\""), "{cfg}");
    assert!(cfg.contains("paths = [\"/etc\"]"), "{cfg}");
    // Mostly comments: what an admin reads to go on.
    let comments = cfg.lines().filter(|l| l.starts_with('#')).count();
    assert!(comments > 20, "{cfg}");

    // Before the repository exists: exactly the missing identity and repository. (Checked
    // without the S3 peer: reaching a peer that is down takes seconds of retries.)
    let local = t.s("local.toml");
    fs::write(
        &local,
        cfg.replace("s3://coop-replicas/hackspace", &t.s("replicas")),
    )
    .unwrap();
    let o = t.coop(&["config", "check", &local]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let errs = errors(&o);
    assert_eq!(errs.len(), 2, "{}", text(&o));
    assert!(errs
        .iter()
        .any(|e| e.contains("identity.txt does not exist")));
    assert!(errs.iter().any(|e| e.contains("create it with init first")));

    let o = t.run_printed(&next[0]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = t.run_printed(&next[1]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("ok (site hackspace, 1 job(s), 2 peer(s)) with warnings"),
        "{all}"
    );
    assert!(
        all.contains("warning: peer \"coop-replicas\""),
        "the S3 peer is down: a warning: {all}"
    );

    // Never over an existing config.
    let before = fs::read(&out).unwrap();
    let o = t.coop(&["config", "init", "--site", "other", "--out", &out]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(text(&o).contains("already exists"), "{}", text(&o));
    assert_eq!(fs::read(&out).unwrap(), before);
}

#[test]
fn init_with_a_writer_key_prints_the_export_and_checks_after_it() {
    let t = T::new();
    // The admin's side: a repository and its identity.
    let o = t.coop(&[
        "init",
        "--repo",
        &t.s("repo"),
        "--identity-file",
        &t.s("admin.txt"),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let out = t.s("agent.toml");
    let o = t.coop(&[
        "--json",
        "config",
        "init",
        "--site",
        "rented-vm",
        "--repo",
        &t.s("repo"),
        "--writer-key",
        &t.s("writer.key"),
        "--out",
        &out,
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let next: Vec<&str> = v["next"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(next.len(), 3, "{v}");
    assert_eq!(
        next[0],
        format!(
            "coop key export-writer --repo {} --name rented-vm --out writer.key",
            t.s("repo")
        )
    );
    let cfg = fs::read_to_string(&out).unwrap();
    assert!(cfg.contains(&format!("writer_key = \"{}\"", t.s("writer.key"))));
    assert!(
        cfg.contains("# retention ="),
        "a writer key cannot forget: {cfg}"
    );
    // As the admin (cwd is the test directory, so writer.key lands where the config says).
    let words: Vec<&str> = next[0].split_whitespace().collect();
    let admin = t.s("admin.txt");
    let mut args = vec!["--identity-file", admin.as_str()];
    args.extend_from_slice(&words[1..]);
    let o = t.coop(&args);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = t.coop(&["config", "check", &out]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("ok (site rented-vm, 1 job(s), 0 peer(s))"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_packaged_example_passes_check_and_init_replaces_it_while_unchanged() {
    let t = T::new();
    let example = t.packaged_example();
    assert!(example.contains("name = \"localhost\""), "{example}");
    assert!(
        example.contains("repo = \"/var/lib/coop/repo\""),
        "{example}"
    );
    assert!(example.contains("identity_file = \"/etc/coop/identity.txt\""));

    // The example, pointed at this test's directories, as on a fresh install: only the
    // repository and identity it names are missing; after `coop init` it passes.
    let local = example
        .replace("/var/lib/coop/repo", &t.s("repo"))
        .replace("/etc/coop/identity.txt", &t.s("identity.txt"))
        .replace("/var/cache/coop", &t.s("agent-cache"));
    fs::write(t.p("local.toml"), &local).unwrap();
    let o = t.coop(&["config", "check", &t.s("local.toml")]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert_eq!(errors(&o).len(), 2, "{}", text(&o));
    let o = t.coop(&[
        "init",
        "--repo",
        &t.s("repo"),
        "--identity-file",
        &t.s("identity.txt"),
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let o = t.coop(&["config", "check", &t.s("local.toml")]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        text(&o).contains("ok (site localhost, 1 job(s), 0 peer(s))\n"),
        "no warnings: {}",
        text(&o)
    );

    // Unchanged, it is replaced (the package installs it where init writes by default) …
    let conf = t.s("etc-coop/agent.toml");
    fs::create_dir_all(t.p("etc-coop")).unwrap();
    fs::write(&conf, &example).unwrap();
    let o = t.coop(&["config", "init", "--site", "pi", "--out", &conf]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let now = fs::read_to_string(&conf).unwrap();
    assert!(now.contains("name = \"pi\""), "{now}");
    assert_eq!(
        fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let leftovers: Vec<_> = fs::read_dir(t.p("etc-coop"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left: {leftovers:?}");
    // … changed by an admin, it is not.
    fs::write(&conf, format!("{example}\n# mine\n")).unwrap();
    let o = t.coop(&["config", "init", "--site", "pi", "--out", &conf]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(fs::read_to_string(&conf).unwrap().ends_with("# mine\n"));
}

#[test]
fn bad_input_is_a_usage_error_and_writes_nothing() {
    let t = T::new();
    let out = t.s("agent.toml");
    for args in [
        vec!["--site", "anna's pi"],
        vec!["--site", ""],
        vec!["--site", "a", "--peer", "ftp://x/y"],
        vec!["--site", "a", "--peer", "p=/x", "--peer", "p=/y"],
        vec!["--site", "a", "--peer", "bad name=/x"],
        vec!["--site", "a", "--repo", "/r", "--peer", "/r"],
        vec!["--site", "a", "--identity-file", "/i", "--writer-key", "/w"],
    ] {
        let mut a = vec!["config", "init", "--out", &out];
        a.extend(args.iter().copied());
        let o = t.coop(&a);
        assert_eq!(code(&o), 2, "{args:?}: {}", text(&o));
        assert!(!t.p("agent.toml").exists(), "{args:?}");
    }
    // Peers without a name are named after their bucket or directory, distinctly.
    let o = t.coop(&[
        "config",
        "init",
        "--site",
        "a",
        "--out",
        &out,
        "--peer",
        "s3://coop/a",
        "--peer",
        "s3://coop/b",
        "--peer",
        "/mnt/usb/coop-copy",
    ]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let cfg = fs::read_to_string(&out).unwrap();
    for n in ["coop", "coop-2", "coop-copy"] {
        assert!(cfg.contains(&format!("name = \"{n}\"")), "{n}: {cfg}");
    }
}
