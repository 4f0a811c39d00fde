//! Which slot an approval releases (SPEC 25.6), played by one admin acting alone who signs a
//! registry pointing one member at another's recovery slot, or a re-split's plan moving one
//! member's identity into another's new slot; and the end of a re-split the registry could not
//! follow, which must not be logged.

use super::tests::{coop, Coop, NO_WAIT};
use super::*;
use crate::reshare;

impl Coop {
    fn swap_registry(&self, change: impl FnOnce(&mut coop_formats::registry::Registry)) {
        let mut loaded = crate::registry::load_for_change(&self.repo, &self.coop()).unwrap();
        change(&mut loaded.registry);
        crate::registry::save(&self.repo, &self.coop(), &mut loaded).unwrap();
    }
}

fn slot_of(c: &Coop, name: &str) -> MemberRecovery {
    c.member(name).recovery.unwrap()
}

/// Admin 0 alone points bob's registry entry at alice's recovery slot, then logs a request
/// "for bob" naming that slot herself (coop refuses to make it). The two others approve a
/// request for bob: without the log's binding each would release its share of alice's
/// identity. They release nothing; a genuine request for alice still works.
#[test]
fn a_registry_that_points_one_member_at_anothers_slot_releases_nothing() {
    let c = coop();
    let (alice, bob) = (slot_of(&c, "alice"), slot_of(&c, "bob"));
    c.swap_registry(|r| {
        let bob = r.members.iter_mut().find(|m| m.name == "bob").unwrap();
        bob.recovery = Some(alice.clone());
    });
    match request(
        &c.repo,
        &c.coop(),
        &c.admins[0],
        "bob",
        Reason::MemberRequest,
        None,
    ) {
        Err(Error::AccessDenied { what }) => assert!(what.contains("does not bind"), "{what}"),
        o => panic!("{:?}", o.map(|r| r.0)),
    }
    // She binds bob to alice's slot in the log too, with a material entry signed by her
    // person (as a member add or a recovery's end would): a slot is bound once, so it counts
    // for nothing.
    let coop = c.coop();
    let bob_keys = crate::registry::member_writer_keys(&coop, &c.member("bob")).unwrap();
    let actor = log::Actor::of(&coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(&bob_keys),
        None,
        Some(log::MATERIAL.into()),
    );
    e.data.insert(
        "recovery".into(),
        serde_json::json!({ "epoch": alice.epoch, "slot": alice.slot }),
    );
    log::append(&c.repo, &actor, &[e]).unwrap();
    let persons = c.persons();
    let bob_tag = log::tenant_tag(&bob_keys);
    assert!(!persons.slot_bound(&bob_tag, &(alice.epoch.clone(), alice.slot.clone())));
    assert!(persons.slot_bound(&bob_tag, &(bob.epoch.clone(), bob.slot.clone())));
    // The request coop refused to make, logged by hand: bob's tenant, alice's slot, her key.
    let (_, public) = crypt::generate_identity();
    let id = "00112233445566ff".to_string();
    let mut e = log::entry(
        &actor,
        Event::RecoveryRequest,
        Some(&bob_keys),
        Some(Reason::MemberRequest),
        Some(id.clone()),
    );
    e.data.insert("epoch".into(), alice.epoch.clone().into());
    e.data.insert("slot".into(), alice.slot.clone().into());
    e.data.insert("ephemeral".into(), public.into());
    e.data.insert("requester".into(), "admin0".into());
    log::append(&c.repo, &actor, &[e]).unwrap();
    for by in [1, 2] {
        match approve(&c.repo, &c.coop_of(by), &c.admins[by], &id, &NO_WAIT) {
            Err(Error::AccessDenied { what }) => assert!(what.contains("does not bind"), "{what}"),
            o => panic!("{:?}", o.map(|a| a.holder)),
        }
    }
    let trusted = crate::writers::log_trust(&c.repo, &coop.admin_keys).unwrap();
    let released = log::admin_entries(&c.repo, &trusted, |e| e.event == Event::RecoveryRelease);
    assert!(released.unwrap().is_empty(), "a share was released");
    // Bob's entry put back, both members recover as before.
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "bob")
            .unwrap()
            .recovery = Some(bob.clone());
    });
    assert!(c.recovers(0, &[1, 2], "bob"));
    assert!(c.recovers(1, &[0, 2], "alice"));
}

