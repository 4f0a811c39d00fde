//! The report archive (issue 30 item 4): a scheduled job writes the transparency report (and
//! the published setup) into `DIR/<date>/`, keeps every earlier copy, and rewrites
//! `DIR/index.html`, which links them newest first; each report says when the next is due.

use super::jobs::JobOutcome;
use super::Agent;
use crate::error::{Error, Result};
use crate::report;
use crate::settings::JobSettings;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Writes `bytes` to `path` through a temporary file in the same directory, so that a reader
/// never sees half a page.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `DIR/<date>`, or `DIR/<date>-2`, `-3` … when a report of that day is there already.
fn dated_dir(dir: &Path, date: &str) -> Result<PathBuf> {
    for n in 1.. {
        let name = if n == 1 {
            date.to_string()
        } else {
            format!("{date}-{n}")
        };
        let d = dir.join(&name);
        match std::fs::create_dir(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&d, e)),
        }
    }
    unreachable!("some name is free")
}

/// The archive's index page: every dated copy, newest first.
fn index_page(dir: &Path, title: &str) -> Result<String> {
    let mut copies: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .filter(|e| e.path().join("index.html").is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .filter(|n| n.len() >= 10 && n.as_bytes()[4] == b'-' && n.as_bytes()[7] == b'-')
        .collect();
    copies.sort_by(|a, b| b.cmp(a));
    let esc = report::html::escape;
    let mut o = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n</head>\n<body>\n\
         <h1>{}</h1>\n<p>Every report, newest first: compare them to see what changed.</p>\n<ul>\n",
        esc(title),
        esc(title)
    );
    for c in &copies {
        let setup = if dir.join(c).join("setup.html").is_file() {
            format!(" (<a href=\"{}/setup.html\">setup</a>)", esc(c))
        } else {
            String::new()
        };
        o.push_str(&format!(
            "<li><a href=\"{}/index.html\">{}</a>{setup}</li>\n",
            esc(c),
            esc(c)
        ));
    }
    o.push_str("</ul>\n</body>\n</html>\n");
    Ok(o)
}

impl Agent {
    /// A report job's run: the report of the last `since`, dated, beside the earlier ones.
    pub(super) fn write_report_archive(
        &self,
        job: &JobSettings,
        dir: &Path,
        since: Duration,
        setup: bool,
        out: &mut JobOutcome,
    ) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let history = self.history()?;
        let until = crate::history::now();
        let opts = report::Options {
            since: until - since.as_secs() as i64,
            until,
            member: None,
        };
        let mut r = report::gather(
            &report::Sources {
                repo: &self.repo,
                access: &self.access,
                settings: Some(&self.cfg),
                history: Some(&history),
            },
            &opts,
        )?;
        r.next_due =
            super::schedule::next_due(&job.cron, &job.name, until, None).map(crate::unix_rfc3339);
        let copy = dated_dir(dir, &r.generated[..10.min(r.generated.len())])?;
        write_atomic(
            &copy.join("index.html"),
            report::html::render(&r).as_bytes(),
        )?;
        write_atomic(
            &copy.join("report.json"),
            &serde_json::to_vec_pretty(&r).expect("serializes"),
        )?;
        if setup {
            let s =
                report::setup::gather(&self.repo, &self.access, &self.cfg, Some(&history), &[])?;
            write_atomic(
                &copy.join("setup.html"),
                report::setup::render(&s).as_bytes(),
            )?;
        }
        let title = match &self.cfg.cooperative {
            Some(c) => format!("{}: transparency reports", c.name),
            None => format!("{}: transparency reports", self.cfg.site.name),
        };
        write_atomic(&dir.join("index.html"), index_page(dir, &title)?.as_bytes())?;
        out.warnings.extend(r.warnings.iter().cloned());
        out.message = format!(
            "report written to {}{}",
            copy.display(),
            r.next_due
                .as_ref()
                .map(|n| format!("; the next is due {n}"))
                .unwrap_or_default()
        );
        Ok(())
    }
}
