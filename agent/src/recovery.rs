//! k-of-n recovery of member data (SPEC section 25): no single admin holds a key to a
//! member's tenant.
//!
//! - [`init`] creates a recovery identity, splits it among the admins (each share
//!   age-encrypted to its admin, stored under `recovery/<epoch>/`), re-wraps every member
//!   tenant's keyring to the member's own keys plus the recovery identity's public key (and no
//!   admin key), and logs the setup. The whole identity exists only in memory, only then.
//! - [`request`] logs a request to read one member's data, with a reason and an ephemeral
//!   public key; the ephemeral secret stays in the requester's cache directory.
//! - [`approve`] (by another admin) checks that the request is in a witnessed checkpoint,
//!   decrypts that admin's own share and logs it re-encrypted to the request's ephemeral key.
//! - [`recover`] gathers K witnessed releases, combines the shares in memory and returns the
//!   recovery identity; [`rotate`] then starts a new epoch, since copies wrapped to the old
//!   recovery key stay in the immutable store.

use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::log::{self, Appended};
use crate::repo::Repo;
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::{self as rec, RecoverySetup, ShareFile, ShareHolder};
use coop_formats::tlog::{Entry, Event, Reason};
use std::path::PathBuf;
use zeroize::Zeroize;

fn clean(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn share_path(epoch: &str, holder: &str) -> String {
    format!("recovery/{epoch}/{}", clean(holder))
}

/// Splits a new recovery identity among `admins` (name, recipient) and re-wraps every member
/// tenant to it. `open` must open every member keyring now (the admins' identities while
/// they are still recovery recipients; the recovered identity when rotating).
fn establish(
    repo: &Repo,
    coop: &TenantKeys,
    open: &[Identity],
    threshold: u8,
    admins: &[(String, String)],
) -> Result<RecoverySetup> {
    if admins.len() > 255 {
        return Err(Error::invalid("at most 255 admins can hold a share"));
    }
    let mut names = std::collections::BTreeSet::new();
    for (name, r) in admins {
        if !names.insert(clean(name)) {
            return Err(Error::invalid(format!("admin {name:?} is given twice")));
        }
        crypt::parse_recipient(r).map_err(|e| Error::invalid(format!("admin {name}: {e}")))?;
    }
    let mut loaded = crate::members::load_for_change(repo, coop)?;
    let (mut text, recipient) = crypt::generate_identity();
    let shares = rec::split(text.as_bytes(), threshold, admins.len() as u8)
        .map_err(|e| Error::invalid(e.to_string()))?;
    text.zeroize();
    let epoch = hex::encode(coop_formats::random_bytes::<8>());
    let mut holders = Vec::new();
    for ((name, r), share) in admins.iter().zip(&shares) {
        let file = ShareFile {
            epoch: epoch.clone(),
            holder: name.clone(),
            share: hex::encode(share),
        };
        let mut json = serde_json::to_vec(&file).expect("serializes");
        let mut ct = Vec::new();
        let to = [crypt::parse_recipient(r).map_err(|e| Error::invalid(e.to_string()))?];
        crypt::encrypt_to(&to, &[&json], &mut ct)
            .map_err(|e| Error::crypto("encrypting a share", e))?;
        json.zeroize();
        repo.store.put(&share_path(&epoch, name), ct)?;
        holders.push(ShareHolder {
            name: name.clone(),
            recipient: r.clone(),
            index: share[0],
            commitment: rec::commitment(share),
        });
    }
    drop(shares);
    let setup = RecoverySetup {
        epoch: epoch.clone(),
        threshold,
        recipient: recipient.clone(),
        holders,
        created: crate::now_rfc3339(),
    };
    // Every member tenant (removed ones too: their data stays) is re-wrapped.
    let recovery = vec![recipient];
    for m in loaded.registry.members.clone() {
        crate::members::rewrap(repo, coop, open, &m, &recovery).map_err(|e| match e {
            Error::NotRecipient { tenant } => Error::AccessDenied {
                what: format!(
                    "{tenant}'s keyring does not open with the keys given, so it cannot be re-wrapped to the new recovery key"
                ),
            },
            e => e,
        })?;
    }
    loaded.registry.recovery = recovery;
    loaded.registry.recovery_setup = Some(setup.clone());
    crate::members::save(repo, coop, &mut loaded)?;
    let actor = log::Actor::of(coop);
    let mut e = log::entry(&actor, Event::RecoveryInit, None, None, Some(epoch));
    e.data.insert(
        "setup".into(),
        serde_json::to_value(&setup).expect("serializes"),
    );
    log::append(repo, &actor, &[e])?;
    Ok(setup)
}

/// `coop recovery init`.
pub fn init(
    repo: &Repo,
    access: &crate::keys::Access,
    threshold: u8,
    admins: &[(String, String)],
) -> Result<RecoverySetup> {
    let (coop, ids) = crate::members::admin(repo, access)?;
    if crate::members::load(repo, &coop)?
        .registry
        .recovery_setup
        .is_some()
    {
        return Err(Error::invalid(
            "a recovery split exists already; a new epoch starts after each recovery (or give --force-new-epoch)",
        ));
    }
    establish(repo, &coop, &ids, threshold, admins)
}

/// Starts a new epoch with the same holders and threshold, re-wrapping with `open`.
pub fn rotate(repo: &Repo, coop: &TenantKeys, open: &[Identity]) -> Result<RecoverySetup> {
    let old = setup(repo, coop)?;
    let admins: Vec<(String, String)> = old
        .holders
        .iter()
        .map(|h| (h.name.clone(), h.recipient.clone()))
        .collect();
    establish(repo, coop, open, old.threshold, &admins)
}

pub fn setup(repo: &Repo, coop: &TenantKeys) -> Result<RecoverySetup> {
    crate::members::load(repo, coop)?
        .registry
        .recovery_setup
        .ok_or_else(|| Error::NotFound {
            what: "a recovery setup (run `coop recovery init` first)".into(),
        })
}

/// The holder whose share `ids` decrypt, with the share's bytes.
fn own_share(
    repo: &Repo,
    setup: &RecoverySetup,
    ids: &[Identity],
) -> Result<Option<(ShareHolder, Vec<u8>)>> {
    for h in &setup.holders {
        let ct = match repo.store.get(&share_path(&setup.epoch, &h.name)) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let Ok(mut plain) = crypt::decrypt(ids, &ct, 1 << 16) else {
            continue;
        };
        let file: std::result::Result<ShareFile, _> = serde_json::from_slice(&plain);
        plain.zeroize();
        let file =
            file.map_err(|e| Error::damaged(share_path(&setup.epoch, &h.name), e.to_string()))?;
        let share = hex::decode(&file.share)
            .map_err(|_| Error::damaged(share_path(&setup.epoch, &h.name), "not hex"))?;
        if file.epoch != setup.epoch
            || file.holder != h.name
            || rec::commitment(&share) != h.commitment
        {
            return Err(Error::damaged(
                share_path(&setup.epoch, &h.name),
                "the share does not match the setup's commitment (forged or of another epoch)",
            ));
        }
        return Ok(Some((h.clone(), share)));
    }
    Ok(None)
}

fn key_path(repo: &Repo, id: &str) -> Result<PathBuf> {
    let cache = repo
        .cache_dir()
        .ok_or_else(|| Error::invalid("a recovery request needs a cache directory for its key"))?;
    Ok(cache
        .join(repo.config.repo_id.to_hex())
        .join(format!("recovery-{id}.key")))
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
    let setup = setup(repo, coop)?;
    let member_keys = crate::members::writer_keys_for_member(repo, coop, member)?;
    let requester = own_share(repo, &setup, ids)?.map(|(h, _)| h.name);
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

/// An entry found in the logs, where it is, and whether a quorum witnessed it.
struct Found {
    entry: Entry,
    witnessed: bool,
}

fn find(repo: &Repo, trusted: &log::Trusted, pred: impl Fn(&Entry) -> bool) -> Result<Vec<Found>> {
    let (report, contents) = log::verify(repo, trusted)?;
    // Only admins' logs (by key) carry recovery entries; one with a fork or rollback counts
    // for nothing. A writer's log (a stolen agent key) or junk elsewhere changes nothing here.
    let mut out = Vec::new();
    for c in contents.iter().filter(|c| c.admin) {
        if !c.sound {
            let p = report
                .problems
                .iter()
                .find(|p| p.object.starts_with(&format!("log/{}", c.id)));
            return Err(Error::damaged(
                format!("log/{}", c.id),
                format!(
                    "the admins' access log is not sound: {}",
                    p.map(|p| p.message.as_str())
                        .unwrap_or("a fork or rollback")
                ),
            ));
        }
        for (i, e) in c.accepted() {
            if pred(&e) {
                out.push(Found {
                    witnessed: c.is_witnessed(i, trusted.quorum),
                    entry: e,
                });
            }
        }
    }
    Ok(out)
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
) -> Result<(String, Appended)> {
    use base64::Engine;
    let started = std::time::Instant::now();
    let mut told = false;
    let (trusted, req) = loop {
        let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
        let req = request_entry(repo, &trusted, id)?;
        if req.witnessed {
            break (trusted, req);
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
    };
    let setup = setup(repo, coop)?;
    if req.entry.data.get("epoch").and_then(|v| v.as_str()) != Some(setup.epoch.as_str()) {
        return Err(Error::invalid(format!(
            "request {id} is for an earlier recovery epoch; make a new request"
        )));
    }
    let Some((holder, mut share)) = own_share(repo, &setup, ids)? else {
        return Err(Error::AccessDenied {
            what: format!(
                "your identity holds no share of recovery epoch {}",
                setup.epoch
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
    Ok((holder.name, a))
}

/// Combines the witnessed releases of request `id` into the recovery identity (in memory).
/// The request must be for `member`: approvals given for one member never open another.
/// Waits up to `wait.timeout` for releases that are logged but not yet witnessed, when
/// enough of them would make the threshold.
pub fn recover(
    repo: &Repo,
    coop: &TenantKeys,
    id: &str,
    member: &str,
    wait: &Wait,
) -> Result<(Vec<Identity>, Option<String>)> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match recover_once(repo, coop, id, member)? {
            Recovered::Done(ids, epoch) => return Ok((ids, epoch)),
            Recovered::Short {
                have,
                need,
                waiting,
            } => {
                if have + waiting < need {
                    return Err(Error::AccessDenied {
                        what: format!(
                            "request {id} has {have} of the {need} approvals it needs{}; ask \
                             more admins to run `coop recovery approve {id}`",
                            if waiting > 0 {
                                format!(" ({waiting} more not yet witnessed)")
                            } else {
                                String::new()
                            }
                        ),
                    });
                }
                if started.elapsed() >= wait.timeout {
                    return Err(Error::NotWitnessed {
                        what: format!(
                            "{waiting} approval(s) of request {id} ({have} of the {need} needed \
                             are witnessed)"
                        ),
                        need: crate::writers::log_trust(repo, &coop.admin_keys)?.quorum,
                        waited_secs: started.elapsed().as_secs(),
                        outcome: "nothing was read".into(),
                    });
                }
                if !told {
                    (wait.waiting)(&format!(
                        "request {id}: {have} of the {need} approvals needed are witnessed, \
                         {waiting} more logged but not yet cosigned by the witnesses; waiting \
                         up to {} for them …",
                        humantime::format_duration(wait.timeout)
                    ));
                    told = true;
                }
                std::thread::sleep(POLL.min(wait.timeout.saturating_sub(started.elapsed())));
            }
        }
    }
}

enum Recovered {
    Done(Vec<Identity>, Option<String>),
    /// Too few witnessed releases: `waiting` more are logged but not witnessed.
    Short {
        have: usize,
        need: usize,
        waiting: usize,
    },
}

fn recover_once(repo: &Repo, coop: &TenantKeys, id: &str, member: &str) -> Result<Recovered> {
    use base64::Engine;
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let req = request_entry(repo, &trusted, id)?;
    let tag = log::tenant_tag(&crate::members::writer_keys_for_member(repo, coop, member)?);
    if req.entry.tenant.as_deref() != Some(tag.as_str()) {
        return Err(Error::AccessDenied {
            what: format!(
                "recovery request {id} was made and approved for another member, not {member}; \
                 make a request for {member} (`coop recovery request --member {member}`)"
            ),
        });
    }
    let setup = setup(repo, coop)?;
    let p = key_path(repo, id)?;
    let mut secret = std::fs::read(&p).map_err(|e| {
        Error::io(
            &p,
            std::io::Error::new(
                e.kind(),
                format!(
                    "{e} (the request's key is kept by the admin who made it, on that machine)"
                ),
            ),
        )
    })?;
    let eph = crypt::parse_identities(&secret)
        .map_err(|e| Error::damaged(p.display().to_string(), e.to_string()))?;
    secret.zeroize();
    let releases = find(repo, &trusted, |e| {
        e.event == Event::RecoveryRelease && e.object.as_deref() == Some(id)
    })?;
    let mut shares = Vec::new();
    let mut waiting = 0usize;
    for r in &releases {
        if !r.witnessed {
            waiting += 1;
            continue;
        }
        let Some(ct) = r
            .entry
            .data
            .get("share")
            .and_then(|v| v.as_str())
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        else {
            continue;
        };
        if let Ok(s) = crypt::decrypt(&eph, &ct, 1 << 16) {
            shares.push(s);
        }
    }
    let mut text = match rec::combine(&setup, &shares) {
        Ok(t) => t,
        Err(rec::RecoveryError::TooFew { have, need }) => {
            for s in &mut shares {
                s.zeroize();
            }
            return Ok(Recovered::Short {
                have,
                need,
                waiting,
            });
        }
        Err(e) => return Err(Error::damaged(format!("request {id}"), e.to_string())),
    };
    for s in &mut shares {
        s.zeroize();
    }
    let ids = crypt::parse_identities(&text)
        .map_err(|e| Error::damaged(format!("request {id}"), e.to_string()));
    text.zeroize();
    drop(req);
    Ok(Recovered::Done(ids?, Some(setup.epoch)))
}

/// Forgets a used request's ephemeral key.
pub fn finish(repo: &Repo, id: &str) {
    if let Ok(p) = key_path(repo, id) {
        if let Ok(mut b) = std::fs::read(&p) {
            b.zeroize();
            let _ = std::fs::write(&p, vec![0u8; b.len()]);
        }
        let _ = std::fs::remove_file(&p);
    }
}
