//! The access log: an append-only Merkle tree log per signing key (a site's agent, an admin),
//! stored in the repository, checkpointed as C2SP signed notes and cosigned by witnesses.
//!
//! ```text
//! leaf hash   = SHA-256(0x00 || entry)                (RFC 9162 section 2.1.1)
//! node hash   = SHA-256(0x01 || left || right)
//! checkpoint  = "<origin>\n<size>\n<base64 root>\n" signed as a C2SP signed note
//! cosignature = Ed25519(witness, "cosignature/v1\ntime <t>\n" || checkpoint body),
//!               as a note signature of type 0x04: key ID || t (u64 BE) || signature
//! bundle      = (len:u16 BE || entry) × 1..=256       (C2SP tlog-tiles entry bundle)
//! ```
//! Objects (SPEC section 24): `log/<log id>/entries/<N>[.p/<W>]`, `log/<log id>/checkpoint/<size>`
//! and `log/<log id>/cosignature/<size>/<witness key id>`, where `<log id>` is the hex of the
//! first 16 bytes of SHA-256 of the origin. None is ever rewritten.

use base64::prelude::{Engine, BASE64_STANDARD};
use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

/// Entries per full bundle.
pub const BUNDLE: u64 = 256;
/// The longest entry (C2SP's 2-byte length prefix).
pub const MAX_ENTRY: usize = 65_535;
/// The value of an entry's `type` field.
pub const ENTRY_TYPE: &str = "coop-log-entry/1";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LogError {
    #[error("log entry is malformed: {reason}")]
    Entry { reason: String },
    #[error("entry bundle is malformed: {reason}")]
    Bundle { reason: &'static str },
    #[error("checkpoint is malformed: {reason}")]
    Checkpoint { reason: String },
    #[error("checkpoint signature does not verify (forged or damaged)")]
    BadSignature,
    #[error("inclusion or consistency proof does not verify")]
    BadProof,
}

pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

pub fn node_hash(l: &Hash, r: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// SHA-256 of the empty string: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[0:n]) of the leaf hashes (RFC 9162 section 2.1.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The inclusion proof of leaf `m` in the tree of `leaves` (RFC 9162 section 2.1.3.1).
pub fn inclusion_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        if d.len() <= 1 {
            return;
        }
        let k = split(d.len());
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    if m < leaves.len() {
        path(m, leaves, &mut out);
    }
    out
}

/// Every perfect subtree of a list of leaves, kept once, so that the root of any prefix and
/// the inclusion proof of any leaf in it cost O(log² n) hash lookups and O(log n) hashes,
/// instead of rehashing the prefix (which made verifying a log with many checkpoints, and a
/// member's export of a large log, quadratic). Same results as [`root`] and
/// [`inclusion_proof`].
pub struct Levels {
    /// `levels[l][j]` = the root of the perfect subtree of leaves `j·2^l .. (j+1)·2^l`.
    levels: Vec<Vec<Hash>>,
}

impl Levels {
    pub fn new(leaves: &[Hash]) -> Self {
        let mut levels = vec![leaves.to_vec()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().expect("non-empty");
            let up: Vec<Hash> = below
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        Levels { levels }
    }

    /// Leaves held.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    pub fn is_empty(&self) -> bool {
        self.levels[0].is_empty()
    }

    /// MTH(D[start:end]) where `start` is a multiple of the largest power of two not above
    /// `end - start` (every range RFC 9162's recursion asks for is such a range).
    fn mth(&self, start: usize, end: usize) -> Hash {
        let n = end - start;
        if n == 0 {
            return empty_root();
        }
        if n.is_power_of_two() {
            let l = n.trailing_zeros() as usize;
            return self.levels[l][start >> l];
        }
        let k = split(n);
        node_hash(&self.mth(start, start + k), &self.mth(start + k, end))
    }

    /// MTH(D[0:n]) (n at most [`Self::len`]).
    pub fn root(&self, n: usize) -> Hash {
        self.mth(0, n)
    }

    /// The inclusion proof of leaf `m` in the tree of the first `n` leaves.
    pub fn inclusion_proof(&self, m: usize, n: usize) -> Vec<Hash> {
        let mut out = Vec::new();
        let (mut start, mut end, mut m) = (0usize, n, m);
        if m >= n {
            return out;
        }
        // Top-down, as RFC 9162's PATH recurses; the proof lists the siblings bottom-up.
        while end - start > 1 {
            let k = split(end - start);
            if m < k {
                out.push(self.mth(start + k, end));
                end = start + k;
            } else {
                out.push(self.mth(start, start + k));
                start += k;
                m -= k;
            }
        }
        out.reverse();
        out
    }
}

/// Verifies an inclusion proof (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), LogError> {
    if index >= size {
        return Err(LogError::BadProof);
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(LogError::BadProof);
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n == 0 && r == *root {
        Ok(())
    } else {
        Err(LogError::BadProof)
    }
}

/// The consistency proof between the trees of the first `m` leaves and of all `leaves`
/// (RFC 9162 section 2.1.4.1).
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Vec<Hash> {
    fn subproof(m: usize, d: &[Hash], complete: bool, out: &mut Vec<Hash>) {
        let n = d.len();
        if m == n {
            if !complete {
                out.push(root(d));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(m, &d[..k], complete, out);
            out.push(root(&d[k..]));
        } else {
            subproof(m - k, &d[k..], false, out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < leaves.len() {
        subproof(m, leaves, true, &mut out);
    }
    out
}

/// Verifies a consistency proof from (`size1`, `root1`) to (`size2`, `root2`) (RFC 9162
/// section 2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), LogError> {
    let bad = Err(LogError::BadProof);
    if size1 > size2 {
        return bad;
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            bad
        };
    }
    // The empty tree is a prefix of every tree, but only under its own root: any other root
    // claimed for it proves nothing (and must not "prove" a fork).
    if size1 == 0 {
        return if proof.is_empty() && *root1 == empty_root() {
            Ok(())
        } else {
            bad
        };
    }
    if proof.is_empty() {
        return bad;
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s_n == 0 {
            return bad;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n == 0 && fr == *root1 && sr == *root2 {
        Ok(())
    } else {
        bad
    }
}

/// The C2SP tlog-tiles form of a tile index: groups of three digits, all but the last
/// prefixed with `x` (1234067 → `x001/x234/067`).
pub fn tile_index_path(n: u64) -> String {
    let digits = format!("{n}");
    let pad = (3 - digits.len() % 3) % 3;
    let digits = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = (0..digits.len() / 3)
        .map(|i| &digits[i * 3..i * 3 + 3])
        .collect();
    let last = groups.len() - 1;
    groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            if i < last {
                format!("x{g}")
            } else {
                g.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Parses [`tile_index_path`]'s form.
pub fn parse_tile_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let last = parts.len().checked_sub(1)?;
    let mut digits = String::new();
    for (i, p) in parts.iter().enumerate() {
        let g = if i < last { p.strip_prefix('x')? } else { p };
        if g.len() != 3 || !g.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.push_str(g);
    }
    let n: u64 = digits.parse().ok()?;
    (tile_index_path(n) == s).then_some(n)
}

/// The store path (below `log/<log id>/`) of the bundle holding entries
/// `n*256 .. n*256+width`.
pub fn bundle_path(n: u64, width: u64) -> String {
    if width == BUNDLE {
        format!("entries/{}", tile_index_path(n))
    } else {
        format!("entries/{}.p/{width}", tile_index_path(n))
    }
}

pub fn encode_bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut b = Vec::new();
    for e in entries {
        b.extend_from_slice(&(e.len() as u16).to_be_bytes());
        b.extend_from_slice(e);
    }
    b
}

pub fn decode_bundle(b: &[u8]) -> Result<Vec<Vec<u8>>, LogError> {
    decode_entries(b, BUNDLE)
}

/// Entries as a bundle lays them out (each with its length), at most `max` of them: a
/// pending append (SPEC 24.2) holds a bundle's start and a whole batch.
pub fn decode_entries(b: &[u8], max: u64) -> Result<Vec<Vec<u8>>, LogError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let n = b
            .get(i..i + 2)
            .map(|x| u16::from_be_bytes([x[0], x[1]]) as usize)
            .ok_or(LogError::Bundle {
                reason: "truncated length",
            })?;
        let e = b.get(i + 2..i + 2 + n).ok_or(LogError::Bundle {
            reason: "truncated entry",
        })?;
        out.push(e.to_vec());
        i += 2 + n;
        if out.len() as u64 > max {
            return Err(LogError::Bundle {
                reason: "more entries than the object may hold",
            });
        }
    }
    if out.is_empty() {
        return Err(LogError::Bundle { reason: "empty" });
    }
    Ok(out)
}

/// The `<log id>` of an origin.
pub fn log_id(origin: &str) -> String {
    hex::encode(&Sha256::digest(origin.as_bytes())[..16])
}

/// What happened. Closed: unknown events are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    Backup,
    Replicate,
    Forget,
    PrunePlan,
    Delete,
    KeyChange,
    RegistryChange,
    Revoke,
    Restore,
    Export,
    Dump,
    RecoveryInit,
    RecoveryRequest,
    RecoveryRelease,
    Recovery,
}

impl Event {
    /// Access to a tenant's data (logged before it happens).
    pub fn is_access(self) -> bool {
        matches!(
            self,
            Event::Restore | Event::Export | Event::Dump | Event::Recovery
        )
    }
}

/// Why data is accessed (modelled on Access Transparency's justifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    MemberRequest,
    IncidentResponse,
    DisasterRecovery,
    LegalRequest,
    Maintenance,
}

impl std::str::FromStr for Reason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
            format!(
                "unknown reason {s:?}: one of member-request, incident-response, \
                 disaster-recovery, legal-request, maintenance"
            )
        })
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        write!(f, "{}", v.as_str().unwrap_or("?"))
    }
}

