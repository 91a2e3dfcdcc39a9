//! Cancelling: a waiting or delayed job leaves its queue and ends `cancelled`, its record
//! kept like a done job's and its waiters woken; a running or finished job is refused; and
//! with workers taking jobs at the same time, every job either runs or is cancelled.

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, Finished, Outcome, Queue, QueueError};
use gitfleet_testkit::{TestQueue, eventually};
use redis::AsyncCommands;
use serde_json::json;

use crate::fleet;
use crate::test_ops::Counting;

async fn enqueue(queue: &Queue, options: &EnqueueOptions) -> String {
    queue
        .enqueue("jobs", &JobSpec::new("echo", json!({})), options)
        .await
        .unwrap()
        .job_id
}

fn conflict<T: std::fmt::Debug>(r: Result<T, QueueError>) -> String {
    match r {
        Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => e.message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_job_leaves_its_queue_is_kept_like_a_done_job_and_wakes_its_waiters() {
    let t = TestQueue::new("cancel").await;
    let q = &t.queue;
    let keys = q.keys().clone();
    let mut redis = t.redis().await;
    let first = enqueue(q, &EnqueueOptions::default()).await;
    let id = enqueue(
        q,
        &EnqueueOptions {
            org: Some("acme".into()),
            ..Default::default()
        },
    )
    .await;
    let waiter = {
        let (q, id) = (q.clone(), id.clone());
        tokio::spawn(async move { q.wait(&id, Duration::from_secs(600)).await })
    };
    // The waiter has registered once its flag is on the record.
    eventually(
        "the waiter to register",
        Duration::from_secs(10),
        async || {
            let flag: Option<String> = redis.hget(keys.job(&id), "waiters").await.unwrap();
            flag.is_some()
        },
    )
    .await;

    assert!(
        q.cancel(&id, Some("beta")).await.unwrap().is_none(),
        "another organization's job is not found"
    );
    let cancelled = q.cancel(&id, Some("acme")).await.unwrap().expect("found");
    assert_eq!(cancelled.was, JobStatus::Waiting);
    assert_eq!(
        (cancelled.op.as_str(), cancelled.queue.as_str()),
        ("echo", "jobs")
    );
    assert_eq!(cancelled.org.as_deref(), Some("acme"));
    assert_eq!(cancelled.attempts, 0);

    let woken = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter wakes when the job is cancelled")
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(woken.status, JobStatus::Cancelled);
    assert_eq!(woken.finished_at, Some(cancelled.finished_at));
    assert_eq!((woken.result, woken.error), (None, None));

    // Out of the ready list (the other job stays), in the cancelled set, the record kept
    // for the result TTL as a done job's is.
    let ready: Vec<String> = redis.lrange(keys.ready("jobs"), 0, -1).await.unwrap();
    assert_eq!(ready, [first]);
    let filed: Vec<String> = redis.zrange(keys.cancelled("jobs"), 0, -1).await.unwrap();
    assert_eq!(filed, std::slice::from_ref(&id));
    let ttl: i64 = redis.ttl(keys.job(&id)).await.unwrap();
    let result_ttl = q.config().result_ttl.as_secs() as i64;
    assert!(ttl > 0 && ttl <= result_ttl, "ttl {ttl}");
    let stats = q.stats().await.unwrap();
    assert_eq!((stats[0].waiting, stats[0].cancelled), (1, 1), "{stats:?}");

    let again = conflict(q.cancel(&id, None).await);
    assert_eq!(again, format!("job {id} is already cancelled"));
    assert!(
        q.cancel("01NOSUCHJOBNOSUCHJOBNOSUCH", None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        matches!(q.cancel("../x", None).await, Err(QueueError::Invalid(e)) if e.kind == ErrorKind::InvalidInput),
        "ids are checked before they name a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_leaves_its_delayed_set_and_never_runs() {
    let mut t = fleet().start().await;
    let queue = t.queue().clone();
    let id = enqueue(
        &queue,
        &EnqueueOptions {
            delay: Some(Duration::from_millis(300)),
            ..Default::default()
        },
    )
    .await;
    let cancelled = queue.cancel(&id, None).await.unwrap().unwrap();
    assert_eq!(cancelled.was, JobStatus::Delayed);
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats[0].delayed, stats[0].cancelled), (0, 1), "{stats:?}");

    // A worker that promotes due jobs, and a job after it: once that one is done, the
    // cancelled one (due long before) would have run, had it still been due.
    t.add_worker().await;
    let later = t.run("echo", json!({"after": true})).await;
    assert_eq!(later.status, JobStatus::Done);
    let r = queue.job(&id).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Cancelled, "{r:?}");
    assert_eq!((r.attempts, r.started_at), (0, None));
    t.shutdown().await;
}

#[tokio::test]
async fn a_running_job_is_refused_naming_its_worker_and_a_finished_one_as_finished() {
    let t = TestQueue::new("cancel").await;
    let q = &t.queue;
    let id = enqueue(q, &EnqueueOptions::default()).await;
    q.heartbeat("hand-01", &[]).await.unwrap();
    let taken = q.start("jobs", "hand-01", None, 1).await.unwrap();
    assert_eq!(taken.len(), 1);

    let refused = conflict(q.cancel(&id, None).await);
    assert_eq!(
        refused,
        format!(
            "job {id} is running on worker hand-01; only a waiting or delayed job can be \
             cancelled"
        )
    );
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().status,
        JobStatus::Running
    );

    let finished = Finished {
        id: id.clone(),
        outcome: Outcome::Done(json!({})),
    };
    assert_eq!(q.finish("hand-01", &[finished]).await.unwrap(), 1);
    assert_eq!(
        conflict(q.cancel(&id, None).await),
        format!("job {id} is already done")
    );
}

