//! Records: what workers (and the client) write to Postgres, and how each is written.
//!
//! Every write is an upsert that cannot go back in time, so records may be written twice or
//! late (replayed from a spool after an outage, or from another worker) without harm:
//! - a job's row moves only forward in `(attempts, phase)`; a run's row is keyed by its own
//!   run id;
//! - a sandbox's row takes an event only if it is not older than the last one applied, and
//!   never leaves `terminated`; its counters only grow;
//! - sandbox usage is inserted once per sandbox ([`record_sandbox_usage`]);
//! - a worker's per-repository figures are deltas added to `repo_stats` once per flush:
//!   each row remembers the worker's last flush sequence added to it, and a flush whose
//!   sequence is not above it (a retried batch, a replayed spool) adds nothing
//!   ([`RepoStatsFlush`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Postgres, Transaction};

use gitfleet_contract::Redactor;
use gitfleet_contract::steps::GitSteps;
use gitfleet_contract::{JobError, JobStatus, time_from_micros};
use gitfleet_queue::{AnsweredJob, Cancelled};

use crate::StoreError;
use crate::usage::record_sandbox_usage;

/// One change to the record. Serialized as a JSON line in the spool file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    Job(JobEvent),
    Sandbox(SandboxEvent),
    Worker(WorkerEvent),
    /// What a worker did with its repositories since its previous flush.
    RepoStats(RepoStatsFlush),
    /// Every sandbox of a worker is gone (it stopped).
    WorkerSandboxesTerminated {
        worker_id: String,
        at: DateTime<Utc>,
    },
    /// An action taken through the API (`audit.rs`).
    Audit(crate::audit::AuditEntry),
    /// A dead or delayed job deleted by hand: gone from Redis, its row marked.
    JobDeleted(DeletedJob),
}

/// A job deleted by hand ([`gitfleet_queue::Queue::delete`] or a bulk delete): its row gets
/// `deleted_at`; a deleted delayed job, which will never run, also ends `cancelled`. Made
/// from what the queue held, so a row the record never had is made whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedJob {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    pub org_id: Option<String>,
    /// `dead` or `delayed`: what it was when deleted.
    pub was: JobStatus,
    pub attempts: u32,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// A job's state after something happened to it (enqueued, a run started or ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub sandbox_id: Option<String>,
    pub status: JobStatus,
    pub attempts: u32,
    pub max_attempts: Option<u32>,
    pub worker_id: Option<String>,
    /// The run this event belongs to (absent for an enqueue).
    pub run_id: Option<String>,
    /// Already redacted.
    pub error: Option<JobError>,
    pub result: Option<Value>,
    pub enqueued_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    /// A dead job sent back by hand: its attempts start again from 0, so this write must
    /// apply whatever the row says.
    #[serde(default)]
    pub reset: bool,
    /// The git steps of the run this event ends (absent while it runs, and for events that
    /// end no run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_steps: Option<GitSteps>,
}