/// One log entry (the leaf data, as JSON). It names no person and no tenant in clear: the
/// tenant is a keyed tag (section 24.3) its readers can recompute, details are encrypted to
/// the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    #[serde(rename = "type")]
    pub ty: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub event: Event,
    /// The actor's Ed25519 public key (hex) and its name (a site or admin name).
    pub actor: String,
    pub actor_name: String,
    /// The keyed tag of the tenant concerned (hex, 16 bytes), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The object concerned (a snapshot, a plan, a request), as hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// Event-specific public fields (a recovery request's ephemeral key, a release's
    /// encrypted share, a recovery setup's commitments). Never personal data in clear.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
    /// Free-text detail, age-encrypted to the tenant (base64), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Entry {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializes")
    }

    pub fn decode(b: &[u8]) -> Result<Self, LogError> {
        if b.len() > MAX_ENTRY {
            return Err(LogError::Entry {
                reason: "longer than 65535 bytes".into(),
            });
        }
        let e: Entry = serde_json::from_slice(b).map_err(|e| LogError::Entry {
            reason: e.to_string(),
        })?;
        if e.ty != ENTRY_TYPE {
            return Err(LogError::Entry {
                reason: format!("unknown entry type {:?}", e.ty),
            });
        }
        Ok(e)
    }
}

