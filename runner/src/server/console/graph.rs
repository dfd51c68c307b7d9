//! The run page's picture of the step graph, laid out on the server: each
//! step a box in the column of its depth (1 + the deepest of its `needs`),
//! coloured by status, with its edges; gates, joins and destructive steps
//! marked. The template draws it as inline SVG (no script, no asset).

use crate::playbook::{topo_order, Playbook, Trigger};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const W: u32 = 180;
const H: u32 = 46;
const GAP_X: u32 = 56;
const GAP_Y: u32 = 18;
const PAD: u32 = 10;
/// Characters of a step id drawn in its box (the table has it whole).
const LABEL: usize = 22;

/// Fill and stroke for a status.
fn colours(status: &str) -> (&'static str, &'static str) {
    match status {
        "succeeded" => ("#e6f4ea", "#1b7a3a"),
        "failed" => ("#fde8e8", "#a4161a"),
        "blocked" => ("#fbd5d5", "#6e0b0e"),
        "in_doubt" => ("#fff4e5", "#b86e00"),
        "skipped" => ("#f1f2f4", "#8a9099"),
        "running" | "waiting_approval" => ("#e8f0fd", "#1b4a7a"),
        _ => ("#ffffff", "#8a9099"),
    }
}

/// The steps in graph order (`needs` first, then file order).
pub fn order(pb: &Playbook) -> Vec<usize> {
    topo_order(&pb.steps).unwrap_or_else(|_| (0..pb.steps.len()).collect())
}

/// Nodes and edges of `pb`'s graph, each step with its status from
/// `status` (`pending` when absent) and whether it is destructive.
pub fn layout(
    pb: &Playbook,
    status: &BTreeMap<String, String>,
    destructive: &dyn Fn(&str) -> bool,
) -> Value {
    let order = order(pb);
    let index: BTreeMap<&str, usize> = pb
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    let mut depth = vec![0u32; pb.steps.len()];
    for &i in &order {
        depth[i] = pb.steps[i]
            .needs
            .iter()
            .filter_map(|n| index.get(n.as_str()))
            .map(|&j| depth[j] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut rows_used: BTreeMap<u32, u32> = BTreeMap::new();
    let mut place = vec![(0u32, 0u32); pb.steps.len()];
    for &i in &order {
        let row = rows_used.entry(depth[i]).or_insert(0);
        place[i] = (PAD + depth[i] * (W + GAP_X), PAD + *row * (H + GAP_Y));
        *row += 1;
    }
    let nodes: Vec<Value> = order
        .iter()
        .map(|&i| node(pb, i, place[i], status, destructive))
        .collect();
    let mut edges = Vec::new();
    for &i in &order {
        let step = &pb.steps[i];
        let skipped = status.get(&step.id).map(String::as_str) == Some("skipped");
        for &j in step.needs.iter().filter_map(|n| index.get(n.as_str())) {
            let (from, to) = (place[j], place[i]);
            edges.push(json!({"x1": from.0 + W, "y1": from.1 + H / 2, "x2": to.0, "y2": to.1 + H / 2, "skipped": skipped}));
        }
    }
    let columns = depth.iter().max().map_or(0, |d| d + 1);
    let rows = rows_used.values().max().copied().unwrap_or(0);
    json!({
        "width": 2 * PAD + columns * (W + GAP_X),
        "height": 2 * PAD + rows * (H + GAP_Y),
        "w": W, "h": H, "nodes": nodes, "edges": edges,
    })
}

fn node(
    pb: &Playbook,
    i: usize,
    (x, y): (u32, u32),
    status: &BTreeMap<String, String>,
    destructive: &dyn Fn(&str) -> bool,
) -> Value {
    let step = &pb.steps[i];
    let st = status.get(&step.id).map_or("pending", String::as_str);
    let (fill, stroke) = colours(st);
    let mut marks = Vec::new();
    if step.approval.is_some() {
        marks.push("gate");
    }
    if matches!(step.trigger, Trigger::AllDone | Trigger::OneSucceeded) {
        marks.push("join");
    }
    if !step.uses.is_empty() && destructive(&step.uses) {
        marks.push("destructive");
    }
    let label = super::words::cut(&step.id, LABEL);
    let sub = if marks.is_empty() {
        st.to_string()
    } else {
        format!("{st} · {}", marks.join(" · "))
    };
    json!({"id": step.id, "label": label, "sub": sub, "status": st, "x": x, "y": y,
           "fill": fill, "stroke": stroke, "dashed": st == "skipped",
           "gate": step.approval.is_some(), "tx": x + 8, "ty": y + 19, "sy": y + 36})
}
