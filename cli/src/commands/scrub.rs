//! `coop scrub`: needs no keys.

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct ScrubArgs {}

pub fn run(g: &Global, _a: ScrubArgs) -> Result<i32> {
    let p = g.printer();
    let url = util::repo_url(g)?;
    let store =
        coop_agent::store::Store::open(url, false).map_err(|e| util::not_found_as_repo(e, url))?;
    let bars = Bars::new(g);
    let r = coop_agent::check::scrub(&store, &bars)?;
    if g.json {
        p.json(&r)?;
    } else {
        p.summary(format!(
            "{} objects, {} checked without keys",
            r.objects,
            util::bytes(r.bytes)
        ))?;
        for b in &r.bad {
            p.data(format!("BAD {b}"))?;
        }
        for u in &r.unexpected {
            p.data(format!("unexpected object {u}"))?;
        }
        p.summary(if r.bad.is_empty() {
            "all object names match their content".to_string()
        } else {
            util::plural(r.bad.len() as u64, "bad object", "bad objects")
        })?;
    }
    Ok(if r.bad.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::INTEGRITY
    })
}
