//! `gitfleet demo`: gitfleet's main job on this machine, in one command.
//!
//! Starts a local `git daemon` serving a sample repository, two workers (in this process,
//! with sandboxes under a temporary directory and a Redis key prefix of their own), and runs
//! ten agents through clone → write_files → push: six onto branches of their own, four onto
//! one shared branch, so the push protocol's lock and rebase show. Prints what each agent
//! saw and what the remote ends up with, then removes everything it made. With no Redis at
//! the default URL (and none configured), it brings a private `redis-server` of its own.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitfleet_contract::{DEFAULT_QUEUE, JobRecord, JobSpec, JobStatus};
use gitfleet_core::git::EgressConfig;
use gitfleet_core::ops::Ops;
use gitfleet_core::runtime::{RunningWorker, Worker, WorkerConfig};
use gitfleet_core::sandbox::GitSettings;
use gitfleet_queue::{EnqueueOptions, Queue, QueueConfig, QueueError};
use serde_json::{Value, json};

use crate::private_redis::PrivateRedis;

/// One agent's run.
#[derive(Debug, Clone)]
pub struct AgentRun {
    pub agent: usize,
    pub worker: String,
    pub cache_hit: bool,
    pub clone_ms: f64,
    pub write_ms: f64,
    pub push_ms: f64,
    pub branch: String,
    pub commit: String,
    pub rebased: bool,
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub agents: Vec<AgentRun>,
    pub failures: Vec<String>,
    /// Commits on the shared branch beyond the base, and the agents that pushed there.
    pub shared_commits: usize,
    pub shared_agents: usize,
    pub elapsed: Duration,
}

const AGENTS: usize = 10;
const SHARED: usize = 4;
const SHARED_BRANCH: &str = "integration";

/// Where the demo's Redis URL came from, which decides what happens when nothing answers
/// there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlSource {
    /// Named by whoever runs the demo: nothing answering there is the error, since a
    /// private server would not be the Redis they asked for.
    Configured,
    /// The built-in default: with nothing answering there, the demo starts a private
    /// `redis-server` (a fresh machine needs no set-up).
    Default,
}

impl UrlSource {
    /// From `GITFLEET_REDIS_URL` as the binary read it (`None`: unset or not UTF-8). Blank
    /// counts as unset, as [`QueueConfig::from_env`] then uses the default.
    pub fn of_env_value(value: Option<&str>) -> Self {
        match value {
            Some(v) if !v.trim().is_empty() => UrlSource::Configured,
            _ => UrlSource::Default,
        }
    }
}

/// Runs the demo against the Redis of `config` (its prefix replaced by a private one), or,
/// when nothing answers at a [`UrlSource::Default`] URL, against a private `redis-server`
/// it starts, and stops at the end.
pub async fn run(mut config: QueueConfig, source: UrlSource) -> Result<DemoReport, String> {
    config.key_prefix = format!("gitfleet-demo-{}:", ulid::Ulid::new());
    let (queue, private) = connect(config, source).await?;
    let tmp = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let result = run_in(&queue, tmp.path()).await;
    let _ = queue.purge_prefix().await;
    // The connection goes before the server it talks to.
    drop(queue);
    drop(private);
    result
}

/// The queue at `config`'s URL, else (see [`UrlSource`]) on a private server, returned
/// with it so that it lives as long as the queue is used.
async fn connect(
    mut config: QueueConfig,
    source: UrlSource,
) -> Result<(Queue, Option<PrivateRedis>), String> {
    let e = match Queue::connect(config.clone()).await {
        Ok(queue) => return Ok((queue, None)),
        Err(e) => e,
    };
    // Only when nothing answers: a Redis that answers and refuses (a password, a version)
    // is one the user has, and its error is the one to see.
    let nothing_answers = matches!(&e, QueueError::Redis(r)
        if r.is_io_error() || r.is_connection_refusal() || r.is_timeout());
    if source == UrlSource::Configured || !nothing_answers {
        return Err(describe(&e));
    }
    let url = config.redacted_url();
    let private =
        PrivateRedis::start().map_err(|why| format!("no Redis answers at {url}, and {why}"))?;
    eprintln!(
        "gitfleet demo: no Redis at {url}; started a private redis-server on {} for this demo",
        private.addr()
    );
    config.redis_url = private.url();
    let queue = Queue::connect(config).await.map_err(|e| {
        format!(
            "the private redis-server on {} answered PING, then: {e}",
            private.addr()
        )
    })?;
    Ok((queue, Some(private)))
}

