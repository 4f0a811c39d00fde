//! indicatif progress bars behind the engine's `Progress` trait; hidden when stderr is
//! not a terminal, with --quiet, or with --json.

use coop_agent::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;

pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    visible: bool,
    quiet: bool,
    files: std::sync::atomic::AtomicU64,
}

impl Bars {
    pub fn new(quiet: bool, json: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            files: Default::default(),
            visible: !quiet && !json && std::io::stderr().is_terminal(),
            quiet: quiet || json,
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
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
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
    fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        match &*self.bar.lock().expect("lock") {
            Some(b) => b.suspend(|| eprintln!("coop: warning: {message}")),
            None => eprintln!("coop: warning: {message}"),
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.lock().expect("lock").take() {
            b.finish_and_clear();
        }
    }
}
