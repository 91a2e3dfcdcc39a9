//! The fleet under measurement, all in this process: a `git daemon` on loopback serving a
//! temporary directory, a queue under a key prefix of its own, and workers (gitfleet_core's
//! `Worker` with sandboxes under the same temporary directory), as the gitops tests start
//! them. [`Fleet::stop`] shuts the workers down and deletes the prefix's keys; if it is
//! never reached (a panic), `Drop` still deletes the keys (testkit's `purge_prefix`), and the daemon and the temporary
//! directory go with their own `Drop`s.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gitfleet_client::{Client, EnqueueOptions, JobRecord, JobSpec, JobStatus, QueueConfig};
use gitfleet_contract::Credentials;
use gitfleet_core::git::{EgressConfig, JailMode};
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::runtime::{RunningWorker, Worker};
use gitfleet_core::sandbox::GitSettings;
use gitfleet_testkit::GitDaemon;
use serde_json::Value;

/// How long one worker may take to shut down.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(60);

/// One finished job and the time from just before its enqueue to its result.
#[derive(Debug, Clone)]
pub struct Timed {
    pub record: JobRecord,
    pub ms: f64,
}

impl Timed {
    /// Time the job spent running in the worker (`finished_at - started_at`), in ms.
    pub fn run_ms(&self) -> f64 {
        match (self.record.started_at, self.record.finished_at) {
            (Some(s), Some(f)) => f
                .signed_duration_since(s)
                .num_microseconds()
                .map_or(f64::NAN, |us| us as f64 / 1000.0),
            _ => f64::NAN,
        }
    }
}

/// How the workers run.
#[derive(Debug, Clone, Copy)]
pub struct FleetShape {
    pub workers: usize,
    pub concurrency: usize,
}

pub struct Fleet {
    pub client: Client,
    pub worker_ids: Vec<String>,
    /// Whether the workers' git runs in the bubblewrap jail.
    pub jailed: bool,
    jail: JailMode,
    workers: Vec<RunningWorker>,
    prefix: String,
    redis_url: String,
    cleaned: bool,
    /// Declared before `tmp`: dropped (killed) before the directory it serves goes.
    daemon: GitDaemon,
    tmp: tempfile::TempDir,
}

