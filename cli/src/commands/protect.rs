//! `coop protect`: keep a snapshot whatever `forget` policies say.

use crate::global::Global;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_formats::control::Protection;

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
}

pub fn run(g: &Global, a: ProtectArgs) -> Result<i32> {
    let repo = util::open_repo(g)?;
    let keys = repo.tenant_keys(&util::identity_access(g)?, &g.tenant)?;
    let (id, _) = repo.find_snapshot(&keys, &a.snapshot)?;
    if a.remove {
        let mut n = 0;
        for (path, p) in repo.list_control::<Protection>(&keys, "protected")? {
            if p?.snapshot == id {
                repo.store.delete(&path)?;
                n += 1;
            }
        }
        println!("removed {n} protection(s) of snapshot {}", id.short());
    } else {
        let body = Protection {
            snapshot: id,
            created: chrono::Utc::now().timestamp(),
            note: a.note,
        };
        repo.write_control(&keys, "protected", &body)?;
        println!("snapshot {} is protected: forget will keep it", id.short());
    }
    Ok(crate::exit::OK)
}
