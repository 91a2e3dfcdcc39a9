//! `/v1/jobs`: enqueue (one or a bulk array, with `Idempotency-Key`), read (with a
//! long-poll `?wait`), follow (server-sent events), list and search the history; and the
//! actions on jobs (retry, cancel, delete, run now; and retry, delete, run now for every job
//! matching a filter, `POST /v1/jobs/actions`), each one an audit entry.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::audit::{Audit, Surface};
use crate::auth::Caller;
use crate::extract::{Body, Params, Path, json, json_value};
use crate::problem::Problem;
use crate::routes::{page_response, run_to_end};
use crate::state::AppState;
use gitfleet_client::store::{
    JobCount, JobCursor, JobFilter, JobPage as JobStorePage, JobRow, JobSort, RunRow,
};
use gitfleet_client::{
    BatchJob, BulkAction, BulkFilter, Client, EnqueueOptions, Enqueued, ErrorKind, JobError,
    JobRecord, JobSpec, JobStatus, QueueError,
};
use gitfleet_contract::Role;

/// One job to enqueue: `POST /v1/jobs` takes one, or an array of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewJob {
    /// The op: `clone`, `status`, `diff`, `write_files`, `pull`, `push`, `release`,
    /// `change`, `echo`, `sleep`.
    pub op: String,
    /// The op's args (see the job contract); `{}` when absent.
    #[serde(default = "empty_object")]
    pub args: Value,
    /// The queue; by default ops on a sandbox go to the worker that holds it, the rest to
    /// the shared queue `jobs`.
    pub queue: Option<String>,
    /// Run no earlier than this many seconds from now (up to 30 days).
    #[schemars(range(min = 0, max = 2_592_000))]
    pub delay_secs: Option<f64>,
    /// Runs allowed before the job is dead (1-100; default the op's, 5).
    #[schemars(range(min = 1, max = 100))]
    pub max_attempts: Option<u32>,
    /// Seconds one run may take (default the op's).
    pub timeout_secs: Option<f64>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// What a bulk `POST /v1/jobs` answers: one entry per job, in the order sent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkEnqueued {
    pub jobs: Vec<Enqueued>,
}

const MAX_DELAY_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// A job as the queue takes it, and the problem's field prefix (`[3].` in a bulk).
fn to_batch_job(
    state: &AppState,
    caller: &Caller,
    job: NewJob,
    prefix: &str,
) -> Result<BatchJob, Problem> {
    let field = |name: &str| format!("{prefix}{name}");
    let secs = |name: &str, v: Option<f64>, max: f64| -> Result<Option<Duration>, Problem> {
        match v {
            None => Ok(None),
            Some(s) if s.is_finite() && (0.0..=max).contains(&s) => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            Some(s) => Err(Problem::invalid(
                Some(&field(name)),
                format!(
                    "{}: {s} is not a number of seconds from 0 to {max}",
                    field(name)
                ),
            )),
        }
    };
    let delay = secs("delay_secs", job.delay_secs, MAX_DELAY_SECS)?;
    let max_timeout = state.config.limits.max_timeout_ms as f64 / 1000.0;
    let timeout = secs("timeout_secs", job.timeout_secs, max_timeout)?;
    if timeout.is_some_and(|t| t.is_zero()) {
        return Err(Problem::invalid(
            Some(&field("timeout_secs")),
            format!("{}: must be more than 0", field("timeout_secs")),
        ));
    }
    if let Some(n) = job.max_attempts
        && !(1..=100).contains(&n)
    {
        return Err(Problem::invalid(
            Some(&field("max_attempts")),
            format!("{}: {n} is not from 1 to 100", field("max_attempts")),
        ));
    }
    if !job.args.is_object() {
        return Err(Problem::invalid(
            Some(&field("args")),
            format!("{}: must be a JSON object", field("args")),
        ));
    }
    if gitfleet_contract::ops::OpName::from_name(&job.op).is_some_and(|op| op.is_internal()) {
        return Err(Problem::invalid(
            Some(&field("op")),
            format!(
                "{}: {} is the fleet's own op; no API key may enqueue it",
                field("op"),
                job.op
            ),
        ));
    }
    let spec = JobSpec::new(job.op, job.args);
    check_job(&state.client, &spec, &caller.org, prefix)?;
    let queue = match job.queue {
        Some(q) => {
            gitfleet_contract::validate_queue_name(&q).map_err(|e| {
                Problem::invalid(
                    Some(&field("queue")),
                    format!("{}: {}", field("queue"), e.message),
                )
            })?;
            q
        }
        None => Client::route(&spec),
    };
    Ok(BatchJob {
        queue,
        spec,
        options: EnqueueOptions {
            org: Some(caller.org.clone()),
            delay,
            max_attempts: job.max_attempts,
            timeout,
            ..Default::default()
        },
    })
}

