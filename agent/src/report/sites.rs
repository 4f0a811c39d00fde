//! The sites part of the report: this site, its peers (with what they hold and their
//! replication lag, from the agent's history) and the cooperative's other sites.

use super::*;

/// The bytes in the repository's store.
pub(super) struct StoreBytes {
    /// Every object here.
    pub(super) here: u64,
    /// The packs.
    pub(super) packs: u64,
}

impl StoreBytes {
    pub(super) fn of(repo: &Repo) -> Result<Self> {
        let listing = repo.store.list("")?;
        Ok(Self {
            here: listing.iter().map(|o| o.size).sum(),
            packs: listing
                .iter()
                .filter(|o| o.path.starts_with(&format!("{}/", Kind::Pack.dir())))
                .map(|o| o.size)
                .sum(),
        })
    }
}

/// The sites, and each peer's replication state (for every member's line).
pub(super) fn gather(src: &Sources, here_bytes: u64) -> Result<(Vec<SiteReport>, Vec<Replica>)> {
    let mut sites = Vec::new();
    let mut peer_states = Vec::new();
    let Some(s) = src.settings else {
        return Ok((sites, peer_states));
    };
    let facts = s.site_facts(&s.site.name);
    sites.push(site_report(
        &s.site.name,
        SiteRole::ThisSite,
        facts,
        Some(here_bytes),
        false,
        None,
        Some(matches!(
            s.site.key,
            crate::settings::KeySource::Identity(_)
        )),
    ));
    for p in &s.peers {
        let st = match src.history {
            Some(h) => Some(h.peer(&p.name)?),
            None => None,
        };
        let stored = st
            .as_ref()
            .and_then(|st| st.last_attempt.and(st.lag_bytes))
            .map(|lag| here_bytes.saturating_sub(lag));
        let last_ok = st
            .as_ref()
            .and_then(|st| st.last_ok)
            .map(crate::unix_rfc3339);
        sites.push(site_report(
            &p.name,
            SiteRole::Replica,
            s.site_facts(&p.name),
            stored,
            true,
            last_ok.clone(),
            Some(false),
        ));
        peer_states.push(Replica {
            site: p.name.clone(),
            last_ok,
            lag_objects: st
                .as_ref()
                .and_then(|st| st.last_attempt.and(st.lag_objects)),
            lag_bytes: st.as_ref().and_then(|st| st.last_attempt.and(st.lag_bytes)),
        });
    }
    let coop_facts = s.cooperative.as_ref();
    for f in coop_facts.map(|c| c.sites.as_slice()).unwrap_or_default() {
        if !sites.iter().any(|x| x.name == f.name) {
            sites.push(site_report(
                &f.name,
                SiteRole::Other,
                Some(f),
                None,
                false,
                None,
                None,
            ));
        }
    }
    Ok((sites, peer_states))
}

#[allow(clippy::too_many_arguments)]
fn site_report(
    name: &str,
    role: SiteRole,
    facts: Option<&crate::settings::SiteFacts>,
    stored_bytes: Option<u64>,
    stored_is_estimate: bool,
    last_replicated: Option<String>,
    can_read: Option<bool>,
) -> SiteReport {
    SiteReport {
        name: name.to_string(),
        role,
        provider: facts.and_then(|f| f.provider.clone()),
        location: facts.and_then(|f| f.location.clone()),
        energy_source: facts.and_then(|f| f.energy_source.clone()),
        renewable: facts.and_then(|f| f.renewable),
        stored_bytes,
        stored_is_estimate: stored_is_estimate && stored_bytes.is_some(),
        monthly_costs: facts
            .filter(|f| !f.costs.is_empty())
            .map(|f| round(f.monthly_costs(), 2)),
        cost_items: facts
            .map(|f| {
                f.costs
                    .iter()
                    .map(|(i, a)| CostItem {
                        item: i.clone(),
                        amount: *a,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        last_replicated,
        can_read,
    }
}
