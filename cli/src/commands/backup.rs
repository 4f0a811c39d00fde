//! `coop backup`

use crate::global::Global;
use crate::progress::Bars;
use crate::util;
use anyhow::Result;
use clap::Args;
use coop_agent::{backup, BackupOptions};
use std::path::PathBuf;

#[derive(Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Exclude paths matching this pattern (without a leading `/` it matches at any depth, as in restic).
    #[arg(long, short = 'e', env = "COOP_EXCLUDE", value_delimiter = ',')]
    exclude: Vec<String>,
    /// Read exclude patterns from a file, one per line.
    #[arg(long, env = "COOP_EXCLUDE_FILE")]
    exclude_file: Vec<PathBuf>,
    /// Do not cross file system boundaries.
    #[arg(long, short = 'x', value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_ONE_FILE_SYSTEM")]
    one_file_system: bool,
    /// Also back up the contents of directories marked with CACHEDIR.TAG (skipped by default).
    #[arg(long, value_parser = clap::builder::FalseyValueParser::new(), env = "COOP_INCLUDE_CACHES")]
    include_caches: bool,
    /// Do not honour CACHEDIR.TAG in this directory or below it (repeatable): for shared
    /// folders, where anyone who can write could hide everyone's files with a tag.
    #[arg(
        long,
        value_name = "PATH",
        env = "COOP_NO_CACHEDIR_TAG_BELOW",
        value_delimiter = ','
    )]
    no_cachedir_tag_below: Vec<PathBuf>,
    /// Run this shell command and back up its standard output as one file, without a temp file.
    #[arg(long, env = "COOP_STDIN_FROM_COMMAND")]
    stdin_from_command: Option<String>,
    /// File name of the command output in the snapshot.
    #[arg(long, env = "COOP_STDIN_FILENAME", default_value = "stdin")]
    stdin_filename: String,
    /// Tag the snapshot (repeatable).
    #[arg(long, env = "COOP_TAG", value_delimiter = ',')]
    tag: Vec<String>,
    /// Host name to record (default: this machine's).
    #[arg(long, env = "COOP_HOST")]
    host: Option<String>,
}

pub fn run(g: &Global, a: BackupArgs) -> Result<i32> {
    let p = g.printer();
    let repo = util::open_repo(g)?;
    let access = util::write_access(g)?;
    let keys = coop_agent::tenant::keys(&repo, &access, &g.tenant)?;
    let member = coop_agent::members::member_of(&repo, &access, &g.tenant)?;
    if g.tenant.starts_with("member/") && member.is_none() {
        return Err(coop_agent::Error::NotFound {
            what: format!(
                "member tenant {:?} in the registry (see `coop member list`)",
                g.tenant
            ),
        }
        .into());
    }
    let opts = options(g, a, &repo, &access, member.as_ref())?;
    let bars = Bars::new(g);
    let out = backup::backup(&repo, &keys, &opts, &bars)?;
    if let Some(w) = &out.log_warning {
        p.warn(w);
    }
    if g.json {
        p.json_sorted(&out)?;
    } else {
        summary(&p, &out)?;
    }
    Ok(if out.warnings.is_empty() {
        crate::exit::OK
    } else {
        crate::exit::WARNINGS
    })
}

/// What to back up and how, from the arguments (a member's backup carries a manifest and
/// is held to the member's and their group's quota).
fn options(
    g: &Global,
    a: BackupArgs,
    repo: &coop_agent::repo::Repo,
    access: &coop_agent::keys::Access,
    member: Option<&coop_formats::registry::Member>,
) -> Result<BackupOptions> {
    Ok(BackupOptions {
        paths: a.paths,
        excludes: a.exclude,
        exclude_files: a.exclude_file,
        one_file_system: a.one_file_system,
        exclude_caches: !a.include_caches,
        ignore_cachedir_tag_below: a.no_cachedir_tag_below,
        commands: a
            .stdin_from_command
            .map(|command| {
                vec![backup::SourceCommand {
                    command,
                    filename: a.stdin_filename,
                    stdin: None,
                    env: Default::default(),
                }]
            })
            .unwrap_or_default(),
        tags: a.tag,
        host: a.host.unwrap_or_else(coop_agent::hostname),
        cache_dir: g.cache_dir.clone(),
        manifest: member.is_some(),
        quota: member.and_then(|m| m.quota),
        group: match member {
            Some(m) => coop_agent::groups::limit_of(repo, access, &m.name)?,
            None => None,
        },
        ..Default::default()
    })
}

/// What the backup did, for a terminal.
fn summary(p: &crate::output::Printer, out: &backup::BackupOutcome) -> Result<()> {
    let s = &out.snapshot.summary;
    let secs = (s.duration_ms as f64 / 1000.0).max(0.001);
    p.summary(format!(
        "Files:  {} new, {} changed, {} unchanged ({})",
        s.files_new,
        s.files_changed,
        s.files_unchanged,
        util::plural(s.dirs, "dir", "dirs")
    ))?;
    // Percentages only where they mean something (tiny inputs give -9025 %).
    let dedup = if s.total_bytes >= 1 << 20 {
        format!(
            " ({:.1}% deduplicated)",
            100.0 * (1.0 - (s.bytes_added as f64 / s.total_bytes as f64).min(1.0))
        )
    } else {
        String::new()
    };
    p.summary(format!(
        "Data:   {} total, {} read, {} new after dedup{dedup}, {} stored (compressed and encrypted)",
        util::bytes(s.total_bytes),
        util::bytes(s.bytes_read),
        util::bytes(s.bytes_added),
        util::bytes(s.bytes_stored),
    ))?;
    p.summary(format!(
        "Time:   {secs:.2} s, {}/s",
        util::bytes((s.total_bytes as f64 / secs) as u64)
    ))?;
    if !out.excluded_caches.is_empty() {
        p.summary(format!(
            "Excluded: {} marked with CACHEDIR.TAG (contents not backed up; --include-caches or --no-cachedir-tag-below PATH keeps them): {}",
            util::plural(out.excluded_caches.len() as u64, "directory", "directories"),
            out.excluded_caches.join(", ")
        ))?;
    }
    p.summary(format!(
        "Snapshot {} saved (tenant {}).",
        out.id.short(),
        out.snapshot.tenant
    ))?;
    if !out.warnings.is_empty() {
        p.problem(format!(
            "{} could not be read, changed while read, or vanished during the backup: the snapshot is not exactly what the tree was; see the warnings above.",
            util::plural(
                out.warnings.len() as u64,
                "file or directory",
                "files or directories"
            )
        ));
    }
    Ok(())
}
