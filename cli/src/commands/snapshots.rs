//! `coop snapshots`

use crate::global::Global;
use crate::output::escape;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let keys = coop_agent::tenant::keys(&repo, &util::identity_access(g)?, &g.tenant)
        .map_err(|e| hint_tenant(g, e))?;
    let view = coop_agent::snapshots::view(&repo, &keys)?;
    util::show_warnings(&p, &view);
    let filter = a.filter.filter();
    let list: Vec<_> = view
        .listing
        .entries
        .iter()
        .filter(|e| filter.matches(&e.snapshot))
        .collect();
    if g.json {
        p.json_sorted(&list)?;
    } else {
        p.data(format!(
            "{:<9} {:<20} {:<16} {:<14} {:>10}  paths",
            "ID", "time", "host", "tags", "size"
        ))?;
        for e in &list {
            let s = &e.snapshot;
            p.data(format!(
                "{:<9} {:<20} {:<16} {:<14} {:>10}  {}{}",
                e.id.short(),
                util::local_time(&s.time),
                escape(&s.host),
                escape(&s.tags.join(",")),
                util::bytes(s.summary.total_bytes),
                escape(&s.paths.join(" ")),
                if e.trusted() {
                    String::new()
                } else {
                    "  [FLAGGED]".into()
                }
            ))?;
        }
        p.summary(format!(
            "{} in tenant {}",
            util::plural(list.len() as u64, "snapshot", "snapshots"),
            keys.tenant
        ))?;
        for e in list.iter().filter(|e| !e.trusted()) {
            for f in &e.flags {
                p.warn(format!(
                    "snapshot {} is {f}; it is not used as latest nor by retention",
                    e.id.short()
                ));
            }
        }
    }
    Ok(if view.has_problems() {
        crate::exit::INTEGRITY
    } else {
        crate::exit::OK
    })
}

/// A member running `snapshots` without `--tenant` gets told where their snapshots are.
pub fn hint_tenant(g: &Global, e: coop_agent::Error) -> anyhow::Error {
    match &e {
        coop_agent::Error::NotRecipient { tenant } if tenant == "coop" && g.tenant == "coop" => {
            anyhow::Error::new(e).context(
                "your identity cannot read tenant coop; members read their own with --tenant member/NAME",
            )
        }
        _ => e.into(),
    }
}
