//! Waiting for results: every waiter wakes when a job finishes, without polling.

use std::time::Duration;

use gitfleet_contract::{JobSpec, JobStatus};
use gitfleet_queue::EnqueueOptions;
use serde_json::json;

use gitfleet_testkit::{TestQueue, eventually};
use redis::AsyncCommands;

use crate::fleet;

/// Three waiters wait for a job no worker can run yet; when a worker comes and finishes it,
/// every one of them returns its result.
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
    // No worker yet: the job cannot finish before the waiters are waiting. Once the job
    // carries the waiters' flag, a waiter has found it unfinished and is waiting; the three
    // share one flag, so for the other two this only shows they have not returned.
    let mut redis = t.test_queue().redis().await;
    let key = t.queue().keys().job(&job.job_id);
    eventually("the waiters to wait", Duration::from_secs(10), async || {
        let flagged: bool = redis.hexists(&key, "waiters").await.unwrap();
        flagged && waiters.iter().all(|w| !w.is_finished())
    })
    .await;
    t.add_worker().await;
    for waiter in waiters {
        let record = waiter.await.unwrap().unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Done);
        assert_eq!(record.result, Some(json!({"slept_ms": 300})));
    }
    t.shutdown().await;
}

/// A wait that times out returns the job as it is; an unknown id is `None`; ids are checked.
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

/// A watch is told every change of a job's state, in order, however fast they follow
/// each other: a job that fails twice and then succeeds goes running, delayed (its
/// backoff), waiting, and so on, each change with the attempt it belongs to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_is_told_every_change_of_state_in_order() {
    let mut t = fleet().start().await;
    let flaky = crate::test_ops::Flaky::new(gitfleet_contract::ErrorKind::Network, 3);
    let mut setup = t.setup();
    setup.ops = gitfleet_core::ops::Ops::builtin().with(flaky.clone());
    let job = t
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("flaky", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let (first, mut watch) = t.queue().watch(&job.job_id).await.unwrap().unwrap();
    assert_eq!(first.status, JobStatus::Waiting);
    t.add_worker_with(setup).await;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !seen
        .last()
        .is_some_and(|c: &gitfleet_queue::JobChange| c.status.is_final())
    {
        assert!(std::time::Instant::now() < deadline, "{seen:?}");
        seen.extend(watch.changes(Duration::from_secs(5)).await.unwrap());
    }
    let told: Vec<(String, u32)> = seen
        .iter()
        .map(|c| (c.status.to_string(), c.attempts))
        .collect();
    let want: Vec<(String, u32)> = [
        ("running", 1),
        ("delayed", 1),
        ("waiting", 1),
        ("running", 2),
        ("delayed", 2),
        ("waiting", 2),
        ("running", 3),
        ("done", 3),
    ]
    .iter()
    .map(|(s, a)| (s.to_string(), *a))
    .collect();
    assert_eq!(told, want);
    // A run's change names its worker and start; the end, its finish.
    assert!(seen[0].worker.is_some() && seen[0].started_at.is_some());
    assert!(seen[7].finished_at.is_some());
    // Nothing more is told after the end.
    assert!(
        watch
            .changes(Duration::from_millis(200))
            .await
            .unwrap()
            .is_empty()
    );
    // An unknown job cannot be watched.
    assert!(
        t.queue()
            .watch("01NOSUCHJOBNOSUCHJOBNOSUCH")
            .await
            .unwrap()
            .is_none()
    );
    t.shutdown().await;
}

/// `total_connections_received` of the Redis at `url`.
async fn connections_made(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO stats has total_connections_received")
}

/// Waits and watches one after another share one blocking connection instead of making one
/// each, and one kept while Redis restarted is replaced, not failed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_reuse_their_blocking_connection_and_survive_a_restart() {
    // A Redis of its own, so that its connection count is this test's alone.
    let mut server = gitfleet_testkit::RedisServer::start().await;
    let queue = gitfleet_queue::Queue::connect(gitfleet_queue::QueueConfig {
        redis_url: server.url(),
        key_prefix: "reuse:".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let job = queue
        .enqueue(
            "nobody-serves",
            &JobSpec::new("echo", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let wait = async || {
        let r = queue
            .wait(&job.job_id, Duration::from_millis(50))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, JobStatus::Waiting);
    };
    wait().await;
    let before = connections_made(&server.url()).await;
    for _ in 0..10 {
        wait().await;
        let (_, mut watch) = queue.watch(&job.job_id).await.unwrap().unwrap();
        assert!(
            watch
                .changes(Duration::from_millis(20))
                .await
                .unwrap()
                .is_empty()
        );
    }
    let made = connections_made(&server.url()).await - before;
    // The count's own connection, each time; none for the waits and watches.
    assert_eq!(made, 1, "connections made by 10 waits and 10 watches");

    // Redis restarts (from its append-only file, the job still there): the kept connection
    // is dead, and the next wait makes a new one instead of failing.
    server.restart().await;
    eventually(
        "the queue reconnects",
        Duration::from_secs(20),
        async || queue.ping().await.map_err(|e| e.to_string()),
    )
    .await;
    wait().await;
    let (_, mut watch) = queue.watch(&job.job_id).await.unwrap().unwrap();
    assert!(
        watch
            .changes(Duration::from_millis(20))
            .await
            .unwrap()
            .is_empty()
    );
}
