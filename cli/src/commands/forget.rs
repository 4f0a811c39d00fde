//! `coop forget`

use crate::global::Global;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::{forget, Error, GroupBy, Policy};

#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove by ID or prefix (instead of a policy); flagged ones are removed this way.
    ids: Vec<String>,
    /// Keep the last N snapshots of each group.
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_LAST")]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_HOURLY")]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days that have one (UTC days).
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_DAILY")]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have one (ISO weeks).
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_WEEKLY")]
    keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(long, value_name = "N", env = "COOP_FORGET_KEEP_MONTHLY")]
    keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years that have one.
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
    let p = g.printer();
    let policy = policy(&a)?;
    let repo = util::open_repo(g)?;
    // An admin keeps a member tenant it does not read up from the snapshots' metadata.
    let keys = coop_agent::tenant::upkeep_keys(&repo, &util::identity_access(g)?, &g.tenant)?;
    if !a.ids.is_empty() {
        if !policy.is_empty() {
            return Err(Error::Invalid {
                what: "give snapshot IDs or --keep-* rules, not both".into(),
            }
            .into());
        }
        return remove_ids(g, &a, &repo, &keys);
    }
    if policy.is_empty() {
        return Err(Error::Invalid {
            what: "no --keep-* option given; refusing to forget every snapshot (give e.g. --keep-daily 7)".into(),
        }
        .into());
    }
    let rep = forget::forget(
        &repo,
        &keys,
        &policy,
        GroupBy::parse(&a.group_by)?,
        a.dry_run,
    )?;
    for w in &rep.warnings {
        p.warn(w);
    }
    let decisions = rep.decisions;
    if g.json {
        p.json(&decisions)?;
        return Ok(crate::exit::OK);
    }
    decisions_text(&p, &decisions, a.dry_run)?;
    Ok(crate::exit::OK)
}

/// The retention policy the `--keep-*` options give.
fn policy(a: &ForgetArgs) -> Result<Policy> {
    let within = match &a.keep_within {
        Some(s) => {
            Some(
                coop_agent::settings::parse_duration(s).map_err(|what| Error::Invalid {
                    what: format!("--keep-within: {what}"),
                })?,
            )
        }
        None => None,
    };
    Ok(Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within,
        tags: a.keep_tag.clone(),
    })
}

/// `coop forget ID…`: removes (or, with --dry-run, names) the snapshots given.
fn remove_ids(
    g: &Global,
    a: &ForgetArgs,
    repo: &coop_agent::repo::Repo,
    keys: &coop_agent::keys::TenantKeys,
) -> Result<i32> {
    let p = g.printer();
    let view = coop_agent::snapshots::view(repo, keys)?;
    util::show_warnings(&p, &view);
    let ids = a
        .ids
        .iter()
        .map(|s| view.find(s, &FilterArgs::default().filter()).map(|e| e.id))
        .collect::<Result<Vec<_>, _>>()?;
    if !a.dry_run {
        forget::remove(repo, keys, &ids)?;
    }
    if g.json {
        p.json(&ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>())?;
    } else {
        for i in &ids {
            p.summary(format!(
                "{} {}",
                if a.dry_run { "would remove" } else { "removed" },
                i.short()
            ))?;
        }
    }
    Ok(crate::exit::OK)
}

/// Each snapshot kept or removed and why, per group, and the totals.
fn decisions_text(
    p: &crate::output::Printer,
    decisions: &[forget::Decision],
    dry_run: bool,
) -> Result<()> {
    let mut group = String::new();
    for d in decisions {
        if d.group != group {
            group = d.group.clone();
            p.summary(format!("\n{group}"))?;
            p.summary(format!("  {:<6} {:<9} {:<30} reasons", "", "ID", "time"))?;
        }
        p.summary(format!(
            "  {:<6} {:<9} {:<30} {}",
            if d.keep { "keep" } else { "remove" },
            d.short_id,
            d.time,
            d.reasons.join(", ")
        ))?;
    }
    let removed = decisions.iter().filter(|d| !d.keep).count();
    p.summary(format!(
        "\n{} kept, {removed} {}{}",
        util::plural((decisions.len() - removed) as u64, "snapshot", "snapshots"),
        if dry_run {
            "would be removed (dry run: nothing changed)"
        } else {
            "removed"
        },
        if removed > 0 && !dry_run {
            "; run `coop prune` to reclaim their space"
        } else {
            ""
        }
    ))?;
    Ok(())
}
