//! Which admin persons count (SPEC 24.11): before the recovery split every admin can do
//! everything, so every person key that signs an admin entry counts. From the split on, the
//! persons named in the first `recovery-init` entry that names any count, and a person joins
//! or leaves only when K *other* counted persons approved it, each with an entry they signed
//! (`key-change`, `object` = `admin-add` / `admin-remove` for the proposal,
//! `admin-approve` for an approval). Everything is read from the admin log, which is
//! append-only and witnessed: one admin alone can neither make a second person of herself
//! nor remove another, and nobody can undo a step unseen.

use super::setups::{setup_of, COMBINED, RESHARE, RESHARED};
use super::slots::{MATERIAL, RESERVE};
use coop_formats::tlog::{Entry, Event, PersonCheck};

/// A change of the admin persons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    Add,
    Remove,
    /// Lowering the log quorum (raising it takes no approval).
    LowerQuorum,
}

impl Op {
    /// The `object` of the proposal entry.
    pub fn object(self) -> &'static str {
        match self {
            Op::Add => "admin-add",
            Op::Remove => "admin-remove",
            Op::LowerQuorum => "quorum-lower",
        }
    }

    fn of(object: &str) -> Option<Op> {
        match object {
            "admin-add" => Some(Op::Add),
            "admin-remove" => Some(Op::Remove),
            "quorum-lower" => Some(Op::LowerQuorum),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::LowerQuorum => "quorum-lower",
        }
    }

    fn named(s: &str) -> Option<Op> {
        match s {
            "add" => Some(Op::Add),
            "remove" => Some(Op::Remove),
            "quorum-lower" => Some(Op::LowerQuorum),
            _ => None,
        }
    }
}

/// The `object` of an approval entry.
pub const APPROVE: &str = "admin-approve";

/// A proposed change and who approved it so far.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Proposal {
    /// Index of the proposal entry in its admin log.
    pub index: u64,
    pub op: Op,
    /// The person's name (as proposed), person key and recipient.
    pub name: String,
    #[serde(serialize_with = "hex32")]
    pub key: [u8; 32],
    pub recipient: String,
    /// Who proposed it.
    #[serde(serialize_with = "hex32")]
    pub by: [u8; 32],
    /// Counted persons other than the proposer and the subject who approved it, in order.
    #[serde(serialize_with = "hex32s")]
    pub approvals: Vec<[u8; 32]>,
    /// For [`Op::LowerQuorum`]: the quorum proposed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum: Option<u32>,
}

fn hex32<S: serde::Serializer>(k: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(k))
}

fn hex32s<S: serde::Serializer>(ks: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ks.iter().map(hex::encode))
}

/// The persons of one admin log over time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persons {
    /// The index of the `recovery-init` entry from which on only counted persons count
    /// (`None`: no split that names persons; every signed person counts).
    pub restricted_from: Option<u64>,
    /// The persons the split named.
    pub founding: Vec<[u8; 32]>,
    /// K: approvals by counted persons other than the proposer that a change takes.
    pub approvals_needed: usize,
    /// Changes in force, in log order: (index of the approval that completed it, key, op).
    pub changes: Vec<(u64, [u8; 32], Op)>,
    /// Proposals not completed yet, in log order.
    pub pending: Vec<Proposal>,
    /// Completed proposals, in the order they took effect.
    pub completed: Vec<Proposal>,
    /// After the split, the log quorum's floor: the quorum in force at the split, raised by
    /// every `log_quorum=N` entry of a counted person, lowered only by a completed
    /// [`Op::LowerQuorum`]. `None` before the split.
    pub quorum_floor: Option<u32>,
    /// The identities (recipients) the log vouches for as share holders now (SPEC 25.5): each
    /// counted person's, from the split's `data.person_recipients` and each completed
    /// addition's `admin_recipient`; for a split that named no `person_recipients` (older
    /// logs), its setup's holders, less each completed removal's `admin_recipient`.
    pub vouched: std::collections::BTreeSet<String>,
    /// Each person's identity as the log names it (see `vouched`).
    pub recipients: std::collections::BTreeMap<[u8; 32], String>,
    /// Each person's name as the log gives it (the split's `data.person_names`, and each
    /// completed addition's): for people who cannot read the registry, members above all.
    pub names: std::collections::BTreeMap<[u8; 32], String>,
    /// The recovery setup in force by the log: the split's, then each finished re-split's.
    pub setup: Option<coop_formats::recovery::RecoverySetup>,
    /// The running re-split's setup: the newest `recovery-reshare` by a counted person that
    /// re-splits the setup in force and whose holders were exactly the vouched identities
    /// then, each once, at the split's threshold. A newer one replaces it.
    pub resplit: Option<coop_formats::recovery::RecoverySetup>,
    /// Holders of `resplit` whose combination (`recovery-combined`) the person the log names
    /// with that holder's identity logged.
    pub combined: std::collections::BTreeSet<String>,
    /// Epochs a `recovery-reshare` started (each starts once).
    pub started: std::collections::BTreeSet<String>,
    /// Epochs a re-split's end retired: a `recovery-reshared` by a counted person, from the
    /// setup in force to `resplit`, once every holder of `resplit` combined.
    pub retired: std::collections::BTreeSet<String>,
    /// Which slot holds which member's recovery identity (SPEC 25.6).
    pub slots: super::slots::Slots,
}

