//! Who is calling: a principal by bearer token, or a webhook source by
//! signature over the raw body. Comparisons are constant time (`subtle`
//! for token hashes, `hmac`'s `verify_slice` for signatures).

use crate::approvals::{self, Refusal};
use crate::config::{Approver, Policy, SourceAuth};
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The principal whose token the request carries.
pub fn principal<'p>(policy: &'p Policy, headers: &HeaderMap) -> Result<&'p Approver, Refusal> {
    approvals::authenticate_token(policy, bearer(headers))
}

/// Why a delivery's signature is refused (all answered 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadSignature {
    /// No signature header, or one that is not hex.
    Malformed,
    /// The signature does not match.
    Mismatch,
    /// The timestamp is missing, malformed, or outside the tolerance.
    Stale,
    /// The signing secret cannot be loaded (the operator's problem).
    NoSecret,
}

impl BadSignature {
    /// The metrics outcome.
    pub fn outcome(self) -> &'static str {
        match self {
            BadSignature::Stale => "stale",
            _ => "bad_signature",
        }
    }

    /// What the sender is told: enough to fix their integration, nothing
    /// about the secret.
    pub fn message(self) -> &'static str {
        match self {
            BadSignature::Malformed => "missing or malformed signature header",
            BadSignature::Mismatch => "the signature does not match the body",
            BadSignature::Stale => "missing, malformed or stale timestamp",
            BadSignature::NoSecret => "the source's signing secret is not available",
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The hex digest after an optional `sha256=` or `v1=` prefix.
fn signature_bytes(value: &str) -> Option<Vec<u8>> {
    let hex_part = value
        .strip_prefix("sha256=")
        .or_else(|| value.strip_prefix("v1="))
        .unwrap_or(value);
    if hex_part.len() != 64 {
        return None;
    }
    hex::decode(hex_part).ok()
}

/// Whether `signature` is the HMAC-SHA256 of `parts` (concatenated) under
/// `secret`, compared in constant time.
pub fn hmac_matches(secret: &[u8], parts: &[&[u8]], signature: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    for p in parts {
        mac.update(p);
    }
    mac.verify_slice(signature).is_ok()
}

/// Checks a delivery's signature over its raw `body` (bearer sources are
/// checked by [`principal`] instead).
pub fn verify_delivery(
    auth: &SourceAuth,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), BadSignature> {
    match auth {
        SourceAuth::HmacSha256 { secret, header: h } => {
            let given = header(headers, h)
                .and_then(signature_bytes)
                .ok_or(BadSignature::Malformed)?;
            let key = secret.load().map_err(|_| BadSignature::NoSecret)?;
            hmac_matches(key.expose().as_bytes(), &[body], &given)
                .then_some(())
                .ok_or(BadSignature::Mismatch)
        }
        SourceAuth::TimestampedHmac {
            secret,
            signature_header,
            timestamp_header,
            tolerance,
        } => {
            let ts_text = header(headers, timestamp_header).ok_or(BadSignature::Stale)?;
            let ts: i64 = ts_text.parse().map_err(|_| BadSignature::Stale)?;
            if now_s.abs_diff(ts) > tolerance.as_secs() {
                return Err(BadSignature::Stale);
            }
            let given = header(headers, signature_header)
                .and_then(signature_bytes)
                .ok_or(BadSignature::Malformed)?;
            let key = secret.load().map_err(|_| BadSignature::NoSecret)?;
            let parts: [&[u8]; 3] = [ts_text.as_bytes(), b".", body];
            hmac_matches(key.expose().as_bytes(), &parts, &given)
                .then_some(())
                .ok_or(BadSignature::Mismatch)
        }
        SourceAuth::Bearer => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::SecretSource;
    use std::time::Duration;

    fn sign(secret: &str, msg: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(msg);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn secret_file(value: &str) -> (tempfile::TempDir, SecretSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, value).unwrap();
        (dir, SecretSource::File(path))
    }

    #[test]
    fn github_style_signature_is_checked_over_the_raw_body() {
        let (_d, secret) = secret_file("s3cret\n");
        let auth = SourceAuth::HmacSha256 {
            secret,
            header: "X-Hub-Signature-256".into(),
        };
        let body = br#"{"a":1}"#;
        let good = format!("sha256={}", sign("s3cret", body));
        let h = headers(&[("x-hub-signature-256", good.clone())]);
        assert_eq!(verify_delivery(&auth, &h, body, 0), Ok(()));
        // The body changed after signing.
        assert_eq!(
            verify_delivery(&auth, &h, br#"{"a":2}"#, 0),
            Err(BadSignature::Mismatch)
        );
        // Wrong secret.
        let other = format!("sha256={}", sign("other", body));
        let h2 = headers(&[("x-hub-signature-256", other)]);
        assert_eq!(
            verify_delivery(&auth, &h2, body, 0),
            Err(BadSignature::Mismatch)
        );
        // Missing and malformed headers.
        assert_eq!(
            verify_delivery(&auth, &HeaderMap::new(), body, 0),
            Err(BadSignature::Malformed)
        );
        for bad in ["sha256=zz", "sha256=", "md5=abcd", &good[..good.len() - 1]] {
            let h = headers(&[("x-hub-signature-256", bad.to_string())]);
            assert_eq!(
                verify_delivery(&auth, &h, body, 0),
                Err(BadSignature::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn timestamped_signature_refuses_replays_outside_the_window() {
        let (_d, secret) = secret_file("k");
        let auth = SourceAuth::TimestampedHmac {
            secret,
            signature_header: "x-sig".into(),
            timestamp_header: "x-ts".into(),
            tolerance: Duration::from_secs(300),
        };
        let body = b"{}";
        let ts = 1_000_000i64;
        let sig = sign("k", format!("{ts}.{{}}").as_bytes());
        let h = headers(&[("x-sig", format!("v1={sig}")), ("x-ts", ts.to_string())]);
        assert_eq!(verify_delivery(&auth, &h, body, ts + 299), Ok(()));
        assert_eq!(verify_delivery(&auth, &h, body, ts - 299), Ok(()));
        assert_eq!(
            verify_delivery(&auth, &h, body, ts + 301),
            Err(BadSignature::Stale)
        );
        // A fresh timestamp on an old signature does not match.
        let h = headers(&[("x-sig", sig.clone()), ("x-ts", (ts + 1).to_string())]);
        assert_eq!(
            verify_delivery(&auth, &h, body, ts),
            Err(BadSignature::Mismatch)
        );
        let h = headers(&[("x-sig", sig), ("x-ts", "soon".into())]);
        assert_eq!(
            verify_delivery(&auth, &h, body, ts),
            Err(BadSignature::Stale)
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        let h = headers(&[("authorization", "bearer abc".into())]);
        assert_eq!(bearer(&h), Some("abc"));
        let h = headers(&[("authorization", "Basic abc".into())]);
        assert_eq!(bearer(&h), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
