//! A fleet for one test: in-process workers on a [`TestQueue`] of their own, with or
//! without the durable record (a [`TestStore`], or a store the test made), with or without
//! git (sandboxes under the fleet's temporary directory), with the builtin ops or the
//! test's own. The zero-to-production `spawn_app()` shape: one call sets up the world, and
//! dropping it takes the world down again.
//!
//! Teardown, in order: the workers stop (gracefully with [`Fleet::shutdown`]; on drop as
//! well as a drop can, see [`Fleet`]'s `Drop`), then the prefix is purged, the database
//! dropped and the temporary directory (sandboxes, remotes) removed. Stopping first matters:
//! a worker still running would write keys back after the purge.
//!
//! ```no_run
//! # async fn demo() {
//! use gitfleet_testkit::Fleet;
//!
//! let mut fleet = Fleet::builder("docs").workers(2).git().store().start().await;
//! let result = fleet.ok("echo", serde_json::json!({"hi": 1})).await;
//! assert_eq!(result["hi"], 1);
//! fleet.shutdown().await;
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt;
use gitfleet_client::{Client, EnqueueOptions, Enqueued, JobRecord, JobSpec, JobStatus};
use gitfleet_core::git::{EgressConfig, JailMode};
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::{RunningWorker, ShutdownReport, Worker, WorkerConfig};
use gitfleet_core::sandbox::GitSettings;
use gitfleet_queue::{Queue, QueueConfig};
use gitfleet_store::Store;
use gitfleet_store::writer::WriterConfig;
use serde_json::Value;

use crate::queue::TestQueue;
use crate::store::TestStore;

/// The longest a dropped fleet waits for its workers to stop (past the 25 s default grace
/// period of a worker with jobs still in flight).
const DROP_WAIT: Duration = Duration::from_secs(30);

/// How the fleet makes a worker. [`Fleet::setup`] gives the fleet's own; change a copy and
/// pass it to [`Fleet::add_worker_with`] for a worker made differently.
#[derive(Clone)]
pub struct WorkerSetup {
    /// Default: the runtime's defaults, the fleet's `what` as the name stem.
    pub config: WorkerConfig,
    /// Default: [`Ops::builtin`].
    pub ops: Ops,
    /// Git and sandboxes, if the worker runs git ops; a `sandbox_root` of `None` means
    /// `<fleet tmp>/sandboxes` (each worker under `<root>/<worker id>`). Default: none.
    pub git: Option<GitSettings>,
    /// How the worker writes the record, when the fleet has a store. Default: the writer's
    /// defaults.
    pub writer: WriterConfig,
    /// How often the worker re-reads the organizations over budget, when the fleet has a
    /// store. Default: 100 ms, so budget changes show at once.
    pub budget_refresh: Duration,
}

/// Git as the tests use it: sandboxes under the fleet's temporary directory, no `file://`
/// remotes (the servers of [`crate::GitDaemon`] and [`crate::HttpGitServer`] are real
/// remotes), a minute per git process, a small warm pool, no credentials, the default
/// sandbox limits, and the egress allowance of [`test_egress`].
pub fn test_git_settings() -> GitSettings {
    GitSettings {
        sandbox_root: None,
        allow_file_protocol: false,
        timeout: Duration::from_secs(60),
        pool_min: 1,
        pool_max: 4,
        credentials: Default::default(),
        limits: Default::default(),
        // Jailed where bubblewrap works, as a worker is by default: every op is tested
        // jailed (CI installs bubblewrap).
        jail: JailMode::Auto,
        egress: test_egress(),
    }
}

/// The one egress allowance tests need: `127.0.0.1`, where every testkit server listens
/// (`GITFLEET_GIT_ALLOW_HOSTS=127.0.0.1` for a worker process). Nothing else internal:
/// not `localhost`, not `::1`, not the rest of 127.0.0.0/8, so a test can still show those
/// refused. A test of the default policy sets `EgressConfig::default()`.
pub fn test_egress() -> EgressConfig {
    EgressConfig::allowing(TEST_ALLOW_HOSTS)
}

/// [`test_egress`] as a `GITFLEET_GIT_ALLOW_HOSTS` value, for worker processes.
pub const TEST_ALLOW_HOSTS: &str = "127.0.0.1";

enum StoreChoice {
    None,
    Fresh,
    Given(Box<Store>),
}

/// A change to the queue's configuration, made before it connects.
type QueueChange = Box<dyn FnOnce(&mut QueueConfig)>;

