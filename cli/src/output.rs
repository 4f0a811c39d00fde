//! The one printer: every command's output goes through it.
//!
//! Rules (after uv's STYLE.md): standard output is for data — listings, results, `--json`
//! documents — and nothing else; messages, warnings and progress go to standard error.
//! `--json` prints exactly one JSON document (or JSON lines where the command streams);
//! `--quiet` keeps the data and the warnings and drops the rest. A closed pipe
//! (`coop ls … | head`) ends the command quietly with success, as ripgrep does.

use std::fmt::Display;
use std::io::Write;

/// The output closed under us (EPIPE): not an error, the reader has what it wanted.
#[derive(Debug, thiserror::Error)]
#[error("the output was closed")]
pub struct PipeClosed;

/// Maps a write error: a closed pipe becomes [`PipeClosed`].
pub fn write_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        PipeClosed.into()
    } else {
        anyhow::Error::new(e).context("writing the output")
    }
}

/// Maps a JSON serialisation error: writing failed (a closed pipe), or the value was bad.
fn json_error(e: serde_json::Error) -> anyhow::Error {
    match e.classify() {
        serde_json::error::Category::Io => write_error(e.into()),
        _ => e.into(),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub json: bool,
    pub quiet: bool,
}

impl Printer {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// One JSON document on standard output.
    pub fn json(&self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, v).map_err(json_error)?;
        writeln!(out).map_err(write_error)?;
        out.flush().map_err(write_error)
    }

    /// One JSON line on standard output (streaming listings).
    pub fn json_line(&self, out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, v).map_err(json_error)?;
        writeln!(out).map_err(write_error)
    }

    /// A line of data on standard output (shown even with `--quiet`).
    pub fn data(&self, line: impl Display) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").map_err(write_error)
    }

    /// A line of a human summary on standard output (not with `--quiet` or `--json`).
    pub fn summary(&self, line: impl Display) -> anyhow::Result<()> {
        if self.quiet || self.json {
            return Ok(());
        }
        self.data(line)
    }

    /// A message for people on standard error (not with `--quiet` or `--json`).
    pub fn note(&self, line: impl Display) {
        if !self.quiet && !self.json {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }

    /// A message that must be seen even with `--quiet` (a new identity to keep safe).
    pub fn always(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// A warning on standard error (shown with `--quiet` too; `--json` output carries them as well).
    pub fn warn(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr(), "coop: warning: {line}");
    }

    /// A problem that makes the command fail, listed before its summary.
    pub fn problem(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr(), "coop: {line}");
    }
}