/// The contract's check of a job, for the caller's organization, as a problem naming the
/// field (`op`, or `args.<field>`).
fn check_job(client: &Client, spec: &JobSpec, org: &str, prefix: &str) -> Result<(), Problem> {
    match client.check_as(spec, Some(org)) {
        Ok(()) => Ok(()),
        Err(QueueError::Invalid(e)) => {
            let mut p = Problem::from_job_error(&e, "");
            if let Some(f) = p.field.take() {
                // The contract names a field of the args; the request has them under `args`.
                let path = if f == "op" {
                    format!("{prefix}op")
                } else {
                    format!("{prefix}args.{f}")
                };
                p.detail = format!("{path}{}", &e.message[f.len()..]);
                p.field = Some(path);
            } else if e.message.starts_with("unknown op") {
                p.field = Some(format!("{prefix}op"));
            }
            Err(p)
        }
        Err(e) => Err(e.into()),
    }
}

/// The `Idempotency-Key` header, checked.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| Problem::bad_param("Idempotency-Key", "must be printable ASCII"))?;
    let key = text.trim().trim_matches('"').to_string();
    gitfleet_contract::envelope::validate_idempotency_key(&key).map_err(|e| {
        Problem::bad_param(
            "Idempotency-Key",
            e.message.trim_start_matches("idempotency_key: "),
        )
    })?;
    Ok(Some(key))
}

/// A key reused for another request: `422`, per the IETF idempotency-key draft.
fn reuse_problem(e: &JobError) -> Problem {
    let mut p = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "conflict",
        e.message.clone(),
    );
    p.field = Some("Idempotency-Key".into());
    p
}

fn job_location(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("/v1/jobs/{id}")).expect("ids are ASCII")
}

