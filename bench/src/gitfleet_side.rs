//! The gitfleet side: our own queue layer (`gitfleet_core::queue`) and worker runtime
//! (`gitfleet_core::runtime`, apalis workers fed by our Redis backend), with default
//! settings except for the key prefix (a unique `gfbench-gitfleet-<ulid>:` per run) and the
//! concurrency under test. Jobs are a `bench` op whose args are the [`BenchJob`].

use std::time::Duration;

use anyhow::Context as _;
use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::{JobError, JobSpec};
use gitfleet_core::ops::{Op, Ops, RunContext};
use gitfleet_core::runtime::Worker;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_queue::QueueConfig;
use gitfleet_queue::{EnqueueOptions, Queue, purge_prefix};
use serde_json::{Value, json};

use crate::latency::{LatencyRecorder, latency_key};
use crate::side::{BenchJob, Side};

/// Name on the command line and in the table.
pub const NAME: &str = "gitfleet";

const QUEUE: &str = "jobs";

/// The gitfleet side, harness end.
pub struct GitfleetSide {
    redis_url: String,
    namespace: String,
    queue: Queue,
}

async fn queue_for(redis_url: &str, namespace: &str) -> anyhow::Result<Queue> {
    Queue::connect(QueueConfig {
        redis_url: redis_url.to_owned(),
        key_prefix: format!("{namespace}:"),
        ..Default::default()
    })
    .await
    .context("connecting the gitfleet side to redis")
}

fn spec(job: &BenchJob) -> JobSpec {
    JobSpec::new("bench", json!(job))
}

impl GitfleetSide {
    /// Connect and pick a fresh namespace for this run.
    pub async fn connect(redis_url: &str) -> anyhow::Result<Self> {
        let namespace = format!("gfbench-gitfleet-{}", ulid::Ulid::new());
        Ok(Self {
            redis_url: redis_url.to_owned(),
            queue: queue_for(redis_url, &namespace).await?,
            namespace,
        })
    }
}

impl Side for GitfleetSide {
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
        self.queue.purge_prefix().await?;
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut conn = client.get_connection_manager().await?;
        purge_prefix(&mut conn, &latency_key(&self.namespace)).await?;
        Ok(())
    }

    async fn enqueue_one(&self, job: &BenchJob) -> anyhow::Result<()> {
        self.queue
            .enqueue(QUEUE, &spec(job), &EnqueueOptions::default())
            .await?;
        Ok(())
    }

    async fn enqueue_batch(&self, jobs: &[BenchJob]) -> anyhow::Result<()> {
        let specs: Vec<JobSpec> = jobs.iter().map(spec).collect();
        for r in self
            .queue
            .enqueue_many(QUEUE, &specs, &EnqueueOptions::default())
            .await?
        {
            r?;
        }
        Ok(())
    }

    async fn enqueue_far_future(&self, n: usize) -> anyhow::Result<()> {
        let specs = vec![spec(&BenchJob::now(false)); n];
        let later = EnqueueOptions {
            delay: Some(Duration::from_secs(3600)),
            ..Default::default()
        };
        for r in self.queue.enqueue_many(QUEUE, &specs, &later).await? {
            r?;
        }
        Ok(())
    }

    async fn completed(&self) -> anyhow::Result<u64> {
        let stats = self.queue.stats().await?;
        Ok(stats
            .iter()
            .find(|s| s.queue == QUEUE)
            .map(|s| s.done)
            .unwrap_or(0))
    }
}

/// The `bench` op: records its pickup latency when asked to, otherwise does nothing.
struct BenchOp {
    recorder: LatencyRecorder,
}

impl Op for BenchOp {
    fn name(&self) -> &'static str {
        "bench"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        serde_json::from_value::<BenchJob>(args.clone())
            .map(|_| ())
            .map_err(|e| JobError::invalid_input(format!("args: {e}")))
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(30)
    }

    fn run(&self, args: Value, _: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let recorder = self.recorder.clone();
        async move {
            let job: BenchJob = serde_json::from_value(args)
                .map_err(|e| JobError::invalid_input(format!("args: {e}")))?;
            recorder
                .observe(&job)
                .await
                .map_err(|e| JobError::internal(e.to_string()))?;
            Ok(Value::Null)
        }
        .boxed()
    }
}

/// Worker-process end: one gitfleet worker until killed.
pub async fn run_worker(
    redis_url: &str,
    namespace: &str,
    concurrency: usize,
) -> anyhow::Result<()> {
    let queue = queue_for(redis_url, namespace).await?;
    let recorder = LatencyRecorder::connect(redis_url, namespace).await?;
    let config = WorkerConfig {
        concurrency,
        name_stem: "gfbench".into(),
        ..Default::default()
    };
    let worker = Worker::new(queue, config, Ops::builtin().with(BenchOp { recorder }));
    worker.run(std::future::pending()).await?;
    Ok(())
}
