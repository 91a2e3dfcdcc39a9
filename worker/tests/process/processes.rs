//! What the process tests need beyond `gitfleet_testkit`: `gitfleet-worker` processes that
//! cannot outlive the test, on a `TestQueue` of its own (purged when the test ends, after
//! every worker is killed), their logs kept when a test fails, and a Redis server of the
//! test's own for the tests that kill Redis.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use gitfleet_client::{Client, EnqueueOptions, Enqueued, JobRecord, JobSpec, QueueConfig};
use gitfleet_testkit::{TestQueue, eventually};
use redis::aio::MultiplexedConnection;
use serde_json::Value;

pub use gitfleet_testkit::RedisServer;

/// How long a worker may take to connect and print its id.
const WORKER_START: Duration = Duration::from_secs(15);

/// The shared Redis's `host:port`, for the tests that put a proxy in front of it.
pub fn redis_addr() -> String {
    let url = gitfleet_testkit::redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// One test's fleet of worker processes: a [`TestQueue`] (a unique key prefix, purged when
/// this drops), a producer client on it, and the worker processes it spawned. The workers
/// borrow it, so they are always killed first and cannot write keys back after the purge.
pub struct ProcessFleet {
    pub client: Client,
    queue: TestQueue,
    log_dir: PathBuf,
    workers_spawned: Cell<usize>,
}

impl ProcessFleet {
    /// A fresh prefix on the shared Redis.
    pub async fn new() -> Self {
        Self::on_queue(TestQueue::new("process").await).await
    }

    /// A fresh prefix on the Redis at `redis_url`.
    pub async fn on(redis_url: &str) -> Self {
        let redis_url = redis_url.to_string();
        Self::on_queue(TestQueue::with_config("process", |c| c.redis_url = redis_url).await).await
    }

    async fn on_queue(queue: TestQueue) -> Self {
        let client = Client::connect(queue.config().clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot connect to Redis at {}: {e}",
                    queue.config().redis_url
                )
            });
        // The log directory is named for the prefix: one look finds both.
        let log_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("process-tests")
            .join(queue.prefix().trim_end_matches(':'));
        std::fs::create_dir_all(&log_dir).expect("create the log directory");
        Self {
            client,
            queue,
            log_dir,
            workers_spawned: Default::default(),
        }
    }

    pub fn prefix(&self) -> &str {
        self.queue.prefix()
    }

    /// Where worker `id` keeps its sandboxes, copies and mirrors (`GITFLEET_SANDBOX_ROOT`
    /// of every worker spawned here, then the worker's id).
    pub fn sandbox_root(&self, id: &str) -> PathBuf {
        self.log_dir.join("sandboxes").join(id)
    }

    /// The queue's configuration: what each worker process is started with.
    pub fn config(&self) -> &QueueConfig {
        self.queue.config()
    }

    /// A connection of its own, for writing to Redis by hand.
    pub async fn redis(&self) -> MultiplexedConnection {
        self.queue.redis().await
    }

    /// A `gitfleet-worker` command on this prefix, with `env` on top of the defaults,
    /// logging to a file of its own; and that file.
    fn worker_command(&self, env: &[(&str, &str)]) -> (Command, PathBuf) {
        let n = self.workers_spawned.get() + 1;
        self.workers_spawned.set(n);
        let log = self.log_dir.join(format!("worker-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet-worker"));
        // Whatever the developer's shell sets must not leak into the test.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GITFLEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GITFLEET_REDIS_URL", &self.config().redis_url)
            .env("GITFLEET_KEY_PREFIX", self.prefix())
            .env("GITFLEET_LOG", "info,gitfleet_core=debug")
            // Sandboxes live with the test's other files, and go with them.
            .env("GITFLEET_SANDBOX_ROOT", self.log_dir.join("sandboxes"))
            // No record unless a test asks for one (a database of its own).
            .env("GITFLEET_DATABASE_URL", "none")
            // The testkit's git servers listen on 127.0.0.1 (a test of the default policy
            // passes an empty value).
            .env(
                "GITFLEET_GIT_ALLOW_HOSTS",
                gitfleet_testkit::TEST_ALLOW_HOSTS,
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the worker log"));
        (cmd, log)
    }

    /// Starts a `gitfleet-worker` that is expected not to start (a configuration it must
    /// refuse), with `env` on top of the defaults; returns how it exited and what it
    /// logged. Panics if it is still running after `within`.
    pub async fn worker_that_exits(
        &self,
        env: &[(&str, &str)],
        within: Duration,
    ) -> (ExitStatus, String) {
        let (mut cmd, log) = self.worker_command(env);
        let mut child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn gitfleet-worker");
        let deadline = std::time::Instant::now() + within;
        let status = loop {
            if let Some(status) = child.try_wait().expect("check the worker") {
                break status;
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the worker was still running after {within:?}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        (status, std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Starts a `gitfleet-worker` on this prefix, with `env` on top of the defaults, and
    /// returns once it has printed its id.
    pub async fn spawn_worker(&self, env: &[(&str, &str)]) -> WorkerProcess<'_> {
        let (mut cmd, log) = self.worker_command(env);
        let mut child = cmd.spawn().expect("spawn gitfleet-worker");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so the worker never blocks on a full pipe.
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let mut worker = WorkerProcess {
            id: String::new(),
            child,
            log,
            _queue: PhantomData,
        };
        let line = match tokio::time::timeout(WORKER_START, rx).await {
            Ok(Ok(line)) => line,
            _ => panic!(
                "worker did not print its id within {WORKER_START:?}\n{}",
                worker.log_text()
            ),
        };
        let parsed: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| {
            panic!(
                "worker's first line {line:?} is not JSON ({e})\n{}",
                worker.log_text()
            )
        });
        worker.id = parsed["worker_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no worker_id in {line:?}"))
            .to_string();
        worker
    }

    /// Submits a job through the Rust client and returns what the queue answered.
    pub async fn submit(&self, queue: &str, op: &str, args: Value) -> Enqueued {
        self.client
            .submit(queue, &JobSpec::new(op, args), &EnqueueOptions::default())
            .await
            .unwrap_or_else(|e| panic!("submit {op} to {queue}: {e}"))
    }

    /// Submits a job for organization `org` (its envelope's) and waits up to 60 s for it to
    /// be done or dead; returns its record.
    pub async fn run_as(&self, org: Option<&str>, queue: &str, op: &str, args: Value) -> JobRecord {
        let options = EnqueueOptions {
            org: org.map(str::to_string),
            ..Default::default()
        };
        let job = self
            .client
            .submit(queue, &JobSpec::new(op, args), &options)
            .await
            .unwrap_or_else(|e| panic!("submit {op} to {queue} for {org:?}: {e}"));
        let what = format!("{op} for {org:?} to finish");
        self.wait_for_job(&job.job_id, Duration::from_secs(60), &what, |r| {
            r.status.is_final()
        })
        .await
    }

    /// Submits `n` copies of one job to `queue` and returns their ids.
    pub async fn submit_n(&self, queue: &str, op: &str, args: Value, n: usize) -> Vec<String> {
        let specs = vec![JobSpec::new(op, args); n];
        self.client
            .submit_many(queue, &specs, &EnqueueOptions::default())
            .await
            .expect("submit a batch")
            .into_iter()
            .map(|r| r.expect("each job of the batch is accepted").job_id)
            .collect()
    }

    /// Job `id`'s record, or what went wrong reading it (for [`eventually`]).
    pub async fn job(&self, id: &str) -> Result<JobRecord, String> {
        match self.client.job(id).await {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(format!("job {id} has no record")),
            Err(e) => Err(format!("reading job {id}: {e}")),
        }
    }

    /// Waits until every job of `ids` satisfies `ready`, and returns their records.
    pub async fn wait_for_jobs(
        &self,
        ids: &[String],
        within: Duration,
        what: &str,
        ready: impl Fn(&JobRecord) -> bool,
    ) -> Vec<JobRecord> {
        let what = format!("{what} (worker logs: {})", self.log_dir.display());
        eventually(what, within, async || {
            let mut records = Vec::with_capacity(ids.len());
            for id in ids {
                let record = self.job(id).await?;
                if !ready(&record) {
                    return Err(format!("{record:?}"));
                }
                records.push(record);
            }
            Ok(records)
        })
        .await
    }

    /// Waits until job `id` satisfies `ready`, and returns its record.
    pub async fn wait_for_job(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        ready: impl Fn(&JobRecord) -> bool,
    ) -> JobRecord {
        let ids = [id.to_string()];
        let mut records = self.wait_for_jobs(&ids, within, what, ready).await;
        records.pop().expect("one id, one record")
    }

    /// Waits until worker `id` is no longer a live worker (declared dead, or gone).
    pub async fn wait_until_declared_dead(&self, id: &str, within: Duration) {
        eventually(
            format!("worker {id} is declared dead"),
            within,
            async || match self.client.queue().is_worker_alive(id).await {
                Ok(false) => Ok(()),
                Ok(true) => Err("still a live worker".to_string()),
                Err(e) => Err(e.to_string()),
            },
        )
        .await
    }

    /// Waits until worker `id` has registered (its first heartbeat).
    pub async fn wait_until_registered(&self, id: &str) {
        eventually(
            format!("worker {id} registers"),
            Duration::from_secs(10),
            async || match self.client.queue().is_worker_alive(id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("not in the workers set".to_string()),
                Err(e) => Err(e.to_string()),
            },
        )
        .await
    }

    /// Which of `lists` (ready lists, held lists) hold job `id`: where a job that is not
    /// moving actually is.
    pub async fn lists_holding(&self, id: &str, lists: &[String]) -> Result<Vec<String>, String> {
        let mut conn = self.redis().await;
        let mut found = Vec::new();
        for list in lists {
            let pos: Option<i64> = redis::cmd("LPOS")
                .arg(list)
                .arg(id)
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("LPOS {list} {id}: {e}"))?;
            if pos.is_some() {
                found.push(list.clone());
            }
        }
        Ok(found)
    }

    /// Whether `id` is in `queue`'s ready list.
    pub async fn is_in_ready_list(&self, queue: &str, id: &str) -> bool {
        let ready = self.client.queue().keys().ready(queue);
        !self
            .lists_holding(id, &[ready])
            .await
            .expect("read the ready list")
            .is_empty()
    }
}

