//! `coop config init`: a site's agent.toml planned from the arguments, rendered (the same
//! code renders the packaged example) and written without overwriting anything but that
//! unchanged example.

use super::{InitArgs, DEFAULT_CACHE, DEFAULT_CONFIG, DEFAULT_IDENTITY, DEFAULT_REPO};
use crate::global::Global;
use anyhow::Result;
use coop_agent::Error;
use serde::Serialize;
use std::path::Path;

/// The key a config names.
enum Key {
    Identity(String),
    Writer(String),
}

/// What `config init` writes.
struct Plan {
    site: String,
    repo: String,
    key: Key,
    /// (name, URL)
    peers: Vec<(String, String)>,
    out: String,
    /// The package's /etc/coop/agent.toml rather than one written for a site.
    packaged: bool,
}

/// The config the Debian package installs as /etc/coop/agent.toml (`coop __package-assets`
/// writes it). Rendered by the same code as `config init`, so the two never drift, and
/// `config init` recognises it (unchanged) as safe to replace.
pub fn packaged_example() -> String {
    render(&Plan {
        site: "localhost".into(),
        repo: DEFAULT_REPO.into(),
        key: Key::Identity(DEFAULT_IDENTITY.into()),
        peers: Vec::new(),
        out: DEFAULT_CONFIG.into(),
        packaged: true,
    })
}

fn invalid(what: String) -> anyhow::Error {
    Error::Invalid { what }.into()
}

/// A TOML basic string. JSON's string escapes are a subset of TOML's, and the inputs carry no
/// control characters (checked before), so serde_json's quoting is valid TOML.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{what} {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )))
    }
}

fn check_text(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} {s:?} is empty or has control characters"
        )));
    }
    Ok(())
}

/// A store location as the agent will read it: URLs as given, a path made absolute (the
/// agent does not run in the directory `config init` ran in).
fn location(what: &str, url: &str) -> Result<String> {
    check_text(what, url)?;
    if url.starts_with("s3://") || url.starts_with("file://") {
        return Ok(url.to_string());
    }
    if url.contains("://") {
        return Err(invalid(format!(
            "{what} {url:?}: use s3://BUCKET/PREFIX, file://PATH or a directory"
        )));
    }
    absolute(what, Path::new(url))
}

fn absolute(what: &str, p: &Path) -> Result<String> {
    let abs =
        std::path::absolute(p).map_err(|e| invalid(format!("{what} {}: {e}", p.display())))?;
    let s = abs
        .to_str()
        .ok_or_else(|| invalid(format!("{what} {}: not UTF-8", p.display())))?
        .to_string();
    check_text(what, &s)?;
    Ok(s)
}

/// A peer's name from its URL: the bucket of s3://BUCKET/…, else the last path component.
fn peer_name(url: &str) -> String {
    let name = match url.strip_prefix("s3://") {
        Some(rest) => rest.split('/').next().unwrap_or_default().to_string(),
        None => Path::new(url.strip_prefix("file://").unwrap_or(url))
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "peer".into()
    } else {
        name
    }
}

fn plan(g: &Global, a: &InitArgs) -> Result<Plan> {
    check_name("site name", &a.site)?;
    let repo = location("--repo", g.repo.as_deref().unwrap_or(DEFAULT_REPO))?;
    let key = match (&g.identity_file, &g.writer_key) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "give --identity-file or --writer-key, not both".into(),
            ))
        }
        (Some(i), None) => Key::Identity(absolute("--identity-file", i)?),
        (None, Some(w)) => Key::Writer(absolute("--writer-key", w)?),
        (None, None) => Key::Identity(DEFAULT_IDENTITY.into()),
    };
    let mut peers: Vec<(String, String)> = Vec::new();
    for spec in &a.peers {
        // NAME=URL, unless what precedes '=' is already part of a URL or path.
        let (name, url) = match spec.split_once('=') {
            Some((n, u)) if !n.contains(['/', ':']) => (n.to_string(), u),
            _ => (String::new(), spec.as_str()),
        };
        let url = location("--peer", url)?;
        let name = if name.is_empty() {
            let base = peer_name(&url);
            let mut name = base.clone();
            let mut i = 2;
            while peers.iter().any(|(n, _)| *n == name) {
                name = format!("{base}-{i}");
                i += 1;
            }
            name
        } else {
            check_name("peer name", &name)?;
            if peers.iter().any(|(n, _)| *n == name) {
                return Err(invalid(format!("two peers are named {name:?}")));
            }
            name
        };
        if url == repo {
            return Err(invalid(format!(
                "peer {name:?} is this site's own repository {url}"
            )));
        }
        peers.push((name, url));
    }
    Ok(Plan {
        site: a.site.clone(),
        repo,
        key,
        peers,
        out: absolute("--out", &a.out)?,
        packaged: false,
    })
}

