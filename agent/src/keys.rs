//! Identities, writer keys and the per-tenant key material a command works with.

use crate::error::{Error, Result};
use coop_formats::crypt::{self, Identity, Recipient};
use coop_formats::envelope::TenantTag;
use coop_formats::keyring::Keyring;
use coop_formats::writerkey::WriterKey;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `$XDG_CONFIG_HOME/coop/identity.txt`, falling back to `~/.config/coop/identity.txt`.
pub fn default_identity_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("coop").join("identity.txt"))
}

/// Reads an identity file (age identities or an OpenSSH private key).
pub fn load_identities(path: &Path) -> Result<Vec<Identity>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    crypt::parse_identities(&bytes).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

/// An admin's person key (SPEC 15): an Ed25519 key derived with BLAKE3's key derivation from
/// the first secret key of their own identity file (its `AGE-SECRET-KEY-1…` line, or the
/// OpenSSH private key block). It signs the log entries that admin causes, so that entries
/// name the person; nobody without that identity file can make it. `None` for a file with
/// no secret key coop knows.
pub fn person_key_of_text(text: &str) -> Option<ed25519_dalek::SigningKey> {
    const CONTEXT: &str = "coop 2026-12 admin person key v1";
    let secret = if let Some(l) = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
    {
        l.to_string()
    } else {
        let begin = text.find("-----BEGIN OPENSSH PRIVATE KEY-----")?;
        let end_tag = "-----END OPENSSH PRIVATE KEY-----";
        let end = text[begin..].find(end_tag)? + begin + end_tag.len();
        text[begin..end]
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut seed = blake3::derive_key(CONTEXT, secret.as_bytes());
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    zeroize::Zeroize::zeroize(&mut seed);
    Some(key)
}

/// [`person_key_of_text`] of an identity file.
pub fn person_key(path: &Path) -> Result<Option<ed25519_dalek::SigningKey>> {
    let mut text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let k = person_key_of_text(&text);
    zeroize::Zeroize::zeroize(&mut text);
    Ok(k)
}

/// Creates a new X25519 identity in a 0600 file that must not exist yet; returns its
/// recipient.
pub fn create_identity_file(path: &Path) -> Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let (text, recipient) = crypt::generate_identity();
    write_secret_file(path, &text)?;
    Ok(recipient)
}

/// The recipient strings of the identities in an identity file (age, or an OpenSSH ed25519
/// private key).
pub fn recipients_of_identity_file(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // An OpenSSH ed25519 private key: the X25519 recipient it converts to (coop encrypts to
    // an `ssh-ed25519` public key as that recipient).
    if text.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        return crypt::recipient_of_ssh_identity(text.as_bytes())
            .map(|r| vec![r])
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: not an unencrypted OpenSSH ed25519 key (coop needs an unencrypted \
                     copy: ssh-keygen -p -N '' -f COPY; RSA keys are not accepted)",
                    path.display()
                ))
            });
    }
    let f = age::IdentityFile::from_buffer(text.as_bytes())
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    let mut buf = Vec::new();
    f.write_recipients_file(&mut buf)
        .map_err(|e| Error::invalid(format!("{}: {e}", path.display())))?;
    for l in String::from_utf8_lossy(&buf).lines() {
        if !l.trim().is_empty() && !l.starts_with('#') {
            out.push(l.trim().to_string());
        }
    }
    Ok(out)
}

/// Reads a writer key file.
pub fn load_writer_key(path: &Path) -> Result<WriterKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    WriterKey::decode(&text).map_err(|e| Error::invalid(format!("{}: {e}", path.display())))
}

/// Writes a secret file with mode 0600 (refusing to overwrite).
pub fn write_secret_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// What the caller holds.
#[derive(Clone)]
pub enum Access {
    /// age identities: can read and write every tenant they are a recipient of; with the
    /// holder's person key when the identity file gives one ([`person_key`]).
    Identity(Arc<Vec<Identity>>, Option<Arc<ed25519_dalek::SigningKey>>),
    /// A writer key file: can write one tenant, read nothing.
    Writer(Arc<WriterKey>),
}

impl Access {
    /// Loads what the agent's settings name: an identity file or a writer key file.
    pub fn load(key: &KeySource) -> Result<Self> {
        Ok(match key {
            KeySource::Identity(p) => {
                Access::Identity(Arc::new(load_identities(p)?), person_key(p)?.map(Arc::new))
            }
            KeySource::Writer(p) => Access::Writer(Arc::new(load_writer_key(p)?)),
        })
    }
}

/// Readers' extra material.
pub struct ReaderKeys {
    pub identities: Arc<Vec<Identity>>,
    pub keyring: Keyring,
}

