//! `coop prune`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::{prune, Error, PruneOptions};

#[derive(Args)]
pub struct PruneArgs {
    /// Repack packs with more than this share unused (e.g. 5%, 0.1).
    #[arg(long, default_value = "5%", env = "COOP_PRUNE_MAX_UNUSED")]
    max_unused: String,
    /// Show what would be freed; change nothing.
    #[arg(long, short = 'n', value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_PRUNE_DRY_RUN")]
    dry_run: bool,
    /// Only delete packs condemned at least this long ago (for stores whose listings lag).
    #[arg(long, default_value = "0s", env = "COOP_PRUNE_GRACE")]
    grace: String,
    /// Keep packs no index lists while younger than this (a running backup may own them).
    #[arg(long, default_value = "30m", env = "COOP_PRUNE_UNINDEXED_GRACE")]
    unindexed_grace: String,
}

pub fn run(g: &Global, a: PruneArgs) -> Result<i32> {
    let p = g.printer();
    let opts = options(&a)?;
    let repo = util::open_repo(g)?;
    let access = util::identity_access(g)?;
    let bars = Bars::new(g);
    let mut reports = Vec::new();
    for keys in util::upkeep_tenants(g, &repo, &access)? {
        let r = prune::prune(&repo, &keys, &opts, &bars)?;
        reports.push((keys.tenant.clone(), r));
    }
    if g.json {
        if reports.len() == 1 {
            p.json(&reports[0].1)?;
        } else {
            let v: serde_json::Map<String, serde_json::Value> = reports
                .iter()
                .map(|(t, r)| Ok((t.clone(), serde_json::to_value(r)?)))
                .collect::<Result<_, serde_json::Error>>()?;
            p.json(&v)?;
        }
        return Ok(crate::exit::OK);
    }
    for (tenant, r) in &reports {
        tenant_text(&p, tenant, r, a.dry_run)?;
    }
    if a.dry_run {
        p.summary("dry run: nothing changed")?;
    }
    Ok(crate::exit::OK)
}

/// The options: --max-unused a fraction, the graces durations.
fn options(a: &PruneArgs) -> Result<PruneOptions> {
    let max_unused = match a.max_unused.strip_suffix('%') {
        Some(v) => v.trim().parse::<f64>().map(|v| v / 100.0),
        None => a.max_unused.trim().parse::<f64>(),
    }
    .ok()
    .filter(|v| (0.0..=1.0).contains(v))
    .ok_or_else(|| Error::Invalid {
        what: format!("--max-unused {:?}: give a percentage like 5%", a.max_unused),
    })?;
    let dur = |flag: &str, v: &str| {
        coop_agent::settings::parse_duration(v).map_err(|what| Error::Invalid {
            what: format!("{flag}: {what}"),
        })
    };
    Ok(PruneOptions {
        max_unused,
        dry_run: a.dry_run,
        grace: dur("--grace", &a.grace)?,
        unindexed_grace: dur("--unindexed-grace", &a.unindexed_grace)?,
    })
}

/// What prune found (and, unless a dry run, did) in one tenant.
fn tenant_text(
    p: &crate::output::Printer,
    tenant: &str,
    r: &prune::PruneReport,
    dry_run: bool,
) -> Result<()> {
    for w in &r.warnings {
        p.warn(format!("{tenant}: {w}"));
    }
    p.summary(format!(
        "{tenant}: {} snapshots; {} packs, {} stored, {} in use",
        r.snapshots,
        r.packs,
        util::bytes(r.bytes_total),
        util::bytes(r.bytes_used)
    ))?;
    p.summary(format!(
        "  {} unused, {} to repack: {} can be freed{}",
        util::plural(r.packs_unused as u64, "pack", "packs"),
        r.packs_to_repack,
        util::bytes(r.bytes_to_free),
        if r.packs_too_young > 0 {
            format!(
                " ({} too young to judge, kept)",
                util::plural(
                    r.packs_too_young as u64,
                    "unindexed pack",
                    "unindexed packs"
                )
            )
        } else {
            String::new()
        }
    ))?;
    if dry_run {
        return Ok(());
    }
    p.summary(format!(
        "  wrote {}; deleted {} ({}) and {}; {} written, {} completed",
        util::plural(r.packs_written as u64, "pack", "packs"),
        util::plural(r.packs_deleted as u64, "pack", "packs"),
        util::bytes(r.bytes_freed),
        util::plural(
            r.index_objects_deleted as u64,
            "index object",
            "index objects"
        ),
        util::plural(r.plans_written as u64, "plan", "plans"),
        r.plans_completed
    ))?;
    if r.packs_rescued > 0 {
        p.summary(format!(
            "  {} needed by new snapshots and kept",
            util::plural(
                r.packs_rescued as u64,
                "condemned pack is",
                "condemned packs are"
            )
        ))?;
    }
    for s in &r.stale_locks {
        p.warn(format!("ignoring stale lock {s}"));
    }
    for x in &r.postponed {
        p.summary(format!("  postponed: {x}"))?;
    }
    Ok(())
}
