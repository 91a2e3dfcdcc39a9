//! Bad input: every kind is a 4xx problem document naming what is wrong, and the gateway
//! keeps serving.

use gitfleet_contract::Role;
use serde_json::json;

use crate::support::world_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_problem_documents_that_name_the_field() {
    let w = world_with(&[("GITFLEET_GATEWAY_MAX_BODY_BYTES", "20000")]).await;
    let key = w.key("acme", Role::Producer).await;
    let post_raw = |body: &'static str| {
        w.http
            .post(w.gw.url("/v1/jobs"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
    };

    // Not JSON.
    let a = w.send(post_raw("{\"op\": ")).await;
    assert!(
        a.problem(400, "invalid_input")["detail"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // (body, the field the problem must name)
    let cases = [
        (json!({"op": "frobnicate", "args": {}}), "op"),
        (json!({"args": {}}), ""),
        (json!({"op": 7, "args": {}}), "op"),
        (json!({"op": "echo", "args": [1]}), "args"),
        (json!({"op": "echo", "delay_secs": "soon"}), "delay_secs"),
        (json!({"op": "echo", "delay_secs": -1}), "delay_secs"),
        (json!({"op": "echo", "max_attempts": 0}), "max_attempts"),
        (json!({"op": "echo", "timeout_secs": 1e9}), "timeout_secs"),
        (json!({"op": "echo", "colour": "red"}), ""),
        (
            json!({"op": "clone", "args": {"repo_url": "ftp://x/y"}}),
            "args.repo_url",
        ),
        (
            json!({"op": "clone", "args": {"repo_url": "https://h/r.git", "branch": "a..b"}}),
            "args.branch",
        ),
        (json!({"op": "status", "args": {}}), "args.sandbox_id"),
        (json!({"op": "echo", "queue": "bad queue!"}), "queue"),
        (json!([{"op": "echo"}, {"op": "nope"}]), "[1].op"),
        (json!([]), ""),
    ];
    for (body, field) in cases {
        let a = w.post(&key, "/v1/jobs", &body).await;
        let p = a.problem(400, "invalid_input");
        if field.is_empty() {
            continue;
        }
        assert_eq!(p["field"], field, "{body}: {}", a.text);
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .contains(field.trim_start_matches("[1].")),
            "{body}: the detail names the field: {}",
            a.text
        );
    }
    // Unknown fields are named in the detail.
    let a = w
        .post(&key, "/v1/jobs", &json!({"op": "echo", "colour": "red"}))
        .await;
    assert!(a.text.contains("colour"), "{}", a.text);

    // Over the body limit: 413.
    let big = json!({"op": "echo", "args": {"pad": "x".repeat(30_000)}});
    w.post(&key, "/v1/jobs", &big)
        .await
        .problem(413, "payload_too_large");

    // Bad parameters, ids and routes.
    let p = w.get(&key, "/v1/jobs/not-an-id").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "id");
    let p = w
        .get(&key, "/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=61")
        .await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "wait");
    let p = w
        .get(&key, "/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV?wait=abc")
        .await;
    assert_eq!(
        p.problem(400, "invalid_input")["field"],
        "wait",
        "{}",
        p.text
    );
    let p = w.get(&key, "/v1/jobs?status=sleeping").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "status");
    let p = w.get(&key, "/v1/jobs?cursor=%%%").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "cursor");
    let p = w.get(&key, "/v1/jobs?limit=0").await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "limit");
    let p = w.get(&key, "/v1/orgs/..bad/usage").await;
    p.problem(400, "invalid_input");
    let p = w
        .send(w.http.put(w.gw.url("/v1/jobs")).bearer_auth(&key))
        .await;
    p.problem(405, "method_not_allowed");
    w.get(&key, "/v2/anything").await.problem(404, "not_found");
    let p = w
        .send(
            w.http
                .post(w.gw.url("/v1/jobs"))
                .bearer_auth(&key)
                .header("idempotency-key", "")
                .json(&json!({"op": "echo"})),
        )
        .await;
    assert_eq!(p.problem(400, "invalid_input")["field"], "Idempotency-Key");

    // And it still serves.
    assert_eq!(
        w.run_ok(&key, json!({"op": "echo", "args": {"ok": 1}}))
            .await,
        json!({"ok": 1})
    );
    let log = w.gw.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

/// Parameters no handler can read (a path segment that is not UTF-8), no store can hold (a
/// NUL, which Postgres text refuses) or that name no possible organization are bad input:
/// `400` naming the parameter, as a problem document, never a `503` from the store, axum's
/// plain-text rejection, or an empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_unstorable_parameters_are_400s_naming_them() {
    let w = crate::support::world().await;
    let admin = w.key("acme", Role::Admin).await;
    let cases = [
        (w.http.get(w.gw.url("/v1/jobs?agent=a%00b")), "agent"),
        (w.http.get(w.gw.url("/v1/jobs?op=%00")), "op"),
        (w.http.get(w.gw.url("/v1/sandboxes?repo=%00")), "repo"),
        (w.http.delete(w.gw.url("/v1/keys/0123%00")), "id"),
        (w.http.get(w.gw.url("/v1/jobs/%FF%FE")), "id"),
        (w.http.delete(w.gw.url("/v1/sandboxes/%C3%28")), "id"),
        (w.http.get(w.gw.url("/v1/jobs?org=a:b")), "org"),
        (w.http.get(w.gw.url("/v1/sandboxes?org=-x")), "org"),
    ];
    for (req, field) in cases {
        let a = w.send(req.bearer_auth(&admin)).await;
        assert_eq!(
            a.problem(400, "invalid_input")["field"],
            field,
            "{}",
            a.text
        );
    }
    // The key that was not revoked still works.
    assert_eq!(w.get(&admin, "/v1/keys").await.status, 200);
}
