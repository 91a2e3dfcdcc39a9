//! `/mcp` on the gateway binary: the API key is the door (none `401`, a viewer `403`), the
//! key's organization is the tools' identity, and the tool list fits its budget.

use gitfleet_contract::Role;
use serde_json::{Value, json};

use crate::support::{World, world};

/// One JSON-RPC call to `/mcp` with `key`; the HTTP status and the JSON-RPC answer (from a
/// JSON body or an event stream's `data:`).
async fn rpc(w: &World, key: Option<&str>, method: &str, params: Value) -> (u16, Value, usize) {
    let mut req = w
        .http
        .post(w.gw.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .rfind(|d| d.contains("\"result\"") || d.contains("\"error\""))
        .map(str::to_string)
        .unwrap_or(text);
    let len = body.len();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::Null),
        len,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_through_the_gateway_takes_a_producer_key_and_acts_for_its_organization() {
    let w = world().await;
    let (status, _, _) = rpc(&w, None, "tools/list", json!({})).await;
    assert_eq!(status, 401);
    let viewer = w.key("acme", Role::Viewer).await;
    let (status, _, _) = rpc(&w, Some(&viewer), "tools/list", json!({})).await;
    assert_eq!(status, 403);

    let key = w.key("acme", Role::Producer).await;
    let (status, list, bytes) = rpc(&w, Some(&key), "tools/list", json!({})).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["result"]["tools"].as_array().unwrap().len(),
        8,
        "{list}"
    );
    assert!(bytes <= 3_000, "tools/list is {bytes} bytes");

    // A tool call enqueues a job for the key's organization (a sandbox that is not there:
    // a tool error, not an HTTP one).
    let (status, call, _) = rpc(
        &w,
        Some(&key),
        "tools/call",
        json!({"name": "git_status", "arguments": {"sandbox_id": "gateway-01ARZ3NDEKTSV4RRFFQ69G5FAV.01ARZ3NDEKTSV4RRFFQ69G5FAV"}}),
    )
    .await;
    assert_eq!(status, 200, "{call}");
    assert_eq!(call["result"]["isError"], true, "{call}");
    let text = call["result"]["content"][0]["text"].as_str().unwrap();
    let error: Value = serde_json::from_str(text).unwrap();
    assert_eq!(error["kind"], "sandbox_not_found", "{call}");
    let admin = w.key("root", Role::Admin).await;
    let jobs = w.get(&admin, "/v1/jobs?op=status").await;
    let rows = jobs.body["jobs"].as_array().cloned().unwrap_or_default();
    assert!(rows.iter().all(|r| r["org_id"] == "acme"), "{}", jobs.text);
}

/// A request the MCP transport cannot take (no `Accept` for both JSON and an event stream,
/// a body that is not JSON, a method it does not serve) is answered, like every bad request
/// to the gateway, with a problem document saying what is wrong, not the transport's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_mcp_transport_refuses_are_problem_documents() {
    let w = world().await;
    let key = w.key("acme", Role::Producer).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    let cases = [
        (
            "no Accept",
            w.http.post(w.gw.url("/mcp")).json(&call),
            406,
            "invalid_input",
        ),
        (
            "a body that is not JSON",
            w.http
                .post(w.gw.url("/mcp"))
                .header("Accept", "application/json, text/event-stream")
                .header("Content-Type", "text/plain")
                .body("tools/list"),
            415,
            "invalid_input",
        ),
    ];
    for (what, req, status, kind) in cases {
        let a = w.send(req.bearer_auth(&key)).await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert_eq!(
            a.header("content-type"),
            Some("application/problem+json"),
            "{what}: {}",
            a.text
        );
        let p = a.problem(status, kind);
        let detail = p["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("/mcp: ") && detail.len() > 6,
            "{what}: {p}"
        );
    }
    // And the gateway keeps serving.
    let (status, list, _) = rpc(&w, Some(&key), "tools/list", json!({})).await;
    assert_eq!(status, 200, "{list}");
}