fn key_of(v: Option<&serde_json::Value>) -> Option<[u8; 32]> {
    v?.as_str()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
}

/// The quorum a `key-change` entry sets (`object` = `log_quorum=N`), if it sets one.
pub(super) fn quorum_set(e: &Entry) -> Option<u32> {
    (e.event == Event::KeyChange)
        .then(|| {
            e.object
                .as_deref()?
                .strip_prefix("log_quorum=")?
                .parse()
                .ok()
        })
        .flatten()
}

fn quorum_of(e: &Entry) -> Option<u32> {
    e.data
        .get("quorum")
        .and_then(|v| v.as_u64())
        .and_then(|q| u32::try_from(q).ok())
}

pub(super) fn text(e: &Entry, field: &str) -> String {
    e.data
        .get(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string()
}

impl Persons {
    /// Reads the persons from an admin log's entries (index, entry) in log order. Entries
    /// without a valid person signature change nothing.
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = (u64, &'a Entry)>) -> Persons {
        let mut p = Persons::default();
        let mut quorum = 0;
        // A person's signature covers the entry, not its place in the log: the log's owner
        // (any admin) could append an old entry again, an approval of an earlier proposal say,
        // to count it for a new one. Each signed entry counts once, where it first appears.
        let mut seen: std::collections::HashSet<String> = Default::default();
        for (i, e) in entries {
            let person = e.person();
            // Only a verified signature is remembered: a forged entry carrying another's
            // `person_sig` must not void the genuine one.
            if let (PersonCheck::Signed(_), Some(sig)) =
                (&person, e.data.get("person_sig").and_then(|v| v.as_str()))
            {
                if !seen.insert(sig.to_string()) {
                    continue;
                }
            }
            if let Some(q) = quorum_set(e) {
                let counted = matches!(&person, PersonCheck::Signed(by) if p.counts(by, i));
                match &mut p.quorum_floor {
                    None => quorum = q,
                    Some(f) if counted => *f = (*f).max(q),
                    Some(_) => {}
                }
            }
            let PersonCheck::Signed(by) = person else {
                continue;
            };
            match (e.event, e.object.as_deref()) {
                (Event::RecoveryInit, _) if p.restricted_from.is_none() => {
                    p.found(i, e, quorum);
                }
                (Event::KeyChange, Some(object)) if p.restricted_from.is_some() => {
                    if !p.counts(&by, i) {
                        continue;
                    }
                    if matches!(object, RESHARE | COMBINED | RESHARED) {
                        p.reshare(object, e, &by);
                        continue;
                    }
                    if object == MATERIAL {
                        p.bind_material(e, by);
                        continue;
                    }
                    if object == RESERVE {
                        p.reserve_slots(e);
                        continue;
                    }
                    if let Some(op) = Op::of(object) {
                        p.propose(i, e, op, by);
                    } else if object == APPROVE {
                        p.approve(i, e, by);
                    }
                }
                (Event::RecoveryRequest | Event::RecoveryRelease, _)
                    if p.restricted_from.is_some() && p.counts(&by, i) =>
                {
                    p.recovery_step(e, by);
                }
                _ => {}
            }
        }
        p
    }

    /// The split's founding entry (the first `recovery-init` naming persons): from entry `i`
    /// on only the persons it names, and those they admit, count; `quorum` is the witness
    /// quorum in force before it.
    fn found(&mut self, i: u64, e: &Entry, quorum: u32) {
        let founding: Vec<[u8; 32]> = e
            .data
            .get("persons")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|k| key_of(Some(k))).collect())
            .unwrap_or_default();
        if founding.is_empty() {
            return;
        }
        self.restricted_from = Some(i);
        self.quorum_floor = Some(quorum);
        self.founding = founding;
        let setup = setup_of(e);
        let names: Option<std::collections::BTreeMap<String, String>> = e
            .data
            .get("person_names")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        for (k, n) in names.into_iter().flatten() {
            if let Some(k) = key_of(Some(&k.into())).filter(|k| self.founding.contains(k)) {
                self.names.insert(k, n);
            }
        }
        let named: Option<std::collections::BTreeMap<String, String>> = e
            .data
            .get("person_recipients")
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        match named {
            Some(named) => {
                for (k, r) in named {
                    if let Some(k) = key_of(Some(&k.into())) {
                        if self.founding.contains(&k) {
                            self.recipients.insert(k, r);
                        }
                    }
                }
                self.vouched = self.recipients.values().cloned().collect();
            }
            None => {
                self.vouched = setup
                    .iter()
                    .flat_map(|s| s.holders.iter().map(|h| h.recipient.clone()))
                    .collect();
            }
        }
        let epoch = setup.as_ref().map(|s| s.epoch.clone());
        self.setup = setup;
        self.bind_split(e, epoch.as_deref());
        self.approvals_needed = e
            .data
            .get("person_approvals")
            .and_then(|v| v.as_u64())
            .unwrap_or(1)
            .max(1) as usize;
    }

    /// A proposal (entry `i`) to change the admins or the witness quorum, by `by`: it replaces
    /// an earlier one of the same change.
    fn propose(&mut self, i: u64, e: &Entry, op: Op, by: [u8; 32]) {
        let quorum = quorum_of(e);
        let key = match op {
            Op::LowerQuorum if quorum.is_some() => [0; 32],
            Op::LowerQuorum => return,
            _ => match key_of(e.data.get("admin_key")) {
                Some(k) => k,
                None => return,
            },
        };
        self.pending
            .retain(|x| !(x.op == op && x.key == key && x.quorum == quorum));
        self.pending.push(Proposal {
            index: i,
            op,
            name: text(e, "admin"),
            key,
            recipient: text(e, "admin_recipient"),
            by,
            approvals: Vec::new(),
            quorum,
        });
    }

    fn approve(&mut self, i: u64, e: &Entry, by: [u8; 32]) {
        let Some(op) = Op::named(&text(e, "op")) else {
            return;
        };
        let quorum = quorum_of(e);
        let key = match op {
            Op::LowerQuorum => [0; 32],
            _ => match key_of(e.data.get("admin_key")) {
                Some(k) => k,
                None => return,
            },
        };
        let Some(at) = self
            .pending
            .iter()
            .position(|x| x.op == op && x.key == key && x.quorum == quorum)
        else {
            return;
        };
        let x = &mut self.pending[at];
        // An approval names the identity it approves (newer clients): one given for another
        // identity than the proposal's (a proposal replaced after it was read) counts nothing.
        if let Some(r) = e.data.get("admin_recipient").and_then(|v| v.as_str()) {
            if r != x.recipient {
                return;
            }
        }
        if by == x.by || by == x.key || x.approvals.contains(&by) {
            return;
        }
        x.approvals.push(by);
        if x.approvals.len() >= self.approvals_needed {
            let done = self.pending.remove(at);
            match done.op {
                Op::LowerQuorum => self.quorum_floor = done.quorum,
                Op::Add => {
                    self.recipients.insert(done.key, done.recipient.clone());
                    self.names.insert(done.key, done.name.clone());
                    self.vouched.insert(done.recipient.clone());
                    self.changes.push((i, done.key, done.op));
                }
                Op::Remove => {
                    match self.recipients.remove(&done.key) {
                        Some(r) => self.vouched.remove(&r),
                        None => self.vouched.remove(&done.recipient),
                    };
                    self.changes.push((i, done.key, done.op));
                }
            }
            // The persons changed: a running re-split (to the persons of before) stops; the
            // next one starts from the setup in force.
            if matches!(done.op, Op::Add | Op::Remove) {
                self.resplit = None;
                self.combined.clear();
                self.stop_slots();
            }
            self.completed.push(done);
        }
    }

    /// Whether person `key` counts at entry index `at` of this log.
    pub fn counts(&self, key: &[u8; 32], at: u64) -> bool {
        let Some(from) = self.restricted_from else {
            return true;
        };
        if at <= from {
            return true;
        }
        let mut counted = self.founding.contains(key);
        for (i, k, op) in &self.changes {
            if *i < at && k == key {
                counted = *op == Op::Add;
            }
        }
        counted
    }

    /// Whether entry index `at` is before the split restricted the persons (or there is none).
    pub fn before_split(&self, at: u64) -> bool {
        self.restricted_from.is_none_or(|r| at <= r)
    }

    /// Whether person `key` counts now (after every entry read).
    pub fn counts_now(&self, key: &[u8; 32]) -> bool {
        self.counts(key, u64::MAX)
    }

    /// The pending proposal of `op` for `key`, if any.
    pub fn proposal(&self, op: Op, key: &[u8; 32]) -> Option<&Proposal> {
        self.pending.iter().find(|x| x.op == op && &x.key == key)
    }

    /// The data of a proposal entry.
    pub fn proposal_data(
        name: &str,
        key: &[u8; 32],
        recipient: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut d = serde_json::Map::new();
        d.insert("admin".into(), name.into());
        d.insert("admin_key".into(), hex::encode(key).into());
        d.insert("admin_recipient".into(), recipient.into());
        d
    }

    /// The data of an approval entry: the change, the person key and the identity approved.
    pub fn approval_data(
        op: Op,
        key: &[u8; 32],
        recipient: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut d = serde_json::Map::new();
        d.insert("op".into(), op.name().into());
        d.insert("admin_key".into(), hex::encode(key).into());
        d.insert("admin_recipient".into(), recipient.into());
        d
    }

    /// The data of a proposal to lower the quorum to `quorum`, or of an approval of it.
    pub fn quorum_data(quorum: u32) -> serde_json::Map<String, serde_json::Value> {
        let mut d = serde_json::Map::new();
        d.insert("op".into(), Op::LowerQuorum.name().into());
        d.insert("quorum".into(), quorum.into());
        d
    }
}

