//! `coop replicate`: needs no keys.

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::{replicate, ReplicateOptions, Store};

#[derive(Args)]
pub struct ReplicateArgs {
    /// Source repository (path, file://, s3://BUCKET/PREFIX).
    #[arg(long, env = "COOP_REPLICATE_FROM")]
    from: String,
    /// Target repository; created if it does not exist.
    #[arg(long, env = "COOP_REPLICATE_TO")]
    to: String,
    /// Only report what differs; copy nothing.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_REPLICATE_CHECK")]
    check: bool,
    /// Upload limit, e.g. 500KiB or 2MiB (per second).
    #[arg(long, env = "COOP_UPLOAD_LIMIT")]
    limit_upload: Option<String>,
    /// Objects copied at once.
    #[arg(long, default_value_t = 4, env = "COOP_REPLICATE_PARALLEL")]
    parallel: usize,
    /// Keep on the target what the source deleted (by default the target follows deletions
    /// an admin of the source logged, once older than --deletion-grace).
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_REPLICATE_KEEP_DELETED")]
    keep_deleted: bool,
    /// How long after the source logged a deletion the target follows it.
    #[arg(long, default_value = "24h", env = "COOP_REPLICATE_DELETION_GRACE")]
    deletion_grace: String,
}

pub fn run(g: &Global, a: ReplicateArgs) -> Result<i32> {
    let p = g.printer();
    let limit = a
        .limit_upload
        .as_deref()
        .map(util::parse_size)
        .transpose()?;
    let (from, to) = stores(&a)?;
    let grace = coop_agent::settings::parse_duration(&a.deletion_grace).map_err(|what| {
        coop_agent::Error::Invalid {
            what: format!("--deletion-grace: {what}"),
        }
    })?;
    let (admin_keys, warnings) = source_admin_keys(g, &a);
    let deletions = (!a.keep_deleted && !a.check).then_some(replicate::DeletionPolicy { grace });
    let bars = Bars::new(g);
    let r = replicate::replicate(
        &from,
        &to,
        &ReplicateOptions {
            check_only: a.check,
            limit,
            parallel: a.parallel,
            deletions,
            admin_keys,
            cache_dir: g.cache_dir.clone(),
        },
        &bars,
    )?;
    if g.json {
        p.json(&r)?;
    } else {
        print(&p, &a, &r, &warnings)?;
    }
    Ok(if !r.refused.is_empty() || !r.log_forks.is_empty() {
        crate::exit::INTEGRITY
    } else if !r.ok() || (a.check && r.missing_objects > 0) {
        crate::exit::STORE
    } else {
        crate::exit::OK
    })
}

/// The source and the target stores (for --check, a target that does not exist yet is an
/// empty one).
fn stores(a: &ReplicateArgs) -> Result<(Store, Store)> {
    let from = Store::open(&a.from, false).map_err(|e| util::not_found_as_repo(e, &a.from))?;
    let to = match Store::open(&a.to, !a.check) {
        Ok(s) => s,
        // --check against a site that does not exist yet: it lacks everything.
        Err(e) if a.check && e.is_not_found() => Store::open("memory:", true)?,
        Err(e) => return Err(util::not_found_as_repo(e, &a.to)),
    };
    Ok((from, to))
}

/// The source's admin keys, and a warning where they are not known.
fn source_admin_keys(g: &Global, a: &ReplicateArgs) -> (Option<Vec<[u8; 32]>>, Vec<String>) {
    let source = coop_agent::repo::Repo::open_with(
        &a.from,
        &coop_agent::repo::OpenOptions {
            cache_dir: g.cache_dir.clone(),
            ..Default::default()
        },
    );
    // The source's admin keys: from the caller's own identity where it opens the source,
    // else pinned the first time this client replicates from it. They say whose logged
    // deletions and prune replacements count.
    let own = source.as_ref().ok().and_then(|r| {
        let access = util::identity_access(g).ok()?;
        coop_agent::tenant::keys(r, &access, "coop")
            .ok()
            .map(|k| k.admin_keys)
    });
    let mut warnings = Vec::new();
    let admin_keys = match source.and_then(|r| {
        let own = own.as_ref().map(|k| (&r.config.repo_id, k.as_slice()));
        coop_agent::log::trusted_admin_keys(&r, None, own)
    }) {
        Ok(keys) => Some(keys),
        Err(e) => {
            warnings.push(format!(
                "the source's admin keys are not known ({}): deletions at the source are not \
             followed, and snapshots whose inventories name pruned objects are held back",
                coop_agent::error::chain(&e)
            ));
            None
        }
    };
    (admin_keys, warnings)
}

/// What was copied, and every problem, for a terminal.
fn print(
    p: &crate::output::Printer,
    a: &ReplicateArgs,
    r: &replicate::ReplicateReport,
    warnings: &[String],
) -> Result<()> {
    if a.check {
        p.summary(format!(
            "{} lacks {} object(s), {} that {} has; {} object(s) there are not at the source",
            a.to,
            r.missing_objects,
            util::bytes(r.missing_bytes),
            a.from,
            r.extra_objects
        ))?;
    } else {
        let secs = (r.duration_ms as f64 / 1000.0).max(0.001);
        p.summary(format!(
            "copied {}, {} in {secs:.2} s ({}/s)",
            util::plural(r.copied_objects, "object", "objects"),
            util::bytes(r.copied_bytes),
            util::bytes((r.copied_bytes as f64 / secs) as u64)
        ))?;
    }
    for x in &r.refused {
        p.problem(format!("REFUSED {x}"));
    }
    for x in &r.log_forks {
        p.problem(format!(
            "LOG FORK {x} (not overwritten; run `coop log verify` on both sites)"
        ));
    }
    for x in &r.failed {
        p.problem(format!("failed {x}"));
    }
    for w in r.warnings.iter().chain(warnings) {
        p.warn(w);
    }
    if r.deleted_at_target > 0 {
        p.summary(format!(
            "removed {} the source deleted (logged by its admin)",
            util::plural(r.deleted_at_target, "object", "objects")
        ))?;
    }
    for k in &r.kept_at_target {
        p.note(k);
    }
    for x in &r.held_back {
        p.problem(format!("held back {x}"));
    }
    if r.snapshots_held_back > 0 {
        p.problem(format!(
            "{} held back until every object they need is on {}; \
             run again, or check the source (coop scrub there)",
            util::plural(r.snapshots_held_back, "snapshot", "snapshots"),
            a.to
        ));
    }
    for x in &r.incomplete_at_target {
        p.problem(format!("INCOMPLETE {x}"));
    }
    if !r.incomplete_at_target.is_empty() {
        p.problem(format!(
            "{} on {} name(s) data it does not hold; run `coop replicate` from a complete \
             site to fill it in",
            util::plural(r.incomplete_at_target.len() as u64, "snapshot", "snapshots"),
            a.to
        ));
    }
    Ok(())
}
