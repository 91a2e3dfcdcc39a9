//! The `Side` abstraction: one Redis-backed job queue implementation under test.
//!
//! A side knows how to enqueue benchmark jobs, how many jobs its own storage
//! reports as completed, how to start one worker process of itself (as argv for
//! `queue-bench worker ...`), and how to delete every Redis key its run used.
//! Sides are used generically (`S: Side`), never as trait objects.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The payload every side enqueues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchJob {
    /// Wall clock µs since the Unix epoch at the moment the job was enqueued.
    pub sent_us: u64,
    /// When true, the worker records `now_us - sent_us` in the side's latency
    /// list; when false the job is a no-op.
    pub record: bool,
}

impl BenchJob {
    /// A job stamped with the current wall clock.
    pub fn now(record: bool) -> Self {
        Self {
            sent_us: now_us(),
            record,
        }
    }
}

/// Wall clock µs since the Unix epoch.
pub fn now_us() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
}

/// One queue implementation under test.
pub trait Side {
    /// Short name used on the command line and as the table column.
    fn name(&self) -> &'static str;

    /// The unique per-run namespace. Every Redis key of this side's run lives
    /// under it, and the worker records latencies in
    /// [`crate::latency::latency_key`]`(namespace)`.
    fn namespace(&self) -> &str;

    /// argv (after the bench binary path) that runs ONE worker process of this
    /// side with the given concurrency.
    fn worker_args(&self, concurrency: usize) -> Vec<String>;

    /// Delete every Redis key this side's run uses (queue keys and the
    /// latency list), and nothing else.
    async fn reset(&self) -> anyhow::Result<()>;

    /// Enqueue one job in one round trip.
    async fn enqueue_one(&self, job: &BenchJob) -> anyhow::Result<()>;

    /// Enqueue many jobs in as few round trips as the side allows.
    async fn enqueue_batch(&self, jobs: &[BenchJob]) -> anyhow::Result<()>;

    /// Enqueue `n` no-op jobs scheduled one hour ahead (waiting, not due).
    async fn enqueue_far_future(&self, n: usize) -> anyhow::Result<()>;

    /// Jobs finished AND acknowledged, as the side's own storage reports it.
    async fn completed(&self) -> anyhow::Result<u64>;
}
