//! What a member's writers accept after the split and after a recovery, played by one admin
//! alone: a key of her own as a member's, the keys a recovery replaced put back, a keyring or a
//! tenant signer kept from before the split, the end of a recovery or a member's first keys
//! logged twice (SPEC 15.3 and 15.4; issue 25).

use super::tests::{coop, ids, unsplit, Coop};
use super::*;

/// A client of the repository on another machine (its own cache, so its own pins).
fn elsewhere(c: &Coop, name: &str) -> Repo {
    let mut r = c.repo.clone();
    r.cache_dir = Some(c.dir.path().join(name));
    r
}

/// The service tenant's keys of a site writer `name` (a writer key file, as an agent holds).
fn site_writer(c: &Coop, name: &str) -> TenantKeys {
    let file = c.dir.path().join(format!("{name}.key"));
    crate::admins::writer_keys::export(&c.repo, &c.access(0), name, &file).unwrap();
    let access = crate::keys::Access::Writer(std::sync::Arc::new(
        crate::keys::load_writer_key(&file).unwrap(),
    ));
    crate::tenant::keys(&c.repo, &access, "coop").unwrap()
}

/// The split, after admin 0 kept alice's keyring (she could open it before); an agent that
/// pinned alice's keys after the split.
fn split_keeping_alices_ring() -> (Coop, coop_formats::keyring::Keyring, Repo) {
    let c = unsplit();
    let kept = crate::members::open_ring(&c.repo, &c.admins[0], &c.member("alice")).unwrap();
    c.split();
    let agent = elsewhere(&c, "agent");
    crate::registry::writer_keys_for_member(&agent, &c.coop(), "alice").unwrap();
    (c, kept, agent)
}

/// One admin logs `forged` as a member's first material (no request): what a client that never
/// met member `name` (its own cache `fresh`) then says.
fn first_material_refused(c: &Coop, forged: &Member, fresh: &str, name: &str) -> String {
    crate::registry::material::log(&c.repo, &c.coop(), forged, None).unwrap();
    refused(crate::registry::writer_keys_for_member(
        &elsewhere(c, fresh),
        &c.coop(),
        name,
    ))
}

fn refused(r: Result<TenantKeys>) -> String {
    match r {
        Err(e @ Error::MemberKeysChanged { .. }) => e.to_string(),
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(k) => panic!("accepted, encrypting to {:?}", k.recipient_strings),
    }
}

/// One admin alone (she signs registries) writes a key of her own as alice's data recipient,
/// so that agents encrypt alice's next backups to her: every writer refuses, the one that
/// backed alice up before and a fresh one alike (SPEC 15.3).
#[test]
fn one_admin_cannot_point_a_members_backups_at_her_own_key() {
    let c = coop();
    let coop = c.coop();
    let agent = elsewhere(&c, "agent");
    let genuine = crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    let (_, hers) = crypt::generate_identity();
    let forge = |edit: &dyn Fn(&mut Member)| {
        edit_member(&c, "alice", edit);
    };
    // Her key in place of alice's data key, the member tenant's signature kept: forged.
    forge(&|m| m.data_recipient = hers.clone());
    refused(crate::registry::writer_keys_for_member(
        &agent, &coop, "alice",
    ));
    refused(crate::registry::writer_keys_for_member(
        &elsewhere(&c, "fresh"),
        &coop,
        "alice",
    ));
    // The signature dropped: the agent accepted signed keys before, so it refuses.
    forge(&|m| m.material = None);
    let why = refused(crate::registry::writer_keys_for_member(
        &agent, &coop, "alice",
    ));
    assert!(why.contains("no signature"), "{why}");
    // A whole new tenant under alice's name, signed by a tenant the admin made: the agent
    // pinned alice's tenant and authority.
    let own = coop_formats::keyring::Keyring::generate(
        "member/alice",
        c.repo.config.repo_id,
        c.repo.config_hash,
        vec![hers.clone()],
        crate::now_rfc3339(),
    );
    forge(&|m| {
        m.tenant_tag = own.tenant_tag;
        m.authority = own.authority();
        m.data_recipient = own.data_recipient().unwrap();
        m.id_key = own.id_key;
        m.index_key = own.index_key;
        m.sign_material(&c.repo.config.repo_id, 99, &own.default_signer());
    });
    let why = refused(crate::registry::writer_keys_for_member(
        &agent, &coop, "alice",
    ));
    assert!(why.contains("another tenant"), "{why}");
    // Nothing the agent would write goes to her key: it still holds alice's genuine keys
    // only, and bob's are untouched.
    assert_ne!(genuine.recipient_strings, vec![hers.clone()]);
    crate::registry::writer_keys_for_member(&agent, &coop, "bob").unwrap();
}