/// The log moves each member's binding with the re-split: after it, alice's registry entry
/// pointed at bob's new slot is refused as before, and the genuine entries recover.
#[test]
fn after_a_reshare_the_binding_follows_each_member() {
    let mut c = coop();
    let dave = c.add_admin();
    for by in [0, 1, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    let (alice, bob) = (slot_of(&c, "alice"), slot_of(&c, "bob"));
    assert_ne!(alice.slot, bob.slot);
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "alice")
            .unwrap()
            .recovery = Some(bob.clone());
    });
    assert!(matches!(
        request(
            &c.repo,
            &c.coop(),
            &c.admins[0],
            "alice",
            Reason::MemberRequest,
            None
        ),
        Err(Error::AccessDenied { .. })
    ));
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "alice")
            .unwrap()
            .recovery = Some(alice.clone());
    });
    assert!(c.recovers(dave, &[1, 2], "alice"));
    assert!(c.recovers(0, &[1, dave], "bob"));
}

/// Admin 0 alone swaps alice's and bob's new slots in the running re-split's plan: dealing
/// along it would put alice's identity into the slot the log moves bob to. Nobody deals.
#[test]
fn a_plan_whose_slots_were_swapped_gets_no_deal() {
    let mut c = coop();
    c.add_admin();
    let (alice, bob) = (slot_of(&c, "alice").slot, slot_of(&c, "bob").slot);
    c.swap_registry(|r| {
        let plan = r.recovery_next.as_mut().unwrap();
        let a = plan.slots[&alice].clone();
        let b = plan.slots.insert(bob.clone(), a).unwrap();
        plan.slots.insert(alice.clone(), b);
    });
    for by in [0, 1, 2] {
        match c.reshare(by) {
            Err(Error::AccessDenied { what }) => {
                assert!(what.contains("not the one the admins' log runs"), "{what}")
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(c.repo.store.list("reshare").unwrap().is_empty());
}

/// Every holder combined, but the registry then names a member outside the plan (one admin
/// rewrote her slot): the end the registry could not follow is not logged, so the log keeps
/// the old setup in force instead of retiring it with nothing to follow.
#[test]
fn an_end_the_registry_cannot_follow_is_not_logged() {
    let mut c = coop();
    let from = c.registry().recovery_setup.unwrap();
    let dave = c.add_admin();
    for by in [0, 1, 2, 0, 1] {
        c.reshare(by).unwrap();
    }
    let bob = slot_of(&c, "bob");
    c.swap_registry(|r| {
        let m = r.members.iter_mut().find(|m| m.name == "bob").unwrap();
        m.recovery.as_mut().unwrap().slot = "0f0f0f0f0f0f0f0f".into();
    });
    assert!(c.reshare(dave).is_err());
    let persons = c.persons();
    assert!(persons.setup_in_force(&from), "the old setup was retired");
    let trusted = crate::writers::log_trust(&c.repo, &c.coop().admin_keys).unwrap();
    let ends = log::admin_entries(&c.repo, &trusted, |e| {
        e.object.as_deref() == Some(reshare::DONE)
    })
    .unwrap();
    assert!(ends.is_empty(), "the end was logged");
    // Put right, the last holder ends it.
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "bob")
            .unwrap()
            .recovery = Some(bob.clone());
    });
    assert!(c.reshare(dave).unwrap().finished);
    assert!(c.recovers(dave, &[1, 2], "bob"));
}

