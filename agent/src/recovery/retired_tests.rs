//! What a retired admin, an entry appended again and a forged person signature can no longer
//! do (SPEC 24.9, 24.11, 25.3): get a recovery approved, make replicas delete anything or keep
//! a retired epoch's shares, count an approval twice, or void someone's genuine entry.

use super::tests::coop;
use super::*;

/// A replica of `c`'s repository in its test directory, made by a first replication.
fn replica(c: &super::tests::Coop) -> crate::store::Store {
    let target = c.dir.path().join("replica");
    let to = crate::store::Store::open(target.to_str().unwrap(), true).unwrap();
    replicate(c, &to);
    to
}

/// Replicates `c`'s repository to `to`, following logged deletions at once (no grace).
fn replicate(c: &super::tests::Coop, to: &crate::store::Store) {
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
    crate::replicate::replicate(&c.repo.store, to, &opts, &crate::progress::NoProgress).unwrap();
}

/// A replica made before a re-split holds the old epoch's shares; after the re-split the
/// source deleted them with a logged deletion, and the next replication deletes them at the
/// replica too (a replica that kept them would keep the old shares in force).
#[test]
fn replicas_follow_the_logged_deletion_of_a_retired_epochs_shares() {
    let mut c = coop();
    let old = c.registry().recovery_setup.unwrap().epoch;
    let to = replica(&c);
    let at_replica = |epoch: &str| to.list(&format!("recovery/{epoch}")).unwrap().len();
    assert!(at_replica(&old) > 0, "the replica has the old shares");
    let dave = c.add_admin();
    for by in [0, 1, 2, 0, 1, dave] {
        c.reshare(by).unwrap();
    }
    let new = c.registry().recovery_setup.unwrap().epoch;
    replicate(&c, &to);
    assert_eq!(at_replica(&old), 0);
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
    let to = replica(&c);
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
    replicate(&c, &to);
    assert!(
        to.exists(&theirs).unwrap(),
        "a retired admin's deletion was followed"
    );
    assert!(
        !to.exists(&ours).unwrap(),
        "a counted admin's deletion was not followed"
    );
}
