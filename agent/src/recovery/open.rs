//! Opening one member with a recovery, and closing it again: the requester's own share and
//! the witnessed releases combine into that member's recovery identity ([`recover`]);
//! [`conclude`] replaces the member's data and recovery identities afterwards.

use super::{find, request_entry, Wait, POLL};
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::log;
use crate::repo::Repo;
use crate::shares::{finish, key_path, member_recovery, new_member_identity, own_share};
use coop_formats::crypt::{self, Identity};
use coop_formats::recovery::{self as rec, MemberRecovery};
use coop_formats::registry::Member;
use coop_formats::tlog::Event;
use zeroize::Zeroize;

/// Combines the requester's own share (if `ids` hold one) with the witnessed releases of
/// request `id` into member `member`'s recovery identity (in memory). The request must be
/// for `member`: approvals given for one member never open another. Waits up to
/// `wait.timeout` for releases that are logged but not yet witnessed, when enough of them
/// would make the threshold.
pub fn recover(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    id: &str,
    member: &str,
    wait: &Wait,
) -> Result<Recovered> {
    let started = std::time::Instant::now();
    let mut told = false;
    loop {
        match recover_once(repo, coop, ids, id, member)? {
            Attempt::Done(r) => return Ok(*r),
            Attempt::Short {
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

/// One member's recovery identity, rebuilt for one request.
pub struct Recovered {
    /// Opens the member's keyring (of the identity's generation) and nothing else.
    pub ids: std::sync::Arc<Vec<Identity>>,
    pub member: Member,
    pub request: String,
    /// The identity's text, kept for [`resume`] while the recovery ends (the request's key
    /// and the log's releases give it anyway, until the end forgets that key).
    secret: zeroize::Zeroizing<String>,
}

enum Attempt {
    Done(Box<Recovered>),
    /// Too few witnessed approvals: `waiting` more are logged but not witnessed.
    Short {
        have: usize,
        need: usize,
        waiting: usize,
    },
}

fn recover_once(
    repo: &Repo,
    coop: &TenantKeys,
    ids: &[Identity],
    id: &str,
    member: &str,
) -> Result<Attempt> {
    let trusted = crate::writers::log_trust(repo, &coop.admin_keys)?;
    let req = request_entry(repo, &trusted, id)?;
    let (setup, m, r) = member_recovery(repo, coop, member)?;
    let tag = crate::registry::log_tag(&m);
    if req.entry.tenant.as_deref() != Some(tag.as_str()) {
        return Err(Error::AccessDenied {
            what: format!(
                "recovery request {id} was made and approved for another member, not {member}; \
                 make a request for {member} (`coop recovery request --member {member}`)"
            ),
        });
    }
    if req.entry.data.get("slot").and_then(|v| v.as_str()) != Some(r.slot.as_str()) {
        return Err(Error::invalid(format!(
            "request {id} is for an earlier recovery identity of {member}; make a new request"
        )));
    }
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
        .map_err(|e| Error::damaged(p.display().to_string(), e.to_string()));
    secret.zeroize();
    let eph = eph?;
    let own = own_share(repo, &setup, &r, ids)?;
    let own_index = own.as_ref().map(|(h, _)| h.index);
    let mut shares: Vec<Vec<u8>> = own.into_iter().map(|(_, s)| s).collect();
    let waiting = released(repo, &trusted, &req.entry, &eph, own_index, &mut shares)?;
    let own_counts = usize::from(own_index.is_some());
    let combined = rec::combine(&setup, &r, &shares);
    for s in &mut shares {
        s.zeroize();
    }
    let mut text = match combined {
        Ok(t) => t,
        Err(rec::RecoveryError::TooFew { have, need }) => {
            return Ok(Attempt::Short {
                have: have - own_counts,
                need: need - own_counts,
                waiting,
            });
        }
        Err(e) => return Err(Error::damaged(format!("request {id}"), e.to_string())),
    };
    let ids = crypt::parse_identities(&text)
        .map_err(|e| Error::damaged(format!("request {id}"), e.to_string()));
    let secret = zeroize::Zeroizing::new(String::from_utf8_lossy(&text).into_owned());
    text.zeroize();
    Ok(Attempt::Done(Box::new(Recovered {
        ids: std::sync::Arc::new(ids?),
        member: m,
        request: id.to_string(),
        secret,
    })))
}

/// Adds to `shares` the shares released to `request` (decrypted with its ephemeral
/// identity `eph`) that count, witnessed; returns how many more are logged but not yet
/// witnessed. The requester's own share (`own_index`) released to herself is no approval.
fn released(
    repo: &Repo,
    trusted: &log::Trusted,
    request: &coop_formats::tlog::Entry,
    eph: &[Identity],
    own_index: Option<u8>,
    shares: &mut Vec<Vec<u8>>,
) -> Result<usize> {
    use base64::Engine;
    let id = request.object.as_deref().unwrap_or_default();
    let releases = find(repo, trusted, |e| {
        e.event == Event::RecoveryRelease && e.object.as_deref() == Some(id)
    })?;
    let mut waiting = 0usize;
    // After a split that names persons, a release counts only from a person who counts (not
    // a retired admin, not a second key of one) other than the asker (SPEC 24.11, 25.3).
    let persons = trusted.activation.clone().unwrap_or_default();
    let restricted = persons
        .persons
        .values()
        .any(|p| p.restricted_from.is_some());
    let asker = match request.person() {
        coop_formats::tlog::PersonCheck::Signed(k) => Some(k),
        _ => None,
    };
    for rel in &releases {
        if restricted {
            match rel.entry.person() {
                coop_formats::tlog::PersonCheck::Signed(by)
                    if persons.person_counts(&by) && Some(by) != asker => {}
                _ => continue,
            }
        }
        let Some(ct) = rel
            .entry
            .data
            .get("share")
            .and_then(|v| v.as_str())
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
        else {
            continue;
        };
        let Ok(s) = crypt::decrypt(eph, &ct, 1 << 16) else {
            continue;
        };
        // The requester's own share released to themselves is no approval.
        if s.is_empty() || s.first() == own_index.as_ref() {
            continue;
        }
        if rel.witnessed {
            shares.push(s);
        } else {
            waiting += 1;
        }
    }
    Ok(waiting)
}

/// Ends a recovery: replaces the member's data identity (the old ones stay in the keyring
/// for reading what was written before) and recovery identity (a new split, shares under a
/// new slot), re-wraps the keyring to the member's keys and the new recovery key alone,
/// deletes the older keyring generations (a logged deletion that replicas follow), and
/// forgets the request's ephemeral key. What the recovery released then opens nothing
/// written afterwards.
pub fn conclude(repo: &Repo, coop: &TenantKeys, r: Recovered) -> Result<MemberRecovery> {
    let request = r.request.clone();
    let (m, fresh) = replace_keys(repo, coop, r, Stage::Rewrapped)?;
    end(repo, coop, &m, &request)?;
    Ok(fresh)
}

/// How far [`replace_keys`] goes (tests stop it where a crash could).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Stage {
    /// The keyring holds the new data identity, still wrapped to its readers of before.
    Keyring,
    /// Client state holds what [`resume`] needs.
    Ending,
    /// The registry names the new keys.
    Registry,
    /// The keyring is wrapped to the member's keys and the new recovery key alone.
    Rewrapped,
}

/// [`conclude`] up to the log entry, in an order a crash at any step leaves recoverable:
///
/// 1. the keyring gets the new data identity, still wrapped to its readers of before (so the
///    request still opens it; were the registry first, writers could encrypt to a data key a
///    crash loses);
/// 2. client state saves what [`resume`] needs: the digests of the member's material before
///    and after, and the recovered identity (which this request's key gives anyway);
/// 3. the registry names the new data key and recovery identity;
/// 4. the keyring is wrapped to the member's keys and the new recovery key alone, and the
///    generations before it, which this request opens, are deleted (a logged deletion).
///
/// A crash before 3 leaves the member as she was and the request usable (its key is
/// forgotten only once the log names the end); a crash after it is finished by [`resume`].
pub(super) fn replace_keys(
    repo: &Repo,
    coop: &TenantKeys,
    r: Recovered,
    upto: Stage,
) -> Result<(Member, MemberRecovery)> {
    let mut ring = crate::members::open_ring(repo, &r.ids, &r.member)?;
    let mut loaded = crate::members::load_for_change(repo, coop)?;
    let setup = loaded
        .registry
        .recovery_setup
        .clone()
        .ok_or_else(|| Error::NotFound {
            what: "a recovery setup".into(),
        })?;
    let before = loaded
        .registry
        .member(&r.member.name)
        .map(crate::registry::material::digest)
        .unwrap_or_default();
    let tag = crate::registry::log_tag(&r.member);
    let fresh = new_member_identity(
        repo,
        coop,
        &setup,
        loaded.registry.recovery_next.as_mut(),
        &tag,
    )?;
    let data_recipient = ring
        .rotate_data_identity()
        .map_err(|e| Error::damaged("keyring", e))?;
    let m = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == r.member.name)
        .ok_or_else(|| Error::NotFound {
            what: format!("member {:?} in the registry", r.member.name),
        })?;
    m.data_recipient = data_recipient;
    m.recovery = Some(fresh.clone());
    // The new data key, signed by the member tenant: writers follow it and log that they do.
    crate::members::sign_material(repo, m, &ring)?;
    let m = m.clone();
    let opened = crate::members::replace_keyring(repo, coop, &mut ring)?;
    crate::fault::point("recovery:after-keyring");
    if upto == Stage::Keyring {
        return Ok((m, fresh));
    }
    save_ending(repo, &r.request, &m, &before, &r.secret, &opened)?;
    if upto == Stage::Ending {
        return Ok((m, fresh));
    }
    crate::members::save(repo, coop, &mut loaded)?;
    crate::fault::point("recovery:after-registry");
    if upto == Stage::Registry {
        return Ok((m, fresh));
    }
    crate::members::rewrap_ring(repo, coop, ring, &m, std::slice::from_ref(&fresh.recipient))?;
    crate::fault::point("recovery:after-rewrap");
    Ok((m, fresh))
}

/// The log names the new material as request `id`'s end: writers take it, and nothing else
/// any one person signs for the member later (SPEC 15.4).
fn end(repo: &Repo, coop: &TenantKeys, m: &Member, id: &str) -> Result<()> {
    crate::registry::material::log(repo, coop, m, Some(id))?;
    ended(repo, m, id);
    Ok(())
}

/// After the log named member `m`'s new material: this client pins it, and forgets the end
/// and the request's key.
fn ended(repo: &Repo, m: &Member, id: &str) {
    crate::registry::pin_signed(repo, m);
    forget_ending(repo, id);
    finish(repo, id);
}

/// Overwrites and removes the saved end of request `id` (it holds the recovered identity).
fn forget_ending(repo: &Repo, id: &str) {
    if let Ok(p) = ending_path(repo, id) {
        if let Ok(mut b) = std::fs::read(&p) {
            b.zeroize();
            let _ = std::fs::write(&p, vec![0u8; b.len()]);
        }
        let _ = std::fs::remove_file(p);
    }
}

/// What a recovery's end saved in client state before the registry (mode 0600): the member,
/// the public digests of her material before the end and of what the end writes, and the
/// recovered identity, to finish the re-wrap if the end stopped after the registry. That
/// identity opens only the keyring generations the end deletes, and this request's key
/// (kept until the end is logged) gives it anyway.
#[derive(serde::Serialize, serde::Deserialize)]
struct Ending {
    member: String,
    digest: String,
    /// Empty in ends saved by older versions (which re-wrapped before saving).
    #[serde(default)]
    before: String,
    #[serde(default)]
    identity: String,
    /// What the keyring is re-wrapped to: the member's keys, then her new recovery key. The
    /// registry must still name exactly these (and that recovery identity) for `resume`.
    #[serde(default)]
    readers: Vec<String>,
    #[serde(default)]
    recovery: Option<MemberRecovery>,
    /// The keyring generation still open to the request, which the re-wrap deletes.
    #[serde(default)]
    opened: String,
}

impl Drop for Ending {
    fn drop(&mut self) {
        self.identity.zeroize();
    }
}

/// The keys member `m`'s keyring is wrapped to after a recovery's end: hers, then her
/// recovery key.
fn readers(m: &Member) -> Vec<String> {
    let mut r = m.recipients.clone();
    if let Some(k) = m.recovery.as_ref().map(|r| r.recipient.clone()) {
        if !r.contains(&k) {
            r.push(k);
        }
    }
    r
}

fn ending_path(repo: &Repo, id: &str) -> Result<std::path::PathBuf> {
    key_path(repo, id).map(|p| p.with_extension("end"))
}

fn save_ending(
    repo: &Repo,
    id: &str,
    m: &Member,
    before: &str,
    identity: &str,
    opened: &coop_formats::id::Id,
) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = ending_path(repo, id)?;
    let e = Ending {
        member: m.name.clone(),
        digest: crate::registry::material::digest(m),
        before: before.to_string(),
        identity: identity.to_string(),
        readers: readers(m),
        recovery: m.recovery.clone(),
        opened: opened.to_hex(),
    };
    let tmp = p.with_extension("end-tmp");
    // A leftover of another run keeps its mode when opened: start afresh.
    let _ = std::fs::remove_file(&tmp);
    let mut json = serde_json::to_vec(&e).expect("serializes");
    drop(e);
    let write = || {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &p)
    };
    let r = write().map_err(|x| Error::io(&p, x));
    json.zeroize();
    r
}

