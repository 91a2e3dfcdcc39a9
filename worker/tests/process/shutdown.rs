//! SIGTERM: a worker stops taking jobs, lets the running ones finish within the grace period,
//! and gives back the ones that cannot.

use std::time::Duration;

use gitfleet_client::JobStatus;
use serde_json::json;

use crate::processes::ProcessFleet;

/// A generous bound on anything the test waits for (an exit, a log line).
const LIVENESS: Duration = Duration::from_secs(60);

/// The running jobs take 2 s and the grace period is twice the liveness bound: a worker
/// that exits within the bound did not wait out its grace period, and one that exits 0
/// gave nothing back, so its jobs finished within it.
#[tokio::test]
async fn sigterm_lets_running_jobs_finish_and_the_worker_exits_within_the_grace_period() {
    let q = ProcessFleet::new().await;
    let grace = (LIVENESS * 2).as_secs().to_string();
    let mut w = q.spawn_worker(&[("GITFLEET_GRACE_SECS", &grace)]).await;
    let ids = q.submit_n("jobs", "sleep", json!({"ms": 2000}), 3).await;
    q.wait_for_jobs(&ids, Duration::from_secs(10), "all 3 jobs running", |r| {
        r.status == JobStatus::Running && r.worker.as_deref() == Some(w.id.as_str())
    })
    .await;

    w.sigterm();
    // A signal is handled asynchronously: a job enqueued in the very instant SIGTERM is sent
    // may be taken by a fetch already under way, and it is then run, within the grace period.
    // What must hold is that once the worker has seen the signal it takes nothing more.
    w.wait_for_log("stopping: no new jobs", Duration::from_secs(5))
        .await;
    let late = q.submit("jobs", "echo", json!({"late": true})).await;

    let status = w.wait_exit(LIVENESS).await;
    assert!(status.success(), "exit status {status}\n{}", w.log_text());
    assert!(
        !w.log_text().contains("grace period over"),
        "{}",
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

/// The job would run ten times the liveness bound; the grace period is 2 s. The worker
/// says its grace period is over and exits 1 within the bound, the job back in its queue
/// uncounted: it was cut off by the grace period, not waited for.
#[tokio::test]
async fn jobs_still_running_at_the_end_of_the_grace_period_go_back_to_the_queue() {
    let q = ProcessFleet::new().await;
    // JSON logs, so the grace period it read can be found as a field.
    let mut w = q
        .spawn_worker(&[
            ("GITFLEET_GRACE_SECS", "2"),
            ("GITFLEET_LOG_FORMAT", "json"),
        ])
        .await;
    let long = (LIVENESS * 10).as_millis() as u64;
    let job = q.submit("jobs", "sleep", json!({"ms": long})).await;
    q.wait_for_job(
        &job.job_id,
        Duration::from_secs(10),
        "the job running",
        |r| r.status == JobStatus::Running,
    )
    .await;

    w.sigterm();
    w.wait_for_log(r#""grace_ms":2000"#, LIVENESS).await;
    w.wait_for_log("grace period over", LIVENESS).await;
    let status = w.wait_exit(LIVENESS).await;
    assert_eq!(
        status.code(),
        Some(1),
        "a worker that gave jobs back exits 1 (exited {status})\n{}",
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

    // And it is not stuck there: the next worker takes it (no need to wait out its run).
    let next = q.spawn_worker(&[]).await;
    let r = q
        .wait_for_job(&job.job_id, LIVENESS, "the next worker runs it", |r| {
            r.status == JobStatus::Running
        })
        .await;
    assert_eq!(r.worker.as_deref(), Some(next.id.as_str()), "{r:?}");
    assert_eq!(r.attempts, 1, "{r:?}");
}
