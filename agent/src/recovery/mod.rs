//! k-of-n recovery of member data (SPEC section 25): no single admin holds a key to a
//! member's tenant, and a recovery opens one member, once.
//!
//! - [`init`] fixes who holds shares and how many a recovery needs (the approvals asked for
//!   plus the requester's own share), gives every member tenant a recovery identity of its
//!   own, splits each among the holders (each share age-encrypted to its admin, stored under
//!   `recovery/<epoch>/<slot>/`), re-wraps each member's keyring to the member's own keys
//!   plus that member's recovery key (and no admin key), and logs the setup. An identity
//!   exists whole only in memory, only then. Members added later get theirs at `member add`.
//! - [`request`] logs a request to read one member's data, with a reason and an ephemeral
//!   public key; the ephemeral secret stays in the requester's cache directory.
//! - [`approve`] (by another admin) checks that the request is in a witnessed checkpoint of
//!   the admins' log, decrypts that admin's own share *of the requested member's identity*
//!   and logs it re-encrypted to the request's ephemeral key.
//! - [`recover`] combines the requester's own share with the witnessed releases (the own
//!   share never counts as an approval) into that one member's recovery identity; [`conclude`]
//!   then replaces the member's data identity and recovery identity, so that nothing the
//!   recovery released opens data written afterwards.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::log::{self, admin_entries as find, Appended, Found};
use crate::repo::Repo;
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::{MemberRecovery, RecoverySetup, ShareHolder};
use coop_formats::registry::Member;
use coop_formats::tlog::{Entry, Event, Reason};
use zeroize::Zeroize;

mod open;
#[cfg(test)]
mod reshare_tests;
#[cfg(test)]
mod retired_tests;
#[cfg(test)]
mod slot_tests;
mod split;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer_tests;

pub use crate::shares::finish;
use crate::shares::{clean, key_path, make_identity, member_recovery, own_share};
pub use open::{conclude, recover, resume, Recovered};
pub use split::init;

pub fn setup(repo: &Repo, coop: &TenantKeys) -> Result<RecoverySetup> {
    crate::members::load(repo, coop)?
        .registry
        .recovery_setup
        .ok_or_else(|| Error::NotFound {
            what: "a recovery setup (run `coop recovery init` first)".into(),
        })
}

/// `coop recovery request`: logs the request; returns its ID.
pub fn request(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    member: &str,
    reason: Reason,
    detail: Option<&str>,
) -> Result<(String, Appended)> {
    use std::io::Write;
    let (setup, m, r) = member_recovery(repo, coop, member)?;
    let member_keys = crate::registry::member_writer_keys(coop, &m)?;
    let requester = own_share(repo, &setup, &r, ids)?.map(|(h, _)| h.name);
    let (mut secret, public) = crypt::generate_identity();
    let id = blake3::hash(public.as_bytes()).to_hex()[..16].to_string();
    let p = key_path(repo, &id)?;
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&p)
            .map_err(|e| Error::io(&p, e))?;
        f.write_all(secret.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(&p, e))?;
    }
    secret.zeroize();
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::RecoveryRequest,
        Some(&member_keys),
        Some(reason),
        Some(id.clone()),
    );
    e.data.insert("epoch".into(), setup.epoch.clone().into());
    e.data.insert("slot".into(), r.slot.clone().into());
    e.data.insert("ephemeral".into(), public.into());
    if let Some(r) = requester {
        e.data.insert("requester".into(), r.into());
    }
    if let Some(d) = detail {
        e.detail = Some(crate::tenant::encrypt_detail(&member_keys, d)?);
    }
    let a = log::append(repo, &actor, &[e])?;
    Ok((id, a))
}

fn request_entry(repo: &Repo, trusted: &log::Trusted, id: &str) -> Result<Found> {
    find(repo, trusted, |e| {
        e.event == Event::RecoveryRequest && e.object.as_deref() == Some(id)
    })?
    .into_iter()
    .next()
    .ok_or_else(|| Error::NotFound {
        what: format!("recovery request {id} in the access log"),
    })
}

/// How long [`approve`] and [`recover`] wait for log entries to be witnessed, and whom they
/// tell what they wait for (called once, when they start waiting).
pub struct Wait<'a> {
    pub timeout: std::time::Duration,
    pub waiting: &'a dyn Fn(&str),
}

/// How often a waiting approval or recovery reads the log again.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// `coop recovery approve`: releases the approver's share to the request, once a quorum of
/// witnesses cosigned the request (waiting up to `wait.timeout` for that).
pub fn approve(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    id: &str,
    wait: &Wait,
) -> Result<Approved> {
    approve_for(repo, coop, ids, id, None, wait)
}

