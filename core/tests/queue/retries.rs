//! Retries follow the policy: exponential backoff with jitter, per-op limits, stored in
//! Redis; non-retryable kinds go straight to dead; dead jobs can be retried by hand.

use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, Queue};
use gitfleet_testkit::eventually;
use redis::AsyncCommands;
use serde_json::json;

use crate::fleet;
use crate::test_ops::{Counting, Flaky, Hang};

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

/// Redis's clock, in ms since the epoch: the clock the due times are set by.
async fn redis_now_ms(redis: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Each retry's due time, as stored in the queue's delayed set, is within the policy's
/// bounds: `base · 2^(n-1)` capped at `max`, plus jitter of less than as much again, counted
/// from when the failed run ended; jobs failing together get different delays; after the
/// last allowed run the job is dead with its last error.
///
/// The due times are read, not waited for: the base is long (5 s), and once a retry's due
/// time is checked the test makes it due at once (as time passing would), so the test takes
/// no longer than its runs. When the job comes back is another promise (a delayed job does
/// not start before it is due: `a_delayed_job_waits_until_it_is_due_then_runs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_wait_longer_each_time_with_jitter_then_the_job_is_dead_with_its_last_error() {
    const BASE_MS: i64 = 5_000;
    const MAX_MS: i64 = 20_000;
    const RUNS: u32 = 5;
    let mut t = fleet().start().await;
    let flaky = Flaky::new(ErrorKind::Network, 0);
    let mut setup = t.setup();
    setup.config.retry_base = Duration::from_millis(BASE_MS as u64);
    setup.config.retry_max = Duration::from_millis(MAX_MS as u64);
    setup.ops = Ops::builtin().with(flaky.clone());
    t.add_worker_with(setup).await;

    let options = EnqueueOptions {
        max_attempts: Some(RUNS),
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
    let delayed = t.queue().keys().delayed("jobs");
    let mut redis = t.test_queue().redis().await;
    let mut first_delays = Vec::new();
    for run in 1..RUNS {
        let records = eventually(
            format!("every job to wait for its retry after run {run}"),
            Duration::from_secs(30),
            async || {
                let mut records = Vec::new();
                for id in &ids {
                    let r = t.queue().job(id).await.map_err(|e| e.to_string())?;
                    match r {
                        Some(r) if r.status == JobStatus::Delayed && r.attempts == run => {
                            records.push(r)
                        }
                        other => return Err(format!("{other:?}")),
                    }
                }
                Ok(records)
            },
        )
        .await;
        // Read after every due time was set: an upper bound of when each run ended.
        let now = redis_now_ms(&mut redis).await;
        // 5 s, 10 s, 20 s, then capped at 20 s.
        let nominal = (BASE_MS << (run - 1)).min(MAX_MS);
        for r in &records {
            let id = &r.job_id;
            let due: Option<f64> = redis.zscore(&delayed, id).await.unwrap();
            let due = due.unwrap_or_else(|| panic!("job {id} is in the delayed set: {r:?}")) as i64;
            // The run failed after it started and before `now`.
            let started = r.started_at.unwrap().timestamp_millis();
            assert!(
                due >= started + nominal,
                "job {id}: retry {run} due {} ms after its run started, under {nominal} ms",
                due - started
            );
            assert!(
                due < now + 2 * nominal,
                "job {id}: retry {run} due {} ms from now, {} ms or more after its run ended",
                due - now,
                2 * nominal
            );
            assert_eq!(r.error.as_ref().unwrap().kind, ErrorKind::Network, "{r:?}");
            if run == 1 {
                first_delays.push(due - started);
            }
            // Time passes: due now.
            let _: () = redis::cmd("ZADD")
                .arg(&delayed)
                .arg("XX")
                .arg(0)
                .arg(id)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    }
    for id in &ids {
        let record = wait_final(t.queue(), id, Duration::from_secs(30)).await;
        assert_eq!(record.status, JobStatus::Dead);
        assert_eq!(record.attempts, RUNS, "the job's limit is respected");
        let error = record.error.expect("a dead job keeps its last error");
        assert_eq!(error.kind, ErrorKind::Network);
        assert_eq!(error.message, format!("run {RUNS} failed on purpose"));
    }
    t.shutdown().await;
    let starts = flaky.starts.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(starts[id].len(), RUNS as usize, "job {id} ran {RUNS} times");
    }
    // The delays are measured from each run's start (a few ms before its end), so two
    // equal delays could differ by that much: only a spread wider than it is counted.
    first_delays.sort();
    first_delays.dedup_by(|a, b| a.abs_diff(*b) < 50);
    assert!(
        first_delays.len() > 1,
        "jitter spreads jobs that failed together: {first_delays:?}"
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

/// The retry cap end to end: a job that fails every time runs exactly as many times as its
/// op allows when the producer sets no limit, and as many as the producer says when it
/// does; then it is dead with `attempts` equal to that cap and the last run's error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_always_fails_runs_exactly_its_cap_of_times_then_is_dead() {
    let mut t = fleet().start().await;
    let mut flaky = Flaky::new(ErrorKind::Network, 0);
    flaky.max_attempts = 3;
    let mut setup = t.setup();
    setup.ops = Ops::builtin().with(flaky.clone());
    t.add_worker_with(setup).await;

    let spec = JobSpec::new("flaky", json!({}));
    let by_op = t
        .queue()
        .enqueue("jobs", &spec, &EnqueueOptions::default())
        .await
        .unwrap();
    let by_producer = t
        .queue()
        .enqueue(
            "jobs",
            &spec,
            &EnqueueOptions {
                max_attempts: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (id, cap) in [(&by_op.job_id, 3), (&by_producer.job_id, 2)] {
        let record = wait_final(t.queue(), id, Duration::from_secs(30)).await;
        assert_eq!(record.status, JobStatus::Dead, "{record:?}");
        assert_eq!(record.attempts, cap, "{record:?}");
        let error = record.error.expect("a dead job keeps its last error");
        assert_eq!(error.kind, ErrorKind::Network);
        assert_eq!(error.message, format!("run {cap} failed on purpose"));
    }
    t.shutdown().await;
    let starts = flaky.starts.lock().unwrap().clone();
    assert_eq!(starts[&by_op.job_id].len(), 3, "the op's cap");
    assert_eq!(starts[&by_producer.job_id].len(), 2, "the producer's cap");
}

/// A run that outlives its op's time limit is cut off with `timeout`, which is retried: the
/// job runs again, up to its cap, and is dead with the `timeout` error naming the op and the
/// limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_past_its_time_limit_fails_with_timeout_and_is_retried() {
    let mut t = fleet().start().await;
    let hang = Hang {
        timeout: Duration::from_millis(300),
        runs: Default::default(),
    };
    let mut setup = t.setup();
    setup.ops = Ops::builtin().with(hang.clone());
    t.add_worker_with(setup).await;
    let job = t
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("hang", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let record = wait_final(t.queue(), &job.job_id, Duration::from_secs(30)).await;
    assert_eq!(record.status, JobStatus::Dead, "{record:?}");
    assert_eq!(
        record.attempts, 2,
        "timed out, retried, timed out: {record:?}"
    );
    let error = record.error.expect("a dead job keeps its last error");
    assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
    assert_eq!(error.message, "op hang did not finish within 300 ms");
    t.shutdown().await;
    assert_eq!(hang.runs.lock().unwrap()[&job.job_id], 2, "it ran twice");
}
