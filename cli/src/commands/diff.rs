//! `coop diff`

use crate::global::Global;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::read::{self, BlobReader, ChangeKind};

#[derive(Args)]
pub struct DiffArgs {
    /// The older snapshot.
    from: String,
    /// The newer snapshot.
    to: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(g: &Global, a: DiffArgs) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let keys = coop_agent::tenant::keys(&repo, &util::identity_access(g)?, &g.tenant)?;
    let view = coop_agent::snapshots::view(&repo, &keys)?;
    util::show_warnings(&p, &view);
    let f = a.filter.filter();
    let s1 = view.find(&a.from, &f)?.snapshot.tree;
    let s2 = view.find(&a.to, &f)?.snapshot.tree;
    let index = coop_agent::index::load(&repo, &keys)?;
    let reader = BlobReader::new(&repo, &keys, &index)?;
    let changes = read::diff(&reader, &s1, &s2)?;
    if g.json {
        p.json(&changes)?;
        return Ok(crate::exit::OK);
    }
    for c in &changes {
        let m = match c.change {
            ChangeKind::Added => '+',
            ChangeKind::Removed => '-',
            ChangeKind::Modified => 'M',
            ChangeKind::Metadata => 'U',
        };
        p.data(format!("{m}    {}", crate::output::escape(&c.path)))?;
    }
    let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    p.summary(format!(
        "{} added, {} removed, {} modified, {} metadata only",
        count(ChangeKind::Added),
        count(ChangeKind::Removed),
        count(ChangeKind::Modified),
        count(ChangeKind::Metadata)
    ))?;
    Ok(crate::exit::OK)
}
