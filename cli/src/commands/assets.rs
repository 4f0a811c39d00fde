//! `coop __package-assets DIR` (hidden): writes what the Debian package installs besides the
//! binary, from this binary's own definitions, so that none of it can drift from the CLI:
//!
//! - `DIR/man/coop.1` and one page per subcommand (`coop-backup.1`, `coop-config-check.1`, …),
//!   by clap_mangen;
//! - `DIR/completions/coop` (bash), `_coop` (zsh), `coop.fish`, by clap_complete;
//! - `DIR/agent.toml`, the packaged /etc/coop/agent.toml (what `coop config init` renders).
//!
//! scripts/package.sh runs it on the release binary before cargo-deb packs the files.

use clap::{Arg, ArgMatches, Command};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const NAME: &str = "__package-assets";

/// The hidden subcommand, added to the parser only (not to the `Command` the pages and
/// completions are made from, so they never mention it).
pub fn command() -> Command {
    Command::new(NAME)
        .hide(true)
        .about("Write the man pages, shell completions and packaged agent.toml into DIR")
        .arg(
            Arg::new("dir")
                .value_name("DIR")
                .required(true)
                .value_parser(clap::value_parser!(PathBuf)),
        )
}

pub fn run(cli: Command, m: &ArgMatches) -> i32 {
    let dir = m.get_one::<PathBuf>("dir").expect("required");
    match write_all(cli, dir) {
        Ok(n) => {
            eprintln!("coop: wrote {n} files into {}", dir.display());
            crate::exit::OK
        }
        Err(e) => {
            eprintln!("coop: error: {}: {e}", dir.display());
            crate::exit::IO
        }
    }
}

fn write_all(cli: Command, dir: &Path) -> std::io::Result<usize> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        if d.exists() {
            std::fs::remove_dir_all(d)?; // no page of a removed subcommand survives
        }
        std::fs::create_dir_all(d)?;
    }
    let mut n = 0;
    // `coop help …` is a subcommand for people typing; a page for it would only repeat.
    fn no_help(c: Command) -> Command {
        c.disable_help_subcommand(true).mut_subcommands(no_help)
    }
    let mut pages = no_help(cli.clone());
    pages.build();
    n += write_pages(&pages, &man)?;

    for (shell, file) in [
        (clap_complete::Shell::Bash, "coop"),
        (clap_complete::Shell::Zsh, "_coop"),
        (clap_complete::Shell::Fish, "coop.fish"),
    ] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cli.clone(), "coop", &mut buf);
        std::fs::write(completions.join(file), buf)?;
        n += 1;
    }

    std::fs::write(
        dir.join("agent.toml"),
        crate::commands::config::packaged_example(),
    )?;
    Ok(n + 1)
}

/// One page per command, the subcommands' after their parent's.
fn write_pages(cmd: &Command, dir: &Path) -> std::io::Result<usize> {
    let version = env!("CARGO_PKG_VERSION");
    let page = clap_mangen::Man::new(cmd.clone())
        .source(format!("coop {version}"))
        .manual("coop manual");
    let name = page.get_filename();
    let mut buf = Vec::new();
    page.render(&mut buf)?;
    buf.write_all(extra_sections(cmd).as_bytes())?;
    std::fs::write(dir.join(&name), buf)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += write_pages(sub, dir)?;
    }
    Ok(n)
}

/// The man name of a command: `coop-config-check` (roff-escaped).
fn man_name(c: &Command) -> String {
    c.get_display_name()
        .unwrap_or(c.get_name())
        .replace('-', "\\-")
}

/// FILES and SEE ALSO, which clap has no place for.
fn extra_sections(cmd: &Command) -> String {
    let mut s = String::new();
    let top = cmd.get_display_name().unwrap_or(cmd.get_name()) == "coop";
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    if top || name.starts_with("coop-agent") || name.starts_with("coop-config") {
        s.push_str(".SH FILES\n");
        for (path, what) in [
            ("/etc/coop/agent.toml", "The agent configuration (\\fBcoop config init\\fR writes one, \\fBcoop config check\\fR validates it)."),
            ("/etc/coop/identity.txt", "The identity the packaged configuration names; keep a copy offline."),
            ("/var/lib/coop/", "State; the default local repository is /var/lib/coop/repo."),
            ("/var/cache/coop/", "The agent's catalog, job history, locks and what it has seen at each store."),
            ("/usr/share/coop/examples/, /usr/share/coop/recipes/", "Example configurations and the service recipes (\\fBcoop recipe list\\fR)."),
            ("/usr/share/doc/coop/OPERATOR.md", "The operator guide: keys, sites, peers, systemd, restoring after losing a site."),
        ] {
            s.push_str(&format!(".TP\n\\fI{}\\fR\n{what}\n", path.replace('-', "\\-")));
        }
    }
    s.push_str(".SH \"SEE ALSO\"\n");
    let mut refs: Vec<String> = Vec::new();
    if !top {
        refs.push("\\fBcoop\\fR(1)".into());
    }
    refs.extend(
        cmd.get_subcommands()
            .filter(|c| !c.is_hide_set())
            .map(|c| format!("\\fB{}\\fR(1)", man_name(c))),
    );
    if top || name.starts_with("coop-agent") {
        refs.push("\\fBsystemd.service\\fR(5)".into());
    }
    s.push_str(&refs.join(",\n"));
    s.push('\n');
    s
}
