//! Redis going away (killed, then restarted from its append-only file) under load: the workers
//! ride it out by themselves and every job still finishes, exactly as it should.

use std::time::Duration;

use gitfleet_client::{JobStatus, QueueStats};
use gitfleet_testkit::eventually::POLL;
use gitfleet_testkit::{eventually_every, poll_until};
use serde_json::json;

use crate::processes::{ProcessFleet, RedisServer};

const JOBS: usize = 300;

async fn jobs_stats(q: &ProcessFleet) -> Result<QueueStats, String> {
    let stats = q.client.queues().await.map_err(|e| e.to_string())?;
    stats
        .into_iter()
        .find(|s| s.queue == "jobs")
        .ok_or_else(|| "no stats for the jobs queue yet".into())
}

/// Where the jobs of `ids` that are not finished are: their records, and which of the
/// ready list and the workers' held lists hold them.
async fn unfinished(q: &ProcessFleet, ids: &[String], workers: &[&str]) -> String {
    let keys = q.client.queue().keys();
    let mut lists = vec![keys.ready("jobs")];
    lists.extend(workers.iter().map(|w| keys.held(w)));
    let mut out = Vec::new();
    for id in ids {
        let record = match q.job(id).await {
            Ok(r) if r.status.is_final() => continue,
            Ok(r) => format!("{} worker={:?} attempts={}", r.status, r.worker, r.attempts),
            Err(e) => e,
        };
        let found = q
            .lists_holding(id, &lists)
            .await
            .unwrap_or_else(|e| vec![e]);
        out.push(format!("  {id}: {record}; in {found:?}"));
    }
    out.join("\n")
}

#[tokio::test]
async fn workers_reconnect_after_redis_restarts_and_no_job_is_lost() {
    // Declared first, so it is dropped last: the queue purges through it.
    let mut redis = RedisServer::start().await;
    let q = ProcessFleet::on(&redis.url()).await;
    let mut w1 = q.spawn_worker(&[("GITFLEET_CONCURRENCY", "10")]).await;
    let mut w2 = q.spawn_worker(&[("GITFLEET_CONCURRENCY", "10")]).await;
    q.wait_until_registered(&w1.id).await;
    q.wait_until_registered(&w2.id).await;

    let ids = q.submit_n("jobs", "sleep", json!({"ms": 20}), JOBS).await;
    // The restart must land mid-run: look often, or the whole batch is done before we see it.
    let before = eventually_every(
        "a third of the jobs done",
        Duration::from_secs(30),
        Duration::from_millis(5),
        async || {
            let s = jobs_stats(&q).await?;
            if s.done >= JOBS as u64 / 3 {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        },
    )
    .await;
    redis.restart().await;
    assert!(
        before.done < JOBS as u64,
        "Redis restarted only after every job was done, so this proves nothing: {before:?}"
    );

    let finished = poll_until(Duration::from_secs(90), POLL, async || {
        let s = jobs_stats(&q).await?;
        if s.done + s.dead >= JOBS as u64 {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let after = match finished {
        Ok(stats) => stats,
        Err(seen) => panic!(
            "not every job finished within 90 s; last seen {}; unfinished:\n{}",
            seen.unwrap_or_default(),
            unfinished(&q, &ids, &[&w1.id, &w2.id]).await
        ),
    };
    assert_eq!((after.done, after.dead), (JOBS as u64, 0), "{after:?}");
    for id in &ids {
        let r = q.job(id).await.unwrap();
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.result, Some(json!({"slept_ms": 20})), "{r:?}");
    }
    assert!(
        w1.is_running(),
        "worker 1 survived the restart\n{}",
        w1.log_text()
    );
    assert!(
        w2.is_running(),
        "worker 2 survived the restart\n{}",
        w2.log_text()
    );
}