/// A replica made before a re-split holds the old epoch's shares; after the re-split the
/// source deleted them with a logged deletion, and the next replication deletes them at the
/// replica too (a replica that kept them would keep the old shares in force).
#[test]
fn replicas_follow_the_logged_deletion_of_a_retired_epochs_shares() {
    let mut c = coop();
    let old = c.registry().recovery_setup.unwrap().epoch;
    let target = c.dir.path().join("replica");
    let to = crate::store::Store::open(target.to_str().unwrap(), true).unwrap();
    let opts = crate::replicate::ReplicateOptions {
        check_only: false,
        limit: None,
        parallel: 2,
        deletions: Some(crate::replicate::DeletionPolicy {
            grace: std::time::Duration::ZERO,
        }),
        admin_keys: Some(c.coop().admin_keys.clone()),
        cache_dir: None,
    };
    let quiet = crate::progress::NoProgress;
    crate::replicate::replicate(&c.repo.store, &to, &opts, &quiet).unwrap();
    let at_replica = |epoch: &str| to.list(&format!("recovery/{epoch}")).unwrap().len();
    assert!(at_replica(&old) > 0, "the replica has the old shares");
    let dave = c.add_admin();
    for by in [0, 1, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    let new = c.registry().recovery_setup.unwrap().epoch;
    let rep = crate::replicate::replicate(&c.repo.store, &to, &opts, &quiet).unwrap();
    assert_eq!(at_replica(&old), 0, "{rep:?}");
    assert!(at_replica(&new) > 0);
}

/// Admin 3 is retired; until the re-split ends her old share is still in force. She asks for
/// alice with the service keys she kept: nobody's approval releases anything to her.
#[test]
fn a_retired_admins_request_gets_no_approval() {
    let c = super::tests::unsplit_with(4);
    c.split();
    let hers = c.coop_of(3);
    crate::admins::remove(&c.repo, &c.access(0), "admin3").unwrap();
    crate::admins::approve(&c.repo, &c.access(1), "admin3").unwrap();
    crate::admins::approve(&c.repo, &c.access(2), "admin3").unwrap();
    let (id, _) = request(
        &c.repo,
        &hers,
        &c.admins[3],
        "alice",
        Reason::MemberRequest,
        None,
    )
    .unwrap();
    for by in [0, 1, 2] {
        match c.approve(by, &id) {
            Err(Error::AccessDenied { what }) => assert!(what.contains("counts now"), "{what}"),
            o => panic!("{:?}", o.map(|a| a.holder)),
        }
    }
    assert!(c.recovers(0, &[1, 2], "alice"));
}

/// While a re-split runs, admin 0 alone logs a material entry for bob naming a "direct" slot
/// X of her making, then writes a plan dealing alice's old slot into X: dealt there, alice's
/// identity would sit in the slot the log moves bob to. The entry binds nothing (bob is no
/// new member and no recovery of him ended), and nobody deals along the plan.
#[test]
fn a_direct_slot_paired_with_another_members_old_slot_gets_no_deal() {
    let mut c = coop();
    c.add_admin();
    let plan = c.registry().recovery_next.unwrap();
    let (alice, bob) = (slot_of(&c, "alice"), slot_of(&c, "bob"));
    let x = "5a5a5a5a5a5a5a5a".to_string();
    let coop = c.coop();
    let bob_keys = crate::registry::member_writer_keys(&coop, &c.member("bob")).unwrap();
    let actor = log::Actor::of(&coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(&bob_keys),
        None,
        Some(log::MATERIAL.into()),
    );
    e.data.insert(
        "recovery".into(),
        serde_json::json!({ "epoch": bob.epoch, "slot": bob.slot,
            "next": { "epoch": plan.setup.epoch, "slot": x } }),
    );
    log::append(&c.repo, &actor, &[e]).unwrap();
    c.swap_registry(|r| {
        let p = r.recovery_next.as_mut().unwrap();
        p.slots.insert(alice.slot.clone(), x.clone());
    });
    for by in [0, 1, 2] {
        match c.reshare(by) {
            Err(Error::AccessDenied { what }) => {
                assert!(what.contains("not the one the admins' log runs"), "{what}")
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(c.repo.store.list("reshare").unwrap().is_empty());
    // As a "direct" plan entry for bob (b → X, commitments of her making) it fares no better.
    c.swap_registry(|r| {
        let p = r.recovery_next.as_mut().unwrap();
        p.slots = plan.slots.clone();
        p.slots.insert(bob.slot.clone(), x.clone());
        let n = p.setup.holders.len();
        p.direct.insert(x.clone(), vec!["ab".repeat(32); n]);
    });
    match c.reshare(1) {
        Err(Error::AccessDenied { what }) => {
            assert!(what.contains("not the one the admins' log runs"), "{what}")
        }
        o => panic!("{o:?}"),
    }
}

/// A recovery of alice ends while a re-split runs and stops after the registry (her new
/// identity split into both setups, the log not told yet). Every holder then combines: the
/// end is not logged while the log would move alice elsewhere than the registry does; once
/// the recovery's end is logged, the re-split ends and alice's new identity recovers her.
#[test]
fn a_recovery_ending_mid_reshare_holds_the_end_until_it_is_logged() {
    let mut c = coop();
    let from = c.registry().recovery_setup.unwrap();
    let coop = c.coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let dave = c.add_admin();
    for by in [0, 1, 2] {
        c.reshare(by).unwrap();
    }
    let r = c.recover(0, &id, "alice").unwrap();
    super::open::replace_keys(&c.repo, &coop, r, super::open::Stage::Registry).unwrap();
    for by in [0, 1, dave] {
        match c.reshare(by) {
            Err(Error::AccessDenied { what }) => {
                assert!(what.contains("not logged yet"), "{what}")
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(c.persons().setup_in_force(&from));
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), Some("alice".into()));
    c.reshare(0).unwrap();
    c.reshare(1).unwrap();
    assert!(c.reshare(dave).unwrap().finished);
    assert!(c.recovers(dave, &[1, 2], "alice"));
    assert!(c.recovers(0, &[1, dave], "bob"));
}

/// A recovery of alice stops after the registry: her new identity's shares are in the store,
/// the end not logged yet. Admin 1, who sees the new slot there, binds it to a member tag of
/// hers with a first material entry: the slot was reserved for alice before any share of it
/// was written, so the binding counts for nothing, and alice's end, logged later, binds it.
#[test]
fn a_slot_seen_in_the_store_before_its_binding_is_logged_is_nobody_elses() {
    let c = coop();
    let coop = c.coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let r = c.recover(0, &id, "alice").unwrap();
    super::open::replace_keys(&c.repo, &coop, r, super::open::Stage::Registry).unwrap();
    let fresh = slot_of(&c, "alice");
    let slot = (fresh.epoch.clone(), fresh.slot.clone());
    let hers = c.coop_of(1);
    let actor = log::Actor::of(&hers);
    let d = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0".to_string();
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        None,
        None,
        Some(log::MATERIAL.into()),
    );
    e.tenant = Some(d.clone());
    e.data.insert(
        "recovery".into(),
        serde_json::json!({ "epoch": slot.0, "slot": slot.1 }),
    );
    log::append(&c.repo, &actor, &[e]).unwrap();
    assert!(!c.persons().slot_bound(&d, &slot), "bound to another tag");
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), Some("alice".into()));
    let alice =
        log::tenant_tag(&crate::registry::member_writer_keys(&coop, &c.member("alice")).unwrap());
    assert!(c.persons().slot_bound(&alice, &slot));
    assert!(c.recovers(1, &[0, 2], "alice"));
}

/// Admin 0 alone hides bob's recovery from the registry before an admin change completes, so
/// the re-split it starts leaves bob's slot out: dealt and combined, its end would leave bob
/// bound to nothing (and a first binding of him to a slot of hers possible). The end is not
/// logged; bob keeps his binding and, his entry put back, recovers under the setup in force.
#[test]
fn a_member_hidden_from_the_registry_keeps_her_binding_through_a_reshare() {
    let mut c = coop();
    let from = c.registry().recovery_setup.unwrap();
    let bob = slot_of(&c, "bob");
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "bob")
            .unwrap()
            .recovery = None;
    });
    let dave = c.add_admin();
    let plan = c.registry().recovery_next.unwrap();
    assert!(!plan.slots.contains_key(&bob.slot));
    for by in [0, 1, 2, 0, 1] {
        c.reshare(by).unwrap();
    }
    match c.reshare(dave) {
        Err(Error::AccessDenied { what }) => assert!(what.contains("move nowhere"), "{what}"),
        o => panic!("{o:?}"),
    }
    let persons = c.persons();
    assert!(persons.setup_in_force(&from));
    let bob_tag =
        log::tenant_tag(&crate::registry::member_writer_keys(&c.coop(), &c.member("bob")).unwrap());
    assert!(persons.slot_bound(&bob_tag, &(bob.epoch.clone(), bob.slot.clone())));
    c.swap_registry(|r| {
        r.members
            .iter_mut()
            .find(|m| m.name == "bob")
            .unwrap()
            .recovery = Some(bob.clone());
    });
    assert!(c.recovers(0, &[1, 2], "bob"));
}

