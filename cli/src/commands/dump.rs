//! `coop dump`

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::read::BlobReader;
use coop_agent::Error;
use coop_formats::tree::NodeKind;
use std::io::Write;

#[derive(Args)]
pub struct DumpArgs {
    /// Snapshot ID, unique prefix, or `latest`.
    snapshot: String,
    /// Path of the file in the snapshot.
    file: String,
}

pub fn run(g: &Global, a: DumpArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let (_, snap) = repo.find_snapshot(&keys, &a.snapshot)?;
    let index = repo.load_index(&keys)?;
    let reader = BlobReader::new(&repo, &keys, &index)?;
    let node = reader
        .find(&snap.tree, &a.file)?
        .ok_or_else(|| Error::NotFound {
            what: format!("{} in the snapshot", a.file),
            hint: " (list files with `coop ls`)".into(),
        })?;
    if node.kind != NodeKind::File {
        return Err(Error::Usage {
            what: format!("{} is a {:?}, not a file", a.file, node.kind),
        }
        .into());
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    reader.dump(&node, &mut out)?;
    out.flush()?;
    Ok(crate::exit::OK)
}
