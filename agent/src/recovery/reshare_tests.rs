//! The re-split of the recovery shares (SPEC 25.5) played by the parties it constrains: a new
//! admin whose shares must work, a retired admin whose old share must open nothing, one
//! admin who writes a plan giving a second identity of hers a share, and a storage site that
//! swaps a deal.

use super::tests::{coop, ids, unsplit_with, Coop};
use super::*;
use crate::admins::Outcome;
use crate::reshare::{self, Progress};
use std::sync::Arc;

impl Coop {
    pub(super) fn reshare(&self, by: usize) -> Result<Progress> {
        reshare::run(&self.repo, &self.access(by))
    }

    /// Who counts and which setups the admins' log vouches for, now.
    pub(super) fn persons(&self) -> crate::log::Activation {
        crate::writers::log_trust(&self.repo, &self.coop().admin_keys)
            .unwrap()
            .activation
            .unwrap()
    }

    pub(super) fn registry(&self) -> coop_formats::registry::Registry {
        crate::registry::load(&self.repo, &self.coop())
            .unwrap()
            .registry
    }

    /// A new admin `admin<n>`, proposed by admin 0 and approved by admins 1 and 2.
    pub(super) fn add_admin(&mut self) -> usize {
        let n = self.admins.len();
        let (secret, public) = crypt::generate_identity();
        self.admins.push(ids(&secret));
        self.persons
            .push(Arc::new(ed25519_dalek::SigningKey::from_bytes(
                &[n as u8 + 1; 32],
            )));
        self.publics.push(public.clone());
        let token = crate::admins::token(&self.persons[n], &public);
        let name = format!("admin{n}");
        let o = crate::admins::add(&self.repo, &self.access(0), &name, &token).unwrap();
        assert!(matches!(o, Outcome::Pending { .. }), "{o:?}");
        crate::admins::approve(&self.repo, &self.access(1), &name).unwrap();
        let o = crate::admins::approve(&self.repo, &self.access(2), &name).unwrap();
        assert!(matches!(o, Outcome::Added(_)), "{o:?}");
        n
    }

    /// Member `name`'s keyring opens with the identity a recovery by `by`, approved by
    /// `approvers`, rebuilds.
    pub(super) fn recovers(&self, by: usize, approvers: &[usize], name: &str) -> bool {
        let id = self.request(by, name);
        for a in approvers {
            self.approve(*a, &id).unwrap();
        }
        match self.recover(by, &id, name) {
            Ok(r) => crate::members::open_ring(&self.repo, &r.ids, &self.member(name)).is_ok(),
            Err(_) => false,
        }
    }

    pub(super) fn epoch_objects(&self, epoch: &str) -> usize {
        self.repo
            .store
            .list(&format!("recovery/{epoch}"))
            .unwrap()
            .len()
    }
}

/// Admin 3 joins after the split: the old holders deal, every new holder combines, and the
/// new admin's share then opens a member (one added while the re-split ran, too) with two
/// approvals, while the old epoch's shares are gone.
#[test]
fn a_new_admins_shares_work_once_the_reshare_ends() {
    let mut c = coop();
    let old = c.registry().recovery_setup.unwrap().epoch;
    let dave = c.add_admin();
    let plan = c.registry().recovery_next.expect("a re-split started");
    assert_eq!(plan.setup.holders.len(), 4);
    assert_eq!(plan.setup.threshold, 3);
    // The approver's machine deals nothing by itself here; each admin runs `reshare`.
    let p = c.reshare(0).unwrap();
    assert_eq!(
        (p.did.clone(), p.dealt.len()),
        (vec!["dealt".to_string()], 1)
    );
    // A member added while the re-split runs is split into both setups.
    let (s, pk) = crypt::generate_identity();
    crate::members::add(&c.repo, &c.access(0), "carol", vec![pk], None).unwrap();
    c.members.push(ids(&s));
    // Dave holds no old share: nothing to deal yet, nothing to combine.
    assert!(c.reshare(dave).unwrap().did.is_empty());
    assert_eq!(c.reshare(1).unwrap().did, ["dealt"]);
    assert_eq!(c.reshare(2).unwrap().did, ["dealt", "combined"]);
    assert_eq!(c.reshare(0).unwrap().did, ["combined"]);
    assert_eq!(c.reshare(1).unwrap().did, ["combined"]);
    // Until the last holder combined, the old setup is in force.
    assert_eq!(c.registry().recovery_setup.unwrap().epoch, old);
    let p = c.reshare(dave).unwrap();
    assert!(p.finished, "{p:?}");
    let reg = c.registry();
    assert!(reg.recovery_next.is_none());
    let new = reg.recovery_setup.unwrap();
    assert_eq!(new.epoch, plan.setup.epoch);
    assert_eq!(c.epoch_objects(&old), 0, "the old shares are gone");
    assert!(c.repo.store.list("reshare").unwrap().is_empty());
    for m in ["alice", "bob", "carol"] {
        assert_eq!(c.member(m).recovery.unwrap().epoch, new.epoch);
    }
    // The new admin asks, two others approve: each member opens, one per request.
    assert!(c.recovers(dave, &[1, 2], "alice"));
    assert!(c.recovers(dave, &[0, 2], "carol"));
    // The requester with one approval still reads nothing.
    assert!(!c.recovers(dave, &[1], "bob"));
    assert!(matches!(c.reshare(0), Err(Error::NotFound { .. })));
}