/// The commented config.
fn render(p: &Plan) -> String {
    let mut t = String::new();
    render_header(&mut t, p);
    render_site(&mut t, p);
    render_peers(&mut t, p);
    render_jobs(&mut t, p);
    t
}

/// The header: what the file is and how to check it.
fn render_header(t: &mut String, p: &Plan) {
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    if p.packaged {
        line("# coop agent configuration: the packaged example. It backs up /etc into a local repository.");
        line("#");
        line("# Write this machine's own with `coop config init --site NAME [--repo URL] [--peer URL]`");
        line("# (it replaces this file while it is unchanged), or edit this one. Then:");
        line(&format!(
            "#   coop init --repo {} --identity-file {DEFAULT_IDENTITY}",
            p.repo
        ));
        line(&format!("#   coop config check {}", p.out));
        line("#   systemctl enable --now coop-agent");
    } else {
        line(&format!(
            "# coop agent configuration for site {}, written by `coop config init`.",
            p.site
        ));
        line(&format!(
            "# Check it with `coop config check {}`: every error names its line.",
            p.out
        ));
    }
    line("#");
    line("# Reference: man coop-agent, /usr/share/doc/coop/OPERATOR.md (docs/OPERATOR.md); whole");
    line("# examples in /usr/share/coop/examples/ (packaging/examples/); service jobs: coop recipe list.");
    line("");
}

/// `[site]`: the name, the repository, the key and the optional settings.
fn render_site(t: &mut String, p: &Plan) {
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("[site]");
    line("# The host every snapshot of this site carries.");
    line(&format!("name = {}", quote(&p.site)));
    line("# This site's own repository: a directory or s3://BUCKET/PREFIX. coop-agent.service may write");
    line("# only to /var/lib/coop, /var/cache/coop and /srv/coop; for another directory (a backup disk),");
    line("# `systemctl edit coop-agent` and add [Service] ReadWritePaths=DIR.");
    line(&format!("repo = {}", quote(&p.repo)));
    if p.repo.starts_with("s3://") {
        line("# Credentials (or AWS_* variables in the unit's environment); allow_http for plain http.");
        line("# s3 = { endpoint = \"https://garage.example.coop\", region = \"garage\", access_key_id = \"…\", secret_access_key = \"…\" }");
    }
    match &p.key {
        Key::Identity(i) => {
            line("# The key: an identity reads and writes (retention needs it). A writer key only adds backups,");
            line("# so a stolen machine exposes nothing already stored; make one on an admin's machine with");
            line(&format!(
                "# `coop key export-writer --repo {} --name {} --out writer.key` and use instead:",
                p.repo, p.site
            ));
            line("#   writer_key = \"/etc/coop/writer.key\"");
            line(&format!("identity_file = {}", quote(i)));
        }
        Key::Writer(w) => {
            line("# The key: a writer key only adds backups, so a stolen machine exposes nothing already");
            line("# stored. Retention (forget, prune) runs where an identity is.");
            line(&format!("writer_key = {}", quote(w)));
        }
    }
    line("# Catalog, job history, locks, and what this site has seen at each store.");
    line(&format!("cache_dir = {}", quote(DEFAULT_CACHE)));
    line("# Prometheus node-exporter textfile, written after every job:");
    line("# metrics_file = \"/var/lib/prometheus/node-exporter/coop.prom\"");
    line("# Pinged with /start, then success or /fail (healthchecks.io style):");
    line("# healthcheck_url = \"https://hc-ping.com/your-uuid\"");
    line("# A random delay added to each scheduled run, spreading load:");
    line("# jitter = \"10m\"");
    line("# How often access-log growth goes to the peers and other sites' logs are witnessed:");
    line("# log_sync_interval = \"60s\"");
    line("");
}

