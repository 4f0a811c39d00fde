//! Restore drills (issue 30 item 5): a scheduled job restores a sample of files of other
//! jobs' latest snapshots into a scratch directory, through the same verified read path a
//! real restore takes, checks each file's size against its tree, records the result per job
//! (`drill:<job>` in the history, which the published setup shows as "last test restore") and
//! fails when anything could not be restored. "We make backups" is only worth what a tested
//! restore shows.

use super::jobs::JobOutcome;
use super::Agent;
use crate::error::{Error, Result};
use crate::keys::Access;
use crate::read::BlobReader;
use crate::settings::{JobAction, JobSettings};
use coop_formats::tree::{Node, NodeKind};

/// Indices of `n` items spread evenly over `total`.
fn spread(total: usize, n: usize) -> Vec<usize> {
    if total <= n {
        return (0..total).collect();
    }
    (0..n).map(|i| i * total / n).collect()
}

impl Agent {
    /// The backup jobs a drill covers: those named, or every backup job of the service tenant.
    fn drilled<'a>(&'a self, names: &[String]) -> Vec<&'a JobSettings> {
        self.cfg
            .jobs
            .iter()
            .filter(|j| matches!(j.action, JobAction::Backup))
            .filter(|j| {
                if names.is_empty() {
                    j.members.is_none() && j.tenant == "coop"
                } else {
                    names.contains(&j.name)
                }
            })
            .collect()
    }

    /// A drill job's run.
    pub(super) fn run_drill(
        &self,
        names: &[String],
        sample: usize,
        out: &mut JobOutcome,
    ) -> Result<()> {
        if let Access::Writer(_) = self.access {
            return Err(Error::AccessDenied {
                what: "a restore drill reads backups, and this agent holds a writer key, which \
                       reads nothing by design: run the drill job on a site whose agent has an \
                       identity (identity_file) that reads the service tenant"
                    .into(),
            });
        }
        let history = self.history()?;
        let mut failed = Vec::new();
        let mut done = Vec::new();
        for job in self.drilled(names) {
            let id = history.start_job(&format!("drill:{}", job.name), super::now())?;
            let res = self.drill_one(job, sample);
            let (ok, snap, msg) = match &res {
                Ok((snap, files, bytes)) => (
                    true,
                    Some(snap.clone()),
                    format!("{files} file(s), {bytes} bytes restored and checked"),
                ),
                Err(e) => (false, None, crate::error::chain(e)),
            };
            history.finish_job(id, super::now(), ok, snap.as_deref(), &msg, 0)?;
            if ok {
                done.push(format!("{}: {msg}", job.name));
            } else {
                failed.push(format!("{}: {msg}", job.name));
            }
        }
        if done.is_empty() && failed.is_empty() {
            return Err(Error::invalid(
                "the drill covers no backup job (name them with drill = { jobs = [...] })",
            ));
        }
        out.message = format!("restore drill: {}", done.join("; "));
        if failed.is_empty() {
            Ok(())
        } else {
            Err(Error::damaged(
                "restore drill",
                format!("could not restore: {}", failed.join("; ")),
            ))
        }
    }

    /// Restores `sample` files of `job`'s latest snapshot into a scratch directory and
    /// checks them; returns (snapshot, files, bytes).
    fn drill_one(&self, job: &JobSettings, sample: usize) -> Result<(String, usize, u64)> {
        if job.members.is_some() {
            return Err(Error::invalid(
                "member tenants are not drilled: reading them is each member's (or a logged \
                 recovery's)",
            ));
        }
        let keys = crate::tenant::keys(&self.repo, &self.access, &job.tenant)?;
        let view = crate::snapshots::view(&self.repo, &keys)?;
        let filter = crate::snapshots::Filter {
            tags: vec![format!("job:{}", job.name)],
            ..Default::default()
        };
        let entry = view.find("latest", &filter)?;
        let index = crate::index::load(&self.repo, &keys)?;
        let reader = BlobReader::new(&self.repo, &keys, &index)?;
        let tree = entry.snapshot.tree;
        let mut total = 0usize;
        reader.walk(&tree, |_, n| {
            if n.kind == NodeKind::File {
                total += 1;
            }
            Ok(true)
        })?;
        let wanted = spread(total, sample);
        let mut picked: Vec<(String, Node)> = Vec::new();
        let mut i = 0usize;
        reader.walk(&tree, |path, n| {
            if n.kind == NodeKind::File {
                if wanted.binary_search(&i).is_ok() {
                    picked.push((String::from_utf8_lossy(path).into_owned(), n.clone()));
                }
                i += 1;
            }
            Ok(true)
        })?;
        let scratch = self
            .cfg
            .site
            .cache_dir
            .join(self.repo.config.repo_id.to_hex())
            .join(format!("drill-{}", job.name));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).map_err(|e| Error::io(&scratch, e))?;
        let result = (|| {
            let mut bytes = 0u64;
            for (k, (path, node)) in picked.iter().enumerate() {
                let f = scratch.join(k.to_string());
                let mut w = std::fs::File::create(&f).map_err(|e| Error::io(&f, e))?;
                let n = reader.dump(node, &mut w).map_err(|e| match e {
                    crate::read::DumpError::Read(e) => e,
                    crate::read::DumpError::Write(io) => Error::io(&f, io),
                })?;
                let on_disk = std::fs::metadata(&f).map_err(|e| Error::io(&f, e))?.len();
                if n != node.size || on_disk != node.size {
                    return Err(Error::damaged(
                        format!("snapshot {}", entry.id.short()),
                        format!(
                            "/{path}: restored {on_disk} bytes, its tree says {}",
                            node.size
                        ),
                    ));
                }
                bytes += n;
            }
            Ok(bytes)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        let bytes = result?;
        Ok((entry.id.to_hex(), picked.len(), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn the_sample_is_spread_over_the_snapshot() {
        assert_eq!(spread(3, 20), vec![0, 1, 2]);
        assert_eq!(spread(100, 4), vec![0, 25, 50, 75]);
        assert!(spread(0, 5).is_empty());
    }
}
