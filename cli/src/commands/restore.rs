//! `coop restore`

use crate::global::Global;
use crate::progress::Bars;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::{restore, BlobReader, RestoreOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (ID, unique prefix, or `latest`).
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(long, short = 't', env = "COOP_TARGET")]
    target: PathBuf,
    /// Only restore paths matching this pattern (repeatable; without a leading `/` it matches at any depth).
    #[arg(long, env = "COOP_RESTORE_INCLUDE")]
    include: Vec<String>,
    /// Do not restore paths matching this pattern (repeatable).
    #[arg(long, env = "COOP_RESTORE_EXCLUDE")]
    exclude: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    access: util::AccessArgs,
    /// Disaster recovery of the service tenant `coop` when no quorum of witnesses can be had
    /// (sites lost): the read is logged (reason disaster-recovery, flagged break-glass) and
    /// does not wait for the witnesses. Refused for member tenants. OPERATOR.md section 5.
    #[arg(long)]
    break_glass: bool,
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<i32> {
    let p = g.printer();
    let (spec, sub) = match a.snapshot.split_once(':') {
        Some((s, path)) => (s.to_string(), path.to_string()),
        None => (a.snapshot.clone(), String::new()),
    };
    let mut o = util::open_snapshot(g, &p, &spec, &a.filter.holding(&sub))?;
    log_read(g, &p, &mut o, &a)?;
    let index = coop_agent::index::load(&o.repo, &o.keys)?;
    let reader = BlobReader::new(&o.repo, &o.keys, &index)?;
    let root = reader
        .at(&o.entry.snapshot.tree, &sub)?
        .ok_or_else(|| util::path_not_found(&sub, &o.entry))?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.include,
        excludes: a.exclude,
        owner: nix_is_root(),
        workers: 0,
    };
    let bars = Bars::new(g);
    let started = std::time::Instant::now();
    let report = restore::restore(&reader, root, &opts, &bars)?;
    if g.json {
        p.json(&serde_json::to_value(Restored {
            snapshot_id: o.entry.id.to_hex(),
            target: &a.target,
            report: &report,
        })?)?;
    } else {
        summary(&p, &report, &o.entry, &a.target, started)?;
    }
    Ok(if report.failed.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::PARTIAL
    })
}

/// `coop restore --json`: the engine's report, with the snapshot and the target.
#[derive(serde::Serialize)]
struct Restored<'a> {
    snapshot_id: String,
    target: &'a std::path::Path,
    #[serde(flatten)]
    report: &'a restore::RestoreReport,
}

/// Logs the read: as a break-glass read (not waiting for the witnesses), or as an access.
fn log_read(
    g: &Global,
    p: &crate::output::Printer,
    o: &mut util::Opened,
    a: &RestoreArgs,
) -> Result<()> {
    if a.break_glass {
        util::log_break_glass(
            g,
            p,
            &o.repo,
            &o.keys,
            coop_formats::tlog::Event::Restore,
            &a.access,
            Some(o.entry.id.to_hex()),
        )?;
    } else {
        util::log_access(
            g,
            p,
            &o.repo,
            &mut o.keys,
            coop_formats::tlog::Event::Restore,
            &a.access,
            Some(o.entry.id.to_hex()),
        )?;
    }
    Ok(())
}

/// What was restored, and what failed, for a terminal.
fn summary(
    p: &crate::output::Printer,
    report: &restore::RestoreReport,
    entry: &coop_agent::snapshots::Entry,
    target: &std::path::Path,
    started: std::time::Instant,
) -> Result<()> {
    for w in &report.warnings {
        p.warn(w);
    }
    for (path, why) in &report.failed {
        p.problem(format!("FAILED {path}: {why}"));
    }
    p.summary(format!(
        "Restored {}, {}, {}{}, {} from snapshot {} to {} in {:.2} s",
        util::plural(report.files, "file", "files"),
        util::plural(report.dirs, "dir", "dirs"),
        util::plural(report.symlinks, "symlink", "symlinks"),
        if report.special > 0 {
            format!(
                ", {}",
                util::plural(report.special, "special file", "special files")
            )
        } else {
            String::new()
        },
        util::bytes(report.bytes),
        entry.id.short(),
        target.display(),
        started.elapsed().as_secs_f64()
    ))?;
    if !report.failed.is_empty() {
        p.problem(format!(
            "restore is PARTIAL: {} failed and were not written (listed above). \
             Run `coop restore` again from another site's replica for those paths.",
            util::plural(report.failed.len() as u64, "file", "files")
        ));
    }
    Ok(())
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
