//! A fleet for one test: a git server with a repository, a queue under a prefix of its own,
//! and workers with sandboxes under a temporary directory. Everything goes when it drops.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gitfleet_client::{Client, EnqueueOptions, JobRecord, JobSpec, JobStatus, QueueConfig};
use gitfleet_contract::{Credential, Credentials};
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_core::runtime::{RunningWorker, Worker};
use gitfleet_core::sandbox::GitSettings;
use gitfleet_testkit::fixtures;
use serde_json::Value;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub client: Client,
    pub workers: Vec<RunningWorker>,
    prefix: String,
    /// The durable record workers added from now on keep (none by default).
    pub store: Option<gitfleet_store::Store>,
}

impl Fleet {
    /// A fleet of `workers` workers, with `credentials` for the git hosts.
    pub async fn start(workers: usize, credentials: Credentials) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let prefix = format!("test-gitops-{}:", ulid::Ulid::new());
        let config = QueueConfig {
            redis_url: REDIS_URL.into(),
            key_prefix: prefix.clone(),
            ..Default::default()
        };
        let client = Client::connect(config).await.expect("redis");
        let mut fleet = Self {
            tmp,
            client,
            workers: Vec::new(),
            prefix,
            store: None,
        };
        for _ in 0..workers {
            fleet.add_worker(credentials.clone()).await;
        }
        fleet
    }

    pub async fn add_worker(&mut self, credentials: Credentials) -> String {
        let settings = GitSettings {
            sandbox_root: Some(self.tmp.path().join("sandboxes")),
            allow_file_protocol: false,
            timeout: Duration::from_secs(60),
            pool_min: 1,
            pool_max: 4,
            credentials,
        };
        let config = WorkerConfig {
            name_stem: "gitops".into(),
            concurrency: 20,
            retry_base: Duration::from_millis(200),
            ..Default::default()
        };
        let worker = Worker::new(self.client.queue().clone(), config, Ops::builtin());
        let sandboxes = settings.sandboxes(worker.id()).await.expect("sandboxes");
        let worker = match &self.store {
            Some(store) => worker.with_store(
                store.clone(),
                Default::default(),
                Duration::from_millis(100),
            ),
            None => worker,
        };
        let running = worker
            .with_sandboxes(sandboxes)
            .start()
            .await
            .expect("worker");
        let id = running.id().to_string();
        self.workers.push(running);
        id
    }

    /// Where tests put the remote repositories their servers serve.
    pub fn remotes(&self) -> PathBuf {
        let dir = self.tmp.path().join("remotes");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Submits a job (routed as the client routes it) and waits for it to finish.
    pub async fn run(&self, op: &str, args: Value) -> JobRecord {
        let spec = JobSpec::new(op, args);
        let queue = Client::route(&spec);
        let job = self
            .client
            .submit(&queue, &spec, &EnqueueOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{op} refused: {e}"));
        let record = self
            .client
            .wait(&job.job_id, Duration::from_secs(90))
            .await
            .unwrap()
            .expect("job exists");
        assert!(
            record.status.is_final(),
            "{op} finished in time: {record:?}"
        );
        record
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
        record.result.unwrap()
    }

    pub async fn stop(mut self) {
        for w in std::mem::take(&mut self.workers) {
            w.shutdown().await.unwrap();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        gitfleet_testkit::redis_keys::purge_prefix(REDIS_URL, &self.prefix);
    }
}

pub fn prefix_of(fleet: &Fleet) -> &str {
    &fleet.prefix
}

/// A bare repository with a few files, served from `remotes`.
pub fn sample_repo(remotes: &Path, name: &str) -> PathBuf {
    fixtures::bare_repo(
        remotes,
        name,
        &[
            ("README.md", "# sample\n"),
            ("src/lib.rs", "pub fn answer() -> u32 { 42 }\n"),
            ("docs/guide.md", "guide\n"),
        ],
    )
}

/// No credentials at all.
pub fn no_credentials() -> Credentials {
    Credentials::default()
}

/// Credentials for one host.
pub fn credentials_for(host: &str, user: &str, token: &str) -> Credentials {
    let mut c = Credentials::default();
    c.insert(host, Credential::new(user, token));
    c
}

/// The working tree of the live sandbox on `agent_branch`, found on disk: every worker's
/// sandboxes are `<tmp>/sandboxes/<worker id>/sandboxes/<dir>/work`, and a sandbox's
/// `.git/HEAD` names its agent branch. Panics unless exactly one working tree is on it.
pub fn work_tree(fleet: &Fleet, agent_branch: &str) -> PathBuf {
    let wanted = format!("ref: refs/heads/{agent_branch}");
    let mut found = Vec::new();
    let root = fleet.tmp.path().join("sandboxes");
    for worker in std::fs::read_dir(&root)
        .expect("the sandbox root")
        .flatten()
    {
        let Ok(dirs) = std::fs::read_dir(worker.path().join("sandboxes")) else {
            continue;
        };
        for dir in dirs.flatten() {
            let work = dir.path().join("work");
            let head = std::fs::read_to_string(work.join(".git").join("HEAD")).unwrap_or_default();
            if head.trim() == wanted {
                found.push(work);
            }
        }
    }
    assert_eq!(
        found.len(),
        1,
        "one working tree on {agent_branch} under {}: {found:?}",
        root.display()
    );
    found.pop().unwrap()
}

/// The files checked out in `work` (relative paths, sorted), `.git` left out.
pub fn files_on_disk(work: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read a directory").flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if entry.file_type().expect("file type").is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under the root");
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(work, work, &mut out);
    out.sort();
    out
}
