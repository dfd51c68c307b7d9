//! Playbooks written to temp files, loaded and validated against a fake
//! catalog; diagnostics are compared with their `pb.yaml:LINE:COL` prefix.

use super::*;
use crate::plugin_host::{TargetField, TargetKind};
use serde_json::json;
use std::time::Duration;

fn action(name: &str, destructive: bool, fields: &[&str]) -> ActionManifest {
    let properties: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|f| (f.to_string(), json!({ "type": "string", "minLength": 1 })))
        .collect();
    ActionManifest {
        name: name.into(),
        description: format!("{name} (test)"),
        destructive,
        idempotent: !destructive,
        input_schema: json!({
            "type": "object",
            "properties": properties,
            "required": fields,
            "additionalProperties": false,
        }),
        output_schema: json!({ "type": "object" }),
        targets: fields
            .iter()
            .filter(|f| **f == "host_id")
            .map(|f| TargetField {
                field: f.to_string(),
                kind: TargetKind::Host,
            })
            .collect(),
        probe: None,
        untargeted: false,
    }
}

fn catalog() -> BTreeMap<String, Manifest> {
    let manifest = |name: &str, actions: Vec<ActionManifest>| Manifest {
        name: name.into(),
        version: "0.1.0".into(),
        description: String::new(),
        actions,
        secrets: vec![],
        config_keys: vec![],
    };
    BTreeMap::from([
        (
            "edr".to_string(),
            manifest(
                "edr",
                vec![
                    action("get_host", false, &["host_id"]),
                    action("isolate_host", true, &["host_id"]),
                    action("release_host", true, &["host_id"]),
                ],
            ),
        ),
        (
            "threatintel".to_string(),
            manifest(
                "threatintel",
                vec![
                    action("lookup_hash", false, &["hash"]),
                    action("lookup_ip", false, &["ip"]),
                ],
            ),
        ),
    ])
}

/// Writes `yaml` to a temp file and loads it.
fn load_text(
    yaml: &str,
) -> (
    tempfile::TempDir,
    PathBuf,
    Result<Playbook, Vec<Diagnostic>>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = load(&path);
    (dir, path, loaded)
}

/// Every diagnostic of load, else of validate, as `pb.yaml:L:C: message`.
fn problems(yaml: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.yaml");
    std::fs::write(&path, yaml).unwrap();
    let diags = check(&path, &catalog()).err().unwrap_or_default();
    let prefix = path.display().to_string();
    diags
        .iter()
        .map(|d| d.to_string().replacen(&prefix, "pb.yaml", 1))
        .collect()
}

/// Lines 1-6; the first step starts on line 7.
const HEAD: &str = "\
name: test
version: '1'
inputs:
  host_id: { type: string }
  ips: { type: list, required: false, default: [] }
steps:
";

fn with_head(steps: &str) -> String {
    format!("{HEAD}{steps}")
}

const FULL: &str = r#"name: edr-malware-triage
version: "1.0"
description: Enrich an EDR malware detection; contain the host when the file is known bad.
owner: soc-automation
inputs:
  host_id:
    type: string
    description: Falcon device id
    from: "{{ alert.device.device_id }}"
  sha256:
    type: string
    from: "{{ alert.behaviors[0].sha256 }}"
  ips:
    type: list
    required: false
    default: []
  contain:
    type: boolean
    required: false
    default: true
dedup: "{{ alert.detection_id }}:{{ inputs.host_id }}"
steps:
  - id: host
    uses: edr.get_host
    with:
      host_id: "{{ inputs.host_id }}"
    timeout: 30s
    retry: { max_attempts: 3, initial_delay: 500ms, max_delay: 10s, multiplier: 2, jitter: 0 }
  - id: hash
    uses: threatintel.lookup_hash
    with:
      hash: "{{ inputs.sha256 }}"
    retry: { max_attempts: 3 }
    on_error: continue
  - id: ip_reputation
    for_each: "{{ inputs.ips | reject('eq', '127.0.0.1') | list }}"
    if: "inputs.ips | length < 10"
    uses: threatintel.lookup_ip
    with:
      ip: "{{ item }}"
  - id: approve
    needs: [host, hash]
    approval:
      approvers: [soc-lead]
      min_approvals: 2
      timeout: 30m
      handoff:
        summary: "Isolate {{ steps.host.output.hostname }}?"
        why: "{{ steps.hash.output }}"
  - id: contain
    needs: [host, hash, approve]
    if: >-
      inputs.contain and steps.hash.status == 'succeeded'
      and steps.hash.output.verdict == 'malicious'
      and not steps.host.output.contained
    uses: edr.isolate_host
    with:
      host_id: "{{ steps.host.output.host_id }}"
  - id: release_check
    needs: [contain]
    if: "{{ steps.contain.status == 'failed' }}"
    uses: edr.get_host
    with:
      host_id: "{% if steps.host.output.host_id %}{{ steps.host.output.host_id }}{% else %}{{ inputs.host_id }}{% endif %}"
