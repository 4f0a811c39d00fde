//! `coop prune`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::prune::{self, PruneOptions};
use coop_agent::Error;

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
}

pub fn run(g: &Global, a: PruneArgs) -> Result<i32> {
    let max_unused = match a.max_unused.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => a.max_unused.trim().parse::<f64>(),
    }
    .ok()
    .filter(|v| (0.0..=1.0).contains(v))
    .ok_or_else(|| Error::Usage {
        what: format!("--max-unused {:?}: give a percentage like 5%", a.max_unused),
    })?;
    let grace = humantime::parse_duration(&a.grace).map_err(|e| Error::Usage {
        what: format!("--grace {:?}: {e}", a.grace),
    })?;
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let bars = Bars::new(g.quiet, g.json);
    let r = prune::prune(
        &repo,
        &keys,
        &PruneOptions {
            max_unused,
            dry_run: a.dry_run,
            grace,
        },
        &bars,
    )?;
    if g.json {
        util::print_json(&r)?;
        return Ok(crate::exit::OK);
    }
    println!(
        "{} snapshots; {} packs, {} stored, {} in use",
        r.snapshots,
        r.packs,
        util::bytes(r.bytes_total),
        util::bytes(r.bytes_used)
    );
    println!(
        "{} unused pack(s), {} to repack: {} can be freed",
        r.packs_unused,
        r.packs_to_repack,
        util::bytes(r.bytes_to_free)
    );
    if a.dry_run {
        println!("dry run: nothing changed");
        return Ok(crate::exit::OK);
    }
    println!(
        "wrote {} pack(s); deleted {} pack(s) ({}) and {} index object(s); {} plan(s) written, {} completed",
        r.packs_written,
        r.packs_deleted,
        util::bytes(r.bytes_freed),
        r.index_objects_deleted,
        r.plans_written,
        r.plans_completed
    );
    if r.packs_rescued > 0 {
        println!(
            "{} condemned pack(s) are needed by new snapshots and were kept",
            r.packs_rescued
        );
    }
    for s in &r.stale_locks {
        eprintln!("coop: ignoring stale lock {s}");
    }
    for p in &r.postponed {
        println!("postponed: {p}");
    }
    Ok(crate::exit::OK)
}
