//! The dashboard's fleet pages: workers (and draining one), sandboxes (and releasing one),
//! repositories, the schedule (and running a task now), organizations. Each reads and acts
//! through the same functions as its `/v1` route (`routes::fleet`, `routes::repositories`,
//! `routes::schedule`), so the rules of roles and organizations, the checks of input and
//! the audit entries are the API's own; a form adds only the session's CSRF token.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::session::{CsrfForm, Session, csrf_refused};
use super::{Chrome, html, problem_page, see_other, show_time, urlencode};
use crate::audit::Surface;
use crate::problem::Problem;
use crate::routes::fleet::{
    Drain, SandboxParams, drain_worker, keys_for, release_sandbox, sandboxes_for, usage_of,
    workers_for,
};
use crate::routes::repositories::{RepoParams, repositories_for};
use crate::routes::schedule::{run_task, schedule_for};
use crate::state::AppState;
use gitfleet_client::WorkerInfo;
use gitfleet_client::store::SandboxRow;
use gitfleet_contract::Role;

/// Repositories per page.
const REPO_PAGE: i64 = 50;
/// Sandboxes a page lists unless it asks for another number (the API's bound is 500).
const SANDBOX_PAGE: i64 = 100;
/// Scheduler runs the page lists.
const SCHEDULE_RUNS: i64 = 50;
/// Organizations, and keys, the Organizations page lists at most.
const ORGS_SHOWN: usize = 200;
const KEYS_SHOWN: usize = 500;

/// A form field or query value, trimmed; `None` when empty.
fn opt(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A duration in seconds as the pages show it: `42 s`, `7 min`, `3 h 5 min`, `2 d 4 h`.
pub fn span(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// A size in bytes as the pages show it.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// How long ago `t` was, or `—`.
fn ago(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    t.map(|t| span((now - t).num_milliseconds() as f64 / 1000.0))
        .unwrap_or_else(|| "—".into())
}

/// Checks a form's CSRF token: `None` when it is the session's, else the `403` page to
/// answer.
fn refuse_form(
    state: &AppState,
    session: &Session,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
    what: &str,
) -> Option<Response> {
    let sent = form.ok().and_then(|axum::Form(f)| f.csrf);
    if session.check_csrf(sent.as_deref()) {
        return None;
    }
    tracing::info!(key_id = %session.caller.key_id, action = what, "dashboard action without its CSRF token refused");
    Some(csrf_refused(state, session))
}

// ---------------------------------------------------------------- workers

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    c: Chrome,
    workers: Vec<WorkerView>,
    /// An empty row, the pattern of the rows a live update adds (one, in a list for the
    /// template's loop).
    blank: Vec<WorkerView>,
    /// The caller may drain (admin).
    admin: bool,
    notice: String,
}

struct WorkerView {
    id: String,
    host: String,
    version: String,
    queues: String,
    busy: u32,
    slots: String,
    running: Vec<RunningView>,
    /// Busy slots whose job the caller may not see (another organization's).
    hidden: u32,
    heartbeat: String,
    started: String,
    state: String,
    /// When a drain was asked for, or empty.
    drain_asked: String,
    drain_url: String,
    undrain_url: String,
    /// Which button it has: drain (taking jobs), undrain (asked to drain, or drained).
    can_drain: bool,
    can_undrain: bool,
}

struct RunningView {
    id: String,
    url: String,
    op: String,
    org: String,
    since: String,
}

impl RunningView {
    /// What follows its link: its op, organization and how long it has run.
    fn detail(&self) -> String {
        if self.org.is_empty() {
            format!("{} · {}", self.op, self.since)
        } else {
            format!("{} · {} · {}", self.op, self.org, self.since)
        }
    }
}

impl WorkerView {
    fn blank() -> Self {
        WorkerView {
            id: String::new(),
            host: String::new(),
            version: String::new(),
            queues: String::new(),
            busy: 0,
            slots: String::new(),
            running: Vec::new(),
            hidden: 0,
            heartbeat: String::new(),
            started: String::new(),
            state: String::new(),
            drain_asked: String::new(),
            drain_url: String::new(),
            undrain_url: String::new(),
            can_drain: false,
            can_undrain: false,
        }
    }
}

/// A worker as a live update carries it to the Workers page: what its row shows, worded
/// as the page words it (the caller's filter applied before, by
/// [`crate::routes::fleet::workers_seen_by`]).
pub fn worker_json(base: &str, w: &WorkerInfo, now: DateTime<Utc>) -> Value {
    let v = worker_view(base, w, now);
    json!({
        "id": v.id,
        "host": v.host,
        "version": v.version,
        "queues": v.queues,
        "state": v.state,
        "drain_asked": if v.drain_asked.is_empty() { String::new() } else { format!("drain asked {}", v.drain_asked) },
        "busy": format!("{} of {}", v.busy, v.slots),
        "idle": v.busy == 0,
        "running": v.running.iter().map(|j| json!({"id": j.id, "url": j.url, "detail": j.detail()})).collect::<Vec<_>>(),
        "hidden": v.hidden,
        "heartbeat": format!("{} ago", v.heartbeat),
        "started": v.started,
        "can_drain": v.can_drain,
        "can_undrain": v.can_undrain,
        "drain_url": v.drain_url,
        "undrain_url": v.undrain_url,
    })
}

fn worker_view(base: &str, w: &WorkerInfo, now: DateTime<Utc>) -> WorkerView {
    let state = w.state.as_str().to_string();
    let drain_asked = w.drain_requested_at.is_some();
    let running: Vec<RunningView> = w
        .running
        .iter()
        .map(|j| RunningView {
            url: format!("{base}/jobs/{}", j.job_id),
            id: j.job_id.clone(),
            op: j.op.clone(),
            org: j.org.clone().unwrap_or_default(),
            since: ago(j.started_at, now),
        })
        .collect();
    WorkerView {
        host: w.host.clone().unwrap_or_default(),
        version: w.version.clone().unwrap_or_default(),
        queues: w.queues.join(", "),
        busy: w.busy,
        slots: w.slots.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
        hidden: w.busy.saturating_sub(running.len() as u32),
        running,
        heartbeat: w
            .heartbeat_age_ms
            .map(|ms| span(ms as f64 / 1000.0))
            .unwrap_or_else(|| "—".into()),
        started: show_time(w.started_at),
        drain_asked: if drain_asked {
            show_time(w.drain_requested_at)
        } else {
            String::new()
        },
        can_drain: !w.declared_dead && !drain_asked && state == "running",
        can_undrain: !w.declared_dead && (drain_asked || state == "draining" || state == "drained"),
        drain_url: format!("{base}/workers/{}/drain", urlencode(&w.worker_id)),
        undrain_url: format!("{base}/workers/{}/undrain", urlencode(&w.worker_id)),
        state,
        id: w.worker_id.clone(),
    }
}

#[derive(Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: String,
    #[serde(default)]
    what: String,
}