outputs:
  verdict: "{{ steps.hash.output.verdict if steps.hash.status == 'succeeded' else 'unknown' }}"
  contained: "{{ steps.contain.status == 'succeeded' }}"
  reputations: "{{ steps.ip_reputation.output }}"
  run: "{{ run.id }}"
"#;

#[test]
fn full_playbook_loads_and_validates() {
    let (_dir, path, loaded) = load_text(FULL);
    let pb = loaded.unwrap();
    assert_eq!(validate(&pb, &catalog()), vec![]);
    assert_eq!(pb.name, "edr-malware-triage");
    assert_eq!(pb.path, path);
    assert_eq!(pb.sha256, crate::plugin_host::sha256_hex(FULL.as_bytes()));
    assert_eq!(pb.inputs.len(), 4);
    assert!(pb.inputs["host_id"].required);
    assert!(!pb.inputs["contain"].required);
    assert_eq!(pb.inputs["contain"].default, Some(json!(true)));
    assert_eq!(pb.inputs["ips"].r#type, InputType::List);

    let host = &pb.steps[0];
    assert_eq!(host.uses, "edr.get_host");
    assert_eq!(host.with, json!({ "host_id": "{{ inputs.host_id }}" }));
    assert_eq!(host.timeout, Some(Duration::from_secs(30)));
    assert_eq!(
        host.retry,
        RetryPolicy {
            max_attempts: 3,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: 0.0,
        }
    );
    assert_eq!(host.on_error, OnError::Fail);
    assert_eq!((host.pos.line, host.pos.column), (23, 9));
    assert_eq!(host.positions.with_keys["host_id"].line, 26);

    let hash = &pb.steps[1];
    assert_eq!(hash.on_error, OnError::Continue);
    assert_eq!(hash.retry.initial_delay, Duration::from_secs(1));
    assert_eq!(hash.retry.max_delay, Duration::from_secs(60));
    assert_eq!(hash.retry.jitter, 0.2);
    assert_eq!(hash.timeout, None);
    assert_eq!(
        pb.steps[2].for_each.as_deref(),
        Some("{{ inputs.ips | reject('eq', '127.0.0.1') | list }}")
    );
    let gate = pb.steps[3].approval.as_ref().unwrap();
    assert_eq!(gate.approvers, ["soc-lead"]);
    assert_eq!(gate.min_approvals, 2);
    assert_eq!(gate.timeout, Duration::from_secs(1800));
    assert!(gate.handoff.summary.starts_with("Isolate"));
    assert_eq!(pb.steps[3].uses, "");
    assert_eq!(pb.steps[4].needs, ["host", "hash", "approve"]);
    assert!(pb.steps[4]
        .r#if
        .as_deref()
        .unwrap()
        .starts_with("inputs.contain and"));
    assert_eq!(
        pb.steps[5].with,
        json!({ "host_id": pb.steps[5].with["host_id"] })
    );
    assert_eq!(pb.outputs.len(), 4);
}

#[test]
fn topo_order_follows_needs_then_file_order() {
    let pb = load_text(FULL).2.unwrap();
    let order: Vec<&str> = topo_order(&pb.steps)
        .unwrap()
        .into_iter()
        .map(|i| pb.steps[i].id.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "host",
            "hash",
            "ip_reputation",
            "approve",
            "contain",
            "release_check"
        ]
    );

    let step = |id: &str, needs: &[&str]| Step {
        id: id.into(),
        uses: "edr.get_host".into(),
        approval: None,
        auto_approve: None,
        with: json!({}),
        needs: needs.iter().map(|n| n.to_string()).collect(),
        trigger: Trigger::default(),
        r#if: None,
        retry: RetryPolicy::default(),
        timeout: None,
        on_error: OnError::Fail,
        for_each: None,
        pos: Pos::default(),
        positions: StepPositions::default(),
    };
    let steps = [
        step("d", &["c"]),
        step("c", &["a", "b"]),
        step("b", &[]),
        step("a", &["b"]),
    ];
    assert_eq!(topo_order(&steps).unwrap(), [2, 3, 1, 0]);
    // b needs a, c needs b, a needs c: reported from the first in the file.
    let steps = [
        step("x", &[]),
        step("b", &["a"]),
        step("c", &["b"]),
        step("a", &["c", "x"]),
    ];
    assert_eq!(topo_order(&steps).unwrap_err(), ["b", "c", "a", "b"]);
    let steps = [step("self", &["self"])];
    assert_eq!(topo_order(&steps).unwrap_err(), ["self", "self"]);
    // Unknown needs are validate's business.
    assert_eq!(topo_order(&[step("a", &["ghost"])]).unwrap(), [0]);
}

