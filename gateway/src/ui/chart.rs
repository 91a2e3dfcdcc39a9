//! The overview's charts: finished jobs over time as stacked bars (done, dead), drawn by
//! the server as inline SVG (no script, no image requests; presentation attributes only,
//! so the page's content security policy needs no inline styles).

use std::fmt::Write;

use gitfleet_client::store::MinuteCount;

/// `n` buckets of `width` minutes each, the last one ending with minute `now_min` (minutes
/// since the epoch), summed from per-minute counts. Oldest first; `minute` is each
/// bucket's first minute.
pub fn buckets(minutes: &[MinuteCount], now_min: i64, n: usize, width: i64) -> Vec<MinuteCount> {
    let first = now_min - (n as i64) * width + 1;
    let mut out: Vec<MinuteCount> = (0..n as i64)
        .map(|i| MinuteCount {
            minute: first + i * width,
            done: 0,
            dead: 0,
        })
        .collect();
    for m in minutes {
        if m.minute < first || m.minute > now_min {
            continue;
        }
        let i = ((m.minute - first) / width) as usize;
        out[i].done += m.done;
        out[i].dead += m.dead;
    }
    out
}

const W: f64 = 600.0;
const H: f64 = 140.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 18.0;

/// The SVG of `bars` (oldest first): done in one colour, dead stacked on it in another, a
/// title per bar (its time and counts), the scale's top and the time axis's ends.
pub fn svg(bars: &[MinuteCount], unit: &str, label: &str) -> String {
    let max = bars
        .iter()
        .map(|b| b.done + b.dead)
        .max()
        .unwrap_or(0)
        .max(1);
    let n = bars.len().max(1) as f64;
    let slot = W / n;
    let bar_w = (slot * 0.8).max(1.0);
    let plot = H - TOP - BOTTOM;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="Jobs finished, {label}: done and dead" preserveAspectRatio="none">"#
    );
    let _ = write!(
        s,
        r#"<line class="axis" x1="0" y1="{y}" x2="{W}" y2="{y}"/>"#,
        y = H - BOTTOM
    );
    for (i, b) in bars.iter().enumerate() {
        let x = i as f64 * slot + (slot - bar_w) / 2.0;
        let done_h = plot * b.done as f64 / max as f64;
        let dead_h = plot * b.dead as f64 / max as f64;
        let base = H - BOTTOM;
        let when = chrono::DateTime::from_timestamp(b.minute * 60, 0)
            .map(|t| t.format("%H:%M").to_string())
            .unwrap_or_default();
        let _ = write!(
            s,
            r#"<g><title>{unit} from {when} UTC: {} done, {} dead</title>"#,
            b.done, b.dead
        );
        if b.done > 0 {
            let _ = write!(
                s,
                r#"<rect class="done" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{done_h:.1}"/>"#,
                base - done_h
            );
        }
        if b.dead > 0 {
            let _ = write!(
                s,
                r#"<rect class="dead" x="{x:.1}" y="{:.1}" width="{bar_w:.1}" height="{dead_h:.1}"/>"#,
                base - done_h - dead_h
            );
        }
        // An empty bar still has its hover area.
        let _ = write!(
            s,
            r#"<rect class="hover" x="{:.1}" y="{TOP}" width="{slot:.1}" height="{plot:.1}"/></g>"#,
            i as f64 * slot
        );
    }
    let first = bars
        .first()
        .and_then(|b| chrono::DateTime::from_timestamp(b.minute * 60, 0))
        .map(|t| t.format("%H:%M").to_string())
        .unwrap_or_default();
    let _ = write!(
        s,
        r#"<text class="tick" x="0" y="{}">{first}</text><text class="tick" x="{W}" y="{}" text-anchor="end">now</text><text class="tick" x="0" y="10">{max}</text></svg>"#,
        H - 4.0,
        H - 4.0,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(minute: i64, done: i64, dead: i64) -> MinuteCount {
        MinuteCount { minute, done, dead }
    }

    #[test]
    fn minutes_are_summed_into_their_buckets_and_old_ones_left_out() {
        let now = 1_000;
        let b = buckets(
            &[
                m(now - 200, 9, 9),
                m(now - 59, 1, 0),
                m(now, 2, 1),
                m(now - 1, 3, 0),
            ],
            now,
            2,
            30,
        );
        assert_eq!(b.len(), 2);
        assert_eq!(b[0], m(now - 59, 1, 0));
        assert_eq!(b[1], m(now - 29, 5, 1));
    }

    #[test]
    fn the_chart_has_a_bar_per_bucket_with_its_counts() {
        let svg = svg(&[m(0, 0, 0), m(1, 4, 1), m(2, 2, 0)], "minute", "test");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<title>").count(), 3);
        assert_eq!(svg.matches(r#"class="done""#).count(), 2);
        assert_eq!(svg.matches(r#"class="dead""#).count(), 1);
        assert!(svg.contains("4 done, 1 dead"));
        assert!(
            !svg.contains("style="),
            "no inline styles (the CSP has none)"
        );
    }
}
