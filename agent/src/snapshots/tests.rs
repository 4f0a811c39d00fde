//! Tests of snapshot listing and selection.

use super::*;

fn entry(n: u8, time: &str, host: &str, flags: Vec<Flag>) -> Entry {
    Entry {
        id: Id([n; 32]),
        snapshot: Snapshot {
            version: 1,
            repo_id: Id([0; 32]),
            tenant: "coop".into(),
            time: time.into(),
            host: host.into(),
            username: String::new(),
            paths: vec![format!("/srv/{host}")],
            tags: vec![],
            tree: Id([0; 32]),
            writer: [0; 32],
            writer_name: String::new(),
            program: String::new(),
            summary: Default::default(),
            manifest: None,
            inventory: Id::default(),
        },
        flags,
    }
}

#[test]
fn latest_skips_flagged_and_honours_filters() {
    let l = Listing {
        entries: vec![
            entry(1, "2026-01-01T00:00:00Z", "a", vec![]),
            entry(2, "2026-01-02T00:00:00Z", "b", vec![]),
            entry(
                3,
                "2099-01-01T00:00:00Z",
                "a",
                vec![Flag::Future {
                    seconds_ahead: 1 << 30,
                }],
            ),
        ],
        problems: vec![],
        names: vec![],
        writers_rollback: None,
        log_quorum: 0,
        opaque: vec![],
        inventories: vec![],
    };
    let none = Filter::default();
    assert_eq!(l.find("coop", "latest", &none).unwrap().id, Id([2; 32]));
    let a = Filter {
        host: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(l.find("coop", "latest", &a).unwrap().id, Id([1; 32]));
    let p = Filter {
        paths: vec!["/srv/b/".into()],
        ..Default::default()
    };
    assert_eq!(l.find("coop", "latest", &p).unwrap().id, Id([2; 32]));
    let holding = Filter {
        within: Some("/srv/a/x/y".into()),
        ..Default::default()
    };
    assert_eq!(l.find("coop", "latest", &holding).unwrap().id, Id([1; 32]));
    assert!(is_under("/srv/a", "/srv/a/") && is_under("/x", "/") && !is_under("/srv/ab", "/srv/a"));
    let nobody = Filter {
        host: Some("zz".into()),
        ..Default::default()
    };
    assert!(matches!(
        l.find("coop", "latest", &nobody),
        Err(Error::NotFound { .. })
    ));
    // A flagged snapshot can still be named explicitly.
    assert_eq!(
        l.find("coop", &Id([3; 32]).short(), &none).unwrap().id,
        Id([3; 32])
    );
}