#[cfg(test)]
#[path = "persons_tests.rs"]
mod tests;

#[cfg(test)]
mod witness_tests {
    use super::*;
    use crate::log::{Activation, Active};

    /// After the split, a witness that a second person key of anna's adopted is independent
    /// of nobody, and an entry signed by that key gets no independent witness from ben's
    /// adoption either: only counted persons are "another person".
    #[test]
    fn a_second_person_key_neither_adopts_nor_reads_as_another_person() {
        let (anna, ben, puppet) = ([1u8; 32], [2u8; 32], [7u8; 32]);
        let (w_puppet, w_ben) = ([11u8; 32], [12u8; 32]);
        let mut a = Activation::default();
        let active = |by| Active {
            since: 1,
            founding: false,
            by: Some(by),
        };
        a.logs.insert(
            "admin".into(),
            [(w_puppet, active(puppet)), (w_ben, active(ben))].into(),
        );
        // Before any split names persons, every signed person is one.
        assert!(a.independent_of(&w_puppet, Some(&anna)));
        a.persons.insert(
            "admin".into(),
            Persons {
                restricted_from: Some(0),
                founding: vec![anna, ben],
                approvals_needed: 1,
                ..Default::default()
            },
        );
        assert!(!a.independent_of(&w_puppet, Some(&anna)));
        assert!(a.independent_of(&w_ben, Some(&anna)));
        assert!(!a.independent_of(&w_ben, Some(&puppet)));
        assert!(!a.person_counts(&puppet));
    }
}
