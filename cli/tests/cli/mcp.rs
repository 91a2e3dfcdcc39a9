//! `gitfleet mcp`: the git tools over MCP on standard input and output, spoken to as an
//! agent's client speaks (JSON-RPC, one message a line) by the test itself.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

use super::Env;

/// The longest a reply may take before the test gives up on the server.
const PATIENCE: Duration = Duration::from_secs(30);

fn gitfleet_mcp(env: &Env) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    cmd.arg("mcp")
        .env(
            "GITFLEET_REDIS_URL",
            &env.fleet.test_queue().config().redis_url,
        )
        .env("GITFLEET_KEY_PREFIX", env.fleet.prefix())
        .env("GITFLEET_DATABASE_URL", &env.database_url)
        .env_remove("GITFLEET_ORG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn send(stdin: &mut ChildStdin, message: Value) {
    stdin
        .write_all(format!("{message}\n").as_bytes())
        .await
        .unwrap();
    stdin.flush().await.unwrap();
}

/// The server's answer to request `id` (notifications before it are skipped).
async fn answer(stdout: &mut Lines<BufReader<ChildStdout>>, id: u64) -> Value {
    loop {
        let line = tokio::time::timeout(PATIENCE, stdout.next_line())
            .await
            .expect("the server answers")
            .unwrap()
            .expect("the server's output is open");
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("only JSON-RPC on stdout ({e}): {line}"));
        if message["id"] == id {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_stdio_lists_the_tools_and_answers_a_missing_sandbox_with_a_tool_error() {
    let env = Env::new().await;
    let mut child = gitfleet_mcp(&env).args(["--org", "acme"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "cli-test", "version": "1"},
        }}),
    )
    .await;
    let init = answer(&mut stdout, 1).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "gitfleet", "{init}");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;

    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let list = answer(&mut stdout, 2).await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "git_clone",
            "git_status",
            "git_diff",
            "git_write_files",
            "git_pull",
            "git_push",
            "git_release",
            "git_change"
        ]
    );
    assert!(list.to_string().len() <= 3_000, "{list}");

    // A sandbox of a worker that is not running: the queue answers at once.
    send(
        &mut stdin,
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "git_status",
            "arguments": {"sandbox_id": "gone.01ARZ3NDEKTSV4RRFFQ69G5FAV"},
        }}),
    )
    .await;
    let call = answer(&mut stdout, 3).await;
    assert_eq!(call["result"]["isError"], true, "{call}");
    let text = call["result"]["content"][0]["text"].as_str().unwrap();
    let error: Value = serde_json::from_str(text).unwrap();
    assert_eq!(error["kind"], "sandbox_not_found", "{error}");

    // One job went in, for the organization the server acts for.
    let pattern = format!("{}job:*", env.fleet.prefix());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut env.fleet.test_queue().redis().await)
        .await
        .unwrap();
    let ids: Vec<&str> = keys
        .iter()
        .filter_map(|k| k.strip_prefix(&pattern[..pattern.len() - 1]))
        .filter(|id| id.len() == 26)
        .collect();
    assert_eq!(ids.len(), 1, "{keys:?}");
    let job = env.fleet.client().job(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (job.op.as_str(), job.org.as_deref()),
        ("status", Some("acme"))
    );

    child.kill().await.unwrap();
}

#[tokio::test]
async fn mcp_without_an_organization_exits_2_saying_so_on_stderr_and_nothing_on_stdout() {
    let env = Env::new().await;
    let out = gitfleet_mcp(&env).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(error["error"]["kind"], "invalid_input");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("--org / GITFLEET_ORG: "),
        "{error}"
    );
}
