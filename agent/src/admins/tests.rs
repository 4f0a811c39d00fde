//! Admins as persons, played by the admins it constrains.

use super::*;
use coop_formats::registry::Registry;
use coop_formats::tlog::{Entry, ENTRY_TYPE};

fn entry() -> Entry {
    Entry {
        ty: ENTRY_TYPE.into(),
        time: "2026-12-06T00:00:00Z".into(),
        event: Event::Restore,
        actor: hex::encode([1u8; 32]),
        actor_name: "admin".into(),
        tenant: None,
        reason: None,
        object: None,
        data: Default::default(),
        detail: None,
    }
}

#[test]
fn entries_name_the_registered_person_and_nobody_else() {
    let anna = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let ben = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
    let reg = Registry {
        admins: vec![Admin {
            name: "anna".into(),
            recipient: "age1x".into(),
            key: anna.verifying_key().to_bytes(),
            added: String::new(),
            removed: None,
        }],
        ..Default::default()
    };
    let mut e = entry();
    assert_eq!(who(&e, Some(&reg)), "admin");
    e.sign_person(&anna);
    assert_eq!(who(&e, Some(&reg)), "admin anna");
    let mut b = entry();
    b.sign_person(&ben);
    assert!(who(&b, Some(&reg)).contains("unregistered"));
    // Ben's signature relabelled as anna's.
    b.data.insert(
        "person_key".into(),
        hex::encode(anna.verifying_key().to_bytes()).into(),
    );
    assert!(who(&b, Some(&reg)).contains("FORGED"));
}

#[test]
fn tokens_round_trip_and_junk_is_refused() {
    let k = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let (_, r) = coop_formats::crypt::generate_identity();
    let t = token(&k, &r);
    assert_eq!(parse_token(&t).unwrap(), (k.verifying_key().to_bytes(), r));
    for bad in [
        "",
        "coop-admin:",
        "coop-admin:zz:age1x",
        "age1abc",
        "coop-admin:00:age1",
    ] {
        assert!(parse_token(bad).is_err(), "{bad}");
    }
}

/// An admin whose key is an SSH key, as `coop init --recipient "ssh-ed25519 …"` put it in
/// the service tenant's keyring, registers (her X25519 form) and is retired: no form of her
/// key is left in the keyring, so she reads nothing of the service tenant written after.
#[test]
fn a_retired_ssh_admin_reads_nothing_new() {
    use std::sync::Arc;
    let d = tempfile::tempdir().unwrap();
    let ben_key = d.path().join("ben");
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ben", "-f"])
        .arg(&ben_key)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ben_pub = std::fs::read_to_string(ben_key.with_extension("pub")).unwrap();
    let (anna_secret, anna_pub) = coop_formats::crypt::generate_identity();
    let anna_file = d.path().join("anna");
    std::fs::write(&anna_file, anna_secret).unwrap();
    let access = |f: &std::path::Path| {
        Access::Identity(
            Arc::new(crate::keys::load_identities(f).unwrap()),
            crate::keys::person_key(f).unwrap().map(Arc::new),
        )
    };
    let (anna, ben) = (access(&anna_file), access(&ben_key));
    let (mut repo, _) = Repo::init(
        d.path().join("r").to_str().unwrap(),
        vec![anna_pub.clone(), ben_pub.trim().to_string()],
        crate::now_rfc3339(),
    )
    .unwrap();
    repo.cache_dir = Some(d.path().join("cache"));
    let token_of = |f: &std::path::Path| {
        let person = crate::keys::person_key(f).unwrap().unwrap();
        token(
            &person,
            &crate::keys::recipients_of_identity_file(f).unwrap()[0],
        )
    };
    add(&repo, &anna, "anna", &token_of(&anna_file)).unwrap();
    add(&repo, &anna, "ben", &token_of(&ben_key)).unwrap();
    crate::tenant::keys(&repo, &ben, "coop").unwrap();
    let out = remove(&repo, &anna, "ben").unwrap();
    assert!(matches!(out, Outcome::Removed(_)), "{out:?}");
    assert!(matches!(
        crate::tenant::keys(&repo, &ben, "coop"),
        Err(Error::NotRecipient { .. })
    ));
}

/// Admin changes after the recovery split, played by one admin acting alone (SPEC 24.11;
/// issue 25 finding 8).
mod k_of_n {
    use super::*;
    use coop_formats::crypt;
    use ed25519_dalek::SigningKey;
    use std::sync::Arc;

