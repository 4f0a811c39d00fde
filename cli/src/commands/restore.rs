//! `coop restore`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::read::BlobReader;
use coop_agent::restore::{self, RestoreOptions, RestoreRoot};
use coop_agent::Error;
use coop_formats::tree::NodeKind;
use std::path::PathBuf;

#[derive(Args)]
pub struct RestoreArgs {
    /// SNAPSHOT or SNAPSHOT:PATH (ID, unique prefix, or `latest`).
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(long, short = 't', env = "COOP_TARGET")]
    target: PathBuf,
    /// Only restore paths matching this glob (repeatable).
    #[arg(long, env = "COOP_RESTORE_INCLUDE")]
    include: Vec<String>,
    /// Do not restore paths matching this glob (repeatable).
    #[arg(long, env = "COOP_RESTORE_EXCLUDE")]
    exclude: Vec<String>,
}

pub fn run(g: &Global, a: RestoreArgs) -> Result<i32> {
    let (spec, sub) = match a.snapshot.split_once(':') {
        Some((s, p)) => (s.to_string(), p.to_string()),
        None => (a.snapshot.clone(), String::new()),
    };
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let (id, snap) = repo.find_snapshot(&keys, &spec)?;
    let index = repo.load_index(&keys)?;
    let reader = BlobReader::new(&repo, &keys, &index)?;
    let root = if sub.trim_matches('/').is_empty() {
        RestoreRoot::Tree(snap.tree)
    } else {
        match reader.find(&snap.tree, &sub)? {
            Some(n) if n.kind == NodeKind::Dir => RestoreRoot::Tree(n.subtree.expect("dir")),
            Some(n) => RestoreRoot::Node(Box::new(n)),
            None => {
                return Err(Error::NotFound {
                    what: format!("path {sub} in snapshot {}", id.short()),
                    hint: " (see `coop ls`)".into(),
                }
                .into())
            }
        }
    };
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.include,
        excludes: a.exclude,
        owner: nix_is_root(),
        workers: 0,
    };
    let bars = Bars::new(g.quiet, g.json);
    let started = std::time::Instant::now();
    let report = restore::restore(&reader, root, &opts, &bars)?;
    if g.json {
        util::print_json(&serde_json::json!({
            "snapshot_id": id.to_hex(), "target": a.target, "files": report.files, "dirs": report.dirs,
            "symlinks": report.symlinks, "bytes": report.bytes,
            "failed": report.failed.iter().map(|(p, w)| serde_json::json!({"path": p, "error": w})).collect::<Vec<_>>(),
            "warnings": report.warnings,
        }))?;
    } else {
        for w in &report.warnings {
            eprintln!("coop: warning: {w}");
        }
        for (p, why) in &report.failed {
            eprintln!("coop: FAILED {p}: {why}");
        }
        if !g.quiet {
            println!(
                "Restored {} files, {} dirs, {} symlinks, {} from snapshot {} to {} in {:.2} s",
                report.files,
                report.dirs,
                report.symlinks,
                util::bytes(report.bytes),
                id.short(),
                a.target.display(),
                started.elapsed().as_secs_f64()
            );
        }
        if !report.failed.is_empty() {
            eprintln!(
                "coop: restore is PARTIAL: {} file(s) failed and were not written (listed above). \
                 Run `coop restore` again from another site's replica for those paths.",
                report.failed.len()
            );
        }
    }
    Ok(if report.failed.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::PARTIAL
    })
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}
