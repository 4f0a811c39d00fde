//! Which recovery slot holds which member's recovery identity, as the admins' log has it (SPEC
//! 25.6). A slot's shares are what an approval releases, and the registry (which one admin can
//! sign alone) says which slot is a member's: pointing member B's entry at member A's slot
//! would make K approvals of a request "for B" release A's identity. So the log binds each
//! member (by tenant tag) to one slot per epoch, and an approver releases only the slot the
//! log binds to the requested member.
//!
//! - The split (`recovery-init`) binds every member: `data.recoveries` (tag to slot).
//! - A member's `material` entry binds it again: `data.recovery` = `{epoch, slot}` in the
//!   setup in force, and, while a re-split runs, `next` = `{epoch, slot}` for the identity
//!   split straight into its setup; only at `member add` (her first binding) or at the end of
//!   a recovery of her that K other counted persons released (so one admin alone can move no
//!   member's binding).
//! - A re-split's start (`recovery-reshare`) names the new slot of every old one:
//!   `data.slots`; its end moves every member of the old epoch to its new slot (its `next`,
//!   else the start's slot for its old one).
//!
//! - Before a member add or a recovery's end writes any share of a new identity, it reserves
//!   the new slots for that member (`recovery-slot`): a slot someone saw in the store before
//!   its binding was logged is reserved already, for the member whose identity it holds.
//!
//! A slot (with its epoch) is bound once, ever: a later entry binding a slot bound, reserved
//! for another member, or named by a start counts for nothing. So no member's slot can be
//! given to another, whoever signs: identities are in slots only by the split, a direct split
//! into a slot reserved for the member, or a re-split's deal from one slot into the one the
//! start named for it.

use super::persons::Persons;
use super::trust::Activation;
use coop_formats::tlog::{Entry, Event};
use std::collections::{BTreeMap, BTreeSet};

/// `object` of a `key-change` entry that names a member's writer material (and, after the
/// split, its recovery slot).
pub const MATERIAL: &str = "material";

/// `object` of a `key-change` entry that reserves a new identity's slots for a member before
/// any share of it is written.
pub const RESERVE: &str = "recovery-slot";

/// A slot in an epoch.
pub type Slot = (String, String);

/// The slot bindings of one admin log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    /// The split named its members' slots (`false`: a split by an older coop, no rule).
    pub rule: bool,
    /// Member tenant tag to the slot holding its recovery identity.
    pub bound: BTreeMap<String, Slot>,
    /// Every tag ever bound: a first binding (a member's addition) is only for a tag never
    /// bound, so that a member a re-split left unbound cannot be bound anew by one admin.
    ever: BTreeSet<String>,
    /// Every slot ever bound, reserved or named by a re-split's start.
    taken: BTreeSet<Slot>,
    /// Slots reserved for a member's new identity before its shares were written, not bound
    /// yet: only that member's binding may take them.
    reserved: BTreeMap<Slot, String>,
    /// The running re-split's new slot for each old one (from its start).
    next: BTreeMap<String, String>,
    /// Members split straight into the running re-split's setup: tag to each (old slot, new
    /// slot), the old one being the slot she was bound to in the setup in force then (a
    /// member added and then recovered while it runs has two).
    direct: BTreeMap<String, Vec<(String, String)>>,
    /// Recovery requests by counted persons: ID to (tag, asker).
    requests: BTreeMap<String, (String, [u8; 32])>,
    /// Releases by counted persons: request ID to who released.
    releases: BTreeMap<String, BTreeSet<[u8; 32]>>,
    /// Requests whose end rebound their member.
    ended: BTreeSet<String>,
}

fn slot_of(v: &serde_json::Value) -> Option<Slot> {
    Some((
        v.get("epoch")?.as_str()?.to_string(),
        v.get("slot")?.as_str()?.to_string(),
    ))
}

impl Slots {
    /// Takes `slot` for member `tag`: a slot nobody took, or one reserved for her.
    fn take(&mut self, tag: &str, slot: &Slot) -> bool {
        match self.reserved.get(slot) {
            Some(t) if t == tag => {
                self.reserved.remove(slot);
                true
            }
            Some(_) => false,
            None => self.taken.insert(slot.clone()),
        }
    }

    /// Where the running re-split moves member `tag`, bound to `old` now: her direct slot if
    /// she was split straight into it from `old`, else the slot the start named for `old`.
    fn target(&self, tag: &str, old: &str) -> Option<String> {
        let mut direct = self.direct.get(tag).into_iter().flatten();
        match direct.rfind(|(from, _)| from == old) {
            Some((_, new)) => Some(new.clone()),
            None => self.next.get(old).cloned(),
        }
    }

