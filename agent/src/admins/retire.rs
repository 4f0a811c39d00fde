//! Whether retiring an admin leaves the cooperative able to recover its members.

use crate::error::{Error, Result};

/// Refuses retiring admin `name` (identity `recipient`) when no member could be recovered
/// after it: fewer vouched identities than the threshold left, or fewer holders of the shares
/// in force who can deal the re-split it starts (one just joined and the re-split that gives
/// her shares has not ended, say: the next one could never end, and the old shares need the
/// retired admin's). The setup in force is the log's (the registry's only where the log names
/// none), so one admin's registry can neither pass nor block it. Checked at the proposal and
/// at every approval, since another change may complete in between.
pub(super) fn leaves_recovery(
    persons: &crate::log::Activation,
    registry: &coop_formats::registry::Registry,
    name: &str,
    recipient: &str,
) -> Result<()> {
    let logged = persons
        .persons
        .values()
        .filter(|p| p.restricted_from.is_some())
        .find_map(|p| p.setup.clone());
    let Some(setup) = logged.or_else(|| registry.recovery_setup.clone()) else {
        return Ok(());
    };
    let holders = persons.share_recipients();
    let her = super::same_key_form(recipient);
    let counts = |r: &str| {
        holders
            .iter()
            .any(|h| super::same_key_form(h) == super::same_key_form(r))
    };
    let left = holders
        .iter()
        .filter(|h| super::same_key_form(h) != her)
        .count();
    if left < setup.threshold as usize {
        return Err(Error::invalid(format!(
            "retiring {name} would leave {left} admin person(s), fewer than the {} shares a \
             recovery combines: nobody could recover a member any more. Add an admin first \
             (`coop admin add`), then retire {name}",
            setup.threshold
        )));
    }
    let dealers = setup
        .holders
        .iter()
        .filter(|h| counts(&h.recipient) && super::same_key_form(&h.recipient) != her)
        .count();
    if dealers < setup.threshold as usize {
        return Err(Error::invalid(format!(
            "retiring {name} now would leave {dealers} holder(s) of the recovery shares in \
             force (epoch {}) who can deal a re-split, fewer than the {} it needs: no member \
             could be recovered after it. If a re-split runs (`coop recovery status`), let \
             every admin finish it with `coop recovery reshare` first, then retire {name}",
            setup.epoch, setup.threshold
        )));
    }
    Ok(())
}
