//! Clean-up: a worker without a heartbeat is dead in Postgres, its sandboxes terminated,
//! the jobs waiting in its queue answered `sandbox_not_found`; a worker Redis still sees
//! beating is left alone.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use gitfleet_client::store::{JobEvent, Record};
use gitfleet_client::{EnqueueOptions, JobSpec, JobStatus};
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::cleanup;
use serde_json::json;

use crate::priority::insert_sandbox;
use crate::world::World;

async fn insert_worker(w: &World, id: &str, beat: chrono::DateTime<Utc>) {
    sqlx::query(
        r#"INSERT INTO workers (worker_id, host, version, state, started_at, last_heartbeat_at)
           VALUES ($1, 'h', '0', 'running', $2, $2)"#,
    )
    .bind(id)
    .bind(beat)
    .execute(w.store.pool())
    .await
    .unwrap();
}

async fn state(w: &World, id: &str) -> String {
    sqlx::query_scalar("SELECT state FROM workers WHERE worker_id = $1")
        .bind(id)
        .fetch_one(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_worker_is_marked_dead_its_sandboxes_end_and_its_waiting_jobs_are_answered() {
    let w = World::new().await;
    let now = Utc::now().trunc_subsecs(6);
    let ago = now - chrono::Duration::minutes(10);
    let (ghost, alive) = ("ghost-1", "alive-1");
    // Both rows are stale in Postgres; only `alive` still beats in Redis.
    insert_worker(&w, ghost, ago).await;
    insert_worker(&w, alive, ago).await;
    insert_sandbox(
        &w,
        "ghost-1.s1",
        ghost,
        "https://example.com/a.git",
        "in_use",
        3,
        ago,
    )
    .await;
    insert_sandbox(
        &w,
        "alive-1.s1",
        alive,
        "https://example.com/a.git",
        "ready",
        3,
        ago,
    )
    .await;
    // The ghost registered in Redis and got a job on its own queue, then fell silent.
    w.fleet.queue().heartbeat(ghost, &[]).await.unwrap();
    w.fleet.queue().heartbeat(alive, &[]).await.unwrap();
    // A client that keeps the record writes each job's row at submit.
    let client = w.fleet.client().clone().with_store(w.store.clone());
    let job = client
        .submit(
            &format!("worker:{ghost}"),
            &JobSpec::new(
                "status",
                json!({"sandbox_id": format!("{ghost}.01J0000000000000000000000A")}),
            ),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let row = w.store.job_history(&job.job_id).await.unwrap().unwrap().job;
    assert_eq!(row.status, "waiting", "{row:?}");
    // Its last beat, by Redis's clock, is ten minutes old; `alive` beat just now. A minute
    // apart from both, the dead-after time holds however slow this machine is.
    w.fleet
        .test_queue()
        .silence(ghost, Duration::from_secs(600))
        .await;

    let mut config = SchedulerConfig::default();
    config.cleanup.dead_after = Duration::from_secs(60);
    let ctx = w.ctx(config);
    let out = cleanup::run_once(&ctx, now).await.unwrap().0;
    assert_eq!(out["dead"], json!([ghost]), "{out}");
    assert_eq!(out["redis"]["answered_sandbox_not_found"], 1, "{out}");

    assert_eq!(state(&w, ghost).await, "dead");
    assert_eq!(state(&w, alive).await, "running", "Redis still sees it");
    let r = w.row("ghost-1.s1").await.unwrap();
    assert_eq!(r.status, "terminated");
    // Metered by Postgres's clock, not the scheduler's tick.
    let ended = r.terminated_at.expect("terminated_at is set");
    assert!(r.created_at.is_some_and(|c| c <= ended), "{r:?}");
    assert_eq!(w.row("alive-1.s1").await.unwrap().status, "ready");
    let usage: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sandbox_usage WHERE sandbox_id = 'ghost-1.s1'")
            .fetch_one(w.store.pool())
            .await
            .unwrap();
    assert_eq!(usage, 1);

    let record = w.fleet.client().job(&job.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Dead);
    assert_eq!(record.error.unwrap().kind.to_string(), "sandbox_not_found");

    // Its row in Postgres, `waiting` since the submit, ends dead too: the clean-up wrote it.
    let row = w.store.job_history(&job.job_id).await.unwrap().unwrap().job;
    assert_eq!(row.status, "dead", "{row:?}");
    assert_eq!(
        row.error_kind.as_deref(),
        Some("sandbox_not_found"),
        "{row:?}"
    );
    assert!(
        row.error_message.as_deref().unwrap_or("").contains(ghost),
        "{row:?}"
    );
    assert_eq!(row.attempts, 0);
    assert_eq!(row.queue, format!("worker:{ghost}"));
    assert_eq!(row.op, "status");
    assert_eq!(
        row.sandbox_id,
        Some(format!("{ghost}.01J0000000000000000000000A"))
    );
    assert!(
        row.finished_at.is_some() && row.enqueued_at.is_some(),
        "{row:?}"
    );
    // A late `waiting` write (the submit's, replayed) does not bring it back.
    let late = w.store.job_history(&job.job_id).await.unwrap().unwrap().job;
    w.store
        .apply(&[Record::Job(JobEvent::new(
            &job.job_id,
            "status",
            format!("worker:{ghost}"),
            JobStatus::Waiting,
            None,
        ))])
        .await
        .unwrap();
    let after = w.store.job_history(&job.job_id).await.unwrap().unwrap().job;
    assert_eq!(after.status, "dead");
    assert_eq!(after.finished_at, late.finished_at);

    // Submitted now that the ghost is gone, a job is answered at once; the client writes
    // its final row.
    let answered = client
        .submit(
            &format!("worker:{ghost}"),
            &JobSpec::new(
                "status",
                json!({"sandbox_id": format!("{ghost}.01J0000000000000000000000A")}),
            ),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(answered.status, JobStatus::Dead);
    let row = w
        .store
        .job_history(&answered.job_id)
        .await
        .unwrap()
        .unwrap()
        .job;
    assert_eq!(row.status, "dead", "{row:?}");
    assert_eq!(
        row.error_kind.as_deref(),
        Some("sandbox_not_found"),
        "{row:?}"
    );
    assert!(row.finished_at.is_some(), "{row:?}");

    // A second round finds nothing more to do.
    let again = cleanup::run_once(&ctx, now).await.unwrap().0;
    assert_eq!(again["dead"], json!([]), "{again}");
}
