//! `gitfleet demo`: the queue end to end on this machine, in one command.
//!
//! Starts two workers in this process, under a key prefix of their own, enqueues a batch
//! of `echo` jobs and a few `sleep` jobs, waits for every one of them, prints what happened,
//! and removes its keys. (Once the git ops land, the demo runs agents through clone, write
//! and push instead.)

use std::time::{Duration, Instant};

use futures::StreamExt;

use gitfleet_core::config::{QueueConfig, WorkerConfig};
use gitfleet_core::job::{JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_core::queue::{EnqueueOptions, Queue, QueueError};
use gitfleet_core::worker::Worker;
use serde_json::json;

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub jobs: usize,
    pub done: usize,
    pub dead: usize,
    pub elapsed: Duration,
    pub latency_p50: Duration,
    pub latency_p99: Duration,
    pub sample: serde_json::Value,
}

/// Runs the demo against the Redis of `config` (its prefix is replaced by a private one).
pub async fn run(mut config: QueueConfig, echo_jobs: usize) -> Result<DemoReport, QueueError> {
    config.key_prefix = format!("gitfleet-demo-{}:", ulid::Ulid::new());
    let queue = Queue::connect(config).await?;
    let result = run_with(&queue, echo_jobs).await;
    queue.purge_prefix().await?;
    result
}

async fn run_with(queue: &Queue, echo_jobs: usize) -> Result<DemoReport, QueueError> {
    let worker_config = WorkerConfig {
        concurrency: 20,
        name_stem: "demo".into(),
        ..Default::default()
    };
    let a = Worker::new(queue.clone(), worker_config.clone(), Ops::builtin())
        .start()
        .await
        .map_err(|e| QueueError::Protocol(e.to_string()))?;
    let b = Worker::new(queue.clone(), worker_config, Ops::builtin())
        .start()
        .await
        .map_err(|e| QueueError::Protocol(e.to_string()))?;

    let mut specs: Vec<JobSpec> = (0..echo_jobs)
        .map(|i| JobSpec::new("echo", json!({"agent": i % 10, "n": i})))
        .collect();
    specs.extend((0..5).map(|i| JobSpec::new("sleep", json!({"ms": 100 * (i + 1)}))));
    let started = Instant::now();
    let ids: Vec<String> = queue
        .enqueue_many("jobs", &specs, &EnqueueOptions::default())
        .await?
        .into_iter()
        .map(|r| r.map(|e| e.job_id))
        .collect::<Result<_, _>>()?;

    let records: Vec<_> = futures::stream::iter(ids.iter())
        .map(|id| queue.wait(id, Duration::from_secs(60)))
        .buffer_unordered(64)
        .collect()
        .await;
    let mut latencies = Vec::with_capacity(ids.len());
    let (mut done, mut dead) = (0, 0);
    let mut sample = serde_json::Value::Null;
    for record in records {
        let record = record?.ok_or_else(|| QueueError::Protocol("a job vanished".into()))?;
        match record.status {
            JobStatus::Done => done += 1,
            JobStatus::Dead => dead += 1,
            _ => {}
        }
        if let (Some(e), Some(f)) = (record.enqueued_at, record.finished_at) {
            latencies.push((f - e).to_std().unwrap_or_default());
        }
        if sample.is_null() && record.op == "echo" {
            sample = record.to_cli_json();
        }
    }
    let elapsed = started.elapsed();
    a.shutdown()
        .await
        .map_err(|e| QueueError::Protocol(e.to_string()))?;
    b.shutdown()
        .await
        .map_err(|e| QueueError::Protocol(e.to_string()))?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(DemoReport {
        jobs: ids.len(),
        done,
        dead,
        elapsed,
        latency_p50: pct(0.5),
        latency_p99: pct(0.99),
        sample,
    })
}
