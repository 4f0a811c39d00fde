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
#[cfg(test)]
mod tests;
#[cfg(test)]
mod writer_tests;

pub use crate::shares::finish;
use crate::shares::{clean, key_path, make_identity, member_recovery, own_share};
pub use open::{conclude, recover, resume, Recovered};

/// Sets up an epoch with `admins` (name, recipient) as holders, a recovery needing
/// `approvals` + 1 shares, and a recovery identity per member tenant (removed ones too:
/// their data stays). `open` must open every member keyring now (the admins' identities
/// while they still read every member).
fn establish(
    repo: &Repo,
    coop: &TenantKeys,
    open: &[Identity],
    approvals: u8,
    admins: &[(String, String)],
) -> Result<RecoverySetup> {
    if admins.len() > 255 {
        return Err(Error::invalid("at most 255 admins can hold a share"));
    }
    if approvals == 0 || approvals as usize >= admins.len() {
        return Err(Error::invalid(format!(
            "--threshold {approvals} with {} admins: a recovery needs at least one approval \
             by an admin other than the one who asks, so give at least {} admins",
            admins.len(),
            approvals.max(1) as usize + 1
        )));
    }
    let mut names = std::collections::BTreeSet::new();
    let mut recipients = std::collections::BTreeSet::new();
    for (name, r) in admins {
        if !names.insert(clean(name)) {
            return Err(Error::invalid(format!("admin {name:?} is given twice")));
        }
        crypt::parse_recipient(r).map_err(|e| Error::invalid(format!("admin {name}: {e}")))?;
        // One person, one share: a key given twice would let its holder approve herself.
        if !recipients.insert(r.trim()) {
            return Err(Error::invalid(format!(
                "admin {name}'s key is given for another admin too: each admin holds one \
                 share, under a key of her own"
            )));
        }
    }
    let setup = RecoverySetup {
        epoch: hex::encode(coop_formats::random_bytes::<8>()),
        threshold: approvals + 1,
        holders: admins
            .iter()
            .enumerate()
            .map(|(i, (name, r))| ShareHolder {
                name: name.clone(),
                recipient: r.clone(),
                index: i as u8 + 1,
            })
            .collect(),
        created: crate::now_rfc3339(),
    };
    setup.check().map_err(|e| Error::invalid(e.to_string()))?;
    let mut loaded = crate::members::load_for_change(repo, coop)?;
    persons_hold_the_shares(&loaded.registry, coop, admins)?;
    no_split_in_the_log(repo, coop)?;
    // Every keyring must open before anything changes: a split that re-wraps half the
    // members would leave the other half readable by every admin.
    for m in &loaded.registry.members {
        crate::members::open_ring(repo, open, m).map_err(|e| match e {
            Error::NotRecipient { tenant } => Error::AccessDenied {
                what: format!(
                    "{tenant}'s keyring does not open with the keys given, so it cannot be \
                     re-wrapped to a recovery key"
                ),
            },
            e => e,
        })?;
    }
    loaded.registry.recovery = Vec::new();
    loaded.registry.recovery_setup = Some(setup.clone());
    for m in loaded.registry.members.iter_mut() {
        m.recovery = Some(make_identity(repo, &setup, None, None)?);
        // The last moment an admin opens the member's keyring. A new data identity: whoever
        // kept a copy of the keyring from before the split (every admin could open it) reads
        // nothing written after it. The keyring holding it is written (still to the readers
        // of before) ahead of the registry that names it, so that no writer encrypts to a
        // key a crash loses. Then the member tenant signs its writer material, which writers
        // hold every later registry to (SPEC 15.3).
        if let Ok(mut ring) = crate::members::open_ring(repo, open, m) {
            m.data_recipient = ring
                .rotate_data_identity()
                .map_err(|e| Error::damaged("keyring", e))?;
            crate::members::replace_keyring(repo, coop, &mut ring)?;
            crate::members::sign_material(repo, m, &ring)?;
        }
    }
    // The registry first (keyrings re-wrapped before the registry records their recovery
    // key would open with a key nobody can rebuild); a crash before every keyring is
    // re-wrapped leaves some still open to the admins, which the next `recovery init`
    // finishes (see [`init`]).
    crate::members::save(repo, coop, &mut loaded)?;
    for m in &loaded.registry.members {
        crate::registry::pin_signed(repo, m);
    }
    crate::fault::point("recovery-init:after-registry");
    let actor = log::Actor::of(coop);
    let e = init_entry(coop, &actor, &setup, &loaded.registry)?;
    log::append(repo, &actor, &[e])?;
    for m in &loaded.registry.members {
        let recovery = crate::members::recovery_readers(&loaded.registry, m);
        crate::members::rewrap(repo, coop, open, m, &recovery)?;
    }
    Ok(setup)
}

