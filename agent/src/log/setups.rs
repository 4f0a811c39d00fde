//! What the admins' log says about the recovery setups (SPEC 25.5): each person's identity it
//! vouches for, the setup in force, the running re-split and the epochs retired. Built in the
//! same pass as the persons ([`Persons::from_entries`]), since whether a re-split's holders are
//! the persons' identities depends on who counts at its index.

use super::persons::{text, Persons};
use super::trust::Activation;
use coop_formats::recovery::RecoverySetup;
use coop_formats::tlog::Entry;

/// `object` of a new holder's combination in a re-split (SPEC 25.5).
pub const COMBINED: &str = "recovery-combined";

/// `object` of the entry that starts a re-split of the recovery shares (SPEC 25.5).
pub const RESHARE: &str = "recovery-reshare";
/// `object` of the entry that ends one.
pub const RESHARED: &str = "recovery-reshared";

pub(super) fn setup_of(e: &Entry) -> Option<RecoverySetup> {
    let s: RecoverySetup = serde_json::from_value(e.data.get("setup")?.clone()).ok()?;
    s.check().ok().map(|_| s)
}

impl Persons {
    /// A step of a re-split (SPEC 25.5) by counted person `by`.
    pub(super) fn reshare(&mut self, object: &str, e: &Entry, by: &[u8; 32]) {
        let in_force = self.setup.as_ref().map(|s| s.epoch.clone());
        match object {
            RESHARE => {
                if let Some(setup) = setup_of(e) {
                    // An epoch starts once: a second start of it (which would clear who
                    // combined) counts for nothing.
                    let fresh = self.started.insert(setup.epoch.clone());
                    if fresh
                        && in_force.as_deref() == Some(text(e, "from").as_str())
                        && Some(&setup.epoch) != in_force.as_ref()
                        && !self.retired.contains(&setup.epoch)
                        && self.vouches(&setup)
                    {
                        self.start_slots(e, &setup.epoch);
                        self.resplit = Some(setup);
                        self.combined.clear();
                    }
                }
            }
            COMBINED => {
                let Some(pending) = &self.resplit else {
                    return;
                };
                let holder = text(e, "holder");
                let named = self.recipients.get(by);
                let ok = text(e, "epoch") == pending.epoch
                    && pending
                        .holders
                        .iter()
                        .any(|h| h.name == holder && named.is_none_or(|r| *r == h.recipient));
                if ok {
                    self.combined.insert(holder);
                }
            }
            _ => {
                let Some(pending) = &self.resplit else {
                    return;
                };
                let done = text(e, "epoch") == pending.epoch
                    && in_force.as_deref() == Some(text(e, "from").as_str())
                    && pending
                        .holders
                        .iter()
                        .all(|h| self.combined.contains(&h.name));
                if done {
                    let to = pending.epoch.clone();
                    if let Some(from) = &in_force {
                        self.end_slots(from, &to);
                    }
                    self.retired.extend(in_force);
                    self.setup = self.resplit.take();
                    self.combined.clear();
                }
            }
        }
    }

    /// Whether a re-split to `setup` gives shares to exactly the identities the log vouches
    /// for now, each once, at the split's threshold.
    pub fn vouches(&self, setup: &RecoverySetup) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        setup.threshold as usize == self.approvals_needed + 1
            && setup.holders.iter().all(|h| {
                // Each key once, in whatever form it is written.
                self.vouched.contains(&h.recipient)
                    && seen.insert(coop_formats::crypt::canonical_recipient(&h.recipient))
            })
            && seen.len() == self.vouched.len()
    }
}

impl Activation {
    /// The restricted persons of each admin log, in a fixed order (by origin).
    pub(super) fn restricted(&self) -> impl Iterator<Item = &Persons> {
        let mut v: Vec<(&String, &Persons)> = self
            .persons
            .iter()
            .filter(|(_, p)| p.restricted_from.is_some())
            .collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter().map(|(_, p)| p)
    }

    /// The identities the admins' log vouches for as share holders now (SPEC 25.5).
    pub fn share_recipients(&self) -> std::collections::BTreeSet<String> {
        self.restricted()
            .flat_map(|p| p.vouched.iter().cloned())
            .collect()
    }

    /// Whether a re-split to `setup` gives shares to exactly the identities the log vouches
    /// for now, at the split's threshold.
    pub fn vouches(&self, setup: &RecoverySetup) -> bool {
        self.restricted().any(|p| p.vouches(setup))
    }

    /// The identity the log names for person `key`, if it names one.
    pub fn recipient_of(&self, key: &[u8; 32]) -> Option<&str> {
        self.restricted()
            .find_map(|p| p.recipients.get(key))
            .map(String::as_str)
    }

    /// Whether `setup` is the one the log has in force (the split's, or the newest finished
    /// re-split's). `true` when no split names persons (older repositories: nothing to check
    /// against).
    pub fn setup_in_force(&self, setup: &RecoverySetup) -> bool {
        let mut any = false;
        for p in self.restricted() {
            any = true;
            if p.setup.as_ref().is_some_and(|s| same(s, setup)) && !p.retired.contains(&setup.epoch)
            {
                return true;
            }
        }
        !any
    }

    /// Whether `setup` is the running re-split's, as the log has it.
    pub fn setup_running(&self, setup: &RecoverySetup) -> bool {
        self.restricted()
            .any(|p| p.resplit.as_ref().is_some_and(|s| same(s, setup)))
    }
}

/// Whether two setups are the same (epoch, threshold and holders; not the time made).
fn same(a: &RecoverySetup, b: &RecoverySetup) -> bool {
    a.epoch == b.epoch && a.threshold == b.threshold && a.holders == b.holders
}