/// The peers (commented examples when none is given).
fn render_peers(t: &mut String, p: &Plan) {
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("# Other sites' stores, each keeping an encrypted replica of this repository that it cannot");
    line("# read. A peer that is down only delays its copy: it is retried and caught up.");
    if p.peers.is_empty() {
        line("# [[peer]]");
        line("# name = \"rented-vm\"");
        line(&format!("# repo = \"s3://coop-replicas/{}\"", p.site));
        line("# s3 = { endpoint = \"https://garage.example.coop\", region = \"garage\", access_key_id = \"…\", secret_access_key = \"…\" }");
        line("# upload_limit = \"500KiB\"                  # per second: leave a DSL line usable");
    }
    for (name, url) in &p.peers {
        line("[[peer]]");
        line(&format!("name = {}", quote(name)));
        line(&format!("repo = {}", quote(url)));
        if url.starts_with("s3://") {
            line("# s3 = { endpoint = \"https://garage.example.coop\", region = \"garage\", access_key_id = \"…\", secret_access_key = \"…\" }");
        } else {
            line("# A directory: coop-agent.service must be able to write it (ReadWritePaths, see [site]).");
        }
        line("# upload_limit = \"500KiB\"                  # per second: leave a DSL line usable");
        line("# retry_max = \"1h\"                         # longest wait between retries while it is down");
        line("");
    }
    if p.peers.is_empty() {
        line("");
    }
}

/// The jobs: /etc, and a commented service job.
fn render_jobs(t: &mut String, p: &Plan) {
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("# Jobs. `schedule` is cron (minute hour day month weekday) in UTC. Add a service's job with");
    line(&format!(
        "#   coop recipe show forgejo >> {}        (coop recipe list names them all)",
        p.out
    ));
    line("# and see man coop-agent for paths, exclude, commands, before/after hooks and members.");
    line("[[job]]");
    line("name = \"etc\"");
    line("schedule = \"0 3 * * *\"");
    line("# This machine's configuration: every machine has it, and it is small.");
    line("paths = [\"/etc\"]");
    match &p.key {
        Key::Identity(_) => {
            line("retention = { keep_daily = 7, keep_weekly = 5, keep_monthly = 12 }")
        }
        Key::Writer(_) => line(
            "# retention = { keep_daily = 7, keep_weekly = 5, keep_monthly = 12 }   # where an identity is",
        ),
    }
    line("");
    line("# [[job]]");
    line("# name = \"forgejo\"");
    line("# schedule = \"30 3 * * *\"");
    line("# before = [\"systemctl stop forgejo\"]      # a failing hook fails the job; `after` still runs");
    line("# after = [\"systemctl start forgejo\"]");
    line("# paths = [\"/var/lib/forgejo\", \"/etc/forgejo\"]");
    line("# exclude = [\"indexers\", \"queues\", \"tmp\", \"log\"]   # without a leading / at any depth");
    line("# commands = [{ command = \"runuser -u postgres -- pg_dump -Fc forgejo\", filename = \"forgejo.dump\" }]");
    line("# retention = { keep_daily = 7, keep_weekly = 5, keep_monthly = 12, prune = true }");
}