/// Every share holder, and the admin who splits, must be an admin person (SPEC 24.11): the
/// split names the persons, and only their signed entries count from then on. A split without
/// them would leave who approves a recovery, who joins the admins and which keys writers take
/// for a member (15.4) to the shared admin key, which every admin holds alone.
fn persons_hold_the_shares(
    reg: &coop_formats::registry::Registry,
    coop: &TenantKeys,
    admins: &[(String, String)],
) -> Result<()> {
    let active = || reg.admins.iter().filter(|a| a.removed.is_none());
    let how = "add every admin first with `coop admin add NAME TOKEN`, the token being what \
               `coop admin whoami` prints on that admin's machine (`coop admin add NAME` for \
               yourself), then run `coop recovery init` again";
    for (name, r) in admins {
        if !active().any(|a| a.recipient == *r) {
            return Err(Error::invalid(format!(
                "share holder {name} ({r}) is not an admin person of this cooperative: after \
                 the split only admin persons approve recoveries and admin changes; {how}"
            )));
        }
    }
    let me = coop.person.as_ref().map(|k| k.verifying_key().to_bytes());
    if !me.is_some_and(|k| active().any(|a| a.key == k)) {
        return Err(Error::invalid(format!(
            "the admin who splits must be an admin person herself; {how}"
        )));
    }
    Ok(())
}

/// The first `recovery-init` entry that names persons decides who counts from then on (SPEC
/// 24.11), and later ones change nothing: a registry without a recovery setup while the
/// admins' log holds such an entry means someone logged a split of her own (perhaps naming
/// only keys of hers). This split would not count; refuse, and say so.
fn no_split_in_the_log(repo: &Repo, coop: &TenantKeys) -> Result<()> {
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let Some(a) = trusted.activation.as_ref() else {
        return Ok(());
    };
    if let Some((origin, p)) = a.persons.iter().find(|(_, p)| p.restricted_from.is_some()) {
        return Err(Error::AccessDenied {
            what: format!(
                "the admins' log {origin} already holds a recovery split (entry {}, naming {} \
                 person(s)) that this registry does not show: someone logged a split alone. \
                 The log's first split decides who counts, so a new one would not; look at it \
                 with `coop log show` and talk to the other admins before anything else",
                p.restricted_from.unwrap_or_default(),
                p.founding.len()
            ),
        });
    }
    Ok(())
}

