//! `coop recovery …`: k-of-n recovery of member data (SPEC section 25).

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Subcommand;
use coop_agent::{Access, Error};
use serde::Serialize;

#[derive(Subcommand)]
pub enum RecoveryCommand {
    /// Split recovery among the admins: each member gets a recovery identity of their own,
    /// split so that one admin asking and K others approving can read that one member, and
    /// fewer never can. Re-wraps every member tenant so that no admin key opens it alone.
    /// Run again after an interrupted init, it finishes the re-wrapping.
    Init {
        /// How many admins *besides the one who asks* must approve a recovery (K; a
        /// recovery then takes K + 1 of the admins, so give at least K + 1).
        #[arg(long, visible_alias = "approvals", value_name = "K")]
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
        /// The member you were asked to approve a recovery of: nothing is released unless the
        /// request is about her (by the tenant the admins' log binds her name to).
        #[arg(long, value_name = "NAME")]
        member: Option<String>,
        /// How long to wait for the witnesses to cosign the request (the site agents carry
        /// the log to them) before giving up (exit 13, no share released).
        #[arg(long, default_value = "10m", env = "COOP_LOG_TIMEOUT")]
        log_timeout: String,
    },
    /// Do your part of the running re-split of the shares (after an admin person joined or
    /// left): deal your old shares to the new holders, combine what they dealt you, and end
    /// it once every new holder has. Each admin runs it until it reports the re-split ended.
    Reshare,
    /// Show the current split, and a re-split that runs.
    Status,
}

fn ids(access: &Access) -> Result<std::sync::Arc<Vec<coop_formats::crypt::Identity>>> {
    match access {
        Access::Identity(ids, _) => Ok(ids.clone()),
        Access::Writer(_) => Err(Error::AccessDenied {
            what: "recovery needs an admin identity, not a writer key".into(),
        }
        .into()),
    }
}

/// Lists, per member, the keys that read their tenant besides the member's own and their
/// recovery key (issue 25 finding 6: a spare key added before the split survives it).
fn readers_after_split(g: &Global, repo: &coop_agent::repo::Repo, access: &Access) -> Result<()> {
    if g.json {
        return Ok(());
    }
    let p = g.printer();
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let reg = coop_agent::members::load(repo, &coop)?.registry;
    let admins: Vec<String> = reg
        .recovery_setup
        .iter()
        .flat_map(|s| {
            s.holders
                .iter()
                .map(|h| coop_formats::crypt::canonical_recipient(&h.recipient))
        })
        .collect();
    p.data(
        "keys that read each member from now on (the member's registered keys, their \
            recovery key):",
    )?;
    for m in reg.members.iter().filter(|m| m.removed.is_none()) {
        let keys: Vec<String> = m
            .recipients
            .iter()
            .map(|r| {
                let (f, comment) = coop_agent::report::fingerprint(r);
                // Compared as keys, not strings: an admin's `ssh-ed25519` line among a
                // member's keys is her X25519 recipient in the setup.
                let admin = if admins.contains(&coop_formats::crypt::canonical_recipient(r)) {
                    " AN ADMIN'S KEY"
                } else {
                    ""
                };
                match comment {
                    Some(c) => format!("{f} ({c}){admin}"),
                    None => format!("{f}{admin}"),
                }
            })
            .collect();
        match &m.recovery {
            Some(_) => p.data(format!("  {}: {} + recovery key", m.name, keys.join(", ")))?,
            None => p.warn(format!(
                "member {} has no recovery key of this epoch: run `coop recovery init` again",
                m.name
            )),
        }
        if keys.iter().any(|k| k.ends_with("AN ADMIN'S KEY")) {
            p.warn(format!(
                "an admin's own key is among {}'s registered keys: that admin reads {} alone; \
                 remove it with `coop member recipients {} --remove KEY` (with {}'s key)",
                m.name, m.name, m.name, m.name
            ));
        }
    }
    Ok(())
}

/// `coop recovery init`: the split, who reads each member from then on, and the persons.
fn init(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
    threshold: u8,
    admins: &[String],
) -> Result<()> {
    let p = g.printer();
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
    let s = coop_agent::recovery::init(repo, access, threshold, &admins)?;
    if g.json {
        p.json(&s)?;
    } else {
        p.summary(format!(
            "recovery epoch {}: reading a member's data takes one admin asking and {} \
                     other(s) approving, of {} ({}); each member has a recovery key of their own, \
                     every member tenant is re-wrapped to it and no admin key opens one alone",
            s.epoch,
            s.approvals(),
            s.holders.len(),
            s.holders
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))?;
        if s.threshold as usize >= s.holders.len() {
            p.warn(format!(
                "a recovery needs every one of the {} shares: if one admin loses her key, or \
                 leaves before the re-split her leaving starts has ended, no member can be \
                 recovered and that admin cannot be replaced. With at least {} admins one may \
                 be missing (add one, then `coop recovery reshare`)",
                s.holders.len(),
                s.threshold as usize + 1
            ));
        }
        readers_after_split(g, repo, access)?;
        let coop = coop_agent::tenant::keys(repo, access, "coop")?;
        let listing = coop_agent::admins::listing(repo, &coop)?;
        if listing.approvals_needed.is_none() {
            p.warn(
                "no admin is registered as a person (`coop admin add NAME`), so the \
                         split named no persons: any person key counts as an admin person, and \
                         one admin can add or retire admins alone (SPEC 24.11)",
            );
        } else {
            p.note(format!(
                "the admin persons from now on: {}; adding or retiring one takes {} \
                         other admins' approval (`coop admin approve`)",
                listing
                    .admins
                    .iter()
                    .filter(|a| a.counts)
                    .map(|a| a.admin.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                s.approvals()
            ));
        }
    }
    Ok(())
}

/// `recovery request --json` and `recovery approve --json`: the request's ID with what was
/// logged (the engine's result: where the entry is, and for an approval whose share it is).
#[derive(Serialize)]
struct Logged<'a, T: Serialize> {
    request: &'a str,
    #[serde(flatten)]
    logged: &'a T,
}

