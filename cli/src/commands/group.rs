//! `coop group …`: one member pays for several (a family, a club), with a shared quota.

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::groups;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// Create a group paid for by MEMBER (who is its first member).
    Add {
        /// Group name: a-z, 0-9, '.', '_', '-'.
        name: String,
        /// The member who pays for the group: sees its usage and costs, never a member's data.
        #[arg(long)]
        payer: String,
        /// Storage the members share (after dedup and compression), e.g. 20GiB.
        #[arg(long)]
        quota: Option<String>,
    },
    /// Add or remove members of a group (a member is in one group at most).
    Members {
        name: String,
        /// A member to add; repeatable.
        #[arg(long)]
        add: Vec<String>,
        /// A member to remove; repeatable.
        #[arg(long)]
        remove: Vec<String>,
    },
    /// Set a group's shared quota, or `none`.
    Quota { name: String, size: String },
    /// Dissolve a group: its members stay members, each on their own.
    Remove { name: String },
    /// The groups: payer, members and what they store together.
    List,
}

fn quota(size: &str) -> Result<Option<u64>> {
    Ok(if size == "none" {
        None
    } else {
        Some(util::parse_size(size)?)
    })
}

fn show(g: &Global, grp: &coop_formats::registry::Group) -> Result<()> {
    let p = g.printer();
    if g.json {
        p.json(grp)?;
    } else {
        p.summary(format!(
            "group {}: paid by {}, members {}, quota {}",
            grp.name,
            grp.payer,
            grp.members.join(", "),
            grp.quota.map(util::bytes).unwrap_or_else(|| "none".into())
        ))?;
    }
    Ok(())
}

pub fn run(g: &Global, c: GroupCommand) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    match c {
        GroupCommand::Add {
            name,
            payer,
            quota: q,
        } => {
            let access = util::identity_access(g)?;
            let q = q.as_deref().map(quota).transpose()?.flatten();
            show(g, &groups::add(&repo, &access, &name, &payer, q)?)?;
        }
        GroupCommand::Members { name, add, remove } => {
            let access = util::identity_access(g)?;
            show(
                g,
                &groups::set_members(&repo, &access, &name, &add, &remove)?,
            )?;
        }
        GroupCommand::Quota { name, size } => {
            let access = util::identity_access(g)?;
            show(g, &groups::set_quota(&repo, &access, &name, quota(&size)?)?)?;
        }
        GroupCommand::Remove { name } => {
            let access = util::identity_access(g)?;
            groups::remove(&repo, &access, &name)?;
            p.summary(format!("group {name} dissolved; its members stay members"))?;
        }
        GroupCommand::List => {
            let access = util::write_access(g)?;
            let u = coop_agent::usage::groups(&repo, &access)?;
            if g.json {
                p.json(&u)?;
            } else {
                for gu in &u {
                    p.data(format!(
                        "{:<16} paid by {:<12} {} of {}: {}",
                        gu.group,
                        gu.payer,
                        util::bytes(gu.stored_bytes),
                        gu.quota
                            .map(util::bytes)
                            .unwrap_or_else(|| "no quota".into()),
                        gu.members
                            .iter()
                            .map(|(m, b)| format!("{m} {}", util::bytes(*b)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))?;
                }
                if u.is_empty() {
                    p.note("no groups (`coop group add NAME --payer MEMBER`)");
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