/// Finishes a recovery whose end stopped after the registry (writers then refuse the
/// member's new keys until the log names them): on the machine that ran it, if the registry
/// still holds exactly the keys that end wrote, the keyring is re-wrapped if it was not yet
/// and the log names them as request `id`'s end. An end that stopped before the registry is
/// forgotten (the request opens the keyring still, and the export runs again). `None` when
/// nothing of `id` is left to finish; the member's name when it was.
pub fn resume(repo: &Repo, coop: &TenantKeys, id: &str) -> Result<Option<String>> {
    use crate::registry::material::{self, Verdict};
    let p = ending_path(repo, id)?;
    let b = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&p, e)),
    };
    let mut b = zeroize::Zeroizing::new(b);
    let e: Ending =
        serde_json::from_slice(&b).map_err(|x| Error::damaged(p.display().to_string(), x))?;
    b.zeroize();
    let loaded = crate::members::load_for_change(repo, coop)?;
    let m = loaded
        .registry
        .member(&e.member)
        .cloned()
        .ok_or_else(|| Error::NotFound {
            what: format!("member {:?} in the registry", e.member),
        })?;
    let now = material::digest(&m);
    if now == e.before && now != e.digest {
        // Stopped before the registry: nothing of the end is in force, and the request
        // (whose key is still here) opens the keyring again. The export runs again.
        forget_ending(repo, id);
        return Ok(None);
    }
    if now != e.digest {
        return Err(Error::AccessDenied {
            what: format!(
                "the registry does not hold the keys the end of recovery request {id} made \
                 for {} (it stopped before saving them, or someone changed them since); \
                 nothing is logged. Run `coop log show` to see what happened; the member's own \
                 key still opens her data, and a new request may be needed",
                e.member
            ),
        });
    }
    // Stopped before the re-wrap: the keyring still opens with what the request released.
    // It is wrapped to what the end saved, and only while the registry names exactly that
    // (an admin who changed the member's keys or recovery in the gap re-wraps nothing).
    if !e.identity.is_empty() && e.readers.is_empty() {
        // Saved by a development build between two orders of the end: its keys cannot be
        // held to what it wrote. Refused; a new request ends the recovery.
        return Err(Error::AccessDenied {
            what: format!(
                "the saved end of recovery request {id} lacks the keys it re-wraps to; nothing is \
                 re-wrapped or logged. Make a new request for {}",
                e.member
            ),
        });
    }
    if !e.identity.is_empty() {
        // The recovery identity by its public key: a re-split that ended in the gap changes its
        // epoch, slot and commitments, not the identity. Ends saved without `readers` (made
        // by an earlier version of this order) are held to the digest alone.
        let identity = |r: &Option<MemberRecovery>| r.as_ref().map(|r| r.recipient.clone());
        // Nor the slot, within one epoch: the log binds the member to the slot the end made.
        let slot =
            |r: &Option<MemberRecovery>| r.as_ref().map(|r| (r.epoch.clone(), r.slot.clone()));
        let moved = match (slot(&m.recovery), slot(&e.recovery)) {
            (Some(a), Some(b)) => a.0 == b.0 && a.1 != b.1,
            _ => false,
        };
        let changed = moved
            || !e.readers.is_empty()
                && (readers(&m) != e.readers || identity(&m.recovery) != identity(&e.recovery));
        if changed {
            return Err(Error::AccessDenied {
                what: format!(
                    "the registry names other keys or another recovery key for {} than the end \
                     of recovery request {id} made; nothing is re-wrapped or logged. Run `coop \
                     log show` to see who changed them",
                    e.member
                ),
            });
        }
        let ids = crypt::parse_identities(e.identity.as_bytes())
            .map_err(|x| Error::damaged(p.display().to_string(), x.to_string()))?;
        match crate::members::open_ring(repo, &ids, &m) {
            Ok(ring) => {
                let recovery = m.recovery.as_ref().map(|r| r.recipient.clone());
                crate::members::rewrap_ring(repo, coop, ring, &m, recovery.as_slice())?;
            }
            // Re-wrapped already: what was released opens it no more, and the generation it
            // opened is gone. While that generation is listed, the end is not done (a store
            // that hides the newer one, or fails a read, stops here, logging nothing).
            Err(Error::NotRecipient { .. }) => {
                let tag = crate::registry::member_writer_keys(coop, &m)?.tag;
                let listed = repo.list(crate::layout::Kind::Keyring, &tag)?;
                if listed.iter().any(|o| o.name.to_hex() == e.opened) {
                    return Err(Error::damaged(
                        format!("the keyring of {}", e.member),
                        "the generation the recovery opened is still there but does not open \
                         with what it released; nothing is logged",
                    ));
                }
            }
            Err(x) => return Err(x),
        }
    }
    if material::check(repo, coop, &m)? != Verdict::Authorized {
        material::log(repo, coop, &m, Some(id))?;
    }
    match material::check(repo, coop, &m)? {
        Verdict::Refused(why) => Err(Error::AccessDenied {
            what: format!(
                "the end of recovery request {id} could not be logged for {}: {why}",
                e.member
            ),
        }),
        Verdict::Authorized | Verdict::NoRule => {
            ended(repo, &m, id);
            Ok(Some(e.member.clone()))
        }
    }
}