/// The person who caused an admin's entry (SPEC 24.3): `data.person_key` (hex Ed25519 public
/// key of that admin's own person key, SPEC 15) and `data.person_sig` (base64 Ed25519 over
/// [`PERSON_SIG_CONTEXT`] followed by the entry's encoding without `person_sig`).
pub const PERSON_SIG_CONTEXT: &[u8] = b"coop-log-person-v1\0";

/// What an entry says about the person behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonCheck {
    /// No person signature (a site's entry, or an admin's made before persons existed).
    Unsigned,
    /// Signed by this person key.
    Signed([u8; 32]),
    /// A person signature that does not verify, or a malformed one: forged.
    Forged,
}

impl Entry {
    fn person_message(&self) -> Vec<u8> {
        let mut e = self.clone();
        e.data.remove("person_sig");
        let mut m = PERSON_SIG_CONTEXT.to_vec();
        m.extend_from_slice(&e.encode());
        m
    }

    /// Signs the entry as `person` (replacing any earlier person fields).
    pub fn sign_person(&mut self, person: &ed25519_dalek::SigningKey) {
        self.data.remove("person_sig");
        self.data.insert(
            "person_key".into(),
            hex::encode(person.verifying_key().to_bytes()).into(),
        );
        let sig = person.sign(&self.person_message());
        self.data.insert(
            "person_sig".into(),
            BASE64_STANDARD.encode(sig.to_bytes()).into(),
        );
    }

