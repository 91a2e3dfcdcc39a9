//! The apalis side: a [`Backend`] that yields the jobs our fetcher took from Redis, and the
//! tower service that runs one job and hands its outcome to the acknowledger.
//!
//! apalis drives the loop (readiness, concurrency limit, in-flight futures, draining on
//! stop); Redis is reached only by the fetcher and the acknowledger, which batch their
//! round trips. A job reaches apalis holding a permit of its queue's semaphore, released
//! when its outcome is handed to the acknowledger, so the next fetch overlaps the write:
//! a worker holds at most its concurrency in running jobs, plus outcomes being written.

use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use apalis_core::backend::finalize::Ephemeral;
use apalis_core::backend::{Backend, BackendConfig};
use apalis_core::task::Task;
use apalis_core::task::task_id::RandomId;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tower::Service;
use tower::layer::util::Identity;
use tracing::Instrument;

use super::retry::RetryPolicy;
use crate::git::{StepLog, Steps};
use crate::ops::{Ops, RunContext};
use gitfleet_contract::ops::check_identity;
use gitfleet_contract::{JobError, JobSpec};
use gitfleet_queue::{Delivery, Finished, Outcome};

/// A job taken from Redis, with the permit that counts it against the concurrency.
pub struct Run {
    pub delivery: Delivery,
    pub(crate) permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("id", &self.delivery.id)
            .finish()
    }
}

/// An outcome on its way to Redis.
pub(crate) struct Ack {
    pub finished: Finished,
}

/// The apalis backend of one queue: the receiving end of its fetcher. It ends when the
/// fetcher stops (shutdown), after which apalis drains the jobs in flight.
pub struct QueueBackend {
    rx: mpsc::Receiver<Run>,
}

impl QueueBackend {
    pub(crate) fn new(rx: mpsc::Receiver<Run>) -> Self {
        Self { rx }
    }
}

impl Backend for QueueBackend {
    type Task = Task<Run>;
    type Error = std::io::Error;

    fn poll_ready(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(run)) => Poll::Ready(Some(Ok(Task::new(run)))),
            Poll::Ready(None) => {
                // The fetcher stopped: tell apalis to drain and finish (it waits for a stop
                // request, not for the end of the stream).
                if !worker.is_shutting_down() {
                    let _ = worker.stop();
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_close(
        &mut self,
        _: &mut Context<'_>,
        _: &WorkerContext,
    ) -> Poll<Result<(), Self::Error>> {
        // Nothing of ours to flush here: outcomes go to the acknowledger, which the runtime
        // drains after every apalis worker has stopped.
        Poll::Ready(Ok(()))
    }
}

impl BackendConfig for QueueBackend {
    type Args = Run;
    type Id = RandomId;
    type Kind = Ephemeral;
    type Config = ();
    type Layer = Identity;

    fn config(&self) -> &Self::Config {
        &()
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        Identity::new()
    }
}

/// Runs one job: parse, look up the op, check args, run under the time limit, turn the
/// result into an outcome, hand it to the acknowledger. Never fails as a service: a job's
/// failure is data.
#[derive(Clone)]
pub struct JobService {
    pub(crate) ops: Arc<Ops>,
    pub(crate) retry: RetryPolicy,
    pub(crate) worker_id: Arc<str>,
    pub(crate) max_payload_bytes: usize,
    pub(crate) acks: mpsc::UnboundedSender<Ack>,
    pub(crate) sandboxes: Option<Arc<crate::sandbox::SandboxManager>>,
    pub(crate) queue: gitfleet_queue::Queue,
    /// The durable record (disabled without Postgres) and the organizations over budget.
    pub(crate) records: gitfleet_store::Recorder,
    pub(crate) budgets: gitfleet_store::Budgets,
    /// `GITFLEET_REQUIRE_ORG` and `GITFLEET_ORG_MAX_SANDBOXES` (see `WorkerConfig`).
    pub(crate) require_org: bool,
    pub(crate) org_max_sandboxes: u32,
}

impl Service<Task<Run>> for JobService {
    type Response = ();
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<(), Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, task: Task<Run>) -> Self::Future {
        let this = self.clone();
        let (run, _ctx) = task.take();
        let Run { delivery, permit } = run;
        let span = tracing::info_span!(
            "job",
            job_id = %delivery.id,
            queue = %delivery.queue,
            op = tracing::field::Empty,
            attempt = delivery.attempts,
        );
        async move {
            let started = Instant::now();
            let spec = if this.records.is_enabled() {
                JobSpec::parse(&delivery.payload).ok()
            } else {
                None
            };
            let run = this.records.job_started(&delivery, spec.as_ref());
            // Every git command the job runs is a step of this run (`git::steps`); the
            // job's future, and with it any git call still running, is gone by `take`.
            let outcome = match &run {
                Some(_) => {
                    let log = StepLog::new();
                    let outcome = Steps::of(&log).scope(this.execute(&delivery)).await;
                    this.records
                        .job_finished(run, spec.as_ref(), &outcome, Some(log.take()));
                    outcome
                }
                None => this.execute(&delivery).await,
            };
            match &outcome {
                Outcome::Done(_) => tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "done"),
                Outcome::Retry { error, delay } => tracing::warn!(kind = %error.kind, message = %error.message, retry_in_ms = delay.as_millis() as u64, "failed; will retry"),
                Outcome::Dead(error) => tracing::warn!(kind = %error.kind, message = %error.message, "failed; dead"),
            }
            let ack = Ack {
                finished: Finished {
                    id: delivery.id,
                    outcome,
                },
            };
            let sent = this.acks.send(ack);
            drop(permit);
            if sent.is_err() {
                // Only after the acknowledger is gone (shutdown past its grace): the job
                // stays in this worker's held list and is given back or recovered.
                tracing::error!("acknowledger stopped; outcome not recorded");
            }
            Ok(())
        }
        .instrument(span)
        .boxed()
    }
}

