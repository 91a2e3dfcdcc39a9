//! The dashboard's pages: the overview, the jobs list, a job's page, and a job's actions.
//! Each reads through the calls `/v1` uses (the client for Redis, the store for the
//! history), with the same rules of roles and organizations ([`Caller`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use super::session::{CsrfForm, Session, csrf_refused};
use super::{Chrome, chart, error_page, html, problem_page, see_other, show_time, urlencode};
use crate::audit::Surface;
use crate::auth::Caller;
use crate::problem::Problem;
use crate::routes::jobs::{JobAction, ListParams, act, check_id, list_filter, list_page, visible};
use crate::state::AppState;
use gitfleet_client::JobRecord;
use gitfleet_client::store::{JobCount, JobFilter, JobRow, MinuteCount};
use gitfleet_contract::{Redactor, Role};

/// The states a job can be in, in the order the pages list them.
pub const STATES: [&str; 6] = ["waiting", "delayed", "running", "done", "dead", "cancelled"];

/// The longest args or result text a job's page shows.
const SHOWN_JSON_MAX: usize = 8_000;
/// Jobs per page of the list.
const PAGE: i64 = 50;

/// The organization an admin picked (`?org=`), checked; others always see their own.
fn scope(caller: &Caller, org: Option<&str>) -> Result<Option<String>, Problem> {
    caller.scope(org.map(str::trim).filter(|o| !o.is_empty()))
}

// ---------------------------------------------------------------- overview

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    c: Chrome,
    org_filter: String,
    scope_note: String,
    totals: Vec<(String, u64)>,
    queues: Vec<QueueView>,
    workers: u64,
    busy: u64,
    slots: u64,
    sandboxes: Option<SandboxView>,
    /// The cache hit rate, last hour and last day (as `GET /v1/cache/hit-rate`).
    hit_rate: Option<(String, String)>,
    pickup: Option<PickupView>,
    hour_svg: String,
    day_svg: String,
    hour_done: i64,
    hour_dead: i64,
    day_done: i64,
    day_dead: i64,
    history_error: String,
}

struct QueueView {
    name: String,
    counts: Vec<(String, u64)>,
}

struct SandboxView {
    live: i64,
    in_use: i64,
    pooled: i64,
}

struct PickupView {
    jobs: i64,
    p50: String,
    p95: String,
}

#[derive(Deserialize)]
pub struct OrgQuery {
    org: Option<String>,
}

fn ms(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v < 1000.0 => format!("{v:.0} ms"),
        Some(v) => format!("{:.1} s", v / 1000.0),
    }
}

/// A cache hit rate as the overview shows it: `75% (3 of 4)`, or `—` when nothing was made.
fn hit_rate(r: &gitfleet_client::store::HitRate) -> String {
    match r.rate {
        Some(rate) => format!("{:.0}% ({} of {})", rate * 100.0, r.cache_hits, r.made),
        None => "—".into(),
    }
}