    /// Checks the entry's person signature.
    pub fn person(&self) -> PersonCheck {
        let (key, sig) = (self.data.get("person_key"), self.data.get("person_sig"));
        if key.is_none() && sig.is_none() {
            return PersonCheck::Unsigned;
        }
        let key: Option<[u8; 32]> = key
            .and_then(|v| v.as_str())
            .and_then(|h| hex::decode(h).ok())
            .and_then(|b| b.try_into().ok());
        let sig: Option<[u8; 64]> = sig
            .and_then(|v| v.as_str())
            .and_then(|b| BASE64_STANDARD.decode(b).ok())
            .and_then(|b| b.try_into().ok());
        let (Some(key), Some(sig)) = (key, sig) else {
            return PersonCheck::Forged;
        };
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&key) else {
            return PersonCheck::Forged;
        };
        match vk.verify_strict(
            &self.person_message(),
            &ed25519_dalek::Signature::from_bytes(&sig),
        ) {
            Ok(()) => PersonCheck::Signed(key),
            Err(_) => PersonCheck::Forged,
        }
    }
}

/// A checkpoint's body (C2SP tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64_STANDARD.encode(self.root)
        )
    }

    pub fn parse_body(text: &[u8]) -> Result<Self, LogError> {
        let bad = |r: &str| LogError::Checkpoint { reason: r.into() };
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8"))?;
        let mut lines = text.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(bad("no origin"))?;
        let size = lines.next().ok_or(bad("no size"))?;
        if size.is_empty() || (size.len() > 1 && size.starts_with('0')) {
            return Err(bad("size is not a decimal without leading zeros"));
        }
        let size: u64 = size.parse().map_err(|_| bad("size is not a number"))?;
        let root = lines.next().ok_or(bad("no root"))?;
        let root: Hash = BASE64_STANDARD
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(bad("root is not 32 bytes of base64"))?;
        // No extension lines: the body ends after the root.
        if lines.next() != Some("") || lines.next().is_some() {
            return Err(bad("unexpected lines after the root"));
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

/// An Ed25519 note signer (type 0x01) or a cosigner (type 0x04) for `signed_note`.
struct NoteKey<'a> {
    name: &'a str,
    key: &'a ed25519_dalek::SigningKey,
    /// `Some(t)`: a cosignature/v1 at time `t`.
    cosign_time: Option<u64>,
}

/// The note key ID of a public key: SHA-256(name || 0x0A || type || key)[:4].
pub fn key_id(name: &str, public: &[u8; 32], cosigner: bool) -> u32 {
    let mut k = vec![if cosigner { 0x04 } else { 0x01 }];
    k.extend_from_slice(public);
    signed_note::key_id(name, &k)
}

fn cosigned_message(time: u64, body: &[u8]) -> Vec<u8> {
    let mut m = format!("cosignature/v1\ntime {time}\n").into_bytes();
    m.extend_from_slice(body);
    m
}

impl signed_note::Signer for NoteKey<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        key_id(
            self.name,
            &self.key.verifying_key().to_bytes(),
            self.cosign_time.is_some(),
        )
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::ed25519::Error> {
        Ok(match self.cosign_time {
            None => self.key.sign(msg).to_bytes().to_vec(),
            Some(t) => {
                let mut out = t.to_be_bytes().to_vec();
                out.extend_from_slice(&self.key.sign(&cosigned_message(t, msg)).to_bytes());
                out
            }
        })
    }
}

struct NoteVerifier {
    name: String,
    public: ed25519_dalek::VerifyingKey,
    cosigner: bool,
}

impl signed_note::Verifier for NoteVerifier {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.name, &self.public.to_bytes(), self.cosigner)
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let (m, s) = if self.cosigner {
            let Some((t, s)) = sig.split_first_chunk::<8>() else {
                return false;
            };
            let t = u64::from_be_bytes(*t);
            if t >= 1 << 63 {
                return false;
            }
            (cosigned_message(t, msg), s)
        } else {
            (msg.to_vec(), sig)
        };
        let Ok(s) = ed25519_dalek::Signature::from_slice(s) else {
            return false;
        };
        self.public.verify_strict(&m, &s).is_ok()
    }
}

