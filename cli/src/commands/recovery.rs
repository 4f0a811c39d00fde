//! `coop recovery …`: k-of-n recovery of member data (SPEC section 25).

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::keys::Access;
use coop_agent::Error;

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// Split a new recovery identity among the admins: any K of them together can read a
    /// member's data, no single one can. Re-wraps every member tenant to it.
    Init {
        /// How many admins must approve a recovery.
        #[arg(long)]
        threshold: u8,
        /// An admin and the key their share is encrypted to: NAME=RECIPIENT (repeat).
        #[arg(long = "admin", value_name = "NAME=RECIPIENT", required = true)]
        admins: Vec<String>,
    },
    /// Ask to read a member's data: logged (with the reason) for the other admins to approve.
    Request {
        #[arg(long)]
        member: String,
        /// member-request, incident-response, disaster-recovery, legal-request, maintenance.
        #[arg(long)]
        reason: String,
        /// A note for the request's log entry (why, who asked), encrypted to the member's
        /// tenant: its readers see it in `coop log show`.
        #[arg(long, value_name = "TEXT")]
        detail: Option<String>,
    },
    /// Approve a request with your own identity: releases your share to that request only.
    Approve {
        /// The request ID `coop recovery request` printed.
        id: String,
        /// How long to wait for the witnesses to cosign the request (the site agents carry
        /// the log to them) before giving up (exit 13, no share released).
        #[arg(long, default_value = "10m", env = "COOP_LOG_TIMEOUT")]
        log_timeout: String,
    },
    /// Show the current split.
    Status,
}

fn ids(access: &Access) -> Result<std::sync::Arc<Vec<coop_formats::crypt::Identity>>> {
    match access {
        Access::Identity(ids) => Ok(ids.clone()),
        Access::Writer(_) => Err(Error::AccessDenied {
            what: "recovery needs an admin identity, not a writer key".into(),
        }
        .into()),
    }
}

pub fn run(g: &Global, c: RecoveryCommand) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    match c {
        RecoveryCommand::Init { threshold, admins } => {
            let admins: Vec<(String, String)> = admins
                .iter()
                .map(|a| {
                    a.split_once('=')
                        .map(|(n, r)| (n.trim().to_string(), r.trim().to_string()))
                        .ok_or_else(|| Error::Invalid {
                            what: format!("--admin {a:?}: give NAME=RECIPIENT"),
                        })
                })
                .collect::<std::result::Result<_, _>>()?;
            let s = coop_agent::recovery::init(&repo, &access, threshold, &admins)?;
            if g.json {
                p.json(&s)?;
            } else {
                p.summary(format!(
                    "recovery epoch {}: {} of {} admins ({}) must approve to read a member's data; \
                     every member tenant is re-wrapped to the new recovery key and no admin key opens it alone",
                    s.epoch,
                    s.threshold,
                    s.holders.len(),
                    s.holders.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ")
                ))?;
            }
        }
        RecoveryCommand::Request {
            member,
            reason,
            detail,
        } => {
            let reason = reason
                .parse::<coop_formats::tlog::Reason>()
                .map_err(|what| Error::Invalid { what })?;
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            let (id, a) = coop_agent::recovery::request(
                &repo,
                &coop,
                &ids(&access)?,
                &member,
                reason,
                detail.as_deref(),
            )?;
            if g.json {
                p.json(&serde_json::json!({"request": id, "log": a.origin, "index": a.first}))?;
            } else {
                p.summary(format!(
                    "request {id} logged (entry {} of {}).\nOther admins approve with `coop recovery approve {id}`; \
                     then `coop export --member {member} --recovery {id} --reason {reason} …` on this machine (it keeps the request's key).",
                    a.first, a.origin
                ))?;
            }
        }
        RecoveryCommand::Approve { id, log_timeout } => {
            let timeout = util::parse_log_timeout(&log_timeout)?;
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            let waiting = |m: &str| p.note(m);
            let (holder, a) = coop_agent::recovery::approve(
                &repo,
                &coop,
                &ids(&access)?,
                &id,
                &coop_agent::recovery::Wait {
                    timeout,
                    waiting: &waiting,
                },
            )?;
            if g.json {
                p.json(&serde_json::json!({"request": id, "holder": holder, "log": a.origin, "index": a.first}))?;
            } else {
                p.summary(format!(
                    "{holder}'s share released to request {id} only (logged as entry {} of {})",
                    a.first, a.origin
                ))?;
            }
        }
        RecoveryCommand::Status => {
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            let s = coop_agent::recovery::setup(&repo, &coop)?;
            if g.json {
                p.json(&s)?;
            } else {
                p.data(format!(
                    "epoch {} since {}: {} of {}",
                    s.epoch,
                    s.created,
                    s.threshold,
                    s.holders.len()
                ))?;
                for h in &s.holders {
                    p.data(format!("  {:<16} {}", h.name, h.recipient))?;
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