#[test]
fn json_schema_describes_the_format() {
    let schema = json_schema();
    let text = schema.to_string();
    assert!(schema["properties"]["steps"].is_object(), "{text}");
    assert_eq!(schema["additionalProperties"], json!(false));
    let required = schema["required"].as_array().unwrap();
    assert!(required.contains(&json!("steps")) && required.contains(&json!("name")));
    // Internal fields are not part of the format.
    for internal in ["sha256", "positions", "\"pos\"", "\"path\""] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    // Durations are text, and the step keys are the YAML ones.
    assert!(text.contains("\"if\""), "{text}");
    assert_eq!(
        schema["$defs"]["RetryPolicy"]["properties"]["max_delay"]["default"],
        json!("1m")
    );
    // A serialized playbook is an instance of the schema; a misspelt key is not.
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut instance = serde_json::to_value(load_text(FULL).2.unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    instance["steps"][0]["wiht"] = json!({});
    assert!(!validator.is_valid(&instance));
}

#[test]
fn the_model_round_trips_through_json() {
    let pb = load_text(FULL).2.unwrap();
    let text = serde_json::to_string(&pb).unwrap();
    assert!(text.contains("\"timeout\":\"30s\""), "{text}");
    let back: Playbook = serde_json::from_str(&text).unwrap();
    assert_eq!(back.steps.len(), pb.steps.len());
    assert_eq!(back.steps[0].retry, pb.steps[0].retry);
    assert_eq!(back.steps[0].timeout, pb.steps[0].timeout);
    assert_eq!(back.inputs, pb.inputs);
}

#[test]
fn yaml_problems_point_at_their_line() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    wiht: {}\n",
    ));
    // The misspelt key, and what its absence means, in one pass.
    assert_eq!(
        errs,
        [
            "pb.yaml:8:11: step `a`: missing required field `host_id` for edr.get_host",
            "pb.yaml:9:5: unknown field `wiht` in step `a` (did you mean `with`?)",
        ]
    );
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    on_error: explode\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("pb.yaml:9:15: unknown variant `explode` for `on_error`")),
        "{errs:?}"
    );
    assert_eq!(
        problems("\n"),
        ["pb.yaml: the playbook is empty (it needs at least `name`, `version` and `steps`)"]
    );
    let (_dir, _path, loaded) = load_text("name: x\nsteps: []\n");
    let errs = loaded.unwrap_err();
    assert!(
        errs[0].message.contains("missing field `version`"),
        "{errs:?}"
    );
    let missing = load(Path::new("/nonexistent/pb.yaml")).unwrap_err();
    assert!(
        missing[0]
            .to_string()
            .starts_with("/nonexistent/pb.yaml: cannot read playbook"),
        "{missing:?}"
    );
}

#[test]
fn bad_durations_are_reported_at_their_value() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n    timeout: 3 parsecs\n    retry:\n      max_delay: soon\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("pb.yaml:10:14: bad duration `3 parsecs` for `timeout`: "),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("pb.yaml:12:18: bad duration `soon` for `retry.max_delay`: "),
        "{errs:?}"
    );
}

#[test]
fn shape_problems_are_all_reported_by_load() {
    let errs = problems("name: 'bad name'\nversion: ''\nsteps: []\n");
    assert_eq!(
        errs,
        [
            "pb.yaml:1:7: playbook name `bad name` may use only letters, digits, `_`, `-` and `.` (runs are filed under it)",
            "pb.yaml:2:10: `version` must not be empty",
            "pb.yaml:3:8: a playbook needs at least one step",
        ]
    );
    let errs = problems(&with_head("  - id: a\n    with: { host_id: x }\n"));
    assert_eq!(
        errs,
        ["pb.yaml:7:9: step `a` has no `uses` (write `uses: plugin.action`, or `approval:` for a gate)"]
    );
}

#[test]
fn duplicate_step_id_is_reported_at_the_second() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n  - id: a\n    uses: edr.get_host\n    with: { host_id: y }\n",
    ));
    assert_eq!(
        errs,
        ["pb.yaml:10:9: duplicate step id `a` (first defined at line 7)"]
    );
}

