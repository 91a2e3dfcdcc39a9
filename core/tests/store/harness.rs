//! A queue under a fresh prefix, a store on a fresh database, workers that keep the record,
//! and waiting on conditions with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::{JobError, JobRecord};
use gitfleet_core::ops::{Op, Ops, RunContext};
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::runtime::{RunningWorker, Worker};
use gitfleet_queue::Queue;
use gitfleet_queue::QueueConfig;
use gitfleet_store::Store;
use gitfleet_store::StoreConfig;
use gitfleet_store::writer::WriterConfig;
use gitfleet_testkit::postgres::TestDatabase;
use serde_json::{Value, json};

pub fn redis_url() -> String {
    std::env::var("GITFLEET_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A Redis prefix of its own (deleted afterwards).
pub struct TestQueue {
    pub queue: Queue,
    prefix: String,
}

impl TestQueue {
    pub async fn new() -> Self {
        let prefix = format!("test-store-{}:", ulid::Ulid::new());
        let queue = Queue::connect(QueueConfig {
            redis_url: redis_url(),
            key_prefix: prefix.clone(),
            ..Default::default()
        })
        .await
        .expect("redis is reachable");
        Self { queue, prefix }
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        gitfleet_testkit::redis_keys::purge_prefix(&redis_url(), &self.prefix);
    }
}

pub fn store_on(url: &str) -> Store {
    let config = StoreConfig {
        database_url: Some(url.to_string()),
        budget_refresh: Duration::from_millis(100),
        ..Default::default()
    };
    Store::open(&config).unwrap().expect("a store")
}

/// A database of its own, migrated.
pub async fn test_store() -> (TestDatabase, Store) {
    let db = TestDatabase::create().expect("postgres is reachable");
    let store = store_on(&db.url);
    store.migrate().await.expect("migrations apply");
    (db, store)
}

pub fn worker_config() -> WorkerConfig {
    WorkerConfig {
        name_stem: "store-test".into(),
        heartbeat_interval: Duration::from_millis(500),
        dead_after: Duration::from_secs(3),
        retry_base: Duration::from_millis(50),
        retry_max: Duration::from_millis(200),
        grace_period: Duration::from_secs(5),
        ..Default::default()
    }
}

pub fn writer_config(spool: Option<&std::path::Path>) -> WriterConfig {
    WriterConfig {
        spool_dir: spool.map(Into::into),
        flush_timeout: Duration::from_secs(1),
        beat_every: Duration::from_millis(500),
        ..Default::default()
    }
}

/// Fails (retryably, `internal`) while the run is at most `fail_times`, with `message` if
/// given; then returns `{"attempt": n}`.
pub struct Flaky;

impl Op for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(10)
    }
    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let fail_times = args["fail_times"].as_u64().unwrap_or(0) as u32;
            if ctx.attempt <= fail_times {
                let message = args["message"].as_str().unwrap_or("flaky failure");
                return Err(JobError::internal(format!(
                    "{message} (run {})",
                    ctx.attempt
                )));
            }
            Ok(json!({"attempt": ctx.attempt}))
        }
        .boxed()
    }
}

pub fn ops() -> Ops {
    Ops::builtin().with(Flaky)
}

pub async fn start_worker(
    q: &TestQueue,
    store: &Store,
    spool: Option<&std::path::Path>,
) -> RunningWorker {
    Worker::new(q.queue.clone(), worker_config(), ops())
        .with_store(
            store.clone(),
            writer_config(spool),
            Duration::from_millis(100),
        )
        .start()
        .await
        .expect("worker starts")
}

/// Waits for a job to be done or dead in Redis.
pub async fn wait_final(q: &TestQueue, id: &str) -> JobRecord {
    let r = q
        .queue
        .wait(id, Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the job exists");
    assert!(r.status.is_final(), "job {id} did not finish: {r:?}");
    r
}

/// Polls `check` until it returns `Some`, or panics with `what` after `limit`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