/// `GET <base>/`: counts per state and queue (Redis), workers and slots (Redis),
/// sandboxes, finished jobs per minute and pickup latency (Postgres).
pub async fn overview(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<OrgQuery>,
) -> Response {
    let org = match scope(&session.caller, q.org.as_deref()) {
        Ok(o) => o,
        Err(p) => return problem_page(&state, &session, p),
    };
    let (queues, workers) = match tokio::try_join!(state.client.queues(), state.client.workers()) {
        Ok(v) => v,
        Err(e) => return problem_page(&state, &session, e.into()),
    };
    let mut totals: Vec<(String, u64)> = STATES.iter().map(|s| (s.to_string(), 0)).collect();
    let queue_views = queues
        .iter()
        .map(|q| {
            let counts = [q.waiting, q.delayed, q.running, q.done, q.dead, q.cancelled];
            for (t, n) in totals.iter_mut().zip(counts) {
                t.1 += n;
            }
            QueueView {
                name: q.queue.clone(),
                counts: STATES.iter().map(|s| s.to_string()).zip(counts).collect(),
            }
        })
        .collect();
    let live: Vec<_> = workers.iter().filter(|w| !w.declared_dead).collect();
    let busy = live.iter().map(|w| w.held.len() as u64).sum();
    let slots = live
        .iter()
        .map(|w| u64::from(w.concurrency.unwrap_or(0)))
        .sum();

    let now = Utc::now();
    let day_ago = now - chrono::Duration::hours(24);
    let hour_ago = now - chrono::Duration::hours(1);
    let history = tokio::try_join!(
        state.store.finished_per_minute(day_ago, org.as_deref()),
        state.store.pickup_latency(hour_ago, org.as_deref()),
        state.store.sandbox_counts(org.as_deref()),
    );
    let (minutes, pickup, sandboxes, history_error) = match history {
        Ok((m, p, s)) => (m, Some(p), Some(s), String::new()),
        Err(e) => {
            tracing::warn!(error = %e, "the overview cannot read the history");
            (
                Vec::new(),
                None,
                None,
                "The record (Postgres) cannot be reached: the history's figures are left out."
                    .to_string(),
            )
        }
    };
    let hit_rate =
        crate::routes::repositories::hit_rates_for(&state, &session.caller, org.as_deref())
            .await
            .ok()
            .map(|r| (hit_rate(&r.last_hour), hit_rate(&r.last_day)));
    let now_min = now.timestamp().div_euclid(60);
    let hour = chart::buckets(&minutes, now_min, 60, 1);
    let day = chart::buckets(&minutes, now_min, 24, 60);
    let sum = |b: &[MinuteCount]| b.iter().fold((0, 0), |(d, x), m| (d + m.done, x + m.dead));
    let (hour_done, hour_dead) = sum(&hour);
    let (day_done, day_dead) = sum(&day);
    let scope_note = match &org {
        Some(o) => format!("organization {o}"),
        None => "every organization".to_string(),
    };
    let page = OverviewPage {
        c: Chrome::new(&state, "Overview", "overview")
            .signed_in(&session)
            .live(),
        org_filter: q.org.unwrap_or_default(),
        scope_note,
        totals,
        queues: queue_views,
        workers: live.len() as u64,
        busy,
        slots,
        sandboxes: sandboxes.map(|s| SandboxView {
            live: s.live,
            in_use: s.in_use,
            pooled: s.pooled,
        }),
        hit_rate,
        pickup: pickup.map(|p| PickupView {
            jobs: p.jobs,
            p50: ms(p.p50_ms),
            p95: ms(p.p95_ms),
        }),
        hour_svg: chart::svg(&hour, "minute", "last hour, per minute"),
        day_svg: chart::svg(&day, "hour", "last 24 hours, per hour"),
        hour_done,
        hour_dead,
        day_done,
        day_dead,
        history_error,
    };
    html(StatusCode::OK, &page)
}

// ---------------------------------------------------------------- jobs list

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    c: Chrome,
    f: ListQuery,
    states: Vec<(String, bool)>,
    rows: Vec<RowView>,
    next: String,
    filtered: bool,
    error: String,
    total: String,
    /// The sortable columns' headers: the label, the link that sorts by it, and the arrow
    /// of the order shown now (empty when the list is in another order).
    enqueued_sort: SortLink,
    finished_sort: SortLink,
}

/// A column header that sorts the list.
pub struct SortLink {
    pub url: String,
    pub arrow: &'static str,
    pub title: String,
}

/// A job's row as the lists (and the live updates) show it.
pub struct RowView {
    pub id: String,
    pub url: String,
    pub op: String,
    pub queue: String,
    pub status: String,
    pub attempts: String,
    pub org: String,
    pub agent: String,
    pub task: String,
    pub sandbox: String,
    pub sandbox_url: String,
    pub worker: String,
    pub enqueued: String,
    pub finished: String,
    /// When a delayed job is due (its delay, or its retry's backoff).
    pub due: String,
    pub error_kind: String,
    /// The error's message, redacted and cut to a line.
    pub error_message: String,
}

