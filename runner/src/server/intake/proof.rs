//! Proof that a delivery comes from its source, for the schemes that need
//! no network: an HMAC over the raw body (any number of signatures in the
//! header, any one valid passes), a shared header value (Okta), a secret
//! path segment, HTTP Basic. Every comparison is constant time. A refusal
//! names what the *sender* must fix, never the secret.

use crate::config::{Encoding, HmacScheme, MessagePart, MAX_SIGNATURES};
use crate::secrets::SecretSource;
use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a delivery's proof is refused (answered 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The header or path segment is missing or not in the expected form.
    Malformed(String),
    /// Well formed, but not made with the source's secret.
    Mismatch(String),
    /// The signed timestamp is missing, malformed or too old.
    Stale(String),
    /// The source's secret cannot be loaded (the operator's problem).
    NoSecret,
}

impl Refused {
    /// The metrics outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            Refused::Stale(_) => "stale",
            _ => "bad_signature",
        }
    }

    /// What the sender is told.
    pub fn message(&self) -> String {
        match self {
            Refused::Malformed(m) | Refused::Mismatch(m) | Refused::Stale(m) => m.clone(),
            Refused::NoSecret => "the source's secret is not available on the server".into(),
        }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The secret, refused when it is blank: a secret of spaces would match
/// an empty header or password once trimmed.
fn load(secret: &SecretSource) -> Result<crate::secrets::SecretValue, Refused> {
    let value = secret.load().map_err(|_| Refused::NoSecret)?;
    if value.expose().trim().is_empty() {
        return Err(Refused::NoSecret);
    }
    Ok(value)
}

/// Whether `given` equals `expected`, in time that depends only on their
/// lengths (both are hashed first, so not even that).
pub fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    Sha256::digest(given)
        .ct_eq(&Sha256::digest(expected))
        .into()
}

/// What the scheme expects, in the sender's terms.
fn expected(scheme: &HmacScheme) -> String {
    let encoding = match scheme.encoding {
        Encoding::Hex => "hex",
        Encoding::Base64 => "base64",
    };
    let prefix = scheme.prefixes.first().map(String::as_str).unwrap_or("");
    let shown = if scheme.prefix_required { prefix } else { "" };
    format!(
        "expected header {} with {shown}<{encoding} HMAC-SHA256>",
        scheme.header
    )
}

/// The signature elements of the header (comma or space separated), with
/// the scheme's prefix taken off, decoded; at most [`MAX_SIGNATURES`].
fn candidates(scheme: &HmacScheme, value: &str) -> Result<Vec<Vec<u8>>, Refused> {
    let malformed = || Refused::Malformed(expected(scheme));
    let mut out = Vec::new();
    for element in value.split([',', ' ']).filter(|e| !e.is_empty()) {
        let stripped = scheme
            .prefixes
            .iter()
            .find_map(|p| element.strip_prefix(p.as_str()));
        let text = match (stripped, scheme.prefix_required) {
            (Some(t), _) => t,
            // Another element of a list (Stripe's `t=`, an old `v0=`).
            (None, true) => continue,
            (None, false) => element,
        };
        let decoded = match scheme.encoding {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        };
        match decoded {
            Some(bytes) if bytes.len() == 32 => out.push(bytes),
            _ => return Err(malformed()),
        }
        if out.len() > MAX_SIGNATURES {
            return Err(Refused::Malformed(format!(
                "{}: at most {MAX_SIGNATURES} signatures in one header",
                expected(scheme)
            )));
        }
    }
    if out.is_empty() {
        return Err(malformed());
    }
    Ok(out)
}

