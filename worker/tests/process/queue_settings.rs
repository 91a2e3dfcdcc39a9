//! The queue settings a worker process takes from its environment, end to end: how long
//! finished and dead jobs are kept (`GITFLEET_RESULT_TTL_SECS`, `GITFLEET_DEAD_TTL_SECS`),
//! which shared queues it serves (`GITFLEET_QUEUES`), and how many jobs of its own queue it
//! runs at once (`GITFLEET_OWN_QUEUE_CONCURRENCY`).

use std::time::Duration;

use gitfleet_client::{EnqueueOptions, JobSpec, JobStatus};
use gitfleet_testkit::eventually;
use redis::AsyncCommands;
use serde_json::json;

use crate::processes::ProcessFleet;

/// A done job's record (and its waiters' wake-up token) expires after the result TTL, a
/// dead job's after the dead TTL; and once they have, the next outcome the worker records
/// drops them from the queue's done and dead sets, so the counts stay true.
#[tokio::test]
async fn finished_and_dead_jobs_expire_after_their_ttls() {
    let q = ProcessFleet::new().await;
    let keys = q.client.queue().keys().clone();
    let mut redis = q.redis().await;
    // A waiter waits before any worker runs the job, so the job gets a wake-up token too.
    let done = q
        .submit("jobs", "echo", json!({"kept": "briefly"}))
        .await
        .job_id;
    let waiter = {
        let (client, id) = (q.client.clone(), done.clone());
        tokio::spawn(async move { client.wait(&id, Duration::from_secs(30)).await })
    };
    eventually("the waiter to wait", Duration::from_secs(10), async || {
        redis
            .hexists::<_, _, bool>(keys.job(&done), "waiters")
            .await
            .map_err(|e| e.to_string())
            .and_then(|set| if set { Ok(()) } else { Err("no waiter".into()) })
    })
    .await;
    let worker = q
        .spawn_worker(&[
            ("GITFLEET_RESULT_TTL_SECS", "1"),
            ("GITFLEET_DEAD_TTL_SECS", "3"),
        ])
        .await;
    let r = waiter.await.unwrap().unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    // Straight into Redis (the client would refuse it): the worker answers it dead.
    let dead = q
        .client
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("no_such_op", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .job_id;
    let r = q
        .wait_for_job(&dead, Duration::from_secs(30), "the job to be dead", |r| {
            r.status.is_final()
        })
        .await;
    assert_eq!(r.status, JobStatus::Dead, "{r:?}");

    let ttl = async |redis: &mut redis::aio::MultiplexedConnection, key: &str| -> i64 {
        redis.pttl(key).await.unwrap()
    };
    for key in [keys.job(&done), keys.wake(&done)] {
        let ms = ttl(&mut redis, &key).await;
        assert!(0 < ms && ms <= 1000, "{key}: the result TTL, {ms} ms");
    }
    let ms = ttl(&mut redis, &keys.job(&dead)).await;
    // Above the result TTL: read within 2 s of the job's end, which was just now.
    assert!(1000 < ms && ms <= 3000, "the dead TTL, {ms} ms");

    eventually(
        "both records to expire",
        Duration::from_secs(30),
        async || {
            let mut left = Vec::new();
            for key in [keys.job(&done), keys.wake(&done), keys.job(&dead)] {
                if redis
                    .exists::<_, bool>(&key)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    left.push(key);
                }
            }
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    )
    .await;
    assert_eq!(q.client.job(&done).await.unwrap(), None);
    assert_eq!(q.client.job(&dead).await.unwrap(), None);

    let next = q.run_as(None, "jobs", "echo", json!({})).await;
    assert_eq!(next.status, JobStatus::Done, "{next:?}");
    let in_done: Option<f64> = redis.zscore(keys.done("jobs"), &done).await.unwrap();
    let in_dead: Option<f64> = redis.zscore(keys.dead("jobs"), &dead).await.unwrap();
    assert_eq!((in_done, in_dead), (None, None), "dropped from the counts");
    drop(worker);
}

/// `GITFLEET_QUEUES` names the shared queues a worker serves (comma-separated, spaces
/// allowed): it serves each of them, and not the default `jobs` it was not given.
#[tokio::test]
async fn a_worker_serves_each_queue_of_gitfleet_queues_and_no_other() {
    let q = ProcessFleet::new().await;
    let worker = q.spawn_worker(&[("GITFLEET_QUEUES", "alpha, beta")]).await;
    let unserved = q
        .submit("jobs", "echo", json!({"queue": "jobs"}))
        .await
        .job_id;
    for queue in ["alpha", "beta"] {
        let r = q.run_as(None, queue, "echo", json!({"queue": queue})).await;
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.queue, queue, "{r:?}");
        assert_eq!(r.worker.as_deref(), Some(worker.id.as_str()), "{r:?}");
        assert_eq!(r.result, Some(json!({"queue": queue})), "{r:?}");
    }
    let listed = q.client.workers().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].queues, ["alpha", "beta"], "{listed:?}");
    // Submitted before the others, which are done: `jobs` has no fetcher on this worker.
    let r = q.job(&unserved).await.unwrap();
    assert_eq!(r.status, JobStatus::Waiting, "{r:?}");
    assert!(q.is_in_ready_list("jobs", &unserved).await);
}

/// `GITFLEET_OWN_QUEUE_CONCURRENCY` bounds the jobs run at once from the worker's own
/// queue, apart from `GITFLEET_CONCURRENCY` (1 here): of 4 jobs sent to it, exactly 2 run
/// while the other 2 wait, then those run too.
#[tokio::test]
async fn a_worker_runs_as_many_jobs_of_its_own_queue_at_once_as_its_own_queue_concurrency() {
    let q = ProcessFleet::new().await;
    let worker = q
        .spawn_worker(&[
            ("GITFLEET_CONCURRENCY", "1"),
            ("GITFLEET_OWN_QUEUE_CONCURRENCY", "2"),
        ])
        .await;
    q.wait_until_registered(&worker.id).await;
    let listed = q.client.workers().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].own_queue_concurrency, Some(2), "{listed:?}");
    let own = worker.own_queue();
    let ids = q.submit_n(&own, "sleep", json!({"ms": 1500}), 4).await;
    // Holds for as long as the first two sleep. Taking all 4 at once (the default of 10),
    // or one at a time (the shared queue's 1), never shows it.
    eventually(
        "2 jobs running and 2 waiting",
        Duration::from_secs(30),
        async || {
            let mut running = 0;
            let mut waiting = 0;
            for id in &ids {
                match q.job(id).await?.status {
                    JobStatus::Running => running += 1,
                    JobStatus::Waiting => waiting += 1,
                    _ => {}
                }
            }
            if (running, waiting) == (2, 2) {
                Ok(())
            } else {
                Err(format!("{running} running, {waiting} waiting"))
            }
        },
    )
    .await;
    let records = q
        .wait_for_jobs(&ids, Duration::from_secs(30), "all 4 done", |r| {
            r.status.is_final()
        })
        .await;
    for r in records {
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.worker.as_deref(), Some(worker.id.as_str()), "{r:?}");
    }
}
