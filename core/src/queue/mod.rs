//! The Redis queue layer: a reliable queue built for the fleet, not apalis-redis.
//!
//! Each queue is one Redis list of job ids (its waiting backlog, one key an autoscaler can
//! `LLEN`); a job's record is a hash. Workers take jobs with a blocking `BLMOVE` into a list
//! of their own (so a crash cannot lose a job), acknowledge in batches, and park retries in
//! a sorted set that is promoted in bounded chunks. Every multi-key change is one Lua script
//! (`lua/`), so it is atomic. The layout and the push script are documented in
//! `docs/queue.md`, which is also why the scripts take their keys the way they do: a
//! producer in any language runs `lua/enqueue.lua` itself.

mod consume;
mod inspect;
mod keys;
mod lock;
mod produce;
mod scripts;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

pub use consume::{AnsweredJob, Delivery, Finished, Outcome, ReapReport};
pub use inspect::QueueStats;
pub use keys::Keys;
pub use lock::Lock;
pub use produce::{EnqueueOptions, Enqueued, worker_not_running};

use crate::config::QueueConfig;
use crate::job::JobError;

/// The shared queue every worker serves unless told otherwise.
pub const DEFAULT_QUEUE: &str = "jobs";

/// Ids in a pipeline or script call at once: large enough to amortise round trips, small
/// enough that no call holds Redis for more than a few milliseconds.
pub(crate) const CHUNK: usize = 1000;

/// What can go wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The job or request itself is wrong; retrying it unchanged cannot help.
    #[error("{0}")]
    Invalid(JobError),
    /// Redis could not be reached or answered with an error.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Something answered in a shape this code does not expect.
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
}

impl QueueError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        QueueError::Invalid(JobError::invalid_input(message))
    }

    /// Script errors whose code is `invalid_input:` are the producer's fault. (Redis
    /// splits an error reply into a code, its first word, and the detail.)
    fn from_script(e: redis::RedisError) -> Self {
        if e.code() == Some("invalid_input:") {
            return QueueError::invalid(e.detail().unwrap_or_default().trim());
        }
        QueueError::Redis(e)
    }

    /// Whether the operation may succeed if tried again (Redis restarting, a dropped
    /// connection) as opposed to being wrong in itself.
    pub fn is_transient(&self) -> bool {
        match self {
            QueueError::Redis(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain)
                            | redis::ErrorKind::Server(redis::ServerErrorKind::MasterDown)
                    )
            }
            _ => false,
        }
    }
}

/// Checks a queue name: `worker:<worker id>` for a worker's own queue, otherwise lower-case
/// letters, digits, `-` and `_` (at most 64), and not one of the names the layout reserves.
pub fn validate_queue_name(name: &str) -> Result<(), JobError> {
    if let Some(worker) = name.strip_prefix("worker:") {
        return validate_worker_id(worker)
            .map_err(|e| JobError::invalid_input(format!("queue {name:?}: {}", e.message)));
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if name.is_empty() || name.len() > 64 || !ok_chars || name.starts_with(['-', '_']) {
        return Err(JobError::invalid_input(format!(
            "queue {name:?}: must be 1-64 of a-z, 0-9, '-', '_' (not leading), or worker:<id>"
        )));
    }
    if matches!(name, "queues" | "workers") {
        return Err(JobError::invalid_input(format!(
            "queue {name:?}: the name is reserved"
        )));
    }
    Ok(())
}

/// Checks a worker id: letters, digits and `-`, at most 100. (No `.`: a sandbox id is
/// `<worker id>.<ulid>`.)
pub fn validate_worker_id(id: &str) -> Result<(), JobError> {
    if id.is_empty()
        || id.len() > 100
        || id.starts_with('-')
        || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(JobError::invalid_input(format!(
            "worker id {id:?}: must be 1-100 of letters, digits and '-', not leading '-'"
        )));
    }
    Ok(())
}

/// A handle on the queue: cheap to clone, safe to share between tasks. It reconnects by
/// itself when Redis restarts; calls made while Redis is away fail with a transient error.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
    config: QueueConfig,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("redis", &self.config.redacted_url())
            .field("prefix", &self.config.key_prefix)
            .finish()
    }
}

impl Queue {
    /// Connects to Redis (retrying briefly) and returns a handle.
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        let client = Client::open(config.redis_url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            // Scripts work through bounded chunks, but a loaded machine can still be slow;
            // the default 500 ms would fail healthy calls.
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(3)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await?;
        let keys = Keys::new(&config.key_prefix);
        Ok(Self {
            client,
            conn,
            keys,
            config,
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// A connection of its own, for blocking commands that would stall a shared one.
    pub(crate) async fn blocking_connection(&self) -> Result<MultiplexedConnection, QueueError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(None);
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_are_checked() {
        for ok in ["jobs", "git-ops", "q_1", "worker:host-01HX"] {
            validate_queue_name(ok).unwrap();
        }
        for bad in [
            "",
            "Jobs",
            "a b",
            "a:b",
            "-x",
            "queues",
            "workers",
            "worker:",
            "worker:a.b",
            "worker:-x",
        ] {
            let err = validate_queue_name(bad).unwrap_err();
            assert!(err.message.contains("queue"), "{bad}: {err}");
        }
    }
}
