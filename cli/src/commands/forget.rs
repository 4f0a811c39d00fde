//! `coop forget`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::forget::{self, GroupBy, Policy};
use coop_agent::Error;

#[derive(Args)]
pub struct ForgetArgs {
    /// Keep the last N snapshots of each group.
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_LAST")]
    keep_last: Option<u32>,
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_HOURLY")]
    keep_hourly: Option<u32>,
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_DAILY")]
    keep_daily: Option<u32>,
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_WEEKLY")]
    keep_weekly: Option<u32>,
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_MONTHLY")]
    keep_monthly: Option<u32>,
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_YEARLY")]
    keep_yearly: Option<u32>,
    /// Keep everything newer than this (e.g. 30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", env = "COOP_FORGET_KEEP_WITHIN")]
    keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG", env = "COOP_FORGET_KEEP_TAG")]
    keep_tag: Vec<String>,
    /// Group snapshots by these keys (any of host,paths,tags; the tenant always separates).
    #[arg(long, default_value = "host,paths", env = "COOP_FORGET_GROUP_BY")]
    group_by: String,
    /// Show what would be kept and removed, and why; change nothing.
    #[arg(long, short = 'n', value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_FORGET_DRY_RUN")]
    dry_run: bool,
}

pub fn run(g: &Global, a: ForgetArgs) -> Result<i32> {
    let within = match &a.keep_within {
        Some(s) => Some(humantime::parse_duration(s).map_err(|e| Error::Usage {
            what: format!("--keep-within {s:?}: {e}"),
        })?),
        None => None,
    };
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within,
        tags: a.keep_tag,
    };
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let decisions = forget::forget(
        &repo,
        &keys,
        &policy,
        GroupBy::parse(&a.group_by)?,
        a.dry_run,
    )?;
    if g.json {
        util::print_json(&decisions)?;
        return Ok(crate::exit::OK);
    }
    if g.quiet {
        return Ok(crate::exit::OK);
    }
    let mut group = String::new();
    for d in &decisions {
        if d.group != group {
            group = d.group.clone();
            println!("\n{group}");
            println!("  {:<6} {:<9} {:<30} reasons", "", "ID", "time");
        }
        println!(
            "  {:<6} {:<9} {:<30} {}",
            if d.keep { "keep" } else { "remove" },
            d.short_id,
            d.time,
            d.reasons.join(", ")
        );
    }
    let removed = decisions.iter().filter(|d| !d.keep).count();
    println!(
        "\n{} snapshot(s) kept, {removed} {}{}",
        decisions.len() - removed,
        if a.dry_run {
            "would be removed (dry run: nothing changed)"
        } else {
            "removed"
        },
        if removed > 0 && !a.dry_run {
            "; run `coop prune` to reclaim their space"
        } else {
            ""
        }
    );
    Ok(crate::exit::OK)
}
