//! When jobs are due: cron schedules (UTC) with deterministic per-run jitter, and missed runs
//! caught up once.

use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

/// The next time a job is due after `last` (its last run, or when the agent started): the
/// first scheduled time after it, plus a jitter derived from the job name and that time. If
/// several scheduled times passed (the machine was off), this is the first of them, so the job
/// runs once now and its next due time is computed from this run: missed runs are caught up
/// once, not once per missed slot.
pub fn next_due(
    cron: &croner::Cron,
    job: &str,
    last: i64,
    jitter: Option<Duration>,
) -> Option<i64> {
    let from: DateTime<Utc> = Utc.timestamp_opt(last, 0).single()?;
    let next = cron.find_next_occurrence(&from, false).ok()?.timestamp();
    let j = match jitter {
        Some(d) if d.as_secs() > 0 => {
            let h = blake3::hash(format!("{job}@{next}").as_bytes());
            (u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8")) % d.as_secs()) as i64
        }
        _ => 0,
    };
    Some(next + j)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> croner::Cron {
        crate::settings::parse_cron(s).unwrap()
    }

    #[test]
    fn missed_runs_are_caught_up_once() {
        let now = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap()
            .timestamp();
        // Last run three days ago; daily at 03:00: due (in the past), so it runs now …
        let three_days_ago = now - 3 * 86400;
        let due = next_due(&cron("0 3 * * *"), "j", three_days_ago, None).unwrap();
        assert!(due <= now);
        // … once: after that run, the next due time is tomorrow 03:00, not the other missed slots.
        let after = next_due(&cron("0 3 * * *"), "j", now, None).unwrap();
        assert_eq!(
            after,
            Utc.with_ymd_and_hms(2026, 11, 24, 3, 0, 0)
                .unwrap()
                .timestamp()
        );
    }

    #[test]
    fn jitter_is_bounded_and_stable() {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap()
            .timestamp();
        let c = cron("0 3 * * *");
        let base = next_due(&c, "a", t, None).unwrap();
        let j = Some(Duration::from_secs(600));
        let a = next_due(&c, "a", t, j).unwrap();
        assert!((base..base + 600).contains(&a));
        assert_eq!(a, next_due(&c, "a", t, j).unwrap(), "deterministic");
        let spread: std::collections::HashSet<i64> = (0..20)
            .map(|i| next_due(&c, &format!("job{i}"), t, j).unwrap())
            .collect();
        assert!(spread.len() > 10, "jobs are spread out");
    }
}
