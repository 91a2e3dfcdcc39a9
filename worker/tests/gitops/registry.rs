//! The sandbox registry and sandbox-hour metering, kept by a worker running real git ops.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use gitfleet_store::{SandboxRow, Store};
use gitfleet_testkit::GitDaemon;
use serde_json::json;

use crate::support::{git_fleet, sample_repo};

/// `t` cut to the microseconds Postgres keeps.
fn micros_floor(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

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

    let releasing = Utc::now();
    fleet
        .ok_as("acme", "release", json!({"sandbox_id": id}))
        .await;
    let row = sandbox(&store, &id, "terminated").await;
    // The row is written after the worker took its time for it.
    let seen = Utc::now();
    assert_eq!(row.last_operation.as_deref(), Some("release"));
    assert!(row.is_pooled, "a healthy full copy goes back to the cache");
    assert_eq!(row.ttl_tier.as_deref(), Some("hot"));
    // Two clocks read at moments the test cannot see, so bounds instead of values: the
    // termination is Postgres's clock when the release reached it, and the copy's expiry
    // the worker's clock when it recorded the release, two hours (the hot tier) on; both
    // fall between the release's submission and the row's appearance (one machine, one
    // clock; Postgres keeps microseconds, hence the widening by one).
    let (from, to) = (micros_floor(releasing), seen + TimeDelta::microseconds(1));
    let terminated = row.terminated_at.expect("a terminated sandbox says when");
    assert!(
        from <= terminated && terminated <= to,
        "{from} {terminated} {to}"
    );
    let expires = row.expires_at.expect("a cached copy expires");
    let hot = TimeDelta::hours(2);
    assert!(
        from + hot <= expires && expires <= to + hot,
        "{} {expires} {}",
        from + hot,
        to + hot
    );

    // Its time, created to terminated, is metered to the organization at the configured
    // price, and is all the organization has spent: it has nothing alive.
    let (started, ended, seconds, cost): (DateTime<Utc>, DateTime<Utc>, f64, f64) = sqlx::query_as(
        "SELECT started_at, ended_at, seconds, cost_usd FROM sandbox_usage WHERE sandbox_id = $1",
    )
    .bind(&id)
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!(
        (Some(started), Some(ended)),
        (row.created_at, row.terminated_at)
    );
    let lived = (ended - started).num_microseconds().unwrap() as f64 / 1e6;
    assert!(
        lived > 0.0 && (seconds - lived).abs() < 1e-6,
        "{seconds} s, lived {lived} s"
    );
    let price = seconds / 3600.0 * store.sandbox_hour_usd();
    assert!(
        cost > 0.0 && (cost - price).abs() <= 1e-12 * price,
        "{cost} vs {price}"
    );
    let acme = store.org("acme").await.unwrap();
    assert_eq!((acme.spend_usd, acme.live_sandboxes), (cost, 0), "{acme:?}");

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