#[test]
fn step_ids_must_be_template_names() {
    let errs = problems(&with_head(
        "  - id: Get-Host\n    uses: edr.get_host\n    with: { host_id: x }\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("pb.yaml:7:9: step id `Get-Host` must be lower-case"),
        "{errs:?}"
    );
}

#[test]
fn unknown_needs_are_reported_at_the_entry() {
    let errs = problems(&with_head(
        "  - id: enrich_host\n    uses: edr.get_host\n    with: { host_id: x }\n  - id: b\n    uses: edr.get_host\n    with: { host_id: x }\n    needs:\n      - enrich_host\n      - enrich_hsot\n      - nothing_like_it\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:15:9: step `b` needs `enrich_hsot`, which is not a step of this playbook (did you mean `enrich_host`?)",
            "pb.yaml:16:9: step `b` needs `nothing_like_it`, which is not a step of this playbook (steps: enrich_host, b)",
        ]
    );
}

#[test]
fn a_cycle_is_reported_once_at_its_first_step() {
    let errs = problems(&with_head(
        "  - id: a\n    needs: [c]\n    uses: edr.get_host\n    with: { host_id: x }\n  - id: b\n    needs: [a]\n    uses: edr.get_host\n    with: { host_id: x }\n  - id: c\n    needs: [b]\n    uses: edr.get_host\n    with: { host_id: x }\n",
    ));
    assert_eq!(errs, ["pb.yaml:7:9: cyclic dependency: a -> b -> c -> a"]);
}

#[test]
fn uses_must_name_an_installed_action() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr\n  - id: b\n    uses: edx.get_host\n    with: { host_id: x }\n  - id: c\n    uses: edr.isolate\n    with: { host_id: x }\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:8:11: step `a`: `uses` must be `plugin.action` (e.g. `edr.isolate_host`), got `edr`",
            "pb.yaml:10:11: step `b`: no plugin `edx` is installed (installed: edr, threatintel)",
            "pb.yaml:13:11: step `c`: plugin `edr` has no action `isolate` (actions: get_host, isolate_host, release_host)",
        ]
    );
}

#[test]
fn with_is_checked_against_the_input_schema() {
    let errs = problems(&with_head(
        "  - id: contain\n    uses: edr.isolate_host\n    with:\n      reason: malware\n      hots_id: \"{{ inputs.host_id }}\"\n  - id: bare\n    uses: edr.get_host\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:8:11: step `contain`: `edr.isolate_host` is destructive: it needs an approval step upstream (in its `needs`) or an explicit `auto_approve:` condition",
            "pb.yaml:10:7: step `contain`: missing required field `host_id` for edr.isolate_host",
            "pb.yaml:10:7: step `contain`: unknown field `reason` for edr.isolate_host (fields: host_id)",
            "pb.yaml:11:7: step `contain`: unknown field `hots_id` for edr.isolate_host (fields: host_id)",
            "pb.yaml:13:11: step `bare`: missing required field `host_id` for edr.get_host",
        ]
    );
}

#[test]
fn template_syntax_errors_are_reported_where_written() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with:\n      host_id: \"{{ inputs.host_id \"\n    if: \"inputs.host_id ==\"\n",
    ));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "pb.yaml:10:7: step `a`: `with.host_id`: syntax error: unexpected end of input"
        ),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("pb.yaml:11:9: step `a`: `if`: syntax error"),
        "{errs:?}"
    );
}

#[test]
fn undeclared_inputs_are_reported() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with:\n      host_id: \"{{ inputs.hostid }}\"\n",
    ));
    assert_eq!(
        errs,
        ["pb.yaml:10:7: step `a`: `with.host_id`: unknown input `hostid` (did you mean `host_id`?)"]
    );
}

#[test]
fn steps_may_only_read_their_upstreams() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n  - id: b\n    needs: [a]\n    uses: edr.get_host\n    with: { host_id: \"{{ steps.a.output.host_id }}\" }\n  - id: c\n    needs: [b]\n    if: steps.a.status == 'succeeded'\n    uses: edr.get_host\n    with:\n      host_id: \"{{ steps.d.output.host_id }}\"\n  - id: d\n    uses: edr.get_host\n    with:\n      host_id: \"{{ steps.d.output.host_id ~ steps.nope.output ~ steps.a.outptu }}\"\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:19:7: step `c`: `with.host_id`: reads `steps.d` but `d` is not upstream of step `c` (add it to `needs`)",
            "pb.yaml:23:7: step `d`: `with.host_id`: `steps.a.outptu`: a step has `output`, `status` and `error`",
            "pb.yaml:23:7: step `d`: `with.host_id`: step `d` cannot read its own result",
            "pb.yaml:23:7: step `d`: `with.host_id`: unknown step `nope` (steps: a, b, c, d)",
        ]
    );
}

