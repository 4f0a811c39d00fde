//! `coop export`, `coop verify` and `coop usage`.

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::export::{self, Target};
use coop_agent::Error;
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
}

#[derive(Args)]
pub struct VerifyArgs {
    /// An export: a tar file or a directory.
    path: PathBuf,
    /// Only accept a manifest signed by this key (hex public key or fingerprint).
    #[arg(long, env = "COOP_TRUST")]
    trust: Option<String>,
}

pub fn run(g: &Global, a: ExportArgs) -> Result<i32> {
    let target = match (&a.out, &a.into) {
        (Some(o), None) if o.ends_with('/') => {
            let p = PathBuf::from(o);
            if p.join("manifest.json").exists() {
                return Err(Error::Usage {
                    what: format!("{o} holds an export already; use --into {o} to update it"),
                }
                .into());
            }
            Target::Dir(p)
        }
        (Some(o), None) => {
            if std::path::Path::new(o).exists() {
                return Err(Error::Usage {
                    what: format!("{o} exists already; choose another --out"),
                }
                .into());
            }
            Target::Tar(PathBuf::from(o))
        }
        (None, Some(d)) => Target::Into(d.clone()),
        _ => {
            return Err(Error::Usage {
                what: "give --out FILE.tar, --out DIR/ or --into DIR".into(),
            }
            .into())
        }
    };
    let repo = util::open_repo(g)?;
    let tenant = format!("member/{}", a.member);
    let keys = repo.tenant_keys(&util::identity_access(g)?, &tenant)?;
    let bars = Bars::new(g.quiet, g.json);
    let r = export::export(&repo, &keys, &a.snapshot, target, repo.store.url(), &bars)?;
    if g.json {
        util::print_json(&r)?;
    } else if !g.quiet {
        println!(
            "exported snapshot {} of {}: {} files, {} ({} written, {} unchanged, {} removed)",
            &r.snapshot[..8],
            tenant,
            r.files,
            util::bytes(r.bytes),
            r.written,
            r.unchanged,
            r.removed
        );
        println!(
            "signed by the site key {}; check it any time with `coop verify`",
            r.signer_fingerprint
        );
    }
    Ok(crate::exit::OK)
}

pub fn verify(g: &Global, a: VerifyArgs) -> Result<i32> {
    let r = export::verify(&a.path, a.trust.as_deref())?;
    if g.json {
        util::print_json(&r)?;
    } else {
        println!(
            "export of {} (snapshot {}), made by site {} at {}",
            r.tenant, r.snapshot, r.site, r.time
        );
        println!("signed by key {} ({})", r.signer_fingerprint, r.signer);
        for p in &r.problems {
            println!("MISMATCH {p}");
        }
        if r.problems.is_empty() {
            println!("OK: all {} files match the signed manifest", r.files_ok);
            if a.trust.is_none() {
                println!("(compare the key above with the one your cooperative publishes, or pass --trust KEY)");
            }
        } else {
            println!(
                "{} problem(s): this export is not what the site backed up",
                r.problems.len()
            );
        }
    }
    Ok(if r.problems.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

pub fn usage(g: &Global) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let access = util::write_access(g)?;
    let u = coop_agent::usage::usage(&repo, &access)?;
    if g.json {
        util::print_json(&u)?;
        return Ok(crate::exit::OK);
    }
    println!(
        "{:<24} {:>12} {:>12} {:>6} {:<26} {:>8}",
        "tenant", "logical", "stored", "snaps", "last backup", "quota"
    );
    for t in &u {
        println!(
            "{:<24} {:>12} {:>12} {:>6} {:<26} {:>8}",
            t.tenant,
            t.logical_bytes
                .map(util::bytes)
                .unwrap_or_else(|| "?".into()),
            util::bytes(t.stored_bytes),
            t.snapshots
                .map(|n| n.to_string())
                .unwrap_or_else(|| "?".into()),
            t.last_backup.clone().unwrap_or_else(|| "-".into()),
            t.quota_used_percent
                .map(|p| format!("{p:.0}%"))
                .unwrap_or_else(|| "-".into())
        );
    }
    Ok(crate::exit::OK)
}
