//! A repository: the config and the content-addressed objects of every tenant in one store.
//!
//! This module reads and writes objects by kind ([`crate::layout::Kind`]); every object read
//! by name is checked against its bytes (the name is their BLAKE3), so a store that serves
//! one object's bytes under another's name is caught on the spot. Keyrings are opened here
//! with the caller's identities; what a tenant's keys are for a writer is decided in
//! `tenant`.

use crate::damage::Problem;
use crate::error::{Error, Result};
use crate::keys::TenantKeys;
use crate::layout::{Kind, ObjectPath, CONFIG};
use crate::store::{S3Options, Store};
use coop_formats::config::{ChunkerParams, Config};
use coop_formats::control::Control;
use coop_formats::crypt::Identity;
use coop_formats::envelope::TenantTag;
use coop_formats::id::Id;
use coop_formats::keyring::{Keyring, KeyringError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// How to open a repository.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// S3 settings that win over the environment.
    pub s3: S3Options,
    /// Cache directory for the on-disk index and client state (`None`: keep nothing).
    pub cache_dir: Option<PathBuf>,
    /// How old the newest witness cosignature in the store may be before readers warn that
    /// they may be shown an old state (SPEC section 19); `None`: no check.
    pub freshness: Option<std::time::Duration>,
}

/// An object in a listing of one kind and tenant.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: Id,
    pub path: String,
    pub size: u64,
    /// Unix seconds, as the store reports it.
    pub modified: i64,
}

/// A control object and the public key that signed it.
pub type Signed<T> = (T, [u8; 32]);

/// The keyrings an identity opens, and what was wrong with others.
#[derive(Debug, Default)]
pub struct Keyrings {
    pub rings: Vec<Keyring>,
    pub problems: Vec<Problem>,
    /// Tenants that conflicting keyrings claim: left out of `rings`.
    pub conflicted: Vec<String>,
}

/// An open repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub store: Store,
    pub config: Config,
    pub config_hash: Id,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) freshness: Option<std::time::Duration>,
}

impl Repo {
    /// Creates a repository with the tenant `coop` encrypted to `recipients`.
    pub fn init(url: &str, recipients: Vec<String>, now: String) -> Result<(Self, Keyring)> {
        Self::init_with(url, recipients, now, ChunkerParams::default())
    }

    /// [`Repo::init`] with the chunker's sizes chosen (`coop init --chunker-params`). They are
    /// checked before anything is written.
    pub fn init_with(
        url: &str,
        recipients: Vec<String>,
        now: String,
        chunker: ChunkerParams,
    ) -> Result<(Self, Keyring)> {
        let mut config = Config::new(Id(coop_formats::random_bytes()), now.clone());
        config.chunker = chunker;
        config.validate().map_err(|e| Error::Invalid {
            what: e.to_string(),
        })?;
        let store = Store::open(url, true)?;
        if store.exists(CONFIG)? {
            return Err(Error::RepoExists { url: url.into() });
        }
        let bytes = config.encode();
        let config_hash = Config::hash(&bytes);
        let keyring = Keyring::generate("coop", config.repo_id, config_hash, recipients, now);
        let repo = Self {
            store,
            config,
            config_hash,
            cache_dir: None,
            freshness: None,
        };
        // The keyring goes first: a config without keyring is an unusable repository,
        // and `init` refuses to run twice only once the config exists.
        repo.write_keyring(&keyring)?;
        repo.store.put(CONFIG, bytes)?;
        Ok((repo, keyring))
    }

    /// Opens an existing repository with settings from the environment and no cache.
    pub fn open(url: &str) -> Result<Self> {
        Self::open_with(url, &OpenOptions::default())
    }

