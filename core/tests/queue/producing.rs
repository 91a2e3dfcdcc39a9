//! Producing: idempotency keys, delayed jobs, and clear errors for bad jobs.

use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_core::ops::Ops;
use gitfleet_queue::{EnqueueOptions, QueueError};
use gitfleet_testkit::{TestQueue, eventually};
use redis::AsyncCommands;
use serde_json::json;

use crate::fleet;
use crate::test_ops::Counting;

/// A repeated enqueue with the same key answers the first job (its id, its status) and runs
/// nothing: each job runs exactly once.
#[tokio::test]
async fn a_second_enqueue_with_the_same_idempotency_key_returns_the_first_job() {
    let mut t = fleet().start().await;
    let counting = Counting::default();
    let mut setup = t.setup();
    setup.ops = Ops::builtin().with(counting.clone());
    t.add_worker_with(setup).await;
    let keyed = |k: &str| EnqueueOptions {
        idempotency_key: Some(k.into()),
        ..Default::default()
    };
    let spec = JobSpec::new("count", json!({}));
    let first = t
        .queue()
        .enqueue("jobs", &spec, &keyed("order-7"))
        .await
        .unwrap();
    assert!(first.created);
    let record = t
        .queue()
        .wait(&first.job_id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, JobStatus::Done);

    let again = t
        .queue()
        .enqueue("jobs", &spec, &keyed("order-7"))
        .await
        .unwrap();
    assert_eq!(again.job_id, first.job_id, "same key, same job");
    assert!(!again.created);
    assert_eq!(
        again.status,
        JobStatus::Done,
        "the first job's status comes back"
    );
    let other = t
        .queue()
        .enqueue("jobs", &spec, &keyed("order-8"))
        .await
        .unwrap();
    assert_ne!(other.job_id, first.job_id, "another key, another job");
    t.queue()
        .wait(&other.job_id, Duration::from_secs(10))
        .await
        .unwrap();
    t.shutdown().await;
    let s = t.queue().stats().await.unwrap();
    assert_eq!((s[0].waiting, s[0].delayed), (0, 0), "nothing left to run");
    let runs = counting.runs.lock().unwrap().clone();
    assert_eq!(
        runs,
        [(first.job_id.clone(), 1), (other.job_id.clone(), 1)].into(),
        "each job ran exactly once: the repeated enqueue ran nothing, not even the first job again"
    );
}

/// An idempotency key lives for the configured TTL, then Redis lets it go and the same key
/// makes a new job.
#[tokio::test]
async fn idempotency_keys_expire_after_their_ttl() {
    let t = TestQueue::with_config("queue", |c| c.idempotency_ttl = Duration::from_secs(1)).await;
    let keyed = EnqueueOptions {
        idempotency_key: Some("k".into()),
        ..Default::default()
    };
    let spec = JobSpec::new("echo", json!({}));
    let first = t.queue.enqueue("jobs", &spec, &keyed).await.unwrap();
    let key = t.queue.keys().idempotency("", "k");
    let mut redis = t.redis().await;
    let ttl: i64 = redis.pttl(&key).await.unwrap();
    assert!(
        0 < ttl && ttl <= 1000,
        "the key expires within its TTL: {ttl} ms"
    );
    eventually("the key to expire", Duration::from_secs(10), async || {
        !redis.exists::<_, bool>(&key).await.unwrap()
    })
    .await;
    let second = t.queue.enqueue("jobs", &spec, &keyed).await.unwrap();
    assert_ne!(first.job_id, second.job_id, "an expired key names no job");
    assert!(second.created);
}

#[tokio::test]
async fn a_delayed_job_waits_until_it_is_due_then_runs() {
    let mut t = fleet().start().await;
    t.add_worker().await;
    let options = EnqueueOptions {
        delay: Some(Duration::from_millis(1500)),
        ..Default::default()
    };
    let job = t
        .queue()
        .enqueue("jobs", &JobSpec::new("echo", json!({"x": 1})), &options)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Delayed);
    let record = t.queue().job(&job.job_id).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::Delayed);
    let run_at = record.run_at.expect("a delayed job says when it is due");
    assert_eq!(
        (run_at - record.enqueued_at.unwrap()).num_milliseconds(),
        1500
    );
    assert_eq!(t.queue().stats().await.unwrap()[0].delayed, 1);

    let record = t
        .queue()
        .wait(&job.job_id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, JobStatus::Done);
    assert_eq!(record.result, Some(json!({"x": 1})));
    assert!(
        record.started_at.unwrap() >= run_at,
        "it did not start before it was due"
    );
    t.shutdown().await;
}