impl JobService {
    async fn execute(&self, d: &Delivery) -> Outcome {
        if d.payload.len() > self.max_payload_bytes {
            return Outcome::Dead(JobError::invalid_input(format!(
                "payload is {} bytes, over the limit of {} bytes",
                d.payload.len(),
                self.max_payload_bytes
            )));
        }
        let spec = match JobSpec::parse(&d.payload) {
            Ok(spec) => spec,
            Err(e) => return Outcome::Dead(e),
        };
        tracing::Span::current().record("op", spec.op.as_str());
        let op = match self.ops.resolve(&spec) {
            Ok(op) => op.clone(),
            Err(e) => return Outcome::Dead(e),
        };
        // Who it runs for is the envelope's organization, never the args': checked before
        // anything else, whatever the producer checked (a script in another language
        // checks nothing).
        let org = d.org.as_deref();
        if let Err(e) = check_identity(&spec.op, org, self.require_org) {
            return Outcome::Dead(e);
        }
        // Refused here too (not only at enqueue): the budget may have run out while the job
        // waited. Reads memory; the list is refreshed in the background.
        if let Err(e) = self.budgets.check(org, &spec.op) {
            return Outcome::Dead(e);
        }
        let limits = self.ops.rules().limits;
        // Refused here too (a producer in another language checks nothing).
        if d.timeout_ms > 0
            && let Err(e) = limits.check_timeout(Some(Duration::from_millis(d.timeout_ms)))
        {
            return Outcome::Dead(e);
        }
        let max_attempts = if d.max_attempts > 0 {
            d.max_attempts
        } else {
            op.max_attempts()
        };
        if d.attempts > max_attempts {
            // Runs that never finished (their worker died) count too: a job that kills its
            // worker every time must not take the fleet down with it.
            return Outcome::Dead(JobError::internal(format!(
                "gave up after {} runs that did not finish (the worker running it died)",
                d.attempts - 1
            )));
        }
        let timeout = if d.timeout_ms > 0 {
            Duration::from_millis(d.timeout_ms)
        } else {
            op.timeout(&spec.args)
        };
        let ctx = RunContext {
            job_id: d.id.clone(),
            attempt: d.attempts,
            given_back: d.given_back,
            worker_id: self.worker_id.to_string(),
            org: d.org.clone(),
            org_max_sandboxes: self.org_max_sandboxes,
            sandboxes: self.sandboxes.clone(),
            queue: Some(self.queue.clone()),
        };
        let run = AssertUnwindSafe(op.run(spec.args, ctx)).catch_unwind();
        let result = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(JobError::internal(format!(
                    "op {} panicked: {what}",
                    spec.op
                )))
            }
            Err(_) => Err(JobError::timeout(format!(
                "op {} did not finish within {} ms",
                spec.op,
                timeout.as_millis()
            ))),
        };
        // A result over the cap fails the job: none of it is stored.
        let result = result.and_then(|value| {
            limits.check_result(&spec.op, json_len(&value))?;
            Ok(value)
        });
        match result {
            Ok(value) => Outcome::Done(value),
            Err(error) => self.retry.outcome(error, d.attempts, max_attempts),
        }
    }
}

/// The length of `value` as JSON, without building the text.
fn json_len(value: &serde_json::Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