/// `POST /v1/jobs`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Body(body): Body,
) -> Result<Response, Problem> {
    caller.require(Role::Producer)?;
    let key = idempotency_key(&headers)?;
    let fingerprint = key.as_ref().map(|_| format!("{:x}", Sha256::digest(&body)));
    let value = json_value(&body)?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(Problem::invalid(None, "body: an empty array holds no job"));
            }
            if items.len() > state.config.max_bulk {
                return Err(Problem::invalid(
                    None,
                    format!(
                        "body: {} jobs, over the limit of {} per request (GITFLEET_GATEWAY_MAX_BULK)",
                        items.len(),
                        state.config.max_bulk
                    ),
                ));
            }
            let mut jobs = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let prefix = format!("[{i}].");
                let new: NewJob = json(item, &prefix)?;
                let mut job = to_batch_job(&state, &caller, new, &prefix)?;
                if let Some(key) = &key {
                    // One key names the whole request; each job gets its own under it.
                    job.options.idempotency_key = Some(format!("{key}#{i}"));
                    job.options.idempotency_fingerprint = fingerprint.clone();
                }
                jobs.push(job);
            }
            let st = state.clone();
            let results = run_to_end(async move { st.client.submit_batch(&jobs).await }).await??;
            let mut out = Vec::with_capacity(results.len());
            for (i, r) in results.into_iter().enumerate() {
                match r {
                    Ok(e) => out.push(e),
                    Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => {
                        return Err(reuse_problem(&e));
                    }
                    Err(QueueError::Invalid(e)) => {
                        return Err(Problem::from_job_error(&e, "").with_field(format!("[{i}]")));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let status = if out.iter().all(|e| !e.created) {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((status, Json(BulkEnqueued { jobs: out })).into_response())
        }
        value => {
            let new: NewJob = json(value, "")?;
            let mut job = to_batch_job(&state, &caller, new, "")?;
            job.options.idempotency_key = key;
            job.options.idempotency_fingerprint = fingerprint;
            let st = state.clone();
            let (submitted, job) = run_to_end(async move {
                let r = st.client.submit(&job.queue, &job.spec, &job.options).await;
                (r, job)
            })
            .await?;
            let enqueued = match submitted {
                Ok(e) => e,
                Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => {
                    return Err(reuse_problem(&e));
                }
                Err(e) => return Err(e.into()),
            };
            let record = match new_record(job, &enqueued) {
                Some(r) => r,
                None => match state.client.job(&enqueued.job_id).await? {
                    Some(r) => r,
                    None => {
                        return Err(Problem::not_found(format!(
                            "job {} expired",
                            enqueued.job_id
                        )));
                    }
                },
            };
            let status = if enqueued.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut res = (status, Json(record)).into_response();
            res.headers_mut()
                .insert(header::LOCATION, job_location(&enqueued.job_id));
            Ok(res)
        }
    }
}

/// The record of a job this request just created, as the queue wrote it, without reading it
/// back: a created job that is waiting or delayed. Anything else (a job found by its
/// idempotency key, one answered at once) is read from the queue.
fn new_record(job: BatchJob, enqueued: &Enqueued) -> Option<JobRecord> {
    if !enqueued.created {
        return None;
    }
    let enqueued_at = enqueued.enqueued_at?;
    let run_at = match enqueued.status {
        JobStatus::Waiting => None,
        // enqueue.lua: run_at = now_us + delay_ms * 1000, in whole milliseconds.
        JobStatus::Delayed => {
            let ms = job.options.delay.map(|d| d.as_millis() as i64).unwrap_or(0);
            Some(enqueued_at + chrono::Duration::milliseconds(ms))
        }
        _ => return None,
    };
    Some(JobRecord {
        job_id: enqueued.job_id.clone(),
        op: job.spec.op,
        queue: job.queue,
        org: job.options.org,
        status: enqueued.status,
        attempts: 0,
        max_attempts: job.options.max_attempts.unwrap_or(0),
        enqueued_at: Some(enqueued_at),
        run_at,
        started_at: None,
        finished_at: None,
        result: None,
        error: None,
        worker: None,
        given_back: 0,
    })
}

/// Checks a job id's shape (a ULID), naming it.
pub(crate) fn check_id(id: &str) -> Result<(), Problem> {
    if id.len() == 26 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(Problem::bad_param(
            "id",
            format!("{id:?} is not a job id (a ULID of 26 characters)"),
        ))
    }
}

fn no_such_job(id: &str) -> Problem {
    Problem::not_found(format!("no job {id}"))
}

/// Job `id` as the caller may see it: its live record in Redis, else its row in the
/// history. Another organization's job is answered as for no job at all.
pub(crate) async fn visible(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<JobRecord, Problem> {
    check_id(id)?;
    if let Some(record) = state.client.job(id).await? {
        return if caller.sees(record.org.as_deref()) {
            Ok(record)
        } else {
            Err(no_such_job(id))
        };
    }
    match state.store.job_row(id).await? {
        Some(row) if caller.sees(row.org_id.as_deref()) => Ok(record_from_row(row)),
        _ => Err(no_such_job(id)),
    }
}

/// `GET /v1/jobs/{id}`'s answer: the job's record, and its runs from the history.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub record: JobRecord,
    /// Its runs, oldest first: each with its worker, start, finish and duration, outcome,
    /// error, sandbox and git steps (each git command it ran: command, phase, start, duration,
    /// outcome; never an argument). Read from Postgres, where runs are written in the
    /// background: a run that just ended may still read `running` for a moment. Absent when
    /// Postgres could not be read (the record is answered all the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<Vec<RunRow>>,
}

/// `record` with its runs (one indexed query). Postgres away: without them, and said in
/// the log, since the live record alone still answers the caller.
async fn with_runs(state: &AppState, record: JobRecord) -> JobDetail {
    let runs = match state.store.runs_of(&record.job_id).await {
        Ok(runs) => Some(runs),
        Err(e) => {
            tracing::warn!(job_id = %record.job_id, error = %e, "job runs: cannot read the history; answering the record without them");
            None
        }
    };
    JobDetail { record, runs }
}

/// A job's history row as a record (its Redis record has expired).
fn record_from_row(row: JobRow) -> JobRecord {
    JobRecord {
        job_id: row.job_id,
        op: row.op,
        queue: row.queue,
        org: row.org_id,
        status: row.status.parse().unwrap_or(JobStatus::Done),
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        max_attempts: row
            .max_attempts
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        enqueued_at: row.enqueued_at,
        run_at: row.retry_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        result: row.result,
        error: row.error_kind.map(|kind| {
            JobError::new(
                kind.parse().unwrap_or(ErrorKind::Internal),
                row.error_message.unwrap_or_default(),
            )
        }),
        worker: row.worker_id,
        given_back: 0,
    }
}

