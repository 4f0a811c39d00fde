//! A repository: the config, keyrings, indexes and snapshots in a store.
//!
//! Layout (see SPEC.md):
//! ```text
//! config
//! keys/<tenant tag>/<name>
//! packs/<tenant tag>/<2 hex>/<name>
//! index/<tenant tag>/<name>
//! snapshots/<tenant tag>/<name>
//! ```
//! Every name except `config` is the BLAKE3 hash of the object's bytes.

use crate::error::{Error, Result};
use crate::index::Index;
use crate::keys::{Access, TenantKeys};
use crate::store::Store;
use coop_formats::config::Config;
use coop_formats::control::{Control, PrunePlan};
use coop_formats::crypt::Identity;
use coop_formats::envelope::TenantTag;
use coop_formats::id::Id;
use coop_formats::index::IndexFile;
use coop_formats::keyring::{Keyring, KeyringError};
use coop_formats::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const CONFIG: &str = "config";

pub fn tag_hex(tag: &TenantTag) -> String {
    hex::encode(tag)
}
pub fn pack_path(tag: &TenantTag, id: &Id) -> String {
    let h = id.to_hex();
    format!("packs/{}/{}/{}", tag_hex(tag), &h[..2], h)
}
pub fn index_path(tag: &TenantTag, id: &Id) -> String {
    format!("index/{}/{}", tag_hex(tag), id)
}
pub fn snapshot_path(tag: &TenantTag, id: &Id) -> String {
    format!("snapshots/{}/{}", tag_hex(tag), id)
}
pub fn keyring_path(tag: &TenantTag, id: &Id) -> String {
    format!("keys/{}/{}", tag_hex(tag), id)
}

pub fn lock_path(tag: &TenantTag, id: &Id) -> String {
    format!("locks/{}/{}", tag_hex(tag), id)
}
pub fn plan_path(tag: &TenantTag, id: &Id) -> String {
    format!("plans/{}/{}", tag_hex(tag), id)
}
pub fn protection_path(tag: &TenantTag, id: &Id) -> String {
    format!("protected/{}/{}", tag_hex(tag), id)
}

/// Every top-level directory of content-addressed objects (all but `config`).
pub const OBJECT_DIRS: [&str; 8] = [
    "keys",
    "packs",
    "index",
    "snapshots",
    "locks",
    "plans",
    "protected",
    "log",
];

/// Parses the object name (last path component) of a listed object.
pub fn name_of(path: &str) -> Option<Id> {
    path.rsplit('/').next()?.parse().ok()
}

/// Merges index objects. Where a blob has several locations, the first of these wins:
/// a pack the store has, listed by an index object nothing supersedes; a pack the store has,
/// listed by a superseded one; then any (so that errors name the missing pack).
/// `present` is the set of packs in the store (`None`: assume all present).
pub fn merge_index(
    files: Vec<(Id, IndexFile)>,
    present: Option<&std::collections::HashSet<Id>>,
) -> Index {
    let mut index = Index::default();
    merge_into(&mut index, files, present);
    index
}

