//! Identities (approvers, principals, `--as NAME`) are compared by name, so
//! names that look alike must be the same name or no name: case and width
//! are folded, and anything outside a small ASCII alphabet is refused.

use unicode_normalization::UnicodeNormalization;

/// Why a name is not acceptable (message says which character and what is allowed).
///
/// The message never repeats the name itself, which may hold control or
/// invisible characters; it names the character by code point instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName(pub String);

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadName {}

/// The documented safe alphabet, for error messages and docs.
pub const ALPHABET: &str = "lower-case ASCII letters, digits, `.`, `_` and `-`; 1 to 64 characters; starting with a letter or digit";

/// The longest name, in characters (all ASCII once accepted).
const MAX_CHARS: usize = 64;

/// Normalises a claimed or configured name: Unicode NFKC, then ASCII
/// lower-case; then checks it is in the safe alphabet. Full-width `ａｌｉｃｅ`
/// becomes `alice`; `ALICE` becomes `alice`; Cyrillic `аlice` is refused
/// (NFKC does not map it to Latin) with a message naming the offending
/// character as U+0430 and its position.
///
/// Surrounding ASCII whitespace is trimmed first: it is what YAML and shell
/// quoting leave behind. Any other space (NBSP, U+3000) is refused, as an
/// invisible difference between names. The rules are exactly [`ALPHABET`]
/// and nothing more: `a..b` is allowed (names are compared, never used as
/// paths; `.` and `..` alone are already refused by the first-character rule).
pub fn normalise(name: &str) -> Result<String, BadName> {
    let given = name.trim_matches(|c: char| c.is_ascii_whitespace());
    let folded = fold(given.chars());
    if let Some(at) = folded.find(|c| !allowed(c)) {
        return Err(bad_character(name, given, &folded[at..]));
    }
    // Every character is ASCII now, so bytes are characters.
    if folded.is_empty() {
        return Err(refusal("the name is empty"));
    }
    if folded.len() > MAX_CHARS {
        return Err(refusal(&format!(
            "the name has {} characters",
            folded.len()
        )));
    }
    if let Some(first) = folded.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        return Err(refusal(&format!("the name starts with `{first}`")));
    }
    Ok(folded)
}

