//! Config mistakes and CLI misuse get a clear message naming the file, line
//! and key, and exit 2; the compiled-component cache and digest pin work.

use soar_e2e::{wasm, Scratch};

fn hostile(scratch: &Scratch, extra: &str) {
    scratch.config(&format!(
        "plugins:\n  hostile:\n    path: {}\n{extra}",
        wasm("hostile").display()
    ));
}

#[test]
fn unknown_key_is_reported_with_file_line_and_key() {
    let scratch = Scratch::new();
    scratch.config("plugins:\n  hostile:\n    pathh: x.wasm\n");
    let run = scratch.soar(&["plugins", "list"], &[]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("soar.yaml:3:"), "{}", run.stderr());
    assert!(run.stderr().contains("pathh"), "{}", run.stderr());
}

#[test]
fn missing_plugin_file_names_the_key_and_the_file() {
    let scratch = Scratch::new();
    scratch.config("plugins:\n  edr:\n    path: nowhere/edr.wasm\n");
    // Listed as broken, with the reason; a call to it fails and says why.
    let run = scratch.soar(&["plugins", "list"], &[]);
    assert_eq!(run.code(), 0, "{}", run.all_output());
    let out = run.stdout();
    assert!(out.contains("edr") && out.contains("BROKEN"), "{out}");
    assert!(out.contains("soar.yaml:3:11: `plugins.edr.path`"), "{out}");
    assert!(out.contains("nowhere/edr.wasm"), "{out}");
    let call = scratch.soar(
        &["plugins", "call", "edr", "get_host", "--input", "{}"],
        &[],
    );
    assert_eq!(call.code(), 1, "{}", call.all_output());
    assert!(
        call.stderr().contains("nowhere/edr.wasm"),
        "{}",
        call.stderr()
    );
}

#[test]
fn digest_pin_refuses_a_swapped_plugin() {
    let scratch = Scratch::new();
    hostile(&scratch, &format!("    sha256: \"{}\"\n", "0".repeat(64)));
    let run = scratch.soar(&["plugins", "list", "--json"], &[]);
    assert_eq!(run.code(), 0, "{}", run.all_output());
    let broken = run.json()["broken"][0].clone();
    assert_eq!(broken["name"], "hostile", "{broken}");
    let error = broken["error"].as_str().unwrap_or("");
    assert!(error.contains("`plugins.hostile.sha256`"), "{error}");
    assert!(error.contains("refusing"), "{error}");
    let call = scratch.soar(
        &["plugins", "call", "hostile", "noop", "--input", "{}"],
        &[],
    );
    assert_eq!(call.code(), 1, "a swapped plugin never runs");
}

#[test]
fn digest_pin_accepts_the_right_file() {
    let scratch = Scratch::new();
    let bytes = std::fs::read(wasm("hostile")).unwrap();
    let digest = soar_runner::plugin_host::sha256_hex(&bytes);
    hostile(&scratch, &format!("    sha256: \"{digest}\"\n"));
    let run = scratch.soar(&["plugins", "list", "--json"], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.json()["plugins"][0]["sha256"], digest);
}

#[test]
fn missing_config_explains_how_to_point_at_one() {
    let scratch = Scratch::new();
    let run = scratch.soar(&["plugins", "list"], &[]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("--config"), "{}", run.stderr());
}

#[test]
fn config_flag_and_env_are_honoured() {
    let scratch = Scratch::new();
    hostile(&scratch, "");
    std::fs::rename(
        scratch.path().join("soar.yaml"),
        scratch.path().join("other.yaml"),
    )
    .unwrap();
    let run = scratch.soar(&["plugins", "list", "--config", "other.yaml"], &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let run = scratch.soar(&["plugins", "list"], &[("SOAR_CONFIG", "other.yaml")]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains("hostile"));
}

#[test]
fn bad_input_json_and_schema_violations_exit_2() {
    let scratch = Scratch::new();
    hostile(&scratch, "");
    let run = scratch.soar(
        &["plugins", "call", "hostile", "alloc", "--input", "{mb: 1"],
        &[],
    );
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("--input:1:2"), "{}", run.stderr());
    let run = scratch.soar(
        &[
            "plugins",
            "call",
            "hostile",
            "alloc",
            "--input",
            r#"{"mb": "x"}"#,
        ],
        &[],
    );
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("error[invalid_input]"),
        "{}",
        run.stderr()
    );
    let run = scratch.soar(
        &["plugins", "call", "hostile", "nope", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("actions: noop"), "{}", run.stderr());
}