/// The longest error message a list's row shows.
const ROW_ERROR_MAX: usize = 160;

pub(crate) fn row_view(base: &str, r: &JobRow) -> RowView {
    let sandbox = r.sandbox_id.clone().unwrap_or_default();
    let mut error_message = r
        .error_message
        .as_deref()
        .map(|m| Redactor::default().redact(m))
        .unwrap_or_default();
    if error_message.len() > ROW_ERROR_MAX {
        let mut cut = ROW_ERROR_MAX;
        while !error_message.is_char_boundary(cut) {
            cut -= 1;
        }
        error_message.truncate(cut);
        error_message.push('…');
    }
    RowView {
        url: format!("{base}/jobs/{}", r.job_id),
        id: r.job_id.clone(),
        op: r.op.clone(),
        queue: r.queue.clone(),
        status: r.status.clone(),
        attempts: attempts(r.attempts, r.max_attempts),
        org: r.org_id.clone().unwrap_or_default(),
        agent: r.agent_id.clone().unwrap_or_default(),
        task: r.task_id.clone().unwrap_or_default(),
        sandbox_url: if sandbox.is_empty() {
            String::new()
        } else {
            format!("{base}/jobs?sandbox={}", urlencode(&sandbox))
        },
        sandbox,
        worker: r.worker_id.clone().unwrap_or_default(),
        enqueued: show_time(r.enqueued_at),
        finished: show_time(r.finished_at),
        due: show_time(r.retry_at),
        error_kind: r.error_kind.clone().unwrap_or_default(),
        error_message,
    }
}

pub fn attempts(n: i32, max: Option<i32>) -> String {
    match max {
        Some(m) if m > 0 => format!("{n}/{m}"),
        _ => n.to_string(),
    }
}

/// How many jobs match, as a list's heading says it: exact, or marked as an estimate.
pub(crate) fn show_total(c: &JobCount) -> String {
    match (c.total, c.is_estimate) {
        (1, false) => "1 job".to_string(),
        (n, false) => format!("{n} jobs"),
        (n, true) => format!("about {n} jobs (an estimate)"),
    }
}

/// The list's filters, as the form has them (empty: not set).
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub queue: String,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub sandbox: String,
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub until: String,
    #[serde(default)]
    pub org: String,
    /// A job id, or the start of one.
    #[serde(default)]
    pub id: String,
    /// Text in the error message.
    #[serde(default)]
    pub q: String,
    /// The repository of the jobs' sandboxes.
    #[serde(default)]
    pub repo: String,
    /// `GET /v1/jobs`'s `sort` (empty: newest enqueued first).
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub cursor: String,
}

fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A time filter: RFC 3339, or what an `<input type=datetime-local>` sends (UTC).
pub(crate) fn time_filter(name: &str, v: &str) -> Result<Option<DateTime<Utc>>, Problem> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Ok(Some(Utc.from_utc_datetime(&t)));
        }
    }
    Err(Problem::bad_param(
        name,
        format!("{v:?} is not a time (2026-12-01T09:30, UTC, or RFC 3339)"),
    ))
}

impl ListQuery {
    /// The filters as a query string (without the cursor unless given; `sort` as given).
    pub(crate) fn query_string(&self, cursor: Option<&str>) -> String {
        self.query_with_sort(&self.sort, cursor)
    }