/// After a recovery the member tenant signs its new data key at a higher generation: every
/// writer follows it and logs that it does, in an entry about the member; the old signed
/// keys (whose data key the recovery released) put back by one admin are refused.
#[test]
fn writers_follow_a_recovery_and_refuse_the_keys_it_replaced() {
    let c = coop();
    let coop = c.coop();
    let agent = elsewhere(&c, "agent");
    // The agent holds a site writer key, as on a site: its entry goes into its own log.
    let site = site_writer(&c, "site-b");
    let before = crate::registry::writer_keys_for_member(&agent, &site, "alice").unwrap();
    let old_entry = c.member("alice");
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    conclude(&c.repo, &coop, c.recover(0, &id, "alice").unwrap()).unwrap();
    let after = crate::registry::writer_keys_for_member(&agent, &site, "alice").unwrap();
    assert_ne!(after.recipient_strings, before.recipient_strings);
    assert_eq!(
        after.recipient_strings,
        vec![c.member("alice").data_recipient]
    );
    let trusted = crate::writers::log_trust(&c.repo, &coop.admin_keys).unwrap();
    let tag = log::tenant_tag(&after);
    // In the writer's own log, and counted (not flagged as a writer's forgery): the member
    // sees it in her export.
    let (rep, contents) = log::verify(&c.repo, &trusted).unwrap();
    assert!(
        !rep.problems
            .iter()
            .any(|p| p.message.contains("site writer's log")),
        "{:?}",
        rep.problems
    );
    let followed: Vec<Entry> = contents
        .iter()
        .filter(|l| !l.admin)
        .flat_map(|l| l.accepted().map(|(_, e)| e))
        .filter(|e| {
            e.event == Event::KeyChange
                && e.tenant.as_deref() == Some(tag.as_str())
                && e.object.as_deref() == Some(crate::log::FOLLOWING)
        })
        .collect();
    assert_eq!(followed.len(), 1);
    assert_eq!(followed[0].actor_name, "site-b");
    // One admin puts alice's old entry back (validly signed, at the older generation).
    edit_member(&c, "alice", |m| *m = old_entry);
    let why = refused(crate::registry::writer_keys_for_member(
        &agent, &site, "alice",
    ));
    assert!(why.contains("older than"), "{why}");
}

/// An admin keeps a copy of every member's keyring from before the split (she could open
/// them then; so could a site that replicated them and ignores the logged deletion): with
/// it she reads nothing a member's writers encrypt after the split, while the member still
/// reads what came before (finding 5).
#[test]
fn a_keyring_kept_from_before_the_split_opens_nothing_written_after_it() {
    let c = unsplit();
    let kept: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|m| crate::members::open_ring(&c.repo, &c.admins[0], &c.member(m)).unwrap())
        .collect();
    let coop = c.coop();
    let agent = elsewhere(&c, "agent");
    c.split();
    for (i, (name, ring)) in ["alice", "bob"].iter().zip(&kept).enumerate() {
        let mut old = ring.old_data_identities.clone();
        old.push(ring.data_identity.clone());
        let old = crypt::parse_identities(old.join("\n").as_bytes()).unwrap();
        let w = crate::registry::writer_keys_for_member(&agent, &coop, name).unwrap();
        assert_ne!(w.recipient_strings, vec![ring.data_recipient().unwrap()]);
        let mut after = Vec::new();
        crypt::encrypt_to(&w.recipients, &[b"written after the split"], &mut after).unwrap();
        assert!(crypt::decrypt(&old, &after, 1 << 16).is_err(), "{name}");
        // The member reads both: the new data identity, and the old one kept in her ring.
        let mut before = Vec::new();
        let r = [crypt::parse_recipient(&ring.data_recipient().unwrap()).unwrap()];
        crypt::encrypt_to(&r, &[b"written before"], &mut before).unwrap();
        let hers = crate::members::open_ring(&c.repo, &c.members[i], &c.member(name)).unwrap();
        let mut all = hers.old_data_identities.clone();
        all.push(hers.data_identity.clone());
        let all = crypt::parse_identities(all.join("\n").as_bytes()).unwrap();
        assert_eq!(
            crypt::decrypt(&all, &after, 1 << 16).unwrap(),
            b"written after the split"
        );
        assert_eq!(
            crypt::decrypt(&all, &before, 1 << 16).unwrap(),
            b"written before"
        );
    }
}

