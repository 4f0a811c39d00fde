//! The access log played by its attackers (a keyless site, a stolen key, a crash) and its figures.
use super::*;

fn repo() -> (tempfile::TempDir, Repo, Actor) {
    let d = tempfile::tempdir().unwrap();
    let (_, r) = coop_formats::crypt::generate_identity();
    let (mut repo, _) = Repo::init(
        d.path().join("r").to_str().unwrap(),
        vec![r],
        crate::now_rfc3339(),
    )
    .unwrap();
    repo.cache_dir = Some(d.path().join("cache"));
    let actor = Actor {
        name: "admin".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
        person: None,
    };
    (d, repo, actor)
}

fn e(actor: &Actor, i: usize) -> Entry {
    let mut x = entry(actor, Event::Backup, None, None, Some(format!("{i:064x}")));
    x.tenant = Some(hex::encode([i as u8; 16]));
    x
}

#[test]
fn appends_across_bundles_verify_and_prove() {
    let (_d, repo, actor) = repo();
    for batch in [1usize, 254, 3, 300] {
        let es: Vec<Entry> = (0..batch).map(|i| e(&actor, i)).collect();
        append(&repo, &actor, &es).unwrap();
    }
    let t = crate::writers::log_trust(&repo, &[actor.public()]).unwrap();
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.entries, 558);
    let proven = entries_about(&contents, &t, &hex::encode([7u8; 16]));
    assert!(!proven.is_empty());
    for p in &proven {
        assert_eq!(verify_proven(p, &t.witnesses), Ok(vec![]));
    }
}

fn admin_trust(repo: &Repo, admin: &Actor) -> Trusted {
    crate::writers::log_trust(repo, &[admin.public()]).unwrap()
}

/// Trust built by hand: the witnesses a test pushes count from the start (no adoption
/// entries; the adoption rules have their own tests below).
fn hand_trust(repo: &Repo, admin: &Actor) -> Trusted {
    Trusted {
        activation: None,
        ..admin_trust(repo, admin)
    }
}

fn delete_entry(actor: &Actor, paths: &[&str]) -> Entry {
    let mut x = entry(actor, Event::Delete, None, None, None);
    x.data.insert("paths".into(), serde_json::json!(paths));
    x
}

/// The keyless site's attack: a bundle with a delete entry and a checkpoint whose
/// signature is zeros, on top of the admin's real log.
#[test]
fn a_forged_checkpoint_authenticates_nothing_and_deletes_nothing() {
    let (_d, repo, admin) = repo();
    append(&repo, &admin, &[e(&admin, 1)]).unwrap();
    let id = tlog::log_id(&admin.origin(&repo));
    let mut forged = delete_entry(&admin, &["packs/x/aa", "snapshots/x/bb"]);
    forged.time = "2000-01-01T00:00:00Z".into();
    let mut all = read_entries(&repo, &stored(&repo, &id).unwrap(), 1).unwrap();
    all.push(forged.encode());
    repo.store
        .put(
            &format!("log/{id}/{}", tlog::bundle_path(0, 2)),
            tlog::encode_bundle(&all),
        )
        .unwrap();
    let cp = Checkpoint {
        origin: admin.origin(&repo),
        size: 2,
        root: tlog::root(&leaves(&all)),
    };
    let mut note = cp.body().into_bytes();
    use base64::Engine;
    note.extend_from_slice(
        format!(
            "\n\u{2014} {} {}\n",
            cp.origin,
            base64::engine::general_purpose::STANDARD.encode([0u8; 68])
        )
        .as_bytes(),
    );
    repo.store
        .put(&format!("log/{id}/checkpoint/2"), note)
        .unwrap();
    let t = admin_trust(&repo, &admin);
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(
        rep.problems
            .iter()
            .any(|p| p.object.ends_with("checkpoint/2")
                && p.kind == crate::damage::ProblemKind::Forged),
        "{:?}",
        rep.problems
    );
    assert_eq!(
        contents[0].entries.len(),
        1,
        "only what a valid checkpoint covers"
    );
    let mut seen = FirstSeen::default();
    let d = recorded_deletions(&contents, &t, &mut seen);
    assert!(d.get("packs/x/aa").is_none());
    // The admin's next append supersedes the forgery.
    let a = append(&repo, &admin, &[e(&admin, 2)]).unwrap();
    assert_eq!((a.first, a.size), (1, 2));
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(contents[0].entries.len(), 2);
}

