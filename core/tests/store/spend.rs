//! What an organization spends: this calendar month's (UTC) usage rows plus the time so
//! far of its live sandboxes, counted from the month's start for one made before it; and
//! `release`, which ends the spending, is never refused over budget.

use std::time::Duration;

use gitfleet_contract::{ErrorKind, JobSpec, JobStatus};
use gitfleet_store::Store;
use gitfleet_testkit::{Fleet, GitDaemon, TestStore, eventually, fixtures};
use serde_json::json;

use crate::{fleet, wait_final};

/// The start of this month (UTC) as Postgres reckons it, as `orgs()` does.
const MONTH_START: &str = "date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'";

/// Seconds since the start of the month, by Postgres's clock now.
async fn seconds_into_month(store: &Store) -> f64 {
    sqlx::query_scalar(&format!(
        "SELECT EXTRACT(EPOCH FROM (clock_timestamp() - {MONTH_START}))::float8"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// A registry row for sandbox `id` of `org`, made at `created` (an SQL expression).
async fn sandbox(store: &Store, id: &str, org: &str, status: &str, created: &str) {
    sqlx::query(&format!(
        "INSERT INTO git_sandboxes (sandbox_id, worker_id, org_id, repo_url, branch, agent_branch,
                                    status, created_at, last_used_at, updated_at)
         VALUES ($1, 'w', $2, 'git://h/r.git', 'main', 'agent/x', $3, {created}, now(), now())"
    ))
    .bind(id)
    .bind(org)
    .bind(status)
    .execute(store.pool())
    .await
    .unwrap();
}

/// A usage row of `org` costing `cost`, for a sandbox that ended at `ended` (SQL).
async fn usage(store: &Store, id: &str, org: &str, ended: &str, cost: f64) {
    sqlx::query(&format!(
        "INSERT INTO sandbox_usage VALUES ($1, $2, 'w', {ended} - interval '1 hour', {ended},
                                          3600, $3)"
    ))
    .bind(id)
    .bind(org)
    .bind(cost)
    .execute(store.pool())
    .await
    .unwrap();
}

/// At $3,600 a sandbox-hour (a dollar a second): a sandbox made ten days before this month
/// and still live costs this month only the seconds since the month began (not its ten days
/// before), one made this month its seconds since it was made; usage rows count by the
/// month they ended in (one ended at the very start of the month counts whole, one a second
/// before it not at all); a terminated sandbox and another organization's count nothing.
#[tokio::test]
async fn spend_counts_a_live_sandbox_from_last_month_only_from_the_start_of_this_one() {
    let t = TestStore::with_config(|c| c.sandbox_hour_usd = 3600.0).await;
    let store = &t.store;
    sandbox(
        store,
        "w.old",
        "acme",
        "in_use",
        &format!("{MONTH_START} - interval '10 days'"),
    )
    .await;
    // Halfway between the start of the month and now: this month, whenever the test runs.
    sandbox(
        store,
        "w.new",
        "acme",
        "ready",
        &format!("{MONTH_START} + (now() - {MONTH_START}) / 2"),
    )
    .await;
    sandbox(
        store,
        "w.ended",
        "acme",
        "terminated",
        &format!("{MONTH_START} - interval '3 days'"),
    )
    .await;
    sandbox(store, "w.other", "other", "in_use", "now()").await;
    usage(store, "u.this", "acme", "now()", 5.0).await;
    usage(store, "u.edge", "acme", MONTH_START, 7.0).await;
    usage(
        store,
        "u.last",
        "acme",
        &format!("{MONTH_START} - interval '1 second'"),
        100.0,
    )
    .await;
    let new_made: f64 = sqlx::query_scalar(&format!(
        "SELECT EXTRACT(EPOCH FROM (created_at - {MONTH_START}))::float8
           FROM git_sandboxes WHERE sandbox_id = 'w.new'"
    ))
    .fetch_one(store.pool())
    .await
    .unwrap();

    let before = seconds_into_month(store).await;
    let acme = store.org("acme").await.unwrap();
    let after = seconds_into_month(store).await;
    assert_eq!(acme.live_sandboxes, 2, "{acme:?}");
    // The live part depends on when `orgs()` ran: between the two readings of the clock.
    // w.old: `into` seconds; w.new: `into - new_made`; the usage rows this month: 5 + 7.
    let spend = |into: f64| 5.0 + 7.0 + into + (into - new_made);
    assert!(
        spend(before) - 1e-3 <= acme.spend_usd && acme.spend_usd <= spend(after) + 1e-3,
        "spend {} outside [{}, {}]: {acme:?}",
        acme.spend_usd,
        spend(before),
        spend(after)
    );
    let other = store.org("other").await.unwrap();
    assert_eq!(other.live_sandboxes, 1, "{other:?}");
}

/// An organization over its budget: its other jobs are refused (at enqueue by the client,
/// and by the worker, whose list of organizations over budget is loaded, as a job refused
/// shows), but `release` is not, on either path: both its sandboxes are released, end in
/// the registry, and are metered; nothing of it stays live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_never_refused_for_an_organization_over_budget() {
    let db = TestStore::new().await;
    let store = db.store.clone();
    let mut q = fleet(&store, None).git().start().await;
    q.add_worker().await;
    fixtures::bare_repo(&q.remotes(), "repo.git", &[("README.md", "hi\n")]);
    let daemon = GitDaemon::start(&q.remotes()).unwrap();
    let mut sandboxes = Vec::new();
    for agent in ["a1", "a2"] {
        let c = q
            .ok_as(
                "acme",
                "clone",
                json!({"repo_url": daemon.url("repo.git"), "agent_id": agent, "task_id": "t"}),
            )
            .await;
        sandboxes.push(c["sandbox_id"].as_str().unwrap().to_string());
    }
    store.set_budget("acme", Some(0.0)).await.unwrap();
    assert!(store.org("acme").await.unwrap().over_budget());

    // The client (with the record) refuses acme's echo, and lets its release through.
    let client = q.client().clone().with_store(store.clone());
    let echo = JobSpec::new("echo", json!({}));
    let refused = client
        .submit("jobs", &echo, &Fleet::for_org("acme"))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, gitfleet_client::QueueError::Invalid(e) if e.kind == ErrorKind::BudgetExceeded),
        "{refused}"
    );
    let release = JobSpec::new("release", json!({"sandbox_id": sandboxes[0]}));
    let through_client = client
        .submit(
            &gitfleet_client::Client::route(&release),
            &release,
            &Fleet::for_org("acme"),
        )
        .await
        .expect("release is not refused at enqueue");

    // The worker: once its list has acme on it (an echo enqueued straight into Redis, past
    // the client's check, is refused), a release enqueued the same way still runs.
    eventually(
        "the worker to refuse acme's echo",
        Duration::from_secs(20),
        async || {
            let job = q
                .queue()
                .enqueue("jobs", &echo, &Fleet::for_org("acme"))
                .await
                .unwrap();
            let r = wait_final(q.queue(), &job.job_id).await;
            match &r.error {
                Some(e) if e.kind == ErrorKind::BudgetExceeded => Ok(()),
                _ => Err(format!("{r:?}")),
            }
        },
    )
    .await;
    let release = JobSpec::new("release", json!({"sandbox_id": sandboxes[1]}));
    let straight = q
        .queue()
        .enqueue(
            &gitfleet_client::Client::route(&release),
            &release,
            &Fleet::for_org("acme"),
        )
        .await
        .unwrap();
    for id in [&through_client.job_id, &straight.job_id] {
        let r = wait_final(q.queue(), id).await;
        assert_eq!(r.status, JobStatus::Done, "{r:?}");
        assert_eq!(r.attempts, 1, "{r:?}");
    }
    let rows = eventually(
        "both sandboxes terminated and metered",
        Duration::from_secs(20),
        async || {
            let rows = store.sandboxes(10).await.map_err(|e| e.to_string())?;
            let metered: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM sandbox_usage WHERE org_id = 'acme' AND sandbox_id = ANY($1)",
            )
            .bind(&sandboxes)
            .fetch_one(store.pool())
            .await
            .map_err(|e| e.to_string())?;
            if metered == 2 && rows.iter().all(|r| r.status == "terminated") {
                Ok(rows)
            } else {
                Err(format!("{metered} metered; {rows:?}"))
            }
        },
    )
    .await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(store.org("acme").await.unwrap().live_sandboxes, 0);
    q.shutdown().await;
}
