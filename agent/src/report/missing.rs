//! What the report could not show and which settings would fill it in (the "missing"
//! section: config, cooperative facts, costs, runway, replicas, history, energy, accesses).

use super::*;

pub(super) fn missing_sections(
    settings: Option<&Settings>,
    history: bool,
    costs: &Option<Costs>,
    energy: &Option<EnergyReport>,
    accesses: &Option<Accesses>,
) -> Vec<Missing> {
    let mut out = Vec::new();
    let coop = settings.and_then(|s| s.cooperative.as_ref());
    if settings.is_none() {
        out.push(Missing {
            section: "config",
            keys: vec!["--config /etc/coop/agent.toml"],
            note:
                "without the agent's config the report knows no sites, peers, costs or job history",
        });
    }
    if coop.is_none() {
        out.push(Missing {
            section: "cooperative",
            keys: vec![
                "[cooperative] name",
                "[cooperative] legal_form",
                "[cooperative] language",
            ],
            note: "who runs the sites",
        });
    }
    if coop.is_none_or(|c| c.sites.is_empty()) {
        out.push(Missing {
            section: "sites",
            keys: vec![
                "[[cooperative.site]] name",
                "[[cooperative.site]] provider",
                "[[cooperative.site]] location",
                "[[cooperative.site]] energy_source",
                "[[cooperative.site]] renewable",
            ],
            note: "where data and its replicas are, and who provides the sites",
        });
    }
    if costs.is_none() {
        out.push(Missing {
            section: "costs",
            keys: vec![
                "[cooperative] currency",
                "[[cooperative.site]] costs",
                "[cooperative] fixed_share_percent",
            ],
            note: "the sites' monthly costs and each member's share",
        });
    }
    if coop.is_none_or(|c| c.balance.is_none()) {
        out.push(Missing {
            section: "runway",
            keys: vec!["[cooperative] balance", "[cooperative] balance_date"],
            note: "for how many months the running costs are covered",
        });
    }
    if settings.is_some_and(|s| s.peers.is_empty()) {
        out.push(Missing {
            section: "replicas",
            keys: vec!["[[peer]]"],
            note: "no other site holds a replica of this repository",
        });
    }
    if settings.is_some() && !history {
        out.push(Missing {
            section: "history",
            keys: vec!["[site] cache_dir"],
            note: "no job has run with this config's cache directory yet: energy, replication lag and stored bytes over time come from the agent's history there",
        });
    }
    if let Some(e) = energy {
        if e.wh.is_none() {
            out.push(Missing {
                section: "energy",
                keys: vec!["[[cooperative.site]] cpu_watts"],
                note: "some runs could not be measured (no readable RAPL counters) and no wattage is configured for an estimate",
            });
        }
    } else if settings.is_none() {
        out.push(Missing {
            section: "energy",
            keys: vec!["--config", "[[cooperative.site]] cpu_watts"],
            note: "energy is recorded per job run in the agent's history",
        });
    }
    if accesses.is_none() {
        out.push(Missing {
            section: "accesses",
            keys: vec!["an identity or writer key of this repository"],
            note: "the access logs are checked against the admin keys, which the key given does not name",
        });
    }
    out
}
