//! `coop replicate`: needs no keys.

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::replicate::{self, ReplicateOptions};
use coop_agent::store::Store;

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
}

pub fn run(g: &Global, a: ReplicateArgs) -> Result<i32> {
    let p = g.printer();
    let limit = a
        .limit_upload
        .as_deref()
        .map(util::parse_size)
        .transpose()?;
    let from = Store::open(&a.from, false).map_err(|e| util::not_found_as_repo(e, &a.from))?;
    let to = match Store::open(&a.to, !a.check) {
        Ok(s) => s,
        // --check against a site that does not exist yet: it lacks everything.
        Err(e) if a.check && e.is_not_found() => Store::open("memory:", true)?,
        Err(e) => return Err(util::not_found_as_repo(e, &a.to)),
    };
    let bars = Bars::new(g);
    let r = replicate::replicate(
        &from,
        &to,
        &ReplicateOptions {
            check_only: a.check,
            limit,
            parallel: a.parallel,
        },
        &bars,
    )?;
    if g.json {
        p.json(&r)?;
    } else {
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
        for w in &r.warnings {
            p.warn(w);
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
    }
    Ok(if !r.refused.is_empty() || !r.log_forks.is_empty() {
        crate::exit::INTEGRITY
    } else if !r.ok() || (a.check && r.missing_objects > 0) {
        crate::exit::STORE
    } else {
        crate::exit::OK
    })
}