    /// Whether `new` is a slot some member was split straight into.
    fn is_direct(&self, new: &str) -> bool {
        self.direct.values().flatten().any(|(_, d)| d == new)
    }

    /// Binds `tag` to `slot`, unless the slot was taken before (binding a member again to the
    /// slot it has is no change).
    fn bind(&mut self, tag: &str, slot: Slot) -> bool {
        if self.bound.get(tag) == Some(&slot) {
            return true;
        }
        if !self.take(tag, &slot) {
            return false;
        }
        self.ever.insert(tag.to_string());
        self.bound.insert(tag.to_string(), slot);
        true
    }
}

impl Persons {
    /// The split's bindings (`epoch`: its setup's).
    pub(super) fn bind_split(&mut self, e: &Entry, epoch: Option<&str>) {
        let (Some(map), Some(epoch)) =
            (e.data.get("recoveries").and_then(|v| v.as_object()), epoch)
        else {
            return;
        };
        self.slots.rule = true;
        for (tag, slot) in map {
            if let Some(slot) = slot.as_str() {
                self.slots.bind(tag, (epoch.to_string(), slot.to_string()));
            }
        }
    }

    /// A recovery request or release by counted person `by`.
    pub(super) fn recovery_step(&mut self, e: &Entry, by: [u8; 32]) {
        let (Some(id), Some(tag)) = (e.object.clone(), e.tenant.clone()) else {
            return;
        };
        match e.event {
            Event::RecoveryRequest => {
                self.slots.requests.entry(id).or_insert((tag, by));
            }
            Event::RecoveryRelease if self.slots.requests.get(&id).is_some_and(|r| r.0 == tag) => {
                self.slots.releases.entry(id).or_default().insert(by);
            }
            _ => {}
        }
    }

    /// A `material` entry by counted person `by`: its slot in the setup in force, and its
    /// slot in the running re-split's. It binds a member only when it adds her (her first
    /// binding: no request) or ends a recovery of her (`data.request`: asked by `by`, released
    /// by K other counted persons, the first end of that request). Witnessing is not needed
    /// here: one admin alone cannot sign the K releases.
    pub(super) fn bind_material(&mut self, e: &Entry, by: [u8; 32]) {
        let (Some(tag), Some(rec)) = (e.tenant.as_deref(), e.data.get("recovery")) else {
            return;
        };
        let in_force = self.setup.as_ref().map(|s| s.epoch.as_str());
        let Some(slot) = slot_of(rec).filter(|s| Some(s.0.as_str()) == in_force) else {
            return;
        };
        let allowed = match e.data.get("request").and_then(|v| v.as_str()) {
            None => !self.slots.ever.contains(tag),
            Some(r) => {
                let asked = self.slots.requests.get(r);
                let released = self.slots.releases.get(r).map_or(0, |b| {
                    b.iter()
                        .filter(|p| asked.is_some_and(|a| a.1 != **p))
                        .count()
                });
                asked.is_some_and(|a| a.0 == tag && a.1 == by)
                    && released >= self.approvals_needed
                    && (self.slots.ended.insert(r.to_string())
                        || self.slots.bound.get(tag) == Some(&slot))
            }
        };
        // The identity in the new setup's slot is the one in her old slot: counted only when
        // she is bound to that old slot.
        if !allowed || !self.slots.bind(tag, slot.clone()) {
            return;
        }
        let running = self.resplit.as_ref().map(|s| s.epoch.clone());
        if let Some(next) = rec
            .get("next")
            .and_then(slot_of)
            .filter(|s| Some(&s.0) == running.as_ref())
        {
            if self.slots.take(tag, &next) {
                let pairs = self.slots.direct.entry(tag.to_string()).or_default();
                pairs.push((slot.1, next.1));
            }
        }
    }

    /// A counted person's reservation (`recovery-slot`) of a new identity's slot in the setup
    /// in force, and of its slot in the running re-split's, for member `e.tenant`: logged
    /// before any share of it is written.
    pub(super) fn reserve_slots(&mut self, e: &Entry) {
        let Some(tag) = e.tenant.clone() else {
            return;
        };
        let in_force = self.setup.as_ref().map(|s| s.epoch.clone());
        let running = self.resplit.as_ref().map(|s| s.epoch.clone());
        let slot = slot_of(&serde_json::Value::Object(e.data.clone()));
        let next = e.data.get("next").and_then(slot_of);
        for (s, epoch) in [(slot, in_force), (next, running)] {
            if let Some(s) = s.filter(|s| Some(&s.0) == epoch.as_ref()) {
                if self.slots.taken.insert(s.clone()) {
                    self.slots.reserved.insert(s, tag.clone());
                }
            }
        }
    }

