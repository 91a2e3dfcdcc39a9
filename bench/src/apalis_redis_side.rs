//! The bare apalis-redis 1.0.0 side: `RedisStorage` with its DEFAULT
//! `Config` except for the queue name (a unique `gfbench-apalis-<ulid>` per
//! run, so nothing else in Redis is touched), a worker built with
//! `WorkerBuilder` + apalis's concurrency layer, and nothing else tuned.
//!
//! Where apalis-redis 1.0.0 keeps its state (from `lua/*.lua`), for queue `Q`:
//! - `Q:scheduled` (zset) — EVERY pushed task lands here first, scored with
//!   its `run_at` in seconds (`push_tasks` clamps a missing `run_at` to
//!   "now", which is > 0, so `batch_push.lua` always takes the schedule
//!   branch); `fetch_next.lua` moves all due ids to `Q:active` with
//!   `RPUSH ... unpack(ids)` on each fetch.
//! - `Q:active` (list), `Q:inflight:<worker>` (set), `Q:data` (hash),
//!   `Q:meta:<id>` (hash per task), `Q:workers` (zset), `Q:signal` (list),
//!   `Q:workers:metadata:<worker>` (hash).
//! - `Q:done` (set) — `handle_results.lua` SADDs a task id here when the
//!   worker acks it with status `Done`; failed/killed ones go to
//!   `Q:scheduled` (retry) or `Q:dead`. [`Side::completed`] is `SCARD Q:done`.
//! - Outside the namespace: `register_worker.lua` adds `Q:workers` to the
//!   global zset `core:apalis:queues:list`; [`Side::reset`] ZREMs exactly that
//!   member.

use anyhow::Context as _;
use apalis::prelude::{BoxDynError, Data, TaskBuilder, TaskSink, WorkerBuilder, WorkerBuilderExt};
use apalis_redis::{Config, ConnectionManager, RedisStorage};
use gitfleet_queue::purge_prefix;

use crate::latency::{LatencyRecorder, latency_key};
use crate::side::{BenchJob, Side};

/// Name on the command line and in the table.
pub const NAME: &str = "apalis-redis";

/// Global apalis-redis registry of queues (not namespaced by apalis).
const QUEUES_LIST: &str = "core:apalis:queues:list";

/// Jobs per `push_all` call when scheduling far-future jobs.
const FAR_FUTURE_CHUNK: usize = 1000;

/// The apalis-redis side, harness end.
pub struct ApalisRedisSide {
    redis_url: String,
    namespace: String,
    conn: ConnectionManager,
    storage: RedisStorage<BenchJob>,
}

fn storage_for(conn: ConnectionManager, namespace: &str) -> RedisStorage<BenchJob> {
    RedisStorage::new(conn).with_config(Config::default().queue(namespace))
}

impl ApalisRedisSide {
    /// Connect and pick a fresh namespace for this run.
    pub async fn connect(redis_url: &str) -> anyhow::Result<Self> {
        let namespace = format!("gfbench-apalis-{}", ulid::Ulid::new());
        let conn = apalis_redis::connect(redis_url)
            .await
            .context("connecting apalis-redis side to redis")?;
        Ok(Self {
            redis_url: redis_url.to_owned(),
            storage: storage_for(conn.clone(), &namespace),
            namespace,
            conn,
        })
    }
}

impl Side for ApalisRedisSide {
    fn name(&self) -> &'static str {
        NAME
    }

    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn worker_args(&self, concurrency: usize) -> Vec<String> {
        [
            "worker",
            "--side",
            NAME,
            "--concurrency",
            &concurrency.to_string(),
            "--namespace",
            &self.namespace,
            "--redis-url",
            &self.redis_url,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn reset(&self) -> anyhow::Result<()> {
        let mut conn = self.conn.clone();
        purge_prefix(&mut conn, &self.namespace).await?;
        purge_prefix(&mut conn, &latency_key(&self.namespace)).await?;
        redis::cmd("ZREM")
            .arg(QUEUES_LIST)
            .arg(self.storage.get_config().workers_set())
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn enqueue_one(&self, job: &BenchJob) -> anyhow::Result<()> {
        // One `batch_push.lua` EVALSHA per call.
        self.storage.clone().push(*job).await?;
        Ok(())
    }

    async fn enqueue_batch(&self, jobs: &[BenchJob]) -> anyhow::Result<()> {
        // `push_bulk` feeds the Sink; `Persisted` buffers every item and
        // flushes them in ONE `batch_push.lua` call.
        self.storage.clone().push_bulk(jobs.to_vec()).await?;
        Ok(())
    }

    async fn enqueue_far_future(&self, n: usize) -> anyhow::Result<()> {
        let mut storage = self.storage.clone();
        let mut left = n;
        while left > 0 {
            let chunk = left.min(FAR_FUTURE_CHUNK);
            let tasks = (0..chunk).map(|_| {
                TaskBuilder::new(BenchJob::now(false))
                    .run_in_hours(1)
                    .build()
            });
            storage.push_all(futures::stream::iter(tasks)).await?;
            left -= chunk;
        }
        Ok(())
    }

    async fn completed(&self) -> anyhow::Result<u64> {
        let mut conn = self.conn.clone();
        let done: u64 = redis::cmd("SCARD")
            .arg(self.storage.get_config().done_jobs_set())
            .query_async(&mut conn)
            .await?;
        Ok(done)
    }
}

/// Worker-process end: run one bare apalis-redis worker until killed.
pub async fn run_worker(
    redis_url: &str,
    namespace: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let conn = apalis_redis::connect(redis_url)
        .await
        .context("connecting apalis-redis worker to redis")?;
    let recorder = LatencyRecorder::connect(redis_url, namespace).await?;
    let worker = WorkerBuilder::new(format!("gfbench-worker-{}", ulid::Ulid::new()))
        .backend(storage_for(conn, namespace))
        .data(recorder)
        .concurrency(concurrency)
        .build(handle);
    worker
        .run()
        .await
        .map_err(|e| anyhow::anyhow!("apalis worker stopped: {e}"))
}

async fn handle(job: BenchJob, recorder: Data<LatencyRecorder>) -> Result<(), BoxDynError> {
    recorder.observe(&job).await?;
    Ok(())
}
