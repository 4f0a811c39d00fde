//! The access log played by its attackers (a keyless site, a stolen key, a crash) and its figures.
use super::*;

pub(super) fn repo() -> (tempfile::TempDir, Repo, Actor) {
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

pub(super) fn e(actor: &Actor, i: usize) -> Entry {
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

pub(super) fn admin_trust(repo: &Repo, admin: &Actor) -> Trusted {
    crate::writers::log_trust(repo, &[admin.public()]).unwrap()
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

/// An append that stopped after claiming its checkpoint, before its bundles (here: the
/// bundles deleted, as a crash there leaves them): readers take the entries from its
/// pending object and the next append writes the bundles. A pending object that does not
/// hash to the checkpoint's root repairs nothing.
#[test]
fn an_append_stopped_after_its_claim_is_finished_by_the_next() {
    let (_d, repo, admin) = repo();
    let es: Vec<Entry> = (0..250).map(|i| e(&admin, i)).collect();
    append(&repo, &admin, &es).unwrap();
    let es: Vec<Entry> = (0..10).map(|i| e(&admin, 300 + i)).collect();
    let a = append(&repo, &admin, &es).unwrap();
    assert_eq!((a.first, a.size), (250, 260));
    for rel in [tlog::bundle_path(0, 256), tlog::bundle_path(1, 4)] {
        repo.store.delete(&format!("log/{}/{rel}", a.id)).unwrap();
    }
    let t = admin_trust(&repo, &admin);
    let (rep, _) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.entries, 260);
    let b = append(&repo, &admin, &[e(&admin, 999)]).unwrap();
    assert_eq!(b.size, 261);
    let s = stored(&repo, &a.id).unwrap();
    assert_eq!(read_entries(&repo, &s, 261).unwrap().len(), 261);
    assert_eq!(
        s.pending
            .keys()
            .filter_map(|r| pending_size(r))
            .collect::<Vec<_>>(),
        vec![260, 261],
        "the pending objects below the head the append started from are gone"
    );
    // A squatter's pending object under the next name, and the bundle deleted again.
    let c = append(&repo, &admin, &[e(&admin, 1000)]).unwrap();
    let (rel, _) = stored(&repo, &c.id).unwrap().pending.pop_last().unwrap();
    let mut junk: Vec<Vec<u8>> = vec![e(&admin, 5).encode(); 6];
    junk[5] = e(&admin, 6).encode();
    repo.store
        .put_replace(&format!("log/{}/{rel}", c.id), tlog::encode_bundle(&junk))
        .unwrap();
    repo.store
        .delete(&format!("log/{}/{}", c.id, tlog::bundle_path(1, 6)))
        .unwrap();
    let (rep, _) = verify(&repo, &t).unwrap();
    assert!(
        !rep.problems.is_empty(),
        "a junk pending object repaired the log"
    );
}

/// A batch larger than a pending object may hold (a prune logging a great many deletions)
/// goes in several appends: every pending object stays readable, so a stop after any claim
/// is finished by the next append, and the caller learns the first entry and the last head.
#[test]
fn a_batch_larger_than_a_pending_object_goes_in_parts() {
    let (_d, repo, admin) = repo();
    append(&repo, &admin, &[e(&admin, 0)]).unwrap();
    let big = |i: usize| {
        let mut x = e(&admin, i);
        x.data.insert("paths".into(), "p".repeat(60_000).into());
        x
    };
    let es: Vec<Entry> = (0..300).map(big).collect();
    let a = append(&repo, &admin, &es).unwrap();
    assert_eq!((a.first, a.size), (1, 301));
    let s = stored(&repo, &a.id).unwrap();
    assert!(s.pending.len() >= 2, "{:?}", s.pending.keys());
    assert!(s.pending.values().all(|n| *n <= MAX_PENDING));
    let t = admin_trust(&repo, &admin);
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(contents[0].entries.len(), 301);
}

/// Two machines (two cache directories, no shared lock) appending to one log at once:
/// every append lands once, and the log verifies.
#[test]
fn two_appenders_without_a_shared_lock_lose_no_entry() {
    let (d, repo, admin) = repo();
    append(&repo, &admin, &[e(&admin, 0)]).unwrap();
    let threads: Vec<_> = (0..2)
        .map(|m| {
            let mut r = repo.clone();
            r.cache_dir = Some(d.path().join(format!("cache{m}")));
            let admin = Actor {
                name: admin.name.clone(),
                key: admin.key.clone(),
                person: None,
            };
            std::thread::spawn(move || {
                for i in 0..15 {
                    append(&r, &admin, &[e(&admin, 100 * m + i)]).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let t = admin_trust(&repo, &admin);
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(contents[0].entries.len(), 31);
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
        (&format!("pending/12.{}", "ab".repeat(32)), 2000, true),
        (&format!("pending/012.{}", "ab".repeat(32)), 2000, false),
        (&format!("pending/12.{}", "AB".repeat(32)), 2000, false),
        (&format!("pending/12.{}", "ab".repeat(32)), 40 << 20, false),
        ("pending/12", 10, false),
        ("junk", 1, false),
    ] {
        assert_eq!(is_log_object(&format!("log/{id}/{rel}"), size), ok, "{rel}");
    }
    assert_eq!(bundle_end(&format!("log/{id}/entries/000.p/9")), Some(9));
    assert_eq!(bundle_end(&format!("log/{id}/entries/001")), Some(512));
    assert!(!is_log_object("log/short/checkpoint/1", 1));
    let root = "ab".repeat(32);
    for (size, bundle) in [
        (1, "entries/000.p/1"),
        (256, "entries/000"),
        (260, "entries/001.p/4"),
    ] {
        assert_eq!(
            pending_bundle(&format!("log/{id}/pending/{size}.{root}")),
            Some(format!("log/{id}/{bundle}"))
        );
    }
    assert_eq!(pending_bundle(&format!("log/{id}/entries/000")), None);
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

/// One admin writes the split's entry with its name escaped (`recovery\u002dinit`): it
/// decodes to the same entry, and its person signature still verifies. The prefilter that
/// passes over entries not about persons reads it whole, so the persons it names count
/// here as they do for every other reader of the log.
#[test]
fn an_entry_with_escaped_names_is_read_whole() {
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let person = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    let actor = Actor {
        name: "admin".into(),
        key: key.clone(),
        person: Some(person.clone()),
    };
    let mut e = entry(
        &actor,
        Event::RecoveryInit,
        None,
        None,
        Some("0123456789abcdef".into()),
    );
    let me = hex::encode(person.verifying_key().to_bytes());
    e.data.insert("persons".into(), serde_json::json!([me]));
    e.sign_person(&person);
    let plain = e.encode();
    let text = String::from_utf8(plain.clone()).unwrap();
    let escaped = text
        .replace("recovery-init", "recovery\\u002dinit")
        .into_bytes();
    assert_ne!(plain, escaped);
    assert!(!trust::contains(&escaped, b"recovery-init"));
    let decoded = Entry::decode(&escaped).unwrap();
    assert!(matches!(
        decoded.person(),
        coop_formats::tlog::PersonCheck::Signed(_)
    ));
    let owner = LogOwner {
        key: key.verifying_key().to_bytes(),
        name: "admin".into(),
        admin: true,
    };
    for bytes in [plain, escaped] {
        let c = trust::changes(&Trusted::default(), &[bytes], &owner);
        assert_eq!(c.persons.restricted_from, Some(0));
    }
}

/// A lying site deletes or hides a whole log this client verified before: not "no log",
/// a POSSIBLE ROLLBACK, and the log counts for nothing. A client that never saw it has
/// nothing to compare with (it is simply absent there).
#[test]
fn a_whole_log_gone_after_it_was_verified_is_a_rollback() {
    let (d, repo, admin) = repo();
    append(&repo, &admin, &[e(&admin, 0), e(&admin, 1)]).unwrap();
    let t = admin_trust(&repo, &admin);
    let (rep, _) = verify(&repo, &t).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    let id = tlog::log_id(&admin.origin(&repo));
    for l in repo.store.list(&format!("log/{id}")).unwrap() {
        repo.store.delete(&l.path).unwrap();
    }
    let (rep, contents) = verify(&repo, &t).unwrap();
    assert!(contents.is_empty());
    assert!(
        rep.problems
            .iter()
            .any(|p| p.message.contains("POSSIBLE ROLLBACK") && p.object.contains(&id)),
        "{:?}",
        rep.problems
    );
    let mut fresh = repo.clone();
    fresh.cache_dir = Some(d.path().join("fresh"));
    let (rep, _) = verify(&fresh, &admin_trust(&fresh, &admin)).unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
}
