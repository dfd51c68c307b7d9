//! Identity names (approvers, principals, `--as`) in one normal form and a
//! safe alphabet, so a look-alike (a Cyrillic `е`, a full-width letter, a
//! zero-width joiner) can be neither configured nor claimed.

use unicode_normalization::UnicodeNormalization;

/// Why a name is not acceptable (says which character and what is allowed).
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

const MAX_LEN: usize = 64;

/// Normalises a claimed or configured name: surrounding ASCII whitespace
/// trimmed, Unicode NFKC (full-width `ａｌｉｃｅ` is `alice`), ASCII lower
/// case; then checks the safe alphabet. NFKC does not turn a Cyrillic `а`
/// into a Latin `a`, so a look-alike is refused, with the character named.
pub fn normalise(name: &str) -> Result<String, BadName> {
    let folded: String = name
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .nfkc()
        .collect::<String>()
        .to_ascii_lowercase();
    if folded.is_empty() || folded.chars().count() > MAX_LEN {
        return Err(BadName(format!(
            "a name must have 1 to {MAX_LEN} characters ({ALPHABET})"
        )));
    }
    if let Some((i, c)) = folded.chars().enumerate().find(|(_, c)| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
    }) {
        return Err(BadName(format!(
            "the name has U+{:04X} at position {}, which is not allowed ({ALPHABET})",
            c as u32,
            i + 1
        )));
    }
    if !folded.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(BadName(format!(
            "a name must start with a letter or digit ({ALPHABET})"
        )));
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_width_variants_are_the_same_name() {
        assert_eq!(normalise("ALICE").unwrap(), "alice");
        assert_eq!(normalise("ａｌｉｃｅ").unwrap(), "alice");
        assert_eq!(normalise("  bob.smith_2-x \n").unwrap(), "bob.smith_2-x");
    }

    #[test]
    fn look_alikes_are_refused_with_the_character_named() {
        let e = normalise("\u{0430}lice").unwrap_err();
        assert!(e.0.contains("U+0430") && e.0.contains("position 1"), "{e}");
        assert!(normalise("le\u{0435}d").unwrap_err().0.contains("U+0435"));
        assert!(normalise("al\u{200d}ice").is_err());
        assert!(normalise("al ice").is_err());
    }

    #[test]
    fn length_and_first_character() {
        assert!(normalise("").is_err());
        assert!(normalise(&"a".repeat(65)).is_err());
        assert!(normalise(&"a".repeat(64)).is_ok());
        assert!(normalise(".hidden").is_err());
        assert!(normalise("-x").is_err());
    }

    #[test]
    fn normalising_is_idempotent() {
        for n in ["ALICE", "ａｌｉｃｅ", "bob.smith_2-x"] {
            let once = normalise(n).unwrap();
            assert_eq!(normalise(&once).unwrap(), once);
        }
    }
}