    fn query_with_sort(&self, sort: &str, cursor: Option<&str>) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("op", &self.op),
            ("queue", &self.queue),
            ("agent", &self.agent),
            ("task", &self.task),
            ("sandbox", &self.sandbox),
            ("since", &self.since),
            ("until", &self.until),
            ("org", &self.org),
            ("id", &self.id),
            ("q", &self.q),
            ("repo", &self.repo),
            ("sort", &sort.to_string()),
        ] {
            if !v.trim().is_empty() {
                q.push(format!("{k}={}", urlencode(v.trim())));
            }
        }
        if let Some(c) = cursor {
            q.push(format!("cursor={}", urlencode(c)));
        }
        q.join("&")
    }

    /// The history's filter for `caller`: the form's fields as `GET /v1/jobs`'s
    /// parameters, checked by the API's own code ([`list_filter`]).
    pub(crate) fn filter(&self, caller: &Caller) -> Result<JobFilter, Problem> {
        let params = ListParams {
            status: opt(&self.status),
            op: opt(&self.op),
            agent: opt(&self.agent),
            task: opt(&self.task),
            sandbox: opt(&self.sandbox),
            queue: opt(&self.queue),
            since: time_filter("since", &self.since)?,
            until: time_filter("until", &self.until)?,
            org: opt(&self.org),
            id: opt(&self.id),
            q: opt(&self.q),
            repo: opt(&self.repo),
            sort: opt(&self.sort),
            limit: Some(PAGE),
            cursor: opt(&self.cursor),
        };
        list_filter(caller, &params)
    }

    /// The header of a column sorted by `column` (`enqueued` or `finished`): a click sorts
    /// newest first, a second oldest first.
    fn sort_link(&self, base: &str, column: &str) -> SortLink {
        let now = if self.sort.trim().is_empty() {
            "enqueued_desc"
        } else {
            self.sort.trim()
        };
        let desc = format!("{column}_desc");
        let asc = format!("{column}_asc");
        let (next, arrow) = if now == desc {
            (asc, "↓")
        } else if now == asc {
            (desc, "↑")
        } else {
            (desc, "")
        };
        let title = if next.ends_with("_asc") {
            format!("sort by {column} time, oldest first")
        } else {
            format!("sort by {column} time, newest first")
        };
        SortLink {
            url: format!("{base}/jobs?{}", self.query_with_sort(&next, None)),
            arrow,
            title,
        }
    }
}

/// `GET <base>/jobs`: the history, filtered, searched (by job id, by text in the error
/// message) and sorted as `GET /v1/jobs` does, a page at a time (its cursor: every page is
/// one bounded, indexed query), with the total (exact when cheap, else an estimate).
pub async fn jobs(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<ListQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let mut status = StatusCode::OK;
    let mut error = String::new();
    let mut rows = Vec::new();
    let mut next = String::new();
    let mut total = String::new();
    let listed = match f.filter(&session.caller) {
        Ok(filter) => list_page(&state, &filter).await,
        Err(p) => Err(p),
    };
    match listed {
        Ok((page, count)) => {
            rows = page.rows.iter().map(|r| row_view(&base, r)).collect();
            total = show_total(&count);
            if let Some(c) = page.next {
                next = format!("{base}/jobs?{}", f.query_string(Some(&c.encode())));
            }
        }
        Err(p) => {
            status = p.status();
            error = p.detail.clone();
        }
    }
    let states = STATES
        .iter()
        .map(|s| (s.to_string(), f.status.trim() == *s))
        .collect();
    let filtered = !f.query_with_sort("", None).is_empty();
    let page = JobsPage {
        c: Chrome::new(&state, "Jobs", "jobs")
            .signed_in(&session)
            .live(),
        enqueued_sort: f.sort_link(&base, "enqueued"),
        finished_sort: f.sort_link(&base, "finished"),
        f,
        states,
        rows,
        next,
        filtered,
        error,
        total,
    };
    html(status, &page)
}

// ---------------------------------------------------------------- a job

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    c: Chrome,
    j: JobView,
    runs: Vec<RunView>,
    /// The caller may act on jobs (operator and above): the buttons are there, shown when
    /// the job's state allows them.
    actions: bool,
    notice: String,
}