/// One admin alone keeps alice's tenant signer from before the split (she could open every
/// keyring then), signs keys of her own as alice's at a higher generation and logs them: as
/// a new member's first keys, as the end of a request she made herself, and as the end of a
/// request K others approved for someone else. No writer follows, neither the one that
/// pinned alice's keys after the split nor a fresh one (SPEC 15.4).
#[test]
fn a_signer_kept_from_before_the_split_re_keys_nobody() {
    let (c, kept, agent) = split_keeping_alices_ring();
    let coop = c.coop();
    let forged = forge_keys(&c, "alice", &kept);
    // Signed by alice's own tenant signer: the signature alone would pass.
    assert!(forged.verify_material(&c.repo.config.repo_id).is_ok());
    refused_by_the_log(&c, &agent, "fresh", "alice");
    crate::registry::material::log(&c.repo, &coop, &forged, None).unwrap();
    refused_by_the_log(&c, &agent, "fresh2", "alice");
    // A request of her own: she logs its "end" before, and after, one approval.
    let id = c.request(0, "alice");
    assert!(c.approve(0, &id).is_err());
    crate::registry::material::log(&c.repo, &coop, &forged, Some(&id)).unwrap();
    c.approve(1, &id).unwrap();
    crate::registry::material::log(&c.repo, &coop, &forged, Some(&id)).unwrap();
    refused_by_the_log(&c, &agent, "fresh3", "alice");
    // Admin 1 asks for alice and K = 2 others approve: admin 0 (an approver, not the asker)
    // logs her keys as that request's end.
    let id = c.request(1, "alice");
    c.approve(0, &id).unwrap();
    c.approve(2, &id).unwrap();
    crate::registry::material::log(&c.repo, &coop, &forged, Some(&id)).unwrap();
    refused_by_the_log(&c, &agent, "fresh4", "alice");
    // She signs a registry without the recovery setup, as if there had been no split: the
    // split is in the log, which she cannot undo.
    let mut loaded = crate::members::load_for_change(&c.repo, &coop).unwrap();
    loaded.registry.recovery_setup = None;
    crate::members::save(&c.repo, &coop, &mut loaded).unwrap();
    refused_by_the_log(&c, &agent, "fresh5", "alice");
}

/// One admin with a signer kept from before the split gives alice a new ID key (so a new
/// keyed tag in the log, as if alice were a member added after the split) and logs that
/// tenant's "first" material: the log binds alice's name to her tenant at the split, so no
/// writer takes it, pinned or fresh. Nor a whole new tenant of hers under alice's name.
#[test]
fn a_new_tenant_under_a_members_name_re_keys_nobody() {
    let (c, kept, agent) = split_keeping_alices_ring();
    let coop = c.coop();
    let (_, hers) = crypt::generate_identity();
    let forged = edit_member(&c, "alice", |m| {
        m.id_key = coop_formats::random_bytes();
        m.data_recipient = hers.clone();
        let g = m.material.as_ref().unwrap().generation + 1;
        m.sign_material(&c.repo.config.repo_id, g, &kept.default_signer());
        m.clone()
    });
    assert!(forged.verify_material(&c.repo.config.repo_id).is_ok());
    crate::registry::material::log(&c.repo, &coop, &forged, None).unwrap();
    refused_by_the_log(&c, &agent, "fresh", "alice");
    // A tenant of her own, signer and all, for a client that never met alice.
    let signer = ed25519_dalek::SigningKey::from_bytes(&coop_formats::random_bytes());
    let forged = edit_member(&c, "alice", |m| {
        m.tenant_tag = coop_formats::random_bytes();
        m.id_key = coop_formats::random_bytes();
        m.index_key = coop_formats::random_bytes();
        m.authority = signer.verifying_key().to_bytes();
        m.material = None;
        m.sign_material(&c.repo.config.repo_id, 1, &signer);
        m.clone()
    });
    assert!(forged.verify_material(&c.repo.config.repo_id).is_ok());
    let why = first_material_refused(&c, &forged, "fresh2", "alice");
    assert!(why.contains("binds the name"), "{why}");
}