/// `GET <base>/workers`: the live workers (Redis), most recent heartbeat first; the jobs
/// their busy slots run, the caller's organization's only unless it is an admin (as
/// `GET /v1/workers`).
pub async fn workers(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<DoneQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let list = match workers_for(&state, &session.caller).await {
        Ok(w) => w,
        Err(p) => return problem_page(&state, &session, p),
    };
    let now = Utc::now();
    let notice = match q.done.as_str() {
        "drain" => format!(
            "Worker {} is asked to drain: it takes no new job and finishes the ones it holds.",
            q.what
        ),
        "undrain" => format!(
            "Worker {}'s drain is withdrawn: it takes jobs again.",
            q.what
        ),
        _ => String::new(),
    };
    let page = WorkersPage {
        c: Chrome::new(&state, "Workers", "workers")
            .signed_in(&session)
            .live_page("workers"),
        workers: list.iter().map(|w| worker_view(&base, w, now)).collect(),
        blank: vec![WorkerView::blank()],
        admin: session.caller.is_admin(),
        notice,
    };
    html(StatusCode::OK, &page)
}

async fn drain_form(
    state: AppState,
    session: Session,
    id: String,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
    what: Drain,
) -> Response {
    let name = if what == Drain::Drain {
        "drain"
    } else {
        "undrain"
    };
    if let Some(refused) = refuse_form(&state, &session, form, name) {
        return refused;
    }
    match drain_worker(&state, &session.caller, Surface::Ui, &id, what).await {
        Ok(_) => see_other(&format!(
            "{}/workers?done={name}&what={}",
            state.config.ui.base,
            urlencode(&id)
        )),
        Err(p) => problem_page(&state, &session, p),
    }
}

/// `POST <base>/workers/{id}/drain` (admin): as `POST /v1/workers/{id}/drain`.
pub async fn drain(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    drain_form(state, session, id, form, Drain::Drain).await
}

