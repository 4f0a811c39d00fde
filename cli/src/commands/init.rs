//! `coop init`

use crate::global::Global;
use crate::util;
use anyhow::{Context, Result};
use clap::Args;
use coop_agent::keys;
use coop_agent::repo::Repo;
use coop_agent::Error;
use std::path::PathBuf;

#[derive(Args)]
pub struct InitArgs {
    /// age (age1…) or SSH (ssh-ed25519 …) recipient allowed to read tenant `coop`; repeatable.
    #[arg(long, env = "COOP_RECIPIENTS", value_delimiter = ',')]
    recipient: Vec<String>,
    /// File with one recipient per line.
    #[arg(long, env = "COOP_RECIPIENT_FILE")]
    recipient_file: Vec<PathBuf>,
}

pub fn run(g: &Global, a: InitArgs) -> Result<i32> {
    let url = util::repo_url(g)?;
    let mut recipients = Vec::new();
    for r in &a.recipient {
        coop_formats::crypt::parse_recipient(r).map_err(|e| Error::Usage {
            what: e.to_string(),
        })?;
        recipients.push(r.trim().to_string());
    }
    for f in &a.recipient_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        recipients.extend(
            coop_formats::crypt::parse_recipients_file(&text).map_err(|e| Error::Usage {
                what: format!("{}: {e}", f.display()),
            })?,
        );
    }
    let mut notes = Vec::new();
    if recipients.is_empty() {
        let path = match &g.identity_file {
            Some(p) => p.clone(),
            None => keys::default_identity_path().ok_or_else(|| Error::Usage {
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
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (repo, _) = Repo::init(url, recipients.clone(), now)?;
    if g.json {
        util::print_json(&serde_json::json!({
            "repo_id": repo.config.repo_id.to_hex(), "url": url, "tenant": "coop", "recipients": recipients,
        }))?;
    } else {
        // Always said, even with --quiet: losing this identity means losing the backups.
        for n in notes {
            eprintln!("{n}");
        }
        if g.quiet {
            return Ok(crate::exit::OK);
        }
        println!(
            "Created repository {} at {url}\nTenant \"coop\" is encrypted to {} recipient(s):",
            repo.config.repo_id.short(),
            recipients.len()
        );
        for r in &recipients {
            println!("  {r}");
        }
        println!("Next: coop backup --repo {url} PATH");
    }
    Ok(crate::exit::OK)
}