#[tokio::test]
async fn a_job_taken_by_blmove_but_not_started_is_cancelled_and_its_start_drops_it() {
    let t = TestQueue::new("cancel").await;
    let q = &t.queue;
    let id = enqueue(q, &EnqueueOptions::default()).await;
    q.heartbeat("hand-01", &[]).await.unwrap();
    // What a worker's blocking take does first: the id moves to its held list, still
    // `waiting` until the start script marks it running.
    let mut conn = q.take_connection().await.unwrap();
    let took = q
        .take_blocking(&mut conn, "jobs", "hand-01", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(took.as_deref(), Some(id.as_str()));

    let cancelled = q.cancel(&id, None).await.unwrap().unwrap();
    assert_eq!(cancelled.was, JobStatus::Waiting);
    let started = q.start("jobs", "hand-01", Some(&id), 0).await.unwrap();
    assert!(
        started.is_empty(),
        "a cancelled job does not start: {started:?}"
    );
    assert!(q.held("hand-01").await.unwrap().is_empty());
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().status,
        JobStatus::Cancelled
    );
}

/// Jobs enqueued, then cancelled (newest first) by four tasks while two workers take them
/// (oldest first), so the two meet somewhere in the backlog.
const RACED: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_while_workers_take_jobs_every_job_either_runs_or_is_cancelled() {
    let mut t = fleet().start().await;
    let counting = Counting::default();
    let mut setup = t.setup();
    setup.ops = Ops::builtin().with(counting.clone());
    let queue = t.queue().clone();
    let specs = vec![JobSpec::new("count", json!({})); RACED];
    let ids: Vec<String> = queue
        .enqueue_many("jobs", &specs, &EnqueueOptions::default())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().job_id)
        .collect();

    t.add_worker_with(setup.clone()).await;
    t.add_worker_with(setup).await;
    let cancellers: Vec<_> = (0..4)
        .map(|k| {
            let queue = queue.clone();
            let mine: Vec<String> = ids.iter().rev().skip(k).step_by(4).cloned().collect();
            tokio::spawn(async move {
                let (mut cancelled, mut refused) = (Vec::new(), Vec::new());
                for id in mine {
                    match queue.cancel(&id, None).await {
                        Ok(Some(_)) => cancelled.push(id),
                        Err(QueueError::Invalid(e)) if e.kind == ErrorKind::Conflict => {
                            refused.push(id)
                        }
                        other => panic!("cancel {id}: {other:?}"),
                    }
                }
                (cancelled, refused)
            })
        })
        .collect();
    let (mut cancelled, mut refused) = (HashSet::new(), HashSet::new());
    for c in cancellers {
        let (c, r) = c.await.unwrap();
        cancelled.extend(c);
        refused.extend(r);
    }
    assert_eq!(cancelled.len() + refused.len(), RACED);
    assert!(
        !cancelled.is_empty() && !refused.is_empty(),
        "the cancels met the workers: {} cancelled, {} refused",
        cancelled.len(),
        refused.len()
    );

    // Every refused job was taken by a worker, so it finishes; none is lost.
    eventually(
        "every job to be done or cancelled",
        Duration::from_secs(120),
        async || {
            let s = queue.stats().await.map_err(|e| e.to_string())?;
            let s = &s[0];
            if s.done as usize == refused.len() && s.waiting + s.running == 0 {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    t.shutdown().await;

    let runs = counting.runs.lock().unwrap().clone();
    for id in &ids {
        let r = queue.job(id).await.unwrap().expect("kept");
        let ran = runs.get(id).copied().unwrap_or(0);
        if cancelled.contains(id) {
            assert_eq!((r.status, ran), (JobStatus::Cancelled, 0), "{r:?}");
        } else {
            assert_eq!((r.status, ran), (JobStatus::Done, 1), "{r:?}");
        }
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!(stats[0].cancelled as usize, cancelled.len(), "{stats:?}");
}
