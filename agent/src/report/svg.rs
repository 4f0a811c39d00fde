//! Inline SVG charts for the report page, drawn here: no script, no fonts, nothing fetched.
//! Every chart scales with its container (a `viewBox`, no fixed size) and names what it
//! shows (`role="img"`, a `<title>`); each value also has a `<title>`, which browsers show
//! on hover, and the page prints every figure in a table next to it.

use super::html::escape;
use std::fmt::Write;

/// One bar: a label, its value, and the value as text.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

const W: f64 = 480.0;

fn open(out: &mut String, title: &str, h: f64) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        t = escape(title)
    );
}

fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Horizontal bars, one row per value.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    let row = 28.0;
    let h = row * bars.len().max(1) as f64 + 8.0;
    let (x0, x1) = (160.0, 380.0);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let mut out = String::new();
    open(&mut out, title, h);
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + i as f64 * row;
        let len = if max > 0.0 {
            (b.value / max * (x1 - x0)).max(if b.value > 0.0 { 2.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            out,
            r#"<g><title>{label}: {text}</title><text x="{lx}" y="{ty}" text-anchor="end" class="label">{short}</text><rect x="{x0}" y="{ry}" width="{len:.1}" height="18" rx="3" class="bar"/><text x="{vx:.1}" y="{ty}" class="value">{text}</text></g>"#,
            label = escape(&b.label),
            text = escape(&b.text),
            short = escape(&short(&b.label, 20)),
            lx = x0 - 8.0,
            ty = y + 14.0,
            ry = y + 1.0,
            vx = x0 + len + 6.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// A step line over time: (Unix seconds, value). `y_text` formats an axis value, `x_text`
/// a time.
pub fn line(
    title: &str,
    points: &[(i64, f64)],
    y_text: impl Fn(f64) -> String,
    x_text: impl Fn(i64) -> String,
) -> String {
    let h = 220.0;
    let (left, right, top, bottom) = (78.0, W - 14.0, 12.0, h - 30.0);
    let mut out = String::new();
    open(&mut out, title, h);
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        out.push_str("</svg>");
        return out;
    };
    let (t0, t1) = (first.0, last.0.max(first.0 + 1));
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let top_value = nice_ceiling(max);
    let x = |t: i64| left + (t - t0) as f64 / (t1 - t0) as f64 * (right - left);
    let y = |v: f64| {
        if top_value > 0.0 {
            bottom - v / top_value * (bottom - top)
        } else {
            bottom
        }
    };
    for i in 0..=4 {
        let v = top_value * i as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            out,
            r#"<line x1="{left}" y1="{yy:.1}" x2="{right}" y2="{yy:.1}" class="grid"/><text x="{lx}" y="{ty:.1}" text-anchor="end" class="axis">{t}</text>"#,
            lx = left - 6.0,
            ty = yy + 4.0,
            t = escape(&y_text(v)),
        );
    }
    for (t, anchor) in [(t0, "start"), (t1, "end")] {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="{anchor}" class="axis">{}</text>"#,
            x(t),
            h - 10.0,
            escape(&x_text(t))
        );
    }
    let mut d = String::new();
    for (i, (t, v)) in points.iter().enumerate() {
        if i == 0 {
            let _ = write!(d, "M{:.1} {:.1}", x(*t), y(*v));
        } else {
            let _ = write!(d, " H{:.1} V{:.1}", x(*t), y(*v));
        }
    }
    let _ = write!(out, r#"<path d="{d}" class="line"/>"#);
    for (t, v) in points {
        let _ = write!(
            out,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" class="dot"><title>{}: {}</title></circle>"#,
            x(*t),
            y(*v),
            escape(&x_text(*t)),
            escape(&y_text(*v))
        );
    }
    out.push_str("</svg>");
    out
}

/// Columns of two stacked parts (measured below, estimated above), one per label.
pub fn stacked_columns(
    title: &str,
    columns: &[(String, f64, f64)],
    legend: (&str, &str),
    text: impl Fn(f64) -> String,
) -> String {
    let h = 220.0;
    let (left, right, top, bottom) = (12.0, W - 12.0, 34.0, h - 26.0);
    let mut out = String::new();
    open(&mut out, title, h);
    let _ = write!(
        out,
        r#"<rect x="{left}" y="6" width="12" height="12" class="bar"/><text x="{a}" y="16" class="label">{m}</text><rect x="{b}" y="6" width="12" height="12" class="bar2"/><text x="{c}" y="16" class="label">{e}</text>"#,
        a = left + 18.0,
        b = left + 180.0,
        c = left + 198.0,
        m = escape(legend.0),
        e = escape(legend.1),
    );
    let n = columns.len().max(1) as f64;
    let slot = (right - left) / n;
    let width = (slot * 0.6).min(48.0);
    let max = columns.iter().map(|c| c.1 + c.2).fold(0.0, f64::max);
    let scale = |v: f64| {
        if max > 0.0 {
            v / max * (bottom - top - 14.0)
        } else {
            0.0
        }
    };
    for (i, (label, m, e)) in columns.iter().enumerate() {
        let cx = left + slot * (i as f64 + 0.5);
        let x = cx - width / 2.0;
        let hm = scale(*m);
        let he = scale(*e);
        let _ = write!(
            out,
            r#"<g><title>{label}: {total}</title><rect x="{x:.1}" y="{ym:.1}" width="{width:.1}" height="{hm:.1}" class="bar"/><rect x="{x:.1}" y="{ye:.1}" width="{width:.1}" height="{he:.1}" class="bar2"/><text x="{cx:.1}" y="{tv:.1}" text-anchor="middle" class="value">{total}</text><text x="{cx:.1}" y="{tl:.1}" text-anchor="middle" class="axis">{label}</text></g>"#,
            label = escape(label),
            total = escape(&text(m + e)),
            ym = bottom - hm,
            ye = bottom - hm - he,
            tv = bottom - hm - he - 4.0,
            tl = h - 8.0,
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" class="grid"/>"#
    );
    out.push_str("</svg>");
    out
}

/// The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 0.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_their_text() {
        let s = bars(
            "a<b",
            &[Bar {
                label: "<script>alert(1)</script>".into(),
                value: 1.0,
                text: "1 & 2".into(),
            }],
        );
        assert!(!s.contains("<script>"), "{s}");
        assert!(s.contains("&lt;script&gt;") && s.contains("1 &amp; 2"));
        let l = line(
            "t",
            &[(0, 1.0), (10, 3.0)],
            |v| format!("{v}"),
            |t| t.to_string(),
        );
        assert!(l.contains("<path d=\"M78.0"), "{l}");
        assert_eq!(nice_ceiling(3.1), 5.0);
        assert_eq!(nice_ceiling(2100.0), 2500.0);
    }
}
