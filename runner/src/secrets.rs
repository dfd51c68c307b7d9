//! Secret values: loaded from the environment or a file only when a request
//! needs them, held in a type whose `Debug` never prints them.

use std::path::PathBuf;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable of the runner's process.
    Env(String),
    /// A file (trailing newline stripped).
    File(PathBuf),
}

/// A secret value. Deliberately not `Display`; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue([redacted])")
    }
}

impl SecretValue {
    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a secret could not be loaded (never contains the value).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The variable is unset or empty.
    #[error("environment variable `{0}` is not set")]
    EnvMissing(String),
    /// The file cannot be read or is empty.
    #[error("secret file `{}` cannot be read: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl SecretSource {
    /// Reads the current value.
    pub fn load(&self) -> Result<SecretValue, SecretError> {
        match self {
            SecretSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretValue(v)),
                _ => Err(SecretError::EnvMissing(var.clone())),
            },
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let value = text.trim_end_matches(['\n', '\r']).to_string();
                if value.is_empty() {
                    return Err(SecretError::File {
                        path: path.clone(),
                        reason: "file is empty".into(),
                    });
                }
                Ok(SecretValue(value))
            }
        }
    }
}