/// The signed timestamp, checked against `now_s`.
fn timestamp<'h>(
    scheme: &HmacScheme,
    headers: &'h HeaderMap,
    now_s: i64,
) -> Result<Option<&'h str>, Refused> {
    let Some(rule) = &scheme.timestamp else {
        return Ok(None);
    };
    let stale = |why: &str| {
        Refused::Stale(format!(
            "header {}: {why} (Unix seconds, within {}s of the server's clock)",
            rule.header,
            rule.tolerance.as_secs()
        ))
    };
    let value = header(headers, &rule.header).ok_or_else(|| stale("missing"))?;
    let text = match &rule.prefix {
        Some(p) => value
            .split(',')
            .find_map(|e| e.trim().strip_prefix(p.as_str()))
            .ok_or_else(|| stale(&format!("no `{p}` element")))?,
        None => value,
    };
    let ts: i64 = text.parse().map_err(|_| stale("not a number"))?;
    if now_s.abs_diff(ts) > rule.tolerance.as_secs() {
        return Err(stale("too old or in the future"));
    }
    Ok(Some(text))
}

/// Checks an HMAC scheme over the raw `body`.
pub fn hmac(
    scheme: &HmacScheme,
    headers: &HeaderMap,
    body: &[u8],
    now_s: i64,
) -> Result<(), Refused> {
    let ts = timestamp(scheme, headers, now_s)?;
    let given = header(headers, &scheme.header)
        .ok_or_else(|| Refused::Malformed(expected(scheme)))
        .and_then(|v| candidates(scheme, v))?;
    let key = load(&scheme.secret)?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).map_err(|_| Refused::NoSecret)?;
    for part in &scheme.message {
        match part {
            MessagePart::Body => mac.update(body),
            MessagePart::Timestamp => mac.update(ts.unwrap_or("").as_bytes()),
            MessagePart::Text(t) => mac.update(t.as_bytes()),
        }
    }
    let want = mac.finalize().into_bytes();
    // Every candidate is compared, so the time does not tell which matched.
    let any = given.iter().fold(subtle::Choice::from(0), |acc, g| {
        acc | g.as_slice().ct_eq(want.as_slice())
    });
    if bool::from(any) {
        Ok(())
    } else {
        Err(Refused::Mismatch(format!(
            "no signature in header {} matches the body under the source's secret",
            scheme.header
        )))
    }
}

/// Okta Event Hooks: the configured header carries the secret as is.
pub fn shared_header(
    secret: &SecretSource,
    name: &str,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let given = header(headers, name).ok_or_else(|| {
        Refused::Malformed(format!("expected header {name} with the hook's secret"))
    })?;
    let key = load(secret)?;
    if same_secret(given.as_bytes(), key.expose().trim().as_bytes()) {
        Ok(())
    } else {
        Err(Refused::Mismatch(format!(
            "header {name} does not carry the hook's secret"
        )))
    }
}

/// A secret path segment (`/hooks/NAME/<token>`).
pub fn url_token(secret: &SecretSource, token: Option<&str>) -> Result<(), Refused> {
    let token = token.ok_or_else(|| {
        Refused::Malformed(
            "deliver to /hooks/<source>/<token>: this source takes its token in the URL path"
                .into(),
        )
    })?;
    let key = load(secret)?;
    if same_secret(token.as_bytes(), key.expose().trim().as_bytes()) {
        Ok(())
    } else {
        Err(Refused::Mismatch(
            "the token in the URL path is not the source's".into(),
        ))
    }
}