/// `GET /v1/jobs/{id}` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// Wait up to this many seconds (0-60) for the job to be done, dead or cancelled; then
    /// answer its record as it is.
    #[schemars(range(min = 0, max = 60))]
    pub wait: Option<f64>,
}

/// `GET /v1/jobs/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(params): Params<WaitParams>,
) -> Result<Json<JobDetail>, Problem> {
    let wait = match params.wait {
        None => None,
        Some(w) if w.is_finite() && (0.0..=60.0).contains(&w) => Some(Duration::from_secs_f64(w)),
        Some(w) => {
            return Err(Problem::bad_param(
                "wait",
                format!("{w} is not from 0 to 60 seconds"),
            ));
        }
    };
    let record = visible(&state, &caller, &id).await?;
    let record = match wait {
        Some(wait) if !record.status.is_final() && !wait.is_zero() => {
            match state.client.wait(&id, wait).await? {
                Some(r) => r,
                // It finished and expired while we waited: its row has the end.
                None => visible(&state, &caller, &id).await?,
            }
        }
        _ => record,
    };
    Ok(Json(with_runs(&state, record).await))
}

/// How long an event stream blocks on its job's log before it looks whether the job is
/// still there (deleted, or expired).
const EVENT_BLOCK: Duration = Duration::from_secs(10);

/// What tells one event from the next: a change in any of these is an event.
type EventKey = (JobStatus, u32, Option<String>, u32);

fn event_key(r: &JobRecord) -> EventKey {
    (r.status, r.attempts, r.worker.clone(), r.given_back)
}

/// `GET /v1/jobs/{id}/events`: an event `state` with the record at each change of the
/// job's status, attempts or worker, the first at once; the stream ends after the job is
/// done, dead or cancelled (or gone). Every change is told, however fast they follow each
/// other: the stream watches the job ([`gitfleet_client::JobWatch`]), so the queue's
/// scripts log each change for it, and it blocks on that log (no polling).
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, Problem> {
    let first = visible(&state, &caller, &id).await?;
    // A job only the history keeps has ended: its one event. (Its organization was checked
    // above and never changes.)
    let watched = if first.status.is_final() {
        None
    } else {
        state.client.watch(&id).await?
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(16);
    tokio::spawn(async move {
        let mut seq = 0u64;
        let mut last: Option<EventKey> = None;
        let mut send = async |record: &JobRecord| -> bool {
            let key = event_key(record);
            if last.as_ref() == Some(&key) {
                return true;
            }
            seq += 1;
            let event = Event::default()
                .event("state")
                .id(seq.to_string())
                .json_data(record)
                .expect("plain data");
            last = Some(key);
            tx.send(event).await.is_ok()
        };
        let (mut record, mut watch) = match watched {
            Some((record, watch)) => (record, watch),
            None => {
                send(&first).await;
                return;
            }
        };
        if !send(&record).await || record.status.is_final() {
            return;
        }
        loop {
            let changes = tokio::select! {
                c = watch.changes(EVENT_BLOCK) => c,
                _ = tx.closed() => return,
            };
            let changes = match changes {
                Ok(c) => c,
                // Redis away: the watch reconnects at its next read; its log kept the
                // changes meanwhile.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            // The record now (its latest error or result), onto which each change is laid.
            let now = match state.client.job(&id).await {
                Ok(now) => now,
                Err(_) => Some(record.clone()),
            };
            let Some(now) = now else {
                // Deleted, or expired: nothing more will happen to it.
                for c in &changes {
                    if !send(&c.applied_to(&record)).await {
                        return;
                    }
                }
                return;
            };
            for c in &changes {
                let at = if c.status == now.status && c.attempts == now.attempts {
                    now.clone()
                } else {
                    c.applied_to(&now)
                };
                if !send(&at).await || at.status.is_final() {
                    return;
                }
            }
            record = now;
        }
    });
    let stream =
        futures::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
        );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `GET /v1/jobs` parameters.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// `waiting`, `delayed`, `running`, `done`, `dead` or `cancelled`.
    #[schemars(with = "Option<JobStatus>")]
    pub status: Option<String>,
    pub op: Option<String>,
    /// The agent (`agent_id` of the job's args).
    pub agent: Option<String>,
    /// The task (`task_id` of the job's args).
    pub task: Option<String>,
    pub sandbox: Option<String>,
    pub queue: Option<String>,
    /// Enqueued at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Enqueued before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// An admin key's filter by organization (another key sees its own only).
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
    /// A job id (26 letters and digits) or the start of one (1-25): exact, or by prefix.
    #[schemars(regex(pattern = "^[0-9A-Za-z]{1,26}$"))]
    pub id: Option<String>,
    /// Text in the error message, 3-200 characters, case-insensitive (a trigram index
    /// serves it).
    #[schemars(length(min = 3, max = 200))]
    pub q: Option<String>,
    /// Jobs on sandboxes of this repository (its URL as the clone gave it, without
    /// credentials). A `clone` job's own row names no sandbox and is not among them.
    pub repo: Option<String>,
    /// The order: `enqueued_desc` (default), `enqueued_asc`, `finished_desc`,
    /// `finished_asc` (the `finished_*` orders list finished jobs only).
    #[schemars(regex(pattern = "^(enqueued|finished)_(asc|desc)$"))]
    pub sort: Option<String>,
    /// Jobs per page, 1-500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
    /// Where the page starts: the `next` of the previous page (of the same `sort`).
    pub cursor: Option<String>,
}

/// A page of the history, in the listing's order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct JobPage {
    pub jobs: Vec<JobRow>,
    /// The next page's URL (also in the `Link` header, `rel="next"`); absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// How many jobs match the filters (every page, not this one): exact up to 10,000,
    /// past that the planner's estimate.
    pub total: i64,
    /// Whether `total` is an estimate.
    pub total_is_estimate: bool,
}

