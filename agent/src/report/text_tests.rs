//! Tests of the report's text form.

use super::super::*;
use super::*;

/// A report with one member, one shared tenant, two sites, costs with a group, energy,
/// a caretaker, readers, accesses and a missing section.
fn sample() -> Report {
    Report {
        format: FORMAT,
        generated: "2026-03-31T12:00:00Z".into(),
        period: Period {
            since: "2026-01-01T00:00:00Z".into(),
            until: "2026-03-31T12:00:00Z".into(),
            days: 89.5,
        },
        language: Language::En,
        member: None,
        repository: RepositoryInfo {
            id: "0123".into(),
            location: "/srv/repo".into(),
            site: Some("hackspace".into()),
        },
        cooperative: Some(CooperativeInfo {
            name: "Kooperative".into(),
            legal_form: None,
            currency: Some("EUR".into()),
        }),
        totals: Totals {
            members: 1,
            stored_bytes: 3 * 1024 * 1024,
        },
        members: vec![MemberReport {
            name: "alice".into(),
            tenant: "member/alice".into(),
            stored_bytes: 2 * 1024 * 1024,
            logical_bytes: Some(1536),
            snapshots: Some(2),
            last_backup: Some("2026-03-30T02:00:00.123456789Z".into()),
            quota: Some(10 * 1024 * 1024),
            quota_used_percent: Some(20.0),
            replicas: vec![],
            cost: Some(Share {
                member: "alice".into(),
                fixed: 1.0,
                usage: 2.0,
                shared: 0.5,
                monthly: 3.5,
                at_quota: None,
            }),
        }],
        shared: vec![SharedTenant {
            tenant: "coop".into(),
            stored_bytes: 100,
            logical_bytes: None,
            snapshots: None,
            last_backup: None,
        }],
        sites: vec![
            SiteReport {
                name: "hackspace".into(),
                role: SiteRole::ThisSite,
                provider: Some("Hetzner".into()),
                location: None,
                energy_source: None,
                renewable: None,
                stored_bytes: Some(5 * 1024 * 1024 * 1024),
                stored_is_estimate: false,
                monthly_costs: Some(3.5),
                cost_items: vec![],
                last_replicated: None,
                can_read: Some(true),
            },
            SiteReport {
                name: "library".into(),
                role: SiteRole::Replica,
                provider: None,
                location: None,
                energy_source: None,
                renewable: None,
                stored_bytes: Some(2048),
                stored_is_estimate: true,
                monthly_costs: None,
                cost_items: vec![],
                last_replicated: None,
                can_read: Some(false),
            },
        ],
        costs: Some(Costs {
            currency: "EUR".into(),
            monthly_total: 3.5,
            fixed_share_percent: 30.0,
            fixed_part: 1.05,
            usage_part: 2.45,
            stored_bytes: 0,
            member_bytes: 0,
            shared_bytes: 0,
            price_per_gb_month: Some(0.01234),
            member_count: 1,
            shares_total: 3.5,
            unallocated: 0.0,
            shares: vec![],
            groups: vec![GroupCost {
                group: "family".into(),
                payer: "alice".into(),
                quota: None,
                stored_bytes: 0,
                monthly: 3.5,
                members: vec![("alice".into(), 0, 3.5)],
            }],
            balance: Some(42.0),
            balance_date: None,
            runway_months: Some(12.0),
        }),
        energy: Some(EnergyReport {
            site: "hackspace".into(),
            method: "estimate",
            runs: 3,
            runs_without_energy: 0,
            cpu_seconds: 12.34,
            wh: Some(0.0425),
            measured_wh: 0.0,
            estimated_wh: 0.0425,
            cpu_watts: Some(10.0),
            by_job: vec![],
            by_month: vec![],
            per_run: vec![],
            sites: vec![],
        }),
        caretakers: vec![JobCaretaker {
            job: "etc".into(),
            caretaker: None,
        }],
        readers: vec![TenantReaders {
            tenant: "member/alice".into(),
            member: Some("alice".into()),
            source: "keyring",
            readers: vec![
                Reader {
                    recipient: "age1alice".into(),
                    kind: "member",
                    fingerprint: "age1alice".into(),
                    comment: None,
                },
                Reader {
                    recipient: "ssh-ed25519 AAAA anna@laptop".into(),
                    kind: "admin",
                    fingerprint: "SHA256:xyz".into(),
                    comment: Some("anna@laptop".into()),
                },
            ],
            recovery: Some(RecoveryPolicy {
                threshold: 2,
                approvals: 1,
                holders: vec![],
                description: "2 of 3 admins together".into(),
            }),
            writers: vec![],
            storage_sites: vec![],
        }],
        writers: vec![],
        accesses: Some(Accesses {
            verified: true,
            problems: vec![],
            quorum: 1,
            logs: vec![],
            members: vec![MemberAccesses {
                member: "alice".into(),
                total: 2,
                by_reason: [("support".to_string(), 2)].into_iter().collect(),
                entries: vec![],
            }],
            break_glass: vec![AccessEntry {
                time: "2026-02-01T10:00:00Z".into(),
                event: "read".into(),
                reason: None,
                actor_name: "anna".into(),
                requested_by: None,
                witnessed: false,
            }],
        }),
        stored_over_time: vec![],
        missing: vec![Missing {
            section: "costs",
            keys: vec!["[cooperative] currency", "[[cooperative.site]] costs"],
            note: "",
        }],
        warnings: vec![],
        integrity_problem: false,
        next_due: None,
    }
}