/// One admin binds a future member's name first (a material entry for a tenant of hers under
/// "erin"): the honest `member add erin` refuses and says why, instead of adding a member
/// every writer would refuse. And renaming alice to a fresh name with keys of hers binds
/// nothing: alice's tenant is bound under "alice".
#[test]
fn a_name_bound_in_advance_or_a_renamed_member_gets_nobody_s_backups() {
    let c = unsplit();
    let kept = crate::members::open_ring(&c.repo, &c.admins[0], &c.member("alice")).unwrap();
    c.split();
    let coop = c.coop();
    let mut erin = c.member("bob");
    erin.name = "erin".into();
    erin.tenant_tag = coop_formats::random_bytes();
    erin.id_key = coop_formats::random_bytes();
    erin.recovery = None;
    crate::registry::material::log(&c.repo, &coop, &erin, None).unwrap();
    let (_, key) = crypt::generate_identity();
    let e =
        crate::members::add(&c.repo, &c.access(1), "erin", vec![key], None).expect_err("refused");
    assert!(e.to_string().contains("binds the name \"erin\""), "{e}");
    assert!(crate::members::load(&c.repo, &coop)
        .unwrap()
        .registry
        .member("erin")
        .is_none());
    // Alice renamed "zed", with a data key of hers, and logged as zed's first material.
    let (_, hers) = crypt::generate_identity();
    let zed = edit_member(&c, "alice", |m| {
        m.name = "zed".into();
        m.data_recipient = hers.clone();
        let g = m.material.as_ref().unwrap().generation + 1;
        m.sign_material(&c.repo.config.repo_id, g, &kept.default_signer());
        m.clone()
    });
    let why = first_material_refused(&c, &zed, "fresh", "zed");
    assert!(why.contains("under another name"), "{why}");
}

/// One admin swaps alice's and bob's names in the registry and asks for "alice" (bob's
/// tenant now): an approver who was asked to approve alice releases nothing, and neither does
/// one who did not say whom; the log binds each name to its own tenant.
#[test]
fn swapped_names_in_the_registry_release_nothing() {
    let c = coop();
    let (alice, bob) = (c.member("alice"), c.member("bob"));
    let coop = c.coop();
    let mut loaded = crate::members::load_for_change(&c.repo, &coop).unwrap();
    for m in &mut loaded.registry.members {
        if *m == alice {
            m.name = "bob".into();
        } else if *m == bob {
            m.name = "alice".into();
        }
    }
    crate::members::save(&c.repo, &coop, &mut loaded).unwrap();
    let id = c.request(0, "alice");
    let e = approve_for(
        &c.repo,
        &c.coop_of(1),
        &c.admins[1],
        &id,
        Some("alice"),
        &super::tests::NO_WAIT,
    )
    .err()
    .expect("refused");
    assert!(e.to_string().contains("binds the name"), "{e}");
    let e = c.approve(2, &id).err().expect("refused");
    assert!(e.to_string().contains("binds the name"), "{e}");
}

/// One admin with a signer kept from before the split re-keys alice in the registry, and
/// then damages or removes the admins' log (she, or a keyless site, may delete objects), so
/// that the split it holds cannot be read: writers refuse, they do not fall back to trusting
/// the signature alone.
#[test]
fn a_damaged_or_missing_admin_log_re_keys_nobody() {
    let c = unsplit();
    let kept = crate::members::open_ring(&c.repo, &c.admins[0], &c.member("alice")).unwrap();
    c.split();
    let coop = c.coop();
    forge_keys(&c, "alice", &kept);
    let admin_log = c
        .repo
        .store
        .list("log")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.contains("/checkpoint/"))
        .filter(|p| {
            let b = c.repo.store.get(p).unwrap();
            String::from_utf8_lossy(&b).contains("/admin/")
        })
        .collect::<Vec<_>>();
    assert!(!admin_log.is_empty());
    for p in &admin_log {
        c.repo.store.delete(p).unwrap();
    }
    for name in ["fresh", "fresh2"] {
        let r = crate::registry::writer_keys_for_member(&elsewhere(&c, name), &coop, "alice");
        let e = r
            .err()
            .expect("writers took keys while the admins' log was damaged");
        assert!(e.to_string().contains("admins' access log"), "{e}");
    }
    // The whole log gone.
    let id = admin_log[0].split('/').nth(1).unwrap().to_string();
    for o in c.repo.store.list(&format!("log/{id}")).unwrap() {
        c.repo.store.delete(&o.path).unwrap();
    }
    let r = crate::registry::writer_keys_for_member(&elsewhere(&c, "fresh3"), &coop, "alice");
    let e = r
        .err()
        .expect("writers took keys with the admins' log gone");
    assert!(e.to_string().contains("missing"), "{e}");
}