impl JobEvent {
    /// An event of job `job_id` in `status`, with its agent, task and sandbox read from its
    /// `args` (when given) and nothing else known yet: callers fill in what they know, the
    /// organization included (the envelope's; never read from the args).
    pub fn new(
        job_id: impl Into<String>,
        op: impl Into<String>,
        queue: impl Into<String>,
        status: JobStatus,
        args: Option<&Value>,
    ) -> Self {
        let arg = |name: &str| {
            args.and_then(|a| a.get(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        JobEvent {
            job_id: job_id.into(),
            op: op.into(),
            queue: queue.into(),
            org_id: None,
            agent_id: arg("agent_id"),
            task_id: arg("task_id"),
            sandbox_id: arg("sandbox_id"),
            status,
            attempts: 0,
            max_attempts: None,
            worker_id: None,
            run_id: None,
            error: None,
            result: None,
            enqueued_at: None,
            started_at: None,
            finished_at: None,
            retry_at: None,
            reset: false,
            git_steps: None,
        }
    }

    /// The final row of a job the queue answered `sandbox_not_found` without running it (it
    /// waited in the own queue of a worker that is gone), its message redacted. Dead at the
    /// attempts it had, so it applies over any row the job has (waiting, or waiting out a
    /// retry) and a replay, or a late `waiting` row, changes nothing.
    pub fn answered(job: &AnsweredJob, redactor: &Redactor) -> Self {
        let time = |us: i64| time_from_micros(us).filter(|_| us > 0);
        JobEvent {
            org_id: job.org_id.clone(),
            agent_id: job.agent_id.clone(),
            task_id: job.task_id.clone(),
            sandbox_id: job.sandbox_id.clone(),
            attempts: job.attempts,
            max_attempts: (job.max_attempts > 0).then_some(job.max_attempts),
            error: Some(JobError::new(
                job.error.kind,
                redactor.redact(&job.error.message),
            )),
            enqueued_at: time(job.enqueued_at_us),
            finished_at: time(job.finished_at_us).or_else(|| Some(Utc::now())),
            ..JobEvent::new(&job.id, &job.op, &job.queue, JobStatus::Dead, None)
        }
    }

    /// The final row of a job cancelled before it ran ([`gitfleet_queue::Queue::cancel`]):
    /// `cancelled` at the runs it had, so it applies over its `waiting` row, or the
    /// `delayed` one of a retry waiting out its backoff, and a late or replayed earlier row
    /// changes nothing. Nothing else writes it: no worker sees the job again. Runs given
    /// back unfinished count here: the row of such a run says `running` at the attempt the
    /// queue then took back, and must be passed.
    pub fn cancelled(job: &Cancelled) -> Self {
        JobEvent {
            org_id: job.org.clone(),
            agent_id: job.agent_id.clone(),
            task_id: job.task_id.clone(),
            sandbox_id: job.sandbox_id.clone(),
            attempts: job.attempts.saturating_add(job.given_back),
            max_attempts: (job.max_attempts > 0).then_some(job.max_attempts),
            enqueued_at: job.enqueued_at,
            finished_at: Some(job.finished_at),
            ..JobEvent::new(&job.job_id, &job.op, &job.queue, JobStatus::Cancelled, None)
        }
    }

    /// Where in one attempt the job is: 0 waiting to run, 1 running, 2 waiting for a retry,
    /// 3 finished (a cancelled job too: it finished without another run).
    pub fn phase(&self) -> i16 {
        match self.status {
            JobStatus::Running => 1,
            JobStatus::Done | JobStatus::Dead | JobStatus::Cancelled => 3,
            JobStatus::Waiting | JobStatus::Delayed if self.attempts > 0 => 2,
            JobStatus::Waiting | JobStatus::Delayed => 0,
        }
    }

    /// How the run this event belongs to ended, as `job_runs.outcome` has it; `None` for a
    /// cancelled job, which is cancelled between runs, never during one.
    fn run_outcome(&self) -> Option<&'static str> {
        match self.status {
            JobStatus::Running => Some("running"),
            JobStatus::Done => Some("done"),
            JobStatus::Dead => Some("dead"),
            JobStatus::Waiting | JobStatus::Delayed => Some("retry"),
            JobStatus::Cancelled => None,
        }
    }
}

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxStatus {
    Initializing,
    Ready,
    InUse,
    Error,
    Terminated,
}

impl SandboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxStatus::Initializing => "initializing",
            SandboxStatus::Ready => "ready",
            SandboxStatus::InUse => "in_use",
            SandboxStatus::Error => "error",
            SandboxStatus::Terminated => "terminated",
        }
    }
}

/// What a sandbox was made from (on its first event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxOrigin {
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    /// Without credentials.
    pub repo_url: String,
    pub branch: String,
    pub agent_branch: String,
    /// The clone's settings (`shallow`, `sparse_paths`).
    pub config: Value,
    /// How it was made (absent in records from before it was kept).
    #[serde(default)]
    pub source: Option<SandboxSource>,
}