#[test]
fn item_and_index_only_in_for_each_steps() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: threatintel.lookup_ip\n    with: { ip: \"{{ item }}\" }\n  - id: b\n    for_each: \"{{ inputs.ips[index:] }}\"\n    if: index < 3\n    uses: threatintel.lookup_ip\n    with: { ip: \"{{ item.addr }}\" }\n  - id: c\n    for_each: \"inputs.ips\"\n    uses: threatintel.lookup_ip\n    with: { ip: x }\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:9:13: step `a`: `with.ip`: `item` is only defined in steps with `for_each`",
            "pb.yaml:11:15: step `b`: `for_each`: `index` is not defined inside `for_each` itself",
            "pb.yaml:12:9: step `b`: `if`: `index` is only defined in `with`: `if` and `auto_approve` decide for the whole step, once; filter the list in `for_each` instead, e.g. \"{{ inputs.ips | reject('eq', '127.0.0.1') | list }}\"",
            "pb.yaml:16:15: step `c`: `for_each` must be one `{{ expression }}` giving a list, e.g. \"{{ inputs.iocs }}\"",
        ]
    );
}

#[test]
fn unknown_and_misplaced_roots() {
    let errs = problems(
        "name: t\nversion: '1'\ninputs:\n  host_id:\n    type: string\n    from: \"{{ inputs.x }}\"\ndedup: \"{{ steps.a.output }}\"\nsteps:\n  - id: a\n    uses: edr.get_host\n    with:\n      host_id: \"{{ alert.device.id ~ foo }}\"\noutputs:\n  v: \"{{ steps.a.output.host_id ~ item }}\"\n",
    );
    assert_eq!(
        errs,
        [
            "pb.yaml:6:11: `inputs.host_id.from`: `inputs` is not available in `from`, which computes an input from the alert: read `alert.…`",
            "pb.yaml:7:8: `dedup`: `steps` is not available in `dedup`: no step has run yet",
            "pb.yaml:12:7: step `a`: `with.host_id`: `alert` is only available in input `from` and `dedup`: declare an input and read `inputs.NAME`",
            "pb.yaml:12:7: step `a`: `with.host_id`: unknown variable `foo` (available here: inputs, steps, run)",
            "pb.yaml:14:3: `outputs.v`: `item` is only defined in steps with `for_each`",
        ]
    );
}

#[test]
fn input_defaults_must_have_the_declared_type() {
    let errs = problems(
        "name: t\nversion: '1'\ninputs:\n  n:\n    type: integer\n    default: many\nsteps:\n  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n",
    );
    assert_eq!(
        errs,
        ["pb.yaml:6:14: the default of input `n` must be an integer (its `type`), got \"many\""]
    );
}

#[test]
fn retry_policies_must_make_sense() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n    retry:\n      max_attempts: 0\n      multiplier: 0.5\n      jitter: 1.5\n      initial_delay: 5m\n      max_delay: 1m\n",
    ));
    assert_eq!(
        errs,
        [
            "pb.yaml:11:21: step `a`: `retry.max_attempts` must be at least 1 (1 means no retry)",
            "pb.yaml:12:19: step `a`: `retry.multiplier` must be at least 1, got 0.5",
            "pb.yaml:13:15: step `a`: `retry.jitter` must be between 0 and 1, got 1.5",
            "pb.yaml:14:22: step `a`: `retry.initial_delay` (5m) is longer than `retry.max_delay` (1m)",
        ]
    );
}

#[test]
fn approval_gate_shapes_are_checked_at_load() {
    let errs = problems(&with_head(concat!(
        "  - id: gate\n",
        "    approval: { approvers: [soc-lead], timeout: soon }\n",
        "  - id: both\n",
        "    uses: edr.get_host\n",
        "    approval: { approvers: [], min_approvals: 0 }\n",
    )));
    assert_eq!(
        errs,
        [
            "pb.yaml:8:49: bad duration `soon` for `approval.timeout`: expected number at 0 (write e.g. \"500ms\", \"30s\", \"2m\")",
            "pb.yaml:11:15: step `both` has both `uses` and `approval`: an approval gate is a step of its own",
            "pb.yaml:11:15: step `both`: `approval.approvers` must list at least one role",
            "pb.yaml:11:47: `approval.min_approvals` must be at least 1",
        ]
    );
}