/// Builds a [`Fleet`]; from [`Fleet::builder`].
pub struct FleetBuilder {
    what: String,
    queue_change: QueueChange,
    setup: WorkerSetup,
    store: StoreChoice,
    workers: usize,
    wait_limit: Duration,
}

impl FleetBuilder {
    /// Starts `n` workers (default 0: the test adds them with [`Fleet::add_worker`]).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Every worker's configuration.
    pub fn config(mut self, config: WorkerConfig) -> Self {
        self.setup.config = config;
        self
    }

    /// The ops every worker serves (a test's own ops registered beside the builtin ones).
    pub fn ops(mut self, ops: Ops) -> Self {
        self.setup.ops = ops;
        self
    }

    /// Workers run git ops, with [`test_git_settings`].
    pub fn git(self) -> Self {
        self.git_with(|_| {})
    }

    /// Workers run git ops, with [`test_git_settings`] changed by `change` (credentials,
    /// limits).
    pub fn git_with(mut self, change: impl FnOnce(&mut GitSettings)) -> Self {
        let mut settings = test_git_settings();
        change(&mut settings);
        self.setup.git = Some(settings);
        self
    }

    /// Workers keep the record in a database of the fleet's own ([`TestStore`]), dropped
    /// with the fleet.
    pub fn store(mut self) -> Self {
        self.store = StoreChoice::Fresh;
        self
    }

    /// Workers keep the record in `store`, which the test made (a private server it stops
    /// and starts, a database it migrates itself) and cleans up.
    pub fn store_on(mut self, store: Store) -> Self {
        self.store = StoreChoice::Given(Box::new(store));
        self
    }

    /// How each worker's record writer buffers and flushes (a spool directory, fast beats).
    pub fn writer(mut self, writer: WriterConfig) -> Self {
        self.setup.writer = writer;
        self
    }

    /// How often each worker re-reads the organizations over budget.
    pub fn budget_refresh(mut self, every: Duration) -> Self {
        self.setup.budget_refresh = every;
        self
    }

    /// Changes the queue's configuration (limits, another Redis) before it connects.
    pub fn queue_config(mut self, change: impl FnOnce(&mut QueueConfig) + 'static) -> Self {
        self.queue_change = Box::new(change);
        self
    }

    /// How long [`Fleet::run`] waits for a job to finish (default 90 s).
    pub fn wait_limit(mut self, limit: Duration) -> Self {
        self.wait_limit = limit;
        self
    }

    pub async fn start(self) -> Fleet {
        let queue = TestQueue::with_config(&self.what, self.queue_change).await;
        let client = Client::connect(queue.config().clone())
            .await
            .expect("the client reaches Redis");
        let (store, test_store) = match self.store {
            StoreChoice::None => (None, None),
            StoreChoice::Fresh => {
                let t = TestStore::new().await;
                (Some(t.store.clone()), Some(t))
            }
            StoreChoice::Given(store) => (Some(*store), None),
        };
        let mut fleet = Fleet {
            workers: Vec::new(),
            client,
            queue,
            store,
            test_store,
            setup: self.setup,
            wait_limit: self.wait_limit,
            tmp: tempfile::Builder::new()
                .prefix("gitfleet-fleet-")
                .tempdir()
                .expect("a temporary directory"),
        };
        for _ in 0..self.workers {
            fleet.add_worker().await;
        }
        fleet
    }
}

/// A queue under a prefix of its own, a client on it, an optional store, a temporary
/// directory, and the workers started on them. See the module docs for the teardown.
pub struct Fleet {
    // Drop order matters: `Drop::drop` stops the workers, then the fields go in this order
    // (the prefix purged before the database and the directory are).
    workers: Vec<RunningWorker>,
    client: Client,
    queue: TestQueue,
    store: Option<Store>,
    test_store: Option<TestStore>,
    setup: WorkerSetup,
    wait_limit: Duration,
    tmp: tempfile::TempDir,
}

impl Fleet {
    /// A fleet whose prefix is `test-<what>-<ulid>:` and whose workers are named `<what>`.
    pub fn builder(what: &str) -> FleetBuilder {
        FleetBuilder {
            what: what.to_string(),
            queue_change: Box::new(|_| {}),
            setup: WorkerSetup {
                config: WorkerConfig {
                    name_stem: what.to_string(),
                    ..Default::default()
                },
                ops: Ops::builtin(),
                git: None,
                writer: WriterConfig::default(),
                budget_refresh: Duration::from_millis(100),
            },
            store: StoreChoice::None,
            workers: 0,
            wait_limit: Duration::from_secs(90),
        }
    }

