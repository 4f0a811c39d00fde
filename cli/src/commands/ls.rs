//! `coop ls`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::read::BlobReader;
use coop_agent::Error;
use coop_formats::tree::NodeKind;
use std::io::Write;

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot ID, unique prefix, or `latest`.
    snapshot: String,
    /// Only list below this path.
    path: Option<String>,
    /// Show type, mode, owner, size and time.
    #[arg(long, short = 'l', value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_LS_LONG")]
    long: bool,
}

pub fn run(g: &Global, a: LsArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let (_, snap) = repo.find_snapshot(&keys, &a.snapshot)?;
    let index = repo.load_index(&keys)?;
    let reader = BlobReader::new(&repo, &keys, &index)?;
    let prefix = a.path.clone().unwrap_or_default();
    let prefix = prefix.trim_matches('/');
    let (root, base) = if prefix.is_empty() {
        (snap.tree, String::new())
    } else {
        match reader.find(&snap.tree, prefix)? {
            Some(n) if n.kind == NodeKind::Dir => {
                (n.subtree.expect("dir has subtree"), format!("/{prefix}"))
            }
            Some(n) => {
                print_node(g, a.long, &format!("/{prefix}"), &n)?;
                return Ok(crate::exit::OK);
            }
            None => {
                return Err(Error::NotFound {
                    what: format!("path /{prefix} in the snapshot"),
                    hint: String::new(),
                }
                .into())
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    reader.walk(&root, |path, node| {
        let p = format!("{base}/{}", String::from_utf8_lossy(path));
        if g.json {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(&node_json(&p, node)).unwrap_or_default()
            );
        } else if a.long {
            let _ = writeln!(out, "{}", long_line(&p, node));
        } else {
            let _ = writeln!(out, "{p}");
        }
        Ok(true)
    })?;
    out.flush()?;
    Ok(crate::exit::OK)
}

fn node_json(path: &str, n: &coop_formats::tree::Node) -> serde_json::Value {
    serde_json::json!({
        "path": path, "type": n.kind, "mode": n.mode, "uid": n.uid, "gid": n.gid, "user": n.user, "group": n.group,
        "size": n.size, "mtime_ns": n.mtime_ns,
        "target": n.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned()),
    })
}

fn long_line(path: &str, n: &coop_formats::tree::Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::File => '-',
    };
    let time = chrono::DateTime::from_timestamp_nanos(n.mtime_ns).format("%Y-%m-%d %H:%M:%S");
    let mut s = format!(
        "{t}{:04o} {:>8} {:>8} {:>12} {time} {path}",
        n.mode,
        n.user.clone().unwrap_or_else(|| n.uid.to_string()),
        n.group.clone().unwrap_or_else(|| n.gid.to_string()),
        n.size
    );
    if let Some(tg) = &n.target {
        s.push_str(" -> ");
        s.push_str(&String::from_utf8_lossy(tg));
    }
    s
}

fn print_node(g: &Global, long: bool, path: &str, n: &coop_formats::tree::Node) -> Result<()> {
    if g.json {
        println!("{}", serde_json::to_string(&node_json(path, n))?);
    } else if long {
        println!("{}", long_line(path, n));
    } else {
        println!("{path}");
    }
    Ok(())
}
