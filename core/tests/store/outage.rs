//! Postgres goes away for real (a private server, stopped and started again) while a
//! worker runs jobs: the jobs go on, and every record reaches Postgres once it is back.

use std::time::Duration;

use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_testkit::postgres::PgServer;
use gitfleet_testkit::store::store_on;
use gitfleet_testkit::{Fleet, eventually};
use serde_json::json;

use crate::{fleet, wait_final};

async fn run_jobs(q: &Fleet, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let spec = JobSpec::new("flaky", json!({"fail_times": i % 2, "tag": tag}));
        ids.push(
            q.queue()
                .enqueue("jobs", &spec, &EnqueueOptions::default())
                .await
                .unwrap()
                .job_id,
        );
    }
    for id in &ids {
        assert_eq!(wait_final(q.queue(), id).await.status, JobStatus::Done);
    }
    ids
}

async fn done_rows(store: &gitfleet_store::Store) -> Option<i64> {
    sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM jobs j WHERE status = 'done'
            AND (SELECT count(*) FROM job_runs r WHERE r.job_id = j.job_id AND r.outcome <> 'running') = j.attempts",
    )
    .fetch_one(store.pool())
    .await
    .ok()
}

#[tokio::test]
async fn a_postgres_outage_during_a_run_of_jobs_loses_no_record() {
    let pg = PgServer::start().unwrap();
    let store = store_on(&pg.url());
    let spool = tempfile::tempdir().unwrap();
    let mut q = fleet(&store, Some(spool.path())).start().await;
    let worker = q.add_worker().await;

    let mut ids = run_jobs(&q, 20, "before").await;
    eventually(
        "the first jobs recorded",
        Duration::from_secs(20),
        || async { done_rows(&store).await.filter(|n| *n == 20) },
    )
    .await;

    pg.stop().unwrap();
    // Jobs go on while Postgres is down (half of them retried once, so their records
    // include failed runs too).
    ids.extend(run_jobs(&q, 40, "during").await);
    assert!(done_rows(&store).await.is_none(), "postgres is really down");
    pg.start_again().unwrap();
    ids.extend(run_jobs(&q, 10, "after").await);

    eventually(
        "every job recorded once postgres is back",
        Duration::from_secs(30),
        || async { done_rows(&store).await.filter(|n| *n == ids.len() as i64) },
    )
    .await;
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM job_runs")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(runs, 70 + 35, "every run, the failed ones too");
    q.stop_worker(&worker).await;
    assert_eq!(
        std::fs::read_dir(spool.path())
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "nothing left spooled"
    );
}

#[tokio::test]
async fn records_a_worker_could_not_write_before_stopping_are_replayed_by_the_next_one() {
    let pg = PgServer::start().unwrap();
    let store = store_on(&pg.url());
    store.migrate().await.unwrap();
    let spool = tempfile::tempdir().unwrap();
    let mut q = fleet(&store, Some(spool.path())).start().await;

    let first = q.add_worker().await;
    let first_id = first.clone();
    pg.stop().unwrap();
    let ids = run_jobs(&q, 15, "while-down").await;
    q.stop_worker(&first).await;
    let files: Vec<_> = std::fs::read_dir(spool.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].to_string_lossy().starts_with(&first_id));

    pg.start_again().unwrap();
    let second = q.add_worker().await;
    eventually(
        "the spooled records replayed",
        Duration::from_secs(30),
        || async { done_rows(&store).await.filter(|n| *n == ids.len() as i64) },
    )
    .await;
    // The first worker's row and its end were in the spool too.
    let state: String = sqlx::query_scalar("SELECT state FROM workers WHERE worker_id = $1")
        .bind(&first_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state, "stopped");
    eventually(
        "the spool file removed",
        Duration::from_secs(10),
        || async { (std::fs::read_dir(spool.path()).unwrap().count() == 0).then_some(()) },
    )
    .await;
    q.stop_worker(&second).await;
}
