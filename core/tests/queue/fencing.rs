//! Fencing at the queue layer: once recovery has declared a worker dead, nothing that
//! worker does counts any more. Its beats, fetches, acknowledgements and lock requests are
//! refused (`Fenced`), the lock it held fails its holder's check once another has it, and
//! its late outcome leaves the run that took over alone. The "worker" here is a name
//! driven by hand through the queue API (as a paused process would act when it wakes up),
//! recovered by the same call the survivors' heartbeats make.

use std::time::Duration;

use gitfleet_contract::{JobError, JobSpec, JobStatus};
use gitfleet_queue::{EnqueueOptions, Finished, Outcome, Queue, QueueError};
use redis::AsyncCommands;
use serde_json::json;

use crate::fleet;

const TTL: Duration = Duration::from_secs(30);

/// Makes `worker` look silent for an hour, as a paused process does to the survivors.
async fn silence(q: &gitfleet_testkit::Fleet, worker: &str) {
    q.test_queue()
        .silence(worker, Duration::from_secs(3600))
        .await;
}

async fn enqueue(queue: &Queue, args: serde_json::Value) -> String {
    queue
        .enqueue(
            "jobs",
            &JobSpec::new("echo", args),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .job_id
}

fn fenced<T: std::fmt::Debug>(what: &str, r: Result<T, QueueError>) {
    match r {
        Err(QueueError::Fenced(m)) => assert!(m.contains("declared dead"), "{what}: {m}"),
        other => panic!("{what}: expected Fenced, got {other:?}"),
    }
}

fn done(id: &str, by: &str) -> Finished {
    Finished {
        id: id.to_string(),
        outcome: Outcome::Done(json!({"by": by})),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_declared_dead_can_no_longer_beat_fetch_acknowledge_or_take_a_lock() {
    let q = fleet().start().await;
    let queue = q.queue();
    let (stale, other) = ("stale-01", "other-01");
    queue.heartbeat(stale, &[]).await.unwrap();
    let job = enqueue(queue, json!({"n": 1})).await;
    let started = queue.start("jobs", stale, None, 1).await.unwrap();
    assert_eq!(started.len(), 1, "{started:?}");
    queue.heartbeat(other, &[]).await.unwrap();
    let lock = queue
        .lock(stale, "push:repo:main", TTL, Duration::ZERO)
        .await
        .unwrap()
        .expect("a free lock");
    lock.confirm().await.expect("held by its holder");

    silence(&q, stale).await;
    let report = queue
        .reap_dead_workers(Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!((report.workers, report.requeued), (1, 1), "{report:?}");
    assert!(!queue.is_worker_alive(stale).await.unwrap());

    // It wakes up: every step it takes is refused, and changes nothing.
    fenced("beat", queue.beat(stale, &[]).await);
    assert!(
        !queue.is_worker_alive(stale).await.unwrap(),
        "a refused beat does not list it again"
    );
    fenced("confirm", lock.confirm().await);
    fenced(
        "lock",
        queue
            .lock(stale, "push:repo:other", TTL, Duration::ZERO)
            .await,
    );
    fenced("finish", queue.finish(stale, &[done(&job, stale)]).await);
    fenced("fetch", queue.start("jobs", stale, None, 10).await);
    let r = queue.job(&job).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Waiting, "its job went back: {r:?}");
    assert_eq!(r.result, None, "{r:?}");
    let ready: Vec<String> = q
        .test_queue()
        .redis()
        .await
        .lrange(queue.keys().ready("jobs"), 0, -1)
        .await
        .unwrap();
    assert_eq!(
        ready,
        [job.as_str()],
        "still in the queue, for the live workers"
    );

    // Its lock was freed with it: another takes it, and the stale holder's check (and
    // release) leave the new holder alone.
    let taken = queue
        .lock(other, "push:repo:main", TTL, Duration::ZERO)
        .await
        .unwrap()
        .expect("freed when its holder was declared dead");
    fenced("confirm after the take-over", lock.confirm().await);
    lock.release().await.unwrap();
    taken
        .confirm()
        .await
        .expect("the new holder still holds it");
    taken.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_late_outcome_of_a_worker_declared_dead_leaves_the_run_that_took_over_alone() {
    let q = fleet().start().await;
    let queue = q.queue();
    let (stale, survivor) = ("stale-02", "survivor-02");
    queue.heartbeat(stale, &[]).await.unwrap();
    let job = enqueue(queue, json!({"n": 2})).await;
    assert_eq!(queue.start("jobs", stale, None, 1).await.unwrap().len(), 1);
    queue.heartbeat(survivor, &[]).await.unwrap();

    silence(&q, stale).await;
    queue
        .reap_dead_workers(Duration::from_secs(15))
        .await
        .unwrap();
    let taken = queue.start("jobs", survivor, None, 1).await.unwrap();
    assert_eq!(taken.len(), 1, "the survivor runs it: {taken:?}");
    assert_eq!(taken[0].attempts, 2, "{taken:?}");

    // Both finish: the stale run's outcome is refused before and after the survivor's.
    let failed = Finished {
        id: job.clone(),
        outcome: Outcome::Dead(JobError::internal("the stale run's view")),
    };
    fenced(
        "finish while the survivor runs it",
        queue.finish(stale, std::slice::from_ref(&failed)).await,
    );
    let r = queue.job(&job).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Running, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(survivor), "{r:?}");

    assert_eq!(
        queue
            .finish(survivor, &[done(&job, survivor)])
            .await
            .unwrap(),
        1
    );
    let after = queue.job(&job).await.unwrap().unwrap();
    fenced(
        "finish after the survivor's",
        queue.finish(stale, &[failed]).await,
    );
    let r = queue.job(&job).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    assert_eq!(r.result, Some(json!({"by": survivor})), "{r:?}");
    assert_eq!(r.error, None, "{r:?}");
    assert_eq!(r.finished_at, after.finished_at, "untouched: {r:?}");
}

/// Recovery marks a worker it has begun on (score 0) and finishes it even if the worker
/// beats in between: a beat of a marked worker is refused and does not revive it, so it
/// cannot keep serving half-recovered (some jobs given to others, its locks freed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_recovery_has_begun_cannot_beat_its_way_back() {
    let q = fleet().start().await;
    let queue = q.queue();
    let marked = "marked-03";
    queue.heartbeat(marked, &[]).await.unwrap();
    let mut redis = q.test_queue().redis().await;
    // Where an interrupted recovery leaves it: marked, not yet removed.
    let _: () = redis.zadd(queue.keys().workers(), marked, 0).await.unwrap();
    fenced("beat of a marked worker", queue.beat(marked, &[]).await);
    let score: Option<f64> = redis.zscore(queue.keys().workers(), marked).await.unwrap();
    assert_eq!(score, Some(0.0), "still marked, not revived");
    assert!(!queue.is_worker_alive(marked).await.unwrap());
    let report = queue
        .reap_dead_workers(Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(report.workers, 1, "the next round finishes it: {report:?}");
    let score: Option<f64> = redis.zscore(queue.keys().workers(), marked).await.unwrap();
    assert_eq!(score, None, "removed");
}

/// Ownership, apart from fencing: an outcome from a live worker for a job it does not run
/// (another live worker runs it, or it has finished already) is ignored. It is not refused
/// (the worker is not declared dead) and changes nothing: the owner's run goes on and its
/// outcome is the one kept, and a late second outcome does not overwrite it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_from_a_worker_that_does_not_own_the_job_is_ignored() {
    let mut q = fleet().start().await;
    let owner = q.add_worker().await;
    let job = q
        .queue()
        .enqueue(
            "jobs",
            &JobSpec::new("sleep", json!({"ms": 1500})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap()
        .job_id;
    let queue = q.queue().clone();
    gitfleet_testkit::eventually(
        "the owner to run the job",
        Duration::from_secs(10),
        async || match queue.job(&job).await.map_err(|e| e.to_string())? {
            Some(r) if r.status == JobStatus::Running && r.worker.as_deref() == Some(&owner) => {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        },
    )
    .await;

    // A live worker, listed and beating (recovery leaves it alone), that never took the job.
    let other = "other-04";
    queue.heartbeat(other, &[]).await.unwrap();
    let failed = Finished {
        id: job.clone(),
        outcome: Outcome::Dead(JobError::internal("not this worker's run")),
    };
    let recorded = queue
        .finish(other, std::slice::from_ref(&failed))
        .await
        .expect("a live worker is not fenced");
    assert_eq!(recorded, 0, "nothing recorded");
    let r = queue.job(&job).await.unwrap().unwrap();
    assert_eq!(r.status, JobStatus::Running, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(owner.as_str()), "{r:?}");
    assert_eq!(r.error, None, "{r:?}");
    let held: Vec<String> = q
        .test_queue()
        .redis()
        .await
        .lrange(queue.keys().held(&owner), 0, -1)
        .await
        .unwrap();
    assert_eq!(held, [job.as_str()], "still the owner's");

    let r = queue
        .wait(&job, Duration::from_secs(20))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, JobStatus::Done, "the owner's outcome: {r:?}");
    assert_eq!(r.result, Some(json!({"slept_ms": 1500})), "{r:?}");
    // Late, from the owner's own id too: the job is no longer running, so nothing changes.
    queue.heartbeat(other, &[]).await.unwrap();
    for worker in [other, owner.as_str()] {
        assert_eq!(
            queue
                .finish(worker, std::slice::from_ref(&failed))
                .await
                .unwrap(),
            0,
            "{worker}"
        );
    }
    let after = queue.job(&job).await.unwrap().unwrap();
    assert_eq!(after.status, JobStatus::Done, "{after:?}");
    assert_eq!(after.result, r.result, "{after:?}");
    assert_eq!(after.error, None, "{after:?}");
    assert_eq!(after.finished_at, r.finished_at, "untouched: {after:?}");
    q.shutdown().await;
}
