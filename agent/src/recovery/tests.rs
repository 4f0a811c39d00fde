//! Recovery played by the admins it constrains: the requester with too few approvals, a
//! request for one member used on another, the requester approving herself, and the
//! recovered key after the recovery (SPEC section 25; issue 25 findings 1 and 2).

use super::*;
use crate::keys::Access;
use std::sync::Arc;

pub(super) struct Coop {
    pub(super) dir: tempfile::TempDir,
    pub(super) repo: Repo,
    /// The admins' identities; admin 0 made the repository.
    pub(super) admins: Vec<Arc<Vec<Identity>>>,
    /// The admins' person keys (each admin is a person, SPEC 24.11).
    pub(super) persons: Vec<Arc<ed25519_dalek::SigningKey>>,
    pub(super) publics: Vec<String>,
    pub(super) members: Vec<Arc<Vec<Identity>>>,
}

pub(super) fn ids(text: &str) -> Arc<Vec<Identity>> {
    Arc::new(crypt::parse_identities(text.as_bytes()).unwrap())
}

/// Three admins, K = 2 (a recovery takes the requester and two others), members alice and
/// bob, the split made.
pub(super) fn coop() -> Coop {
    let c = unsplit();
    c.split();
    c
}

/// [`coop`] before the split: admin 0 reads every member.
pub(super) fn unsplit() -> Coop {
    unsplit_with(3)
}

/// [`unsplit`] with `n` admins.
pub(super) fn unsplit_with(n: u8) -> Coop {
    let d = tempfile::tempdir().unwrap();
    let keys: Vec<(String, String)> = (0..n).map(|_| crypt::generate_identity()).collect();
    let (mut repo, _) = Repo::init(
        d.path().join("r").to_str().unwrap(),
        vec![keys[0].1.clone()],
        crate::now_rfc3339(),
    )
    .unwrap();
    repo.cache_dir = Some(d.path().join("cache"));
    let admins: Vec<_> = keys.iter().map(|(s, _)| ids(s)).collect();
    let persons: Vec<_> = (1..=n)
        .map(|n| Arc::new(ed25519_dalek::SigningKey::from_bytes(&[n; 32])))
        .collect();
    let access = Access::Identity(admins[0].clone(), Some(persons[0].clone()));
    for (i, (_, public)) in keys.iter().enumerate() {
        let token = crate::admins::token(&persons[i], public);
        crate::admins::add(&repo, &access, &format!("admin{i}"), &token).unwrap();
    }
    let mut members = Vec::new();
    for name in ["alice", "bob"] {
        let (s, p) = crypt::generate_identity();
        crate::members::add(&repo, &access, name, vec![p], None).unwrap();
        members.push(ids(&s));
    }
    Coop {
        dir: d,
        repo,
        admins,
        persons,
        publics: keys.into_iter().map(|(_, p)| p).collect(),
        members,
    }
}

impl Coop {
    pub(super) fn split(&self) {
        let holders: Vec<(String, String)> = self
            .publics
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("admin{i}"), p.clone()))
            .collect();
        let s = init(&self.repo, &self.access(0), 2, &holders).unwrap();
        assert_eq!((s.threshold, s.approvals()), (3, 2));
        assert_eq!(s.holders.len(), self.admins.len());
    }
    pub(super) fn access(&self, by: usize) -> Access {
        Access::Identity(self.admins[by].clone(), Some(self.persons[by].clone()))
    }
    /// Admin 0's keys to the service tenant.
    pub(super) fn coop(&self) -> TenantKeys {
        self.coop_of(0)
    }
    /// Admin `by`'s keys to the service tenant: her entries are signed by her person key.
    pub(super) fn coop_of(&self, by: usize) -> TenantKeys {
        crate::tenant::keys(&self.repo, &self.access(by), "coop").unwrap()
    }
    pub(super) fn member(&self, name: &str) -> Member {
        crate::members::load(&self.repo, &self.coop())
            .unwrap()
            .registry
            .member(name)
            .unwrap()
            .clone()
    }
    pub(super) fn request(&self, by: usize, member: &str) -> String {
        request(
            &self.repo,
            &self.coop_of(by),
            &self.admins[by],
            member,
            Reason::MemberRequest,
            None,
        )
        .unwrap()
        .0
    }
    pub(super) fn approve(&self, by: usize, id: &str) -> Result<Approved> {
        approve(
            &self.repo,
            &self.coop_of(by),
            &self.admins[by],
            id,
            &NO_WAIT,
        )
    }
    pub(super) fn recover(&self, by: usize, id: &str, member: &str) -> Result<Recovered> {
        recover(
            &self.repo,
            &self.coop_of(by),
            &self.admins[by],
            id,
            member,
            &NO_WAIT,
        )
    }
}