pub struct JobView {
    pub id: String,
    pub op: String,
    pub queue: String,
    pub org: String,
    pub status: String,
    pub attempts: String,
    pub enqueued: String,
    pub run_at: String,
    pub started: String,
    pub finished: String,
    pub worker: String,
    pub error_kind: String,
    pub error_message: String,
    pub result: String,
    pub args: String,
    pub args_note: String,
    pub sandbox: String,
    pub sandbox_url: String,
    pub retry_url: String,
    pub cancel_url: String,
    pub delete_url: String,
    pub run_now_url: String,
}

struct RunView {
    attempt: i32,
    worker: String,
    outcome: String,
    started: String,
    duration: String,
    error: String,
    /// The git commands of the run, in the order they began; `None` when the run recorded
    /// none (it still runs, its worker died, or it predates the record).
    steps: Option<Vec<StepView>>,
    /// Commands past the record's limit: counted, not kept.
    steps_dropped: i32,
    /// The steps' time added up, and the slowest command's share of it.
    steps_total: String,
    slowest: String,
}

/// One git command a run ran: its name (never an argument), the part of the worker that
/// ran it, when it began in the run, how long it took, how it ended.
struct StepView {
    command: String,
    phase: String,
    at: String,
    duration: String,
    outcome: String,
    /// The exit status or signal, when it was not 0.
    code: String,
    /// Whether it ended any other way than `ok` (marked on the page).
    failed: bool,
    /// Where it sits in the run's git time line, for the page's bar: its start and its
    /// length as percentages of the span from the run's start to its last step's end.
    bar_x: String,
    bar_width: String,
}

/// A value's name as its JSON has it (`ls-remote`, `push_group`).
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn step_ms(n: u64) -> String {
    ms(Some(n as f64))
}

fn steps_view(steps: &[gitfleet_contract::steps::GitStep]) -> (Vec<StepView>, String, String) {
    let span = steps
        .iter()
        .map(|s| s.at_ms + s.ms)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let total: u64 = steps.iter().map(|s| s.ms).sum();
    let views = steps
        .iter()
        .map(|s| {
            let outcome = wire_name(&s.outcome);
            StepView {
                command: wire_name(&s.command),
                phase: wire_name(&s.phase).replace('_', " "),
                at: format!("+{}", step_ms(s.at_ms)),
                duration: step_ms(s.ms),
                failed: outcome != "ok",
                code: s.code.map(|c| c.to_string()).unwrap_or_default(),
                outcome,
                bar_x: format!("{:.2}", s.at_ms as f64 * 100.0 / span),
                // Never thinner than can be seen.
                bar_width: format!("{:.2}", (s.ms as f64 * 100.0 / span).max(0.4)),
            }
        })
        .collect();
    let top = steps
        .iter()
        .max_by_key(|s| s.ms)
        .filter(|_| total > 0)
        .map(|s| {
            format!(
                "the slowest: {} ({}, {}% of the git time)",
                wire_name(&s.command),
                step_ms(s.ms),
                s.ms * 100 / total
            )
        })
        .unwrap_or_default();
    (views, step_ms(total), top)
}

/// Pretty JSON, redacted, cut to a size a page can show.
pub fn shown_json(v: &serde_json::Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let mut text = Redactor::default().redact(&text);
    if text.len() > SHOWN_JSON_MAX {
        let mut cut = SHOWN_JSON_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n… (cut; the whole is in GET /v1/jobs/{id})");
    }
    text
}