fn describe(e: &QueueError) -> String {
    match e {
        QueueError::Redis(_) => format!("{e} (is Redis running? redis-server --daemonize yes)"),
        other => other.to_string(),
    }
}

async fn run_in(queue: &Queue, tmp: &Path) -> Result<DemoReport, String> {
    let remotes = tmp.join("remotes");
    let bare = sample_repo(tmp, &remotes)?;
    let daemon = Daemon::start(&remotes)?;
    let url = daemon.url("sample.git");

    let mut workers: Vec<RunningWorker> = Vec::new();
    for _ in 0..2 {
        let settings = GitSettings {
            sandbox_root: Some(tmp.join("sandboxes")),
            allow_file_protocol: false,
            timeout: Duration::from_secs(60),
            pool_min: 2,
            pool_max: 8,
            credentials: Default::default(),
            limits: Default::default(),
            jail: Default::default(),
            // The demo's own daemon, and nothing else internal.
            egress: EgressConfig::allowing("127.0.0.1"),
        };
        let config = WorkerConfig {
            name_stem: "demo".into(),
            ..Default::default()
        };
        let worker = Worker::new(queue.clone(), config, Ops::builtin())
            .with_git(&settings)
            .await
            .map_err(|e| format!("cannot set up sandboxes: {e}"))?;
        workers.push(worker.start().await.map_err(|e| e.to_string())?);
    }

    let started = Instant::now();
    let runs = futures::future::join_all((0..AGENTS).map(|i| agent(queue, &url, i))).await;
    let elapsed = started.elapsed();
    for w in workers {
        let _ = w.shutdown().await;
    }
    let (mut agents, mut failures) = (Vec::new(), Vec::new());
    for r in runs {
        match r {
            Ok(a) => agents.push(a),
            Err(e) => failures.push(e),
        }
    }
    let shared_commits = git_count(&bare, SHARED_BRANCH)? - git_count(&bare, "main")?;
    drop(daemon);
    Ok(DemoReport {
        agents,
        failures,
        shared_commits,
        shared_agents: SHARED,
        elapsed,
    })
}

