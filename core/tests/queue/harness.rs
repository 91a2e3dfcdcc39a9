//! Shared test plumbing: a queue under a fresh prefix, workers with test ops, waiting on
//! conditions with a deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_core::ops::{Op, Ops, RunContext};
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::runtime::{RunningWorker, Worker};
use gitfleet_queue::Queue;
use gitfleet_queue::QueueConfig;
use serde_json::{Value, json};

pub fn redis_url() -> String {
    std::env::var("GITFLEET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A queue under a prefix of its own; its keys are deleted when the test ends.
pub struct TestQueue {
    pub queue: Queue,
}

impl TestQueue {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(change: impl FnOnce(&mut QueueConfig)) -> Self {
        let mut config = QueueConfig {
            redis_url: redis_url(),
            key_prefix: format!("test-{}:", ulid::Ulid::new()),
            ..Default::default()
        };
        change(&mut config);
        let queue = Queue::connect(config).await.expect("redis is reachable");
        Self { queue }
    }

    pub fn worker_config(&self) -> WorkerConfig {
        WorkerConfig {
            name_stem: "test".into(),
            heartbeat_interval: Duration::from_millis(500),
            dead_after: Duration::from_secs(3),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(400),
            grace_period: Duration::from_secs(5),
            ..Default::default()
        }
    }

    pub async fn start_worker(&self, config: WorkerConfig, ops: Ops) -> RunningWorker {
        Worker::new(self.queue.clone(), config, ops)
            .start()
            .await
            .expect("worker starts")
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        gitfleet_testkit::redis_keys::purge_prefix(&redis_url(), self.queue.keys().prefix());
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts the runs of each job id; its result is `{}`.
#[derive(Clone, Default)]
pub struct Counting {
    pub runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl Op for Counting {
    fn name(&self) -> &'static str {
        "count"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(30)
    }
    fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        *self.runs.lock().unwrap().entry(ctx.job_id).or_default() += 1;
        futures::future::ready(Ok(json!({}))).boxed()
    }
}

/// Fails with `kind` until its `succeed_on`-th run of a job (never, if 0), recording when
/// each run started.
#[derive(Clone)]
pub struct Flaky {
    pub kind: ErrorKind,
    pub succeed_on: u32,
    pub starts: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

impl Flaky {
    pub fn new(kind: ErrorKind, succeed_on: u32) -> Self {
        Self {
            kind,
            succeed_on,
            starts: Default::default(),
        }
    }
}

impl Op for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(30)
    }
    fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let run = {
            let mut starts = self.starts.lock().unwrap();
            let runs = starts.entry(ctx.job_id).or_default();
            runs.push(Instant::now());
            runs.len() as u32
        };
        let result = if self.succeed_on != 0 && run >= self.succeed_on {
            Ok(json!({ "run": run }))
        } else {
            Err(JobError::new(
                self.kind,
                format!("run {run} failed on purpose"),
            ))
        };
        futures::future::ready(result).boxed()
    }
}
