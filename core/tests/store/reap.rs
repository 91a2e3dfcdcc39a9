//! Jobs answered `sandbox_not_found` because their worker is gone end `dead` in the record:
//! a surviving worker's reap writes them (through its writer), and so does a worker that
//! leaves with jobs still queued for it.

use std::time::Duration;

use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use gitfleet_store::{JobEvent, JobRow, Record, Store};
use gitfleet_testkit::{Fleet, TestStore, eventually};
use redis::AsyncCommands;
use serde_json::json;

use crate::fleet;

/// The row the client writes at submit.
fn submitted(id: &str, queue: &str, status: JobStatus, attempts: u32) -> Record {
    Record::Job(JobEvent {
        attempts,
        enqueued_at: Some(chrono::Utc::now()),
        org_id: Some("acme".into()),
        ..JobEvent::new(id, "echo", queue, status, None)
    })
}

async fn enqueue(q: &Fleet, queue: &str, args: serde_json::Value, delay: bool) -> String {
    enqueue_as(q, None, queue, args, delay).await
}

async fn enqueue_as(
    q: &Fleet,
    org: Option<&str>,
    queue: &str,
    args: serde_json::Value,
    delay: bool,
) -> String {
    let options = EnqueueOptions {
        org: org.map(str::to_string),
        delay: delay.then(|| Duration::from_secs(3600)),
        ..Default::default()
    };
    let e = q
        .queue()
        .enqueue(queue, &JobSpec::new("echo", args), &options)
        .await
        .unwrap();
    assert!(!e.status.is_final(), "{e:?}");
    e.job_id
}

async fn dead_row(store: &Store, id: &str) -> JobRow {
    eventually(
        "the job's row to say dead",
        Duration::from_secs(20),
        || async {
            store
                .job_history(id)
                .await
                .unwrap()
                .map(|h| h.job)
                .filter(|j| j.status == "dead")
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_records_the_jobs_of_a_dead_worker_queue_dead_sandbox_not_found() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    let survivor = q.add_worker().await;
    // A worker registers, gets jobs on its own queue, and dies (beats no more).
    let ghost = "ghost-reap-1";
    q.queue().heartbeat(ghost, &[]).await.unwrap();
    let own = format!("worker:{ghost}");
    // Its org (the envelope's), agent, task and sandbox reach the row without the reap
    // reading the payload: the enqueue script kept them beside it.
    let waiting = enqueue_as(
        &q,
        Some("acme"),
        &own,
        json!({"agent_id": "a1", "task_id": "t1", "sandbox_id": format!("{ghost}.s1")}),
        false,
    )
    .await;
    let delayed = enqueue(&q, &own, json!({}), true).await;
    // One waiting out a retry after a first run: its row is at (1, waiting for a retry).
    let retried = enqueue(&q, &own, json!({}), true).await;
    let mut redis = q.test_queue().redis().await;
    let _: () = redis
        .hset(q.queue().keys().job(&retried), "attempts", 1)
        .await
        .unwrap();
    store
        .apply(&[
            submitted(&waiting, &own, JobStatus::Waiting, 0),
            submitted(&delayed, &own, JobStatus::Delayed, 0),
            submitted(&retried, &own, JobStatus::Delayed, 1),
        ])
        .await
        .unwrap();

    for id in [&waiting, &delayed, &retried] {
        let row = dead_row(&store, id).await;
        assert_eq!(
            row.error_kind.as_deref(),
            Some("sandbox_not_found"),
            "{row:?}"
        );
        assert!(
            row.error_message
                .as_deref()
                .is_some_and(|m| m.contains(ghost)),
            "{row:?}"
        );
        assert!(row.finished_at.is_some(), "{row:?}");
        assert!(row.enqueued_at.is_some(), "{row:?}");
        assert_eq!(row.queue, own);
        assert_eq!(row.op, "echo");
        assert_eq!(row.org_id.as_deref(), Some("acme"));
        assert_eq!(row.attempts, if id == &retried { 1 } else { 0 }, "{row:?}");
    }
    let row = dead_row(&store, &waiting).await;
    assert_eq!(row.agent_id.as_deref(), Some("a1"));
    assert_eq!(row.task_id.as_deref(), Some("t1"));
    assert_eq!(row.sandbox_id, Some(format!("{ghost}.s1")));
    // Redis says the same.
    let r = q.queue().job(&waiting).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Dead);

    // A late write of the submit's row (replayed) changes nothing.
    store
        .apply(&[submitted(&waiting, &own, JobStatus::Waiting, 0)])
        .await
        .unwrap();
    let again = store.job_history(&waiting).await.unwrap().unwrap().job;
    assert_eq!(again.status, "dead");
    assert_eq!(again.finished_at, row.finished_at);
    q.stop_worker(&survivor).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_leaving_records_the_jobs_left_in_its_own_queue() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).start().await;
    let worker = q.add_worker().await;
    let own = format!("worker:{worker}");
    // Due in an hour: still queued for it when it leaves.
    let a = enqueue(&q, &own, json!({}), true).await;
    let b = enqueue_as(&q, Some("acme"), &own, json!({}), true).await;
    store
        .apply(&[
            submitted(&a, &own, JobStatus::Delayed, 0),
            submitted(&b, &own, JobStatus::Delayed, 0),
        ])
        .await
        .unwrap();
    let report = q.stop_worker(&worker).await;
    assert_eq!(report.answered, 2, "{report:?}");
    // The writer wrote them before it closed.
    for id in [&a, &b] {
        let row = store.job_history(id).await.unwrap().unwrap().job;
        assert_eq!(row.status, "dead", "{row:?}");
        assert_eq!(
            row.error_kind.as_deref(),
            Some("sandbox_not_found"),
            "{row:?}"
        );
        assert!(row.finished_at.is_some(), "{row:?}");
    }
}
