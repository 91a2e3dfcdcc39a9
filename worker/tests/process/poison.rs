//! A job that kills its worker every time it runs (a poison job: it exhausts memory, say)
//! must not take the fleet down worker by worker: runs that never finished count against
//! its cap, and once they reach it the job is dead.

use std::time::Duration;

use gitfleet_client::{EnqueueOptions, ErrorKind, JobSpec, JobStatus};
use serde_json::json;

use crate::processes::ProcessFleet;

/// Each worker that takes the job is killed while it runs it (SIGKILL, as the kernel's OOM
/// killer would). After its cap of 2 such runs, the next worker to take it answers it dead
/// (`internal`, naming the runs that did not finish) without running it, and goes on
/// serving other jobs.
#[tokio::test]
async fn a_job_that_kills_every_worker_that_runs_it_is_dead_after_its_cap_of_runs() {
    let q = ProcessFleet::new().await;
    let fast = [
        ("GITFLEET_HEARTBEAT_SECS", "1"),
        ("GITFLEET_DEAD_AFTER_SECS", "3"),
    ];
    let options = EnqueueOptions {
        max_attempts: Some(2),
        ..Default::default()
    };
    let job = q
        .client
        .submit(
            "jobs",
            &JobSpec::new("sleep", json!({"ms": 600_000})),
            &options,
        )
        .await
        .unwrap()
        .job_id;

    // Its worker dies mid-run, each time; the next worker recovers it and runs it again.
    let mut worker = q.spawn_worker(&fast).await;
    for run in 1..=2 {
        let id = worker.id.clone();
        q.wait_for_job(
            &job,
            Duration::from_secs(30),
            &format!("run {run} on worker {id}"),
            |r| {
                r.status == JobStatus::Running
                    && r.attempts == run
                    && r.worker.as_deref() == Some(id.as_str())
            },
        )
        .await;
        worker.sigkill();
        worker = q.spawn_worker(&fast).await;
    }

    let r = q
        .wait_for_job(&job, Duration::from_secs(30), "the job to be dead", |r| {
            r.status.is_final()
        })
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    // The third delivery is counted, and is the one that declares the job dead unrun.
    assert_eq!(r.attempts, 3, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(worker.id.as_str()), "{r:?}");
    let error = r.error.expect("a dead job has an error");
    assert_eq!(error.kind, ErrorKind::Internal, "{error:?}");
    assert_eq!(
        error.message,
        "gave up after 2 runs that did not finish (the worker running it died)"
    );
    assert!(worker.is_running(), "{}", worker.log_text());
    let echo = q
        .run_as(None, "jobs", "echo", json!({"still": "serving"}))
        .await;
    assert_eq!(echo.status, JobStatus::Done, "{echo:?}");
    assert_eq!(echo.worker.as_deref(), Some(worker.id.as_str()), "{echo:?}");
}
