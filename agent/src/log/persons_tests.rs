//! Tests of the persons read from an admin log (SPEC 25.5).

use super::*;
use ed25519_dalek::SigningKey;

fn person(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn pk(n: u8) -> [u8; 32] {
    person(n).verifying_key().to_bytes()
}

fn entry(
    by: &SigningKey,
    event: Event,
    object: Option<&str>,
    data: serde_json::Map<String, serde_json::Value>,
) -> Entry {
    let mut e = Entry {
        ty: coop_formats::tlog::ENTRY_TYPE.into(),
        time: "2026-12-06T00:00:00Z".into(),
        event,
        actor: hex::encode([9u8; 32]),
        actor_name: "admin".into(),
        tenant: None,
        reason: None,
        object: object.map(str::to_string),
        data,
        detail: None,
    };
    e.sign_person(by);
    e
}

fn init(by: &SigningKey, persons: &[[u8; 32]], k: u64) -> Entry {
    let mut d = serde_json::Map::new();
    d.insert(
        "persons".into(),
        persons.iter().map(hex::encode).collect::<Vec<_>>().into(),
    );
    d.insert("person_approvals".into(), k.into());
    entry(by, Event::RecoveryInit, None, d)
}

fn propose(by: &SigningKey, op: Op, who: u8) -> Entry {
    entry(
        by,
        Event::KeyChange,
        Some(op.object()),
        Persons::proposal_data("x", &pk(who), "age1x"),
    )
}

fn approve(by: &SigningKey, op: Op, who: u8) -> Entry {
    entry(
        by,
        Event::KeyChange,
        Some(APPROVE),
        Persons::approval_data(op, &pk(who), "age1x"),
    )
}

fn read(entries: &[Entry]) -> Persons {
    Persons::from_entries(entries.iter().enumerate().map(|(i, e)| (i as u64, e)))
}

/// One admin replaces a proposal by another identity after the others read it: their
/// approvals name the identity they approved, and count nothing for hers.
#[test]
fn an_approval_counts_only_for_the_identity_it_names() {
    let (a, b, c) = (person(1), person(2), person(3));
    let swapped = entry(
        &a,
        Event::KeyChange,
        Some(Op::Add.object()),
        Persons::proposal_data("x", &pk(7), "age1hers"),
    );
    let p = read(&[
        init(&a, &[pk(1), pk(2), pk(3)], 2),
        swapped,
        approve(&b, Op::Add, 7),
        approve(&c, Op::Add, 7),
    ]);
    assert!(!p.counts_now(&pk(7)));
    assert!(!p.vouched.contains("age1hers"));
}

#[test]
fn before_the_split_every_person_counts() {
    let p = read(&[propose(&person(1), Op::Add, 7)]);
    assert!(p.counts_now(&pk(7)) && p.counts_now(&pk(1)));
}

/// One admin alone (person 1) adds a second person of her own and approves it with it,
/// approves her own proposal, and tries to remove person 2: nothing changes.
#[test]
fn one_admin_alone_changes_no_person() {
    let (a, b, c) = (person(1), person(2), person(3));
    let puppet = person(7);
    let p = read(&[
        init(&a, &[pk(1), pk(2), pk(3)], 2),
        propose(&a, Op::Add, 7),
        approve(&a, Op::Add, 7),
        approve(&puppet, Op::Add, 7),
        propose(&puppet, Op::Remove, 2),
        propose(&a, Op::Remove, 2),
        approve(&a, Op::Remove, 2),
        approve(&b, Op::Remove, 2),
    ]);
    assert!(!p.counts_now(&pk(7)), "the puppet counts");
    assert!(p.counts_now(&pk(2)), "person 2 was removed");
    assert_eq!(p.pending.len(), 2);
    assert_eq!(p.proposal(Op::Add, &pk(7)).unwrap().approvals.len(), 0);
    // With person 3's approval the add is K-of-N: it takes effect from then on.
    let mut entries = vec![
        init(&a, &[pk(1), pk(2), pk(3)], 2),
        propose(&a, Op::Add, 7),
        approve(&b, Op::Add, 7),
    ];
    assert!(!read(&entries).counts_now(&pk(7)));
    entries.push(approve(&c, Op::Add, 7));
    let p = read(&entries);
    assert!(p.counts_now(&pk(7)));
    assert!(
        !p.counts(&pk(7), 3),
        "counted before the approval that completed it"
    );
    // Forged person signatures count nowhere.
    let mut forged = approve(&c, Op::Remove, 1);
    forged.object = Some(APPROVE.into());
    forged
        .data
        .insert("admin_key".into(), hex::encode(pk(2)).into());
    entries.push(propose(&b, Op::Remove, 2));
    entries.push(forged);
    assert!(read(&entries).counts_now(&pk(2)));
}

#[test]
fn a_removed_person_counts_no_more_and_cannot_approve() {
    let (a, b, c) = (person(1), person(2), person(3));
    let p = read(&[
        init(&a, &[pk(1), pk(2), pk(3)], 2),
        propose(&a, Op::Remove, 3),
        approve(&b, Op::Remove, 3),
        approve(&c, Op::Remove, 3),
    ]);
    assert!(p.counts_now(&pk(3)), "the subject's own approval counted");
    let p = read(&[
        init(&a, &[pk(1), pk(2), pk(3), pk(4)], 2),
        propose(&a, Op::Remove, 3),
        approve(&b, Op::Remove, 3),
        approve(&person(4), Op::Remove, 3),
        propose(&c, Op::Add, 8),
        approve(&a, Op::Add, 8),
        approve(&b, Op::Add, 8),
    ]);
    assert!(!p.counts_now(&pk(3)));
    assert!(!p.counts_now(&pk(8)), "a removed person's proposal counted");
    // A later split names other persons: the first one stays in force.
    let p = read(&[init(&a, &[pk(1), pk(2)], 1), init(&a, &[pk(1), pk(7)], 1)]);
    assert!(!p.counts_now(&pk(7)));
}
