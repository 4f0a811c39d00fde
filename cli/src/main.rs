//! `coop`: encrypted, deduplicated backups for community hosters, replicated across sites.
//!
//! One module per subcommand in `commands/`. `anyhow` lives only here, at the edge; the
//! exit code comes from the engine's [`coop_agent::ErrorKind`], never from message text.

mod commands;
mod exit;
mod global;
mod output;
mod progress;
mod util;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "coop",
    version,
    about = "Encrypted, deduplicated backups for community hosters, replicated across sites.",
    after_help = "Exit codes: 0 ok, 1 unexpected error, 2 usage, 3 backup done but some files were unreadable, \
4 repository not found, 5 wrong key / access denied, 6 data failed verification, 7 restore partial, \
8 snapshot or path not found, 9 source command failed, 10 store error, 11 local I/O error, 12 quota exceeded, \
13 an access was logged but not cosigned by enough witnesses in time (--log-timeout); nothing was read.

The repository, key, tenant, cache and freshness options go before the subcommand or after it; \
`coop SUBCOMMAND --help` shows those it uses."
)]
struct Cli {
    #[command(flatten)]
    global: global::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository (tenant `coop`).
    Init(commands::init::InitArgs),
    /// Back up paths and command output into a new snapshot.
    Backup(commands::backup::BackupArgs),
    /// List snapshots.
    Snapshots(commands::snapshots::SnapshotsArgs),
    /// List files in a snapshot.
    Ls(commands::ls::LsArgs),
    /// Write one file of a snapshot to stdout.
    Dump(commands::dump::DumpArgs),
    /// Show what changed between two snapshots.
    Diff(commands::diff::DiffArgs),
    /// Restore a snapshot (or a path in it) into a directory.
    Restore(commands::restore::RestoreArgs),
    /// Check the repository: structure, and with --read-data every blob.
    Check(commands::check::CheckArgs),
    /// Check every object's name against its content. Needs no keys.
    Scrub(commands::scrub::ScrubArgs),
    /// Remove snapshots by a retention policy.
    Forget(commands::forget::ForgetArgs),
    /// Reclaim space from data no snapshot needs.
    Prune(commands::prune::PruneArgs),
    /// Keep a snapshot whatever forget policies say.
    Protect(commands::protect::ProtectArgs),
    /// Copy what another site lacks, verbatim. Needs no keys.
    Replicate(commands::replicate::ReplicateArgs),
    /// Run the agent daemon (scheduled jobs, replication to peers), or one job with --once.
    Agent(commands::agent::AgentArgs),
    /// Show each job's last and next run and each peer's replication lag.
    Status(commands::agent::StatusArgs),
    /// Agent configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Export a member's own data (tar or directory, with a signed manifest).
    Export(commands::export::ExportArgs),
    /// Check an export offline against its signed manifest. Needs no secret.
    Verify(commands::export::VerifyArgs),
    /// Stored and logical bytes, snapshots and quota use per tenant.
    Usage,
    /// The transparency report: per member usage, cost and accesses, the sites' costs and
    /// energy, who can read what; as text, --json, or a static page with --html DIR.
    Report(commands::report::ReportArgs),
    /// Service recipes: agent jobs, member selectors and restore guides for the services
    /// community hosters run.
    #[command(subcommand)]
    Recipe(commands::recipe::RecipeCommand),
    /// Manage members (per-member tenants, quotas).
    #[command(subcommand)]
    Member(commands::member::MemberCommand),
    /// Groups of members one member pays for, with a shared quota.
    #[command(subcommand)]
    Group(commands::group::GroupCommand),
    /// Admins as persons: name each admin with their own key, retire one.
    #[command(subcommand)]
    Admin(commands::admin::AdminCommand),
    /// Manage keys: writer keys for agents that must not read, their list and revocation.
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    /// The access log: show, verify and witness the sites' logs; set the witness quorum.
    #[command(subcommand)]
    Log(commands::log::LogCommand),
    /// k-of-n recovery of member data: split, request, approve.
    #[command(subcommand)]
    Recovery(commands::recovery::RecoveryCommand),
}