/// Whether the holder of these keys may read the tenant's files (trees and file data) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentAccess {
    /// The tenant's own reader (the member herself, or the service tenant's admins), or a
    /// read that was logged and witnessed first.
    Open,
    /// A member tenant opened by a key that is not one of the member's own (an admin's
    /// recovery key, a recovery identity, a spare key): its files are read only after
    /// `access::authorize_read` logged the read and the witnesses cosigned it.
    NeedsLog,
}

/// What a caller (the agent, from its settings) holds: an identity file or a writer key.
#[derive(Debug, Clone)]
pub enum KeySource {
    Identity(std::path::PathBuf),
    Writer(std::path::PathBuf),
}

/// The key material for one tenant.
pub struct TenantKeys {
    pub tenant: String,
    pub tag: TenantTag,
    pub id_key: [u8; 32],
    pub index_key: [u8; 32],
    /// What data is encrypted to: the tenant's data recipient.
    pub recipient_strings: Vec<String>,
    pub recipients: Arc<Vec<Recipient>>,
    /// Signs snapshots, manifests and locks this caller writes.
    pub signer: ed25519_dalek::SigningKey,
    pub writer_name: String,
    /// The tenant's authority: the keys whose signature makes a prune plan, a supersession,
    /// a protection or a forget record count. Known to readers and pinned for writers.
    pub authorities: Vec<[u8; 32]>,
    /// Admin keys: the only signers of the registry and the writer list this caller accepts.
    pub admin_keys: Vec<[u8; 32]>,
    pub reader: Option<ReaderKeys>,
    /// The admin's person key, when the caller is an admin holding one: the log entries this
    /// caller causes are signed with it (SPEC 24.3).
    pub person: Option<ed25519_dalek::SigningKey>,
    /// Snapshots (not packs) are also encrypted to these: for a member tenant, the service
    /// tenant's data recipient, so that the admins see each snapshot's signed metadata (time,
    /// host, paths, tags, sizes) and can keep the tenant up without reading it (SPEC 9.1, 13.7).
    /// Empty for `coop` and for a member writing her own tenant.
    pub snapshot_recipients: Vec<String>,
    /// Set by the engine only (`tenant::upkeep_keys`): the service tenant's data identity of an
    /// admin who is not a reader of this member tenant. It opens the snapshots' metadata and
    /// nothing else (packs, trees and file data are encrypted to the member's data recipient
    /// only); `forget` and `prune` then work from that metadata and the clear inventories.
    pub(crate) upkeep: Option<Arc<Vec<Identity>>>,
    /// Set by the engine only (`tenant::keys`, `access::authorize_read`):
    /// no caller of the library opens a member's files without logging first.
    pub(crate) content: ContentAccess,
}

impl TenantKeys {
    /// Keys from an opened keyring. Data is encrypted to (and read with) the tenant's data
    /// identity; `_identities` opened the keyring itself.
    pub fn from_keyring(keyring: Keyring, _identities: Arc<Vec<Identity>>) -> Result<Self> {
        let bad = |e: coop_formats::keyring::KeyringError| {
            Error::damaged(format!("keyring of {}", keyring.tenant), e)
        };
        let data_recipient = keyring.data_recipient().map_err(bad)?;
        let identities = Arc::new(keyring.data_identities().map_err(bad)?);
        let recipients = parse_recipients(std::slice::from_ref(&data_recipient))?;
        Ok(Self {
            tenant: keyring.tenant.clone(),
            tag: keyring.tenant_tag,
            id_key: keyring.id_key,
            index_key: keyring.index_key,
            recipient_strings: vec![data_recipient],
            recipients: Arc::new(recipients),
            signer: keyring.default_signer(),
            writer_name: "default".into(),
            authorities: vec![keyring.authority()],
            admin_keys: keyring.admin_keys(),
            reader: Some(ReaderKeys {
                identities,
                keyring,
            }),
            person: None,
            snapshot_recipients: Vec::new(),
            upkeep: None,
            content: ContentAccess::Open,
        })
    }

    pub fn from_writer_key(wk: &WriterKey) -> Result<Self> {
        Ok(Self {
            tenant: wk.tenant.clone(),
            tag: wk.tenant_tag,
            id_key: wk.id_key,
            index_key: wk.index_key,
            recipient_strings: wk.recipients.clone(),
            recipients: Arc::new(parse_recipients(&wk.recipients)?),
            signer: wk.signing_key(),
            writer_name: wk.name.clone(),
            // The coop tenant's authority is its signer, the admin key the file pins.
            authorities: wk.admin_keys.clone(),
            admin_keys: wk.admin_keys.clone(),
            reader: None,
            person: None,
            snapshot_recipients: Vec::new(),
            upkeep: None,
            content: ContentAccess::Open,
        })
    }

