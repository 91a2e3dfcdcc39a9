//! Many agents pushing to one branch at once, in two forms:
//! - `change`: one self-contained `change` job per agent (clone, write a file of its own,
//!   push to the shared branch, release), all enqueued in one round trip on the shared
//!   queue;
//! - `push`: each agent's sandbox cloned and written beforehand (not timed), then one `push`
//!   job per agent, all enqueued at once (one round trip per worker queue): the push
//!   protocol alone.
//!
//! Latencies run from just before the enqueue to each job's result; the wall time is until
//! the last result. Afterwards the remote branch is read: an agent's commit landed if a
//! commit with its job's `Gitfleet-Job` trailer is on it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::future::join_all;
use gitfleet_client::{Client, EnqueueOptions, JobRecord, JobSpec, JobStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::fixture;
use crate::fleet::{Fleet, Timed};
use crate::lock_watch::{self, LockStats};
use crate::stats::Summary;
use crate::warm_clone::{clone_args, release};

const BOUND: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Change,
    Push,
}

impl Mode {
    fn branch(self) -> &'static str {
        match self {
            Mode::Change => "shared-change",
            Mode::Push => "shared-push",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Agents {
    pub mode: Mode,
    pub agents: usize,
    /// Agents whose commit (by its job's trailer) is on the remote branch.
    pub landed: usize,
    pub lost: usize,
    /// Agents whose commit is on the branch more than once.
    pub duplicated: usize,
    /// Commits the branch gained.
    pub commits_added: usize,
    pub done: usize,
    /// Failed jobs, by error kind.
    pub failed: BTreeMap<String, usize>,
    /// Jobs that needed more than one attempt.
    pub retried: usize,
    /// Enqueue → result.
    pub latency: Summary,
    /// Enqueue → start of the last attempt: waiting for a slot, plus any earlier attempts
    /// and their retry backoff.
    pub queued: Summary,
    /// The last attempt's run (start → finish).
    pub in_worker: Summary,
    pub wall_ms: f64,
    /// The branch's push lock while the jobs ran (see [`lock_watch`]).
    pub lock: Option<LockStats>,
}

fn file(i: usize) -> Value {
    json!([{"path": format!("agents/agent{i:03}.txt"), "content": format!("work of agent {i}\n")}])
}

/// Waits for every job at once; each result is timed from `started`.
async fn wait_all(fleet: &Fleet, ids: &[String], started: Instant) -> anyhow::Result<Vec<Timed>> {
    let waits = ids.iter().map(|id| async move {
        let record = fleet.wait(id, BOUND).await?;
        Ok::<_, anyhow::Error>(Timed {
            record,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    });
    join_all(waits).await.into_iter().collect()
}

/// Enqueues `specs`, grouped by the queue each routes to, one round trip per queue.
async fn submit_all(fleet: &Fleet, specs: &[JobSpec]) -> anyhow::Result<Vec<String>> {
    let mut by_queue: BTreeMap<String, Vec<(usize, JobSpec)>> = BTreeMap::new();
    for (i, spec) in specs.iter().enumerate() {
        by_queue
            .entry(Client::route(spec))
            .or_default()
            .push((i, spec.clone()));
    }
    let mut ids = vec![String::new(); specs.len()];
    for (queue, group) in by_queue {
        let batch: Vec<JobSpec> = group.iter().map(|(_, s)| s.clone()).collect();
        let enqueued = fleet
            .client
            .submit_many(&queue, &batch, &EnqueueOptions::default())
            .await?;
        for ((i, _), job) in group.iter().zip(enqueued) {
            ids[*i] = job.context("enqueue refused")?.job_id;
        }
    }
    Ok(ids)
}

/// Clones and writes one sandbox per agent (not timed); returns their ids.
async fn prepare_sandboxes(fleet: &Fleet, url: &str, agents: usize) -> anyhow::Result<Vec<Value>> {
    let specs: Vec<JobSpec> = (0..agents)
        .map(|i| JobSpec::new("clone", clone_args(url, &format!("push{i}"))))
        .collect();
    let ids = submit_all(fleet, &specs).await?;
    let cloned = wait_all(fleet, &ids, Instant::now()).await?;
    let mut sandboxes = Vec::new();
    for t in &cloned {
        if t.record.status != JobStatus::Done {
            bail!("clone for an agent failed: {:?}", t.record.error);
        }
        sandboxes.push(t.record.result.as_ref().context("no result")?["sandbox_id"].clone());
    }
    let writes = sandboxes.iter().enumerate().map(|(i, sb)| {
        fleet.ok(
            "write_files",
            json!({"sandbox_id": sb, "files": file(i)}),
            BOUND,
        )
    });
    for w in join_all(writes).await {
        w?;
    }
    Ok(sandboxes)
}

fn specs(mode: Mode, url: &str, sandboxes: &[Value], agents: usize) -> Vec<JobSpec> {
    (0..agents)
        .map(|i| {
            let message = format!("work of agent {i}");
            match mode {
                Mode::Change => JobSpec::new(
                    "change",
                    json!({"repo_url": url, "branch": "main", "agent_id": format!("agent{i}"),
                           "task_id": "bench", "files": file(i), "message": message,
                           "target_branch": mode.branch()}),
                ),
                Mode::Push => JobSpec::new(
                    "push",
                    json!({"sandbox_id": sandboxes[i], "message": message,
                           "target_branch": mode.branch()}),
                ),
            }
        })
        .collect()
}

pub async fn run(
    fleet: &Fleet,
    bare: &Path,
    url: &str,
    mode: Mode,
    agents: usize,
) -> anyhow::Result<Agents> {
    let branch = mode.branch();
    fixture::git(bare, &["branch", branch, "main"]).await?;
    let sandboxes = match mode {
        Mode::Change => Vec::new(),
        Mode::Push => prepare_sandboxes(fleet, url, agents).await?,
    };
    let specs = specs(mode, url, &sandboxes, agents);
    if mode == Mode::Push {
        crate::breakdown::phase("agents, push only");
    }

    let repo = gitfleet_contract::rules::repo_url("repo_url", url, false)?;
    let lock_key = format!("{}lock:push:{}:{branch}", fleet.prefix(), repo.cache_key);
    let watch = lock_watch::start(fleet.redis().await?, lock_key);

    let started = Instant::now();
    let ids = submit_all(fleet, &specs).await?;
    let timed = wait_all(fleet, &ids, started).await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let lock = watch.finish().await;
    let timed = timed?;

    for sandbox in &sandboxes {
        release(fleet, sandbox).await?;
    }
    let log = fixture::git(
        bare,
        &["log", "--format=%B", &format!("refs/heads/{branch}")],
    )
    .await?;
    let added = fixture::git(
        bare,
        &["rev-list", "--count", &format!("main..refs/heads/{branch}")],
    )
    .await?;
    let mut agents = summarise(
        mode,
        &timed,
        &log,
        added.trim().parse().unwrap_or(0),
        wall_ms,
    );
    agents.lock = lock.filter(|l| l.holds > 0);
    Ok(agents)
}

fn summarise(mode: Mode, timed: &[Timed], log: &str, commits_added: usize, wall_ms: f64) -> Agents {
    let trailers: HashMap<&str, usize> = log
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Gitfleet-Job: "))
        .fold(HashMap::new(), |mut m, id| {
            *m.entry(id).or_default() += 1;
            m
        });
    let landed = timed
        .iter()
        .filter(|t| trailers.contains_key(t.record.job_id.as_str()))
        .count();
    let duplicated = timed
        .iter()
        .filter(|t| {
            trailers
                .get(t.record.job_id.as_str())
                .is_some_and(|n| *n > 1)
        })
        .count();
    let mut failed = BTreeMap::new();
    for t in timed.iter().filter(|t| t.record.status != JobStatus::Done) {
        let kind = t
            .record
            .error
            .as_ref()
            .map_or("unknown".to_string(), |e| e.kind.to_string());
        *failed.entry(kind).or_default() += 1;
    }
    let ms: Vec<f64> = timed.iter().map(|t| t.ms).collect();
    let queued: Vec<f64> = timed.iter().map(|t| queued_ms(&t.record)).collect();
    let run: Vec<f64> = timed.iter().map(Timed::run_ms).collect();
    Agents {
        mode,
        agents: timed.len(),
        landed,
        lost: timed.len() - landed,
        duplicated,
        commits_added,
        done: timed
            .iter()
            .filter(|t| t.record.status == JobStatus::Done)
            .count(),
        failed,
        retried: timed.iter().filter(|t| t.record.attempts > 1).count(),
        latency: Summary::of(&ms),
        queued: Summary::of(&queued),
        in_worker: Summary::of(&run),
        wall_ms,
        lock: None,
    }
}

fn queued_ms(r: &JobRecord) -> f64 {
    match (r.enqueued_at, r.started_at) {
        (Some(e), Some(s)) => s
            .signed_duration_since(e)
            .num_microseconds()
            .map_or(f64::NAN, |us| us as f64 / 1000.0),
        _ => f64::NAN,
    }
}