/// The split's log entry: the setup, the admin persons from now on (a person joins or leaves
/// only with K other persons' approvals, SPEC 24.11) and each member's writer material.
fn init_entry(
    coop: &TenantKeys,
    actor: &log::Actor,
    setup: &RecoverySetup,
    registry: &coop_formats::registry::Registry,
) -> Result<Entry> {
    let mut e = log::entry(
        actor,
        Event::RecoveryInit,
        None,
        None,
        Some(setup.epoch.clone()),
    );
    e.data.insert(
        "setup".into(),
        serde_json::to_value(setup).expect("serializes"),
    );
    // The admin persons from now on: a person joins or leaves only with K other persons'
    // approvals (SPEC 24.11).
    let persons: Vec<String> = registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .map(|a| hex::encode(a.key))
        .collect();
    e.data.insert("persons".into(), persons.into());
    // Each person's identity, as the log vouches for it from now on: who may hold shares in a
    // re-split (SPEC 25.5), and whose deals count.
    let recipients: serde_json::Map<String, serde_json::Value> = registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .map(|a| (hex::encode(a.key), a.recipient.clone().into()))
        .collect();
    e.data.insert("person_recipients".into(), recipients.into());
    // And their names, for whoever reads the log without the registry (members).
    let names: serde_json::Map<String, serde_json::Value> = registry
        .admins
        .iter()
        .filter(|a| a.removed.is_none())
        .map(|a| (hex::encode(a.key), a.name.clone().into()))
        .collect();
    e.data.insert("person_names".into(), names.into());
    e.data
        .insert("person_approvals".into(), setup.approvals().into());
    // The material writers take for each member from now on (SPEC 15.4): a signer kept from
    // before the split re-keys nobody.
    // And the slot holding each member's recovery identity (SPEC 25.6): an approval releases
    // only the slot the log binds to the requested member.
    // And each member's name, by its keyed tag: a name is bound to its tenant for good.
    let mut materials = serde_json::Map::new();
    let mut recoveries = serde_json::Map::new();
    let mut names = serde_json::Map::new();
    for m in &registry.members {
        let tag = log::tenant_tag(&crate::registry::member_writer_keys(coop, m)?);
        if let Some(r) = m.recovery.as_ref().filter(|r| r.epoch == setup.epoch) {
            recoveries.insert(tag.clone(), r.slot.clone().into());
        }
        names.insert(
            tag.clone(),
            crate::registry::material::name_tag(coop, &m.name).into(),
        );
        materials.insert(tag, crate::registry::material::named(m));
    }
    e.data.insert("materials".into(), materials.into());
    e.data.insert("recoveries".into(), recoveries.into());
    e.data.insert("names".into(), names.into());
    Ok(e)
}

/// `coop recovery init`: `approvals` admins other than the requester must approve a
/// recovery. Run again after an interrupted init, it finishes re-wrapping the members whose
/// keyrings still open with the admin's keys.
pub fn init(
    repo: &Repo,
    access: &crate::keys::Access,
    approvals: u8,
    admins: &[(String, String)],
) -> Result<RecoverySetup> {
    let (coop, ids) = crate::members::admin(repo, access)?;
    let loaded = crate::members::load(repo, &coop)?;
    // One form per key: an `ssh-ed25519` key is the X25519 recipient coop encrypts to (the
    // one `coop admin whoami` registers for an SSH identity), so the two compare equal.
    let admins: Vec<(String, String)> = admins
        .iter()
        .map(|(n, r)| (n.clone(), crypt::canonical_recipient(r)))
        .collect();
    let admins = admins.as_slice();
    let Some(setup) = loaded.registry.recovery_setup.clone() else {
        return establish(repo, &coop, &ids, approvals, admins);
    };
    // A split that stopped after the registry and before its log entry: the entry now (the
    // log has no split yet, so nobody's persons are restricted and any admin could split).
    let persons = crate::writers::log_trust(repo, &coop.admin_keys)?
        .activation
        .unwrap_or_default();
    let mut finished = 0;
    if persons.person_approvals().is_none() {
        no_split_in_the_log(repo, &coop)?;
        let actor = log::Actor::of(&coop);
        let e = init_entry(&coop, &actor, &setup, &loaded.registry)?;
        log::append(repo, &actor, &[e])?;
        finished += 1;
    }
    for m in &loaded.registry.members {
        if m.recovery.is_some() && crate::members::open_ring(repo, &ids, m).is_ok() {
            let recovery = crate::members::recovery_readers(&loaded.registry, m);
            crate::members::rewrap(repo, &coop, &ids, m, &recovery)?;
            finished += 1;
        }
    }
    if finished > 0 {
        return Ok(setup);
    }
    Err(Error::invalid(format!(
        "recovery is split already (epoch {}, {} approvals of {} admins); `coop recovery \
         status` shows it",
        setup.epoch,
        setup.approvals(),
        setup.holders.len()
    )))
}

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
        let tag = log::tenant_tag(&crate::registry::member_writer_keys(coop, m)?);
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
