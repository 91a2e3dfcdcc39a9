//! The leader's dealings with the rest of the fleet through Redis. Every leader check the
//! leader announces itself (its replica, since when, each task's schedule), so the gateway
//! can say who leads and when each task ticks next (`GET /v1/schedule`); and it takes the
//! requests to run a task now (`POST /v1/schedule/{task}/run`), running each once through
//! [`runs::run_tick`] like any tick: claimed, recorded, at the tick the request carries.
//! Only the leader takes requests, so a request made while none leads waits in Redis for
//! the next one.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::leader::Leadership;
use crate::tasks::Task;
use crate::{Context, runs};

/// Requests taken at once, at most (the rest wait for the next check).
const TAKE_AT_ONCE: usize = 16;

/// How long an announcement lasts unless renewed: three leader checks (at least a second),
/// so a leader that dies without resigning is unlisted soon after.
pub fn announcement_ttl(leader_check: Duration) -> Duration {
    (leader_check * 3).max(Duration::from_secs(1))
}

/// Runs until `stop`; then the runs it started finish, and a leader withdraws its
/// announcement.
pub async fn run(ctx: Context, leadership: Leadership, stop: CancellationToken) {
    let schedules: Vec<(&str, String)> = Task::ALL
        .iter()
        .map(|t| (t.name(), t.schedule(&ctx.config).to_string()))
        .collect();
    let ttl = announcement_ttl(ctx.config.leader_check);
    let mut announced = false;
    let mut running = JoinSet::new();
    loop {
        if leadership.is_leader() {
            match ctx
                .queue
                .announce_leader(&ctx.replica, &schedules, ttl)
                .await
            {
                Ok(()) => announced = true,
                Err(e) => tracing::warn!(error = %e, "cannot announce the leader in redis"),
            }
            match ctx.queue.take_run_requests(TAKE_AT_ONCE).await {
                Ok(requests) => {
                    for r in requests {
                        start(&ctx, &mut running, r);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the requests to run a task"),
            }
        } else if announced {
            resign(&ctx).await;
            announced = false;
        }
        while running.try_join_next().is_some() {}
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(ctx.config.leader_check) => {}
        }
    }
    while running.join_next().await.is_some() {}
    if announced {
        resign(&ctx).await;
    }
}

async fn resign(ctx: &Context) {
    if let Err(e) = ctx.queue.resign_leader(&ctx.replica).await {
        tracing::debug!(error = %e, "cannot withdraw the leader's announcement; it lapses");
    }
}

/// Runs one request in the background, as [`runs::run_tick`] runs a tick.
fn start(ctx: &Context, running: &mut JoinSet<()>, request: gitfleet_queue::RunRequest) {
    let (Some(task), Some(tick)) = (Task::from_name(&request.task), request.tick()) else {
        tracing::warn!(task = %request.task, tick_us = request.tick_us, "dropped a request to run an unknown task, or at no time");
        return;
    };
    tracing::info!(task = task.name(), %tick, request = %request.id, by = %request.by, "running a task now, as asked");
    let ctx = ctx.clone();
    running.spawn(async move {
        if let Err(e) = runs::run_tick(&ctx, task, tick).await {
            tracing::warn!(task = task.name(), %tick, error = %e, "could not run or record a task asked for");
        }
    });
}
