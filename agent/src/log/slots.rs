//! Which recovery slot holds which member's recovery identity, as the admins' log has it (SPEC
//! 25.6). A slot's shares are what an approval releases, and the registry (which one admin can
//! sign alone) says which slot is a member's: pointing member B's entry at member A's slot
//! would make K approvals of a request "for B" release A's identity. So the log binds each
//! member (by tenant tag) to one slot per epoch, and an approver releases only the slot the
//! log binds to the requested member.
//!
//! - The split (`recovery-init`) binds every member: `data.recoveries` (tag to slot).
//! - A member's `material` entry (`member add` after the split, the end of a recovery) binds
//!   it again: `data.recovery` = `{epoch, slot}` in the setup in force, and, while a re-split
//!   runs, `next` = `{epoch, slot}` for the identity split straight into its setup.
//! - A re-split's start (`recovery-reshare`) names the new slot of every old one:
//!   `data.slots`; its end moves every member of the old epoch to its new slot (its `next`,
//!   else the start's slot for its old one).
//!
//! A slot (with its epoch) is bound once, ever: a later entry binding a slot bound before (to
//! another member, or in an earlier start) counts for nothing. So no member's slot can be given
//! to another, whoever signs: identities are in slots only by the split, a direct split into a
//! fresh slot, or a re-split's deal from one slot into the one the start named for it.

use super::persons::Persons;
use super::trust::Activation;
use coop_formats::tlog::Entry;
use std::collections::{BTreeMap, BTreeSet};

/// `object` of a `key-change` entry that names a member's writer material (and, after the
/// split, its recovery slot).
pub const MATERIAL: &str = "material";

/// A slot in an epoch.
pub type Slot = (String, String);

/// The slot bindings of one admin log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Slots {
    /// The split named its members' slots (`false`: a split by an older coop, no rule).
    pub rule: bool,
    /// Member tenant tag to the slot holding its recovery identity.
    pub bound: BTreeMap<String, Slot>,
    /// Every slot ever bound or named by a re-split's start.
    taken: BTreeSet<Slot>,
    /// The running re-split's new slot for each old one (from its start).
    next: BTreeMap<String, String>,
    /// Members split straight into the running re-split's setup: tag to new slot.
    direct: BTreeMap<String, String>,
}

fn slot_of(v: &serde_json::Value) -> Option<Slot> {
    Some((
        v.get("epoch")?.as_str()?.to_string(),
        v.get("slot")?.as_str()?.to_string(),
    ))
}

impl Slots {
    /// Binds `tag` to `slot`, unless the slot was taken before (binding a member again to the
    /// slot it has is no change).
    fn bind(&mut self, tag: &str, slot: Slot) -> bool {
        if self.bound.get(tag) == Some(&slot) {
            return true;
        }
        if !self.taken.insert(slot.clone()) {
            return false;
        }
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

    /// A counted person's `material` entry: its slot in the setup in force, and its slot in
    /// the running re-split's.
    pub(super) fn bind_material(&mut self, e: &Entry) {
        let (Some(tag), Some(rec)) = (e.tenant.as_deref(), e.data.get("recovery")) else {
            return;
        };
        let in_force = self.setup.as_ref().map(|s| s.epoch.as_str());
        if let Some(slot) = slot_of(rec).filter(|s| Some(s.0.as_str()) == in_force) {
            self.slots.bind(tag, slot);
        }
        let running = self.resplit.as_ref().map(|s| s.epoch.clone());
        if let Some(next) = rec
            .get("next")
            .and_then(slot_of)
            .filter(|s| Some(&s.0) == running.as_ref())
        {
            if self.slots.taken.insert(next.clone()) {
                self.slots.direct.insert(tag.to_string(), next.1);
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
            match s.direct.get(&tag).or_else(|| s.next.get(&old)) {
                Some(new) => s.bound.insert(tag, (to.to_string(), new.clone())),
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

    /// Whether the running re-split may move old slot `old` to `new`: its start named that,
    /// or `new` is a member's direct split logged while it runs.
    pub fn resplit_moves(&self, old: &str, new: &str) -> bool {
        self.slot_rules().all(|s| {
            s.next.get(old).map(String::as_str) == Some(new) || s.direct.values().any(|d| d == new)
        })
    }

    /// Whether `new` is a slot the log has a member split straight into the running re-split.
    pub fn resplit_direct(&self, new: &str) -> bool {
        self.slot_rules()
            .all(|s| s.direct.values().any(|d| d == new))
    }
}