    /// A re-split started (`e`, to epoch `to`): the new slot of each old one. A map that
    /// names a slot twice or one taken before names none.
    pub(super) fn start_slots(&mut self, e: &Entry, to: &str) {
        self.slots.next.clear();
        self.slots.direct.clear();
        let map: BTreeMap<String, String> = e
            .data
            .get("slots")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let new: BTreeSet<Slot> = map.values().map(|s| (to.to_string(), s.clone())).collect();
        if new.len() == map.len() && new.is_disjoint(&self.slots.taken) {
            self.slots.taken.extend(new);
            self.slots.next = map;
        }
    }

    /// A re-split from epoch `from` to `to` ended: every member of `from` moves to its new
    /// slot (none: it is bound to nothing, and its recovery is refused).
    pub(super) fn end_slots(&mut self, from: &str, to: &str) {
        let s = &mut self.slots;
        let moving: Vec<(String, String)> = s
            .bound
            .iter()
            .filter(|(_, b)| b.0 == from)
            .map(|(t, b)| (t.clone(), b.1.clone()))
            .collect();
        for (tag, old) in moving {
            match s.target(&tag, &old) {
                Some(new) => s.bound.insert(tag, (to.to_string(), new)),
                None => s.bound.remove(&tag),
            };
        }
        s.next.clear();
        s.direct.clear();
    }

    /// A running re-split stopped (the persons changed).
    pub(super) fn stop_slots(&mut self) {
        self.slots.next.clear();
        self.slots.direct.clear();
    }
}

impl Activation {
    fn slot_rules(&self) -> impl Iterator<Item = &Slots> {
        self.restricted().map(|p| &p.slots).filter(|s| s.rule)
    }

    /// Whether the admins' log binds member `tag` to `slot` (SPEC 25.6). `true` where no split
    /// names slots (older logs: nothing to check against).
    pub fn slot_bound(&self, tag: &str, slot: &Slot) -> bool {
        self.slot_rules().all(|s| s.bound.get(tag) == Some(slot))
    }

    /// Whether the running re-split may move old slot `old` to `new`, dealt (`direct` false)
    /// or split straight into it (`direct` true): a dealt move only where the start named it
    /// and nobody was split straight into `new`; a direct one only where the log has a direct
    /// split from `old` into `new` (whom it moves is the end's to check).
    pub fn resplit_moves(&self, old: &str, new: &str, direct: bool) -> bool {
        self.slot_rules().all(|s| {
            if direct {
                // A pair the log has; whether it still moves anyone (her old slot may have
                // been replaced by a recovery since) is the end's to check, against the
                // slots the log binds then.
                s.direct
                    .values()
                    .flatten()
                    .any(|(from, to)| from == old && to == new)
            } else {
                s.next.get(old).map(String::as_str) == Some(new) && !s.is_direct(new)
            }
        })
    }

    /// How many members the log binds in the setup in force that the running re-split's end
    /// would move nowhere (the most over the admin logs): an end must not leave one unbound.
    pub fn resplit_unmoved(&self) -> usize {
        self.restricted()
            .filter(|p| p.slots.rule)
            .map(|p| {
                let from = p.setup.as_ref().map(|s| s.epoch.as_str());
                p.slots
                    .bound
                    .iter()
                    .filter(|(tag, (e, old))| {
                        Some(e.as_str()) == from && p.slots.target(tag, old).is_none()
                    })
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether the log has `slot` reserved for member `tag` (or bound to her already), in
    /// every admin log that binds slots: what a new identity's shares may be written under.
    pub fn reserved_for(&self, tag: &str, slot: &Slot) -> bool {
        self.slot_rules().all(|s| {
            s.reserved.get(slot).map(String::as_str) == Some(tag) || s.bound.get(tag) == Some(slot)
        })
    }

    /// Whether an admin log that binds slots holds `slot` reserved for member `tag` and not
    /// yet bound (false where no log binds slots): what finishing a stopped `member add` needs.
    pub fn reserved_unbound(&self, tag: &str, slot: &Slot) -> bool {
        let mut any = false;
        for s in self.slot_rules() {
            any = true;
            if s.reserved.get(slot).map(String::as_str) != Some(tag) {
                return false;
            }
        }
        any
    }

    /// Where the running re-split's end moves member `tag` by the log: `None` when it moves
    /// her nowhere (her recovery would be refused after it) or the admin logs disagree;
    /// `fallback` where no split names slots (older logs).
    pub fn resplit_target(&self, tag: &str, fallback: &str) -> Option<String> {
        let targets: BTreeSet<Option<String>> = self
            .slot_rules()
            .map(|s| s.bound.get(tag).and_then(|(_, old)| s.target(tag, old)))
            .collect();
        match targets.len() {
            0 => Some(fallback.to_string()),
            1 => targets.into_iter().next().flatten(),
            _ => None,
        }
    }
}