/// `POST <base>/workers/{id}/undrain` (admin): as `POST /v1/workers/{id}/undrain`.
pub async fn undrain(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    drain_form(state, session, id, form, Drain::Undrain).await
}

// ---------------------------------------------------------------- sandboxes

#[derive(Template)]
#[template(path = "sandboxes.html")]
struct SandboxesPage {
    c: Chrome,
    f: SandboxQuery,
    statuses: Vec<(String, bool)>,
    rows: Vec<SandboxView>,
    /// The caller may release (operator and above).
    release: bool,
    filtered: bool,
    error: String,
    notice: String,
    notice_url: String,
}

struct SandboxView {
    id: String,
    /// Its own part, after the worker's id (the worker has a column of its own).
    short_id: String,
    repo: String,
    branch: String,
    agent_branch: String,
    org: String,
    agent: String,
    status: String,
    tier: String,
    time_left: String,
    worker: String,
    age: String,
    uses: i32,
    errors: i32,
    jobs_url: String,
    release_url: String,
    live: bool,
}

/// A registry row as the Sandboxes page shows it.
fn sandbox_view(base: &str, s: SandboxRow) -> SandboxView {
    SandboxView {
        jobs_url: format!("{base}/jobs?sandbox={}", urlencode(&s.sandbox_id)),
        release_url: format!("{base}/sandboxes/{}/release", urlencode(&s.sandbox_id)),
        live: s.status != "terminated",
        short_id: s
            .sandbox_id
            .rsplit_once('.')
            .map(|(_, own)| own.to_string())
            .unwrap_or_else(|| s.sandbox_id.clone()),
        id: s.sandbox_id,
        repo: s.repo_url,
        branch: s.branch,
        agent_branch: s.agent_branch,
        org: s.org_id.unwrap_or_default(),
        agent: s.agent_id.unwrap_or_default(),
        status: s.status,
        tier: s.ttl_tier.unwrap_or_default(),
        time_left: s.time_left_secs.map(span).unwrap_or_else(|| "—".into()),
        worker: s.worker_id,
        age: s.age_secs.map(span).unwrap_or_else(|| "—".into()),
        uses: s.use_count,
        errors: s.error_count,
    }
}

/// A sandbox as a live update carries it to the Sandboxes page: what changes in its row.
pub fn sandbox_json(base: &str, s: SandboxRow) -> Value {
    let v = sandbox_view(base, s);
    json!({
        "id": v.id,
        "status": v.status,
        "tier": v.tier,
        "time_left": v.time_left,
        "uses": v.uses.to_string(),
        "errors": if v.errors > 0 { format!("({} failed)", v.errors) } else { String::new() },
        "live": v.live,
    })
}

/// The Sandboxes page's filters, as its form sends them (empty: not set).
#[derive(Debug, Default, Deserialize)]
pub struct SandboxQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub worker: String,
    #[serde(default)]
    pub agent: String,
    #[serde(default)]
    pub repo: String,
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub limit: String,
    #[serde(default)]
    done: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    job_status: String,
}

const SANDBOX_STATUSES: [&str; 5] = ["initializing", "ready", "in_use", "error", "terminated"];

impl SandboxQuery {
    fn params(&self) -> Result<SandboxParams, Problem> {
        let limit = match opt(&self.limit) {
            None => SANDBOX_PAGE,
            Some(l) => l
                .parse()
                .map_err(|_| Problem::bad_param("limit", format!("{l:?} is not a number")))?,
        };
        Ok(SandboxParams {
            status: opt(&self.status),
            worker: opt(&self.worker),
            agent: opt(&self.agent),
            repo: opt(&self.repo),
            org: opt(&self.org),
            limit: Some(limit),
        })
    }

