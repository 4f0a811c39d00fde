//! Shared helpers for subcommands: opening the repository with the right key, sizes, and
//! the snapshot filters every command that takes a snapshot accepts.

use crate::global::Global;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::keys;
use coop_agent::{Access, Error, OpenOptions, Repo};
use std::sync::Arc;

pub fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COOP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .try_init();
}

pub fn repo_url(g: &Global) -> Result<&str> {
    g.repo.as_deref().ok_or_else(|| {
        Error::Invalid {
            what: "no repository given: use --repo PATH (or s3://BUCKET/PREFIX) or set COOP_REPO"
                .into(),
        }
        .into()
    })
}

/// Opens the repository; its index is cached in the cache directory unless `--no-cache`.
pub fn open_repo(g: &Global) -> Result<Repo> {
    Ok(Repo::open_with(
        repo_url(g)?,
        &OpenOptions {
            cache_dir: g.cache_dir.clone(),
            freshness: g.freshness,
            ..Default::default()
        },
    )?)
}

/// The identity to use: --identity-file / COOP_IDENTITY_FILE, else the default file. With
/// --writer-key given, nothing is read with any identity.
pub fn identity_access(g: &Global) -> Result<Access> {
    let path = identity_path(g)?;
    let ids = keys::load_identities(&path)
        .with_context(|| format!("loading identity {}", path.display()))?;
    let person = keys::person_key(&path)?.map(Arc::new);
    Ok(Access::Identity(Arc::new(ids), person))
}

/// The identity file this command reads with: `--identity-file`, else the default one.
pub fn identity_path(g: &Global) -> Result<std::path::PathBuf> {
    if g.writer_key.is_some() {
        return Err(Error::AccessDenied {
            what:
                "--writer-key is given: a writer key cannot read, and no identity is used with it \
                   (drop --writer-key / COOP_WRITER_KEY to read with your identity)"
                    .into(),
        }
        .into());
    }
    match &g.identity_file {
        Some(p) => Ok(p.clone()),
        None => match keys::default_identity_path().filter(|p| p.exists()) {
            Some(p) => Ok(p),
            None => Err(Error::AccessDenied {
                what: "no identity: give --identity-file (or COOP_IDENTITY_FILE); \
                       the default identity file does not exist"
                    .into(),
            }
            .into()),
        },
    }
}

/// Writer key if given, else identity.
pub fn write_access(g: &Global) -> Result<Access> {
    if let Some(p) = &g.writer_key {
        return Ok(Access::Writer(Arc::new(keys::load_writer_key(p)?)));
    }
    identity_access(g)
}

/// A size as every terminal line of coop shows it (the report's text too): `1.50 MiB`.
pub use coop_agent::report::text::bytes;

