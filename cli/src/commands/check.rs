//! `coop check`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::{check, CheckReport, Subset};
use serde::Serialize;

#[derive(Args)]
pub struct CheckArgs {
    /// Also decrypt and verify every blob.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_CHECK_READ_DATA")]
    read_data: bool,
    /// Verify part of the data: `i/n` (every pack in exactly one of n groups) or `x%`.
    #[arg(long, value_name = "i/n|x%", env = "COOP_CHECK_READ_DATA_SUBSET")]
    read_data_subset: Option<String>,
    /// Seed for `--read-data-subset x%` (same seed, same packs).
    #[arg(long, env = "COOP_CHECK_SEED")]
    seed: Option<u64>,
}

/// `check --json`: the report with the seed and the tenants checked.
#[derive(Serialize)]
struct Checked<'a> {
    #[serde(flatten)]
    report: &'a CheckReport,
    seed: u64,
    tenants: &'a [String],
}

/// The reports of several tenants as one (counts summed, problems of every tenant).
fn merge(reports: Vec<CheckReport>) -> (CheckReport, Vec<String>) {
    let names = reports.iter().map(|r| r.tenant.clone()).collect();
    let mut all = CheckReport {
        tenant: "all".into(),
        ..Default::default()
    };
    for r in reports {
        let t = r.tenant.clone();
        all.snapshots += r.snapshots;
        all.trees += r.trees;
        all.packs += r.packs;
        all.index_objects += r.index_objects;
        all.blobs_in_index += r.blobs_in_index;
        all.pack_tables_checked += r.pack_tables_checked;
        all.packs_read += r.packs_read;
        all.blobs_read += r.blobs_read;
        all.errors.extend(r.errors.into_iter().map(|mut e| {
            e.message = format!("[{t}] {}", e.message);
            e
        }));
        all.unreferenced_packs.extend(r.unreferenced_packs);
        all.warnings
            .extend(r.warnings.into_iter().map(|w| format!("[{t}] {w}")));
    }
    (all, names)
}

pub fn run(g: &Global, a: CheckArgs) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    let seed = a
        .seed
        .unwrap_or_else(|| u64::from_le_bytes(coop_formats::random_bytes()));
    let subset = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => Some(Subset::parse(s, seed)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    let bars = Bars::new(g);
    let mut reports = Vec::new();
    // Without --read-data, an admin also checks member tenants it does not read (per inventory).
    let tenants = if subset.is_none() {
        util::upkeep_tenants(g, &repo, &access)?
    } else {
        util::tenants(g, &repo, &access)?
    };
    for keys in tenants {
        reports.push(check::check(&repo, &keys, subset, &bars)?);
    }
    let (r, tenants) = if reports.len() == 1 {
        let r = reports.pop().expect("one");
        let t = vec![r.tenant.clone()];
        (r, t)
    } else {
        merge(reports)
    };
    if g.json {
        p.json_sorted(&Checked {
            report: &r,
            seed,
            tenants: &tenants,
        })?;
    } else {
        summary(&p, &r, &tenants, subset, seed)?;
    }
    Ok(if r.errors.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}

/// What was checked and found, for a terminal.
fn summary(
    p: &crate::output::Printer,
    r: &CheckReport,
    tenants: &[String],
    subset: Option<Subset>,
    seed: u64,
) -> Result<()> {
    for w in &r.warnings {
        p.warn(w);
    }
    p.summary(format!(
        "{}: {} snapshots, {} trees, {} index objects ({} blobs), {} packs ({} pack tables compared with the index)",
        tenants.join(", "),
        r.snapshots,
        r.trees,
        r.index_objects,
        r.blobs_in_index,
        r.packs,
        r.pack_tables_checked
    ))?;
    if let Some(Subset::Percent { .. }) = subset {
        p.summary(format!(
            "read {} packs ({} blobs) chosen with --seed {seed}",
            r.packs_read, r.blobs_read
        ))?;
    } else if subset.is_some() {
        p.summary(format!(
            "read {} packs ({} blobs)",
            r.packs_read, r.blobs_read
        ))?;
    }
    if !r.unreferenced_packs.is_empty() {
        p.summary(format!(
            "{} left by interrupted backups; `coop prune` removes them",
            util::plural(
                r.unreferenced_packs.len() as u64,
                "unreferenced pack",
                "unreferenced packs"
            )
        ))?;
    }
    errors(p, r)
}

/// Each error with what it affects, and what to do about each kind.
fn errors(p: &crate::output::Printer, r: &CheckReport) -> Result<()> {
    for e in &r.errors {
        p.data(format!("ERROR {}: {}", e.object, e.message))?;
        for s in &e.snapshots {
            p.data(format!("  affects snapshot {s}"))?;
        }
        for f in &e.files {
            p.data(format!("  affects file {f}"))?;
        }
    }
    let junk = r.errors.iter().filter(|e| e.junk).count() as u64;
    let intact = r.errors.iter().filter(|e| e.intact_elsewhere).count() as u64;
    let damaged = r.errors.len() as u64 - junk - intact;
    if intact > 0 {
        p.summary(format!(
            "{} hold bad copies of blobs that are intact at another location: every snapshot \
             still restores; restore those packs from another site's replica, or let prune \
             replace them. Forget nothing on their account.",
            util::plural(intact, "pack", "packs")
        ))?;
    }
    if r.errors.is_empty() {
        p.summary("no errors found")?;
    }
    if damaged > 0 {
        p.summary(format!(
            "{} found. Restore the damaged objects from another site's replica \
             (their names are their store paths), or forget the affected snapshots.",
            util::plural(damaged, "error", "errors")
        ))?;
    }
    if junk > 0 {
        p.summary(format!(
            "{} that no coop wrote (stored as they are, so every replica's copy is the same): \
             delete them from the store; readers skip them meanwhile.",
            util::plural(junk, "object", "objects")
        ))?;
    }
    Ok(())
}
