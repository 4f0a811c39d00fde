//! `coop export`, `coop verify` and `coop usage`.

use crate::global::Global;
use crate::progress::Bars;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::{export, Error, Target, VerifyOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct ExportArgs {
    /// The member whose data to export.
    #[arg(long, env = "COOP_MEMBER")]
    member: String,
    /// Write a tar file, or a directory if the path ends with '/'.
    #[arg(long, conflicts_with = "into", env = "COOP_EXPORT_OUT")]
    out: Option<String>,
    /// Update an earlier directory export in place, rewriting only what changed.
    #[arg(long, env = "COOP_EXPORT_INTO")]
    into: Option<PathBuf>,
    /// The snapshot (ID, prefix, or latest).
    #[arg(long, default_value = "latest", env = "COOP_EXPORT_SNAPSHOT")]
    snapshot: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    access: util::AccessArgs,
    /// Read with the recovery identity that K admins released to this request (see
    /// `coop recovery`); afterwards a new recovery epoch starts.
    #[arg(long, value_name = "REQUEST", requires = "reason")]
    recovery: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// An export: a tar file or a directory.
    path: PathBuf,
    /// Only accept a manifest signed by this key (hex public key or fingerprint).
    #[arg(long, env = "COOP_TRUST")]
    trust: Option<String>,
    /// Only accept an export of this member's data.
    #[arg(long, env = "COOP_VERIFY_MEMBER")]
    member: Option<String>,
    /// Only accept a snapshot at most this old (e.g. 2d, 36h).
    #[arg(long, value_name = "DURATION", env = "COOP_VERIFY_MAX_AGE")]
    max_age: Option<String>,
    /// Extract the verified files into this new directory (kept only if everything matched).
    #[arg(long, value_name = "DIR", env = "COOP_VERIFY_EXTRACT")]
    extract: Option<PathBuf>,
}

fn ids_of(
    access: &coop_agent::keys::Access,
) -> Result<std::sync::Arc<Vec<coop_formats::crypt::Identity>>> {
    match access {
        coop_agent::keys::Access::Identity(ids, _) => Ok(ids.clone()),
        coop_agent::keys::Access::Writer(_) => Err(Error::AccessDenied {
            what: "a recovery needs the requesting admin's identity, not a writer key".into(),
        }
        .into()),
    }
}

pub fn run(g: &Global, a: ExportArgs) -> Result<i32> {
    let p = g.printer();
    let target = target(&a)?;
    let repo = util::open_repo(g)?;
    let tenant = format!("member/{}", a.member);
    let access = util::identity_access(g)?;
    if let Some(id) = &a.recovery {
        let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
        if let Some(member) = coop_agent::recovery::resume(&repo, &coop, id)? {
            p.note(format!(
                "recovery request {id} had stopped after saving {member}'s new keys and before \
                 logging them (so writers refused them); the keyring is re-wrapped to them if it \
                 was not, the log names them now, and {member}'s backups go on. Its export was \
                 done before it stopped: nothing was read now"
            ));
            return Ok(crate::exit::OK);
        }
    }
    let recovered = match &a.recovery {
        Some(id) => Some(recover(g, &repo, &access, &a, id)?),
        None => None,
    };
    let mut keys = match &recovered {
        Some((_, r)) => coop_agent::tenant::keys(
            &repo,
            &coop_agent::keys::Access::Identity(
                r.ids.clone(),
                match &access {
                    coop_agent::keys::Access::Identity(_, person) => person.clone(),
                    coop_agent::keys::Access::Writer(_) => None,
                },
            ),
            &tenant,
        )?,
        None => coop_agent::tenant::keys(&repo, &access, &tenant)?,
    };
    let view = coop_agent::snapshots::view(&repo, &keys)?;
    util::show_warnings(&p, &view);
    let entry = view.find(&a.snapshot, &a.filter.filter())?;
    util::log_access(
        g,
        &p,
        &repo,
        &mut keys,
        coop_formats::tlog::Event::Export,
        &a.access,
        Some(entry.id.to_hex()),
    )?;
    let bars = Bars::new(g);
    let entries = entries(&a, &view, entry);
    let entries: Vec<&coop_agent::snapshots::Entry> = entries.iter().collect();
    let r = export::export(&repo, &keys, &entries, target, repo.store.url(), &bars)?;
    if let Some((coop, r)) = recovered {
        conclude(&p, &repo, &coop, r, &a.member);
    }
    if g.json {
        p.json(&r)?;
    } else {
        summary(&p, &r, &tenant)?;
    }
    if r.log_problems.is_empty() {
        return Ok(crate::exit::OK);
    }
    for why in &r.log_problems {
        p.warn(why);
    }
    p.warn(
        "the export is whole, but the access log at this store does not verify as before: the \
         entries about you it carries may not be all there are. Export from another site's \
         replica too, and compare with `coop verify`",
    );
    Ok(crate::exit::INTEGRITY)
}

/// Where the export goes: a new tar file, a new directory, or an earlier directory export.
fn target(a: &ExportArgs) -> Result<Target> {
    Ok(match (&a.out, &a.into) {
        (Some(o), None) if o.ends_with('/') => {
            let d = PathBuf::from(o);
            if d.join("manifest.json").exists() {
                return Err(Error::Invalid {
                    what: format!("{o} holds an export already; use --into {o} to update it"),
                }
                .into());
            }
            Target::Dir(d)
        }
        (Some(o), None) => {
            if std::path::Path::new(o).exists() {
                return Err(Error::Invalid {
                    what: format!("{o} exists already; choose another --out"),
                }
                .into());
            }
            Target::Tar(PathBuf::from(o))
        }
        (None, Some(d)) => Target::Into(d.clone()),
        _ => {
            return Err(Error::Invalid {
                what: "give --out FILE.tar, --out DIR/ or --into DIR".into(),
            }
            .into())
        }
    })
}

/// Waits for the recovery request `id` to be released and opens it.
fn recover(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
    a: &ExportArgs,
    id: &str,
) -> Result<(
    coop_agent::keys::TenantKeys,
    coop_agent::recovery::Recovered,
)> {
    let p = g.printer();
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let waiting = |m: &str| p.note(m);
    let r = coop_agent::recovery::recover(
        repo,
        &coop,
        &ids_of(access)?,
        id,
        &a.member,
        &coop_agent::recovery::Wait {
            timeout: util::parse_log_timeout(&a.access.log_timeout)?,
            waiting: &waiting,
        },
    )?;
    Ok((coop, r))
}

/// The snapshots to export: `latest` is the member's data, the newest snapshot of every job
/// (path set) of theirs.
fn entries(
    a: &ExportArgs,
    view: &coop_agent::snapshots::View,
    entry: &coop_agent::snapshots::Entry,
) -> Vec<coop_agent::snapshots::Entry> {
    if a.snapshot == "latest" {
        let matching: Vec<_> = view
            .listing
            .entries
            .iter()
            .filter(|e| a.filter.filter().matches(&e.snapshot))
            .cloned()
            .collect();
        export::newest_per_job(&matching, entry)
            .into_iter()
            .cloned()
            .collect()
    } else {
        vec![entry.clone()]
    }
}

/// After a recovery's export: the member's keys are replaced (a new recovery epoch).
fn conclude(
    p: &crate::output::Printer,
    repo: &coop_agent::repo::Repo,
    coop: &coop_agent::keys::TenantKeys,
    r: coop_agent::recovery::Recovered,
    member: &str,
) {
    let id = r.request.clone();
    match coop_agent::recovery::conclude(repo, coop, r) {
        Ok(_) => p.note(format!(
            "recovery request {id} used: {}'s data key and recovery key are new (what this \
             recovery released opens nothing written from now on)",
            member
        )),
        Err(e) => p.warn(format!(
            "the export is done, but {member}'s keys could not be replaced: {} (until they \
             are, whoever holds this request's key reads {member}'s new backups too). If the \
             new keys were saved but not logged, writers refuse them until `coop export \
             --recovery {id} --member {member}` runs again on this machine and finishes it",
            coop_agent::error::chain(&e),
        )),
    }
}

/// What was exported, for a terminal.
fn summary(p: &crate::output::Printer, r: &export::ExportReport, tenant: &str) -> Result<()> {
    p.summary(format!(
        "exported snapshot {} of {} ({}): {}, {} ({} written, {} unchanged, {} removed)",
        &r.snapshot[..8],
        tenant,
        util::local_time(&r.time),
        util::plural(r.files, "file", "files"),
        util::bytes(r.bytes),
        r.written,
        r.unchanged,
        r.removed
    ))?;
    for (id, time) in &r.more {
        p.summary(format!(
            "with snapshot {} ({}), the newest of another job",
            &id[..8],
            util::local_time(time)
        ))?;
    }
    p.summary(format!(
        "signed by the site key {}; check it any time with `coop verify`",
        r.signer_fingerprint
    ))?;
    Ok(())
}

pub fn verify(g: &Global, a: VerifyArgs) -> Result<i32> {
    let p = g.printer();
    let max_age = a
        .max_age
        .as_deref()
        .map(coop_agent::settings::parse_duration)
        .transpose()
        .map_err(|what| Error::Invalid {
            what: format!("--max-age: {what}"),
        })?;
    let opts = VerifyOptions {
        trust: a.trust.clone(),
        member: a.member.clone(),
        max_age,
        extract: a.extract.clone(),
        memory: g.cache_dir.clone(),
    };
    let r = export::verify(&a.path, &opts)?;
    if g.json {
        p.json(&r)?;
    } else {
        verify_text(&p, &r, &a)?;
    }
    Ok(if r.problems.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

/// What `coop verify` found, for a terminal.
fn verify_text(p: &crate::output::Printer, r: &export::VerifyReport, a: &VerifyArgs) -> Result<()> {
    p.summary(format!(
        "export of {} (snapshot {}, taken {}), made by site {}",
        r.tenant,
        r.snapshot,
        util::local_time(&r.time),
        r.site
    ))?;
    p.summary(format!(
        "signed by key {} ({})",
        r.signer_fingerprint, r.signer
    ))?;
    if !r.log.is_empty() {
        p.summary(format!(
            "the access log records {} about this data (each proven against a signed checkpoint):",
            util::plural(r.log.len() as u64, "event", "events")
        ))?;
        for l in &r.log {
            p.summary(format!(
                "  {} {:<16} by {} ({}){}{}",
                l.time,
                l.event,
                match &l.person {
                    Some(k) => format!(
                        "{} person {}",
                        l.actor,
                        k.chars().take(16).collect::<String>()
                    ),
                    None => l.actor.clone(),
                },
                l.actor_key.chars().take(16).collect::<String>(),
                l.reason
                    .as_ref()
                    .map(|r| format!(", reason {r}"))
                    .unwrap_or_default(),
                if l.cosigned_by.is_empty() {
                    ", not witnessed".to_string()
                } else {
                    format!(", witnessed by {}", l.cosigned_by.join(", "))
                }
            ))?;
        }
    }
    for w in &r.warnings {
        p.warn(w);
    }
    for x in &r.problems {
        p.data(format!("MISMATCH {x}"))?;
    }
    if r.problems.is_empty() {
        p.summary(format!(
            "OK: all {} match the signed manifest",
            util::plural(r.files_ok, "file", "files")
        ))?;
        if let Some(d) = &r.extracted {
            p.summary(format!("extracted to {d}"))?;
        }
        if a.trust.is_none() {
            p.summary("(compare the key above with the one your cooperative publishes, or pass --trust KEY)")?;
        }
    } else {
        p.summary(format!(
            "{}: this export is not what the site backed up{}",
            util::plural(r.problems.len() as u64, "problem", "problems"),
            if a.extract.is_some() {
                "; nothing was extracted"
            } else {
                ""
            }
        ))?;
    }
    Ok(())
}

pub fn usage(g: &Global) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::write_access(g)?;
    let u = coop_agent::usage::usage(&repo, &access)?;
    // Figures from a store that shows less than this client saw there are wrong.
    let status = if u.iter().any(|t| t.rollback) {
        crate::exit::INTEGRITY
    } else {
        crate::exit::OK
    };
    for t in &u {
        for w in &t.warnings {
            p.warn(format!("{}: {w}", t.tenant));
        }
    }
    if g.json {
        p.json(&u)?;
        return Ok(status);
    }
    p.data(format!(
        "{:<24} {:>12} {:>12} {:>6} {:<26} {:>8}",
        "tenant", "logical", "stored", "snaps", "last backup", "quota"
    ))?;
    for t in &u {
        p.data(format!(
            "{:<24} {:>12} {:>12} {:>6} {:<26} {:>8}",
            t.tenant,
            t.logical_bytes
                .map(util::bytes)
                .unwrap_or_else(|| "?".into()),
            util::bytes(t.stored_bytes),
            t.snapshots
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            t.last_backup
                .as_deref()
                .map(util::local_time)
                .unwrap_or_else(|| "-".into()),
            t.quota_used_percent
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into())
        ))?;
    }
    for gu in coop_agent::usage::groups(&repo, &access).unwrap_or_default() {
        p.data(format!(
            "{:<24} {:>12} {:>12} {:>6} {:<26} {:>8}",
            format!("group {}", gu.group),
            "",
            util::bytes(gu.stored_bytes),
            "",
            format!("paid by {}", gu.payer),
            gu.quota_used_percent
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into())
        ))?;
    }
    Ok(status)
}
