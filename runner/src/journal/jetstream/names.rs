//! Names on the cluster: the stream, its subjects and the lease bucket of a
//! tenant, and a run id as one subject token or key.

use crate::config::NatsConfig;

/// The names one tenant's journal uses on the cluster.
#[derive(Debug, Clone)]
pub struct Names {
    /// The stream holding every run's records.
    pub stream: String,
    /// `soar.<tenant>`: a run's records are `<prefix>.run.<token>`, a
    /// large value `<prefix>.blob.<sha256>`.
    pub prefix: String,
    /// The key-value bucket of run-ownership leases.
    pub leases: String,
    /// The key-value bucket of unfinished runs.
    pub live: String,
    /// The key-value bucket of the state tables.
    pub state: String,
    /// The key-value bucket of dedup claims (key digest -> run id).
    pub dedup: String,
}

impl Names {
    /// A tenant gets a stream and bucket of its own (and, with its own
    /// credentials, an account of its own), so journals never mix.
    pub fn of(config: &NatsConfig) -> Names {
        let tenant = config.tenant.as_deref().unwrap_or("default");
        let stream = match &config.tenant {
            Some(t) => format!("{}_{t}", config.stream),
            None => config.stream.clone(),
        };
        Names {
            leases: format!("{stream}_leases"),
            live: format!("{stream}_live"),
            state: format!("{stream}_state"),
            dedup: format!("{stream}_dedup"),
            prefix: format!("soar.{tenant}"),
            stream,
        }
    }

    /// Every subject of the stream.
    pub fn stream_subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// The subject of `run_id`'s records.
    pub fn run_subject(&self, run_id: &str) -> String {
        format!("{}.run.{}", self.prefix, token(run_id))
    }

    /// The subjects of every run's records (one `*` for the run token).
    pub fn run_subjects(&self) -> String {
        format!("{}.run.*", self.prefix)
    }

    /// The subject of a large value, by its hex SHA-256.
    pub fn blob_subject(&self, digest: &str) -> String {
        format!("{}.blob.{}", self.prefix, token(digest))
    }
}

/// `run_id` as a subject token and a key: itself when it is only letters,
/// digits, `-` and `_` (soar's own ids are), otherwise `=` and its hex, so
/// a `.`, `*` or `>` in an id can never address another run's subject.
pub fn token(run_id: &str) -> String {
    let plain = !run_id.is_empty()
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        return run_id.to_string();
    }
    let mut out = String::with_capacity(1 + 2 * run_id.len());
    out.push('=');
    for b in run_id.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The run id a [`token`] stands for; `None` for one [`token`] never makes.
pub fn untoken(token: &str) -> Option<String> {
    let Some(hex) = token.strip_prefix('=') else {
        let plain = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        return plain.then(|| token.to_string());
    };
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_stay_readable_and_others_cannot_escape_their_subject() {
        assert_eq!(token("run-20261208-ab_c"), "run-20261208-ab_c");
        assert_eq!(token("a.b"), "=612e62");
        assert_eq!(token(">"), "=3e");
        assert_eq!(token(""), "=");
        // An encoded id never equals a plain one.
        assert_ne!(token("=3e"), token(">"));
        assert!(token("x.*>")
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'='));
    }
}
