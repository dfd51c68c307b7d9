//! Scrubs granted secrets out of whatever comes back to a plugin, so a hostile
//! vendor cannot echo a secret (plainly, escaped, hex or base64, alone or inside
//! a larger encoded blob) for the plugin to decode and leak.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::engine::GeneralPurpose;
use base64::Engine as _;
use std::collections::HashSet;
use std::fmt;

/// Forms shorter than this are never looked for: a three-byte needle turns up
/// by chance in ordinary text and would shred innocent responses.
const MIN_FORM_LEN: usize = 4;

/// Values shorter than this get only their textual forms (plain, percent- and
/// JSON-escaped). Their hex and base64 forms (notably the alignment cores, a
/// few characters long) would match by chance inside ordinary hashes, ids and
/// base64 payloads.
const MIN_ENCODED_LEN: usize = 6;

/// The two base64 alphabets, unpadded: cores never carry padding.
const ALPHABETS: [GeneralPurpose; 2] = [STANDARD_NO_PAD, URL_SAFE_NO_PAD];

/// Every form in which the granted secrets could come back, compiled once per invocation.
///
/// Per value `S` (a secret, or a Basic-auth `user:pass` pair) it matches:
/// * plain `S`, its percent-encodings (`+`-for-space form style, RFC 3986 `%20`
///   style, and every byte escaped; each with all-upper or all-lower escape
///   digits) and its JSON string escapes (with and without `\/`);
/// * when `S` is at least 6 bytes: hex (lower, upper) and base64 (standard and
///   URL-safe, padded and unpadded), plus the base64 "cores" of `S` at the
///   three byte alignments, so `S` embedded anywhere in a larger base64 blob is
///   found too.
///
/// Limits: values under 4 bytes are not matched at all, and forms under 4 bytes
/// are dropped. Removing a core leaves the one or two neighbouring base64
/// characters that mix `S` with its neighbours (a few bits of the first and last
/// byte). Mixed-case escapes within one value, line-wrapped base64, double
/// encodings and `\uXXXX`-escaped non-ASCII are not matched.
pub struct Scrubber {
    /// Matches every form at once; `None` when there is nothing to look for.
    matcher: Option<Matcher>,
}

enum Matcher {
    /// Pattern id `i` is a form of the secret named `names[i]`.
    Ready { ac: AhoCorasick, names: Vec<String> },
    /// The automaton could not be built (limits far above any real secret
    /// set): fail closed, every non-empty input counts as carrying `name`.
    Broken { name: String },
}

impl Scrubber {
    /// `secrets`: (name, value) of every secret granted to the plugin. `basic_pairs`: "username:password" strings the host built Basic auth headers from (their base64 is a form too), each tagged with the secret name(s) it carries.
    pub fn new(secrets: &[(String, String)], basic_pairs: &[(String, String)]) -> Self {
        let mut needles = Needles::default();
        for (name, value) in secrets.iter().chain(basic_pairs) {
            for form in forms(value) {
                needles.add(name, form);
            }
        }
        Scrubber {
            matcher: needles.compile(basic_pairs.is_empty()),
        }
    }

    /// True when there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Replaces every occurrence of every form by `[redacted:NAME]`.
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.matcher {
            None => bytes.to_vec(),
            Some(Matcher::Broken { name }) if !bytes.is_empty() => mark(name).into_bytes(),
            Some(Matcher::Broken { .. }) => Vec::new(),
            Some(Matcher::Ready { ac, names }) => {
                let mut out = Vec::with_capacity(bytes.len());
                ac.replace_all_with_bytes(bytes, &mut out, |m, _, dst| {
                    dst.extend_from_slice(mark(name_of(names, m.pattern().as_usize())).as_bytes());
                    true
                });
                out
            }
        }
    }

    /// Replaces every occurrence of every form by `[redacted:NAME]`.
    pub fn scrub_text(&self, text: &str) -> String {
        match &self.matcher {
            None => text.to_string(),
            Some(Matcher::Broken { name }) if !text.is_empty() => mark(name),
            Some(Matcher::Broken { .. }) => String::new(),
            // Every needle is valid UTF-8, so matches fall on char boundaries.
            Some(Matcher::Ready { ac, names }) => {
                let mut out = String::with_capacity(text.len());
                ac.replace_all_with(text, &mut out, |m, _, dst| {
                    dst.push_str(&mark(name_of(names, m.pattern().as_usize())));
                    true
                });
                out
            }
        }
    }

    /// The name of the first secret found in any form, if any.
    pub fn find(&self, bytes: &[u8]) -> Option<&str> {
        match self.matcher.as_ref()? {
            Matcher::Broken { name } => (!bytes.is_empty()).then_some(name.as_str()),
            Matcher::Ready { ac, names } => {
                let m = ac.find(bytes)?;
                Some(name_of(names, m.pattern().as_usize()))
            }
        }
    }
}

