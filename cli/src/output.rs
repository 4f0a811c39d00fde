//! The one printer: every command's output goes through it.
//!
//! Rules (after uv's STYLE.md): standard output is for data — listings, results, `--json`
//! documents — and nothing else; messages, warnings and progress go to standard error.
//! `--json` prints exactly one JSON document (or JSON lines where the command streams);
//! `--quiet` keeps the data and the warnings and drops the rest. A closed pipe
//! (`coop ls … | head`) ends the command quietly with success, as ripgrep does.
//!
//! Names come from trees others write (a member names her files, a host names itself): what
//! is printed for a person goes through [`escape`], so a name cannot move the cursor, clear
//! the screen, set the title or the clipboard, or fake a line of output. `--json` keeps the
//! exact text (JSON escapes control characters itself).

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write;

/// A control character: C0, DEL or C1.
fn is_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}')
}

/// Text for a terminal: every control character (C0, DEL, C1; so every escape sequence's
/// ESC or CSI) becomes a visible escape — `\n`, `\r`, `\t`, `\x1b`, `\u{9b}` — and, in text
/// that has any, backslashes are doubled so the escaped form reads one way. Text without
/// control characters is returned as it is. Use it on names, hosts, tags and any message
/// that carries them.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && is_control(c) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if is_control(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`escape`] for text of several lines that coop composed: its line breaks stay, every
/// other control character is escaped.
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_control(c)) {
        return Cow::Borrowed(s);
    }
    let lines: Vec<Cow<'_, str>> = s.split('\n').map(escape).collect();
    Cow::Owned(lines.join("\n"))
}

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

    /// One JSON document on standard output with every object's keys in alphabetical order,
    /// at every depth: the order the documents of `backup`, `check`, `snapshots`, `ls`, `init`,
    /// `protect`, `key export-writer`, `member`, `admin whoami`, `recipe`, `recovery`, `config`
    /// and `log show`/`verify` have always had (they were built as `serde_json::Value`s, whose
    /// maps are sorted), kept so that their output stays byte for byte what it was.
    pub fn json_sorted(&self, v: &impl serde::Serialize) -> anyhow::Result<()> {
        self.json(&serde_json::to_value(v)?)
    }

    /// One JSON line on standard output (streaming listings).
    pub fn json_line(&self, out: &mut impl Write, v: &impl serde::Serialize) -> anyhow::Result<()> {
        serde_json::to_writer(&mut *out, v).map_err(json_error)?;
        writeln!(out).map_err(write_error)
    }

    /// A line of data on standard output (shown even with `--quiet`).
    pub fn data(&self, line: impl Display) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", escape_lines(&line.to_string())).map_err(write_error)
    }

    /// Lines of data rendered by the engine (each ends with a line break) on standard output,
    /// as [`Printer::data`] prints each of them.
    pub fn lines(&self, text: &str) -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(escape_lines(text).as_bytes())
            .map_err(write_error)
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
            let _ = writeln!(std::io::stderr(), "{}", escape_lines(&line.to_string()));
        }
    }

    /// A message that must be seen even with `--quiet` (a new identity to keep safe).
    pub fn always(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr(), "{}", escape_lines(&line.to_string()));
    }

    /// A warning on standard error (shown with `--quiet` too; `--json` output carries them as
    /// well). One line: a line break in it (from a name) is escaped like any control character.
    pub fn warn(&self, line: impl Display) {
        let _ = writeln!(
            std::io::stderr(),
            "coop: warning: {}",
            escape(&line.to_string())
        );
    }

    /// A problem that makes the command fail, listed before its summary (one line, escaped).
    pub fn problem(&self, line: impl Display) {
        let _ = writeln!(std::io::stderr(), "coop: {}", escape(&line.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("plain name \\ ü"), "plain name \\ ü");
        assert_eq!(
            escape("a\x1b]52;c;aGk=\x07b\x1b[2J\r\n\u{9b}\u{7f}\\"),
            "a\\x1b]52;c;aGk=\\x07b\\x1b[2J\\r\\n\\u{9b}\\x7f\\\\"
        );
        assert_eq!(escape_lines("one\ntwo\x1b[2J"), "one\ntwo\\x1b[2J");
        assert_eq!(escape_lines("one\ntwo"), "one\ntwo");
    }
}
