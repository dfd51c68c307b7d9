//! One delivery, many events: a body splits by the source's `batch.split`
//! expression, as a top-level array, or as NDJSON lines, capped at
//! `batch.max_events`; then each event becomes the alert its playbook reads
//! through the source's `map` (the normalized alert shape, docs/sources.md).

use crate::config::{Batch, SourceMap};
use crate::template::{CompiledFields, Templates};
use serde_json::{json, Map, Value};

/// What a delivery's body holds.
#[derive(Debug)]
pub struct Events {
    /// Each event, or why that one could not be read (an NDJSON line).
    pub items: Vec<Result<Value, String>>,
    /// Whether the sender sent a batch (the answer then lists each event).
    pub batch: bool,
}

/// Why a whole delivery is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SplitError {
    /// More events than the cap (413).
    TooMany {
        /// Events found (counted up to one past the cap).
        found: usize,
        /// The cap.
        cap: usize,
    },
    /// The body is not JSON (415).
    NotJson(String),
    /// `batch.split` found no array (422).
    NoArray(String),
    /// No event at all (422): a sender that means nothing sends nothing.
    Empty,
}

impl SplitError {
    /// What the sender is told.
    pub fn message(&self) -> String {
        match self {
            SplitError::TooMany { cap, .. } => format!(
                "the delivery holds more than {cap} events, this source's cap per delivery: send them in smaller batches"
            ),
            SplitError::NotJson(m) => m.clone(),
            SplitError::NoArray(path) => {
                format!("the delivery has no array of events at `{path}`")
            }
            SplitError::Empty => "the delivery holds no events".into(),
        }
    }
}

fn too_many(found: usize, cap: usize) -> SplitError {
    SplitError::TooMany { found, cap }
}

/// The events of an NDJSON body, one per non-blank line.
fn ndjson(body: &[u8], cap: usize) -> Result<Events, SplitError> {
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(cap + 1)
        .collect();
    if lines.len() > cap {
        return Err(too_many(lines.len(), cap));
    }
    if lines.is_empty() {
        return Err(SplitError::Empty);
    }
    let items = lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_slice(line)
                .map_err(|e| format!("line {} is not JSON: column {}: {e}", i + 1, e.column()))
        })
        .collect();
    Ok(Events { items, batch: true })
}

