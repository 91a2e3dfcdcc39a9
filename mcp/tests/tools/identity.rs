//! Who a call acts for: the organization the gateway authenticated, and no one else's
//! sandboxes; no identity, no call.

use gitfleet_testkit::{Fleet, GitDaemon, fixtures};
use serde_json::json;

use crate::support::Mcp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organizations_sandbox_is_answered_as_one_that_does_not_exist() {
    let mcp = Mcp::start(1).await;
    fixtures::bare_repo(&mcp.fleet.remotes(), "repo.git", &[("a.txt", "a\n")]);
    let daemon = GitDaemon::start(&mcp.fleet.remotes()).unwrap();
    let acme = mcp.agent(Some("acme")).await;
    let other = mcp.agent(Some("other")).await;
    let clone = acme
        .ok(
            "git_clone",
            json!({"repo_url": daemon.url("repo.git"), "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    let sandbox = clone["sandbox_id"].as_str().unwrap();
    let worker = &mcp.fleet.worker_ids()[0];
    let missing = format!("{worker}.01ARZ3NDEKTSV4RRFFQ69G5FAV");

    let (kind, theirs) = other
        .err("git_status", json!({"sandbox_id": sandbox}))
        .await;
    assert_eq!(kind, "sandbox_not_found");
    let (kind, none) = other
        .err("git_status", json!({"sandbox_id": missing}))
        .await;
    assert_eq!(kind, "sandbox_not_found");
    assert_eq!(
        theirs.replace(sandbox, "<id>"),
        none.replace(&missing, "<id>")
    );
    // Nor can it write there; the owner still can.
    let (kind, _) = other
        .err(
            "git_write_files",
            json!({"sandbox_id": sandbox, "files": [{"path": "x", "content": "x"}]}),
        )
        .await;
    assert_eq!(kind, "sandbox_not_found");
    let status = acme.ok("git_status", json!({"sandbox_id": sandbox})).await;
    assert_eq!(status["untracked"], json!([]));

    acme.client.cancel().await.unwrap();
    other.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_an_authenticated_organization_is_refused_auth_and_enqueues_nothing() {
    let mcp = Mcp::start(0).await;
    let anonymous = mcp.agent(None).await;
    // Listing is harmless; calling is not.
    assert_eq!(anonymous.client.list_all_tools().await.unwrap().len(), 8);
    let (kind, message) = anonymous
        .err(
            "git_status",
            json!({"sandbox_id": "w1.01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(kind, "auth");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let stats = mcp.fleet.client().queues().await.unwrap();
    assert!(stats.is_empty(), "nothing was enqueued: {stats:?}");
    anonymous.client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_over_its_budget_gets_budget_exceeded_and_may_still_release() {
    let fleet = Fleet::builder("mcp").store().start().await;
    let client = fleet.client().clone().with_store(fleet.store().clone());
    fleet.store().set_budget("broke", Some(0.0)).await.unwrap();
    let mcp = Mcp::serve(fleet, client).await;
    let agent = mcp.agent(Some("broke")).await;

    let (kind, message) = agent
        .err(
            "git_clone",
            json!({"repo_url": "https://example.com/r.git", "agent_id": "a", "task_id": "t"}),
        )
        .await;
    assert_eq!(kind, "budget_exceeded");
    assert!(message.contains("broke"), "{message}");
    // Release ends the spending: never refused for a budget (it reaches the queue, which
    // answers for a worker that is not running).
    let (kind, _) = agent
        .err(
            "git_release",
            json!({"sandbox_id": "gone.01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
        )
        .await;
    assert_eq!(kind, "sandbox_not_found");
    agent.client.cancel().await.unwrap();
}
