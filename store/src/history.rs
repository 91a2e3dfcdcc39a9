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
    /// A job id (26 characters) or the start of one: exact, or by prefix.
    pub id: Option<String>,
    /// Text in the error message, case-insensitive (a trigram index serves it: at least 3
    /// characters).
    pub text: Option<String>,
    /// Jobs on sandboxes of this repository (its URL as the clone gave it). A `clone` job's
    /// own row names no sandbox, so it is not among them.
    pub repo: Option<String>,
    /// Leave out the rows of jobs deleted by hand (a deleted dead job keeps its row, `dead`,
    /// with `deleted_at` set): the dashboard's dead and delayed views list what the queue
    /// still holds.
    pub not_deleted: bool,
    /// The list's order (default: newest enqueued first).
    pub sort: JobSort,
    /// Only the rows after this one in the list's order: the next page (keyset pagination,
    /// so a page costs the same however deep it is, and rows written meanwhile neither
    /// repeat nor shift the pages). A cursor of another order is refused by
    /// [`Store::jobs`].
    pub before: Option<JobCursor>,
    pub limit: i64,
}

/// The order of a job listing: by enqueue or finish time, newest or oldest first, ties by
/// id in the same direction. Rows without the time come first newest-first, last
/// oldest-first; sorting by finish time lists finished jobs only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum JobSort {
    #[default]
    EnqueuedDesc,
    EnqueuedAsc,
    FinishedDesc,
    FinishedAsc,
}

impl JobSort {
    /// As a query parameter has it: `enqueued_desc`, `enqueued_asc`, `finished_desc`,
    /// `finished_asc`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobSort::EnqueuedDesc => "enqueued_desc",
            JobSort::EnqueuedAsc => "enqueued_asc",
            JobSort::FinishedDesc => "finished_desc",
            JobSort::FinishedAsc => "finished_asc",
        }
    }

    pub const ALL: [JobSort; 4] = [
        JobSort::EnqueuedDesc,
        JobSort::EnqueuedAsc,
        JobSort::FinishedDesc,
        JobSort::FinishedAsc,
    ];

    fn column(self) -> &'static str {
        match self {
            JobSort::EnqueuedDesc | JobSort::EnqueuedAsc => "enqueued_at",
            JobSort::FinishedDesc | JobSort::FinishedAsc => "finished_at",
        }
    }

    fn descending(self) -> bool {
        matches!(self, JobSort::EnqueuedDesc | JobSort::FinishedDesc)
    }

    /// The sort time of `row`.
    fn time_of(self, row: &JobRow) -> Option<DateTime<Utc>> {
        match self {
            JobSort::EnqueuedDesc | JobSort::EnqueuedAsc => row.enqueued_at,
            JobSort::FinishedDesc | JobSort::FinishedAsc => row.finished_at,
        }
    }
}

impl std::str::FromStr for JobSort {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        JobSort::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not one of enqueued_desc, enqueued_asc, finished_desc, finished_asc"
                )
            })
    }
}

/// How many rows match a listing's filter: exact up to [`EXACT_COUNT_MAX`], otherwise the
/// planner's estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobCount {
    pub total: i64,
    pub is_estimate: bool,
}

/// Up to this many matching rows are counted exactly (a bounded count: it reads at most
/// this many index entries); past it the total is the planner's estimate.
pub const EXACT_COUNT_MAX: i64 = 10_000;

/// Where a page of the job history ended: the listing's order, the last row's time in that
/// order and its id. Opaque to callers as a string ([`JobCursor::encode`],
/// [`JobCursor::decode`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCursor {
    pub sort: JobSort,
    /// `None` for a row without the sort's time.
    pub at: Option<DateTime<Utc>>,
    pub job_id: String,
}

/// A cursor string that is not one this listing made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cursor: {0}")]
pub struct CursorError(pub(crate) String);

impl JobCursor {
    /// The cursor of the page that follows `row` in a listing ordered by `sort`.
    pub fn after(sort: JobSort, row: &JobRow) -> Self {
        JobCursor {
            sort,
            at: sort.time_of(row),
            job_id: row.job_id.clone(),
        }
    }