/// `GET /v1/jobs`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<ListParams>,
) -> Result<Response, Problem> {
    let filter = list_filter(&caller, &p)?;
    let limit = filter.limit;
    let (page, count) = list_page(&state, &filter).await?;
    let next = page.next.map(|c| next_url(&p, limit, &c.encode()));
    let jobs = page.rows;
    let page = JobPage {
        jobs,
        next: next.clone(),
        total: count.total,
        total_is_estimate: count.is_estimate,
    };
    Ok(page_response(&page, page.next.as_deref()))
}

/// `GET /v1/jobs`'s parameters, checked, as the history's filter for `caller` (its own
/// organization, or an admin's pick). The dashboard's jobs list builds its filter here too,
/// so both check and mean the same.
pub(crate) fn list_filter(caller: &Caller, p: &ListParams) -> Result<JobFilter, Problem> {
    let org = caller.scope(p.org.as_deref())?;
    if let Some(s) = &p.status {
        s.parse::<JobStatus>()
            .map_err(|e| Problem::bad_param("status", e))?;
    }
    let limit = p.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param(
            "limit",
            format!("{limit} is not from 1 to 500"),
        ));
    }
    let sort = match &p.sort {
        Some(s) => s
            .parse::<JobSort>()
            .map_err(|e| Problem::bad_param("sort", e))?,
        None => JobSort::default(),
    };
    if let Some(id) = &p.id
        && (id.is_empty() || id.len() > 26 || !id.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(Problem::bad_param(
            "id",
            format!("{id:?} is not a job id or the start of one (1-26 letters and digits)"),
        ));
    }
    if let Some(q) = &p.q {
        let n = q.chars().count();
        if !(3..=200).contains(&n) {
            return Err(Problem::bad_param(
                "q",
                format!("{n} characters; search text is 3-200 characters"),
            ));
        }
    }
    if let Some(r) = &p.repo
        && (r.is_empty() || r.len() > 2048)
    {
        return Err(Problem::bad_param(
            "repo",
            "a repository URL of 1-2048 characters",
        ));
    }
    let before = p
        .cursor
        .as_deref()
        .map(JobCursor::decode)
        .transpose()
        .map_err(|e| Problem::bad_param("cursor", e))?;
    if let Some(c) = &before
        && c.sort != sort
    {
        return Err(Problem::bad_param(
            "cursor",
            format!(
                "made for sort={}, not {} (pass the `next` of a page as it is)",
                c.sort.as_str(),
                sort.as_str()
            ),
        ));
    }
    Ok(JobFilter {
        status: p.status.clone(),
        op: p.op.clone(),
        org,
        agent: p.agent.clone(),
        task: p.task.clone(),
        sandbox: p.sandbox.clone(),
        queue: p.queue.clone(),
        since: p.since,
        until: p.until,
        id: p.id.clone(),
        text: p.q.clone(),
        repo: p.repo.clone(),
        sort,
        before,
        limit,
        not_deleted: false,
    })
}

