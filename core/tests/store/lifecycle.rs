use std::time::Duration;

use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_testkit::{TestStore, eventually};
use serde_json::json;

use crate::{fleet, wait_final};

#[tokio::test]
async fn a_job_row_follows_it_through_retries_to_done() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    let worker = q.add_worker().await;
    let spec = JobSpec::new(
        "flaky",
        json!({"fail_times": 2, "agent_id": "a1", "task_id": "t1"}),
    );
    let options = EnqueueOptions {
        org: Some("acme".into()),
        ..Default::default()
    };
    let job = q.queue().enqueue("jobs", &spec, &options).await.unwrap();
    assert_eq!(
        wait_final(q.queue(), &job.job_id).await.status,
        JobStatus::Done
    );

    let h = eventually("the row to say done", Duration::from_secs(10), || async {
        store
            .job_history(&job.job_id)
            .await
            .unwrap()
            .filter(|h| h.job.status == "done" && h.runs.iter().all(|r| r.outcome != "running"))
    })
    .await;
    assert_eq!(h.job.op, "flaky");
    assert_eq!(h.job.attempts, 3);
    assert_eq!(h.job.org_id.as_deref(), Some("acme"));
    assert_eq!(h.job.agent_id.as_deref(), Some("a1"));
    assert_eq!(h.job.task_id.as_deref(), Some("t1"));
    assert_eq!(h.job.result, Some(json!({"attempt": 3})));
    assert_eq!(h.job.error_kind, None, "a job that is done shows no error");
    assert!(
        h.job.enqueued_at.is_some() && h.job.started_at.is_some() && h.job.finished_at.is_some()
    );
    let outcomes: Vec<(i32, &str, Option<&str>)> = h
        .runs
        .iter()
        .map(|r| (r.attempt, r.outcome.as_str(), r.error_kind.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (1, "retry", Some("internal")),
            (2, "retry", Some("internal")),
            (3, "done", None)
        ]
    );
    assert!(
        h.runs
            .iter()
            .all(|r| r.duration_ms.is_some() && r.worker_id == worker)
    );
    assert!(h.runs[0].retry_at.is_some());
    q.stop_worker(&worker).await;

    // The worker's row: registered, then stopped.
    let state: String = sqlx::query_scalar("SELECT state FROM workers WHERE worker_id = $1")
        .bind(worker_id_of(&h))
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(state, "stopped");
}

fn worker_id_of(h: &gitfleet_store::JobHistory) -> String {
    h.runs[0].worker_id.clone()
}

#[tokio::test]
async fn a_job_row_follows_it_through_retries_to_dead_with_its_error_redacted() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    let worker = q.add_worker().await;
    let spec = JobSpec::new(
        "flaky",
        json!({"fail_times": 99, "message": "fetch https://bot:hunter2@git.example/r.git failed"}),
    );
    let options = EnqueueOptions {
        max_attempts: Some(2),
        ..Default::default()
    };
    let job = q.queue().enqueue("jobs", &spec, &options).await.unwrap();
    assert_eq!(
        wait_final(q.queue(), &job.job_id).await.status,
        JobStatus::Dead
    );
    let h = eventually("the row to say dead", Duration::from_secs(10), || async {
        store
            .job_history(&job.job_id)
            .await
            .unwrap()
            .filter(|h| h.job.status == "dead")
    })
    .await;
    assert_eq!(h.job.attempts, 2);
    assert_eq!(h.job.max_attempts, Some(2));
    assert_eq!(h.job.error_kind.as_deref(), Some("internal"));
    let message = h.job.error_message.clone().unwrap();
    assert!(!message.contains("hunter2"), "{message}");
    assert!(
        message.contains("https://***@git.example/r.git"),
        "{message}"
    );
    let outcomes: Vec<&str> = h.runs.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "dead"]);
    // Nothing anywhere in the record holds the secret.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM jobs WHERE jobs::text LIKE '%hunter2%')
              + (SELECT count(*) FROM job_runs WHERE job_runs::text LIKE '%hunter2%')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    q.stop_worker(&worker).await;
}