/// Never shows a secret, not even a form of one.
impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let forms = match &self.matcher {
            None => 0,
            Some(Matcher::Ready { names, .. }) => names.len(),
            Some(Matcher::Broken { .. }) => usize::MAX,
        };
        f.debug_struct("Scrubber").field("forms", &forms).finish()
    }
}

fn mark(name: &str) -> String {
    format!("[redacted:{name}]")
}

/// Pattern ids come from the automaton built over `names`, so the lookup
/// always succeeds; the fallback only keeps this free of a panic path.
fn name_of(names: &[String], pattern: usize) -> &str {
    names.get(pattern).map_or("secret", String::as_str)
}

/// Distinct needles with the secret each belongs to (the first one to
/// produce a form keeps it).
#[derive(Default)]
struct Needles {
    seen: HashSet<String>,
    forms: Vec<String>,
    names: Vec<String>,
}

impl Needles {
    fn add(&mut self, name: &str, form: String) {
        if form.len() >= MIN_FORM_LEN && self.seen.insert(form.clone()) {
            self.forms.push(form);
            self.names.push(name.to_string());
        }
    }

    /// `reused`: the scrubber is cached across invocations, so a DFA's
    /// slower build pays for its faster scan.
    fn compile(self, reused: bool) -> Option<Matcher> {
        let first = self.names.first()?.clone();
        // Leftmost-longest: of overlapping forms the longest wins, so a form
        // that extends another (padded vs unpadded, a longer secret holding a
        // shorter one) is removed whole instead of leaving its tail behind.
        // No prefilter: the forms start with every base64 character, so on a
        // base64 body it stops at nearly every byte and runs ~4x slower than
        // the bare automaton (~90 vs ~20 µs per 4 KiB with 10 secrets). A
        // contiguous NFA builds ~6x faster than a DFA and scans nearly as fast,
        // and a scrubber is rebuilt for every invocation that sends Basic auth;
        // one cached across invocations (no Basic pairs) is a DFA.
        let kind = if reused {
            AhoCorasickKind::DFA
        } else {
            AhoCorasickKind::ContiguousNFA
        };
        let built = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(kind))
            .prefilter(false)
            .build(&self.forms);
        Some(match built {
            Ok(ac) => Matcher::Ready {
                ac,
                names: self.names,
            },
            Err(_) => Matcher::Broken { name: first },
        })
    }
}

/// Every form of one value (duplicates and short forms are dropped later).
fn forms(value: &str) -> Vec<String> {
    if value.len() < MIN_FORM_LEN {
        return Vec::new();
    }
    let mut out = vec![value.to_string()];
    out.extend(percent_forms(value.as_bytes()));
    out.extend(json_forms(value));
    if value.len() >= MIN_ENCODED_LEN {
        out.push(hex::encode(value));
        out.push(hex::encode_upper(value));
        out.extend(base64_forms(value.as_bytes()));
    }
    out
}

/// Form-style (`+` for space), RFC 3986 and every-byte escapes, each with
/// upper- and lower-case hex digits (encoders differ on both).
fn percent_forms(value: &[u8]) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(value).collect();
    let rfc3986 = percent_encode(value, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let every = percent_encode(value, |_| false);
    [form, rfc3986, every]
        .into_iter()
        .flat_map(|upper| {
            let lower = lower_escapes(&upper);
            [upper, lower]
        })
        .collect()
}

/// `value` with every byte that is not `keep` written as `%XX` (upper case).
fn percent_encode(value: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&hex::encode_upper([b]));
        }
    }
    out
}

