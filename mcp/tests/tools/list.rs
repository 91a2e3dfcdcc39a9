//! `tools/list`: the eight tools within 3,000 bytes on the wire, each schema the contract's.

use gitfleet_contract::ops::OpName;
use serde_json::{Value, json};

use crate::support::Mcp;

const TOOLS: [(&str, OpName); 8] = [
    ("git_clone", OpName::Clone),
    ("git_status", OpName::Status),
    ("git_diff", OpName::Diff),
    ("git_write_files", OpName::WriteFiles),
    ("git_pull", OpName::Pull),
    ("git_push", OpName::Push),
    ("git_release", OpName::Release),
    ("git_change", OpName::Change),
];

/// The body of the answer to one JSON-RPC `tools/list` POST, as the wire carries it (a JSON
/// body, or the `data:` of an event stream).
async fn tools_list_on_the_wire(url: &str, version: &str, params: Value) -> String {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth("acme")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", version)
        .header("Mcp-Method", "tools/list")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": params}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{response:?}");
    let body = response.text().await.unwrap();
    match body.lines().find_map(|l| l.strip_prefix("data:")) {
        Some(data) => data.trim().to_string(),
        None => body,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_tool_list_is_within_3000_bytes_and_every_schema_requires_the_contracts_fields() {
    let mcp = Mcp::start(0).await;

    // As the wire carries it, to a client of the 2025 protocol and of the 2026 one (which
    // adds caching hints).
    let legacy = tools_list_on_the_wire(&mcp.url, "2025-06-18", json!({})).await;
    let current = tools_list_on_the_wire(
        &mcp.url,
        "2026-07-28",
        json!({"_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }}),
    )
    .await;
    for (version, body) in [("2025-06-18", &legacy), ("2026-07-28", &current)] {
        println!(
            "tools/list answer ({version}): {} bytes of JSON",
            body.len()
        );
        let answer: Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            answer["result"]["tools"].as_array().unwrap().len(),
            8,
            "{body}"
        );
        assert!(
            body.len() <= 3_000,
            "{version}: {} bytes: {body}",
            body.len()
        );
    }

    // Through an MCP client: every tool, with the contract's required fields.
    let agent = mcp.agent(Some("acme")).await;
    let tools = agent.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOLS.map(|(name, _)| name));
    for (tool, (_, op)) in tools.iter().zip(TOOLS) {
        let schema = Value::Object(tool.input_schema.as_ref().clone());
        let contract = Value::from(op.args_schema());
        assert_eq!(schema["type"], "object", "{}", tool.name);
        assert_eq!(schema["required"], contract["required"], "{}", tool.name);
        for (name, prop) in schema["properties"].as_object().unwrap() {
            assert!(
                contract["properties"].get(name).is_some(),
                "{}: {name} is not an arg of {op}",
                tool.name
            );
            assert!(
                prop.get("type").is_some() || prop.get("enum").is_some(),
                "{}: {name} has a type: {prop}",
                tool.name
            );
        }
        assert!(
            tool.description.as_deref().is_some_and(|d| !d.is_empty()),
            "{}",
            tool.name
        );
    }
    agent.client.cancel().await.unwrap();
}
