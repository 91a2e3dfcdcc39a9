//! `/v1/jobs`: enqueue, read, long-poll, events, idempotency, bulk, history, retry, cancel.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use gitfleet_contract::Role;
use gitfleet_testkit::eventually;
use serde_json::{Value, json};

use crate::support::{World, world};

async fn create(w: &World, key: &str, job: Value) -> String {
    let a = w.post(key, "/v1/jobs", &job).await;
    assert_eq!(a.status, 201, "{job}: {}", a.text);
    a.body["job_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_created_with_its_location_and_the_long_poll_returns_as_it_ends() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let a = w
        .post(
            &key,
            "/v1/jobs",
            &json!({"op": "sleep", "args": {"ms": 700}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["job_id"].as_str().unwrap();
    assert_eq!(
        a.header("location"),
        Some(format!("/v1/jobs/{id}").as_str())
    );
    assert_eq!(a.body["op"], "sleep");
    assert_eq!(a.body["org"], "acme", "stamped with the key's organization");
    assert!(
        ["waiting", "running"].contains(&a.body["status"].as_str().unwrap()),
        "{}",
        a.text
    );
    // Without wait: at once, as it is now.
    let now = w.get(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(now.status, 200);
    assert!(!["done", "dead"].contains(&now.body["status"].as_str().unwrap()));
    // With wait: the record once the job is done.
    let done = w.get(&key, &format!("/v1/jobs/{id}?wait=30")).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "done", "{}", done.text);
    assert_eq!(
        done.body["result"],
        json!({"slept_ms": 700}),
        "{}",
        done.text
    );
    // A short wait on a job that does not end answers its record as it is; and what the
    // 201 answered is that record, as the queue holds it (the gateway builds it without
    // reading it back), for a waiting job and a delayed one alike.
    for (job, status) in [
        (
            json!({"op": "echo", "queue": "parked", "max_attempts": 4, "timeout_secs": 9}),
            "waiting",
        ),
        (
            json!({"op": "echo", "queue": "parked", "delay_secs": 120.5}),
            "delayed",
        ),
    ] {
        let created = w.post(&key, "/v1/jobs", &job).await;
        assert_eq!(created.status, 201, "{}", created.text);
        assert_eq!(created.body["status"], status, "{}", created.text);
        let parked = created.body["job_id"].as_str().unwrap();
        let a = w.get(&key, &format!("/v1/jobs/{parked}?wait=0.3")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        // The record as created, and no run yet (the job never ran).
        let mut read = a.body.clone();
        let runs = read.as_object_mut().unwrap().remove("runs");
        assert_eq!(runs, Some(json!([])), "{}", a.text);
        assert_eq!(created.body, read, "{job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_answers_the_first_job_for_the_same_body_and_422_for_another() {
    let w = world().await;
    let acme = w.key("acme", Role::Producer).await;
    let other = w.key("other", Role::Producer).await;
    let body = json!({"op": "echo", "args": {"n": 1}, "queue": "parked"});
    let post = |key: &str, body: &Value, idem: &str| {
        w.http
            .post(w.gw.url("/v1/jobs"))
            .bearer_auth(key)
            .header("idempotency-key", idem)
            .json(body)
    };
    let first = w.send(post(&acme, &body, "k-1")).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = w.send(post(&acme, &body, "k-1")).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["job_id"], first.body["job_id"]);
    assert_eq!(again.header("location"), first.header("location"));
    // Another body under the key: another op's args, or the same job with other options.
    for changed in [
        json!({"op": "echo", "args": {"n": 2}, "queue": "parked"}),
        json!({"op": "echo", "args": {"n": 1}, "queue": "parked", "max_attempts": 2}),
    ] {
        let a = w.send(post(&acme, &changed, "k-1")).await;
        let p = a.problem(422, "conflict");
        assert_eq!(p["field"], "Idempotency-Key");
    }
    // The key is the organization's own: another organization gets a job of its own.
    let theirs = w.send(post(&other, &body, "k-1")).await;
    assert_eq!(theirs.status, 201, "{}", theirs.text);
    assert_ne!(theirs.body["job_id"], first.body["job_id"]);
    assert_eq!(theirs.body["org"], "other");
    // Exactly two jobs in that queue: one each.
    let stats = w.get(&acme, "/v1/queues").await;
    let parked = stats.body["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "parked")
        .cloned()
        .unwrap();
    assert_eq!(parked["waiting"], 2, "{}", stats.text);
}

/// The `state` events of job `id`'s stream, read to its end (which must come within 30 s),
/// and the stream's text.
async fn events_of(w: &World, key: &str, id: &str) -> (Vec<Value>, String) {
    let res = w
        .http
        .get(w.gw.url(&format!("/v1/jobs/{id}/events")))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut text = String::new();
    let mut body = res.bytes_stream();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the stream ends once the job is done");
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| e.contains("event: state"))
        .map(|e| {
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("an event with data: {e}"));
            serde_json::from_str(data).unwrap()
        })
        .collect();
    assert!(events.iter().all(|e| e["job_id"] == id));
    // Each event has an increasing id.
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "{text}");
    (events, text)
}

fn states(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_every_state_of_the_job_and_end() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let id = create(
        &w,
        &key,
        json!({"op": "sleep", "args": {"ms": 1500}, "delay_secs": 1.5}),
    )
    .await;
    let (events, text) = events_of(&w, &key, &id).await;
    // Delayed for 1.5 s, waiting as long as the pickup takes, running for 1.5 s, then done.
    assert_eq!(
        states(&events),
        ["delayed", "waiting", "running", "done"],
        "{text}"
    );
    let running = &events[2];
    assert_eq!(running["attempts"], 1, "{text}");
    assert!(running["worker"].is_string(), "{text}");
    assert!(running["result"].is_null(), "{text}");
    assert_eq!(events[3]["result"]["slept_ms"], 1500, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_every_change_of_a_job_that_runs_in_an_instant() {
    // An echo job runs in well under a millisecond once picked up: a stream that looked at
    // the job from time to time would see it delayed, then done.
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    for n in 0..3 {
        let id = create(
            &w,
            &key,
            json!({"op": "echo", "args": {"n": n}, "delay_secs": 1}),
        )
        .await;
        let (events, text) = events_of(&w, &key, &id).await;
        assert_eq!(
            states(&events),
            ["delayed", "waiting", "running", "done"],
            "{text}"
        );
        let done = &events[3];
        assert_eq!(done["result"]["n"], n, "{text}");
        assert_eq!(events[2]["worker"], done["worker"], "{text}");
        assert!(done["finished_at"].is_string(), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_takes_waiting_and_delayed_jobs_and_refuses_a_running_one() {
    let w = world().await;
    let key = w.key("acme", Role::Operator).await;
    let waiting = create(&w, &key, json!({"op": "echo", "queue": "parked"})).await;
    let delayed = create(&w, &key, json!({"op": "echo", "delay_secs": 600})).await;
    let running = create(&w, &key, json!({"op": "sleep", "args": {"ms": 3000}})).await;
    eventually("the sleep job runs", Duration::from_secs(20), async || {
        let a = w.get(&key, &format!("/v1/jobs/{running}")).await;
        (a.body["status"] == "running").then_some(()).ok_or(a.text)
    })
    .await;

    for id in [&waiting, &delayed] {
        let a = w.delete(&key, &format!("/v1/jobs/{id}")).await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["status"], "cancelled", "{}", a.text);
        // A second cancel: it is over already.
        w.delete(&key, &format!("/v1/jobs/{id}"))
            .await
            .problem(409, "conflict");
    }
    let a = w.delete(&key, &format!("/v1/jobs/{running}")).await;
    assert!(
        a.problem(409, "conflict")["detail"]
            .as_str()
            .unwrap()
            .contains("running")
    );
    // The running one ends normally; the cancelled ones never ran.
    let done = w.get(&key, &format!("/v1/jobs/{running}?wait=30")).await;
    assert_eq!(done.body["status"], "done", "{}", done.text);
    for id in [&waiting, &delayed] {
        let a = w.get(&key, &format!("/v1/jobs/{id}")).await;
        assert_eq!(a.body["status"], "cancelled");
        assert_eq!(a.body["attempts"], 0, "{}", a.text);
        assert!(a.body["started_at"].is_null(), "{}", a.text);
    }
    let stats = w.get(&key, "/v1/queues").await;
    for q in stats.body["queues"].as_array().unwrap() {
        assert_eq!(
            (q["waiting"].as_u64(), q["delayed"].as_u64()),
            (Some(0), Some(0)),
            "{q}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_is_retried_by_an_operator() {
    let w = world().await;
    let key = w.key("acme", Role::Operator).await;
    let id = create(
        &w,
        &key,
        json!({"op": "sleep", "args": {"ms": 1000}, "timeout_secs": 0.1, "max_attempts": 1}),
    )
    .await;
    let dead = w.get(&key, &format!("/v1/jobs/{id}?wait=30")).await;
    assert_eq!(dead.body["status"], "dead", "{}", dead.text);
    assert_eq!(dead.body["error"]["kind"], "timeout", "{}", dead.text);
    let a = w
        .post(&key, &format!("/v1/jobs/{id}/retry"), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(["waiting", "running", "dead"].contains(&a.body["status"].as_str().unwrap()));
    eventually(
        "the retried job runs again and dies again",
        Duration::from_secs(30),
        async || {
            let a = w.get(&key, &format!("/v1/jobs/{id}")).await;
            (a.body["status"] == "dead"
                && a.body["attempts"] == 1
                && a.body["started_at"] != dead.body["started_at"])
                .then_some(())
                .ok_or(a.text)
        },
    )
    .await;
    // Retrying a job that is not dead is a conflict.
    let ok = create(&w, &key, json!({"op": "echo"})).await;
    w.get(&key, &format!("/v1/jobs/{ok}?wait=30")).await;
    w.post(&key, &format!("/v1/jobs/{ok}/retry"), &json!({}))
        .await
        .problem(409, "conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_of_a_thousand_is_enqueued_in_order_and_every_job_runs_once() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let jobs: Vec<Value> = (0..1000)
        .map(|i| json!({"op": "echo", "args": {"i": i}}))
        .collect();
    let a = w.post(&key, "/v1/jobs", &Value::Array(jobs)).await;
    assert_eq!(a.status, 201, "{}", &a.text[..a.text.len().min(500)]);
    let ids: Vec<String> = a.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["created"], true);
            j["job_id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1000);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
    for (i, id) in ids.iter().enumerate().step_by(97) {
        let r = w.get(&key, &format!("/v1/jobs/{id}?wait=60")).await;
        assert_eq!(r.body["status"], "done", "{}", r.text);
        assert_eq!(
            r.body["result"],
            json!({"i": i}),
            "job {i} is the {i}th sent"
        );
    }
    // Every one done exactly once (one attempt each).
    eventually(
        "all thousand are done",
        Duration::from_secs(60),
        async || {
            let stats = w.get(&key, "/v1/queues").await;
            let jobs = stats.body["queues"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["queue"] == "jobs")
                .cloned()
                .ok_or(stats.text.clone())?;
            (jobs["done"] == 1000).then_some(()).ok_or(stats.text)
        },
    )
    .await;
    for id in ids.iter().step_by(50) {
        let r = w.get(&key, &format!("/v1/jobs/{id}")).await;
        assert_eq!(r.body["attempts"], 1, "{}", r.text);
    }
    // The same bulk under one idempotency key twice: the same thousand jobs.
    let small: Vec<Value> = (0..5)
        .map(|i| json!({"op": "echo", "args": {"j": i}}))
        .collect();
    let post = || {
        w.http
            .post(w.gw.url("/v1/jobs"))
            .bearer_auth(&key)
            .header("idempotency-key", "bulk-1")
            .json(&Value::Array(small.clone()))
    };
    let first = w.send(post()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = w.send(post()).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(first.body["jobs"].as_array().unwrap().len(), 5);
    let ids = |a: &crate::support::Answer| -> Vec<Value> {
        a.body["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job_id"].clone())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_filters_and_pages_with_next_links_newest_first() {
    let w = world().await;
    let key = w.key("acme", Role::Viewer).await;
    let producer = w.key("acme", Role::Producer).await;
    let other = w.key("other", Role::Producer).await;
    let mut mine = Vec::new();
    for i in 0..7 {
        let op = if i % 2 == 0 { "echo" } else { "sleep" };
        let args = if op == "echo" {
            json!({"i": i})
        } else {
            json!({"ms": 1})
        };
        mine.push(create(&w, &producer, json!({"op": op, "args": args})).await);
    }
    let theirs = create(&w, &other, json!({"op": "echo"})).await;
    for id in mine.iter().chain([&theirs]) {
        w.get(&producer, &format!("/v1/jobs/{id}?wait=30")).await;
    }
    // The rows are written in the background: wait until all of ours are there.
    eventually(
        "the history has our 7 jobs",
        Duration::from_secs(20),
        async || {
            let a = w.get(&key, "/v1/jobs?limit=100").await;
            let n = a.body["jobs"].as_array().map(Vec::len);
            (n == Some(7)).then_some(()).ok_or(a.text)
        },
    )
    .await;
    // Walk pages of 3, following `next`.
    let mut seen = Vec::new();
    let mut path = "/v1/jobs?limit=3".to_string();
    let mut pages = 0;
    loop {
        let a = w.get(&key, &path).await;
        assert_eq!(a.status, 200, "{}", a.text);
        pages += 1;
        for j in a.body["jobs"].as_array().unwrap() {
            assert_eq!(
                j["org_id"], "acme",
                "another organization's job listed: {j}"
            );
            seen.push(j["job_id"].as_str().unwrap().to_string());
        }
        match a.body["next"].as_str() {
            Some(next) => {
                assert_eq!(
                    a.header("link"),
                    Some(format!("<{next}>; rel=\"next\"").as_str())
                );
                path = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every job once, newest first");
    // Filters.
    let a = w.get(&key, "/v1/jobs?op=sleep").await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 3, "{}", a.text);
    let a = w.get(&key, "/v1/jobs?status=done&op=echo").await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 4, "{}", a.text);
    let a = w.get(&key, "/v1/jobs?since=2999-01-01T00:00:00Z").await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 0, "{}", a.text);
    // An admin sees both organizations, or one.
    let admin = w.key("root", Role::Admin).await;
    let a = w.get(&admin, "/v1/jobs?limit=100").await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 8, "{}", a.text);
    let a = w.get(&admin, "/v1/jobs?org=other").await;
    assert_eq!(a.body["jobs"].as_array().unwrap().len(), 1, "{}", a.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_the_gateway_writes_every_row_it_holds_before_it_exits() {
    let mut w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let jobs: Vec<Value> = (0..200)
        .map(|i| json!({"op": "echo", "args": {"i": i}, "queue": "parked"}))
        .collect();
    let a = w.post(&key, "/v1/jobs", &Value::Array(jobs)).await;
    assert_eq!(a.status, 201, "{}", &a.text[..a.text.len().min(300)]);
    let ids: HashSet<String> = a.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap().to_string())
        .collect();
    // At once: the rows may still be in the writer.
    w.gw.stop();
    let log = w.gw.log_text();
    assert!(log.contains("record writer stopped"), "{log}");
    let rows = w
        .fleet
        .store()
        .jobs(&gitfleet_client::store::JobFilter {
            queue: Some("parked".into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let written: HashSet<String> = rows.into_iter().map(|r| r.job_id).collect();
    assert_eq!(
        written, ids,
        "every job enqueued has its row once the gateway is gone"
    );
}
