//! Which slot an approval releases (SPEC 25.6), played by one admin acting alone who signs a
//! registry pointing one member at another's recovery slot, or a re-split's plan moving one
//! member's identity into another's new slot; and the end of a re-split the registry could not
//! follow, which must not be logged.

use super::tests::{coop, Coop, NO_WAIT};
use super::*;
use crate::reshare;

impl Coop {
    pub(super) fn swap_registry(&self, change: impl FnOnce(&mut coop_formats::registry::Registry)) {
        let mut loaded = crate::registry::load_for_change(&self.repo, &self.coop()).unwrap();
        change(&mut loaded.registry);
        crate::registry::save(&self.repo, &self.coop(), &mut loaded).unwrap();
    }
}

impl Coop {
    /// A recovery of `name` asked by admin 0 and approved by admins 1 and 2: its request and
    /// what combining the releases gave admin 0.
    fn recovered(&self, name: &str) -> (String, Recovered) {
        let id = self.request(0, name);
        self.approve(1, &id).unwrap();
        self.approve(2, &id).unwrap();
        let r = self.recover(0, &id, name).unwrap();
        (id, r)
    }

    /// Admin `by` logs by hand a `material` entry about log tag `tag` naming `recovery` (as a
    /// member add or a recovery's end logs one), signed by her person key.
    fn log_material(&self, by: usize, tag: &str, recovery: serde_json::Value) {
        let keys = self.coop_of(by);
        let actor = log::Actor::of(&keys);
        let mut e = log::entry(
            &actor,
            Event::KeyChange,
            None,
            None,
            Some(log::MATERIAL.into()),
        );
        e.tenant = Some(tag.to_string());
        e.data.insert("recovery".into(), recovery);
        log::append(&self.repo, &actor, &[e]).unwrap();
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
    let bob_tag = log::tenant_tag(&bob_keys);
    let at_alices = serde_json::json!({ "epoch": alice.epoch, "slot": alice.slot });
    c.log_material(0, &bob_tag, at_alices);
    let persons = c.persons();
    assert!(!persons.slot_bound(&bob_tag, &(alice.epoch.clone(), alice.slot.clone())));
    assert!(persons.slot_bound(&bob_tag, &(bob.epoch.clone(), bob.slot.clone())));
    // The request coop refused to make, logged by hand: bob's tenant, alice's slot, her key.
    let (_, public) = crypt::generate_identity();
    let id = "00112233445566ff".to_string();
    let actor = log::Actor::of(&coop);
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
    let bob_keys = crate::registry::member_writer_keys(&c.coop(), &c.member("bob")).unwrap();
    let direct = serde_json::json!({ "epoch": bob.epoch, "slot": bob.slot,
        "next": { "epoch": plan.setup.epoch, "slot": x } });
    c.log_material(0, &log::tenant_tag(&bob_keys), direct);
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
/// identity split into both setups, the log not told yet). No holder combines while the plan
/// holds a direct move the log does not have (and no end is logged while the log would move
/// alice elsewhere than the registry does); once the recovery's end is logged, the re-split
/// ends and alice's new identity recovers her.
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
    let (id, r) = c.recovered("alice");
    super::open::replace_keys(&c.repo, &coop, r, super::open::Stage::Registry).unwrap();
    let fresh = slot_of(&c, "alice");
    let slot = (fresh.epoch.clone(), fresh.slot.clone());
    let d = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0".to_string();
    c.log_material(
        1,
        &d,
        serde_json::json!({ "epoch": slot.0, "slot": slot.1 }),
    );
    assert!(!c.persons().slot_bound(&d, &slot), "bound to another tag");
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), Some("alice".into()));
    let alice = crate::registry::log_tag(&c.member("alice"));
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
    let bob_tag = crate::registry::log_tag(&c.member("bob"));
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
        let (_, r) = c.recovered("alice");
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
    let (id, r) = c.recovered("alice");
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