struct OneVerifier(NoteVerifier);

impl signed_note::Verifiers for OneVerifier {
    fn verifier(
        &self,
        name: &str,
        id: u32,
    ) -> Result<&dyn signed_note::Verifier, signed_note::VerificationError> {
        use signed_note::Verifier as _;
        if name == self.0.name && id == self.0.key_id() {
            Ok(&self.0)
        } else {
            Err(signed_note::VerificationError::UnknownKey {
                name: name.to_string(),
                id,
            })
        }
    }
}

/// Signs a checkpoint as its log (the note key name is the origin).
pub fn sign_checkpoint(cp: &Checkpoint, key: &ed25519_dalek::SigningKey) -> Vec<u8> {
    let mut note =
        signed_note::Note::new(cp.body().as_bytes(), &[]).expect("a checkpoint is a valid note");
    note.add_sigs(&[&NoteKey {
        name: &cp.origin,
        key,
        cosign_time: None,
    }])
    .expect("the origin is a valid key name");
    note.to_bytes()
}

/// Opens a signed checkpoint note: parses the body and checks the log's signature
/// (`log_key`, named by the origin). Returns the checkpoint and the note's other signature
/// lines (cosignatures, checked by [`cosignatures`]).
pub fn open_checkpoint(note: &[u8], log_key: &[u8; 32]) -> Result<Checkpoint, LogError> {
    let n = signed_note::Note::from_bytes(note).map_err(|e| LogError::Checkpoint {
        reason: e.to_string(),
    })?;
    let cp = Checkpoint::parse_body(n.text())?;
    let public =
        ed25519_dalek::VerifyingKey::from_bytes(log_key).map_err(|_| LogError::BadSignature)?;
    n.verify(&OneVerifier(NoteVerifier {
        name: cp.origin.clone(),
        public,
        cosigner: false,
    }))
    .map_err(|_| LogError::BadSignature)?;
    Ok(cp)
}

/// A witness's cosignature line for a checkpoint (`— <name> base64(id || t || sig)\n`).
pub fn cosign(
    cp: &Checkpoint,
    witness_name: &str,
    key: &ed25519_dalek::SigningKey,
    time: u64,
) -> Vec<u8> {
    let mut note = signed_note::Note::new(cp.body().as_bytes(), &[]).expect("valid note");
    note.add_sigs(&[&NoteKey {
        name: witness_name,
        key,
        cosign_time: Some(time),
    }])
    .expect("a valid witness name");
    let b = note.to_bytes();
    // The note is body || "\n" || signature line: keep the line.
    b[cp.body().len() + 1..].to_vec()
}