    /// The fleet's queue.
    pub fn queue(&self) -> &Queue {
        &self.queue.queue
    }

    /// The fleet's queue with its prefix and configuration.
    pub fn test_queue(&self) -> &TestQueue {
        &self.queue
    }

    pub fn prefix(&self) -> &str {
        self.queue.prefix()
    }

    /// A producer's client on the fleet's queue (without the record; add it with
    /// [`Client::with_store`] where a test wants it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The record the workers keep. Panics if the fleet has none.
    pub fn store(&self) -> &Store {
        self.store.as_ref().expect("a fleet built with a store")
    }

    /// The URL of the fleet's own database. Panics unless the fleet made one
    /// ([`FleetBuilder::store`]).
    pub fn database_url(&self) -> &str {
        self.test_store
            .as_ref()
            .expect("a fleet built with a store of its own")
            .url()
    }

    /// The fleet's temporary directory, removed with it.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Where the workers' sandboxes live, unless their settings name another root: each
    /// worker's under `<root>/<worker id>`.
    pub fn sandbox_root(&self) -> PathBuf {
        self.tmp.path().join("sandboxes")
    }

    /// A directory for the remote repositories a test serves (created on first use).
    pub fn remotes(&self) -> PathBuf {
        let dir = self.tmp.path().join("remotes");
        std::fs::create_dir_all(&dir).expect("create the remotes directory");
        dir
    }

    /// How the fleet makes workers: change a copy for [`Fleet::add_worker_with`].
    pub fn setup(&self) -> WorkerSetup {
        self.setup.clone()
    }

    /// Starts one more worker as the fleet makes them; returns its id.
    pub async fn add_worker(&mut self) -> String {
        self.add_worker_with(self.setup()).await
    }

    /// Starts one more worker made as `setup` says; returns its id.
    pub async fn add_worker_with(&mut self, setup: WorkerSetup) -> String {
        let mut worker = Worker::new(self.queue.queue.clone(), setup.config, setup.ops);
        if let Some(mut git) = setup.git {
            git.sandbox_root.get_or_insert_with(|| self.sandbox_root());
            worker = worker
                .with_git(&git)
                .await
                .unwrap_or_else(|e| panic!("the worker's sandboxes: {e}"));
        }
        if let Some(store) = &self.store {
            worker = worker.with_store(store.clone(), setup.writer, setup.budget_refresh);
        }
        let running = worker
            .start()
            .await
            .unwrap_or_else(|e| panic!("the worker starts: {e}"));
        let id = running.id().to_string();
        self.workers.push(running);
        id
    }

    /// The ids of the workers running, in the order they started.
    pub fn worker_ids(&self) -> Vec<&str> {
        self.workers.iter().map(RunningWorker::id).collect()
    }

    /// Stops worker `id` gracefully and returns what it did on its way out. Panics if the
    /// fleet runs no such worker or it did not stop cleanly.
    pub async fn stop_worker(&mut self, id: &str) -> ShutdownReport {
        let at = self
            .workers
            .iter()
            .position(|w| w.id() == id)
            .unwrap_or_else(|| panic!("no running worker {id} in the fleet"));
        self.workers
            .remove(at)
            .shutdown()
            .await
            .unwrap_or_else(|e| panic!("worker {id} stops cleanly: {e}"))
    }

    /// Stops every worker gracefully (in the order they started) and returns their
    /// reports. The queue, the store and the directory stay until the fleet drops, so a
    /// test can look at what the workers left behind.
    pub async fn shutdown(&mut self) -> Vec<ShutdownReport> {
        let mut reports = Vec::new();
        for w in std::mem::take(&mut self.workers) {
            let id = w.id().to_string();
            reports.push(
                w.shutdown()
                    .await
                    .unwrap_or_else(|e| panic!("worker {id} stops cleanly: {e}")),
            );
        }
        reports
    }

    /// Submits a job through the client (to the queue the client routes it to) and
    /// returns what the queue answered. Panics if it is refused.
    pub async fn submit(&self, op: &str, args: Value, options: &EnqueueOptions) -> Enqueued {
        let spec = JobSpec::new(op, args);
        self.client
            .submit(&Client::route(&spec), &spec, options)
            .await
            .unwrap_or_else(|e| panic!("{op} refused: {e}"))
    }