#[test]
fn destructive_steps_need_a_gate_that_sees_their_inputs() {
    let errs = problems(&with_head(concat!(
        "  - id: gate\n",
        "    approval: { approvers: [soc-lead], handoff: { summary: \"{{ steps.later.output }}\" } }\n",
        "    with: { x: 1 }\n",
        "  - id: later\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: x }\n",
        "  - id: act\n",
        "    needs: [gate, later]\n",
        "    uses: edr.isolate_host\n",
        "    with: { host_id: \"{{ steps.later.output.host_id }}\" }\n",
        "  - id: bare\n",
        "    uses: edr.release_host\n",
        "    with: { host_id: x }\n",
        "  - id: auto\n",
        "    uses: edr.release_host\n",
        "    auto_approve: \"inputs.host_id == 'lab-1'\"\n",
        "    with: { host_id: x }\n",
        "  - id: pointless\n",
        "    uses: edr.get_host\n",
        "    auto_approve: \"true\"\n",
        "    with: { host_id: x }\n",
    )));
    assert_eq!(
        errs,
        [
            "pb.yaml:8:15: step `gate` is an approval gate and cannot have with",
            "pb.yaml:8:15: step `gate`: `approval.handoff.summary`: reads `steps.later` but `later` is not upstream of step `gate` (add it to `needs`)",
            "pb.yaml:16:11: step `act` reads `steps.later`, which is not upstream of approval `gate`: an approval binds the exact inputs it approves, so add `later` to the needs of `gate`",
            "pb.yaml:18:11: step `bare`: `edr.release_host` is destructive: it needs an approval step upstream (in its `needs`) or an explicit `auto_approve:` condition",
            "pb.yaml:26:19: step `pointless`: `auto_approve` only applies to destructive actions, and `edr.get_host` is not one",
        ]
    );
}

#[test]
fn several_problems_are_reported_at_once_in_file_order() {
    let errs = problems(&with_head(
        "  - id: a\n    uses: edr.get_hots\n    with: { host_id: \"{{ inputs.nope }}\" }\n  - id: a\n    needs: [ghost]\n    uses: edr.isolate_host\n    with: { host: x }\n    retry: { jitter: 2 }\noutputs:\n  x: \"{{ foo }}\"\n",
    ));
    let lines: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(
        lines,
        [
            "pb.yaml:8:11",  // no action get_hots
            "pb.yaml:9:13",  // unknown input nope
            "pb.yaml:10:9",  // duplicate id
            "pb.yaml:11:13", // unknown need
            "pb.yaml:12:11", // destructive without approval
            "pb.yaml:13:11", // missing host_id
            "pb.yaml:13:13", // unknown field host
            "pb.yaml:14:22", // jitter
            "pb.yaml:16:3",  // unknown variable foo
        ],
        "{errs:#?}"
    );
}

#[test]
fn diagnostics_display_without_a_position() {
    let d = Diagnostic::new(Path::new("p.yaml"), Pos::default(), "gone");
    assert_eq!(d.to_string(), "p.yaml: gone");
    let d = Diagnostic::new(Path::new("p.yaml"), Pos { line: 3, column: 4 }, "bad");
    assert_eq!(d.to_string(), "p.yaml:3:4: bad");
}

#[test]
fn the_documented_example_is_valid() {
    let doc = include_str!("../../../docs/playbooks.md");
    let example = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    assert!(example.contains("edr.isolate_host"), "{example}");
    assert_eq!(problems(example), Vec::<String>::new());
}

#[test]
fn auto_approve_is_evaluated_once_per_step_so_it_cannot_read_item() {
    let errs = problems(&with_head(concat!(
        "  - id: release\n",
        "    uses: edr.release_host\n",
        "    for_each: \"{{ inputs.ips }}\"\n",
        "    auto_approve: \"item != 'dc01'\"\n",
        "    with: { host_id: \"{{ item }}\" }\n",
    )));
    assert_eq!(
        errs,
        ["pb.yaml:10:19: step `release`: `auto_approve`: `item` is only defined in `with`: `if` and `auto_approve` decide for the whole step, once; filter the list in `for_each` instead, e.g. \"{{ inputs.ips | reject('eq', '127.0.0.1') | list }}\""]
    );
}

