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
pub mod tables;

use std::time::Duration;

pub use gitfleet_core::config::{QueueConfig, StoreConfig};
pub use gitfleet_core::job::{ErrorKind, JobError, JobRecord, JobSpec, JobStatus};
pub use gitfleet_core::queue::{DEFAULT_QUEUE, EnqueueOptions, Enqueued, QueueError, QueueStats};
pub use gitfleet_core::store::{self, Store};

use gitfleet_core::ops::Ops;
use gitfleet_core::queue::Queue;

/// A producer's handle on the fleet. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    queue: Queue,
    ops: Ops,
    store: Option<Store>,
}

impl Client {
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        Ok(Self {
            queue: Queue::connect(config).await?,
            ops: Ops::builtin(),
            store: None,
        })
    }

    /// Uses the durable record: jobs of an organization over its budget are refused at
    /// submit (`budget_exceeded`), and each job enqueued gets its row (`waiting` or
    /// `delayed`). Should Postgres be unreachable, jobs are enqueued all the same: the
    /// worker checks the budget again and writes the row when it starts the job.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// The durable record, if the client uses one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Refuses a job whose organization (`org_id` in its args) has spent its budget.
    async fn check_budget(&self, spec: &JobSpec) -> Result<(), QueueError> {
        let (Some(store), Some(org)) = (
            &self.store,
            spec.args.get("org_id").and_then(serde_json::Value::as_str),
        ) else {
            return Ok(());
        };
        match store.check_budget(org, &spec.op).await {
            Ok(()) => Ok(()),
            Err(store::CheckError::Exceeded(e)) => Err(QueueError::Invalid(e)),
            // Fail open: the worker checks again before running it.
            Err(store::CheckError::Store(_)) => Ok(()),
        }
    }

    /// Writes the rows of jobs just enqueued (best effort: a worker writes them anyway). A
    /// job the queue answered at once (its queue is that of a worker that is gone) gets its
    /// final row here: no worker will see it.
    async fn record_enqueued(&self, queue: &str, jobs: &[(&JobSpec, &Enqueued)]) {
        let Some(store) = &self.store else { return };
        let now = chrono::Utc::now();
        let answered = queue.strip_prefix("worker:").map(|worker| {
            let e = gitfleet_core::queue::worker_not_running(worker);
            JobError::new(
                e.kind,
                gitfleet_core::git::Redactor::default().redact(&e.message),
            )
        });
        let records: Vec<store::Record> = jobs
            .iter()
            .filter(|(_, e)| e.created)
            .map(|(spec, e)| {
                store::Record::Job(store::JobEvent {
                    error: answered.clone().filter(|_| e.status == JobStatus::Dead),
                    enqueued_at: Some(now),
                    finished_at: (e.status == JobStatus::Dead).then_some(now),
                    ..store::JobEvent::new(&e.job_id, &spec.op, queue, e.status, Some(&spec.args))
                })
            })
            .collect();
        if !records.is_empty() {
            let _ = store.apply(&records).await;
        }
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
        self.check_budget(spec).await?;
        let enqueued = self.queue.enqueue(queue, spec, options).await?;
        self.record_enqueued(queue, &[(spec, &enqueued)]).await;
        Ok(enqueued)
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
        for (i, spec) in specs.iter().enumerate() {
            self.check_budget(spec).await.map_err(|e| match e {
                QueueError::Invalid(err) => QueueError::Invalid(JobError::new(
                    err.kind,
                    format!("job {}: {}", i + 1, err.message),
                )),
                other => other,
            })?;
        }
        let results = self.queue.enqueue_many(queue, specs, options).await?;
        let done: Vec<(&JobSpec, &Enqueued)> = specs
            .iter()
            .zip(&results)
            .filter_map(|(s, r)| r.as_ref().ok().map(|e| (s, e)))
            .collect();
        self.record_enqueued(queue, &done).await;
        Ok(results)
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
        self.queue.retry_dead(id).await?;
        // Its row starts over too (attempts from 0), whatever it said before.
        if let (Some(store), Some(job)) = (&self.store, self.queue.job(id).await?) {
            let record = store::Record::Job(store::JobEvent {
                reset: true,
                ..store::JobEvent::new(job.job_id, job.op, job.queue, JobStatus::Waiting, None)
            });
            let _ = store.apply(&[record]).await;
        }
        Ok(())
    }
}