/// One agent: clone, write two files, push (to the shared branch for the last few).
async fn agent(queue: &Queue, url: &str, i: usize) -> Result<AgentRun, String> {
    let (c, clone_ms) = job(
        queue,
        "clone",
        json!({"repo_url": url, "agent_id": format!("demo{i}"), "task_id": "readme"}),
    )
    .await?;
    let sandbox = c["sandbox_id"].as_str().unwrap_or_default().to_string();
    let mut files = vec![json!({
        "path": format!("agents/agent-{i}.md"),
        "content": format!("# Agent {i}\n\nHello from agent {i}.\n"),
    })];
    if i == 0 {
        files.push(json!({"path": "src/lib.rs", "delete": true}));
    }
    let (_, write_ms) = job(
        queue,
        "write_files",
        json!({"sandbox_id": sandbox, "files": files}),
    )
    .await?;
    let mut push = json!({"sandbox_id": sandbox, "message": format!("agent {i}: say hello")});
    if i >= AGENTS - SHARED {
        push["target_branch"] = json!(SHARED_BRANCH);
    }
    let (p, push_ms) = job(queue, "push", push).await?;
    let _ = job(queue, "release", json!({"sandbox_id": sandbox})).await;
    Ok(AgentRun {
        agent: i,
        worker: sandbox.split('.').next().unwrap_or_default().to_string(),
        cache_hit: c["cache_hit"] == true,
        clone_ms,
        write_ms,
        push_ms,
        branch: p["branch"].as_str().unwrap_or_default().to_string(),
        commit: p["commit_sha"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(10)
            .collect(),
        rebased: p["rebased"] == true,
    })
}

/// Submits a job where the client would route it, and waits for its result.
async fn job(queue: &Queue, op: &str, args: Value) -> Result<(Value, f64), String> {
    let spec = JobSpec::new(op, args);
    let route = gitfleet_contract::ops::route(&spec).unwrap_or_else(|| DEFAULT_QUEUE.into());
    let started = Instant::now();
    let enqueued = queue
        .enqueue(&route, &spec, &EnqueueOptions::default())
        .await
        .map_err(|e| format!("{op}: {e}"))?;
    let record: JobRecord = queue
        .wait(&enqueued.job_id, Duration::from_secs(120))
        .await
        .map_err(|e| format!("{op}: {e}"))?
        .ok_or_else(|| format!("{op}: the job vanished"))?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match record.status {
        JobStatus::Done => Ok((record.result.unwrap_or(Value::Null), ms)),
        _ => Err(format!(
            "{op} {}: {}",
            record.status,
            record.error.map(|e| e.to_string()).unwrap_or_default()
        )),
    }
}

/// Runs git for the demo's own set-up (not a job's: nothing here comes from outside).
fn git(cwd: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "gitfleet demo")
        .env("GIT_AUTHOR_EMAIL", "demo@gitfleet.invalid")
        .env("GIT_COMMITTER_NAME", "gitfleet demo")
        .env("GIT_COMMITTER_EMAIL", "demo@gitfleet.invalid")
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_count(bare: &Path, branch: &str) -> Result<usize, String> {
    git(bare, &["rev-list", "--count", branch])?
        .parse()
        .map_err(|e| format!("rev-list: {e}"))
}

/// A bare repository with a few files and a shared branch, under `remotes`.
fn sample_repo(tmp: &Path, remotes: &Path) -> Result<PathBuf, String> {
    let bare = remotes.join("sample.git");
    std::fs::create_dir_all(&bare).map_err(|e| e.to_string())?;
    git(
        &bare,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    )?;
    git(&bare, &["config", "core.logAllRefUpdates", "always"])?;
    let work = tmp.join("seed");
    std::fs::create_dir_all(work.join("src")).map_err(|e| e.to_string())?;
    std::fs::write(
        work.join("README.md"),
        "# sample\n\nA repository for the gitfleet demo.\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(
        work.join("src/lib.rs"),
        "pub fn answer() -> u32 {\n    42\n}\n",
    )
    .map_err(|e| e.to_string())?;
    git(&work, &["init", "--quiet", "--initial-branch=main"])?;
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "--quiet", "-m", "initial commit"])?;
    let bare_s = bare.to_string_lossy().into_owned();
    git(
        &work,
        &[
            "push",
            "--quiet",
            &bare_s,
            "main",
            &format!("main:{SHARED_BRANCH}"),
        ],
    )?;
    Ok(bare)
}

/// `git daemon` on a free loopback port, stopped on drop.
struct Daemon {
    child: Child,
    port: u16,
}

impl Daemon {
    fn start(root: &Path) -> Result<Self, String> {
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(|e| e.to_string())?;
            let child = Command::new("git")
                .args([
                    "daemon",
                    "--reuseaddr",
                    "--export-all",
                    "--enable=receive-pack",
                    "--listen=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--base-path={}", root.display()),
                ])
                .arg(root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot start git daemon: {e}"))?;
            let mut daemon = Daemon { child, port };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Ok(daemon);
                }
                if let Ok(Some(_)) = daemon.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            daemon.stop();
        }
        Err("git daemon did not start".into())
    }

    fn url(&self, repo: &str) -> String {
        format!("git://127.0.0.1:{}/{repo}", self.port)
    }

    fn stop(&mut self) {
        // git daemon forks: end its whole process group.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unset_or_blank_redis_url_lets_the_demo_start_a_private_redis() {
        for unset in [None, Some(""), Some("  ")] {
            assert_eq!(
                UrlSource::of_env_value(unset),
                UrlSource::Default,
                "{unset:?}"
            );
        }
        // The default URL named explicitly is still the user's choice.
        for set in [
            "redis://127.0.0.1:6379",
            "redis://:pw@redis.internal:6380/2",
        ] {
            assert_eq!(
                UrlSource::of_env_value(Some(set)),
                UrlSource::Configured,
                "{set}"
            );
        }
    }
}
