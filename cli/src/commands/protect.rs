//! `coop protect`: keep a snapshot whatever `forget` policies say.

use crate::global::Global;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use serde::Serialize;

#[derive(Args)]
pub struct ProtectArgs {
    /// Snapshot ID, unique prefix, or `latest`.
    snapshot: String,
    /// Remove the protection instead.
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_PROTECT_REMOVE")]
    remove: bool,
    /// A note stored with the protection.
    #[arg(long, default_value = "", env = "COOP_PROTECT_NOTE")]
    note: String,
    #[command(flatten)]
    filter: FilterArgs,
}

/// `protect --json`: the snapshot, whether it is protected now, and the objects written or
/// deleted.
#[derive(Serialize)]
struct Protected {
    snapshot: String,
    protected: bool,
    objects_changed: usize,
}

pub fn run(g: &Global, a: ProtectArgs) -> Result<i32> {
    let p = g.printer();
    let o = util::open_snapshot(g, &p, &a.snapshot, &a.filter.filter())?;
    let n = coop_agent::forget::protect(&o.repo, &o.keys, o.entry.id, &a.note, a.remove)?;
    if g.json {
        p.json_sorted(&Protected {
            snapshot: o.entry.id.to_hex(),
            protected: !a.remove,
            objects_changed: n,
        })?;
    } else if a.remove {
        p.summary(format!(
            "snapshot {}: {} removed",
            o.entry.id.short(),
            util::plural(n as u64, "protection", "protections")
        ))?;
    } else {
        p.summary(format!(
            "snapshot {} is protected from forget",
            o.entry.id.short()
        ))?;
    }
    Ok(crate::exit::OK)
}