    /// Submits a job and waits for it to finish (done or dead); returns its record.
    pub async fn run(&self, op: &str, args: Value) -> JobRecord {
        self.run_with(op, args, &EnqueueOptions::default()).await
    }

    /// [`Fleet::run`], with `options` (attempts, delay, idempotency key).
    pub async fn run_with(&self, op: &str, args: Value, options: &EnqueueOptions) -> JobRecord {
        let job = self.submit(op, args, options).await;
        let record = self
            .client
            .wait(&job.job_id, self.wait_limit)
            .await
            .unwrap_or_else(|e| panic!("waiting for {op}: {e}"))
            .expect("the job exists");
        assert!(
            record.status.is_final(),
            "{op} finished in time: {record:?}"
        );
        record
    }

    /// Options that enqueue a job for organization `org` (the envelope's; the fleet's
    /// client is a trusted producer that names each job's organization, as the gateway does).
    pub fn for_org(org: &str) -> EnqueueOptions {
        EnqueueOptions {
            org: Some(org.to_string()),
            ..Default::default()
        }
    }

    /// [`Fleet::run`] for organization `org`.
    pub async fn run_as(&self, org: &str, op: &str, args: Value) -> JobRecord {
        self.run_with(op, args, &Self::for_org(org)).await
    }

    /// [`Fleet::ok`] for organization `org`.
    pub async fn ok_as(&self, org: &str, op: &str, args: Value) -> Value {
        let record = self.run_as(org, op, args).await;
        assert_eq!(
            record.status,
            JobStatus::Done,
            "{op} for {org} failed: {:?}",
            record.error
        );
        record.result.expect("a done job has a result")
    }

    /// Runs a job that must succeed; returns its result.
    pub async fn ok(&self, op: &str, args: Value) -> Value {
        let record = self.run(op, args).await;
        assert_eq!(
            record.status,
            JobStatus::Done,
            "{op} failed: {:?}",
            record.error
        );
        record.result.expect("a done job has a result")
    }
}

impl Drop for Fleet {
    /// A test that failed (or did not call [`Fleet::shutdown`]) still has its workers
    /// stopped before the prefix is purged. On a multi-thread runtime this waits for their
    /// graceful shutdown (up to 30 s). A current-thread runtime cannot run them
    /// while its one thread is here, so each is only told to stop; its tasks are not polled
    /// again once the test's body returns, so nothing writes after the purge.
    fn drop(&mut self) {
        let workers = std::mem::take(&mut self.workers);
        if workers.is_empty() {
            return;
        }
        let stops = futures::future::join_all(workers.into_iter().map(RunningWorker::shutdown));
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(|| {
                    handle.block_on(async {
                        let _ = tokio::time::timeout(DROP_WAIT, stops).await;
                    })
                });
            }
            // The first poll of each shutdown cancels the worker's stop token.
            _ => drop(stops.now_or_never()),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;
    use gitfleet_client::JobError;
    use gitfleet_core::ops::{Op, RunContext};
    use serde_json::json;

    use super::*;
    use crate::eventually;
    use crate::queue::tests::keys_under;
    use crate::{GitDaemon, fixtures};

    /// Answers with the id of the worker that ran it.
    struct WhoRan;

    impl Op for WhoRan {
        fn name(&self) -> &'static str {
            "who_ran"
        }
        fn validate(&self, _: &Value) -> Result<(), JobError> {
            Ok(())
        }
        fn timeout(&self, _: &Value) -> Duration {
            Duration::from_secs(10)
        }
        fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
            futures::future::ready(Ok(json!({ "worker": ctx.worker_id }))).boxed()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fleet_runs_jobs_on_its_workers_and_leaves_no_key_once_shut_down_and_dropped() {
        let mut fleet = Fleet::builder("testkit").workers(2).start().await;
        let ids: Vec<String> = fleet.worker_ids().iter().map(|s| s.to_string()).collect();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids.iter().all(|id| id.starts_with("testkit-")), "{ids:?}");
        for id in &ids {
            assert!(fleet.queue().is_worker_alive(id).await.unwrap(), "{id}");
        }
        assert_eq!(fleet.ok("echo", json!({"n": 1})).await, json!({"n": 1}));