    struct Person {
        access: Access,
        token: String,
        key: [u8; 32],
    }

    fn person(n: u8) -> Person {
        let (secret, public) = crypt::generate_identity();
        let ids = Arc::new(crypt::parse_identities(secret.as_bytes()).unwrap());
        let signing = SigningKey::from_bytes(&[n; 32]);
        Person {
            token: token(&signing, &public),
            key: signing.verifying_key().to_bytes(),
            access: Access::Identity(ids, Some(Arc::new(signing))),
        }
    }

    /// Anna, ben and cleo, admins as persons; the split made with K = 2.
    fn coop() -> (tempfile::TempDir, Repo, Vec<Person>) {
        let d = tempfile::tempdir().unwrap();
        let people: Vec<Person> = (1..=3).map(person).collect();
        let (_, anna_public) = parse_token(&people[0].token).unwrap();
        let (mut repo, _) = Repo::init(
            d.path().join("r").to_str().unwrap(),
            vec![anna_public],
            crate::now_rfc3339(),
        )
        .unwrap();
        repo.cache_dir = Some(d.path().join("cache"));
        for (i, name) in ["anna", "ben", "cleo"].iter().enumerate() {
            let out = add(&repo, &people[0].access, name, &people[i].token).unwrap();
            assert!(matches!(out, Outcome::Added(_)));
        }
        let holders: Vec<(String, String)> = ["anna", "ben", "cleo"]
            .iter()
            .zip(&people)
            .map(|(n, p)| (n.to_string(), parse_token(&p.token).unwrap().1))
            .collect();
        crate::recovery::init(&repo, &people[0].access, 2, &holders).unwrap();
        (d, repo, people)
    }

    fn counts(repo: &Repo, p: &Person, key: &[u8; 32]) -> bool {
        let coop = crate::tenant::keys(repo, &p.access, "coop").unwrap();
        persons(repo, &coop).unwrap().person_counts(key)
    }

    #[test]
    fn one_admin_alone_adds_no_person_and_removes_none() {
        let (_d, repo, people) = coop();
        let anna = &people[0];
        // Anna makes a second person of herself and tries to approve it, as herself and as it.
        let puppet = person(7);
        let out = add(&repo, &anna.access, "puppet", &puppet.token).unwrap();
        assert!(matches!(
            out,
            Outcome::Pending {
                approvals: 0,
                needed: 2,
                ..
            }
        ));
        assert!(matches!(
            approve(&repo, &anna.access, "puppet"),
            Err(Error::AccessDenied { .. })
        ));
        // The puppet holds no key of the service tenant yet: it cannot even open it.
        assert!(approve(&repo, &puppet.access, "puppet").is_err());
        assert!(!counts(&repo, anna, &puppet.key));
        // She proposes to remove ben: refused, since two admins could not recover a member
        // whose recovery combines three shares. Ben still counts and reads the service tenant.
        assert!(matches!(
            remove(&repo, &anna.access, "ben"),
            Err(Error::Invalid { .. })
        ));
        assert!(counts(&repo, anna, &people[1].key));
        crate::tenant::keys(&repo, &people[1].access, "coop").unwrap();
        // Ben cannot approve his own removal.
        assert!(approve(&repo, &people[1].access, "ben").is_err());
        let listing = listing(
            &repo,
            &crate::tenant::keys(&repo, &anna.access, "coop").unwrap(),
        )
        .unwrap();
        assert_eq!(listing.pending.len(), 1);
        assert_eq!(listing.approvals_needed, Some(2));
    }

    /// One admin alone cannot lower the quorum after the split, neither with `log policy`
    /// nor by writing the writer list herself; K other admins can.
    #[test]
    fn after_the_split_the_quorum_falls_only_with_k_other_admins() {
        let (_d, repo, people) = coop();
        let keys = |p: &Person| crate::tenant::keys(&repo, &p.access, "coop").unwrap();
        let in_force = || {
            crate::writers::log_trust(&repo, &keys(&people[0]).admin_keys)
                .unwrap()
                .quorum
        };
        let (anna, ben, cleo) = (&people[0], &people[1], &people[2]);
        // Raising takes nobody's approval.
        let p = log_policy(&repo, &keys(anna), 2, &[]).unwrap();
        assert_eq!((p.log_quorum, p.pending), (2, None));
        let p = log_policy(&repo, &keys(anna), 0, &[]).unwrap();
        assert_eq!((p.log_quorum, p.pending), (2, Some((0, 2))));
        assert!(log_policy(&repo, &keys(anna), 0, &[]).is_err());
        // Anna writes the writer list herself, with quorum 0: the floor stays.
        let mut list = crate::writers::load(&repo, &keys(anna).admin_keys).unwrap();
        list.list.log_quorum = 0;
        crate::writers::save(&repo, &keys(anna).authority_signer().unwrap(), &mut list).unwrap();
        assert_eq!(in_force(), 2);
        let p = log_policy(&repo, &keys(ben), 0, &[]).unwrap();
        assert_eq!((p.log_quorum, p.pending), (2, Some((1, 2))));
        let p = log_policy(&repo, &keys(cleo), 0, &[]).unwrap();
        assert_eq!((p.log_quorum, p.pending), (0, None));
        assert_eq!(in_force(), 0);
    }

