//! indicatif progress bars behind the engine's `Progress` trait; hidden when stderr is
//! not a terminal, with --quiet, or with --json. With -v, the files a backup reads (new or
//! changed) are listed on standard error; with -vv, every file.

use crate::global::Global;
use crate::output::escape;
use coop_agent::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    visible: bool,
    quiet: bool,
    verbose: u8,
    files: std::sync::atomic::AtomicU64,
}

impl Bars {
    pub fn new(g: &Global) -> Self {
        Self {
            bar: Mutex::new(None),
            files: Default::default(),
            visible: !g.quiet && !g.json && std::io::stderr().is_terminal(),
            quiet: g.quiet || g.json,
            verbose: g.verbose,
        }
    }

    fn say(&self, line: &str) {
        match &*self.bar.lock().expect("lock") {
            Some(b) => b.suspend(|| {
                let _ = writeln!(std::io::stderr(), "{line}");
            }),
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }
}

impl Progress for Bars {
    fn phase(&self, name: &str, total: Option<u64>) {
        if !self.visible {
            return;
        }
        let pb = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template(
                    "{prefix:>8} {spinner} {bytes} {bytes_per_sec} {msg} {elapsed}",
                )
                .expect("template"),
            ),
        };
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_prefix(name.to_string());
        pb.enable_steady_tick(std::time::Duration::from_millis(200));
        self.files.store(0, std::sync::atomic::Ordering::Relaxed);
        *self.bar.lock().expect("lock") = Some(pb);
    }
    fn add_bytes(&self, bytes: u64) {
        if let Some(b) = &*self.bar.lock().expect("lock") {
            b.inc(bytes);
        }
    }
    fn add_file(&self) {
        let n = self
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n.is_multiple_of(64) {
            if let Some(b) = &*self.bar.lock().expect("lock") {
                b.set_message(format!("{n} files"));
            }
        }
    }
    fn item(&self, what: &str, path: &std::path::Path) {
        let wanted = match what {
            "unchanged" => self.verbose >= 2,
            _ => self.verbose >= 1,
        };
        if wanted && !self.quiet {
            self.say(&escape(&format!("{what:>9} {}", path.display())));
        }
    }
    fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        self.say(&format!("coop: warning: {}", escape(message)));
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("lock").take() {
            b.finish_and_clear();
        }
    }
}