impl Drop for ProcessFleet {
    /// The prefix goes with the `TestQueue` field, right after this.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("worker logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

/// A running `gitfleet-worker`. It cannot outlive its [`ProcessFleet`], and dropping it kills
/// the process if it is still running.
pub struct WorkerProcess<'q> {
    pub id: String,
    child: Child,
    log: PathBuf,
    _queue: PhantomData<&'q ProcessFleet>,
}

impl WorkerProcess<'_> {
    /// This worker's own queue.
    pub fn own_queue(&self) -> String {
        format!("worker:{}", self.id)
    }

    /// Kills the process at once (no clean-up of any kind) and reaps it.
    pub fn sigkill(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Asks the process to stop gracefully.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM, "TERM");
    }

    /// Pauses the process (as a debugger, a frozen VM or a starved host does): it neither
    /// beats nor reads its sockets until [`WorkerProcess::sigcont`]. The git processes it
    /// started run on in process groups of their own.
    pub fn sigstop(&self) {
        self.signal(libc::SIGSTOP, "STOP");
    }

    /// Resumes a process paused by [`WorkerProcess::sigstop`].
    pub fn sigcont(&self) {
        self.signal(libc::SIGCONT, "CONT");
    }

    #[allow(unsafe_code)] // std has no way to send a signal; kill(2) touches no memory of ours.
    fn signal(&self, signal: libc::c_int, name: &str) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers and only sends a signal to our own child.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(
            rc,
            0,
            "kill -{name} {pid}: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("check the worker").is_none()
    }

    /// Waits for the process to exit, up to `within`, and returns its status.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let what = format!("worker {} exits", self.id);
        eventually(&what, within, async || {
            match self.child.try_wait().expect("check the worker") {
                Some(status) => Ok(status),
                None => Err("still running".to_string()),
            }
        })
        .await
    }

    /// Waits until the worker's log contains `needle`: the only sign of some steps that
    /// happen inside the process, such as having handled a signal.
    pub async fn wait_for_log(&self, needle: &str, within: Duration) {
        let what = format!("worker {} logs {needle:?}", self.id);
        eventually(what, within, async || {
            let text = self.log_text();
            if text.contains(needle) {
                Ok(())
            } else {
                Err(text)
            }
        })
        .await
    }

    /// What the worker logged so far.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {} ---\n{text}", self.log.display())
    }
}

impl Drop for WorkerProcess<'_> {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