#[test]
fn a_gated_step_cannot_read_its_own_approval() {
    let errs = problems(&with_head(concat!(
        "  - id: gate\n",
        "    approval: { approvers: [soc-lead] }\n",
        "  - id: act\n",
        "    needs: [gate]\n",
        "    uses: edr.isolate_host\n",
        "    with: { host_id: \"{{ steps.gate.output.approved_by[0] }}\" }\n",
    )));
    assert_eq!(
        errs,
        ["pb.yaml:12:11: step `act` reads `steps.gate`, its own approval: an approval binds the inputs before it is decided, so they cannot depend on the decision"]
    );
}

#[test]
fn auto_approve_cannot_override_an_upstream_gate() {
    let errs = problems(&with_head(concat!(
        "  - id: gate\n",
        "    approval: { approvers: [soc-lead] }\n",
        "  - id: act\n",
        "    needs: [gate]\n",
        "    uses: edr.isolate_host\n",
        "    auto_approve: \"true\"\n",
        "    with: { host_id: x }\n",
    )));
    assert_eq!(
        errs,
        ["pb.yaml:12:19: step `act` has approval `gate` upstream and `auto_approve`: choose one (a denied or void approval is final, so `auto_approve` would never apply)"]
    );
}

#[test]
fn approval_notify_needs_a_chat_connector_with_notify_and_update() {
    let pb = |plugin: &str| {
        format!(
            "name: n\nversion: \"1\"\nowner: o\nsteps:\n  - id: gate\n    approval:\n      approvers: [lead]\n      notify: {{ plugin: {plugin}, channel: \"#soc\" }}\n"
        )
    };
    let missing = problems(&pb("chatops"));
    assert!(
        missing
            .iter()
            .any(|p| p.contains("approval.notify.plugin") && p.contains("chatops")),
        "{missing:?}"
    );
    // edr has neither action.
    let wrong = problems(&pb("edr"));
    assert_eq!(
        wrong
            .iter()
            .filter(|p| p.contains("approval.notify.plugin"))
            .count(),
        2,
        "{wrong:?}"
    );
    let unknown_key = problems(
        "name: n\nversion: \"1\"\nowner: o\nsteps:\n  - id: gate\n    approval:\n      approvers: [lead]\n      notify: { plugin: chatops, channel: c, color: red }\n",
    );
    assert!(
        !unknown_key.is_empty(),
        "an unknown key under notify is refused"
    );
}

/// One malformed value of `kind` (written as step `a`'s lines after
/// `uses`), and two other problems elsewhere in the same file: all three
/// are reported in one pass, each at its place.
fn with_two_other_problems(kind_lines: &str, uses: &str) -> Vec<String> {
    problems(&with_head(&format!(
        "  - id: a\n{uses}{kind_lines}  - id: b\n    needs: [ghost]\n    uses: edr.get_host\n    with: {{ host_id: x }}\noutputs:\n  x: \"{{{{ inputs.nope }}}}\"\n"
    )))
}

#[test]
fn every_kind_of_malformed_value_is_reported_with_the_rest() {
    let action = "    uses: edr.get_host\n    with: { host_id: \"{{ inputs.host_id }}\" }\n";
    let cases: [(&str, &str, &str, &[&str]); 10] = [
        ("duration", action, "    timeout: 3 parsecs\n", &["pb.yaml:10:14: bad duration `3 parsecs` for `timeout`"]),
        ("retry value", action, "    retry: { max_attempts: three, jitter: 2 }\n", &[
            "pb.yaml:10:28: `retry.max_attempts` must be a whole number, got `three`",
            "pb.yaml:10:43: step `a`: `retry.jitter` must be between 0 and 1, got 2",
        ]),
        ("retry shape", action, "    retry: 3\n", &["pb.yaml:10:12: `retry` must be a mapping, not a number"]),
        ("condition", action, "    if: \"inputs.host_id ==\"\n", &["pb.yaml:10:9: step `a`: `if`: "]),
        ("template", "    uses: edr.get_host\n", "    with: { host_id: \"{{ inputs.host_id \" }\n", &["pb.yaml:9:13: step `a`: `with.host_id`: "]),
        ("approval", "", "    approval: { approvers: soc-lead, min_approvals: -1, timeout: 0s }\n", &[
            "pb.yaml:8:15: step `a`: `approval.approvers` must list at least one role",
            "pb.yaml:8:28: `approval.approvers` must be a list, not text",
            "pb.yaml:8:53: `approval.min_approvals` must be a whole number, got `-1`",
            "pb.yaml:8:66: `approval.timeout` must be longer than 0s",
        ]),
        ("for_each", action, "    for_each: [a, b]\n", &["pb.yaml:10:15: `for_each` must be text, not a list"]),
        ("on_error", action, "    on_error: ignore\n", &["pb.yaml:10:15: unknown variant `ignore` for `on_error` (expected one of `fail`, `continue`)"]),
        ("trigger", action, "    needs: [b]\n    trigger: any\n", &["pb.yaml:11:14: unknown variant `any` for `trigger`"]),
        ("unknown key", action, "    timout: 30s\n", &["pb.yaml:10:5: unknown field `timout` in step `a` (did you mean `timeout`?)"]),
    ];
    for (kind, uses, lines, expected) in cases {
        let errs = with_two_other_problems(lines, uses);
        for want in expected {
            assert!(
                errs.iter().any(|e| e.starts_with(want)),
                "{kind}: no `{want}` in {errs:#?}"
            );
        }
        assert!(
            errs.iter()
                .any(|e| e.contains("needs `ghost`, which is not a step")),
            "{kind}: the unknown need is not reported: {errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("`outputs.x`: unknown input `nope`")),
            "{kind}: the unknown input is not reported: {errs:#?}"
        );
        assert_eq!(errs.len(), expected.len() + 2, "{kind}: {errs:#?}");
    }
}

