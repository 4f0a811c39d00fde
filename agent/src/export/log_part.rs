//! What an export carries of the access log beyond its entries: the writer list the
//! witnesses come from, and what was wrong with the log at this store.

use crate::error::Result;
use crate::keys::TenantKeys;
use crate::repo::Repo;

/// The access log's problems at this store that may hide entries from the member: damage
/// (a missing checkpoint or bundle), and forks and rollbacks (an unsound log). Junk a site
/// added (forged entries, noise) hides nothing and is left out.
pub(super) fn log_problems(
    rep: &crate::log::VerifyReport,
    contents: &[crate::log::LogContent],
) -> Vec<String> {
    let mut out: Vec<String> = rep
        .problems
        .iter()
        .filter(|p| p.kind == crate::damage::ProblemKind::Damaged)
        .map(|p| p.to_string())
        .collect();
    for c in contents.iter().filter(|c| !c.sound) {
        out.push(format!(
            "the access log {} is not sound here (a fork or rollback against what this client \
             saw): its entries may not be all there are",
            c.origin
        ));
    }
    out
}

/// The admin-signed writer list the witnesses and the quorum come from, as stored (base64).
pub(super) fn stored_writer_list(repo: &Repo, keys: &TenantKeys) -> Result<Option<String>> {
    Ok(crate::writers::load(repo, &keys.admin_keys)?
        .name
        .and_then(|n| {
            repo.get_opt(crate::layout::Kind::Writers, &crate::writers::TAG, &n)
                .ok()
                .flatten()
        })
        .map(|b| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(b)
        }))
}
