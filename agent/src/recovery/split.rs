//! The split (SPEC 25.1–25.2): `coop recovery init` fixes the holders and the threshold,
//! gives every member tenant a recovery identity of its own, splits it among the holders,
//! re-wraps each keyring to the member's own keys and that identity, and logs the split with
//! the persons, their identities and names, and each member's material, slot and name.

use super::*;

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
    // approvals (SPEC 24.11); each one's identity, as the log vouches for it from now on (who
    // may hold shares in a re-split, SPEC 25.5, and whose deals count); and their names, for
    // whoever reads the log without the registry (members).
    let mut persons: Vec<serde_json::Value> = Vec::new();
    let mut recipients = serde_json::Map::new();
    let mut names = serde_json::Map::new();
    for a in registry.admins.iter().filter(|a| a.removed.is_none()) {
        let key = hex::encode(a.key);
        persons.push(key.clone().into());
        recipients.insert(key.clone(), a.recipient.clone().into());
        names.insert(key, a.name.clone().into());
    }
    e.data.insert("persons".into(), persons.into());
    e.data.insert("person_recipients".into(), recipients.into());
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
        let tag = crate::registry::log_tag(m);
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
