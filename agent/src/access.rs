//! Log before access: the one place that decides whether reading a tenant's files must be
//! logged, and logs it (SPEC section 24.7).
//!
//! A member tenant opened by a key that is not one of the member's own ([`ContentAccess`])
//! yields no file reader ([`crate::read::BlobReader::new`] refuses) until
//! [`authorize_read`] appended the read, with its reason, to the admins' access log and the
//! witnesses' quorum cosigned a checkpoint that contains it. Whoever holds such a key but
//! cannot write the admins' log (no admin key) reads nothing. Reads of the service tenant by
//! an admin are logged too (reason `maintenance` by default), but a store that cannot take
//! the entry (a read-only replica after a disaster) does not stop them.

use crate::error::{Error, Result};
use crate::keys::{ContentAccess, TenantKeys};
use crate::log::{self, Appended};
use crate::repo::Repo;
use coop_formats::tlog::{Event, Reason};
use std::time::Duration;

/// One read to be logged.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    pub event: Event,
    pub reason: Option<Reason>,
    /// The snapshot read (logged keyed, see [`log::private_object`]).
    pub object: Option<String>,
    /// Free text for the member, encrypted to the tenant.
    pub detail: Option<String>,
    /// The caretaker who asked for the read (a job's `caretaker`, issue 30), logged in clear
    /// like the reason: caretakers are named in the published setup, and are no members.
    pub requested_by: Option<String>,
    /// How long to wait for the witnesses.
    pub timeout: Duration,
}

/// What [`authorize_read`] did.
#[derive(Debug)]
pub enum Authorized {
    /// Nothing to log: the member reads her own tenant, or no admin is involved.
    NotLogged,
    /// Logged (and witnessed by `witnesses`, where the writer list asks for a quorum).
    Logged {
        appended: Appended,
        witnesses: Vec<String>,
    },
    /// A read of the service tenant that the store could not log; it goes on.
    Unlogged { warning: String },
}

/// Logs a read of `keys`' tenant before it happens and opens its files (see the module docs).
/// `admin` is the caller's service-tenant keys, if it can open them. `waiting` is called once
/// the entry is appended, with the quorum the read now waits for.
pub fn authorize_read(
    repo: &Repo,
    keys: &mut TenantKeys,
    admin: Option<&TenantKeys>,
    req: &ReadRequest,
    waiting: impl FnOnce(&Appended, u32),
) -> Result<Authorized> {
    let member = keys.tenant.starts_with("member/");
    let needs = keys.content == ContentAccess::NeedsLog;
    let actor = admin
        .map(log::Actor::of)
        .filter(|a| a.name == "admin" && admin.is_some_and(|c| c.reader.is_some()));
    let Some(actor) = actor else {
        if needs {
            return Err(Error::AccessDenied {
                what: format!(
                    "this key opens {} but is not one of the member's own keys, and it cannot open \
                     tenant coop to log the read in the admins' access log first; nothing is read",
                    keys.tenant
                ),
            });
        }
        return Ok(Authorized::NotLogged);
    };
    if member && !needs {
        // The admin is also this member (her own key opened the tenant).
        return Ok(Authorized::NotLogged);
    }
    let reason = match req.reason {
        Some(r) => r,
        None if member => {
            return Err(Error::invalid(format!(
                "reading {}'s data as an admin needs --reason (member-request, incident-response, \
                 disaster-recovery, legal-request, maintenance): the access is logged, witnessed and \
                 shown to the member before anything is read",
                keys.tenant
            )))
        }
        None => Reason::Maintenance,
    };
    let object = req.object.as_deref().map(|o| log::private_object(keys, o));
    let mut entry = log::entry(&actor, req.event, Some(keys), Some(reason), object);
    if let Some(d) = &req.detail {
        entry.detail = Some(crate::tenant::encrypt_detail(keys, d)?);
    }
    if let Some(c) = &req.requested_by {
        entry.data.insert("requested_by".into(), c.clone().into());
    }
    let appended = match log::append(repo, &actor, &[entry]) {
        Ok(a) => a,
        Err(e) if !member => {
            return Ok(Authorized::Unlogged {
                warning: format!(
                "this access could not be logged ({}); going on, since {} is not a member's tenant",
                crate::error::chain(&e),
                keys.tenant
            ),
            })
        }
        Err(e) => return Err(e),
    };
    let admin = admin.expect("an actor comes from admin keys");
    let trusted = crate::writers::log_trust(repo, &admin.admin_keys)?;
    waiting(&appended, trusted.quorum);
    let witnesses = log::wait_for_quorum(repo, &appended, &actor.public(), &trusted, req.timeout)?;
    keys.content = ContentAccess::Open;
    Ok(Authorized::Logged {
        appended,
        witnesses,
    })
}