/// Admin 3 retires: after the re-split her kept old share combines with no new share into
/// anything that opens a member, she holds no share to approve with, and the others recover.
#[test]
fn a_retired_admins_old_share_opens_nothing_after_the_reshare() {
    let c = unsplit_with(4);
    c.split();
    let alice = c.member("alice");
    // What she keeps from before her retirement: the service tenant's keys, her share.
    let hers = c.coop_of(3);
    let setup = setup(&c.repo, &c.coop()).unwrap();
    let (_, kept) = own_share(
        &c.repo,
        &setup,
        alice.recovery.as_ref().unwrap(),
        &c.admins[3],
    )
    .unwrap()
    .unwrap();
    crate::admins::remove(&c.repo, &c.access(0), "admin3").unwrap();
    crate::admins::approve(&c.repo, &c.access(1), "admin3").unwrap();
    let o = crate::admins::approve(&c.repo, &c.access(2), "admin3").unwrap();
    match o {
        Outcome::Removed(r) => assert!(r.holds_shares && r.reshare.is_some()),
        o => panic!("{o:?}"),
    }
    // She deals nothing to the re-split: she no longer opens the service tenant.
    assert!(matches!(c.reshare(3), Err(Error::NotRecipient { .. })));
    c.reshare(0).unwrap();
    c.reshare(1).unwrap();
    assert_eq!(c.reshare(2).unwrap().did, ["dealt", "combined"]);
    c.reshare(0).unwrap();
    assert!(c.reshare(1).unwrap().finished);
    let new = crate::recovery::setup(&c.repo, &c.coop()).unwrap();
    assert_eq!(new.holders.len(), 3);
    assert!(!new.holders.iter().any(|h| h.name == "admin3"));
    // Her kept share with two new ones: nothing that opens alice.
    let alice = c.member("alice");
    let r = alice.recovery.clone().unwrap();
    let fresh: Vec<Vec<u8>> = [0, 1]
        .iter()
        .map(|&a| {
            own_share(&c.repo, &new, &r, &c.admins[a])
                .unwrap()
                .unwrap()
                .1
        })
        .collect();
    let shares: Vec<blahaj::Share> = [&kept, &fresh[0], &fresh[1]]
        .iter()
        .map(|s| blahaj::Share::try_from(s.as_slice()).unwrap())
        .collect();
    let text = blahaj::Sharks(3).recover(shares.iter()).unwrap();
    if let Ok(guess) = crypt::parse_identities(&text) {
        assert!(crate::members::open_ring(&c.repo, &guess, &alice).is_err());
    }
    assert_eq!(c.epoch_objects(&setup.epoch), 0);
    // She holds no share of the new epoch to approve with; the others recover.
    let id = c.request(0, "alice");
    assert!(matches!(
        approve(&c.repo, &hers, &c.admins[3], &id, &super::tests::NO_WAIT),
        Err(Error::AccessDenied { .. })
    ));
    assert!(c.recovers(0, &[1, 2], "bob"));
}

/// With three admins and a recovery combining three shares, retiring one would leave nobody
/// able to recover a member: refused before it is proposed.
#[test]
fn a_retirement_that_leaves_too_few_holders_is_refused() {
    let c = coop();
    match crate::admins::remove(&c.repo, &c.access(0), "admin2") {
        Err(Error::Invalid { what }) => assert!(what.contains("Add an admin first"), "{what}"),
        o => panic!("{o:?}"),
    }
}

