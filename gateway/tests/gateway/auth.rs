//! Who may do what: no key, a bad, revoked or expired key, roles, and the organization
//! boundary (another organization's job is answered as for no job at all).

use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::eventually;
use serde_json::json;

use crate::support::world;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_good_key_are_401_and_health_needs_none() {
    let w = world().await;
    let none = w.send(w.http.get(w.gw.url("/v1/queues"))).await;
    none.problem(401, "auth");
    assert_eq!(
        none.header("www-authenticate"),
        Some("Bearer realm=\"gitfleet\"")
    );
    for bad in [
        "nonsense",
        "gfk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Basic dXNlcjpwYXNz",
    ] {
        w.get(bad, "/v1/queues").await.problem(401, "auth");
    }
    // One character of a real key's secret changed.
    let key = w.key("acme", Role::Viewer).await;
    let mut tampered = key.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    w.get(&tampered, "/v1/queues").await.problem(401, "auth");
    assert_eq!(w.get(&key, "/v1/queues").await.status, 200);

    let health = w.send(w.http.get(w.gw.url("/healthz"))).await;
    assert_eq!((health.status, &health.body["status"]), (200, &json!("ok")));
    let ready = w.send(w.http.get(w.gw.url("/readyz"))).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(
        ready.body["checks"],
        json!({"redis": "ok", "postgres": "ok"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_expired_key_stops_working() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    assert_eq!(w.get(&key, "/v1/queues").await.status, 200);
    let (id, _) = gitfleet_client::store::parse_token(&key).expect("a token");
    assert!(w.fleet.store().revoke_key(id).await.unwrap());
    // Replicas trust a checked key for GITFLEET_GATEWAY_KEY_CACHE_SECS (0.2 s here).
    eventually(
        "the revoked key is refused",
        Duration::from_secs(10),
        async || match w.get(&key, "/v1/queues").await.status {
            401 => Ok(()),
            s => Err(format!("answered {s}")),
        },
    )
    .await;
    w.get(&key, "/v1/queues").await.problem(401, "auth");

    let expiring = w.key("acme", Role::Producer).await;
    assert_eq!(w.get(&expiring, "/v1/queues").await.status, 200);
    let (id, _) = gitfleet_client::store::parse_token(&expiring).unwrap();
    sqlx_expire(&w, id).await;
    eventually(
        "the expired key is refused",
        Duration::from_secs(10),
        async || match w.get(&expiring, "/v1/queues").await.status {
            401 => Ok(()),
            s => Err(format!("answered {s}")),
        },
    )
    .await;
}

/// Moves key `id`'s expiry into the past, as time would.
async fn sqlx_expire(w: &crate::support::World, id: &str) {
    let mut conn = w.fleet.store().connect_dedicated().await.unwrap();
    use sqlx::Connection as _;
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_what_it_may_and_no_more() {
    let w = world().await;
    let viewer = w.key("acme", Role::Viewer).await;
    let producer = w.key("acme", Role::Producer).await;
    let operator = w.key("acme", Role::Operator).await;
    let echo = json!({"op": "echo", "args": {"n": 1}});

    w.post(&viewer, "/v1/jobs", &echo)
        .await
        .problem(403, "auth");
    let job = w.post(&producer, "/v1/jobs", &echo).await;
    assert_eq!(job.status, 201, "{}", job.text);
    let id = job.body["job_id"].as_str().unwrap();
    // A viewer reads.
    assert_eq!(w.get(&viewer, &format!("/v1/jobs/{id}")).await.status, 200);
    // Retry and cancel are an operator's.
    w.post(&producer, &format!("/v1/jobs/{id}/retry"), &json!({}))
        .await
        .problem(403, "auth");
    w.delete(&producer, &format!("/v1/jobs/{id}"))
        .await
        .problem(403, "auth");
    w.delete(&viewer, "/v1/sandboxes/nope")
        .await
        .problem(403, "auth");
    // Keys are an admin's.
    w.get(&operator, "/v1/keys").await.problem(403, "auth");
    w.post(
        &operator,
        "/v1/keys",
        &json!({"org": "acme", "role": "admin"}),
    )
    .await
    .problem(403, "auth");
    // The fleet's internal op is nobody's.
    let maintain = json!({"op": "maintain", "args": {"task": "evict"}});
    let admin = w.key("acme", Role::Admin).await;
    for key in [&producer, &admin] {
        let p = w.post(key, "/v1/jobs", &maintain).await;
        let body = p.problem(400, "invalid_input");
        assert_eq!(body["field"], "op", "{}", p.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_job_is_answered_as_for_no_job() {
    let w = world().await;
    let mine = w.key("acme", Role::Operator).await;
    let theirs = w.key("evil", Role::Operator).await;
    let admin = w.key("root", Role::Admin).await;
    // A job that stays waiting (a queue no worker serves), so cancel would work.
    let job = w
        .post(
            &mine,
            "/v1/jobs",
            &json!({"op": "echo", "args": {}, "queue": "parked"}),
        )
        .await;
    assert_eq!(job.status, 201, "{}", job.text);
    assert_eq!(job.body["org"], "acme");
    let id = job.body["job_id"].as_str().unwrap().to_string();
    let missing = "01ARZ3NDEKTSV4RRFFQ69G5FAV";

    for path in [format!("/v1/jobs/{id}"), format!("/v1/jobs/{id}?wait=1")] {
        let a = w.get(&theirs, &path).await;
        a.problem(404, "not_found");
        let b = w.get(&theirs, &path.replace(&id, missing)).await;
        b.problem(404, "not_found");
        // Word for word the same, but for the id.
        assert_eq!(
            a.body["detail"].as_str().unwrap().replace(&id, "ID"),
            b.body["detail"].as_str().unwrap().replace(missing, "ID")
        );
    }
    w.get(&theirs, &format!("/v1/jobs/{id}/events"))
        .await
        .problem(404, "not_found");
    w.post(&theirs, &format!("/v1/jobs/{id}/retry"), &json!({}))
        .await
        .problem(404, "not_found");
    w.delete(&theirs, &format!("/v1/jobs/{id}"))
        .await
        .problem(404, "not_found");
    // Nothing they did touched it.
    let still = w.get(&mine, &format!("/v1/jobs/{id}")).await;
    assert_eq!(still.body["status"], "waiting", "{}", still.text);
    // Their usage view of us: as for no organization; and they cannot list ours.
    w.get(&theirs, "/v1/orgs/acme/usage")
        .await
        .problem(404, "not_found");
    w.get(&theirs, "/v1/jobs?org=acme")
        .await
        .problem(403, "auth");
    // An admin sees it.
    assert_eq!(w.get(&admin, &format!("/v1/jobs/{id}")).await.status, 200);
    // And the owner may cancel it.
    let cancelled = w.delete(&mine, &format!("/v1/jobs/{id}")).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_others_are_served() {
    let w = crate::support::world_with(&[
        ("GITFLEET_GATEWAY_RATE_PER_SEC", "1"),
        ("GITFLEET_GATEWAY_RATE_BURST", "3"),
    ])
    .await;
    let busy = w.key("acme", Role::Viewer).await;
    let calm = w.key("acme", Role::Viewer).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(w.get(&busy, "/v1/queues").await);
    }
    let limited: Vec<_> = statuses.iter().filter(|a| a.status == 429).collect();
    assert!(
        limited.len() >= 2,
        "6 requests at once on a burst of 3: {:?}",
        statuses.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    let p = limited[0];
    p.problem(429, "rate_limited");
    let retry: u64 = p.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(w.get(&calm, "/v1/queues").await.status, 200);
}
