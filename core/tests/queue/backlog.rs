//! Large backlogs drain, and every job is run and acknowledged exactly once.

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_contract::JobSpec;
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, Queue};
use serde_json::json;

use gitfleet_testkit::eventually;

use crate::fleet;
use crate::test_ops::Counting;

async fn done_count(queue: &Queue) -> u64 {
    queue
        .stats()
        .await
        .unwrap()
        .iter()
        .find(|s| s.queue == "jobs")
        .map(|s| s.done)
        .unwrap_or(0)
}

/// Reads `status` and `attempts` of every job in as few round trips as possible.
async fn statuses(queue: &Queue, ids: &[String]) -> Vec<(Option<String>, Option<u32>)> {
    let client = redis::Client::open(gitfleet_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(1000) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HMGET")
                .arg(queue.keys().job(id))
                .arg("status")
                .arg("attempts");
        }
        let rows: Vec<(Option<String>, Option<u32>)> = pipe.query_async(&mut conn).await.unwrap();
        out.extend(rows);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_50000_jobs_drains_with_every_job_run_and_acknowledged_exactly_once() {
    const N: usize = 50_000;
    let mut t = fleet().start().await;
    let specs = vec![JobSpec::new("count", json!({})); N];
    let ids: Vec<String> = t
        .queue()
        .enqueue_many("jobs", &specs, &EnqueueOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().job_id)
        .collect();
    let stats = t.queue().stats().await.unwrap();
    assert_eq!(
        stats[0].waiting, N as u64,
        "all jobs wait before any worker starts"
    );

    let counting = Counting::default();
    let ops = Ops::builtin().with(counting.clone());
    let mut setup = t.setup();
    setup.config.concurrency = 50;
    setup.ops = ops;
    t.add_worker_with(setup.clone()).await;
    t.add_worker_with(setup).await;

    eventually("the backlog to drain", Duration::from_secs(180), || async {
        (done_count(t.queue()).await == N as u64).then_some(())
    })
    .await;
    t.shutdown().await;

    let runs = counting.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), N, "every job ran");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "jobs run more than once: {:?}",
        &twice[..twice.len().min(5)]
    );
    let ran: HashSet<&String> = runs.keys().collect();
    assert!(
        ids.iter().all(|id| ran.contains(id)),
        "the jobs that ran are the jobs enqueued"
    );

    for (id, (status, attempts)) in ids.iter().zip(statuses(t.queue(), &ids).await) {
        assert_eq!(
            status.as_deref(),
            Some("done"),
            "job {id} is acknowledged as done"
        );
        assert_eq!(attempts, Some(1), "job {id} took one attempt");
    }
    let stats = t.queue().stats().await.unwrap();
    assert_eq!(
        (stats[0].waiting, stats[0].running, stats[0].dead),
        (0, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_due_in_the_same_second_are_promoted_and_all_run() {
    const N: usize = 10_000;
    let mut t = fleet().start().await;
    let specs = vec![JobSpec::new("count", json!({})); N];
    let delayed = EnqueueOptions {
        delay: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    t.queue()
        .enqueue_many("jobs", &specs, &delayed)
        .await
        .unwrap();
    assert_eq!(t.queue().stats().await.unwrap()[0].delayed, N as u64);

    let counting = Counting::default();
    let mut setup = t.setup();
    setup.ops = Ops::builtin().with(counting.clone());
    t.add_worker_with(setup).await;
    eventually(
        "every delayed job to run",
        Duration::from_secs(120),
        || async { (done_count(t.queue()).await == N as u64).then_some(()) },
    )
    .await;
    t.shutdown().await;
    assert_eq!(counting.runs.lock().unwrap().len(), N);
    assert!(counting.runs.lock().unwrap().values().all(|n| *n == 1));
}