/// [`merge_index`] into an existing index (the overlay of an on-disk table).
pub fn merge_into(
    index: &mut Index,
    files: Vec<(Id, IndexFile)>,
    present: Option<&std::collections::HashSet<Id>>,
) {
    let superseded: std::collections::HashSet<Id> = files
        .iter()
        .flat_map(|(_, f)| f.superseded.iter().copied())
        .collect();
    for pass in 0..3 {
        for (name, f) in &files {
            let active = !superseded.contains(name);
            let keep = |pid: &Id| {
                let here = present.is_none_or(|p| p.contains(pid));
                match pass {
                    0 => active && here,
                    1 => !active && here,
                    _ => !here,
                }
            };
            let sub = IndexFile {
                packs: f.packs.clone(),
                superseded: f.superseded.clone(),
                entries: f
                    .entries
                    .iter()
                    .filter(|e| keep(&f.packs[e.pack as usize].id))
                    .copied()
                    .collect(),
            };
            if pass == 0 || !sub.entries.is_empty() {
                index.add(*name, &sub);
            }
        }
    }
    index.files.sort();
    index.files.dedup();
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub store: Store,
    pub config: Config,
    pub config_hash: Id,
    /// Cache directory for the on-disk index (`None`: merge the index in memory).
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Repo {
    /// Creates a repository with the tenant `coop` encrypted to `recipients`.
    pub fn init(url: &str, recipients: Vec<String>, now: String) -> Result<(Self, Keyring)> {
        let store = Store::open(url, true)?;
        if store.exists(CONFIG)? {
            return Err(Error::RepoExists { url: url.into() });
        }
        let config = Config::new(Id(coop_formats::random_bytes()), now.clone());
        let bytes = config.encode();
        let config_hash = Config::hash(&bytes);
        let keyring = Keyring::generate("coop", config.repo_id, config_hash, recipients, now);
        let repo = Self {
            store,
            config,
            config_hash,
            cache_dir: None,
        };
        // The keyring goes first: a config without keyring is an unusable repository,
        // and `init` refuses to run twice only once the config exists.
        repo.write_keyring(&keyring)?;
        repo.store.put(CONFIG, bytes)?;
        Ok((repo, keyring))
    }

    /// Opens an existing repository.
    pub fn open(url: &str) -> Result<Self> {
        let store = match Store::open(url, false) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(Error::RepoNotFound { url: url.into() }),
            Err(e) => return Err(e.into()),
        };
        Self::open_store(store)
    }

    pub fn open_store(store: Store) -> Result<Self> {
        let bytes = match store.get(CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::RepoNotFound {
                    url: store.url().into(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let config = Config::decode(&bytes).map_err(|e| Error::corrupt(CONFIG, e))?;
        Ok(Self {
            store,
            config_hash: Config::hash(&bytes),
            config,
            cache_dir: None,
        })
    }

    /// Stores a keyring object; returns its name.
    pub fn write_keyring(&self, k: &Keyring) -> Result<Id> {
        let sealed = k.seal().map_err(|e| Error::Usage {
            what: e.to_string(),
        })?;
        let id = Id::of_stored(&sealed);
        self.store.put(&keyring_path(&k.tenant_tag, &id), sealed)?;
        Ok(id)
    }

    /// Every tenant keyring the identities can open, newest generation per tenant.
    ///
    /// Refuses a repository where two keyrings claim one tenant with different secrets,
    /// or a keyring does not match this repository's config: both mean tampering.
    pub fn keyrings(&self, identities: &[Identity]) -> Result<Vec<Keyring>> {
        let mut by_tag: BTreeMap<TenantTag, Keyring> = BTreeMap::new();
        for obj in self.store.list("keys")? {
            let bytes = self.store.get(&obj.path)?;
            let k = match Keyring::open(identities, &bytes) {
                Ok(k) => k,
                Err(KeyringError::Crypt(coop_formats::crypt::CryptError::NotRecipient)) => continue,
                Err(e) => return Err(Error::corrupt(&obj.path, e)),
            };
            if k.repo_id != self.config.repo_id || k.config_hash != self.config_hash {
                return Err(Error::corrupt(
                    &obj.path,
                    "keyring belongs to another repository or the config was replaced (tampering?)",
                ));
            }
            match by_tag.get(&k.tenant_tag) {
                Some(prev) if !prev.same_tenant(&k) => {
                    return Err(Error::corrupt(
                        &obj.path,
                        format!(
                            "conflicting keyrings for tenant {:?} (tampering?)",
                            k.tenant
                        ),
                    ))
                }
                Some(prev) if prev.generation >= k.generation => {}
                _ => {
                    by_tag.insert(k.tenant_tag, k);
                }
            }
        }
        let list: Vec<Keyring> = by_tag.into_values().collect();
        for (i, a) in list.iter().enumerate() {
            if list[i + 1..].iter().any(|b| b.tenant == a.tenant) {
                return Err(Error::corrupt(
                    "keys",
                    format!(
                        "two different keyrings claim tenant {:?} (tampering?)",
                        a.tenant
                    ),
                ));
            }
        }
        Ok(list)
    }

    /// The keys for `tenant` from what the caller holds.
    pub fn tenant_keys(&self, access: &Access, tenant: &str) -> Result<TenantKeys> {
        match access {
            Access::Writer(wk) => {
                if wk.repo_id != self.config.repo_id {
                    return Err(Error::AccessDenied {
                        what: format!(
                            "the writer key is for repository {}, not this one ({})",
                            wk.repo_id.short(),
                            self.config.repo_id.short()
                        ),
                    });
                }
                if wk.tenant == "coop" && tenant.starts_with("member/") && tenant != wk.tenant {
                    let coop = TenantKeys::from_writer_key(wk)?;
                    return crate::members::writer_keys_for_member(
                        self,
                        &coop,
                        &tenant["member/".len()..],
                    );
                }
                if wk.tenant != tenant {
                    return Err(Error::AccessDenied {
                        what: format!(
                            "the writer key is for tenant {:?}, not {:?}",
                            wk.tenant, tenant
                        ),
                    });
                }
                if wk.config_hash != self.config_hash {
                    return Err(Error::corrupt(
                        CONFIG,
                        "the config differs from the one the writer key was made for (tampering?)",
                    ));
                }
                TenantKeys::from_writer_key(wk)
            }
            Access::Identity(ids) => {
                let rings = self.keyrings(ids)?;
                let Some(k) = rings.into_iter().find(|k| k.tenant == tenant) else {
                    return Err(Error::AccessDenied {
                        what: format!(
                            "your identity is not a recipient of tenant {tenant:?} in this repository \
                             (wrong identity file?)"
                        ),
                    });
                };
                let mut keys = TenantKeys::from_keyring(k, Arc::clone(ids))?;
                // An admin (or agent with an identity) backing up a member signs as the site,
                // with the coop tenant's signer, which every member keyring lists as a writer.
                if tenant.starts_with("member/") {
                    let rings = self.keyrings(ids)?;
                    if let Some(coop) = rings.iter().find(|r| r.tenant == "coop") {
                        if keys.reader.as_ref().is_some_and(|r| {
                            r.keyring
                                .is_writer(&coop_formats::keyring::public_key_of(&coop.signer))
                        }) {
                            keys.signer = coop.default_signer();
                        }
                    }
                }
                Ok(keys)
            }
        }
    }

    /// Reads and authenticates every index object of the tenant (name, content).
    pub fn index_files(&self, keys: &TenantKeys) -> Result<Vec<(Id, IndexFile)>> {
        let mut out = Vec::new();
        for obj in self.store.list(&format!("index/{}", tag_hex(&keys.tag)))? {
            let Some(name) = name_of(&obj.path) else {
                continue;
            };
            if let Some(f) = self.index_file_of(keys, &obj.path, name)? {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Reads and authenticates one index object; `None` if a concurrent prune deleted it.
    pub fn index_file_of(
        &self,
        keys: &TenantKeys,
        path: &str,
        name: Id,
    ) -> Result<Option<(Id, IndexFile)>> {
        let bytes = match self.store.get(path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let (h, f) =
            IndexFile::open(&keys.index_key, &bytes).map_err(|e| Error::corrupt(path, e))?;
        if h.tenant != keys.tag {
            return Err(Error::corrupt(path, "index object of another tenant"));
        }
        Ok(Some((name, f)))
    }

    /// Loads and merges every index object of the tenant. Objects that another present
    /// index object supersedes (prune consolidated them) come last, so their locations are
    /// used only for blobs nothing newer lists.
    pub fn load_index(&self, keys: &TenantKeys) -> Result<Index> {
        Ok(self.load_index_and_packs(keys)?.0)
    }

    /// The merged index and the names of the packs in the store (one listing for both).
    pub fn load_index_and_packs(
        &self,
        keys: &TenantKeys,
    ) -> Result<(Index, std::collections::HashSet<Id>)> {
        let present = self.pack_names(keys)?;
        if let Some(dir) = &self.cache_dir {
            match crate::index_cache::load(self, keys, dir, &present) {
                Ok((index, kind)) => {
                    tracing::debug!("index cache: {kind:?}");
                    return Ok((index, present));
                }
                // A cache that cannot be written is not fatal: merge in memory instead.
                Err(Error::Io { path, source }) => tracing::warn!(
                    "index cache not usable ({}: {source}); loading the index into memory",
                    path.display()
                ),
                Err(e) => return Err(e),
            }
        }
        let index = merge_index(self.index_files(keys)?, Some(&present));
        Ok((index, present))
    }

    /// Names of every pack of the tenant in the store (a complete listing, or an error).
    pub fn pack_names(&self, keys: &TenantKeys) -> Result<std::collections::HashSet<Id>> {
        Ok(self
            .store
            .list(&format!("packs/{}", tag_hex(&keys.tag)))?
            .iter()
            .filter_map(|o| name_of(&o.path))
            .collect())
    }

    /// Writes an index object; returns its name.
    pub fn write_index(&self, keys: &TenantKeys, f: &IndexFile) -> Result<Id> {
        let sealed = f.seal(&keys.index_key, keys.tag);
        let id = Id::of_stored(&sealed);
        self.store.put(&index_path(&keys.tag, &id), sealed)?;
        Ok(id)
    }

    /// Writes a control object (lock, plan, protection); returns (path, name).
    pub fn write_control<T: Control>(
        &self,
        keys: &TenantKeys,
        dir: &str,
        body: &T,
    ) -> Result<(String, Id)> {
        let sealed = body.seal(&keys.index_key, keys.tag);
        let id = Id::of_stored(&sealed);
        let path = format!("{dir}/{}/{}", tag_hex(&keys.tag), id);
        self.store.put(&path, sealed)?;
        Ok((path, id))
    }

    /// Every control object of a kind in this tenant. An object that does not open is an
    /// error naming it (callers decide whether that is fatal).
    pub fn list_control<T: Control>(
        &self,
        keys: &TenantKeys,
        dir: &str,
    ) -> Result<Vec<(String, Result<T>)>> {
        let mut out = Vec::new();
        for obj in self.store.list(&format!("{dir}/{}", tag_hex(&keys.tag)))? {
            let r = match self.store.get(&obj.path) {
                Ok(bytes) => T::open(&keys.index_key, keys.tag, &bytes)
                    .map_err(|e| Error::corrupt(&obj.path, e)),
                Err(e) if e.is_not_found() => continue, // removed meanwhile (a lock released)
                Err(e) => Err(e.into()),
            };
            out.push((obj.path, r));
        }
        Ok(out)
    }

    /// Packs condemned by prune plans: backups must not deduplicate against them.
    pub fn condemned_packs(&self, keys: &TenantKeys) -> Result<std::collections::HashSet<Id>> {
        let mut set = std::collections::HashSet::new();
        for (_, plan) in self.list_control::<PrunePlan>(keys, "plans")? {
            set.extend(plan?.packs);
        }
        Ok(set)
    }

    /// Every snapshot of the tenant, oldest first. Needs an identity.
    pub fn snapshots(&self, keys: &TenantKeys) -> Result<Vec<(Id, Snapshot)>> {
        let reader = keys.reader()?;
        let mut out = Vec::new();
        for obj in self
            .store
            .list(&format!("snapshots/{}", tag_hex(&keys.tag)))?
        {
            let Some(name) = name_of(&obj.path) else {
                continue;
            };
            let bytes = self.store.get(&obj.path)?;
            let s = Snapshot::open(
                &reader.identities,
                &bytes,
                (self.config.repo_id, keys.tag),
                |k| reader.keyring.is_writer(k),
            )
            .map_err(|e| Error::corrupt(&obj.path, e))?;
            out.push((name, s));
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolves `latest`, a full ID or a unique prefix.
    pub fn find_snapshot(&self, keys: &TenantKeys, spec: &str) -> Result<(Id, Snapshot)> {
        let all = self.snapshots(keys)?;
        if spec == "latest" {
            return all.into_iter().next_back().ok_or_else(|| Error::NotFound {
                what: format!("no snapshot in tenant {:?}", keys.tenant),
                hint: " (run `coop backup` first)".into(),
            });
        }
        let spec_l = spec.to_ascii_lowercase();
        let mut hits: Vec<_> = all
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match hits.len() {
            1 => Ok(hits.pop().expect("one")),
            0 => Err(Error::NotFound {
                what: format!("snapshot {spec:?}"),
                hint: " (list them with `coop snapshots`)".into(),
            }),
            n => Err(Error::Usage {
                what: format!(
                    "snapshot prefix {spec:?} is ambiguous: {n} snapshots match; give more digits"
                ),
            }),
        }
    }
}
