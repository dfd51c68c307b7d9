//! Guards the host against hostile JSON Schemas returned by plugin `describe()`.
//! `check` bounds size and shape and refuses remote or recursive `$ref`s and backtracking-only
//! regexes before anything is compiled; `compile` builds a validator with no remote fetching.

use std::collections::HashMap;
use std::error::Error;

use serde_json::Value;

/// Bounds on a plugin-supplied schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaLimits {
    /// Length of the JSON text the schema was parsed from.
    pub max_bytes: usize,
    /// Levels of object/array nesting; the root container is level 1.
    pub max_depth: usize,
    /// JSON values (objects, arrays, scalars) in the document.
    pub max_nodes: usize,
    /// Length of one `pattern` or `patternProperties` key.
    pub max_pattern_bytes: usize,
}

impl Default for SchemaLimits {
    fn default() -> Self {
        Self {
            max_bytes: 256 * 1024,
            max_depth: 32,
            max_nodes: 10_000,
            max_pattern_bytes: 1024,
        }
    }
}

/// Compiled-size cap for every regex, both here and inside the validator, so a short pattern
/// such as `a{1000}{1000}` cannot expand into a huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Inlining every `$ref` may multiply the schema (a chain of defs each used twice doubles per
/// level), and validation pays for the inlined size; allow this many times `max_nodes`.
const EXPANSION_FACTOR: usize = 16;

/// Drafts whose meta-schemas jsonschema bundles. Anything else would make it try to fetch the
/// meta-schema, and draft-04 is left out because its `id` keyword re-bases `#` refs.
const KNOWN_DRAFTS: [&str; 4] = [
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
    "http://json-schema.org/draft-06/schema",
];

/// Checks a schema before it is ever compiled: size, depth, node count; every `$ref` is local
/// (`#` or a `#/...` JSON pointer into this document; remote, `$dynamicRef`, `$recursiveRef`
/// and `$id`-relative refs are refused) and resolves; no recursion through `$ref`; every
/// `pattern` and `patternProperties` key compiles with the linear-time `regex` crate.
/// `text_len` is the length of the JSON text the schema came from.
pub fn check(schema: &Value, text_len: usize, limits: &SchemaLimits) -> Result<(), String> {
    if text_len > limits.max_bytes {
        return Err(format!(
            "schema text is {text_len} bytes, over the limit of {}",
            limits.max_bytes
        ));
    }
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("schema root (\"\") must be an object or a boolean".to_string());
    }
    let tree = Tree::build(schema, limits)?;
    let refs = scan_keywords(&tree, limits)?;
    check_ref_graph(&tree, &refs, limits)
}

/// Compiles a schema that has passed [`check`]. Patterns use the linear-time `regex` engine
/// and any attempt to retrieve an external document (remote `$ref`, unknown `$schema`) fails.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_retriever(NoRetrieval)
        .with_pattern_options(jsonschema::PatternOptions::regex().size_limit(REGEX_SIZE_LIMIT))
        .build(schema)
        .map_err(|e| {
            // Meta-schema errors locate the problem by instance path, keyword-compile errors
            // by schema path; either may be empty.
            let at = [e.instance_path.as_str(), e.schema_path.as_str()]
                .into_iter()
                .find(|p| !p.is_empty())
                .unwrap_or("");
            format!("schema does not compile (at \"{at}\"): {e}")
        })
}

/// Replaces jsonschema's default retriever, which with the `resolve-http`/`resolve-file`
/// features would fetch URLs and read files named by a plugin.
struct NoRetrieval;

impl jsonschema::Retrieve for NoRetrieval {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn Error + Send + Sync>> {
        Err(format!(
            "external schema {} is not retrieved for plugins",
            uri.as_str()
        )
        .into())
    }
}

/// How a node hangs off its parent; enough to rebuild its JSON pointer for messages.
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

struct Node<'a> {
    value: &'a Value,
    parent: usize,
    seg: Seg<'a>,
    /// One past the last id in this node's subtree: ids are pre-order, so subtrees are ranges.
    end: usize,
}