/// Checks one cosignature line against a checkpoint and a witness key; returns its time.
pub fn verify_cosignature(
    cp: &Checkpoint,
    line: &[u8],
    witness_name: &str,
    witness_key: &[u8; 32],
) -> Result<u64, LogError> {
    let mut msg = cp.body().into_bytes();
    msg.push(b'\n');
    msg.extend_from_slice(line);
    let n = signed_note::Note::from_bytes(&msg).map_err(|_| LogError::BadSignature)?;
    let public =
        ed25519_dalek::VerifyingKey::from_bytes(witness_key).map_err(|_| LogError::BadSignature)?;
    let (ok, _) = n
        .verify(&OneVerifier(NoteVerifier {
            name: witness_name.to_string(),
            public,
            cosigner: true,
        }))
        .map_err(|_| LogError::BadSignature)?;
    let sig = ok.first().ok_or(LogError::BadSignature)?;
    Ok(u64::from_be_bytes(
        sig.signature()[..8]
            .try_into()
            .map_err(|_| LogError::BadSignature)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn admin_entry() -> Entry {
        Entry {
            ty: ENTRY_TYPE.into(),
            time: "2026-12-06T00:00:00Z".into(),
            event: Event::Export,
            actor: hex::encode([1u8; 32]),
            actor_name: "admin".into(),
            tenant: Some("00".repeat(16)),
            reason: Some(Reason::LegalRequest),
            object: None,
            data: Default::default(),
            detail: None,
        }
    }

    /// One admin cannot make an entry name another: the person signature covers the whole
    /// entry and only the named key makes it.
    #[test]
    fn person_signatures_name_the_admin_and_nobody_else() {
        let anna = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let ben = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let mut e = admin_entry();
        assert_eq!(e.person(), PersonCheck::Unsigned);
        e.sign_person(&anna);
        assert_eq!(
            e.person(),
            PersonCheck::Signed(anna.verifying_key().to_bytes())
        );
        let back = Entry::decode(&e.encode()).unwrap();
        assert_eq!(back.person(), e.person());
        // Ben signs and claims to be anna: forged.
        let mut claim = admin_entry();
        claim.sign_person(&ben);
        claim.data.insert(
            "person_key".into(),
            hex::encode(anna.verifying_key().to_bytes()).into(),
        );
        assert_eq!(claim.person(), PersonCheck::Forged);
        // Anna's signature does not survive a change of reason, or a missing half.
        let mut changed = e.clone();
        changed.reason = Some(Reason::Maintenance);
        assert_eq!(changed.person(), PersonCheck::Forged);
        let mut half = e.clone();
        half.data.remove("person_sig");
        assert_eq!(half.person(), PersonCheck::Forged);
    }

    /// Roots, inclusion and consistency proofs agree with ct-merkle, an RFC 6962 tree
    /// nobody here wrote, for every size up to 70 and every leaf and prefix.
    #[test]
    fn cross_checked_against_ct_merkle() {
        use ct_merkle::mem_backed_tree::MemoryBackedTree;
        let mut theirs = MemoryBackedTree::<sha2::Sha256, Vec<u8>>::new();
        let mut data: Vec<Vec<u8>> = Vec::new();
        for n in 1..=70usize {
            let d = format!("coop entry {n}").into_bytes();
            theirs.push(d.clone());
            data.push(d);
            let ours: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
            let root_n = root(&ours);
            assert_eq!(
                theirs.root().as_bytes().as_slice(),
                &root_n[..],
                "root of {n}"
            );
            let lv = Levels::new(&ours);
            for m in 0..n {
                let proof: Vec<u8> = inclusion_proof(&ours, m).concat();
                assert_eq!(
                    theirs.prove_inclusion(m).as_bytes(),
                    &proof[..],
                    "inclusion {m} of {n}"
                );
                assert_eq!(lv.inclusion_proof(m, n).concat(), proof);
                verify_inclusion(
                    m as u64,
                    n as u64,
                    &ours[m],
                    &inclusion_proof(&ours, m),
                    &root_n,
                )
                .unwrap();
            }
            for old in 1..n {
                let proof = consistency_proof(&ours, old);
                assert_eq!(
                    theirs.prove_consistency(n - old).as_bytes(),
                    &proof.concat()[..],
                    "consistency {old} -> {n}"
                );
                verify_consistency(old as u64, n as u64, &proof, &root(&ours[..old]), &root_n)
                    .unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn levels_agree_with_the_recursive_definition(n in 0usize..300, pick in any::<u64>()) {
            let l = leaves(n);
            let lv = Levels::new(&l);
            for size in [0, n / 3, n / 2, n.saturating_sub(1), n] {
                prop_assert_eq!(lv.root(size), root(&l[..size]));
                if size > 0 {
                    let m = (pick as usize) % size;
                    prop_assert_eq!(lv.inclusion_proof(m, size), inclusion_proof(&l[..size], m));
                }
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn rfc9162_shapes() {
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(3);
        assert_eq!(root(&l), node_hash(&node_hash(&l[0], &l[1]), &l[2]));
        assert_eq!(tile_index_path(1234067), "x001/x234/067");
        assert_eq!(tile_index_path(5), "005");
        assert_eq!(parse_tile_index("x001/x234/067"), Some(1234067));
        assert_eq!(parse_tile_index("1/234"), None);
        assert_eq!(bundle_path(0, 3), "entries/000.p/3");
        assert_eq!(bundle_path(2, 256), "entries/002");
    }

    proptest! {
        #[test]
        fn proofs_verify_and_wrong_ones_do_not(n in 1usize..80, m in 0usize..80, flip in 0usize..8) {
            let l = leaves(n);
            let r = root(&l);
            let m = m % n;
            let p = inclusion_proof(&l, m);
            prop_assert!(verify_inclusion(m as u64, n as u64, &l[m], &p, &r).is_ok());
            prop_assert!(verify_inclusion(m as u64, n as u64, &leaf_hash(b"other"), &p, &r).is_err());
            if !p.is_empty() {
                let mut q = p.clone();
                let at = flip % q.len();
                q[at][0] ^= 1;
                prop_assert!(verify_inclusion(m as u64, n as u64, &l[m], &q, &r).is_err());
            }
            let old = m + 1;
            let c = consistency_proof(&l, old);
            let r1 = root(&l[..old]);
            prop_assert!(verify_consistency(old as u64, n as u64, &c, &r1, &r).is_ok());
            if old < n {
                let mut wrong = r1;
                wrong[0] ^= 1;
                prop_assert!(verify_consistency(old as u64, n as u64, &c, &wrong, &r).is_err());
                // A proof that is too short never passes (the final sn == 0 check).
                prop_assert!(verify_consistency(old as u64, n as u64, &c[..c.len() - 1], &r1, &r).is_err());
            }
            // The empty prefix: only under the empty tree's root.
            prop_assert!(verify_consistency(0, n as u64, &[], &empty_root(), &r).is_ok());
            let mut junk = empty_root();
            junk[flip % 32] ^= 1;
            prop_assert!(verify_consistency(0, n as u64, &[], &junk, &r).is_err());
        }

        #[test]
        fn bundles_and_entries_round_trip(es in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20)) {
            prop_assert_eq!(decode_bundle(&encode_bundle(&es)).unwrap(), es);
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_bundle(&b);
            let _ = Entry::decode(&b);
            let _ = Checkpoint::parse_body(&b);
            let _ = open_checkpoint(&b, &[7; 32]);
        }
    }

    #[test]
    fn checkpoints_and_cosignatures() {
        let log = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
        let w = ed25519_dalek::SigningKey::from_bytes(&[2; 32]);
        let cp = Checkpoint {
            origin: "coop/0101/site".into(),
            size: 3,
            root: root(&leaves(3)),
        };
        let note = sign_checkpoint(&cp, &log);
        assert_eq!(
            open_checkpoint(&note, &log.verifying_key().to_bytes()).unwrap(),
            cp
        );
        assert_eq!(
            open_checkpoint(&note, &w.verifying_key().to_bytes()),
            Err(LogError::BadSignature)
        );
        let mut bad = note.clone();
        let at = bad.len() - 10;
        bad[at] ^= 1;
        assert!(open_checkpoint(&bad, &log.verifying_key().to_bytes()).is_err());
        let line = cosign(&cp, "coop/witness/b", &w, 1_800_000_000);
        assert_eq!(
            verify_cosignature(&cp, &line, "coop/witness/b", &w.verifying_key().to_bytes()),
            Ok(1_800_000_000)
        );
        let other = Checkpoint {
            size: 4,
            ..cp.clone()
        };
        assert!(verify_cosignature(
            &other,
            &line,
            "coop/witness/b",
            &w.verifying_key().to_bytes()
        )
        .is_err());
        assert!(verify_cosignature(
            &cp,
            &line,
            "coop/witness/b",
            &log.verifying_key().to_bytes()
        )
        .is_err());
        let e = Entry {
            ty: ENTRY_TYPE.into(),
            time: "2026-12-01T00:00:00Z".into(),
            event: Event::Export,
            actor: hex::encode([3; 32]),
            actor_name: "admin".into(),
            tenant: Some(hex::encode([4; 16])),
            reason: Some(Reason::MemberRequest),
            object: None,
            data: Default::default(),
            detail: None,
        };
        assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        assert_eq!(
            "legal-request".parse::<Reason>().unwrap(),
            Reason::LegalRequest
        );
        assert!("because".parse::<Reason>().is_err());
    }
}
