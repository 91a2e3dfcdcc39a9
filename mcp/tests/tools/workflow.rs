//! An agent's work through the tools: clone, write, look, push, release; a bad input; the
//! progress a slow call reports while it waits, and the answer of one that waits too long.

use std::time::Duration;

use gitfleet_mcp::{GitTools, McpIdentity};
use gitfleet_testkit::fixtures::{self, git};
use gitfleet_testkit::{Fleet, GitDaemon, HeldRemote, Hold};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use serde_json::json;

use crate::support::{Mcp, PATIENCE, text_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_clones_writes_pushes_and_releases_and_its_commit_lands_once() {
    let mcp = Mcp::start(1).await;
    let bare = fixtures::bare_repo(
        &mcp.fleet.remotes(),
        "repo.git",
        &[("README.md", "# repo\n"), ("src/lib.rs", "pub fn f() {}\n")],
    );
    let daemon = GitDaemon::start(&mcp.fleet.remotes()).unwrap();
    let agent = mcp.agent(Some("acme")).await;

    let clone = agent
        .ok(
            "git_clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    let sandbox = clone["sandbox_id"].as_str().unwrap().to_string();
    assert_eq!(clone["agent_branch"], "agent-a1-t1");
    let main = git(&bare, ["rev-parse", "main"]).unwrap();
    assert_eq!(clone["head_sha"], main.trim());

    // src/lib.rs grows past what one diff result carries.
    let long: String = (0..1_000)
        .map(|i| format!("pub fn f{i}() {{}}\n"))
        .collect();
    let written = agent
        .ok(
            "git_write_files",
            json!({"sandbox_id": sandbox, "files": [
                {"path": "README.md", "content": "# repo\nby an agent\n"},
                {"path": "src/lib.rs", "content": long},
                {"path": "src/new.rs", "content": "pub fn g() {}\n"},
            ]}),
        )
        .await;
    assert_eq!(written, json!({"written": 3, "deleted": 0}));

    let status = agent.ok("git_status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(status["branch"], "agent-a1-t1");
    assert_eq!(status["modified"], json!(["README.md", "src/lib.rs"]));
    assert_eq!(status["untracked"], json!(["src/new.rs"]));

    // The whole diff is cut, and says which paths to ask for; asked for, a path comes whole.
    let diff = agent.ok("git_diff", json!({"sandbox_id": sandbox})).await;
    assert_eq!(
        diff["truncated"],
        true,
        "{}",
        diff["diff"].as_str().unwrap().len()
    );
    assert!(diff["diff"].as_str().unwrap().chars().count() <= gitfleet_mcp::DIFF_CAP);
    assert!(
        diff["diff"].as_str().unwrap().contains("+by an agent"),
        "{diff}"
    );
    assert_eq!(diff["rest"], json!(["src/lib.rs"]));
    assert!(diff["hint"].as_str().unwrap().contains("paths"), "{diff}");
    assert_eq!(diff["files_changed"], 2);
    let readme = agent
        .ok(
            "git_diff",
            json!({"sandbox_id": sandbox, "paths": ["README.md"]}),
        )
        .await;
    assert_eq!(readme["truncated"], false, "{readme}");
    assert!(readme.get("rest").is_none(), "{readme}");
    assert!(
        readme["diff"].as_str().unwrap().contains("+by an agent"),
        "{readme}"
    );

    let push = agent
        .ok(
            "git_push",
            json!({"sandbox_id": sandbox, "message": "agent: a README line and g"}),
        )
        .await;
    assert_eq!(push["branch"], "agent-a1-t1");
    let tip = git(&bare, ["rev-parse", "refs/heads/agent-a1-t1"]).unwrap();
    assert_eq!(push["commit_sha"], tip.trim());
    let log = fixtures::remote_log(&bare, "agent-a1-t1");
    assert_eq!(
        log.iter()
            .filter(|s| *s == "agent: a README line and g")
            .count(),
        1,
        "{log:?}"
    );
    let files = git(&bare, ["ls-tree", "-r", "--name-only", "agent-a1-t1"]).unwrap();
    assert!(files.lines().any(|f| f == "src/new.rs"), "{files}");

    agent
        .ok("git_release", json!({"sandbox_id": sandbox}))
        .await;
    let (kind, _) = agent
        .err("git_status", json!({"sandbox_id": sandbox}))
        .await;
    assert_eq!(kind, "sandbox_not_found");
    agent.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_input_is_a_tool_error_naming_the_field_and_nothing_is_enqueued() {
    let mcp = Mcp::start(0).await;
    let agent = mcp.agent(Some("acme")).await;

    let (kind, message) = agent
        .err(
            "git_clone",
            json!({"repo_url": "ftp://x", "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    assert_eq!(kind, "invalid_input");
    assert!(message.starts_with("repo_url: "), "{message}");

    let (kind, message) = agent
        .err(
            "git_write_files",
            json!({"sandbox_id": "w1.01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(kind, "invalid_input");
    assert!(message.starts_with("files: "), "{message}");

    // The organization is the caller's identity, never an argument.
    let (kind, message) = agent
        .err(
            "git_status",
            json!({"sandbox_id": "w1.01ARZ3NDEKTSV4RRFFQ69G5FAV", "org_id": "other"}),
        )
        .await;
    assert_eq!(kind, "invalid_input");
    assert!(message.starts_with("args.org_id: "), "{message}");

    let stats = mcp.fleet.client().queues().await.unwrap();
    assert!(stats.is_empty(), "nothing was enqueued: {stats:?}");
    agent.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_held_at_the_remote_reports_progress_until_it_lands() {
    let mcp = Mcp::start(1).await;
    let remote = HeldRemote::new(Hold::BeforeRefUpdate);
    let mut agent = mcp.agent(Some("acme")).await;
    let clone = agent
        .ok(
            "git_clone",
            json!({"repo_url": remote.url(), "agent_id": "slow", "task_id": "t1"}),
        )
        .await;
    let sandbox = clone["sandbox_id"].as_str().unwrap().to_string();
    agent
        .ok(
            "git_write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "held.txt", "content": "x\n"}]}),
        )
        .await;
    while agent.notes.try_recv().is_ok() {}

    let push = {
        let args = json!({"sandbox_id": sandbox, "message": "held push"});
        let call = agent.client.call_tool(
            CallToolRequestParams::new("git_push")
                .with_arguments(args.as_object().unwrap().clone()),
        );
        tokio::pin!(call);
        // The push is held at the remote: the call waits, and says so while it does.
        let note = tokio::select! {
            result = &mut call => panic!("the push ended while held: {result:?}"),
            note = tokio::time::timeout(PATIENCE, agent.notes.recv()) => {
                note.expect("a progress notification while the push is held").unwrap()
            }
        };
        assert!(note.progress >= 1.0, "{note:?}");
        assert!(
            note.message
                .as_deref()
                .is_some_and(|m| m.starts_with("push ")),
            "{note:?}"
        );
        remote.wait_until_held(PATIENCE, || "not held".into()).await;
        remote.let_go().await;
        call.await.expect("the push call")
    };
    assert_eq!(push.is_error, Some(false), "{push:?}");
    let log = fixtures::remote_log(&remote.bare, "agent-slow-t1");
    assert_eq!(
        log.iter().filter(|s| *s == "held push").count(),
        1,
        "{log:?}"
    );
    agent.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_job_is_not_done_in_time_answers_timeout_and_the_job_goes_on() {
    // No worker: the clone waits in the shared queue. The server runs in process over a
    // pipe, as over stdio, with its identity fixed and a wait of a second.
    let fleet = Fleet::builder("mcp").start().await;
    let tools = GitTools::new(
        fleet.client().clone(),
        Some(McpIdentity { org: "acme".into() }),
    )
    .with_wait(Duration::from_secs(1));
    let (server_end, client_end) = tokio::io::duplex(64 << 10);
    let server = tokio::spawn(async move {
        tools
            .serve(server_end)
            .await
            .unwrap()
            .waiting()
            .await
            .unwrap();
    });
    let client = ().serve(client_end).await.unwrap();

    let result = client
        .call_tool(
            CallToolRequestParams::new("git_clone").with_arguments(
                json!({"repo_url": "https://example.com/r.git", "agent_id": "a", "task_id": "t"})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(result.is_error, Some(true), "{result:?}");
    let error = text_json(&result);
    assert_eq!(error["kind"], "timeout", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("still waiting after 1 s"), "{message}");

    let stats = fleet.client().queues().await.unwrap();
    let shared = stats
        .iter()
        .find(|q| q.queue == "jobs")
        .expect("the shared queue");
    assert_eq!(shared.waiting, 1, "the clone is still there: {stats:?}");
    client.cancel().await.unwrap();
    server.await.unwrap();
}