impl Fleet {
    /// Starts the daemon, connects and starts the workers. On failure, whatever was started
    /// is stopped again.
    pub async fn start(redis_url: &str, shape: FleetShape, jail: JailMode) -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("git-bench-")
            .tempdir()
            .context("creating the temporary directory")?;
        let served = tmp.path().join("served");
        std::fs::create_dir_all(&served)?;
        let daemon = GitDaemon::start(&served).context("starting git daemon")?;
        let prefix = format!("git-bench-{}:", ulid::Ulid::new());
        let client = Client::connect(QueueConfig {
            redis_url: redis_url.to_string(),
            key_prefix: prefix.clone(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("connecting to Redis at {redis_url}"))?;
        let mut fleet = Self {
            client,
            worker_ids: Vec::new(),
            jailed: false,
            jail,
            workers: Vec::new(),
            prefix,
            redis_url: redis_url.to_string(),
            cleaned: false,
            daemon,
            tmp,
        };
        for _ in 0..shape.workers {
            if let Err(e) = fleet.add_worker(shape.concurrency).await {
                fleet.stop().await;
                return Err(e);
            }
        }
        Ok(fleet)
    }

    async fn add_worker(&mut self, concurrency: usize) -> anyhow::Result<()> {
        let settings = GitSettings {
            sandbox_root: Some(self.tmp.path().join("sandboxes")),
            allow_file_protocol: false,
            timeout: Duration::from_secs(300),
            pool_min: 2,
            pool_max: 16,
            credentials: Credentials::default(),
            limits: Default::default(),
            jail: self.jail,
            // The daemon on loopback, as the tests allow it.
            egress: EgressConfig::allowing("127.0.0.1"),
        };
        let config = WorkerConfig {
            name_stem: "git-bench".into(),
            concurrency,
            own_queue_concurrency: concurrency,
            ..Default::default()
        };
        let worker = Worker::new(self.client.queue().clone(), config, Ops::builtin())
            .with_git(&settings)
            .await
            .context("setting up a worker's sandboxes")?;
        self.jailed = worker.git_jailed();
        let running = worker.start().await.context("starting a worker")?;
        self.worker_ids.push(running.id().to_string());
        self.workers.push(running);
        Ok(())
    }

    /// The directory the daemon serves.
    pub fn served(&self) -> PathBuf {
        self.daemon.root().to_path_buf()
    }

    /// A scratch directory inside the fleet's temporary directory.
    pub fn scratch(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// `git://127.0.0.1:<port>/<name>`.
    pub fn url(&self, name: &str) -> String {
        self.daemon.url(name)
    }

    /// The key prefix of this run's queue.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A Redis connection of its own.
    pub async fn redis(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        Ok(redis::Client::open(self.redis_url.as_str())?
            .get_connection_manager()
            .await?)
    }

    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Enqueues a job where the client routes it; returns its id.
    pub async fn submit(&self, spec: &JobSpec) -> anyhow::Result<String> {
        let queue = Client::route(spec);
        let job = self
            .client
            .submit(&queue, spec, &EnqueueOptions::default())
            .await
            .with_context(|| format!("{} refused", spec.op))?;
        Ok(job.job_id)
    }

    /// Waits (bounded) for job `id` to be done or dead.
    pub async fn wait(&self, id: &str, bound: Duration) -> anyhow::Result<JobRecord> {
        let record = self
            .client
            .wait(id, bound)
            .await?
            .with_context(|| format!("job {id} vanished"))?;
        if !record.status.is_final() {
            bail!(
                "{} job {id} not finished within {bound:?} (status {})",
                record.op,
                record.status
            );
        }
        Ok(record)
    }

    /// Submits a job, waits for it, and times enqueue → result.
    pub async fn run(&self, op: &str, args: Value, bound: Duration) -> anyhow::Result<Timed> {
        let spec = JobSpec::new(op, args);
        let started = Instant::now();
        let id = self.submit(&spec).await?;
        let record = self.wait(&id, bound).await?;
        Ok(Timed {
            record,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// [`Fleet::run`] of a job that must succeed; returns its result too.
    pub async fn ok(
        &self,
        op: &str,
        args: Value,
        bound: Duration,
    ) -> anyhow::Result<(Value, Timed)> {
        let timed = self.run(op, args, bound).await?;
        if timed.record.status != JobStatus::Done {
            bail!(
                "{op} job {} failed: {:?}",
                timed.record.job_id,
                timed.record.error
            );
        }
        Ok((timed.record.result.clone().unwrap_or(Value::Null), timed))
    }

    /// Shuts the workers down (bounded) and deletes every key under the prefix. Never fails:
    /// problems are printed.
    pub async fn stop(&mut self) {
        for worker in std::mem::take(&mut self.workers) {
            let id = worker.id().to_string();
            match tokio::time::timeout(SHUTDOWN_BOUND, worker.shutdown()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => eprintln!("git-bench: worker {id} stopped with an error: {e}"),
                Err(_) => {
                    eprintln!("git-bench: worker {id} did not stop within {SHUTDOWN_BOUND:?}")
                }
            }
        }
        let removed = async {
            let mut conn = redis::Client::open(self.redis_url.as_str())?
                .get_connection_manager()
                .await?;
            anyhow::Ok(gitfleet_queue::purge_prefix(&mut conn, &self.prefix).await?)
        };
        match tokio::time::timeout(Duration::from_secs(30), removed).await {
            Ok(Ok(_)) => self.cleaned = true,
            Ok(Err(e)) => eprintln!("git-bench: could not delete keys {}*: {e:#}", self.prefix),
            Err(_) => eprintln!("git-bench: deleting keys {}* timed out", self.prefix),
        }
    }
}

impl Drop for Fleet {
    /// The last resort (a panic skipped [`Fleet::stop`]): delete the keys synchronously.
    fn drop(&mut self) {
        if !self.cleaned {
            gitfleet_testkit::redis_keys::purge_prefix(&self.redis_url, &self.prefix);
        }
    }
}
