//! `coop dump`

use crate::global::Global;
use crate::util::{self, FilterArgs};
use anyhow::Result;
use clap::Args;
use coop_agent::read::{BlobReader, DumpError, Found};
use coop_agent::Error;

#[derive(Args)]
pub struct DumpArgs {
    /// Snapshot ID, unique prefix, or `latest`.
    snapshot: String,
    /// Path of the file in the snapshot.
    path: String,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    access: util::AccessArgs,
}

pub fn run(g: &Global, a: DumpArgs) -> Result<i32> {
    let p = g.printer();
    let mut o = util::open_snapshot(g, &p, &a.snapshot, &a.filter.holding(&a.path))?;
    util::log_access(
        g,
        &p,
        &o.repo,
        &mut o.keys,
        coop_formats::tlog::Event::Dump,
        &a.access,
        Some(o.entry.id.to_hex()),
    )?;
    let index = coop_agent::index::load(&o.repo, &o.keys)?;
    let reader = BlobReader::new(&o.repo, &o.keys, &index)?;
    let node = match reader.at(&o.entry.snapshot.tree, &a.path)? {
        Some(Found::Node(n)) if n.kind == coop_formats::tree::NodeKind::File => n,
        Some(_) => {
            return Err(Error::Invalid {
                what: format!(
                    "{} is not a regular file in {}",
                    a.path,
                    util::describe(&o.entry)
                ),
            }
            .into())
        }
        None => return Err(util::path_not_found(&a.path, &o.entry)),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    match reader.dump(&node, &mut out) {
        Ok(_) => {}
        Err(DumpError::Read(e)) => return Err(e.into()),
        Err(DumpError::Write(e)) => return Err(crate::output::write_error(e)),
    }
    std::io::Write::flush(&mut out).map_err(crate::output::write_error)?;
    Ok(crate::exit::OK)
}