fn parse_json(body: &[u8]) -> Result<Value, SplitError> {
    serde_json::from_slice(body).map_err(|e| {
        SplitError::NotJson(format!(
            "the body is not JSON: line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })
}

/// Splits a JSON `document` by the source's rule.
pub fn split_document(
    document: Value,
    batch: &Batch,
    templates: &Templates,
) -> Result<Events, SplitError> {
    let cap = batch.max_events;
    let list = match &batch.split {
        Some(path) => {
            let expr = Value::String(format!("{{{{ {path} }}}}"));
            match templates.render_value(&expr, &json!({ "alert": document })) {
                Ok(Value::Array(items)) => items,
                _ => return Err(SplitError::NoArray(path.clone())),
            }
        }
        None => match document {
            Value::Array(items) => items,
            single => {
                return Ok(Events {
                    items: vec![Ok(single)],
                    batch: false,
                })
            }
        },
    };
    if list.len() > cap {
        return Err(too_many(list.len(), cap));
    }
    if list.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(Events {
        items: list.into_iter().map(Ok).collect(),
        batch: true,
    })
}

/// Splits a raw body: NDJSON when the sender says so, else one JSON document.
pub fn split(
    body: &[u8],
    is_ndjson: bool,
    batch: &Batch,
    templates: &Templates,
) -> Result<Events, SplitError> {
    if is_ndjson {
        return ndjson(body, batch.max_events);
    }
    split_document(parse_json(body)?, batch, templates)
}

/// Sets `path` (dotted) in `root` to `value`, creating objects on the way.
fn set_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut node = root;
    let mut segments = path.split('.').peekable();
    while let Some(segment) = segments.next() {
        if segments.peek().is_none() {
            node.insert(segment.to_string(), value);
            return;
        }
        let child = node
            .entry(segment.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        let Value::Object(next) = child else { return };
        node = next;
    }
}

/// The normalized alert of one event: each field of the map rendered over
/// `{event}` (and `{sns}`, the envelope, for SNS sources). A field whose
/// source is absent is left out; any other failure is a problem.
pub fn map_event(
    map: &SourceMap,
    compiled: &CompiledFields<'_>,
    event: Value,
    sns: Option<&Value>,
) -> (Result<Value, Vec<String>>, Value) {
    // The event is moved in and handed back: it is also the run's raw
    // evidence, and a 5 KB clone per event is most of a map's cost.
    let ctx = std::sync::Arc::new(match sns {
        Some(envelope) => json!({"event": event, "sns": envelope}),
        None => json!({ "event": event }),
    });
    let mut alert = Map::new();
    let mut problems = Vec::new();
    for ((path, _), rendered) in map.fields.iter().zip(compiled.render(&ctx)) {
        match rendered {
            Ok(Some(v)) => set_path(&mut alert, path, v),
            Ok(None) => {}
            Err(e) => problems.push(format!("map field `{path}`: {e}")),
        }
    }
    let event = match std::sync::Arc::try_unwrap(ctx) {
        Ok(Value::Object(mut m)) => m.remove("event").unwrap_or(Value::Null),
        Ok(other) => other,
        Err(shared) => shared["event"].clone(),
    };
    let mapped = if problems.is_empty() {
        Ok(Value::Object(alert))
    } else {
        Err(problems)
    };
    (mapped, event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(split: Option<&str>, cap: usize) -> Batch {
        Batch {
            split: split.map(str::to_string),
            max_events: cap,
        }
    }

    #[test]
    fn a_split_path_an_array_and_ndjson_each_give_every_event() {
        let t = Templates::new();
        let okta = br#"{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"a"},{"uuid":"b"},{"uuid":"c"}]}}"#;
        let e = split(okta, false, &batch(Some("alert.data.events"), 10), &t).unwrap();
        assert!(e.batch);
        assert_eq!(e.items.len(), 3);
        assert_eq!(e.items[2].as_ref().unwrap()["uuid"], "c");
        let e = split(br#"[{"a":1},{"a":2}]"#, false, &batch(None, 10), &t).unwrap();
        assert_eq!(e.items.len(), 2);
        let e = split(br#"{"a":1}"#, false, &batch(None, 10), &t).unwrap();
        assert!(!e.batch);
        let e = split(
            b"{\"a\":1}\n\n{\"a\":2\n{\"a\":3}\n",
            true,
            &batch(None, 10),
            &t,
        )
        .unwrap();
        assert_eq!(e.items.len(), 3, "blank lines are not events");
        assert!(e.items[1]
            .as_ref()
            .unwrap_err()
            .contains("line 2 is not JSON"));
        assert_eq!(e.items[2].as_ref().unwrap()["a"], 3);
    }

    #[test]
    fn over_the_cap_or_without_the_array_the_delivery_is_refused_whole() {
        let t = Templates::new();
        let three = br#"[1,2,3]"#;
        assert_eq!(
            split(three, false, &batch(None, 3), &t)
                .unwrap()
                .items
                .len(),
            3
        );
        assert_eq!(
            split(three, false, &batch(None, 2), &t).unwrap_err(),
            SplitError::TooMany { found: 3, cap: 2 }
        );
        assert!(matches!(
            split(b"1\n2\n3\n", true, &batch(None, 2), &t),
            Err(SplitError::TooMany { .. })
        ));
        let err = split(
            br#"{"data":{}}"#,
            false,
            &batch(Some("alert.data.events"), 5),
            &t,
        )
        .unwrap_err();
        assert_eq!(
            err.message(),
            "the delivery has no array of events at `alert.data.events`"
        );
        assert!(matches!(
            split(b"{", false, &batch(None, 5), &t),
            Err(SplitError::NotJson(_))
        ));
        assert_eq!(
            split(b"[]", false, &batch(None, 5), &t).unwrap_err(),
            SplitError::Empty
        );
        assert_eq!(
            split(b" \n\n", true, &batch(None, 5), &t).unwrap_err(),
            SplitError::Empty
        );
    }

    #[test]
    fn a_map_builds_nested_fields_and_leaves_absent_ones_out() {
        let t = Templates::new();
        let field = |path: &str, t: Value| (path.to_string(), t);
        let map = SourceMap {
            fields: vec![
                field("device.hostname", json!("{{ event.host | lower }}")),
                field("device.uid", json!("{{ event.aid }}")),
                field("severity_id", json!("{{ event.sev }}")),
                field("metadata.product", json!("Falcon")),
                field("risk", json!(7)),
                // What a map does with the event: nested reads, indexes,
                // whole objects and lists, filters, tests, alternatives.
                field("src.ip", json!("{{ event.net[1].remote }}")),
                field(
                    "src.all",
                    json!("{{ event.net | map(attribute='remote') | join(',') }}"),
                ),
                field("whole", json!("{{ event.meta }}")),
                field("count", json!("{{ event.net | length }}")),
                field(
                    "uid",
                    json!("{{ event.composite | default(event.detect) }}"),
                ),
                field(
                    "has",
                    json!("{{ 'k' in event.meta and event.meta.k is defined }}"),
                ),
                field("text", json!("host {{ event.host }} ({{ event.sev }})")),
                field("absent_text", json!("{{ event.nope.deeper }} x")),
            ],
        };
        let compiled = t.compile_fields(&map.fields);
        let event = json!({"host": "WS-FIN-042", "sev": 4, "detect": "d-1",
            "net": [{"remote": "10.0.0.1"}, {"remote": "67.43.156.1"}], "meta": {"k": [1, {"x": null}]}});
        let (alert, back) = map_event(&map, &compiled, event.clone(), None);
        assert_eq!(back, event, "the raw event is handed back whole");
        assert_eq!(
            alert.unwrap(),
            json!({"device": {"hostname": "ws-fin-042"}, "severity_id": 4, "metadata": {"product": "Falcon"}, "risk": 7,
                "src": {"ip": "67.43.156.1", "all": "10.0.0.1,67.43.156.1"}, "whole": {"k": [1, {"x": null}]},
                "count": 2, "uid": "d-1", "has": true, "text": "host WS-FIN-042 (4)"})
        );
        // A failure other than an absent field is the event's problem.
        let map = SourceMap {
            fields: vec![("finding".into(), json!("{{ event.m | fromjson }}"))],
        };
        let compiled = t.compile_fields(&map.fields);
        let err = map_event(&map, &compiled, json!({"m": "{nope"}), None)
            .0
            .unwrap_err();
        assert!(
            err[0].starts_with("map field `finding`:") && err[0].contains("fromjson: not JSON"),
            "{err:?}"
        );
    }
}
