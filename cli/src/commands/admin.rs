//! `coop admin …`: admins as persons (SPEC 15): who reads the service tenant, named, each
//! signing the log entries they cause with their own person key.

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::admins;
use serde::Serialize;

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Print the admin key of your identity file, for `coop admin add` (run on the new
    /// admin's machine; nothing secret is printed).
    Whoami,
    /// Name a person as an admin: the service tenant is re-wrapped to their key, and the log
    /// entries they cause name them. Without KEY, registers yourself.
    Add {
        /// The admin's name: a-z, 0-9, '.', '_', '-'.
        name: String,
        /// What `coop admin whoami` printed on their machine (coop-admin:…).
        key: Option<String>,
    },
    /// Retire an admin: the service tenant is re-wrapped without them and gets a new data
    /// key, so that they read nothing of it written afterwards. Their name stays on their
    /// old log entries.
    Remove {
        /// The admin's name.
        name: String,
    },
    /// Approve the pending addition or removal of an admin (after the recovery split each
    /// takes K approvals by admins other than the one who proposed it).
    Approve {
        /// The admin's name.
        name: String,
    },
    /// List the admins, retired ones included, and the changes waiting for approval.
    List,
}

/// `admin whoami --json`.
#[derive(Serialize)]
struct Whoami<'a> {
    key: &'a str,
}

fn own_token(g: &Global) -> Result<String> {
    let path = util::identity_path(g)?;
    let person =
        coop_agent::keys::person_key(&path)?.ok_or_else(|| coop_agent::Error::Invalid {
            what: format!(
                "{} holds no secret key coop can derive an admin key from",
                path.display()
            ),
        })?;
    let recipient = coop_agent::keys::recipients_of_identity_file(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| coop_agent::Error::Invalid {
            what: format!(
                "{}: no age identity (an SSH key's admin key: give `coop admin add NAME \
                 coop-admin:<key>:<ssh public key>` by hand)",
                path.display()
            ),
        })?;
    Ok(admins::token(&person, &recipient))
}

pub fn run(g: &Global, c: AdminCommand) -> Result<i32> {
    let p = g.printer();
    if let AdminCommand::Whoami = c {
        let t = own_token(g)?;
        if g.json {
            p.json_sorted(&Whoami { key: &t })?;
        } else {
            p.data(&t)?;
        }
        return Ok(crate::exit::OK);
    }
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    let outcome = match c {
        AdminCommand::Whoami => unreachable!("handled above"),
        AdminCommand::Add { name, key } => {
            let key = match key {
                Some(k) => k,
                None => own_token(g)?,
            };
            admins::add(&repo, &access, &name, &key)?
        }
        AdminCommand::Remove { name } => admins::remove(&repo, &access, &name)?,
        AdminCommand::Approve { name } => admins::approve(&repo, &access, &name)?,
        AdminCommand::List => {
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            return list(g, &admins::listing(&repo, &coop)?);
        }
    };
    if g.json {
        // A script runs `coop recovery reshare --json` for its part of a re-split.
        p.json(&outcome)?;
        return Ok(crate::exit::OK);
    }
    match outcome {
        admins::Outcome::Added(a) => {
            p.summary(format!(
                "admin {} added: the service tenant is wrapped to their key; the log entries \
                 they cause name them (person key {})",
                a.name,
                &hex::encode(a.key)[..16]
            ))?;
            reshare(g, &repo, &access)?;
        }
        admins::Outcome::Removed(r) => {
            removed(g, &r)?;
            reshare(g, &repo, &access)?;
        }
        admins::Outcome::Pending {
            op,
            name,
            approvals,
            needed,
        } => {
            p.summary(format!(
                "the {} of admin {name} is logged and waits for approval: {approvals} of \
                 {needed} admins (other than the one who proposed it and the one it is about) \
                 approved",
                op.object()
            ))?;
            p.note(format!(
                "each of them runs `coop admin approve {name}`; the approval that makes \
                 {needed} carries the change out"
            ));
        }
    }
    Ok(crate::exit::OK)
}

fn removed(g: &Global, r: &admins::Removed) -> Result<()> {
    let p = g.printer();
    let name = &r.admin.name;
    p.summary(format!(
        "admin {name} retired: the service tenant is re-wrapped without their key and has a \
         new data key; they read nothing of it written from now on"
    ))?;
    if r.holds_shares {
        p.warn(format!(
            "{name} still holds shares of the members' recovery keys, which stay in force until \
             the re-split of the shares ends (`coop recovery reshare` by every admin); their \
             old share then combines with no new one"
        ));
    }
    p.warn(format!(
        "{name} knew the service tenant's signing key, which admin changes do not replace \
         (SPEC 15): watch `coop log show` for registry and writer-list changes they did not \
         agree"
    ));
    Ok(())
}

/// After a change of the admin persons since the split: this admin's part of the re-split
/// of the shares it started (SPEC 25.5), done now.
fn reshare(g: &Global, repo: &coop_agent::repo::Repo, access: &coop_agent::Access) -> Result<()> {
    match coop_agent::reshare::run(repo, access) {
        Ok(progress) => super::recovery::reshared(g, &progress),
        Err(coop_agent::Error::NotFound { .. }) => Ok(()),
        Err(e) => {
            g.printer().warn(format!(
                "the re-split of the recovery shares did not go on here: {}; run `coop recovery \
                 reshare` again",
                coop_agent::error::chain(&e)
            ));
            Ok(())
        }
    }
}

fn list(g: &Global, l: &admins::Listing) -> Result<i32> {
    let p = g.printer();
    if g.json {
        p.json(l)?;
        return Ok(crate::exit::OK);
    }
    for x in &l.admins {
        let a = &x.admin;
        p.data(format!(
            "{:<16} {:<16} added {}{}{}  {}",
            a.name,
            &hex::encode(a.key)[..16],
            util::local_time(&a.added),
            a.removed
                .as_ref()
                .map(|r| format!(", retired {}", util::local_time(r)))
                .unwrap_or_default(),
            if a.removed.is_none() && !x.counts {
                ", NOT COUNTED (no approval in the log)"
            } else {
                ""
            },
            a.recipient
        ))?;
    }
    if l.admins.is_empty() {
        p.note("no admin is named yet: each admin runs `coop admin add NAME` once");
    }
    for x in &l.pending {
        p.data(format!(
            "pending: {} of {} ({}), {} of {} approvals",
            x.op.object(),
            x.name,
            &hex::encode(x.key)[..16],
            x.approvals.len(),
            l.approvals_needed.unwrap_or(1)
        ))?;
    }
    Ok(crate::exit::OK)
}
