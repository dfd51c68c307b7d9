//! What the server writes to the journal's security log: refusals that
//! belong to no run, with the client's address. Capped (a flood of forged
//! POSTs must not become a flood of durable writes): past the cap a refusal
//! is only counted, and the next entry says how many were not written.

use crate::journal::{Journal, SecurityEvent, SecurityKind};
use axum::extract::ConnectInfo;
use axum::http::Extensions;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries written per minute at most (a burst of as many).
const PER_MINUTE: u32 = 60;

/// The server's writer of the security log.
pub struct SecurityLog {
    cap: DefaultDirectRateLimiter,
    unlogged: AtomicU64,
}

impl Default for SecurityLog {
    fn default() -> Self {
        let n = NonZeroU32::new(PER_MINUTE).unwrap_or(NonZeroU32::MIN);
        SecurityLog {
            cap: RateLimiter::direct(Quota::per_minute(n)),
            unlogged: AtomicU64::new(0),
        }
    }
}

impl SecurityLog {
    /// Records a refusal: always logged and counted, journaled within the cap.
    pub fn record(&self, journal: &Journal, mut event: SecurityEvent) {
        tracing::warn!(kind = ?event.kind, client = %event.client, principal = ?event.principal,
            request = %event.request, detail = %event.detail, "security refusal");
        metrics::counter!("soar_security_refusals_total", "kind" => kind_label(event.kind))
            .increment(1);
        if self.cap.check().is_err() {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        event.unlogged_before = self.unlogged.swap(0, Ordering::Relaxed);
        if let Err(e) = journal.append_security(event) {
            tracing::error!(error = %e, "the security log could not be written");
        }
    }
}

fn kind_label(kind: SecurityKind) -> &'static str {
    match kind {
        SecurityKind::SignInLockedOut => "sign_in_locked_out",
        SecurityKind::CrossSiteRefused => "cross_site_refused",
        SecurityKind::CsrfRefused => "csrf_refused",
    }
}

/// The TCP peer of a request, when the server recorded it.
pub fn client_ip(ext: &Extensions) -> Option<IpAddr> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The client as the log names it.
pub fn client_text(ext: &Extensions) -> String {
    client_ip(ext).map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}