    /// base64url (no padding) of `<µs since the epoch>.<job id>` (`.<job id>` for a row
    /// without the time), preceded by `<sort>:` for an order other than the default (so the
    /// cursors of earlier gateways still read).
    pub fn encode(&self) -> String {
        let micros = self
            .at
            .map(|t| t.timestamp_micros().to_string())
            .unwrap_or_default();
        let sort = match self.sort {
            JobSort::EnqueuedDesc => String::new(),
            other => format!("{}:", other.as_str()),
        };
        URL_SAFE_NO_PAD.encode(format!("{sort}{micros}.{}", self.job_id))
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
        let (sort, inner) = match inner.split_once(':') {
            Some((sort, rest)) => (
                sort.parse::<JobSort>()
                    .map_err(|_| bad("not a cursor of this listing: no order in it"))?,
                rest,
            ),
            None => (JobSort::EnqueuedDesc, inner.as_str()),
        };
        let (micros, job_id) = inner
            .split_once('.')
            .ok_or_else(|| bad("not a cursor of this listing"))?;
        if job_id.is_empty()
            || job_id.len() > 64
            || !job_id.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad("not a cursor of this listing: no job id in it"));
        }
        let at = match micros {
            "" => None,
            us => Some(
                us.parse::<i64>()
                    .ok()
                    .and_then(time_from_micros)
                    .ok_or_else(|| bad("not a cursor of this listing: no time in it"))?,
            ),
        };
        Ok(JobCursor {
            sort,
            at,
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, sqlx::FromRow)]
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
    /// When it was deleted by hand (a dead or delayed job, gone from Redis since).
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub deleted_at: Option<DateTime<Utc>>,
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
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema, sqlx::FromRow)]
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
    /// How the sandbox was made: `cache` (a released copy recycled), `pool` (a warm empty
    /// sandbox), `template` (made new, the pool being empty) or `cold` (the worker first
    /// cloned the repository's mirror); absent for sandboxes recorded before it was kept.
    #[schemars(extend("enum" = ["cache", "pool", "template", "cold", null]))]
    pub source: Option<String>,
    /// Its released copy's cache tier (`top`, `hot`, `warm`, `cold`), once released to the
    /// cache.
    pub ttl_tier: Option<String>,
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Seconds until `expires_at` (0 once past it), when the copy is released to the cache
    /// with an expiry; absent when it has none (live, or a top-10 repository's copy, never
    /// evicted).
    pub time_left_secs: Option<f64>,
    /// Seconds since it was made.
    pub age_secs: Option<f64>,
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
    /// Jobs matching `filter`, in its order (newest enqueued first by default, ties by id
    /// in the same direction). Rows without the order's time come first newest-first, last
    /// oldest-first.
    ///
    /// Built per request from the filters that are set (a `QueryBuilder`, every value a
    /// bound parameter), not one static statement with `$n IS NULL OR ...` arms: a search,
    /// a repository and four orders make too many combinations for one statement, and each
    /// shape planned on its own keeps its index (the trigram index for `text`, the order's
    /// index for the cursor) whatever plan Postgres caches.
    pub async fn jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>, StoreError> {
        if let Some(c) = &filter.before
            && c.sort != filter.sort
        {
            return Err(StoreError::Invalid {
                field: "cursor",
                message: format!(
                    "cursor: made for sort={}, not {} (pass the `next` of a page as it is)",
                    c.sort.as_str(),
                    filter.sort.as_str()
                ),
            });
        }
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, \
             task_id, sandbox_id, worker_id, error_kind, error_message, result, enqueued_at, \
             started_at, finished_at, retry_at, deleted_at FROM jobs WHERE TRUE",
        );
        push_conditions(&mut q, filter);
        let sort = filter.sort;
        let col = sort.column();
        if let Some(c) = &filter.before {
            // After the cursor's row in the order below; one row comparison for a timed
            // row, which bounds the index scan: a deep page costs what the first one does.
            match (sort.descending(), c.at) {
                (true, Some(t)) => {
                    q.push(format!(" AND ({col}, job_id) < ("));
                    q.push_bind(t)
                        .push(", ")
                        .push_bind(c.job_id.clone())
                        .push(")");
                }
                (true, None) => {
                    q.push(format!(" AND ({col} IS NOT NULL OR job_id < "));
                    q.push_bind(c.job_id.clone()).push(")");
                }
                (false, Some(t)) => {
                    q.push(format!(" AND (({col}, job_id) > ("));
                    q.push_bind(t).push(", ").push_bind(c.job_id.clone());
                    q.push(format!(") OR {col} IS NULL)"));
                }
                (false, None) => {
                    q.push(format!(" AND {col} IS NULL AND job_id > "));
                    q.push_bind(c.job_id.clone());
                }
            }
        }
        if sort.descending() {
            q.push(format!(" ORDER BY {col} DESC NULLS FIRST, job_id DESC"));
        } else {
            q.push(format!(" ORDER BY {col} ASC NULLS LAST, job_id ASC"));
        }
        q.push(" LIMIT ").push_bind(filter.limit.max(0));
        // Planned for its own values each time, never as a prepared statement's generic plan:
        // the filters' selectivity is skewed (a few delayed jobs, many done), and a generic
        // plan chosen after a few runs read the whole table for a rare state (2 ms became
        // 120 ms from the twelfth page on).
        Ok(q.build_query_as::<JobRow>()
            .persistent(false)
            .fetch_all(&self.pool)
            .await?)
    }

    /// How many jobs match `filter` (its cursor and limit aside): counted exactly when the
    /// planner expects at most a few times [`EXACT_COUNT_MAX`] and the bounded count finds
    /// at most that many; otherwise the planner's estimate (`EXPLAIN`'s row count for the
    /// filter), marked as one. Never a full count of a big table.
    pub async fn count_jobs(&self, filter: &JobFilter) -> Result<JobCount, StoreError> {
        let mut explain = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM jobs WHERE TRUE",
        );
        push_conditions(&mut explain, filter);
        let (plan,): (sqlx::types::Json<Value>,) = explain
            .build_query_as()
            .persistent(false)
            .fetch_one(&self.pool)
            .await?;
        let estimate = plan.0[0]["Plan"]["Plan Rows"]
            .as_f64()
            .map(|r| r.round() as i64)
            .unwrap_or(i64::MAX);
        if estimate > EXACT_COUNT_MAX * 5 {
            return Ok(JobCount {
                total: estimate,
                is_estimate: true,
            });
        }
        let mut count = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE TRUE",
        );
        push_conditions(&mut count, filter);
        count
            .push(" LIMIT ")
            .push_bind(EXACT_COUNT_MAX + 1)
            .push(") AS bounded");
        let (n,): (i64,) = count
            .build_query_as()
            .persistent(false)
            .fetch_one(&self.pool)
            .await?;
        if n <= EXACT_COUNT_MAX {
            Ok(JobCount {
                total: n,
                is_estimate: false,
            })
        } else {
            Ok(JobCount {
                total: estimate.max(n),
                is_estimate: true,
            })
        }
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
        let next = rows
            .last()
            .filter(|_| more)
            .map(|r| JobCursor::after(filter.sort, r));
        Ok(JobPage { rows, next })
    }

    /// A job's row; `None` if the record has no such job.
    pub async fn job_row(&self, job_id: &str) -> Result<Option<JobRow>, StoreError> {
        Ok(sqlx::query_as!(
            JobRow,
            r#"
SELECT job_id, op, queue, status, attempts, max_attempts, org_id, agent_id, task_id, sandbox_id,
       worker_id, error_kind, error_message, result, enqueued_at, started_at, finished_at, retry_at,
       deleted_at
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
       last_operation, use_count, error_count, last_error, is_pooled, source, ttl_tier, expires_at,
       -- GREATEST skips a NULL: no expiry stays NULL.
       (CASE WHEN expires_at IS NOT NULL
             THEN GREATEST(0, EXTRACT(EPOCH FROM (expires_at - now()))) END)::float8
           AS time_left_secs,
       EXTRACT(EPOCH FROM (now() - created_at))::float8 AS age_secs,
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

/// The `WHERE` conditions of a job listing's filter (after `WHERE TRUE`), each value bound.
fn push_conditions(q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, f: &JobFilter) {
    let eq = |q: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, col: &str, v: &Option<String>| {
        if let Some(v) = v {
            q.push(format!(" AND {col} = ")).push_bind(v.clone());
        }
    };
    eq(q, "status", &f.status);
    eq(q, "op", &f.op);
    eq(q, "org_id", &f.org);
    eq(q, "agent_id", &f.agent);
    eq(q, "task_id", &f.task);
    eq(q, "sandbox_id", &f.sandbox);
    eq(q, "queue", &f.queue);
    if let Some(t) = f.since {
        q.push(" AND enqueued_at >= ").push_bind(t);
    }
    if let Some(t) = f.until {
        q.push(" AND enqueued_at < ").push_bind(t);
    }
    if let Some(id) = &f.id {
        if id.len() == 26 {
            q.push(" AND job_id = ").push_bind(id.clone());
        } else {
            // Ids are letters and digits (checked by the caller): nothing to escape.
            // `text_pattern_ops` (0006) serves the prefix.
            q.push(" AND job_id LIKE ").push_bind(format!("{id}%"));
        }
    }
    if let Some(text) = &f.text {
        q.push(" AND error_message ILIKE ")
            .push_bind(format!("%{}%", like_escape(text)));
    }
    if let Some(repo) = &f.repo {
        // The registry knows each sandbox's repository (`git_sandboxes_repo_idx`, 0009),
        // and the jobs' sandbox index their jobs. An array, not `IN (SELECT ...)`: as a
        // semi-join the planner walked the time index and looked each job's sandbox up
        // (100 ms for a repository with 0.4% of a million jobs); the array is read first
        // and its jobs found by `jobs_sandbox_idx`, so a page costs what the repository's
        // jobs number, whatever the size of the history.
        q.push(
            " AND sandbox_id = ANY (ARRAY(SELECT sandbox_id FROM git_sandboxes WHERE repo_url = ",
        )
        .push_bind(repo.clone())
        .push("))");
    }
    if f.not_deleted {
        q.push(" AND deleted_at IS NULL");
    }
    if matches!(f.sort, JobSort::FinishedDesc | JobSort::FinishedAsc) {
        q.push(" AND finished_at IS NOT NULL");
    }
}

/// `text` as a literal inside a `LIKE` pattern: `\`, `%` and `_` escaped (with `\`, the
/// default escape character).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
