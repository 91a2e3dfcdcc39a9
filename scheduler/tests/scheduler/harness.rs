//! One test's world: a database of its own (migrated), a queue under a prefix of its own,
//! real workers (sandboxes, record) under a temporary directory, a git daemon with
//! repositories. Everything goes when it drops.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gitfleet_client::{Client, EnqueueOptions, JobSpec, JobStatus, QueueConfig};
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::runtime::{RunningWorker, Worker};
use gitfleet_core::sandbox::GitSettings;
use gitfleet_queue::Queue;
use gitfleet_scheduler::{Context, SchedulerConfig};
use gitfleet_store::StoreConfig;
use gitfleet_store::{SandboxRow, Store};
use gitfleet_testkit::postgres::TestDatabase;
use gitfleet_testkit::{GitDaemon, fixtures};
use serde_json::Value;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

pub struct World {
    pub db: TestDatabase,
    pub store: Store,
    pub client: Client,
    pub prefix: String,
    pub tmp: tempfile::TempDir,
    pub workers: Vec<RunningWorker>,
    pub daemon: Option<GitDaemon>,
}

impl World {
    pub async fn new() -> Self {
        let db = TestDatabase::create().expect("test database");
        let store = Store::open(&StoreConfig {
            database_url: Some(db.url.clone()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
        store.migrate().await.expect("migrations");
        let prefix = format!("test-sched-{}:", ulid::Ulid::new());
        let client = Client::connect(QueueConfig {
            redis_url: REDIS_URL.into(),
            key_prefix: prefix.clone(),
            ..Default::default()
        })
        .await
        .expect("redis");
        Self {
            db,
            store,
            client,
            prefix,
            tmp: tempfile::tempdir().unwrap(),
            workers: Vec::new(),
            daemon: None,
        }
    }

    pub fn queue(&self) -> &Queue {
        self.client.queue()
    }

    /// A scheduler context on this world, as replica `test`.
    pub fn ctx(&self, config: SchedulerConfig) -> Context {
        Context {
            store: self.store.clone(),
            queue: self.queue().clone(),
            replica: "test".into(),
            config: SchedulerConfig {
                maintenance_wait: Duration::from_secs(60),
                ..config
            },
        }
    }

    /// A real worker keeping the record in this world's database.
    pub async fn add_worker(&mut self) -> String {
        let settings = GitSettings {
            sandbox_root: Some(self.tmp.path().join("sandboxes")),
            allow_file_protocol: false,
            timeout: Duration::from_secs(60),
            pool_min: 1,
            pool_max: 4,
            credentials: Default::default(),
        };
        let config = WorkerConfig {
            name_stem: "sched".into(),
            concurrency: 8,
            ..Default::default()
        };
        let worker = Worker::new(self.queue().clone(), config, Ops::builtin());
        let sandboxes = settings.sandboxes(worker.id()).await.expect("sandboxes");
        let running = worker
            .with_store(
                self.store.clone(),
                Default::default(),
                Duration::from_millis(200),
            )
            .with_sandboxes(sandboxes)
            .start()
            .await
            .expect("worker");
        let id = running.id().to_string();
        self.workers.push(running);
        id
    }

    /// Serves bare repositories `names` over `git://` on loopback; returns their URLs.
    pub fn repos(&mut self, names: &[&str]) -> Vec<String> {
        let remotes: PathBuf = self.tmp.path().join("remotes");
        std::fs::create_dir_all(&remotes).unwrap();
        for name in names {
            fixtures::bare_repo(&remotes, name, &[("README.md", "# sample\n")]);
        }
        if self.daemon.is_none() {
            self.daemon = Some(GitDaemon::start(&remotes).unwrap());
        }
        let daemon = self.daemon.as_ref().unwrap();
        names.iter().map(|n| daemon.url(n)).collect()
    }

    /// Runs a job (routed as the client routes it) that must succeed; returns its result.
    pub async fn ok(&self, op: &str, args: Value) -> Value {
        let spec = JobSpec::new(op, args);
        let queue = Client::route(&spec);
        let job = self
            .client
            .submit(&queue, &spec, &EnqueueOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{op} refused: {e}"));
        let record = self
            .client
            .wait(&job.job_id, Duration::from_secs(60))
            .await
            .unwrap()
            .expect("job exists");
        assert_eq!(record.status, JobStatus::Done, "{op}: {:?}", record.error);
        record.result.unwrap()
    }

    /// Runs a job and returns its error kind (it must fail).
    pub async fn fails(&self, op: &str, args: Value) -> String {
        let spec = JobSpec::new(op, args);
        let queue = Client::route(&spec);
        let job = self
            .client
            .submit(
                &queue,
                &spec,
                &EnqueueOptions {
                    max_attempts: Some(1),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let record = self
            .client
            .wait(&job.job_id, Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, JobStatus::Dead, "{op} failed");
        record.error.unwrap().kind.to_string()
    }

    /// Clones `url` as agent `agent` and returns the sandbox id.
    pub async fn clone_repo(&self, url: &str, agent: &str) -> String {
        let r = self
            .ok(
                "clone",
                serde_json::json!({"repo_url": url, "agent_id": agent, "task_id": "t", "org_id": "acme"}),
            )
            .await;
        r["sandbox_id"].as_str().unwrap().to_string()
    }

    /// Waits until the registry's row for `id` satisfies `ok`.
    pub async fn row_where(&self, id: &str, ok: impl Fn(&SandboxRow) -> bool) -> SandboxRow {
        for _ in 0..300 {
            if let Some(r) = self.row(id).await
                && ok(&r)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "sandbox {id}: row never got there: {:?}",
            self.row(id).await
        );
    }

    pub async fn row(&self, id: &str) -> Option<SandboxRow> {
        self.store
            .sandboxes(10_000)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.sandbox_id == id)
    }

    /// Sets a row's times as a test wants them (time under the test's control).
    pub async fn set_times(
        &self,
        id: &str,
        last_used: DateTime<Utc>,
        released: Option<DateTime<Utc>>,
    ) {
        sqlx::query("UPDATE git_sandboxes SET last_used_at = $2, terminated_at = COALESCE($3, terminated_at) WHERE sandbox_id = $1")
            .bind(id)
            .bind(last_used)
            .bind(released)
            .execute(self.store.pool())
            .await
            .unwrap();
    }

    pub async fn stop(mut self) {
        for w in std::mem::take(&mut self.workers) {
            w.shutdown().await.unwrap();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        gitfleet_testkit::redis_keys::purge_prefix(REDIS_URL, &self.prefix);
    }
}