pub fn run(g: &Global, c: RecoveryCommand) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    match c {
        RecoveryCommand::Init { threshold, admins } => {
            init(g, &repo, &access, threshold, &admins)?;
        }
        RecoveryCommand::Request {
            member,
            reason,
            detail,
        } => request(g, &repo, &access, &member, &reason, detail.as_deref())?,
        RecoveryCommand::Approve {
            id,
            member,
            log_timeout,
        } => approve(g, &repo, &access, &id, member.as_deref(), &log_timeout)?,
        RecoveryCommand::Reshare => {
            let progress = coop_agent::reshare::run(&repo, &access)?;
            reshared(g, &progress)?;
        }
        RecoveryCommand::Status => status(g, &repo, &access)?,
    }
    Ok(crate::exit::OK)
}

/// `coop recovery request`: logs the request; this machine keeps its key.
fn request(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
    member: &str,
    reason: &str,
    detail: Option<&str>,
) -> Result<()> {
    let p = g.printer();
    let reason = reason
        .parse::<coop_formats::tlog::Reason>()
        .map_err(|what| Error::Invalid { what })?;
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let (id, a) =
        coop_agent::recovery::request(repo, &coop, &ids(access)?, member, reason, detail)?;
    if g.json {
        p.json_sorted(&Logged {
            request: &id,
            logged: &a,
        })?;
    } else {
        p.summary(format!(
            "request {id} logged (entry {} of {}).\nOther admins approve with `coop recovery approve {id}`; \
             then `coop export --member {member} --recovery {id} --reason {reason} …` on this machine (it keeps the request's key).",
            a.first, a.origin
        ))?;
    }
    Ok(())
}

/// `coop recovery approve`: releases this admin's share to the request, once witnessed.
fn approve(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
    id: &str,
    member: Option<&str>,
    log_timeout: &str,
) -> Result<()> {
    let p = g.printer();
    let timeout = util::parse_log_timeout(log_timeout)?;
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let waiting = |m: &str| p.note(m);
    let ok = coop_agent::recovery::approve_for(
        repo,
        &coop,
        &ids(access)?,
        id,
        member,
        &coop_agent::recovery::Wait {
            timeout,
            waiting: &waiting,
        },
    )?;
    let a = &ok.appended;
    if g.json {
        p.json_sorted(&Logged {
            request: id,
            logged: &ok,
        })?;
    } else {
        p.summary(format!(
            "{}'s share of {}'s recovery key released to request {id} only (logged as \
             entry {} of {})",
            ok.holder, ok.member, a.first, a.origin
        ))?;
    }
    Ok(())
}

/// `coop recovery status`: the split, its holders, and who reads what after it.
fn status(
    g: &Global,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
) -> Result<()> {
    let p = g.printer();
    let coop = coop_agent::tenant::keys(repo, access, "coop")?;
    let s = coop_agent::recovery::setup(repo, &coop)?;
    let running = coop_agent::reshare::status(repo, &coop)?;
    if g.json {
        p.json(&Status {
            setup: &s,
            reshare: running.as_ref(),
        })?;
        return Ok(());
    }
    p.data(format!(
        "epoch {} since {}: one admin asks and {} approve, of {}",
        s.epoch,
        s.created,
        s.approvals(),
        s.holders.len()
    ))?;
    for h in &s.holders {
        p.data(format!("  {:<16} {}", h.name, h.recipient))?;
    }
    if let Some(r) = &running {
        reshared(g, r)?;
    }
    readers_after_split(g, repo, access)
}

/// `recovery status --json`: the split in force and a re-split that runs.
#[derive(Serialize)]
struct Status<'a> {
    #[serde(flatten)]
    setup: &'a coop_formats::recovery::RecoverySetup,
    #[serde(skip_serializing_if = "Option::is_none")]
    reshare: Option<&'a coop_agent::reshare::Progress>,
}

/// Where a re-split stands and what to do next.
pub(crate) fn reshared(g: &Global, r: &coop_agent::reshare::Progress) -> Result<()> {
    let p = g.printer();
    if g.json {
        p.json(r)?;
        return Ok(());
    }
    if r.finished {
        p.summary(format!(
            "the re-split ended: epoch {} is in force with {} holders ({}); the shares of \
             epoch {} are deleted (a logged deletion)",
            r.epoch,
            r.holders.len(),
            r.holders.join(", "),
            r.from
        ))?;
        return Ok(());
    }
    let did = if r.did.is_empty() {
        "nothing to do for you now".to_string()
    } else {
        format!("you {}", r.did.join(" and "))
    };
    p.summary(format!(
        "re-split of the recovery shares from epoch {} to {}: {did}; dealt by {} of the {} \
             old holders needed ({}), combined by {} of {} new holders ({})",
        r.from,
        r.epoch,
        r.dealt.len(),
        r.dealers_needed,
        r.dealt.join(", "),
        r.combined.len(),
        r.holders.len(),
        r.combined.join(", ")
    ))?;
    p.note(
        "until it ends the old shares stay in force; every admin runs `coop recovery reshare` \
         (old holders deal first, then each new holder combines); a deal or combination counts \
         once the witnesses cosigned it, so run it again after the next witness round",
    );
    Ok(())
}