/// A fourth admin joined and the re-split that gives her shares has not ended: retiring one
/// of the three old holders now would leave two who can deal the next re-split, fewer than the
/// three it needs, so nobody could ever be recovered. Refused until the re-split ends; then
/// the retirement goes ahead.
#[test]
fn a_retirement_during_a_re_split_that_could_never_end_is_refused() {
    let mut c = coop();
    let dave = c.add_admin();
    match crate::admins::remove(&c.repo, &c.access(0), "admin1") {
        Err(Error::Invalid { what }) => {
            assert!(what.contains("who can deal a re-split"), "{what}")
        }
        o => panic!("{o:?}"),
    }
    for by in [0, 1, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    assert!(c.registry().recovery_next.is_none(), "the re-split ended");
    let o = crate::admins::remove(&c.repo, &c.access(0), "admin1").unwrap();
    assert!(matches!(o, Outcome::Pending { .. }), "{o:?}");
    // A second retirement proposed meanwhile passes its proposal (four admins then), but
    // once admin1's completes, approving admin2's would leave two admins, and two holders to
    // deal, of the three a recovery combines: refused at the approval, whatever the proposal
    // said.
    let o = crate::admins::remove(&c.repo, &c.access(0), "admin2").unwrap();
    assert!(matches!(o, Outcome::Pending { .. }), "{o:?}");
    crate::admins::approve(&c.repo, &c.access(2), "admin1").unwrap();
    let o = crate::admins::approve(&c.repo, &c.access(dave), "admin1").unwrap();
    assert!(matches!(o, Outcome::Removed(_)), "{o:?}");
    match crate::admins::approve(&c.repo, &c.access(dave), "admin2") {
        Err(Error::Invalid { what }) => assert!(what.contains("fewer than the 3"), "{what}"),
        o => panic!("{o:?}"),
    }
}

/// One admin alone writes a registry whose re-split gives admin 2's share to an identity of
/// her own: the other admins deal nothing to it.
#[test]
fn a_plan_giving_one_admin_a_second_share_gets_no_deal() {
    let c = coop();
    let (_, puppet) = crypt::generate_identity();
    let mut loaded = crate::registry::load_for_change(&c.repo, &c.coop()).unwrap();
    let from = loaded.registry.recovery_setup.clone().unwrap();
    let mut setup = from.clone();
    setup.epoch = "0123456789abcdef".into();
    setup.holders[2].recipient = puppet;
    loaded.registry.recovery_next = Some(coop_formats::recovery::Reshare {
        from: from.epoch.clone(),
        setup,
        slots: loaded
            .registry
            .members
            .iter()
            .map(|m| {
                let slot = m.recovery.as_ref().unwrap().slot.clone();
                (slot, "fedcba9876543210".to_string())
            })
            .take(1)
            .collect(),
        direct: Default::default(),
    });
    let setup = loaded
        .registry
        .recovery_next
        .as_ref()
        .unwrap()
        .setup
        .clone();
    crate::registry::save(&c.repo, &c.coop(), &mut loaded).unwrap();
    // She logs the start of her re-split herself, signed by her person key.
    let start = [
        ("from", from.epoch.clone().into()),
        ("setup", serde_json::to_value(&setup).unwrap()),
    ];
    reshare::log_step(&c.repo, &c.coop(), reshare::START, start).unwrap();
    for by in [1, 2] {
        match c.reshare(by) {
            Err(Error::AccessDenied { what }) => {
                assert!(what.contains("not the one the admins' log runs"), "{what}")
            }
            o => panic!("{o:?}"),
        }
    }
    assert!(c.repo.store.list("reshare").unwrap().is_empty());
}

/// A storage site that replaces a deal with one of its own making (encrypted to the holder's
/// public key) is caught by the digest the dealer logged; nothing is combined.
#[test]
fn a_swapped_deal_is_caught() {
    let mut c = coop();
    let dave = c.add_admin();
    c.reshare(0).unwrap();
    c.reshare(1).unwrap();
    c.reshare(2).unwrap();
    let plan = c.registry().recovery_next.unwrap();
    let path = format!("reshare/{}/deal/admin0/admin{dave}", plan.setup.epoch);
    let mut ct = Vec::new();
    let to = [crypt::parse_recipient(&c.publics[dave]).unwrap()];
    crypt::encrypt_to(&to, &[b"{}".as_slice()], &mut ct).unwrap();
    c.repo.store.put_replace(&path, ct).unwrap();
    match c.reshare(dave) {
        Err(Error::Damaged { object, .. }) => assert!(object.contains("deal/admin0"), "{object}"),
        o => panic!("{o:?}"),
    }
    assert!(c.registry().recovery_next.is_some());
}

/// One admin alone writes a registry whose recovery setup gives every share to identities of
/// her own: a member added afterwards gets no identity split into it, and no request or
/// approval uses it.
#[test]
fn a_setup_one_admin_writes_alone_gets_no_share_of_anything() {
    let c = coop();
    let (_, second) = crypt::generate_identity();
    let mut loaded = crate::registry::load_for_change(&c.repo, &c.coop()).unwrap();
    let setup = loaded.registry.recovery_setup.as_mut().unwrap();
    setup.holders[1].recipient = c.publics[0].clone();
    setup.holders[2].recipient = second;
    crate::registry::save(&c.repo, &c.coop(), &mut loaded).unwrap();
    let (_, pk) = crypt::generate_identity();
    match crate::members::add(&c.repo, &c.access(0), "carol", vec![pk], None) {
        Err(Error::AccessDenied { what }) => assert!(what.contains("has in force"), "{what}"),
        o => panic!("{o:?}"),
    }
    assert!(crate::registry::load(&c.repo, &c.coop())
        .unwrap()
        .registry
        .member("carol")
        .is_none());
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
}

/// After a re-split, the registry of before it is put back (the old setup and the members'
/// old recovery entries, with the old share files a holder kept): the log retired that epoch,
/// so no request is made for it and no share of it is released.
#[test]
fn a_registry_rolled_back_past_a_reshare_releases_nothing() {
    let mut c = coop();
    let before = c.registry();
    let id = c.request(0, "alice");
    let dave = c.add_admin();
    for by in [0, 1, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    assert!(c.registry().recovery_next.is_none());
    let mut loaded = crate::registry::load_for_change(&c.repo, &c.coop()).unwrap();
    loaded.registry.recovery_setup = before.recovery_setup.clone();
    for m in loaded.registry.members.iter_mut() {
        m.recovery = before.member(&m.name).unwrap().recovery.clone();
    }
    crate::registry::save(&c.repo, &c.coop(), &mut loaded).unwrap();
    match c.approve(1, &id) {
        Err(Error::AccessDenied { what }) => {
            assert!(what.contains("from before a re-split"), "{what}")
        }
        o => panic!("{:?}", o.map(|a| a.holder)),
    }
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
}

/// One admin alone logs the start of a re-split naming the persons' identities and then its
/// end, with nobody having dealt or combined: the log keeps the setup in force, so nothing is
/// retired and recoveries go on. Nor does a replaced re-split's setup (which named an admin
/// retired since) come back: only the newest one started runs.
#[test]
fn a_reshare_ended_alone_or_replaced_changes_nothing() {
    let mut c = coop();
    let from = c.registry().recovery_setup.unwrap();
    let coop = c.coop();
    let dave = c.add_admin();
    let first = c.registry().recovery_next.unwrap();
    let done = [
        ("from", from.epoch.clone().into()),
        ("epoch", first.setup.epoch.clone().into()),
    ];
    reshare::log_step(&c.repo, &coop, reshare::DONE, done).unwrap();
    let persons = c.persons();
    assert!(
        persons.setup_in_force(&from),
        "the setup in force was retired"
    );
    assert!(!persons.setup_in_force(&first.setup));
    assert!(c.recovers(0, &[1, 2], "alice"));
    // A second start (by admin 1) replaces the first: the first runs no more.
    let mut loaded = crate::registry::load_for_change(&c.repo, &c.coop_of(1)).unwrap();
    let persons = c.persons();
    reshare::start(&c.repo, &c.coop_of(1), &mut loaded.registry, &persons)
        .unwrap()
        .unwrap();
    crate::registry::save(&c.repo, &c.coop_of(1), &mut loaded).unwrap();
    let persons = c.persons();
    assert!(!persons.setup_running(&first.setup));
    // The first plan put back into the registry: nobody deals to it; the next admin who runs
    // `recovery reshare` starts one the log runs instead, and deals to that.
    let mut loaded = crate::registry::load_for_change(&c.repo, &c.coop()).unwrap();
    loaded.registry.recovery_next = Some(first.clone());
    crate::registry::save(&c.repo, &c.coop(), &mut loaded).unwrap();
    let p = c.reshare(1).unwrap();
    assert_ne!(p.epoch, first.setup.epoch);
    assert_eq!(p.did, ["started", "dealt"]);
    for by in [0, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    assert!(c.registry().recovery_next.is_none());
    assert!(c.recovers(dave, &[1, 2], "bob"));
}

/// After every old holder dealt and three of four new holders combined, one admin logs the
/// same start again (which, counted, would forget who combined and leave the registry to end
/// the re-split alone): it counts for nothing, the last holder's run ends the re-split, and
/// the new shares work.
#[test]
fn a_second_start_of_a_running_reshare_counts_for_nothing() {
    let mut c = coop();
    let dave = c.add_admin();
    let plan = c.registry().recovery_next.unwrap();
    for by in [0, 1, 2, 0, 1] {
        c.reshare(by).unwrap();
    }
    let again = [
        ("from", plan.from.clone().into()),
        ("setup", serde_json::to_value(&plan.setup).unwrap()),
    ];
    reshare::log_step(&c.repo, &c.coop(), reshare::START, again).unwrap();
    assert!(c.reshare(dave).unwrap().finished);
    assert!(crate::recovery::setup(&c.repo, &c.coop()).unwrap().epoch == plan.setup.epoch);
    assert!(c.recovers(dave, &[1, 2], "alice"));
}
