//! Jobs routed to one worker's own queue (`worker:<id>`) need that worker's sandboxes: when
//! the worker is gone they are answered `sandbox_not_found`, never left waiting.

use std::time::Duration;

use gitfleet_client::{ErrorKind, JobStatus};
use serde_json::json;

use crate::harness::TestQueue;

#[tokio::test]
async fn a_job_waiting_in_the_queue_of_a_worker_that_died_is_answered_sandbox_not_found() {
    let q = TestQueue::new().await;
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
