//! Waiting for results: every waiter wakes when a job finishes, without polling.

use std::time::Duration;

use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use serde_json::json;

use gitfleet_testkit::TestQueue;

use crate::fleet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_waiter_wakes_when_the_job_finishes() {
    let mut t = fleet().start().await;
    let job = t
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("sleep", json!({"ms": 300})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let q = t.queue().clone();
            let id = job.job_id.clone();
            tokio::spawn(async move { q.wait(&id, Duration::from_secs(20)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.add_worker().await;
    for waiter in waiters {
        let record = waiter.await.unwrap().unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Done);
        assert_eq!(record.result, Some(json!({"slept_ms": 300})));
    }
    t.shutdown().await;
}

#[tokio::test]
async fn waiting_past_the_timeout_returns_the_job_as_it_is_and_unknown_ids_return_none() {
    let t = TestQueue::new("queue").await;
    let job = t
        .queue
        .enqueue(
            "jobs",
            &JobSpec::new("echo", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let record = t
        .queue
        .wait(&job.job_id, Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.status,
        JobStatus::Waiting,
        "no worker: still waiting"
    );
    assert!(
        t.queue
            .wait("01NOSUCHJOBNOSUCHJOBNOSUCH", Duration::from_millis(100))
            .await
            .unwrap()
            .is_none()
    );
    assert!(t.queue.job("../etc").await.is_err(), "ids are checked");
}
