//! Who is calling: a principal by bearer token (constant-time token hash
//! comparison), and the HMAC check Slack's requests share. How alert
//! senders prove themselves is `intake/proof.rs`.

use crate::approvals::{self, Refusal};
use crate::config::{Approver, Policy};
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
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
