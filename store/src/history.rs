//! Reading the record back: job history, the sandbox registry, the scheduler's runs. What
//! `gitfleet jobs`, `job`, `sandboxes` and `schedule` print.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Store, StoreError};
use gitfleet_contract::rfc3339_micros;

/// Which jobs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub op: Option<String>,
    pub org: Option<String>,
    pub limit: i64,
}

/// A job's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub job_id: String,
    pub op: String,
    pub queue: String,
    pub status: String,
    pub attempts: i32,
    pub max_attempts: Option<i32>,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub sandbox_id: Option<String>,
    pub worker_id: Option<String>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub result: Option<Value>,
    #[serde(with = "rfc3339_micros")]
    pub enqueued_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// One run (attempt) of a job.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub attempt: i32,
    pub worker_id: String,
    pub outcome: String,
    #[serde(with = "rfc3339_micros")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    #[serde(with = "rfc3339_micros")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// A job's row and its runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobHistory {
    #[serde(flatten)]
    pub job: JobRow,
    pub runs: Vec<RunRow>,
}

/// A sandbox's row in the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SandboxRow {
    pub sandbox_id: String,
    pub worker_id: String,
    pub status: String,
    pub org_id: Option<String>,
    pub agent_id: Option<String>,
    pub task_id: Option<String>,
    pub repo_url: String,
    pub branch: String,
    pub agent_branch: String,
    pub last_operation: Option<String>,
    pub use_count: i32,
    pub error_count: i32,
    pub last_error: Option<String>,
    pub is_pooled: bool,
    pub ttl_tier: Option<String>,
    #[serde(with = "rfc3339_micros")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    pub terminated_at: Option<DateTime<Utc>>,
}

/// One run of a scheduler task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerRun {
    pub task: String,
    #[serde(with = "rfc3339_micros")]
    pub tick: Option<DateTime<Utc>>,
    pub replica: String,
    pub outcome: String,
    pub detail: Option<String>,
    #[serde(with = "rfc3339_micros")]
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: i64,
}

impl Store {
    /// Jobs matching `filter`, most recently enqueued first.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        Ok(sqlx::query_as!(
            JobRow,
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at
  FROM jobs
 WHERE ($1::text IS NULL OR status = $1)
   AND ($2::text IS NULL OR op = $2)
   AND ($3::text IS NULL OR org_id = $3)
 ORDER BY enqueued_at DESC NULLS LAST, job_id DESC
 LIMIT $4
"#,
            filter.status,
            filter.op,
            filter.org,
            filter.limit.max(0),
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// A job's row and its runs, oldest run first; `None` if the record has no such job.
    pub async fn job_history(&self, job_id: &str) -> Result<Option<JobHistory>, StoreError> {
        let job = sqlx::query_as!(
            JobRow,
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at
  FROM jobs WHERE job_id = $1
"#,
            job_id
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some(job) = job else { return Ok(None) };
        let runs = sqlx::query_as!(
            RunRow,
            r#"
SELECT attempt, worker_id, outcome, started_at AS "started_at?", finished_at,
       (EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::float8 AS duration_ms,
       error_kind, error_message, retry_at
  FROM job_runs WHERE job_id = $1
 ORDER BY started_at, attempt
"#,
            job_id
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(JobHistory { job, runs }))
    }

    /// The registry, most recently used first.
    pub async fn sandboxes(&self, limit: i64) -> Result<Vec<SandboxRow>, StoreError> {
        Ok(sqlx::query_as!(
            SandboxRow,
            r#"
SELECT sandbox_id, worker_id, status, org_id, agent_id, task_id, repo_url, branch, agent_branch,
       last_operation, use_count, error_count, last_error, is_pooled, ttl_tier, expires_at,
       created_at AS "created_at?", last_used_at AS "last_used_at?", terminated_at
  FROM git_sandboxes
 ORDER BY last_used_at DESC, sandbox_id
 LIMIT $1
"#,
            limit.max(0)
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The scheduler's runs, most recent first.
    pub async fn scheduler_runs(&self, limit: i64) -> Result<Vec<SchedulerRun>, StoreError> {
        Ok(sqlx::query_as!(
            SchedulerRun,
            r#"
SELECT task, tick AS "tick?", replica, outcome, detail, started_at AS "started_at?", duration_ms
  FROM scheduler_runs
 ORDER BY started_at DESC, id DESC
 LIMIT $1
"#,
            limit.max(0)
        )
        .fetch_all(&self.pool)
        .await?)
    }
}
