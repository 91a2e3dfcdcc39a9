//! The scheduler as an admin sees it: its recent runs (from `scheduler_runs`), each task's
//! schedule and next tick, and the replica that leads (as it announces itself in Redis);
//! and running a task now, a request the leader takes from Redis (see
//! `gitfleet_scheduler::control`).

use std::str::FromStr;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::{Audit, Surface};
use crate::auth::Caller;
use crate::extract::{Params, Path};
use crate::problem::Problem;
use crate::routes::run_to_end;
use crate::state::AppState;
use gitfleet_client::store::SchedulerRun;
use gitfleet_contract::rfc3339_micros;
use gitfleet_queue::{RunRequest, SCHEDULER_TASKS, is_manual_tick};

/// `GET /v1/schedule` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleParams {
    /// Runs at most, newest first, 1-500 (default 50).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
}

/// `GET /v1/schedule`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Schedule {
    /// The replica that leads now, as it announces itself (every leader check); absent:
    /// none leads (none runs, or the last leader died less than three checks ago and
    /// another has not taken over yet).
    pub leader: Option<LeaderInfo>,
    /// Every task, with its schedule on the leader and its next tick.
    pub tasks: Vec<TaskSchedule>,
    /// The most recent runs, newest first.
    pub runs: Vec<ScheduleRun>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LeaderInfo {
    pub replica: String,
    /// When it began to lead.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub since: Option<DateTime<Utc>>,
    /// Its last announcement.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub announced_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TaskSchedule {
    pub task: String,
    /// Its cron expression on the leader (seconds first, UTC), or `off`; absent when no
    /// replica leads (the schedule is the leader's configuration).
    pub schedule: Option<String>,
    /// Its next tick by that schedule; absent when it is off or unknown.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub next_tick: Option<DateTime<Utc>>,
}

/// One run of a task.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ScheduleRun {
    #[serde(flatten)]
    pub run: SchedulerRun,
    /// `cron` (a tick of its schedule) or `manual` (asked for with
    /// `POST /v1/schedule/{task}/run`; its tick is the request's time, never a whole
    /// second).
    #[schemars(extend("enum" = ["cron", "manual"]))]
    pub trigger: &'static str,
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<ScheduleParams>,
) -> Result<Json<Schedule>, Problem> {
    Ok(Json(schedule_for(&state, &caller, p.limit).await?))
}

/// The leader, every task's next tick and the `limit` most recent runs (default 50), for
/// an admin: what `GET /v1/schedule` answers, and the dashboard's Schedule page shows.
pub async fn schedule_for(
    state: &AppState,
    caller: &Caller,
    limit: Option<i64>,
) -> Result<Schedule, Problem> {
    require_admin(caller, "reading the schedule")?;
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param(
            "limit",
            format!("{limit} is not from 1 to 500"),
        ));
    }
    let leader = state.client.queue().leader().await?;
    let runs = state.store.scheduler_runs(limit).await?;
    let now = Utc::now();
    let tasks = SCHEDULER_TASKS
        .iter()
        .map(|task| {
            let schedule = leader.as_ref().and_then(|l| {
                l.schedules
                    .iter()
                    .find(|(t, _)| t == task)
                    .map(|(_, s)| s.clone())
            });
            let next_tick = schedule
                .as_deref()
                .and_then(|s| cron::Schedule::from_str(s).ok())
                .and_then(|s| s.after(&now).next());
            TaskSchedule {
                task: task.to_string(),
                schedule,
                next_tick,
            }
        })
        .collect();
    Ok(Schedule {
        leader: leader.map(|l| LeaderInfo {
            replica: l.replica,
            since: l.since,
            announced_at: l.announced_at,
        }),
        tasks,
        runs: runs
            .into_iter()
            .map(|run| ScheduleRun {
                trigger: if run.tick.is_some_and(is_manual_tick) {
                    "manual"
                } else {
                    "cron"
                },
                run,
            })
            .collect(),
    })
}

/// `POST /v1/schedule/{task}/run`: accepted; the leader runs it within a leader check.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RunAccepted {
    /// The request's id (in the leader's log).
    pub request_id: String,
    pub task: String,
    /// The run's tick: its row in `runs` of `GET /v1/schedule` is this task at this tick
    /// (`outcome` `running`, then `ok` or `error`), with `trigger` `manual`.
    #[serde(with = "rfc3339_micros")]
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub tick: Option<DateTime<Utc>>,
    /// The replica that leads now, which will run it (another, if it dies first: the
    /// request waits in Redis for the next leader).
    pub leader: String,
}

pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(task): Path<String>,
) -> Result<Response, Problem> {
    let body = run_task(&state, &caller, surface, task).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, "/v1/schedule".to_string())],
        Json(body),
    )
        .into_response())
}

/// Asks the leader to run `task` now, for an admin, to its end even if the caller hangs
/// up, with its audit entry (`schedule.run`, from `surface`; fleet-wide): what
/// `POST /v1/schedule/{task}/run` does, and the dashboard's Run now button.
pub async fn run_task(
    state: &AppState,
    caller: &Caller,
    surface: Surface,
    task: String,
) -> Result<RunAccepted, Problem> {
    let (st, caller) = (state.clone(), caller.clone());
    run_to_end(async move {
        let mut audit = Audit::new("schedule.run", &caller, surface);
        audit.org = None;
        audit.target = Some(task.clone());
        let r = ask_run(&st, &caller, task).await;
        audit.finish(&st, &caller, &r);
        r
    })
    .await?
}

async fn ask_run(state: &AppState, caller: &Caller, task: String) -> Result<RunAccepted, Problem> {
    require_admin(caller, "running a task")?;
    if !SCHEDULER_TASKS.contains(&task.as_str()) {
        return Err(Problem::not_found(format!(
            "no scheduler task {task:?}; the tasks are {}",
            SCHEDULER_TASKS.join(", ")
        )));
    }
    let Some(leader) = state.client.queue().leader().await? else {
        return Err(Problem::unavailable(
            "no scheduler replica leads now, so nothing would run the task: start \
             gitfleet-scheduler (or wait for a replica to take the lead) and ask again",
        ));
    };
    let request = RunRequest::now(&task, &caller.key_id);
    state.client.queue().request_run(&request).await?;
    tracing::info!(task = %task, request = %request.id, key = %caller.key_id, "task run asked for");
    Ok(RunAccepted {
        request_id: request.id.clone(),
        tick: request.tick(),
        task,
        leader: leader.replica,
    })
}

/// The schedule is the whole fleet's (every organization's upkeep): admin keys only.
fn require_admin(caller: &Caller, what: &str) -> Result<(), Problem> {
    if caller.is_admin() {
        return Ok(());
    }
    Err(Problem::forbidden(format!(
        "this key's role is {}; {what} needs admin (the scheduler serves every organization)",
        caller.role
    )))
}