        let reports = fleet.shutdown().await;
        assert_eq!(reports.len(), 2);
        assert!(reports.iter().all(|r| r.drained), "{reports:?}");
        assert!(fleet.worker_ids().is_empty());
        for id in &ids {
            assert!(!fleet.queue().is_worker_alive(id).await.unwrap(), "{id}");
        }
        let (url, prefix) = (
            fleet.test_queue().config().redis_url.clone(),
            fleet.prefix().to_string(),
        );
        assert!(!keys_under(&url, &prefix).is_empty(), "the job's keys");
        drop(fleet);
        assert_eq!(keys_under(&url, &prefix), Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_fleet_stops_its_workers_before_its_prefix_is_purged() {
        let fleet = Fleet::builder("testkit")
            .config(WorkerConfig {
                name_stem: "testkit".into(),
                heartbeat_interval: Duration::from_millis(100),
                ..Default::default()
            })
            .workers(1)
            .start()
            .await;
        // A job in flight when the fleet drops: the worker finishes it on its way out.
        let job = fleet
            .submit("sleep", json!({"ms": 300}), &EnqueueOptions::default())
            .await;
        let queue = fleet.queue().clone();
        eventually("the job to start", Duration::from_secs(10), async || {
            queue.job(&job.job_id).await.unwrap().map(|r| r.status) == Some(JobStatus::Running)
        })
        .await;
        let (url, prefix) = (
            fleet.test_queue().config().redis_url.clone(),
            fleet.prefix().to_string(),
        );
        drop(fleet);
        assert_eq!(keys_under(&url, &prefix), Vec::<String>::new());
        // A worker still running would have beaten (every 100 ms) and written keys again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(keys_under(&url, &prefix), Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_made_from_their_own_setup_serve_the_tests_ops_and_stop_one_by_one() {
        let mut fleet = Fleet::builder("testkit").start().await;
        assert!(fleet.worker_ids().is_empty(), "no workers unless asked");
        let plain = fleet.add_worker().await;
        let mut setup = fleet.setup();
        setup.ops = Ops::builtin().with(WhoRan);
        setup.config.queues = vec!["special".into()];
        let special = fleet.add_worker_with(setup).await;
        assert_eq!(fleet.worker_ids(), [plain.as_str(), special.as_str()]);

        let job = fleet
            .queue()
            .enqueue(
                "special",
                &JobSpec::new("who_ran", json!({})),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap();
        let record = fleet
            .queue()
            .wait(&job.job_id, Duration::from_secs(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.status, JobStatus::Done, "{record:?}");
        assert_eq!(record.result, Some(json!({ "worker": special })));

        let report = fleet.stop_worker(&plain).await;
        assert!(report.drained, "{report:?}");
        assert_eq!(fleet.worker_ids(), [special.as_str()]);
        assert!(!fleet.queue().is_worker_alive(&plain).await.unwrap());
        assert!(fleet.queue().is_worker_alive(&special).await.unwrap());
        fleet.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fleet_with_git_and_a_store_clones_into_its_own_directory_records_it_and_leaves_nothing()
     {
        let mut fleet = Fleet::builder("testkit")
            .git()
            .store()
            .workers(1)
            .start()
            .await;
        let worker = fleet.worker_ids()[0].to_string();
        fixtures::bare_repo(&fleet.remotes(), "repo.git", &[("README.md", "hi\n")]);
        let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
        let url = daemon.url("repo.git");

        let c = fleet
            .ok(
                "clone",
                json!({"repo_url": url, "agent_id": "a", "task_id": "t"}),
            )
            .await;
        let sandbox = c["sandbox_id"].as_str().unwrap().to_string();
        assert!(sandbox.starts_with(&format!("{worker}.")), "{sandbox}");
        assert!(fleet.sandbox_root().join(&worker).is_dir());
        let row = eventually("the sandbox's row", Duration::from_secs(10), async || {
            fleet
                .store()
                .sandboxes(10)
                .await
                .unwrap()
                .into_iter()
                .find(|r| r.sandbox_id == sandbox)
        })
        .await;
        assert_eq!(row.worker_id, worker);

        let tmp = fleet.tmp().to_path_buf();
        let db = fleet.test_store.as_ref().unwrap().db.name.clone();
        fleet.shutdown().await;
        drop(fleet);
        assert!(!tmp.exists(), "{} removed", tmp.display());
        let out = std::process::Command::new("psql")
            .args(["-X", "-tA", "-d", &crate::postgres::admin_url(), "-c"])
            .arg(format!(
                "SELECT count(*) FROM pg_database WHERE datname = '{db}'"
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "{db} dropped"
        );
    }
}