/// A sandbox after something happened to it. Counters are the worker's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxEvent {
    pub sandbox_id: String,
    pub worker_id: String,
    pub status: SandboxStatus,
    pub last_operation: Option<String>,
    pub use_count: u32,
    pub error_count: u32,
    /// Already redacted.
    pub last_error: Option<String>,
    /// Present on the event that creates the row.
    pub origin: Option<SandboxOrigin>,
    pub is_pooled: Option<bool>,
    pub ttl_tier: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

pub use gitfleet_contract::ops::SandboxSource;

/// One flush of a worker's per-repository figures: the deltas since its previous flush.
/// `seq` grows by one per flush of the worker process (whose id is new each start), so
/// applying a flush twice adds once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoStatsFlush {
    pub worker_id: String,
    pub seq: u64,
    pub rows: Vec<RepoStatsDelta>,
    pub at: DateTime<Utc>,
}

/// What one worker did with one repository, for one organization, since its last flush.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoStatsDelta {
    /// Without credentials (redacted again before it is written).
    pub repo_url: String,
    /// The organization of the jobs counted (`None`: jobs without one, the worker's own
    /// maintenance).
    pub org_id: Option<String>,
    pub made_pool: u64,
    pub made_cache: u64,
    pub made_template: u64,
    pub made_cold: u64,
    pub fetches: u64,
    pub last_fetch_at: Option<DateTime<Utc>>,
    /// The mirror's bytes on disk, measured at the flush (when it was used since the last).
    pub mirror_bytes: Option<u64>,
    pub pushes: u64,
    pub rebases: u64,
    pub conflicts: u64,
    /// The last thing counted.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl RepoStatsDelta {
    /// A sandbox made from `source`.
    pub fn made(&mut self, source: SandboxSource) {
        match source {
            SandboxSource::Cache => self.made_cache += 1,
            SandboxSource::Pool => self.made_pool += 1,
            SandboxSource::Template => self.made_template += 1,
            SandboxSource::Cold => self.made_cold += 1,
        }
    }
}

/// A worker's row: registration, heartbeats, stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerEvent {
    pub worker_id: String,
    pub host: String,
    pub version: String,
    pub pid: u32,
    pub queues: String,
    /// `running`, `stopping` or `stopped`.
    pub state: String,
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Record {
    pub(crate) async fn apply(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        sandbox_hour_usd: f64,
    ) -> Result<(), StoreError> {
        match self {
            Record::Job(j) => apply_jobs(tx, &[j], j.reset).await,
            Record::Sandbox(s) => apply_sandbox(tx, s, sandbox_hour_usd).await,
            Record::Worker(w) => apply_worker(tx, w).await,
            Record::RepoStats(f) => apply_repo_stats(tx, f).await,
            Record::WorkerSandboxesTerminated { worker_id, at } => {
                let gone = sqlx::query_scalar!(
                    r#"
UPDATE git_sandboxes
   SET status = 'terminated', terminated_at = clock_timestamp(), updated_at = $2
 WHERE worker_id = $1 AND status <> 'terminated'
RETURNING sandbox_id
"#,
                    worker_id,
                    at,
                )
                .fetch_all(&mut **tx)
                .await?;
                record_sandbox_usage(tx, &gone, sandbox_hour_usd).await
            }
            Record::Audit(e) => crate::audit::apply_audit(tx, e).await,
            Record::JobDeleted(d) => apply_deleted(tx, d).await,
        }
    }
}

