//! Work on a worker's sandboxes is done by that worker: the scheduler sends it a `maintain`
//! job on its own queue (`worker:<id>`) and waits for the answer. Each job carries an
//! idempotency key `scheduler:<task>:<tick>:<worker>`, so one tick never sends the same
//! worker the same job twice.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_contract::{OpName, own_queue};
use gitfleet_queue::{EnqueueOptions, WorkerState};
use serde_json::Value;

use crate::{Context, SchedError};

/// One worker's answer to a `maintain` job.
#[derive(Debug, Clone)]
pub struct Answer {
    pub worker: String,
    pub job_id: Option<String>,
    /// The job's result, or why there is none (`"<kind>: <message>"`, or that it did not
    /// finish in time).
    pub result: Result<Value, String>,
}

/// The workers registered in Redis whose last heartbeat is within `dead_after`.
pub async fn live_workers(ctx: &Context, dead_after: Duration) -> Result<Vec<String>, SchedError> {
    Ok(ctx
        .queue
        .live_workers()
        .await?
        .into_iter()
        .filter(|(_, ago)| *ago <= dead_after)
        .map(|(w, _)| w)
        .collect())
}

/// The live workers that take jobs: not asked to drain (a draining or drained worker's own
/// queue answers every job `sandbox_not_found` at once; see docs/queue.md, Draining).
pub async fn serving_workers(
    ctx: &Context,
    dead_after: Duration,
) -> Result<Vec<String>, SchedError> {
    Ok(ctx
        .queue
        .workers()
        .await?
        .into_iter()
        .filter(|w| {
            w.state == WorkerState::Running
                && w.drain_requested_at.is_none()
                && w.heartbeat_age_ms
                    .is_some_and(|ms| ms <= dead_after.as_millis() as u64)
        })
        .map(|w| w.worker_id)
        .collect())
}

/// Sends each `(worker, args)` its `maintain` job and waits, up to `wait`, for all of them.
pub async fn send_and_wait(
    ctx: &Context,
    task: &str,
    tick: DateTime<Utc>,
    jobs: Vec<(String, Value)>,
    wait: Duration,
) -> Result<Vec<Answer>, SchedError> {
    let mut sent = Vec::with_capacity(jobs.len());
    for (worker, args) in jobs {
        let spec = JobSpec::new(OpName::Maintain.as_str(), args);
        let options = EnqueueOptions {
            idempotency_key: Some(format!("scheduler:{task}:{}:{worker}", tick.timestamp())),
            max_attempts: Some(1),
            ..Default::default()
        };
        let queue = own_queue(&worker);
        let enqueued = ctx.queue.enqueue(&queue, &spec, &options).await?;
        sent.push((worker, enqueued.job_id));
    }
    let waits = sent.into_iter().map(|(worker, job_id)| async move {
        let record = ctx.queue.wait(&job_id, wait).await;
        let result = match record {
            Ok(Some(r)) if r.status == JobStatus::Done => Ok(r.result.unwrap_or(Value::Null)),
            Ok(Some(r)) if r.status.is_final() => Err(r
                .error
                .map(|e| format!("{}: {}", e.kind, e.message))
                .unwrap_or_else(|| r.status.to_string())),
            Ok(Some(r)) => Err(format!(
                "not finished within {} s (status {})",
                wait.as_secs(),
                r.status.as_str()
            )),
            Ok(None) => Err("the job's record is gone".into()),
            Err(e) => Err(format!("cannot read the job: {e}")),
        };
        Answer {
            worker,
            job_id: Some(job_id),
            result,
        }
    });
    Ok(futures::future::join_all(waits).await)
}

/// The answers as JSON for a run's detail: per worker, its result or its error.
pub fn summary(answers: &[Answer]) -> Value {
    Value::Array(
        answers
            .iter()
            .map(|a| match &a.result {
                Ok(v) => serde_json::json!({"worker": a.worker, "job_id": a.job_id, "result": v}),
                Err(e) => serde_json::json!({"worker": a.worker, "job_id": a.job_id, "error": e}),
            })
            .collect(),
    )
}