fn sandbox_of(record: &JobRecord, row: Option<&JobRow>) -> String {
    row.and_then(|r| r.sandbox_id.clone())
        .or_else(|| {
            record
                .result
                .as_ref()
                .and_then(|r| r.get("sandbox_id"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct JobQuery {
    done: Option<String>,
}

/// `GET <base>/jobs/{id}`: the job (its live record, else its history row), its args while
/// the queue keeps them (redacted), its result or error, its runs. Another organization's
/// job is not found, as in the API.
pub async fn job(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Query(q): Query<JobQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let record = match visible(&state, &session.caller, &id).await {
        Ok(r) => r,
        Err(p) => return problem_page(&state, &session, p),
    };
    let history = state.store.job_history(&id).await.ok().flatten();
    let spec = state.client.job_spec(&id).await.ok().flatten();
    let (args, args_note) = match spec {
        Some(s) => (shown_json(&s.args), String::new()),
        None => (
            String::new(),
            "The queue no longer keeps this job's args (they live as long as its record in \
             Redis; the history keeps only its agent, task and sandbox)."
                .to_string(),
        ),
    };
    let sandbox = sandbox_of(&record, history.as_ref().map(|h| &h.job));
    let j = JobView {
        id: record.job_id.clone(),
        op: record.op.clone(),
        queue: record.queue.clone(),
        org: record.org.clone().unwrap_or_default(),
        status: record.status.to_string(),
        attempts: attempts(
            record.attempts as i32,
            Some(record.max_attempts as i32).filter(|m| *m > 0),
        ),
        enqueued: show_time(record.enqueued_at),
        run_at: show_time(record.run_at),
        started: show_time(record.started_at),
        finished: show_time(record.finished_at),
        worker: record.worker.clone().unwrap_or_default(),
        error_kind: record
            .error
            .as_ref()
            .map(|e| e.kind.to_string())
            .unwrap_or_default(),
        error_message: record
            .error
            .as_ref()
            .map(|e| Redactor::default().redact(&e.message))
            .unwrap_or_default(),
        result: record.result.as_ref().map(shown_json).unwrap_or_default(),
        args,
        args_note,
        sandbox_url: if sandbox.is_empty() {
            String::new()
        } else {
            format!("{base}/jobs?sandbox={}", urlencode(&sandbox))
        },
        sandbox,
        retry_url: format!("{base}/jobs/{}/retry", record.job_id),
        cancel_url: format!("{base}/jobs/{}/cancel", record.job_id),
        delete_url: format!("{base}/jobs/{}/delete", record.job_id),
        run_now_url: format!("{base}/jobs/{}/run-now", record.job_id),
    };
    let runs = history
        .map(|h| {
            h.runs
                .into_iter()
                .map(|r| {
                    let (steps, steps_total, slowest) = match &r.git_steps {
                        Some(steps) => {
                            let (v, total, top) = steps_view(steps);
                            (Some(v), total, top)
                        }
                        None => (None, String::new(), String::new()),
                    };
                    RunView {
                        attempt: r.attempt,
                        worker: r.worker_id,
                        outcome: r.outcome,
                        started: show_time(r.started_at),
                        duration: ms(r.duration_ms),
                        error: match (r.error_kind, r.error_message) {
                            (Some(k), Some(m)) => {
                                format!("{k}: {}", Redactor::default().redact(&m))
                            }
                            (Some(k), None) => k,
                            _ => String::new(),
                        },
                        steps,
                        steps_dropped: r.git_steps_dropped,
                        steps_total,
                        slowest,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let notice = q
        .done
        .as_deref()
        .and_then(action_of)
        .map(|a| said(a).to_string())
        .unwrap_or_default();
    let page = JobPage {
        c: Chrome::new(&state, format!("Job {id}"), "jobs")
            .signed_in(&session)
            .live(),
        j,
        runs,
        actions: session.caller.role.permits(Role::Operator),
        notice,
    };
    html(StatusCode::OK, &page)
}

/// Whether the page's script sent the form (it wants a short answer, not a page).
fn from_script(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == b"fetch")
}

/// A job's action by the name its URL and the page's `done=` use.
fn action_of(name: &str) -> Option<JobAction> {
    match name {
        "retry" | "retried" => Some(JobAction::Retry),
        "cancel" | "cancelled" => Some(JobAction::Cancel),
        "delete" | "deleted" => Some(JobAction::Delete),
        "run-now" | "run_now" => Some(JobAction::RunNow),
        _ => None,
    }
}

/// What the page says once `action` is done.
pub(crate) fn said(action: JobAction) -> &'static str {
    match action {
        JobAction::Retry => "Sent back to its queue with fresh attempts.",
        JobAction::Cancel => "Cancelled: it will not run.",
        JobAction::Delete => "Deleted: gone from the queue (the history keeps its row).",
        JobAction::RunNow => "Sent to its queue to run now.",
    }
}

/// The `done=` of the page shown after `action`.
fn done_name(action: JobAction) -> &'static str {
    match action {
        JobAction::Retry => "retried",
        JobAction::Cancel => "cancelled",
        JobAction::Delete => "deleted",
        JobAction::RunNow => "run_now",
    }
}

/// A job's action (retry, cancel, delete, run now) from a form: the session's CSRF token
/// first, then the same code as the API's route ([`act`]), whose checks (role,
/// organization, state) answer as there.
async fn action(
    state: AppState,
    session: Session,
    headers: HeaderMap,
    id: String,
    form: Option<CsrfForm>,
    what: JobAction,
) -> Response {
    let script = from_script(&headers);
    if !session.check_csrf(form.as_ref().and_then(|f| f.csrf.as_deref())) {
        tracing::info!(key_id = %session.caller.key_id, action = what.audit_name(), "dashboard action without its CSRF token refused");
        if script {
            return (
                StatusCode::FORBIDDEN,
                "this form's CSRF token is missing or wrong: reload the page",
            )
                .into_response();
        }
        return csrf_refused(&state, &session);
    }
    if let Err(p) = check_id(&id) {
        return problem_page(&state, &session, p);
    }
    // As the API's handlers do: to its end even if the browser goes away, with its audit
    // entry (surface `ui`).
    match act(&state, &session.caller, Surface::Ui, what, &id).await {
        Ok(record) => {
            tracing::info!(key_id = %session.caller.key_id, job_id = %id, action = what.audit_name(), "dashboard action");
            if script {
                let status = if what == JobAction::Delete {
                    "deleted".to_string()
                } else {
                    record.status.to_string()
                };
                return (StatusCode::OK, format!("{} ({status})", said(what))).into_response();
            }
            see_other(&format!(
                "{}/jobs/{id}?done={}",
                state.config.ui.base,
                done_name(what)
            ))
        }
        Err(p) if script => (p.status(), p.detail.clone()).into_response(),
        Err(p) => problem_page(&state, &session, p),
    }
}

type FormResult = Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>;

/// `POST <base>/jobs/{id}/{action}` (operator): `retry`, `cancel`, `delete` or `run-now`,
/// as `POST /v1/jobs/{id}/retry`, `DELETE /v1/jobs/{id}`, `POST /v1/jobs/{id}/delete` and
/// `/run-now`.
pub async fn job_action(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    form: FormResult,
) -> Response {
    let what = match name.as_str() {
        "retry" => JobAction::Retry,
        "cancel" => JobAction::Cancel,
        "delete" => JobAction::Delete,
        "run-now" => JobAction::RunNow,
        _ => {
            return error_page(
                &state,
                Some(&session),
                StatusCode::NOT_FOUND,
                "the dashboard has no such action (retry, cancel, delete, run-now)",
            );
        }
    };
    let form = form.ok().map(|axum::Form(f)| f);
    action(state, session, headers, id, form, what).await
}

/// A page for a path the dashboard does not have.
pub async fn not_found(State(state): State<AppState>, session: Option<Session>) -> Response {
    error_page(
        &state,
        session.as_ref(),
        StatusCode::NOT_FOUND,
        "the dashboard has no such page",
    )
}