/// A page of the history for `filter` and how many jobs match it in all (exact up to
/// [`gitfleet_client::store::EXACT_COUNT_MAX`], else the planner's estimate, said so): what
/// `GET /v1/jobs` answers and the dashboard's lists show.
pub(crate) async fn list_page(
    state: &AppState,
    filter: &JobFilter,
) -> Result<(JobStorePage, JobCount), Problem> {
    Ok(tokio::try_join!(
        state.store.jobs_page(filter),
        state.store.count_jobs(filter)
    )?)
}

/// The URL of the page after this one: the same filters, the new cursor.
fn next_url(p: &ListParams, limit: i64, cursor: &str) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    let mut add = |k: &'static str, v: &Option<String>| {
        if let Some(v) = v {
            q.push((k, v.clone()));
        }
    };
    add("status", &p.status);
    add("op", &p.op);
    add("agent", &p.agent);
    add("task", &p.task);
    add("sandbox", &p.sandbox);
    add("queue", &p.queue);
    add("org", &p.org);
    add("id", &p.id);
    add("q", &p.q);
    add("repo", &p.repo);
    add("sort", &p.sort);
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    if let Some(t) = p.since {
        q.push(("since", time(t)));
    }
    if let Some(t) = p.until {
        q.push(("until", time(t)));
    }
    q.push(("limit", limit.to_string()));
    q.push(("cursor", cursor.to_string()));
    let query: Vec<String> = q
        .into_iter()
        .map(|(k, v)| format!("{k}={}", urlencode(&v)))
        .collect();
    format!("/v1/jobs?{}", query.join("&"))
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn urlencode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /v1/jobs/{id}/retry`: a dead job goes back to its queue with fresh attempts.
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, Problem> {
    act(&state, &caller, surface, JobAction::Retry, &id)
        .await
        .map(Json)
}

/// An action on one job, from the API or the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    Retry,
    Cancel,
    Delete,
    RunNow,
}

impl JobAction {
    /// The action's name in the audit log.
    pub fn audit_name(self) -> &'static str {
        match self {
            JobAction::Retry => "job.retry",
            JobAction::Cancel => "job.cancel",
            JobAction::Delete => "job.delete",
            JobAction::RunNow => "job.run_now",
        }
    }
}

/// Runs `action` on job `id` for `caller`, to its end even if the caller hangs up (the
/// change and its audit entry both), and hands its audit entry to the writer. What each of
/// the job's action routes, and the dashboard's buttons, do.
pub async fn act(
    state: &AppState,
    caller: &Caller,
    surface: Surface,
    action: JobAction,
    id: &str,
) -> Result<JobRecord, Problem> {
    let (st, caller, id) = (state.clone(), caller.clone(), id.to_string());
    run_to_end(async move {
        let mut audit = Audit::new(action.audit_name(), &caller, surface);
        let result = match action {
            JobAction::Retry => retry_job(&st, &caller, &id, &mut audit).await,
            JobAction::Cancel => cancel_job(&st, &caller, &id, &mut audit).await,
            JobAction::Delete => {
                act_on_job(&st, &caller, BulkAction::Delete, &id, &mut audit).await
            }
            JobAction::RunNow => {
                act_on_job(&st, &caller, BulkAction::RunNow, &id, &mut audit).await
            }
        };
        audit.finish(&st, &caller, &result);
        result
    })
    .await?
}

/// A job's id and organization in its audit entry, once the caller may see it.
fn audit_job(audit: &mut Audit, record: &JobRecord) {
    audit.org = record.org.clone();
    audit.jobs([record.job_id.as_str()]);
}

/// What `POST /v1/jobs/{id}/retry` does (the dashboard calls it with its own surface).
async fn retry_job(
    state: &AppState,
    caller: &Caller,
    id: &str,
    audit: &mut Audit,
) -> Result<JobRecord, Problem> {
    caller.require(Role::Operator)?;
    let record = visible(state, caller, id).await?;
    audit_job(audit, &record);
    if record.status != JobStatus::Dead {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "job {id} is {}; only a dead job can be retried",
                record.status
            ),
        ));
    }
    state.client.retry(id).await?;
    visible(state, caller, id).await
}

/// `DELETE /v1/jobs/{id}`: cancels a waiting or delayed job; a running one is `409`.
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, Problem> {
    act(&state, &caller, surface, JobAction::Cancel, &id)
        .await
        .map(Json)
}

/// What `DELETE /v1/jobs/{id}` does.
async fn cancel_job(
    state: &AppState,
    caller: &Caller,
    id: &str,
    audit: &mut Audit,
) -> Result<JobRecord, Problem> {
    caller.require(Role::Operator)?;
    let record = visible(state, caller, id).await?;
    audit_job(audit, &record);
    // For the job's own organization (an admin acts on any).
    match state.client.cancel_for(id, record.org.as_deref()).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(no_such_job(id)),
        Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => {
            return Err(Problem::new(StatusCode::CONFLICT, "conflict", e.message));
        }
        Err(e) => return Err(e.into()),
    }
    visible(state, caller, id).await
}

/// `POST /v1/jobs/{id}/delete`: a dead or delayed job is removed from Redis; its row in the
/// history is marked `deleted_at`. Answers what the job was.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, Problem> {
    act(&state, &caller, surface, JobAction::Delete, &id)
        .await
        .map(Json)
}

/// `POST /v1/jobs/{id}/run-now`: a delayed job (due later, or waiting out a retry's
/// backoff) joins its queue now.
pub async fn run_now(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, Problem> {
    act(&state, &caller, surface, JobAction::RunNow, &id)
        .await
        .map(Json)
}

/// Delete or run now one job: what `POST /v1/jobs/{id}/delete` and `/run-now` do.
async fn act_on_job(
    state: &AppState,
    caller: &Caller,
    action: BulkAction,
    id: &str,
    audit: &mut Audit,
) -> Result<JobRecord, Problem> {
    caller.require(Role::Operator)?;
    let record = visible(state, caller, id).await?;
    audit_job(audit, &record);
    match state.client.act_on(action, id, record.org.as_deref()).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(no_such_job(id)),
        Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => {
            return Err(Problem::new(StatusCode::CONFLICT, "conflict", e.message));
        }
        Err(e) => return Err(e.into()),
    }
    match action {
        // Gone from Redis: what it was, with its status as it was.
        BulkAction::Delete => Ok(record),
        _ => visible(state, caller, id).await,
    }
}

/// Jobs one bulk action acts on at most; a filter matching more is refused (narrow it).
pub const BULK_MAX: usize = 100_000;

/// `POST /v1/jobs/actions`: an action on every dead or delayed job matching a filter.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// `retry` (dead jobs), `delete` (dead or delayed), `run_now` (delayed).
    pub action: BulkAction,
    pub filter: BulkJobFilter,
    /// Count the matching jobs and change nothing (default `true`: a dry run unless told
    /// otherwise).
    #[serde(default = "yes")]
    pub dry_run: bool,
    /// Required when `dry_run` is `false`: the `matched` of the dry run. The action is
    /// refused (`409`) if more jobs match now; fewer is fine (some left the state since).
    #[schemars(range(min = 0))]
    pub expect: Option<u64>,
}

fn yes() -> bool {
    true
}

/// Which jobs a bulk action is for. Every field set narrows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkJobFilter {
    /// `dead` or `delayed` (delayed: due later, or waiting out a retry's backoff).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// An admin's choice of organization (none: every one); another key's jobs are always
    /// its own organization's, and naming another is `403`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
    /// Enqueued at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Enqueued before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// What `POST /v1/jobs/actions` answers.
#[derive(Debug, Serialize, JsonSchema)]
pub struct BulkOutcome {
    pub action: BulkAction,
    pub dry_run: bool,
    /// Jobs matching the filter when it was scanned.
    pub matched: u64,
    /// Jobs acted on (0 on a dry run).
    pub acted: u64,
    /// Matched jobs that were no longer in the state the action needs (or no longer
    /// matched) when their turn came, and were left alone.
    pub skipped: u64,
    /// The ids acted on, the first 1,000.
    pub job_ids: Vec<String>,
}

/// `POST /v1/jobs/actions`.
pub async fn bulk(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Body(body): Body,
) -> Result<Json<BulkOutcome>, Problem> {
    let req: BulkRequest = json(json_value(&body)?, "")?;
    // To its end even if the caller hangs up: every chunk, and the audit entry.
    let st = state.clone();
    run_to_end(async move { bulk_action(&st, &caller, surface, req).await })
        .await?
        .map(Json)
}

/// What `POST /v1/jobs/actions` does; an action (not a dry run) is an audit entry, whether
/// it was done or refused.
pub async fn bulk_action(
    state: &AppState,
    caller: &Caller,
    surface: Surface,
    req: BulkRequest,
) -> Result<BulkOutcome, Problem> {
    let name = match req.action {
        BulkAction::Retry => "jobs.retry",
        BulkAction::Delete => "jobs.delete",
        BulkAction::RunNow => "jobs.run_now",
    };
    let mut audit = Audit::new(name, caller, surface);
    audit.filter = serde_json::to_value(&req.filter).ok();
    let result = bulk_inner(state, caller, &req, &mut audit).await;
    if !(req.dry_run && result.is_ok()) {
        audit.finish(state, caller, &result);
    }
    result
}

async fn bulk_inner(
    state: &AppState,
    caller: &Caller,
    req: &BulkRequest,
    audit: &mut Audit,
) -> Result<BulkOutcome, Problem> {
    caller.require(Role::Operator)?;
    let f = &req.filter;
    let org = caller
        .scope(f.org.as_deref())
        .map_err(|p| p.with_field("filter.org"))?;
    audit.org = org.clone();
    let state_ = match f.state.as_str() {
        "dead" => JobStatus::Dead,
        "delayed" => JobStatus::Delayed,
        other => {
            return Err(Problem::bad_param(
                "filter.state",
                format!("{other:?} is not dead or delayed"),
            ));
        }
    };
    if !req.action.applies_to(state_) {
        return Err(Problem::bad_param(
            "action",
            format!(
                "{} does not apply to {} jobs (retry: dead; delete: dead or delayed; run_now: delayed)",
                req.action.as_str(),
                f.state
            ),
        ));
    }
    if let Some(q) = &f.queue {
        gitfleet_contract::validate_queue_name(q)
            .map_err(|e| Problem::bad_param("filter.queue", e.message))?;
    }
    if let Some(op) = &f.op
        && gitfleet_contract::ops::OpName::from_name(op).is_none()
    {
        return Err(Problem::bad_param(
            "filter.op",
            format!("{op:?} is not an op"),
        ));
    }
    if let (Some(a), Some(b)) = (f.since, f.until)
        && a >= b
    {
        return Err(Problem::bad_param(
            "filter.until",
            "must be after filter.since",
        ));
    }
    if !req.dry_run && req.expect.is_none() {
        return Err(Problem::bad_param(
            "expect",
            "required when dry_run is false: the matched count of a dry run",
        ));
    }
    let filter = BulkFilter {
        state: state_,
        queue: f.queue.clone(),
        op: f.op.clone(),
        org,
        enqueued_from_us: f.since.map(|t| t.timestamp_micros()),
        enqueued_before_us: f.until.map(|t| t.timestamp_micros()),
    };
    let matched = state.client.queue().matching(&filter, BULK_MAX + 1).await?;
    audit.matched = Some(matched.len() as i64);
    if matched.len() > BULK_MAX {
        return Err(Problem::bad_param(
            "filter",
            format!("more than {BULK_MAX} jobs match; narrow the filter (queue, op, since, until)"),
        ));
    }
    let count = matched.len() as u64;
    if req.dry_run {
        return Ok(BulkOutcome {
            action: req.action,
            dry_run: true,
            matched: count,
            acted: 0,
            skipped: 0,
            job_ids: Vec::new(),
        });
    }
    let expect = req.expect.unwrap_or(0);
    if count > expect {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "{count} jobs match now, more than the {expect} expected; nothing was done \
                 (run the dry run again and confirm its count)"
            ),
        )
        .with_field("expect"));
    }
    let report = state.client.act(req.action, &filter, &matched).await?;
    audit.affected = Some(report.acted.len() as i64);
    audit.jobs(report.acted.iter().map(|a| a.job_id.as_str()));
    Ok(BulkOutcome {
        action: req.action,
        dry_run: false,
        matched: count,
        acted: report.acted.len() as u64,
        skipped: report.skipped,
        job_ids: report
            .acted
            .iter()
            .take(1000)
            .map(|a| a.job_id.clone())
            .collect(),
    })
}
