//! The retry policy: exponential backoff with jitter, per-op attempt limits.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use gitfleet_contract::JobError;
use gitfleet_queue::Outcome;

/// When a failed run is tried again.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay before the first retry; each next one doubles.
    pub base: Duration,
    /// No delay exceeds this (before jitter).
    pub max: Duration,
}

impl RetryPolicy {
    /// The delay before run `attempt + 1`, after run `attempt` (1-based) failed: `base ·
    /// 2^(attempt-1)`, capped at `max`, plus up to as much again in jitter, so that many
    /// jobs failing together do not come back together.
    pub fn delay(&self, attempt: u32) -> Duration {
        ExponentialBuilder::default()
            .with_min_delay(self.base)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(self.max)
    }

    /// What becomes of a job whose run `attempt` of `max_attempts` failed with `error`.
    pub fn outcome(&self, error: JobError, attempt: u32, max_attempts: u32) -> Outcome {
        if error.kind.is_retryable() && attempt < max_attempts {
            Outcome::Retry {
                error,
                delay: self.delay(attempt),
            }
        } else {
            Outcome::Dead(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitfleet_contract::ErrorKind;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for attempt in 1..=6u32 {
            let nominal = (100u64 << (attempt - 1)).min(1000);
            let d = p.delay(attempt).as_millis() as u64;
            assert!(
                d >= nominal && d < 2 * nominal,
                "attempt {attempt}: {d} ms, nominal {nominal}"
            );
        }
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| p.delay(3)).collect();
        assert!(distinct.len() > 1, "jitter varies the delay");
    }

    #[test]
    fn non_retryable_kinds_and_last_attempts_die() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            max: Duration::from_millis(1),
        };
        let conflict = JobError::new(ErrorKind::Conflict, "x");
        assert!(matches!(p.outcome(conflict, 1, 5), Outcome::Dead(_)));
        let net = JobError::new(ErrorKind::Network, "x");
        assert!(matches!(
            p.outcome(net.clone(), 4, 5),
            Outcome::Retry { .. }
        ));
        assert!(matches!(p.outcome(net, 5, 5), Outcome::Dead(_)));
    }
}
