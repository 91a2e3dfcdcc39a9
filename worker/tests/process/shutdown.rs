//! SIGTERM: a worker stops taking jobs, lets the running ones finish within the grace period,
//! and gives back the ones that cannot.

use std::time::{Duration, Instant};

use gitfleet_client::JobStatus;
use serde_json::json;

use crate::processes::ProcessFleet;

/// What the exit may take beyond the grace period: recording outcomes and deregistering.
const EXIT_MARGIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_the_worker_exits_within_the_grace_period() {
    let q = ProcessFleet::new().await;
    let mut w = q.spawn_worker(&[("GITFLEET_GRACE_SECS", "10")]).await;
    let ids = q.submit_n("jobs", "sleep", json!({"ms": 2000}), 3).await;
    q.wait_for_jobs(&ids, Duration::from_secs(10), "all 3 jobs running", |r| {
        r.status == JobStatus::Running && r.worker.as_deref() == Some(w.id.as_str())
    })
    .await;

    w.sigterm();
    let signalled = Instant::now();
    // A signal is handled asynchronously: a job enqueued in the very instant SIGTERM is sent
    // may be taken by a fetch already under way, and it is then run, within the grace period.
    // What must hold is that once the worker has seen the signal it takes nothing more.
    w.wait_for_log("stopping: no new jobs", Duration::from_secs(5))
        .await;
    let late = q.submit("jobs", "echo", json!({"late": true})).await;

    let bound = Duration::from_secs(10) + EXIT_MARGIN;
    let status = w.wait_exit(bound.saturating_sub(signalled.elapsed())).await;
    assert!(
        status.success(),
        "exit status {status} after {:?}\n{}",
        signalled.elapsed(),
        w.log_text()
    );
    for id in &ids {
        let r = q.job(id).await.unwrap();
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.result, Some(json!({"slept_ms": 2000})), "{r:?}");
    }
    let r = q.job(&late.job_id).await.unwrap();
    assert_eq!(
        r.status,
        JobStatus::Waiting,
        "the job enqueued after SIGTERM: {r:?}"
    );
    assert_eq!(
        (r.attempts, r.started_at),
        (0, None),
        "never started: {r:?}"
    );
    assert!(
        q.is_in_ready_list("jobs", &late.job_id).await,
        "the job enqueued after SIGTERM is in the jobs list, for the next worker"
    );
}

#[tokio::test]
async fn jobs_still_running_at_the_end_of_the_grace_period_go_back_to_the_queue() {
    let q = ProcessFleet::new().await;
    let mut w = q.spawn_worker(&[("GITFLEET_GRACE_SECS", "2")]).await;
    let job = q.submit("jobs", "sleep", json!({"ms": 30_000})).await;
    q.wait_for_job(
        &job.job_id,
        Duration::from_secs(10),
        "the job running",
        |r| r.status == JobStatus::Running,
    )
    .await;

    w.sigterm();
    let signalled = Instant::now();
    let bound = Duration::from_secs(2) + EXIT_MARGIN;
    let status = w.wait_exit(bound.saturating_sub(signalled.elapsed())).await;
    assert_eq!(
        status.code(),
        Some(1),
        "a worker that gave jobs back exits 1 (exited {status} after {:?})\n{}",
        signalled.elapsed(),
        w.log_text()
    );

    let r = q.job(&job.job_id).await.unwrap();
    assert_eq!(r.status, JobStatus::Waiting, "{r:?}");
    assert_eq!(r.attempts, 0, "the cut-off run is not counted: {r:?}");
    assert_eq!(r.worker, None, "{r:?}");
    assert!(
        q.is_in_ready_list("jobs", &job.job_id).await,
        "the job is back in the jobs list"
    );

    // And it is not stuck there: the next worker takes it (no need to wait out its 30 s).
    let next = q.spawn_worker(&[]).await;
    let r = q
        .wait_for_job(
            &job.job_id,
            Duration::from_secs(10),
            "the next worker runs it",
            |r| r.status == JobStatus::Running,
        )
        .await;
    assert_eq!(r.worker.as_deref(), Some(next.id.as_str()), "{r:?}");
    assert_eq!(r.attempts, 1, "{r:?}");
}
