//! The ticking's promises beyond one task's round: a task set `off` never runs while the
//! others tick; a tick whose run a dead replica left `running` is not run again (the next
//! tick is); and a worker that does not answer its `maintain` job in time is reported, not
//! waited on forever, and sent the job again on the next tick.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use gitfleet_contract::JobStatus;
use gitfleet_scheduler::config::Schedule;
use gitfleet_scheduler::runs::{RunResult, run_tick};
use gitfleet_scheduler::tasks::health_check;
use gitfleet_scheduler::{SchedulerConfig, Task, cron};
use gitfleet_testkit::eventually;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::priority::insert_sandbox;
use crate::world::World;

/// How many runs of each task `scheduler_runs` holds.
async fn runs_per_task(w: &World) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT task, count(*) FROM scheduler_runs GROUP BY task ORDER BY task")
        .fetch_all(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_scheduled_off_never_runs_while_the_others_tick() {
    let w = World::new().await;
    let every_second = Schedule::parse("* * * * * *").unwrap();
    let mut config = SchedulerConfig {
        leader_check: Duration::from_millis(200),
        ..SchedulerConfig::default()
    };
    config.eviction.schedule = every_second.clone();
    config.priority.schedule = every_second.clone();
    config.health_check.schedule = every_second.clone();
    config.cleanup.schedule = every_second.clone();
    config.template.schedule = every_second;
    config.retention.schedule = Schedule::parse("off").unwrap();
    let ctx = w.ctx(config);
    let stop = CancellationToken::new();
    let ticking = tokio::spawn(cron::run(ctx, stop.clone()));

    // Every other task runs a few ticks: had retention been on, it would have run as often.
    let on: Vec<&str> = Task::ALL
        .iter()
        .filter(|t| **t != Task::Retention)
        .map(|t| t.name())
        .collect();
    eventually(
        "every task but the one set off to run three ticks",
        Duration::from_secs(30),
        async || {
            let counts = runs_per_task(&w).await;
            on.iter()
                .all(|task| counts.iter().any(|(t, n)| t == task && *n >= 3))
                .then_some(())
                .ok_or(format!("{counts:?}"))
        },
    )
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), ticking)
        .await
        .expect("the scheduler stops")
        .unwrap();
    let counts = runs_per_task(&w).await;
    assert!(
        !counts.iter().any(|(t, _)| t == Task::Retention.name()),
        "retention is off: {counts:?}"
    );
    assert_eq!(counts.len(), on.len(), "{counts:?}");
}

/// The run of `task` at `tick`: (replica, outcome).
async fn run_row(w: &World, task: Task, tick: DateTime<Utc>) -> Option<(String, String)> {
    sqlx::query_as("SELECT replica, outcome FROM scheduler_runs WHERE task = $1 AND tick = $2")
        .bind(task.name())
        .bind(tick)
        .fetch_optional(w.store.pool())
        .await
        .unwrap()
}

/// When `repo_priority` was last computed (the priority round's tick), if ever.
async fn priority_computed(w: &World) -> Option<DateTime<Utc>> {
    sqlx::query_scalar("SELECT max(computed_at) FROM repo_priority")
        .fetch_one(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tick_a_dead_replica_left_running_is_not_run_again_and_the_next_tick_is() {
    let w = World::new().await;
    let tick = Utc::now().trunc_subsecs(0);
    // One repository used in the window: a priority round writes it, stamped with its tick.
    insert_sandbox(
        &w,
        "w-1.s1",
        "w-1",
        "https://example.com/r.git",
        "ready",
        1,
        tick - chrono::Duration::minutes(1),
    )
    .await;
    // A replica claimed the tick and died mid-run.
    sqlx::query(
        "INSERT INTO scheduler_runs (task, tick, replica, outcome, started_at, duration_ms)
         VALUES ('priority', $1, 'gone', 'running', $1, 0)",
    )
    .bind(tick)
    .execute(w.store.pool())
    .await
    .unwrap();

    let ctx = w.ctx(SchedulerConfig::default());
    assert_eq!(
        run_tick(&ctx, Task::Priority, tick).await.unwrap(),
        RunResult::AlreadyClaimed
    );
    assert_eq!(priority_computed(&w).await, None, "the round did not run");
    assert_eq!(
        run_row(&w, Task::Priority, tick).await,
        Some(("gone".into(), "running".into())),
        "the dead replica's row stays as it was"
    );

    let next = tick + chrono::Duration::seconds(1);
    let RunResult::Ok(detail) = run_tick(&ctx, Task::Priority, next).await.unwrap() else {
        panic!("the next tick runs");
    };
    assert_eq!(detail["top"][0]["repo_url"], "https://example.com/r.git");
    assert_eq!(priority_computed(&w).await, Some(next));
    assert_eq!(
        run_row(&w, Task::Priority, next).await,
        Some(("test".into(), "ok".into()))
    );
    assert_eq!(
        run_row(&w, Task::Priority, tick).await,
        Some(("gone".into(), "running".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintain_job_left_unanswered_is_reported_when_the_wait_runs_out_and_sent_again_next_tick()
 {
    let w = World::new().await;
    // A worker that beats but takes no jobs (hung, or busy for longer than the wait).
    let hung = "hung-1";
    w.fleet.queue().heartbeat(hung, &[]).await.unwrap();
    let mut ctx = w.ctx(SchedulerConfig::default());
    ctx.config.maintenance_wait = Duration::from_secs(1);
    let tick = Utc::now().trunc_subsecs(0);

    // Through the run: the task ends `ok`, the unanswered job in its detail.
    let RunResult::Ok(out) = run_tick(&ctx, Task::HealthCheck, tick).await.unwrap() else {
        panic!("the round ends");
    };
    assert_eq!(out["workers"], 1, "{out}");
    assert_eq!(out["broken"], json!([]), "{out}");
    let answer = &out["answers"][0];
    assert_eq!(answer["worker"], hung, "{out}");
    assert_eq!(
        answer["error"], "not finished within 1 s (status waiting)",
        "{out}"
    );
    let first = answer["job_id"].as_str().unwrap().to_string();
    let detail: String =
        sqlx::query_scalar("SELECT detail FROM scheduler_runs WHERE task = 'health_check'")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
    assert!(detail.contains("not finished within 1 s"), "{detail}");

    // The same tick again sends nothing new; the next tick sends the job again.
    let again = health_check::run_once(&ctx, tick).await.unwrap().0;
    assert_eq!(again["answers"][0]["job_id"], first.as_str(), "{again}");
    let next = health_check::run_once(&ctx, tick + chrono::Duration::minutes(5))
        .await
        .unwrap()
        .0;
    let second = next["answers"][0]["job_id"].as_str().unwrap().to_string();
    assert_ne!(second, first, "{next}");
    for id in [&first, &second] {
        let job = w.fleet.queue().job(id).await.unwrap().unwrap();
        assert_eq!(job.status, JobStatus::Waiting, "{job:?}");
        assert_eq!(job.queue, format!("worker:{hung}"), "{job:?}");
        assert_eq!(job.op, "maintain", "{job:?}");
    }
}
