//! Reading the record back: job history, the sandbox registry, the scheduler's runs. What
//! `gitfleet jobs`, `job`, `sandboxes` and `schedule` print.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Store, StoreError};
use gitfleet_contract::steps::GitStep;
use gitfleet_contract::{rfc3339_micros, time_from_micros};

/// Which jobs to list, newest first (by enqueue time, then id). Each field set narrows the
/// list (exact matches); `None` leaves it open.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<String>,
    pub op: Option<String>,
    pub org: Option<String>,
    /// The `agent_id` of its args.
    pub agent: Option<String>,
    /// The `task_id` of its args.
    pub task: Option<String>,
    /// The `sandbox_id` of its args.
    pub sandbox: Option<String>,
    pub queue: Option<String>,
    /// Enqueued at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Enqueued before this time.
    pub until: Option<DateTime<Utc>>,
    /// Only the rows after this one in the list's order: the next page (keyset pagination,
    /// so a page costs the same however deep it is, and rows written meanwhile neither
    /// repeat nor shift the pages).
    pub before: Option<JobCursor>,
    pub limit: i64,
}

/// Where a page of the job history ended: the last row's enqueue time and id. Opaque to
/// callers as a string ([`JobCursor::encode`], [`JobCursor::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    /// `None` for a row without an enqueue time (they come first).
    pub enqueued_at: Option<DateTime<Utc>>,
    pub job_id: String,
}

/// A cursor string that is not one this listing made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor: {0}")]
pub struct CursorError(String);

impl JobCursor {
    /// The cursor of the page that follows `row`.
    pub fn after(row: &JobRow) -> Self {
        JobCursor {
            enqueued_at: row.enqueued_at,
            job_id: row.job_id.clone(),
        }
    }

    /// base64url (no padding) of `<µs since the epoch>.<job id>` (`.<job id>` for a row
    /// without an enqueue time).
    pub fn encode(&self) -> String {
        let micros = self
            .enqueued_at
            .map(|t| t.timestamp_micros().to_string())
            .unwrap_or_default();
        URL_SAFE_NO_PAD.encode(format!("{micros}.{}", self.job_id))
    }

    /// Reads a cursor [`JobCursor::encode`] made; anything else is refused, saying why.
    pub fn decode(text: &str) -> Result<Self, CursorError> {
        let bad =
            |why: &str| CursorError(format!("{why} (pass the `next` cursor of a page as it is)"));
        if text.is_empty() || text.len() > 128 {
            return Err(bad("must be 1-128 characters"));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| bad("not base64url"))?;
        let inner = String::from_utf8(bytes).map_err(|_| bad("not a cursor of this listing"))?;
        let (micros, job_id) = inner
            .split_once('.')
            .ok_or_else(|| bad("not a cursor of this listing"))?;
        if job_id.is_empty()
            || job_id.len() > 64
            || !job_id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad("not a cursor of this listing: no job id in it"));
        }
        let enqueued_at = match micros {
            "" => None,
            us => Some(
                us.parse::<i64>()
                    .ok()
                    .and_then(time_from_micros)
                    .ok_or_else(|| bad("not a cursor of this listing: no time in it"))?,
            ),
        };
        Ok(JobCursor {
            enqueued_at,
            job_id: job_id.to_string(),
        })
    }
}

/// One page of the job history: its rows, and the cursor of the next page when there are
/// more rows.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub rows: Vec<JobRow>,
    pub next: Option<JobCursor>,
}

/// Which sandboxes to list, most recently used first. Each field set narrows the list
/// (exact matches).
#[derive(Debug, Clone, Default)]
pub struct SandboxFilter {
    /// `initializing`, `ready`, `in_use`, `error` or `terminated`.
    pub status: Option<String>,
    pub worker: Option<String>,
    pub org: Option<String>,
    pub agent: Option<String>,
    /// The repository URL exactly as the clone gave it (without credentials).
    pub repo: Option<String>,
    pub limit: i64,
}

/// A job's row.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub enqueued_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// One run (attempt) of a job: where it ran, how it ended, and the git commands it ran.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct RunRow {
    pub attempt: i32,
    pub worker_id: String,
    /// `running`, `done`, `retry` (it failed and the job was retried) or `dead`.
    pub outcome: String,
    /// The sandbox it worked in: the one its args name, or the one a clone made.
    pub sandbox_id: Option<String>,
    /// Each git command it ran, in order (see [`GitStep`]); `null` while it runs, for a run
    /// whose worker died, and for runs recorded before the worker recorded steps.
    pub git_steps: Option<Vec<GitStep>>,
    /// Git commands past the first [`gitfleet_contract::steps::MAX_GIT_STEPS`]: counted,
    /// not kept.
    pub git_steps_dropped: i32,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<f64>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub retry_at: Option<DateTime<Utc>>,
}

/// A job's row and its runs.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct JobHistory {
    #[serde(flatten)]
    pub job: JobRow,
    pub runs: Vec<RunRow>,
}

/// A sandbox's row in the registry.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
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
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub terminated_at: Option<DateTime<Utc>>,
}

/// One run of a scheduler task.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct SchedulerRun {
    pub task: String,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub tick: Option<DateTime<Utc>>,
    pub replica: String,
    pub outcome: String,
    pub detail: Option<String>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: i64,
}

