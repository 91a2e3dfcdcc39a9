//! The sandbox registry and sandbox-hour metering, kept by a worker running real git ops.

use std::time::Duration;

use gitfleet_store::{SandboxRow, Store};
use gitfleet_testkit::GitDaemon;
use serde_json::json;

use crate::support::{git_fleet, sample_repo};

async fn sandbox(store: &Store, id: &str, status: &str) -> SandboxRow {
    sandbox_where(store, id, status, |_| true).await
}

async fn sandbox_where(
    store: &Store,
    id: &str,
    status: &str,
    more: impl Fn(&SandboxRow) -> bool,
) -> SandboxRow {
    for _ in 0..200 {
        let rows = store.sandboxes(100).await.unwrap();
        if let Some(row) = rows
            .into_iter()
            .find(|r| r.sandbox_id == id && r.status == status && more(r))
        {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "sandbox {id} never became {status}: {:?}",
        store.sandboxes(100).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_follows_each_sandbox_from_clone_to_release_and_meters_its_org() {
    let mut fleet = git_fleet().store().start().await;
    let store = fleet.store().clone();
    let worker = fleet.add_worker().await;
    sample_repo(&fleet.remotes(), "repo.git");
    let daemon = GitDaemon::start(&fleet.remotes()).unwrap();
    let url = daemon.url("repo.git");

    let c = fleet
        .ok_as(
            "acme",
            "clone",
            json!({"repo_url": url, "agent_id": "a1", "task_id": "t1"}),
        )
        .await;
    let id = c["sandbox_id"].as_str().unwrap().to_string();
    let row = sandbox(&store, &id, "ready").await;
    assert_eq!(row.worker_id, worker);
    assert_eq!(row.org_id.as_deref(), Some("acme"));
    assert_eq!(
        (row.agent_id.as_deref(), row.task_id.as_deref()),
        (Some("a1"), Some("t1"))
    );
    assert_eq!(row.repo_url, url);
    assert_eq!(
        (row.branch.as_str(), row.agent_branch.as_str()),
        ("main", "agent-a1-t1")
    );
    assert_eq!(
        (row.use_count, row.last_operation.as_deref()),
        (1, Some("clone"))
    );

    fleet
        .ok_as("acme", "status", json!({"sandbox_id": id}))
        .await;
    fleet
        .ok_as(
            "acme",
            "write_files",
            json!({"sandbox_id": id, "files": [{"path": "NOTES.md", "content": "hi\n"}]}),
        )
        .await;
    // Each op is a use; the sandbox is back to ready after it.
    let row = sandbox_where(&store, &id, "ready", |r| r.use_count == 3).await;
    assert_eq!(row.last_operation.as_deref(), Some("write_files"));

    fleet
        .ok_as("acme", "release", json!({"sandbox_id": id}))
        .await;
    let row = sandbox(&store, &id, "terminated").await;
    assert_eq!(row.last_operation.as_deref(), Some("release"));
    assert!(row.terminated_at.is_some());
    assert!(row.is_pooled, "a healthy full copy goes back to the cache");
    assert_eq!(row.ttl_tier.as_deref(), Some("hot"));
    assert!(row.expires_at.is_some());

    // Its time is metered to the organization.
    let acme = store.org("acme").await.unwrap();
    assert!(acme.spend_usd > 0.0 && acme.live_sandboxes == 0, "{acme:?}");

    // A sandbox still alive when its worker stops is terminated with it.
    let c = fleet
        .ok_as(
            "acme",
            "clone",
            json!({"repo_url": url, "agent_id": "a2", "task_id": "t2"}),
        )
        .await;
    let second = c["sandbox_id"].as_str().unwrap().to_string();
    sandbox(&store, &second, "ready").await;
    assert_eq!(store.org("acme").await.unwrap().live_sandboxes, 1);
    fleet.shutdown().await;
    let row = sandbox(&store, &second, "terminated").await;
    assert!(!row.is_pooled);
    let used: i64 = sqlx::query_scalar("SELECT count(*) FROM sandbox_usage WHERE org_id = 'acme'")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(used, 2);
}