#[test]
fn the_text_shows_every_section_line_by_line() {
    let text = render(&sample());
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        "Transparency report: Kooperative, 2026-01-01 to 2026-03-31",
        "1 members, 3.00 MiB stored",
        "",
        "member                     stored      logical  snaps last backup              quota  share/month",
        "alice                    2.00 MiB     1.50 KiB      2 2026-03-30T02:00:00        20%     3.50 EUR",
        "(coop)                      100 B",
        "",
        "site             role         provider                           stored    costs/month",
        "hackspace        this-site    Hetzner                          5.00 GiB       3.50 EUR",
        "library          replica      -                               ~2.00 KiB              -",
        "",
        "costs: 3.50 EUR a month (30 % fixed), 0.0123 EUR per GB-month; the balance covers 12.0 months",
        "group family (paid by alice): 3.50 EUR a month for alice 3.50",
        "energy at hackspace: 3 runs, 12.3 CPU-seconds, 0.043 Wh (estimate)",
        "",
        "job etc is looked after by nobody named",
        "",
        "member/alice can be read by: age1alice (member), SHA256:xyz (anna@laptop, admin); recovery: 2 of 3 admins together",
        "",
        "access logs: verified",
        "  BREAK-GLASS read of tenant coop by anna at 2026-02-01T10:00:00Z (-), not yet witnessed",
        "  alice: 2 access(es) in the period (support: 2)",
        "",
        "not in this report (add these to the config):",
        "  costs: [cooperative] currency, [[cooperative.site]] costs",
    ];
    assert_eq!(lines, expected, "{text}");
    assert!(text.ends_with("costs\n"));
}

#[test]
fn a_member_report_without_costs_or_sites_leaves_them_out() {
    let mut r = sample();
    r.member = Some("alice".into());
    r.cooperative = None;
    r.sites.clear();
    r.costs = None;
    r.energy = None;
    r.caretakers.clear();
    r.accesses = None;
    r.missing.clear();
    r.members[0].snapshots = Some(0);
    r.members[0].last_backup = None;
    r.members[0].logical_bytes = None;
    r.members[0].quota_used_percent = None;
    r.members[0].cost = None;
    r.readers[0].recovery = None;
    let text = render(&r);
    assert_eq!(
        text,
        "Transparency report: /srv/repo, 2026-01-01 to 2026-03-31, for member alice\n\
         1 members, 3.00 MiB stored\n\
         \n\
         member                     stored      logical  snaps last backup              quota  share/month\n\
         alice                    2.00 MiB            ?      0 never                        -            -\n\
         (coop)                      100 B\n\
         \n\
         member/alice can be read by: age1alice (member), SHA256:xyz (anna@laptop, admin)\n"
    );
}

#[test]
fn roles_are_named_as_in_the_json() {
    for r in [SiteRole::ThisSite, SiteRole::Replica, SiteRole::Other] {
        assert_eq!(serde_json::to_value(r).unwrap(), r.name());
    }
}

#[test]
fn sizes_are_in_binary_units() {
    assert_eq!(bytes(0), "0 B");
    assert_eq!(bytes(1023), "1023 B");
    assert_eq!(bytes(1536), "1.50 KiB");
    assert_eq!(bytes(5 << 30), "5.00 GiB");
}
