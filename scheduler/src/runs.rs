//! Each run of a task is claimed in `scheduler_runs` before it starts: an `INSERT ... ON
//! CONFLICT (task, tick) DO NOTHING` that only one replica can win, so a tick runs at most
//! once even in a moment when two replicas both believe they lead. The row then records
//! the replica, the outcome (`running`, then `ok` or `error`), a detail and the duration.

use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::tasks::Task;
use crate::{Context, SchedError};

/// How a claimed run ended, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum RunResult {
    /// Another replica had claimed this tick: nothing ran here.
    AlreadyClaimed,
    Ok(serde_json::Value),
    Failed(String),
}

/// Claims `(task, tick)` for this replica; true if it is ours to run.
pub async fn claim(ctx: &Context, task: Task, tick: DateTime<Utc>) -> Result<bool, SchedError> {
    let claimed = sqlx::query_scalar!(
        r#"
INSERT INTO scheduler_runs (task, tick, replica, outcome, started_at, duration_ms)
VALUES ($1, $2, $3, 'running', now(), 0)
ON CONFLICT (task, tick) DO NOTHING
RETURNING id
"#,
        task.name(),
        tick,
        ctx.replica,
    )
    .fetch_optional(ctx.store.pool())
    .await?;
    Ok(claimed.is_some())
}

async fn finish(
    ctx: &Context,
    task: Task,
    tick: DateTime<Utc>,
    outcome: &str,
    detail: &str,
    duration_ms: i64,
) -> Result<(), SchedError> {
    sqlx::query!(
        r#"
UPDATE scheduler_runs SET outcome = $4, detail = $5, duration_ms = $6
 WHERE task = $1 AND tick = $2 AND replica = $3
"#,
        task.name(),
        tick,
        ctx.replica,
        outcome,
        detail,
        duration_ms,
    )
    .execute(ctx.store.pool())
    .await?;
    Ok(())
}

/// Claims `(task, tick)` and, if this replica won it, runs the task once and records how
/// it went.
pub async fn run_tick(
    ctx: &Context,
    task: Task,
    tick: DateTime<Utc>,
) -> Result<RunResult, SchedError> {
    if !claim(ctx, task, tick).await? {
        return Ok(RunResult::AlreadyClaimed);
    }
    let started = Instant::now();
    let result = task.run_once(ctx, tick).await;
    let ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let (outcome, detail, out) = match result {
        Ok(o) => ("ok", o.0.to_string(), RunResult::Ok(o.0)),
        Err(e) => {
            let text = e.to_string();
            ("error", text.clone(), RunResult::Failed(text))
        }
    };
    finish(ctx, task, tick, outcome, &detail, ms).await?;
    match &out {
        RunResult::Failed(e) => {
            tracing::warn!(task = task.name(), %tick, error = %e, "task failed")
        }
        _ => tracing::info!(task = task.name(), %tick, ms, %detail, "task ran"),
    }
    Ok(out)
}