    /// Opens an existing repository.
    pub fn open_with(url: &str, opts: &OpenOptions) -> Result<Self> {
        let store = match Store::open_with(url, false, &opts.s3) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Err(Error::RepoNotFound { url: url.into() }),
            Err(e) => return Err(e.into()),
        };
        let mut repo = Self::open_store(store)?;
        repo.cache_dir.clone_from(&opts.cache_dir);
        repo.freshness = opts.freshness;
        Ok(repo)
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
        let config = Config::decode(&bytes).map_err(|e| Error::damaged(CONFIG, e))?;
        Ok(Self {
            store,
            config_hash: Config::hash(&bytes),
            config,
            cache_dir: None,
            freshness: None,
        })
    }

    /// The cache directory (index tables, client state), if any.
    pub fn cache_dir(&self) -> Option<&std::path::Path> {
        self.cache_dir.as_deref()
    }

    /// Every object of a kind in one tenant, from a complete listing (or an error). Entries
    /// that are not well-formed object paths (temporary files, strays) are left out.
    pub fn list(&self, kind: Kind, tag: &TenantTag) -> Result<Vec<Listed>> {
        Ok(self
            .store
            .list(&kind.prefix(tag))?
            .into_iter()
            .filter_map(|o| {
                let p = ObjectPath::parse(&o.path)?;
                (p.kind == kind && p.tag == *tag).then_some(Listed {
                    name: p.name,
                    path: o.path,
                    size: o.size,
                    modified: o.modified,
                })
            })
            .collect())
    }

    /// Reads one object by name and checks that its bytes hash to that name.
    pub fn get(&self, kind: Kind, tag: &TenantTag, name: &Id) -> Result<Vec<u8>> {
        let path = kind.path(tag, name);
        let mut bytes = Vec::new();
        match self.store.get_into(&path, &mut bytes, kind.max_stored()) {
            Ok(()) => {}
            Err(e) if e.is_too_large() => return Err(Error::damaged(path, e.to_string())),
            Err(e) => return Err(e.into()),
        }
        if Id::of_stored(&bytes) != *name {
            return Err(Error::damaged(
                path,
                "its bytes do not match its name (damaged, or another object served under this name)",
            ));
        }
        Ok(bytes)
    }

    /// [`Self::get`] of many objects of one kind, [`crate::par::THREADS`] requests at once,
    /// results in `names`' order.
    pub fn get_many(&self, kind: Kind, tag: &TenantTag, names: &[Id]) -> Vec<Result<Vec<u8>>> {
        crate::par::map(names, crate::par::THREADS, |n| self.get(kind, tag, n))
    }

    /// Like [`Self::get`], `None` if the object is gone (a concurrent prune or release).
    pub fn get_opt(&self, kind: Kind, tag: &TenantTag, name: &Id) -> Result<Option<Vec<u8>>> {
        match self.get(kind, tag, name) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores an object under the BLAKE3 of its bytes; returns the name.
    pub fn put(&self, kind: Kind, tag: &TenantTag, bytes: Vec<u8>) -> Result<Id> {
        let name = Id::of_stored(&bytes);
        self.store.put(&kind.path(tag, &name), bytes)?;
        Ok(name)
    }

    /// Deletes an object (deleting one that is not there succeeds).
    pub fn delete(&self, kind: Kind, tag: &TenantTag, name: &Id) -> Result<()> {
        Ok(self.store.delete(&kind.path(tag, name))?)
    }

    /// Stores a keyring object; returns its name.
    pub fn write_keyring(&self, k: &Keyring) -> Result<Id> {
        let sealed = k
            .seal()
            .map_err(|e| Error::crypto("sealing the keyring", e))?;
        self.put(Kind::Keyring, &k.tenant_tag, sealed)
    }

    /// Every tenant keyring the identities can open, newest generation per tenant.
    ///
    /// One tenant's problem never stops the others: a keyring that is damaged, forged, or
    /// made for another repository is named and skipped, and a tenant that two different
    /// keyrings claim (tampering) is left out and named in `conflicted`.
    pub fn keyrings(&self, identities: &[Identity]) -> Result<Keyrings> {
        let mut out = Keyrings::default();
        let mut by_tag: BTreeMap<TenantTag, Keyring> = BTreeMap::new();
        let mut bad_tags: Vec<TenantTag> = Vec::new();
        for obj in self.store.list(Kind::Keyring.dir())? {
            let Some(p) = ObjectPath::parse(&obj.path).filter(|p| p.kind == Kind::Keyring) else {
                continue;
            };
            let bytes = match self.get_opt(Kind::Keyring, &p.tag, &p.name) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e @ Error::Damaged { .. }) => {
                    out.problems.push(Problem::damaged(&obj.path, &e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let k = match Keyring::open(identities, &bytes) {
                Ok(k) => k,
                Err(KeyringError::Crypt(coop_formats::crypt::CryptError::NotRecipient)) => continue,
                Err(e) => {
                    out.problems.push(Problem::forged(&obj.path, e));
                    continue;
                }
            };
            if k.repo_id != self.config.repo_id || k.config_hash != self.config_hash {
                out.problems.push(Problem::forged(
                    &obj.path,
                    "keyring belongs to another repository or the config was replaced (tampering?)",
                ));
                continue;
            }
            match by_tag.get(&k.tenant_tag) {
                Some(prev) if !prev.same_tenant(&k) => {
                    out.problems.push(Problem::forged(
                        &obj.path,
                        format!(
                            "conflicting keyrings for tenant {:?} (tampering?)",
                            k.tenant
                        ),
                    ));
                    out.conflicted.push(k.tenant.clone());
                    bad_tags.push(k.tenant_tag);
                }
                Some(prev) if prev.generation >= k.generation => {}
                _ => {
                    by_tag.insert(k.tenant_tag, k);
                }
            }
        }
        for t in &bad_tags {
            by_tag.remove(t);
        }
        let list: Vec<Keyring> = by_tag.into_values().collect();
        for (i, a) in list.iter().enumerate() {
            if list
                .iter()
                .enumerate()
                .any(|(j, b)| j != i && b.tenant == a.tenant)
                && !out.conflicted.contains(&a.tenant)
            {
                out.problems.push(Problem::forged(
                    Kind::Keyring.dir(),
                    format!(
                        "two different keyrings claim tenant {:?} (tampering?)",
                        a.tenant
                    ),
                ));
                out.conflicted.push(a.tenant.clone());
            }
        }
        out.rings = list
            .into_iter()
            .filter(|k| !out.conflicted.contains(&k.tenant))
            .collect();
        Ok(out)
    }

    /// Writes a control object (lock, plan, protection); returns its name.
    pub fn write_control<T: Control>(
        &self,
        keys: &TenantKeys,
        kind: Kind,
        body: &T,
        signer: &ed25519_dalek::SigningKey,
    ) -> Result<Id> {
        self.put(
            kind,
            &keys.tag,
            body.seal(&keys.index_key, keys.tag, signer),
        )
    }

    /// Every control object of a kind in this tenant, with its signer. An object that does
    /// not open is an error naming it (callers decide what to make of it, and of the signer).
    pub fn list_control<T: Control>(
        &self,
        keys: &TenantKeys,
        kind: Kind,
    ) -> Result<Vec<(Id, Result<Signed<T>>)>> {
        let mut out = Vec::new();
        for obj in self.list(kind, &keys.tag)? {
            let r = match self.get_opt(kind, &keys.tag, &obj.name) {
                Ok(Some(bytes)) => T::open(&keys.index_key, keys.tag, &bytes)
                    .map_err(|e| Error::damaged(&obj.path, e)),
                Ok(None) => continue, // removed meanwhile (a lock released)
                Err(e) => Err(e),
            };
            out.push((obj.name, r));
        }
        Ok(out)
    }

    /// Names of every pack of the tenant in the store (a complete listing, or an error).
    pub fn pack_names(&self, tag: &TenantTag) -> Result<std::collections::HashSet<Id>> {
        Ok(self
            .list(Kind::Pack, tag)?
            .into_iter()
            .map(|o| o.name)
            .collect())
    }
}