/// NFKC (full-width and compatibility forms to their plain letters), then
/// ASCII lower case. NFKC leaves other scripts alone, so `а` stays Cyrillic.
fn fold(chars: impl Iterator<Item = char>) -> String {
    chars.nfkc().map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether `c` is in the safe alphabet (before the first-character rule).
fn allowed(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

/// The refusal for a character outside the alphabet, pointing at the
/// character as typed: NFKC can expand (`ﬁ` is `fi`), which would shift
/// positions in the normalised text. `rest` starts at the folded offender.
fn bad_character(name: &str, given: &str, rest: &str) -> BadName {
    let leading = name.len()
        - name
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .len();
    let typed = given
        .chars()
        .enumerate()
        .find(|&(_, c)| !fold(std::iter::once(c)).chars().all(allowed))
        .map(|(i, c)| (leading + i + 1, c));
    let what = match typed {
        Some((pos, c)) => format!("character {pos} of the name is {}", describe(c)),
        // Not reached (NFKC never composes allowed ASCII into something
        // else), but the folded character is still worth naming.
        None => {
            let c = rest.chars().next().unwrap_or('\u{fffd}');
            format!("the normalised name contains {}", describe(c))
        }
    };
    refusal(&format!("{what}, which is not allowed"))
}

/// A character as it may appear in a message: its code point, the character
/// itself only when it is visible ASCII, and a hint for the usual culprits.
fn describe(c: char) -> String {
    let code = format!("U+{:04X}", u32::from(c));
    if c.is_ascii_graphic() {
        format!("{code} `{c}`")
    } else if c.is_whitespace() {
        format!("{code} (a space)")
    } else if c.is_control() {
        format!("{code} (a control character)")
    } else if c.is_alphabetic() {
        format!("{code} (a letter outside ASCII, perhaps a look-alike)")
    } else {
        code
    }
}

fn refusal(what: &str) -> BadName {
    BadName(format!("{what}: names use {ALPHABET}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_becomes_ascii() {
        assert_eq!(normalise("ａｌｉｃｅ").unwrap(), "alice");
        assert_eq!(normalise("ＡＬＩＣＥ").unwrap(), "alice");
    }

    #[test]
    fn upper_case_becomes_lower_case() {
        assert_eq!(normalise("ALICE").unwrap(), "alice");
        assert_eq!(normalise("Bob.Smith_2-X").unwrap(), "bob.smith_2-x");
    }

    #[test]
    fn cyrillic_a_is_refused_naming_u0430_and_its_position() {
        let e = normalise("\u{0430}lice").unwrap_err();
        assert!(
            e.0.contains("U+0430") && e.0.contains("character 1 "),
            "{e}"
        );
        assert!(e.0.contains(ALPHABET), "{e}");
    }

    #[test]
    fn cyrillic_e_look_alike_of_an_approver_is_refused() {
        assert_eq!(normalise("steve").unwrap(), "steve");
        let e = normalise("st\u{0435}ve").unwrap_err();
        assert!(
            e.0.contains("U+0435") && e.0.contains("character 3 "),
            "{e}"
        );
    }

    #[test]
    fn empty_and_blank_names_are_refused() {
        assert!(normalise("").unwrap_err().0.contains("empty"));
        assert!(normalise(" \t\n").unwrap_err().0.contains("empty"));
    }

    #[test]
    fn sixty_five_characters_are_refused_sixty_four_accepted() {
        assert!(normalise(&"a".repeat(65))
            .unwrap_err()
            .0
            .contains("65 characters"));
        assert_eq!(normalise(&"a".repeat(64)).unwrap(), "a".repeat(64));
        // Length is counted after folding: 65 full-width letters are 65 too.
        assert!(normalise(&"ａ".repeat(65)).is_err());
    }

    #[test]
    fn a_space_inside_is_refused() {
        let e = normalise("alice smith").unwrap_err();
        assert!(
            e.0.contains("U+0020") && e.0.contains("character 6 "),
            "{e}"
        );
    }

    #[test]
    fn only_ascii_whitespace_is_trimmed() {
        assert_eq!(normalise("  alice\t\r\n").unwrap(), "alice");
        assert!(normalise("alice\u{a0}").unwrap_err().0.contains("U+00A0"));
        assert!(normalise("\u{3000}alice").unwrap_err().0.contains("U+3000"));
    }

    #[test]
    fn positions_count_what_was_typed() {
        // Leading whitespace counts, and `ﬁ` is one character though NFKC makes it two.
        assert!(normalise(" \u{0430}")
            .unwrap_err()
            .0
            .contains("character 2 "));
        assert!(normalise("\u{fb01}\u{0430}")
            .unwrap_err()
            .0
            .contains("character 2 "));
    }

    #[test]
    fn double_dot_inside_is_allowed_a_leading_dot_or_dash_is_not() {
        assert_eq!(normalise("j..smith").unwrap(), "j..smith");
        assert!(normalise("..").unwrap_err().0.contains("starts with `.`"));
        assert!(normalise(".hidden").is_err());
        assert!(normalise("-x").is_err());
        assert!(normalise("_x").is_err());
        assert_eq!(normalise("7of9").unwrap(), "7of9");
    }

    #[test]
    fn a_zero_width_joiner_inside_is_refused() {
        let e = normalise("al\u{200d}ice").unwrap_err();
        assert!(
            e.0.contains("U+200D") && e.0.contains("character 3 "),
            "{e}"
        );
    }

    #[test]
    fn the_message_never_echoes_control_or_invisible_characters() {
        for bad in ["x\x1b[8m", "a\r\nb", "a\u{202e}b", "a\u{200b}", "é"] {
            let e = normalise(bad).unwrap_err();
            assert!(e.0.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e:?}");
        }
    }

    #[test]
    fn every_character_gives_a_name_or_a_printable_refusal() {
        // The whole BMP and the tag block; all of Unicode takes too long in debug.
        for c in (0..=0xFFFF)
            .chain(0xE0000..=0xE01EF)
            .filter_map(char::from_u32)
        {
            match normalise(&format!("a{c}")) {
                Ok(n) => assert!(n.chars().all(allowed), "{c:?} -> {n:?}"),
                Err(e) => assert!(e.0.bytes().all(|b| (0x20..0x7f).contains(&b)), "{e:?}"),
            }
        }
    }

    #[test]
    fn normalise_is_idempotent() {
        // Compatibility forms that NFKC folds into the alphabet, and plain names.
        let accepted = [
            ("alice", "alice"),
            ("ALICE", "alice"),
            ("ａｌｉｃｅ", "alice"),
            (" Bob.Smith_2-X\n", "bob.smith_2-x"),
            ("j..smith", "j..smith"),
            ("\u{fb01}n", "fin"),
            ("\u{17f}am", "sam"),
            ("\u{212a}im", "kim"),
            ("\u{216b}", "xii"),
            ("\u{2460}", "1"),
        ];
        for (given, want) in accepted {
            let once = normalise(given).unwrap();
            assert_eq!(once, want, "{given:?}");
            assert_eq!(normalise(&once), Ok(once.clone()), "{given:?}");
        }
    }
}
