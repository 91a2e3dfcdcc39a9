//! Retries follow the policy: exponential backoff with jitter, per-op limits, stored in
//! Redis; non-retryable kinds go straight to dead; dead jobs can be retried by hand.

use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, Queue};
use gitfleet_testkit::eventually;
use serde_json::json;

use crate::fleet;
use crate::test_ops::{Counting, Flaky};

async fn wait_final(queue: &Queue, id: &str, limit: Duration) -> gitfleet_contract::JobRecord {
    let record = queue
        .wait(id, limit)
        .await
        .unwrap()
        .expect("the job exists");
    assert!(
        record.status.is_final(),
        "job {id} finished within {limit:?}: {record:?}"
    );
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_longer_each_time_with_jitter_then_the_job_is_dead_with_its_last_error() {
    let mut t = fleet().start().await;
    let flaky = Flaky::new(ErrorKind::Network, 0);
    let mut setup = t.setup();
    setup.config.retry_base = Duration::from_millis(200);
    setup.config.retry_max = Duration::from_secs(10);
    setup.ops = Ops::builtin().with(flaky.clone());
    t.add_worker_with(setup).await;

    let options = EnqueueOptions {
        max_attempts: Some(4),
        ..Default::default()
    };
    let mut ids = Vec::new();
    for _ in 0..4 {
        let job = t
            .queue()
            .enqueue("jobs", &JobSpec::new("flaky", json!({})), &options)
            .await
            .unwrap();
        ids.push(job.job_id);
    }
    for id in &ids {
        let record = wait_final(t.queue(), id, Duration::from_secs(30)).await;
        assert_eq!(record.status, JobStatus::Dead);
        assert_eq!(record.attempts, 4, "the op's limit is respected");
        let error = record.error.expect("a dead job keeps its last error");
        assert_eq!(error.kind, ErrorKind::Network);
        assert_eq!(error.message, "run 4 failed on purpose");
    }
    t.shutdown().await;

    let starts = flaky.starts.lock().unwrap().clone();
    let mut first_gaps = Vec::new();
    for id in &ids {
        let times = &starts[id];
        assert_eq!(times.len(), 4, "job {id} ran 4 times");
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        for (i, gap) in gaps.iter().enumerate() {
            // Retry n waits base * 2^(n-1), plus jitter of up to as much again.
            let nominal = Duration::from_millis(200 << i);
            assert!(
                *gap >= nominal,
                "job {id}: retry {} came after {gap:?}, before {nominal:?}",
                i + 1
            );
        }
        assert!(gaps[2] > gaps[0] * 2, "job {id}: delays grow: {gaps:?}");
        first_gaps.push(gaps[0]);
    }
    first_gaps.sort();
    first_gaps.dedup_by(|a, b| a.abs_diff(*b) < Duration::from_millis(2));
    assert!(
        first_gaps.len() > 1,
        "jitter spreads jobs that failed together"
    );
}

#[tokio::test]
async fn a_non_retryable_failure_goes_straight_to_dead_and_can_be_retried_by_hand() {
    let mut t = fleet().start().await;
    for kind in [
        ErrorKind::InvalidInput,
        ErrorKind::Auth,
        ErrorKind::Conflict,
        ErrorKind::SandboxNotFound,
        ErrorKind::BudgetExceeded,
    ] {
        let flaky = Flaky::new(kind, 2);
        let mut setup = t.setup();
        setup.ops = Ops::builtin().with(flaky.clone());
        let w = t.add_worker_with(setup).await;
        let job = t
            .queue()
            .enqueue(
                "jobs",
                &JobSpec::new("flaky", json!({})),
                &EnqueueOptions::default(),
            )
            .await
            .unwrap();
        let record = wait_final(t.queue(), &job.job_id, Duration::from_secs(10)).await;
        assert_eq!(record.status, JobStatus::Dead, "{kind} is not retried");
        assert_eq!(record.attempts, 1, "{kind} is not retried");
        assert_eq!(record.error.unwrap().kind, kind);

        // By hand: back in the queue with a fresh set of attempts; this time it succeeds.
        t.queue().retry_dead(&job.job_id).await.unwrap();
        let record = wait_final(t.queue(), &job.job_id, Duration::from_secs(10)).await;
        assert_eq!(
            record.status,
            JobStatus::Done,
            "{kind}: a retried dead job runs again"
        );
        assert_eq!(record.result, Some(json!({"run": 2})));
        assert_eq!(record.error, None, "a job that succeeded shows no error");
        t.stop_worker(&w).await;
    }
    let err = t
        .queue()
        .retry_dead("01JUNKJUNKJUNKJUNKJUNKJUNK")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no job"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_retries_due_in_the_same_second_all_run_while_new_jobs_keep_flowing() {
    const N: usize = 10_000;
    let mut t = fleet().start().await;
    // Every job fails once; the retries, with base = max = 500 ms and jitter, fall due
    // together, within about a second of each other.
    let flaky = Flaky::new(ErrorKind::Network, 2);
    let counting = Counting::default();
    let ops = Ops::builtin().with(flaky.clone()).with(counting.clone());
    let specs = vec![JobSpec::new("flaky", json!({})); N];
    t.queue()
        .enqueue_many("jobs", &specs, &EnqueueOptions::default())
        .await
        .unwrap();
    let mut setup = t.setup();
    setup.config.concurrency = 50;
    setup.config.retry_base = Duration::from_millis(500);
    setup.config.retry_max = Duration::from_millis(500);
    setup.ops = ops;
    t.add_worker_with(setup).await;

    // Wait until the retries are parked, then enqueue new work beside them.
    eventually(
        "the first attempts to fail",
        Duration::from_secs(60),
        || async {
            let s = t.queue().stats().await.unwrap();
            (s[0].delayed + s[0].done >= N as u64 / 2).then_some(())
        },
    )
    .await;
    let fresh: Vec<String> = t
        .queue()
        .enqueue_many(
            "jobs",
            &vec![JobSpec::new("count", json!({})); 200],
            &EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().job_id)
        .collect();
    for id in &fresh {
        let record = wait_final(t.queue(), id, Duration::from_secs(60)).await;
        assert_eq!(record.status, JobStatus::Done, "new jobs are served");
    }
    eventually("every retry to run", Duration::from_secs(120), || async {
        let s = t.queue().stats().await.unwrap();
        (s[0].done == (N + fresh.len()) as u64).then_some(())
    })
    .await;
    t.shutdown().await;
    let starts = flaky.starts.lock().unwrap().clone();
    assert_eq!(starts.len(), N);
    assert!(
        starts.values().all(|s| s.len() == 2),
        "each job ran twice: failed, then retried"
    );
    let s = t.queue().stats().await.unwrap();
    assert_eq!((s[0].dead, s[0].delayed, s[0].waiting), (0, 0, 0));
}
