//! `coop ls`

use crate::global::Global;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::read::{BlobReader, Found};
use coop_formats::tree::{Node, NodeKind};
use serde::Serialize;
use std::borrow::Cow;
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
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: LsArgs) -> Result<i32> {
    let p = g.printer();
    let o = util::open_snapshot(
        g,
        &p,
        &a.snapshot,
        &a.filter.holding(a.path.as_deref().unwrap_or_default()),
    )?;
    let index = coop_agent::index::load(&o.repo, &o.keys)?;
    let reader = BlobReader::new(&o.repo, &o.keys, &index)?;
    let prefix = a.path.clone().unwrap_or_default();
    let prefix = prefix.trim_matches('/');
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let base = if prefix.is_empty() {
        String::new()
    } else {
        format!("/{prefix}")
    };
    let root = match reader.at(&o.entry.snapshot.tree, prefix)? {
        Some(Found::Tree(t)) => t,
        Some(Found::Node(n)) => {
            line(&p, &mut out, a.long, &base, &n)?;
            return finish(out);
        }
        None => return Err(util::path_not_found(prefix, &o.entry)),
    };
    let mut failure: Option<anyhow::Error> = None;
    reader
        .walk(&root, |path, node| {
            let shown = format!("{base}/{}", String::from_utf8_lossy(path));
            match line(&p, &mut out, a.long, &shown, node) {
                Ok(()) => Ok(true),
                Err(e) => {
                    failure = Some(e);
                    Err(coop_agent::Error::Internal {
                        what: "stopped".into(),
                    })
                }
            }
        })
        .map_err(|e| match failure.take() {
            Some(f) => f,
            None => e.into(),
        })?;
    finish(out)
}

fn finish(mut out: impl Write) -> Result<i32> {
    out.flush().map_err(crate::output::write_error)?;
    Ok(crate::exit::OK)
}

fn line(
    p: &crate::output::Printer,
    out: &mut impl Write,
    long: bool,
    path: &str,
    n: &Node,
) -> Result<()> {
    if p.json {
        // Keys in alphabetical order, as `ls --json` has always had them (Printer::json_sorted).
        return p.json_line(out, &serde_json::to_value(Listed::of(path, n))?);
    }
    let text = if long {
        long_line(path, n)
    } else {
        path.to_string()
    };
    // Names are a member's: escaped, on one line (`--json` above keeps them exact).
    writeln!(out, "{}", crate::output::escape(&text)).map_err(crate::output::write_error)
}

/// A line of `ls --json`: the node's path and metadata (a tree's node without its content).
#[derive(Serialize)]
struct Listed<'a> {
    path: &'a str,
    #[serde(rename = "type")]
    kind: NodeKind,
    mode: u32,
    uid: u32,
    gid: u32,
    user: &'a Option<String>,
    group: &'a Option<String>,
    size: u64,
    mtime_ns: i64,
    target: Option<Cow<'a, str>>,
}

impl<'a> Listed<'a> {
    fn of(path: &'a str, n: &'a Node) -> Self {
        Self {
            path,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            user: &n.user,
            group: &n.group,
            size: n.size,
            mtime_ns: n.mtime_ns,
            target: n.target.as_deref().map(String::from_utf8_lossy),
        }
    }
}

/// `ls -l`'s mode column: the type letter and `rwx` triplets with set-id and sticky bits.
fn mode_string(kind: NodeKind, mode: u32) -> String {
    let t = match kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::Chardev => 'c',
        NodeKind::Blockdev => 'b',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for (i, who) in [(6, 0o4000), (3, 0o2000), (0, 0o1000)] {
        let bits = (mode >> i) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & who != 0, i == 0, x) {
            (true, true, true) => 't',
            (true, true, false) => 'T',
            (true, false, true) => 's',
            (true, false, false) => 'S',
            (false, _, true) => 'x',
            (false, _, false) => '-',
        });
    }
    s
}

fn long_line(path: &str, n: &Node) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(n.mtime_ns).format("%Y-%m-%d %H:%M:%S");
    let mut s = format!(
        "{} {:>8} {:>8} {:>12} {time} {path}",
        mode_string(n.kind, n.mode),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(NodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(NodeKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(NodeKind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(NodeKind::File, 0o2640), "-rw-r-S---");
    }
}
