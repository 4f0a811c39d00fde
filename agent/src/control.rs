//! Reading the authority-signed control objects (SPEC section 13) in one place: prune plans
//! and forget records count only when the tenant's authority signed them, and whatever
//! else is found is named, never obeyed. Writers of these objects (prune, forget) and their
//! readers (backup, snapshot listing, prune) all come here, so none of them depends on
//! another for it.

use crate::damage::Problem;
use crate::error::Result;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::control::{ForgetRecord, PrunePlan};
use coop_formats::id::Id;
use std::collections::HashSet;

/// The prune plans the tenant's authority signed; others are named in `warnings`.
pub fn signed_plans(
    repo: &Repo,
    keys: &TenantKeys,
    warnings: &mut Vec<String>,
) -> Result<Vec<(Id, PrunePlan)>> {
    let mut out = Vec::new();
    for (name, r) in repo.list_control::<PrunePlan>(keys, Kind::Plan)? {
        match r {
            Ok((plan, signer)) if keys.is_authority(&signer) => out.push((name, plan)),
            // An admin's per-pack prune of a member tenant (SPEC 13.7) only condemns packs:
            // it copies nothing, so a plan of its that vouches for copies (which would let a
            // prune with the member's key delete the only copy of a blob) is ignored.
            Ok((plan, signer))
                if keys.is_maintainer(&signer)
                    && plan.replacement.is_none()
                    && plan.new_packs.is_empty()
                    && plan.verified.is_empty()
                    && plan.index.is_empty() =>
            {
                out.push((name, plan))
            }
            Ok(_) => warnings.push(format!(
                "prune plan {name} is not signed by this tenant's authority; ignored (forged with a writer key?)"
            )),
            Err(e) => warnings.push(format!("prune plan {name} does not open; ignored: {e}")),
        }
    }
    Ok(out)
}

/// Packs condemned by prune plans the tenant's authority signed: backups must not
/// deduplicate against them. Plans signed by anyone else are ignored (a writer key could
/// otherwise make every backup upload everything again).
pub fn condemned_packs(repo: &Repo, keys: &TenantKeys) -> Result<HashSet<Id>> {
    Ok(signed_plans(repo, keys, &mut Vec::new())?
        .into_iter()
        .flat_map(|(_, p)| p.packs)
        .collect())
}

/// The snapshots forget records (signed by the tenant's authority) say were removed.
pub fn forget_records(repo: &Repo, keys: &TenantKeys) -> Result<(HashSet<Id>, Vec<Problem>)> {
    let mut set = HashSet::new();
    let mut problems = Vec::new();
    for (name, r) in repo.list_control::<ForgetRecord>(keys, Kind::Forgotten)? {
        let path = Kind::Forgotten.path(&keys.tag, &name);
        match r {
            // The tenant's authority, or (member tenants) an admin's retention (13.7).
            Ok((rec, signer)) if keys.is_maintainer(&signer) => set.extend(rec.snapshots),
            Ok(_) => problems.push(Problem::forged(
                &path,
                "forget record not signed by this tenant's authority (or, for a member tenant, an admin)",
            )),
            Err(e) => problems.push(Problem::forged(&path, e)),
        }
    }
    Ok((set, problems))
}

/// Signed, generation-numbered state (the member registry, the writer list; SPEC 15 and
/// 18): every object under `kind`/`tag` that opens and passes counts, the highest
/// generation is current (on a tie, the first listed), a forged or damaged object is named
/// and skipped, and a generation lower than this client saw at this location is a possible
/// rollback. Written once here for both.
#[derive(Debug)]
pub(crate) struct Generations<T> {
    /// The current state and the name of the object holding it.
    pub newest: Option<(T, Id)>,
    /// Every object listed.
    pub objects: Vec<Id>,
    pub problems: Vec<Problem>,
    /// The generation went backwards at this location: (seen before, now).
    pub rollback: Option<(u64, u64)>,
}

/// What one kind of signed state is called, for messages and the client state.
pub(crate) struct StateKind {
    pub kind: Kind,
    pub tag: [u8; 16],
    /// Its key in the client state (`"registry"`, `"writers"`).
    pub state_key: &'static str,
    /// For people: "the member registry".
    pub label: &'static str,
}