#[test]
fn input_can_come_from_a_file() {
    let scratch = Scratch::new();
    hostile(&scratch, "");
    scratch.write("in.json", r#"{"mb": 1}"#);
    let run = scratch.soar(
        &["plugins", "call", "hostile", "alloc", "--input", "@in.json"],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains("\"done\": true"));
}

#[test]
fn destructive_actions_need_allow_destructive() {
    let scratch = Scratch::new();
    hostile(&scratch, "");
    let run = scratch.soar(
        &["plugins", "call", "hostile", "wipe", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("destructive"), "{}", run.stderr());
    let run = scratch.soar(
        &[
            "plugins",
            "call",
            "hostile",
            "wipe",
            "--input",
            "{}",
            "--allow-destructive",
        ],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

#[test]
fn a_crashing_plugin_exits_1_with_the_error_kind() {
    let scratch = Scratch::new();
    hostile(&scratch, "    limits: { timeout_ms: 300 }\n");
    let run = scratch.soar(
        &[
            "plugins", "call", "hostile", "spin", "--input", "{}", "--json",
        ],
        &[],
    );
    assert_eq!(run.code(), 1);
    assert_eq!(run.json()["error"]["kind"], "timeout");
    let run = scratch.soar(
        &["plugins", "call", "hostile", "panic", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("error[trap]"), "{}", run.stderr());
}

#[test]
fn compiled_components_are_cached_between_calls() {
    let scratch = Scratch::new();
    hostile(&scratch, "");
    let cache = scratch.path().join(".soar/cache/components");
    let run = scratch.soar(
        &["plugins", "call", "hostile", "noop", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let first = std::fs::metadata(&entries[0]).unwrap().modified().unwrap();
    let run = scratch.soar(
        &["plugins", "call", "hostile", "noop", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // Reused, not recompiled and rewritten.
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().modified().unwrap(),
        first
    );
    // A corrupt cache entry is recompiled, not trusted.
    std::fs::write(&entries[0], b"garbage").unwrap();
    let run = scratch.soar(
        &["plugins", "call", "hostile", "noop", "--input", "{}"],
        &[],
    );
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

#[test]
fn validate_names_unknown_filters_and_tests_in_playbooks_and_source_maps() {
    let scratch = Scratch::new();
    hostile(
        &scratch,
        "sources:\n  falcon:\n    playbook: pb.yaml\n    auth: { type: bearer }\n    map:\n      device.hostname: \"{{ event.ComputerName | hostnamify }}\"\n",
    );
    scratch.write(
        "pb.yaml",
        "name: pb\nversion: \"1\"\nowner: soc\ninputs:\n  host: { type: string }\nsteps:\n  - id: a\n    if: \"inputs.host is hostlike\"\n    uses: hostile.noop\n    with: { x: \"{{ inputs.host | nosuchfilter }}\" }\n",
    );
    let run = scratch.soar(&["validate", "pb.yaml"], &[]);
    assert_eq!(run.code(), 2, "{}", run.all_output());
    let out = run.all_output();
    assert!(
        out.contains(
            "soar.yaml:9:24: `sources.falcon.map.device.hostname`: unknown filter `hostnamify`"
        ),
        "{out}"
    );
    // Fixed in the config, the playbook's own are reported at their places.
    hostile(&scratch, "");
    let run = scratch.soar(&["validate", "pb.yaml"], &[]);
    assert_eq!(run.code(), 2, "{}", run.all_output());
    let out = run.all_output();
    assert!(
        out.contains("pb.yaml:8:") && out.contains("unknown test `hostlike`"),
        "{out}"
    );
    assert!(
        out.contains("pb.yaml:10:") && out.contains("unknown filter `nosuchfilter`"),
        "{out}"
    );
}