/// An admin person is added and removed again with K approvals; then admin 0 alone proposes
/// adding her again and appends the first addition's approvals once more, byte for byte (a
/// person's signature covers the entry, not its place in the log). They count for nothing:
/// she is not a person again.
#[test]
fn an_approval_appended_again_counts_for_nothing() {
    let mut c = coop();
    let dave = c.add_admin();
    let dave_key = c.persons[dave].verifying_key().to_bytes();
    let coop = c.coop();
    let trusted = crate::writers::log_trust(&c.repo, &coop.admin_keys).unwrap();
    let approvals: Vec<Entry> = log::admin_entries(&c.repo, &trusted, |e| {
        e.object.as_deref() == Some(crate::log::persons::APPROVE)
            && e.data.get("op").and_then(|v| v.as_str()) == Some("add")
    })
    .unwrap()
    .into_iter()
    .map(|f| f.entry)
    .collect();
    assert_eq!(approvals.len(), 2);
    crate::admins::remove(&c.repo, &c.access(0), &format!("admin{dave}")).unwrap();
    crate::admins::approve(&c.repo, &c.access(1), &format!("admin{dave}")).unwrap();
    crate::admins::approve(&c.repo, &c.access(2), &format!("admin{dave}")).unwrap();
    assert!(!c.persons().person_counts(&dave_key));
    // The new proposal (logged by hand: coop refuses a retired person's key), then the old
    // approvals appended as they were (no new signature).
    let actor = log::Actor::of(&coop);
    let mut e = log::entry(
        &actor,
        Event::KeyChange,
        Some(&coop),
        None,
        Some("admin-add".into()),
    );
    e.data.insert("admin".into(), "dave-again".into());
    e.data
        .insert("admin_key".into(), hex::encode(dave_key).into());
    e.data
        .insert("admin_recipient".into(), c.publics[dave].clone().into());
    log::append(&c.repo, &actor, &[e]).unwrap();
    assert_eq!(c.persons().pending_persons().len(), 1);
    let bare = log::Actor {
        person: None,
        ..log::Actor::of(&coop)
    };
    log::append(&c.repo, &bare, &approvals).unwrap();
    assert!(
        !c.persons().person_counts(&dave_key),
        "the replay added her"
    );
}