/// The same escapes with lower-case hex digits (the two characters after
/// each `%`; the text between escapes is left as is).
fn lower_escapes(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut digits_left = 0;
    for c in encoded.chars() {
        if digits_left > 0 {
            out.push(c.to_ascii_lowercase());
            digits_left -= 1;
        } else {
            out.push(c);
            if c == '%' {
                digits_left = 2;
            }
        }
    }
    out
}

/// The value as it appears inside a JSON string, which is where most
/// responses would echo it; with and without `/` escaped as `\/`.
fn json_forms(value: &str) -> [String; 2] {
    let plain = json_escape(value);
    let slashed = plain.replace('/', "\\/");
    [plain, slashed]
}

fn json_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Whole-value base64 in both alphabets, padded and not, plus the cores that
/// survive when the value sits at any offset inside a larger encoded blob.
fn base64_forms(value: &[u8]) -> Vec<String> {
    let mut out = vec![
        STANDARD.encode(value),
        STANDARD_NO_PAD.encode(value),
        URL_SAFE.encode(value),
        URL_SAFE_NO_PAD.encode(value),
    ];
    for lead in 0..3 {
        for alphabet in &ALPHABETS {
            out.extend(base64_core(alphabet, lead, value));
        }
    }
    out
}

/// The base64 characters of `value` preceded by `lead` (0..3) bytes that
/// depend on `value`'s bytes alone: any blob holding `value` at an offset
/// congruent to `lead` mod 3 contains exactly these characters.
///
/// Character `i` carries input bits `6i..6i+6`. The first one clear of the
/// lead bytes has `6i >= 8 * lead`, i.e. `i = ceil(4 * lead / 3)`; the last one
/// ending inside the value has `6i + 6 <= 8 * (lead + len)`, so the core ends
/// before `floor(4 * (lead + len) / 3)`. Later characters would mix in the
/// unknown suffix (or padding).
fn base64_core(alphabet: &GeneralPurpose, lead: usize, value: &[u8]) -> Option<String> {
    let mut shifted = vec![0u8; lead];
    shifted.extend_from_slice(value);
    let encoded = alphabet.encode(&shifted);
    let start = (4 * lead).div_ceil(3);
    let end = 4 * shifted.len() / 3;
    encoded.get(start..end).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "sk_live_9f8e7d6c5b4a";

    fn secret(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    fn one(value: &str) -> Scrubber {
        Scrubber::new(&[secret("api_key", value)], &[])
    }

    /// Deterministic filler bytes (xorshift), different per seed.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect()
    }

    /// Independently of `base64_core`: the characters of a blob's base64
    /// whose six bits all fall inside `[offset, offset + len)`.
    fn expected_core(encoded: &str, offset: usize, len: usize) -> &str {
        let inside = |i: usize| 6 * i / 8 >= offset && (6 * i + 5) / 8 < offset + len;
        let first = (0..encoded.len()).find(|&i| inside(i)).unwrap();
        let last = (0..encoded.len()).rev().find(|&i| inside(i)).unwrap();
        &encoded[first..=last]
    }

    #[test]
    fn plain_secret_is_scrubbed_and_found() {
        let s = one(TOKEN);
        let text = format!("{{\"echo\":\"{TOKEN}\"}}");
        assert_eq!(s.scrub_text(&text), "{\"echo\":\"[redacted:api_key]\"}");
        assert_eq!(s.find(text.as_bytes()), Some("api_key"));
    }

    #[test]
    fn plain_secret_inside_longer_string_leaves_no_part_behind() {
        let s = Scrubber::new(
            &[
                secret("short", "tok-abcdef"),
                secret("long", "tok-abcdef-extended"),
            ],
            &[],
        );
        let text = "xxtok-abcdef-extendedyy and xxtok-abcdefzz";
        let out = s.scrub_text(text);
        assert_eq!(out, "xx[redacted:long]yy and xx[redacted:short]zz");
        assert_eq!(s.find(out.as_bytes()), None);
    }

    #[test]
    fn hex_upper_and_lower_are_scrubbed() {
        let s = one(TOKEN);
        let upper = format!("digest={}", hex::encode_upper(TOKEN));
        let lower = format!("digest={}", hex::encode(TOKEN));
        assert_eq!(s.scrub_text(&upper), "digest=[redacted:api_key]");
        assert_eq!(s.scrub_text(&lower), "digest=[redacted:api_key]");
    }

    #[test]
    fn percent_encoded_with_escaped_slash_is_scrubbed() {
        let value = "ab/cd+ef gh=";
        let s = one(value);
        for encoded in [
            "ab%2Fcd%2Bef+gh%3D",   // form style
            "ab%2Fcd%2Bef%20gh%3D", // RFC 3986
            "ab%2fcd%2bef%20gh%3d", // lower-case escapes
            "%61%62%2F%63%64%2B%65%66%20%67%68%3D",
        ] {
            let text = format!("q={encoded}&x=1");
            assert_eq!(s.scrub_text(&text), "q=[redacted:api_key]&x=1", "{encoded}");
        }
    }

    #[test]
    fn json_escaped_secret_is_scrubbed() {
        let value = "pa\"ss/wo\\rd";
        let s = one(value);
        for escaped in [r#"pa\"ss/wo\\rd"#, r#"pa\"ss\/wo\\rd"#] {
            let text = format!("{{\"v\":\"{escaped}\"}}");
            assert_eq!(s.find(text.as_bytes()), Some("api_key"), "{escaped}");
            assert_eq!(s.scrub_text(&text), "{\"v\":\"[redacted:api_key]\"}");
        }
    }

    #[test]
    fn url_safe_unpadded_base64_is_scrubbed() {
        // Bytes that produce '-' and '_' in the URL-safe alphabet.
        let value = "key>>>???~~~";
        let encoded = URL_SAFE_NO_PAD.encode(value);
        assert!(encoded.contains('-') || encoded.contains('_'));
        let s = one(value);
        assert_eq!(
            s.scrub_text(&format!("t={encoded}.")),
            "t=[redacted:api_key]."
        );
    }

    #[test]
    fn padded_base64_is_removed_with_its_padding() {
        let value = "abcdefg"; // 7 bytes: two padding characters
        let s = one(value);
        let text = format!("[{}]", STANDARD.encode(value));
        assert_eq!(s.scrub_text(&text), "[[redacted:api_key]]");
    }

    #[test]
    fn base64_embedded_at_every_offset_is_found_and_core_removed() {
        let s = one(TOKEN);
        let alphabets = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD];
        for offset in 0..=5 {
            for suffix in 0..=4 {
                let mut blob = noise(offset as u64 * 7 + suffix as u64, offset);
                blob.extend_from_slice(TOKEN.as_bytes());
                blob.extend(noise(100 + suffix as u64, suffix));
                for alphabet in &alphabets {
                    let encoded = alphabet.encode(&blob);
                    let core = expected_core(&encoded, offset, TOKEN.len());
                    let case = format!("offset {offset}, suffix {suffix}: {encoded}");
                    assert_eq!(s.find(encoded.as_bytes()), Some("api_key"), "{case}");
                    let out = s.scrub_text(&encoded);
                    assert!(!out.contains(core), "core left in {out} ({case})");
                    assert!(out.contains("[redacted:api_key]"), "{case}");
                    assert_eq!(s.find(out.as_bytes()), None, "{case}");
                }
            }
        }
    }

    #[test]
    fn cores_are_what_an_embedding_contains() {
        for lead in 0..3 {
            for alphabet in &ALPHABETS {
                let core = base64_core(alphabet, lead, TOKEN.as_bytes()).unwrap();
                let mut blob = vec![0xA5; lead + 3];
                blob.extend_from_slice(TOKEN.as_bytes());
                blob.extend([0x5A; 2]);
                let encoded = alphabet.encode(&blob);
                assert_eq!(core, expected_core(&encoded, lead + 3, TOKEN.len()));
            }
        }
    }

    #[test]
    fn unrelated_string_is_not_matched() {
        let s = one(TOKEN);
        let other = "sk_live_0000000000aa";
        let text = format!(
            "{other} {} {} {} hello world, id=42",
            STANDARD.encode(other),
            hex::encode(other),
            STANDARD.encode(noise(9, 300)),
        );
        assert_eq!(s.find(text.as_bytes()), None);
        assert_eq!(s.scrub_text(&text), text);
    }

    #[test]
    fn find_names_the_right_secret_of_two() {
        let s = Scrubber::new(
            &[
                secret("first", "alpha-secret-1"),
                secret("second", "bravo-secret-2"),
            ],
            &[],
        );
        let text = format!("ok {}", STANDARD.encode("bravo-secret-2"));
        assert_eq!(s.find(text.as_bytes()), Some("second"));
        assert_eq!(s.find(b"alpha-secret-1"), Some("first"));
        assert_eq!(s.find(b"neither"), None);
    }

    #[test]
    fn empty_scrubber_returns_input_unchanged() {
        let s = Scrubber::new(&[], &[]);
        assert!(s.is_empty());
        assert_eq!(s.scrub_text("anything at all"), "anything at all");
        assert_eq!(s.scrub_bytes(&[0xff, 0x00, 0x41]), vec![0xff, 0x00, 0x41]);
        assert_eq!(s.find(b"anything"), None);
    }

    #[test]
    fn find_and_scrub_work_on_bytes_that_are_not_utf8() {
        let s = one(TOKEN);
        let mut body = vec![0xff, 0xfe, 0x80];
        body.extend_from_slice(hex::encode(TOKEN).as_bytes());
        body.push(0xc3);
        assert_eq!(s.find(&body), Some("api_key"));
        let mut expected = vec![0xff, 0xfe, 0x80];
        expected.extend_from_slice(b"[redacted:api_key]");
        expected.push(0xc3);
        assert_eq!(s.scrub_bytes(&body), expected);
    }

    #[test]
    fn basic_pair_base64_is_scrubbed_whole_and_embedded() {
        let pair = "svc-user:hunter22";
        let s = Scrubber::new(
            &[secret("vendor_password", "hunter22")],
            &[secret("vendor_password", pair)],
        );
        let header = format!("Authorization: Basic {}", STANDARD.encode(pair));
        assert_eq!(
            s.scrub_text(&header),
            "Authorization: Basic [redacted:vendor_password]"
        );
        // The pair inside a larger encoded blob, off alignment.
        let blob = STANDARD.encode(format!("x{pair}\n"));
        assert_eq!(s.find(blob.as_bytes()), Some("vendor_password"));
    }

    #[test]
    fn short_values_follow_the_length_rule() {
        let s = Scrubber::new(&[secret("tiny", "abc"), secret("small", "pin1")], &[]);
        // Under 4 bytes: not looked for at all.
        assert_eq!(s.find(b"xabcx"), None);
        // 4..6 bytes: plain only, not hex or base64.
        assert_eq!(s.find(b"code pin1"), Some("small"));
        assert_eq!(s.find(hex::encode("pin1").as_bytes()), None);
        assert_eq!(s.find(STANDARD.encode("pin1").as_bytes()), None);
        assert!(Scrubber::new(&[secret("tiny", "abc")], &[]).is_empty());
    }

    #[test]
    fn scrubbed_output_carries_no_form() {
        let s = Scrubber::new(&[secret("a", TOKEN), secret("b", "p@ss w/rd!")], &[]);
        let body = format!(
            "{TOKEN} {} {} {} {}",
            hex::encode_upper("p@ss w/rd!"),
            URL_SAFE.encode(TOKEN),
            "p%40ss%20w%2Frd%21",
            STANDARD.encode(format!("ab{TOKEN}c")),
        );
        let out = s.scrub_bytes(body.as_bytes());
        assert_eq!(s.find(&out), None, "{}", String::from_utf8_lossy(&out));
        assert!(!String::from_utf8_lossy(&out).contains("sk_live"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let shown = format!("{:?}", one(TOKEN));
        assert!(!shown.contains("sk_live"), "{shown}");
        assert!(!shown.contains(&hex::encode(TOKEN)), "{shown}");
    }

    #[test]
    fn a_secret_at_the_end_of_a_base64_body_is_scrubbed() {
        let secrets: Vec<_> = (0..10)
            .map(|i| {
                secret(
                    &format!("s{i}"),
                    &format!("secret-value-{i}-{}", hex::encode(noise(i, 8))),
                )
            })
            .collect();
        let s = Scrubber::new(&secrets, &[]);
        let mut body = STANDARD.encode(noise(1, 3072)).into_bytes();
        body.truncate(4096 - 40);
        body.extend_from_slice(secrets[3].1.as_bytes());
        let out = s.scrub_bytes(&body);
        assert_eq!(s.find(&out), None);
        assert!(String::from_utf8_lossy(&out).ends_with("[redacted:s3]"));
    }
}
