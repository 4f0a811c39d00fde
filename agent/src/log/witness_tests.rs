//! Witnessing played by its attackers: a store hiding checkpoints, a revoked witness, a site
//! showing two copies two histories (a split view), and an admin witnessing herself with keys
//! she minted.
use super::tests::{admin_trust, e, repo};
use super::*;
use crate::error::Error;

/// Trust built by hand: the witnesses a test pushes count from the start (no adoption
/// entries; the adoption rules have their own tests below).
fn hand_trust(repo: &Repo, admin: &Actor) -> Trusted {
    Trusted {
        activation: None,
        ..admin_trust(repo, admin)
    }
}

/// A store that hides this machine's newest checkpoint gets no append on the shorter
/// history; a checkpoint of the right size with another history satisfies no quorum.
#[test]
fn hidden_checkpoints_and_other_histories_are_refused() {
    let (_d, repo, admin) = repo();
    append(&repo, &admin, &[e(&admin, 1)]).unwrap();
    let a2 = append(&repo, &admin, &[e(&admin, 2)]).unwrap();
    let id = a2.id.clone();
    let hidden = repo.store.get(&format!("log/{id}/checkpoint/2")).unwrap();
    repo.store
        .delete(&format!("log/{id}/checkpoint/2"))
        .unwrap();
    let err = append(&repo, &admin, &[e(&admin, 3)]).unwrap_err();
    assert!(crate::error::chain(&err).contains("ROLLBACK"), "{err}");
    repo.store
        .put(&format!("log/{id}/checkpoint/2"), hidden.to_vec())
        .unwrap();
    // A witness cosigns size 2; an appender told of another tree of size 2 (as a
    // second machine would have signed on the shorter log) is not satisfied by it.
    let w = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let wname = witness_name("pi", &w.verifying_key().to_bytes());
    let mut t = hand_trust(&repo, &admin);
    t.witnesses
        .push((wname.clone(), w.verifying_key().to_bytes()));
    t.quorum = 1;
    let cp = tlog::open_checkpoint(&hidden, &admin.public()).unwrap();
    let kid = format!(
        "{:08x}",
        tlog::key_id(&wname, &w.verifying_key().to_bytes(), true)
    );
    repo.store
        .put(
            &format!("log/{id}/cosignature/2/{kid}"),
            tlog::cosign(&cp, &wname, &w, 1),
        )
        .unwrap();
    let quick = std::time::Duration::from_millis(10);
    assert_eq!(
        wait_for_quorum(&repo, &a2, &admin.public(), &t, quick).unwrap(),
        vec![wname]
    );
    let other = Appended {
        root: [3; 32],
        ..a2.clone()
    };
    assert!(matches!(
        wait_for_quorum(&repo, &other, &admin.public(), &t, quick),
        Err(Error::LogQuorum { .. })
    ));
}

