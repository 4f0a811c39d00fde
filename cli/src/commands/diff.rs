//! `coop diff`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::read::{self, BlobReader, ChangeKind};

#[derive(Args)]
pub struct DiffArgs {
    /// The older snapshot.
    from: String,
    /// The newer snapshot.
    to: String,
}

pub fn run(g: &Global, a: DiffArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let (_, s1) = repo.find_snapshot(&keys, &a.from)?;
    let (_, s2) = repo.find_snapshot(&keys, &a.to)?;
    let index = repo.load_index(&keys)?;
    let reader = BlobReader::new(&repo, &keys, &index)?;
    let changes = read::diff(&reader, &s1.tree, &s2.tree)?;
    if g.json {
        util::print_json(&changes)?;
    } else {
        for c in &changes {
            let m = match c.change {
                ChangeKind::Added => '+',
                ChangeKind::Removed => '-',
                ChangeKind::Modified => 'M',
                ChangeKind::Metadata => 'U',
            };
            println!("{m}    {}", c.path);
        }
        let count = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
        println!(
            "{} added, {} removed, {} modified, {} metadata only",
            count(ChangeKind::Added),
            count(ChangeKind::Removed),
            count(ChangeKind::Modified),
            count(ChangeKind::Metadata)
        );
    }
    Ok(crate::exit::OK)
}
