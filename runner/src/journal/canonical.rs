//! Canonical JSON and the record hash. A record's hash must be recomputable
//! from its stored text byte for byte, so numbers are kept as the literals
//! written (re-parsing floats through `f64` could move them by one ulp).

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// `prev_hash` of a run's first record.
pub(crate) const GENESIS_HASH: &str =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Deeper documents are refused rather than risk the stack; serde_json itself
/// stops at 128, so nothing the journal wrote comes close.
const MAX_DEPTH: usize = 256;

/// A parsed JSON document whose numbers keep their literal text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// The literal as written (already validated against the JSON grammar).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    /// Parses one JSON document; duplicate object keys are an error because
    /// they would let two readers see different values.
    pub(crate) fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
        };
        let value = p.value(0)?;
        p.skip_ws();
        if p.pos != p.bytes.len() {
            return Err(format!("trailing characters at byte {}", p.pos));
        }
        Ok(value)
    }

    /// Member `key` of an object.
    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(map) => map.get(key),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a `u64`, if it is a non-negative integer literal.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Num(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// Compact JSON with object keys in byte order: the one spelling hashed.
    pub(crate) fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => write_string(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_canonical(out);
                }
                out.push(']');
            }
            Json::Obj(map) => {
                out.push('{');
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(k, out);
                    out.push(':');
                    v.write_canonical(out);
                }
                out.push('}');
            }
        }
    }
}

/// Strings are escaped exactly as serde_json does, so canonicalising text that
/// serde_json wrote reproduces it.
fn write_string(s: &str, out: &mut String) {
    // Serializing a &str to JSON cannot fail.
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        self.skip_ws();
        match self.bytes.get(self.pos) {
            None => Err(self.err("unexpected end of input")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.err("invalid literal"))
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, kept verbatim.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.pos;
        if self.bytes[self.pos] == b'-' {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err("invalid number")),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.err("invalid number"));
            }
        }
        Ok(Json::Num(self.text[start..self.pos].to_string()))
    }

    /// Finds the closing quote, then lets serde_json decode the escapes (it
    /// also rejects raw control characters and bad `\u` sequences).
    fn string(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.bytes.get(self.pos) {
                None => return Err(self.err("unterminated string")),
                Some(b'\\') => self.pos += 2,
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
            }
        }
        let literal = self
            .text
            .get(start..self.pos)
            .ok_or_else(|| self.err("invalid string"))?;
        serde_json::from_str::<String>(literal).map_err(|e| format!("invalid string: {e}"))
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Arr(items));
                }
                _ => return Err(self.err("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.pos += 1;
        let mut map = BTreeMap::new();
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Obj(map));
        }
        loop {
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.err("expected a key"));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.err("expected `:`"));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            if map.insert(key.clone(), value).is_some() {
                return Err(format!("duplicate key `{key}`"));
            }
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Obj(map));
                }
                _ => return Err(self.err("expected `,` or `}`")),
            }
        }
    }
}

/// Hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `hex(sha256(prev_hash || "\n" || canonical JSON of {seq, at, event}))`,
/// with `event_canonical` already in canonical form. Keys `at` < `event` <
/// `seq` are written in byte order, so this is the canonical object.
pub(crate) fn record_hash(prev_hash: &str, seq: u64, at: &str, event_canonical: &str) -> String {
    let mut at_json = String::new();
    write_string(at, &mut at_json);
    let body = format!("{{\"at\":{at_json},\"event\":{event_canonical},\"seq\":{seq}}}");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.as_bytes());
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_keys_and_keeps_number_literals() {
        let text = r#" { "b" : [1, 2.5e-300, -0.0, 1E+2], "a": {"z": null, "y": true},
                        "c": "q\"\u00e9\n" } "#;
        let canon = Json::parse(text).unwrap().canonical();
        assert_eq!(
            canon,
            r#"{"a":{"y":true,"z":null},"b":[1,2.5e-300,-0.0,1E+2],"c":"q\"é\n"}"#
        );
    }

    #[test]
    fn canonical_of_serde_output_is_stable() {
        let v = json!({"x": 0.1, "big": u64::MAX, "neg": -5, "f": 2.638344616030823e-256,
                       "s": "tab\there \u{1}", "nested": [{"b": 1, "a": 2}]});
        let text = serde_json::to_string(&v).unwrap();
        let once = Json::parse(&text).unwrap().canonical();
        let twice = Json::parse(&once).unwrap().canonical();
        assert_eq!(once, twice);
        // It is still the same document.
        assert_eq!(serde_json::from_str::<serde_json::Value>(&once).unwrap(), v);
    }

    #[test]
    fn serde_json_text_of_a_value_is_canonical() {
        // The journal hashes serde_json's text of an event as its canonical
        // form (store::prepare): keys must come out sorted, whatever order
        // they were inserted in.
        let mut map = serde_json::Map::new();
        for key in ["zeta", "b", "a", "é", "A", "_"] {
            map.insert(
                key.to_string(),
                json!({"y": [0.1, -0.0, 1e300], "x": "\u{7f}\t\"q"}),
            );
        }
        let text = serde_json::to_string(&serde_json::Value::Object(map)).unwrap();
        assert_eq!(Json::parse(&text).unwrap().canonical(), text);
        assert!(text.starts_with(r#"{"A":{"x":"#), "{text}");
    }

    #[test]
    fn parse_rejects_bad_documents() {
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,\"a\":2}",
            "01",
            "1.",
            "-",
            "\"unterminated",
            "\"bad \\x escape\"",
            "nul",
            "{} x",
            &"[".repeat(300),
        ] {
            assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn hash_depends_on_every_input() {
        let h = record_hash(GENESIS_HASH, 1, "t", "{}");
        assert_eq!(h.len(), 64);
        assert_ne!(h, record_hash(GENESIS_HASH, 2, "t", "{}"));
        assert_ne!(h, record_hash(GENESIS_HASH, 1, "u", "{}"));
        assert_ne!(h, record_hash(GENESIS_HASH, 1, "t", "[]"));
        assert_ne!(h, record_hash(&"1".repeat(64), 1, "t", "{}"));
        // The documented formula, spelled out.
        let expected = sha256_hex(
            format!("{GENESIS_HASH}\n{{\"at\":\"t\",\"event\":{{}},\"seq\":1}}").as_bytes(),
        );
        assert_eq!(h, expected);
    }
}