/// Admin 1 approves a pending addition; before her entry lands, the log's owner (any admin)
/// appends a forged entry carrying her approval's `person_sig` over other content. The forged
/// entry counts for nothing and does not void hers: with admin 2's approval the addition
/// completes.
#[test]
fn a_forged_copy_of_a_person_signature_does_not_void_the_entry() {
    use crate::log::persons::{Op, Persons, APPROVE};
    let c = coop();
    let (_, public) = crypt::generate_identity();
    let person = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let token = crate::admins::token(&person, &public);
    let o = crate::admins::add(&c.repo, &c.access(0), "dana", &token).unwrap();
    assert!(matches!(o, crate::admins::Outcome::Pending { .. }), "{o:?}");
    let coop1 = c.coop_of(1);
    let actor1 = log::Actor::of(&coop1);
    let mut x = log::entry(
        &actor1,
        Event::KeyChange,
        Some(&coop1),
        None,
        Some(APPROVE.into()),
    );
    let key = person.verifying_key().to_bytes();
    x.data
        .extend(Persons::approval_data(Op::Add, &key, &public));
    x.sign_person(actor1.person.as_ref().unwrap());
    let mut y = x.clone();
    y.data.insert("admin".into(), "someone-else".into());
    assert!(matches!(
        y.person(),
        coop_formats::tlog::PersonCheck::Forged
    ));
    let bare = log::Actor {
        person: None,
        ..log::Actor::of(&c.coop())
    };
    log::append(&c.repo, &bare, &[y, x]).unwrap();
    let o = crate::admins::approve(&c.repo, &c.access(2), "dana").unwrap();
    assert!(matches!(o, crate::admins::Outcome::Added(_)), "{o:?}");
}

