//! `coop admin …`: admins as persons (SPEC 15): who reads the service tenant, named, each
//! signing the log entries they cause with their own person key.

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::admins;

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
    /// List the admins, retired ones included.
    List,
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
            p.json(&serde_json::json!({ "key": t }))?;
        } else {
            p.data(&t)?;
        }
        return Ok(crate::exit::OK);
    }
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    match c {
        AdminCommand::Whoami => unreachable!("handled above"),
        AdminCommand::Add { name, key } => {
            let key = match key {
                Some(k) => k,
                None => own_token(g)?,
            };
            let a = admins::add(&repo, &access, &name, &key)?;
            if g.json {
                p.json(&a)?;
            } else {
                p.summary(format!(
                    "admin {} added: the service tenant is wrapped to their key; the log \
                     entries they cause name them (person key {})",
                    a.name,
                    &hex::encode(a.key)[..16]
                ))?;
                let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
                if coop_agent::recovery::setup(&repo, &coop).is_ok() {
                    p.note(format!(
                        "{} holds no share of the members' recovery keys: the split names the \
                         admins it was made with",
                        a.name
                    ));
                }
            }
        }
        AdminCommand::Remove { name } => {
            let r = admins::remove(&repo, &access, &name)?;
            if g.json {
                p.json(&r)?;
            } else {
                p.summary(format!(
                    "admin {name} retired: the service tenant is re-wrapped without their key \
                     and has a new data key; they read nothing of it written from now on"
                ))?;
                if r.holds_shares {
                    p.warn(format!(
                        "{name} still holds shares of the members' recovery keys: with K \
                         others they could still recover a member (each step logged) until \
                         that member's next recovery replaces its recovery key"
                    ));
                }
                p.warn(format!(
                    "{name} knew the service tenant's signing key, which admin changes do not \
                     replace (SPEC 15): watch `coop log show` for registry and writer-list \
                     changes they did not agree"
                ));
            }
        }
        AdminCommand::List => {
            let coop = coop_agent::tenant::keys(&repo, &access, "coop")?;
            let list = admins::list(&repo, &coop)?;
            if g.json {
                p.json(&list)?;
            } else {
                for a in &list {
                    p.data(format!(
                        "{:<16} {:<16} added {}{}  {}",
                        a.name,
                        &hex::encode(a.key)[..16],
                        util::local_time(&a.added),
                        a.removed
                            .as_ref()
                            .map(|r| format!(", retired {}", util::local_time(r)))
                            .unwrap_or_default(),
                        a.recipient
                    ))?;
                }
                if list.is_empty() {
                    p.note("no admin is named yet: each admin runs `coop admin add NAME` once");
                }
            }
        }
    }
    Ok(crate::exit::OK)
}
