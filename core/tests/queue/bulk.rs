//! By-hand actions on delayed and dead jobs (`bulk.lua`): a scan counts exactly what
//! matches however many jobs share a score, changing nothing; an action moves exactly the
//! matching jobs, in chunks, each once, skips the ones that changed state since the scan,
//! and leaves other organizations' jobs as they were, byte for byte.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_queue::{BulkAction, BulkFilter, EnqueueOptions, Queue, QueueError};
use gitfleet_testkit::TestQueue;
use redis::AsyncCommands;
use serde_json::json;

async fn delayed(q: &Queue, org: &str, op: &str, n: usize) -> Vec<String> {
    let specs: Vec<JobSpec> = (0..n)
        .map(|i| JobSpec::new(op, json!({ "i": i })))
        .collect();
    let options = EnqueueOptions {
        org: Some(org.into()),
        delay: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    q.enqueue_many("jobs", &specs, &options)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap().job_id)
        .collect()
}

fn filter(org: Option<&str>, op: Option<&str>) -> BulkFilter {
    BulkFilter {
        state: JobStatus::Delayed,
        queue: None,
        op: op.map(str::to_string),
        org: org.map(str::to_string),
        enqueued_from_us: None,
        enqueued_before_us: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_counts_every_match_across_chunks_and_an_action_moves_exactly_those_once() {
    let t = TestQueue::new("bulk").await;
    let q = &t.queue;
    let keys = q.keys().clone();
    let mut redis = t.redis().await;
    // 2,500 of acme's (two ops), more than two chunks, many of them due in the same ms.
    let echoes = delayed(q, "acme", "echo", 2_200).await;
    let sleeps = delayed(q, "acme", "sleep", 300).await;
    let theirs = delayed(q, "other", "echo", 50).await;
    let before: HashMap<String, HashMap<String, String>> = {
        let mut m = HashMap::new();
        for id in &theirs {
            let h: HashMap<String, String> = redis.hgetall(keys.job(id)).await.unwrap();
            m.insert(id.clone(), h);
        }
        m
    };
    // All of acme's echoes due in the same millisecond (a burst of producers can do that):
    // more ties than two chunks hold, the cursor's hardest case.
    let scores: Vec<(String, f64)> = redis
        .zrange_withscores(keys.delayed("jobs"), 0, 0)
        .await
        .unwrap();
    let due = scores[0].1;
    for chunk in echoes.chunks(500) {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(keys.delayed("jobs")).arg("XX");
        for id in chunk {
            cmd.arg(due).arg(id);
        }
        let _: u64 = cmd.query_async(&mut redis).await.unwrap();
    }
    let tied: u64 = redis.zcount(keys.delayed("jobs"), due, due).await.unwrap();
    assert!(tied >= 2_200, "{tied}");

    // The scan: exact counts, nothing changed.
    let found = tokio::time::timeout(
        Duration::from_secs(30),
        q.matching(&filter(Some("acme"), Some("echo")), 100_000),
    )
    .await
    .expect("the scan ends")
    .unwrap();
    let found_ids: HashSet<&str> = found.iter().map(|m| m.job_id.as_str()).collect();
    assert_eq!(found.len(), 2_200);
    assert_eq!(found_ids, echoes.iter().map(String::as_str).collect());
    assert_eq!(
        q.matching(&filter(Some("acme"), None), 100_000)
            .await
            .unwrap()
            .len(),
        2_500
    );
    assert_eq!(
        q.matching(&filter(None, None), 100_000)
            .await
            .unwrap()
            .len(),
        2_550
    );
    assert_eq!(
        q.matching(&filter(None, None), 10).await.unwrap().len(),
        10,
        "a cap"
    );
    let delayed_now: u64 = redis.zcard(keys.delayed("jobs")).await.unwrap();
    assert_eq!(delayed_now, 2_550, "a scan changes nothing");
    assert_eq!(redis.llen::<_, u64>(keys.ready("jobs")).await.unwrap(), 0);

    // Three jobs change state between the scan and the action: one is cancelled, one is
    // run now by hand, and one is deleted.
    q.cancel(&echoes[0], None).await.unwrap().unwrap();
    q.act_on(BulkAction::RunNow, &echoes[1], Some("acme"))
        .await
        .unwrap()
        .unwrap();
    q.act_on(BulkAction::Delete, &echoes[2], None)
        .await
        .unwrap()
        .unwrap();
    let report = q
        .act(
            BulkAction::RunNow,
            &filter(Some("acme"), Some("echo")),
            &found,
        )
        .await
        .unwrap();
    assert_eq!(report.acted.len(), 2_197);
    assert_eq!(report.skipped, 3, "the three that changed are left alone");
    assert!(
        report
            .acted
            .iter()
            .all(|a| a.org.as_deref() == Some("acme") && a.op == "echo")
    );
    // In the ready list: each acted job once, and the one run by hand.
    let ready: Vec<String> = redis.lrange(keys.ready("jobs"), 0, -1).await.unwrap();
    assert_eq!(ready.len(), 2_198);
    assert_eq!(
        ready.iter().collect::<HashSet<_>>().len(),
        2_198,
        "none twice"
    );
    for id in &echoes[3..] {
        let status: String = redis.hget(keys.job(id), "status").await.unwrap();
        assert_eq!(status, "waiting");
    }
    assert!(!redis.exists::<_, bool>(keys.job(&echoes[2])).await.unwrap());
    // The sleeps and the other organization's jobs are as they were.
    for id in &sleeps {
        let status: String = redis.hget(keys.job(id), "status").await.unwrap();
        assert_eq!(status, "delayed");
    }
    for (id, was) in &before {
        let now: HashMap<String, String> = redis.hgetall(keys.job(id)).await.unwrap();
        assert_eq!(&now, was, "another organization's job, byte for byte");
        let score: Option<f64> = redis.zscore(keys.delayed("jobs"), id).await.unwrap();
        assert!(score.is_some());
    }
    // Acting again on the same ids finds nothing to do.
    let again = q
        .act(
            BulkAction::RunNow,
            &filter(Some("acme"), Some("echo")),
            &found,
        )
        .await
        .unwrap();
    assert_eq!((again.acted.len(), again.skipped), (0, 2_200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_refuses_a_state_it_does_not_take_and_another_organizations_job_is_missing() {
    let t = TestQueue::new("bulk-one").await;
    let q = &t.queue;
    let id = delayed(q, "acme", "echo", 1).await.remove(0);
    match q.act_on(BulkAction::Retry, &id, None).await {
        Err(QueueError::Invalid(e)) => {
            assert_eq!(e.kind, ErrorKind::Conflict);
            assert!(e.message.contains("is delayed"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        q.act_on(BulkAction::Delete, &id, Some("other"))
            .await
            .unwrap(),
        None,
        "another organization's job is answered as missing"
    );
    let deleted = q
        .act_on(BulkAction::Delete, &id, Some("acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.org.as_deref(), Some("acme"));
    assert_eq!(q.job(&id).await.unwrap(), None, "gone from Redis");
    assert!(
        q.act(
            BulkAction::RunNow,
            &BulkFilter {
                state: JobStatus::Dead,
                ..filter(None, None)
            },
            &[]
        )
        .await
        .is_err(),
        "run_now does not take dead jobs"
    );
}
