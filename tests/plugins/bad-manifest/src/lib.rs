//! Test fixture: a connector written against the raw WIT bindings (not the
//! SDK's builder) whose `describe()` returns whatever manifest the config
//! key `attack` names, to show that a hostile manifest fails its own plugin
//! and nothing else: `ref_self`, `ref_cycle`, `backref`, `deep`, `spin`, `huge`,
//! or anything else for a valid manifest.

#[cfg(target_arch = "wasm32")]
mod guest {
    use soar_plugin_sdk::bindings::exports::soar::plugin::connector::Guest;
    use soar_plugin_sdk::bindings::soar::plugin::host;
    use soar_plugin_sdk::bindings::soar::plugin::types::{
        ActionManifest, Invocation, Manifest, PluginError,
    };

    /// The input schema each attack declares.
    fn schema(attack: &str) -> String {
        match attack {
            // Applies the root schema to the same instance, forever.
            "ref_self" => r##"{"allOf":[{"$ref":"#"}]}"##.to_string(),
            "ref_cycle" => r##"{"$ref":"#/$defs/a","$defs":{"a":{"$ref":"#/$defs/b"},"b":{"$ref":"#/$defs/a"}}}"##.to_string(),
            // Catastrophic backtracking in a backtracking engine.
            "backref" => r#"{"type":"object","properties":{"x":{"type":"string","pattern":"^(a+)+\\1b$"}}}"#.to_string(),
            "deep" => format!("{}{}", r#"{"not":"#.repeat(120), format!("{{}}{}", "}".repeat(120))),
            "huge" => format!(r#"{{"type":"object","description":"{}"}}"#, "x".repeat(4 << 20)),
            _ => r#"{"type":"object"}"#.to_string(),
        }
    }

    struct Fixture;

    impl Guest for Fixture {
        fn describe() -> Manifest {
            let attack = host::config("attack").unwrap_or_default();
            if attack == "spin" {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Manifest {
                name: "bad-manifest".into(),
                version: "0.1.0".into(),
                description: format!("describe() attack: {attack}"),
                actions: vec![ActionManifest {
                    name: "noop".into(),
                    description: "does nothing".into(),
                    destructive: false,
                    idempotent: true,
                    input_schema: schema(&attack),
                    output_schema: r#"{"type":"object"}"#.into(),
                    targets: vec![],
                    probe: None,
                }],
                secrets: vec![],
                config_keys: vec!["attack".into()],
            }
        }

        fn invoke(
            _action: String,
            _input: String,
            _invocation: Invocation,
        ) -> Result<String, PluginError> {
            Ok("{}".into())
        }
    }

    soar_plugin_sdk::bindings::export!(Fixture with_types_in soar_plugin_sdk::bindings);
}