/// Flattened document. Pointers are built on demand rather than stored per node, since a
/// long key near the root would otherwise be copied into every descendant's pointer.
struct Tree<'a> {
    nodes: Vec<Node<'a>>,
    /// Address of each value to its node id, to map a resolved `$ref` target back to the tree.
    ids: HashMap<*const Value, usize>,
}

impl<'a> Tree<'a> {
    /// Walks with an explicit stack so that depth is measured without risking the Rust stack.
    fn build(root: &'a Value, limits: &SchemaLimits) -> Result<Self, String> {
        let mut tree = Tree {
            nodes: Vec::new(),
            ids: HashMap::new(),
        };
        let mut pending: Vec<(&'a Value, usize, Seg<'a>, usize)> = vec![(root, 0, Seg::Root, 1)];
        while let Some((value, parent, seg, level)) = pending.pop() {
            let id = tree.nodes.len();
            tree.nodes.push(Node {
                value,
                parent,
                seg,
                end: id + 1,
            });
            tree.ids.insert(value, id);
            // Values already queued count too, so a huge flat array is caught before it is
            // queued in full.
            let children = match value {
                Value::Object(map) => map.len(),
                Value::Array(items) => items.len(),
                _ => 0,
            };
            if tree.nodes.len() + pending.len() + children > limits.max_nodes {
                return Err(format!(
                    "schema has more than {} JSON values (reached at \"{}\")",
                    limits.max_nodes,
                    tree.pointer(id)
                ));
            }
            if (value.is_object() || value.is_array()) && level > limits.max_depth {
                return Err(format!(
                    "schema nests deeper than {} levels at \"{}\"",
                    limits.max_depth,
                    tree.pointer(id)
                ));
            }
            // Reversed so that ids follow document order.
            match value {
                Value::Object(map) => {
                    for (key, child) in map.iter().rev() {
                        pending.push((child, id, Seg::Key(key), level + 1));
                    }
                }
                Value::Array(items) => {
                    for (index, child) in items.iter().enumerate().rev() {
                        pending.push((child, id, Seg::Index(index), level + 1));
                    }
                }
                _ => {}
            }
        }
        for id in (1..tree.nodes.len()).rev() {
            let (parent, end) = (tree.nodes[id].parent, tree.nodes[id].end);
            tree.nodes[parent].end = tree.nodes[parent].end.max(end);
        }
        Ok(tree)
    }

    /// RFC 6901 pointer of a node, for error messages.
    fn pointer(&self, mut id: usize) -> String {
        let mut segs = Vec::new();
        loop {
            match self.nodes[id].seg {
                Seg::Root => break,
                Seg::Key(key) => segs.push(key.replace('~', "~0").replace('/', "~1")),
                Seg::Index(index) => segs.push(index.to_string()),
            }
            id = self.nodes[id].parent;
        }
        segs.iter().rev().map(|s| format!("/{s}")).collect()
    }

    fn subtree_len(&self, id: usize) -> usize {
        self.nodes[id].end - id
    }
}

/// A `$ref` found in the document: `site` is the object holding it, `target` what it names.
struct Ref<'a> {
    site: usize,
    target: usize,
    text: &'a str,
}

/// Looks at every object, not only known schema positions: a `$ref` may point anywhere in the
/// document (even into `default` or an unknown keyword) and jsonschema compiles what it finds.
fn scan_keywords<'a>(tree: &Tree<'a>, limits: &SchemaLimits) -> Result<Vec<Ref<'a>>, String> {
    let mut refs = Vec::new();
    for (id, node) in tree.nodes.iter().enumerate() {
        let Value::Object(map) = node.value else {
            continue;
        };
        let at = |key: &str| format!("{}/{}", tree.pointer(id), key);
        for key in ["$dynamicRef", "$recursiveRef"] {
            if map.get(key).is_some_and(Value::is_string) {
                return Err(format!("{key} at \"{}\" is not supported", at(key)));
            }
        }
        // A nested `$id` starts a new resource, so `#...` inside it would no longer mean this
        // document's root and the ref analysis below would be wrong.
        if id != 0 && map.get("$id").is_some_and(Value::is_string) {
            return Err(format!(
                "nested $id at \"{}\" is not supported; only the root may set $id",
                at("$id")
            ));
        }
        if id == 0 {
            check_dialect(map.get("$schema"))?;
        }
        if let Some(Value::String(text)) = map.get("$ref") {
            let target = resolve_ref(tree, text)
                .map_err(|why| format!("$ref {text:?} at \"{}\" is refused: {why}", at("$ref")))?;
            refs.push(Ref {
                site: id,
                target,
                text,
            });
        }
        if let Some(Value::String(pattern)) = map.get("pattern") {
            check_pattern(pattern, &at("pattern"), limits)?;
        }
        if let Some(Value::Object(patterns)) = map.get("patternProperties") {
            for pattern in patterns.keys() {
                let escaped = pattern.replace('~', "~0").replace('/', "~1");
                check_pattern(
                    pattern,
                    &at(&format!("patternProperties/{escaped}")),
                    limits,
                )?;
            }
        }
    }
    Ok(refs)
}

