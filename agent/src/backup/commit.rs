//! The end of a backup: the signed manifest (member tenants), the checks that must hold
//! before a snapshot may be written, and the signed snapshot itself.

use super::pipeline::Written;
use super::walker::Walker;
use super::BackupOptions;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::keys::TenantKeys;
use crate::layout::Kind;
use crate::repo::Repo;
use coop_formats::id::{BlobType, Id};
use coop_formats::snapshot::{Inventory, Snapshot, Summary};
use std::collections::HashSet;

/// The signed manifest (member tenants): every file's path, size, mode, mtime and BLAKE3,
/// signed now by this writer so that no later export can forge it. Stored as a data blob.
pub(super) fn manifest_blob(
    walker: &mut Walker,
    repo: &Repo,
    keys: &TenantKeys,
    site: &str,
    root: &Id,
    sources: &[String],
) -> Result<Option<Id>> {
    use coop_formats::manifest::{Manifest, SignedManifest, FORMAT};
    let Some(mut files) = walker.manifest.take() else {
        return Ok(None);
    };
    files.sort_by_key(|f| f.path_bytes());
    let m = Manifest {
        format: FORMAT.into(),
        version: 1,
        repo_id: repo.config.repo_id,
        tenant: keys.tenant.clone(),
        site: site.to_string(),
        time: crate::now_rfc3339(),
        tree: *root,
        sources: sources
            .iter()
            .map(|s| s.trim_start_matches('/').to_string())
            .collect(),
        files,
    };
    let json = serde_json::to_vec(&SignedManifest::sign(&m, &keys.signer))
        .map_err(|e| Error::internal(format!("manifest does not serialize: {e}")))?;
    walker.sink.submit(BlobType::Data, &json).map(Some)
}

/// What must hold before the snapshot is written: every pack it needs (reused or written
/// by this backup) is still in the store (a prune that ignored a stale lock, or a store
/// that lost data, must not produce a snapshot with holes), and the tenant stays within its
/// quota. One listing serves both.
pub(super) fn check_before_commit(
    repo: &Repo,
    keys: &TenantKeys,
    index: &Index,
    reused: &HashSet<u32>,
    written: &Written,
    quota: Option<u64>,
) -> Result<()> {
    if reused.is_empty() && written.packs.is_empty() && quota.is_none() {
        return Ok(());
    }
    let listed = repo.list(Kind::Pack, &keys.tag)?;
    let present: HashSet<Id> = listed.iter().map(|o| o.name).collect();
    let needed = reused
        .iter()
        .map(|ix| index.packs[*ix as usize].id)
        .chain(written.packs.iter().copied());
    for pid in needed {
        if !present.contains(&pid) {
            return Err(Error::Conflict {
                what: format!(
                    "pack {pid}, which this backup needs, disappeared from the store (a concurrent prune?); \
                     no snapshot was written. Run the backup again."
                ),
            });
        }
    }
    if let Some(quota) = quota {
        let used: u64 = listed.iter().map(|o| o.size).sum();
        if used > quota {
            return Err(Error::Quota {
                tenant: keys.tenant.clone(),
                used,
                quota,
            });
        }
    }
    Ok(())
}

/// Removes what a refused backup stored (its packs and index objects). Another backup that
/// deduplicated against them meanwhile notices before it commits (its pre-commit check).
pub(super) fn remove_written(repo: &Repo, keys: &TenantKeys, written: &Written) {
    for p in &written.packs {
        let _ = repo.delete(Kind::Pack, &keys.tag, p);
    }
    for i in &written.index {
        let _ = repo.delete(Kind::Index, &keys.tag, i);
    }
}

/// What the snapshot needs: the packs it reuses and wrote, and every index object that
/// locates their blobs (the ones this backup loaded and the ones it wrote).
pub(super) fn inventory(index: &Index, reused: &HashSet<u32>, written: &Written) -> Inventory {
    let mut packs: Vec<Id> = reused
        .iter()
        .map(|ix| index.packs[*ix as usize].id)
        .chain(written.packs.iter().copied())
        .collect();
    packs.sort();
    packs.dedup();
    let mut objects = index.object_names();
    objects.extend(written.index.iter().copied());
    objects.sort();
    objects.dedup();
    Inventory {
        packs,
        index: objects,
    }
}

/// Signs, encrypts and stores the snapshot.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_snapshot(
    repo: &Repo,
    keys: &TenantKeys,
    opts: &BackupOptions,
    paths: Vec<String>,
    root: Id,
    summary: Summary,
    manifest: Option<Id>,
    inventory: &Inventory,
) -> Result<(Id, Snapshot)> {
    let mut snapshot = Snapshot {
        version: 1,
        repo_id: repo.config.repo_id,
        tenant: keys.tenant.clone(),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        host: opts.host.clone(),
        username: nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_default(),
        paths,
        tags: opts.tags.clone(),
        tree: root,
        writer: [0; 32],
        writer_name: keys.writer_name.clone(),
        program: crate::PROGRAM.into(),
        summary,
        manifest,
        inventory: Id::default(),
    };
    // A member tenant's snapshot also opens with the service tenant's key: its metadata is
    // what the admins keep the tenant up by (SPEC 9.1); packs stay the member's alone.
    let recipients = crate::keys::parse_recipients(
        &keys
            .recipient_strings
            .iter()
            .chain(&keys.snapshot_recipients)
            .cloned()
            .collect::<Vec<_>>(),
    )?;
    let sealed = snapshot
        .seal(&keys.signer, &recipients, keys.tag, inventory)
        .map_err(|e| Error::crypto("sealing the snapshot", e))?;
    let id = repo.put(Kind::Snapshot, &keys.tag, sealed)?;
    Ok((id, snapshot))
}
