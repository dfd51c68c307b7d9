//! The Overview page's charts, laid out on the server for inline SVG (no
//! script, no external asset): decisions per day, the time-to-decision
//! distribution, and the closure mix per playbook.

use crate::operations::metrics::Summary;
use serde_json::{json, Value};

const BAR_W: u64 = 26;
const GAP: u64 = 8;
const PLOT_H: u64 = 140;
const PALETTE: [&str; 8] = [
    "#1b4a7a", "#1b7a3a", "#a4161a", "#b86e00", "#6b4c9a", "#2a8a8a", "#8a9099", "#c2185b",
];

/// Vertical bars: (label, count) → rects with heights scaled to the max.
fn bars(items: &[(String, u64)]) -> Value {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let rects: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (label, n))| {
            let h = n * PLOT_H / max;
            let x = 30 + i as u64 * (BAR_W + GAP);
            json!({"x": x, "y": 10 + PLOT_H - h, "w": BAR_W, "h": h, "n": n, "label": label,
                   "lx": x + BAR_W / 2, "ly": PLOT_H + 26, "ny": (10 + PLOT_H - h).saturating_sub(3)})
        })
        .collect();
    let width = 40 + items.len() as u64 * (BAR_W + GAP);
    json!({"width": width.max(200), "height": PLOT_H + 40, "bars": rects, "base": 10 + PLOT_H})
}

/// Decisions per day, the last 31 days that have any.
pub fn per_day(s: &Summary) -> Value {
    let days: Vec<(String, u64)> = s
        .decisions_per_day
        .iter()
        .rev()
        .take(31)
        .rev()
        .map(|(d, n)| (d.get(5..).unwrap_or(d).to_string(), *n))
        .collect();
    bars(&days)
}

/// Time from alert to decision, by bucket.
pub fn decision_times(s: &Summary) -> Value {
    let label = |le: Option<u64>| match le {
        Some(60) => "≤1m".to_string(),
        Some(300) => "≤5m".into(),
        Some(900) => "≤15m".into(),
        Some(3_600) => "≤1h".into(),
        Some(14_400) => "≤4h".into(),
        Some(86_400) => "≤1d".into(),
        Some(other) => format!("≤{other}s"),
        None => ">1d".into(),
    };
    let items: Vec<(String, u64)> = s
        .decision_histogram
        .iter()
        .map(|(le, n)| (label(*le), *n))
        .collect();
    bars(&items)
}

/// One stacked horizontal bar per playbook: its finished runs by closure.
pub fn closure_mix(s: &Summary) -> Value {
    let mut reasons: Vec<&String> = s
        .playbooks
        .values()
        .flat_map(|f| f.closures.keys())
        .collect();
    reasons.sort();
    reasons.dedup();
    let colour =
        |r: &String| PALETTE[reasons.iter().position(|x| *x == r).unwrap_or(0) % PALETTE.len()];
    let rows: Vec<Value> = s
        .playbooks
        .iter()
        .take(20)
        .enumerate()
        .map(|(i, (name, f))| {
            let total: u64 = f.closures.values().sum::<u64>().max(1);
            let mut x = 180u64;
            let parts: Vec<Value> = f
                .closures
                .iter()
                .map(|(r, n)| {
                    let w = n * 400 / total;
                    let part = json!({"x": x, "w": w, "fill": colour(r), "title": format!("{r}: {n}")});
                    x += w;
                    part
                })
                .collect();
            json!({"name": super::words::cut(name, 24), "y": 10 + i as u64 * 30, "ty": 27 + i as u64 * 30, "parts": parts, "total": f.finished})
        })
        .collect();
    let legend: Vec<Value> = reasons
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"name": super::words::cut(r, 20), "fill": colour(r), "x": 10 + (i as u64 % 4) * 150, "y": 20 + (i as u64 / 4) * 20}))
        .collect();
    let height = 20 + rows.len() as u64 * 30;
    json!({"rows": rows, "height": height.max(40), "legend": legend, "legend_h": 30 + (reasons.len() as u64).div_ceil(4) * 20})
}
