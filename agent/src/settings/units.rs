//! The units a config is written in: sizes (`2MiB`, `5GB`), durations (`30m`, `7d`), cron
//! schedules (an error names the field), and the line of a byte offset.

use std::time::Duration;

/// The line (1-based) of a byte offset in a text.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Parses a size: `4096`, `500KiB`, `2MiB`, `1GiB` (powers of 1024) or `500KB`, `2MB`,
/// `1GB` (powers of 1000). A lowercase `b` could mean bits, so `500kb` is refused.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 500KiB, 2MiB, 5GiB)"))?;
    let mult: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" => 1e3,
        "KiB" => 1024.0,
        "M" | "MB" => 1e6,
        "MiB" => 1048576.0,
        "G" | "GB" => 1e9,
        "GiB" => 1073741824.0,
        "T" | "TB" => 1e12,
        "TiB" => 1099511627776.0,
        u if u.to_ascii_lowercase().ends_with('b') && !u.ends_with('B') => {
            return Err(format!(
                "{s:?} is ambiguous (a lowercase b means bits): write {num}KB, {num}KiB, {num}MB or {num}MiB"
            ))
        }
        u => return Err(format!("{s:?}: unknown unit {u:?} (use KiB, MiB, GiB, TiB, or KB, MB, GB, TB)")),
    };
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("{s:?} is not a size"));
    }
    Ok((n * mult) as u64)
}

/// Parses a duration like `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration (e.g. 30m, 12h, 7d): {e}"))
}

const CRON_FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];

fn cron_parser() -> croner::parser::CronParser {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
}

/// Parses a cron expression (5 fields, or 6 with seconds first); an error names the field.
pub fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    let fields: Vec<&str> = s.split_whitespace().collect();
    if !(fields.len() == 5 || fields.len() == 6) {
        return Err(format!(
            "{s:?} has {} fields; a schedule has 5 (minute hour day-of-month month day-of-week), or 6 with seconds first",
            fields.len()
        ));
    }
    cron_parser().parse(s).map_err(|e| {
        let off = fields.len() - 5;
        let names: Vec<&str> = if off == 1 {
            std::iter::once("second").chain(CRON_FIELDS).collect()
        } else {
            CRON_FIELDS.to_vec()
        };
        for (i, f) in fields.iter().enumerate() {
            let probe: Vec<&str> = (0..fields.len())
                .map(|j| if j == i { *f } else { "*" })
                .collect();
            if cron_parser().parse(&probe.join(" ")).is_err() {
                return format!("{s:?}: the {} field {f:?} is not valid ({e})", names[i]);
            }
        }
        format!("{s:?}: {e}")
    })
}