/// [`approve`], refused unless the request is about `member` (when given): what the approver
/// was asked to approve, checked before anything is released.
pub fn approve_for(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    id: &str,
    member: Option<&str>,
    wait: &Wait,
) -> Result<Approved> {
    use base64::Engine;
    let (trusted, req) = witnessed_request(repo, coop, id, wait)?;
    // After a split that names persons, only a person who counts now asks: a retired admin
    // whose old share is still in force until the re-split ends gets no approval.
    if let Some(persons) = trusted
        .activation
        .as_ref()
        .filter(|a| a.person_approvals().is_some())
    {
        let counts = match req.entry.person() {
            coop_formats::tlog::PersonCheck::Signed(by) => persons.person_counts(&by),
            _ => false,
        };
        if !counts {
            return Err(Error::AccessDenied {
                what: format!(
                    "recovery request {id} is not signed by an admin person who counts now (a \
                     retired admin, or no person at all); nothing is released"
                ),
            });
        }
    }
    let (setup, m, r) = requested_member(repo, coop, &req.entry)?;
    if let Some(want) = member.filter(|w| *w != m.name) {
        return Err(Error::AccessDenied {
            what: format!(
                "recovery request {id} is about member {:?}, not {want:?}; nothing is released",
                m.name
            ),
        });
    }
    if req.entry.data.get("epoch").and_then(|v| v.as_str()) != Some(setup.epoch.as_str())
        || req.entry.data.get("slot").and_then(|v| v.as_str()) != Some(r.slot.as_str())
    {
        return Err(Error::invalid(format!(
            "request {id} is for an earlier recovery identity of {}; make a new request",
            m.name
        )));
    }
    let Some((holder, mut share)) = own_share(repo, &setup, &r, ids)? else {
        return Err(Error::AccessDenied {
            what: format!(
                "your identity holds no share of {}'s recovery identity (epoch {})",
                m.name, setup.epoch
            ),
        });
    };
    if req.entry.data.get("requester").and_then(|v| v.as_str()) == Some(holder.name.as_str()) {
        return Err(Error::AccessDenied {
            what: format!(
                "{} made this request; another admin must approve it",
                holder.name
            ),
        });
    }
    let released = find(repo, &trusted, |e| {
        e.event == Event::RecoveryRelease
            && e.object.as_deref() == Some(id)
            && e.data.get("holder").and_then(|v| v.as_str()) == Some(holder.name.as_str())
    })?;
    if !released.is_empty() {
        return Err(Error::invalid(format!(
            "{} approved request {id} already",
            holder.name
        )));
    }
    let eph = req
        .entry
        .data
        .get("ephemeral")
        .and_then(|v| v.as_str())
        .ok_or_else(|| Error::damaged(format!("request {id}"), "no ephemeral key"))?;
    let to = [crypt::parse_recipient(eph)
        .map_err(|e| Error::damaged(format!("request {id}"), e.to_string()))?];
    let mut ct = Vec::new();
    crypt::encrypt_to(&to, &[&share], &mut ct)
        .map_err(|e| Error::crypto("encrypting a share", e))?;
    share.zeroize();
    let actor = log::Actor::of(coop);
    let mut e = log::entry(
        &actor,
        Event::RecoveryRelease,
        None,
        None,
        Some(id.to_string()),
    );
    e.tenant = req.entry.tenant.clone();
    e.reason = req.entry.reason;
    e.data.insert("epoch".into(), setup.epoch.clone().into());
    e.data.insert("holder".into(), holder.name.clone().into());
    e.data.insert(
        "share".into(),
        base64::engine::general_purpose::STANDARD.encode(ct).into(),
    );
    let a = log::append(repo, &actor, &[e])?;
    Ok(Approved {
        holder: holder.name,
        member: m.name,
        appended: a,
    })
}

/// The recovery request `id` once a quorum of witnesses cosigned it, with the log trust it
/// was read under; waits up to `wait.timeout` for that (telling `wait.waiting` once).
fn witnessed_request(
    repo: &Repo,
    coop: &TenantKeys,
    id: &str,
    wait: &Wait,
) -> Result<(log::Trusted, Found)> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
        let req = request_entry(repo, &trusted, id)?;
        if req.witnessed {
            return Ok((trusted, req));
        }
        if started.elapsed() >= wait.timeout {
            return Err(Error::NotWitnessed {
                what: format!("recovery request {id}"),
                need: trusted.quorum,
                waited_secs: started.elapsed().as_secs(),
                outcome: "no share was released".into(),
            });
        }
        if !told {
            (wait.waiting)(&format!(
                "recovery request {id} is not yet cosigned by {} witness(es); waiting up to {} \
                 for them …",
                trusted.quorum,
                humantime::format_duration(wait.timeout)
            ));
            told = true;
        }
        std::thread::sleep(POLL.min(wait.timeout.saturating_sub(started.elapsed())));
    }
}

/// What [`approve`] released. Serialised flat: `holder`, `member`, and the approval's `log`
/// and `index`.
#[derive(serde::Serialize)]
pub struct Approved {
    /// The approving holder.
    pub holder: String,
    /// The member the request (and so the released share) is for.
    pub member: String,
    #[serde(flatten)]
    pub appended: Appended,
}

/// The member a logged request is about (by its keyed tenant tag), with its recovery.
fn requested_member(
    repo: &Repo,
    coop: &TenantKeys,
    req: &Entry,
) -> Result<(RecoverySetup, Member, MemberRecovery)> {
    let reg = crate::members::load(repo, coop)?.registry;
    for m in &reg.members {
        let tag = crate::registry::log_tag(m);
        if req.tenant.as_deref() == Some(tag.as_str()) {
            // The name an approver is shown is the one the admins' log binds to this tenant
            // (SPEC 15.4), not merely the registry's, which one admin can rewrite (swapping
            // two members' names, so that approving "carol" would release bob's share).
            if !crate::registry::material::name_bound(repo, coop, m)? {
                return Err(Error::damaged(
                    "registry",
                    format!(
                        "the registry names {:?} for the tenant this request is about, but the \
                         admins' log binds the name to another tenant (or that tenant to \
                         another name): a registry rewritten by one admin; nothing is released",
                        m.name
                    ),
                ));
            }
            return member_recovery(repo, coop, &m.name);
        }
    }
    Err(Error::NotFound {
        what: "the member this request is about in the registry".into(),
    })
}