impl Store {
    /// Jobs matching `filter`, most recently enqueued first, ties by id (descending). Rows
    /// without an enqueue time (a job retried by hand that the record had never seen) come
    /// before all others.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        let (before_at, before_id) = match &filter.before {
            Some(c) => (c.enqueued_at, Some(c.job_id.as_str())),
            None => (None, None),
        };
        // One statement for every combination of filters: a filter left open is a NULL
        // parameter, folded away when Postgres plans the statement for its values, so the
        // index of the filter that is set serves it (migrations/).
        Ok(sqlx::query_as!(
            JobRow,
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at
  FROM jobs
 WHERE ($1::text IS NULL OR status = $1)
   AND ($2::text IS NULL OR op = $2)
   AND ($3::text IS NULL OR org_id = $3)
   AND ($4::text IS NULL OR agent_id = $4)
   AND ($5::text IS NULL OR task_id = $5)
   AND ($6::text IS NULL OR sandbox_id = $6)
   AND ($7::text IS NULL OR queue = $7)
   AND ($8::timestamptz IS NULL OR enqueued_at >= $8)
   AND ($9::timestamptz IS NULL OR enqueued_at < $9)
   -- After the cursor's row ($10 its time, NULL when it has none; $11 its id), in the order
   -- below. Rows without a time come first (DESC puts NULLs first, as the indexes on
   -- enqueued_at DESC keep them), so the cursor of a timed row is one row comparison,
   -- which bounds the index scan: a deep page costs what the first one does.
   AND ($11::text IS NULL
        OR (enqueued_at, job_id) < ($10::timestamptz, $11)
        OR ($10::timestamptz IS NULL AND (enqueued_at IS NOT NULL OR job_id < $11)))
 ORDER BY enqueued_at DESC, job_id DESC
 LIMIT $12
"#,
            filter.status,
            filter.op,
            filter.org,
            filter.agent,
            filter.task,
            filter.sandbox,
            filter.queue,
            filter.since,
            filter.until,
            before_at,
            before_id,
            filter.limit.max(0),
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// One page of [`Store::jobs`]: `filter.limit` rows at most, and the cursor of the next
    /// page (to pass as `filter.before`) when more rows match.
    pub async fn jobs_page(&self, filter: &JobFilter) -> Result<JobPage, StoreError> {
        let limit = filter.limit.max(0);
        let mut rows = self
            .jobs(&JobFilter {
                limit: limit + 1,
                ..filter.clone()
            })
            .await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next = rows.last().filter(|_| more).map(JobCursor::after);
        Ok(JobPage { rows, next })
    }

    /// A job's row; `None` if the record has no such job.
    pub async fn job_row(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(sqlx::query_as!(
            JobRow,
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at
  FROM jobs WHERE job_id = $1
"#,
            job_id
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A job's row and its runs, oldest run first; `None` if the record has no such job.
    pub async fn job_history(&self, job_id: &str) -> Result<Option<JobHistory>, StoreError> {
        let Some(job) = self.job_row(job_id).await? else {
            return Ok(None);
        };
        let runs = self.runs_of(job_id).await?;
        Ok(Some(JobHistory { job, runs }))
    }

    /// The runs of job `job_id`, oldest first, each with its worker, times, outcome, error,
    /// sandbox and git steps (what the dashboard's job detail shows); empty for a job the
    /// record has no run of. One indexed query (`job_runs_job_idx`). Rows are written in the
    /// background, so a run that just ended may still read `running` for a moment.
    pub async fn runs_of(&self, job_id: &str) -> Result<Vec<RunRow>, StoreError> {
        let rows = sqlx::query!(
            r#"
SELECT attempt, worker_id, outcome, started_at AS "started_at?", finished_at,
       (EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::float8 AS duration_ms,
       error_kind, error_message, retry_at, sandbox_id, git_steps, git_steps_dropped
  FROM job_runs WHERE job_id = $1
 ORDER BY started_at, attempt
"#,
            job_id
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RunRow {
                attempt: r.attempt,
                worker_id: r.worker_id,
                outcome: r.outcome,
                sandbox_id: r.sandbox_id,
                // Written by `record.rs` from these same types; a row it cannot read (a
                // command this build does not know reads as `other`) shows none.
                git_steps: r.git_steps.and_then(|v| serde_json::from_value(v).ok()),
                git_steps_dropped: r.git_steps_dropped,
                started_at: r.started_at,
                finished_at: r.finished_at,
                duration_ms: r.duration_ms,
                error_kind: r.error_kind,
                error_message: r.error_message,
                retry_at: r.retry_at,
            })
            .collect())
    }

    /// The registry, most recently used first.
    pub async fn sandboxes(&self, limit: i64) -> Result<Vec<SandboxRow>, StoreError> {
        self.sandboxes_filtered(&SandboxFilter {
            limit,
            ..Default::default()
        })
        .await
    }

    /// The sandboxes matching `filter`, most recently used first.
    pub async fn sandboxes_filtered(
        &self,
        filter: &SandboxFilter,
    ) -> Result<Vec<SandboxRow>, StoreError> {
        Ok(sqlx::query_as!(
            SandboxRow,
            r#"
SELECT sandbox_id, worker_id, status, org_id, agent_id, task_id, repo_url, branch, agent_branch,
       last_operation, use_count, error_count, last_error, is_pooled, ttl_tier, expires_at,
       created_at AS "created_at?", last_used_at AS "last_used_at?", terminated_at
  FROM git_sandboxes
 WHERE ($1::text IS NULL OR status = $1)
   AND ($2::text IS NULL OR worker_id = $2)
   AND ($3::text IS NULL OR org_id = $3)
   AND ($4::text IS NULL OR agent_id = $4)
   AND ($5::text IS NULL OR repo_url = $5)
 ORDER BY last_used_at DESC, sandbox_id
 LIMIT $6
"#,
            filter.status,
            filter.worker,
            filter.org,
            filter.agent,
            filter.repo,
            filter.limit.max(0),
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
