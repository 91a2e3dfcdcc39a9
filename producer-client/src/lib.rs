//! gitfleet-client: how a Rust program puts git jobs into the fleet and reads their
//! results. A thin layer over [`gitfleet_core::queue::Queue`] that also checks each job
//! against the op's own rules before it is enqueued, so a bad job is refused at once with
//! an error naming the field, instead of failing later in a worker.
//!
//! ```no_run
//! # async fn demo() -> Result<(), gitfleet_client::QueueError> {
//! use gitfleet_client::{Client, EnqueueOptions, JobSpec};
//! let client = Client::connect(Default::default()).await?;
//! let job = client
//!     .submit("jobs", &JobSpec::new("echo", serde_json::json!({"hi": 1})), &EnqueueOptions::default())
//!     .await?;
//! let record = client.wait(&job.job_id, std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

pub mod demo;

use std::time::Duration;

pub use gitfleet_core::config::QueueConfig;
pub use gitfleet_core::job::{ErrorKind, JobError, JobRecord, JobSpec, JobStatus};
pub use gitfleet_core::queue::{DEFAULT_QUEUE, EnqueueOptions, Enqueued, QueueError, QueueStats};

use gitfleet_core::ops::Ops;
use gitfleet_core::queue::Queue;

/// A producer's handle on the fleet. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    queue: Queue,
    ops: Ops,
}

impl Client {
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        Ok(Self {
            queue: Queue::connect(config).await?,
            ops: Ops::builtin(),
        })
    }

    /// The queue handle underneath, for what the client does not wrap.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Checks a job against its op without enqueueing it.
    pub fn check(&self, spec: &JobSpec) -> Result<(), QueueError> {
        self.ops
            .resolve(spec)
            .map(|_| ())
            .map_err(QueueError::Invalid)
    }

    /// The queue a job goes to when the producer names none: ops on a sandbox go to the
    /// own queue of the worker that holds it (`worker:<id>`), the rest to [`DEFAULT_QUEUE`].
    pub fn route(spec: &JobSpec) -> String {
        Ops::route(spec).unwrap_or_else(|| DEFAULT_QUEUE.to_string())
    }

    /// Enqueues one job on `queue` (usually [`Client::route`] of the job).
    pub async fn submit(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        self.check(spec)?;
        self.queue.enqueue(queue, spec, options).await
    }

    /// Enqueues many jobs, a thousand per round trip. Nothing is enqueued when any job is
    /// invalid; the error names the first bad one by its position.
    pub async fn submit_many(
        &self,
        queue: &str,
        specs: &[JobSpec],
        options: &EnqueueOptions,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        for (i, spec) in specs.iter().enumerate() {
            self.check(spec).map_err(|e| match e {
                QueueError::Invalid(err) => QueueError::Invalid(JobError::invalid_input(format!(
                    "job {}: {}",
                    i + 1,
                    err.message
                ))),
                other => other,
            })?;
        }
        self.queue.enqueue_many(queue, specs, options).await
    }

    /// The record of job `id`; `None` if there is none (never was, or expired).
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        self.queue.job(id).await
    }

    /// Waits up to `timeout` for job `id` to be done or dead; returns its record as it is
    /// then (check [`JobStatus::is_final`]).
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<JobRecord>, QueueError> {
        self.queue.wait(id, timeout).await
    }

    /// Counts for every queue.
    pub async fn queues(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.queue.stats().await
    }

    /// Sends a dead job back to its queue with a fresh set of attempts.
    pub async fn retry(&self, id: &str) -> Result<(), QueueError> {
        self.queue.retry_dead(id).await
    }
}