fn invalid(e: QueueError) -> String {
    match e {
        QueueError::Invalid(err) => {
            assert_eq!(err.kind, ErrorKind::InvalidInput);
            err.message
        }
        other => panic!("expected invalid input, got {other}"),
    }
}

#[tokio::test]
async fn bad_jobs_are_refused_at_enqueue_with_an_error_naming_the_problem() {
    let t = TestQueue::with_config("queue", |c| c.max_payload_bytes = 1000).await;
    let none = EnqueueOptions::default();
    let big = JobSpec::new("echo", json!({"blob": "x".repeat(2000)}));
    let msg = invalid(t.queue.enqueue("jobs", &big, &none).await.unwrap_err());
    assert!(msg.contains("over the limit of 1000 bytes"), "{msg}");

    let msg = invalid(
        t.queue
            .enqueue("jobs", &JobSpec::new("echo", json!([1, 2])), &none)
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("args:"), "{msg}");
    let msg = invalid(
        t.queue
            .enqueue("no such queue!", &JobSpec::new("echo", json!({})), &none)
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("queue"), "{msg}");
    let bad_key = EnqueueOptions {
        idempotency_key: Some("a\nb".into()),
        ..Default::default()
    };
    let msg = invalid(
        t.queue
            .enqueue("jobs", &JobSpec::new("echo", json!({})), &bad_key)
            .await
            .unwrap_err(),
    );
    assert!(msg.starts_with("idempotency_key:"), "{msg}");
    assert!(
        t.queue.stats().await.unwrap().is_empty(),
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn the_push_script_itself_refuses_malformed_and_oversize_payloads() {
    // What a producer in another language sees when it sends garbage.
    let t = TestQueue::new("queue").await;
    let mut conn = t.redis().await;
    let k = t.queue.keys();
    let script = redis::Script::new(include_str!("../../../queue/src/lua/enqueue.lua"));
    let push = |payload: String, max: u64| {
        let mut inv = script.prepare_invoke();
        inv.key(k.ready("jobs"))
            .key(k.delayed("jobs"))
            .key(k.queues())
            .key(k.workers())
            .key(k.dead("jobs"))
            .key(k.idempotency("", "-"))
            .key(k.job("01TESTTESTTESTTESTTESTTEST"))
            .arg(k.prefix())
            .arg("jobs")
            .arg("")
            .arg(0)
            .arg(0)
            .arg(0)
            .arg("")
            .arg(60)
            .arg("")
            .arg(max)
            .arg("")
            .arg(60)
            .arg(payload);
        inv
    };
    for (payload, expected) in [
        ("{not json".to_string(), "not a JSON object"),
        (r#"{"args":{}}"#.to_string(), "no \"op\""),
        (
            r#"{"op":"echo","args":5}"#.to_string(),
            "\"args\" must be a JSON object",
        ),
        (
            format!(r#"{{"op":"echo","args":{{"b":"{}"}}}}"#, "x".repeat(300)),
            "over the limit of 100 bytes",
        ),
    ] {
        let max = if expected.contains("limit") {
            100
        } else {
            1 << 20
        };
        let err = push(payload, max)
            .invoke_async::<redis::Value>(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("invalid_input:"), "{err}");
        let detail = err.detail().unwrap_or_default();
        assert!(
            detail.contains(expected),
            "{detail} should mention {expected}"
        );
    }
    assert!(
        t.queue.stats().await.unwrap().is_empty(),
        "nothing was enqueued"
    );
}

#[tokio::test]
async fn a_batch_answers_each_job_and_one_bad_job_does_not_stop_the_others() {
    let t = TestQueue::with_config("queue", |c| c.max_payload_bytes = 200).await;
    let specs = vec![
        JobSpec::new("echo", json!({"n": 1})),
        JobSpec::new("echo", json!({"blob": "x".repeat(500)})),
        JobSpec::new("echo", json!({"n": 3})),
    ];
    let answers = t
        .queue
        .enqueue_many("jobs", &specs, &EnqueueOptions::default())
        .await
        .unwrap();
    let mut answers = answers.into_iter();
    assert!(answers.next().unwrap().is_ok());
    assert!(invalid(answers.next().unwrap().unwrap_err()).contains("over the limit"));
    assert!(answers.next().unwrap().is_ok());
    assert_eq!(t.queue.stats().await.unwrap()[0].waiting, 2);
}

#[tokio::test]
async fn a_job_for_a_worker_that_is_not_running_is_answered_sandbox_not_found_at_once() {
    let mut t = fleet().start().await;
    let job = t
        .queue()
        .enqueue(
            "worker:ghost-01ABC",
            &JobSpec::new("echo", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Dead);
    let record = t.queue().job(&job.job_id).await.unwrap().unwrap();
    assert_eq!(record.error.unwrap().kind, ErrorKind::SandboxNotFound);

    // A live worker's own queue is served by that worker.
    let w = t.add_worker().await;
    let own = format!("worker:{w}");
    let job = t
        .queue()
        .enqueue(
            &own,
            &JobSpec::new("echo", json!({"to": "me"})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    let record = t
        .queue()
        .wait(&job.job_id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, JobStatus::Done);
    assert_eq!(record.worker.as_deref(), Some(w.as_str()));
    t.stop_worker(&w).await;
    // Once it has left, its queue is answered at once again.
    let job = t
        .queue()
        .enqueue(
            &own,
            &JobSpec::new("echo", json!({})),
            &EnqueueOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Dead);
}

/// One script call stores many jobs: each refusal comes back by its place, the others are
/// queued in order, and a payload the script reads without decoding (gitfleet's own shape)
/// makes the same record as one it decodes (other producers' JSON, or args with ids).
#[tokio::test]
async fn one_script_call_enqueues_many_jobs_and_refuses_bad_ones_by_their_place() {
    let t = TestQueue::new("queue").await;
    let mut conn = t.redis().await;
    let k = t.queue.keys();
    let script = redis::Script::new(include_str!("../../../queue/src/lua/enqueue.lua"));
    let payloads = [
        r#"{"op":"echo","args":{"n":1}}"#.to_string(),
        "{not json".to_string(),
        r#"{ "args": {"agent_id": "a-1", "task_id": "t-1", "n": 2}, "op": "echo" }"#.to_string(),
        format!(r#"{{"op":"echo","args":{{"b":"{}"}}}}"#, "x".repeat(300)),
        r#"{"op":"echo","args":{"n":5}}"#.to_string(),
        r#"{"op":"echo","args":5}"#.to_string(),
    ];
    let ids: Vec<String> = (0..payloads.len())
        .map(|i| format!("01BATCHBATCHBATCHBATCHBAT{i}"))
        .collect();
    let mut inv = script.prepare_invoke();
    inv.key(k.ready("jobs"))
        .key(k.delayed("jobs"))
        .key(k.queues())
        .key(k.workers())
        .key(k.dead("jobs"))
        .key(k.idempotency("acme", "-"));
    for id in &ids {
        inv.key(k.job(id));
    }
    inv.arg(k.prefix())
        .arg("jobs")
        .arg("acme")
        .arg(0)
        .arg(3)
        .arg(0)
        .arg("")
        .arg(60)
        .arg("")
        .arg(200)
        .arg("")
        .arg(60);
    for p in &payloads {
        inv.arg(p);
    }
    let reply: Vec<redis::Value> = inv.invoke_async(&mut conn).await.unwrap();
    let ints = |v: &redis::Value| redis::from_redis_value_ref::<i64>(v).unwrap();
    let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).unwrap();
    assert_eq!(ints(&reply[0]), 1, "created");
    assert_eq!(text(&reply[1]), "waiting");
    let now_us = chrono::Utc::now().timestamp_micros();
    assert!(
        (now_us - ints(&reply[2])).abs() < 60_000_000,
        "enqueued_at is Redis's now"
    );
    let refused: Vec<(i64, String)> = reply[3..]
        .chunks(2)
        .map(|p| (ints(&p[0]), text(&p[1])))
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0].0, 2);
    assert!(
        refused[0].1.starts_with("invalid_input: ") && refused[0].1.contains("not a JSON object")
    );
    assert_eq!(refused[1].0, 4);
    assert!(
        refused[1].1.contains("over the limit of 200 bytes"),
        "{}",
        refused[1].1
    );
    assert_eq!(refused[2].0, 6);
    assert!(
        refused[2].1.contains("\"args\" must be a JSON object"),
        "{}",
        refused[2].1
    );

    // The three good ones, in order, and nothing of the refused ones.
    let waiting: Vec<String> = conn.lrange(k.ready("jobs"), 0, -1).await.unwrap();
    assert_eq!(
        waiting,
        vec![ids[4].clone(), ids[2].clone(), ids[0].clone()],
        "LPUSH order"
    );
    for i in [1, 3, 5] {
        let exists: bool = conn.exists(k.job(&ids[i])).await.unwrap();
        assert!(!exists, "refused job {i} has no record");
    }
    let fast: std::collections::HashMap<String, String> =
        conn.hgetall(k.job(&ids[0])).await.unwrap();
    let slow: std::collections::HashMap<String, String> =
        conn.hgetall(k.job(&ids[2])).await.unwrap();
    for (name, want) in [
        ("op", "echo"),
        ("queue", "jobs"),
        ("status", "waiting"),
        ("attempts", "0"),
        ("max_attempts", "3"),
        ("timeout_ms", "0"),
        ("org", "acme"),
    ] {
        assert_eq!(
            fast.get(name).map(String::as_str),
            Some(want),
            "fast path {name}"
        );
        assert_eq!(
            slow.get(name).map(String::as_str),
            Some(want),
            "decoded {name}"
        );
    }
    assert_eq!(fast["payload"], payloads[0], "stored as sent");
    assert_eq!(fast["enqueued_at"], ints(&reply[2]).to_string());
    assert_eq!(slow["agent_id"], "a-1");
    assert_eq!(slow["task_id"], "t-1");
    assert!(!fast.contains_key("agent_id"));

    // A job key outside the prefix is refused, not written.
    let mut inv = script.prepare_invoke();
    inv.key(k.ready("jobs"))
        .key(k.delayed("jobs"))
        .key(k.queues())
        .key(k.workers())
        .key(k.dead("jobs"))
        .key(k.idempotency("", "-"))
        .key("elsewhere:job:X")
        .arg(k.prefix())
        .arg("jobs")
        .arg("")
        .arg(0)
        .arg(0)
        .arg(0)
        .arg("")
        .arg(60)
        .arg("")
        .arg(200)
        .arg("")
        .arg(60)
        .arg(&payloads[0]);
    let err = inv
        .invoke_async::<redis::Value>(&mut conn)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("invalid_input:"), "{err}");
    let exists: bool = conn.exists("elsewhere:job:X").await.unwrap();
    assert!(!exists);
}

/// A batch of mixed queues and options: each job gets its own answer, in order, whatever
/// script call it went in; an idempotency key repeated within the batch answers the first.
#[tokio::test]
async fn a_mixed_batch_answers_every_job_in_order() {
    let t = TestQueue::new("queue").await;
    let plain = EnqueueOptions::default();
    let delayed = EnqueueOptions {
        delay: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let keyed = EnqueueOptions {
        idempotency_key: Some("once".into()),
        ..Default::default()
    };
    let spec = |n: u32| JobSpec::new("echo", json!({ "n": n }));
    let specs: Vec<JobSpec> = (0..8).map(spec).collect();
    let jobs = vec![
        ("jobs", &specs[0], &plain),
        ("jobs", &specs[1], &plain),
        ("jobs", &specs[2], &delayed),
        ("other", &specs[3], &plain),
        ("jobs", &specs[4], &keyed),
        ("jobs", &specs[4], &keyed),
        ("worker:ghost-01ABC", &specs[6], &plain),
        ("worker:ghost-01ABC", &specs[7], &plain),
    ];
    let answers: Vec<_> = t
        .queue
        .enqueue_batch(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let statuses: Vec<JobStatus> = answers.iter().map(|a| a.status).collect();
    use JobStatus::*;
    assert_eq!(
        statuses,
        vec![
            Waiting, Waiting, Delayed, Waiting, Waiting, Waiting, Dead, Dead
        ]
    );
    assert!(answers[..5].iter().all(|a| a.created));
    assert!(
        !answers[5].created,
        "the key's second use finds the first job"
    );
    assert_eq!(answers[5].job_id, answers[4].job_id);
    assert!(answers[6].created && answers[7].created);
    let mut conn = t.redis().await;
    for (answer, (queue, spec, _)) in answers.iter().zip(&jobs) {
        let record = t.queue.job(&answer.job_id).await.unwrap().unwrap();
        assert_eq!(&record.queue, queue);
        assert_eq!(record.status, answer.status);
        let payload: String = conn
            .hget(t.queue.keys().job(&answer.job_id), "payload")
            .await
            .unwrap();
        assert_eq!(payload, serde_json::to_string(spec).unwrap(), "its own job");
    }
    let stats = t.queue.stats().await.unwrap();
    let jobs_q = stats.iter().find(|s| s.queue == "jobs").unwrap();
    assert_eq!((jobs_q.waiting, jobs_q.delayed), (3, 1));
    let ghost = stats.iter().find(|s| s.queue == "worker:ghost-01ABC");
    assert!(ghost.is_none() || ghost.unwrap().dead == 2, "{stats:?}");
}
