//! Retention deletes finished job history (done, dead, cancelled) older than its age, and
//! nothing else.

use chrono::{Duration, Utc};
use gitfleet_scheduler::SchedulerConfig;
use gitfleet_scheduler::tasks::retention;

use crate::world::World;

async fn job(
    w: &World,
    id: &str,
    status: &str,
    finished: Option<chrono::DateTime<Utc>>,
    enqueued: chrono::DateTime<Utc>,
) {
    sqlx::query(
        r#"INSERT INTO jobs (job_id, op, queue, status, enqueued_at, finished_at, updated_at)
           VALUES ($1, 'echo', 'jobs', $2, $3, $4, $3)"#,
    )
    .bind(id)
    .bind(status)
    .bind(enqueued)
    .bind(finished)
    .execute(w.store.pool())
    .await
    .unwrap();
    sqlx::query(
        r#"INSERT INTO job_runs (run_id, job_id, attempt, worker_id, started_at, outcome)
           VALUES ($1, $2, 1, 'w', $3, 'done')"#,
    )
    .bind(format!("run-{id}"))
    .bind(id)
    .bind(enqueued)
    .execute(w.store.pool())
    .await
    .unwrap();
}

async fn ids(w: &World, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sql)
        .fetch_all(w.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn retention_deletes_finished_jobs_older_than_its_age_with_their_runs() {
    let w = World::new().await;
    let now = Utc::now();
    let old = now - Duration::days(40);
    let recent = now - Duration::days(5);
    job(&w, "old-done", "done", Some(old), old).await;
    job(&w, "old-dead", "dead", Some(old), old).await;
    job(&w, "old-cancelled", "cancelled", Some(old), old).await;
    job(&w, "old-waiting", "waiting", None, old).await;
    job(&w, "recent-done", "done", Some(recent), recent).await;
    sqlx::query("INSERT INTO scheduler_runs (task, tick, replica, outcome, started_at, duration_ms) VALUES ('eviction', $1, 'r', 'ok', $1, 1), ('eviction', $2, 'r', 'ok', $2, 1)")
        .bind(old)
        .bind(recent)
        .execute(w.store.pool())
        .await
        .unwrap();

    let ctx = w.ctx(SchedulerConfig::default());
    let out = retention::run_once(&ctx, now).await.unwrap().0;
    assert_eq!(out["jobs"], 3, "{out}");
    assert_eq!(out["job_runs"], 3, "{out}");
    assert_eq!(out["scheduler_runs"], 1, "{out}");
    assert_eq!(
        ids(&w, "SELECT job_id FROM jobs ORDER BY job_id").await,
        ["old-waiting", "recent-done"]
    );
    assert_eq!(
        ids(&w, "SELECT job_id FROM job_runs ORDER BY job_id").await,
        ["old-waiting", "recent-done"]
    );

    // A shorter age, later: the recent job goes too.
    let mut config = SchedulerConfig::default();
    config.retention.max_age_days = 1;
    let out = retention::run_once(&w.ctx(config), now).await.unwrap().0;
    assert_eq!(out["jobs"], 1, "{out}");
    assert_eq!(ids(&w, "SELECT job_id FROM jobs").await, ["old-waiting"]);
}
