//! Jobs routed to one worker's own queue (`worker:<id>`) need that worker's sandboxes: when
//! the worker is gone they are answered `sandbox_not_found`, never left waiting.

use std::time::Duration;

use gitfleet_client::{ErrorKind, JobStatus};
use serde_json::json;

use crate::processes::ProcessFleet;

#[tokio::test]
async fn a_job_waiting_in_the_queue_of_a_worker_that_died_is_answered_sandbox_not_found() {
    let q = ProcessFleet::new().await;
    let fast = [
        ("GITFLEET_HEARTBEAT_SECS", "1"),
        ("GITFLEET_DEAD_AFTER_SECS", "4"),
    ];
    let mut a = q.spawn_worker(&fast).await;
    let b = q.spawn_worker(&fast).await;
    q.wait_until_registered(&a.id).await;
    q.wait_until_registered(&b.id).await;

    a.sigkill();
    let job = q.submit(&a.own_queue(), "echo", json!({"to": "a"})).await;
    assert_eq!(
        job.status,
        JobStatus::Waiting,
        "A is not yet known to be dead, so its job waits"
    );
    let r = q
        .wait_for_job(
            &job.job_id,
            Duration::from_secs(15),
            "the job answered",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    let error = r.error.expect("a dead job has an error");
    assert_eq!(error.kind, ErrorKind::SandboxNotFound, "{error:?}");

    // A worker that never existed: answered at once.
    let ghost = q.submit("worker:ghost-01ABC", "echo", json!({})).await;
    assert_eq!(ghost.status, JobStatus::Dead, "{ghost:?}");
    let r = q.job(&ghost.job_id).await.unwrap();
    assert_eq!(
        r.error.map(|e| e.kind),
        Some(ErrorKind::SandboxNotFound),
        "{ghost:?}"
    );
}

/// The same with the durable record: the job's row, `waiting` since the submit, ends dead
/// (`sandbox_not_found`) once the surviving worker has reaped the killed one; a job submitted
/// to a worker already gone gets its final row from the client.
#[tokio::test]
async fn a_killed_worker_s_queued_jobs_end_dead_in_the_record() {
    let db = gitfleet_testkit::postgres::TestDatabase::create().expect("postgres is reachable");
    let store = gitfleet_store::Store::open(&gitfleet_store::StoreConfig {
        database_url: Some(db.url.clone()),
        ..Default::default()
    })
    .unwrap()
    .expect("a store");
    store.migrate().await.unwrap();
    let q = ProcessFleet::new().await;
    let client = q.client.clone().with_store(store.clone());
    let env = [
        ("GITFLEET_HEARTBEAT_SECS", "1"),
        ("GITFLEET_DEAD_AFTER_SECS", "4"),
        ("GITFLEET_DATABASE_URL", db.url.as_str()),
    ];
    let mut a = q.spawn_worker(&env).await;
    let b = q.spawn_worker(&env).await;
    q.wait_until_registered(&a.id).await;
    q.wait_until_registered(&b.id).await;

    a.sigkill();
    let submit = |queue: String, args| {
        let client = client.clone();
        async move {
            client
                .submit(
                    &queue,
                    &gitfleet_client::JobSpec::new("echo", args),
                    &gitfleet_client::EnqueueOptions {
                        org: Some("acme".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let job = submit(a.own_queue(), json!({})).await;
    assert_eq!(
        job.status,
        JobStatus::Waiting,
        "A is not yet known to be dead"
    );
    let row = store.job_history(&job.job_id).await.unwrap().unwrap().job;
    assert_eq!(row.status, "waiting", "the client wrote its row: {row:?}");

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = store.job_history(&job.job_id).await.unwrap().unwrap().job;
        if row.status != "waiting" {
            break row;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the row still says waiting: {row:?}\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(row.status, "dead", "{row:?}");
    assert_eq!(
        row.error_kind.as_deref(),
        Some("sandbox_not_found"),
        "{row:?}"
    );
    assert!(
        row.error_message
            .as_deref()
            .is_some_and(|m| m.contains(&a.id)),
        "{row:?}"
    );
    assert!(row.finished_at.is_some(), "{row:?}");
    assert_eq!(row.org_id.as_deref(), Some("acme"));

    let ghost = submit("worker:ghost-01ABC".into(), json!({})).await;
    assert_eq!(ghost.status, JobStatus::Dead, "{ghost:?}");
    let row = store.job_history(&ghost.job_id).await.unwrap().unwrap().job;
    assert_eq!(row.status, "dead", "{row:?}");
    assert_eq!(
        row.error_kind.as_deref(),
        Some("sandbox_not_found"),
        "{row:?}"
    );
    assert!(row.finished_at.is_some(), "{row:?}");
}
