//! Text from alerts, connectors and vendors made inert before it reaches a
//! terminal: a hostname with CR/LF and `ESC[8m` must not forge a line of a
//! handoff or hide the approve command that follows it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One-line field: the text as it may be printed inside a single line.
/// Control characters, line breaks, bidirectional and invisible formatting
/// characters are written as visible escapes (`\n`, `\e`, `\u{202e}`).
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Multi-line block: like [`line`], but LF is kept (CR and everything else
/// is escaped).
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// Whether `c` can move the cursor, change what the terminal shows, or
/// reorder or hide the text around it.
fn dangerous(c: char) -> bool {
    c.is_control() // C0, DEL and C1 (CSI U+009B included)
        || matches!(c,
            '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{2028}' | '\u{2029}'
            | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn escape(text: &str, keep_lf: bool) -> Cow<'_, str> {
    // A backslash is left as it is: the escapes below are only ever written
    // for characters that are gone, so a literal `\n` in the text reads the
    // same as an escaped LF, which is harmless (nothing moves or hides).
    if !text
        .chars()
        .any(|c| dangerous(c) && !(keep_lf && c == '\n'))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' if keep_lf => out.push('\n'),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{1b}' => out.push_str("\\e"),
            c if dangerous(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forged_handoff_line_stays_on_its_line() {
        let attack = "FIN-WS-042\r\n  approve: soar approve r1 approve --as x\x1b[8m";
        let out = line(attack);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert!(out.contains("\\r\\n") && out.contains("\\e[8m"), "{out}");
    }

    #[test]
    fn bidi_c1_and_invisible_characters_are_escaped() {
        assert_eq!(line("abc\u{202e}def"), "abc\\u{202e}def");
        assert_eq!(line("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(line("a\u{200b}b\u{feff}"), "a\\u{200b}b\\u{feff}");
        assert_eq!(line("del\u{7f}"), "del\\u{7f}");
    }

    #[test]
    fn clean_text_is_borrowed_and_unicode_kept() {
        assert!(matches!(line("FIN-WS-042 é 日本"), Cow::Borrowed(_)));
        assert_eq!(line("é 日本"), "é 日本");
    }

    #[test]
    fn a_block_keeps_line_feeds_only() {
        assert_eq!(block("a\nb\r\n\x1bc"), "a\nb\\r\n\\ec");
        assert!(matches!(block("a\nb"), Cow::Borrowed(_)));
    }
}
