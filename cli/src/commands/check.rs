//! `coop check`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::check::{self, Subset};

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

pub fn run(g: &Global, a: CheckArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let seed = a
        .seed
        .unwrap_or_else(|| u64::from_le_bytes(coop_formats::random_bytes()));
    let subset = match (&a.read_data_subset, a.read_data) {
        (Some(s), _) => Some(Subset::parse(s, seed)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    let bars = Bars::new(g.quiet, g.json);
    let r = check::check(&repo, &keys, subset, g.cache_dir.as_deref(), &bars)?;
    if g.json {
        let mut v = serde_json::to_value(&r)?;
        v["seed"] = serde_json::json!(seed);
        util::print_json(&v)?;
    } else {
        for w in &r.warnings {
            eprintln!("coop: WARNING: {w}");
        }
        println!(
            "{} snapshots, {} trees, {} index objects ({} blobs), {} packs",
            r.snapshots, r.trees, r.index_objects, r.blobs_in_index, r.packs
        );
        if let Some(Subset::Percent { .. }) = subset {
            println!(
                "read {} packs ({} blobs) chosen with --seed {seed}",
                r.packs_read, r.blobs_read
            );
        } else if subset.is_some() {
            println!("read {} packs ({} blobs)", r.packs_read, r.blobs_read);
        }
        if !r.unreferenced_packs.is_empty() {
            println!(
                "{} unreferenced pack(s), left by interrupted backups; `coop prune` removes them",
                r.unreferenced_packs.len()
            );
        }
        for p in &r.errors {
            println!("ERROR {}: {}", p.object, p.message);
            for s in &p.snapshots {
                println!("  affects snapshot {s}");
            }
            for f in &p.files {
                println!("  affects file {f}");
            }
        }
        if r.errors.is_empty() {
            println!("no errors found");
        } else {
            println!(
                "{} error(s) found. Restore the damaged objects from another site's replica \
                 (their names are their store paths), or forget the affected snapshots.",
                r.errors.len()
            );
        }
    }
    Ok(if r.errors.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}
