//! Sign-in throttling: token buckets per client address (an IPv6 client by
//! its /64, which one machine usually holds whole) and per principal
//! (sessions opened). A refused attempt answers 429 with `Retry-After`; the
//! first refusal of each lockout is what the security log records.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts one address may make at once, then one per [`CLIENT_EVERY`].
const CLIENT_BURST: u32 = 10;
const CLIENT_EVERY: Duration = Duration::from_secs(6);
/// Sessions one principal may open at once, then one per [`PRINCIPAL_EVERY`]
/// (a leaked token sprayed from many addresses still opens few sessions).
const PRINCIPAL_BURST: u32 = 10;
const PRINCIPAL_EVERY: Duration = Duration::from_secs(30);
/// Keys remembered before idle ones are forgotten.
const MAX_KEYS: usize = 50_000;

/// A refused attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// When to try again.
    pub retry_after: Duration,
    /// The first refusal of this lockout (the one worth recording).
    pub first: bool,
}

/// One bucket per key, and when each key's current lockout ends.
struct Buckets {
    limiter: DefaultKeyedRateLimiter<String>,
    locked_until: Mutex<HashMap<String, Instant>>,
}

impl Buckets {
    fn new(burst: u32, every: Duration) -> Self {
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(every)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Buckets {
            limiter: RateLimiter::hashmap(quota),
            locked_until: Mutex::new(HashMap::new()),
        }
    }

    fn check(&self, key: &str) -> Result<(), Lockout> {
        if self.limiter.len() > MAX_KEYS {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        let key = key.to_string();
        let Err(not_until) = self.limiter.check_key(&key) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after = Duration::from_secs(wait.as_secs() + 1);
        let now = Instant::now();
        let mut locked = self
            .locked_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if locked.len() > MAX_KEYS {
            locked.retain(|_, until| *until > now);
        }
        let first = locked.get(&key).is_none_or(|until| *until <= now);
        if first {
            locked.insert(key, now + retry_after);
        }
        Err(Lockout { retry_after, first })
    }
}

/// The console's sign-in throttle.
pub struct SignInThrottle {
    clients: Buckets,
    principals: Buckets,
}

impl Default for SignInThrottle {
    fn default() -> Self {
        SignInThrottle {
            clients: Buckets::new(CLIENT_BURST, CLIENT_EVERY),
            principals: Buckets::new(PRINCIPAL_BURST, PRINCIPAL_EVERY),
        }
    }
}

impl SignInThrottle {
    /// An attempt from `client` (right or wrong token).
    pub fn attempt(&self, client: Option<IpAddr>) -> Result<(), Lockout> {
        self.clients.check(&client_key(client))
    }

    /// A session about to open for `principal`.
    pub fn session(&self, principal: &str) -> Result<(), Lockout> {
        self.principals.check(principal)
    }
}

/// The bucket a client falls in: its IPv4 address, or its IPv6 /64.
pub fn client_key(client: Option<IpAddr>) -> String {
    match client {
        None => "unknown".into(),
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = a.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_locked_out_after_its_burst_and_recorded_once() {
        let t = SignInThrottle::default();
        let me: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..CLIENT_BURST {
            assert!(t.attempt(Some(me)).is_ok());
        }
        let first = t.attempt(Some(me)).unwrap_err();
        assert!(first.first);
        assert!(first.retry_after >= Duration::from_secs(1));
        assert!(!t.attempt(Some(me)).unwrap_err().first);
        // Another address is not held back by this one.
        assert!(t.attempt(Some("192.0.2.2".parse().unwrap())).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_one_bucket_per_64() {
        let a = client_key(Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = client_key(Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        assert_eq!(a, b);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(
            client_key(Some("::ffff:192.0.2.9".parse().unwrap())),
            "192.0.2.9"
        );
    }

    #[test]
    fn a_principal_opens_only_its_burst_of_sessions() {
        let t = SignInThrottle::default();
        for _ in 0..PRINCIPAL_BURST {
            assert!(t.session("alice").is_ok());
        }
        assert!(t.session("alice").unwrap_err().first);
        assert!(t.session("bob").is_ok());
    }
}