/// While a re-split runs, alice is recovered twice: each end splits her new identity straight
/// into the re-split too, so the plan holds a direct move from each of her old slots. The
/// earlier one moves nobody any more; it does not stop the re-split, whose end moves alice to
/// her newest identity's slot.
#[test]
fn a_member_recovered_twice_mid_reshare_still_reshares() {
    let mut c = coop();
    let dave = c.add_admin();
    for by in [0, 1, 2] {
        c.reshare(by).unwrap();
    }
    for _ in 0..2 {
        let id = c.request(0, "alice");
        c.approve(1, &id).unwrap();
        c.approve(2, &id).unwrap();
        let r = c.recover(0, &id, "alice").unwrap();
        conclude(&c.repo, &c.coop(), r).unwrap();
    }
    assert_eq!(c.registry().recovery_next.unwrap().direct.len(), 2);
    c.reshare(0).unwrap();
    c.reshare(1).unwrap();
    assert!(c.reshare(dave).unwrap().finished);
    assert!(c.recovers(dave, &[1, 2], "alice"));
}

/// Someone with a registry signer (one admin, or a retired one) plants a member "mallory" in
/// the registry, with keys and a slot of theirs and no log entry. A counted admin who runs
/// `member add mallory` gets "exists", not an entry under her own name that would have
/// writers take those keys.
#[test]
fn a_member_add_run_again_logs_no_entry_it_did_not_make() {
    let c = coop();
    let alice = c.member("alice");
    c.swap_registry(|r| {
        let mut m = alice.clone();
        m.name = "mallory".into();
        m.tenant_tag = coop_formats::random_bytes();
        if let Some(rec) = m.recovery.as_mut() {
            rec.slot = "0d0d0d0d0d0d0d0d".into();
        }
        r.members.push(m);
    });
    let mallory = c.member("mallory");
    let coop = c.coop();
    assert!(crate::registry::material::unnamed(&c.repo, &coop, &mallory).unwrap());
    match crate::members::add(
        &c.repo,
        &c.access(1),
        "mallory",
        mallory.recipients.clone(),
        mallory.quota,
    ) {
        Err(Error::Invalid { what }) => assert!(what.contains("exists already"), "{what}"),
        o => panic!("{:?}", o.map(|m| m.name)),
    }
    assert!(crate::registry::material::unnamed(&c.repo, &coop, &mallory).unwrap());
}

/// A recovery of alice stops after the registry; one admin then moves alice's registry slot
/// elsewhere in the same epoch. Resuming the end logs nothing (it would spend the request on
/// a slot the log then refuses to bind).
#[test]
fn a_recovery_end_resumed_after_its_slot_moved_logs_nothing() {
    let c = coop();
    let coop = c.coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let r = c.recover(0, &id, "alice").unwrap();
    super::open::replace_keys(&c.repo, &coop, r, super::open::Stage::Registry).unwrap();
    let fresh = slot_of(&c, "alice");
    c.swap_registry(|r| {
        let m = r.members.iter_mut().find(|m| m.name == "alice").unwrap();
        m.recovery.as_mut().unwrap().slot = "0c0c0c0c0c0c0c0c".into();
    });
    assert!(matches!(
        resume(&c.repo, &coop, &id),
        Err(Error::AccessDenied { .. })
    ));
    // Put back, the end goes on.
    c.swap_registry(|r| {
        let m = r.members.iter_mut().find(|m| m.name == "alice").unwrap();
        m.recovery = Some(fresh.clone());
    });
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), Some("alice".into()));
}