/// The command line: [`Cli`] with each subcommand given the repository, key and tenant
/// options it uses (`global::SCOPES`).
fn command() -> clap::Command {
    global::attach(Cli::command())
}

fn main() {
    // Cli::parse(), plus the hidden `coop __package-assets DIR` (scripts/package.sh), which
    // writes the man pages and completions from `Cli::command()` itself.
    let matches = command()
        .subcommand(commands::assets::command())
        .get_matches();
    if let Some((commands::assets::NAME, m)) = matches.subcommand() {
        std::process::exit(commands::assets::run(command(), m));
    }
    let mut cli =
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command()).exit());
    cli.global.merge_from(&matches);
    util::init_tracing(cli.global.verbose);
    let g = match cli.global.resolve() {
        Ok(g) => g,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("coop: error: {}", exit::message(&e));
            std::process::exit(exit::code_for(&e));
        }
    };
    let res = match cli.command {
        Command::Init(a) => commands::init::run(&g, a),
        Command::Backup(a) => commands::backup::run(&g, a),
        Command::Snapshots(a) => commands::snapshots::run(&g, a),
        Command::Ls(a) => commands::ls::run(&g, a),
        Command::Dump(a) => commands::dump::run(&g, a),
        Command::Diff(a) => commands::diff::run(&g, a),
        Command::Restore(a) => commands::restore::run(&g, a),
        Command::Check(a) => commands::check::run(&g, a),
        Command::Scrub(a) => commands::scrub::run(&g, a),
        Command::Forget(a) => commands::forget::run(&g, a),
        Command::Prune(a) => commands::prune::run(&g, a),
        Command::Protect(a) => commands::protect::run(&g, a),
        Command::Replicate(a) => commands::replicate::run(&g, a),
        Command::Agent(a) => commands::agent::run(&g, a),
        Command::Status(a) => commands::agent::status(&g, a),
        Command::Config(c) => commands::config::run(&g, c),
        Command::Member(c) => commands::member::run(&g, c),
        Command::Export(a) => commands::export::run(&g, a),
        Command::Verify(a) => commands::export::verify(&g, a),
        Command::Usage => commands::export::usage(&g),
        Command::Report(a) => commands::report::run(&g, a),
        Command::Recipe(c) => commands::recipe::run(&g, c),
        Command::Admin(c) => commands::admin::run(&g, c),
        Command::Group(c) => commands::group::run(&g, c),
        Command::Key(k) => commands::key::run(&g, k),
        Command::Log(c) => commands::log::run(&g, c),
        Command::Recovery(c) => commands::recovery::run(&g, c),
    };
    match res {
        Ok(code) => std::process::exit(code),
        // The reader went away (`coop ls | head`): it has what it wanted.
        Err(e) if e.chain().any(|c| c.is::<output::PipeClosed>()) => std::process::exit(exit::OK),
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("coop: error: {}", output::escape_lines(&exit::message(&e)));
            if let Some(hint) = exit::hint_for(&e, g.repo.as_deref()) {
                eprintln!("coop: {}", output::escape_lines(&hint));
            }
            std::process::exit(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every subcommand says which repository, key and tenant options it uses, and every line
    /// of the table is a subcommand.
    #[test]
    fn every_subcommand_has_a_scope() {
        fn leaves(c: &clap::Command, path: &str, out: &mut Vec<String>) {
            if c.get_subcommands().next().is_none() {
                out.push(path.to_string());
            }
            for s in c.get_subcommands() {
                let p = if path.is_empty() {
                    s.get_name().to_string()
                } else {
                    format!("{path} {}", s.get_name())
                };
                leaves(s, &p, out);
            }
        }
        let mut found = Vec::new();
        leaves(&Cli::command(), "", &mut found);
        for l in &found {
            assert!(
                global::SCOPES.iter().any(|(p, _)| p == l),
                "coop {l}: no line in global::SCOPES"
            );
        }
        for (p, _) in global::SCOPES {
            assert!(
                found.contains(&p.to_string()),
                "SCOPES names no subcommand {p:?}"
            );
        }
        command().debug_assert();
    }
}