    /// Whether the tenant's files may be read with these keys now.
    pub fn content_access(&self) -> ContentAccess {
        self.content
    }

    /// The reader material for reading the tenant's files (trees and data): refused while a
    /// read by someone other than the member still has to be logged.
    pub fn content_reader(&self) -> Result<&ReaderKeys> {
        if self.content == ContentAccess::NeedsLog {
            return Err(Error::AccessDenied {
                what: format!(
                    "{} is not yours: reading its files with a key that is not the member's own is \
                     logged in the admins' access log and witnessed first; use `coop restore`, \
                     `coop dump` or `coop export` with --reason (listing or comparing its files \
                     is not offered to anyone but the member)",
                    self.tenant
                ),
            });
        }
        self.reader()
    }

    /// The tenant's own signer, which only its readers hold: what signs prune plans,
    /// supersessions, protections and forget records.
    pub fn authority_signer(&self) -> Result<ed25519_dalek::SigningKey> {
        Ok(self.reader()?.keyring.default_signer())
    }

    /// Whether `key` is this tenant's authority.
    pub fn is_authority(&self, key: &[u8; 32]) -> bool {
        self.authorities.contains(key)
    }

    /// Whether `key` may keep this tenant up: its forget records and prune plans count. The
    /// tenant's authority, and for a member tenant also the admin keys (the cooperative's
    /// retention, which needs no reading; SPEC 13.7). Never a writer key.
    pub fn is_maintainer(&self, key: &[u8; 32]) -> bool {
        self.is_authority(key)
            || (self.tenant.starts_with("member/") && self.admin_keys.contains(key))
    }

    /// Whether these keys keep a member tenant up without reading it (an admin after the
    /// recovery split): `forget` decides from the snapshots' metadata and `prune` works per
    /// pack from the inventories.
    pub fn is_upkeep(&self) -> bool {
        self.reader.is_none() && self.upkeep.is_some()
    }

    /// What signs forget records and prune plans: the tenant's authority for its readers;
    /// for an admin keeping a member tenant up without reading it, the admin key. A writer
    /// key signs neither (a stolen agent key must not make deletions count as deliberate).
    pub fn maintainer_signer(&self) -> Result<ed25519_dalek::SigningKey> {
        if self.reader.is_some() {
            return self.authority_signer();
        }
        if self.upkeep.is_some() && self.is_maintainer(&self.signer.verifying_key().to_bytes()) {
            return Ok(self.signer.clone());
        }
        Err(Error::WriterCannotRead {
            tenant: self.tenant.clone(),
        })
    }

    /// The reader material, or a clear "writer keys cannot read" error.
    pub fn reader(&self) -> Result<&ReaderKeys> {
        self.reader.as_ref().ok_or_else(|| Error::WriterCannotRead {
            tenant: self.tenant.clone(),
        })
    }

    pub fn chunker_seed(&self) -> u64 {
        coop_formats::id::chunker_seed(&self.id_key)
    }
}

pub fn parse_recipients(list: &[String]) -> Result<Vec<Recipient>> {
    list.iter()
        .map(|r| crypt::parse_recipient(r).map_err(|e| Error::invalid(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(tenant: &str, admin: [u8; 32], authority: [u8; 32]) -> TenantKeys {
        TenantKeys {
            tenant: tenant.into(),
            tag: [1; 16],
            id_key: [0; 32],
            index_key: [0; 32],
            recipient_strings: vec![],
            recipients: Arc::new(vec![]),
            signer: ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            writer_name: "pi".into(),
            authorities: vec![authority],
            admin_keys: vec![admin],
            reader: None,
            person: None,
            snapshot_recipients: vec![],
            upkeep: None,
            content: ContentAccess::Open,
        }
    }

    /// The admin keys keep member tenants up (their forget records and per-pack plans
    /// count); a writer key never does, nor signs for one, and the service tenant's own
    /// upkeep stays its authority's.
    #[test]
    fn admins_maintain_member_tenants_and_writer_keys_do_not() {
        let (admin, authority) = ([1; 32], [2; 32]);
        let member = keys("member/alice", admin, authority);
        let writer = member.signer.verifying_key().to_bytes();
        assert!(member.is_maintainer(&admin) && member.is_maintainer(&authority));
        assert!(!member.is_maintainer(&writer));
        assert!(
            matches!(
                member.maintainer_signer(),
                Err(Error::WriterCannotRead { .. })
            ),
            "a writer key signs no forget record"
        );
        let coop = keys("coop", admin, authority);
        assert!(!coop.is_maintainer(&admin) && coop.is_maintainer(&authority));
    }
}
