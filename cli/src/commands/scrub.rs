//! `coop scrub`: needs no keys.

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ScrubArgs {}

pub fn run(g: &Global, _a: ScrubArgs) -> Result<i32> {
    let store = coop_agent::store::Store::open(util::repo_url(g)?, false).map_err(|e| {
        if e.is_not_found() {
            coop_agent::Error::RepoNotFound {
                url: g.repo.clone().unwrap_or_default(),
            }
        } else {
            e.into()
        }
    })?;
    let bars = Bars::new(g.quiet, g.json);
    let r = coop_agent::check::scrub(&store, &bars)?;
    if g.json {
        util::print_json(&r)?;
    } else {
        println!(
            "{} objects, {} checked without keys",
            r.objects,
            util::bytes(r.bytes)
        );
        for b in &r.bad {
            println!("BAD {b}");
        }
        for u in &r.unexpected {
            println!("unexpected object {u}");
        }
        println!(
            "{}",
            if r.bad.is_empty() {
                "all object names match their content".to_string()
            } else {
                format!("{} bad object(s)", r.bad.len())
            }
        );
    }
    Ok(if r.bad.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}