fn check_dialect(schema: Option<&Value>) -> Result<(), String> {
    match schema {
        None => Ok(()),
        Some(Value::String(uri)) if KNOWN_DRAFTS.contains(&uri.trim_end_matches('#')) => Ok(()),
        Some(other) => Err(format!(
            "$schema {other} at \"/$schema\" is not a supported draft"
        )),
    }
}

fn check_pattern(pattern: &str, at: &str, limits: &SchemaLimits) -> Result<(), String> {
    if pattern.len() > limits.max_pattern_bytes {
        return Err(format!(
            "pattern at \"{at}\" is {} bytes, over the limit of {}",
            pattern.len(),
            limits.max_pattern_bytes
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(drop)
        .map_err(|e| {
            format!(
                "pattern at \"{at}\" is invalid or uses a feature the linear-time regex engine \
                 does not support (backreferences, lookaround): {e}"
            )
        })
}

/// Resolves a local ref the way the `referencing` crate does (percent-decode the fragment,
/// split on `/`, unescape `~1`/`~0`, `usize` array indexes), so both see the same target.
fn resolve_ref(tree: &Tree<'_>, text: &str) -> Result<usize, String> {
    let Some(fragment) = text.strip_prefix('#') else {
        return Err("only local refs (\"#\" or \"#/...\") are allowed".to_string());
    };
    if fragment.is_empty() {
        return Ok(0);
    }
    let Some(pointer) = fragment.strip_prefix('/') else {
        return Err("anchor refs are not supported; use a \"#/...\" JSON pointer".to_string());
    };
    let pointer = percent_decode(pointer)?;
    let mut current = tree.nodes[0].value;
    for segment in pointer.split('/') {
        let next = match current {
            Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            Value::Object(map) => map.get(&segment.replace("~1", "/").replace("~0", "~")),
            _ => None,
        };
        current = next.ok_or_else(|| format!("nothing at \"/{pointer}\" in this schema"))?;
    }
    tree.ids
        .get(&std::ptr::from_ref(current))
        .copied()
        .ok_or_else(|| format!("target \"/{pointer}\" is not part of the checked tree"))
}

/// Like `percent_encoding::percent_decode_str`: `%XX` becomes a byte, a stray `%` stays.
fn percent_decode(input: &str) -> Result<String, String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoding does not decode to UTF-8".to_string())
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    New,
    OnPath,
    Done,
}

/// Ref graph: an edge runs from each ref to every ref inside its target's subtree. A cycle is
/// exactly "a ref whose target reaches that same ref"; on the acyclic rest, sums the inlined
/// size so that exponential reuse is refused too. Iterative DFS, again to spare the stack.
fn check_ref_graph(tree: &Tree<'_>, refs: &[Ref<'_>], limits: &SchemaLimits) -> Result<(), String> {
    let max_expanded = limits.max_nodes.saturating_mul(EXPANSION_FACTOR);
    // `refs` is ordered by site, so the refs under a target form one contiguous run.
    let inner = |k: usize| {
        let target = refs[k].target;
        let end = tree.nodes[target].end;
        refs.partition_point(|r| r.site < target)..refs.partition_point(|r| r.site < end)
    };
    let mut marks = vec![Mark::New; refs.len()];
    let mut expanded = vec![0usize; refs.len()];
    for start in 0..refs.len() {
        if marks[start] != Mark::New {
            continue;
        }
        marks[start] = Mark::OnPath;
        let mut path = vec![(start, inner(start).start)];
        while let Some((k, cursor)) = path.last_mut() {
            let k = *k;
            let run = inner(k);
            if *cursor < run.end {
                let j = *cursor;
                *cursor += 1;
                match marks[j] {
                    Mark::OnPath => return Err(recursion_error(tree, &refs[j])),
                    Mark::New => {
                        marks[j] = Mark::OnPath;
                        path.push((j, inner(j).start));
                    }
                    Mark::Done => {}
                }
                continue;
            }
            let size = run.fold(tree.subtree_len(refs[k].target), |acc, j| {
                acc.saturating_add(expanded[j])
            });
            if size > max_expanded {
                return Err(format!(
                    "$ref {:?} at \"{}/$ref\" expands to more than {max_expanded} JSON values",
                    refs[k].text,
                    tree.pointer(refs[k].site)
                ));
            }
            expanded[k] = size;
            marks[k] = Mark::Done;
            path.pop();
        }
    }
    let total = expanded
        .iter()
        .fold(tree.nodes.len(), |acc, &n| acc.saturating_add(n));
    if total > max_expanded {
        return Err(format!(
            "schema expands to more than {max_expanded} JSON values once $refs are inlined"
        ));
    }
    Ok(())
}

fn recursion_error(tree: &Tree<'_>, r: &Ref<'_>) -> String {
    format!(
        "$ref recursion at \"{}/$ref\": its target {:?} leads back to this $ref",
        tree.pointer(r.site),
        r.text
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_default(schema: &Value) -> Result<(), String> {
        let text = schema.to_string();
        check(schema, text.len(), &SchemaLimits::default())
    }

    fn refused(schema: &Value) -> String {
        match check_default(schema) {
            Ok(()) => panic!("expected {schema} to be refused"),
            Err(e) => e,
        }
    }

    /// `{"items": {"items": ... {}}}` with `levels` objects.
    fn nested(levels: usize) -> Value {
        let mut schema = json!({});
        for _ in 1..levels {
            schema = json!({ "items": schema });
        }
        schema
    }

    #[test]
    fn self_ref_through_all_of_is_refused() {
        let e = refused(&json!({"allOf": [{"$ref": "#"}]}));
        assert!(e.contains("$ref recursion at \"/allOf/0/$ref\""), "{e}");
    }

    #[test]
    fn bare_self_ref_anywhere_is_refused() {
        let e = refused(&json!({"properties": {"a": {"$ref": "#/properties/a"}}}));
        assert!(e.contains("recursion at \"/properties/a/$ref\""), "{e}");
    }

    #[test]
    fn mutual_cycle_in_defs_is_refused() {
        let e = refused(&json!({
            "$ref": "#/$defs/A",
            "$defs": {
                "A": {"properties": {"b": {"$ref": "#/$defs/B"}}},
                "B": {"items": {"$ref": "#/$defs/A"}}
            }
        }));
        assert!(e.contains("$ref recursion at"), "{e}");
    }

    #[test]
    fn unused_cycle_in_defs_is_still_refused() {
        // Refused whether or not anything reaches it: reachability is not worth reasoning about.
        let e = refused(&json!({
            "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}
        }));
        assert!(e.contains("$ref recursion at \"/$defs/"), "{e}");
    }

    #[test]
    fn backreference_pattern_is_refused() {
        let e = refused(&json!({"type": "string", "pattern": "^(a+)+\\1$"}));
        assert!(e.contains("pattern at \"/pattern\""), "{e}");
        assert!(e.contains("backreferences"), "{e}");
    }

    #[test]
    fn lookahead_pattern_is_refused() {
        let e = refused(&json!({"properties": {"x": {"pattern": "^(?=a)a$"}}}));
        assert!(e.contains("pattern at \"/properties/x/pattern\""), "{e}");
    }

    #[test]
    fn backreference_pattern_properties_key_is_refused() {
        let e = refused(&json!({"patternProperties": {"^(a)\\1$": {"type": "string"}}}));
        assert!(
            e.contains("pattern at \"/patternProperties/^(a)\\1$\""),
            "{e}"
        );
    }

    #[test]
    fn overlong_pattern_is_refused() {
        let e = refused(&json!({"pattern": "a".repeat(1025)}));
        assert!(e.contains("1025 bytes"), "{e}");
        assert!(check_default(&json!({"pattern": "a".repeat(1024)})).is_ok());
    }

    #[test]
    fn oversized_regex_automaton_is_refused() {
        let e = refused(&json!({"pattern": "\\w{1000}{1000}"}));
        assert!(e.contains("pattern at \"/pattern\""), "{e}");
    }

    #[test]
    fn shared_defs_pass_check_compile_and_validate() {
        let schema = json!({
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/X"}, "b": {"$ref": "#/$defs/X"}},
            "$defs": {"X": {"type": "string", "pattern": "^[a-z]+$"}}
        });
        check_default(&schema).unwrap();
        let validator = compile(&schema).unwrap();
        assert!(validator.is_valid(&json!({"a": "abc", "b": "xyz"})));
        assert!(!validator.is_valid(&json!({"a": "abc", "b": "XYZ"})));
        assert!(!validator.is_valid(&json!({"a": 1})));
    }

    #[test]
    fn schemars_style_schema_passes() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "Input",
            "type": "object",
            "properties": {
                "host": {"type": "string", "format": "hostname"},
                "mode": {"$ref": "#/$defs/Mode"},
                "ports": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                "tags": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Tag"}}
            },
            "required": ["host", "mode"],
            "$defs": {
                "Mode": {"oneOf": [
                    {"type": "string", "const": "fast"},
                    {"type": "string", "enum": ["slow", "safe"]}
                ]},
                "Tag": {"type": "object", "properties": {"k": {"$ref": "#/$defs/Mode"}}}
            }
        });
        check_default(&schema).unwrap();
        let validator = compile(&schema).unwrap();
        assert!(validator.is_valid(&json!({"host": "a.example", "mode": "safe"})));
        assert!(!validator.is_valid(&json!({"host": "a.example", "mode": "reckless"})));
    }

    #[test]
    fn remote_ref_is_refused() {
        let e = refused(&json!({"$ref": "https://example.com/s.json"}));
        assert!(e.contains("only local refs"), "{e}");
        assert!(e.contains("at \"/$ref\""), "{e}");
    }

    #[test]
    fn dynamic_recursive_and_anchor_refs_are_refused() {
        assert!(
            refused(&json!({"$dynamicRef": "#meta"})).contains("$dynamicRef at \"/$dynamicRef\"")
        );
        assert!(refused(&json!({"items": {"$recursiveRef": "#"}})).contains("$recursiveRef"));
        assert!(refused(&json!({"$ref": "#node"})).contains("anchor refs"));
    }

    #[test]
    fn nested_id_is_refused() {
        let e = refused(&json!({
            "$defs": {"A": {"$id": "https://example.com/a", "$ref": "#"}},
            "$ref": "#/$defs/A"
        }));
        assert!(e.contains("nested $id at \"/$defs/A/$id\""), "{e}");
    }

    #[test]
    fn unknown_dialect_is_refused() {
        let e = refused(&json!({"$schema": "https://example.com/meta"}));
        assert!(e.contains("/$schema"), "{e}");
        let e = refused(&json!({"$schema": "http://json-schema.org/draft-04/schema#"}));
        assert!(e.contains("not a supported draft"), "{e}");
    }

    #[test]
    fn missing_pointer_is_refused() {
        let e = refused(&json!({"$ref": "#/$defs/Nope", "$defs": {"Yes": {}}}));
        assert!(e.contains("nothing at \"/$defs/Nope\""), "{e}");
        let e = refused(&json!({"$ref": "#/allOf/5", "allOf": [{}]}));
        assert!(e.contains("nothing at"), "{e}");
    }

    #[test]
    fn depth_limit_is_enforced() {
        let e = refused(&nested(33));
        assert!(e.contains("deeper than 32 levels"), "{e}");
        assert!(check_default(&nested(32)).is_ok());
    }

    #[test]
    fn node_limit_is_enforced() {
        let many: serde_json::Map<String, Value> =
            (0..20_000).map(|i| (format!("p{i}"), json!(i))).collect();
        let schema = json!({"properties": {}, "examples": [many]});
        let e = check(&schema, 0, &SchemaLimits::default()).unwrap_err();
        assert!(e.contains("more than 10000 JSON values"), "{e}");
    }

    #[test]
    fn byte_limit_is_enforced() {
        let e = check(&json!({}), 256 * 1024 + 1, &SchemaLimits::default()).unwrap_err();
        assert!(e.contains("over the limit of 262144"), "{e}");
    }

    #[test]
    fn exponential_ref_reuse_is_refused() {
        // D0 uses D1 twice, D1 uses D2 twice, ...: 2^30 copies once inlined.
        let mut defs = serde_json::Map::new();
        for i in 0..30 {
            let next = format!("#/$defs/D{}", i + 1);
            defs.insert(
                format!("D{i}"),
                json!({"allOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("D30".to_string(), json!({"type": "string"}));
        let e = refused(&json!({"$ref": "#/$defs/D0", "$defs": defs}));
        assert!(e.contains("expands to more than 160000"), "{e}");
    }

    #[test]
    fn pointer_escapes_and_percent_encoding_resolve() {
        let schema = json!({
            "properties": {
                "slash": {"$ref": "#/$defs/a~1b"},
                "tilde": {"$ref": "#/$defs/c~0d"},
                "space": {"$ref": "#/$defs/e%20f"},
                "pct": {"$ref": "#/%24defs/a~1b"}
            },
            "$defs": {
                "a/b": {"type": "string"},
                "c~d": {"type": "integer"},
                "e f": {"type": "boolean"}
            }
        });
        check_default(&schema).unwrap();
        let validator = compile(&schema).unwrap();
        assert!(validator.is_valid(&json!({"slash": "s", "tilde": 1, "space": true, "pct": "p"})));
        assert!(!validator.is_valid(&json!({"slash": 1})));
        assert!(!validator.is_valid(&json!({"tilde": "x"})));
        assert!(!validator.is_valid(&json!({"space": "x"})));
        // `~1` must not be read as a path separator: `/$defs/a/b` does not exist.
        let e = refused(&json!({"$ref": "#/$defs/a/b", "$defs": {"a/b": {}}}));
        assert!(e.contains("nothing at \"/$defs/a/b\""), "{e}");
    }

    #[test]
    fn recursion_through_escaped_pointer_is_refused() {
        let e = refused(&json!({"$defs": {"a/b": {"items": {"$ref": "#/$defs/a~1b"}}}}));
        assert!(e.contains("recursion at \"/$defs/a~1b/items/$ref\""), "{e}");
        let e = refused(&json!({"$defs": {"a b": {"not": {"$ref": "#/$defs/a%20b"}}}}));
        assert!(e.contains("recursion at \"/$defs/a b/not/$ref\""), "{e}");
    }

    #[test]
    fn compile_alone_refuses_fancy_only_patterns() {
        // With `PatternOptions::regex()` the validator refuses these on its own; `check`
        // refuses them earlier and names the pointer.
        let pattern = json!({"type": "string", "pattern": "^(a)\\1$"});
        let e = compile(&pattern).unwrap_err();
        assert!(e.contains("is not a \"regex\""), "{e}");
        assert!(refused(&pattern).contains("pattern at \"/pattern\""));
        // Also where jsonschema's `unevaluatedProperties` builds its own fancy-regex copy.
        let keys = json!({
            "patternProperties": {"^(?=a)": {}},
            "unevaluatedProperties": false
        });
        assert!(compile(&keys).is_err());
        assert!(refused(&keys).contains("pattern at \"/patternProperties/^(?=a)\""));
    }

    #[test]
    fn compile_does_not_fetch_remote_refs() {
        let e = compile(&json!({"$ref": "https://example.com/s.json"})).unwrap_err();
        assert!(e.contains("example.com"), "{e}");
    }
}