/// After a genuine recovery the requester holds alice's tenant signer: she signs keys of her
/// own at a still higher generation and logs them as the same request's end again. Writers
/// keep the keys the recovery ended with. And the admin who added carol after the split
/// (her coop made carol's tenant) cannot re-key carol later with a second "first" entry.
#[test]
fn the_end_of_a_recovery_counts_once_and_a_new_members_first_keys_once() {
    let c = coop();
    let coop = c.coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let r = c.recover(0, &id, "alice").unwrap();
    let ring = crate::members::open_ring(&c.repo, &r.ids, &r.member).unwrap();
    conclude(&c.repo, &coop, r).unwrap();
    let agent = elsewhere(&c, "agent");
    let genuine = crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    assert_eq!(
        genuine.recipient_strings,
        vec![c.member("alice").data_recipient]
    );
    let forged = forge_keys(&c, "alice", &ring);
    crate::registry::material::log(&c.repo, &coop, &forged, Some(&id)).unwrap();
    refused_by_the_log(&c, &agent, "fresh", "alice");

    let (s, p) = crypt::generate_identity();
    crate::members::add(&c.repo, &c.access(0), "carol", vec![p], None).unwrap();
    let carol = crate::registry::writer_keys_for_member(&agent, &coop, "carol").unwrap();
    assert_eq!(
        carol.recipient_strings,
        vec![c.member("carol").data_recipient]
    );
    // The adder's coop made carol's keyring (here opened with carol's key, as if it had been
    // kept): keys of her own, logged as carol's first, are not carol's first.
    let ring = crate::members::open_ring(&c.repo, &ids(&s), &c.member("carol")).unwrap();
    let forged = forge_keys(&c, "carol", &ring);
    crate::registry::material::log(&c.repo, &coop, &forged, None).unwrap();
    refused_by_the_log(&c, &agent, "fresh-carol", "carol");
}

/// A recovery's end that stopped after the registry, before the log (writers then refuse
/// alice's new keys, and her backups stop): the asker's machine runs it again and the log
/// names them; writers take them. Another machine has nothing to finish, and keys one admin
/// puts into the registry in that gap are never logged.
#[test]
fn a_recovery_end_stopped_before_the_log_is_finished_by_its_machine_only() {
    let c = coop();
    let coop = c.coop();
    let agent = elsewhere(&c, "agent");
    crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let r = c.recover(0, &id, "alice").unwrap();
    let ring = crate::members::open_ring(&c.repo, &r.ids, &r.member).unwrap();
    let (m, _) = open::replace_keys(&c.repo, &coop, r, open::Stage::Rewrapped).unwrap();
    refused_by_the_log(&c, &agent, "fresh", "alice");
    assert_eq!(resume(&elsewhere(&c, "other"), &coop, &id).unwrap(), None);
    // One admin puts keys of her own into the registry in the gap.
    let genuine = c.member("alice");
    forge_keys(&c, "alice", &ring);
    let e = resume(&c.repo, &coop, &id).unwrap_err();
    assert!(e.to_string().contains("does not hold the keys"), "{e}");
    refused_by_the_log(&c, &agent, "fresh2", "alice");
    // The keys the end wrote, back in the registry: the asker finishes it.
    edit_member(&c, "alice", |m| *m = genuine);
    assert_eq!(
        resume(&c.repo, &coop, &id).unwrap().as_deref(),
        Some("alice")
    );
    let keys = crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    assert_eq!(keys.recipient_strings, vec![m.data_recipient.clone()]);
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), None);
}

/// One admin writes keys of her own as `name`'s data recipient into the registry, signed
/// with the member tenant signer of `ring` at the next generation; returns the entry.
/// The writer that pinned `member`'s keys (`agent`) and a fresh one (`fresh`) both refuse
/// the registry's keys for `member`, because the admins' log does not name them.
fn refused_by_the_log(c: &Coop, agent: &Repo, fresh: &str, member: &str) {
    let coop = c.coop();
    for r in [agent, &elsewhere(c, fresh)] {
        let why = refused(crate::registry::writer_keys_for_member(r, &coop, member));
        assert!(why.contains("admins' log"), "{why}");
    }
}

