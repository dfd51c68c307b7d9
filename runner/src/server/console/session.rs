//! Console sessions: a principal's token is exchanged once (a form POST)
//! for a random session id in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` under TLS) that expires. Each session has its own CSRF token
//! that every state-changing form carries. Sessions live in memory: a
//! restart signs everyone out, which fails closed.

use axum::http::HeaderMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// The cookie's name.
pub const COOKIE: &str = "soar_session";
/// Sessions held at once; the oldest expired ones go first.
const MAX_SESSIONS: usize = 10_000;

/// A signed-in principal.
#[derive(Clone, Debug)]
pub struct Session {
    /// The principal's name.
    pub principal: String,
    /// The token every form of this session carries.
    pub csrf: String,
    expires: Instant,
}

/// Every session.
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS generator; without it there is no session at all.
    if getrandom::getrandom(&mut bytes).is_err() {
        return String::new();
    }
    hex::encode(bytes)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sessions {
    /// Sessions that last `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            by_id: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session for `principal`: its id, or `None` when the OS has no
    /// randomness to give.
    pub fn open(&self, principal: &str) -> Option<String> {
        let (id, csrf) = (random_hex(), random_hex());
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let mut map = lock(&self.by_id);
        let now = Instant::now();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            return None;
        }
        let session = Session {
            principal: principal.to_string(),
            csrf,
            expires: now + self.ttl,
        };
        map.insert(id.clone(), session);
        Some(id)
    }

    /// The live session a request's cookie names.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let mut map = lock(&self.by_id);
        let session = map.get(&id)?.clone();
        if session.expires <= Instant::now() {
            map.remove(&id);
            return None;
        }
        Some(session)
    }

    /// Ends the request's session.
    pub fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers) {
            lock(&self.by_id).remove(&id);
        }
    }
}

/// The session id from the `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether `given` is the session's CSRF token (constant time).
pub fn csrf_matches(session: &Session, given: &str) -> bool {
    session.csrf.as_bytes().ct_eq(given.as_bytes()).into()
}

/// Whether the request says it came from another site: the browser's
/// `Sec-Fetch-Site`, else an `Origin` that is not this host.
pub fn cross_site(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split("://").nth(1).unwrap_or("");
            !origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_session_expires_and_is_found_only_by_its_cookie() {
        let sessions = Sessions::new(Duration::from_millis(50));
        let id = sessions.open("alice").unwrap();
        let cookie = format!("other=1; {COOKIE}={id}");
        let h = headers(&[("cookie", &cookie)]);
        assert_eq!(sessions.get(&h).unwrap().principal, "alice");
        let forged = format!("{COOKIE}={}", "0".repeat(64));
        assert!(sessions.get(&headers(&[("cookie", &forged)])).is_none());
        assert!(sessions
            .get(&headers(&[("cookie", "soar_session=../x")]))
            .is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(sessions.get(&h).is_none(), "expired");
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "soar.example")
        ])));
        assert!(!cross_site(&headers(&[
            ("origin", "https://soar.example"),
            ("host", "soar.example")
        ])));
        assert!(!cross_site(&HeaderMap::new()));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_under_tls() {
        let c = set_cookie("ab", Duration::from_secs(60), true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Max-Age=60",
            "Path=/ui",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("ab", Duration::from_secs(60), false).contains("Secure"));
    }
}
