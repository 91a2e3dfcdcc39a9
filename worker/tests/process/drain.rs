//! Draining a worker (what `POST /v1/workers/{id}/drain` asks, through the same
//! `Queue::drain_worker`): the jobs it runs finish, once; from the request on it takes
//! nothing, from any queue, while another worker takes the rest; jobs for its own queue are
//! answered at once instead of stranded; it says `draining`, then `drained`, and idles
//! until undrained, when it takes jobs again; SIGTERM then stops it cleanly.

use std::time::Duration;

use gitfleet_client::{ErrorKind, JobStatus, WorkerInfo, WorkerState};
use gitfleet_testkit::eventually;
use serde_json::json;

use crate::processes::ProcessFleet;

const LIVENESS: Duration = Duration::from_secs(60);

async fn listed(q: &ProcessFleet, id: &str) -> Result<WorkerInfo, String> {
    q.client
        .workers()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|w| w.worker_id == id)
        .ok_or_else(|| format!("worker {id} is not listed"))
}

async fn wait_for_state(q: &ProcessFleet, id: &str, state: WorkerState) -> WorkerInfo {
    eventually(
        format!("worker {id} says {state:?}"),
        LIVENESS,
        async || {
            let w = listed(q, id).await?;
            (w.state == state)
                .then_some(w.clone())
                .ok_or(format!("{w:?}"))
        },
    )
    .await
}

#[tokio::test]
async fn a_drained_worker_finishes_its_jobs_takes_no_more_and_another_takes_the_rest() {
    let q = ProcessFleet::new().await;
    // Own-queue slots of one, so a second own-queue job waits behind the first.
    let mut a = q
        .spawn_worker(&[
            ("GITFLEET_CONCURRENCY", "2"),
            ("GITFLEET_OWN_QUEUE_CONCURRENCY", "1"),
            ("GITFLEET_HEARTBEAT_SECS", "1"),
        ])
        .await;
    // A holds two shared jobs and one of its own queue, all sleeping; one more own-queue
    // job waits behind them.
    let held = q.submit_n("jobs", "sleep", json!({"ms": 3000}), 2).await;
    let own = q.submit(&a.own_queue(), "sleep", json!({"ms": 3000})).await;
    let mut running = held.clone();
    running.push(own.job_id.clone());
    q.wait_for_jobs(&running, Duration::from_secs(10), "A runs three", |r| {
        r.status == JobStatus::Running && r.worker.as_deref() == Some(a.id.as_str())
    })
    .await;
    let waiting = q
        .submit(&a.own_queue(), "echo", json!({"behind": true}))
        .await;
    let w = listed(&q, &a.id).await.unwrap();
    assert_eq!(
        (w.state, w.busy, w.slots),
        (WorkerState::Running, 3, Some(3))
    );
    let mut shown: Vec<&str> = w.running.iter().map(|j| j.job_id.as_str()).collect();
    shown.sort();
    let mut want: Vec<&str> = running.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(shown, want, "each busy slot with the job it runs: {w:?}");

    assert!(q.client.queue().drain_worker(&a.id).await.unwrap());
    // From the answer on A takes nothing: jobs enqueued now go to B (started after the
    // request, so only A could have taken them before B came).
    let rest = q.submit_n("jobs", "echo", json!({"after": true}), 20).await;
    let b = q.spawn_worker(&[]).await;
    let to_own = q
        .submit(&a.own_queue(), "echo", json!({"late": true}))
        .await;
    assert_eq!(
        to_own.status,
        JobStatus::Dead,
        "a job for a draining worker's own queue is answered at once"
    );
    let r = q.job(&to_own.job_id).await.unwrap();
    assert_eq!(
        r.error.as_ref().unwrap().kind,
        ErrorKind::SandboxNotFound,
        "{r:?}"
    );
    assert!(
        r.error.as_ref().unwrap().message.contains("draining"),
        "{r:?}"
    );

    let w = wait_for_state(&q, &a.id, WorkerState::Draining).await;
    assert!(w.drain_requested_at.is_some(), "{w:?}");
    // The job that waited behind in its own queue is answered, not stranded.
    let r = q
        .wait_for_job(
            &waiting.job_id,
            LIVENESS,
            "the waiting own-queue job answered",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");
    assert_eq!(r.error.unwrap().kind, ErrorKind::SandboxNotFound);
    assert_eq!(r.attempts, 0, "never started");

    // What it held finishes, on A, once each.
    let done = q
        .wait_for_jobs(&running, LIVENESS, "A's jobs finish", |r| {
            r.status.is_final()
        })
        .await;
    for r in &done {
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.worker.as_deref(), Some(a.id.as_str()), "{r:?}");
        assert_eq!((r.attempts, r.given_back), (1, 0), "ran once: {r:?}");
        assert_eq!(r.result, Some(json!({"slept_ms": 3000})), "{r:?}");
    }
    let done = q
        .wait_for_jobs(&rest, LIVENESS, "the rest done", |r| r.status.is_final())
        .await;
    for r in &done {
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.worker.as_deref(), Some(b.id.as_str()), "B took it: {r:?}");
    }
    let w = wait_for_state(&q, &a.id, WorkerState::Drained).await;
    assert_eq!((w.busy, w.held.len()), (0, 0), "{w:?}");
    assert!(a.is_running(), "a drained worker idles\n{}", a.log_text());

    // Still drained, it takes nothing (B stopped, so nobody else could).
    let mut b = b;
    b.sigterm();
    assert!(b.wait_exit(LIVENESS).await.success());
    let idle = q.submit("jobs", "echo", json!({"idle": true})).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = q.job(&idle.job_id).await.unwrap();
    assert_eq!(
        r.status,
        JobStatus::Waiting,
        "a drained worker takes nothing: {r:?}"
    );

    // Undrained, it takes jobs again: the one waiting first.
    assert!(q.client.queue().undrain_worker(&a.id).await.unwrap());
    let r = q
        .wait_for_job(&idle.job_id, LIVENESS, "A takes jobs again", |r| {
            r.status.is_final()
        })
        .await;
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(a.id.as_str()), "{r:?}");
    let w = wait_for_state(&q, &a.id, WorkerState::Running).await;
    assert!(w.drain_requested_at.is_none(), "{w:?}");
    let r = q
        .run_as(None, &a.own_queue(), "echo", json!({"own": "again"}))
        .await;
    assert_eq!(
        r.status,
        JobStatus::Done,
        "its own queue is served again: {r:?}"
    );

    a.sigterm();
    let status = a.wait_exit(LIVENESS).await;
    assert!(status.success(), "exit status {status}\n{}", a.log_text());
}

/// Drained, then SIGTERM: nothing left to finish, a clean exit, unlisted.
#[tokio::test]
async fn a_drained_worker_stops_cleanly_on_sigterm() {
    let q = ProcessFleet::new().await;
    let mut a = q.spawn_worker(&[("GITFLEET_HEARTBEAT_SECS", "1")]).await;
    q.wait_until_registered(&a.id).await;
    assert!(q.client.queue().drain_worker(&a.id).await.unwrap());
    wait_for_state(&q, &a.id, WorkerState::Drained).await;
    a.sigterm();
    let status = a.wait_exit(LIVENESS).await;
    assert!(status.success(), "exit status {status}\n{}", a.log_text());
    assert!(!q.client.queue().is_worker_alive(&a.id).await.unwrap());
    assert!(
        !q.client.queue().drain_worker(&a.id).await.unwrap(),
        "a worker that is gone cannot be drained"
    );
}
