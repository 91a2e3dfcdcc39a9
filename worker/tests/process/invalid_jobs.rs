//! A worker trusts no payload: a job written by a producer that skipped the enqueue script's
//! checks fails on its own, with a message naming the problem, and the worker goes on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gitfleet_client::{ErrorKind, JobStatus};
use redis::AsyncCommands;
use serde_json::json;

use crate::processes::ProcessFleet;

/// Writes a job record and pushes its id to the `jobs` list by hand, as a careless producer
/// in another language would, bypassing the enqueue script.
async fn push_by_hand(q: &ProcessFleet, payload: &str) -> String {
    let id = ulid::Ulid::new().to_string();
    let keys = q.client.queue().keys();
    let now_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros()
        .to_string();
    let fields = [
        ("payload", payload),
        ("queue", "jobs"),
        ("status", "waiting"),
        ("attempts", "0"),
        ("max_attempts", "0"),
        ("timeout_ms", "0"),
        ("enqueued_at", &now_us),
    ];
    let mut conn = q.redis().await;
    let _: () = conn.hset_multiple(keys.job(&id), &fields).await.unwrap();
    let _: () = conn.lpush(keys.ready("jobs"), &id).await.unwrap();
    id
}

#[tokio::test]
async fn a_malformed_job_pushed_by_hand_fails_with_invalid_input_and_the_worker_keeps_serving() {
    let q = ProcessFleet::new().await;
    let _w = q.spawn_worker(&[]).await;

    let limit = q.config().max_payload_bytes;
    let huge = json!({"op": "echo", "args": {"blob": "x".repeat(2 << 20)}}).to_string();
    assert!(huge.len() > limit);
    let cases = [
        ("{not json", "not a valid job object"),
        (
            r#"{"op":"frobnicate","args":{}}"#,
            r#"unknown op "frobnicate""#,
        ),
        (huge.as_str(), "over the limit"),
    ];
    for (payload, problem) in cases {
        let id = push_by_hand(&q, payload).await;
        let r = q
            .wait_for_job(&id, Duration::from_secs(10), "the bad job failed", |r| {
                r.status.is_final()
            })
            .await;
        let shown = &payload[..payload.len().min(40)];
        assert_eq!(r.status, JobStatus::Dead, "{shown}: {r:?}");
        assert_eq!(r.attempts, 1, "never retried: {r:?}");
        let error = r.error.expect("a dead job has an error");
        assert_eq!(error.kind, ErrorKind::InvalidInput, "{shown}: {error:?}");
        assert!(
            error.message.contains(problem),
            "{shown}: the message names the problem ({problem}): {error:?}"
        );
    }

    let ok = q.submit("jobs", "echo", json!({"still": "serving"})).await;
    let r = q
        .wait_for_job(
            &ok.job_id,
            Duration::from_secs(10),
            "the echo job done",
            |r| r.status.is_final(),
        )
        .await;
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    assert_eq!(r.result, Some(json!({"still": "serving"})));
}