    fn filtered(&self) -> bool {
        [
            &self.status,
            &self.worker,
            &self.agent,
            &self.repo,
            &self.org,
            &self.limit,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }
}

/// `GET <base>/sandboxes`: the registry (Postgres), most recently used first, filtered as
/// `GET /v1/sandboxes` is; the caller's organization's only unless it is an admin.
pub async fn sandboxes(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<SandboxQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let mut status = StatusCode::OK;
    let mut error = String::new();
    let found = match f.params() {
        Ok(p) => sandboxes_for(&state, &session.caller, p).await,
        Err(p) => Err(p),
    };
    let rows = match found {
        Ok(rows) => rows.into_iter().map(|s| sandbox_view(&base, s)).collect(),
        Err(p) => {
            status = p.status();
            error = p.detail.clone();
            Vec::new()
        }
    };
    let (notice, notice_url) = match f.done.as_str() {
        "released" => (
            format!(
                "Sandbox released: its release job {} is {}.",
                f.job, f.job_status
            ),
            format!("{base}/jobs/{}", urlencode(&f.job)),
        ),
        _ => (String::new(), String::new()),
    };
    let statuses = SANDBOX_STATUSES
        .iter()
        .map(|s| (s.to_string(), f.status.trim() == *s))
        .collect();
    let page = SandboxesPage {
        c: Chrome::new(&state, "Sandboxes", "sandboxes")
            .signed_in(&session)
            .live_page("sandboxes"),
        filtered: f.filtered(),
        f,
        statuses,
        rows,
        release: session.caller.role.permits(Role::Operator),
        error,
        notice,
        notice_url,
    };
    html(status, &page)
}

/// `POST <base>/sandboxes/{id}/release` (operator): as `DELETE /v1/sandboxes/{id}`, with
/// its audit entry marked as the dashboard's.
pub async fn release(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(refused) = refuse_form(&state, &session, form, "release") {
        return refused;
    }
    match release_sandbox(&state, &session.caller, Surface::Ui, &id).await {
        Ok((record, _)) => {
            tracing::info!(key_id = %session.caller.key_id, sandbox = %id, job_id = %record.job_id, "dashboard release");
            see_other(&format!(
                "{}/sandboxes?done=released&job={}&job_status={}",
                state.config.ui.base,
                urlencode(&record.job_id),
                record.status
            ))
        }
        Err(p) => problem_page(&state, &session, p),
    }
}

// ---------------------------------------------------------------- repositories

#[derive(Template)]
#[template(path = "repositories.html")]
struct RepositoriesPage {
    c: Chrome,
    f: RepoQuery,
    rows: Vec<RepoView>,
    next: String,
    filtered: bool,
    error: String,
}

struct RepoView {
    url: String,
    sandboxes_url: String,
    uses: i64,
    hits: i64,
    misses: i64,
    fetches: i64,
    pushes: i64,
    rebases: i64,
    conflicts: i64,
    last_used: String,
    last_fetch: String,
    pinned: bool,
    rank: String,
    workers: Vec<RepoWorkerView>,
}

struct RepoWorkerView {
    worker: String,
    uses: i64,
    hits: i64,
    misses: i64,
    mirror: String,
    last_fetch: String,
    pushes: i64,
    conflicts: i64,
}

/// The Repositories page's filters, as its form sends them (empty: not set).
#[derive(Debug, Default, Deserialize)]
pub struct RepoQuery {
    #[serde(default)]
    pub org: String,
    #[serde(default)]
    pub worker: String,
    #[serde(default)]
    pub repo: String,
    /// `yes`, `no`, or empty (either).
    #[serde(default)]
    pub pinned: String,
    /// `recent` (the default) or `uses`.
    #[serde(default)]
    pub sort: String,
    #[serde(default)]
    pub cursor: String,
}

impl RepoQuery {
    fn params(&self) -> Result<RepoParams, Problem> {
        let pinned = match self.pinned.trim() {
            "" => None,
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            other => {
                return Err(Problem::bad_param(
                    "pinned",
                    format!("{other:?}: yes, no, or empty for either"),
                ));
            }
        };
        Ok(RepoParams {
            org: opt(&self.org),
            worker: opt(&self.worker),
            repo: opt(&self.repo),
            pinned,
            sort: opt(&self.sort),
            limit: Some(REPO_PAGE),
            cursor: opt(&self.cursor),
        })
    }

