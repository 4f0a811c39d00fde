//! `coop member …`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::{Args, Subcommand};
use coop_agent::members;
use coop_formats::registry::Member;
use serde::Serialize;

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Register a member: creates the tenant member/NAME, readable by the member (and the
    /// recovery keys). A name removed before comes back with its old tenant and data.
    Add(AddArgs),
    /// List members, their keys and quotas, and the site keys that sign their backups.
    List,
    /// Remove a member from the registry (their tenant and stored data are kept).
    Remove {
        /// The member's name.
        name: String,
    },
    /// Set a member's storage quota (after dedup and compression), or `none`.
    Quota {
        /// The member's name.
        name: String,
        /// The quota, e.g. 5GiB, or `none`.
        size: String,
    },
    /// Add or remove a member's keys: re-wraps the tenant keys, re-encrypts no data.
    Recipients(RecipientsArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// Member name: a-z, 0-9, '.', '_', '-'.
    name: String,
    /// The member's age (age1…) or SSH (ssh-ed25519 …) public key; repeatable.
    #[arg(long, required = true, env = "COOP_MEMBER_RECIPIENT")]
    recipient: Vec<String>,
    /// Storage quota after dedup and compression, e.g. 5GiB.
    #[arg(long, env = "COOP_MEMBER_QUOTA")]
    quota: Option<String>,
}

#[derive(Args)]
pub struct RecipientsArgs {
    /// The member's name.
    name: String,
    /// A key to add (age1… or ssh-ed25519 …); repeatable.
    #[arg(long, env = "COOP_MEMBER_ADD")]
    add: Vec<String>,
    /// A key to remove; repeatable.
    #[arg(long, env = "COOP_MEMBER_REMOVE")]
    remove: Vec<String>,
}

/// A member in `member add --json` and `member list --json`: what the registry says of them
/// that is not key material.
#[derive(Serialize)]
struct MemberShown<'a> {
    name: &'a str,
    tenant: String,
    recipients: &'a [String],
    quota: Option<u64>,
    added: &'a str,
}

impl<'a> From<&'a Member> for MemberShown<'a> {
    fn from(m: &'a Member) -> Self {
        Self {
            name: &m.name,
            tenant: m.tenant(),
            recipients: &m.recipients,
            quota: m.quota,
            added: &m.added,
        }
    }
}

/// A site's writer key in `member list --json`.
#[derive(Serialize)]
struct SiteShown<'a> {
    name: &'a str,
    public_key: String,
    fingerprint: String,
    /// When it was revoked.
    revoked: Option<&'a str>,
}

/// `member list --json`: the active members, the recovery keys and the sites' writer keys.
#[derive(Serialize)]
struct MemberList<'a> {
    members: Vec<MemberShown<'a>>,
    recovery: &'a [String],
    sites: Vec<SiteShown<'a>>,
}

/// `member remove --json`.
#[derive(Serialize)]
struct Removed<'a> {
    name: &'a str,
    removed: bool,
}

/// `coop member list`: the active members, the recovery keys and the sites' writer keys.
fn list(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
) -> Result<i32> {
    let p = g.printer();
    let mut status = crate::exit::OK;
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let loaded = members::load(repo, &coop)?;
    for pr in &loaded.problems {
        p.warn(pr);
    }
    if !loaded.problems.is_empty() {
        status = crate::exit::INTEGRITY;
    }
    let sites = coop_agent::writers::load(repo, &coop.admin_keys)?.list;
    let reg = loaded.registry;
    if g.json {
        p.json_sorted(&MemberList {
            members: reg.active().map(MemberShown::from).collect(),
            recovery: &reg.recovery,
            sites: sites
                .writers
                .iter()
                .map(|w| SiteShown {
                    name: &w.name,
                    public_key: hex::encode(w.public_key),
                    fingerprint: coop_formats::manifest::fingerprint(&w.public_key),
                    revoked: w.revoked.as_ref().map(|r| r.time.as_str()),
                })
                .collect(),
        })?;
    } else {
        for m in reg.active() {
            p.data(format!(
                "{:<20} quota {:<10} {}",
                m.name,
                m.quota.map(util::bytes).unwrap_or_else(|| "-".into()),
                m.recipients.join(", ")
            ))?;
        }
        p.summary(format!(
            "{}; {}",
            util::plural(reg.active().count() as u64, "member", "members"),
            util::plural(reg.recovery.len() as u64, "recovery key", "recovery keys")
        ))?;
        for w in &sites.writers {
            p.summary(format!(
                "site {:<16} key {}{}",
                w.name,
                coop_formats::manifest::fingerprint(&w.public_key),
                if w.revoked.is_some() {
                    " (revoked)"
                } else {
                    ""
                }
            ))?;
        }
    }
    Ok(status)
}

pub fn run(g: &Global, c: MemberCommand) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    let mut status = crate::exit::OK;
    match c {
        MemberCommand::Add(a) => {
            let quota = a.quota.as_deref().map(util::parse_size).transpose()?;
            let m = members::add(&repo, &access, &a.name, a.recipient, quota)?;
            if g.json {
                p.json_sorted(&MemberShown::from(&m))?;
            } else {
                p.summary(format!(
                    "member {} added: tenant {} readable by {} of theirs and the recovery keys{}",
                    m.name,
                    m.tenant(),
                    util::plural(m.recipients.len() as u64, "key", "keys"),
                    m.quota
                        .map(|q| format!(", quota {}", util::bytes(q)))
                        .unwrap_or_default()
                ))?;
            }
        }
        MemberCommand::List => status = list(g, &repo, &access)?,
        MemberCommand::Remove { name } => {
            members::remove(&repo, &access, &name)?;
            if g.json {
                p.json_sorted(&Removed {
                    name: &name,
                    removed: true,
                })?;
            } else {
                p.summary(format!(
                    "member {name} removed from the registry; their data is kept \
                     (forget and prune --tenant member/{name} to delete it; `coop member add {name}` brings them back)"
                ))?;
            }
        }
        MemberCommand::Quota { name, size } => {
            let quota = if size == "none" {
                None
            } else {
                Some(util::parse_size(&size)?)
            };
            let m = members::set_quota(&repo, &access, &name, quota)?;
            if g.json {
                p.json_sorted(&MemberShown::from(&m))?;
            } else {
                p.summary(format!(
                    "member {}: quota {}",
                    m.name,
                    m.quota.map(util::bytes).unwrap_or_else(|| "none".into())
                ))?;
            }
        }
        MemberCommand::Recipients(a) => {
            let m = members::set_recipients(&repo, &access, &a.name, &a.add, &a.remove)?;
            if g.json {
                p.json_sorted(&MemberShown::from(&m))?;
            } else {
                p.summary(format!(
                    "member {}: tenant keys re-wrapped for {}; no data was re-encrypted",
                    m.name,
                    util::plural(m.recipients.len() as u64, "key", "keys")
                ))?;
            }
        }
    }
    Ok(status)
}
