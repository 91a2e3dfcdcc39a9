//! A caller that hangs up in the middle of `POST /v1/jobs`: whatever the gateway enqueued
//! for it still gets its history row (the enqueue runs to its end in a task of its own, not
//! in the request's future, which is dropped with the connection).

use std::collections::HashSet;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::eventually;
use serde_json::{Value, json};

use crate::support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_enqueued_for_a_caller_that_hung_up_mid_request_still_get_their_rows() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let bulk: Vec<Value> = (0..1000)
        .map(|n| json!({"op": "echo", "args": {"n": n}, "queue": "parked"}))
        .collect();
    // Hang up after 1, 3, 5 … ms: some requests before the enqueue, some while Redis runs
    // it, some after; the last one waits for its answer.
    for ms in (1..40).step_by(2) {
        let _ = w
            .http
            .post(w.gw.url("/v1/jobs"))
            .bearer_auth(&key)
            .json(&bulk)
            .timeout(Duration::from_millis(ms))
            .send()
            .await;
    }
    let last = w.post(&key, "/v1/jobs", &Value::Array(bulk)).await;
    assert_eq!(last.status, 201, "{}", last.text);

    let mut redis = w.fleet.test_queue().redis().await;
    let ids: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("{}parked", w.fleet.prefix()))
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(ids.len() % 1000, 0, "whole requests only: {}", ids.len());
    let pool = w.fleet.store().pool().clone();
    eventually(
        "a history row for every job enqueued",
        Duration::from_secs(30),
        async || {
            let rows: Vec<String> =
                sqlx::query_scalar("SELECT job_id FROM jobs WHERE job_id = ANY($1)")
                    .bind(&ids)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            let rows: HashSet<String> = rows.into_iter().collect();
            let missing = ids.iter().filter(|id| !rows.contains(*id)).count();
            (missing == 0)
                .then_some(())
                .ok_or(format!("{missing} of {} jobs have no row", ids.len()))
        },
    )
    .await;
}