/// A writer key (even one named `admin`) cannot log deletions that count, nor accesses,
/// and an entry naming another actor counts nowhere.
#[test]
fn authority_comes_from_keys_not_names() {
    let (_d, repo, admin) = repo();
    let thief = Actor {
        name: "admin".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        person: None,
    };
    let mut t = admin_trust(&repo, &admin);
    t.logs.insert(
        thief.origin(&repo),
        LogOwner {
            key: thief.public(),
            name: "admin".into(),
            admin: false,
        },
    );
    let mut access = entry(
        &thief,
        Event::Export,
        None,
        Some(Reason::LegalRequest),
        None,
    );
    access.tenant = Some(hex::encode([1u8; 16]));
    // A copy of a recovery request, with the thief's own ephemeral key.
    let mut request = entry(
        &thief,
        Event::RecoveryRequest,
        None,
        None,
        Some("r1".into()),
    );
    request.data.insert("ephemeral".into(), "age1thief".into());
    append(
        &repo,
        &thief,
        &[delete_entry(&thief, &["packs/x/aa"]), access, request],
    )
    .unwrap();
    // In the admin's own log, an entry that names the thief as its actor.
    let mut foreign = delete_entry(&thief, &["packs/x/bb"]);
    foreign.actor = hex::encode(thief.public());
    append(&repo, &admin, &[foreign]).unwrap();
    let (rep, contents) = verify(&repo, &t).unwrap();
    let forged = |what: &str| {
        rep.problems
            .iter()
            .any(|p| p.kind == crate::damage::ProblemKind::Forged && p.message.contains(what))
    };
    assert!(forged("only an admin's log"), "{:?}", rep.problems);
    assert!(forged("names actor"), "{:?}", rep.problems);
    let d = recorded_deletions(&contents, &t, &mut FirstSeen::default());
    assert!(d.get("packs/x/aa").is_none() && d.get("packs/x/bb").is_none());
    let about = entries_about(&contents, &t, &hex::encode([1u8; 16]));
    assert!(
        about.is_empty(),
        "a writer's access entry reaches no export"
    );
    let thiefs = contents.iter().find(|c| !c.admin).unwrap();
    assert_eq!(
        thiefs.rejected.len(),
        2,
        "the export and the recovery request"
    );
    assert!(thiefs
        .accepted()
        .all(|(_, e)| e.event != Event::RecoveryRequest && !e.event.is_access()));
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

/// A crash between the bundles and the checkpoint, and junk under the next names, leave a
/// log the next append continues.
#[test]
fn leftovers_and_squatters_do_not_stop_the_log() {
    let (_d, repo, admin) = repo();
    let a = append(&repo, &admin, &[e(&admin, 1)]).unwrap();
    for (path, junk) in [
        (tlog::bundle_path(0, 2), b"leftover".to_vec()),
        ("checkpoint/2".to_string(), b"squatter".to_vec()),
        ("checkpoint/3".to_string(), b"squatter".to_vec()),
        ("not-a-log-name".to_string(), b"junk".to_vec()),
    ] {
        repo.store
            .put(&format!("log/{}/{path}", a.id), junk)
            .unwrap();
    }
    let b = append(&repo, &admin, &[e(&admin, 2)]).unwrap();
    assert_eq!(b.size, 2);
    let c = append(&repo, &admin, &[e(&admin, 3)]).unwrap();
    assert_eq!(c.size, 3);
    let t = admin_trust(&repo, &admin);
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.notes.len(), 1, "{:?}", rep.notes);
    assert_eq!(contents[0].entries.len(), 3);
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

    // One history: comparing carries each witness's cosignature to the other copy.
    let g = gossip(&a, &b, &t, true).unwrap();
    assert!(g.forks.is_empty(), "{:?}", g.forks);
    assert_eq!(g.cosignatures, 2);
    for r in [&a, &b] {
        let (rep, _) = verify(r, &t).unwrap();
        assert!(rep.problems.is_empty(), "{:?}", rep.problems);
        let mut by = rep.logs[0].cosigned_by.clone();
        by.sort();
        assert_eq!(by, vec![pi.witness_name(), vm.witness_name()]);
    }
    assert_eq!(gossip(&a, &b, &t, true).unwrap().copied, 0);

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
    let kept: Vec<_> = std::fs::read_dir(
        d.path()
            .join("cache")
            .join(a.config.repo_id.to_hex())
            .join("log-forks"),
    )
    .unwrap()
    .collect();
    assert_eq!(kept.len(), 1);
    let id = tlog::log_id(&admin.origin(&a));
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
    // Fork objects that prove nothing (another key's checkpoint) are notes, not alarms.
    let other = Actor {
        name: "admin".into(),
        key: ed25519_dalek::SigningKey::from_bytes(&[8; 32]),
        person: None,
    };
    let fake = ForkEvidence {
        ty: FORK_TYPE.into(),
        checkpoint: String::from_utf8(tlog::sign_checkpoint(
            &Checkpoint {
                origin: admin.origin(&a),
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
        .check(&admin.public(), &admin.origin(&a), &tree)
        .is_err());
}

#[test]
fn log_object_names() {
    let id = "0123456789abcdef0123456789abcdef";
    for (rel, size, ok) in [
        ("checkpoint/12", 300, true),
        ("checkpoint/012", 300, false),
        ("checkpoint/12", 9 << 10, false),
        ("cosignature/12/0a0b0c0d", 200, true),
        ("cosignature/12/0A0B0C0D", 200, false),
        ("cosignature/12/0a0b0c0d", 20 << 20, false),
        ("entries/000", 100, true),
        ("entries/000.p/9", 100, true),
        ("entries/x001/234", 100, true),
        ("entries/000.p/256", 100, false),
        ("entries/0", 100, false),
        (&format!("fork/{}", "ab".repeat(32)), 2000, true),
        (&format!("fork/{}", "AB".repeat(32)), 2000, false),
        (&format!("fork/{}", "ab".repeat(32)), 17 << 10, false),
        ("fork/abc", 10, false),
        ("junk", 1, false),
    ] {
        assert_eq!(is_log_object(&format!("log/{id}/{rel}"), size), ok, "{rel}");
    }
    assert_eq!(bundle_end(&format!("log/{id}/entries/000.p/9")), Some(9));
    assert_eq!(bundle_end(&format!("log/{id}/entries/001")), Some(512));
    assert!(!is_log_object("log/short/checkpoint/1", 1));
}

/// Figures for the note: `COOP_LOG_FIGURES=1000000 cargo test -p coop-agent --release
/// log::tests::figures -- --ignored --nocapture` (default 100 000 entries, in 100
/// appends; every 100th entry is about the member whose export is timed).
#[test]
#[ignore]
fn figures() {
    let (d, repo, actor) = repo();
    let n: usize = std::env::var("COOP_LOG_FIGURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t0 = std::time::Instant::now();
    for b in 0..100 {
        let es: Vec<Entry> = (0..n / 100)
            .map(|i| {
                let mut x = e(&actor, b * (n / 100) + i);
                x.tenant = Some(hex::encode(if i % 100 == 0 {
                    [0xaa; 16]
                } else {
                    [0x55; 16]
                }));
                x
            })
            .collect();
        append(&repo, &actor, &es).unwrap();
    }
    let appended = t0.elapsed();
    let bytes: u64 = walk(&d.path().join("r/log"));
    let t = crate::writers::log_trust(&repo, &[actor.public()]).unwrap();
    let t1 = std::time::Instant::now();
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty());
    let verified = t1.elapsed();
    let t2 = std::time::Instant::now();
    let about = entries_about(&contents, &t, &hex::encode([0xaa; 16]));
    let proven = t2.elapsed();
    assert_eq!(about.len(), n / 100);
    let t3 = std::time::Instant::now();
    for p in &about {
        verify_proven(p, &t.witnesses).unwrap();
    }
    println!(
        "{n} entries in 100 appends: {:.1} s; {} bytes stored ({:.0} bytes per entry, all partial bundles and checkpoints included); \
         verify {:.2} s; a member's {} entries proven {:.2} s, checked offline {:.2} s",
        appended.as_secs_f64(),
        bytes,
        bytes as f64 / n as f64,
        verified.as_secs_f64(),
        about.len(),
        proven.as_secs_f64(),
        t3.elapsed().as_secs_f64()
    );
}

fn walk(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    n
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
    let all = [&pi, &vm, &w1, &w2, &w3];
    let quick = std::time::Duration::from_millis(10);
    let cosign = |w: &Actor, t: &Trusted| {
        let r = witness(&repo, w, t).unwrap();
        assert!(r.alarms.is_empty(), "{:?}", r.alarms);
    };
    let mut restore = entry(
        &anna,
        Event::Restore,
        None,
        Some(Reason::LegalRequest),
        None,
    );
    restore.tenant = Some(hex::encode([0xb0; 16]));
    let mut quorum = entry(
        &anna,
        Event::KeyChange,
        None,
        None,
        Some("log_quorum=2".into()),
    );
    quorum.time = restore.time.clone();

    // The founding witnesses: adopted before anything was cosigned; then the quorum is 2.
    append(&repo, &anna, &[adoption(&anna, &pi), adoption(&anna, &vm)]).unwrap();
    append(&repo, &anna, &[quorum]).unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&pi, &t);
    cosign(&vm, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    let a = t.activation.as_ref().unwrap();
    assert!(a.of(&pi.public()).unwrap().founding && a.of(&vm.public()).unwrap().founding);

    // Attack 1: adopt two fresh keys and the restore in one go; they cosign it at once.
    let at = append(
        &repo,
        &anna,
        &[adoption(&anna, &w1), adoption(&anna, &w2), restore.clone()],
    )
    .unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&w1, &t);
    cosign(&w2, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    assert!(
        t.activation.as_ref().unwrap().of(&w1.public()).is_none(),
        "a witness whose adoption no active witness cosigned does not count"
    );
    assert!(matches!(
        wait_for_quorum(&repo, &at, &anna.public(), &t, quick),
        Err(Error::LogQuorum { have: 0, .. })
    ));

    // The honest sites see (and cosign) the adoptions: from then on the new keys count, for
    // later checkpoints only.
    cosign(&pi, &t);
    cosign(&vm, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    let a = t.activation.as_ref().unwrap().clone();
    let since = a.of(&w1.public()).unwrap().since;
    assert_eq!(
        since, at.size,
        "active after the checkpoint that witnessed the adoption"
    );
    assert_eq!(
        a.of(&w1.public()).unwrap().by,
        Some(anna.person.as_ref().unwrap().verifying_key().to_bytes())
    );
    assert!(!a.of(&w1.public()).unwrap().founding);

    // Attack 2: now a restore cosigned by her own two keys only: still not witnessed.
    let at = append(&repo, &anna, &[restore.clone()]).unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&w1, &t);
    cosign(&w2, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    assert!(
        matches!(
            wait_for_quorum(&repo, &at, &anna.public(), &t, quick),
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
    cosign(&pi, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    assert!(wait_for_quorum(&repo, &at, &anna.public(), &t, quick).is_ok());

    // An entry with no person signature (the admin key used without a person key) is
    // independent of nobody: only founding witnesses count for it.
    let mut anon = admin_person(0);
    anon.person = None;
    let at = append(&repo, &anon, &[restore.clone()]).unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&w1, &t);
    cosign(&w2, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    assert!(wait_for_quorum(&repo, &at, &anna.public(), &t, quick).is_err());

    // Another admin's adoption is independent of anna: ben adopts w3, the sites witness it,
    // and w1 with w3 make anna's quorum (but w3 with nobody else would not make ben's).
    append(&repo, &ben, &[adoption(&ben, &w3)]).unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&pi, &t);
    cosign(&vm, &t);
    let at = append(&repo, &anna, &[restore.clone()]).unwrap();
    let t = listed_trust(&repo, &anna, &all, 2);
    cosign(&w1, &t);
    cosign(&w3, &t);
    let t = listed_trust(&repo, &anna, &all, 2);
    assert!(wait_for_quorum(&repo, &at, &anna.public(), &t, quick).is_ok());
    let a = t.activation.as_ref().unwrap();
    assert!(!a.independent_of(
        &w3.public(),
        Some(&ben.person.as_ref().unwrap().verifying_key().to_bytes())
    ));
    assert!(a.independent_of(
        &pi.public(),
        Some(&ben.person.as_ref().unwrap().verifying_key().to_bytes())
    ));

    // A key never witnesses its own log: the admin key "adopted" as a witness counts nowhere.
    let me = Actor {
        name: "self".into(),
        key: anna.key.clone(),
        person: None,
    };
    append(&repo, &anna, &[adoption(&anna, &me)]).unwrap();
    let t = listed_trust(&repo, &anna, &[&pi, &vm, &me], 2);
    assert!(t.activation.as_ref().unwrap().of(&anna.public()).is_none());
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
}

/// `coop log verify --json` and `recovery request/approve --json`: problems as their
/// messages; an append as where its entries are.
#[test]
fn reports_serialise_as_the_cli_shows_them() {
    let report = VerifyReport {
        problems: vec![crate::damage::Problem::forged("log/x/1", "not signed")],
        ..Default::default()
    };
    let v = serde_json::to_value(&report).unwrap();
    assert_eq!(
        v["problems"],
        serde_json::json!([report.problems[0].to_string()])
    );
    assert_eq!(
        serde_json::to_value(Appended {
            origin: "coop/ab/admin/cd".into(),
            id: "id".into(),
            first: 7,
            size: 8,
            root: [1; 32],
            person: None,
        })
        .unwrap(),
        serde_json::json!({"log": "coop/ab/admin/cd", "index": 7})
    );
}