/// The user name and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = header(headers, axum::http::header::AUTHORIZATION.as_str())?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// HTTP Basic against a fixed user name and a secret password.
pub fn basic_secret(
    username: &str,
    secret: &SecretSource,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let (user, password) = basic_credentials(headers).ok_or_else(|| {
        Refused::Malformed("expected header Authorization: Basic <base64 of user:password>".into())
    })?;
    let key = load(secret)?;
    // Both compared, whatever the first gives.
    let user_ok = same_secret(user.as_bytes(), username.as_bytes());
    let password_ok = same_secret(password.as_bytes(), key.expose().trim().as_bytes());
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(Refused::Mismatch(
            "the Basic user name or password is not the source's".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimestampRule;
    use std::time::Duration;

    fn sign(secret: &str, msg: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(msg);
        mac.finalize().into_bytes().to_vec()
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

    fn scheme(secret: SecretSource, header: &str, prefix: Option<&str>) -> HmacScheme {
        HmacScheme {
            secret,
            header: header.into(),
            prefixes: prefix.iter().map(|p| p.to_string()).collect(),
            prefix_required: prefix.is_some(),
            encoding: Encoding::Hex,
            message: vec![MessagePart::Body],
            timestamp: None,
        }
    }

    #[test]
    fn pagerduty_rotation_passes_with_any_one_valid_signature() {
        let (_d, secret) = secret_file("new-secret\n");
        let s = scheme(secret, "x-pagerduty-signature", Some("v1="));
        let body = br#"{"event":{"id":"01"}}"#;
        let good = hex::encode(sign("new-secret", body));
        let old = hex::encode(sign("old-secret", body));
        for value in [
            format!("v1={old},v1={good}"),
            format!("v1={good}, v1={old}"),
            format!("v1={old} v1={good}"),
        ] {
            let h = headers(&[("x-pagerduty-signature", value.clone())]);
            assert_eq!(hmac(&s, &h, body, 0), Ok(()), "{value}");
        }
        let h = headers(&[("x-pagerduty-signature", format!("v1={old}"))]);
        assert!(matches!(hmac(&s, &h, body, 0), Err(Refused::Mismatch(_))));
        // The body changed after signing.
        let h = headers(&[("x-pagerduty-signature", format!("v1={good}"))]);
        assert!(matches!(hmac(&s, &h, b"{}", 0), Err(Refused::Mismatch(_))));
        // Without the required prefix, or too many, or not hex: malformed,
        // and the message says what the sender must send.
        for bad in [
            good.clone(),
            format!("v1={good}z"),
            vec![format!("v1={old}"); 9].join(","),
        ] {
            let h = headers(&[("x-pagerduty-signature", bad.clone())]);
            let err = hmac(&s, &h, body, 0).unwrap_err();
            assert!(matches!(err, Refused::Malformed(_)), "{bad}: {err:?}");
            assert!(
                err.message().contains("x-pagerduty-signature with v1=<hex"),
                "{}",
                err.message()
            );
        }
        let err = hmac(&s, &HeaderMap::new(), body, 0).unwrap_err();
        assert!(err
            .message()
            .starts_with("expected header x-pagerduty-signature"));
    }

    #[test]
    fn slack_and_stripe_style_timestamps_are_signed_and_bounded() {
        let (_d, secret) = secret_file("k");
        let mut slack = scheme(secret.clone(), "x-slack-signature", Some("v0="));
        slack.message = vec![
            MessagePart::Text("v0:".into()),
            MessagePart::Timestamp,
            MessagePart::Text(":".into()),
            MessagePart::Body,
        ];
        slack.timestamp = Some(TimestampRule {
            header: "x-slack-request-timestamp".into(),
            prefix: None,
            tolerance: Duration::from_secs(300),
        });
        let body = b"payload=1";
        let ts = 1_700_000_000i64;
        let sig = hex::encode(sign("k", format!("v0:{ts}:payload=1").as_bytes()));
        let h = headers(&[
            ("x-slack-signature", format!("v0={sig}")),
            ("x-slack-request-timestamp", ts.to_string()),
        ]);
        assert_eq!(hmac(&slack, &h, body, ts + 299), Ok(()));
        assert!(matches!(
            hmac(&slack, &h, body, ts + 301),
            Err(Refused::Stale(_))
        ));
        // A fresh timestamp on an old signature does not match.
        let h2 = headers(&[
            ("x-slack-signature", format!("v0={sig}")),
            ("x-slack-request-timestamp", (ts + 1).to_string()),
        ]);
        assert!(matches!(
            hmac(&slack, &h2, body, ts),
            Err(Refused::Mismatch(_))
        ));

        // Stripe: `t=` and `v1=` in one header; a `v0=` element is skipped.
        let mut stripe = scheme(secret, "stripe-signature", Some("v1="));
        stripe.message = vec![
            MessagePart::Timestamp,
            MessagePart::Text(".".into()),
            MessagePart::Body,
        ];
        stripe.timestamp = Some(TimestampRule {
            header: "stripe-signature".into(),
            prefix: Some("t=".into()),
            tolerance: Duration::from_secs(300),
        });
        let sig = hex::encode(sign("k", format!("{ts}.payload=1").as_bytes()));
        let h = headers(&[("stripe-signature", format!("t={ts},v1={sig},v0=00"))]);
        assert_eq!(hmac(&stripe, &h, body, ts), Ok(()));
        let h = headers(&[("stripe-signature", format!("v1={sig}"))]);
        assert!(matches!(
            hmac(&stripe, &h, body, ts),
            Err(Refused::Stale(_))
        ));
    }

    #[test]
    fn shopify_style_base64_signatures_are_checked() {
        let (_d, secret) = secret_file("shpss");
        let mut s = scheme(secret, "x-shopify-hmac-sha256", None);
        s.encoding = Encoding::Base64;
        let body = br#"{"id":1}"#;
        let sig = base64::engine::general_purpose::STANDARD.encode(sign("shpss", body));
        let h = headers(&[("x-shopify-hmac-sha256", sig)]);
        assert_eq!(hmac(&s, &h, body, 0), Ok(()));
        let h = headers(&[("x-shopify-hmac-sha256", hex::encode(sign("shpss", body)))]);
        assert!(hmac(&s, &h, body, 0).is_err());
    }

    #[test]
    fn shared_header_url_token_and_basic_need_the_exact_secret() {
        let (_d, secret) = secret_file("okta-secret\n");
        let h = headers(&[("authorization", "okta-secret".into())]);
        assert_eq!(shared_header(&secret, "authorization", &h), Ok(()));
        let h = headers(&[("authorization", "okta-secre".into())]);
        assert!(matches!(
            shared_header(&secret, "authorization", &h),
            Err(Refused::Mismatch(_))
        ));
        assert!(matches!(
            shared_header(&secret, "authorization", &HeaderMap::new()),
            Err(Refused::Malformed(_))
        ));

        assert_eq!(url_token(&secret, Some("okta-secret")), Ok(()));
        assert!(matches!(
            url_token(&secret, Some("okta-secret2")),
            Err(Refused::Mismatch(_))
        ));
        assert!(matches!(
            url_token(&secret, None),
            Err(Refused::Malformed(_))
        ));

        let basic = |user: &str, pw: &str| {
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
            headers(&[("authorization", format!("Basic {v}"))])
        };
        assert_eq!(
            basic_secret("kibana", &secret, &basic("kibana", "okta-secret")),
            Ok(())
        );
        assert!(basic_secret("kibana", &secret, &basic("elastic", "okta-secret")).is_err());
        assert!(basic_secret("kibana", &secret, &basic("kibana", "nope")).is_err());
        let h = headers(&[("authorization", "Bearer okta-secret".into())]);
        assert!(matches!(
            basic_secret("kibana", &secret, &h),
            Err(Refused::Malformed(_))
        ));
        // A secret of blanks proves nothing, whatever is sent.
        let (_b, blank) = secret_file("   \n");
        let empty = headers(&[("authorization", "".into())]);
        assert_eq!(
            shared_header(&blank, "authorization", &empty),
            Err(Refused::NoSecret)
        );
        assert_eq!(url_token(&blank, Some("")), Err(Refused::NoSecret));
        assert_eq!(
            basic_secret("kibana", &blank, &basic("kibana", "")),
            Err(Refused::NoSecret)
        );
        // The password may contain a colon; the user name may not.
        assert_eq!(
            basic_credentials(&basic("u", "a:b")),
            Some(("u".to_string(), "a:b".to_string()))
        );
    }
}
