//! The ticking: one apalis worker per task, fed by apalis-cron's `CronScheduler` with the
//! task's schedule (UTC), and a leader campaign beside them. On each tick the handler runs
//! the task only on the leader, through [`crate::runs::run_tick`].
//!
//! apalis-cron 1.0.0 fails its worker with `OutOfRange` when it is polled after a tick has
//! already passed (a machine too busy to poll it in time): the worker's `run` returns that
//! error and would stay down. So each task's worker runs in a loop that builds it again
//! (the missed tick is skipped, as apalis-cron skips missed ticks anyway).

use std::time::Duration;

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_cron::{CronScheduler, Tick};
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::leader::Leadership;
use crate::tasks::Task;
use crate::{Context, runs};

#[derive(Clone)]
struct TickState {
    ctx: Context,
    task: Task,
    leadership: Leadership,
}

async fn on_tick(tick: Tick, state: Data<TickState>) -> Result<(), BoxDynError> {
    if !state.leadership.is_leader() {
        return Ok(());
    }
    let secs = i64::try_from(tick.get_timestamp()).unwrap_or(i64::MAX);
    let at: DateTime<Utc> = DateTime::from_timestamp(secs, 0).ok_or("tick out of range")?;
    // A failed task is recorded as such; only a run that could not be recorded is an error.
    if let Err(e) = runs::run_tick(&state.ctx, state.task, at).await {
        tracing::warn!(task = state.task.name(), tick = %at, error = %e, "could not run or record the tick");
        return Err(e.into());
    }
    Ok(())
}

/// Runs the scheduler until `stop`: ticks in flight finish, then the leader lock is freed.
pub async fn run(ctx: Context, stop: CancellationToken) {
    let leadership = Leadership::default();
    let campaign = tokio::spawn(leadership.clone().campaign(
        ctx.store.clone(),
        ctx.replica.clone(),
        ctx.config.leader_check,
        stop.clone(),
    ));
    let mut tasks = vec![tokio::spawn(crate::control::run(
        ctx.clone(),
        leadership.clone(),
        stop.clone(),
    ))];
    for task in Task::ALL {
        let Some(schedule) = task.schedule(&ctx.config).cron().cloned() else {
            tracing::info!(task = task.name(), "off");
            continue;
        };
        tracing::info!(task = task.name(), %schedule, "scheduled (UTC)");
        let state = TickState {
            ctx: ctx.clone(),
            task,
            leadership: leadership.clone(),
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let worker = WorkerBuilder::new(format!("{}/{}", state.ctx.replica, task.name()))
                    .backend(CronScheduler::new(schedule.clone()))
                    .data(state.clone())
                    .build(on_tick);
                let signal = {
                    let stop = stop.clone();
                    async move {
                        stop.cancelled().await;
                        Ok::<(), std::io::Error>(())
                    }
                };
                if let Err(e) = worker.run_until(signal).await {
                    tracing::warn!(task = task.name(), error = %e, "cron worker stopped; starting it again");
                }
                // Also when it ended by itself (a schedule with no ticks left): never spin.
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = campaign.await;
}
