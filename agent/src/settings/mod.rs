//! The agent's settings: agent.toml parsed and resolved once into typed values.
//!
//! - [`raw`]: the TOML as written (serde structs with spans, for line numbers).
//! - [`Settings`] (the model, `model.rs`): every size, duration, schedule and retention rule
//!   resolved and checked (resolution: `resolve.rs`, jobs in `jobs.rs`, the cooperative's
//!   facts in `cooperative.rs`), with a line-numbered [`ConfigProblem`] (this module) for
//!   each mistake. `coop config check` reports them; `coop agent` refuses to start on the
//!   same errors.
//! - the units (`units.rs`): sizes, durations and cron schedules.
//! - [`check`]: what can only be checked on this machine (files, stores, keys).
//!
//! Schedules are cron expressions in UTC.

pub mod check;
mod cooperative;
mod jobs;
mod model;
pub mod raw;
mod resolve;
mod units;

use cooperative::resolve_cooperative;
use jobs::resolve_job;
pub use model::*;
use resolve::Problems;
pub use units::*;

use crate::backup::{DirCommand, SourceCommand};
use crate::store::S3Options;
use std::path::PathBuf;
use std::time::Duration;

/// A problem in a config file, with its line (1-based) where known. Warnings do not stop
/// the agent (a peer that is down, say); errors do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigProblem {
    pub line: Option<usize>,
    pub message: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let w = if self.warning { "warning: " } else { "" };
        match self.line {
            Some(l) => write!(f, "line {l}: {w}{}", self.message),
            None => write!(f, "{w}{}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caretaker_is_a_name_and_a_contact() {
        let c = Caretaker::parse(" Anna Beispiel <anna@example.org> ").unwrap();
        assert_eq!(
            (c.name.as_str(), c.contact.as_str()),
            ("Anna Beispiel", "anna@example.org")
        );
        assert_eq!(c.to_string(), "Anna Beispiel <anna@example.org>");
        assert_eq!(
            Caretaker::parse("Ben <@ben:example.org>").unwrap().contact,
            "@ben:example.org"
        );
        for bad in [
            "anna@example.org",
            "<anna@example.org>",
            "Anna <>",
            "Anna",
            "A <b> c",
            "A<b>\n",
            "A > <b>",
        ] {
            assert!(Caretaker::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "[site]\nname = \"a\"\nrepo = \"/nonexistent\"\nidentity_file = \"/etc/hostname\"\n\n[[job]]\nname = \"j\"\nschedule = \"61 * * * *\"\npaths = [\"/tmp\"]\n";
        let p = Settings::resolve(text).unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, Some(8));
        assert!(p[0].message.contains("minute"), "{}", p[0].message);
        let p = Settings::resolve("[site]\nname = \"a\"\nrepo = \"r\"\nbogus = 1\n").unwrap_err();
        assert_eq!(p[0].line, Some(4), "{p:?}");
        assert!(p[0].message.contains("bogus"));
        let p = Settings::resolve("[site\n").unwrap_err();
        assert_eq!(p[0].line, Some(1));
        let text = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n[[peer]]\nname = \"p\"\nrepo = \"/x\"\nupload_limit = \"500kb\"\n";
        let p = Settings::resolve(text).unwrap_err();
        assert_eq!(p[0].line, Some(9));
        assert!(p[0].message.contains("ambiguous"), "{}", p[0].message);
    }

    #[test]
    fn log_sync_interval_defaults_to_a_minute_and_is_checked() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n";
        let s = Settings::resolve(base).unwrap();
        assert_eq!(s.site.log_sync_interval, Duration::from_secs(60));
        let s = Settings::resolve(&format!("{base}log_sync_interval = \"5s\"\n")).unwrap();
        assert_eq!(s.site.log_sync_interval, Duration::from_secs(5));
        for bad in ["0s", "2d", "soon"] {
            let p =
                Settings::resolve(&format!("{base}log_sync_interval = \"{bad}\"\n")).unwrap_err();
            assert_eq!(p[0].line, Some(5), "{bad}: {p:?}");
            assert!(p[0].message.contains("log_sync_interval"), "{p:?}");
        }
    }

    #[test]
    fn a_witness_lists_the_other_copies_it_compares_with() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n";
        let s = Settings::resolve(&format!(
            "{base}[[witness]]\nrepo = \"/srv/hackspace-here\"\n\n[[witness.copy]]\nrepo = \"s3://pi/hackspace\"\ns3 = {{ region = \"garage\" }}\n\n[[witness.copy]]\nrepo = \"/mnt/vm/hackspace\"\n"
        ))
        .unwrap();
        let copies: Vec<&str> = s.witnesses[0]
            .copies
            .iter()
            .map(|(u, _)| u.as_str())
            .collect();
        assert_eq!(copies, ["s3://pi/hackspace", "/mnt/vm/hackspace"]);
        assert!(Settings::resolve(&format!(
            "{base}[[witness]]\nrepo = \"x\"\n[[witness.copy]]\nurl = \"y\"\n"
        ))
        .is_err());
    }

    #[test]
    fn cooperative_facts_are_checked_with_their_lines() {
        let base = "[site]\nname = \"a\"\nrepo = \"r\"\nwriter_key = \"k\"\n\n";
        let good = format!(
            "{base}[cooperative]\nname = \"C eG\"\nlanguage = \"de\"\ncurrency = \"EUR\"\nbalance = 1200\nfixed_share_percent = 25\n\n[[cooperative.site]]\nname = \"a\"\ncpu_watts = 10\ncosts = {{ power = 5, hosting = 7.5 }}\n"
        );
        let s = Settings::resolve(&good).unwrap();
        let c = s.cooperative.as_ref().unwrap();
        assert_eq!(c.language, Language::De);
        assert_eq!(c.balance, Some(1200.0));
        assert_eq!(s.cpu_watts(), Some(10.0));
        assert_eq!(s.site_facts("a").unwrap().monthly_costs(), 12.5);
        assert_eq!(
            s.site_facts("a").unwrap().costs,
            vec![("hosting".to_string(), 7.5), ("power".to_string(), 5.0)]
        );
        let cases: &[(&str, usize, &str)] = &[
            ("[cooperative]\nname = \"C\"\nlanguage = \"fr\"\n", 8, "language"),
            ("[cooperative]\nname = \"C\"\ncurrency = \"euro\"\n", 8, "ISO 4217"),
            ("[cooperative]\nname = \"C\"\nbalance = 5\n", 8, "no currency"),
            ("[cooperative]\nname = \"C\"\nfixed_share_percent = 120\n", 8, "between 0 and 100"),
            ("[cooperative]\nname = \"C\"\nbalance_date = \"31.3.2026\"\n", 8, "YYYY-MM-DD"),
            ("[cooperative]\nname = \"C\"\ncolour = \"red\"\n", 8, "colour"),
            ("[cooperative]\nname = \"C\"\ncurrency = \"EUR\"\n[[cooperative.site]]\nname = \"a\"\ncosts = { power = -3 }\n", 11, "not an amount"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\ncpu_watts = 0\n", 10, "cpu_watts"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\n[[cooperative.site]]\nname = \"a\"\n", 11, "two sites"),
            ("[cooperative]\nname = \"C\"\n[[cooperative.site]]\nname = \"a\"\nwatts = 3\n", 10, "watts"),
        ];
        for (extra, line, what) in cases {
            let p = Settings::resolve(&format!("{base}{extra}")).unwrap_err();
            assert_eq!(p.len(), 1, "{extra}: {p:?}");
            assert_eq!(p[0].line, Some(*line), "{extra}: {p:?}");
            assert!(p[0].message.contains(what), "{extra}: {}", p[0].message);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500KiB"), Ok(512_000));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("x").is_err());
        assert!(parse_size("500kb").unwrap_err().contains("ambiguous"));
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn shipped_examples_resolve() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/examples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            if let Err(problems) = Settings::resolve(&text) {
                panic!("{}: {problems:?}", p.display());
            }
            n += 1;
        }
        assert!(n >= 3);
    }
}
