//! `coop init`

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::keys;
use coop_agent::{Error, Repo};
use coop_formats::config::ChunkerParams;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args)]
pub struct InitArgs {
    /// age (age1…) or SSH (ssh-ed25519 …) recipient allowed to read tenant `coop`; repeatable.
    #[arg(long, env = "COOP_RECIPIENTS", value_delimiter = ',')]
    recipient: Vec<String>,
    /// File with one recipient per line.
    #[arg(long, env = "COOP_RECIPIENT_FILE")]
    recipient_file: Vec<PathBuf>,
    /// The chunker's smallest, average and largest chunk, fixed for the repository's life
    /// (default 512KiB,1MiB,8MiB). Smaller chunks deduplicate more finely and cost more index and
    /// more metadata per byte. Sizes in bytes or with a unit (KiB, MiB); from 64,256,1KiB up
    /// to 1MiB,4MiB,16MiB.
    #[arg(long, value_name = "MIN,AVG,MAX", value_parser = parse_chunker_params)]
    chunker_params: Option<ChunkerParams>,
}

/// `MIN,AVG,MAX` as sizes (`64`, `512KiB`, `1MiB`), in the ranges readers accept.
fn parse_chunker_params(s: &str) -> std::result::Result<ChunkerParams, String> {
    let sizes: Vec<u32> = s
        .split(',')
        .map(|p| {
            coop_agent::settings::parse_size(p)
                .and_then(|n| u32::try_from(n).map_err(|_| format!("{p:?} is too large")))
        })
        .collect::<std::result::Result<_, _>>()?;
    let [min_size, avg_size, max_size] = sizes[..] else {
        return Err(format!("expected MIN,AVG,MAX (three sizes), got {s:?}"));
    };
    let c = ChunkerParams {
        min_size,
        avg_size,
        max_size,
        ..ChunkerParams::default()
    };
    // Checked here, before `init` creates an identity or anything else.
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

/// `init --json`: the new repository and who reads its tenant coop.
#[derive(Serialize)]
struct Created<'a> {
    repo_id: String,
    url: &'a str,
    tenant: &'a str,
    recipients: &'a [String],
}

pub fn run(g: &Global, a: InitArgs) -> Result<i32> {
    let url = util::repo_url(g)?;
    let mut recipients = Vec::new();
    for r in &a.recipient {
        coop_formats::crypt::parse_recipient(r).map_err(|e| Error::Invalid {
            what: e.to_string(),
        })?;
        recipients.push(r.trim().to_string());
    }
    for f in &a.recipient_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        recipients.extend(
            coop_formats::crypt::parse_recipients_file(&text).map_err(|e| Error::Invalid {
                what: format!("{}: {e}", f.display()),
            })?,
        );
    }
    let mut notes = Vec::new();
    if recipients.is_empty() {
        let path = match &g.identity_file {
            Some(p) => p.clone(),
            None => keys::default_identity_path().ok_or_else(|| Error::Invalid {
                what: "cannot find a place for the identity: set XDG_CONFIG_HOME or HOME, or give --identity-file".into(),
            })?,
        };
        if path.exists() {
            recipients = keys::recipients_of_identity_file(&path)?;
            notes.push(format!("Using the existing identity {}.", path.display()));
        } else {
            let r = keys::create_identity_file(&path)?;
            notes.push(format!(
                "Created a new identity in {} (mode 0600).\n\
                 Keep a copy of it somewhere safe and offline: without it nothing in this repository can be restored.",
                path.display()
            ));
            recipients.push(r);
        }
    }
    let p = g.printer();
    let need_writer_key = notes.is_empty() && !local_identity_is_recipient(g, &recipients);
    let (repo, _) = Repo::init_with(
        url,
        recipients.clone(),
        coop_agent::now_rfc3339(),
        a.chunker_params.unwrap_or_default(),
    )?;
    // Always said, even with --quiet: losing this identity means losing the backups.
    for n in notes {
        p.always(n);
    }
    if g.json {
        p.json_sorted(&Created {
            repo_id: repo.config.repo_id.to_hex(),
            url,
            tenant: "coop",
            recipients: &recipients,
        })?;
        return Ok(crate::exit::OK);
    }
    p.summary(format!(
        "Created repository {} at {url}\nTenant \"coop\" is encrypted to {}:",
        repo.config.repo_id.short(),
        util::plural(recipients.len() as u64, "recipient", "recipients")
    ))?;
    for r in &recipients {
        p.summary(format!("  {r}"))?;
    }
    if need_writer_key {
        // The recipients were given, and no identity here opens the repository: a backup
        // from this machine needs a writer key.
        p.summary(format!(
            "Next: on a machine with one of these identities, `coop key export-writer --repo {url} --name SITE --out writer.key`, \
             then back up here with `coop backup --repo {url} --writer-key writer.key PATH`"
        ))?;
    } else {
        p.summary(format!("Next: coop backup --repo {url} PATH"))?;
    }
    Ok(crate::exit::OK)
}

/// Whether the identity this machine would use is one of `recipients`.
fn local_identity_is_recipient(g: &Global, recipients: &[String]) -> bool {
    let path = g
        .identity_file
        .clone()
        .or_else(|| keys::default_identity_path().filter(|p| p.exists()));
    path.and_then(|p| keys::recipients_of_identity_file(&p).ok())
        .is_some_and(|mine| mine.iter().any(|r| recipients.contains(r)))
}

#[cfg(test)]
mod tests {
    use super::parse_chunker_params;

    #[test]
    fn chunker_params_are_three_sizes() {
        let c = parse_chunker_params("64,256,1KiB").unwrap();
        assert_eq!((c.min_size, c.avg_size, c.max_size), (64, 256, 1024));
        let c = parse_chunker_params("512KiB, 1MiB, 8MiB").unwrap();
        assert_eq!(c, coop_formats::config::ChunkerParams::default());
        for bad in [
            "64,256",
            "64,256,1KiB,2KiB",
            "64,x,1KiB",
            "64,256,8GiB",
            "",
            "32,256,1KiB",
        ] {
            assert!(parse_chunker_params(bad).is_err(), "{bad}");
        }
    }
}
