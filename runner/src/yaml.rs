//! The one place YAML is parsed. soar uses `serde-saphyr` rather than the
//! archived `serde_yaml` because it gives line and column for every value
//! ([`Spanned`]); swap the parser here and nowhere else.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

pub use serde_saphyr::Spanned;

/// A position in a YAML file (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u64,
    /// Column, from 1.
    pub column: u64,
}

impl Pos {
    /// Where a spanned value was written.
    pub fn of<T>(spanned: &Spanned<T>) -> Self {
        Self {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
        }
    }
}

/// A YAML file that could not be parsed into the expected shape.
#[derive(Debug, thiserror::Error)]
#[error("{}:{}:{}: {message}", path.display(), pos.line, pos.column)]
pub struct YamlError {
    /// The file.
    pub path: PathBuf,
    /// Where the problem is (1:1 when the parser gave no position).
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// The parser's rendering with a source snippet, for terminals.
    pub snippet: String,
}

/// Parses `text` (read from `path`) into `T`; unknown keys are errors where
/// `T` says `deny_unknown_fields`.
pub fn parse<T: DeserializeOwned>(path: &Path, text: &str) -> Result<T, YamlError> {
    serde_saphyr::from_str(text).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: l.line(),
                column: l.column(),
            })
            .unwrap_or(Pos { line: 1, column: 1 });
        let message = first_line_message(&e.to_string());
        YamlError {
            path: path.to_path_buf(),
            pos,
            message,
            snippet: e.render(),
        }
    })
}

/// The parser's message without its own location prefix or snippet lines.
fn first_line_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered).trim();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    // serde-saphyr says "line N column M: ..." or "... at line N, column M";
    // our `path:line:col:` prefix already carries the position.
    let first = match first.strip_prefix("line ") {
        Some(rest) => rest.split_once(": ").map_or(first, |(_, msg)| msg),
        None => first,
    };
    match first.rfind(" at line ") {
        Some(cut) => first[..cut].to_string(),
        None => first.to_string(),
    }
}

/// `value` as YAML text (test cases `soar test record` writes).
pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_saphyr::to_string(value).map_err(|e| e.to_string())
}