pub(super) const NO_WAIT: Wait = Wait {
    timeout: std::time::Duration::ZERO,
    waiting: &|_| {},
};

#[test]
fn no_admin_key_opens_a_member_after_the_split() {
    let c = coop();
    for a in &c.admins {
        for m in ["alice", "bob"] {
            assert!(crate::members::open_ring(&c.repo, a, &c.member(m)).is_err());
        }
    }
    // Each member has a recovery key of their own.
    let (a, b) = (c.member("alice"), c.member("bob"));
    assert_ne!(a.recovery.unwrap().recipient, b.recovery.unwrap().recipient);
    for (i, m) in ["alice", "bob"].iter().enumerate() {
        assert!(crate::members::open_ring(&c.repo, &c.members[i], &c.member(m)).is_ok());
    }
}

/// The requester's own share plus one approval, combined by hand outside coop (the attack of
/// finding 1), rebuilds nothing that opens alice.
#[test]
fn the_requester_with_one_approval_reads_nothing() {
    use base64::Engine;
    let c = coop();
    let id = c.request(0, "alice");
    assert!(matches!(c.approve(0, &id), Err(Error::AccessDenied { .. })));
    c.approve(1, &id).unwrap();
    match c.recover(0, &id, "alice") {
        Err(Error::AccessDenied { what }) => assert!(what.contains("1 of the 2"), "{what}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("one approval opened alice"),
    }
    // By hand: the requester's share file and the released share, decrypted with her keys.
    let alice = c.member("alice");
    let r = alice.recovery.clone().unwrap();
    let setup = setup(&c.repo, &c.coop()).unwrap();
    let (_, mine) = own_share(&c.repo, &setup, &r, &c.admins[0])
        .unwrap()
        .unwrap();
    let eph =
        crypt::parse_identities(&std::fs::read(key_path(&c.repo, &id).unwrap()).unwrap()).unwrap();
    let trusted = crate::writers::log_trust(&c.repo, &c.coop().admin_keys).unwrap();
    let rel = find(&c.repo, &trusted, |e| e.event == Event::RecoveryRelease).unwrap();
    assert_eq!(rel.len(), 1);
    let ct = base64::engine::general_purpose::STANDARD
        .decode(rel[0].entry.data["share"].as_str().unwrap())
        .unwrap();
    let theirs = crypt::decrypt(&eph, &ct, 1 << 16).unwrap();
    for k in 2..=3u8 {
        let shares: Vec<blahaj::Share> = [&mine, &theirs]
            .iter()
            .map(|s| blahaj::Share::try_from(s.as_slice()).unwrap())
            .collect();
        let Ok(text) = blahaj::Sharks(k).recover(shares.iter()) else {
            continue;
        };
        if let Ok(guess) = crypt::parse_identities(&text) {
            assert!(
                crate::members::open_ring(&c.repo, &guess, &alice).is_err(),
                "two shares opened alice"
            );
        }
    }
}

/// The requester approves her own request under another name (a request made without a
/// share, then approved by her): her share counts once, as her own, never as an approval.
#[test]
fn the_requesters_own_release_is_no_approval() {
    let c = coop();
    // Asked with no share-holding identity: the request names no requester.
    let stranger = ids(&crypt::generate_identity().0);
    let id = request(
        &c.repo,
        &c.coop(),
        &stranger,
        "alice",
        Reason::MemberRequest,
        None,
    )
    .unwrap()
    .0;
    c.approve(0, &id).unwrap();
    c.approve(1, &id).unwrap();
    match c.recover(0, &id, "alice") {
        Err(Error::AccessDenied { what }) => assert!(what.contains("1 of the 2"), "{what}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("the requester's own release counted as an approval"),
    }
}

/// K approvals open the one member asked for, never another; afterwards the recovered key
/// opens nothing written after the recovery, while alice reads old and new.
#[test]
fn a_recovery_opens_one_member_once() {
    let c = coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    assert!(matches!(
        c.recover(0, &id, "bob"),
        Err(Error::AccessDenied { .. })
    ));
    let r = c.recover(0, &id, "alice").unwrap();
    let recovered = r.ids.clone();
    let before = c.member("alice");
    let old_ring = crate::members::open_ring(&c.repo, &recovered, &before).unwrap();
    assert!(crate::members::open_ring(&c.repo, &recovered, &c.member("bob")).is_err());
    let old_data = old_ring.data_identities().unwrap();
    let mut written_before = Vec::new();
    let to = [crypt::parse_recipient(&before.data_recipient).unwrap()];
    crypt::encrypt_to(&to, &[b"before"], &mut written_before).unwrap();

    conclude(&c.repo, &c.coop(), r).unwrap();
    let after = c.member("alice");
    assert_ne!(after.data_recipient, before.data_recipient);
    assert_ne!(after.recovery, before.recovery);
    assert!(
        crate::members::open_ring(&c.repo, &recovered, &after).is_err(),
        "the recovered key opens alice's keyring after the recovery"
    );
    let mut written_after = Vec::new();
    let to = [crypt::parse_recipient(&after.data_recipient).unwrap()];
    crypt::encrypt_to(&to, &[b"after"], &mut written_after).unwrap();
    assert!(crypt::decrypt(&old_data, &written_after, 1 << 10).is_err());
    // Alice reads both; the request's key is gone.
    let ring = crate::members::open_ring(&c.repo, &c.members[0], &after).unwrap();
    let hers = ring.data_identities().unwrap();
    assert_eq!(
        crypt::decrypt(&hers, &written_before, 1 << 10).unwrap(),
        b"before"
    );
    assert_eq!(
        crypt::decrypt(&hers, &written_after, 1 << 10).unwrap(),
        b"after"
    );
    assert!(!key_path(&c.repo, &id).unwrap().exists());
    // A second recovery needs a new request: the old one is for the old identity.
    c.approve(1, &id)
        .err()
        .expect("approving the used request again");
    let id2 = c.request(0, "alice");
    c.approve(1, &id2).unwrap();
    c.approve(2, &id2).unwrap();
    let r2 = c.recover(0, &id2, "alice").unwrap();
    assert!(crate::members::open_ring(&c.repo, &r2.ids, &after).is_ok());
}

/// A member added after the split gets a recovery key of her own, made from the holders'
/// public keys alone; no admin key opens her.
#[test]
fn a_member_added_after_the_split_gets_her_own_recovery_key() {
    let c = coop();
    let (s, p) = crypt::generate_identity();
    crate::members::add(&c.repo, &c.access(0), "carol", vec![p], None).unwrap();
    let carol = c.member("carol");
    let r = carol.recovery.clone().expect("a recovery key");
    assert_eq!(r.commitments.len(), c.publics.len());
    for a in &c.admins {
        assert!(crate::members::open_ring(&c.repo, a, &carol).is_err());
    }
    assert!(crate::members::open_ring(&c.repo, &ids(&s), &carol).is_ok());
    let id = c.request(2, "carol");
    c.approve(0, &id).unwrap();
    c.approve(1, &id).unwrap();
    let got = c.recover(2, &id, "carol").unwrap();
    assert!(crate::members::open_ring(&c.repo, &got.ids, &carol).is_ok());
}

/// Every change of a member's readers is an entry about that member.
#[test]
fn reader_changes_are_entries_about_the_member() {
    let c = coop();
    let trusted = crate::writers::log_trust(&c.repo, &c.coop().admin_keys).unwrap();
    let keys = crate::registry::member_writer_keys(&c.coop(), &c.member("alice")).unwrap();
    let tag = log::tenant_tag(&keys);
    let changes = find(&c.repo, &trusted, |e| {
        e.event == Event::KeyChange && e.tenant.as_deref() == Some(tag.as_str())
    })
    .unwrap();
    // Added (her key and the admins'), then re-wrapped by the split.
    assert_eq!(changes.len(), 2, "{}", changes.len());
    let alice_keys = crate::tenant::keys(
        &c.repo,
        &Access::Identity(c.members[0].clone(), None),
        "member/alice",
    )
    .unwrap();
    let last = crate::tenant::read_detail(&alice_keys, changes[1].entry.detail.as_deref().unwrap())
        .unwrap();
    assert!(last.contains("recovery key"), "{last}");
    assert!(!last.contains("another key"), "{last}");
}

/// Four admins, K = 2. Admin 3 is retired after the split (proposed by admin 0, approved by
/// 1 and 2). Her share of alice is still an age file to her key, and she still releases it to
/// a request: it counts for nothing, so admin 0 with admin 1's approval and hers reads
/// nothing, and with admin 2's instead reads alice.
#[test]
fn a_retired_admins_release_is_no_approval() {
    let c = unsplit_with(4);
    c.split();
    // What she holds from before her retirement.
    let hers = c.coop_of(3);
    use crate::admins::Outcome;
    assert!(matches!(
        crate::admins::remove(&c.repo, &c.access(0), "admin3").unwrap(),
        Outcome::Pending { .. }
    ));
    crate::admins::approve(&c.repo, &c.access(1), "admin3").unwrap();
    let done = crate::admins::approve(&c.repo, &c.access(2), "admin3").unwrap();
    assert!(matches!(done, Outcome::Removed(_)), "{done:?}");
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    // The retired admin's client still decrypts her share and logs a release (with the
    // service tenant's keys she kept, signed by her person key).
    approve(&c.repo, &hers, &c.admins[3], &id, &NO_WAIT).unwrap();
    match c.recover(0, &id, "alice") {
        Err(Error::AccessDenied { what }) => assert!(what.contains("1 of the 2"), "{what}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a retired admin's release counted"),
    }
    c.approve(2, &id).unwrap();
    assert!(c.recover(0, &id, "alice").is_ok());
}

/// A split with a share holder who is no admin person, or made by an admin without a person
/// key, is refused before anything changes: after the split only persons' signed entries
/// count, and a split without them would leave approvals and members' keys to the shared
/// admin key (SPEC 15.4, 24.11).
#[test]
fn only_admin_persons_hold_shares_and_split() {
    let c = unsplit();
    let (_, stranger) = crypt::generate_identity();
    let mut holders: Vec<(String, String)> = c
        .publics
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("admin{i}"), p.clone()))
        .collect();
    let honest = holders.clone();
    holders[2] = ("stranger".into(), stranger);
    let e = init(&c.repo, &c.access(0), 2, &holders).unwrap_err();
    assert!(e.to_string().contains("stranger"), "{e}");
    let no_person = Access::Identity(c.admins[0].clone(), None);
    let e = init(&c.repo, &no_person, 2, &honest).unwrap_err();
    assert!(e.to_string().contains("admin person herself"), "{e}");
    assert!(setup(&c.repo, &c.coop()).is_err(), "nothing was split");
    init(&c.repo, &c.access(0), 2, &honest).unwrap();
}

/// One admin, before the split, logs a `recovery-init` of her own naming only her person
/// key: the first such entry decides who counts (SPEC 24.11), so the honest split that follows
/// would not count. It is refused, naming what the log holds.
#[test]
fn a_split_logged_alone_beforehand_stops_the_real_one() {
    let c = unsplit();
    let coop = c.coop();
    let actor = log::Actor::of(&coop);
    let mut e = log::entry(&actor, Event::RecoveryInit, None, None, Some("mine".into()));
    let mine = hex::encode(c.persons[0].verifying_key().to_bytes());
    e.data.insert("persons".into(), vec![mine].into());
    e.data.insert("person_approvals".into(), 1.into());
    log::append(&c.repo, &actor, &[e]).unwrap();
    let holders: Vec<(String, String)> = c
        .publics
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("admin{i}"), p.clone()))
        .collect();
    let err = init(&c.repo, &c.access(0), 2, &holders).unwrap_err();
    assert!(
        err.to_string().contains("already holds a recovery split"),
        "{err}"
    );
    assert!(setup(&c.repo, &coop).is_err(), "nothing was split");
}