/// "1 file", "2 files".
pub fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Parses a size like `500KiB`, `2MiB`, `1.5GB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64> {
    coop_agent::settings::parse_size(s).map_err(|what| Error::Invalid { what }.into())
}

/// A store that is not there, reported as "no repository".
pub fn not_found_as_repo(e: coop_agent::store::StoreError, url: &str) -> anyhow::Error {
    if e.is_not_found() {
        Error::RepoNotFound { url: url.into() }.into()
    } else {
        Error::from(e).into()
    }
}

/// Which snapshots `latest` means (restic's filters): the newest one matching all of them.
#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// With `latest`: only snapshots of this host.
    #[arg(long, env = "COOP_SNAPSHOT_HOST")]
    pub host: Option<String>,
    /// With `latest`: only snapshots that include this path (repeatable).
    #[arg(long = "path", env = "COOP_SNAPSHOT_PATH")]
    pub paths: Vec<String>,
    /// With `latest`: only snapshots with this tag (repeatable).
    #[arg(long = "tag", env = "COOP_SNAPSHOT_TAG")]
    pub tags: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> coop_agent::snapshots::Filter {
        coop_agent::snapshots::Filter {
            host: self.host.clone(),
            paths: self.paths.clone(),
            tags: self.tags.clone(),
            within: None,
        }
    }

    /// The filter for `latest` when a path inside the snapshot is wanted: the newest
    /// snapshot that holds that path.
    pub fn holding(&self, path: &str) -> coop_agent::snapshots::Filter {
        let mut f = self.filter();
        if !path.is_empty() {
            f.within = Some(format!("/{}", path.trim_start_matches('/')));
        }
        f
    }
}

/// Shows a snapshot view's warnings (damaged or forged objects, rollback, lag).
pub fn show_warnings(p: &crate::output::Printer, view: &coop_agent::snapshots::View) {
    for w in view.warnings() {
        p.warn(w);
    }
}

/// "snapshot 1a2b3c4d (2026-12-01 03:00:00, host box, /srv/forgejo)", for messages.
pub fn describe(e: &coop_agent::snapshots::Entry) -> String {
    let paths = &e.snapshot.paths;
    let shown = if paths.len() > 3 {
        format!("{} … ({} paths)", paths[..3].join(" "), paths.len())
    } else {
        paths.join(" ")
    };
    format!(
        "snapshot {} ({}, host {}, {shown})",
        e.id.short(),
        local_time(&e.snapshot.time),
        e.snapshot.host,
    )
}

/// An RFC 3339 time in this machine's time zone, to the second.
pub fn local_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

/// A repository opened with an identity, and one snapshot in it.
pub struct Opened {
    pub repo: Repo,
    pub keys: coop_agent::keys::TenantKeys,
    pub entry: coop_agent::snapshots::Entry,
}

/// Opens the repository and resolves `spec` (`latest` narrowed by `filter`, an ID or a
/// prefix), showing the view's warnings.
pub fn open_snapshot(
    g: &Global,
    p: &crate::output::Printer,
    spec: &str,
    filter: &coop_agent::snapshots::Filter,
) -> Result<Opened> {
    let repo = open_repo(g)?;
    let keys = coop_agent::tenant::keys(&repo, &identity_access(g)?, &g.tenant)
        .map_err(|e| crate::commands::snapshots::hint_tenant(g, e))?;
    let view = coop_agent::snapshots::view(&repo, &keys)?;
    show_warnings(p, &view);
    let entry = view.find(spec, filter)?.clone();
    // Said to a person at a terminal; a script reading stdout gets only the data.
    if spec == "latest" && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        p.note(format!("latest is {}", describe(&entry)));
    }
    Ok(Opened { repo, keys, entry })
}

/// A path that is not in a snapshot, named with the snapshot it was looked for in.
pub fn path_not_found(path: &str, e: &coop_agent::snapshots::Entry) -> anyhow::Error {
    Error::NotFound {
        what: format!(
            "path /{} in {} (see `coop ls {}`)",
            path.trim_matches('/'),
            describe(e),
            e.id.short()
        ),
    }
    .into()
}

/// The tenants a maintenance command covers: the one given with --tenant, else every
/// tenant the identity can read (named, so nothing is skipped silently).
pub fn tenants(
    g: &Global,
    repo: &Repo,
    access: &Access,
) -> Result<Vec<coop_agent::keys::TenantKeys>> {
    if g.tenant_given {
        return Ok(vec![coop_agent::tenant::keys(repo, access, &g.tenant)?]);
    }
    let Access::Identity(ids, _) = access else {
        return Ok(vec![coop_agent::tenant::keys(repo, access, &g.tenant)?]);
    };
    let found = repo.keyrings(ids)?;
    let mut out = Vec::new();
    for ring in found.rings {
        let name = ring.tenant.clone();
        match coop_agent::tenant::keys(repo, access, &name) {
            Ok(k) => out.push(k),
            Err(e) => eprintln!(
                "coop: warning: {}",
                crate::output::escape(&format!("tenant {name} skipped: {e}"))
            ),
        }
    }
    for t in found.conflicted {
        eprintln!(
            "coop: warning: tenant {} skipped: two different keyrings claim it (tampering?)",
            crate::output::escape(&t)
        );
    }
    out.sort_by(|a, b| (a.tenant != "coop", &a.tenant).cmp(&(b.tenant != "coop", &b.tenant)));
    if out.is_empty() {
        // Nothing opens: the precise reason (not a recipient, or a damaged keyring).
        return Ok(vec![coop_agent::tenant::keys(repo, access, &g.tenant)?]);
    }
    Ok(out)
}

/// The tenants `prune` (and other upkeep that reads no file) covers: like [`tenants`], and
/// for an admin also every member tenant the identity does not read (after the recovery
/// split), kept up from its snapshots' metadata and inventories (`tenant::upkeep_keys`).
pub fn upkeep_tenants(
    g: &Global,
    repo: &Repo,
    access: &Access,
) -> Result<Vec<coop_agent::keys::TenantKeys>> {
    if g.tenant_given {
        return Ok(vec![coop_agent::tenant::upkeep_keys(
            repo, access, &g.tenant,
        )?]);
    }
    let mut out = tenants(g, repo, access)?;
    let Ok(coop) = coop_agent::tenant::keys(repo, access, "coop") else {
        return Ok(out);
    };
    if coop.reader.is_none() {
        return Ok(out);
    }
    let reg = coop_agent::registry::load(repo, &coop)?.registry;
    for m in &reg.members {
        let name = m.tenant();
        if out.iter().any(|k| k.tenant == name) {
            continue;
        }
        match coop_agent::tenant::upkeep_keys(repo, access, &name) {
            Ok(k) => out.push(k),
            Err(e) => eprintln!(
                "coop: warning: {}",
                crate::output::escape(&format!("tenant {name} skipped: {e}"))
            ),
        }
    }
    Ok(out)
}

/// How an access to a tenant's data is justified and logged (restore, export, dump).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Why this data is read: member-request, incident-response, disaster-recovery,
    /// legal-request or maintenance. Logged with who and when before anything is read;
    /// required to read a member's data as an admin.
    #[arg(long, env = "COOP_REASON")]
    pub reason: Option<String>,
    /// A note for the log entry, encrypted to the tenant (its readers can read it).
    #[arg(long, env = "COOP_DETAIL", requires = "reason")]
    pub detail: Option<String>,
    /// The caretaker who asked for this read (as a job's `caretaker` names them): logged
    /// with the read, for the members to see who asked.
    #[arg(
        long,
        value_name = "NAME",
        env = "COOP_REQUESTED_BY",
        requires = "reason"
    )]
    pub requested_by: Option<String>,
    /// How long to wait for the witnesses' cosignatures before giving up (then nothing is
    /// read, exit 13).
    #[arg(long, default_value = "10m", env = "COOP_LOG_TIMEOUT")]
    pub log_timeout: String,
}

/// `--log-timeout`.
pub fn parse_log_timeout(s: &str) -> std::result::Result<std::time::Duration, Error> {
    coop_agent::settings::parse_duration(s).map_err(|what| Error::Invalid {
        what: format!("--log-timeout: {what}"),
    })
}

/// Logs an access before it happens (the engine decides whether it must be, see
/// `coop_agent::access`): a read of a member's files by anyone but the member goes into the
/// admins' log and waits until the witnesses cosigned it; a member reading their own tenant
/// is not logged.
pub fn log_access(
    g: &Global,
    p: &crate::output::Printer,
    repo: &Repo,
    keys: &mut coop_agent::keys::TenantKeys,
    event: coop_formats::tlog::Event,
    a: &AccessArgs,
    object: Option<String>,
) -> Result<()> {
    use coop_agent::access::{self, Authorized, ReadRequest};
    let admin = coop_agent::tenant::keys(repo, &identity_access(g)?, "coop").ok();
    let reason = a
        .reason
        .as_deref()
        .map(|r| r.parse::<coop_formats::tlog::Reason>())
        .transpose()
        .map_err(|what| Error::Invalid { what })?;
    let timeout = parse_log_timeout(&a.log_timeout)?;
    let req = ReadRequest {
        event,
        reason,
        object,
        detail: a.detail.clone(),
        requested_by: a.requested_by.clone(),
        timeout,
    };
    let done = access::authorize_read(repo, keys, admin.as_ref(), &req, |appended, quorum| {
        if quorum > 0 {
            p.note(format!(
                "logged as entry {} of {}; waiting up to {} for {quorum} witness cosignature(s) …",
                appended.first,
                appended.origin,
                humantime::format_duration(timeout),
            ));
        }
    })?;
    match done {
        Authorized::Logged { witnesses, .. } if !witnesses.is_empty() => {
            p.note(format!("witnessed by {}", witnesses.join(", ")))
        }
        Authorized::Unlogged { warning } => p.warn(warning),
        _ => {}
    }
    Ok(())
}

/// `restore --break-glass` (OPERATOR.md section 5): after losing sites, a read of the service
/// tenant `coop` that cannot get its witnesses. The read is appended to the admin's log with
/// reason disaster-recovery and `"break-glass": true` in the entry's data, and goes on without
/// waiting for the quorum; the entry is witnessed (and listed in every member's transparency
/// report as a break-glass read) once the log reaches the witnesses again. Refused for member
/// tenants, whose reads always wait for their witnesses, and where the entry cannot be written.
pub fn log_break_glass(
    g: &Global,
    p: &crate::output::Printer,
    repo: &Repo,
    keys: &coop_agent::keys::TenantKeys,
    event: coop_formats::tlog::Event,
    a: &AccessArgs,
    object: Option<String>,
) -> Result<()> {
    use coop_agent::log;
    use coop_formats::tlog::Reason;
    if keys.tenant != "coop" {
        return Err(Error::Invalid {
            what: format!(
            "--break-glass reads only the service tenant coop; {} is a member's tenant, and a read \
             of a member's data always waits for its witnesses (restore without --break-glass, \
             with --reason)",
            keys.tenant
        ),
        }
        .into());
    }
    if let Some(r) = a.reason.as_deref() {
        if r.parse::<Reason>().ok() != Some(Reason::DisasterRecovery) {
            return Err(Error::Invalid {
                what: format!("--break-glass is logged with reason disaster-recovery, not {r:?}"),
            }
            .into());
        }
    }
    let admin = coop_agent::tenant::keys(repo, &identity_access(g)?, "coop").ok();
    let actor = admin
        .as_ref()
        .filter(|c| c.reader.is_some())
        .map(log::Actor::of)
        .filter(|a| a.name == "admin")
        .ok_or_else(|| Error::AccessDenied {
            what: "--break-glass needs an admin's identity (the read is logged in the admins' \
                   access log)"
                .into(),
        })?;
    let mut entry = log::entry(
        &actor,
        event,
        Some(keys),
        Some(Reason::DisasterRecovery),
        object.as_deref().map(|o| log::private_object(keys, o)),
    );
    entry
        .data
        .insert("break-glass".into(), serde_json::Value::Bool(true));
    if let Some(d) = &a.detail {
        entry.detail = Some(coop_agent::tenant::encrypt_detail(keys, d)?);
    }
    let appended = log::append(repo, &actor, &[entry]).with_context(|| {
        "--break-glass: the read could not be logged, so nothing is read (a break-glass read is \
         always logged; write access to this repository is needed)"
    })?;
    p.warn(format!(
        "BREAK-GLASS: this read of tenant coop is logged as entry {} of {} (reason \
         disaster-recovery, break-glass) and does not wait for the witnesses. The entry will be \
         shown to every member (in the transparency report) and witnessed once this log reaches \
         the witnesses again: replicate this repository to the surviving sites as soon as you can.",
        appended.first, appended.origin
    ));
    Ok(())
}