/// A revoked witness's cosignatures from before its revocation still count; later ones
/// do not, and neither counts as a forgery.
#[test]
fn revocation_is_forward_only() {
    let (_d, repo, admin) = repo();
    let a = append(&repo, &admin, &[e(&admin, 1)]).unwrap();
    let w = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let wk = w.verifying_key().to_bytes();
    let wname = witness_name("vm", &wk);
    let mut t = hand_trust(&repo, &admin);
    t.revoked_witnesses.push((wname.clone(), wk, 1_000));
    let note = repo
        .store
        .get(&format!("log/{}/checkpoint/1", a.id))
        .unwrap();
    let cp = tlog::open_checkpoint(&note, &admin.public()).unwrap();
    let kid = format!("{:08x}", tlog::key_id(&wname, &wk, true));
    let lines = |time| BTreeMap::from([(kid.clone(), tlog::cosign(&cp, &wname, &w, time))]);
    assert_eq!(
        t.cosigners(&cp, Some(&lines(999)), &admin.public()),
        vec![wname.clone()]
    );
    assert!(t
        .cosigners(&cp, Some(&lines(1_000)), &admin.public())
        .is_empty());
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A witness of `name` with a fixed key, trusted in `t`.
fn witness_actor(t: &mut Trusted, name: &str, seed: u8) -> Actor {
    let a = Actor {
        name: name.into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        person: None,
    };
    t.witnesses.push((a.witness_name(), a.public()));
    a
}

/// The split view (issue 24, finding 3): a site shows two copies of the repository two
/// branches of the admin's log, each cosigned by the witness that holds that copy; neither
/// witness alone can tell. Whoever compares the two copies (a replication between the sites)
/// raises the fork alarm, keeps both signed checkpoints in its cache, and leaves in each copy a
/// fork object on which that copy's witness and `log verify` alarm too. Copies of one history
/// instead carry each other's cosignatures and alarm on nothing.
#[test]
fn a_split_view_is_a_fork_for_whoever_holds_both_copies() {
    let (d, a, admin) = repo();
    append(&a, &admin, &[e(&admin, 1)]).unwrap();
    copy_tree(&d.path().join("r"), &d.path().join("b"));
    let mut b = Repo::open(d.path().join("b").to_str().unwrap()).unwrap();
    // The second copy is used from another machine (its own cache: the admin there has no
    // memory of what was signed here, as a second admin's machine would not).
    b.cache_dir = Some(d.path().join("cache-b"));
    let mut t = hand_trust(&a, &admin);
    let pi = witness_actor(&mut t, "pi", 5);
    let vm = witness_actor(&mut t, "vm", 6);
    let alarms = |r: &Repo, w: &Actor| witness(r, w, &t).unwrap().alarms;
    assert!(alarms(&a, &pi).is_empty());
    assert!(alarms(&b, &vm).is_empty());

    one_history_carries_each_cosignature_across(&a, &b, &t, [&pi, &vm]);

    // The split: copy a gets entry 2, copy b entries 2' and 3' (the admin's access, shown
    // only to b's side). Each witness sees a log that only grew, and cosigns it.
    append(&a, &admin, &[e(&admin, 2)]).unwrap();
    append(&b, &admin, &[e(&admin, 20), e(&admin, 30)]).unwrap();
    assert!(alarms(&a, &pi).is_empty());
    assert!(alarms(&b, &vm).is_empty());
    for r in [&a, &b] {
        assert!(verify(r, &t).unwrap().0.problems.is_empty());
    }

    // One comparison finds it, keeps the evidence, and copies none of either branch.
    let g = gossip(&a, &b, &t, true).unwrap();
    assert_eq!(g.forks.len(), 1, "{:?}", g.forks);
    assert!(g.forks[0].contains("FORK"), "{}", g.forks[0]);
    assert_eq!(g.copied, 0);
    the_fork_is_kept_and_neither_branch_copied(&d, &a, &b, &admin);
    // Each copy now holds the proof: its witness alarms and cosigns nothing more, its
    // verifier reports the fork (a: the longer branch's head with a consistency proof from
    // a's size; b: a's checkpoint of size 2).
    for (r, w) in [(&a, &pi), (&b, &vm)] {
        let al = alarms(r, w);
        assert!(al.iter().any(|x| x.contains("FORK")), "{al:?}");
        let (rep, contents) = verify(r, &t).unwrap();
        assert!(
            rep.problems.iter().any(|p| p.message.contains("FORK")),
            "{:?}",
            rep.problems
        );
        assert!(!contents[0].sound);
    }
    a_fork_object_of_another_key_proves_nothing(&a, &admin);
}

/// One history: comparing the copies carries each witness's cosignature to the other copy
/// (both verify, cosigned by both witnesses), and comparing again copies nothing.
fn one_history_carries_each_cosignature_across(
    a: &Repo,
    b: &Repo,
    t: &Trusted,
    [pi, vm]: [&Actor; 2],
) {
    // A site squats the names of a's cosignatures at b with junk: none is kept out by it.
    let mut squatted = 0;
    for l in a.store.list("log").unwrap() {
        if l.path.contains("/cosignature/") && b.store.get(&l.path).is_err() {
            b.store.put(&l.path, b"junk".to_vec()).unwrap();
            squatted += 1;
        }
    }
    assert_eq!(squatted, 1);
    let g = gossip(a, b, t, true).unwrap();
    assert!(g.forks.is_empty(), "{:?}", g.forks);
    assert_eq!(g.cosignatures, 2);
    for r in [a, b] {
        let (rep, _) = verify(r, t).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let mut by = rep.logs[0].cosigned_by.clone();
        by.sort();
        assert_eq!(by, vec![pi.witness_name(), vm.witness_name()]);
    }
    assert_eq!(gossip(a, b, t, true).unwrap().copied, 0);
}

/// After the comparison that found the fork: one piece of evidence in copy a's cache, and
/// neither branch's checkpoint copied into the other copy.
fn the_fork_is_kept_and_neither_branch_copied(
    d: &tempfile::TempDir,
    a: &Repo,
    b: &Repo,
    admin: &Actor,
) {
    let kept: Vec<_> = std::fs::read_dir(
        d.path()
            .join("cache")
            .join(a.config.repo_id.to_hex())
            .join("log-forks"),
    )
    .unwrap()
    .collect();
    assert_eq!(kept.len(), 1);
    let id = tlog::log_id(&admin.origin(a));
    // Neither branch was copied into the other copy.
    assert!(b
        .store
        .get(&format!("log/{id}/checkpoint/2"))
        .unwrap_err()
        .is_not_found());
    assert!(a
        .store
        .get(&format!("log/{id}/checkpoint/3"))
        .unwrap_err()
        .is_not_found());
}

/// Fork objects that prove nothing (another key's checkpoint) are notes, not alarms.
fn a_fork_object_of_another_key_proves_nothing(a: &Repo, admin: &Actor) {
    let other = Actor {
        name: "admin".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
        person: None,
    };
    let fake = ForkEvidence {
        ty: FORK_TYPE.into(),
        checkpoint: String::from_utf8(tlog::sign_checkpoint(
            &Checkpoint {
                origin: admin.origin(a),
                size: 1,
                root: [0; 32],
            },
            &other.key,
        ))
        .unwrap(),
        prefix: None,
    };
    let tree = tlog::Levels::new(&[tlog::leaf_hash(b"x")]);
    assert!(fake
        .check(&admin.public(), &admin.origin(a), &tree)
        .is_err());
}

/// An admin (a person holding the admin key) adopting the witness `w` in the admin log.
fn adoption(admin: &Actor, w: &Actor) -> Entry {
    let mut x = entry(admin, Event::KeyChange, None, None, Some(w.name.clone()));
    x.data.insert("witness".into(), w.witness_name().into());
    x.data
        .insert("witness_key".into(), hex::encode(w.public()).into());
    x
}

/// The admin key held by one person (`seed` makes the person key).
fn admin_person(seed: u8) -> Actor {
    Actor {
        name: "admin".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        person: Some(ed25519_dalek::SigningKey::from_bytes(&[seed; 32])),
    }
}

/// The public key of an admin's person.
fn person_key(admin: &Actor) -> [u8; 32] {
    admin.person.as_ref().unwrap().verifying_key().to_bytes()
}

/// Trust as `log_trust` builds it, with `ws` in the writer list and `quorum`: the activation
/// recomputed from the admin log as it stands.
fn listed_trust(repo: &Repo, admin: &Actor, ws: &[&Actor], quorum: u32) -> Trusted {
    let mut t = admin_trust(repo, admin);
    for w in ws {
        t.witnesses.push((w.witness_name(), w.public()));
    }
    t.quorum = quorum;
    activate(repo, &mut t).unwrap();
    t
}

/// Issue 24 finding 5, played by the admin: with a quorum of 2, anna (one admin person)
/// mints two writer keys and has them cosign her own restore of bob, to roll her log back
/// afterwards where no honest witness saw it. A witness counts only once the entry that
/// adopted it is witnessed by the witnesses already there, and only for later checkpoints;
/// and witnesses anna adopted never alone make the quorum for anna's entries. The honest
/// sites therefore always see her access (and alarm on the rollback), while a witness
/// another admin (ben) adopted, or a founding one, does count for her.
#[test]
fn an_admin_cannot_witness_herself_with_keys_she_minted() {
    let s = Minted::new();
    s.founding_witnesses();
    let (at, t) = s.keys_adopted_with_the_restore_do_not_witness_it();
    s.honest_sites_activate_the_keys_for_later_checkpoints(&at, &t);
    s.her_own_keys_alone_are_not_her_quorum();
    s.an_entry_without_a_person_counts_only_founding_witnesses();
    s.a_witness_another_admin_adopted_counts_for_her();
    s.a_key_never_witnesses_its_own_log();
}

/// The cast of [`an_admin_cannot_witness_herself_with_keys_she_minted`]: admins anna and ben
/// (two persons holding the admin key), the founding witnesses pi and vm, the keys anna mints
/// (w1, w2) and the one ben adopts (w3); anna's restore of bob for a legal request.
struct Minted {
    _d: tempfile::TempDir,
    repo: Repo,
    anna: Actor,
    ben: Actor,
    pi: Actor,
    vm: Actor,
    w1: Actor,
    w2: Actor,
    w3: Actor,
    restore: Entry,
}

impl Minted {
    fn new() -> Minted {
        let (_d, repo, _) = repo();
        let anna = admin_person(21);
        let ben = admin_person(22);
        let wit = |name: &str, seed: u8| Actor {
            name: name.into(),
            key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            person: None,
        };
        let (pi, vm) = (wit("pi", 5), wit("vm", 6));
        let (w1, w2, w3) = (wit("anna-1", 31), wit("anna-2", 32), wit("bens", 33));
        let mut restore = entry(
            &anna,
            Event::Restore,
            None,
            Some(Reason::LegalRequest),
            None,
        );
        restore.tenant = Some(hex::encode([0xb0; 16]));
        Minted {
            _d,
            repo,
            anna,
            ben,
            pi,
            vm,
            w1,
            w2,
            w3,
            restore,
        }
    }

    /// Trust with all five witnesses listed and a quorum of 2.
    fn trust(&self) -> Trusted {
        let all = [&self.pi, &self.vm, &self.w1, &self.w2, &self.w3];
        listed_trust(&self.repo, &self.anna, &all, 2)
    }

    /// Each of `ws` witnesses the log under `t`, alarming on nothing.
    fn cosign(&self, t: &Trusted, ws: &[&Actor]) {
        for w in ws {
            let r = witness(&self.repo, w, t).unwrap();
            assert!(r.alarms.is_empty(), "{:?}", r.alarms);
        }
    }

    /// `ws` witness the log under the trust of now; the trust after.
    fn cosigned_by(&self, ws: &[&Actor]) -> Trusted {
        self.cosign(&self.trust(), ws);
        self.trust()
    }

    fn append(&self, by: &Actor, entries: &[Entry]) -> Appended {
        append(&self.repo, by, entries).unwrap()
    }

    /// `by` appends the restore of bob.
    fn append_restore(&self, by: &Actor) -> Appended {
        self.append(by, std::slice::from_ref(&self.restore))
    }

    /// The cosigners of the admin key's append `at` under `t`, if they make a quorum.
    fn quorum(&self, at: &Appended, t: &Trusted) -> Result<Vec<String>> {
        let quick = std::time::Duration::from_millis(10);
        wait_for_quorum(&self.repo, at, &self.anna.public(), t, quick)
    }

    /// The founding witnesses: adopted before anything was cosigned; then the quorum is 2.
    fn founding_witnesses(&self) {
        let (anna, pi, vm) = (&self.anna, &self.pi, &self.vm);
        let mut quorum = entry(
            anna,
            Event::KeyChange,
            None,
            None,
            Some("log_quorum=2".into()),
        );
        quorum.time = self.restore.time.clone();
        self.append(anna, &[adoption(anna, pi), adoption(anna, vm)]);
        self.append(anna, &[quorum]);
        let t = self.cosigned_by(&[pi, vm]);
        let a = t.activation.as_ref().unwrap();
        assert!(a.of(&pi.public()).unwrap().founding && a.of(&vm.public()).unwrap().founding);
    }

    /// Attack 1: adopt two fresh keys and the restore in one go; they cosign it at once.
    /// Returns the append and the trust after their cosignatures.
    fn keys_adopted_with_the_restore_do_not_witness_it(&self) -> (Appended, Trusted) {
        let (anna, w1, w2) = (&self.anna, &self.w1, &self.w2);
        let at = self.append(
            anna,
            &[adoption(anna, w1), adoption(anna, w2), self.restore.clone()],
        );
        let t = self.cosigned_by(&[w1, w2]);
        assert!(
            t.activation.as_ref().unwrap().of(&w1.public()).is_none(),
            "a witness whose adoption no active witness cosigned does not count"
        );
        assert!(matches!(
            self.quorum(&at, &t),
            Err(Error::LogQuorum { have: 0, .. })
        ));
        (at, t)
    }

    /// The honest sites see (and cosign, under `t`) the adoptions appended in `at`: from then
    /// on the new keys count, for later checkpoints only.
    fn honest_sites_activate_the_keys_for_later_checkpoints(&self, at: &Appended, t: &Trusted) {
        self.cosign(t, &[&self.pi, &self.vm]);
        let t = self.trust();
        let a = t.activation.as_ref().unwrap();
        let w1 = a.of(&self.w1.public()).unwrap();
        assert_eq!(
            w1.since, at.size,
            "active after the checkpoint that witnessed the adoption"
        );
        assert_eq!(w1.by, Some(person_key(&self.anna)));
        assert!(!w1.founding);
    }

    /// Attack 2: now a restore cosigned by her own two keys only: still not witnessed.
    fn her_own_keys_alone_are_not_her_quorum(&self) {
        let at = self.append_restore(&self.anna);
        let t = self.cosigned_by(&[&self.w1, &self.w2]);
        assert!(
            matches!(
                self.quorum(&at, &t),
                Err(Error::LogQuorum {
                    have: 2,
                    need: 2,
                    ..
                })
            ),
            "two cosignatures, both by witnesses anna adopted: not her quorum"
        );
        // One honest site's cosignature makes it count: that site saw the access, so a later
        // rollback below it is its alarm.
        self.cosign(&t, &[&self.pi]);
        let t = self.trust();
        assert!(self.quorum(&at, &t).is_ok());
    }

    /// An entry with no person signature (the admin key used without a person key) is
    /// independent of nobody: only founding witnesses count for it.
    fn an_entry_without_a_person_counts_only_founding_witnesses(&self) {
        let mut anon = admin_person(0);
        anon.person = None;
        let at = self.append_restore(&anon);
        let t = self.cosigned_by(&[&self.w1, &self.w2]);
        assert!(self.quorum(&at, &t).is_err());
    }

    /// Another admin's adoption is independent of anna: ben adopts w3, the sites witness it,
    /// and w1 with w3 make anna's quorum (but w3 with nobody else would not make ben's).
    fn a_witness_another_admin_adopted_counts_for_her(&self) {
        let (ben, w3) = (&self.ben, &self.w3);
        self.append(ben, &[adoption(ben, w3)]);
        self.cosign(&self.trust(), &[&self.pi, &self.vm]);
        let at = self.append_restore(&self.anna);
        let t = self.cosigned_by(&[&self.w1, w3]);
        assert!(self.quorum(&at, &t).is_ok());
        let a = t.activation.as_ref().unwrap();
        assert!(!a.independent_of(&w3.public(), Some(&person_key(ben))));
        assert!(a.independent_of(&self.pi.public(), Some(&person_key(ben))));
    }

    /// A key never witnesses its own log: the admin key "adopted" as a witness counts nowhere.
    fn a_key_never_witnesses_its_own_log(&self) {
        let anna = &self.anna;
        let me = Actor {
            name: "self".into(),
            key: anna.key.clone(),
            person: None,
        };
        self.append(anna, &[adoption(anna, &me)]);
        let t = listed_trust(&self.repo, anna, &[&self.pi, &self.vm, &me], 2);
        assert!(t.activation.as_ref().unwrap().of(&anna.public()).is_none());
    }
}

/// After the recovery split, anna (one admin person) revokes every witness and adopts keys
/// she minted: before the split they would re-found the witnesses (independent of every
/// person); after it they are hers, and witness nobody's entry independently (SPEC 24.11).
#[test]
fn after_the_split_one_admin_cannot_refound_the_witnesses_with_her_own() {
    let (_d, repo, _) = repo();
    let anna = admin_person(21);
    let ben = admin_person(22);
    let wit = |name: &str, seed: u8| Actor {
        name: name.into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        person: None,
    };
    let (pi, mine) = (wit("pi", 5), wit("anna-1", 31));
    let person = |a: &Actor| a.person.as_ref().unwrap().verifying_key().to_bytes();
    append(&repo, &anna, &[adoption(&anna, &pi)]).unwrap();
    let mut init = entry(&anna, Event::RecoveryInit, None, None, None);
    init.data.insert(
        "persons".into(),
        serde_json::json!([hex::encode(person(&anna)), hex::encode(person(&ben))]),
    );
    init.data.insert("person_approvals".into(), 1.into());
    append(&repo, &anna, &[init]).unwrap();
    let t = listed_trust(&repo, &anna, &[&pi], 1);
    let r = witness(&repo, &pi, &t).unwrap();
    assert!(r.alarms.is_empty(), "{:?}", r.alarms);
    let revoke = entry(&anna, Event::Revoke, None, None, Some("pi".into()));
    append(&repo, &anna, &[revoke, adoption(&anna, &mine)]).unwrap();
    let mut t = admin_trust(&repo, &anna);
    t.witnesses.push((mine.witness_name(), mine.public()));
    // Revoked now: its cosignature above (which ended the founding phase) still counts.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    t.revoked_witnesses
        .push((pi.witness_name(), pi.public(), now + 60));
    t.quorum = 1;
    activate(&repo, &mut t).unwrap();
    let a = t.activation.as_ref().unwrap();
    let w = a
        .of(&mine.public())
        .expect("adopted while no witness was live");
    assert!(
        !w.founding,
        "re-founded after the split: {w:?} {:?}",
        a.persons
    );
    assert!(!a.independent_of(&mine.public(), Some(&person(&anna))));
    assert!(a.independent_of(&mine.public(), Some(&person(&ben))));
    // Her own recovery request, cosigned by her own witness alone: witnessed by the count,
    // but not for her, so no approval, recovery or material check counts it.
    let req = entry(&anna, Event::RecoveryRequest, None, None, Some("r1".into()));
    let asked = append(&repo, &anna, &[req]).unwrap();
    let r = witness(&repo, &mine, &t).unwrap();
    assert!(r.alarms.is_empty(), "{:?}", r.alarms);
    let (_, contents) = verify(&repo, &t).unwrap();
    let c = contents.iter().find(|c| c.admin).unwrap();
    let i = asked.first as usize;
    assert!(c.is_witnessed(i, t.quorum), "cosigned: {:?}", c.cosigned);
    assert!(!c.is_witnessed_by(i, &t, Some(&person(&anna))));
    assert!(c.is_witnessed_by(i, &t, Some(&person(&ben))));
    let found = admin_entries(&repo, &t, |e| e.event == Event::RecoveryRequest).unwrap();
    assert!(
        !found[0].witnessed,
        "an approver waits for an independent witness"
    );
}
