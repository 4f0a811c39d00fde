//! `coop member …`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::{Args, Subcommand};
use coop_agent::members;

#[derive(Subcommand)]
pub enum MemberCommand {
    /// Register a member: creates the tenant member/NAME, readable by the member (and the recovery keys).
    Add(AddArgs),
    /// List members, their keys and quotas.
    List,
    /// Remove a member from the registry (their stored data is kept).
    Remove {
        /// The member's name.
        name: String,
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
    name: String,
    #[arg(long, env = "COOP_MEMBER_ADD")]
    add: Vec<String>,
    #[arg(long, env = "COOP_MEMBER_REMOVE")]
    remove: Vec<String>,
}

pub fn run(g: &Global, c: MemberCommand) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    match c {
        MemberCommand::Add(a) => {
            let quota = a.quota.as_deref().map(util::parse_size).transpose()?;
            let m = members::add(&repo, &access, &a.name, a.recipient, quota)?;
            if g.json {
                util::print_json(
                    &serde_json::json!({"name": m.name, "tenant": m.tenant(), "recipients": m.recipients, "quota": m.quota}),
                )?;
            } else {
                println!(
                    "member {} added: tenant {} readable by {} key(s) of theirs and the recovery keys{}",
                    m.name,
                    m.tenant(),
                    m.recipients.len(),
                    m.quota.map(|q| format!(", quota {}", util::bytes(q))).unwrap_or_default()
                );
            }
        }
        MemberCommand::List => {
            let coop = repo.tenant_keys(&access, "coop")?;
            let (reg, _) = members::load(&repo, &coop)?;
            if g.json {
                let v: Vec<_> = reg
                    .members
                    .iter()
                    .map(|m| serde_json::json!({"name": m.name, "tenant": m.tenant(), "recipients": m.recipients, "quota": m.quota, "added": m.added}))
                    .collect();
                util::print_json(
                    &serde_json::json!({"members": v, "recovery": reg.recovery, "sites": reg.sites}),
                )?;
            } else {
                for m in &reg.members {
                    println!(
                        "{:<20} quota {:<10} {}",
                        m.name,
                        m.quota.map(util::bytes).unwrap_or_else(|| "-".into()),
                        m.recipients.join(", ")
                    );
                }
                println!(
                    "{} member(s); recovery keys: {}",
                    reg.members.len(),
                    reg.recovery.len()
                );
            }
        }
        MemberCommand::Remove { name } => {
            members::remove(&repo, &access, &name)?;
            println!("member {name} removed from the registry; their data is kept (forget and prune --tenant member/{name} to delete it)");
        }
        MemberCommand::Recipients(a) => {
            let m = members::set_recipients(&repo, &access, &a.name, &a.add, &a.remove)?;
            println!(
                "member {}: tenant keys re-wrapped for {} key(s); no data was re-encrypted",
                m.name,
                m.recipients.len()
            );
        }
    }
    Ok(crate::exit::OK)
}