    #[test]
    fn k_other_admins_add_and_remove_a_person() {
        let (_d, repo, people) = coop();
        let (anna, ben, cleo) = (&people[0], &people[1], &people[2]);
        let dave = person(4);
        add(&repo, &anna.access, "dave", &dave.token).unwrap();
        let out = approve(&repo, &ben.access, "dave").unwrap();
        assert!(matches!(out, Outcome::Pending { approvals: 1, .. }));
        assert!(!counts(&repo, anna, &dave.key));
        let out = approve(&repo, &cleo.access, "dave").unwrap();
        assert!(matches!(out, Outcome::Added(_)), "{out:?}");
        assert!(counts(&repo, anna, &dave.key));
        // Dave reads the service tenant now, and approves as a person.
        crate::tenant::keys(&repo, &dave.access, "coop").unwrap();
        // Retiring cleo before the re-split that gives dave shares has ended would leave two
        // old holders to deal the next one, of the three it needs: refused until it ends.
        assert!(matches!(
            remove(&repo, &dave.access, "cleo"),
            Err(Error::Invalid { .. })
        ));
        for p in [anna, ben, cleo, anna, ben, &dave] {
            crate::reshare::run(&repo, &p.access).unwrap();
        }
        remove(&repo, &dave.access, "cleo").unwrap();
        approve(&repo, &anna.access, "cleo").unwrap();
        let out = approve(&repo, &ben.access, "cleo").unwrap();
        assert!(matches!(out, Outcome::Removed(_)), "{out:?}");
        assert!(!counts(&repo, anna, &cleo.key));
        assert!(matches!(
            crate::tenant::keys(&repo, &cleo.access, "coop"),
            Err(Error::NotRecipient { .. })
        ));
    }
}

/// `log show` marks an entry whose person does not count after the split (a second key of
/// one admin), and not one by a person named at the split.
#[test]
fn who_marks_a_person_who_does_not_count() {
    let anna = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let puppet = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut split = entry();
    split.event = Event::RecoveryInit;
    split.data.insert(
        "persons".into(),
        vec![hex::encode(anna.verifying_key().to_bytes())].into(),
    );
    split.sign_person(&anna);
    let mut by_anna = entry();
    by_anna.sign_person(&anna);
    let mut by_puppet = entry();
    by_puppet.sign_person(&puppet);
    let log = [split, by_anna, by_puppet];
    let persons = crate::log::persons::Persons::from_entries(
        log.iter().enumerate().map(|(i, e)| (i as u64, e)),
    );
    assert!(!who_at(&log[1], None, Some(&persons), 1).contains("does not count"));
    assert!(who_at(&log[2], None, Some(&persons), 2).contains("does not count"));
    assert!(!who_at(&log[2], None, None, 2).contains("does not count"));
}

/// One admin registers a second person key of hers under another admin's identity (the
/// recipient is public): refused, so that every person is one identity and a split's persons
/// can be told apart (SPEC 24.11). A retired admin's identity may come back.
#[test]
fn one_identity_is_one_person() {
    let anna = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let mut reg = Registry {
        admins: vec![Admin {
            name: "ben".into(),
            recipient: "age1ben".into(),
            key: anna.verifying_key().to_bytes(),
            added: String::new(),
            removed: None,
        }],
        ..Default::default()
    };
    let hers = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
        .verifying_key()
        .to_bytes();
    let e = check_new(&reg, "ben-laptop", &hers, "age1ben").unwrap_err();
    assert!(e.to_string().contains("one person per identity"), "{e}");
    check_new(&reg, "cleo", &hers, "age1cleo").unwrap();
    reg.admins[0].removed = Some("2026-12-07T00:00:00Z".into());
    check_new(&reg, "ben2", &hers, "age1ben").unwrap();
}
