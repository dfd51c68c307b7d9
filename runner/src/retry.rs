//! Retry delays. Wraps the `backoff` crate (unmaintained upstream) so it can
//! be swapped here alone; the scheduler only asks "how long before attempt N".

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use std::time::Duration;

/// Exponential backoff parameters (from a step's `retry:`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Total attempts, including the first.
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_delay: Duration,
    /// Upper bound of any delay.
    pub max_delay: Duration,
    /// Growth per attempt (>= 1).
    pub multiplier: f64,
    /// Randomisation factor in 0..=1: the delay is drawn from ±jitter around it.
    pub jitter: f64,
}

impl Policy {
    /// Delay before attempt `next_attempt` (2 for the first retry), at least
    /// `floor` (a vendor's retry-after), and never above `max_delay`: a
    /// vendor's hint is honoured only up to the step's own bound.
    pub fn delay_before(&self, next_attempt: u32, floor: Option<Duration>) -> Duration {
        let mut b = ExponentialBackoff {
            initial_interval: self.initial_delay,
            current_interval: self.initial_delay,
            multiplier: self.multiplier.max(1.0),
            max_interval: self.max_delay,
            randomization_factor: self.jitter.clamp(0.0, 1.0),
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let mut delay = self.initial_delay;
        for _ in 1..next_attempt.max(2) {
            delay = b.next_backoff().unwrap_or(self.max_delay);
        }
        let delay = delay.min(self.max_delay);
        match floor {
            Some(f) if f > delay => f.min(self.max_delay),
            _ => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> Policy {
        Policy {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(350),
            multiplier: 2.0,
            jitter,
        }
    }

    #[test]
    fn grows_then_caps_without_jitter() {
        let p = policy(0.0);
        assert_eq!(p.delay_before(2, None), Duration::from_millis(100));
        assert_eq!(p.delay_before(3, None), Duration::from_millis(200));
        assert_eq!(p.delay_before(4, None), Duration::from_millis(350));
    }

    #[test]
    fn vendor_retry_after_wins_when_longer_up_to_max_delay() {
        let p = policy(0.0);
        assert_eq!(
            p.delay_before(2, Some(Duration::from_millis(300))),
            Duration::from_millis(300)
        );
        assert_eq!(
            p.delay_before(2, Some(Duration::from_secs(3))),
            Duration::from_millis(350)
        );
        assert_eq!(
            p.delay_before(2, Some(Duration::from_millis(u64::MAX))),
            Duration::from_millis(350)
        );
        assert_eq!(
            p.delay_before(2, Some(Duration::from_millis(10))),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let p = policy(0.5);
        for _ in 0..100 {
            let d = p.delay_before(2, None);
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(150),
                "{d:?}"
            );
        }
    }
}
