//! gitfleet-queue: the Redis queue layer, a reliable queue built for the fleet, not apalis-redis.
//!
//! Each queue is one Redis list of job ids (its waiting backlog, one key an autoscaler can
//! `LLEN`); a job's record is a hash. Workers take jobs with a blocking `BLMOVE` into a list
//! of their own (so a crash cannot lose a job), acknowledge in batches, and park retries in
//! a sorted set that is promoted in bounded chunks. Every multi-key change is one Lua script
//! (`lua/`), so it is atomic. The layout and the push script are documented in
//! `docs/queue.md`, which is also why the scripts take their keys the way they do: a
//! producer in any language runs `lua/enqueue.lua` itself.

mod bulk;
mod cancel;
mod config;
mod consume;
mod control;
mod inspect;
mod keys;
mod lock;
mod produce;
mod purge;
mod registry;
mod scripts;
mod workers;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client};

pub use bulk::{ActReport, Acted, BulkAction, BulkFilter, Matched};
pub use cancel::Cancelled;
pub use config::QueueConfig;
pub use consume::{AnsweredJob, Beat, Delivery, Finished, Outcome, ReapReport};
pub use control::{Leader, RunRequest, SCHEDULER_TASKS, is_manual_tick};
pub use inspect::{JobChange, JobWatch, QueueStats};
pub use keys::Keys;
pub use lock::Lock;
// The envelope types the queue takes and answers with are the contract's.
pub use gitfleet_contract::{EnqueueOptions, Enqueued};
pub use produce::worker_not_running;
pub use purge::{purge_prefix, purge_prefix_blocking};
pub use registry::SandboxOwner;
pub use workers::{RunningJob, WorkerInfo, WorkerState};

use gitfleet_contract::{ErrorKind, JobError};

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
    /// This worker was declared dead by the fleet (silent past the dead-after time): its
    /// jobs went to others, its locks were freed, its own queue is answered
    /// `sandbox_not_found`. Nothing it does counts any more; it must stop serving.
    #[error("{0}")]
    Fenced(String),
    /// A lock is no longer held with this holder's token (it expired, or another worker
    /// took it after this one was declared dead): act under it no more.
    #[error("{0}")]
    LockLost(String),
    /// This worker was asked to drain (`drain.lua`): it starts no job from now on.
    #[error("{0}")]
    Draining(String),
}

impl QueueError {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        QueueError::Invalid(JobError::invalid_input(message))
    }

    /// Script errors whose code is `invalid_input:` are the producer's fault. (Redis
    /// splits an error reply into a code, its first word, and the detail.)
    fn from_script(e: redis::RedisError) -> Self {
        let detail = || e.detail().unwrap_or_default().trim().to_string();
        match e.code() {
            Some("invalid_input:") => return QueueError::invalid(detail()),
            Some("budget_exceeded:") => {
                return QueueError::Invalid(JobError::new(ErrorKind::BudgetExceeded, detail()));
            }
            Some("conflict:") => {
                return QueueError::Invalid(JobError::new(ErrorKind::Conflict, detail()));
            }
            _ => {}
        }
        if e.code() == Some("fenced:") {
            return QueueError::Fenced(e.detail().unwrap_or_default().trim().to_string());
        }
        if e.code() == Some("draining:") {
            return QueueError::Draining(e.detail().unwrap_or_default().trim().to_string());
        }
        QueueError::Redis(e)
    }

    /// Whether this worker was declared dead ([`QueueError::Fenced`]).
    pub fn is_fenced(&self) -> bool {
        matches!(self, QueueError::Fenced(_))
    }

    /// Whether this worker was asked to drain ([`QueueError::Draining`]).
    pub fn is_draining(&self) -> bool {
        matches!(self, QueueError::Draining(_))
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

/// A handle on the queue: cheap to clone, safe to share between tasks. It reconnects by
/// itself when Redis restarts; calls made while Redis is away fail with a transient error.
#[derive(Clone)]
pub struct Queue {
    client: Client,
    conn: ConnectionManager,
    keys: Keys,
    config: QueueConfig,
    /// Connections for blocking commands that finished theirs, kept for the next wait or
    /// watch (see [`Blocking`]).
    idle_blocking: Arc<Mutex<Vec<MultiplexedConnection>>>,
}

/// Blocking connections kept idle at most: what a busy gateway's concurrent waits reuse.
const IDLE_BLOCKING_MAX: usize = 64;

/// A connection for one blocking command at a time (a wait's `BLMOVE`, a watch's `XREAD`),
/// taken from the queue's idle ones or made. [`Blocking::reuse`] gives it back once its
/// command has answered; dropped otherwise (its command cut off, an error), it is closed:
/// a connection still blocked in Redis would stall whoever took it next.
pub(crate) struct Blocking {
    conn: Option<MultiplexedConnection>,
    idle: Arc<Mutex<Vec<MultiplexedConnection>>>,
    /// Taken from the idle ones: it may have gone stale (Redis restarted meanwhile), so a
    /// command that fails on it is worth one more try on a new connection.
    pub(crate) reused: bool,
}

impl Blocking {
    pub(crate) fn conn(&mut self) -> &mut MultiplexedConnection {
        self.conn.as_mut().expect("held until reused")
    }

    /// Its command answered: the connection goes back to the idle ones.
    pub(crate) fn reuse(mut self) {
        if let Some(conn) = self.conn.take() {
            let mut idle = self.idle.lock().expect("not poisoned");
            if idle.len() < IDLE_BLOCKING_MAX {
                idle.push(conn);
            }
        }
    }
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
            idle_blocking: Arc::default(),
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Whether Redis answers (`PING`), for readiness checks.
    pub async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
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

    /// A blocking connection from the idle ones, or a new one (see [`Blocking`]).
    pub(crate) async fn blocking(&self) -> Result<Blocking, QueueError> {
        let kept = self.idle_blocking.lock().expect("not poisoned").pop();
        let reused = kept.is_some();
        let conn = match kept {
            Some(conn) => conn,
            None => self.blocking_connection().await?,
        };
        Ok(Blocking {
            conn: Some(conn),
            idle: self.idle_blocking.clone(),
            reused,
        })
    }
}