/// Marks a deleted job's row (making it if the record never had one). A delayed job deleted
/// never runs: it ends `cancelled`, finished then, at phase 3, so no late row of an earlier
/// run moves it back. A dead one keeps its status (and its error). Written twice, the first
/// mark stays.
async fn apply_deleted(
    tx: &mut Transaction<'static, Postgres>,
    d: &DeletedJob,
) -> Result<(), StoreError> {
    let delayed = d.was != JobStatus::Dead;
    let status = if delayed { "cancelled" } else { "dead" };
    sqlx::query!(
        r#"
INSERT INTO jobs (job_id, op, queue, org_id, status, attempts, phase, enqueued_at, finished_at,
                  updated_at, deleted_at)
VALUES ($1, $2, $3, $4, $5, $6, 3, $7, $8, $8, $8)
ON CONFLICT (job_id) DO UPDATE SET
    deleted_at = COALESCE(jobs.deleted_at, EXCLUDED.deleted_at),
    status = CASE WHEN $9 THEN 'cancelled' ELSE jobs.status END,
    phase = CASE WHEN $9 THEN 3 ELSE jobs.phase END,
    attempts = GREATEST(jobs.attempts, EXCLUDED.attempts),
    finished_at = CASE WHEN $9 THEN COALESCE(jobs.finished_at, EXCLUDED.finished_at)
                       ELSE jobs.finished_at END,
    retry_at = CASE WHEN $9 THEN NULL ELSE jobs.retry_at END,
    updated_at = EXCLUDED.updated_at
"#,
        d.job_id,
        d.op,
        d.queue,
        d.org_id,
        status,
        int(d.attempts),
        d.enqueued_at,
        d.at,
        delayed,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How many of the records at the head of `records` [`apply_jobs`] can write at once: job
/// records of distinct jobs (one statement may touch a row only once), none of them a
/// reset (a reset overrides the forward-only guard, which a shared statement cannot do per
/// row).
pub(crate) fn job_run_len(records: &[Record]) -> usize {
    let mut seen = std::collections::HashSet::new();
    records
        .iter()
        .take_while(|r| match r {
            Record::Job(j) => !j.reset && seen.insert(j.job_id.as_str()),
            _ => false,
        })
        .count()
}

/// Writes job records of distinct jobs: one upsert of their rows and one of their runs'
/// rows, each a statement over arrays. A row moves only forward in `(attempts, phase)`,
/// unless `reset` (a dead job sent back by hand, whose attempts start again): the whole
/// statement's, so a reset is written alone ([`job_run_len`]).
pub(crate) async fn apply_jobs(
    tx: &mut Transaction<'static, Postgres>,
    jobs: &[&JobEvent],
    reset: bool,
) -> Result<(), StoreError> {
    let mut c = JobColumns::default();
    let mut runs = RunColumns::default();
    for j in jobs {
        let (kind, message) = match &j.error {
            Some(e) => (Some(e.kind.as_str().to_string()), Some(e.message.clone())),
            None => (None, None),
        };
        c.job_id.push(j.job_id.clone());
        c.op.push(j.op.clone());
        c.queue.push(j.queue.clone());
        c.org_id.push(j.org_id.clone());
        c.agent_id.push(j.agent_id.clone());
        c.task_id.push(j.task_id.clone());
        c.sandbox_id.push(j.sandbox_id.clone());
        c.status.push(j.status.as_str().to_string());
        c.attempts.push(int(j.attempts));
        c.phase.push(j.phase());
        c.max_attempts.push(j.max_attempts.map(int));
        c.worker_id.push(j.worker_id.clone());
        c.result.push(j.result.as_ref().map(|v| v.to_string()));
        c.enqueued_at.push(j.enqueued_at);
        c.started_at.push(j.started_at);
        // A job's finish time is its final run's; a run that ends in a retry has its own.
        c.finished_at
            .push(j.finished_at.filter(|_| j.status.is_final()));
        c.retry_at.push(j.retry_at);
        if let (Some(run_id), Some(worker), Some(started), Some(outcome)) =
            (&j.run_id, &j.worker_id, j.started_at, j.run_outcome())
        {
            runs.run_id.push(run_id.clone());
            runs.job_id.push(j.job_id.clone());
            runs.attempt.push(int(j.attempts));
            runs.worker_id.push(worker.clone());
            runs.started_at.push(started);
            runs.finished_at.push(j.finished_at);
            runs.outcome.push(outcome.to_string());
            runs.error_kind.push(kind.clone());
            runs.error_message.push(message.clone());
            runs.retry_at.push(j.retry_at);
            runs.sandbox_id.push(run_sandbox(j));
            let steps = j.git_steps.as_ref();
            runs.git_steps.push(
                steps.map(|s| serde_json::to_string(&s.steps).expect("steps are plain data")),
            );
            runs.git_steps_dropped
                .push(steps.map_or(0, |s| i32::try_from(s.dropped).unwrap_or(i32::MAX)));
        }
        c.error_kind.push(kind);
        c.error_message.push(message);
    }
    let now = Utc::now();
    // `result` travels as text (an array of JSON text, cast back per row).
    sqlx::query!(
        r#"
INSERT INTO jobs (job_id, op, queue, org_id, agent_id, task_id, sandbox_id, status, attempts,
                  phase, max_attempts, worker_id, error_kind, error_message, result,
                  enqueued_at, started_at, finished_at, retry_at, updated_at)
SELECT u.job_id, u.op, u.queue, u.org_id, u.agent_id, u.task_id, u.sandbox_id, u.status,
       u.attempts, u.phase, u.max_attempts, u.worker_id, u.error_kind, u.error_message,
       u.result::jsonb, u.enqueued_at, u.started_at, u.finished_at, u.retry_at, $18
  FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::text[], $9::int4[], $10::int2[], $11::int4[], $12::text[],
              $13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[],
              $19::timestamptz[], $20::timestamptz[])
       AS u(job_id, op, queue, org_id, agent_id, task_id, sandbox_id, status, attempts, phase,
            max_attempts, worker_id, error_kind, error_message, result, enqueued_at,
            started_at, finished_at, retry_at)
ON CONFLICT (job_id) DO UPDATE SET
    op = EXCLUDED.op,
    queue = EXCLUDED.queue,
    org_id = COALESCE(EXCLUDED.org_id, jobs.org_id),
    agent_id = COALESCE(EXCLUDED.agent_id, jobs.agent_id),
    task_id = COALESCE(EXCLUDED.task_id, jobs.task_id),
    sandbox_id = COALESCE(EXCLUDED.sandbox_id, jobs.sandbox_id),
    status = EXCLUDED.status,
    attempts = EXCLUDED.attempts,
    phase = EXCLUDED.phase,
    max_attempts = COALESCE(EXCLUDED.max_attempts, jobs.max_attempts),
    worker_id = COALESCE(EXCLUDED.worker_id, jobs.worker_id),
    error_kind = CASE WHEN EXCLUDED.status = 'running' THEN jobs.error_kind ELSE EXCLUDED.error_kind END,
    error_message = CASE WHEN EXCLUDED.status = 'running' THEN jobs.error_message ELSE EXCLUDED.error_message END,
    result = EXCLUDED.result,
    enqueued_at = COALESCE(EXCLUDED.enqueued_at, jobs.enqueued_at),
    started_at = COALESCE(EXCLUDED.started_at, jobs.started_at),
    finished_at = EXCLUDED.finished_at,
    retry_at = EXCLUDED.retry_at,
    updated_at = EXCLUDED.updated_at
WHERE $21 OR (EXCLUDED.attempts, EXCLUDED.phase) >= (jobs.attempts, jobs.phase)
"#,
        &c.job_id,
        &c.op,
        &c.queue,
        &c.org_id as &[Option<String>],
        &c.agent_id as &[Option<String>],
        &c.task_id as &[Option<String>],
        &c.sandbox_id as &[Option<String>],
        &c.status,
        &c.attempts,
        &c.phase,
        &c.max_attempts as &[Option<i32>],
        &c.worker_id as &[Option<String>],
        &c.error_kind as &[Option<String>],
        &c.error_message as &[Option<String>],
        &c.result as &[Option<String>],
        &c.enqueued_at as &[Option<DateTime<Utc>>],
        &c.started_at as &[Option<DateTime<Utc>>],
        now,
        &c.finished_at as &[Option<DateTime<Utc>>],
        &c.retry_at as &[Option<DateTime<Utc>>],
        reset,
    )
    .execute(&mut **tx)
    .await?;
    if runs.run_id.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"
INSERT INTO job_runs (run_id, job_id, attempt, worker_id, started_at, finished_at, outcome,
                      error_kind, error_message, retry_at, sandbox_id, git_steps,
                      git_steps_dropped)
SELECT u.run_id, u.job_id, u.attempt, u.worker_id, u.started_at, u.finished_at, u.outcome,
       u.error_kind, u.error_message, u.retry_at, u.sandbox_id, u.git_steps::jsonb,
       u.git_steps_dropped
  FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::text[], $5::timestamptz[],
              $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::timestamptz[],
              $11::text[], $12::text[], $13::int4[])
       AS u(run_id, job_id, attempt, worker_id, started_at, finished_at, outcome, error_kind,
            error_message, retry_at, sandbox_id, git_steps, git_steps_dropped)
ON CONFLICT (run_id) DO UPDATE SET
    finished_at = EXCLUDED.finished_at,
    outcome = EXCLUDED.outcome,
    error_kind = EXCLUDED.error_kind,
    error_message = EXCLUDED.error_message,
    retry_at = EXCLUDED.retry_at,
    sandbox_id = COALESCE(EXCLUDED.sandbox_id, job_runs.sandbox_id),
    git_steps = EXCLUDED.git_steps,
    git_steps_dropped = EXCLUDED.git_steps_dropped
WHERE job_runs.outcome = 'running'
"#,
        &runs.run_id,
        &runs.job_id,
        &runs.attempt,
        &runs.worker_id,
        &runs.started_at,
        &runs.finished_at as &[Option<DateTime<Utc>>],
        &runs.outcome,
        &runs.error_kind as &[Option<String>],
        &runs.error_message as &[Option<String>],
        &runs.retry_at as &[Option<DateTime<Utc>>],
        &runs.sandbox_id as &[Option<String>],
        &runs.git_steps as &[Option<String>],
        &runs.git_steps_dropped,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The columns of `jobs` rows, one array each, for [`apply_jobs`].
#[derive(Default)]
struct JobColumns {
    job_id: Vec<String>,
    op: Vec<String>,
    queue: Vec<String>,
    org_id: Vec<Option<String>>,
    agent_id: Vec<Option<String>>,
    task_id: Vec<Option<String>>,
    sandbox_id: Vec<Option<String>>,
    status: Vec<String>,
    attempts: Vec<i32>,
    phase: Vec<i16>,
    max_attempts: Vec<Option<i32>>,
    worker_id: Vec<Option<String>>,
    error_kind: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    result: Vec<Option<String>>,
    enqueued_at: Vec<Option<DateTime<Utc>>>,
    started_at: Vec<Option<DateTime<Utc>>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    retry_at: Vec<Option<DateTime<Utc>>>,
}

/// The columns of `job_runs` rows, one array each, for [`apply_jobs`].
#[derive(Default)]
struct RunColumns {
    run_id: Vec<String>,
    job_id: Vec<String>,
    attempt: Vec<i32>,
    worker_id: Vec<String>,
    started_at: Vec<DateTime<Utc>>,
    finished_at: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<String>,
    error_kind: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    retry_at: Vec<Option<DateTime<Utc>>>,
    sandbox_id: Vec<Option<String>>,
    /// JSON text (cast back per row), as `result` travels.
    git_steps: Vec<Option<String>>,
    git_steps_dropped: Vec<i32>,
}

/// The sandbox a run worked in: the one its args name, or the one a clone made.
fn run_sandbox(j: &JobEvent) -> Option<String> {
    j.sandbox_id.clone().or_else(|| {
        let made = j.result.as_ref().filter(|_| j.op == "clone")?;
        Some(made.get("sandbox_id")?.as_str()?.to_string())
    })
}

async fn apply_sandbox(
    tx: &mut Transaction<'static, Postgres>,
    s: &SandboxEvent,
    sandbox_hour_usd: f64,
) -> Result<(), StoreError> {
    let terminated = s.status == SandboxStatus::Terminated;
    if let Some(o) = &s.origin {
        sqlx::query!(
            r#"
INSERT INTO git_sandboxes (sandbox_id, worker_id, org_id, agent_id, task_id, repo_url, branch,
                           agent_branch, status, last_operation, created_at, last_used_at,
                           use_count, error_count, last_error, config, updated_at, source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, clock_timestamp(), $11, $12, $13, $14, $15, $11, $16)
ON CONFLICT (sandbox_id) DO NOTHING
"#,
            s.sandbox_id,
            s.worker_id,
            o.org_id,
            o.agent_id,
            o.task_id,
            o.repo_url,
            o.branch,
            o.agent_branch,
            s.status.as_str(),
            s.last_operation,
            s.at,
            int(s.use_count),
            int(s.error_count),
            s.last_error,
            o.config,
            o.source.map(SandboxSource::as_str),
        )
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query!(
        r#"
UPDATE git_sandboxes SET
    status = $2,
    last_operation = COALESCE($3, last_operation),
    last_used_at = GREATEST(last_used_at, $4),
    terminated_at = CASE WHEN $2 = 'terminated' THEN clock_timestamp() ELSE terminated_at END,
    use_count = GREATEST(use_count, $5),
    error_count = GREATEST(error_count, $6),
    last_error = COALESCE($7, last_error),
    is_pooled = COALESCE($8, is_pooled),
    ttl_tier = COALESCE($9, ttl_tier),
    expires_at = COALESCE($10, expires_at),
    updated_at = $4
WHERE sandbox_id = $1 AND status <> 'terminated' AND updated_at <= $4
"#,
        s.sandbox_id,
        s.status.as_str(),
        s.last_operation,
        s.at,
        int(s.use_count),
        int(s.error_count),
        s.last_error,
        s.is_pooled,
        s.ttl_tier,
        s.expires_at,
    )
    .execute(&mut **tx)
    .await?;
    if terminated {
        let ids = std::slice::from_ref(&s.sandbox_id);
        record_sandbox_usage(tx, ids, sandbox_hour_usd).await?;
    }
    Ok(())
}

/// Adds a flush's deltas to `repo_stats`, one statement over arrays. A row takes a flush
/// only if its sequence is above the last one the row took from that worker: the writer
/// retries a whole batch after a failed transaction and replays spooled records, and
/// neither may count twice. (Within one worker process flushes reach the writer, and
/// Postgres, in order; a flush that could not be written before a later one would lose its
/// deltas, never double them: at most once.)
async fn apply_repo_stats(
    tx: &mut Transaction<'static, Postgres>,
    f: &RepoStatsFlush,
) -> Result<(), StoreError> {
    if f.rows.is_empty() {
        return Ok(());
    }
    // The URLs were checked at clone (no credentials); mask any user info all the same.
    let redactor = Redactor::default();
    let n = f.rows.len();
    let mut url = Vec::with_capacity(n);
    let mut org = Vec::with_capacity(n);
    let mut counts: [Vec<i64>; 8] = Default::default();
    let mut fetch_at = Vec::with_capacity(n);
    let mut bytes = Vec::with_capacity(n);
    let mut used_at = Vec::with_capacity(n);
    for r in &f.rows {
        url.push(redactor.redact(&r.repo_url));
        org.push(r.org_id.clone());
        let values = [
            r.made_pool,
            r.made_cache,
            r.made_template,
            r.made_cold,
            r.fetches,
            r.pushes,
            r.rebases,
            r.conflicts,
        ];
        for (column, v) in counts.iter_mut().zip(values) {
            column.push(big(v));
        }
        fetch_at.push(r.last_fetch_at);
        bytes.push(r.mirror_bytes.map(big));
        used_at.push(r.last_used_at.unwrap_or(f.at));
    }
    let [
        pool,
        cache,
        template,
        cold,
        fetches,
        pushes,
        rebases,
        conflicts,
    ] = &counts;
    sqlx::query!(
        r#"
INSERT INTO repo_stats AS s (repo_url, org_id, worker_id, made_pool, made_cache, made_template,
                             made_cold, fetches, pushes, rebases, conflicts, last_fetch_at,
                             mirror_bytes, last_used_at, flush_seq, updated_at)
SELECT u.repo_url, u.org_id, $1, u.made_pool, u.made_cache, u.made_template, u.made_cold,
       u.fetches, u.pushes, u.rebases, u.conflicts, u.last_fetch_at, u.mirror_bytes,
       u.last_used_at, $2, $3
  FROM UNNEST($4::text[], $5::text[], $6::int8[], $7::int8[], $8::int8[], $9::int8[],
              $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::timestamptz[],
              $15::int8[], $16::timestamptz[])
       AS u(repo_url, org_id, made_pool, made_cache, made_template, made_cold, fetches,
            pushes, rebases, conflicts, last_fetch_at, mirror_bytes, last_used_at)
ON CONFLICT (repo_url, org_id, worker_id) DO UPDATE SET
    made_pool = s.made_pool + EXCLUDED.made_pool,
    made_cache = s.made_cache + EXCLUDED.made_cache,
    made_template = s.made_template + EXCLUDED.made_template,
    made_cold = s.made_cold + EXCLUDED.made_cold,
    fetches = s.fetches + EXCLUDED.fetches,
    pushes = s.pushes + EXCLUDED.pushes,
    rebases = s.rebases + EXCLUDED.rebases,
    conflicts = s.conflicts + EXCLUDED.conflicts,
    last_fetch_at = GREATEST(s.last_fetch_at, EXCLUDED.last_fetch_at),
    mirror_bytes = COALESCE(EXCLUDED.mirror_bytes, s.mirror_bytes),
    last_used_at = GREATEST(s.last_used_at, EXCLUDED.last_used_at),
    flush_seq = EXCLUDED.flush_seq,
    updated_at = EXCLUDED.updated_at
WHERE s.flush_seq < EXCLUDED.flush_seq
"#,
        f.worker_id,
        big(f.seq),
        f.at,
        &url,
        &org as &[Option<String>],
        pool,
        cache,
        template,
        cold,
        fetches,
        pushes,
        rebases,
        conflicts,
        &fetch_at as &[Option<DateTime<Utc>>],
        &bytes as &[Option<i64>],
        &used_at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn apply_worker(
    tx: &mut Transaction<'static, Postgres>,
    w: &WorkerEvent,
) -> Result<(), StoreError> {
    sqlx::query!(
        r#"
INSERT INTO workers (worker_id, host, version, pid, queues, state, started_at, last_heartbeat_at, stopped_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, CASE WHEN $6 = 'stopped' THEN $8::timestamptz END)
ON CONFLICT (worker_id) DO UPDATE SET
    state = EXCLUDED.state,
    last_heartbeat_at = EXCLUDED.last_heartbeat_at,
    stopped_at = EXCLUDED.stopped_at
WHERE workers.last_heartbeat_at <= EXCLUDED.last_heartbeat_at AND workers.state <> 'stopped'
"#,
        w.worker_id,
        w.host,
        w.version,
        i32::try_from(w.pid).ok(),
        w.queues,
        w.state,
        w.started_at,
        w.at,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