impl StateKind {
    /// Reads every object; `open` verifies one (signature, signer, repository) and returns
    /// it with its generation, or why it does not count.
    pub fn load<T>(
        &self,
        repo: &Repo,
        open: impl Fn(&[u8]) -> std::result::Result<(T, u64), String>,
    ) -> Result<Generations<T>> {
        let mut out = Generations {
            newest: None,
            objects: Vec::new(),
            problems: Vec::new(),
            rollback: None,
        };
        let mut best = 0;
        for obj in repo.list(self.kind, &self.tag)? {
            out.objects.push(obj.name);
            let bytes = match repo.get_opt(self.kind, &self.tag, &obj.name) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e @ crate::error::Error::Damaged { .. }) => {
                    out.problems.push(Problem::damaged(&obj.path, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            match open(&bytes) {
                Ok((v, g)) if out.newest.is_none() || g > best => {
                    best = g;
                    out.newest = Some((v, obj.name));
                }
                Ok(_) => {}
                Err(why) => out.problems.push(Problem::forged(&obj.path, why)),
            }
        }
        if let Some((before, now)) = crate::state::observe_generation(
            repo.cache_dir(),
            &repo.config.repo_id,
            &repo.store.location(),
            self.state_key,
            best,
        ) {
            out.rollback = Some((before, now));
            out.problems.push(Problem::damaged(
                self.kind.dir(),
                format!(
                    "POSSIBLE ROLLBACK: {} is at generation {now}, but this client saw \
                     generation {before} here; the newest one was removed or the store serves \
                     an old state",
                    self.label
                ),
            ));
        }
        Ok(out)
    }

    /// Refuses a change based on state older than this client saw here (a replayed state
    /// must not become the base of a new generation).
    pub fn refuse_rollback(&self, rollback: Option<(u64, u64)>) -> Result<()> {
        match rollback {
            Some((before, now)) => Err(crate::error::Error::damaged(
                self.kind.dir(),
                format!(
                    "POSSIBLE ROLLBACK: {} is at generation {now}, but this client saw \
                     generation {before} here; nothing is changed on an old state. Compare with \
                     another site's replica and restore the newest one there",
                    self.label
                ),
            )),
            None => Ok(()),
        }
    }

    /// Stores a new generation (`sealed`) in place of `base`, the objects listed when the
    /// state it changes was loaded, and returns its name.
    ///
    /// The store has no compare-and-swap for these objects, so a change another person wrote
    /// meanwhile (an object not in `base` that `open` accepts) is looked for after this one is
    /// stored: then this change withdraws its own object and fails with
    /// [`Conflict`](crate::error::Error::Conflict), and the other change stands. Of two
    /// changes written at once at least one sees the other (each lists after it wrote), so
    /// neither is silently lost, and no change deletes an object it did not read. Junk that
    /// does not open, or an older generation put back, blocks nothing.
    pub fn replace<T>(
        &self,
        repo: &Repo,
        sealed: Vec<u8>,
        base: &[Id],
        open: impl Fn(&[u8]) -> std::result::Result<(T, u64), String>,
    ) -> Result<Id> {
        let mine = open(&sealed).map_or(0, |(_, g)| g);
        crate::fault::pause("state:before-put");
        let name = repo.put(self.kind, &self.tag, sealed)?;
        crate::fault::point("state:after-put");
        crate::fault::pause("state:after-put");
        for obj in repo.list(self.kind, &self.tag)? {
            if obj.name == name || base.contains(&obj.name) {
                continue;
            }
            let other = match repo.get_opt(self.kind, &self.tag, &obj.name) {
                Ok(Some(b)) => open(&b).ok().map(|(_, g)| g),
                _ => None,
            };
            // An older one (a replay, or a change this one's base already holds) is no rival.
            if let Some(generation) = other.filter(|g| *g >= mine) {
                repo.delete(self.kind, &self.tag, &name)?;
                return Err(crate::error::Error::Conflict {
                    what: format!(
                        "{} was changed by someone else at the same time (generation \
                         {generation}, {}); this change was withdrawn and nothing was lost. \
                         Look whether it took effect anyway (a change made on top of this one \
                         keeps it) and, if not, run the command again",
                        self.label, obj.path
                    ),
                });
            }
        }
        for old in base {
            if *old != name {
                repo.delete(self.kind, &self.tag, old)?;
            }
        }
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIND: StateKind = StateKind {
        kind: Kind::Writers,
        tag: [0; 16],
        state_key: "test",
        label: "the test state",
    };

    /// "g<generation>" opens; anything else is forged.
    fn open(b: &[u8]) -> std::result::Result<(u64, u64), String> {
        let s = std::str::from_utf8(b).map_err(|e| e.to_string())?;
        let g: u64 = s
            .strip_prefix('g')
            .and_then(|g| g.parse().ok())
            .ok_or("not signed")?;
        Ok((g, g))
    }

    fn repo(cache: &std::path::Path) -> Repo {
        let (_, public) = coop_formats::crypt::generate_identity();
        let (mut r, _) = Repo::init("memory:", vec![public], crate::now_rfc3339()).unwrap();
        r.cache_dir = Some(cache.to_path_buf());
        r
    }

    #[test]
    fn the_newest_signed_generation_counts_and_a_replay_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let r = repo(d.path());
        let g = KIND.load(&r, open).unwrap();
        assert!(g.newest.is_none() && g.rollback.is_none());
        KIND.replace(&r, b"g3".to_vec(), &g.objects, open).unwrap();
        // A forged object beside it is named and never counts, however high it claims.
        r.put(Kind::Writers, &[0; 16], b"forged g9".to_vec())
            .unwrap();
        let g = KIND.load(&r, open).unwrap();
        assert_eq!(g.newest.as_ref().unwrap().0, 3);
        assert_eq!(g.objects.len(), 2);
        assert_eq!(g.problems.len(), 1);
        assert!(KIND.refuse_rollback(g.rollback).is_ok());
        // The newest is replaced by an older genuine one (a replay): a rollback, and no
        // change may be based on it.
        KIND.replace(&r, b"g2".to_vec(), &g.objects, open).unwrap();
        let g = KIND.load(&r, open).unwrap();
        assert_eq!(g.rollback, Some((3, 2)));
        assert!(KIND.refuse_rollback(g.rollback).is_err());
        // `replace` left one object only.
        assert_eq!(g.objects.len(), 1);
    }

    #[test]
    fn two_changes_at_once_lose_nothing() {
        let d = tempfile::tempdir().unwrap();
        let r = repo(d.path());
        let base = KIND.load(&r, open).unwrap();
        KIND.replace(&r, b"g1".to_vec(), &base.objects, open)
            .unwrap();
        // Two admins load generation 1 and each makes generation 2 from it.
        let a = KIND.load(&r, open).unwrap();
        let b = KIND.load(&r, open).unwrap();
        let theirs = KIND.replace(&r, b"g2".to_vec(), &b.objects, open).unwrap();
        // The later one finds the other's object, withdraws its own and says so.
        let e = KIND
            .replace(
                &r,
                b"g2 (another change)".to_vec(),
                &a.objects,
                |b: &[u8]| open(b.split(|&c| c == b' ').next().unwrap_or(b)),
            )
            .unwrap_err();
        assert!(matches!(e, crate::error::Error::Conflict { .. }), "{e}");
        let g = KIND.load(&r, open).unwrap();
        assert_eq!(g.objects, vec![theirs], "the other change stands alone");
        assert_eq!(g.newest.unwrap().0, 2);
        // Junk or an old generation put back meanwhile blocks nothing, and is not deleted
        // unread.
        let junk = r.put(Kind::Writers, &[0; 16], b"junk".to_vec()).unwrap();
        let old = r.put(Kind::Writers, &[0; 16], b"g1".to_vec()).unwrap();
        let mine = KIND.replace(&r, b"g3".to_vec(), &[theirs], open).unwrap();
        let mut left = KIND.load(&r, open).unwrap().objects;
        left.sort();
        let mut want = vec![mine, junk, old];
        want.sort();
        assert_eq!(left, want);
    }
}
