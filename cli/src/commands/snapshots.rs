//! `coop snapshots`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only snapshots with this tag.
    #[arg(long, env = "COOP_SNAPSHOTS_TAG")]
    tag: Vec<String>,
    /// Only snapshots of this host.
    #[arg(long, env = "COOP_SNAPSHOTS_HOST")]
    host: Option<String>,
}

pub fn run(g: &Global, a: SnapshotsArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let all = repo.snapshots(&keys)?;
    for w in coop_agent::state::check_and_update(
        g.cache_dir.as_deref(),
        &repo.config.repo_id,
        &keys.tag,
        Some(&all),
        None,
    ) {
        eprintln!("coop: WARNING: {w}");
    }
    let list: Vec<_> = all
        .into_iter()
        .filter(|(_, s)| a.tag.iter().all(|t| s.tags.contains(t)))
        .filter(|(_, s)| a.host.as_ref().is_none_or(|h| &s.host == h))
        .collect();
    if g.json {
        let v: Vec<_> = list
            .iter()
            .map(|(id, s)| {
                serde_json::json!({
                    "id": id.to_hex(), "short_id": id.short(), "time": s.time, "host": s.host,
                    "username": s.username, "paths": s.paths, "tags": s.tags, "tenant": s.tenant,
                    "tree": s.tree.to_hex(), "writer": hex::encode(s.writer), "writer_name": s.writer_name,
                    "program": s.program, "summary": s.summary,
                })
            })
            .collect();
        util::print_json(&v)?;
        return Ok(crate::exit::OK);
    }
    println!(
        "{:<9} {:<20} {:<16} {:<14} {:>10}  paths",
        "ID", "time", "host", "tags", "size"
    );
    for (id, s) in &list {
        let t = chrono::DateTime::parse_from_rfc3339(&s.time)
            .map(|t| {
                t.with_timezone(&chrono::Local)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_else(|_| s.time.clone());
        println!(
            "{:<9} {:<20} {:<16} {:<14} {:>10}  {}",
            id.short(),
            t,
            s.host,
            s.tags.join(","),
            util::bytes(s.summary.total_bytes),
            s.paths.join(" ")
        );
    }
    println!("{} snapshot(s) in tenant {}", list.len(), keys.tenant);
    Ok(crate::exit::OK)
}
