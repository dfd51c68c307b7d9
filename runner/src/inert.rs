//! Text from alerts, connectors and vendors is attacker-controlled, yet it is
//! printed on SOC operators' terminals. This makes it inert first, so a CR/LF
//! or `ESC[8m` in a hostname can neither forge a line nor hide the next one.

use std::borrow::Cow;
use std::fmt::Write as _;

/// One-line field: the text as it may be printed inside a single line.
///
/// Control characters (C0, DEL, C1), line breaks and characters that reorder
/// or hide text are written as visible escapes: `\r`, `\n`, `\t`, `\e`, and
/// `\u{202e}` for the rest. A backslash is left as it is (see [`escape`]).
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Multi-line block: like [`line`], but LF is kept (CR and everything else
/// escaped), so a block can still only break where a line feed really was.
pub fn block(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

/// Whether `c` must be written as an escape rather than printed.
fn needs_escape(c: char, keep_lf: bool) -> bool {
    if keep_lf && c == '\n' {
        return false;
    }
    // `is_control` is exactly C0, DEL and C1 (so CSI U+009B and NEL U+0085).
    c.is_control() || hides_text(c)
}

/// Characters that draw nothing of their own yet reorder, join, break or hide
/// the text around them: Unicode's default-ignorable code points (bidi
/// controls, zero-width characters, variation selectors and tags, which can
/// smuggle a whole invisible message), the line and paragraph separators, and
/// the interlinear annotation marks (which some renderers use to hide text).
fn hides_text(c: char) -> bool {
    matches!(c as u32,
        0x00AD                  // soft hyphen
        | 0x034F                // combining grapheme joiner
        | 0x061C                // Arabic letter mark (bidi)
        | 0x115F..=0x1160       // Hangul fillers: letters that draw as blank
        | 0x17B4..=0x17B5       // Khmer inherent vowels
        | 0x180B..=0x180F       // Mongolian variation selectors, vowel separator
        | 0x200B..=0x200F       // zero-width space/non-joiner/joiner, LRM, RLM
        | 0x2028..=0x202E       // line/paragraph separators, LRE RLE PDF LRO RLO
        | 0x2060..=0x206F       // word joiner, invisible operators, LRI RLI FSI PDI
        | 0x3164                // Hangul filler
        | 0xFE00..=0xFE0F       // variation selectors
        | 0xFEFF                // byte-order mark / zero-width no-break space
        | 0xFFA0                // half-width Hangul filler
        | 0xFFF0..=0xFFFB       // unassigned ignorables, interlinear annotation
        | 0x1BCA0..=0x1BCA3     // shorthand format controls
        | 0x1D173..=0x1D17A     // musical format controls
        | 0xE0000..=0xE0FFF     // tags, variation selectors supplement
    )
}

/// Copies `text` with every character that [`needs_escape`] written visibly.
///
/// A backslash is *not* escaped. The output is for a human reader, never
/// decoded again, so a literal `\e[8m` or `\r\n` typed by an attacker is only
/// printable ASCII: it can claim a control character was there, but it cannot
/// move the cursor, break the line, or hide or reorder anything. Doubling
/// backslashes would instead garble what alerts are full of, Windows paths
/// and `DOMAIN\user`, which operators read and copy.
fn escape(text: &str, keep_lf: bool) -> Cow<'_, str> {
    // Most text is clean: scan once and hand it back untouched.
    let Some(first) = text.find(|c| needs_escape(c, keep_lf)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        push_visible(&mut out, c, keep_lf);
    }
    Cow::Owned(out)
}

/// Appends `c`, or its escape when it must not reach the terminal as it is.
fn push_visible(out: &mut String, c: char, keep_lf: bool) {
    match c {
        '\n' if keep_lf => out.push('\n'),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{1b}' => out.push_str("\\e"),
        c if needs_escape(c, keep_lf) => {
            // Writing to a `String` cannot fail.
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character a terminal or renderer might act on, for the
    /// "nothing gets through" checks.
    fn acts_on_terminal(c: char) -> bool {
        c.is_control() || hides_text(c)
    }

    #[test]
    fn the_forged_handoff_line_stays_on_one_line_with_no_control_bytes() {
        let attack = "FIN-WS-042\r\n  approve: soar approve r1 approve --as x\x1b[8m";
        let out = line(attack);
        assert_eq!(
            out,
            "FIN-WS-042\\r\\n  approve: soar approve r1 approve --as x\\e[8m"
        );
        assert_eq!(out.lines().count(), 1);
        assert!(!out.chars().any(acts_on_terminal), "{out:?}");
        assert!(out.bytes().all(|b| (0x20..0x7f).contains(&b)), "{out:?}");
    }

    #[test]
    fn the_bidi_override_is_escaped() {
        assert_eq!(line("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
    }

    #[test]
    fn every_bidi_formatting_character_is_escaped() {
        let bidi = [
            0x061C, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
        ]
        .into_iter()
        .chain(0x2066..=0x2069);
        for cp in bidi {
            let c = char::from_u32(cp).unwrap();
            assert_eq!(line(&c.to_string()), format!("\\u{{{cp:x}}}"));
        }
    }

    #[test]
    fn zero_width_separators_and_bom_are_escaped() {
        assert_eq!(
            line("a\u{200b}b\u{200c}c\u{200d}d"),
            "a\\u{200b}b\\u{200c}c\\u{200d}d"
        );
        assert_eq!(line("a\u{2028}b\u{2029}c"), "a\\u{2028}b\\u{2029}c");
        assert_eq!(line("\u{feff}host"), "\\u{feff}host");
        assert_eq!(block("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn smuggled_tag_and_variation_selector_text_is_escaped() {
        // "hi" in tag characters, and a byte hidden in a variation selector.
        assert_eq!(line("ok\u{e0068}\u{e0069}"), "ok\\u{e0068}\\u{e0069}");
        assert_eq!(line("x\u{e0100}"), "x\\u{e0100}");
        assert_eq!(line("soft\u{ad}hyphen"), "soft\\u{ad}hyphen");
    }

    #[test]
    fn c0_del_and_c1_controls_are_escaped() {
        assert_eq!(line("a\tb"), "a\\tb");
        assert_eq!(line("bell\x07\x00"), "bell\\u{7}\\u{0}");
        assert_eq!(line("del\x7f"), "del\\u{7f}");
        assert_eq!(line("csi\u{9b}8m"), "csi\\u{9b}8m");
        assert_eq!(line("nel\u{85}x"), "nel\\u{85}x");
        for c in (0..=0x1f).chain(0x7f..=0x9f).filter_map(char::from_u32) {
            let out = line(&c.to_string()).into_owned();
            assert!(out.starts_with('\\') && out.len() > 1, "{c:?} -> {out:?}");
        }
    }

    #[test]
    fn no_character_reaches_the_terminal_unescaped() {
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let s = c.to_string();
            let one = line(&s);
            assert!(!one.chars().any(acts_on_terminal), "line {c:?} -> {one:?}");
            let many = block(&s);
            assert!(
                !many.chars().any(|d| d != '\n' && acts_on_terminal(d)),
                "block {c:?} -> {many:?}"
            );
        }
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(line("FIN-WS-042 10.0.0.7 ok"), Cow::Borrowed(_)));
        assert!(matches!(line(""), Cow::Borrowed(_)));
        assert!(matches!(block("two\nlines"), Cow::Borrowed(_)));
    }

    #[test]
    fn multi_byte_utf8_is_untouched() {
        assert!(matches!(line("café é 日本 ✓"), Cow::Borrowed(_)));
        assert_eq!(line("café é 日本 ✓"), "café é 日本 ✓");
        // Escapes next to multi-byte characters keep them whole.
        assert_eq!(line("日\x1b本\r"), "日\\e本\\r");
    }

    #[test]
    fn a_backslash_is_left_alone() {
        assert!(matches!(
            line("CORP\\alice C:\\Temp\\x.exe"),
            Cow::Borrowed(_)
        ));
        assert_eq!(line("a\\e[8m\x1b"), "a\\e[8m\\e");
    }

    #[test]
    fn block_keeps_line_feeds_but_escapes_cr_and_esc() {
        assert_eq!(block("a\nb\r\nc\x1b[8md"), "a\nb\\r\nc\\e[8md");
        assert_eq!(block("t\tx"), "t\\tx");
        assert_eq!(line("a\nb"), "a\\nb");
    }
}