fn forge_keys(c: &Coop, name: &str, ring: &coop_formats::keyring::Keyring) -> Member {
    let (_, hers) = crypt::generate_identity();
    edit_member(c, name, |m| {
        m.data_recipient = hers;
        let g = m.material.as_ref().unwrap().generation + 1;
        m.sign_material(&c.repo.config.repo_id, g, &ring.default_signer());
        m.clone()
    })
}

/// Admin 0 (she signs registries) edits member `name`'s registry entry and saves it.
fn edit_member<R>(c: &Coop, name: &str, edit: impl FnOnce(&mut Member) -> R) -> R {
    let coop = c.coop();
    let mut loaded = crate::members::load_for_change(&c.repo, &coop).unwrap();
    let m = loaded
        .registry
        .members
        .iter_mut()
        .find(|m| m.name == name)
        .unwrap();
    let r = edit(m);
    crate::members::save(&c.repo, &coop, &mut loaded).unwrap();
    r
}

/// The end of a recovery stopped at each step a crash could stop it (SPEC 25.4): before the
/// registry, the member is as she was and the same request ends it on a second run; after
/// the registry, the keyring is still open to what the request released (and holds the new
/// data key), until the asker's machine finishes the re-wrap and logs the end.
#[test]
fn a_recovery_end_stopped_at_any_step_is_finished_by_its_asker() {
    let c = coop();
    let coop = c.coop();
    let agent = elsewhere(&c, "agent");
    crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let before = c.member("alice");
    for stage in [open::Stage::Keyring, open::Stage::Ending] {
        let r = c.recover(0, &id, "alice").unwrap();
        open::replace_keys(&c.repo, &coop, r, stage).unwrap();
        // Nothing is in force: the registry is as it was; a second run of the export goes on.
        assert_eq!(resume(&c.repo, &coop, &id).unwrap(), None);
        assert_eq!(c.member("alice"), before, "{stage:?}");
    }
    let r = c.recover(0, &id, "alice").unwrap();
    let released = r.ids.clone();
    let (m, _) = open::replace_keys(&c.repo, &coop, r, open::Stage::Registry).unwrap();
    // The registry names the new keys; the keyring still opens with what was released.
    assert!(crate::members::open_ring(&c.repo, &released, &c.member("alice")).is_ok());
    refused_by_the_log(&c, &agent, "fresh", "alice");
    assert_eq!(
        resume(&c.repo, &coop, &id).unwrap().as_deref(),
        Some("alice")
    );
    assert!(
        crate::members::open_ring(&c.repo, &released, &c.member("alice")).is_err(),
        "what the recovery released still opens alice"
    );
    assert!(crate::members::open_ring(&c.repo, &c.members[0], &c.member("alice")).is_ok());
    let keys = crate::registry::writer_keys_for_member(&agent, &coop, "alice").unwrap();
    assert_eq!(keys.recipient_strings, vec![m.data_recipient.clone()]);
    // The request is spent: its key is forgotten.
    assert!(c.recover(0, &id, "alice").is_err());
    assert_eq!(resume(&c.repo, &coop, &id).unwrap(), None);
}

/// The end of a recovery stopped after the registry; then one admin adds a key of her own to
/// the member's registered keys: the asker's machine re-wraps nothing to it and logs nothing.
#[test]
fn a_stopped_recovery_end_rewraps_nothing_to_keys_changed_in_the_gap() {
    let c = coop();
    let coop = c.coop();
    let id = c.request(0, "alice");
    c.approve(1, &id).unwrap();
    c.approve(2, &id).unwrap();
    let r = c.recover(0, &id, "alice").unwrap();
    let released = r.ids.clone();
    open::replace_keys(&c.repo, &coop, r, open::Stage::Registry).unwrap();
    edit_member(&c, "alice", |m| m.recipients.push(c.publics[0].clone()));
    let e = resume(&c.repo, &coop, &id).unwrap_err();
    assert!(matches!(e, Error::AccessDenied { .. }), "{e}");
    assert!(crate::members::open_ring(&c.repo, &c.admins[0], &c.member("alice")).is_err());
    // The keyring is still the one the request opened: nothing was re-wrapped.
    assert!(crate::members::open_ring(&c.repo, &released, &c.member("alice")).is_ok());
}
