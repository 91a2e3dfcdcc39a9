//! The per-job limits that need no git: the run time a job may ask for (`timeout_ms`),
//! the longest `sleep`, the largest result. Each is refused by a client configured with
//! the limits (nothing is enqueued) and by the worker, for a job that reached the queue
//! some other way (a producer in another language, a client left at the defaults).

use std::time::Duration;

use gitfleet_contract::ops::{JobLimits, Rules};
use gitfleet_contract::{ErrorKind, JobRecord, JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, QueueError};
use gitfleet_testkit::Fleet;
use serde_json::{Value, json};

use crate::fleet;
use crate::test_ops::Counting;

/// Small caps, so that going over them is cheap.
const LIMITS: JobLimits = JobLimits {
    max_write_bytes: 64 << 20,
    max_write_files: 10_000,
    max_sleep_ms: 200,
    max_timeout_ms: 5_000,
    max_result_bytes: 1_000,
};

/// A fleet whose one worker checks jobs by [`LIMITS`] and also serves `count`.
async fn limited(counting: &Counting) -> Fleet {
    let mut fleet = fleet().start().await;
    let mut setup = fleet.setup();
    setup.ops = Ops::with_rules(Rules {
        limits: LIMITS,
        ..Default::default()
    })
    .with(counting.clone());
    fleet.add_worker_with(setup).await;
    fleet
}

async fn finished(fleet: &Fleet, id: &str) -> JobRecord {
    let record = fleet
        .queue()
        .wait(id, Duration::from_secs(20))
        .await
        .unwrap()
        .expect("the job has a record");
    assert!(record.status.is_final(), "{record:?}");
    record
}

/// Enqueues straight onto the queue, as a producer that checks nothing would.
async fn enqueue_unchecked(fleet: &Fleet, spec: &JobSpec, options: &EnqueueOptions) -> JobRecord {
    let job = fleet.queue().enqueue("jobs", spec, options).await.unwrap();
    finished(fleet, &job.job_id).await
}

fn refused(record: &JobRecord, names: &str) {
    assert_eq!(record.status, JobStatus::Dead, "{record:?}");
    assert_eq!(record.attempts, 1, "never retried: {record:?}");
    let error = record.error.as_ref().expect("an error");
    assert_eq!(error.kind, ErrorKind::InvalidInput, "{error}");
    assert!(error.message.contains(names), "{error}");
}

async fn nothing_waiting(fleet: &Fleet) {
    let stats = fleet.queue().stats().await.unwrap();
    let jobs = stats.iter().find(|s| s.queue == "jobs");
    assert!(
        jobs.is_none_or(|s| s.waiting + s.running + s.delayed == 0),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_time_over_the_cap_is_refused_by_the_client_and_by_the_worker_before_it_runs() {
    let counting = Counting::default();
    let fleet = limited(&counting).await;
    // The client knows only the contract's ops; the worker also runs `count`, which shows
    // whether a job ran.
    let echo = JobSpec::new("echo", json!({}));
    let spec = JobSpec::new("count", json!({}));
    let over = EnqueueOptions {
        timeout: Some(Duration::from_millis(5_001)),
        ..Default::default()
    };

    let client = fleet.client().clone().with_limits(LIMITS);
    match client.submit("jobs", &echo, &over).await {
        Err(QueueError::Invalid(e)) => {
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert_eq!(
                e.message,
                "timeout_ms: 5001 ms is over the limit of 5000 ms (GITFLEET_JOB_MAX_TIMEOUT_MS)"
            );
        }
        other => panic!("the client enqueued it: {other:?}"),
    }
    match client
        .submit_many("jobs", std::slice::from_ref(&echo), &over)
        .await
    {
        Err(QueueError::Invalid(e)) => assert!(e.message.starts_with("timeout_ms:"), "{e}"),
        other => panic!("the client enqueued the batch: {other:?}"),
    }
    nothing_waiting(&fleet).await;

    let record = enqueue_unchecked(&fleet, &spec, &over).await;
    refused(&record, "GITFLEET_JOB_MAX_TIMEOUT_MS");
    assert_eq!(counting.runs.lock().unwrap().get(&record.job_id), None);

    let at_cap = EnqueueOptions {
        timeout: Some(Duration::from_millis(5_000)),
        ..Default::default()
    };
    client.check_options(&at_cap).unwrap();
    let record = enqueue_unchecked(&fleet, &spec, &at_cap).await;
    assert_eq!(record.status, JobStatus::Done, "{record:?}");
    assert_eq!(counting.runs.lock().unwrap().get(&record.job_id), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleep_over_the_cap_is_refused_by_the_client_and_by_the_worker() {
    let fleet = limited(&Counting::default()).await;
    let long = JobSpec::new("sleep", json!({"ms": 201}));
    let client = fleet.client().clone().with_limits(LIMITS);
    match client
        .submit("jobs", &long, &EnqueueOptions::default())
        .await
    {
        Err(QueueError::Invalid(e)) => assert_eq!(
            e.message,
            "ms: 201 is over the limit of 200 (GITFLEET_JOB_MAX_SLEEP_MS)"
        ),
        other => panic!("the client enqueued it: {other:?}"),
    }
    nothing_waiting(&fleet).await;
    // A client at the defaults (an hour) lets it through; the worker does not.
    let job = fleet
        .client()
        .submit("jobs", &long, &EnqueueOptions::default())
        .await
        .unwrap();
    refused(
        &finished(&fleet, &job.job_id).await,
        "GITFLEET_JOB_MAX_SLEEP_MS",
    );

    let short = JobSpec::new("sleep", json!({"ms": 200}));
    let job = client
        .submit("jobs", &short, &EnqueueOptions::default())
        .await
        .unwrap();
    let record = finished(&fleet, &job.job_id).await;
    assert_eq!(record.result, Some(json!({"slept_ms": 200})), "{record:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_cap_fails_its_job_and_none_of_it_is_kept() {
    let fleet = limited(&Counting::default()).await;
    // `echo` answers with its args: 1,000 bytes of them is over the cap once in braces.
    let pad = "x".repeat(1_000);
    let job = fleet
        .client()
        .submit(
            "jobs",
            &JobSpec::new("echo", json!({"pad": pad})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let record = finished(&fleet, &job.job_id).await;
    refused(&record, "GITFLEET_MAX_RESULT_BYTES");
    assert_eq!(record.result, None, "nothing of the result is stored");
    assert!(
        record
            .error
            .as_ref()
            .unwrap()
            .message
            .starts_with("result: echo answered 1010 bytes, over the limit of 1000 bytes"),
        "{record:?}"
    );
    let small = json!({"pad": "x".repeat(900)});
    let job = fleet
        .client()
        .submit(
            "jobs",
            &JobSpec::new("echo", small.clone()),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let record = finished(&fleet, &job.job_id).await;
    assert_eq!(record.result, Some::<Value>(small), "{record:?}");
}