/// A retired admin who kept the service tenant's signer deletes an object at the source and
/// logs the deletion herself: replicas keep it (after the split only persons who count log
/// deletions replicas follow); the same deletion logged by a counted admin is followed.
#[test]
fn replicas_follow_no_deletion_a_retired_admin_logs() {
    let c = super::tests::unsplit_with(4);
    c.split();
    let hers = c.coop_of(3);
    crate::admins::remove(&c.repo, &c.access(0), "admin3").unwrap();
    crate::admins::approve(&c.repo, &c.access(1), "admin3").unwrap();
    crate::admins::approve(&c.repo, &c.access(2), "admin3").unwrap();
    let target = c.dir.path().join("replica");
    let to = crate::store::Store::open(target.to_str().unwrap(), true).unwrap();
    let opts = crate::replicate::ReplicateOptions {
        check_only: false,
        limit: None,
        parallel: 2,
        deletions: Some(crate::replicate::DeletionPolicy {
            grace: std::time::Duration::ZERO,
        }),
        admin_keys: Some(c.coop().admin_keys.clone()),
        cache_dir: None,
    };
    let quiet = crate::progress::NoProgress;
    crate::replicate::replicate(&c.repo.store, &to, &opts, &quiet).unwrap();
    let shares: Vec<String> = to
        .list("recovery")
        .unwrap()
        .into_iter()
        .map(|l| l.path)
        .collect();
    let (theirs, ours) = (shares[0].clone(), shares[1].clone());
    log::record_deletions(&c.repo, &hers, Event::Delete, std::slice::from_ref(&theirs)).unwrap();
    c.repo.store.delete(&theirs).unwrap();
    log::record_deletions(
        &c.repo,
        &c.coop(),
        Event::Delete,
        std::slice::from_ref(&ours),
    )
    .unwrap();
    c.repo.store.delete(&ours).unwrap();
    crate::replicate::replicate(&c.repo.store, &to, &opts, &quiet).unwrap();
    assert!(
        to.exists(&theirs).unwrap(),
        "a retired admin's deletion was followed"
    );
    assert!(
        !to.exists(&ours).unwrap(),
        "a counted admin's deletion was not followed"
    );
}

/// Carol joins while a re-split runs, her identity split straight into it. Admin 0 alone then
/// rewrites the plan's commitments for that split: every new holder checks its own share of
/// it before combining, so nothing is combined until they are put back, and the re-split then
/// ends with carol recoverable.
#[test]
fn forged_direct_commitments_are_caught_before_anyone_combines() {
    let mut c = coop();
    let dave = c.add_admin();
    let (s, pk) = crypt::generate_identity();
    crate::members::add(&c.repo, &c.access(0), "carol", vec![pk], None).unwrap();
    c.members.push(super::tests::ids(&s));
    let plan = c.registry().recovery_next.unwrap();
    assert_eq!(plan.direct.len(), 1);
    c.swap_registry(|r| {
        let p = r.recovery_next.as_mut().unwrap();
        for v in p.direct.values_mut() {
            v[0] = "ab".repeat(32);
        }
    });
    for by in [0, 1, 2] {
        c.reshare(by).unwrap();
    }
    match c.reshare(0) {
        Err(Error::Damaged { cause, .. }) => {
            assert!(cause.to_string().contains("commitment"), "{cause}")
        }
        o => panic!("{o:?}"),
    }
    c.swap_registry(|r| r.recovery_next = Some(plan.clone()));
    for by in [0, 1] {
        c.reshare(by).unwrap();
    }
    assert!(c.reshare(dave).unwrap().finished);
    assert!(c.recovers(dave, &[1, 2], "carol"));
}