/// Writes `text` to `path`: a new file (mode 0600: a config may hold store credentials),
/// or in place of the packaged example if that is what is there, unchanged.
fn write_config(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e: std::io::Error| -> anyhow::Error {
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
        .into()
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
    }
    let replace = match std::fs::read(path) {
        Ok(old) if old == packaged_example().as_bytes() => true,
        Ok(_) => {
            return Err(invalid(format!(
                "{} already exists; coop config init does not overwrite a config (move it away, or write elsewhere with --out)",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(e)),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true).mode(0o600);
    if !replace {
        // create_new: a file that appeared meanwhile is not overwritten either.
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                invalid(format!("{} already exists", path.display()))
            } else {
                io(e)
            }
        })?;
        return f
            .write_all(text.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(io);
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.coop-init-{}", std::process::id()));
    let res = opts.open(&tmp).and_then(|mut f| {
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map_err(io)
}

/// `config init --json`: the config written, its site, repository and peers, and the
/// commands to run next.
#[derive(Serialize)]
struct Written<'a> {
    config: &'a str,
    site: &'a str,
    repo: &'a str,
    peers: Vec<Peer<'a>>,
    next: Vec<&'a str>,
}

#[derive(Serialize)]
struct Peer<'a> {
    name: &'a str,
    repo: &'a str,
}

pub(super) fn init(g: &Global, a: InitArgs) -> Result<i32> {
    let p = g.printer();
    let plan = plan(g, &a)?;
    let text = render(&plan);
    // What we write must be a config the agent reads (this catches a bug here, not a mistake
    // of the admin's, which the checks above report).
    if let Err(problems) = coop_agent::settings::Settings::resolve(&text) {
        let list: Vec<String> = problems.iter().map(|x| x.to_string()).collect();
        anyhow::bail!("config init made an invalid config: {}", list.join("; "));
    }
    let out = Path::new(&plan.out);
    write_config(out, &text)?;

    let mut next: Vec<(String, String)> = Vec::new();
    let local_repo_exists = !plan.repo.starts_with("s3://")
        && Path::new(plan.repo.strip_prefix("file://").unwrap_or(&plan.repo))
            .join(coop_agent::layout::CONFIG)
            .exists();
    match &plan.key {
        Key::Identity(i) if !local_repo_exists => next.push((
            format!("coop init --repo {} --identity-file {i}", plan.repo),
            "creates the repository (and the identity if there is none: keep a copy of it offline)"
                .into(),
        )),
        Key::Writer(w) if !Path::new(w).exists() => next.push((
            format!(
                "coop key export-writer --repo {} --name {} --out writer.key",
                plan.repo, plan.site
            ),
            format!("on an admin's machine, with the repository's identity; copy it here to {w}, mode 0600"),
        )),
        _ => {}
    }
    next.push((
        format!("coop config check {}", plan.out),
        "every error names its line; a peer that is down is only a warning".into(),
    ));
    if plan.out == DEFAULT_CONFIG {
        next.push((
            "systemctl enable --now coop-agent".into(),
            "runs each job on its schedule and replicates to every peer".into(),
        ));
    } else {
        next.push((
            format!("coop agent --config {} --once etc", plan.out),
            format!("a first backup now (coop-agent.service reads {DEFAULT_CONFIG})"),
        ));
    }
    if next.len() < 3 {
        next.push((
            "coop status".into(),
            "each job's last and next run, each peer's lag".into(),
        ));
    }
    if g.json {
        p.json_sorted(&Written {
            config: &plan.out,
            site: &plan.site,
            repo: &plan.repo,
            peers: plan
                .peers
                .iter()
                .map(|(name, repo)| Peer { name, repo })
                .collect(),
            next: next.iter().map(|(c, _)| c.as_str()).collect(),
        })?;
    } else {
        p.note(format!(
            "Wrote {} (site {}, repository {}, {} peer(s); job \"etc\" backs up /etc daily). Next:",
            plan.out,
            plan.site,
            plan.repo,
            plan.peers.len()
        ));
        for (cmd, why) in &next {
            p.data(format!("  {cmd}    # {why}"))?;
        }
    }
    Ok(crate::exit::OK)
}
