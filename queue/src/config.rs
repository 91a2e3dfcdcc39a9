//! How producers and workers reach the queue and how long it keeps things.

use std::time::Duration;

use gitfleet_contract::Redactor;
use gitfleet_contract::config::{ConfigError, parse_var, secs_var, string_var};

/// How producers and workers reach the queue and how long it keeps things.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `GITFLEET_REDIS_URL`, default `redis://127.0.0.1:6379`. May carry a password; it is
    /// never printed (see [`QueueConfig::redacted_url`]).
    pub redis_url: String,
    /// `GITFLEET_KEY_PREFIX`, default `gitfleet:`. Every key the queue writes starts with it;
    /// tests use one of their own so they can run side by side.
    pub key_prefix: String,
    /// `GITFLEET_RESULT_TTL_SECS`, default 86 400 (a day): how long a finished job's record
    /// and result are kept for waiters and `gitfleet job`.
    pub result_ttl: Duration,
    /// `GITFLEET_DEAD_TTL_SECS`, default 604 800 (a week): how long a dead job is kept, to be
    /// read or retried by hand.
    pub dead_ttl: Duration,
    /// `GITFLEET_IDEMPOTENCY_TTL_SECS`, default 86 400: how long an idempotency key maps to
    /// its first job.
    pub idempotency_ttl: Duration,
    /// `GITFLEET_MAX_PAYLOAD_BYTES`, default 1 MiB: the largest job (op + args) accepted.
    pub max_payload_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "gitfleet:".into(),
            result_ttl: Duration::from_secs(86_400),
            dead_ttl: Duration::from_secs(7 * 86_400),
            idempotency_ttl: Duration::from_secs(86_400),
            max_payload_bytes: 1 << 20,
        }
    }
}

impl QueueConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let d = Self::default();
        Ok(Self {
            redis_url: string_var("GITFLEET_REDIS_URL", &d.redis_url),
            key_prefix: string_var("GITFLEET_KEY_PREFIX", &d.key_prefix),
            result_ttl: secs_var("GITFLEET_RESULT_TTL_SECS", d.result_ttl)?,
            dead_ttl: secs_var("GITFLEET_DEAD_TTL_SECS", d.dead_ttl)?,
            idempotency_ttl: secs_var("GITFLEET_IDEMPOTENCY_TTL_SECS", d.idempotency_ttl)?,
            max_payload_bytes: parse_var("GITFLEET_MAX_PAYLOAD_BYTES", d.max_payload_bytes)?,
        })
    }

    /// The Redis URL with any password replaced, for logs and errors (through the one
    /// redaction function, [`Redactor`]).
    pub fn redacted_url(&self) -> String {
        Redactor::default().redact(&self.redis_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redis_url_is_printed_without_its_password() {
        let url = |u: &str| QueueConfig {
            redis_url: u.into(),
            ..Default::default()
        };
        assert_eq!(
            url("redis://:s3cret@host:6379/0").redacted_url(),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            url("redis://user:s3cret@host").redacted_url(),
            "redis://***@host"
        );
        assert_eq!(
            url("redis://127.0.0.1:6379").redacted_url(),
            "redis://127.0.0.1:6379"
        );
    }
}
