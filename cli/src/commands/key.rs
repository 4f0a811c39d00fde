//! `coop key …`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a writer key file for an agent: it backs up into tenant coop and every member
    /// tenant, and cannot read anything.
    ExportWriter(ExportWriterArgs),
    /// List the writers (site keys) and whether they are revoked.
    List,
    /// Revoke a writer (a stolen agent), or another site's key named as a witness (`log policy
    /// --witness`): snapshots it signs and cosignatures it makes from now on count for nothing.
    Revoke {
        /// The writer's or witness's name (see `coop key list`, `coop log policy`).
        name: String,
    },
}

#[derive(Args)]
pub struct ExportWriterArgs {
    /// Where to write the key file (must not exist; written with mode 0600).
    #[arg(long, short = 'o', env = "COOP_KEY_OUT")]
    out: PathBuf,
    /// A name for this writer (e.g. the site), recorded in snapshots it signs.
    #[arg(long, default_value = "agent", env = "COOP_KEY_NAME")]
    name: String,
}

/// `key export-writer --json`: where the key was written and its public half (never the key).
#[derive(Serialize)]
struct Exported<'a> {
    out: &'a Path,
    tenant: &'a str,
    name: &'a str,
    public_key: String,
    fingerprint: String,
}

pub fn run(g: &Global, k: KeyCommand) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    match k {
        KeyCommand::ExportWriter(a) => {
            let wk = coop_agent::admins::writer_keys::export(&repo, &access, &a.name, &a.out)?;
            let public = coop_formats::keyring::public_key_of(&wk.signing_key);
            if g.json {
                p.json_sorted(&Exported {
                    out: &a.out,
                    tenant: &wk.tenant,
                    name: &a.name,
                    public_key: hex::encode(public),
                    fingerprint: coop_formats::manifest::fingerprint(&public),
                })?;
            } else {
                p.summary(format!(
                    "Wrote writer key {} (writer {:?}, key {}).\n\
                     An agent backs up with `coop backup --writer-key {}` into tenant coop and every member tenant; \
                     it cannot read or restore anything. If it is ever stolen: `coop key revoke {}`.",
                    a.out.display(),
                    a.name,
                    coop_formats::manifest::fingerprint(&public),
                    a.out.display(),
                    a.name
                ))?;
            }
        }
        KeyCommand::List => {
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            let loaded = coop_agent::writers::load(&repo, &coop.admin_keys)?;
            for pr in &loaded.problems {
                p.warn(pr);
            }
            if g.json {
                p.json(&loaded.list.writers)?;
            } else {
                for w in &loaded.list.writers {
                    p.data(format!(
                        "{:<20} {}  added {}{}",
                        w.name,
                        coop_formats::manifest::fingerprint(&w.public_key),
                        w.added,
                        w.revoked
                            .as_ref()
                            .map(|r| format!("  REVOKED {}", r.time))
                            .unwrap_or_default()
                    ))?;
                }
                p.summary(format!(
                    "{}; admin key {}",
                    util::plural(loaded.list.writers.len() as u64, "writer", "writers"),
                    coop.admin_keys
                        .iter()
                        .map(coop_formats::manifest::fingerprint)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))?;
            }
        }
        KeyCommand::Revoke { name } => {
            let w = coop_agent::admins::writer_keys::revoke(&repo, &access, &name)?;
            if g.json {
                p.json(&w)?;
            } else {
                p.summary(format!(
                    "{name} revoked: snapshots it signs from now on are flagged in every tenant \
                     ({} existing snapshots recorded as made before), and log cosignatures it makes \
                     from now on are not counted. See docs/OPERATOR.md section 6.",
                    w.revoked.as_ref().map(|r| r.snapshots.len()).unwrap_or(0)
                ))?;
            }
        }
    }
    Ok(crate::exit::OK)
}
