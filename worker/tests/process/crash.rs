//! A worker that dies without warning: its jobs must not die with it.

use std::time::{Duration, Instant};

use gitfleet_client::JobStatus;
use serde_json::json;

use crate::processes::ProcessFleet;

/// With the default settings (heartbeat 2 s, dead after 15 s), as the 60 s promise is made
/// for them.
#[tokio::test]
async fn a_job_held_by_a_worker_killed_with_sigkill_is_finished_by_another_within_60s() {
    let q = ProcessFleet::new().await;
    let mut a = q.spawn_worker(&[]).await;
    let ids = q.submit_n("jobs", "sleep", json!({"ms": 3000}), 5).await;
    q.wait_for_jobs(
        &ids,
        Duration::from_secs(10),
        "all 5 jobs running on worker A",
        |r| r.status == JobStatus::Running && r.worker.as_deref() == Some(a.id.as_str()),
    )
    .await;

    a.sigkill();
    let killed = Instant::now();
    let b = q.spawn_worker(&[]).await;

    let within = Duration::from_secs(60).saturating_sub(killed.elapsed());
    let records = q
        .wait_for_jobs(&ids, within, "all 5 jobs finished", |r| r.status.is_final())
        .await;
    for r in records {
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(
            r.worker.as_deref(),
            Some(b.id.as_str()),
            "finished by B: {r:?}"
        );
        assert_eq!(r.result, Some(json!({"slept_ms": 3000})), "{r:?}");
        // A's run counts (a killed worker gives nothing back), B's is the second: each
        // job ran twice in all, not more.
        assert_eq!(r.attempts, 2, "{r:?}");
        assert_eq!(r.given_back, 0, "{r:?}");
    }
}