    fn query_string(&self, cursor: Option<&str>) -> String {
        let mut q = Vec::new();
        for (k, v) in [
            ("org", &self.org),
            ("worker", &self.worker),
            ("repo", &self.repo),
            ("pinned", &self.pinned),
            ("sort", &self.sort),
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
}

/// `GET <base>/repositories`: the repositories the caller's organization worked on (an
/// admin's: the fleet's, or one organization's), 50 a page with the cursor of
/// `GET /v1/repositories`; each with its workers' mirrors.
pub async fn repositories(
    State(state): State<AppState>,
    session: Session,
    Query(f): Query<RepoQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let mut status = StatusCode::OK;
    let mut error = String::new();
    let mut next = String::new();
    let found = match f.params() {
        Ok(p) => repositories_for(&state, &session.caller, &p).await,
        Err(p) => Err(p),
    };
    let rows = match found {
        Ok(page) => {
            if let Some(c) = page.next {
                next = format!("{base}/repositories?{}", f.query_string(Some(&c.encode())));
            }
            page.rows
                .into_iter()
                .map(|r| RepoView {
                    sandboxes_url: format!("{base}/sandboxes?repo={}", urlencode(&r.repo_url)),
                    uses: r.uses,
                    hits: r.cache_hits,
                    misses: r.cache_misses,
                    fetches: r.fetches,
                    pushes: r.pushes,
                    rebases: r.rebases,
                    conflicts: r.conflicts,
                    last_used: show_time(r.last_used_at),
                    last_fetch: show_time(r.last_fetch_at),
                    pinned: r.pinned,
                    rank: r.rank.map(|n| format!("#{n}")).unwrap_or_default(),
                    workers: r
                        .workers
                        .into_iter()
                        .map(|w| RepoWorkerView {
                            worker: w.worker_id,
                            uses: w.uses,
                            hits: w.cache_hits,
                            misses: w.cache_misses,
                            mirror: w.mirror_bytes.map(bytes).unwrap_or_else(|| "—".into()),
                            last_fetch: show_time(w.last_fetch_at),
                            pushes: w.pushes,
                            conflicts: w.conflicts,
                        })
                        .collect(),
                    url: r.repo_url,
                })
                .collect()
        }
        Err(p) => {
            status = p.status();
            error = p.detail.clone();
            Vec::new()
        }
    };
    let page = RepositoriesPage {
        c: Chrome::new(&state, "Repositories", "repositories").signed_in(&session),
        filtered: !f.query_string(None).is_empty(),
        f,
        rows,
        next,
        error,
    };
    html(status, &page)
}

// ---------------------------------------------------------------- schedule

#[derive(Template)]
#[template(path = "schedule.html")]
struct SchedulePage {
    c: Chrome,
    leader: Option<LeaderView>,
    tasks: Vec<TaskView>,
    runs: Vec<RunView>,
    notice: String,
}

struct LeaderView {
    replica: String,
    since: String,
    announced: String,
}

struct TaskView {
    task: String,
    schedule: String,
    next_tick: String,
    run_url: String,
}

struct RunView {
    task: String,
    tick: String,
    trigger: String,
    replica: String,
    outcome: String,
    duration: String,
    detail: String,
}

#[derive(Deserialize)]
pub struct ScheduleQuery {
    #[serde(default)]
    done: String,
    #[serde(default)]
    task: String,
    #[serde(default)]
    leader: String,
}

/// `GET <base>/schedule` (admin, as `GET /v1/schedule`): the leader, each task's schedule
/// and next tick, the 50 most recent runs.
pub async fn schedule(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<ScheduleQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let s = match schedule_for(&state, &session.caller, Some(SCHEDULE_RUNS)).await {
        Ok(s) => s,
        Err(p) => return problem_page(&state, &session, p),
    };
    let notice = match q.done.as_str() {
        "run" => format!(
            "Asked {} to run {} now: its run is listed below within a leader check (reload).",
            q.leader, q.task
        ),
        _ => String::new(),
    };
    let page = SchedulePage {
        c: Chrome::new(&state, "Schedule", "schedule").signed_in(&session),
        leader: s.leader.map(|l| LeaderView {
            replica: l.replica,
            since: show_time(l.since),
            announced: show_time(l.announced_at),
        }),
        tasks: s
            .tasks
            .into_iter()
            .map(|t| TaskView {
                run_url: format!("{base}/schedule/{}/run", urlencode(&t.task)),
                task: t.task,
                schedule: t.schedule.unwrap_or_else(|| "—".into()),
                next_tick: show_time(t.next_tick),
            })
            .collect(),
        runs: s
            .runs
            .into_iter()
            .map(|r| RunView {
                trigger: r.trigger.to_string(),
                task: r.run.task,
                tick: r
                    .run
                    .tick
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
                    .unwrap_or_else(|| "—".into()),
                replica: r.run.replica,
                outcome: r.run.outcome,
                duration: if r.run.duration_ms < 1000 {
                    format!("{} ms", r.run.duration_ms)
                } else {
                    format!("{:.1} s", r.run.duration_ms as f64 / 1000.0)
                },
                detail: r.run.detail.unwrap_or_default(),
            })
            .collect(),
        notice,
    };
    html(StatusCode::OK, &page)
}

/// `POST <base>/schedule/{task}/run` (admin): as `POST /v1/schedule/{task}/run`.
pub async fn run(
    State(state): State<AppState>,
    session: Session,
    Path(task): Path<String>,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Some(refused) = refuse_form(&state, &session, form, "schedule.run") {
        return refused;
    }
    match run_task(&state, &session.caller, Surface::Ui, task).await {
        Ok(a) => see_other(&format!(
            "{}/schedule?done=run&task={}&leader={}",
            state.config.ui.base,
            urlencode(&a.task),
            urlencode(&a.leader)
        )),
        Err(p) => problem_page(&state, &session, p),
    }
}

// ---------------------------------------------------------------- organizations

#[derive(Template)]
#[template(path = "orgs.html")]
struct OrgsPage {
    c: Chrome,
    org_filter: String,
    orgs: Vec<OrgView>,
    keys: Vec<KeyView>,
    orgs_cut: bool,
    keys_cut: bool,
}

struct OrgView {
    org: String,
    url: String,
    budget: String,
    spend: String,
    over_budget: bool,
    live: u64,
}

struct KeyView {
    id: String,
    org: String,
    name: String,
    role: String,
    created: String,
    expires: String,
    last_used: String,
    /// `active`, `revoked` or `expired`.
    state: String,
}

#[derive(Deserialize)]
pub struct OrgsQuery {
    org: Option<String>,
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

/// `GET <base>/orgs` (admin): every organization with a budget, usage or live sandboxes
/// (its budget, this month's spend, its live sandboxes, as `GET /v1/orgs/{org}/usage`),
/// and the keys (as `GET /v1/keys`: ids, names, roles, expiry, last use; never a secret).
/// `?org=` shows one organization.
pub async fn orgs(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<OrgsQuery>,
) -> Response {
    let base = state.config.ui.base.clone();
    let org = q.org.as_deref().map(str::trim).filter(|o| !o.is_empty());
    // The keys first: it is the admin check (others are refused as the API refuses them).
    let keys = match keys_for(&state, &session.caller, org).await {
        Ok(k) => k,
        Err(p) => return problem_page(&state, &session, p),
    };
    let spends = match state.store.orgs().await {
        Ok(o) => o,
        Err(e) => return problem_page(&state, &session, e.into()),
    };
    let mut spends: Vec<_> = spends
        .into_iter()
        .filter(|s| org.is_none_or(|o| s.org_id == o))
        .collect();
    let orgs_cut = spends.len() > ORGS_SHOWN;
    spends.truncate(ORGS_SHOWN);
    let usages = match futures::future::try_join_all(
        spends.into_iter().map(|s| usage_of(&state, s)),
    )
    .await
    {
        Ok(u) => u,
        Err(p) => return problem_page(&state, &session, p),
    };
    let now = Utc::now();
    let keys_cut = keys.len() > KEYS_SHOWN;
    let page = OrgsPage {
        c: Chrome::new(&state, "Organizations", "orgs").signed_in(&session),
        org_filter: org.unwrap_or_default().to_string(),
        orgs: usages
            .into_iter()
            .map(|u| OrgView {
                url: format!("{base}/orgs?org={}", urlencode(&u.org)),
                budget: u
                    .monthly_budget_usd
                    .map(usd)
                    .unwrap_or_else(|| "none".into()),
                spend: usd(u.spend_usd),
                over_budget: u.over_budget,
                live: u.live_sandboxes,
                org: u.org,
            })
            .collect(),
        keys: keys
            .into_iter()
            .take(KEYS_SHOWN)
            .map(|k| KeyView {
                state: if k.revoked_at.is_some() {
                    "revoked".into()
                } else if k.is_active(now) {
                    "active".into()
                } else {
                    "expired".into()
                },
                id: k.id,
                org: k.org,
                name: k.name.unwrap_or_default(),
                role: k.role.to_string(),
                created: show_time(Some(k.created_at)),
                expires: k
                    .expires_at
                    .map(|t| show_time(Some(t)))
                    .unwrap_or_else(|| "never".into()),
                last_used: show_time(k.last_used_at),
            })
            .collect(),
        orgs_cut,
        keys_cut,
    };
    html(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes_read_plainly() {
        assert_eq!(span(0.4), "0 s");
        assert_eq!(span(59.0), "59 s");
        assert_eq!(span(61.0), "1 min");
        assert_eq!(span(3725.0), "1 h 2 min");
        assert_eq!(span(90_000.0), "1 d 1 h");
        assert_eq!(span(-3.0), "0 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