#[test]
fn joins_are_checked_for_outputs_they_may_find_unset() {
    let steps = concat!(
        "  - id: a\n",                                                // 7
        "    uses: edr.get_host\n",
        "    with: { host_id: \"{{ inputs.host_id }}\" }\n",
        "  - id: b\n",                                                // 10
        "    needs: [a]\n",
        "    if: \"steps.a.output.host_id == 'x'\"\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: \"{{ steps.a.output.host_id }}\" }\n",
        "  - id: join\n",                                             // 15
        "    needs: [a, b]\n",
        "    trigger: all_done\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: \"{{ steps.b.output.host_id }}\" }\n",   // 19: b may be skipped
        "  - id: guarded\n",                                          // 20
        "    needs: [a, b]\n",
        "    trigger: one_succeeded\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: \"{{ steps.b.output.host_id if steps.b.status == 'succeeded' else steps.a.output.host_id }}\" }\n",
        "  - id: after\n",                                            // 25
        "    needs: [join]\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: \"{{ steps.b.output.host_id }}\" }\n",   // 28: through the join
        "  - id: lonely\n",                                           // 29
        "    trigger: all_done\n",
        "    uses: edr.get_host\n",
        "    with: { host_id: x }\n",
        "  - id: contain\n",                                          // 33
        "    needs: [a]\n",
        "    trigger: all_done\n",
        "    uses: edr.isolate_host\n",
        "    auto_approve: \"true\"\n",
        "    with: { host_id: \"{{ steps.a.output.host_id }}\" }\n",
    );
    let errs = problems(&with_head(steps));
    let at: Vec<&str> = errs.iter().map(|e| e.split(": ").next().unwrap()).collect();
    assert_eq!(
        at,
        [
            "pb.yaml:19:13",
            "pb.yaml:28:13",
            "pb.yaml:30:14",
            "pb.yaml:35:14"
        ],
        "{errs:#?}"
    );
    assert!(errs[0].contains("reads `steps.b.output`, which is unset when `b` was skipped or failed, and `trigger: all_done` of step `join`"), "{errs:#?}");
    assert!(errs[1].contains("of step `join` still runs"), "{errs:#?}");
    assert!(
        errs[2].contains("decides on the step's needs, and it has none"),
        "{errs:#?}"
    );
    assert!(
        errs[3].contains("would run a destructive step after a need failed"),
        "{errs:#?}"
    );
}

#[test]
fn keys_written_with_no_value_read_as_absent() {
    let errs = problems(
        "name: test\nversion: '1'\ndescription:\ninputs:\noutputs:\nsteps:\n  - id: a\n    uses: edr.get_host\n    with: { host_id: x }\n    needs:\n    timeout:\n    retry:\n    if:\n",
    );
    assert_eq!(errs, Vec::<String>::new());
}

#[test]
fn a_destructive_steps_inputs_cannot_count_repeats() {
    // Repeats merged while the approval waits would change the bound inputs.
    let errs = problems(&with_head(
        "  - id: contain\n    uses: edr.isolate_host\n    auto_approve: \"inputs.host_id == 'lab'\"\n    with:\n      host_id: \"{{ inputs.host_id }}-{{ run.merged_count }}\"\n  - id: look\n    uses: edr.get_host\n    if: \"run.merged_count > 2\"\n    with: { host_id: \"{{ inputs.host_id }}-{{ run.merged_count }}\" }\n",
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("pb.yaml:11:7: step `contain`: a destructive step's inputs cannot read `run.merged_count`"),
        "{errs:?}"
    );
}
